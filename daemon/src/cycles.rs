//! The sequencer's per-command clock: the CPU's cycle counter, scaled to nanoseconds.
//!
//! The core stamps every command (the ITCH and OUCH timestamps, and the matching stage's samples). A
//! monotonic clock read (`clock_gettime` through the vDSO) costs ~27 ns here and, more to the point,
//! begins with an `lfence`: it waits for every earlier instruction, so each command's stamp drained the
//! out-of-order window of the previous command's cache misses (8 % of the pipeline thread at saturation
//! in a profile, for one read per command). `rdtsc` alone does not wait.
//!
//! The counter is used only between two anchors: the core anchors once per `do_work` (one monotonic and
//! one wall-clock read, as before), and a command's stamp is the anchor's time plus the counter's ticks
//! since, scaled. The scale is measured from the monotonic clock itself: the first anchor is the base,
//! and later anchors recompute ticks per nanosecond over the whole time since the base (at doubling
//! intervals, from 10 ms), so its error shrinks as the daemon runs. Each calibration read is a counter
//! read on either side of the monotonic read, and is dropped when the two are far apart (the thread was
//! descheduled in between). Until a scale exists, or without an invariant counter (one that runs at a
//! constant rate in every power state: CPUID `0x8000_0007` EDX bit 8) or off x86-64, a stamp is a
//! monotonic clock read, as it was.

use std::time::Instant;

/// The first calibration waits this long after the base, nanoseconds.
const CALIBRATE_FIRST_NS: u64 = 10_000_000;
/// A calibration read whose two counter reads lie further apart than this is dropped (ticks; ~20 us
/// at 3 GHz, against ~30 ns when the thread is not interrupted).
const BRACKET_TICKS_MAX: u64 = 1 << 16;

/// A clock anchored once per batch of commands and read by cycle counter in between.
#[derive(Debug)]
pub struct CycleClock {
    /// Whether the counter is invariant (otherwise every read is a monotonic clock read).
    counter: bool,
    /// The calibration base: a monotonic time and the counter beside it.
    base: Option<(Instant, u64)>,
    /// Nanoseconds since `base` at the last calibration (the next one waits until twice that).
    calibrated_ns: u64,
    /// Nanoseconds per tick, 32.32 fixed point; 0 until calibrated.
    scale: u64,
    /// The current anchor.
    anchor: Instant,
    anchor_ticks: u64,
}

impl Default for CycleClock {
    fn default() -> CycleClock {
        CycleClock::new()
    }
}

impl CycleClock {
    /// A clock anchored now, not yet calibrated.
    pub fn new() -> CycleClock {
        let counter = invariant_counter();
        let mut clock = CycleClock {
            counter,
            base: None,
            calibrated_ns: 0,
            scale: 0,
            anchor: Instant::now(),
            anchor_ticks: 0,
        };
        clock.anchor();
        clock
    }

    /// Anchors the clock at now (one monotonic clock read, two counter reads) and calibrates when due;
    /// returns the anchor's monotonic time.
    pub fn anchor(&mut self) -> Instant {
        if !self.counter {
            self.anchor = Instant::now();
            return self.anchor;
        }
        let before = ticks();
        let now = Instant::now();
        let after = ticks();
        self.anchor = now;
        self.anchor_ticks = before / 2 + after / 2;
        if after.wrapping_sub(before) > BRACKET_TICKS_MAX {
            return now;
        }
        match self.base {
            None => self.base = Some((now, self.anchor_ticks)),
            Some((base, base_ticks)) => {
                let ns = now.saturating_duration_since(base).as_nanos() as u64;
                if ns >= CALIBRATE_FIRST_NS.max(self.calibrated_ns.saturating_mul(2))
                    && let Some(scale) = scale_q32(ns, self.anchor_ticks.wrapping_sub(base_ticks))
                {
                    self.scale = scale;
                    self.calibrated_ns = ns;
                }
            }
        }
        now
    }

