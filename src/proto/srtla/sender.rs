//! SRTLA sender core: registers a group with an SRTLA receiver over several
//! links, keeps the links alive, and spreads the SRT packets of one local SRT
//! caller over the links that are up.
//!
//! Sans-IO: datagrams and the current time go in, [`Output`]s come out;
//! randomness (for the group id) is passed in. The shell owns the sockets.
//!
//! # Registration
//! REG1 (a fresh random 256-byte id) goes out on one link; the receiver
//! answers REG2 with the full id (our first half, its second half). We then
//! send REG2 on every link, and each link that gets REG3 is up. A link that
//! hears nothing for [`SenderConfig::link_timeout`] goes down and retries
//! REG2 every [`SenderConfig::retry`]. REG_NGP (the receiver forgot the
//! group) starts over with a fresh REG1.
//!
//! # Scheduling
//! Each link has a congestion window (packets × [`WINDOW_SCALE`]) and a
//! bounded log of the data sequence numbers in flight on it. A packet goes to
//! the up link with the best `window / (in_flight + 1)`, so shares follow the
//! windows and links with a long round trip (more in flight per packet/s)
//! get less. Windows grow when the receiver confirms packets (SRTLA ACK) and
//! shrink for packets lost on the link; see the `GROW_*`/`SHRINK_*`
//! constants for the reasoning.
//!
//! A loss is charged to a link only when SRT reported the packet lost (NAK)
//! *and* the link's own SRTLA ACKs show the receiver got later packets on it
//! but not that one. SRT alone cannot tell: with links of different delays
//! it reports packets that are merely late on the slower link, which would
//! starve every link slower than the fastest. See `InFlight`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;

use super::packet::{self, GroupId, ID_LEN, ID_SENDER_PART};

/// Windows are fixed-point: packets × this.
pub const WINDOW_SCALE: u32 = 1000;
/// The smallest window: a link never drops out of the schedule entirely, so
/// it can earn its window back.
pub const WINDOW_MIN: u32 = WINDOW_SCALE;
/// The window of a link that has just come up for the first time.
pub const WINDOW_START: u32 = 20 * WINDOW_SCALE;
/// The largest window. Caps how far ahead a clean link can get, so a link
/// that turns bad is brought down to par in a bounded time.
pub const WINDOW_MAX: u32 = 60 * WINDOW_SCALE;
/// Growth per packet the receiver confirms on a link that had at least its
/// window in flight: the link carried all it was given, it can take more.
/// Not applied to links with spare window (cwnd validation, as in TCP): that
/// would reward links for merely being lightly used.
const GROW_FULL: u32 = 30;
/// Growth of every up link's window per SRTLA ACK (one per 10 packets
/// received on some link). It does not depend on the link's own traffic, so
/// a link starved by past loss recovers, and a link losing a fraction `p` of
/// its packets (each costing [`SHRINK_NAK`]) settles where growth and loss
/// balance: at a share of about `GROW_ALL / (10 · SHRINK_NAK · p)` =
/// `1 / (200 p)` of the traffic, e.g. 50% at 1% loss, 5% at 10% loss.
/// With 1000 packets/s a clean link grows by 0.5 packet/s.
const GROW_ALL: u32 = 5;
/// Shrink per packet lost on a link. 0.1 packet: a burst of 50 lost packets
/// costs 5 packets of window; steady loss is weighed against [`GROW_ALL`].
const SHRINK_NAK: u32 = 100;
/// How many in-flight sequence numbers a link remembers. When full, the
/// oldest is forgotten: a cut link reaches it and is starved by its score.
pub const LOG_LEN: usize = 256;
/// Length of an SRT header: shorter packets are not SRT.
const SRT_HEADER: usize = 16;
/// An unconfirmed in-flight entry older than twice the link's smoothed round
/// trip plus this margin (for jitter) stops counting as in flight: it is
/// most likely waiting at the receiver for its SRTLA ACK batch (one ACK per
/// 10 packets) to fill. SRT ACKs normally clear those, but while they stall
/// (an unrecovered loss), such entries would keep a lightly used link's
/// score down, so it would never get the packets that confirm them:
/// starvation. An entry SRT reported lost goes stale only once the link was
/// heard from since it was sent: a live lossy link is not locked out by
/// losses waiting to be settled, while a cut link (it hears nothing, and SRT
/// reports its packets lost within a round trip) keeps counting them and is
/// starved. The round trip comes from SRTLA ACKs, so it includes the link's
/// queueing delay under load.
const STALE_MARGIN: Duration = Duration::from_millis(50);
/// The same, for a link without a round-trip sample yet.
const STALE_UNKNOWN_RTT: Duration = Duration::from_secs(1);
/// Sequence numbers are 31 bits.
const SEQ_MASK: u32 = 0x7FFF_FFFF;

/// Timing of registration, keep-alives and link timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// A link that heard nothing for this long is down.
    pub link_timeout: Duration,
    /// Keep-alive interval on up links (their echo proves the link works).
    pub keepalive: Duration,
    /// REG2 retry interval on down links, and the first REG1 retry delay.
    pub retry: Duration,
    /// The longest delay between REG1 attempts (the delay doubles from
    /// `retry`), and the pause after a link's REG2 was refused.
    pub retry_max: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            link_timeout: Duration::from_secs(4),
            keepalive: Duration::from_secs(1),
            retry: Duration::from_secs(1),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// What the sender asks its shell to do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `data` on link `link`.
    Link { link: usize, data: Bytes },
    /// Send an SRT packet from the receiver to the local SRT caller.
    Caller(Bytes),
    /// Something worth logging.
    Note(Note),
}

/// State changes worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The receiver accepted the group (REG2 came back).
    Registered,
    /// The receiver no longer knows the group (REG_NGP); registering again.
    GroupLost,
    /// A link got REG3 and carries traffic.
    LinkUp { link: usize },
    /// A link stopped carrying traffic.
    LinkDown { link: usize, reason: &'static str },
    /// The receiver refused a registration packet on a link.
    Refused { link: usize, reason: &'static str },
}

/// One link's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    pub up: bool,
    /// Packets × [`WINDOW_SCALE`].
    pub window: u32,
    pub in_flight: usize,
    /// SRT packets sent (not counting SRTLA's own packets).
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Packets lost on this link: reported lost by SRT, and not confirmed
    /// by the receiver while a later packet on the link was.
    pub naks: u64,
    pub last_heard: Option<Instant>,
    /// Smoothed round trip (keep-alive echoes and SRTLA ACKs).
    pub rtt: Option<Duration>,
}

/// Caller packets that were not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// No link was up.
    pub no_link: u64,
    /// Not an SRT packet (too short, or an SRTLA type).
    pub not_srt: u64,
}

/// 31-bit wrapping sequence number arithmetic.
mod seq {
    use super::SEQ_MASK;

    /// `a - b` as a signed distance on the 31-bit circle.
    pub fn diff(a: u32, b: u32) -> i32 {
        ((a.wrapping_sub(b) << 1) as i32) >> 1
    }

