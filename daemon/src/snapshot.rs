//! The GLIMPSE-style snapshot server (docs/protocol.md 7.7): SoupBinTCP over TCP, serving the market-data
//! stage's [`FeedBook`] (built only from journaled ITCH) as ITCH messages ending with the `G` marker.
//!
//! Owned by the market-data agent and driven from its `do_work`: never blocks (mio, polled with a zero
//! timeout), bounded work per call. It owns the listener, the snapshot connections and the snapshot images;
//! it does not own the book (it reads the agent's) nor anything on the feed.
//!
//! # Images
//! A snapshot is taken at login: the whole session output (Login Accepted, then one Sequenced Data packet per
//! message, then `G`) is written once into an *image*, consistent as of the last feed sequence applied to the
//! book, and every session logged in with it streams from its own offset. There are two images: a login
//! reuses the current image if the book has not changed since it was taken; otherwise it rebuilds an image
//! no session is streaming; when both are in use it takes the current one (consistent, just older: the client
//! applies the feed after its `G` number, 7.8). An image grows to the size of the book (about 43 bytes per
//! resting order) when it is built; that allocation is on the snapshot path, never the feed's.
//!
//! # Session rules (section 2 timers, taken from `[order_entry]`, see [`SessionTimers`])
//! - Login within `login_timeout_ms` of connecting; before login only `L` and `+` are accepted.
//! - Credentials from `[[logins]]` (compared without padding) of a login the operator has not disabled:
//!   else Login Rejected `A`; a day that has ended or another session name: Login Rejected `S`; then the
//!   connection is closed.
//! - After login: Client Heartbeat `R` and Debug `+` are read; Logout Request `O` closes; any other packet,
//!   a framing error or nothing received for `idle_timeout_ms` closes. A protocol error (a packet out of
//!   place, a framing error) is first answered, best effort, with a Debug packet saying why (section 2.7),
//!   unless a packet is half written (then the connection closes after it, or at once in the middle of an
//!   image). Server Heartbeat `H` after `heartbeat_interval_ms` without output once the snapshot is sent. A client that takes nothing of its
//!   snapshot for `idle_timeout_ms` is closed. No End of Session is sent on this port.
//!
//! # Limits
//! `sessions_max` connections (more are closed at connect); [`SESSION_WRITE_BYTES_MAX`] bytes written per
//! session per call; [`SESSION_READ_BYTES_MAX`] bytes read per session per call; [`ACCEPTS_PER_WORK_MAX`].

use std::io::{self, Read, Write};
use std::net::Shutdown;

use bourse_book::feed::FeedBook;
use bourse_protocol::itch::{self, Header, Side, SnapshotEnd, TradingAction, TradingState};
use bourse_protocol::soupbintcp::{
    self, LoginAccepted, LoginRejectReason, LoginRequest, Packet, PacketType, StreamBuffer,
};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::{OrderEntryConfig, SessionLogin};
use crate::msg::SessionName;

/// Bytes written to one session per call.
pub const SESSION_WRITE_BYTES_MAX: usize = 256 * 1024;
/// Bytes read from one session per call.
pub const SESSION_READ_BYTES_MAX: usize = 4096;
/// Connections accepted per call.
pub const ACCEPTS_PER_WORK_MAX: usize = 64;
/// Read buffer per session: snapshot clients send only small packets.
const SESSION_READ_BUFFER_BYTES: usize = 2048;
/// Largest frame accepted from a snapshot client.
const FRAME_SIZE_MAX: usize = 1024;
/// Control output (login reject, heartbeat) per session.
const CONTROL_BYTES_MAX: usize = 64;

const LISTENER: Token = Token(usize::MAX);

/// The SoupBinTCP timers of snapshot sessions (the `[order_entry]` values: section 2.3 and 2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimers {
    /// Connect -> Login Request.
    pub login_timeout_ms: u64,
    /// Server heartbeat after this long without output.
    pub heartbeat_interval_ms: u64,
    /// Nothing received (or, while a snapshot is being sent, nothing taken) for this long: close.
    pub idle_timeout_ms: u64,
}

impl SessionTimers {
    /// The timers of `[order_entry]`.
    pub fn from_order_entry(config: &OrderEntryConfig) -> SessionTimers {
        SessionTimers {
            login_timeout_ms: config.login_timeout_ms,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            idle_timeout_ms: config.idle_timeout_ms,
        }
    }
}

