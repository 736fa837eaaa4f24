//! Adaptive resequencing of SRT data packets that arrive over bonded links.
//!
//! # Why
//!
//! An SRTLA gateway receives one SRT stream split over several network links
//! whose one-way delays differ (say 20, 60 and 120 ms). Packets therefore
//! arrive out of order. A plain SRT receiver treats every sequence gap as loss
//! and sends a NAK at once, although the "missing" packet is usually just
//! still travelling on a slower link. Each such spurious NAK makes the sender
//! retransmit over the links' scarce uplink capacity.
//!
//! [`Resequencer`] sits between the links and the SRT receiver. It holds
//! out-of-order packets briefly and hands them on in sequence. How long it
//! waits for a gap to fill adapts to the delay spread it actually observes, and
//! it is bounded by `max_hold`, so real loss still reaches the SRT receiver
//! (and is NAKed) quickly.
//!
//! # How
//!
//! The type is sans-IO and generic over the packet type `T`: the caller
//! passes arrival times and calls [`Resequencer::on_timer`] when
//! [`Resequencer::next_timeout`] is due. Output goes into a caller-owned `Vec`.
//!
//! * Held packets live in a ring ([`VecDeque`]) of slots indexed by
//!   `seq - next`. Slot 0 is the next expected sequence number. A slot is
//!   either missing (remembering when the gap was first seen) or held. In
//!   steady state the ring reuses its capacity, so nothing is allocated per
//!   packet, and every packet enters and leaves the ring once. That makes
//!   `push` and `on_timer` O(1) amortised.
//! * A missing slot is given up when `first_seen + hold()` has passed. Its
//!   sequence number is then released as missing, so the SRT receiver sees the
//!   gap and NAKs it. `hold()` is read when the deadline is checked, not when
//!   the gap opens. A gap that is still open therefore gets a longer wait as
//!   soon as a sample shows that more is needed. First-seen times never
//!   decrease along the ring, so only the front slot needs checking.
//! * A history of the last [`HISTORY`] released sequence numbers tells a
//!   duplicate (already delivered) apart from a packet that arrives after its
//!   gap was given up. The late packet is passed straight through. The SRT
//!   receiver takes it like a retransmission that fills a hole, and its
//!   lateness becomes an adaptation sample.
//!
//! # Adaptation
//!
//! Each time a packet fills a gap (or arrives after its gap was given up), a
//! sample `now - gap_first_seen` is taken. This is how long that gap really
//! took to fill. Samples are capped at `max_hold`, because waiting longer is
//! never allowed anyway. The spread estimate is a decaying peak:
//!
//! * a sample larger than the estimate replaces it at once, so a slower link
//!   is accommodated right away;
//! * otherwise the estimate decays exponentially with a half-life of
//!   [`SPREAD_HALF_LIFE`] (1 s). After the links become equal, the hold falls
//!   to a few ms within several seconds. A short lull between reorderings
//!   does not make it forget the spread.
//!
//! `hold() = clamp(estimate × 1.25 + 2 ms, 0, max_hold)`. The 25 % and the
//! 2 ms cover jitter beyond the largest sample seen so far.
//!
//! The estimate starts at [`INITIAL_SPREAD`] (80 ms). Until the first
//! reordering is seen, nothing is known about the links. Starting at 0 would
//! release the very first gaps after 2 ms: reordering is almost certain on
//! bonded links (cellular links differ by tens to hundreds of milliseconds),
//! so that means avoidable NAKs. Starting at `max_hold` would delay real-loss
//! reports by the full bound for the first seconds of a stream that turns out
//! to be in order. 80 ms covers the common spread between cellular links, and
//! costs nothing that matters at the start of a bonded stream, whose SRT
//! latency is a second or more; a link set that is in fact in order lets the
//! estimate decay within seconds. A larger spread corrects the estimate with
//! its first late-packet sample. (Measured with links of 20, 60 and 120 ms
//! through srtgate: 10 ms here left 6 retransmission requests from the
//! warm-up.)
//!
//! # Limits
//!
//! * A packet more than [`MAX_JUMP`] ahead of the highest sequence number seen,
//!   or more than [`HISTORY`] behind the next expected one, means the stream
//!   restarted (or garbage arrived). What is held is flushed, and the
//!   resequencer resynchronises to the new number (counted in
//!   [`ReseqStats::resyncs`]).
//! * The ring never spans more than [`MAX_BUFFERED`] sequence numbers. If a
//!   packet would stretch it further, everything is released in order first
//!   ([`ReseqStats::overflows`]).
//! * `max_hold == 0` disables holding. Every packet passes straight through,
//!   and the statistics are still kept.
//! * No input makes it panic: sequence numbers are masked to 31 bits,
//!   `Instant` arithmetic is checked, and times that go backwards are
//!   tolerated.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// SRT data sequence numbers are 31 bits wide.
const SEQ_MASK: u32 = 0x7FFF_FFFF;
/// Size of the 31-bit sequence space.
const SEQ_SPACE: u32 = 1 << 31;
/// "Ahead" means within half the sequence space.
const HALF_SPACE: u32 = 1 << 30;

