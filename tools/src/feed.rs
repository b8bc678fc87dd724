//! The market-data receiver: MoldUDP64 / ITCH 5.0 on groups A and B, gap recovery through the re-request
//! server, late join through the snapshot, books kept in a [`FeedBook`]; and the `bourse md` command.
//!
//! # What it does (`docs/protocol.md` 7.4 to 7.8)
//! - Joins group A and group B on the loopback interface (socket2: `SO_REUSEADDR` + `SO_REUSEPORT`, bound to
//!   the group's address and port, `IP_ADD_MEMBERSHIP` on the interface), and has one unicast UDP socket for
//!   re-requests and their answers.
//! - Arbitration and gaps are the sans-IO [`GapTracker`]'s: each sequence number is applied once, in order,
//!   whichever of A, B or a re-request answer brings it first. The tracker says when to re-request; this module
//!   sends the request, at most one per [`FeedConfig::request_interval_min`] and at most
//!   [`FeedConfig::requests_max`] in all.
//! - Late join ([`FeedReceiver::join_with_snapshot`]): buffer the multicast packets (at most
//!   [`FeedConfig::late_join_packets_max`]; beyond that they are dropped and come back through re-requests),
//!   take the snapshot over SoupBinTCP while still draining the sockets, build the book from it, then apply
//!   the buffered messages above the snapshot's `N`.
//! - End of Session: the tracker ends once every message before it is applied; no request is sent beyond it,
//!   and [`FeedReceiver::is_ended`] tells the caller the day is over. A gap below the End of Session is still
//!   recovered (its messages exist and the day's session still serves them).
//!
//! # Counters ([`FeedCounters`])
//! Messages applied, duplicates dropped (the second copy from A/B, re-sends of applied numbers), gaps (gap
//! episodes that needed a re-request), messages recovered (applied from re-request answers), requests sent,
//! snapshot `N`, bad packets, and messages the book refused (a book error means the feed and the book
//! disagree: the first error is kept for the report).
//!
//! # Limits
//! Every buffer is sized at construction: one receive buffer of [`moldudp64::PAYLOAD_BYTES_MAX`], the
//! late-join buffer, the book's tables ([`FeedConfig::book_limits`]). Each [`FeedReceiver::poll`] reads at most
//! [`PACKETS_PER_POLL_MAX`] packets.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bourse_book::feed::{FeedBook, FeedBookLimits};
use bourse_protocol::admin::{DEPTH_LEVELS_MAX, DepthLevel, DepthReply};
use bourse_protocol::fields::Symbol;
use bourse_protocol::moldudp64::{self, GapTracker, GapTrackerConfig, PacketKind, Session, TrackerState};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::admin::{self, AdminClient, GlobalOptions, Ports};
use crate::client::{self, Client, ClientConfig, LoginOutcome};

/// Most packets one [`FeedReceiver::poll`] reads.
pub const PACKETS_PER_POLL_MAX: usize = 4096;
/// Kernel receive buffer asked for on each multicast socket.
pub const SOCKET_RECEIVE_BYTES: usize = 4 << 20;

const TOKEN_A: Token = Token(0);
const TOKEN_B: Token = Token(1);
const TOKEN_REREQUEST: Token = Token(2);

/// Settings of a [`FeedReceiver`].
#[derive(Clone, Debug)]
pub struct FeedConfig {
    /// Group A (multicast address and port).
    pub group_a: SocketAddrV4,
    /// Group B.
    pub group_b: SocketAddrV4,
    /// Interface to join on (`market_data.interface`; 127.0.0.1).
    pub interface: Ipv4Addr,
    /// The re-request server.
    pub rerequest: SocketAddr,
    /// Gap timers and the request size.
    pub gap: GapTrackerConfig,
    /// At most one request per this interval.
    pub request_interval_min: Duration,
    /// At most this many requests in all (then gaps stay open and are reported).
    pub requests_max: u64,
    /// Packets buffered while the snapshot is taken.
    pub late_join_packets_max: usize,
    /// The book's tables.
    pub book_limits: FeedBookLimits,
}

impl FeedConfig {
    /// A config for these addresses with bourse's defaults for the rest.
    pub fn new(group_a: SocketAddrV4, group_b: SocketAddrV4, rerequest: SocketAddr) -> Self {
        Self {
            group_a,
            group_b,
            interface: Ipv4Addr::LOCALHOST,
            rerequest,
            gap: GapTrackerConfig {
                request_count_max: 1000,
                gap_wait_ns: 2_000_000,
                request_timeout_ns: 100_000_000,
            },
            request_interval_min: Duration::from_millis(1),
            requests_max: 100_000,
            late_join_packets_max: 65_536,
            book_limits: FeedBookLimits {
                locates_max: 64,
                orders_max: 200_000,
                levels_max: 4096,
            },
        }
    }
}

/// Where to take a snapshot for a late join.
#[derive(Clone, Debug)]
pub struct SnapshotSource {
    /// The snapshot server (`snapshot.listen`).
    pub address: SocketAddr,
    /// A login of the config.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Bound on the whole snapshot.
    pub timeout: Duration,
}

/// What a [`FeedReceiver`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Feed messages applied to the book (snapshot messages not included).
    pub messages: u64,
    /// Copies of already applied sequence numbers dropped (A/B duplicates, repeated answers).
    pub duplicates: u64,
    /// Gap episodes that needed a re-request.
    pub gaps: u64,
    /// Messages applied from re-request answers.
    pub recovered: u64,
    /// Re-requests sent.
    pub requests: u64,
    /// Packets received on A, on B, from the re-request server.
    pub packets_a: u64,
    /// Packets received on B.
    pub packets_b: u64,
    /// Packets received from the re-request server.
    pub packets_rerequest: u64,
    /// Packets that are not MoldUDP64.
    pub bad_packets: u64,
    /// Packets of another session.
    pub wrong_session: u64,
    /// Messages the book refused (see [`FeedReceiver::first_book_error`]).
    pub book_errors: u64,
    /// Packets dropped because the late-join buffer was full.
    pub late_join_dropped: u64,
    /// The snapshot's `N`, if the receiver joined through one.
    pub snapshot_sequence: Option<u64>,
    /// Messages the snapshot carried (end marker excluded).
    pub snapshot_messages: u64,
}

