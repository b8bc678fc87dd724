//! MoldUDP64: the UDP framing of the market-data feed, a packet builder for the sender and a gap tracker for
//! receivers.
//!
//! This module owns the MoldUDP64 byte layouts (byte tables in `docs/protocol.md`, section "MoldUDP64"), the
//! sender's [`PacketBuilder`], the receiver's [`Packet`] reader and the receiver's sans-IO [`GapTracker`]. It does
//! not own sockets, multicast groups, the re-request server's storage (the journal) or clocks: callers pass
//! `now_ns`.
//!
//! # Layout
//! - Downstream header (20 bytes): Session (10 ASCII), Sequence Number (u64, number of the first message in
//!   the packet), Message Count (u16).
//! - Then Message Count blocks: Message Length (u16), message bytes. Block `i` has sequence number
//!   `Sequence Number + i`.
//! - Heartbeat: Message Count 0, Sequence Number = the next number to be sent.
//! - End of Session: Message Count 0xFFFF, Sequence Number = the next number; no blocks.
//! - Request (receiver to re-request server): Session, Sequence Number (first wanted), Requested Message
//!   Count (u16): the same 20-byte shape as a header.
//!
//! # Invariants
//! - The builder never splits a message across packets, never writes a packet larger than its payload limit
//!   (the whole UDP payload, header included; default [`PAYLOAD_BYTES_DEFAULT`]), and numbers messages without
//!   gaps. It allocates its buffer once, at construction.
//! - [`Packet::decode`] validates every block before handing any out, and never panics: bad input is a typed
//!   [`PacketError`].
//! - The [`GapTracker`] delivers each sequence number at most once and in increasing order, and only ever
//!   requests numbers it has not delivered and knows to exist. It keeps no message copies: a packet that
//!   arrives ahead of a gap is not delivered and is fetched again through the request.
//!
//! # Limits
//! - [`PAYLOAD_BYTES_MAX`]: the largest UDP payload (65,507 bytes); [`MESSAGE_COUNT_MAX`]: 0xFFFE messages per
//!   packet and per request (0xFFFF means End of Session).

use core::mem::size_of;
use core::ops::Range;

use thiserror::Error;
use zerocopy::byteorder::big_endian::{U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::fields::Alpha;
use crate::itch;

/// MoldUDP64 session name: 10 ASCII characters, space-padded; bourse changes it every trading day.
pub type Session = Alpha<10>;

/// Length of the downstream header and of a request packet.
pub const HEADER_LEN: usize = 20;
/// Length of a message block's length prefix.
pub const BLOCK_LEN_PREFIX: usize = 2;
/// Default payload limit of a packet (header included): fits an Ethernet MTU with IP and UDP headers.
pub const PAYLOAD_BYTES_DEFAULT: usize = 1400;
/// The largest UDP payload over IPv4.
pub const PAYLOAD_BYTES_MAX: usize = 65_507;
/// The largest Message Count of a data packet, and the largest Requested Message Count.
pub const MESSAGE_COUNT_MAX: u16 = 0xFFFE;
/// The Message Count that marks End of Session.
pub const END_OF_SESSION_COUNT: u16 = 0xFFFF;

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HeaderWire {
    session: Session,
    sequence_number: U64,
    message_count: U16,
}

const _: () = assert!(size_of::<HeaderWire>() == HEADER_LEN);
const _: () = assert!(PAYLOAD_BYTES_DEFAULT <= PAYLOAD_BYTES_MAX);
const _: () = assert!(HEADER_LEN + BLOCK_LEN_PREFIX + itch::MESSAGE_LEN_MAX <= PAYLOAD_BYTES_DEFAULT);

/// What a downstream packet is, from its Message Count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Count 1..=0xFFFE: messages follow.
    Data,
    /// Count 0: no messages; Sequence Number is the next to be sent.
    Heartbeat,
    /// Count 0xFFFF: the session is over; Sequence Number is the next (never sent) number.
    EndOfSession,
}

/// A downstream packet header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketHeader {
    /// Session name.
    pub session: Session,
    /// Sequence number of the first message (data) or of the next message (heartbeat, end of session).
    pub sequence_number: u64,
    /// Message Count (0: heartbeat, 0xFFFF: end of session).
    pub message_count: u16,
}

