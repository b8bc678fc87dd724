//! The pieces of `boursed`, the exchange daemon: the only crate with threads, sockets, clocks and pinning.
//!
//! Built so far:
//! - [`ring`], the SPSC ring between stages;
//! - [`agent`], stages as agents and the `shared` / `pinned` runners (threading is configuration);
//! - [`config`], the TOML configuration with its embedded default, validation and conversions;
//! - [`market_data`], the market-data stage (MoldUDP64 A/B, re-requests) and [`snapshot`], its snapshot server.
//!
//! The pipeline itself (sessions, sequencer, matching, journal, market data, admin) is issue 5.

pub mod agent;
pub mod config;
pub mod market_data;
pub mod msg;
pub mod ring;
pub mod snapshot;
pub mod stats;
