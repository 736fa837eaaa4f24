//! Rate limiting for log lines about bad input, so a flood of garbage costs a
//! counter increment per packet and at most a few lines per second.

use std::time::{Duration, Instant};

/// Allows `burst` events per `window`; counts what it suppressed.
#[derive(Debug)]
pub struct RateLimit {
    window: Duration,
    burst: u32,
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(window: Duration, burst: u32) -> Self {
        Self {
            window,
            burst,
            start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` if this event may be logged, with `n` events suppressed since
    /// the last one logged; `None` if it must be suppressed.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.start {
            Some(start) if now.duration_since(start) < self.window => {}
            _ => {
                self.start = Some(now);
                self.used = 0;
            }
        }
        if self.used < self.burst {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_suppresses_then_reports() {
        let t0 = Instant::now();
        let mut rl = RateLimit::new(Duration::from_secs(1), 2);
        assert_eq!(rl.check(t0), Some(0));
        assert_eq!(rl.check(t0), Some(0));
        assert_eq!(rl.check(t0), None);
        assert_eq!(rl.check(t0), None);
        assert_eq!(rl.check(t0 + Duration::from_secs(1)), Some(2));
    }
}