    /// Whether `a` comes before `b`.
    pub fn before(a: u32, b: u32) -> bool {
        diff(a, b) < 0
    }

    /// Whether `s` is in `first..=last`.
    pub fn within(s: u32, first: u32, last: u32) -> bool {
        diff(s, first) >= 0 && diff(last, s) >= 0
    }

    /// The sequence number in four big-endian bytes.
    pub fn read(b: &[u8]) -> Option<u32> {
        let b: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b) & SEQ_MASK)
    }
}

/// One packet a link carried.
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u32,
    sent: Instant,
    /// SRT reported it lost (maybe only late: see [`InFlight`]).
    reported_lost: bool,
    /// SRT acknowledged it: this copy or another arrived.
    delivered: bool,
    /// Unconfirmed for too long (see [`STALE_MARGIN`]).
    stale: bool,
}

impl Entry {
    /// Whether it counts as in flight: not stale, and not delivered or
    /// reported lost and not settled yet (a cut link's packets are delivered
    /// by retransmission elsewhere, but must keep counting, or the link is
    /// never starved).
    fn counts(&self) -> bool {
        !self.stale && (!self.delivered || self.reported_lost)
    }
}

/// The data packets a link carried and the receiver has not confirmed (by
/// SRTLA ACK) yet, in the order sent: a ring of at most [`LOG_LEN`] entries,
/// allocated once. Entries SRT acknowledged stay until settled, but no
/// longer count as in flight unless reported lost.
///
/// An SRT NAK does not prove a loss on this link: with links of different
/// delays, SRT reports packets that are merely late (reordering between
/// links), and NAKs and ACKs overtake each other on their way back. So a NAK
/// only marks the entry, and the link's own SRTLA ACKs settle it: a path
/// keeps order, so an entry older than a packet the receiver confirmed on
/// the same link will not be confirmed any more. If it was reported lost, it
/// was lost here; a reported entry that is itself confirmed was only late,
/// and costs the link nothing. Keeping acknowledged entries until then makes
/// a confirmation find the right copy of a retransmitted sequence number.
#[derive(Debug)]
struct InFlight {
    ring: VecDeque<Entry>,
    /// Entries that [count](Entry::counts): the packets in flight.
    live: usize,
}

impl InFlight {
    fn new() -> Self {
        Self {
            ring: VecDeque::with_capacity(LOG_LEN),
            live: 0,
        }
    }

    /// Packets in flight.
    fn len(&self) -> usize {
        self.live
    }

    fn push(&mut self, seq: u32, now: Instant) {
        if self.ring.len() == LOG_LEN {
            if let Some(old) = self.ring.pop_front() {
                self.live -= usize::from(old.counts());
            }
        }
        self.ring.push_back(Entry {
            seq,
            sent: now,
            reported_lost: false,
            delivered: false,
            stale: false,
        });
        self.live += 1;
    }

    /// Change one entry, keeping `live` right.
    fn update(live: &mut usize, e: &mut Entry, change: impl FnOnce(&mut Entry)) {
        let before = e.counts();
        change(e);
        *live = *live + usize::from(e.counts()) - usize::from(before);
    }

    /// Mark stale the entries sent `after` ago or earlier; those reported
    /// lost only if sent before the link was last `heard` from. Entries are
    /// in the order sent, so this looks at the old ones only.
    fn expire(&mut self, now: Instant, after: Duration, heard: Option<Instant>) {
        for e in self.ring.iter_mut() {
            if now.saturating_duration_since(e.sent) < after {
                break;
            }
            if !e.reported_lost || heard.is_some_and(|h| e.sent < h) {
                Self::update(&mut self.live, e, |e| e.stale = true);
            }
        }
    }

    /// The receiver got `seq` on this link: forget it, and the entries sent
    /// before it that are settled now (reported lost: lost; delivered or
    /// stale: their SRTLA ACK went missing). `None` if `seq` is not here,
    /// else how many were lost, and when `seq` was sent.
    fn confirm(&mut self, seq: u32) -> Option<(usize, Instant)> {
        let i = self.ring.iter().position(|e| e.seq == seq)?;
        let sent = self.ring[i].sent;
        let (mut lost, mut gone_live, mut k) = (0, 0, 0);
        self.ring.retain(|e| {
            let (older, this) = (k < i, k == i);
            k += 1;
            let settled = this || (older && (e.reported_lost || e.delivered || e.stale));
            if settled {
                lost += usize::from(older && e.reported_lost);
                gone_live += usize::from(e.counts());
            }
            !settled
        });
        self.live -= gone_live;
        Some((lost, sent))
    }

    /// SRT reported `first..=last` lost: mark those not delivered (a NAK
    /// overtaken by an ACK is stale).
    fn report_lost(&mut self, first: u32, last: u32) {
        for e in self.ring.iter_mut().filter(|e| !e.delivered) {
            if seq::within(e.seq, first, last) {
                Self::update(&mut self.live, e, |e| e.reported_lost = true);
            }
        }
    }

    /// SRT acknowledged everything before `ack`.
    fn delivered_before(&mut self, ack: u32) {
        for e in self.ring.iter_mut().filter(|e| !e.delivered) {
            if seq::before(e.seq, ack) {
                Self::update(&mut self.live, e, |e| e.delivered = true);
            }
        }
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.live = 0;
    }
}

#[derive(Debug)]
struct Link {
    up: bool,
    /// REG2 of the current group sent, not answered yet: only then is a
    /// REG_NGP on this link about the current group.
    reg2_pending: bool,
    next_reg2: Instant,
    next_keepalive: Instant,
    last_heard: Option<Instant>,
    /// The number in the last keep-alive, to match its echo.
    keepalive_nonce: u32,
    keepalive_sent: Option<Instant>,
    /// Smoothed round trip, from keep-alive echoes and SRTLA ACKs.
    rtt: Option<Duration>,
    window: u32,
    in_flight: InFlight,
    packets_sent: u64,
    bytes_sent: u64,
    naks: u64,
}

impl Link {
    fn new(now: Instant) -> Self {
        Self {
            up: false,
            reg2_pending: false,
            next_reg2: now,
            next_keepalive: now,
            last_heard: None,
            keepalive_nonce: 0,
            keepalive_sent: None,
            rtt: None,
            window: WINDOW_START,
            in_flight: InFlight::new(),
            packets_sent: 0,
            bytes_sent: 0,
            naks: 0,
        }
    }

    fn rtt_sample(&mut self, sample: Duration) {
        self.rtt = Some(self.rtt.map_or(sample, |rtt| (rtt * 7 + sample) / 8));
    }

    /// How long an unconfirmed packet counts as in flight.
    fn stale_after(&self) -> Duration {
        self.rtt
            .map_or(STALE_UNKNOWN_RTT, |rtt| rtt * 2 + STALE_MARGIN)
    }

    fn grow(&mut self, by: u32) {
        self.window = self.window.saturating_add(by).min(WINDOW_MAX);
    }

    fn shrink(&mut self, by: u32) {
        self.window = self.window.saturating_sub(by).max(WINDOW_MIN);
    }

