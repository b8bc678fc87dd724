//! The pieces of `boursed`, the exchange daemon: the only crate with threads, sockets, clocks and pinning.
//!
//! Built so far:
//! - [`ring`], the SPSC ring between stages;
//! - [`agent`], stages as agents and the `shared` / `pinned` runners (threading is configuration);
//! - [`config`], the TOML configuration with its embedded default, validation and conversions.
//!
//! The pipeline itself (sessions, sequencer, matching, journal, market data, admin) is issue 5.

pub mod admin;
pub mod agent;
pub mod config;
pub mod core;
pub mod ingress;
pub mod machine;
pub mod msg;
pub mod outputs;
pub mod ring;
pub mod stats;