impl PacketHeader {
    /// The 20 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out.copy_from_slice(
            HeaderWire {
                session: self.session,
                sequence_number: U64::new(self.sequence_number),
                message_count: U16::new(self.message_count),
            }
            .as_bytes(),
        );
        out
    }

    fn from_wire(w: &HeaderWire) -> Self {
        Self {
            session: w.session,
            sequence_number: w.sequence_number.get(),
            message_count: w.message_count.get(),
        }
    }

    /// What the packet is, from its Message Count.
    pub const fn kind(&self) -> PacketKind {
        match self.message_count {
            0 => PacketKind::Heartbeat,
            END_OF_SESSION_COUNT => PacketKind::EndOfSession,
            _ => PacketKind::Data,
        }
    }

    /// A heartbeat packet: count 0, `next_sequence_number` = the next number to be sent.
    pub const fn heartbeat(session: Session, next_sequence_number: u64) -> Self {
        Self {
            session,
            sequence_number: next_sequence_number,
            message_count: 0,
        }
    }

    /// An End of Session packet: count 0xFFFF, `next_sequence_number` = the next (never sent) number.
    pub const fn end_of_session(session: Session, next_sequence_number: u64) -> Self {
        Self {
            session,
            sequence_number: next_sequence_number,
            message_count: END_OF_SESSION_COUNT,
        }
    }
}

/// A re-request packet (receiver to re-request server, 20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Session name.
    pub session: Session,
    /// First sequence number wanted.
    pub sequence_number: u64,
    /// How many messages are wanted from there (the server may send fewer).
    pub requested_count: u16,
}

impl Request {
    /// The 20 request bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        PacketHeader {
            session: self.session,
            sequence_number: self.sequence_number,
            message_count: self.requested_count,
        }
        .to_bytes()
    }

    /// Decodes a request packet, which is exactly [`HEADER_LEN`] bytes.
    ///
    /// # Errors
    /// [`PacketError::Truncated`] if shorter, [`PacketError::TrailingBytes`] if longer.
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        let header = read_header(bytes)?;
        if bytes.len() > HEADER_LEN {
            return Err(PacketError::TrailingBytes {
                extra: bytes.len() - HEADER_LEN,
            });
        }
        Ok(Self {
            session: header.session,
            sequence_number: header.sequence_number,
            requested_count: header.message_count,
        })
    }

    /// The sequence numbers asked for.
    pub fn range(&self) -> Range<u64> {
        self.sequence_number
            ..self
                .sequence_number
                .saturating_add(u64::from(self.requested_count))
    }
}

/// Why bytes are not a valid MoldUDP64 packet. Decoding returns one of these and never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Shorter than the 20-byte header.
    #[error("MoldUDP64 packet of {len} bytes is shorter than its 20-byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Block `index` runs past the end of the packet (its length prefix or its bytes are cut off): the packet
    /// holds fewer blocks than its Message Count says.
    #[error("MoldUDP64 block {index} of {message_count} is cut off")]
    BlockTruncated {
        /// Zero-based index of the block.
        index: u16,
        /// The Message Count of the header.
        message_count: u16,
    },
    /// Bytes left over after the last block the Message Count announces (or after a heartbeat, end of
    /// session or request): the packet holds more than its count says.
    #[error("{extra} bytes after the last MoldUDP64 block")]
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
    /// Sequence Number + Message Count does not fit in 64 bits.
    #[error("MoldUDP64 sequence number overflows")]
    SequenceOverflow,
}

fn read_header(bytes: &[u8]) -> Result<PacketHeader, PacketError> {
    let Ok((wire, _)) = HeaderWire::read_from_prefix(bytes) else {
        return Err(PacketError::Truncated { len: bytes.len() });
    };
    Ok(PacketHeader::from_wire(&wire))
}

