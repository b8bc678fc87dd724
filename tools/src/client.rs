//! A blocking SoupBinTCP 4.0 + OUCH 4.2 client on a `std::net::TcpStream`: order entry, and snapshot
//! sessions (whose Sequenced Data payloads are ITCH messages).
//!
//! Built on `bourse_protocol`: [`StreamBuffer`] reassembles frames, the `ouch` encoders write the inbound
//! messages and [`ouch::Outbound::decode`] reads the replies. The session rules are `docs/protocol.md`
//! section 2: log in, count Sequenced Data from the Login Accepted number, send a Client Heartbeat when idle.
//!
//! # Use
//! ```no_run
//! use std::time::Duration;
//! use bourse_tools::client::{Client, ClientConfig, Event, LoginOutcome};
//! let mut client = Client::connect("127.0.0.1:26400", &ClientConfig::default())?;
//! match client.login("alice", "alice-pw", "", 0)? {
//!     LoginOutcome::Accepted { session, sequence_next } => println!("{session} from {sequence_next}"),
//!     other => panic!("{other:?}"),
//! }
//! while let Some(event) = client.recv(Duration::from_millis(100))? {
//!     if let Event::Sequenced(data) = event {
//!         println!("{} {:?}", data.sequence_number, data.ouch());
//!     }
//! }
//! client.logout()?;
//! # Ok::<(), bourse_tools::client::ClientError>(())
//! ```
//!
//! # Invariants and limits
//! - No allocation per message: the read buffer ([`ClientConfig::read_buffer_bytes`]) and the write buffer
//!   ([`WRITE_BUFFER_BYTES`]) are allocated at connect; a received Sequenced Data payload is copied into a
//!   fixed [`SequencedData`] of [`SEQUENCED_PAYLOAD_BYTES_MAX`] bytes (a longer one is
//!   [`ClientError::PayloadTooLong`]). Only Debug text is allocated (it is rare and informational).
//! - Every blocking call is bounded: connect and login by [`ClientConfig::connect_timeout`] and
//!   [`ClientConfig::login_timeout`], [`Client::recv`] by its argument.
//! - A Client Heartbeat goes out whenever nothing was sent for [`ClientConfig::heartbeat_interval`] and the
//!   client is inside [`Client::recv`] (or calls [`Client::heartbeat_if_idle`]).
//! - Framing errors from the server end the session: the client returns [`ClientError::Framing`] and should
//!   be dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bourse_protocol::fields::Alpha;
use bourse_protocol::itch;
use bourse_protocol::ouch::{self, Message, OutboundMessage};
use bourse_protocol::soupbintcp::{
    self, FRAME_SIZE_MAX_DEFAULT, LoginRejectReason, LoginRequest, Packet, PacketType, SessionName,
    StreamBuffer,
};

/// The write buffer: one frame of the largest OUCH message, or a Login Request.
pub const WRITE_BUFFER_BYTES: usize = 128;
/// The largest Sequenced Data payload the client keeps (the largest OUCH outbound message; ITCH messages and
/// the snapshot end marker are shorter).
pub const SEQUENCED_PAYLOAD_BYTES_MAX: usize = ouch::MESSAGE_LEN_MAX;
/// The most Debug text bytes kept from one Debug packet.
pub const DEBUG_TEXT_BYTES_MAX: usize = 256;

