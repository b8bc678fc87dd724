//! Shared pieces of bourse's benchmarks: workloads and baselines that the criterion benches and the
//! end-to-end harness use. Each benchmark stands beside a baseline measured in the same run.