/// Maximum span of the hold ring, in sequence numbers (and so the maximum
/// number of packets held).
pub const MAX_BUFFERED: usize = 8192;
/// A packet more than this far beyond the highest sequence number seen is
/// taken as a stream restart. Measured from the highest number seen, not from
/// `next`, so a long-open hole with packets still flowing in order shows up
/// as an overflow and not as a restart.
pub const MAX_JUMP: u32 = 8192;
/// How many released sequence numbers are remembered to tell duplicates from
/// late packets. A packet further behind than this means a restart. Must be a
/// power of two (it divides the 31-bit space, so indexing survives wrap).
pub const HISTORY: usize = 8192;
/// Starting value of the delay-spread estimate (see the module docs).
pub const INITIAL_SPREAD: Duration = Duration::from_millis(80);
/// Constant safety margin added to the scaled spread.
pub const HOLD_MARGIN: Duration = Duration::from_millis(2);
/// Half-life of the spread estimate's decay toward smaller samples.
pub const SPREAD_HALF_LIFE: Duration = Duration::from_secs(1);

/// Counters kept by a [`Resequencer`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReseqStats {
    /// Data packets pushed.
    pub packets: u64,
    /// Packets that filled a gap, i.e. arrived after a later sequence number.
    pub reordered: u64,
    /// Packets that had to wait in the buffer before being handed on.
    pub held: u64,
    /// Sequence numbers released as missing when their hold time ran out.
    pub gaps_given_up: u64,
    /// Packets that arrived after their gap was given up (passed straight on).
    pub late_after_give_up: u64,
    /// Packets dropped because they were already delivered or already held.
    pub duplicates: u64,
    /// Times the buffer hit [`MAX_BUFFERED`] and was flushed.
    pub overflows: u64,
    /// Times a huge sequence jump forced a flush and resynchronisation.
    pub resyncs: u64,
}

/// One sequence number in the hold ring.
#[derive(Debug)]
enum Slot<T> {
    /// Not arrived yet; the gap was first seen at this time.
    Missing(Instant),
    /// Arrived, waiting for the packets before it.
    Held(T),
}

/// What happened to a sequence number that has left the ring.
#[derive(Debug, Clone, Copy)]
enum Past {
    /// Handed on to the receiver.
    Delivered,
    /// Released as missing; its gap was first seen at this time.
    GivenUp(Instant),
}

/// Where a sequence number lies relative to the next expected one.
enum Position {
    /// This many ahead (0 = exactly the next expected).
    Ahead(u32),
    /// This many behind (at least 1).
    Behind(u32),
}

/// Returns `seq + n` in the 31-bit sequence space.
fn seq_add(seq: u32, n: u32) -> u32 {
    seq.wrapping_add(n) & SEQ_MASK
}

/// Classifies `seq` relative to `next` using the 31-bit wrapping order.
fn position(seq: u32, next: u32) -> Position {
    let ahead = seq.wrapping_sub(next) & SEQ_MASK;
    if ahead < HALF_SPACE {
        Position::Ahead(ahead)
    } else {
        Position::Behind(SEQ_SPACE - ahead)
    }
}

/// Reorders SRT data packets from bonded links back into sequence, holding
/// each gap open for an adaptive, bounded time. See the module docs.
#[derive(Debug)]
pub struct Resequencer<T> {
    /// Upper bound on the hold time; zero disables holding.
    max_hold: Duration,
    /// Next expected sequence number; `None` until the first packet.
    next: Option<u32>,
    /// Slots for sequence numbers `next, next + 1, ...`. If non-empty, the
    /// front slot is always `Missing`.
    window: VecDeque<Slot<T>>,
    /// Number of `Held` slots in `window`.
    buffered: usize,
    /// Fate of released sequence numbers, indexed by `seq % HISTORY`.
    history: Vec<Past>,
    /// How many sequence numbers just behind `next` have a valid entry.
    history_len: usize,
    /// Current delay-spread estimate.
    spread: Duration,
    /// When `spread` was last decayed; `None` before the first event.
    spread_at: Option<Instant>,
    /// Counters.
    stats: ReseqStats,
}

impl<T> Resequencer<T> {
    /// Creates a resequencer that never holds a gap open longer than
    /// `max_hold`. `max_hold == 0` disables holding.
    pub fn new(max_hold: Duration) -> Self {
        Self {
            max_hold,
            next: None,
            window: VecDeque::new(),
            buffered: 0,
            history: vec![Past::Delivered; HISTORY],
            history_len: 0,
            spread: INITIAL_SPREAD,
            spread_at: None,
            stats: ReseqStats::default(),
        }
    }