const _: () = assert!(WRITE_BUFFER_BYTES >= 3 + ouch::MESSAGE_LEN_MAX);
const _: () = assert!(WRITE_BUFFER_BYTES >= 2 + soupbintcp::LOGIN_REQUEST_V41_LEN);
const _: () = assert!(SEQUENCED_PAYLOAD_BYTES_MAX >= itch::MESSAGE_LEN_MAX);

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Bound on the TCP connect.
    pub connect_timeout: Duration,
    /// Bound on waiting for Login Accepted / Rejected.
    pub login_timeout: Duration,
    /// Send a Client Heartbeat after this long without sending anything.
    pub heartbeat_interval: Duration,
    /// The largest frame accepted from the server (the server's `order_entry.frame_size_max`).
    pub frame_size_max: usize,
    /// Capacity of the read buffer; at least `frame_size_max`.
    pub read_buffer_bytes: usize,
    /// Set `TCP_NODELAY` (on by default: an order goes out at once).
    pub nodelay: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            login_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_millis(1000),
            frame_size_max: FRAME_SIZE_MAX_DEFAULT,
            read_buffer_bytes: 64 * 1024,
            nodelay: true,
        }
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve to anything.
    #[error("address {0} resolves to nothing")]
    NoAddress(String),
    /// A socket error (connect refused, reset, ...).
    #[error("{context}: {source}")]
    Io {
        /// What the client was doing.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The server sent bytes that are not valid SoupBinTCP.
    #[error("framing error from the server: {0}")]
    Framing(#[from] soupbintcp::DecodeError),
    /// A Sequenced Data payload longer than [`SEQUENCED_PAYLOAD_BYTES_MAX`].
    #[error("sequenced payload of {len} bytes is above {SEQUENCED_PAYLOAD_BYTES_MAX}")]
    PayloadTooLong {
        /// Its length.
        len: usize,
    },
    /// A packet the server must not send at this point (a Login Accepted after login, a client packet type).
    #[error("unexpected {0:?} packet from the server")]
    Unexpected(PacketType),
    /// No Login Accepted / Rejected within the login timeout.
    #[error("no login answer within {0:?}")]
    LoginTimeout(Duration),
    /// A login field that does not fit its SoupBinTCP field (username 6, password 10, session 10 ASCII).
    #[error("login field {field} does not fit: {value:?}")]
    BadLoginField {
        /// Which field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// Encoding failed (a raw payload above the SoupBinTCP limit).
    #[error("encode: {0}")]
    Encode(#[from] soupbintcp::EncodeError),
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> ClientError {
    move |source| ClientError::Io { context, source }
}

/// The answer to a Login Request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Login Accepted: the session name and the number of the next Sequenced Data packet.
    Accepted {
        /// The session logged into.
        session: SessionName,
        /// Sequence number of the first Sequenced Data packet that follows.
        sequence_next: u64,
    },
    /// Login Rejected with its reason (the server closes the connection).
    Rejected(LoginRejectReason),
    /// The server closed the connection without an answer (a malformed login, or the debug text before it).
    Closed {
        /// The Debug text received before the close, if any.
        debug: Option<String>,
    },
}

/// One Sequenced Data packet: its sequence number and its payload (an OUCH outbound message on order entry,
/// an ITCH message on a snapshot session), copied out of the read buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SequencedData {
    /// Its sequence number (counted from the Login Accepted number).
    pub sequence_number: u64,
    len: u8,
    bytes: [u8; SEQUENCED_PAYLOAD_BYTES_MAX],
}

impl SequencedData {
    /// A Sequenced Data copy of `payload`.
    ///
    /// # Errors
    /// [`ClientError::PayloadTooLong`] above [`SEQUENCED_PAYLOAD_BYTES_MAX`].
    pub fn new(sequence_number: u64, payload: &[u8]) -> Result<Self, ClientError> {
        let mut bytes = [0; SEQUENCED_PAYLOAD_BYTES_MAX];
        bytes
            .get_mut(..payload.len())
            .ok_or(ClientError::PayloadTooLong { len: payload.len() })?
            .copy_from_slice(payload);
        // Checked: payload.len() <= SEQUENCED_PAYLOAD_BYTES_MAX = 80.
        let len = payload.len() as u8;
        Ok(Self {
            sequence_number,
            len,
            bytes,
        })
    }

    /// The raw payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The payload decoded as an OUCH 4.2 outbound message.
    ///
    /// # Errors
    /// The decoder's error (for example on a snapshot session, whose payloads are ITCH).
    pub fn ouch(&self) -> Result<OutboundMessage, ouch::DecodeError> {
        ouch::Outbound::decode(self.payload()).map(|m| m.to_message())
    }

    /// The payload decoded as an ITCH 5.0 message (snapshot sessions).
    ///
    /// # Errors
    /// The decoder's error.
    pub fn itch(&self) -> Result<itch::Message, itch::DecodeError> {
        itch::Message::decode(self.payload())
    }
}

impl std::fmt::Debug for SequencedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequencedData")
            .field("sequence_number", &self.sequence_number)
            .field("payload", &self.payload())
            .finish()
    }
}