    fn stats(&self) -> LinkStats {
        LinkStats {
            up: self.up,
            window: self.window,
            in_flight: self.in_flight.len(),
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            naks: self.naks,
            last_heard: self.last_heard,
            rtt: self.rtt,
        }
    }
}

/// The sender side of one SRTLA group.
#[derive(Debug)]
pub struct Sender {
    cfg: SenderConfig,
    links: Vec<Link>,
    /// The REG1 of the registration under way; `None`: make a fresh id at
    /// the next attempt. Kept across retries, so a late REG2 still counts.
    reg1: Option<Bytes>,
    /// The REG2 of the registered group; `Some` exactly when registered.
    reg2: Option<Bytes>,
    next_reg1: Instant,
    reg1_backoff: Duration,
    /// The link for the next REG1 (they take turns, in case one is broken).
    reg1_link: usize,
    dropped: Dropped,
}

impl Sender {
    /// A sender with `links` links, all down; it registers at the first
    /// [`Sender::on_timer`].
    pub fn new(links: usize, cfg: SenderConfig, now: Instant) -> Self {
        Self {
            links: (0..links).map(|_| Link::new(now)).collect(),
            reg1: None,
            reg2: None,
            next_reg1: now,
            reg1_backoff: cfg.retry,
            reg1_link: 0,
            dropped: Dropped::default(),
            cfg,
        }
    }

    pub fn group_registered(&self) -> bool {
        self.reg2.is_some()
    }

    pub fn stats(&self) -> Vec<LinkStats> {
        self.links.iter().map(Link::stats).collect()
    }

    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// An SRT packet from the local SRT caller: send it on the best link.
    pub fn on_caller(&mut self, now: Instant, data: Bytes, out: &mut Vec<Output>) {
        if data.len() < SRT_HEADER || srtla_type(&data).is_some() {
            self.dropped.not_srt += 1;
            return;
        }
        for l in self.links.iter_mut().filter(|l| l.up) {
            let after = l.stale_after();
            l.in_flight.expire(now, after, l.last_heard);
        }
        let Some(i) = self.pick() else {
            self.dropped.no_link += 1;
            return;
        };
        let link = &mut self.links[i];
        if data[0] & 0x80 == 0 {
            if let Some(s) = seq::read(&data) {
                link.in_flight.push(s, now);
            }
        }
        link.packets_sent += 1;
        link.bytes_sent += data.len() as u64;
        out.push(Output::Link { link: i, data });
    }