/// Why the receiver could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A socket could not be set up or read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The snapshot failed.
    #[error("snapshot: {0}")]
    Snapshot(#[from] client::SnapshotError),
    /// The snapshot login was refused.
    #[error("snapshot login refused: {0:?}")]
    SnapshotLogin(LoginOutcome),
    /// The snapshot client failed to connect or log in.
    #[error("snapshot client: {0}")]
    Client(#[from] client::ClientError),
}

fn io_context(context: impl Into<String>) -> impl FnOnce(io::Error) -> FeedError {
    let context = context.into();
    move |source| FeedError::Io { context, source }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    A,
    B,
    Rerequest,
}

/// The sockets and the receive buffer.
struct Sockets {
    poll: Poll,
    events: Events,
    a: UdpSocket,
    b: UdpSocket,
    rerequest: UdpSocket,
    buffer: Box<[u8]>,
}

impl Sockets {
    fn open(config: &FeedConfig) -> Result<Self, FeedError> {
        let poll = Poll::new().map_err(io_context("create the poller"))?;
        let mut a = UdpSocket::from_std(join_group(config.group_a, config.interface)?);
        let mut b = UdpSocket::from_std(join_group(config.group_b, config.interface)?);
        let rerequest = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(io_context("bind the re-request socket"))?;
        rerequest
            .set_nonblocking(true)
            .map_err(io_context("set the re-request socket non-blocking"))?;
        let mut rerequest = UdpSocket::from_std(rerequest);
        let registry = poll.registry();
        for (socket, token) in [
            (&mut a, TOKEN_A),
            (&mut b, TOKEN_B),
            (&mut rerequest, TOKEN_REREQUEST),
        ] {
            registry
                .register(socket, token, Interest::READABLE)
                .map_err(io_context("register a socket"))?;
        }
        Ok(Self {
            poll,
            events: Events::with_capacity(8),
            a,
            b,
            rerequest,
            buffer: vec![0; moldudp64::PAYLOAD_BYTES_MAX].into_boxed_slice(),
        })
    }

    /// Reads every packet that is waiting (at most `budget`), handing each to `on_packet`. Returns how many
    /// were read and whether the budget ran out before the sockets were drained.
    fn drain(
        &mut self,
        budget: usize,
        mut on_packet: impl FnMut(Source, &[u8]),
    ) -> Result<(usize, bool), FeedError> {
        let mut read = 0;
        for source in [Source::A, Source::B, Source::Rerequest] {
            let socket = match source {
                Source::A => &self.a,
                Source::B => &self.b,
                Source::Rerequest => &self.rerequest,
            };
            loop {
                if read == budget {
                    return Ok((read, true));
                }
                match socket.recv_from(&mut self.buffer) {
                    Ok((n, _)) => {
                        read += 1;
                        on_packet(source, &self.buffer[..n]);
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    // An ICMP port unreachable from an earlier request shows up here: not fatal.
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(source) => {
                        return Err(FeedError::Io {
                            context: "receive a packet".into(),
                            source,
                        });
                    }
                }
            }
        }
        Ok((read, false))
    }

    /// Waits for readiness at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<(), FeedError> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(source) => Err(FeedError::Io {
                context: "wait for packets".into(),
                source,
            }),
        }
    }
}

/// A socket joined to `group` on `interface`: `SO_REUSEADDR` + `SO_REUSEPORT` (several receivers on one
/// machine), bound to the group's address and port, non-blocking.
///
/// # Errors
/// [`FeedError::Io`] naming the group.
pub fn join_group(group: SocketAddrV4, interface: Ipv4Addr) -> Result<std::net::UdpSocket, FeedError> {
    let context = |what: &str| format!("{what} for group {group}");
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_context(context("create a UDP socket")))?;
    socket
        .set_reuse_address(true)
        .map_err(io_context(context("SO_REUSEADDR")))?;
    socket
        .set_reuse_port(true)
        .map_err(io_context(context("SO_REUSEPORT")))?;
    // Best effort: a smaller kernel buffer only means more re-requests.
    let _ = socket.set_recv_buffer_size(SOCKET_RECEIVE_BYTES);
    socket
        .bind(&SocketAddr::V4(group).into())
        .map_err(io_context(context("bind")))?;
    socket
        .join_multicast_v4(group.ip(), &interface)
        .map_err(io_context(context(&format!("join on {interface}"))))?;
    socket
        .set_nonblocking(true)
        .map_err(io_context(context("set non-blocking")))?;
    Ok(socket.into())
}

/// What the packets have built: the tracker, the book, the counters.
struct State {
    tracker: GapTracker,
    book: FeedBook,
    counters: FeedCounters,
    /// True while the current gap has already been counted in `counters.gaps`.
    gap_counted: bool,
    end_of_session_seen: bool,
    first_book_error: Option<String>,
}

impl State {
    fn new(tracker: GapTracker, book: FeedBook) -> Self {
        Self {
            tracker,
            book,
            counters: FeedCounters::default(),
            gap_counted: false,
            end_of_session_seen: false,
            first_book_error: None,
        }
    }

    /// Takes one packet through the tracker and applies what it delivers.
    fn on_packet(&mut self, from: Source, bytes: &[u8], now_ns: u64) {
        let counters = &mut self.counters;
        match from {
            Source::A => counters.packets_a += 1,
            Source::B => counters.packets_b += 1,
            Source::Rerequest => counters.packets_rerequest += 1,
        }
        let Ok(packet) = moldudp64::Packet::decode(bytes) else {
            counters.bad_packets += 1;
            return;
        };
        if packet.kind() == PacketKind::EndOfSession {
            self.end_of_session_seen = true;
        }
        for (sequence, message) in self.tracker.on_packet(&packet, now_ns) {
            counters.messages += 1;
            if from == Source::Rerequest {
                counters.recovered += 1;
            }
            if let Err(error) = self.book.apply_bytes(message) {
                counters.book_errors += 1;
                self.first_book_error
                    .get_or_insert_with(|| format!("message {sequence}: {error}"));
            }
        }
        if self.tracker.gap().is_none() {
            self.gap_counted = false;
        }
    }
}

/// The receiver. See the module docs.
pub struct FeedReceiver {
    config: FeedConfig,
    sockets: Sockets,
    state: State,
    started: Instant,
    last_request: Option<Instant>,
    /// True when the last drain stopped at its budget (so the next poll does not wait).
    backlog: bool,
}

impl std::fmt::Debug for FeedReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedReceiver")
            .field("counters", &self.state.counters)
            .field("next_expected", &self.state.tracker.next_expected())
            .finish_non_exhaustive()
    }
}

impl FeedReceiver {
    /// Joins A and B and follows the feed from sequence number 1 of whichever session the first packet names
    /// (joining late, everything before is re-requested).
    ///
    /// # Errors
    /// [`FeedError::Io`] if a socket cannot be set up.
    pub fn join(config: FeedConfig) -> Result<Self, FeedError> {
        let sockets = Sockets::open(&config)?;
        let state = State::new(GapTracker::new(config.gap), FeedBook::new(config.book_limits));
        Ok(Self::from_parts(config, sockets, state))
    }