/// What [`Client::recv`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A Sequenced Data packet.
    Sequenced(SequencedData),
    /// A Server Heartbeat.
    Heartbeat,
    /// End of Session (end of day); the server closes the connection next.
    EndOfSession,
    /// A Debug packet's text (at most [`DEBUG_TEXT_BYTES_MAX`] bytes, lossy UTF-8).
    Debug(String),
    /// The server closed the connection (or reset it). Every later call returns `Closed` again.
    Closed,
}

/// A connected SoupBinTCP client. See the module docs.
pub struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    config: ClientConfig,
    read_buffer: StreamBuffer,
    write_buffer: [u8; WRITE_BUFFER_BYTES],
    last_sent: Instant,
    /// Number the next Sequenced Data packet will carry.
    sequence_next: u64,
    closed: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("sequence_next", &self.sequence_next)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `address` (within `config.connect_timeout` per resolved address).
    ///
    /// # Errors
    /// [`ClientError::NoAddress`], or [`ClientError::Io`] with the last connect error.
    ///
    /// # Panics
    /// If `config.frame_size_max` or `config.read_buffer_bytes` are outside what [`StreamBuffer::new`] takes.
    pub fn connect(
        address: impl ToSocketAddrs + std::fmt::Display,
        config: &ClientConfig,
    ) -> Result<Self, ClientError> {
        let addresses = address
            .to_socket_addrs()
            .map_err(io_error("resolve the address"))?;
        let mut last_error = None;
        for peer in addresses {
            match TcpStream::connect_timeout(&peer, config.connect_timeout) {
                Ok(stream) => return Self::from_stream(stream, config),
                Err(error) => last_error = Some(error),
            }
        }
        Err(match last_error {
            Some(source) => ClientError::Io {
                context: "connect",
                source,
            },
            None => ClientError::NoAddress(address.to_string()),
        })
    }

    /// Wraps a connected stream (for tests that accept on their own listener).
    ///
    /// # Errors
    /// [`ClientError::Io`] if the socket options cannot be set.
    pub fn from_stream(stream: TcpStream, config: &ClientConfig) -> Result<Self, ClientError> {
        stream
            .set_nodelay(config.nodelay)
            .map_err(io_error("set TCP_NODELAY"))?;
        let peer = stream.peer_addr().map_err(io_error("peer address"))?;
        Ok(Self {
            stream,
            peer,
            read_buffer: StreamBuffer::new(config.read_buffer_bytes, config.frame_size_max),
            config: config.clone(),
            write_buffer: [0; WRITE_BUFFER_BYTES],
            last_sent: Instant::now(),
            sequence_next: 1,
            closed: false,
        })
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The number the next Sequenced Data packet will carry.
    pub fn sequence_next(&self) -> u64 {
        self.sequence_next
    }

    /// True once the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The underlying stream (for socket options; reading or writing it directly breaks the framing).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends a SoupBinTCP 4.0 Login Request and waits (at most `config.login_timeout`) for the answer.
    /// `session` blank (`""`) asks for the current session; `sequence` 0 asks for new messages only.
    /// Server Heartbeats and Debug packets before the answer are skipped (the last Debug text is kept for
    /// [`LoginOutcome::Closed`]).
    ///
    /// # Errors
    /// [`ClientError::BadLoginField`], [`ClientError::Io`], [`ClientError::Framing`],
    /// [`ClientError::LoginTimeout`], [`ClientError::Unexpected`] for a packet other than an answer.
    pub fn login(
        &mut self,
        user: &str,
        password: &str,
        session: &str,
        sequence: u64,
    ) -> Result<LoginOutcome, ClientError> {
        let field = |field: &'static str, value: &str| ClientError::BadLoginField {
            field,
            value: value.to_owned(),
        };
        let request = LoginRequest {
            username: Alpha::new(user).ok_or_else(|| field("username", user))?,
            password: Alpha::new(password).ok_or_else(|| field("password", password))?,
            requested_session: Alpha::new(session).ok_or_else(|| field("session", session))?,
            requested_sequence_number: sequence,
            heartbeat_timeout_ms: None,
        };
        self.send_packet(&Packet::LoginRequest(request))?;
        let deadline = Instant::now() + self.config.login_timeout;
        let mut debug = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::LoginTimeout(self.config.login_timeout));
            }
            let Some(event) = self.next_packet(remaining, |packet| match packet {
                Packet::LoginAccepted(accepted) => Ok(Some(Ok(LoginOutcome::Accepted {
                    session: accepted.session,
                    sequence_next: accepted.sequence_number,
                }))),
                Packet::LoginRejected(reason) => Ok(Some(Ok(LoginOutcome::Rejected(reason)))),
                Packet::Debug(text) => Ok(Some(Err(Some(debug_text(text))))),
                Packet::ServerHeartbeat => Ok(Some(Err(None))),
                other => Err(ClientError::Unexpected(other.packet_type())),
            })?
            else {
                continue;
            };
            match event {
                Some(Ok(outcome)) => {
                    if let LoginOutcome::Accepted { sequence_next, .. } = outcome {
                        self.sequence_next = sequence_next;
                    }
                    return Ok(outcome);
                }
                Some(Err(text)) => {
                    if text.is_some() {
                        debug = text;
                    }
                }
                None => return Ok(LoginOutcome::Closed { debug }),
            }
        }
    }

    /// Waits at most `timeout` for the next packet and returns it as an [`Event`]; `Ok(None)` on timeout.
    /// Sends a Client Heartbeat whenever the client has been idle for the heartbeat interval meanwhile.
    ///
    /// # Errors
    /// [`ClientError::Io`] (other than a reset, which is [`Event::Closed`]), [`ClientError::Framing`],
    /// [`ClientError::PayloadTooLong`], [`ClientError::Unexpected`] for a packet type only clients send or a
    /// Login answer after login.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        let sequence_next = self.sequence_next;
        let event = self.next_packet(timeout, |packet| {
            Ok(Some(match packet {
                Packet::SequencedData(payload) => {
                    Event::Sequenced(SequencedData::new(sequence_next, payload)?)
                }
                Packet::ServerHeartbeat => Event::Heartbeat,
                Packet::EndOfSession => Event::EndOfSession,
                Packet::Debug(text) => Event::Debug(debug_text(text)),
                other => return Err(ClientError::Unexpected(other.packet_type())),
            }))
        })?;
        Ok(match event {
            None => None,
            Some(None) => Some(Event::Closed),
            Some(Some(event)) => {
                if matches!(event, Event::Sequenced(_)) {
                    self.sequence_next += 1;
                }
                Some(event)
            }
        })
    }

    /// Reads until one whole packet is in, then hands it to `on_packet`. Returns `Ok(None)` on timeout,
    /// `Ok(Some(None))` when the connection closed, `Ok(Some(Some(x)))` for what `on_packet` made of a packet.
    fn next_packet<T>(
        &mut self,
        timeout: Duration,
        mut on_packet: impl FnMut(Packet<'_>) -> Result<Option<T>, ClientError>,
    ) -> Result<Option<Option<T>>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(packet) = self.read_buffer.next_packet()? {
                if let Some(value) = on_packet(packet)? {
                    return Ok(Some(Some(value)));
                }
                continue;
            }
            if self.closed {
                return Ok(Some(None));
            }
            self.heartbeat_if_idle()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let heartbeat_due = self.last_sent + self.config.heartbeat_interval;
            let wait = deadline
                .min(heartbeat_due.max(now))
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(wait))
                .map_err(io_error("set the read timeout"))?;
            match self.stream.read(self.read_buffer.spare_mut()) {
                Ok(0) => self.closed = true,
                Ok(n) => self.read_buffer.commit(n),
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    self.closed = true;
                }
                Err(source) => {
                    return Err(ClientError::Io {
                        context: "read",
                        source,
                    });
                }
            }
        }
    }

    /// Sends a Client Heartbeat if nothing was sent for the heartbeat interval.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn heartbeat_if_idle(&mut self) -> Result<(), ClientError> {
        if !self.closed && self.last_sent.elapsed() >= self.config.heartbeat_interval {
            self.send_packet(&Packet::ClientHeartbeat)?;
        }
        Ok(())
    }

    /// Sends one OUCH inbound message in an Unsequenced Data packet.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn send_message<M: Message>(&mut self, message: &M) -> Result<(), ClientError> {
        let header =
            soupbintcp::write_frame_header(PacketType::UnsequencedData, M::LEN, &mut self.write_buffer)?;
        let body = message.encode(&mut self.write_buffer[header..]).map_err(|_| {
            ClientError::Encode(soupbintcp::EncodeError::BufferTooSmall {
                needed: header + M::LEN,
                available: WRITE_BUFFER_BYTES,
            })
        })?;
        self.write_frame(header + body)
    }

    /// Sends an Enter Order.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn enter(&mut self, order: &ouch::EnterOrder) -> Result<(), ClientError> {
        self.send_message(order)
    }

    /// Sends a Cancel Order.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn cancel(&mut self, cancel: &ouch::CancelOrder) -> Result<(), ClientError> {
        self.send_message(cancel)
    }

    /// Sends a Replace Order.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn replace(&mut self, replace: &ouch::ReplaceOrder) -> Result<(), ClientError> {
        self.send_message(replace)
    }

    /// Sends a Modify Order.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn modify(&mut self, modify: &ouch::ModifyOrder) -> Result<(), ClientError> {
        self.send_message(modify)
    }

    /// Sends any SoupBinTCP packet (for tests: a Debug, a second Login Request, a heartbeat with a payload is
    /// not expressible here; use [`Client::send_raw`]).
    ///
    /// # Errors
    /// [`ClientError::Encode`] for a payload above the SoupBinTCP limit, [`ClientError::Io`].
    pub fn send_packet(&mut self, packet: &Packet<'_>) -> Result<(), ClientError> {
        let len = packet.frame_len();
        if len <= WRITE_BUFFER_BYTES {
            let n = packet.encode(&mut self.write_buffer)?;
            self.write_frame(n)
        } else {
            // Large Debug or data packets (tests only): encoded into a one-off buffer.
            let mut frame = vec![0; len];
            let n = packet.encode(&mut frame)?;
            self.send_raw(&frame[..n])
        }
    }

    /// Sends arbitrary bytes as they are (bad-input tests: garbage, half frames, oversize frames).
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(io_error("write"))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn write_frame(&mut self, len: usize) -> Result<(), ClientError> {
        self.stream
            .write_all(&self.write_buffer[..len])
            .map_err(io_error("write"))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Sends a Logout Request and shuts down the sending side (the server then closes the connection).
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn logout(&mut self) -> Result<(), ClientError> {
        self.send_packet(&Packet::LogoutRequest)?;
        // The server may already have closed: not an error.
        let _ = self.stream.shutdown(Shutdown::Write);
        Ok(())
    }

    /// Sends a Logout Request, then reads (at most `timeout`) until the server closes, and returns every
    /// Sequenced Data packet received meanwhile (messages already queued for the session).
    ///
    /// # Errors
    /// As [`Client::recv`].
    pub fn logout_and_drain(&mut self, timeout: Duration) -> Result<Vec<SequencedData>, ClientError> {
        self.logout()?;
        let deadline = Instant::now() + timeout;
        let mut drained = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.recv(remaining)? {
                None | Some(Event::Closed) => return Ok(drained),
                Some(Event::Sequenced(data)) => drained.push(data),
                Some(_) => {}
            }
        }
    }
}

