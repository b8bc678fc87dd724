//! A scripted SoupBinTCP + OUCH server: answers every request at once, with no book, no journal, no
//! sequencing. It is the baseline of the end-to-end benchmark (the same load generator, the same framing and
//! batching, nothing behind the socket) and the stand-in exchange of the load generator's tests.
//!
//! # Script
//! - Login Request: Login Accepted (session `ECHO`, sequence 1), whatever the credentials.
//! - Enter Order: Accepted (state Live, or Dead for TIF 0), the terms echoed.
//! - Replace Order: Replaced to the new price and size (side Buy, stock and firm blank: nothing is kept).
//! - Cancel Order: Canceled, reason `U`, decrement 0 (nothing is kept).
//! - Client Heartbeat: nothing; Logout Request: the connection is closed.
//!
//! Replies to everything read in one `read` are written with one `write` (the batching a real server has).
//! With [`EchoOptions::stall`] the server sleeps once, after the given number of OUCH requests, to let tests
//! check the coordinated-omission correction.
//!
//! # Limits
//! At most [`ECHO_CONNECTIONS_MAX`] connections; [`ECHO_RX_BYTES`] receive buffer and a send buffer of
//! [`ECHO_TX_BYTES_MAX`] bytes per connection (a client that does not read is closed past it). The thread
//! stops when the [`EchoServer`] is stopped or dropped.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bourse_protocol::fields::{Firm, Symbol};
use bourse_protocol::ouch::{
    Accepted, Canceled, Display, Inbound, Message, OrderState, OrderTerms, Replaced, Side,
};
use bourse_protocol::reason::CancelReason;
use bourse_protocol::soupbintcp::{self, LoginAccepted, Packet, PacketType, SessionName, StreamBuffer};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// Connections served at most.
pub const ECHO_CONNECTIONS_MAX: usize = 65_536;
/// Receive buffer per connection.
pub const ECHO_RX_BYTES: usize = 64 * 1024;
/// Send buffer per connection before it is closed as a slow reader.
pub const ECHO_TX_BYTES_MAX: usize = 4 * 1024 * 1024;
const LISTENER: Token = Token(usize::MAX);

/// How the echo server behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoOptions {
    /// Poll without sleeping (one core busy); otherwise epoll waits up to 1 ms.
    pub busy_poll: bool,
    /// After this many OUCH requests, sleep this long once (before answering the last one).
    pub stall: Option<(u64, Duration)>,
}

/// What the server saw, returned by [`EchoServer::stop`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Connections accepted.
    pub connections: u64,
    /// Logins answered.
    pub logins: u64,
    /// OUCH requests answered.
    pub requests: u64,
}

/// A running echo server on 127.0.0.1.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<EchoStats>>>,
}