/// Counters of the snapshot server (for tests and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at connect because `sessions_max` were open.
    pub refused: u64,
    /// Logins accepted.
    pub logins: u64,
    /// Logins rejected (`A` or `S`).
    pub rejected: u64,
    /// Images built.
    pub images_built: u64,
    /// Snapshots sent completely.
    pub completed: u64,
}

#[derive(Debug, Default)]
struct Image {
    bytes: Vec<u8>,
    /// Feed sequence the image is consistent with.
    feed_seq: u64,
    /// Book messages applied when it was built (tells whether the book changed since).
    messages_applied: u64,
    built: bool,
    readers: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Connected, no Login Request yet.
    AwaitLogin,
    /// Logged in: streaming image `image` from `offset`.
    Streaming { image: usize, offset: usize },
    /// Snapshot sent: heartbeats only.
    Live,
    /// Write the control bytes, then close.
    Closing,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    input: StreamBuffer,
    state: State,
    control: [u8; CONTROL_BYTES_MAX],
    control_len: usize,
    control_sent: usize,
    connected_ns: u64,
    last_recv_ns: u64,
    last_send_ns: u64,
    last_progress_ns: u64,
    readable: bool,
    writable: bool,
    /// A valid-looking Login Request read while the book was behind the feed: answered once it is current.
    pending_login: Option<LoginRequest>,
}

/// The snapshot server (see the module header).
#[derive(Debug)]
pub struct SnapshotServer {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    listener_ready: bool,
    connections: Vec<Option<Connection>>,
    images: [Image; 2],
    current_image: usize,
    logins: Vec<SessionLogin>,
    session: SessionName,
    login_timeout_ns: u64,
    heartbeat_interval_ns: u64,
    idle_timeout_ns: u64,
    counters: SnapshotCounters,
    shared: std::sync::Arc<crate::stats::Shared>,
}

fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

