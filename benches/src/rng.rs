//! Draw helpers over the book crate's deterministic generator ([`SplitMix64`], reused rather than
//! duplicated): the same seed gives the same workload on every machine and run. Never used on a
//! measured path (workloads are generated before any engine runs).

pub use bourse_book::workload::SplitMix64;

/// Bounded draws the workload generator needs.
pub trait Draw {
    /// A value in `low..=high`.
    ///
    /// # Panics
    /// If `low > high` (a programmer error).
    fn between(&mut self, low: u64, high: u64) -> u64;

    /// True with probability `percent / 100`.
    fn percent(&mut self, percent: u64) -> bool;
}

impl Draw for SplitMix64 {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "between({low}, {high}) is empty");
        low + self.below(high - low + 1)
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::{Draw, SplitMix64};

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut rng = SplitMix64(1);
        let mut seen = [false; 5];
        for _ in 0..1_000 {
            let value = rng.between(3, 7);
            assert!((3..=7).contains(&value));
            seen[(value - 3) as usize] = true;
        }
        assert!(seen.iter().all(|hit| *hit));
        assert!(!(0..100).any(|_| rng.percent(0)));
        assert!((0..100).all(|_| rng.percent(100)));
    }
}