    /// The up link with the best `window / (in_flight + 1)`, lowest index
    /// on ties.
    fn pick(&self) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, l) in self.links.iter().enumerate().filter(|(_, l)| l.up) {
            let (w, f) = (u64::from(l.window), l.in_flight.len() as u64 + 1);
            match best {
                Some((_, bw, bf)) if w * bf <= bw * f => {}
                _ => best = Some((i, w, f)),
            }
        }
        best.map(|(i, _, _)| i)
    }

    /// A datagram received on link `link`.
    pub fn on_link(&mut self, now: Instant, link: usize, data: Bytes, out: &mut Vec<Output>) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        l.last_heard = Some(now);
        match srtla_type(&data) {
            Some(packet::KEEPALIVE) => self.on_keepalive(now, link, &data),
            Some(packet::ACK) => self.on_srtla_ack(now, link, &data),
            Some(packet::REG2) => self.on_reg2(now, &data, out),
            Some(packet::REG3) => self.on_reg3(now, link, out),
            Some(packet::REG_NGP) => self.on_reg_ngp(now, link, out),
            Some(packet::REG_ERR) => self.on_refused(now, link, "REG_ERR", out),
            Some(packet::REG_NAK) => self.on_refused(now, link, "REG_NAK", out),
            Some(_) => {}
            None => self.on_srt(data, out),
        }
    }

    /// A send or receive on `link` failed (e.g. ECONNREFUSED): the link is
    /// down until a REG2 gets through again.
    pub fn on_link_error(&mut self, now: Instant, link: usize, out: &mut Vec<Output>) {
        let retry = self.cfg.retry;
        if let Some(l) = self.links.get_mut(link) {
            if l.up {
                l.next_reg2 = now + retry;
            }
        }
        self.link_down(link, "socket error", out);
    }

    fn on_keepalive(&mut self, now: Instant, link: usize, data: &[u8]) {
        let l = &mut self.links[link];
        if let (Some(sent), Some(nonce)) = (l.keepalive_sent, data.get(2..6)) {
            if nonce == l.keepalive_nonce.to_be_bytes() {
                l.rtt_sample(now.saturating_duration_since(sent));
                l.keepalive_sent = None;
            }
        }
    }

    /// The receiver got these packets on `link`: they are no longer in
    /// flight, and every up link's window grows a little. The last one made
    /// the receiver send the ACK: a round-trip sample.
    fn on_srtla_ack(&mut self, now: Instant, link: usize, data: &[u8]) {
        let mut last_sent = None;
        for c in data.get(4..).unwrap_or_default().chunks_exact(4) {
            last_sent = seq::read(c).and_then(|s| self.confirm(link, s));
        }
        if let Some(sent) = last_sent {
            self.links[link].rtt_sample(now.saturating_duration_since(sent));
        }
        for l in self.links.iter_mut().filter(|l| l.up) {
            l.grow(GROW_ALL);
        }
    }

    /// The receiver got `s` on `link`. Only that link's log is searched: each
    /// link has its own address, so the receiver acknowledges a packet on the
    /// link that carried it, and with retransmitted duplicates in flight,
    /// taking a copy from another link's log would blur which link lost what.
    /// When `s` was sent, if found.
    fn confirm(&mut self, link: usize, s: u32) -> Option<Instant> {
        let l = &mut self.links[link];
        // Not found: pushed out of the ring, or a duplicate.
        let (lost, sent) = l.in_flight.confirm(s)?;
        if lost > 0 {
            l.naks += lost as u64;
            l.shrink(SHRINK_NAK.saturating_mul(lost as u32));
        }
        let in_flight = l.in_flight.len() as u64 + 1;
        if in_flight * u64::from(WINDOW_SCALE) > u64::from(l.window) {
            l.grow(GROW_FULL);
        }
        Some(sent)
    }

    /// REG2 from the receiver: our group is registered; bring every link in.
    fn on_reg2(&mut self, now: Instant, data: &Bytes, out: &mut Vec<Output>) {
        let ours = self.reg1.as_ref().is_some_and(|reg1| answers(data, reg1));
        if self.reg2.is_some() || !ours {
            return; // a late duplicate, or not about our registration
        }
        let reg2 = data.clone();
        self.reg2 = Some(reg2.clone());
        self.reg1_backoff = self.cfg.retry;
        out.push(Output::Note(Note::Registered));
        for (i, l) in self.links.iter_mut().enumerate() {
            send_reg2(l, i, &reg2, now + self.cfg.retry, out);
        }
    }

    fn on_reg3(&mut self, now: Instant, link: usize, out: &mut Vec<Output>) {
        let keepalive = self.cfg.keepalive;
        let l = &mut self.links[link];
        // A REG3 we did not ask for in this group is stale.
        if self.reg2.is_none() || !(l.reg2_pending || l.up) {
            return;
        }
        l.reg2_pending = false;
        if !l.up {
            l.up = true;
            l.next_keepalive = now + keepalive;
            out.push(Output::Note(Note::LinkUp { link }));
        }
    }

    /// The receiver does not know our group (it restarted, or expired it):
    /// forget it and register a fresh one.
    fn on_reg_ngp(&mut self, now: Instant, link: usize, out: &mut Vec<Output>) {
        if self.reg2.is_none() || !self.links[link].reg2_pending {
            return;
        }
        self.reg2 = None;
        self.reg1 = None;
        self.next_reg1 = now;
        self.reg1_backoff = self.cfg.retry;
        out.push(Output::Note(Note::GroupLost));
        for i in 0..self.links.len() {
            self.link_down(i, "group lost", out);
            self.links[i].reg2_pending = false;
        }
    }

    /// REG_ERR or REG_NAK: during registration the REG1 retry is already
    /// scheduled (with backoff); for a link's REG2, pause that link.
    fn on_refused(&mut self, now: Instant, link: usize, what: &'static str, out: &mut Vec<Output>) {
        let reason = match (self.reg2.is_some(), what) {
            (false, "REG_ERR") => "group registration failed (REG_ERR)",
            (false, _) => "group registration refused, receiver full (REG_NAK)",
            (true, "REG_ERR") => "link registration failed (REG_ERR)",
            (true, _) => "link registration refused, group full (REG_NAK)",
        };
        if self.reg2.is_some() {
            let l = &mut self.links[link];
            if l.up {
                return; // stale: the link is registered
            }
            l.reg2_pending = false;
            l.next_reg2 = now + self.cfg.retry_max;
        }
        out.push(Output::Note(Note::Refused { link, reason }));
    }

    /// An SRT packet from the receiver: learn from ACKs and NAKs, and pass
    /// every SRT packet on to the caller.
    fn on_srt(&mut self, data: Bytes, out: &mut Vec<Output>) {
        if data.len() < SRT_HEADER {
            return;
        }
        if data[0] == 0x80 {
            match data[1] {
                0x02 => self.on_srt_ack(&data),
                0x03 => self.on_srt_nak(&data),
                _ => {}
            }
        }
        out.push(Output::Caller(data));
    }

    /// Everything before the acknowledged sequence number has arrived.
    fn on_srt_ack(&mut self, data: &[u8]) {
        if let Some(ack) = data.get(16..).and_then(seq::read) {
            for l in &mut self.links {
                l.in_flight.delivered_before(ack);
            }
        }
    }

    /// Packets SRT reports lost: mark them where they are in flight; the
    /// links' SRTLA ACKs then tell which were lost and which only late.
    fn on_srt_nak(&mut self, data: &[u8]) {
        let mut words = data[SRT_HEADER..]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        while let Some(w) = words.next() {
            let (first, last) = if w & !SEQ_MASK != 0 {
                match words.next() {
                    Some(last) => (w & SEQ_MASK, last & SEQ_MASK),
                    None => break,
                }
            } else {
                (w, w)
            };
            for l in &mut self.links {
                l.in_flight.report_lost(first, last);
            }
        }
    }

    /// Registration retries, keep-alives and link timeouts due by `now`.
    pub fn on_timer(&mut self, now: Instant, rng: &mut impl RngCore, out: &mut Vec<Output>) {
        self.register(now, rng, out);
        for i in 0..self.links.len() {
            self.link_timer(now, i, out);
        }
    }

    /// Send REG1 if unregistered and it is time.
    fn register(&mut self, now: Instant, rng: &mut impl RngCore, out: &mut Vec<Output>) {
        if self.reg2.is_some() || now < self.next_reg1 {
            return;
        }
        self.next_reg1 = now + self.reg1_backoff;
        self.reg1_backoff = (self.reg1_backoff * 2).min(self.cfg.retry_max);
        if self.links.is_empty() {
            return;
        }
        let reg1 = self.reg1.get_or_insert_with(|| {
            let mut id: GroupId = [0; ID_LEN];
            rng.fill_bytes(&mut id);
            packet::reg1(&id)
        });
        let link = self.reg1_link % self.links.len();
        self.reg1_link = link + 1;
        out.push(Output::Link {
            link,
            data: reg1.clone(),
        });
    }

    fn link_timer(&mut self, now: Instant, i: usize, out: &mut Vec<Output>) {
        let cfg = &self.cfg;
        let l = &mut self.links[i];
        if l.up {
            let heard = l.last_heard.unwrap_or(now);
            if now.saturating_duration_since(heard) >= cfg.link_timeout {
                l.next_reg2 = now;
                self.link_down(i, "timeout", out);
            } else if now >= l.next_keepalive {
                l.next_keepalive = now + cfg.keepalive;
                out.push(Output::Link {
                    link: i,
                    data: keepalive(l, now),
                });
            }
        }
        let l = &mut self.links[i];
        if let Some(reg2) = self.reg2.as_ref().filter(|_| !l.up && now >= l.next_reg2) {
            send_reg2(l, i, reg2, now + self.cfg.retry, out);
        }
    }

    fn link_down(&mut self, link: usize, reason: &'static str, out: &mut Vec<Output>) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        if l.up {
            l.up = false;
            // Its packets are lost or will be acknowledged by SRT anyway; the
            // window stays, so a link that went bad comes back humbly.
            l.in_flight.clear();
            l.keepalive_sent = None;
            out.push(Output::Note(Note::LinkDown { link, reason }));
        }
    }

    /// When [`Sender::on_timer`] next has something to do.
    pub fn next_timeout(&self) -> Instant {
        let registered = self.reg2.is_some();
        self.links
            .iter()
            .filter_map(|l| {
                if l.up {
                    let heard = l.last_heard?;
                    Some(l.next_keepalive.min(heard + self.cfg.link_timeout))
                } else {
                    registered.then_some(l.next_reg2)
                }
            })
            .chain((!registered).then_some(self.next_reg1))
            .min()
            .unwrap_or(self.next_reg1)
    }
}

fn send_reg2(l: &mut Link, i: usize, reg2: &Bytes, next: Instant, out: &mut Vec<Output>) {
    l.reg2_pending = true;
    l.next_reg2 = next;
    out.push(Output::Link {
        link: i,
        data: reg2.clone(),
    });
}

/// Whether `reg2` is a full REG2 whose id starts with our REG1's half.
fn answers(reg2: &[u8], reg1: &[u8]) -> bool {
    let ours = 2..2 + ID_SENDER_PART;
    reg2.len() == 2 + ID_LEN && reg2.get(ours.clone()) == reg1.get(ours)
}

/// A keep-alive with a fresh number, remembered to time its echo.
fn keepalive(l: &mut Link, now: Instant) -> Bytes {
    l.keepalive_nonce = l.keepalive_nonce.wrapping_add(1);
    l.keepalive_sent = Some(now);
    let mut b = BytesMut::with_capacity(6);
    b.put_u16(packet::KEEPALIVE);
    b.put_u32(l.keepalive_nonce);
    b.freeze()
}

