//! The pieces of `boursed`, the exchange daemon: the only crate with threads, sockets, clocks and pinning.
//!
//! The pipeline (docs/ARCHITECTURE.md):
//! ```text
//! TCP --> [ingress] --Request--> [core: sequencer, matching, journal] --ToFeed--> [market_data] --> UDP A/B
//!            ^                                  |
//!            +------------ToSession-------------+   (released only after the journal holds them)
//! ```
//! - [`ingress`]: every order-entry TCP session (SoupBinTCP 4.0, OUCH 4.2 decode, throttle, replay);
//! - [`core`]: sequencer + matching ([`machine`], [`outputs`]) + group-commit journal, start-up recovery;
//!   [`cycles`]: its per-command clock;
//! - [`checkpointer`]: a replica of the machine that follows the released journal and writes checkpoints;
//! - [`market_data`]: MoldUDP64 on groups A and B, re-request server, snapshot server ([`snapshot`]);
//! - [`admin`]: the line-JSON admin endpoint; [`stats`]: what stages publish for it;
//! - [`msg`]: the ring records; [`ring`]: the SPSC ring; [`agent`]: stages as agents and the
//!   `shared` / `pinned` runners; [`config`]: the TOML configuration; [`run`]: start-up to shutdown;
//! - [`huge_pages`]: the global allocator that puts the large tables on transparent huge pages.

pub mod admin;
pub mod agent;
pub mod checkpointer;
pub mod config;
pub mod core;
pub mod cycles;
pub mod huge_pages;
pub mod ingress;
pub mod machine;
pub mod market_data;
pub mod msg;
pub mod outputs;
pub mod ring;
pub mod run;
pub mod snapshot;
pub mod stats;
pub mod trades;