/// A validated downstream packet: its header and its message blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    header: PacketHeader,
    blocks: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes a downstream packet (one UDP payload) and validates every block.
    ///
    /// # Errors
    /// [`PacketError::Truncated`] for less than a header, [`PacketError::BlockTruncated`] if a block is cut off
    /// (fewer blocks than the count), [`PacketError::TrailingBytes`] for bytes after the counted blocks,
    /// [`PacketError::SequenceOverflow`] if the numbers would wrap.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, PacketError> {
        let header = read_header(bytes)?;
        let blocks = &bytes[HEADER_LEN..];
        let count = match header.kind() {
            PacketKind::Data => header.message_count,
            PacketKind::Heartbeat | PacketKind::EndOfSession => 0,
        };
        if header.sequence_number.checked_add(u64::from(count)).is_none() {
            return Err(PacketError::SequenceOverflow);
        }
        let mut offset = 0usize;
        for index in 0..count {
            let cut = PacketError::BlockTruncated {
                index,
                message_count: count,
            };
            let prefix = blocks.get(offset..offset + BLOCK_LEN_PREFIX).ok_or(cut)?;
            let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
            offset += BLOCK_LEN_PREFIX;
            if blocks.len() - offset < len {
                return Err(cut);
            }
            offset += len;
        }
        if offset != blocks.len() {
            return Err(PacketError::TrailingBytes {
                extra: blocks.len() - offset,
            });
        }
        Ok(Self { header, blocks })
    }

    /// The header.
    pub const fn header(&self) -> &PacketHeader {
        &self.header
    }

    /// What the packet is.
    pub const fn kind(&self) -> PacketKind {
        self.header.kind()
    }

    /// The sequence numbers of the messages inside (empty for heartbeat and end of session).
    pub fn sequence_range(&self) -> Range<u64> {
        let count = match self.kind() {
            PacketKind::Data => u64::from(self.header.message_count),
            PacketKind::Heartbeat | PacketKind::EndOfSession => 0,
        };
        // Cannot overflow: checked by `decode`.
        self.header.sequence_number..self.header.sequence_number + count
    }

    /// The sequence number after the packet's messages: the next one the sender will use.
    pub fn next_sequence_number(&self) -> u64 {
        self.sequence_range().end
    }

    /// The messages, in order, with their sequence numbers.
    pub fn messages(&self) -> Messages<'a> {
        Messages {
            blocks: self.blocks,
            next_sequence_number: self.header.sequence_number,
            remaining: self.sequence_range().end - self.header.sequence_number,
        }
    }
}

/// Iterator over the messages of a validated [`Packet`]: `(sequence number, message bytes)`.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    blocks: &'a [u8],
    next_sequence_number: u64,
    remaining: u64,
}

impl<'a> Messages<'a> {
    const EMPTY: Self = Self {
        blocks: &[],
        next_sequence_number: 0,
        remaining: 0,
    };

    /// Skips messages numbered below `sequence_number`.
    fn skip_below(mut self, sequence_number: u64) -> Self {
        while self.remaining > 0 && self.next_sequence_number < sequence_number {
            self.next();
        }
        self
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        // The packet was validated by `Packet::decode`, so every block is whole; `get` keeps this panic-free.
        let prefix = self.blocks.get(..BLOCK_LEN_PREFIX)?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let message = self.blocks.get(BLOCK_LEN_PREFIX..BLOCK_LEN_PREFIX + len)?;
        self.blocks = &self.blocks[BLOCK_LEN_PREFIX + len..];
        let sequence_number = self.next_sequence_number;
        self.next_sequence_number += 1;
        self.remaining -= 1;
        Some((sequence_number, message))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// Why [`PacketBuilder`] did not take a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PushError {
    /// The current packet cannot take this message: flush it and push again.
    #[error("packet full: flush it and push again")]
    Full,
    /// The message cannot fit even in an empty packet under the payload limit.
    #[error("message of {len} bytes can never fit in a packet of {payload_bytes_max} bytes")]
    TooLarge {
        /// Message length.
        len: usize,
        /// The builder's payload limit.
        payload_bytes_max: usize,
    },
}

/// Builds downstream packets for one session: appends message blocks to a fixed buffer, never splitting a
/// message and never exceeding the payload limit, and numbers messages contiguously.
///
/// Use: [`push`](Self::push) (or [`push_itch`](Self::push_itch)) until it returns [`PushError::Full`] (or the
/// batch ends), then [`flush`](Self::flush) and send the bytes it returns on every group.
#[derive(Debug)]
pub struct PacketBuilder {
    session: Session,
    buffer: Box<[u8]>,
    len: usize,
    message_count: u16,
    /// Sequence number of the first message of the packet being built.
    first_sequence_number: u64,
}

impl PacketBuilder {
    /// A builder whose first message will be `next_sequence_number` (1 at the start of a session), with
    /// packets of at most `payload_bytes_max` bytes, header included. Allocates its buffer here, once.
    ///
    /// # Panics
    /// If `payload_bytes_max` is below `HEADER_LEN + BLOCK_LEN_PREFIX + 1` or above [`PAYLOAD_BYTES_MAX`], or
    /// `next_sequence_number` is 0 (programmer errors).
    pub fn new(session: Session, next_sequence_number: u64, payload_bytes_max: usize) -> Self {
        assert!(
            (HEADER_LEN + BLOCK_LEN_PREFIX + 1..=PAYLOAD_BYTES_MAX).contains(&payload_bytes_max),
            "payload_bytes_max {payload_bytes_max} out of range"
        );
        assert!(next_sequence_number >= 1, "MoldUDP64 sequence numbers start at 1");
        let mut buffer = vec![0; payload_bytes_max].into_boxed_slice();
        buffer[..HEADER_LEN]
            .copy_from_slice(&PacketHeader::heartbeat(session, next_sequence_number).to_bytes());
        Self {
            session,
            buffer,
            len: HEADER_LEN,
            message_count: 0,
            first_sequence_number: next_sequence_number,
        }
    }