    /// Nanoseconds from the anchor to now: the counter's ticks since the anchor, scaled, once
    /// calibrated; a monotonic clock read before that.
    #[inline]
    pub fn since_anchor_ns(&self) -> u64 {
        if self.scale == 0 {
            return Instant::now().saturating_duration_since(self.anchor).as_nanos() as u64;
        }
        ticks_to_ns(ticks().saturating_sub(self.anchor_ticks), self.scale)
    }

    /// Whether stamps are read from the cycle counter (calibrated and invariant).
    pub fn calibrated(&self) -> bool {
        self.scale != 0
    }
}

/// Nanoseconds per tick in 32.32 fixed point from `ns` nanoseconds over `ticks` ticks; `None` when the
/// counter did not advance or the result is out of range.
fn scale_q32(ns: u64, ticks: u64) -> Option<u64> {
    if ticks == 0 {
        return None;
    }
    let scale = (u128::from(ns) << 32) / u128::from(ticks);
    u64::try_from(scale).ok().filter(|&s| s != 0)
}

/// `ticks` scaled by `scale` (32.32 fixed point) to nanoseconds, saturating.
#[inline]
fn ticks_to_ns(ticks: u64, scale: u64) -> u64 {
    u64::try_from((u128::from(ticks) * u128::from(scale)) >> 32).unwrap_or(u64::MAX)
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[allow(unsafe_code)]
fn ticks() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU and has no preconditions.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn ticks() -> u64 {
    0
}

/// Whether the CPU reports an invariant time-stamp counter.
#[cfg(target_arch = "x86_64")]
fn invariant_counter() -> bool {
    use std::arch::x86_64::__cpuid;
    let max_extended = __cpuid(0x8000_0000).eax;
    max_extended >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_counter() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_scale_is_nanoseconds_per_tick_in_fixed_point() {
        // 3 GHz: a third of a nanosecond per tick.
        let scale = scale_q32(1_000_000_000, 3_000_000_000).unwrap();
        assert_eq!(scale, (1u64 << 32) / 3);
        assert_eq!(ticks_to_ns(3_000_000_000, scale), 999_999_999);
        assert_eq!(ticks_to_ns(0, scale), 0);
        // 1 GHz exactly, and a slow 25 MHz counter.
        assert_eq!(ticks_to_ns(123_456_789, scale_q32(10, 10).unwrap()), 123_456_789);
        assert_eq!(ticks_to_ns(25, scale_q32(1_000, 25).unwrap()), 1_000);
        // No ticks, or a scale out of range, gives no scale.
        assert_eq!(scale_q32(1_000, 0), None);
        assert_eq!(scale_q32(u64::MAX, 1), None);
        assert_eq!(scale_q32(0, 1_000), None);
        // Saturates rather than wrapping.
        assert_eq!(ticks_to_ns(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn before_calibration_a_stamp_is_the_monotonic_time_since_the_anchor() {
        let mut clock = CycleClock::new();
        assert!(!clock.calibrated());
        clock.anchor();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.since_anchor_ns() >= 2_000_000);
        assert!(!clock.calibrated(), "calibrates only 10 ms after the base");
    }

    #[test]
    fn a_calibrated_clock_agrees_with_the_monotonic_clock() {
        let mut clock = CycleClock::new();
        if !clock.counter {
            return; // no invariant counter: every stamp is a monotonic read (the test above)
        }
        // Anchor until calibrated (a descheduled calibration read is dropped and retried).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !clock.calibrated() {
            assert!(Instant::now() < deadline, "never calibrated");
            std::thread::sleep(Duration::from_millis(11));
            clock.anchor();
        }
        // Over 50 ms the counter's reading and the monotonic clock's agree within 2 %: a wrong scale
        // (ticks per second taken as nanoseconds per tick, a factor of ~3 either way) fails.
        // The counter is read between two monotonic reads, so a pause between reads only widens the
        // interval it must fall in.
        let anchor = clock.anchor();
        std::thread::sleep(Duration::from_millis(50));
        let before = anchor.elapsed().as_nanos() as u64;
        let by_counter = clock.since_anchor_ns();
        let after = anchor.elapsed().as_nanos() as u64;
        assert!(
            by_counter >= before - before / 50 && by_counter <= after + after / 50,
            "counter {by_counter} ns against the clock's {before}..{after} ns"
        );
    }
}