    /// Takes an SRT data packet with 31-bit sequence number `seq` (higher bits
    /// are ignored) that arrived at `now`. Packets ready to go on are appended
    /// to `out` in order.
    ///
    /// `retransmitted` is the SRT R flag. Retransmissions are never counted as
    /// reordered or used as samples. A retransmission for a sequence number
    /// already released (the usual case: it answers a NAK) passes straight
    /// through, and so does one with a wild sequence number. One that falls
    /// inside the hold window takes its slot. Passing it ahead of the gap
    /// would show the receiver a hole and cause the very NAK we want to avoid.
    pub fn push(&mut self, now: Instant, seq: u32, retransmitted: bool, item: T, out: &mut Vec<T>) {
        let seq = seq & SEQ_MASK;
        self.stats.packets += 1;
        self.decay_spread(now);
        self.expire(now, out);
        match self.next {
            None => self.resync_to(seq, item, out),
            Some(next) => match position(seq, next) {
                Position::Ahead(ahead) => {
                    self.push_ahead(now, seq, ahead, retransmitted, item, out)
                }
                Position::Behind(behind) => {
                    self.push_behind(now, seq, behind, retransmitted, item, out)
                }
            },
        }
        // Only does something when the hold is zero (holding disabled).
        self.expire(now, out);
    }