    /// Discards any unflushed messages and starts over at `next_sequence_number` of `session`, keeping the
    /// buffer: a re-request server answers every request with one builder, and a new trading day changes the
    /// session without allocating.
    ///
    /// # Panics
    /// If `next_sequence_number` is 0.
    pub fn reset(&mut self, session: Session, next_sequence_number: u64) {
        assert!(next_sequence_number >= 1, "MoldUDP64 sequence numbers start at 1");
        self.session = session;
        self.first_sequence_number = next_sequence_number;
        self.message_count = 0;
        self.len = HEADER_LEN;
    }

    /// The session name.
    pub const fn session(&self) -> Session {
        self.session
    }

    /// The payload limit, header included.
    pub fn payload_bytes_max(&self) -> usize {
        self.buffer.len()
    }

    /// Messages in the packet being built.
    pub const fn message_count(&self) -> u16 {
        self.message_count
    }

    /// True when the packet being built holds no message.
    pub const fn is_empty(&self) -> bool {
        self.message_count == 0
    }

    /// The sequence number the next pushed message gets.
    pub fn next_sequence_number(&self) -> u64 {
        self.first_sequence_number + u64::from(self.message_count)
    }

    /// Bytes of the packet being built, header included.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Reserves a block of `len` bytes and returns it for the caller to fill (the message gets
    /// [`next_sequence_number`](Self::next_sequence_number)).
    ///
    /// # Errors
    /// [`PushError::Full`] if the packet cannot take it (flush first), [`PushError::TooLarge`] if no packet can.
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<&mut [u8], PushError> {
        let payload_bytes_max = self.buffer.len();
        let block_len = BLOCK_LEN_PREFIX + len;
        let Ok(len_u16) = u16::try_from(len) else {
            return Err(PushError::TooLarge {
                len,
                payload_bytes_max,
            });
        };
        if HEADER_LEN + block_len > payload_bytes_max {
            return Err(PushError::TooLarge {
                len,
                payload_bytes_max,
            });
        }
        if self.len + block_len > payload_bytes_max || self.message_count == MESSAGE_COUNT_MAX {
            return Err(PushError::Full);
        }
        assert!(
            self.next_sequence_number().checked_add(1).is_some(),
            "MoldUDP64 sequence numbers exhausted"
        );
        let start = self.len;
        self.buffer[start..start + BLOCK_LEN_PREFIX].copy_from_slice(&len_u16.to_be_bytes());
        self.len += block_len;
        self.message_count += 1;
        Ok(&mut self.buffer[start + BLOCK_LEN_PREFIX..start + block_len])
    }

    /// Appends `message` as one block.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve); nothing is appended then.
    #[inline]
    pub fn push(&mut self, message: &[u8]) -> Result<(), PushError> {
        self.reserve(message.len())?.copy_from_slice(message);
        Ok(())
    }

