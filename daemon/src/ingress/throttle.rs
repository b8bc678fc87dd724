//! The per-session throttle of `docs/protocol.md` 2.8: a token bucket plus an excess window.
//!
//! The bucket holds `throttle_burst_max` units, is full at login and refills continuously at
//! `throttle_msgs_per_s`; every OUCH message takes one unit when one is there. A message that finds the
//! bucket empty is *excess*: the session layer turns an Enter or Replace into a throttle reject and lets a
//! Cancel or Modify through. More than `throttle_excess_max` excess messages within one second (a window
//! that opens at the first excess message) end the connection.
//!
//! # Units
//! Units are kept scaled by [`UNIT_SCALE`] (one unit = 10^9), so that a refill of `elapsed_ns * rate` is
//! exact integer arithmetic; additions saturate and the level is capped at the burst.

/// One message's worth of bucket, in scaled units.
pub(crate) const UNIT_SCALE: u64 = 1_000_000_000;
/// The excess window, nanoseconds.
pub(crate) const EXCESS_WINDOW_NS: u64 = 1_000_000_000;

/// What the throttle says about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate.
    Pass,
    /// Over the rate (bucket empty): reject an Enter/Replace, let a Cancel/Modify through.
    Excess,
    /// Far over the rate: disconnect.
    Disconnect,
}

/// One session's bucket and excess window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Throttle {
    level_scaled: u64,
    capacity_scaled: u64,
    rate_per_s: u64,
    last_ns: u64,
    excess_window_start_ns: u64,
    excess_count: u32,
    excess_max: u32,
}

impl Throttle {
    /// A full bucket at `now_ns`.
    pub(crate) fn new(rate_per_s: u32, burst_max: u32, excess_max: u32, now_ns: u64) -> Throttle {
        let capacity_scaled = u64::from(burst_max).saturating_mul(UNIT_SCALE);
        Throttle {
            level_scaled: capacity_scaled,
            capacity_scaled,
            rate_per_s: u64::from(rate_per_s),
            last_ns: now_ns,
            excess_window_start_ns: 0,
            excess_count: 0,
            excess_max,
        }
    }

    /// Accounts for one message arriving at `now_ns`.
    pub(crate) fn take(&mut self, now_ns: u64) -> Verdict {
        if now_ns > self.last_ns {
            let refill = (now_ns - self.last_ns).saturating_mul(self.rate_per_s);
            self.level_scaled = self.level_scaled.saturating_add(refill).min(self.capacity_scaled);
            self.last_ns = now_ns;
        }
        if self.level_scaled >= UNIT_SCALE {
            self.level_scaled -= UNIT_SCALE;
            return Verdict::Pass;
        }
        if self.excess_count == 0 || now_ns.saturating_sub(self.excess_window_start_ns) >= EXCESS_WINDOW_NS {
            self.excess_window_start_ns = now_ns;
            self.excess_count = 0;
        }
        self.excess_count += 1;
        if self.excess_count > self.excess_max {
            Verdict::Disconnect
        } else {
            Verdict::Excess
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_excess_then_disconnect_within_one_window() {
        let mut t = Throttle::new(10, 3, 2, 0);
        let verdicts: Vec<_> = (0..6).map(|_| t.take(0)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Excess,
                Verdict::Excess,
                Verdict::Disconnect
            ]
        );
    }

    #[test]
    fn refills_at_the_rate_and_caps_at_the_burst() {
        let mut t = Throttle::new(10, 2, 100, 0);
        assert_eq!(t.take(0), Verdict::Pass);
        assert_eq!(t.take(0), Verdict::Pass);
        assert_eq!(t.take(0), Verdict::Excess);
        // 10 per second: one unit every 100 ms.
        assert_eq!(t.take(99_000_000), Verdict::Excess);
        assert_eq!(t.take(100_000_000), Verdict::Pass);
        // A long pause refills only up to the burst.
        assert_eq!(t.take(100_000_000_000), Verdict::Pass);
        assert_eq!(t.take(100_000_000_000), Verdict::Pass);
        assert_eq!(t.take(100_000_000_000), Verdict::Excess);
    }

    #[test]
    fn the_excess_window_restarts_after_a_second() {
        let mut t = Throttle::new(1, 1, 2, 0);
        assert_eq!(t.take(0), Verdict::Pass);
        assert_eq!(t.take(1), Verdict::Excess);
        assert_eq!(t.take(2), Verdict::Excess);
        // A new window opens one second after the first excess message; by then a unit is back too.
        assert_eq!(t.take(EXCESS_WINDOW_NS + 1), Verdict::Pass);
        assert_eq!(t.take(EXCESS_WINDOW_NS + 2), Verdict::Excess);
        assert_eq!(t.take(EXCESS_WINDOW_NS + 3), Verdict::Excess);
        assert_eq!(t.take(EXCESS_WINDOW_NS + 4), Verdict::Disconnect);
    }
}