    /// Joins A and B, buffers their packets, takes a snapshot and continues from it (`docs/protocol.md` 7.8).
    ///
    /// # Errors
    /// [`FeedError::Io`], [`FeedError::Client`], [`FeedError::SnapshotLogin`], [`FeedError::Snapshot`].
    pub fn join_with_snapshot(config: FeedConfig, source: &SnapshotSource) -> Result<Self, FeedError> {
        let mut sockets = Sockets::open(&config)?;
        let mut buffered: VecDeque<(Source, Box<[u8]>)> = VecDeque::new();
        let mut dropped = 0u64;
        let late_join_packets_max = config.late_join_packets_max;
        let mut buffer_packets = |sockets: &mut Sockets| -> Result<(), FeedError> {
            sockets.drain(PACKETS_PER_POLL_MAX, |from, bytes| {
                if buffered.len() < late_join_packets_max {
                    buffered.push_back((from, bytes.into()));
                } else {
                    dropped += 1;
                }
            })?;
            Ok(())
        };
        let client_config = ClientConfig {
            login_timeout: source.timeout,
            ..ClientConfig::default()
        };
        let mut snapshot = Client::connect(source.address, &client_config)?;
        let session = match snapshot.login(&source.user, &source.password, "", 1)? {
            LoginOutcome::Accepted { session, .. } => session,
            other => return Err(FeedError::SnapshotLogin(other)),
        };
        let mut book = FeedBook::new(config.book_limits);
        let mut snapshot_messages = 0u64;
        let mut book_errors = 0u64;
        let mut first_book_error = None;
        let mut drain_error = None;
        let sequence = client::read_snapshot(
            &mut snapshot,
            source.timeout,
            Duration::from_millis(5),
            || {
                if let Err(error) = buffer_packets(&mut sockets) {
                    drain_error.get_or_insert(error);
                }
            },
            |message| {
                snapshot_messages += 1;
                if let Err(error) = book.apply(message) {
                    book_errors += 1;
                    first_book_error.get_or_insert_with(|| format!("snapshot message: {error}"));
                }
            },
        )?;
        if let Some(error) = drain_error {
            return Err(error);
        }
        // Logged out best effort: the snapshot is complete either way.
        let _ = snapshot.logout();
        buffer_packets(&mut sockets)?;
        let tracker = GapTracker::starting_at(config.gap, Some(session), sequence + 1);
        let mut state = State::new(tracker, book);
        state.counters.snapshot_sequence = Some(sequence);
        state.counters.snapshot_messages = snapshot_messages;
        state.counters.book_errors = book_errors;
        state.counters.late_join_dropped = dropped;
        state.first_book_error = first_book_error;
        let mut receiver = Self::from_parts(config, sockets, state);
        let now_ns = receiver.now_ns();
        for (from, bytes) in buffered {
            receiver.state.on_packet(from, &bytes, now_ns);
        }
        Ok(receiver)
    }

    fn from_parts(config: FeedConfig, sockets: Sockets, state: State) -> Self {
        Self {
            config,
            sockets,
            state,
            started: Instant::now(),
            last_request: None,
            backlog: false,
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Reads what is waiting (waiting at most `timeout` when nothing is), applies it, and sends a re-request
    /// when one is due. Returns the number of packets read.
    ///
    /// # Errors
    /// [`FeedError::Io`] when a socket fails.
    pub fn poll(&mut self, timeout: Duration) -> Result<usize, FeedError> {
        if !self.backlog {
            // Wake up in time for the gap timer when a gap is open.
            let wait = if self.state.tracker.gap().is_some() {
                timeout.min(Duration::from_nanos(self.config.gap.gap_wait_ns).max(Duration::from_micros(100)))
            } else {
                timeout
            };
            self.sockets.wait(wait)?;
        }
        let now_ns = self.now_ns();
        let state = &mut self.state;
        let (read, backlog) = self.sockets.drain(PACKETS_PER_POLL_MAX, |from, bytes| {
            state.on_packet(from, bytes, now_ns)
        })?;
        self.backlog = backlog;
        self.maybe_request()?;
        Ok(read)
    }

    /// Sends the tracker's request if one is due and the rate limit and the cap allow.
    fn maybe_request(&mut self) -> Result<(), FeedError> {
        if self.state.counters.requests >= self.config.requests_max {
            return Ok(());
        }
        if let Some(last) = self.last_request
            && last.elapsed() < self.config.request_interval_min
        {
            return Ok(());
        }
        let now_ns = self.now_ns();
        let Some(request) = self.state.tracker.poll_request(now_ns) else {
            return Ok(());
        };
        if !self.state.gap_counted {
            self.state.gap_counted = true;
            self.state.counters.gaps += 1;
        }
        self.state.counters.requests += 1;
        self.last_request = Some(Instant::now());
        match self
            .sockets
            .rerequest
            .send_to(&request.to_bytes(), self.config.rerequest)
        {
            Ok(_) => Ok(()),
            // UDP: a full socket buffer or an unreachable port loses the request; the tracker asks again.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(FeedError::Io {
                context: format!("send a re-request to {}", self.config.rerequest),
                source,
            }),
        }
    }

    /// Polls until `done(self)` is true or `timeout` passes; returns whether `done` became true.
    ///
    /// # Errors
    /// As [`FeedReceiver::poll`].
    pub fn poll_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool, FeedError> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return Ok(true);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(false);
            }
            self.poll(remaining.min(Duration::from_millis(10)))?;
        }
    }

    /// The book built so far.
    pub fn book(&self) -> &FeedBook {
        &self.state.book
    }

    /// The counters.
    pub fn counters(&self) -> FeedCounters {
        let tracker = self.state.tracker.counters();
        FeedCounters {
            duplicates: tracker.duplicates,
            wrong_session: tracker.wrong_session,
            ..self.state.counters
        }
    }

    /// The last sequence number applied (0 before the first).
    pub fn applied_sequence(&self) -> u64 {
        self.state.tracker.next_expected() - 1
    }

    /// The sequence numbers known to exist and not applied yet, if any.
    pub fn gap(&self) -> Option<std::ops::Range<u64>> {
        self.state.tracker.gap()
    }

    /// The session followed (`None` until the first packet, unless joined through a snapshot).
    pub fn session(&self) -> Option<Session> {
        self.state.tracker.session()
    }

    /// True once End of Session was seen and every message before it applied: the day's feed is over.
    pub fn is_ended(&self) -> bool {
        self.state.tracker.state() == TrackerState::Ended
    }

    /// True once an End of Session packet was seen (messages before it may still be missing).
    pub fn end_of_session_seen(&self) -> bool {
        self.state.end_of_session_seen
    }

    /// The first message the book refused, if any (the feed and the book disagree).
    pub fn first_book_error(&self) -> Option<&str> {
        self.state.first_book_error.as_deref()
    }

    /// The receiver's view of one instrument as an admin depth reply (for display and comparison);
    /// `feed_sequence` is the receiver's applied sequence.
    pub fn depth(&self, symbol: &Symbol, levels: usize) -> Option<DepthReply> {
        let book = &self.state.book;
        let locate = book.locate_of(*symbol)?;
        let (bids, asks) = book.depth(*symbol, levels)?;
        let level = |(price, shares, orders): (u32, u64, u32)| DepthLevel {
            price,
            shares,
            orders,
        };
        Some(DepthReply {
            symbol: symbol.as_str_lossy().into_owned(),
            halted: book.is_halted(locate),
            feed_sequence: self.applied_sequence(),
            bids: bids.into_iter().map(level).collect(),
            asks: asks.into_iter().map(level).collect(),
        })
    }

    /// The symbols the feed's Stock Directory announced, in Stock Locate order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.state.book.directories().map(|d| d.stock).collect()
    }
}

// ---------------------------------------------------------------------------------------------------------
// `bourse md`

