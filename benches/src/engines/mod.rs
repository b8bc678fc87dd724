//! One [`BenchBook`](crate::engine::BenchBook) adapter per engine in the side-by-side benchmark.
//!
//! Peers are the order books on crates.io that run the common subset (pinned exactly in the root
//! `Cargo.toml`): `lobster` 0.7.0, `orderbook-rs` 0.15.3 and `matchcore` 0.4.0; and bourse-book itself.

pub mod bourse;
pub mod lobster;
pub mod matchcore;
pub mod orderbook_rs;
