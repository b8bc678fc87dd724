//! The ingress stage: every order-entry TCP connection (SoupBinTCP 4.0 server, OUCH 4.2 in), on one mio
//! `Poll` that is polled with a zero timeout inside [`Agent::do_work`], so the stage never blocks.
//!
//! What it owns: the listener, the connections and their read buffers and send queues, the login table
//! (who is logged in, each login's next session sequence number, operator-disabled logins), the
//! throttles, and session replay from the journal. Behaviour is `docs/protocol.md` 2.1-2.10 and rows
//! IR-66..IR-85; this module cites the row it implements.
//!
//! What it does not do: it never answers an order itself. A well-formed OUCH message becomes a
//! [`Request`] for the core; every OUCH message a client receives comes back as a released
//! [`ToSession::Ouch`] (journaled first). Ingress itself only sends SoupBinTCP control packets (Login
//! Accepted/Rejected, Heartbeat, Debug, End of Session) or disconnects.
//!
//! # One `do_work`
//! 1. the shutdown handshake ([`Lifecycle`]) if asked;
//! 2. requests held back by a full ring go first;
//! 3. drain released replies (bounded), framing them into the sessions' send queues, and write them
//!    (batched writes), then what the previous call deferred (step 9);
//! 4. poll (zero timeout);
//! 5. accept (bounded);
//! 6. a bounded chunk of journal replay;
//! 7. read the ready sockets (bounded, and not at all while the request ring is full: back-pressure
//!    leaves the bytes in the kernel);
//! 8. a bounded slice of the timer scan;
//! 9. write what this call queued itself (login replies, heartbeats, rejects of malformed input,
//!    replays), or, when it read a request, leave it for step 3 of the next call, after that request's
//!    reply: with 10,000 sessions connected, about 10,000 heartbeat writes a second otherwise sat between
//!    requests and their acks;
//! 10. publish stats every [`stats::PUBLISH_INTERVAL_NS`].
//!
//! # Sequencing and replay
//! Each login has `next_seq` (one past the last message released for it). A logged-in session has
//! `sent_next`, the next number it will be sent. A live record is written when its number equals
//! `sent_next`; one below is a duplicate that a replay already sent; one above means the session missed
//! messages, and it (re)enters replay from `sent_next`. A replaying session is served from the journal
//! (`KIND_OUCH` records of its login) in bounded chunks, while live records for it are only counted; it
//! goes live once `sent_next` reaches the login's `next_seq`. The journal is read through one
//! [`Reader`] (opened at the first replay; it sees what the core commits after it was opened), shared by
//! the replaying sessions round robin. A replay starts at a journal position from a per-login sparse
//! index (`ingress/index.rs`) or at the day's first journal record; the reader goes back by `seek` (bounded by its
//! own index) and forward by plain reads counted in the per-call budget, so no call scans the journal up
//! to a far target.
//!
//! # Limits
//! Connections: `sessions_max` (more are closed at accept, IR-85). Frames: `frame_size_max`. A read
//! buffer of `max(READ_BUFFER_BYTES, 2 * frame_size_max)` per connection, allocated at its first accept
//! and reused. A send queue grows lazily up to `send_queue_bytes_max` (over it: disconnect, IR-82); a
//! replay fills it only to half. Per call: [`EVENTS_CAPACITY`] events, [`ACCEPTS_PER_CALL_MAX`] accepts,
//! [`REPLIES_PER_CALL_MAX`] replies, [`REPLAY_RECORDS_PER_CALL_MAX`] journal records,
//! [`READS_PER_CALL_MAX`] socket reads, [`TIMER_SCAN_PER_CALL_MAX`] timer checks.
//!
//! # Time and latency
//! Timers (login, heartbeat, idle, closing linger, throttle) run on `do_work`'s `now_ns`; `recv_ns` of a
//! request and the latency samples use the stage's [`Clock`] (give both the same clock). Histogram
//! `ingress`: socket read -> its frames handed to the ring (one sample per read); `wire_to_wire`: the
//! `recv_ns` of a live reply's request -> the write that emptied the session's queue (at most
//! 8 samples per session per write).
//!
//! # End of day
//! On [`ToSession::EndOfDay`] ingress refuses logins (`J S`), stops reading sockets and pushes
//! [`RequestBody::EndOfDayBarrier`]; the core answers [`ToSession::EndOfDayDrained`] once the outputs of
//! every request sequenced before the barrier are released, and only then does each session get End of
//! Session `Z` (after its queued output) and close. So a request that was in flight at end of day is
//! answered (Rejected `C`) before `Z`, as docs/protocol.md 1.4 says.
//!
//! # Failure
//! Any peer error (reset, protocol error, slow reader) is a disconnect of that peer only; nothing a peer
//! sends can panic the stage. Every end of a logged-in connection pushes [`RequestBody::SessionEnded`]
//! (cancel-on-disconnect is the core's decision), held back and retried while the ring is full; until it
//! is in the ring, the login cannot log in again (so the core never sees the new session's orders before
//! the old session's end).

mod index;
mod throttle;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bourse_book::{Command, EnterOrder, ReplaceOrder};
use bourse_journal::{MmapStorage, Reader};
use bourse_protocol::fields::Alpha;
use bourse_protocol::journaled::{self, KIND_OUCH};
use bourse_protocol::ouch;
use bourse_protocol::soupbintcp::{
    DecodeError, LoginAccepted, LoginRejectReason, LoginRequest, Packet, PacketType, StreamBuffer,
};
use hdrhistogram::Histogram;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};

use crate::agent::{Agent, Clock};
use crate::config::{OrderEntryConfig, SessionLogin};
use crate::msg::{Lifecycle, Request, RequestBody, SessionName, ToSession};
use crate::ring::{Consumer, Producer};
use crate::stats;

use index::SparseIndex;
use throttle::{Throttle, Verdict};

/// mio events taken per poll.
pub const EVENTS_CAPACITY: usize = 1024;
/// Connections accepted per `do_work`.
pub const ACCEPTS_PER_CALL_MAX: usize = 256;
/// `ToSession` records drained per `do_work`.
pub const REPLIES_PER_CALL_MAX: usize = 4096;
/// Journal records examined for replays per `do_work`.
pub const REPLAY_RECORDS_PER_CALL_MAX: usize = 4096;
/// Socket reads per `do_work`. Every request read in a call waits for the whole call, the core's work on
/// all of them and the writes of their replies. With thousands of sessions each sending little, a read is
/// one request that brings a write of its own (often two), and 512 reads per call held the first reply for
/// up to milliseconds: 16 halved boursed's wire-to-wire p99 with 10,000 sessions and cut its p99.9 3.6x
/// (docs/PERFORMANCE.md, session 17). A few sessions sending a lot still fill the core's batch: 16 full
/// reads are about 1,100 orders.
pub const READS_PER_CALL_MAX: usize = 16;
/// Sessions whose timers are checked per `do_work` (at most).
pub const TIMER_SCAN_PER_CALL_MAX: usize = 4096;
/// Smallest read buffer per connection, bytes.
pub const READ_BUFFER_BYTES: usize = 4096;
/// A send queue whose buffer grew above this is freed when its connection ends (smaller ones are kept
/// for the next connection in the slot).
pub const SEND_BUFFER_KEEP_BYTES: usize = 64 * 1024;
/// Longest Debug text bourse sends (`docs/protocol.md` 2.1).
pub const DEBUG_TEXT_LEN_MAX: usize = 64;
/// Wire-to-wire samples remembered per session between two writes (more are not sampled).
const W2W_PENDING_MAX: usize = 8;
/// Reads that discard what a peer still sends when its connection is closed gracefully (so that the close
/// is a FIN after our last packet, not a reset).
const DISCARD_READS_MAX: usize = 4;
/// Write calls per session per flush.
const WRITES_PER_FLUSH_MAX: usize = 8;
/// The timer scan covers every connection at least this often (or a quarter of the shortest timer).
const TIMER_SWEEP_NS_MAX: u64 = 100_000_000;
/// ... and not more often than this.
const TIMER_SWEEP_NS_MIN: u64 = 1_000_000;
/// mio token of the listener.
const LISTENER: Token = Token(usize::MAX);