    /// Encodes an ITCH message straight into the packet as one block ([`itch::Message::encode`] into the
    /// reserved slot). A publisher that knows the message type statically is faster with the typed in-place
    /// encoder, no enum dispatch: `order.encode_in_place(builder.reserve(itch::AddOrder::LEN)?)` (15% to 38% less
    /// per Add Order in `docs/PERFORMANCE.md`, "Protocol"; through the enum, `encode_in_place` measured slower than
    /// `encode`, so this method keeps `encode`).
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve); nothing is appended then.
    #[inline]
    pub fn push_itch(&mut self, message: &itch::Message) -> Result<(), PushError> {
        let slot = self.reserve(message.len())?;
        let written = message.encode(slot);
        debug_assert_eq!(written, Ok(slot.len()));
        Ok(())
    }

    /// Finishes the packet being built: writes its header and returns its bytes (valid until the next call on
    /// the builder), then starts the next packet. Returns `None` if no message was pushed (send a
    /// [`heartbeat`](Self::heartbeat) instead).
    pub fn flush(&mut self) -> Option<&[u8]> {
        if self.message_count == 0 {
            return None;
        }
        let header = PacketHeader {
            session: self.session,
            sequence_number: self.first_sequence_number,
            message_count: self.message_count,
        };
        self.buffer[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        let len = self.len;
        self.first_sequence_number += u64::from(self.message_count);
        self.message_count = 0;
        self.len = HEADER_LEN;
        Some(&self.buffer[..len])
    }

    /// A heartbeat carrying the next sequence number.
    ///
    /// # Panics
    /// If messages are pushed but not flushed (the heartbeat would announce numbers not yet sent).
    pub fn heartbeat(&self) -> [u8; HEADER_LEN] {
        assert!(self.is_empty(), "flush before sending a heartbeat");
        PacketHeader::heartbeat(self.session, self.first_sequence_number).to_bytes()
    }

    /// An End of Session packet carrying the next sequence number.
    ///
    /// # Panics
    /// If messages are pushed but not flushed.
    pub fn end_of_session(&self) -> [u8; HEADER_LEN] {
        assert!(self.is_empty(), "flush before ending the session");
        PacketHeader::end_of_session(self.session, self.first_sequence_number).to_bytes()
    }
}

/// Settings of a [`GapTracker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapTrackerConfig {
    /// The most messages one request asks for (1..=[`MESSAGE_COUNT_MAX`]).
    pub request_count_max: u16,
    /// How long a gap may stay open before the first request: time for the other feed (A/B) to fill it.
    /// Also how long a partial answer may stay quiet before the rest is asked for.
    pub gap_wait_ns: u64,
    /// How long to wait for a request's answer before asking again.
    pub request_timeout_ns: u64,
}

impl Default for GapTrackerConfig {
    fn default() -> Self {
        Self {
            request_count_max: MESSAGE_COUNT_MAX,
            gap_wait_ns: 2_000_000,
            request_timeout_ns: 100_000_000,
        }
    }
}

/// Where a [`GapTracker`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackerState {
    /// Every message announced so far has been delivered.
    Synchronized,
    /// Messages are missing: [`GapTracker::gap`] says which.
    Gap,
    /// End of Session seen and every message before it delivered: nothing more will come.
    Ended,
}

/// Counters of what a [`GapTracker`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerCounters {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages skipped because they were already delivered (the other feed's copy, or an old re-send).
    pub duplicates: u64,
    /// Data packets not delivered because they started beyond a gap.
    pub packets_ahead: u64,
    /// Packets ignored because they belong to another session.
    pub wrong_session: u64,
    /// Requests issued.
    pub requests: u64,
}

/// The receiver side of a MoldUDP64 feed, sans-IO: tells which messages of each packet to deliver (each
/// sequence number once, in order, whichever feed brings it first) and when to send which re-request.
///
/// Feed both groups' packets and the re-request answers to [`on_packet`](Self::on_packet); call
/// [`poll_request`](Self::poll_request) whenever convenient (after each packet and on a timer) and send what it
/// returns. No buffering: a data packet that starts beyond the next expected number is not delivered; its
/// messages come back through the request (or the other feed).
#[derive(Clone, Debug)]
pub struct GapTracker {
    config: GapTrackerConfig,
    session: Option<Session>,
    next_expected: u64,
    /// One past the highest sequence number any packet has announced.
    announced_end: u64,
    ended: bool,
    /// When the current gap was first seen.
    gap_since_ns: Option<u64>,
    /// The last request sent for the current gap: its range end and when it was sent.
    last_request: Option<(u64, u64)>,
    /// When a packet last delivered something.
    last_progress_ns: u64,
    counters: TrackerCounters,
}

