//! Replay with timings: throughput (one clock read pair around the whole replay) and per-operation
//! latency (one pair around each operation, into an HdrHistogram per operation kind).
//!
//! # Why two passes
//! A clock read pair (`std::time::Instant`, the vDSO `clock_gettime` on Linux) costs tens of
//! nanoseconds, the same order as a cheap book operation. Reading it around every operation would
//! inflate ops/s, and inflate fast engines more than slow ones, so throughput comes from an untimed
//! replay of the whole workload into a fresh engine, and the percentiles from a second replay into
//! another fresh engine with per-operation reads. The percentiles therefore include one clock pair's
//! cost ([`clock_pair_overhead_ns`] measures it so a reader can subtract it); ratios of ops/s do not.
//!
//! Nothing here asserts a timing: results are printed by the harness binaries only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::engine::{BenchBook, BookOutcome};
use crate::workload::{Op, OpKind};

/// Highest latency a histogram records (10 s); longer samples are clamped to it.
pub const LATENCY_NS_MAX: u64 = 10_000_000_000;
/// Significant figures kept by each histogram.
pub const HISTOGRAM_SIGNIFICANT_FIGURES: u8 = 3;
/// Clock read pairs sampled to estimate the clock's own cost.
pub const CLOCK_SAMPLES: usize = 200_000;

/// A latency histogram in nanoseconds, 1 ns .. [`LATENCY_NS_MAX`].
///
/// # Panics
/// Never with the constant bounds above (checked by a test).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, HISTOGRAM_SIGNIFICANT_FIGURES)
        .expect("constant histogram bounds are valid")
}

/// Records `nanos` (clamped to 1 ..= [`LATENCY_NS_MAX`]).
#[inline(always)]
pub fn record_ns(histogram: &mut Histogram<u64>, nanos: u64) {
    histogram.saturating_record(nanos.clamp(1, LATENCY_NS_MAX));
}

/// Median cost of two back-to-back `Instant::now()` reads, in nanoseconds.
pub fn clock_pair_overhead_ns() -> u64 {
    let mut histogram = latency_histogram();
    for _ in 0..CLOCK_SAMPLES {
        let start = Instant::now();
        let end = black_box(Instant::now());
        record_ns(&mut histogram, end.duration_since(start).as_nanos() as u64);
    }
    histogram.value_at_quantile(0.5)
}

/// Result of one untimed-per-op replay.
#[derive(Debug, Clone)]
pub struct ThroughputRun {
    /// Wall time of the whole replay (engine construction excluded).
    pub elapsed: Duration,
    /// Operations replayed.
    pub ops_count: usize,
    /// The engine's state afterwards.
    pub outcome: BookOutcome,
}

impl ThroughputRun {
    /// Operations per second.
    pub fn ops_per_s(&self) -> f64 {
        self.ops_count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Builds an engine with `make` (untimed), replays `ops` into it with one clock pair around the
/// whole replay, and reads its outcome (untimed).
pub fn throughput<B: BenchBook>(make: impl FnOnce() -> B, ops: &[Op]) -> ThroughputRun {
    let mut book = make();
    let start = Instant::now();
    for op in ops {
        book.apply(black_box(op));
    }
    let elapsed = start.elapsed();
    ThroughputRun {
        elapsed,
        ops_count: ops.len(),
        outcome: book.outcome(),
    }
}

/// Per-kind latency histograms of one replay.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    /// One histogram per [`OpKind`], indexed by [`OpKind::index`].
    pub by_kind: Vec<Histogram<u64>>,
    /// The engine's state afterwards.
    pub outcome: BookOutcome,
}

impl LatencyRun {
    /// The histogram of one kind.
    pub fn kind(&self, kind: OpKind) -> &Histogram<u64> {
        &self.by_kind[kind.index()]
    }
}

/// Builds an engine with `make`, replays `ops` reading the clock around each operation, and reads
/// its outcome.
pub fn latency<B: BenchBook>(make: impl FnOnce() -> B, ops: &[Op]) -> LatencyRun {
    let mut by_kind: Vec<Histogram<u64>> = OpKind::ALL.iter().map(|_| latency_histogram()).collect();
    let mut book = make();
    for op in ops {
        let start = Instant::now();
        book.apply(black_box(op));
        let nanos = start.elapsed().as_nanos() as u64;
        record_ns(&mut by_kind[op.kind().index()], nanos);
    }
    LatencyRun {
        by_kind,
        outcome: book.outcome(),
    }
}

/// The median of `values` (the mean of the middle two for an even count).
///
/// # Panics
/// If `values` is empty.
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::{latency_histogram, median, record_ns};

    #[test]
    fn histogram_bounds_and_clamping() {
        let mut histogram = latency_histogram();
        record_ns(&mut histogram, 0);
        record_ns(&mut histogram, u64::MAX);
        assert_eq!(histogram.len(), 2);
        assert_eq!(histogram.min(), 1);
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
