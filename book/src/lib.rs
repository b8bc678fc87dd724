//! The matching engine of bourse: sans-IO, deterministic, price-time priority.
//!
//! `apply(command, now) -> events`: the engine owns the books, the order arena and the token table; it
//! reads no clock, socket or random number, so the same commands give byte-identical events.
//! It does not own wire formats (`bourse-protocol`) or durability (`bourse-journal`).
#![forbid(unsafe_code)]