impl GapTracker {
    /// A tracker expecting message 1 of whichever session its first packet names.
    pub fn new(config: GapTrackerConfig) -> Self {
        Self::starting_at(config, None, 1)
    }

    /// A tracker expecting `next_expected` of `session` (or of the first packet's session if `None`): after a
    /// snapshot that ends at N, pass N + 1.
    ///
    /// # Panics
    /// If `next_expected` is 0 or the config's `request_count_max` is outside 1..=[`MESSAGE_COUNT_MAX`].
    pub fn starting_at(config: GapTrackerConfig, session: Option<Session>, next_expected: u64) -> Self {
        assert!(next_expected >= 1, "MoldUDP64 sequence numbers start at 1");
        assert!(
            (1..=MESSAGE_COUNT_MAX).contains(&config.request_count_max),
            "request_count_max out of range"
        );
        Self {
            config,
            session,
            next_expected,
            announced_end: next_expected,
            ended: false,
            gap_since_ns: None,
            last_request: None,
            last_progress_ns: 0,
            counters: TrackerCounters::default(),
        }
    }

    /// The session followed (`None` until the first packet when not given).
    pub const fn session(&self) -> Option<Session> {
        self.session
    }

    /// The next sequence number to deliver.
    pub const fn next_expected(&self) -> u64 {
        self.next_expected
    }

    /// The sequence numbers known to exist and not yet delivered, if any.
    pub fn gap(&self) -> Option<Range<u64>> {
        (self.announced_end > self.next_expected).then_some(self.next_expected..self.announced_end)
    }

    /// Where the tracker stands.
    pub fn state(&self) -> TrackerState {
        match (self.gap().is_some(), self.ended) {
            (true, _) => TrackerState::Gap,
            (false, true) => TrackerState::Ended,
            (false, false) => TrackerState::Synchronized,
        }
    }

    /// What the tracker has seen so far.
    pub const fn counters(&self) -> &TrackerCounters {
        &self.counters
    }

    /// Takes in a packet from either feed or from the re-request server and returns the messages to deliver
    /// now, in order (possibly none).
    pub fn on_packet<'a>(&mut self, packet: &Packet<'a>, now_ns: u64) -> Messages<'a> {
        let header = packet.header();
        match self.session {
            None => self.session = Some(header.session),
            Some(session) if session != header.session => {
                self.counters.wrong_session += 1;
                return Messages::EMPTY;
            }
            Some(_) => {}
        }
        let range = packet.sequence_range();
        if packet.kind() == PacketKind::EndOfSession {
            self.ended = true;
        }
        // Every packet announces that the numbers below its end exist (a heartbeat's or end of session's
        // sequence number is the next to be sent).
        self.announced_end = self.announced_end.max(range.end);

        let delivered = if range.start <= self.next_expected && range.end > self.next_expected {
            let skipped = self.next_expected - range.start;
            self.counters.duplicates += skipped;
            self.counters.delivered += range.end - self.next_expected;
            let messages = packet.messages().skip_below(self.next_expected);
            self.next_expected = range.end;
            self.last_progress_ns = now_ns;
            messages
        } else {
            if range.end <= self.next_expected {
                self.counters.duplicates += range.end - range.start;
            } else {
                self.counters.packets_ahead += 1;
            }
            Messages::EMPTY
        };

        if self.gap().is_none() {
            self.gap_since_ns = None;
            self.last_request = None;
        } else if self.gap_since_ns.is_none() {
            self.gap_since_ns = Some(now_ns);
        }
        delivered
    }

    /// The request to send now, if one is due: a gap has stayed open for `gap_wait_ns`, and no request is
    /// outstanding (the last one's range was delivered; or its answer delivered part of it and then nothing
    /// for `gap_wait_ns`, as when the server sends fewer messages than asked; or `request_timeout_ns` passed).
    /// The
    /// request starts at [`next_expected`](Self::next_expected) and asks for the gap, at most
    /// `request_count_max` messages.
    pub fn poll_request(&mut self, now_ns: u64) -> Option<Request> {
        let gap = self.gap()?;
        let session = self.session?;
        let since = self.gap_since_ns?;
        if now_ns.saturating_sub(since) < self.config.gap_wait_ns {
            return None;
        }
        if let Some((requested_end, sent_ns)) = self.last_request {
            let answered = self.next_expected >= requested_end;
            // A server may answer with fewer messages than asked: once an answer has started and then stayed
            // quiet for `gap_wait_ns`, it is over and the rest is asked for.
            let answer_over = self.last_progress_ns > sent_ns
                && now_ns.saturating_sub(self.last_progress_ns) >= self.config.gap_wait_ns;
            let timed_out = now_ns.saturating_sub(sent_ns) >= self.config.request_timeout_ns;
            if !answered && !answer_over && !timed_out {
                return None;
            }
        }
        let gap_len = gap.end - gap.start;
        let requested_count = u16::try_from(gap_len.min(u64::from(self.config.request_count_max)))
            .unwrap_or(self.config.request_count_max);
        let request = Request {
            session,
            sequence_number: gap.start,
            requested_count,
        };
        self.last_request = Some((request.range().end, now_ns));
        self.counters.requests += 1;
        Some(request)
    }
}

