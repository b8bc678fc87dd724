//! The matching engine of bourse: sans-IO, deterministic, price-time priority.
//!
//! The engine owns the books, the order arena and the (login, token) table; it reads no clock, socket
//! or random number, so the same commands give byte-identical events. It does not own wire formats
//! (`bourse-protocol`) or durability (`bourse-journal`).
//!
//! # API
//! ```
//! use bourse_book::{Command, Engine, EngineConfig, Event};
//! # fn config() -> EngineConfig { bourse_book::workload::demo_config(2, 4) }
//! let mut engine = Engine::new(config()).expect("valid config");
//! let mut events: Vec<Event> = Vec::with_capacity(1024); // pre-size: no allocation while applying
//! # let command = Command::ExpireDue;
//! engine.apply(1_000, &command, &mut events);             // now_ns, command, sink
//! ```
//! - [`Engine::new`] validates an [`EngineConfig`] and allocates every table once.
//! - [`Engine::apply`]`(now_ns, &Command, &mut impl EventSink)` applies one sequenced command; events
//!   carry `now_ns` as their timestamp. `Vec<Event>` is an [`EventSink`].
//! - [`record`]: stable little-endian encoding of [`Command`] and [`Event`] (the journal's payload).
//! - [`Engine::snapshot`] / [`Engine::restore`] / [`Engine::state_hash`]: state to bytes and back.
//! - [`workload`]: a seeded command-stream generator for tests and benchmarks.
//!
//! # Semantics
//! `../shared/reference/decisions.md` and `docs/protocol.md`; the scenario fixtures in
//! `book/tests/scenarios/` show every rule as commands in, events out.
//!
//! # Invariants (checked by the property tests after every command)
//! The book is never crossed; open quantities are conserved; orders of a level are in FIFO order;
//! order references and match numbers strictly increase and are never reused.
#![forbid(unsafe_code)]

pub mod command;
pub mod config;
mod engine;
pub mod event;
pub mod record;
mod tokens;
pub mod types;
pub mod workload;

pub use command::{Command, EnterOrder, MassCancelScope, ReplaceOrder};
pub use config::{EngineConfig, FirmConfig, InstrumentConfig, LoginConfig, StpMode};
pub use engine::{Engine, RestoreError};
pub use event::{Event, EventSink, FnSink};
pub use types::{Lots, Side, Ticks};