    /// Releases everything whose hold time has run out by `now`.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<T>) {
        self.decay_spread(now);
        self.expire(now, out);
    }

    /// When [`on_timer`](Self::on_timer) should next be called, or `None` if
    /// nothing is waiting.
    ///
    /// The spread estimate keeps decaying until then, so the gap may become
    /// due slightly earlier (by well under 1 % of the hold). The estimate only
    /// grows inside `push`, so calling `on_timer` at this instant always
    /// releases at least one gap.
    pub fn next_timeout(&self) -> Option<Instant> {
        match self.window.front() {
            Some(Slot::Missing(seen)) => seen.checked_add(self.hold()),
            _ => None,
        }
    }

    /// The current adaptive hold time:
    /// `clamp(spread × 1.25 + 2 ms, 0, max_hold)`.
    pub fn hold(&self) -> Duration {
        let scaled = self.spread.saturating_mul(5) / 4;
        scaled.saturating_add(HOLD_MARGIN).min(self.max_hold)
    }

    /// The current delay-spread estimate (before scaling and clamping).
    pub fn spread(&self) -> Duration {
        self.spread
    }

    /// Number of packets currently held (never more than [`MAX_BUFFERED`]).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// A copy of the counters.
    pub fn stats(&self) -> ReseqStats {
        self.stats
    }

    /// Hands on everything held, in order. The open gaps are released as
    /// given up.
    pub fn flush(&mut self, out: &mut Vec<T>) {
        while self.release_front(out) {}
    }

    /// Changes the upper bound on the hold time. It takes effect at the next
    /// [`push`](Self::push) or [`on_timer`](Self::on_timer); zero disables
    /// holding.
    pub fn set_max_hold(&mut self, max_hold: Duration) {
        self.max_hold = max_hold;
    }

    /// Handles a packet at or ahead of `next` (`ahead` slots ahead).
    fn push_ahead(
        &mut self,
        now: Instant,
        seq: u32,
        mut ahead: u32,
        retransmitted: bool,
        item: T,
        out: &mut Vec<T>,
    ) {
        let span = self.window_span();
        if ahead >= span && ahead - span >= MAX_JUMP {
            self.jump(seq, retransmitted, item, out);
            return;
        }
        if ahead as usize >= MAX_BUFFERED {
            // The ring would exceed its cap: release it all and try again.
            // Afterwards `ahead < MAX_JUMP <= MAX_BUFFERED`, so it fits.
            self.stats.overflows += 1;
            self.flush(out);
            ahead = ahead.saturating_sub(span);
        }
        if ahead < self.window_span() {
            self.fill_slot(now, ahead as usize, retransmitted, item);
        } else {
            self.append(now, ahead as usize, retransmitted, item);
        }
        self.drain(out);
    }

    /// A sequence number far from anything seen: a retransmission of it passes
    /// straight through; anything else means the stream restarted there.
    fn jump(&mut self, seq: u32, retransmitted: bool, item: T, out: &mut Vec<T>) {
        if retransmitted {
            out.push(item);
        } else {
            self.stats.resyncs += 1;
            self.resync_to(seq, item, out);
        }
    }

    /// Handles a packet behind `next` (`behind` ≥ 1 numbers behind).
    fn push_behind(
        &mut self,
        now: Instant,
        seq: u32,
        behind: u32,
        retransmitted: bool,
        item: T,
        out: &mut Vec<T>,
    ) {
        let behind = behind as usize;
        if behind > HISTORY {
            self.jump(seq, retransmitted, item, out);
            return;
        }
        if behind > self.history_len {
            // Before our first packet or last resync: we know nothing of it.
            // It is presumably late, so pass it on and let the receiver judge.
            if !retransmitted {
                self.stats.late_after_give_up += 1;
            }
            out.push(item);
            return;
        }
        let entry = &mut self.history[seq as usize % HISTORY];
        match *entry {
            Past::Delivered if retransmitted => out.push(item),
            Past::Delivered => self.stats.duplicates += 1,
            Past::GivenUp(seen) => {
                *entry = Past::Delivered;
                if !retransmitted {
                    self.stats.late_after_give_up += 1;
                    self.sample(now, seen);
                }
                out.push(item);
            }
        }
    }

    /// Puts a packet into an existing slot of the window.
    fn fill_slot(&mut self, now: Instant, index: usize, retransmitted: bool, item: T) {
        let Some(slot) = self.window.get_mut(index) else {
            return;
        };
        let Slot::Missing(seen) = *slot else {
            self.stats.duplicates += 1;
            return;
        };
        *slot = Slot::Held(item);
        self.buffered += 1;
        if !retransmitted {
            self.stats.reordered += 1;
            if index > 0 {
                self.stats.held += 1;
            }
            self.sample(now, seen);
        }
    }

    /// Extends the window with missing slots up to `index` and holds the
    /// packet there (or delivers it via `drain` when `index == 0`).
    fn append(&mut self, now: Instant, index: usize, retransmitted: bool, item: T) {
        while self.window.len() < index {
            self.window.push_back(Slot::Missing(now));
        }
        self.window.push_back(Slot::Held(item));
        self.buffered += 1;
        if index > 0 && !retransmitted && !self.hold().is_zero() {
            self.stats.held += 1;
        }
    }

    /// Gives up every front gap whose deadline has passed, handing on the
    /// packets behind it.
    fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        while let Some(Slot::Missing(seen)) = self.window.front() {
            let due = seen.checked_add(self.hold()).is_some_and(|d| d <= now);
            if !due {
                break;
            }
            self.release_front(out);
            self.drain(out);
        }
    }

    /// Hands on the front slots as long as they hold a packet.
    fn drain(&mut self, out: &mut Vec<T>) {
        while matches!(self.window.front(), Some(Slot::Held(_))) {
            self.release_front(out);
        }
    }

    /// Releases the front slot whatever it holds and advances `next`.
    /// Returns `false` if the window was empty.
    fn release_front(&mut self, out: &mut Vec<T>) -> bool {
        let past = match self.window.pop_front() {
            None => return false,
            Some(Slot::Held(item)) => {
                self.buffered -= 1;
                out.push(item);
                Past::Delivered
            }
            Some(Slot::Missing(seen)) => {
                self.stats.gaps_given_up += 1;
                Past::GivenUp(seen)
            }
        };
        self.advance(past);
        true
    }

    /// Records the fate of `next` and moves `next` on by one.
    fn advance(&mut self, past: Past) {
        let Some(next) = self.next else {
            return;
        };
        self.history[next as usize % HISTORY] = past;
        self.history_len = (self.history_len + 1).min(HISTORY);
        self.next = Some(seq_add(next, 1));
    }

    /// Flushes everything and restarts the sequence at `seq`, delivering the
    /// packet that carries it.
    fn resync_to(&mut self, seq: u32, item: T, out: &mut Vec<T>) {
        self.flush(out);
        self.next = Some(seq);
        self.history_len = 0;
        out.push(item);
        self.advance(Past::Delivered);
    }

    /// Number of sequence numbers the window covers.
    fn window_span(&self) -> u32 {
        // The window never exceeds MAX_BUFFERED, so this cannot truncate.
        u32::try_from(self.window.len()).unwrap_or(u32::MAX)
    }

    /// Feeds one observation of how long a gap took to fill.
    fn sample(&mut self, now: Instant, gap_seen: Instant) {
        let took = now.saturating_duration_since(gap_seen).min(self.max_hold);
        self.spread = self.spread.max(took);
    }

    /// Lets the spread estimate decay up to `now` (half-life
    /// [`SPREAD_HALF_LIFE`]). Times going backwards are ignored.
    fn decay_spread(&mut self, now: Instant) {
        let Some(at) = self.spread_at else {
            self.spread_at = Some(now);
            return;
        };
        let Some(elapsed) = now.checked_duration_since(at) else {
            return;
        };
        if elapsed.is_zero() {
            return;
        }
        let half_lives = elapsed.as_secs_f64() / SPREAD_HALF_LIFE.as_secs_f64();
        let factor = 0.5_f64.powf(half_lives);
        let decayed = self.spread.as_secs_f64() * factor;
        self.spread = Duration::try_from_secs_f64(decayed).unwrap_or(Duration::ZERO);
        self.spread_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const MS: Duration = Duration::from_millis(1);

    // ----- small deterministic cases -----

    /// Pushes `seqs` one millisecond apart and returns everything delivered.
    fn feed(r: &mut Resequencer<u32>, t0: Instant, seqs: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            r.push(t0 + MS * i as u32, seq, false, seq, &mut out);
        }
        out
    }

    #[test]
    fn in_order_passes_straight_through() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let mut out = Vec::new();
        for seq in 0..1000u32 {
            r.push(t0 + MS * seq, seq, false, seq, &mut out);
            assert_eq!(out, [seq]);
            assert_eq!(r.next_timeout(), None);
            assert_eq!(r.buffered(), 0);
            out.clear();
        }
        let expected = ReseqStats {
            packets: 1000,
            ..ReseqStats::default()
        };
        assert_eq!(r.stats(), expected);
    }

    #[test]
    fn simple_swap_is_reordered() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let out = feed(&mut r, t0, &[1, 3, 2]);
        assert_eq!(out, [1, 2, 3]);
        let s = r.stats();
        assert_eq!((s.reordered, s.held, s.gaps_given_up), (1, 1, 0));
        assert_eq!(r.next_timeout(), None);
    }

    #[test]
    fn gap_is_given_up_after_hold_and_late_packet_passes() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let mut out = feed(&mut r, t0, &[1, 3, 4]);
        assert_eq!(out, [1]);
        // Initial spread 80 ms -> hold 102 ms, counted from when 3 arrived.
        // (It has decayed for 2 ms, by about 0.1 %.)
        let hold = r.hold();
        assert!(hold > Duration::from_micros(101_850) && hold <= Duration::from_micros(102_000));
        let due = r.next_timeout().expect("gap pending");
        assert_eq!(due, t0 + MS + r.hold());
        // Decay can only bring the deadline slightly forward, never later.
        r.on_timer(due - 10 * MS, &mut out);
        assert_eq!(out, [1]);
        r.on_timer(due, &mut out);
        assert_eq!(out, [1, 3, 4]);
        assert_eq!(r.stats().gaps_given_up, 1);
        // 2 shows up 150 ms after its gap opened: passed on, hold adapts.
        r.push(t0 + 151 * MS, 2, false, 2, &mut out);
        assert_eq!(out, [1, 3, 4, 2]);
        assert_eq!(r.stats().late_after_give_up, 1);
        assert_eq!(r.spread(), 150 * MS);
        assert_eq!(r.hold(), Duration::from_micros(189_500));
        // A second copy is a duplicate.
        r.push(t0 + 152 * MS, 2, false, 2, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(r.stats().duplicates, 1);
    }

    #[test]
    fn zero_max_hold_disables_holding() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(Duration::ZERO);
        let out = feed(&mut r, t0, &[1, 3, 2, 4]);
        assert_eq!(out, [1, 3, 2, 4]);
        let s = r.stats();
        assert_eq!((s.held, s.reordered), (0, 0));
        assert_eq!((s.gaps_given_up, s.late_after_give_up), (1, 1));
        assert_eq!(r.hold(), Duration::ZERO);
        assert_eq!(r.next_timeout(), None);
    }

    #[test]
    fn wrap_around() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let top = SEQ_MASK;
        let out = feed(&mut r, t0, &[top - 1, top, 1, 0, 2]);
        assert_eq!(out, [top - 1, top, 0, 1, 2]);
        assert_eq!(r.stats().reordered, 1);
        // Bits above 31 are ignored.
        let mut out = Vec::new();
        r.push(t0 + 10 * MS, 3 | 0x8000_0000, false, 3, &mut out);
        assert_eq!(out, [3]);
    }

    #[test]
    fn duplicates_delivered_and_held() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let out = feed(&mut r, t0, &[1, 2, 2, 1, 4, 4, 3]);
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(r.stats().duplicates, 3);
    }

    #[test]
    fn retransmissions_are_not_reordering() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let mut out = feed(&mut r, t0, &[1, 3]);
        let due = r.next_timeout().unwrap();
        r.on_timer(due, &mut out);
        assert_eq!(out, [1, 3]);
        // Retransmission of the given-up 2: straight through, no sample.
        r.push(due + 50 * MS, 2, true, 2, &mut out);
        assert_eq!(out, [1, 3, 2]);
        // Retransmission inside the hold window keeps its place in order.
        r.push(due + 51 * MS, 6, false, 6, &mut out);
        r.push(due + 52 * MS, 5, true, 5, &mut out);
        assert_eq!(out, [1, 3, 2]);
        r.push(due + 53 * MS, 4, false, 4, &mut out);
        assert_eq!(out, [1, 3, 2, 4, 5, 6]);
        let s = r.stats();
        assert_eq!((s.reordered, s.late_after_give_up), (1, 0));
        assert!(r.spread() <= INITIAL_SPREAD, "no sample taken");
    }

    #[test]
    fn huge_jumps_resync() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(250 * MS);
        let mut out = feed(&mut r, t0, &[10, 12]);
        assert_eq!(out, [10]);
        r.push(t0 + 5 * MS, 100_012, false, 100_012, &mut out);
        assert_eq!(out, [10, 12, 100_012]);
        r.push(t0 + 6 * MS, 100_013, false, 100_013, &mut out);
        assert_eq!(out, [10, 12, 100_012, 100_013]);
        assert_eq!(r.stats().resyncs, 1);
        assert_eq!(r.stats().gaps_given_up, 1);
        // A leap far backwards is a restart too.
        r.push(t0 + 7 * MS, 5, false, 5, &mut out);
        r.push(t0 + 8 * MS, 6, false, 6, &mut out);
        assert_eq!(out[4..], [5, 6]);
        assert_eq!(r.stats().resyncs, 2);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn overflow_keeps_memory_bounded() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(Duration::from_secs(10));
        let mut out = Vec::new();
        r.push(t0, 0, false, 0, &mut out);
        // Seq 1 never comes and time stands still, so nothing expires.
        let mut max_buffered = 0;
        for seq in 2..20_002u32 {
            r.push(t0, seq, false, seq, &mut out);
            max_buffered = max_buffered.max(r.buffered());
            assert!(r.window.len() <= MAX_BUFFERED);
        }
        r.flush(&mut out);
        let s = r.stats();
        eprintln!("overflow: max buffered {max_buffered}, stats {s:?}");
        assert!(max_buffered <= MAX_BUFFERED);
        assert_eq!(s.overflows, 1);
        assert_eq!(s.gaps_given_up, 1);
        let mut expected: Vec<u32> = (2..20_002).collect();
        expected.insert(0, 0);
        assert_eq!(out, expected);
    }

    #[test]
    fn hold_is_clamped_to_max_hold() {
        let t0 = Instant::now();
        let mut r = Resequencer::new(100 * MS);
        let mut out = Vec::new();
        r.push(t0, 0, false, 0, &mut out);
        r.push(t0, 2, false, 2, &mut out);
        r.push(t0 + 90 * MS, 1, false, 1, &mut out);
        assert_eq!(r.spread(), 90 * MS);
        assert_eq!(r.hold(), 100 * MS);
        r.set_max_hold(20 * MS);
        assert_eq!(r.hold(), 20 * MS);
    }

    // ----- bonded-link simulation -----

    /// First sequence number of the simulated stream: close to the wrap.
    const START_SEQ: u32 = SEQ_SPACE - 500;

    /// Sequence number of the `index`-th packet of the simulated stream.
    fn seq_of(index: usize) -> u32 {
        seq_add(START_SEQ, index as u32)
    }

    /// A simulated stream: when each packet arrived (µs), `None` if lost.
    struct Stream {
        arrival_us: Vec<Option<u64>>,
    }

    impl Stream {
        /// Packet `i` is sent at `i` ms over link `i % links`. `path` gives
        /// the link's one-way delay in µs for a send time in µs, or `None`
        /// if the packet is lost.
        fn new(
            n: usize,
            links: usize,
            seed: u64,
            mut path: impl FnMut(&mut StdRng, usize, u64) -> Option<u64>,
        ) -> Self {
            let mut rng = StdRng::seed_from_u64(seed);
            let arrival_us = (0..n)
                .map(|i| {
                    let sent = i as u64 * 1000;
                    path(&mut rng, i % links, sent).map(|delay| sent + delay)
                })
                .collect();
            Self { arrival_us }
        }

        fn lost(&self, index: usize) -> bool {
            self.arrival_us[index].is_none()
        }

        /// Arrival events `(time µs, packet index)` in time order.
        fn events(&self) -> Vec<(u64, usize)> {
            let mut events: Vec<_> = (self.arrival_us.iter().enumerate())
                .filter_map(|(i, at)| at.map(|at| (at, i)))
                .collect();
            events.sort_unstable();
            events
        }

        /// For each packet, when a later packet first arrived (the moment a
        /// gap at this index becomes visible).
        fn gap_visible_us(&self) -> Vec<Option<u64>> {
            let mut visible = vec![None; self.arrival_us.len()];
            let mut earliest: Option<u64> = None;
            for i in (0..self.arrival_us.len()).rev() {
                visible[i] = earliest;
                if let Some(at) = self.arrival_us[i] {
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                }
            }
            visible
        }
    }

    /// One-way delay of `base_ms` plus up to 2 ms of uniform jitter, in µs.
    fn jittered(rng: &mut StdRng, base_ms: u64) -> u64 {
        base_ms * 1000 + rng.gen_range(0..2000)
    }

    /// The SRT receiver behind the resequencer: it NAKs whenever a packet
    /// arrives beyond the highest one seen plus one.
    struct Receiver {
        expected: usize,
        copies: Vec<u32>,
        /// When a gap containing each index was first shown (µs).
        gap_shown_us: Vec<Option<u64>>,
        spurious: u64,
        real: u64,
        spurious_after_warmup: u64,
        warmup_us: u64,
    }

    impl Receiver {
        fn new(n: usize, warmup_us: u64) -> Self {
            Self {
                expected: 0,
                copies: vec![0; n],
                gap_shown_us: vec![None; n],
                spurious: 0,
                real: 0,
                spurious_after_warmup: 0,
                warmup_us,
            }
        }

        fn take(&mut self, now_us: u64, stream: &Stream, out: &mut Vec<usize>) {
            for index in out.drain(..) {
                self.copies[index] += 1;
                if index > self.expected {
                    self.nak(now_us, stream, self.expected..index);
                }
                self.expected = self.expected.max(index + 1);
            }
        }

        /// One NAK trigger for `range`; spurious if any of it was not lost.
        fn nak(&mut self, now_us: u64, stream: &Stream, range: std::ops::Range<usize>) {
            for i in range.clone() {
                self.gap_shown_us[i].get_or_insert(now_us);
            }
            if range.clone().all(|i| stream.lost(i)) {
                self.real += 1;
            } else {
                self.spurious += 1;
                if now_us >= self.warmup_us {
                    self.spurious_after_warmup += 1;
                }
            }
        }
    }

    /// Result of one simulation run.
    struct Run {
        receiver: Receiver,
        stats: ReseqStats,
        /// `(time µs, hold)` every 100 ms.
        hold_trace: Vec<(u64, Duration)>,
    }

    impl Run {
        fn hold_at(&self, us: u64) -> Duration {
            let i = self.hold_trace.partition_point(|&(t, _)| t <= us);
            self.hold_trace[i.saturating_sub(1)].1
        }
    }

    /// Feeds `stream` through a resequencer, firing timers exactly when due.
    fn simulate(stream: &Stream, max_hold: Duration, warmup_us: u64) -> Run {
        let t0 = Instant::now();
        let us = |at: Instant| at.duration_since(t0).as_micros() as u64;
        let mut r = Resequencer::new(max_hold);
        let mut rx = Receiver::new(stream.arrival_us.len(), warmup_us);
        let mut out = Vec::new();
        let mut hold_trace = Vec::new();
        let fire_due = |r: &mut Resequencer<usize>, rx: &mut Receiver, until: Option<u64>| {
            let mut out = Vec::new();
            while let Some(due) = r.next_timeout() {
                if until.is_some_and(|u| us(due) > u) {
                    break;
                }
                r.on_timer(due, &mut out);
                rx.take(us(due), stream, &mut out);
            }
        };
        for (at_us, index) in stream.events() {
            fire_due(&mut r, &mut rx, Some(at_us));
            let now = t0 + Duration::from_micros(at_us);
            r.push(now, seq_of(index), false, index, &mut out);
            rx.take(at_us, stream, &mut out);
            if hold_trace.last().is_none_or(|&(t, _)| at_us >= t + 100_000) {
                hold_trace.push((at_us, r.hold()));
            }
        }
        fire_due(&mut r, &mut rx, None);
        r.flush(&mut out);
        rx.take(u64::MAX, stream, &mut out);
        Run {
            receiver: rx,
            stats: r.stats(),
            hold_trace,
        }
    }

    /// Three links, 20/60/120 ms one-way, round-robin, 1000 packets/s.
    fn three_links(n: usize, seed: u64, loss_on_link0: f64) -> Stream {
        Stream::new(n, 3, seed, |rng, link, _| {
            if link == 0 && rng.gen_bool(loss_on_link0) {
                return None;
            }
            Some(jittered(rng, [20, 60, 120][link]))
        })
    }

    #[test]
    fn sim_no_loss_spurious_naks() {
        let stream = three_links(10_000, 1, 0.0);
        let with = simulate(&stream, 250 * MS, 1_000_000);
        let without = simulate(&stream, Duration::ZERO, 1_000_000);
        let (w, wo) = (&with.receiver, &without.receiver);
        eprintln!(
            "no loss, 10 s: spurious NAK triggers with resequencing {} \
             (after 1 s warm-up {}), without {}; hold {:?}; stats {:?}",
            w.spurious,
            w.spurious_after_warmup,
            wo.spurious,
            with.hold_trace.last().map(|&(_, h)| h),
            with.stats
        );
        assert!(w.spurious <= 20);
        assert_eq!(w.spurious_after_warmup, 0);
        assert!(wo.spurious >= 1000);
        assert_eq!((w.real, wo.real), (0, 0));
        assert!(w.copies.iter().all(|&c| c == 1));
        assert!(wo.copies.iter().all(|&c| c == 1));
    }

    #[test]
    fn sim_loss_is_reported_within_max_hold() {
        let max_hold = 250 * MS;
        let stream = three_links(10_000, 2, 0.10);
        let run = simulate(&stream, max_hold, 1_000_000);
        let rx = &run.receiver;
        let visible = stream.gap_visible_us();
        let mut lost = 0;
        let mut worst = Duration::ZERO;
        let mut total = Duration::ZERO;
        for i in 0..stream.arrival_us.len() {
            if !stream.lost(i) {
                assert_eq!(rx.copies[i], 1, "packet {i} delivered once");
                continue;
            }
            assert_eq!(rx.copies[i], 0);
            let Some(visible) = visible[i] else {
                continue; // lost at the very end: no later packet reveals it
            };
            lost += 1;
            let shown = rx.gap_shown_us[i].expect("every real loss is reported");
            let delay = Duration::from_micros(shown - visible);
            worst = worst.max(delay);
            total += delay;
        }
        let s = run.stats;
        eprintln!(
            "10% loss on one link: {lost} lost, real NAK triggers {}, spurious {} \
             (after warm-up {}), report delay mean {:?} max {:?}; stats {s:?}",
            rx.real,
            rx.spurious,
            rx.spurious_after_warmup,
            total / lost,
            worst
        );
        assert!(lost > 250);
        assert!(worst <= max_hold + MS);
        assert_eq!(rx.spurious_after_warmup, 0);
        assert_eq!(s.gaps_given_up, lost as u64 + s.late_after_give_up);
    }

    #[test]
    fn sim_hold_adapts_and_decays() {
        let max_hold = 250 * MS;
        let switch_us = 6_000_000;
        // Links 20/60/120 ms for 6 s, then all three at 20 ms.
        let stream = Stream::new(16_000, 3, 3, |rng, link, sent_us| {
            let base = if sent_us < switch_us {
                [20, 60, 120][link]
            } else {
                20
            };
            Some(jittered(rng, base))
        });
        let run = simulate(&stream, max_hold, 1_000_000);
        let trace = |s: f64| run.hold_at((s * 1e6) as u64);
        let points = [1.0, 5.9, 6.2, 6.5, 7.0, 8.0, 10.0, 15.0];
        let shown: Vec<_> = points.iter().map(|&s| (s, trace(s))).collect();
        eprintln!("hold over time (s, hold): {shown:?}");
        assert!(run.hold_trace.iter().all(|&(_, h)| h <= max_hold));
        // ~100 ms spread + ≤ 4 ms jitter, ×1.25 + 2 ms.
        let settled = trace(5.9);
        assert!(settled >= 120 * MS && settled <= 135 * MS, "{settled:?}");
        // After the links become equal the hold decays over seconds.
        assert!(trace(6.5) > 80 * MS);
        assert!(trace(7.0) < trace(6.5));
        assert!(trace(8.0) < trace(7.0));
        assert!(trace(8.0) > 15 * MS);
        assert!(trace(15.0) < 10 * MS);
        assert_eq!(run.receiver.spurious_after_warmup, 0);
    }

    #[test]
    fn sim_hold_never_exceeds_max_hold() {
        let max_hold = 250 * MS;
        let stream = Stream::new(5_000, 2, 4, |rng, link, _| {
            Some(jittered(rng, [20, 320][link]))
        });
        let run = simulate(&stream, max_hold, 1_000_000);
        let max = run.hold_trace.iter().map(|&(_, h)| h).max().unwrap();
        eprintln!(
            "spread 300 ms, max_hold 250 ms: hold max {max:?}, spurious {}",
            run.receiver.spurious
        );
        assert_eq!(max, max_hold);
        assert!(run.receiver.copies.iter().all(|&c| c == 1));
    }

    // ----- fuzz -----

    #[test]
    fn random_input_never_panics_or_duplicates() {
        let mut rng = StdRng::seed_from_u64(5);
        let base = Instant::now() + Duration::from_secs(1000);
        let holds = [0, 1, 50, 250, 10_000].map(Duration::from_millis);
        let mut r = Resequencer::new(250 * MS);
        let mut out = Vec::new();
        let mut delivered = vec![false; 100_000];
        let mut now_ms: i64 = 0;
        let mut seq = rng.gen::<u32>();
        for id in 0..100_000usize {
            now_ms += rng.gen_range(-1..4);
            if rng.gen_ratio(1, 100) {
                now_ms -= 20; // clocks may step back
            }
            let now = base.checked_add_signed_ms(now_ms);
            seq = match rng.gen_range(0..1000) {
                0..=4 => rng.gen(),
                5..=60 => seq.wrapping_add(rng.gen_range(0..200)).wrapping_sub(100),
                _ => seq.wrapping_add(rng.gen_range(0..3)),
            };
            match rng.gen_range(0..1000) {
                0..=9 => r.on_timer(now, &mut out),
                10 => r.flush(&mut out),
                11..=13 => {
                    let h = if rng.gen_bool(0.1) {
                        Duration::MAX
                    } else {
                        holds[rng.gen_range(0..5)]
                    };
                    r.set_max_hold(h);
                }
                _ => {}
            }
            r.push(now, seq, rng.gen_ratio(1, 20), id, &mut out);
            let _ = (r.next_timeout(), r.hold());
            assert!(r.buffered() <= MAX_BUFFERED);
            for item in out.drain(..) {
                assert!(!delivered[item], "item {item} delivered twice");
                delivered[item] = true;
            }
        }
        r.flush(&mut out);
        for item in out.drain(..) {
            assert!(!delivered[item]);
            delivered[item] = true;
        }
        let s = r.stats();
        let count = delivered.iter().filter(|&&d| d).count() as u64;
        eprintln!("random: delivered {count}, stats {s:?}");
        assert_eq!(count + s.duplicates, s.packets);
    }

    /// Adds a signed number of milliseconds to an `Instant`.
    trait AddSignedMs {
        fn checked_add_signed_ms(self, ms: i64) -> Instant;
    }

    impl AddSignedMs for Instant {
        fn checked_add_signed_ms(self, ms: i64) -> Instant {
            let d = Duration::from_millis(ms.unsigned_abs());
            if ms >= 0 {
                self + d
            } else {
                self - d
            }
        }
    }
}
