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
//! - [`feed`]: a book rebuilt only from ITCH 5.0 messages (feed receivers, the snapshot server).
//! - [`workload`]: a seeded command-stream generator for tests and benchmarks.
//!
//! # Semantics
//! `../shared/reference/decisions.md` and `docs/protocol.md`; the scenario fixtures in
//! `book/tests/scenarios/` show every rule as commands in, events out. Where those leave room, the
//! engine decides as follows (each choice is covered by a fixture):
//! - Display: `Y` (displayed), `A` (displayed and attributed: ITCH `F`), `P` (post-only, displayed);
//!   anything else is rejected `D`, and so is post-only with IOC (a post-only market order is IOC or
//!   rejected `V`). A Replace may not change the attribution (`A` <-> `Y`/`P`): rejected `D`.
//! - The order of the pre-trade checks is the contract's (docs/protocol.md 3.3, "Check order"; the
//!   `engine` module header maps it); the first failing check gives the reason. An unknown login (which
//!   the daemon never sends) is rejected `L` without consuming the token; a full token table is
//!   rejected `Y` without consuming it.
//! - Price collar: a limit price outside ±`collar_bps` of the last trade (or the reference price) is
//!   rejected `K` on either side; the band is computed once, when the order arrives. A market order walks
//!   up to the band's edge; its remainder is canceled `K` if liquidity remained beyond the edge, `I` if the
//!   book ran out. A market order's notional is checked at the band edge of its side.
//! - Open-order limit and order-arena capacity apply to orders that can rest (not IOC); the level
//!   capacity check is conservative: an order needing a new level on a full side is rejected `Y` even if
//!   it would have traded in full; a Replace of an order alone at its level counts that level as free.
//! - Replace: `shares` is the replacement's open size; the replacement inherits side, instrument and firm,
//!   takes a new order reference, and is checked like a new order (a market price is rejected `V`); an
//!   invalid replace is rejected with the replacement token, which it consumes, and the order stays.
//! - Cancel: the intended size is rounded down to the lot; at or above the open size it is ignored.
//!   Modify: a side letter of the other side (or no side), zero, an increase or an off-lot size is
//!   refused with [`Event::CancelRejected`] (OUCH Cancel Reject `I`) and the order is unchanged.
//! - Self-trade prevention uses the incoming order's firm mode, and applies only between orders of the
//!   same firm. Minimum quantity is checked once, against what can trade after self-trade prevention.
//! - Kill switch on: the firm's resting orders are canceled `S`, then new orders and replaces are
//!   rejected `a` until it is switched off. Mass cancels (kill switch, cancel-on-disconnect `L`) and end
//!   of day cancel instrument by instrument (configuration order), bids then asks, best price first,
//!   FIFO within a level. The engine counts resting orders per login and per firm: a login or firm with
//!   none costs its mass cancel nothing, and the walk stops at the scope's last order (cost: up to the
//!   resting orders in front of it; `benches/benches/book_mass_cancel.rs`).
//! - End of day cancels every resting order (reason `E`, also the expiring ones) and clears the timers;
//!   start of day (only after an end of day) forgets the day's tokens. Halt keeps resting orders, rejects
//!   new orders and replaces `H`, and lets cancels, reduces and modifies through.
//! - Bust: a trade of the current day can be busted once; it changes neither the book nor the collar's
//!   last price. The engine keeps no copy of past trades: [`Command::BustTrade`] names the trade as its
//!   Executed event did (the daemon reads that from the journal). A match number not given yet, one of an
//!   earlier day or already busted, an unknown symbol, or a day's `busts_max` reached: ignored.
//!
//! # Performance notes
//! The day-unique (login, token) set is built for increasing tokens: a token above the login's
//! highest is new without a probe and is appended to the login's sorted log; resends are a binary
//! search of that log; out-of-order tokens go to a small exceptions set (see `tokens`: correct for
//! any order). Cancel, replace and modify find live orders through a small live-order index
//! (`live`). Level lookup is O(1) through a price-indexed window around the reference price. `Engine::new`
//! touches every pre-sized table so that the trading day takes no page faults. Run
//! `cargo run --release -p bourse-book --example throughput` for figures beside a naive baseline.
//!
//! # Invariants (checked by the property tests after every command)
//! The book is never crossed; open quantities are conserved; orders of a level are in FIFO order;
//! order references and match numbers strictly increase and are never reused.
#![forbid(unsafe_code)]

pub mod command;
pub mod config;
mod engine;
pub mod event;
pub mod feed;
mod live;
pub mod record;
pub mod snapshot;
mod tokens;
pub mod types;
pub mod workload;

pub use command::{Command, EnterOrder, MassCancelScope, ReplaceOrder};
pub use config::{EngineConfig, FirmConfig, InstrumentConfig, LoginConfig, StpMode};
pub use engine::{Engine, RestoreError};
pub use event::{Event, EventSink, FnSink};
pub use types::{Lots, Side, Ticks};