/// Everything the ingress stage is built from (see the module header).
pub struct IngressParams {
    /// The order-entry listener, already bound by main (its port may have been 0).
    pub listener: std::net::TcpListener,
    /// `[order_entry]`: limits, timers, throttle.
    pub order_entry: OrderEntryConfig,
    /// Credentials, engine login id (1-based), cancel-on-disconnect.
    pub logins: Vec<SessionLogin>,
    /// The day's session name.
    pub session: SessionName,
    /// False between end of day and the next start: every Login Request gets Login Rejected `S`.
    pub day_open: bool,
    /// Index = login id (0 unused): the next session sequence number of each login.
    pub next_seq: Vec<u64>,
    /// Index = login id: operator-disabled logins.
    pub disabled: Vec<bool>,
    /// Journal directory (replays are read from it).
    pub journal_dir: PathBuf,
    /// First journal sequence of the current day (where a replay starts when the index knows nothing).
    pub day_start_journal_seq: u64,
    /// Ingress -> core.
    pub requests: Producer<Request>,
    /// Core -> ingress.
    pub replies: Consumer<ToSession>,
    /// Admin numbers.
    pub shared: Arc<stats::Shared>,
    /// The shutdown handshake.
    pub lifecycle: Arc<Lifecycle>,
    /// The clock `recv_ns` and latencies are taken from.
    pub clock: Clock,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The slot holds no connection.
    Free,
    /// Connected, no Login Request yet.
    AwaitLogin,
    /// Logged in.
    LoggedIn,
    /// Ending: no more reads; the send queue is written (unless `abort`), then the socket is closed.
    Closing,
}

/// One connection slot (reused by later connections).
struct Session {
    stream: Option<TcpStream>,
    phase: Phase,
    /// Close without writing what is queued.
    abort: bool,
    /// Engine login id while logged in (0 otherwise).
    login: u32,
    peer: String,
    connected_ns: u64,
    last_recv_ns: u64,
    last_send_ns: u64,
    /// Closing: finalized at this time even if the queue is not written.
    closing_deadline_ns: u64,
    /// `clock` time of the read that brought the frames still in the read buffer.
    last_read_clock_ns: u64,
    out: Vec<u8>,
    out_head: usize,
    /// In `dirty` (to be written at the end of this call).
    dirty: bool,
    /// In `ready` (readable, or frames left in the read buffer).
    in_ready: bool,
    /// The read buffer may still hold complete frames (the last drain stopped at its budget).
    frames_left: bool,
    /// The peer's end of stream (or an error) was reported: read until it shows, even after a short read.
    peer_closed: bool,
    /// Next session sequence number this connection will be sent.
    sent_next: u64,
    replaying: bool,
    in_replay_list: bool,
    /// Next journal sequence the replay examines.
    replay_journal_next: u64,
    /// End of day arrived while replaying: send End of Session once the replay is done.
    end_of_day_pending: bool,
    throttle: Throttle,
    messages_in: u64,
    messages_out: u64,
    w2w: [u64; W2W_PENDING_MAX],
    w2w_len: usize,
}

impl Session {
    fn new() -> Session {
        Session {
            stream: None,
            phase: Phase::Free,
            abort: false,
            login: 0,
            peer: String::new(),
            connected_ns: 0,
            last_recv_ns: 0,
            last_send_ns: 0,
            closing_deadline_ns: 0,
            last_read_clock_ns: 0,
            out: Vec::new(),
            out_head: 0,
            dirty: false,
            in_ready: false,
            frames_left: false,
            peer_closed: false,
            sent_next: 0,
            replaying: false,
            in_replay_list: false,
            replay_journal_next: 0,
            end_of_day_pending: false,
            throttle: Throttle::new(1, 1, 1, 0),
            messages_in: 0,
            messages_out: 0,
            w2w: [0; W2W_PENDING_MAX],
            w2w_len: 0,
        }
    }

    fn queued_bytes(&self) -> usize {
        self.out.len() - self.out_head
    }

    /// Appends one SoupBinTCP packet to the send queue (no limit check: callers check).
    fn append(&mut self, packet_type: PacketType, payload: &[u8], now_ns: u64) {
        let need = 3 + payload.len();
        if self.out_head == self.out.len() {
            self.out.clear();
            self.out_head = 0;
        } else if self.out_head > 0 && self.out.len() + need > self.out.capacity() {
            self.out.drain(..self.out_head);
            self.out_head = 0;
        }
        // Payloads are at most an OUCH message or a Debug text: the length always fits.
        let packet_len = (1 + payload.len()) as u16;
        self.out.extend_from_slice(&packet_len.to_be_bytes());
        self.out.push(packet_type.code());
        self.out.extend_from_slice(payload);
        self.last_send_ns = now_ns;
    }

    fn is_open(&self) -> bool {
        matches!(self.phase, Phase::AwaitLogin | Phase::LoggedIn)
    }
}

/// One login's session-layer state.
struct LoginState {
    /// Trimmed password bytes.
    password: Alpha<10>,
    password_len: usize,
    username: String,
    next_seq: u64,
    disabled: bool,
    /// Slot of its logged-in connection.
    session: Option<u32>,
    /// `SessionEnded` requests of this login still held back (ring full).
    ends_pending: u32,
    index: SparseIndex,
}

/// The ingress stage (see the module header).
pub struct Ingress {
    poll: Poll,
    events: Events,
    replies: Consumer<ToSession>,
    /// Read buffers, by slot (separate from the sessions so a frame can be handled while it is borrowed).
    bufs: Vec<Option<StreamBuffer>>,
    st: State,
}

/// Everything but the poll, the reply ring and the read buffers.
struct State {
    cfg: OrderEntryConfig,
    registry: Registry,
    listener: Option<TcpListener>,
    listener_ready: bool,
    accept_failures: u64,
    sessions: Vec<Session>,
    generations: Vec<u32>,
    free_slots: Vec<u32>,
    connections: usize,
    /// Logged-in connections.
    logged_in: u64,
    by_username: HashMap<[u8; 6], u32>,
    logins: Vec<LoginState>,
    session_name: SessionName,
    day_open: bool,
    /// End of day: sockets are not read until the core answers the barrier.
    end_of_day_barrier: bool,
    requests: Producer<Request>,
    /// Requests the ring had no room for, in order; pushed before anything else.
    held: VecDeque<Request>,
    ready: VecDeque<(u32, u32)>,
    dirty: Vec<u32>,
    /// Sessions this round queued packets for (heartbeats, login replies, replays) in a round that also
    /// read a request: written in the next round after its replies, so that they never sit between a
    /// request and its ack.
    deferred: Vec<u32>,
    /// This round pushed a request to the core.
    request_in_round: bool,
    /// Sessions whose queue stopped at the write-call bound: marked dirty for the next call.
    flush_next: Vec<u32>,
    replay_list: VecDeque<(u32, u32)>,
    journal_dir: PathBuf,
    day_start_journal_seq: u64,
    reader: Option<Reader<MmapStorage>>,
    /// The reader returns no record below this sequence next (0 for a new reader: from the start).
    reader_next: u64,
    shared: Arc<stats::Shared>,
    lifecycle: Arc<Lifecycle>,
    shutting_down: bool,
    closed_announced: bool,
    clock: Clock,
    now_ns: u64,
    timer_cursor: usize,
    timer_last_ns: u64,
    timer_sweep_ns: u64,
    last_publish_ns: u64,
    hist_ingress: Histogram<u64>,
    hist_w2w: Histogram<u64>,
    read_buffer_bytes: usize,
    scratch: Box<[u8]>,
}