/// Time in Force of a day order (rests until end of day).
pub const TIME_IN_FORCE_DAY: u32 = 99_999;

/// A displayed (anonymous), resting day limit order, the common case of tools and tests: Display `Y`,
/// Capacity `A`, ISO `N`, no minimum quantity, Cross Type `N`, Customer Type blank. `None` when the token
/// (14), the stock (8) or the firm (4, blank for the login's default) does not fit its field.
pub fn limit_order(
    token: &str,
    side: ouch::Side,
    shares: u32,
    stock: &str,
    price: u32,
    firm: &str,
) -> Option<ouch::EnterOrder> {
    let terms = ouch::OrderTerms {
        side,
        shares,
        stock: Alpha::new(stock)?,
        price,
        time_in_force: TIME_IN_FORCE_DAY,
        firm: Alpha::new(firm)?,
        display: ouch::Display::Anonymous,
        capacity: b'A',
        intermarket_sweep: b'N',
        minimum_quantity: 0,
        cross_type: b'N',
    };
    Some(ouch::EnterOrder::new(Alpha::new(token)?, &terms, b' '))
}

fn debug_text(text: &[u8]) -> String {
    String::from_utf8_lossy(&text[..text.len().min(DEBUG_TEXT_BYTES_MAX)]).into_owned()
}

