//! The records that travel on the rings between stages. All are `Copy` and fixed size, so a ring slot
//! is written once and never points anywhere.
//!
//! ```text
//! ingress --Request--> core (sequencer + matching + journal) --ToSession--> ingress (replies)
//! admin ---AdminCommand--> core                               --ToFeed-----> market data
//! ```
//! The core pushes `ToSession` and `ToFeed` records only after the journal holds (and, under sync
//! `batch`, has synced) the records they carry: everything a stage receives from the core is released.

use bourse_book::Command;
use bourse_protocol::fields::{Alpha, Token};
use bourse_protocol::{itch, ouch};

/// Largest OUCH 4.2 outbound message (Replaced, 80 bytes).
pub const OUCH_OUT_LEN_MAX: usize = ouch::MESSAGE_LEN_MAX;
/// Largest ITCH 5.0 message the feed carries.
pub const ITCH_LEN_MAX: usize = itch::MESSAGE_LEN_MAX;

/// The trading day's session name (order entry, snapshot and MoldUDP64 alike).
pub type SessionName = Alpha<10>;

/// Ingress -> core: one input from a logged-in session.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// The engine's login id (1-based, config order).
    pub login: u32,
    /// `Clock::now_ns` when the frame carrying it was read from the socket (wire-to-wire start); 0 if none.
    pub recv_ns: u64,
    /// What the session asks for.
    pub body: RequestBody,
    /// OUCH fields the engine does not see but Accepted and Replaced echo: Capacity, Intermarket Sweep
    /// Eligibility, Cross Type of an Enter Order (a Replace echoes the ISO byte it carries and the
    /// original order's others: pass `[b' ', iso, b' ']` and the core fills in the rest); `*b"   "` for
    /// anything else.
    pub echo: [u8; 3],
}

/// What a [`Request`] carries.
#[derive(Clone, Copy, Debug)]
pub enum RequestBody {
    /// An OUCH Enter, Cancel, Replace or Modify as a book command (its `login` is the request's).
    Order(Command),
    /// An Enter or Replace Order over the session's throttle: the core journals Rejected `F` for this
    /// token (an Enter's token, a Replace's replacement token) and records the token.
    Throttled {
        /// The token to reject and record.
        token: Token,
    },
    /// The logged-in connection of this login ended (any reason): cancel-on-disconnect if configured.
    SessionEnded,
    /// End-of-day barrier (ingress, on [`ToSession::EndOfDay`], once it stopped reading sockets): the core
    /// answers [`ToSession::EndOfDayDrained`] after every output of the requests before it, so the
    /// replies to requests that were in flight at end of day reach their sessions before End of Session.
    EndOfDayBarrier,
}

/// Core -> ingress: one released outcome for the sessions.
#[derive(Clone, Copy, Debug)]
pub enum ToSession {
    /// One OUCH message of a login's sequenced stream.
    Ouch {
        /// The login whose stream it belongs to (connected or not).
        login: u32,
        /// Its number in the login's stream for the day (from 1).
        session_seq: u64,
        /// The journal sequence of its [`bourse_protocol::journaled::KIND_OUCH`] record.
        journal_seq: u64,
        /// The `recv_ns` of the request that caused it (0 for unsolicited messages).
        recv_ns: u64,
        /// Bytes used in `bytes`.
        len: u8,
        /// The OUCH message.
        bytes: [u8; OUCH_OUT_LEN_MAX],
    },
    /// End of day is done: answer every later Login Request with Login Rejected `S`, stop reading
    /// sockets, and push [`RequestBody::EndOfDayBarrier`].
    EndOfDay,
    /// Every request sequenced before the barrier has its outputs released: send End of Session `Z` to
    /// every logged-in session after its queued output and close them.
    EndOfDayDrained,
    /// Operator: close this login's connection (cancel-on-disconnect applies as for any disconnect).
    ForceLogout {
        /// The login.
        login: u32,
    },
    /// Operator: refuse (false) or allow again (true) this login's Login Requests. Disabling also closes
    /// its connection.
    SetEnabled {
        /// The login.
        login: u32,
        /// Allowed to log in.
        enabled: bool,
    },
}

/// Core -> market data: one released feed item.
#[derive(Clone, Copy, Debug)]
pub enum ToFeed {
    /// One ITCH message with its MoldUDP64 sequence number.
    Message {
        /// MoldUDP64 sequence number (from 1 each day).
        feed_seq: u64,
        /// The journal sequence of its [`bourse_protocol::journaled::KIND_ITCH`] record.
        journal_seq: u64,
        /// Bytes used in `bytes`.
        len: u8,
        /// The ITCH message.
        bytes: [u8; ITCH_LEN_MAX],
    },
    /// The core finished a batch: flush what is buffered (a packet never waits for a later batch).
    Flush,
    /// The core committed this journal batch: the re-request reader may trust it without reading it
    /// (`bourse_journal::Reader::trust_committed`), instead of checking every record a second time.
    /// Dropped when the ring is full (the next one covers it; the reader scans what it was not told).
    Committed(bourse_journal::CommittedBatch),
    /// End of day: after flushing, send MoldUDP64 End of Session and repeat it in place of heartbeats.
    EndOfSession,
}

impl ToSession {
    /// An OUCH record from its parts. Panics if `message` is longer than [`OUCH_OUT_LEN_MAX`].
    pub fn ouch(login: u32, session_seq: u64, journal_seq: u64, recv_ns: u64, message: &[u8]) -> ToSession {
        let mut bytes = [0u8; OUCH_OUT_LEN_MAX];
        bytes[..message.len()].copy_from_slice(message);
        ToSession::Ouch {
            login,
            session_seq,
            journal_seq,
            recv_ns,
            len: message.len() as u8,
            bytes,
        }
    }
}

impl ToFeed {
    /// A feed message from its parts. Panics if `message` is longer than [`ITCH_LEN_MAX`].
    pub fn message(feed_seq: u64, journal_seq: u64, message: &[u8]) -> ToFeed {
        let mut bytes = [0u8; ITCH_LEN_MAX];
        bytes[..message.len()].copy_from_slice(message);
        ToFeed::Message {
            feed_seq,
            journal_seq,
            len: message.len() as u8,
            bytes,
        }
    }
}

/// The shutdown handshake (SIGTERM, SIGINT, admin `shutdown`), one flag per step, each set by one stage:
/// 1. `main` (or admin) sets [`Lifecycle::shutdown`];
/// 2. ingress stops accepting, closes every connection (no End of Session), pushes
///    [`RequestBody::SessionEnded`] for each logged-in one (retrying while the ring is full), closes its
///    listener, then sets [`Lifecycle::ingress_closed`]; it keeps draining `ToSession` and drops it;
/// 3. the core, once `ingress_closed` is set and its request ring is empty, applies and commits what is
///    left, releases it, writes a checkpoint and sets [`Lifecycle::core_closed`];
/// 4. market data, once `core_closed` is set and its ring is empty, flushes and sets
///    [`Lifecycle::feed_closed`]; `main` then stops the runners and exits 0.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Step 1: stop was asked.
    pub shutdown: std::sync::atomic::AtomicBool,
    /// Step 2 done.
    pub ingress_closed: std::sync::atomic::AtomicBool,
    /// Step 3 done.
    pub core_closed: std::sync::atomic::AtomicBool,
    /// Step 4 done.
    pub feed_closed: std::sync::atomic::AtomicBool,
}
