//! Time for the I/O shells: the one place that decides how wake-ups line up.
//!
//! Sessions' timers are rounded up to a shared grid of [`TICK`] so that the
//! sessions of a shard wake together: one executor wake-up serves them all
//! instead of parking and waking io_uring once per session. SRT's own timers
//! (ACK every 10 ms, NAK, keep-alive) tolerate this; sending is paced by
//! srt-protocol from elapsed time, so a late tick sends what is due.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Granularity of session wake-ups.
pub const TICK: Duration = Duration::from_millis(1);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The first grid point at or after `deadline`.
pub fn on_tick(deadline: Instant) -> Instant {
    let base = epoch();
    let since = deadline.saturating_duration_since(base).as_nanos();
    let tick = TICK.as_nanos();
    let ticks = since.div_ceil(tick);
    base + Duration::from_nanos((ticks * tick) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_a_shared_grid() {
        let a = Instant::now() + Duration::from_micros(1300);
        let b = a + Duration::from_micros(500);
        let (ta, tb) = (on_tick(a), on_tick(b));
        assert!(ta >= a && ta - a < TICK);
        assert!(tb >= b && tb - b < TICK);
        assert_eq!(on_tick(ta), ta);
        // Deadlines within one tick share it.
        let c = ta - Duration::from_micros(100);
        assert_eq!(on_tick(c), ta);
    }
}
