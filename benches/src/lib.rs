//! Shared pieces of bourse's benchmarks: workloads and baselines that the criterion benches and the
//! end-to-end harness use. Each benchmark stands beside a baseline measured in the same run.
//!
//! # The side-by-side book benchmark (issue 3)
//! - [`workload`]: a fixed-seed stream of operations on the subset every engine supports, generated
//!   against the [`model`] (a naive reference book) so that it only does what all engines agree on.
//! - [`engine`]: the [`BenchBook`](engine::BenchBook) adapter trait and the
//!   [`BookOutcome`](engine::BookOutcome) every engine must reproduce (same depth per level, same traded
//!   volume, same trade count).
//! - [`engines`]: the adapters for bourse-book and each peer crate.
//! - [`measure`]: replay with timings (throughput and per-operation latency histograms).
//! - [`full_mix`]: "our full mix", bourse-book alone on every command kind it offers.
//!
//! Timings live only in the harness binaries (`src/bin`), never in tests: the tests check that every
//! engine did the same matching.

pub mod engine;
pub mod engines;
pub mod full_mix;
pub mod measure;
pub mod model;
pub mod rng;
pub mod workload;