impl SnapshotServer {
    /// A server on `listener` (made non-blocking here) for at most `sessions_max` connections.
    ///
    /// # Errors
    /// I/O errors setting up the poller.
    pub fn new(
        listener: std::net::TcpListener,
        sessions_max: u32,
        logins: Vec<SessionLogin>,
        session: SessionName,
        timers: SessionTimers,
        shared: std::sync::Arc<crate::stats::Shared>,
    ) -> io::Result<SnapshotServer> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let sessions_max = sessions_max as usize;
        Ok(SnapshotServer {
            poll,
            events: Events::with_capacity(sessions_max + 1),
            listener,
            listener_ready: true,
            connections: (0..sessions_max).map(|_| None).collect(),
            images: [Image::default(), Image::default()],
            current_image: 0,
            logins,
            session,
            login_timeout_ns: ms_to_ns(timers.login_timeout_ms),
            heartbeat_interval_ns: ms_to_ns(timers.heartbeat_interval_ms),
            idle_timeout_ns: ms_to_ns(timers.idle_timeout_ms),
            counters: SnapshotCounters::default(),
            shared,
        })
    }

    /// The counters so far.
    pub fn counters(&self) -> SnapshotCounters {
        self.counters
    }

    /// Open snapshot connections.
    pub fn connections(&self) -> usize {
        self.connections.iter().flatten().count()
    }

    /// Whether a connection has not logged in yet: its login will want an image of the book. Sessions
    /// that have their image (streaming it, or done and left open) want nothing more of the book.
    pub fn awaits_login(&self) -> bool {
        self.connections
            .iter()
            .flatten()
            .any(|c| c.state == State::AwaitLogin)
    }

    /// Polls the sockets once (zero timeout) and does a bounded amount of work. `book` and `feed_seq` (the
    /// last feed sequence applied to it) are what a login now gets; while `book_current` is false (the book
    /// has not applied every released message yet) a Login Request waits, read but unanswered, with its
    /// login timer stopped; `day_open` false rejects logins `S`.
    pub fn do_work(
        &mut self,
        now_ns: u64,
        book: &FeedBook,
        feed_seq: u64,
        book_current: bool,
        day_open: bool,
    ) -> usize {
        let mut work = 0;
        match self.poll.poll(&mut self.events, Some(std::time::Duration::ZERO)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("market_data: snapshot poll failed: {e}");
                return 0;
            }
        }
        for event in self.events.iter() {
            if event.token() == LISTENER {
                self.listener_ready = true;
                continue;
            }
            if let Some(Some(c)) = self.connections.get_mut(event.token().0) {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    c.readable = true;
                }
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    c.writable = true;
                }
            }
        }
        if self.listener_ready {
            work += self.accept(now_ns);
        }
        for index in 0..self.connections.len() {
            if self.connections[index].is_none() {
                continue;
            }
            let (done, keep) = self.serve(index, now_ns, book, feed_seq, book_current, day_open);
            work += done;
            if !keep {
                self.close(index);
            }
        }
        work
    }

    fn accept(&mut self, now_ns: u64) -> usize {
        let mut accepted = 0;
        while accepted < ACCEPTS_PER_WORK_MAX {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    accepted += 1;
                    let Some(slot) = self.connections.iter().position(Option::is_none) else {
                        self.counters.refused += 1;
                        let _ = stream.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(slot), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.counters.accepted += 1;
                    self.connections[slot] = Some(Connection {
                        stream,
                        input: StreamBuffer::new(SESSION_READ_BUFFER_BYTES, FRAME_SIZE_MAX),
                        state: State::AwaitLogin,
                        control: [0; CONTROL_BYTES_MAX],
                        control_len: 0,
                        control_sent: 0,
                        connected_ns: now_ns,
                        last_recv_ns: now_ns,
                        last_send_ns: now_ns,
                        last_progress_ns: now_ns,
                        readable: true,
                        writable: true,
                        pending_login: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // A connection that failed before accept (reset): nothing to do with it.
                    accepted += 1;
                }
            }
        }
        accepted
    }

    fn close(&mut self, index: usize) {
        if let Some(mut c) = self.connections[index].take() {
            if let State::Streaming { image, .. } = c.state {
                self.images[image].readers -= 1;
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }

    /// Reads, writes and checks the timers of one connection. Returns (work, keep open).
    fn serve(
        &mut self,
        index: usize,
        now_ns: u64,
        book: &FeedBook,
        feed_seq: u64,
        book_current: bool,
        day_open: bool,
    ) -> (usize, bool) {
        let mut work = 0;
        // Read.
        let mut login: Option<LoginRequest> = None;
        let mut protocol_error: Option<&'static str> = None;
        'read: {
            let c = self.connections[index].as_mut().expect("checked by caller");
            if c.readable && c.state != State::Closing {
                let mut read_total = 0;
                while read_total < SESSION_READ_BYTES_MAX {
                    let spare = c.input.spare_mut();
                    match c.stream.read(spare) {
                        Ok(0) => return (work + 1, false),
                        Ok(n) => {
                            c.input.commit(n);
                            read_total += n;
                            c.last_recv_ns = now_ns;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.readable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return (work + 1, false),
                    }
                    // Drain complete frames before reading again (the buffer needs it).
                    loop {
                        match c.input.next_packet() {
                            Ok(None) => break,
                            Ok(Some(packet)) => {
                                work += 1;
                                // A Login Request read in this call counts as logged in for what follows it.
                                let logged_in = login.is_some()
                                    || c.pending_login.is_some()
                                    || c.state != State::AwaitLogin;
                                match (logged_in, packet) {
                                    (_, Packet::Debug(_)) => {}
                                    (false, Packet::LoginRequest(request)) => login = Some(request),
                                    (true, Packet::ClientHeartbeat) => {}
                                    (true, Packet::LogoutRequest) => return (work, false),
                                    (false, _) => {
                                        protocol_error = Some("message before login");
                                        break 'read;
                                    }
                                    (true, Packet::LoginRequest(_)) => {
                                        protocol_error = Some("login request on a logged-in connection");
                                        break 'read;
                                    }
                                    (true, _) => {
                                        protocol_error = Some("packet type not served on the snapshot port");
                                        break 'read;
                                    }
                                }
                            }
                            Err(_) => {
                                work += 1;
                                protocol_error = Some("malformed frame");
                                break 'read;
                            }
                        }
                    }
                }
            }
        }
        let c = self.connections[index].as_mut().expect("checked by caller");
        if let Some(text) = protocol_error {
            // What was read before the error stands no more: write the Debug, then close. Never after half a
            // packet: in the middle of an image, close at once; after a pending control packet, no Debug.
            if matches!(c.state, State::Streaming { offset, .. } if offset > 0) {
                return (work, false);
            }
            if let State::Streaming { image, .. } = c.state {
                self.images[image].readers -= 1;
            }
            c.pending_login = None;
            login = None;
            if c.control_len == 0 {
                c.control_len = Packet::Debug(text.as_bytes())
                    .encode(&mut c.control)
                    .expect("the texts fit the control buffer");
                c.control_sent = 0;
            }
            c.state = State::Closing;
            c.last_progress_ns = now_ns;
        }
        if login.is_some() {
            c.pending_login = login;
        }
        if book_current && let Some(request) = c.pending_login.take() {
            self.login(index, &request, book, feed_seq, day_open);
            work += 1;
        }
        // Write.
        let heartbeat_interval_ns = self.heartbeat_interval_ns;
        let c = self.connections[index].as_mut().expect("checked by caller");
        if c.state == State::Live
            && c.control_len == 0
            && now_ns.saturating_sub(c.last_send_ns) >= heartbeat_interval_ns
        {
            c.control_len = soupbintcp::Packet::ServerHeartbeat
                .encode(&mut c.control)
                .expect("a heartbeat fits the control buffer");
            c.control_sent = 0;
        }
        if c.writable {
            let mut written_total = 0;
            while written_total < SESSION_WRITE_BYTES_MAX {
                let pending: &[u8] = if c.control_sent < c.control_len {
                    &c.control[c.control_sent..c.control_len]
                } else if let State::Streaming { image, offset } = c.state {
                    let bytes = &self.images[image].bytes;
                    let end = bytes
                        .len()
                        .min(offset + (SESSION_WRITE_BYTES_MAX - written_total));
                    &bytes[offset..end]
                } else {
                    &[]
                };
                if pending.is_empty() {
                    break;
                }
                match c.stream.write(pending) {
                    Ok(0) => return (work + 1, false),
                    Ok(n) => {
                        work += 1;
                        written_total += n;
                        c.last_send_ns = now_ns;
                        c.last_progress_ns = now_ns;
                        if c.control_sent < c.control_len {
                            c.control_sent += n;
                            if c.control_sent == c.control_len {
                                c.control_len = 0;
                                c.control_sent = 0;
                            }
                        } else if let State::Streaming { image, offset } = c.state {
                            let offset = offset + n;
                            if offset == self.images[image].bytes.len() {
                                self.images[image].readers -= 1;
                                self.counters.completed += 1;
                                c.state = State::Live;
                            } else {
                                c.state = State::Streaming { image, offset };
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        c.writable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return (work + 1, false),
                }
            }
        }
        // Timers and closing.
        match c.state {
            State::Closing => {
                if c.control_len == 0 {
                    return (work, false);
                }
                if now_ns.saturating_sub(c.last_progress_ns) >= self.idle_timeout_ns {
                    return (work, false);
                }
            }
            State::AwaitLogin => {
                if c.pending_login.is_none() && now_ns.saturating_sub(c.connected_ns) >= self.login_timeout_ns
                {
                    return (work, false);
                }
            }
            State::Streaming { .. } | State::Live => {
                if now_ns.saturating_sub(c.last_recv_ns) >= self.idle_timeout_ns {
                    return (work, false);
                }
                if matches!(c.state, State::Streaming { .. })
                    && now_ns.saturating_sub(c.last_progress_ns) >= self.idle_timeout_ns
                {
                    return (work, false);
                }
            }
        }
        (work, true)
    }

    fn login(
        &mut self,
        index: usize,
        request: &LoginRequest,
        book: &FeedBook,
        feed_seq: u64,
        day_open: bool,
    ) {
        // A login the operator disabled is refused here too (`bourse disable USER`).
        let authorized = self.logins.iter().any(|l| {
            l.username.0.trim_ascii() == request.username.0.trim_ascii()
                && l.password.0.trim_ascii() == request.password.0.trim_ascii()
                && !self.shared.is_login_disabled(l.login)
        });
        let reject = if !authorized {
            Some(LoginRejectReason::NotAuthorized)
        } else if !day_open || !request.wants_session(&self.session) {
            Some(LoginRejectReason::SessionNotAvailable)
        } else {
            None
        };
        if let Some(reason) = reject {
            self.counters.rejected += 1;
            let c = self.connections[index].as_mut().expect("checked by caller");
            c.control_len = Packet::LoginRejected(reason)
                .encode(&mut c.control)
                .expect("a login reject fits the control buffer");
            c.control_sent = 0;
            c.state = State::Closing;
            return;
        }
        let image = self.image_for_login(book, feed_seq);
        self.images[image].readers += 1;
        self.counters.logins += 1;
        let c = self.connections[index].as_mut().expect("checked by caller");
        c.state = State::Streaming { image, offset: 0 };
        c.last_progress_ns = c.last_recv_ns;
    }

    /// The image a login streams (see the module header), built now if needed.
    fn image_for_login(&mut self, book: &FeedBook, feed_seq: u64) -> usize {
        let current = self.current_image;
        let image = &self.images[current];
        if image.built && image.messages_applied == book.messages_applied() && image.feed_seq == feed_seq {
            return current;
        }
        let target = if image.readers == 0 {
            current
        } else if self.images[1 - current].readers == 0 {
            1 - current
        } else {
            return current;
        };
        let session = self.session;
        let image = &mut self.images[target];
        build_image(&mut image.bytes, book, feed_seq, session);
        image.feed_seq = feed_seq;
        image.messages_applied = book.messages_applied();
        image.built = true;
        self.current_image = target;
        self.counters.images_built += 1;
        target
    }
}

/// Appends one Sequenced Data packet holding `message`.
fn push_message(out: &mut Vec<u8>, message: &itch::Message) {
    let len = message.len();
    let start = out.len();
    out.resize(start + soupbintcp::FRAME_HEADER_LEN + 1 + len, 0);
    soupbintcp::write_frame_header(PacketType::SequencedData, len, &mut out[start..]).expect("sized above");
    let written = message
        .encode(&mut out[start + soupbintcp::FRAME_HEADER_LEN + 1..])
        .expect("sized above");
    debug_assert_eq!(written, len);
}

/// Writes a whole snapshot session output into `out`: Login Accepted (session, 1), then System Event, Stock
/// Directory per instrument, Trading Action per instrument, Add Order per resting order (per instrument in
/// locate order, buys then sells, best level first, time priority), then `G` carrying `feed_seq`.
pub fn build_image(out: &mut Vec<u8>, book: &FeedBook, feed_seq: u64, session: SessionName) {
    out.clear();
    let mut accepted = [0u8; soupbintcp::FRAME_HEADER_LEN + soupbintcp::LOGIN_ACCEPTED_LEN];
    let n = Packet::LoginAccepted(LoginAccepted {
        session,
        sequence_number: 1,
    })
    .encode(&mut accepted)
    .expect("a Login Accepted fits its buffer");
    out.extend_from_slice(&accepted[..n]);
    if let Some(event) = book.system_event() {
        push_message(out, &itch::Message::SystemEvent(*event));
    }
    for directory in book.directories() {
        push_message(out, &itch::Message::StockDirectory(*directory));
    }
    for directory in book.directories() {
        let locate = directory.header.stock_locate;
        let action = book.trading_action(locate).copied().unwrap_or(TradingAction {
            header: directory.header,
            stock: directory.stock,
            trading_state: TradingState::Trading,
            reserved: b' ',
            reason: bourse_protocol::fields::Alpha::BLANK,
        });
        push_message(out, &itch::Message::TradingAction(action));
    }
    for directory in book.directories() {
        let locate = directory.header.stock_locate;
        for side in [Side::Buy, Side::Sell] {
            for order in book.orders(locate, side) {
                let header = Header {
                    stock_locate: locate,
                    tracking_number: 0,
                    timestamp: order.timestamp,
                };
                let message = match order.attribution {
                    None => itch::Message::AddOrder(itch::AddOrder {
                        header,
                        order_reference_number: order.reference,
                        side,
                        shares: order.shares,
                        stock: directory.stock,
                        price: order.price,
                    }),
                    Some(attribution) => itch::Message::AddOrderMpid(itch::AddOrderMpid {
                        header,
                        order_reference_number: order.reference,
                        side,
                        shares: order.shares,
                        stock: directory.stock,
                        price: order.price,
                        attribution,
                    }),
                };
                push_message(out, &message);
            }
        }
    }
    push_message(
        out,
        &itch::Message::SnapshotEnd(SnapshotEnd {
            sequence_number: feed_seq,
        }),
    );
}