impl EchoServer {
    /// Binds 127.0.0.1:0 and serves on a new thread.
    ///
    /// # Errors
    /// Bind or poll set-up errors.
    pub fn start(options: EchoOptions) -> io::Result<Self> {
        let mut listener = TcpListener::bind("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("echo".into())
            .spawn(move || serve(listener, poll, options, &flag))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and returns what it saw.
    ///
    /// # Errors
    /// The I/O error that ended the server, if one did.
    pub fn stop(mut self) -> io::Result<EchoStats> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("echo thread panicked")),
            None => Ok(EchoStats::default()),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Connection {
    stream: TcpStream,
    rx: StreamBuffer,
    tx: Vec<u8>,
    open: bool,
}

struct Script {
    options: EchoOptions,
    stats: EchoStats,
    order_reference: u64,
    stalled: bool,
}

impl Script {
    fn answer(&mut self, packet: Packet<'_>, tx: &mut Vec<u8>) -> bool {
        match packet {
            Packet::LoginRequest(_) => {
                self.stats.logins += 1;
                let accepted = Packet::LoginAccepted(LoginAccepted {
                    session: SessionName::new("ECHO").unwrap_or_default(),
                    sequence_number: 1,
                });
                let mut frame = [0u8; 64];
                if let Ok(n) = accepted.encode(&mut frame) {
                    tx.extend_from_slice(&frame[..n]);
                }
                true
            }
            Packet::UnsequencedData(bytes) => {
                self.stats.requests += 1;
                if let Some((after, pause)) = self.options.stall
                    && !self.stalled
                    && self.stats.requests >= after
                {
                    self.stalled = true;
                    std::thread::sleep(pause);
                }
                self.order_reference += 1;
                let reference = self.order_reference;
                match Inbound::decode(bytes) {
                    Ok(Inbound::EnterOrder(o)) => {
                        let terms = OrderTerms {
                            side: o.side,
                            shares: o.shares.get(),
                            stock: o.stock,
                            price: o.price.get(),
                            time_in_force: o.time_in_force.get(),
                            firm: o.firm,
                            display: o.display,
                            capacity: o.capacity,
                            intermarket_sweep: o.intermarket_sweep,
                            minimum_quantity: o.minimum_quantity.get(),
                            cross_type: o.cross_type,
                        };
                        let state = if terms.time_in_force == 0 {
                            OrderState::Dead
                        } else {
                            OrderState::Live
                        };
                        push(tx, &Accepted::new(0, o.order_token, &terms, reference, state));
                    }
                    Ok(Inbound::ReplaceOrder(r)) => {
                        let terms = OrderTerms {
                            side: Side::Buy,
                            shares: r.shares.get(),
                            stock: Symbol::BLANK,
                            price: r.price.get(),
                            time_in_force: r.time_in_force.get(),
                            firm: Firm::BLANK,
                            display: Display::Anonymous,
                            capacity: b'P',
                            intermarket_sweep: r.intermarket_sweep,
                            minimum_quantity: r.minimum_quantity.get(),
                            cross_type: b'N',
                        };
                        let replaced = Replaced::new(
                            0,
                            r.replacement_order_token,
                            &terms,
                            reference,
                            OrderState::Live,
                            r.existing_order_token,
                        );
                        push(tx, &replaced);
                    }
                    Ok(Inbound::CancelOrder(c)) => {
                        push(
                            tx,
                            &Canceled::new(0, c.order_token, 0, CancelReason::UserRequested),
                        );
                    }
                    Ok(Inbound::ModifyOrder(_)) | Err(_) => {}
                }
                true
            }
            Packet::LogoutRequest => false,
            _ => true,
        }
    }
}

fn push<M: Message>(tx: &mut Vec<u8>, message: &M) {
    let mut frame = [0u8; 3 + bourse_protocol::ouch::MESSAGE_LEN_MAX];
    if let Ok(header) = soupbintcp::write_frame_header(PacketType::SequencedData, M::LEN, &mut frame)
        && let Ok(len) = message.encode(&mut frame[header..])
    {
        tx.extend_from_slice(&frame[..header + len]);
    }
}

fn serve(
    listener: TcpListener,
    mut poll: Poll,
    options: EchoOptions,
    stop: &AtomicBool,
) -> io::Result<EchoStats> {
    let mut events = Events::with_capacity(1024);
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut script = Script {
        options,
        stats: EchoStats::default(),
        order_reference: 0,
        stalled: false,
    };
    let timeout = if options.busy_poll {
        Duration::ZERO
    } else {
        Duration::from_millis(1)
    };
    while !stop.load(Ordering::Relaxed) {
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                // Accept until none is waiting (edge-triggered), within the connection limit.
                while connections.len() < ECHO_CONNECTIONS_MAX {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let index = connections.len();
                            poll.registry().register(
                                &mut stream,
                                Token(index),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            connections.push(Some(Connection {
                                stream,
                                rx: StreamBuffer::new(ECHO_RX_BYTES, soupbintcp::FRAME_SIZE_MAX_DEFAULT),
                                tx: Vec::with_capacity(64 * 1024),
                                open: true,
                            }));
                            script.stats.connections += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let Some(slot) = connections.get_mut(event.token().0) else {
                continue;
            };
            let Some(connection) = slot.as_mut() else {
                continue;
            };
            serve_connection(connection, &mut script);
            if !connection.open {
                let _ = poll.registry().deregister(&mut connection.stream);
                *slot = None;
            }
        }
    }
    Ok(script.stats)
}

/// Reads everything available, answers it, writes the answers (one write per read batch).
fn serve_connection(connection: &mut Connection, script: &mut Script) {
    loop {
        let n = match connection.stream.read(connection.rx.spare_mut()) {
            Ok(0) => {
                connection.open = false;
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                connection.open = false;
                return;
            }
        };
        connection.rx.commit(n);
        let Connection { rx, tx, open, .. } = connection;
        let drained = rx.for_each_packet(usize::MAX, |packet| {
            if script.answer(packet, tx) {
                std::ops::ControlFlow::Continue(())
            } else {
                *open = false;
                std::ops::ControlFlow::Break(())
            }
        });
        if drained.is_err() {
            connection.open = false;
        }
        flush(connection);
        if !connection.open {
            return;
        }
    }
    flush(connection);
}

fn flush(connection: &mut Connection) {
    let mut written = 0;
    while written < connection.tx.len() {
        match connection.stream.write(&connection.tx[written..]) {
            Ok(0) => {
                connection.open = false;
                break;
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                connection.open = false;
                break;
            }
        }
    }
    connection.tx.drain(..written);
    if connection.tx.len() > ECHO_TX_BYTES_MAX {
        connection.open = false;
    }
}