/// Defaults of the embedded default config, used when neither explicit addresses nor a ports file are given.
const GROUP_A_DEFAULT: &str = "239.192.77.1:26477";
const GROUP_B_DEFAULT: &str = "239.192.77.2:26478";
const REREQUEST_DEFAULT: &str = "127.0.0.1:26479";
const SNAPSHOT_DEFAULT: &str = "127.0.0.1:26401";
/// How often the live view is redrawn.
const VIEW_INTERVAL: Duration = Duration::from_millis(250);
/// How often the stop flag and the duration are checked.
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// `bourse md`: join the feed, keep every book, show them live, count, and optionally verify against the
/// engine's depth.
#[derive(clap::Args, Clone, Debug)]
pub struct MdArgs {
    /// Market data group A (default: the ports file's, else the default config's 239.192.77.1:26477).
    #[arg(long, value_name = "GROUP:PORT")]
    pub group_a: Option<SocketAddrV4>,
    /// Market data group B (default: the ports file's, else 239.192.77.2:26478).
    #[arg(long, value_name = "GROUP:PORT")]
    pub group_b: Option<SocketAddrV4>,
    /// The re-request server (default: the ports file's, else 127.0.0.1:26479).
    #[arg(long, value_name = "ADDR")]
    pub rerequest: Option<SocketAddr>,
    /// The snapshot server (default: the ports file's, else 127.0.0.1:26401).
    #[arg(long, value_name = "ADDR")]
    pub snapshot: Option<SocketAddr>,
    /// The interface to join the groups on.
    #[arg(long, default_value = "127.0.0.1")]
    pub interface: Ipv4Addr,
    /// Login for the snapshot session.
    #[arg(long, default_value = "demo")]
    pub user: String,
    /// Password for the snapshot session.
    #[arg(long, default_value = "demo")]
    pub password: String,
    /// Do not take a snapshot: re-request the day from sequence 1 instead.
    #[arg(long)]
    pub no_snapshot: bool,
    /// Stop after this many seconds (default: until Ctrl-C or the end of session).
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Price levels per side in the live view.
    #[arg(long, default_value_t = 5)]
    pub levels: usize,
    /// No live view (it is off anyway when stdout is not a terminal).
    #[arg(long)]
    pub no_view: bool,
    /// At the end, wait for a quiet point and compare every book with the engine's depth (admin); exit 1 on
    /// a mismatch.
    #[arg(long)]
    pub verify: bool,
    /// Attempts at finding a quiet point for `--verify` (each polls the feed up to 100 ms).
    #[arg(long, default_value_t = 100)]
    pub verify_attempts: u32,
    /// Resting orders the receiver's book can hold.
    #[arg(long, default_value_t = 200_000)]
    pub orders_max: u32,
}

/// The addresses `md` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MdAddresses {
    group_a: SocketAddrV4,
    group_b: SocketAddrV4,
    rerequest: SocketAddr,
    snapshot: SocketAddr,
}

fn v4(address: SocketAddr, key: &str) -> Result<SocketAddrV4, String> {
    match address {
        SocketAddr::V4(v4) => Ok(v4),
        SocketAddr::V6(_) => Err(format!("{key} {address} is not an IPv4 group")),
    }
}