/// The SRTLA packet type, if the datagram is an SRTLA packet.
fn srtla_type(data: &[u8]) -> Option<u16> {
    let b: [u8; 2] = data.get(..2)?.try_into().ok()?;
    Some(u16::from_be_bytes(b)).filter(|t| (0x9000..=0x92FF).contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::srtla::groups::{Event, Handle, Limits, Receiver};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    const MS: Duration = Duration::from_millis(1);

    fn addr(link: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, link as u8 + 1], 4000))
    }

    fn data_packet(s: u32) -> Bytes {
        let mut v = vec![0u8; SRT_HEADER + 1316];
        v[..4].copy_from_slice(&s.to_be_bytes());
        Bytes::from(v)
    }

    fn srt_control(ty: u8, words: &[u32]) -> Bytes {
        let mut v = vec![0u8; SRT_HEADER];
        v[0] = 0x80;
        v[1] = ty;
        for w in words {
            v.extend_from_slice(&w.to_be_bytes());
        }
        Bytes::from(v)
    }

    fn srt_ack(next: u32) -> Bytes {
        srt_control(0x02, &[next, 0, 0, 0])
    }

    /// A loss list: single numbers, or ranges with the top bit on the first.
    fn srt_nak(lost: &[(u32, u32)]) -> Bytes {
        let words: Vec<u32> = lost
            .iter()
            .flat_map(|&(a, b)| {
                if a == b {
                    vec![a]
                } else {
                    vec![a | !SEQ_MASK, b]
                }
            })
            .collect();
        srt_control(0x03, &words)
    }

    /// The lost sequence numbers in an SRT NAK (sim ranges are small).
    fn nak_seqs(nak: &[u8]) -> Vec<u32> {
        let mut words = nak[SRT_HEADER..]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let mut seqs = Vec::new();
        while let Some(w) = words.next() {
            if w & !SEQ_MASK != 0 {
                let last = words.next().unwrap();
                seqs.extend((w & SEQ_MASK)..=last);
            } else {
                seqs.push(w);
            }
        }
        seqs
    }

    fn notes(out: &[Output]) -> Vec<Note> {
        out.iter()
            .filter_map(|o| match o {
                Output::Note(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    fn sent(out: &[Output]) -> Vec<(usize, Bytes)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Link { link, data } => Some((*link, data.clone())),
                _ => None,
            })
            .collect()
    }

    fn is_type(data: &[u8], ty: u16) -> bool {
        srtla_type(data) == Some(ty)
    }

    /// A sender whose links are all up, registered by hand.
    fn registered(links: usize) -> (Sender, Instant) {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(1);
        let mut s = Sender::new(links, SenderConfig::default(), t0);
        let mut out = Vec::new();
        s.on_timer(t0, &mut rng, &mut out);
        let (_, reg1) = sent(&out).pop().unwrap();
        let mut reg2 = reg1.to_vec();
        reg2[..2].copy_from_slice(&packet::REG2.to_be_bytes());
        reg2[2 + ID_SENDER_PART..].fill(0x55);
        s.on_link(t0, 0, Bytes::from(reg2), &mut out);
        for l in 0..links {
            s.on_link(t0, l, packet::bare(packet::REG3), &mut out);
        }
        assert!(s.stats().iter().all(|l| l.up));
        (s, t0)
    }

    /// One simulated path: one-way delay, loss of data packets on the way
    /// up, or cut both ways.
    #[derive(Default)]
    struct Path {
        delay: Duration,
        loss: f64,
        cut: bool,
        up: VecDeque<(Instant, Bytes)>,
        down: VecDeque<(Instant, Bytes)>,
    }

    /// The SRT peer behind the receiver, roughly like libsrt: an ACK every
    /// 10 ms, a NAK as soon as a gap shows, and again every 200 ms for what
    /// is still missing.
    #[derive(Default)]
    struct Peer {
        next: u32,
        highest: Option<u32>,
        got: BTreeSet<u32>,
        acked_at: Option<Instant>,
        naked_at: Option<Instant>,
        /// Sends no ACKs (as while a loss goes unrecovered).
        stalled: bool,
    }

    impl Peer {
        /// A data packet arrived; the NAK to send, if it shows a gap.
        fn on_data(&mut self, s: u32) -> Option<Bytes> {
            let gap = match self.highest {
                Some(h) if s > h + 1 => Some(srt_nak(&[(h + 1, s - 1)])),
                _ => None,
            };
            self.highest = Some(self.highest.map_or(s, |h| h.max(s)));
            if s >= self.next {
                self.got.insert(s);
            }
            while self.got.remove(&self.next) {
                self.next += 1;
            }
            gap
        }

        fn missing(&self) -> Vec<(u32, u32)> {
            let Some(h) = self.highest else {
                return Vec::new();
            };
            (self.next..h)
                .filter(|s| !self.got.contains(s))
                .map(|s| (s, s))
                .take(300)
                .collect()
        }
    }

    struct Sim {
        now: Instant,
        rng: StdRng,
        sender: Sender,
        recv: Receiver,
        group: Option<Handle>,
        paths: Vec<Path>,
        peer: Peer,
        next_seq: u32,
        notes: Vec<(Instant, Note)>,
        reg1s: Vec<Bytes>,
        keepalives: Vec<usize>,
        to_caller: usize,
        acc: f64,
    }

    impl Sim {
        fn new(delays_ms: &[u64]) -> Self {
            let now = Instant::now();
            Self {
                now,
                rng: StdRng::seed_from_u64(42),
                sender: Sender::new(delays_ms.len(), SenderConfig::default(), now),
                recv: Receiver::new(Limits::default(), 0),
                group: None,
                paths: delays_ms
                    .iter()
                    .map(|&d| Path {
                        delay: Duration::from_millis(d),
                        ..Path::default()
                    })
                    .collect(),
                peer: Peer::default(),
                next_seq: 0,
                notes: Vec::new(),
                reg1s: Vec::new(),
                keepalives: Vec::new(),
                to_caller: 0,
                acc: 0.0,
            }
        }

        /// Run for `ms` milliseconds with the caller sending `pps` packets/s.
        fn run(&mut self, ms: u64, pps: f64) {
            for _ in 0..ms {
                self.tick(pps);
            }
        }

        fn tick(&mut self, pps: f64) {
            let mut out = Vec::new();
            self.acc += pps / 1000.0;
            while self.acc >= 1.0 {
                self.acc -= 1.0;
                self.next_seq += 1;
                let p = data_packet(self.next_seq);
                self.sender.on_caller(self.now, p, &mut out);
            }
            self.deliver_up();
            for i in 0..self.paths.len() {
                while let Some((_, d)) = self.paths[i]
                    .down
                    .front()
                    .filter(|(t, _)| *t <= self.now)
                    .cloned()
                {
                    self.paths[i].down.pop_front();
                    self.sender.on_link(self.now, i, d, &mut out);
                }
            }
            if self.sender.next_timeout() <= self.now {
                self.sender.on_timer(self.now, &mut self.rng, &mut out);
            }
            self.peer_timers();
            self.handle(out);
            self.now += MS;
        }

        fn deliver_up(&mut self) {
            let mut events = Vec::new();
            for i in 0..self.paths.len() {
                while let Some((_, d)) = self.paths[i]
                    .up
                    .front()
                    .filter(|(t, _)| *t <= self.now)
                    .cloned()
                {
                    self.paths[i].up.pop_front();
                    self.recv
                        .on_datagram(self.now, addr(i), 0, d, &mut self.rng, &mut events);
                }
            }
            self.recv.on_timer(self.now, &mut events);
            for e in events {
                match e {
                    Event::Send { to, data, .. } => self.down(to, data),
                    Event::GroupOpened { group, .. } => self.group = Some(group),
                    Event::Srt { data, .. } => {
                        if let Some(s) = seq::read(&data).filter(|_| data[0] & 0x80 == 0) {
                            if let Some(nak) = self.peer.on_data(s) {
                                self.route(nak);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }

        fn peer_timers(&mut self) {
            let now = self.now;
            let due = |at: Option<Instant>, every: u64| {
                at.is_none_or(|t| now >= t + Duration::from_millis(every))
            };
            if self.peer.highest.is_none() {
                return;
            }
            if due(self.peer.acked_at, 10) && !self.peer.stalled {
                self.peer.acked_at = Some(self.now);
                self.route(srt_ack(self.peer.next));
            }
            if due(self.peer.naked_at, 200) {
                self.peer.naked_at = Some(self.now);
                let missing = self.peer.missing();
                if !missing.is_empty() {
                    self.route(srt_nak(&missing));
                }
            }
        }

        /// An SRT packet from the peer, routed by the receiver.
        fn route(&mut self, pkt: Bytes) {
            let Some(group) = self.group else {
                return;
            };
            let mut to = Vec::new();
            self.recv.route(self.now, group, &pkt, &mut to);
            for (a, _) in to {
                self.down(a, pkt.clone());
            }
        }

        fn down(&mut self, to: SocketAddr, data: Bytes) {
            let Some(i) = (0..self.paths.len()).find(|&i| addr(i) == to) else {
                return;
            };
            let p = &mut self.paths[i];
            if !p.cut {
                p.down.push_back((self.now + p.delay, data));
            }
        }

        /// Act on the sender's outputs, in order (a path keeps order).
        fn handle(&mut self, out: Vec<Output>) {
            let mut out = VecDeque::from(out);
            while let Some(o) = out.pop_front() {
                match o {
                    Output::Link { link, data } => self.up(link, data),
                    Output::Caller(data) => {
                        self.to_caller += 1;
                        if data[..2] == [0x80, 0x03] {
                            let mut more = Vec::new();
                            for s in nak_seqs(&data) {
                                self.sender.on_caller(self.now, data_packet(s), &mut more);
                            }
                            out.extend(more);
                        }
                    }
                    Output::Note(n) => self.notes.push((self.now, n)),
                }
            }
        }

        fn up(&mut self, link: usize, data: Bytes) {
            if is_type(&data, packet::REG1) {
                self.reg1s.push(data.clone());
            }
            if is_type(&data, packet::KEEPALIVE) {
                self.keepalives.push(link);
            }
            let lost = data[0] & 0x80 == 0 && self.rng.gen_bool(self.paths[link].loss);
            let p = &mut self.paths[link];
            if !p.cut && !lost {
                p.up.push_back((self.now + p.delay, data));
            }
        }

        fn packets(&self) -> Vec<u64> {
            self.sender.stats().iter().map(|l| l.packets_sent).collect()
        }

        fn windows(&self) -> Vec<u32> {
            self.sender.stats().iter().map(|l| l.window).collect()
        }

        fn has(&self, note: Note) -> bool {
            self.notes.iter().any(|(_, n)| *n == note)
        }
    }

    fn shares(before: &[u64], after: &[u64]) -> Vec<f64> {
        let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        let total = d.iter().sum::<u64>().max(1) as f64;
        d.iter().map(|&x| x as f64 / total).collect()
    }

    #[test]
    fn registers_against_the_receiver_core() {
        let mut sim = Sim::new(&[20, 25, 30]);
        sim.run(200, 0.0);
        assert!(sim.sender.group_registered());
        assert_eq!(sim.reg1s.len(), 1, "REG1 on one link only");
        assert!(sim.sender.stats().iter().all(|l| l.up));
        assert_eq!(sim.notes[0].1, Note::Registered);
        for link in 0..3 {
            assert!(sim.has(Note::LinkUp { link }));
        }
        assert_eq!(sim.recv.links(sim.group.unwrap()).len(), 3);
    }

    #[test]
    fn data_spreads_over_three_links_and_acks_drain_in_flight() {
        let mut sim = Sim::new(&[20, 20, 20]);
        sim.run(200, 0.0);
        sim.run(10_000, 1000.0);
        let sh = shares(&[0; 3], &sim.packets());
        assert!(sh.iter().all(|&s| (0.28..0.39).contains(&s)), "{sh:?}");
        assert!(sim.peer.next + 30 >= sim.next_seq, "all delivered");
        for l in sim.sender.stats() {
            assert_eq!(l.naks, 0);
            assert!(l.in_flight < 40, "{l:?}");
            assert!(l.window >= WINDOW_START);
        }
    }

    #[test]
    fn srtla_and_srt_acks_shrink_in_flight() {
        let (mut s, t0) = registered(3);
        let mut out = Vec::new();
        for n in 100..130 {
            s.on_caller(t0, data_packet(n), &mut out);
        }
        let on0: Vec<u32> = sent(&out)
            .iter()
            .filter(|(l, _)| *l == 0)
            .filter_map(|(_, d)| seq::read(d))
            .collect();
        assert_eq!(on0.len(), 10);
        assert_eq!(s.stats()[0].in_flight, 10);
        let window = s.stats()[0].window;
        s.on_link(
            t0,
            0,
            packet::ack(&on0.clone().try_into().unwrap()),
            &mut out,
        );
        assert_eq!(s.stats()[0].in_flight, 0);
        assert!(s.stats().iter().all(|l| l.window > WINDOW_START));
        assert!(s.stats()[0].window >= window);
        s.on_link(t0, 1, srt_ack(120), &mut out);
        let left: usize = s.stats().iter().map(|l| l.in_flight).sum();
        let on0_late = on0.iter().filter(|&&n| n >= 120).count();
        assert_eq!(left, 10 - on0_late, "the rest of 120..130 still in flight");
        assert!(
            matches!(out.last(), Some(Output::Caller(_))),
            "ACK forwarded"
        );
    }

    #[test]
    fn partial_ack_batches_starve_no_link_while_srt_acks_stall() {
        let mut sim = Sim::new(&[1, 1, 1]);
        sim.peer.stalled = true;
        sim.run(200, 0.0);
        sim.run(2_000, 300.0);
        // One packet lost on link 1: its batch at the receiver stays short.
        sim.paths[1].loss = 1.0;
        sim.run(10, 300.0);
        sim.paths[1].loss = 0.0;
        let before = sim.packets();
        sim.run(20_000, 300.0);
        let sh = shares(&before, &sim.packets());
        assert!(sh.iter().all(|&s| s > 0.2), "{sh:?}");
    }

    #[test]
    fn a_lossy_link_is_not_locked_out_by_unsettled_losses() {
        let mut sim = Sim::new(&[1, 1, 1]);
        sim.peer.stalled = true;
        sim.paths[1].loss = 0.10;
        sim.run(200, 0.0);
        sim.run(20_000, 1000.0);
        for _ in 0..3 {
            let before = sim.packets();
            sim.run(10_000, 1000.0);
            let sh = shares(&before, &sim.packets());
            assert!(sh[1] > 0.003 && sh[1] < sh[0].min(sh[2]), "{sh:?}");
        }
    }

    #[test]
    fn healthy_links_grow_to_the_max_under_steady_load() {
        let mut sim = Sim::new(&[20, 30, 40]);
        sim.run(200, 0.0);
        sim.run(90_000, 1000.0);
        assert_eq!(
            sim.windows(),
            vec![WINDOW_MAX; 3],
            "{:?}",
            sim.sender.stats()
        );
    }

    #[test]
    fn a_cut_link_is_starved_marked_down_and_comes_back() {
        let mut sim = Sim::new(&[20, 20, 20]);
        sim.run(200, 0.0);
        sim.run(5_000, 1000.0);
        sim.paths[2].cut = true;
        let cut_at = sim.now;
        sim.run(300, 1000.0);
        let before = sim.packets();
        sim.run(2_000, 1000.0);
        let sh = shares(&before, &sim.packets());
        assert!(sh[2] < 0.02, "cut link starved: {sh:?}");
        sim.run(3_000, 1000.0);
        let down = sim
            .notes
            .iter()
            .find(|(_, n)| matches!(n, Note::LinkDown { link: 2, .. }))
            .expect("link 2 down");
        assert_eq!(
            down.1,
            Note::LinkDown {
                link: 2,
                reason: "timeout"
            }
        );
        let after = down.0 - cut_at;
        assert!(after >= Duration::from_secs(4) && after < Duration::from_millis(4600));
        assert!(!sim.sender.stats()[2].up);
        assert!(sim.sender.stats()[..2].iter().all(|l| l.up));
        sim.paths[2].cut = false;
        let back_at = sim.now;
        sim.run(1_100, 1000.0);
        assert!(sim.sender.stats()[2].up, "re-registered within 1 s");
        assert!(sim
            .notes
            .iter()
            .any(|&(t, n)| t >= back_at && n == Note::LinkUp { link: 2 }));
        let before = sim.packets();
        sim.run(20_000, 1000.0);
        let sh = shares(&before, &sim.packets());
        assert!(sh[2] > 0.01, "earns its share back: {sh:?}");
        assert!(sim.peer.next + 50 >= sim.next_seq, "the stream survived");
    }

    #[test]
    fn a_lossy_link_carries_a_smaller_share() {
        let mut sim = Sim::new(&[20, 20, 20]);
        sim.paths[0].loss = 0.10;
        sim.run(200, 0.0);
        sim.run(10_000, 1000.0);
        let before = sim.packets();
        sim.run(20_000, 1000.0);
        let sh = shares(&before, &sim.packets());
        assert!(sh[0] < 0.5 * sh[1].min(sh[2]), "{sh:?}");
        let w = sim.windows();
        assert!(w[0] < w[1] && w[0] < w[2], "{w:?}");
        assert!(sim.sender.stats()[0].naks > 0);
        assert_eq!(sim.sender.stats()[1].naks, 0);
    }

    #[test]
    fn reg_ngp_after_a_receiver_restart_registers_a_fresh_group() {
        let mut sim = Sim::new(&[20, 25, 30]);
        sim.run(200, 0.0);
        sim.run(2_000, 500.0);
        sim.recv = Receiver::new(Limits::default(), 0);
        sim.group = None;
        let restart = sim.now;
        sim.run(8_000, 500.0);
        let lost = sim
            .notes
            .iter()
            .find(|(_, n)| *n == Note::GroupLost)
            .expect("REG_NGP seen")
            .0;
        // Silence for link_timeout, then REG2 gets REG_NGP one round trip later.
        assert!(
            lost - restart < Duration::from_millis(4200),
            "{:?}",
            lost - restart
        );
        assert_eq!(sim.reg1s.len(), 2);
        assert_ne!(
            sim.reg1s[0][..2 + ID_SENDER_PART],
            sim.reg1s[1][..2 + ID_SENDER_PART]
        );
        assert!(sim.sender.group_registered());
        assert!(sim.sender.stats().iter().all(|l| l.up));
        assert_eq!(sim.recv.links(sim.group.unwrap()).len(), 3);
        assert!(sim.peer.next + 30 >= sim.next_seq, "data flows again");
    }

    #[test]
    fn idle_links_stay_up_on_keepalives_and_measure_rtt() {
        let mut sim = Sim::new(&[20, 25, 30]);
        sim.run(200, 0.0);
        sim.keepalives.clear();
        sim.run(30_000, 0.0);
        assert!(sim.sender.stats().iter().all(|l| l.up));
        for link in 0..3 {
            let n = sim.keepalives.iter().filter(|&&l| l == link).count();
            assert!((29..=31).contains(&n), "link {link}: {n} keep-alives");
        }
        let rtts: Vec<_> = sim.sender.stats().iter().map(|l| l.rtt.unwrap()).collect();
        assert_eq!(rtts[0], Duration::from_millis(40));
        assert_eq!(rtts[2], Duration::from_millis(60));
    }

    #[test]
    fn refusals_are_reported_and_reg1_backs_off() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(3);
        let mut s = Sender::new(2, SenderConfig::default(), t0);
        let mut out = Vec::new();
        let mut attempts = Vec::new();
        let mut seen = Vec::new();
        for ms in (0..25_000).step_by(100) {
            let now = t0 + Duration::from_millis(ms);
            out.clear();
            s.on_timer(now, &mut rng, &mut out);
            for (link, d) in sent(&out) {
                assert!(is_type(&d, packet::REG1));
                attempts.push((ms, link));
                s.on_link(now, link, packet::bare(packet::REG_ERR), &mut out);
            }
            seen.extend(notes(&out));
        }
        let times: Vec<u64> = attempts.iter().map(|a| a.0).collect();
        assert_eq!(times, vec![0, 1000, 3000, 7000, 12000, 17000, 22000]);
        let links: Vec<usize> = attempts.iter().map(|a| a.1).collect();
        assert_eq!(&links[..4], &[0, 1, 0, 1], "REG1 links take turns");
        assert!(seen.contains(&Note::Refused {
            link: 0,
            reason: "group registration failed (REG_ERR)"
        }));
        assert!(!s.group_registered());
    }

    #[test]
    fn a_refused_link_pauses_and_stale_ngp_is_ignored() {
        let (mut s, t0) = registered(2);
        let mut rng = StdRng::seed_from_u64(4);
        let mut out = Vec::new();
        // Stale REG_NGP on an up link: the group stays.
        s.on_link(t0, 0, packet::bare(packet::REG_NGP), &mut out);
        assert!(s.group_registered());
        s.on_link_error(t0, 1, &mut out);
        assert_eq!(
            notes(&out),
            vec![Note::LinkDown {
                link: 1,
                reason: "socket error"
            }]
        );
        out.clear();
        let t1 = t0 + Duration::from_secs(1);
        s.on_timer(t1, &mut rng, &mut out);
        assert!(sent(&out)
            .iter()
            .any(|(l, d)| *l == 1 && is_type(d, packet::REG2)));
        s.on_link(t1, 1, packet::bare(packet::REG_NAK), &mut out);
        out.clear();
        s.on_timer(t1 + Duration::from_secs(2), &mut rng, &mut out);
        assert!(!sent(&out).iter().any(|(l, _)| *l == 1), "paused");
        s.on_timer(t1 + Duration::from_secs(5), &mut rng, &mut out);
        assert!(sent(&out)
            .iter()
            .any(|(l, d)| *l == 1 && is_type(d, packet::REG2)));
    }

    #[test]
    fn caller_packets_without_links_or_not_srt_are_dropped() {
        let t0 = Instant::now();
        let mut s = Sender::new(3, SenderConfig::default(), t0);
        let mut out = Vec::new();
        s.on_caller(t0, data_packet(1), &mut out);
        assert!(out.is_empty());
        let (mut s, t0) = registered(1);
        s.on_caller(t0, Bytes::from_static(&[0x92, 0x00, 0, 0]), &mut out);
        let mut fake = data_packet(1).to_vec();
        fake[..2].copy_from_slice(&packet::REG1.to_be_bytes());
        s.on_caller(t0, Bytes::from(fake), &mut out);
        assert!(sent(&out).is_empty());
        assert_eq!(
            s.dropped(),
            Dropped {
                no_link: 0,
                not_srt: 2
            }
        );
    }

    #[test]
    fn sequence_numbers_wrap_at_31_bits() {
        assert!(seq::before(SEQ_MASK, 0));
        assert!(seq::before(SEQ_MASK - 5, 3));
        assert!(!seq::before(3, SEQ_MASK - 5));
        assert!(seq::within(0, SEQ_MASK - 1, 1));
        assert!(!seq::within(2, SEQ_MASK - 1, 1));
        let (mut s, t0) = registered(1);
        let mut out = Vec::new();
        for n in (SEQ_MASK - 5..=SEQ_MASK).chain(0..6) {
            s.on_caller(t0, data_packet(n), &mut out);
        }
        assert_eq!(s.stats()[0].in_flight, 12);
        // Reported lost: MASK-1 ..= 0 (a range across the wrap).
        s.on_link(t0, 0, srt_nak(&[(SEQ_MASK - 1, 0)]), &mut out);
        assert_eq!(s.stats()[0].in_flight, 12, "only marked");
        // Everything before 2 arrived (copies of the marked ones, perhaps):
        // the marked ones still count until this link settles them.
        s.on_link(t0, 0, srt_ack(2), &mut out);
        assert_eq!(s.stats()[0].in_flight, 7, "MASK-1, MASK, 0 and 2..6");
        s.on_link(t0, 0, srt_ack(SEQ_MASK - 100), &mut out);
        assert_eq!(s.stats()[0].in_flight, 7, "an old ACK changes nothing");
        // The receiver got 3 on this link: the marked ones before it were lost.
        s.on_link(
            t0,
            0,
            packet::ack(&[3, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
            &mut out,
        );
        let l = &s.stats()[0];
        assert_eq!((l.in_flight, l.naks), (3, 3));
        assert_eq!(l.window, WINDOW_START - 3 * SHRINK_NAK + GROW_ALL);
    }

    #[test]
    fn a_nak_for_a_late_packet_costs_nothing_a_real_loss_does() {
        let (mut s, t0) = registered(2);
        let mut out = Vec::new();
        for n in 1..=4 {
            s.on_caller(t0, data_packet(n), &mut out);
        }
        // Link 0 carries 1 and 3, link 1 carries 2 and 4.
        let on: Vec<usize> = sent(&out).iter().map(|(l, _)| *l).collect();
        assert_eq!(on, vec![0, 1, 0, 1]);
        // SRT reports 1 and 2 lost (3 arrived before them).
        s.on_link(t0, 0, srt_nak(&[(1, 2)]), &mut out);
        // Link 0 delivered 1 after all (it was late); link 1 lost 2.
        s.on_link(
            t0,
            0,
            packet::ack(&[1, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
            &mut out,
        );
        s.on_link(
            t0,
            1,
            packet::ack(&[4, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            &mut out,
        );
        let st = s.stats();
        assert_eq!((st[0].naks, st[0].in_flight), (0, 0));
        assert_eq!((st[1].naks, st[1].in_flight), (1, 0));
        assert_eq!(st[0].window, WINDOW_START + 2 * GROW_ALL);
        assert_eq!(st[1].window, WINDOW_START - SHRINK_NAK + 2 * GROW_ALL);
    }

    #[test]
    fn the_in_flight_log_is_bounded() {
        let (mut s, t0) = registered(1);
        let mut out = Vec::new();
        for n in 0..1000 {
            s.on_caller(t0, data_packet(n), &mut out);
            out.clear();
        }
        assert_eq!(s.stats()[0].in_flight, LOG_LEN);
        assert_eq!(s.stats()[0].packets_sent, 1000);
    }

    #[test]
    fn random_datagrams_never_panic() {
        let (mut s, t0) = registered(3);
        let mut rng = StdRng::seed_from_u64(9);
        let mut out = Vec::new();
        let types = [
            0x9000u16, 0x9100, 0x9200, 0x9201, 0x9202, 0x9210, 0x9211, 0x9212, 0x8002, 0x8003,
        ];
        for i in 0..50_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) / 10);
            let len = rng.gen_range(0..600);
            let mut v = vec![0u8; len];
            rng.fill_bytes(&mut v);
            if len >= 2 && i % 2 == 0 {
                let t = types[rng.gen_range(0..types.len())];
                v[..2].copy_from_slice(&t.to_be_bytes());
            }
            let link = rng.gen_range(0..5);
            match i % 3 {
                0 => s.on_caller(now, Bytes::from(v), &mut out),
                1 => s.on_link(now, link, Bytes::from(v), &mut out),
                _ => s.on_link_error(now, link, &mut out),
            }
            if i % 100 == 0 {
                s.on_timer(now, &mut rng, &mut out);
                let _ = s.next_timeout();
            }
            out.clear();
        }
        for l in s.stats() {
            assert!(l.in_flight <= LOG_LEN);
            assert!((WINDOW_MIN..=WINDOW_MAX).contains(&l.window));
        }
    }
}
