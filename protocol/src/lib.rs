//! Wire formats of bourse, sans-IO: bytes in, typed messages out, and back.
//!
//! This crate owns every byte layout that crosses a socket:
//! - [`soupbintcp`]: SoupBinTCP 4.0 session packets and an incremental stream decoder;
//! - [`ouch`]: OUCH 4.2 order-entry messages (inbound and outbound);
//! - [`itch`]: ITCH 5.0 market-data messages, and the GLIMPSE-style snapshot end marker;
//! - [`moldudp64`]: MoldUDP64 packets, a packet builder and a receiver gap tracker;
//! - [`fields`]: the primitive field types shared by all of them (space-padded ASCII, prices);
//! - [`reason`]: the reject and cancel reason letters bourse sends, in one place;
//! - [`admin`]: the admin endpoint's line-delimited JSON request and reply types (serde derives only).
//!
//! It does not own sockets, clocks, threads or the meaning of an order (that is `bourse-book`).
//!
//! # Invariants
//! - Decoding never panics: every malformed input is a typed error.
//! - Encoding writes into a caller's buffer and never allocates.
//! - Integers on the wire are big-endian, as the Nasdaq specifications define them.
//!
//! The byte tables are in `docs/protocol.md`.
#![forbid(unsafe_code)]

#[macro_use]
mod letters;

pub mod admin;
pub mod fields;
pub mod itch;
pub mod journaled;
pub mod moldudp64;
pub mod ouch;
pub mod reason;
pub mod soupbintcp;

/// Copies one field's bytes to `offset` in `dst`: the building block of the in-place encoders
/// ([`ouch::Message::encode_in_place`], `itch::*::encode_in_place`). Inlined with a constant offset and length,
/// so the bounds check folds away and the field is stored straight from a register.
#[inline(always)]
pub(crate) fn write_field<const N: usize>(dst: &mut [u8; N], offset: usize, bytes: &[u8]) {
    dst[offset..offset + bytes.len()].copy_from_slice(bytes);
}