/// Why a connection is closed (and what it is sent first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// Send this Debug text, write the queue, close (protocol errors, IR-66, IR-70..IR-80).
    Debug(&'static str),
    /// Write the queue, then close (Logout Request, IR-83; after Login Rejected or End of Session).
    AfterQueue,
    /// Close now, nothing more written (timeouts, slow reader, peer gone, operator, shutdown).
    Abort,
}

fn token(slot: u32, generation: u32) -> Token {
    Token(((generation as usize) << 32) | slot as usize)
}

fn untoken(token: Token) -> (u32, u32) {
    ((token.0 & 0xFFFF_FFFF) as u32, (token.0 >> 32) as u32)
}

/// A login field without padding spaces on either side (`docs/protocol.md` 2.3).
fn trim_field(field: &[u8]) -> &[u8] {
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let end = field.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
    &field[start..end]
}

fn username_key(trimmed: &[u8]) -> Option<[u8; 6]> {
    if trimmed.is_empty() || trimmed.len() > 6 {
        return None;
    }
    let mut key = [b' '; 6];
    key[..trimmed.len()].copy_from_slice(trimmed);
    Some(key)
}

fn alpha_at<const N: usize>(bytes: &[u8], at: usize) -> Alpha<N> {
    let mut out = [b' '; N];
    out.copy_from_slice(&bytes[at..at + N]);
    Alpha(out)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// An OUCH inbound message as a book command, with the OUCH values as sent (the engine validates them).
///
/// # Errors
/// The Debug text for a message with no trustworthy token: unknown type (IR-79) or wrong length (IR-80).
/// A well-formed message with an undefined letter in a code field (a bad side or display) is returned as a
/// command: the engine rejects it in band.
pub fn order_command(login: u32, payload: &[u8]) -> Result<Command, &'static str> {
    match ouch::Inbound::decode(payload) {
        Ok(_) | Err(ouch::DecodeError::InvalidField { .. }) => {}
        Err(ouch::DecodeError::Empty) => return Err("unsequenced data without a message"),
        Err(ouch::DecodeError::UnknownType { .. }) => return Err("unknown OUCH message type"),
        Err(_) => return Err("wrong length for the OUCH message type"),
    }
    // The decode above checked the type and the exact length, so every offset below is in bounds.
    Ok(match payload[0] {
        b'O' => Command::Enter(EnterOrder {
            login,
            token: alpha_at(payload, 1),
            side: payload[15],
            shares: u32_at(payload, 16),
            symbol: alpha_at(payload, 20),
            price: u32_at(payload, 28),
            tif_s: u32_at(payload, 32),
            firm: alpha_at(payload, 36),
            display: payload[40],
            min_qty: u32_at(payload, 43),
            capacity: payload[41],
            cross_type: payload[47],
        }),
        b'U' => Command::Replace(ReplaceOrder {
            login,
            existing_token: alpha_at(payload, 1),
            replacement_token: alpha_at(payload, 15),
            shares: u32_at(payload, 29),
            price: u32_at(payload, 33),
            tif_s: u32_at(payload, 37),
            display: payload[41],
            min_qty: u32_at(payload, 43),
        }),
        b'X' => Command::Cancel {
            login,
            token: alpha_at(payload, 1),
            shares: u32_at(payload, 15),
        },
        _ => Command::Modify {
            login,
            token: alpha_at(payload, 1),
            side: payload[15],
            shares: u32_at(payload, 16),
        },
    })
}

/// The request's echo bytes (msg::Request::echo, journaled before each command): Capacity, Intermarket
/// Sweep Eligibility and Cross Type of an Enter Order; the ISO byte of a Replace Order. Accepted and
/// Replaced echo the request's ISO from here; Capacity and Cross Type are in the command too, and the
/// engine keeps them with the order (a Replaced inherits them). Call after [`order_command`] accepted
/// `payload` (type and length are checked there).
pub fn order_echo(payload: &[u8]) -> [u8; 3] {
    match payload.first() {
        Some(b'O') if payload.len() >= 48 => [payload[41], payload[42], payload[47]],
        Some(b'U') if payload.len() >= 43 => [b' ', payload[42], b' '],
        _ => *b"   ",
    }
}

/// The Debug text for a framing error (IR-70, IR-71, IR-72, IR-75, IR-77).
fn frame_error_text(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::ZeroLength => "packet length 0",
        DecodeError::Oversize { .. } => "frame above frame_size_max",
        DecodeError::UnknownType { .. } | DecodeError::UnknownLoginRejectCode { .. } => "unknown packet type",
        DecodeError::WrongLength { packet_type, .. } if *packet_type == b'L' => "malformed login request",
        // A server-only type (Login Accepted, Login Rejected, ...) from a client is IR-72 whatever its length.
        DecodeError::WrongLength { packet_type, .. } if !b"URO+".contains(packet_type) => {
            "unknown packet type"
        }
        DecodeError::WrongLength { .. } => "wrong packet length for its type",
        DecodeError::Numeric { .. } => "malformed login request",
    }
}

