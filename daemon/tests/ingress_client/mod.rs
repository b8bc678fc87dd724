//! A blocking SoupBinTCP + OUCH test client for the ingress tests (`tests/ingress.rs`) and the end-to-end
//! session tests against `boursed` (`tests/e2e_sessions.rs`). Every read waits at most [`WAIT`], a generous
//! timeout rather than a measurement.

#![allow(dead_code, unreachable_pub)] // Each test crate uses a different part; `pub` is for the tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bourse_protocol::fields::{Alpha, Token};
use bourse_protocol::ouch::{self, Message};
use bourse_protocol::soupbintcp::{LoginRequest, Packet};

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory named after `tag`, the process and a counter.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bourse-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Sequence Number of a Login Accepted payload (session 10 bytes, then the number).
pub fn accepted_seq(payload: &[u8]) -> u64 {
    std::str::from_utf8(&payload[10..30])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Logs `user` in at `addr` asking for `seq`; returns the client, the session name and the Login Accepted
/// sequence number. Panics on anything but Login Accepted.
pub fn log_in(addr: SocketAddr, user: &str, password: &str, seq: u64) -> (Client, Vec<u8>, u64) {
    let mut c = Client::connect(addr);
    c.send(&login_frame(user, password, "", seq));
    match c.next() {
        Next::Packet(b'A', payload) => {
            let seq = accepted_seq(&payload);
            (c, payload[..10].to_vec(), seq)
        }
        other => panic!("{user}: expected Login Accepted, got {other:?}"),
    }
}

/// Logs many users in at once: every connection and Login Request first, then every Login Accepted
/// (so the server has them all open together). Panics on anything but Login Accepted.
pub fn log_in_all(addr: SocketAddr, users: impl Iterator<Item = (String, String)>) -> Vec<Client> {
    let mut clients: Vec<Client> = users
        .map(|(user, password)| {
            let mut c = Client::connect(addr);
            c.send(&login_frame(&user, &password, "", 0));
            c
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        match c.next() {
            Next::Packet(b'A', _) => {}
            other => panic!("session {i}: expected Login Accepted, got {other:?}"),
        }
    }
    clients
}

/// Whether `user` can log in now at `addr` (a probe that logs out again at once): false while another
/// session of the same user is logged in (`J A`).
pub fn can_log_in(addr: SocketAddr, user: &str, password: &str) -> bool {
    let mut probe = Client::connect(addr);
    probe.send(&login_frame(user, password, "", 0));
    match probe.next() {
        Next::Packet(b'A', _) => {
            probe.send(&frame(b'O', &[]));
            probe.until_closed();
            true
        }
        _ => false,
    }
}

/// The longest any test waits for anything.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `done` every 2 ms until it holds; panics after [`WAIT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An Enter Order frame (Unsequenced Data).
pub fn enter_order(token_text: &str, terms: &ouch::OrderTerms) -> Vec<u8> {
    frame(
        b'U',
        ouch::EnterOrder::new(token(token_text), terms, b' ').as_wire(),
    )
}

/// A SoupBinTCP frame.
pub fn frame(packet_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u16).to_be_bytes().to_vec();
    out.push(packet_type);
    out.extend_from_slice(payload);
    out
}

/// A SoupBinTCP 4.0 Login Request frame.
pub fn login_frame(user: &str, password: &str, session: &str, seq: u64) -> Vec<u8> {
    let packet = Packet::LoginRequest(LoginRequest {
        username: Alpha::new(user).unwrap(),
        password: Alpha::new(password).unwrap(),
        requested_session: Alpha::new(session).unwrap(),
        requested_sequence_number: seq,
        heartbeat_timeout_ms: None,
    });
    let mut out = vec![0u8; packet.frame_len()];
    packet.encode(&mut out).unwrap();
    out
}

/// An order token.
pub fn token(text: &str) -> Token {
    Token::new(text).unwrap()
}

/// A Cancel Order frame (to 0 shares).
pub fn cancel(token_text: &str) -> Vec<u8> {
    frame(b'U', ouch::CancelOrder::new(token(token_text), 0).as_wire())
}

/// What the server sent next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Packet(u8, Vec<u8>),
    /// End of stream (or a reset: the server closed with data in flight).
    Closed,
}

/// One blocking connection.
pub struct Client {
    /// The socket.
    pub s: TcpStream,
}

impl Client {
    /// Connects (nodelay, read timeout [`WAIT`]).
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s }
    }

    /// Writes `bytes`, ignoring errors (the server may have closed: the test reads the outcome).
    pub fn send(&mut self, bytes: &[u8]) {
        // The server may already have closed: the test reads the outcome.
        let _ = self.s.write_all(bytes);
    }

    /// Fills `buf`; false at the end of the stream or a reset.
    pub fn read_exact_or_closed(&mut self, buf: &mut [u8]) -> bool {
        let mut at = 0;
        while at < buf.len() {
            match self.s.read(&mut buf[at..]) {
                Ok(0) => return false,
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("timed out reading from the server")
                }
                Err(_) => return false, // reset
            }
        }
        true
    }

    /// The next packet, heartbeats included.
    pub fn next(&mut self) -> Next {
        let mut header = [0u8; 3];
        if !self.read_exact_or_closed(&mut header) {
            return Next::Closed;
        }
        let len = u16::from_be_bytes([header[0], header[1]]) as usize;
        assert!(len >= 1, "server sent packet length 0");
        let mut payload = vec![0u8; len - 1];
        if !self.read_exact_or_closed(&mut payload) {
            return Next::Closed;
        }
        Next::Packet(header[2], payload)
    }

    /// The next packet that is not a Server Heartbeat.
    pub fn next_data(&mut self) -> Next {
        loop {
            match self.next() {
                Next::Packet(b'H', _) => {}
                other => return other,
            }
        }
    }

    /// The next Sequenced Data message; panics on anything else.
    pub fn sequenced(&mut self) -> Vec<u8> {
        match self.next_data() {
            Next::Packet(b'S', m) => m,
            other => panic!("expected Sequenced Data, got {other:?}"),
        }
    }

    /// Every non-heartbeat packet until the end of the stream.
    pub fn until_closed(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut seen = Vec::new();
        loop {
            match self.next_data() {
                Next::Packet(t, p) => seen.push((t, p)),
                Next::Closed => return seen,
            }
        }
    }
}

/// The order token of an OUCH outbound message (Accepted, Rejected, Canceled, Cancel Reject, ...); empty
/// for a System Event.
pub fn message_token(message: &[u8]) -> &[u8] {
    // Every OUCH outbound message with a token has it at 9..23 (after type and timestamp); a System
    // Event (10 bytes) has none.
    let Some(field) = message.get(9..23) else {
        return &[];
    };
    let end = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &field[..end]
}

/// Reads to the end of the stream and checks a Debug packet came before it.
pub fn assert_debug_then_closed(c: &mut Client, case: &str) {
    let seen = c.until_closed();
    assert!(
        seen.iter().any(|(t, _)| *t == b'+'),
        "{case}: expected a Debug packet before the close, got {seen:?}"
    );
    assert!(
        seen.iter().all(|(t, _)| *t == b'+' || *t == b'S'),
        "{case}: unexpected packets {seen:?}"
    );
}