/// What [`fuzz_check_packet`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketCheck {
    /// [`Packet::decode`]: the packet's kind and number of messages, or the error.
    pub packet: Result<(PacketKind, usize), PacketError>,
    /// [`Request::decode`] of the same bytes.
    pub request: Result<Request, PacketError>,
    /// Blocks that decoded as an ITCH message (each block also went through [`itch::fuzz_check_message`]).
    pub itch_messages: usize,
}

/// Fuzz and corpus check of the MoldUDP64 readers: decodes `input` as a downstream packet and as a request and
/// checks that
/// - a packet's header re-encodes to the first 20 bytes; its messages come out numbered contiguously from the
///   header's Sequence Number, as many as its kind says, and their length-prefixed blocks are exactly the bytes
///   after the header; every block passes [`itch::fuzz_check_message`];
/// - a [`PacketBuilder`] whose payload limit is the input's length rebuilds a data packet byte for byte (the
///   builder accepts an exact fit), and gives the same bytes for a heartbeat or end of session;
/// - a [`GapTracker`] expecting the packet's first number delivers all of its messages once, and none on a
///   second copy;
/// - a request decodes exactly when the input is 20 bytes and re-encodes to them;
/// - every error is the one the input explains.
///
/// Returns what was decoded.
///
/// # Panics
/// If a reader breaks one of those properties (that is what the fuzzer looks for).
pub fn fuzz_check_packet(input: &[u8]) -> PacketCheck {
    let request = Request::decode(input);
    match request {
        Ok(request) => {
            assert_eq!(input.len(), HEADER_LEN);
            assert_eq!(request.to_bytes(), input, "a request re-encodes to its bytes");
        }
        Err(PacketError::Truncated { len }) => assert!(len == input.len() && len < HEADER_LEN),
        Err(PacketError::TrailingBytes { extra }) => assert_eq!(HEADER_LEN + extra, input.len()),
        Err(other) => panic!("a request cannot fail with {other:?}"),
    }
    let mut itch_messages = 0;
    let packet = match Packet::decode(input) {
        Ok(packet) => {
            let header = *packet.header();
            assert_eq!(
                header.to_bytes(),
                input[..HEADER_LEN],
                "a header re-encodes to its bytes"
            );
            let range = packet.sequence_range();
            let count = match packet.kind() {
                PacketKind::Data => usize::from(header.message_count),
                PacketKind::Heartbeat | PacketKind::EndOfSession => 0,
            };
            assert_eq!(range.start, header.sequence_number);
            assert_eq!(range.end - range.start, count as u64);
            assert_eq!(packet.next_sequence_number(), range.end);
            let messages = packet.messages();
            assert_eq!(messages.size_hint(), (count, Some(count)));
            // Walk the blocks: each is its length prefix then the message the iterator handed out.
            let mut offset = HEADER_LEN;
            let mut seen = 0usize;
            for (sequence_number, message) in messages {
                assert_eq!(
                    sequence_number,
                    range.start + seen as u64,
                    "messages numbered in order"
                );
                let prefix = u16::try_from(message.len()).expect("a block is at most u16::MAX bytes");
                assert_eq!(input[offset..offset + BLOCK_LEN_PREFIX], prefix.to_be_bytes());
                offset += BLOCK_LEN_PREFIX;
                assert_eq!(&input[offset..offset + message.len()], message);
                offset += message.len();
                seen += 1;
                if itch::fuzz_check_message(message).is_ok() {
                    itch_messages += 1;
                }
            }
            assert_eq!((seen, offset), (count, input.len()), "the blocks fill the packet");
            check_rebuild(&packet, input);
            check_tracker(&packet, count);
            Ok((packet.kind(), count))
        }
        Err(error) => {
            match error {
                PacketError::Truncated { len } => assert!(len == input.len() && len < HEADER_LEN),
                PacketError::BlockTruncated { index, message_count } => {
                    assert_eq!(input[18..HEADER_LEN], message_count.to_be_bytes());
                    assert!(index < message_count && message_count != END_OF_SESSION_COUNT);
                }
                PacketError::TrailingBytes { extra } => {
                    assert!(extra > 0 && HEADER_LEN + extra <= input.len());
                }
                PacketError::SequenceOverflow => {
                    let header = read_header(input).expect("overflow is found after the header");
                    assert!(matches!(header.kind(), PacketKind::Data));
                    assert!(
                        header
                            .sequence_number
                            .checked_add(u64::from(header.message_count))
                            .is_none()
                    );
                }
            }
            Err(error)
        }
    };
    PacketCheck {
        packet,
        request,
        itch_messages,
    }
}