fn md_addresses(args: &MdArgs, options: &GlobalOptions) -> Result<MdAddresses, String> {
    let ports = match &options.ports_file {
        Some(path) => Some(Ports::read(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let parse_default = |text: &str| -> SocketAddr { text.parse().unwrap_or_else(|_| unreachable!()) };
    Ok(MdAddresses {
        group_a: match (args.group_a, ports) {
            (Some(a), _) => a,
            (None, Some(p)) => v4(p.market_data_a, "market_data_a")?,
            (None, None) => v4(parse_default(GROUP_A_DEFAULT), "group a")?,
        },
        group_b: match (args.group_b, ports) {
            (Some(b), _) => b,
            (None, Some(p)) => v4(p.market_data_b, "market_data_b")?,
            (None, None) => v4(parse_default(GROUP_B_DEFAULT), "group b")?,
        },
        rerequest: args
            .rerequest
            .or(ports.map(|p| p.rerequest))
            .unwrap_or_else(|| parse_default(REREQUEST_DEFAULT)),
        snapshot: args
            .snapshot
            .or(ports.map(|p| p.snapshot))
            .unwrap_or_else(|| parse_default(SNAPSHOT_DEFAULT)),
    })
}

/// The result of comparing one book with the engine's depth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookMismatch {
    /// The engine's depth (admin).
    pub engine: DepthReply,
    /// The receiver's book.
    pub feed: DepthReply,
}

/// What `--verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Instruments compared at a quiet point.
    pub compared: Vec<String>,
    /// Instruments whose books differ.
    pub mismatches: Vec<BookMismatch>,
    /// Instruments for which no quiet point was found within the attempts.
    pub unverified: Vec<String>,
}

impl VerifyReport {
    /// True when every instrument was compared and agreed.
    pub fn is_ok(&self) -> bool {
        self.mismatches.is_empty() && self.unverified.is_empty() && !self.compared.is_empty()
    }
}

/// Compares every book of `receiver` with the engine's depth from `admin`, each at a quiet point: a depth
/// reply whose `feed_sequence` equals the receiver's applied sequence (and no gap open). Polls the feed
/// between attempts; at most `attempts` rounds.
///
/// # Errors
/// [`AdminError`](crate::admin::AdminError) when admin fails (an error reply included), [`FeedError`] as a
/// string when the feed fails.
pub fn verify_books(
    receiver: &mut FeedReceiver,
    admin: &mut AdminClient,
    attempts: u32,
) -> Result<VerifyReport, String> {
    // The instruments to compare: those the feed announced, read once the receiver is in sync (it may not
    // have heard anything yet when it joined without a snapshot).
    let mut pending: Option<Vec<Symbol>> = None;
    let mut report = VerifyReport::default();
    for _ in 0..attempts {
        if pending.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
        // Catch up with what is in flight: poll until the gap is closed and a poll brings nothing new.
        receiver
            .poll_until(STOP_CHECK_INTERVAL, |r| {
                r.session().is_some() && r.gap().is_none()
            })
            .map_err(|e| e.to_string())?;
        while receiver
            .poll(Duration::from_millis(5))
            .map_err(|e| e.to_string())?
            > 0
        {}
        if receiver.session().is_none() || receiver.gap().is_some() {
            continue;
        }
        let symbols = pending.take().unwrap_or_else(|| receiver.symbols());
        let mut still = Vec::new();
        for symbol in symbols {
            let name = symbol.as_str_lossy().into_owned();
            let engine = admin.depth(&name, DEPTH_LEVELS_MAX).map_err(|e| e.to_string())?;
            if engine.feed_sequence != receiver.applied_sequence() {
                still.push(symbol);
                continue;
            }
            let feed = receiver
                .depth(&symbol, DEPTH_LEVELS_MAX as usize)
                .unwrap_or_else(|| DepthReply {
                    symbol: name.clone(),
                    halted: false,
                    feed_sequence: receiver.applied_sequence(),
                    bids: Vec::new(),
                    asks: Vec::new(),
                });
            if engine.bids != feed.bids || engine.asks != feed.asks || engine.halted != feed.halted {
                report.mismatches.push(BookMismatch { engine, feed });
            }
            report.compared.push(name);
        }
        pending = Some(still);
    }
    let pending = pending.unwrap_or_default();
    report.unverified = pending.iter().map(|s| s.as_str_lossy().into_owned()).collect();
    Ok(report)
}

/// A line-by-line diff of two books: each level where they differ.
pub fn book_diff(mismatch: &BookMismatch) -> String {
    let mut out = format!(
        "{} at feed sequence {}: engine (admin depth) vs feed\n",
        mismatch.engine.symbol, mismatch.engine.feed_sequence
    );
    if mismatch.engine.halted != mismatch.feed.halted {
        out.push_str(&format!(
            "  halted: engine {} feed {}\n",
            mismatch.engine.halted, mismatch.feed.halted
        ));
    }
    for (side, engine, feed) in [
        ("bid", &mismatch.engine.bids, &mismatch.feed.bids),
        ("ask", &mismatch.engine.asks, &mismatch.feed.asks),
    ] {
        for i in 0..engine.len().max(feed.len()) {
            let show = |level: Option<&DepthLevel>| match level {
                Some(l) => format!(
                    "{} x {} ({} orders)",
                    admin::format_price(l.price),
                    l.shares,
                    l.orders
                ),
                None => "-".to_owned(),
            };
            let (e, f) = (engine.get(i), feed.get(i));
            if e != f {
                out.push_str(&format!(
                    "  {side} level {}: engine {}  feed {}\n",
                    i + 1,
                    show(e),
                    show(f)
                ));
            }
        }
    }
    out
}

/// The live view: counters, then each book's top levels.
fn render_view(receiver: &FeedReceiver, levels: usize, elapsed: Duration) -> String {
    let counters = receiver.counters();
    let mut out = format!(
        "bourse md  session {}  sequence {}  {:.1} s\nmessages {}  duplicates {}  gaps {}  recovered {}  requests {}{}\n\n",
        receiver
            .session()
            .map_or_else(|| "-".to_owned(), |s| s.as_str_lossy().into_owned()),
        receiver.applied_sequence(),
        elapsed.as_secs_f64(),
        counters.messages,
        counters.duplicates,
        counters.gaps,
        counters.recovered,
        counters.requests,
        if receiver.end_of_session_seen() {
            "  END OF SESSION"
        } else {
            ""
        },
    );
    for symbol in receiver.symbols() {
        if let Some(depth) = receiver.depth(&symbol, levels) {
            out.push_str(&admin::depth_table(&depth));
            out.push('\n');
        }
    }
    out
}

fn summary_json(receiver: &FeedReceiver, verify: Option<&VerifyReport>) -> serde_json::Value {
    let counters = receiver.counters();
    let books: Vec<serde_json::Value> = receiver
        .symbols()
        .iter()
        .filter_map(|s| receiver.depth(s, DEPTH_LEVELS_MAX as usize))
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .collect();
    serde_json::json!({
        "session": receiver.session().map(|s| s.as_str_lossy().into_owned()),
        "applied_sequence": receiver.applied_sequence(),
        "messages": counters.messages,
        "duplicates": counters.duplicates,
        "gaps": counters.gaps,
        "recovered": counters.recovered,
        "requests": counters.requests,
        "bad_packets": counters.bad_packets,
        "book_errors": counters.book_errors,
        "first_book_error": receiver.first_book_error(),
        "snapshot_sequence": counters.snapshot_sequence,
        "snapshot_messages": counters.snapshot_messages,
        "gap_open": receiver.gap().map(|g| [g.start, g.end]),
        "end_of_session": receiver.end_of_session_seen(),
        "books": books,
        "verify": verify.map(|v| serde_json::json!({
            "ok": v.is_ok(),
            "compared": v.compared,
            "unverified": v.unverified,
            "mismatches": v.mismatches.iter().map(|m| serde_json::json!({
                "engine": m.engine,
                "feed": m.feed,
            })).collect::<Vec<_>>(),
        })),
    })
}

/// Runs `bourse md`; returns the exit code (0 ok, 1 verify mismatch or no quiet point, 2 cannot join the
/// feed, take the snapshot or reach admin).
pub fn run_md(args: &MdArgs, options: &GlobalOptions) -> i32 {
    let addresses = match md_addresses(args, options) {
        Ok(addresses) => addresses,
        Err(error) => {
            eprintln!("bourse md: {error}");
            return admin::EXIT_UNREACHABLE;
        }
    };
    let mut config = FeedConfig::new(addresses.group_a, addresses.group_b, addresses.rerequest);
    config.interface = args.interface;
    config.book_limits.orders_max = args.orders_max.max(1);
    let receiver = if args.no_snapshot {
        FeedReceiver::join(config)
    } else {
        let source = SnapshotSource {
            address: addresses.snapshot,
            user: args.user.clone(),
            password: args.password.clone(),
            timeout: Duration::from_secs(30),
        };
        FeedReceiver::join_with_snapshot(config, &source)
    };
    let mut receiver = match receiver {
        Ok(receiver) => receiver,
        Err(error) => {
            eprintln!(
                "bourse md: cannot join the feed (groups {} and {}, snapshot {}): {error}",
                addresses.group_a, addresses.group_b, addresses.snapshot
            );
            return admin::EXIT_UNREACHABLE;
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Without the handler Ctrl-C still stops the process, only without the summary.
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    let view = !args.no_view && !options.json && io::stdout().is_terminal();
    let started = Instant::now();
    let duration = args.duration.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let mut last_view: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed)
            || duration.is_some_and(|d| started.elapsed() >= d)
            || receiver.is_ended()
        {
            break;
        }
        if let Err(error) = receiver.poll(STOP_CHECK_INTERVAL) {
            eprintln!("bourse md: {error}");
            return admin::EXIT_UNREACHABLE;
        }
        if view && last_view.is_none_or(|t| t.elapsed() >= VIEW_INTERVAL) {
            last_view = Some(Instant::now());
            let mut stdout = io::stdout().lock();
            let _ = write!(
                stdout,
                "\x1b[2J\x1b[H{}",
                render_view(&receiver, args.levels, started.elapsed())
            );
            let _ = stdout.flush();
        }
    }

    let mut code = admin::EXIT_OK;
    let verify = if args.verify {
        let address = match options.admin_address() {
            Ok(address) => address,
            Err(error) => {
                eprintln!("bourse md: {error}");
                return admin::EXIT_UNREACHABLE;
            }
        };
        let mut client = match AdminClient::connect(&address) {
            Ok(client) => client,
            Err(error) => {
                eprintln!("bourse md: {error}");
                return admin::EXIT_UNREACHABLE;
            }
        };
        match verify_books(&mut receiver, &mut client, args.verify_attempts) {
            Ok(report) => {
                if !report.is_ok() {
                    code = admin::EXIT_ADMIN_ERROR;
                }
                Some(report)
            }
            Err(error) => {
                eprintln!("bourse md: verify: {error}");
                return admin::EXIT_UNREACHABLE;
            }
        }
    } else {
        None
    };

    if options.json {
        println!("{}", summary_json(&receiver, verify.as_ref()));
    } else {
        print!("{}", render_view(&receiver, args.levels, started.elapsed()));
    }
    if let Some(report) = &verify {
        for mismatch in &report.mismatches {
            eprint!("{}", book_diff(mismatch));
        }
        if !report.unverified.is_empty() {
            eprintln!(
                "bourse md: no quiet point found for {} within {} attempts",
                report.unverified.join(", "),
                args.verify_attempts
            );
        }
        if report.compared.is_empty() && report.unverified.is_empty() {
            eprintln!("bourse md: verify: the feed announced no instrument");
        }
        if !options.json {
            println!(
                "verify: {} ({} books compared, {} differ)",
                if report.is_ok() { "ok" } else { "FAILED" },
                report.compared.len(),
                report.mismatches.len()
            );
        }
    }
    if let Some(error) = receiver.first_book_error() {
        eprintln!("bourse md: the book refused a message: {error}");
    }
    code
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, UdpSocket as StdUdpSocket};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use bourse_protocol::fields::Alpha;
    use bourse_protocol::itch;
    use bourse_protocol::itch::{
        AddOrder, EventCode, Header, Message, OrderCancel, OrderDelete, Side, SnapshotEnd, StockDirectory,
        SystemEvent, Timestamp48,
    };
    use bourse_protocol::moldudp64::{PacketBuilder, PacketHeader, Request};
    use bourse_protocol::soupbintcp::{LoginAccepted, Packet};

    use super::*;

    fn header(locate: u16) -> Header {
        Header {
            stock_locate: locate,
            tracking_number: 0,
            timestamp: Timestamp48::new(1_000).unwrap(),
        }
    }

    fn directory(locate: u16, stock: &str) -> Message {
        Message::StockDirectory(StockDirectory::bourse(
            header(locate),
            Symbol::new(stock).unwrap(),
            100,
        ))
    }

    fn add(reference: u64, side: Side, shares: u32, price: u32) -> Message {
        Message::AddOrder(AddOrder {
            header: header(1),
            order_reference_number: reference,
            side,
            shares,
            stock: Symbol::new("AAPL").unwrap(),
            price,
        })
    }

    /// A day of 40 messages: directory, then adds, cancels and deletes on AAPL.
    fn script() -> Vec<Message> {
        let mut messages = vec![
            Message::SystemEvent(SystemEvent {
                header: header(0),
                event_code: EventCode::StartOfMessages,
            }),
            directory(1, "AAPL"),
        ];
        for i in 0..30u64 {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let price = if side == Side::Buy {
                1_890_000 - 100 * (i as u32 % 5)
            } else {
                1_910_000 + 100 * (i as u32 % 5)
            };
            messages.push(add(i + 1, side, 100 + i as u32, price));
        }
        for reference in [3u64, 8, 13] {
            messages.push(Message::OrderDelete(OrderDelete {
                header: header(1),
                order_reference_number: reference,
            }));
        }
        for reference in [4u64, 9, 14, 20, 21] {
            messages.push(Message::OrderCancel(OrderCancel {
                header: header(1),
                order_reference_number: reference,
                canceled_shares: 50,
            }));
        }
        messages
    }

    fn encode(message: &Message) -> Vec<u8> {
        let mut bytes = [0; itch::MESSAGE_LEN_MAX];
        let n = message.encode(&mut bytes).unwrap();
        bytes[..n].to_vec()
    }

    fn session() -> Session {
        Alpha::new("2026112601").unwrap()
    }

    /// One packet holding messages `first..first + count` (numbered from 1) of `messages`.
    fn packet(messages: &[Vec<u8>], first: u64, count: u64) -> Vec<u8> {
        let mut builder = PacketBuilder::new(session(), first, moldudp64::PAYLOAD_BYTES_DEFAULT);
        for sequence in first..first + count {
            builder.push(&messages[sequence as usize - 1]).unwrap();
        }
        builder.flush().unwrap().to_vec()
    }

    /// A group of its own for each test: 239.255.<pid>.<n> on a port that was free.
    fn groups(n: u8) -> (SocketAddrV4, SocketAddrV4) {
        let pid = std::process::id();
        let port = |()| {
            StdUdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let a = SocketAddrV4::new(Ipv4Addr::new(239, 255, (pid % 250) as u8, n), port(()));
        let b = SocketAddrV4::new(Ipv4Addr::new(239, 255, (pid % 250) as u8, n + 1), port(()));
        (a, b)
    }

    fn sender() -> StdUdpSocket {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        socket.set_multicast_loop_v4(true).unwrap();
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        socket.into()
    }

    /// A re-request server: answers each request with at most `answer_max` messages, one per packet; returns
    /// the requests. Stops at the first quiet read after `stop` is set.
    fn rerequest_server(
        messages: Vec<Vec<u8>>,
        answer_max: u64,
        stop: Arc<AtomicBool>,
    ) -> (SocketAddr, thread::JoinHandle<Vec<Request>>) {
        let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let address = socket.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut requests = Vec::new();
            let mut buffer = [0; 64];
            // Bounded: a test never runs this for more than a minute.
            let deadline = Instant::now() + Duration::from_secs(60);
            // Once `stop` is set, requests already sent are still read: it ends at the first quiet read.
            while Instant::now() < deadline {
                let Ok((n, from)) = socket.recv_from(&mut buffer) else {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    continue;
                };
                let request = Request::decode(&buffer[..n]).unwrap();
                requests.push(request);
                let end = request
                    .range()
                    .end
                    .min(request.sequence_number + answer_max)
                    .min(messages.len() as u64 + 1);
                for sequence in request.sequence_number..end {
                    socket.send_to(&packet(&messages, sequence, 1), from).unwrap();
                }
            }
            requests
        });
        (address, handle)
    }

    fn expected_book(messages: &[Message]) -> FeedBook {
        let mut book = FeedBook::new(
            FeedConfig::new(groups(1).0, groups(1).1, "127.0.0.1:1".parse().unwrap()).book_limits,
        );
        for message in messages {
            book.apply(message).unwrap();
        }
        book
    }

    fn depth_of(
        book: &FeedBook,
    ) -> (
        Vec<bourse_book::feed::DepthLevel>,
        Vec<bourse_book::feed::DepthLevel>,
    ) {
        book.depth(Symbol::new("AAPL").unwrap(), 100).unwrap()
    }

    #[test]
    fn arbitrates_a_and_b_and_recovers_gaps_through_re_requests() {
        let script = script();
        let messages: Vec<Vec<u8>> = script.iter().map(encode).collect();
        let total = messages.len() as u64;
        let (group_a, group_b) = groups(10);
        let stop = Arc::new(AtomicBool::new(false));
        let (rerequest, server) = rerequest_server(messages.clone(), 3, stop.clone());
        let mut receiver = FeedReceiver::join(FeedConfig::new(group_a, group_b, rerequest)).unwrap();
        let send = sender();

        // Messages 5 and 6 never go out on either group; 9 only on B; 20..=29 (one packet) only on A; the
        // last two only through the heartbeat that announces them. Everything else on both.
        let mut sequence = 1;
        while sequence <= total - 2 {
            let count = if sequence == 20 { 10 } else { 1 };
            let bytes = packet(&messages, sequence, count);
            let (on_a, on_b) = match sequence {
                5 | 6 => (false, false),
                9 => (false, true),
                20 => (true, false),
                _ => (true, true),
            };
            if on_a {
                send.send_to(&bytes, group_a).unwrap();
            }
            if on_b {
                send.send_to(&bytes, group_b).unwrap();
            }
            sequence += count;
        }
        send.send_to(b"not a moldudp64 packet", group_a).unwrap();
        let end = PacketHeader::end_of_session(session(), total + 1).to_bytes();
        send.send_to(&end, group_a).unwrap();
        send.send_to(&end, group_b).unwrap();

        let done = receiver
            .poll_until(Duration::from_secs(30), |r| r.is_ended())
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        let requests = server.join().unwrap();
        assert!(done, "not ended: {receiver:?}, gap {:?}", receiver.gap());

        let counters = receiver.counters();
        assert_eq!(counters.messages, total);
        assert_eq!(receiver.applied_sequence(), total);
        assert!(counters.gaps >= 1, "{counters:?}");
        assert!(
            counters.recovered >= 4,
            "5, 6 and the last two come from re-requests: {counters:?}"
        );
        assert_eq!(counters.requests, requests.len() as u64);
        assert!(
            requests
                .iter()
                .all(|r| r.session == session() && r.requested_count >= 1)
        );
        assert!(
            requests.iter().all(|r| r.range().end <= total + 1),
            "never beyond the end: {requests:?}"
        );
        assert!(counters.duplicates > 0, "{counters:?}");
        assert_eq!(counters.bad_packets, 1);
        assert_eq!(counters.book_errors, 0, "{:?}", receiver.first_book_error());
        assert!(receiver.end_of_session_seen());
        assert_eq!(depth_of(receiver.book()), depth_of(&expected_book(&script)));
        let view = receiver.depth(&Symbol::new("AAPL").unwrap(), 3).unwrap();
        assert_eq!(view.feed_sequence, total);
        assert_eq!(view.bids.len(), 3);
        assert_eq!(receiver.symbols(), [Symbol::new("AAPL").unwrap()]);

        // After the end: nothing more is requested, whatever arrives.
        let requests_before = receiver.counters().requests;
        send.send_to(&end, group_a).unwrap();
        receiver.poll_until(Duration::from_millis(50), |_| false).unwrap();
        assert_eq!(receiver.counters().requests, requests_before);
    }

    #[test]
    fn the_request_cap_leaves_the_gap_open_and_counted() {
        let messages: Vec<Vec<u8>> = script().iter().map(encode).collect();
        let (group_a, group_b) = groups(20);
        let stop = Arc::new(AtomicBool::new(false));
        // A server that never answers.
        let (rerequest, server) = rerequest_server(messages.clone(), 0, stop.clone());
        let mut config = FeedConfig::new(group_a, group_b, rerequest);
        config.requests_max = 3;
        config.gap.request_timeout_ns = 1_000_000;
        let mut receiver = FeedReceiver::join(config).unwrap();
        let send = sender();
        send.send_to(&packet(&messages, 1, 2), group_a).unwrap();
        send.send_to(&packet(&messages, 4, 1), group_a).unwrap();
        receiver
            .poll_until(Duration::from_secs(30), |r| r.counters().requests == 3)
            .unwrap();
        receiver.poll_until(Duration::from_millis(50), |_| false).unwrap();
        stop.store(true, Ordering::Relaxed);
        let requests = server.join().unwrap();
        let counters = receiver.counters();
        assert_eq!(counters.requests, 3, "capped");
        assert_eq!(requests.len(), 3);
        assert!(
            requests
                .iter()
                .all(|r| r.sequence_number == 3 && r.requested_count == 2)
        );
        assert_eq!(counters.gaps, 1, "one gap episode");
        assert_eq!(receiver.gap(), Some(3..5));
        assert_eq!(receiver.applied_sequence(), 2);
    }

    /// Serves one snapshot session: Login Accepted, then `snapshot` as Sequenced Data, then the end marker
    /// carrying `n`; calls `before_end` (the test sends multicast then) before the end marker.
    fn snapshot_server(
        snapshot: Vec<Message>,
        n: u64,
        before_end: impl FnOnce() + Send + 'static,
    ) -> (SocketAddr, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut login = [0; 2 + soupbintcp_login_len()];
            std::io::Read::read_exact(&mut stream, &mut login).unwrap();
            assert_eq!(login[2], b'L');
            assert_eq!(&login[3..9], b"demo  ");
            let mut frame = |packet: Packet<'_>| {
                let mut out = vec![0; packet.frame_len()];
                packet.encode(&mut out).unwrap();
                stream.write_all(&out).unwrap();
            };
            frame(Packet::LoginAccepted(LoginAccepted {
                session: session(),
                sequence_number: 1,
            }));
            for message in &snapshot {
                frame(Packet::SequencedData(&encode(message)));
            }
            before_end();
            frame(Packet::SequencedData(&encode(&Message::SnapshotEnd(
                SnapshotEnd { sequence_number: n },
            ))));
            // The client logs out; wait for it to close.
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stream, &mut rest);
        });
        (address, handle)
    }

    const fn soupbintcp_login_len() -> usize {
        bourse_protocol::soupbintcp::LOGIN_REQUEST_LEN
    }

    #[test]
    fn late_join_through_the_snapshot_applies_the_buffered_messages_above_n() {
        let script = script();
        let messages: Vec<Vec<u8>> = script.iter().map(encode).collect();
        let total = messages.len() as u64;
        let n = 25u64;
        // The snapshot as of 25: system event, directory, and the book after message 25 as Add Orders.
        let before = expected_book(&script[..n as usize]);
        let mut snapshot = vec![script[0], script[1]];
        for side in [Side::Buy, Side::Sell] {
            for order in before.orders(Symbol::new("AAPL").unwrap(), side) {
                snapshot.push(add(order.reference, order.side, order.shares, order.price));
            }
        }
        let (group_a, group_b) = groups(30);
        let stop = Arc::new(AtomicBool::new(false));
        let (rerequest, server) = rerequest_server(messages.clone(), 1000, stop.clone());
        // While the snapshot is being sent, messages 20..=32 go out on the feed (20..=25 overlap the snapshot);
        // 33 is lost; 34.. come after the snapshot.
        let during = messages.clone();
        let (snapshot_address, snapshot_thread) = snapshot_server(snapshot, n, move || {
            let send = sender();
            for sequence in 20..=32 {
                send.send_to(&packet(&during, sequence, 1), group_a).unwrap();
                send.send_to(&packet(&during, sequence, 1), group_b).unwrap();
            }
            // Give the receiver's drain a chance to run before the end marker.
            thread::sleep(Duration::from_millis(20));
        });
        let source = SnapshotSource {
            address: snapshot_address,
            user: "demo".into(),
            password: "demo".into(),
            timeout: Duration::from_secs(30),
        };
        let mut receiver =
            FeedReceiver::join_with_snapshot(FeedConfig::new(group_a, group_b, rerequest), &source).unwrap();
        snapshot_thread.join().unwrap();
        let send = sender();
        for sequence in 34..=total {
            send.send_to(&packet(&messages, sequence, 1), group_a).unwrap();
        }
        let end = PacketHeader::end_of_session(session(), total + 1).to_bytes();
        send.send_to(&end, group_b).unwrap();
        let done = receiver
            .poll_until(Duration::from_secs(30), |r| r.is_ended())
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        assert!(done, "{receiver:?}");
        let counters = receiver.counters();
        assert_eq!(counters.snapshot_sequence, Some(n));
        assert_eq!(counters.snapshot_messages, 2 + before.live_orders() as u64);
        assert_eq!(counters.messages, total - n, "only messages above N are applied");
        assert!(counters.recovered >= 1, "33 came from a re-request: {counters:?}");
        assert_eq!(counters.book_errors, 0, "{:?}", receiver.first_book_error());
        assert_eq!(depth_of(receiver.book()), depth_of(&expected_book(&script)));
    }

    /// An admin endpoint answering every depth request with `reply(symbol)`.
    fn fake_admin(reply: impl Fn(&str) -> String + Send + 'static) -> (String, thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut served = 0;
            for line in std::io::BufRead::lines(std::io::BufReader::new(stream)) {
                let Ok(line) = line else { break };
                let request: bourse_protocol::admin::AdminRequest = serde_json::from_str(&line).unwrap();
                let bourse_protocol::admin::AdminRequest::Depth { symbol, levels } = request else {
                    panic!("{line}")
                };
                assert_eq!(levels, DEPTH_LEVELS_MAX);
                writer.write_all(reply(&symbol).as_bytes()).unwrap();
                writer.write_all(b"\n").unwrap();
                served += 1;
            }
            served
        });
        (address, handle)
    }

    fn depth_json(book: &FeedBook, feed_sequence: u64) -> String {
        let (bids, asks) = depth_of(book);
        let level = |(price, shares, orders): (u32, u64, u32)| DepthLevel {
            price,
            shares,
            orders,
        };
        serde_json::to_string(&bourse_protocol::admin::AdminReply::Depth(DepthReply {
            symbol: "AAPL".into(),
            halted: false,
            feed_sequence,
            bids: bids.into_iter().map(level).collect(),
            asks: asks.into_iter().map(level).collect(),
        }))
        .unwrap()
    }

    #[test]
    fn verify_compares_at_a_quiet_point_and_reports_differences() {
        let script = script();
        let messages: Vec<Vec<u8>> = script.iter().map(encode).collect();
        let total = messages.len() as u64;
        let (group_a, group_b) = groups(40);
        let mut receiver =
            FeedReceiver::join(FeedConfig::new(group_a, group_b, "127.0.0.1:9".parse().unwrap())).unwrap();
        let send = sender();
        send.send_to(&packet(&messages, 1, 20), group_a).unwrap();
        send.send_to(&packet(&messages, 21, total - 20), group_b).unwrap();
        assert!(
            receiver
                .poll_until(Duration::from_secs(30), |r| r.applied_sequence() == total)
                .unwrap()
        );
        let expected = expected_book(&script);
        let view = render_view(&receiver, 2, Duration::from_millis(1500));
        assert!(
            view.contains("sequence 40  1.5 s\nmessages 40  duplicates 0  gaps 0"),
            "{view}"
        );
        assert!(view.contains("AAPL  feed sequence 40\n"), "{view}");
        // Two levels per side: a header and two rows.
        assert_eq!(
            view.lines().filter(|l| l.contains("  191.0")).count(),
            2,
            "{view}"
        );

        // Agreeing depth at the receiver's sequence: ok.
        let json = depth_json(&expected, total);
        let (address, server) = fake_admin(move |_| json.clone());
        let mut admin = AdminClient::connect(&address).unwrap();
        let report = verify_books(&mut receiver, &mut admin, 5).unwrap();
        drop(admin);
        assert_eq!(server.join().unwrap(), 1);
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.compared, ["AAPL"]);

        // A different book at the same sequence: a mismatch with a diff naming the level.
        let mut other = expected_book(&script);
        other.apply(&add(999, Side::Buy, 7, 1_895_000)).unwrap();
        let json = depth_json(&other, total);
        let (address, server) = fake_admin(move |_| json.clone());
        let mut admin = AdminClient::connect(&address).unwrap();
        let report = verify_books(&mut receiver, &mut admin, 5).unwrap();
        drop(admin);
        server.join().unwrap();
        assert!(!report.is_ok());
        assert_eq!(report.mismatches.len(), 1);
        let diff = book_diff(&report.mismatches[0]);
        assert!(
            diff.contains("bid level 1: engine 189.5000 x 7 (1 orders)"),
            "{diff}"
        );

        // The engine is always ahead of the receiver: no quiet point, bounded attempts, unverified.
        let json = depth_json(&expected, total + 5);
        let (address, server) = fake_admin(move |_| json.clone());
        let mut admin = AdminClient::connect(&address).unwrap();
        let report = verify_books(&mut receiver, &mut admin, 3).unwrap();
        drop(admin);
        assert_eq!(server.join().unwrap(), 3);
        assert_eq!(report.unverified, ["AAPL"]);
        assert!(!report.is_ok());
    }

    #[test]
    fn md_addresses_come_from_flags_then_the_ports_file_then_the_defaults() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            global: GlobalOptions,
            #[command(flatten)]
            md: MdArgs,
        }
        let cli = Cli::parse_from(["md"]);
        let addresses = md_addresses(&cli.md, &cli.global).unwrap();
        assert_eq!(addresses.group_a, GROUP_A_DEFAULT.parse().unwrap());
        assert_eq!(addresses.snapshot, SNAPSHOT_DEFAULT.parse().unwrap());

        let ports = std::env::temp_dir().join(format!("bourse-md-ports-{}", std::process::id()));
        std::fs::write(
            &ports,
            "order_entry=127.0.0.1:1\nsnapshot=127.0.0.1:2\nrerequest=127.0.0.1:3\nadmin=127.0.0.1:4\n\
             market_data_a=239.1.1.1:5\nmarket_data_b=239.1.1.2:6\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "md",
            "--ports-file",
            ports.to_str().unwrap(),
            "--group-b",
            "239.9.9.9:7",
        ]);
        let addresses = md_addresses(&cli.md, &cli.global).unwrap();
        let _ = std::fs::remove_file(&ports);
        assert_eq!(addresses.group_a, "239.1.1.1:5".parse().unwrap());
        assert_eq!(addresses.group_b, "239.9.9.9:7".parse().unwrap());
        assert_eq!(addresses.rerequest, "127.0.0.1:3".parse().unwrap());
        assert_eq!(addresses.snapshot, "127.0.0.1:2".parse().unwrap());
    }
}