/// Takes one whole snapshot over an already logged-in snapshot session: every ITCH message up to and
/// including the end marker `G`, handed to `on_message` in order, and returns the sequence number `N` the
/// marker carries. `poll` is called between reads (at least every `poll_interval`), so a feed receiver can keep
/// draining its multicast sockets meanwhile (`docs/protocol.md` 7.8).
///
/// # Errors
/// [`SnapshotError`]: the session closed early, a message did not decode, `timeout` passed, or the client
/// failed.
pub fn read_snapshot(
    client: &mut Client,
    timeout: Duration,
    poll_interval: Duration,
    mut poll: impl FnMut(),
    mut on_message: impl FnMut(&itch::Message),
) -> Result<u64, SnapshotError> {
    let deadline = Instant::now() + timeout;
    loop {
        poll();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(SnapshotError::Timeout(timeout));
        }
        match client.recv(remaining.min(poll_interval))? {
            None | Some(Event::Heartbeat | Event::Debug(_)) => {}
            Some(Event::Sequenced(data)) => {
                let message = data.itch().map_err(|error| SnapshotError::Decode {
                    sequence_number: data.sequence_number,
                    error,
                })?;
                if let itch::Message::SnapshotEnd(end) = message {
                    return Ok(end.sequence_number);
                }
                on_message(&message);
            }
            Some(Event::EndOfSession | Event::Closed) => return Err(SnapshotError::Closed),
        }
    }
}