/// [`fuzz_check_packet`]: a builder reproduces a decoded packet's bytes, where a builder can make it.
fn check_rebuild(packet: &Packet<'_>, input: &[u8]) {
    let header = packet.header();
    let payload_bytes_max = input.len().max(HEADER_LEN + BLOCK_LEN_PREFIX + 1);
    // A builder numbers from 1 and is limited to one UDP payload; other packets cannot come from it.
    if header.sequence_number == 0 || payload_bytes_max > PAYLOAD_BYTES_MAX {
        return;
    }
    let mut builder = PacketBuilder::new(header.session, header.sequence_number, payload_bytes_max);
    match packet.kind() {
        PacketKind::Data => {
            for (sequence_number, message) in packet.messages() {
                assert_eq!(builder.next_sequence_number(), sequence_number);
                assert_eq!(builder.push(message), Ok(()), "an exact fit is accepted");
            }
            assert_eq!(builder.len(), input.len());
            assert_eq!(builder.flush(), Some(input), "the builder rebuilds the packet");
            assert_eq!(builder.next_sequence_number(), packet.next_sequence_number());
        }
        PacketKind::Heartbeat => assert_eq!(builder.heartbeat(), input),
        PacketKind::EndOfSession => assert_eq!(builder.end_of_session(), input),
    }
}

/// [`fuzz_check_packet`]: a tracker expecting the packet's first number takes all of it, once.
fn check_tracker(packet: &Packet<'_>, count: usize) {
    let header = packet.header();
    if header.sequence_number == 0 {
        return;
    }
    let mut tracker = GapTracker::starting_at(
        GapTrackerConfig::default(),
        Some(header.session),
        header.sequence_number,
    );
    assert!(
        tracker.on_packet(packet, 0).eq(packet.messages()),
        "first copy delivered whole"
    );
    assert_eq!(tracker.next_expected(), packet.next_sequence_number());
    assert_eq!(
        tracker.on_packet(packet, 1).count(),
        0,
        "second copy delivered again"
    );
    assert_eq!(tracker.counters().delivered, count as u64);
    assert_eq!(tracker.counters().duplicates, count as u64);
    assert_eq!(tracker.gap(), None);
    let ended = packet.kind() == PacketKind::EndOfSession;
    assert_eq!(tracker.state() == TrackerState::Ended, ended);
}