impl Ingress {
    /// Builds the stage: registers the listener with a new `Poll`, builds the login table.
    ///
    /// # Errors
    /// Creating the poll or registering the listener.
    ///
    /// # Panics
    /// If the config is outside what `config` validation allows (a `frame_size_max` below 54), or a login
    /// id is 0.
    pub fn new(p: IngressParams) -> io::Result<Ingress> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        p.listener.set_nonblocking(true)?;
        // std listens with a backlog of 128: a burst of connections (thousands of sessions logging in
        // at once after a restart) would overflow it and wait for SYN retransmits (1 s, 3 s, ...).
        // Listening again on a listening socket only changes its backlog (the kernel caps it at
        // net.core.somaxconn).
        let backlog = i32::try_from(p.order_entry.sessions_max).unwrap_or(i32::MAX);
        socket2::SockRef::from(&p.listener).listen(backlog)?;
        let mut listener = TcpListener::from_std(p.listener);
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        let login_max = p.logins.iter().map(|l| l.login).max().unwrap_or(0) as usize;
        let mut logins: Vec<LoginState> = (0..=login_max)
            .map(|id| LoginState {
                password: Alpha::BLANK,
                password_len: usize::MAX, // no such login: nothing matches
                username: String::new(),
                next_seq: p.next_seq.get(id).copied().unwrap_or(1).max(1),
                disabled: p.disabled.get(id).copied().unwrap_or(false),
                session: None,
                ends_pending: 0,
                index: SparseIndex::new(),
            })
            .collect();
        let mut by_username = HashMap::with_capacity(p.logins.len());
        for l in &p.logins {
            assert!(l.login > 0, "login ids are 1-based");
            let state = &mut logins[l.login as usize];
            let password = trim_field(&l.password.0);
            state.password.0[..password.len()].copy_from_slice(password);
            state.password_len = password.len();
            state.username = String::from_utf8_lossy(trim_field(&l.username.0)).into_owned();
            if let Some(key) = username_key(trim_field(&l.username.0)) {
                by_username.insert(key, l.login);
            }
        }
        let sessions_max = p.order_entry.sessions_max as usize;
        let frame_size_max = p.order_entry.frame_size_max as usize;
        let read_buffer_bytes = READ_BUFFER_BYTES.max(2 * frame_size_max);
        let shortest_timer_ns = p
            .order_entry
            .login_timeout_ms
            .min(p.order_entry.heartbeat_interval_ms)
            .min(p.order_entry.idle_timeout_ms)
            .saturating_mul(1_000_000);
        let timer_sweep_ns = (shortest_timer_ns / 4).clamp(TIMER_SWEEP_NS_MIN, TIMER_SWEEP_NS_MAX);
        let now_ns = p.clock.now_ns();
        Ok(Ingress {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            replies: p.replies,
            bufs: Vec::with_capacity(sessions_max.min(1 << 16)),
            st: State {
                cfg: p.order_entry,
                registry,
                listener: Some(listener),
                listener_ready: true,
                accept_failures: 0,
                sessions: Vec::with_capacity(sessions_max.min(1 << 16)),
                generations: Vec::with_capacity(sessions_max.min(1 << 16)),
                free_slots: Vec::with_capacity(sessions_max.min(1 << 16)),
                connections: 0,
                logged_in: 0,
                by_username,
                logins,
                session_name: p.session,
                day_open: p.day_open,
                end_of_day_barrier: false,
                requests: p.requests,
                held: VecDeque::with_capacity(sessions_max + 1024),
                ready: VecDeque::with_capacity(sessions_max.min(1 << 16)),
                dirty: Vec::with_capacity(sessions_max.min(1 << 16)),
                deferred: Vec::with_capacity(sessions_max.min(1 << 16)),
                request_in_round: false,
                flush_next: Vec::with_capacity(sessions_max.min(1 << 16)),
                replay_list: VecDeque::with_capacity(sessions_max.min(1 << 16)),
                journal_dir: p.journal_dir,
                day_start_journal_seq: p.day_start_journal_seq,
                reader: None,
                reader_next: u64::MAX,
                shared: p.shared,
                lifecycle: p.lifecycle,
                shutting_down: false,
                closed_announced: false,
                clock: p.clock,
                now_ns,
                timer_cursor: 0,
                timer_last_ns: now_ns,
                timer_sweep_ns,
                last_publish_ns: now_ns,
                hist_ingress: stats::latency_histogram(),
                hist_w2w: stats::latency_histogram(),
                read_buffer_bytes,
                scratch: vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
            },
        })
    }

    /// Open connections (logged in or not, closing included).
    pub fn connections(&self) -> usize {
        self.st.connections
    }

    /// Logged-in connections.
    pub fn logged_in(&self) -> u64 {
        self.st.logged_in
    }

    fn poll_events(&mut self) -> usize {
        if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("boursed: ingress: poll failed: {e}");
            }
            return 0;
        }
        let mut count = 0;
        for event in self.events.iter() {
            count += 1;
            if event.token() == LISTENER {
                self.st.listener_ready = true;
                continue;
            }
            let (slot, generation) = untoken(event.token());
            let st = &mut self.st;
            if st.generations.get(slot as usize) != Some(&generation) {
                continue;
            }
            let s = &mut st.sessions[slot as usize];
            if s.phase == Phase::Free {
                continue;
            }
            if event.is_read_closed() || event.is_error() {
                // The end of the stream may come in the same report as the last bytes: read to it.
                s.peer_closed = true;
            }
            if (event.is_readable() || event.is_read_closed() || event.is_error()) && !s.in_ready {
                s.in_ready = true;
                st.ready.push_back((slot, generation));
            }
            if (event.is_writable() || event.is_error()) && !s.dirty {
                s.dirty = true;
                st.dirty.push(slot);
            }
        }
        count
    }

    fn accept(&mut self) -> usize {
        let mut accepted = 0;
        while self.st.listener_ready && accepted < ACCEPTS_PER_CALL_MAX {
            let Some(listener) = self.st.listener.as_ref() else {
                return accepted;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    accepted += 1;
                    if self.st.connections >= self.st.cfg.sessions_max as usize {
                        // IR-85: closed before any packet.
                        drop(stream);
                        continue;
                    }
                    self.open_session(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.st.listener_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors and the like: the connection waits in the backlog; retry later
                    // (logged at the 1st, 2nd, 4th, 8th, ... failure, not once per call).
                    self.st.accept_failures += 1;
                    if self.st.accept_failures.is_power_of_two() {
                        eprintln!(
                            "boursed: ingress: accept failed ({} times so far): {e}",
                            self.st.accept_failures
                        );
                    }
                    break;
                }
            }
        }
        accepted
    }

    fn open_session(&mut self, mut stream: TcpStream, peer: std::net::SocketAddr) {
        let st = &mut self.st;
        let slot = match st.free_slots.pop() {
            Some(slot) => slot,
            None => {
                st.sessions.push(Session::new());
                st.generations.push(0);
                self.bufs.push(None);
                (st.sessions.len() - 1) as u32
            }
        };
        let generation = st.generations[slot as usize];
        let _ = stream.set_nodelay(true);
        if let Err(e) = st.registry.register(
            &mut stream,
            token(slot, generation),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            eprintln!("boursed: ingress: register failed: {e}");
            st.free_slots.push(slot);
            return;
        }
        let buf = self.bufs[slot as usize]
            .get_or_insert_with(|| StreamBuffer::new(st.read_buffer_bytes, st.cfg.frame_size_max as usize));
        buf.clear();
        let now = st.now_ns;
        let s = &mut st.sessions[slot as usize];
        s.stream = Some(stream);
        s.phase = Phase::AwaitLogin;
        s.abort = false;
        s.login = 0;
        s.peer.clear();
        use std::fmt::Write as _;
        let _ = write!(s.peer, "{peer}");
        s.connected_ns = now;
        s.last_recv_ns = now;
        s.last_send_ns = now;
        s.closing_deadline_ns = 0;
        s.out.clear();
        s.out_head = 0;
        s.dirty = false;
        s.in_ready = true;
        s.frames_left = false;
        s.peer_closed = false;
        s.sent_next = 0;
        s.replaying = false;
        s.in_replay_list = false;
        s.end_of_day_pending = false;
        s.messages_in = 0;
        s.messages_out = 0;
        s.w2w_len = 0;
        // Bytes may have arrived with the connection: edge-triggered readiness may already have passed.
        st.ready.push_back((slot, generation));
        st.connections += 1;
    }

    fn read_sockets(&mut self) -> usize {
        if !self.st.held.is_empty() || self.st.end_of_day_barrier {
            return 0;
        }
        let mut budget = self.st.requests.free_slots();
        let mut reads = 0;
        let mut work = 0;
        while reads < READS_PER_CALL_MAX && budget > 0 {
            let Some((slot, generation)) = self.st.ready.pop_front() else {
                break;
            };
            let index = slot as usize;
            if self.st.generations[index] != generation {
                continue;
            }
            if !self.st.sessions[index].is_open() {
                self.st.sessions[index].in_ready = false;
                continue;
            }
            if self.st.sessions[index].frames_left {
                let recv_ns = self.st.sessions[index].last_read_clock_ns;
                work += self.drain_frames(slot, recv_ns, &mut budget);
                if self.st.sessions[index].frames_left || !self.st.sessions[index].is_open() {
                    // Out of budget (or closed): keep its place for the next call.
                    if self.st.sessions[index].is_open() {
                        self.st.ready.push_front((slot, generation));
                    } else {
                        self.st.sessions[index].in_ready = false;
                    }
                    continue;
                }
            }
            reads += 1;
            let result = {
                let (Some(buf), Some(stream)) =
                    (self.bufs[index].as_mut(), self.st.sessions[index].stream.as_mut())
                else {
                    self.st.sessions[index].in_ready = false;
                    continue;
                };
                let spare = buf.spare_mut();
                let spare_len = spare.len();
                let result = stream.read(spare);
                if let Ok(n) = result {
                    buf.commit(n);
                }
                result.map(|n| (n, spare_len))
            };
            let s = &mut self.st.sessions[index];
            match result {
                Ok((0, _)) => {
                    // The peer closed its side.
                    s.in_ready = false;
                    self.st.close(slot, Close::Abort);
                }
                Ok((n, spare_len)) => {
                    let recv_ns = self.st.clock.now_ns();
                    s.last_read_clock_ns = recv_ns;
                    let pushed_before = budget;
                    work += self.drain_frames(slot, recv_ns, &mut budget);
                    if budget < pushed_before {
                        let st = &mut self.st;
                        stats::record(&mut st.hist_ingress, st.clock.now_ns().saturating_sub(recv_ns));
                    }
                    let s = &mut self.st.sessions[index];
                    if !s.is_open() {
                        s.in_ready = false;
                    } else if s.frames_left {
                        // Out of request budget: this session goes first next time.
                        self.st.ready.push_front((slot, generation));
                    } else if n < spare_len && !s.peer_closed {
                        // A short read emptied the socket: the next arrival raises a new readiness edge
                        // (epoll reports every arrival after a report), so no read that would block.
                        s.in_ready = false;
                    } else {
                        self.st.ready.push_back((slot, generation));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.in_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.st.ready.push_back((slot, generation));
                }
                Err(_) => {
                    s.in_ready = false;
                    self.st.close(slot, Close::Abort);
                }
            }
        }
        work
    }

    /// Hands the complete frames in `slot`'s read buffer to the session layer, at most `budget` of them
    /// (each may push one request). Returns the frames handled.
    fn drain_frames(&mut self, slot: u32, recv_ns: u64, budget: &mut usize) -> usize {
        let index = slot as usize;
        let Some(buf) = self.bufs[index].as_mut() else {
            return 0;
        };
        let frames_max = *budget;
        let st = &mut self.st;
        let result = buf.for_each_packet(frames_max, |packet| st.on_packet(slot, packet, recv_ns));
        match result {
            Ok(frames) => {
                *budget -= frames;
                st.sessions[index].frames_left = frames == frames_max;
                frames
            }
            Err(error) => {
                st.sessions[index].frames_left = false;
                if st.sessions[index].is_open() {
                    st.close(slot, Close::Debug(frame_error_text(&error)));
                }
                1
            }
        }
    }

    fn drain_replies(&mut self) -> usize {
        let st = &mut self.st;
        if st.shutting_down {
            return self.replies.drain(REPLIES_PER_CALL_MAX, |_| {});
        }
        self.replies
            .drain(REPLIES_PER_CALL_MAX, |reply| st.on_reply(reply))
    }

    fn flush_dirty(&mut self) -> usize {
        let mut work = 0;
        let mut i = 0;
        // `flush` may close sessions, which does not add to `dirty` while the list is walked (closing
        // marks dirty only once per session), so walking by index sees every entry.
        while i < self.st.dirty.len() {
            let slot = self.st.dirty[i];
            i += 1;
            let s = &mut self.st.sessions[slot as usize];
            if !s.dirty {
                continue;
            }
            s.dirty = false;
            work += self.flush(slot);
        }
        self.st.dirty.clear();
        let st = &mut self.st;
        while let Some(slot) = st.flush_next.pop() {
            st.mark_dirty(slot);
        }
        work
    }

    /// Writes `slot`'s queue (a bounded number of write calls); finalizes a closing session once written.
    fn flush(&mut self, slot: u32) -> usize {
        let index = slot as usize;
        let st = &mut self.st;
        let s = &st.sessions[index];
        if s.phase == Phase::Free {
            return 0;
        }
        if s.phase == Phase::Closing && s.abort {
            self.finalize(slot, false);
            return 1;
        }
        let written = match st.write_out(slot) {
            Ok(written) => written,
            Err(()) => {
                st.close(slot, Close::Abort);
                self.finalize(slot, false);
                return 1;
            }
        };
        let s = &st.sessions[index];
        if s.phase == Phase::Closing && s.out_head == s.out.len() {
            self.finalize(slot, true);
        }
        usize::from(written > 0)
    }

    /// Closes the socket and frees the slot. `graceful`: half-close first and discard what the peer still
    /// sends, so the peer reads our last packets before the end of stream.
    fn finalize(&mut self, slot: u32, graceful: bool) {
        let index = slot as usize;
        let st = &mut self.st;
        let s = &mut st.sessions[index];
        if s.phase == Phase::Free {
            return;
        }
        debug_assert!(s.phase == Phase::Closing, "finalize of an open session");
        if let Some(mut stream) = s.stream.take() {
            let _ = st.registry.deregister(&mut stream);
            if graceful {
                let _ = stream.shutdown(Shutdown::Write);
                for _ in 0..DISCARD_READS_MAX {
                    match stream.read(&mut st.scratch) {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
            }
        }
        s.phase = Phase::Free;
        s.abort = false;
        s.dirty = false;
        s.in_ready = false;
        s.frames_left = false;
        s.out_head = 0;
        s.out.clear();
        if s.out.capacity() > SEND_BUFFER_KEEP_BYTES {
            s.out = Vec::new();
        }
        if let Some(buf) = self.bufs[index].as_mut() {
            buf.clear();
        }
        st.generations[index] = st.generations[index].wrapping_add(1);
        st.free_slots.push(slot);
        st.connections -= 1;
    }

    fn scan_timers(&mut self) -> usize {
        let st = &mut self.st;
        let high_water = st.sessions.len();
        if high_water == 0 {
            st.timer_last_ns = st.now_ns;
            return 0;
        }
        let elapsed = st.now_ns.saturating_sub(st.timer_last_ns);
        let due = (high_water as u128 * elapsed as u128 / st.timer_sweep_ns as u128) as usize;
        if due == 0 {
            return 0;
        }
        st.timer_last_ns = st.now_ns;
        let count = due.min(TIMER_SCAN_PER_CALL_MAX).min(high_water);
        let mut work = 0;
        for _ in 0..count {
            if st.timer_cursor >= high_water {
                st.timer_cursor = 0;
            }
            let slot = st.timer_cursor as u32;
            st.timer_cursor += 1;
            work += st.check_timers(slot);
        }
        work
    }

    fn publish(&mut self) {
        let st = &mut self.st;
        if st.now_ns.saturating_sub(st.last_publish_ns) < stats::PUBLISH_INTERVAL_NS
            && st.shared.sessions_wanted().is_none()
        {
            return;
        }
        st.last_publish_ns = st.now_ns;
        st.shared.hand_over_histogram("ingress", &mut st.hist_ingress);
        st.shared.hand_over_histogram("wire_to_wire", &mut st.hist_w2w);
        // Ring gauges are written by each ring's consumer (stats.rs): ingress consumes the replies ring.
        st.shared.ring_len[1].store(self.replies.len() as u64, Ordering::Relaxed);
        st.shared
            .sessions_logged_in
            .store(st.logged_in, Ordering::Relaxed);
        // The session table (two strings per session) is built only when admin asked for it: with
        // 10,000 sessions, building it every interval cost the pipeline thread hundreds of microseconds.
        let Some(ticket) = st.shared.sessions_wanted() else {
            return;
        };
        let now = st.now_ns;
        let sessions = &st.sessions;
        let logins = &st.logins;
        st.shared.publish_sessions(ticket, |rows| {
            for s in sessions.iter().filter(|s| s.phase != Phase::Free) {
                let user = (s.phase == Phase::LoggedIn).then(|| logins[s.login as usize].username.clone());
                rows.push(bourse_protocol::admin::SessionInfo {
                    user,
                    peer: s.peer.clone(),
                    sequence_next: s.sent_next,
                    send_queue_bytes: s.queued_bytes() as u64,
                    messages_in: s.messages_in,
                    messages_out: s.messages_out,
                    connected_ms: now.saturating_sub(s.connected_ns) / 1_000_000,
                });
            }
        });
    }

    fn shutdown(&mut self) -> usize {
        let st = &mut self.st;
        if !st.shutting_down {
            st.shutting_down = true;
            if let Some(mut listener) = st.listener.take() {
                let _ = st.registry.deregister(&mut listener);
            }
            for slot in 0..st.sessions.len() as u32 {
                if st.sessions[slot as usize].phase != Phase::Free {
                    st.close(slot, Close::Abort);
                }
            }
            for slot in 0..self.st.sessions.len() as u32 {
                if self.st.sessions[slot as usize].phase != Phase::Free {
                    self.finalize(slot, false);
                }
            }
            self.st.dirty.clear();
            self.st.deferred.clear();
            self.st.ready.clear();
            self.st.replay_list.clear();
        }
        let st = &mut self.st;
        let work = st.push_held();
        if st.held.is_empty() && !st.closed_announced {
            st.closed_announced = true;
            st.shared.sessions_logged_in.store(0, Ordering::Relaxed);
            st.lifecycle.ingress_closed.store(true, Ordering::Release);
        }
        work + self.drain_replies()
    }
}

/// A reader over the journal in `dir` (read-only mapping; it tails the core's writer).
fn open_reader(dir: &std::path::Path) -> Result<Reader<MmapStorage>, String> {
    let storage = MmapStorage::open_read_only(dir).map_err(|e| e.to_string())?;
    Reader::new(storage).map_err(|e| e.to_string())
}

impl State {
    /// Pushes held-back requests in order; returns how many went.
    fn push_held(&mut self) -> usize {
        let mut pushed = 0;
        while let Some(&request) = self.held.front() {
            if self.requests.push(request).is_err() {
                break;
            }
            self.held.pop_front();
            if matches!(request.body, RequestBody::SessionEnded)
                && let Some(l) = self.logins.get_mut(request.login as usize)
            {
                l.ends_pending -= 1;
            }
            pushed += 1;
        }
        pushed
    }

    /// Pushes a request, or holds it back (in order) when the ring is full.
    fn push_request(&mut self, request: Request) {
        self.request_in_round = true;
        if self.held.is_empty() {
            match self.requests.push(request) {
                Ok(()) => return,
                Err(full) => self.held.push_back(full.0),
            }
        } else {
            self.held.push_back(request);
        }
        if matches!(request.body, RequestBody::SessionEnded)
            && let Some(l) = self.logins.get_mut(request.login as usize)
        {
            l.ends_pending += 1;
        }
    }

    /// Writes as much of `slot`'s send queue as the socket takes (a bounded number of write calls) and
    /// returns the bytes written; records wire-to-wire samples once the queue is empty.
    ///
    /// # Errors
    /// The peer is gone (the caller closes the connection).
    fn write_out(&mut self, slot: u32) -> Result<usize, ()> {
        let s = &mut self.sessions[slot as usize];
        let Some(stream) = s.stream.as_mut() else {
            return Ok(0);
        };
        let mut written = 0;
        let mut result = Ok(());
        let mut blocked = false;
        for _ in 0..WRITES_PER_FLUSH_MAX {
            if s.out_head == s.out.len() {
                break;
            }
            match stream.write(&s.out[s.out_head..]) {
                Ok(0) => {
                    result = Err(());
                    break;
                }
                Ok(n) => {
                    s.out_head += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    result = Err(());
                    break;
                }
            }
        }
        if !blocked && result.is_ok() && s.out_head < s.out.len() {
            // Stopped at the write-call bound with the socket still writable: no writable edge will
            // come, so write again next call.
            self.flush_next.push(slot);
        }
        if s.out_head == s.out.len() {
            s.out.clear();
            s.out_head = 0;
            if s.w2w_len > 0 {
                let now = self.clock.now_ns();
                for &recv_ns in &s.w2w[..s.w2w_len] {
                    stats::record(&mut self.hist_w2w, now.saturating_sub(recv_ns));
                }
                s.w2w_len = 0;
            }
        }
        result.map(|()| written)
    }

    fn mark_dirty(&mut self, slot: u32) {
        let s = &mut self.sessions[slot as usize];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Starts closing `slot`: a logged-in session ends now (SessionEnded pushed, the login is free); the
    /// socket is closed by the flush at the end of this call (after the queue for `Debug`/`AfterQueue`).
    fn close(&mut self, slot: u32, how: Close) {
        let index = slot as usize;
        let now = self.now_ns;
        let linger_ns = self.cfg.idle_timeout_ms.saturating_mul(1_000_000);
        let s = &mut self.sessions[index];
        match s.phase {
            Phase::Free => return,
            Phase::Closing => {
                if how == Close::Abort {
                    s.abort = true;
                    self.mark_dirty(slot);
                }
                return;
            }
            Phase::AwaitLogin => {}
            Phase::LoggedIn => {
                let login = s.login;
                s.login = 0;
                s.replaying = false;
                self.logged_in -= 1;
                self.shared
                    .sessions_logged_in
                    .store(self.logged_in, Ordering::Relaxed);
                if let Some(l) = self.logins.get_mut(login as usize)
                    && l.session == Some(slot)
                {
                    l.session = None;
                }
                self.push_request(Request {
                    login,
                    recv_ns: 0,
                    body: RequestBody::SessionEnded,
                    echo: *b"   ",
                });
            }
        }
        let s = &mut self.sessions[index];
        s.phase = Phase::Closing;
        s.closing_deadline_ns = now.saturating_add(linger_ns);
        match how {
            Close::Debug(text) => {
                let text = &text.as_bytes()[..text.len().min(DEBUG_TEXT_LEN_MAX)];
                s.append(PacketType::Debug, text, now);
            }
            Close::AfterQueue => {}
            Close::Abort => s.abort = true,
        }
        self.mark_dirty(slot);
    }

    /// One complete frame from `slot` (read at `recv_ns`).
    fn on_packet(&mut self, slot: u32, packet: Packet<'_>, recv_ns: u64) -> ControlFlow<()> {
        let index = slot as usize;
        let s = &mut self.sessions[index];
        s.last_recv_ns = self.now_ns;
        match (s.phase, packet) {
            (Phase::AwaitLogin, Packet::LoginRequest(request)) => self.on_login(slot, &request),
            (Phase::AwaitLogin | Phase::LoggedIn, Packet::Debug(_)) => ControlFlow::Continue(()),
            (
                Phase::AwaitLogin,
                Packet::UnsequencedData(_) | Packet::ClientHeartbeat | Packet::LogoutRequest,
            ) => {
                // IR-73.
                self.close(slot, Close::Debug("message before login"));
                ControlFlow::Break(())
            }
            (Phase::LoggedIn, Packet::UnsequencedData(payload)) => self.on_order(slot, payload, recv_ns),
            (Phase::LoggedIn, Packet::ClientHeartbeat) => ControlFlow::Continue(()),
            (Phase::LoggedIn, Packet::LogoutRequest) => {
                // IR-83.
                self.close(slot, Close::AfterQueue);
                ControlFlow::Break(())
            }
            (Phase::LoggedIn, Packet::LoginRequest(_)) => {
                // IR-76.
                self.close(slot, Close::Debug("login request on a logged-in connection"));
                ControlFlow::Break(())
            }
            (Phase::AwaitLogin | Phase::LoggedIn, _) => {
                // IR-72: a server-only packet type from a client.
                self.close(slot, Close::Debug("unknown packet type"));
                ControlFlow::Break(())
            }
            (Phase::Closing | Phase::Free, _) => ControlFlow::Break(()),
        }
    }

    fn reject_login(&mut self, slot: u32, reason: LoginRejectReason) -> ControlFlow<()> {
        let now = self.now_ns;
        self.sessions[slot as usize].append(PacketType::LoginRejected, &[reason.code()], now);
        self.close(slot, Close::AfterQueue);
        ControlFlow::Break(())
    }

    /// IR-67, IR-68, IR-69.
    fn on_login(&mut self, slot: u32, request: &LoginRequest) -> ControlFlow<()> {
        let Some(key) = username_key(trim_field(&request.username.0)) else {
            return self.reject_login(slot, LoginRejectReason::NotAuthorized);
        };
        let Some(&login) = self.by_username.get(&key) else {
            return self.reject_login(slot, LoginRejectReason::NotAuthorized);
        };
        let state = &self.logins[login as usize];
        let password = trim_field(&request.password.0);
        if password != &state.password.0[..state.password_len.min(10)] {
            return self.reject_login(slot, LoginRejectReason::NotAuthorized);
        }
        if !self.day_open || !request.wants_session(&self.session_name) {
            return self.reject_login(slot, LoginRejectReason::SessionNotAvailable);
        }
        if state.disabled || state.session.is_some() || state.ends_pending > 0 {
            return self.reject_login(slot, LoginRejectReason::NotAuthorized);
        }
        let next = state.next_seq;
        let requested = request.requested_sequence_number;
        let first = if (1..next).contains(&requested) {
            requested
        } else {
            next
        };
        let now = self.now_ns;
        let mut accepted = [0u8; 33];
        let len = Packet::LoginAccepted(LoginAccepted {
            session: self.session_name,
            sequence_number: first,
        })
        .encode(&mut accepted)
        .expect("a Login Accepted always fits 33 bytes");
        let cfg = &self.cfg;
        let s = &mut self.sessions[slot as usize];
        s.phase = Phase::LoggedIn;
        s.login = login;
        s.sent_next = first;
        s.throttle = Throttle::new(
            cfg.throttle_msgs_per_s,
            cfg.throttle_burst_max,
            cfg.throttle_excess_max,
            now,
        );
        s.append(PacketType::LoginAccepted, &accepted[3..len], now);
        self.logins[login as usize].session = Some(slot);
        self.logged_in += 1;
        self.shared
            .sessions_logged_in
            .store(self.logged_in, Ordering::Relaxed);
        self.mark_dirty(slot);
        if first < next {
            self.start_replay(slot);
        }
        ControlFlow::Continue(())
    }

    fn start_replay(&mut self, slot: u32) {
        let generation = self.generations[slot as usize];
        let s = &mut self.sessions[slot as usize];
        let login = &self.logins[s.login as usize];
        s.replaying = true;
        s.replay_journal_next = login
            .index
            .lookup(s.sent_next)
            .unwrap_or(self.day_start_journal_seq)
            .max(self.day_start_journal_seq);
        if !s.in_replay_list {
            s.in_replay_list = true;
            self.replay_list.push_back((slot, generation));
        }
    }

    /// IR-37, IR-46, IR-66, IR-78..IR-80.
    fn on_order(&mut self, slot: u32, payload: &[u8], recv_ns: u64) -> ControlFlow<()> {
        let s = &mut self.sessions[slot as usize];
        let login = s.login;
        let command = match order_command(login, payload) {
            Ok(command) => command,
            Err(text) => {
                self.close(slot, Close::Debug(text));
                return ControlFlow::Break(());
            }
        };
        s.messages_in += 1;
        let body = match s.throttle.take(self.now_ns) {
            Verdict::Pass => RequestBody::Order(command),
            Verdict::Excess => match command {
                Command::Enter(e) => RequestBody::Throttled { token: e.token },
                Command::Replace(r) => RequestBody::Throttled {
                    token: r.replacement_token,
                },
                other => RequestBody::Order(other),
            },
            Verdict::Disconnect => {
                self.close(slot, Close::Debug("far over the throttle"));
                return ControlFlow::Break(());
            }
        };
        let echo = order_echo(payload);
        self.push_request(Request {
            login,
            recv_ns,
            body,
            echo,
        });
        ControlFlow::Continue(())
    }

    fn on_reply(&mut self, reply: &ToSession) {
        match *reply {
            ToSession::Ouch {
                login,
                session_seq,
                journal_seq,
                recv_ns,
                len,
                ref bytes,
            } => {
                let Some(state) = self.logins.get_mut(login as usize) else {
                    return;
                };
                if session_seq >= state.next_seq {
                    state.next_seq = session_seq + 1;
                }
                state.index.note(session_seq, journal_seq);
                let Some(slot) = state.session else {
                    return;
                };
                let s = &mut self.sessions[slot as usize];
                if s.phase != Phase::LoggedIn || s.replaying || session_seq < s.sent_next {
                    return;
                }
                if session_seq > s.sent_next {
                    // Missed messages (should not happen live): fetch them from the journal.
                    self.start_replay(slot);
                    return;
                }
                let message = &bytes[..usize::from(len).min(bytes.len())];
                let queue_max = self.cfg.send_queue_bytes_max as usize;
                if s.queued_bytes() + 3 + message.len() > queue_max {
                    // Full: write what the socket takes now, then decide.
                    let written = self.write_out(slot);
                    let s = &self.sessions[slot as usize];
                    if written.is_err() || s.queued_bytes() + 3 + message.len() > queue_max {
                        // IR-82: the client does not read; it logs in again and replays.
                        self.close(slot, Close::Abort);
                        return;
                    }
                }
                let s = &mut self.sessions[slot as usize];
                s.append(PacketType::SequencedData, message, self.now_ns);
                s.sent_next += 1;
                s.messages_out += 1;
                if recv_ns != 0 && s.w2w_len < W2W_PENDING_MAX {
                    s.w2w[s.w2w_len] = recv_ns;
                    s.w2w_len += 1;
                }
                self.mark_dirty(slot);
            }
            ToSession::EndOfDay => {
                self.day_open = false;
                self.end_of_day_barrier = true;
                self.push_request(Request {
                    login: 0,
                    recv_ns: 0,
                    body: RequestBody::EndOfDayBarrier,
                    echo: *b"   ",
                });
            }
            ToSession::EndOfDayDrained => {
                self.end_of_day_barrier = false;
                for slot in 0..self.sessions.len() as u32 {
                    let s = &mut self.sessions[slot as usize];
                    if s.phase != Phase::LoggedIn {
                        continue;
                    }
                    if s.replaying {
                        s.end_of_day_pending = true;
                    } else {
                        self.end_of_session(slot);
                    }
                }
            }
            ToSession::ForceLogout { login } => {
                if let Some(slot) = self.logins.get(login as usize).and_then(|l| l.session) {
                    self.close(slot, Close::Abort);
                }
            }
            ToSession::SetEnabled { login, enabled } => {
                let Some(state) = self.logins.get_mut(login as usize) else {
                    return;
                };
                state.disabled = !enabled;
                self.shared.set_login_disabled(login, !enabled);
                if !enabled && let Some(slot) = state.session {
                    self.close(slot, Close::Abort);
                }
            }
        }
    }

    /// End of Session `Z` after the queued output, then close.
    fn end_of_session(&mut self, slot: u32) {
        let now = self.now_ns;
        self.sessions[slot as usize].append(PacketType::EndOfSession, &[], now);
        self.close(slot, Close::AfterQueue);
    }

    /// A bounded chunk of journal replay for the replaying sessions, round robin.
    fn replay(&mut self) -> usize {
        let mut budget = REPLAY_RECORDS_PER_CALL_MAX;
        let mut visits = self.replay_list.len();
        let mut work = 0;
        let half_queue = (self.cfg.send_queue_bytes_max / 2) as usize;
        while budget > 0 && visits > 0 {
            visits -= 1;
            let Some((slot, generation)) = self.replay_list.pop_front() else {
                break;
            };
            let index = slot as usize;
            if self.generations[index] != generation {
                continue;
            }
            let s = &mut self.sessions[index];
            if s.phase != Phase::LoggedIn || !s.replaying {
                s.in_replay_list = false;
                continue;
            }
            if s.queued_bytes() >= half_queue {
                // Paused until the client reads.
                self.replay_list.push_back((slot, generation));
                continue;
            }
            if self.reader.is_none() {
                match open_reader(&self.journal_dir) {
                    Ok(reader) => {
                        // A new reader starts at the first record of the journal.
                        self.reader = Some(reader);
                        self.reader_next = 0;
                    }
                    Err(e) => {
                        eprintln!("boursed: ingress: cannot open the journal for replay: {e}");
                        s.in_replay_list = false;
                        self.close(slot, Close::Debug("replay unavailable"));
                        continue;
                    }
                }
            }
            let reader = self.reader.as_mut().expect("opened above");
            let login = s.login;
            let target = s.replay_journal_next;
            let mut failed = false;
            // Backwards: a seek (the reader's index bounds the walk). Forwards: plain reads, counted in
            // the budget, so that a first replay far into a long journal is spread over calls instead
            // of scanning everything before it in one (`Reader::seek` scans up to its target).
            if target < self.reader_next {
                if reader.seek(target).is_err() {
                    failed = true;
                }
                self.reader_next = target;
            }
            while !failed && budget > 0 {
                match reader.next_record() {
                    Ok(Some(record)) => {
                        budget -= 1;
                        work += 1;
                        self.reader_next = record.sequence + 1;
                        if record.sequence < target {
                            continue;
                        }
                        s.replay_journal_next = record.sequence + 1;
                        if record.kind != KIND_OUCH {
                            continue;
                        }
                        let Some((owner, seq, message)) = journaled::decode_ouch(record.payload) else {
                            continue;
                        };
                        if owner != login || seq != s.sent_next || message.len() > ouch::MESSAGE_LEN_MAX {
                            continue;
                        }
                        s.append(PacketType::SequencedData, message, self.now_ns);
                        s.sent_next += 1;
                        s.messages_out += 1;
                        if s.queued_bytes() >= half_queue {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("boursed: ingress: journal read failed during a replay: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                self.reader = None;
                self.reader_next = u64::MAX;
                s.in_replay_list = false;
                self.close(slot, Close::Debug("replay failed"));
                continue;
            }
            if s.out_head < s.out.len() && !s.dirty {
                s.dirty = true;
                self.dirty.push(slot);
            }
            if s.sent_next >= self.logins[login as usize].next_seq {
                s.replaying = false;
                s.in_replay_list = false;
                if s.end_of_day_pending {
                    self.end_of_session(slot);
                }
            } else {
                self.replay_list.push_back((slot, generation));
            }
        }
        work
    }

    /// Timers of one slot (IR-74, IR-81, heartbeats, closing linger).
    fn check_timers(&mut self, slot: u32) -> usize {
        let now = self.now_ns;
        let cfg = &self.cfg;
        let s = &mut self.sessions[slot as usize];
        match s.phase {
            Phase::Free => 0,
            Phase::AwaitLogin => {
                if now.saturating_sub(s.connected_ns) >= cfg.login_timeout_ms.saturating_mul(1_000_000) {
                    self.close(slot, Close::Abort);
                    1
                } else {
                    0
                }
            }
            Phase::LoggedIn => {
                if now.saturating_sub(s.last_recv_ns) >= cfg.idle_timeout_ms.saturating_mul(1_000_000) {
                    self.close(slot, Close::Abort);
                    1
                } else if s.queued_bytes() == 0
                    && now.saturating_sub(s.last_send_ns)
                        >= cfg.heartbeat_interval_ms.saturating_mul(1_000_000)
                {
                    s.append(PacketType::ServerHeartbeat, &[], now);
                    self.mark_dirty(slot);
                    1
                } else {
                    0
                }
            }
            Phase::Closing => {
                if now >= s.closing_deadline_ns {
                    s.abort = true;
                    self.mark_dirty(slot);
                    1
                } else {
                    0
                }
            }
        }
    }
}

impl Agent for Ingress {
    fn name(&self) -> &'static str {
        "ingress"
    }

    fn do_work(&mut self, now_ns: u64) -> usize {
        self.st.now_ns = now_ns;
        if self.st.shutting_down || self.st.lifecycle.shutdown.load(Ordering::Acquire) {
            return self.shutdown();
        }
        let mut work = self.st.push_held();
        // Replies first: what the core released since the last round goes out before this round's
        // `epoll_wait` and reads, which would otherwise sit between every order and its ack (in `shared`
        // mode the core runs just before this agent, so its replies are written in the same pass).
        work += self.drain_replies();
        work += self.flush_dirty();
        if !self.st.deferred.is_empty() {
            std::mem::swap(&mut self.st.dirty, &mut self.st.deferred);
            work += self.flush_dirty();
        }
        self.st.request_in_round = false;
        work += self.poll_events();
        work += self.accept();
        work += self.st.replay();
        work += self.read_sockets();
        work += self.scan_timers();
        // What this round itself queued: logins, heartbeats, rejects of malformed input, replays. After a
        // round that read a request, they wait for that request's reply (next round, first flush).
        if self.st.request_in_round {
            std::mem::swap(&mut self.st.dirty, &mut self.st.deferred);
        } else {
            work += self.flush_dirty();
        }
        self.publish();
        work
    }

    fn on_close(&mut self) {
        for slot in 0..self.st.sessions.len() as u32 {
            if self.st.sessions[slot as usize].phase != Phase::Free {
                self.st.close(slot, Close::Abort);
                self.finalize(slot, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IR-72: a server-only packet type from a client is an unknown type, whatever its length (`A` and
    /// `J` have fixed lengths, so a short one used to read as a wrong length); a client type of the
    /// wrong length is IR-77.
    #[test]
    fn server_only_packet_types_from_a_client_are_unknown_types() {
        for packet_type in *b"AJSHZ" {
            let error = DecodeError::WrongLength {
                packet_type,
                length: 1,
            };
            assert_eq!(
                frame_error_text(&error),
                "unknown packet type",
                "{}",
                packet_type as char
            );
        }
        let error = DecodeError::WrongLength {
            packet_type: b'R',
            length: 2,
        };
        assert_eq!(frame_error_text(&error), "wrong packet length for its type");
    }

    #[test]
    fn order_commands_carry_the_wire_values_and_bad_letters_pass() {
        let token = Alpha::<14>::new("T1").unwrap();
        let terms = ouch::OrderTerms {
            side: ouch::Side::Buy,
            shares: 100,
            stock: Alpha::new("AAPL").unwrap(),
            price: 1_900_000,
            time_in_force: 99_999,
            firm: Alpha::new("FRM1").unwrap(),
            display: ouch::Display::Anonymous,
            capacity: b'A',
            intermarket_sweep: b'N',
            minimum_quantity: 0,
            cross_type: b'N',
        };
        let enter = ouch::EnterOrder::new(token, &terms, b'R');
        let mut bytes = ouch::Message::as_wire(&enter).to_vec();
        let Command::Enter(e) = order_command(7, &bytes).unwrap() else {
            panic!("not an enter")
        };
        assert_eq!(
            (e.login, e.token, e.side, e.shares, e.price, e.tif_s, e.display),
            (7, token, b'B', 100, 1_900_000, 99_999, b'Y')
        );
        assert_eq!(e.symbol, Alpha::new("AAPL").unwrap());
        assert_eq!(order_echo(&bytes), *b"ANN");
        assert_eq!(e.firm, Alpha::new("FRM1").unwrap());
        // A bad side is the engine's to reject, not a disconnect.
        bytes[15] = b'Q';
        let Command::Enter(e) = order_command(7, &bytes).unwrap() else {
            panic!("not an enter")
        };
        assert_eq!(e.side, b'Q');
        // Wrong length and unknown type have no trustworthy token.
        assert!(order_command(7, &bytes[..48]).is_err());
        bytes.push(b' ');
        assert!(order_command(7, &bytes).is_err());
        assert!(order_command(7, b"Zxxxxxxxxxxxxxxxxxx").is_err());
        assert!(order_command(7, b"").is_err());

        let cancel = ouch::CancelOrder::new(token, 5);
        assert_eq!(order_echo(ouch::Message::as_wire(&cancel)), *b"   ");
        assert_eq!(
            order_command(3, ouch::Message::as_wire(&cancel)).unwrap(),
            Command::Cancel {
                login: 3,
                token,
                shares: 5
            }
        );
        let modify = ouch::ModifyOrder::new(token, ouch::Side::SellShort, 9);
        assert_eq!(
            order_command(3, ouch::Message::as_wire(&modify)).unwrap(),
            Command::Modify {
                login: 3,
                token,
                side: b'T',
                shares: 9
            }
        );
    }

    #[test]
    fn login_fields_are_trimmed_on_both_sides() {
        assert_eq!(trim_field(b"  MM01"), b"MM01");
        assert_eq!(trim_field(b"MM01  "), b"MM01");
        assert_eq!(trim_field(b"      "), b"");
        assert_eq!(username_key(b"MM01"), Some(*b"MM01  "));
        assert_eq!(username_key(b""), None);
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(untoken(token(12345, 77)), (12345, 77));
        assert_ne!(token(0, 0), LISTENER);
    }
}