/// Why [`read_snapshot`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The session ended before the end marker.
    #[error("the snapshot session closed before its end marker")]
    Closed,
    /// A snapshot message is not ITCH.
    #[error("snapshot message {sequence_number} does not decode: {error}")]
    Decode {
        /// Its SoupBinTCP sequence number.
        sequence_number: u64,
        /// The decoder's error.
        error: itch::DecodeError,
    },
    /// No end marker within the timeout.
    #[error("no snapshot end marker within {0:?}")]
    Timeout(Duration),
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use bourse_protocol::fields::Token;
    use bourse_protocol::ouch::{EnterOrder, Side};
    use bourse_protocol::soupbintcp::LoginAccepted;

    use super::*;

    /// A scripted server: accepts one connection, runs `script` on it, returns what it gathered.
    fn server<T: Send + 'static>(
        script: impl FnOnce(TcpStream) -> T + Send + 'static,
    ) -> (SocketAddr, thread::JoinHandle<T>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            script(stream)
        });
        (address, handle)
    }

    fn frame(packet: Packet<'_>) -> Vec<u8> {
        let mut out = vec![0; packet.frame_len()];
        packet.encode(&mut out).unwrap();
        out
    }

    /// Reads frames from the stream until `count` packets arrived; returns their bytes (type + payload).
    fn read_packets(stream: &mut TcpStream, count: usize) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        while packets.len() < count {
            let mut prefix = [0; 2];
            stream.read_exact(&mut prefix).unwrap();
            let mut packet = vec![0; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut packet).unwrap();
            packets.push(packet);
        }
        packets
    }

    fn enter_order(token: &str) -> EnterOrder {
        limit_order(token, Side::Buy, 100, "AAPL", 1_900_000, "ALFA").unwrap()
    }

    #[test]
    fn login_enter_and_receive_sequenced_replies_split_across_writes() {
        let order = enter_order("T1");
        let (address, handle) = server(move |mut stream| {
            let login = read_packets(&mut stream, 1).remove(0);
            // Debug and heartbeat before the answer are skipped.
            stream.write_all(&frame(Packet::Debug(b"hello"))).unwrap();
            stream.write_all(&frame(Packet::ServerHeartbeat)).unwrap();
            let accepted = frame(Packet::LoginAccepted(LoginAccepted {
                session: Alpha::new("2026112601").unwrap(),
                sequence_number: 7,
            }));
            stream.write_all(&accepted).unwrap();
            let entered = read_packets(&mut stream, 1).remove(0);
            // A Rejected reply, written one byte at a time, then a heartbeat and an End of Session.
            let reply = ouch::Rejected::new(
                5,
                Token::new("T1").unwrap(),
                bourse_protocol::reason::RejectReason::Halted,
            );
            let mut bytes = frame(Packet::SequencedData(reply.as_wire()));
            bytes.extend(frame(Packet::ServerHeartbeat));
            bytes.extend(frame(Packet::EndOfSession));
            for byte in bytes {
                stream.write_all(&[byte]).unwrap();
                stream.flush().unwrap();
            }
            (login, entered)
        });
        let mut client = Client::connect(address, &ClientConfig::default()).unwrap();
        let outcome = client.login("alice", "alice-pw", "", 3).unwrap();
        assert_eq!(
            outcome,
            LoginOutcome::Accepted {
                session: Alpha::new("2026112601").unwrap(),
                sequence_next: 7
            }
        );
        client.enter(&order).unwrap();
        let mut events = Vec::new();
        while let Some(event) = client.recv(Duration::from_secs(10)).unwrap() {
            let done = event == Event::Closed;
            events.push(event);
            if done {
                break;
            }
        }
        let (login, entered) = handle.join().unwrap();
        assert_eq!(login[0], b'L');
        assert_eq!(login.len(), soupbintcp::LOGIN_REQUEST_LEN);
        assert_eq!(&login[1..7], b"alice ");
        assert_eq!(&login[7..17], b"alice-pw  ");
        assert_eq!(&login[17..27], b"          ");
        assert_eq!(&login[27..47], b"                   3");
        assert_eq!(entered[0], b'U');
        assert_eq!(&entered[1..], order.as_wire());

        let Event::Sequenced(data) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(data.sequence_number, 7);
        let OutboundMessage::Rejected(rejected) = data.ouch().unwrap() else {
            panic!("{data:?}")
        };
        assert_eq!(rejected.order_token, Token::new("T1").unwrap());
        assert_eq!(
            &events[1..],
            &[Event::Heartbeat, Event::EndOfSession, Event::Closed]
        );
        assert_eq!(client.sequence_next(), 8);
        assert!(client.is_closed());
    }

    #[test]
    fn rejected_and_closed_logins() {
        let (address, handle) = server(|mut stream| {
            read_packets(&mut stream, 1);
            stream
                .write_all(&frame(Packet::LoginRejected(LoginRejectReason::NotAuthorized)))
                .unwrap();
        });
        let mut client = Client::connect(address, &ClientConfig::default()).unwrap();
        assert_eq!(
            client.login("alice", "wrong", "", 0).unwrap(),
            LoginOutcome::Rejected(LoginRejectReason::NotAuthorized)
        );
        handle.join().unwrap();

        let (address, handle) = server(|mut stream| {
            read_packets(&mut stream, 1);
            stream
                .write_all(&frame(Packet::Debug(b"malformed login")))
                .unwrap();
        });
        let mut client = Client::connect(address, &ClientConfig::default()).unwrap();
        let outcome = client.login("alice", "alice-pw", "", 0).unwrap();
        handle.join().unwrap();
        assert_eq!(
            outcome,
            LoginOutcome::Closed {
                debug: Some("malformed login".into())
            }
        );
        // Fields that do not fit are refused before anything is sent.
        assert!(matches!(
            client.login("toolonguser", "x", "", 0),
            Err(ClientError::BadLoginField {
                field: "username",
                ..
            })
        ));
    }

    #[test]
    fn client_heartbeats_when_idle_and_raw_bytes_go_out_as_given() {
        let (address, handle) = server(|mut stream| {
            let packets = read_packets(&mut stream, 3);
            stream.write_all(&frame(Packet::EndOfSession)).unwrap();
            packets
        });
        let config = ClientConfig {
            heartbeat_interval: Duration::from_millis(20),
            ..ClientConfig::default()
        };
        let mut client = Client::connect(address, &config).unwrap();
        client.send_raw(&[0, 3, b'+', b'h', b'i']).unwrap();
        // Idle: recv sends heartbeats until the server has seen two and answers.
        let mut seen = None;
        for _ in 0..1000 {
            if let Some(event) = client.recv(Duration::from_millis(50)).unwrap() {
                seen = Some(event);
                break;
            }
        }
        assert_eq!(seen, Some(Event::EndOfSession));
        let packets = handle.join().unwrap();
        assert_eq!(packets[0], b"+hi");
        assert_eq!(packets[1], b"R");
        assert_eq!(packets[2], b"R");
    }

    #[test]
    fn framing_errors_and_bad_payloads_are_typed_errors() {
        let (address, handle) = server(|mut stream| {
            read_packets(&mut stream, 1);
            stream.write_all(&[0, 0]).unwrap(); // packet length 0
        });
        let mut client = Client::connect(address, &ClientConfig::default()).unwrap();
        client.send_packet(&Packet::ClientHeartbeat).unwrap();
        let error = client.recv(Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(error, ClientError::Framing(soupbintcp::DecodeError::ZeroLength)),
            "{error}"
        );
        handle.join().unwrap();

        let (address, handle) = server(|mut stream| {
            read_packets(&mut stream, 1);
            stream
                .write_all(&frame(Packet::SequencedData(&[b'A'; 81])))
                .unwrap();
            stream.write_all(&frame(Packet::UnsequencedData(b"X"))).unwrap();
        });
        let mut client = Client::connect(address, &ClientConfig::default()).unwrap();
        client.send_packet(&Packet::ClientHeartbeat).unwrap();
        assert!(matches!(
            client.recv(Duration::from_secs(10)),
            Err(ClientError::PayloadTooLong { len: 81 })
        ));
        assert!(matches!(
            client.recv(Duration::from_secs(10)),
            Err(ClientError::Unexpected(PacketType::UnsequencedData))
        ));
        handle.join().unwrap();
    }

    #[test]
    fn a_snapshot_session_yields_itch_up_to_the_end_marker() {
        use bourse_protocol::itch::{Header, SnapshotEnd, SystemEvent, Timestamp48};
        let (address, handle) = server(|mut stream| {
            read_packets(&mut stream, 1);
            stream
                .write_all(&frame(Packet::LoginAccepted(LoginAccepted {
                    session: Alpha::new("2026112601").unwrap(),
                    sequence_number: 1,
                })))
                .unwrap();
            let header = Header {
                stock_locate: 0,
                tracking_number: 0,
                timestamp: Timestamp48::new(5).unwrap(),
            };
            let event = itch::Message::SystemEvent(SystemEvent {
                header,
                event_code: itch::EventCode::StartOfMarketHours,
            });
            let end = itch::Message::SnapshotEnd(SnapshotEnd {
                sequence_number: 4711,
            });
            for message in [event, end] {
                let mut bytes = [0; itch::MESSAGE_LEN_MAX];
                let n = message.encode(&mut bytes).unwrap();
                stream
                    .write_all(&frame(Packet::SequencedData(&bytes[..n])))
                    .unwrap();
            }
        });
        let mut client = Client::connect(address, &ClientConfig::default()).unwrap();
        assert!(matches!(
            client.login("alice", "alice-pw", "", 1).unwrap(),
            LoginOutcome::Accepted { sequence_next: 1, .. }
        ));
        let mut messages = Vec::new();
        let mut polls = 0;
        let n = read_snapshot(
            &mut client,
            Duration::from_secs(10),
            Duration::from_millis(5),
            || polls += 1,
            |m| messages.push(*m),
        )
        .unwrap();
        handle.join().unwrap();
        assert_eq!(n, 4711);
        assert_eq!(messages.len(), 1);
        assert!(matches!(messages[0], itch::Message::SystemEvent(_)));
        assert!(polls >= 2);
    }
}
