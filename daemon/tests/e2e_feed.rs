//! End to end through the real `boursed`: market makers trade over SoupBinTCP/OUCH, and multicast receivers
//! built on `bourse_protocol` (MoldUDP64 [`GapTracker`]) and [`FeedBook`] rebuild the books, which must equal
//! the engine's depth from admin at every quiet point (admin `depth` carries the feed sequence it matches).
//!
//! - Two market makers cross: the OUCH replies are the right ones; A and B carry identical packets; the
//!   bytes decode with the independent `itchy` decoder; the receiver's book equals admin depth.
//! - Gaps: with `BOURSED_TEST_DROP_FEED_SEQS` some numbers never reach A or B; the receiver sees gaps and
//!   recovers every one through the re-request server.
//! - A late joiner buffers the multicast, takes a snapshot, applies the buffer above its `G` number and then
//!   equals admin depth too.
//!
//! Every daemon runs on ports 0 with its own journal directory and its own multicast groups; waits are
//! bounded by generous timeouts that only turn a hang into a failure (no timing thresholds).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bourse_book::feed::{FeedBook, FeedBookLimits};
use bourse_daemon::config::DEFAULT_TOML;
use bourse_protocol::admin::{AdminReply, AdminRequest, DepthReply};
use bourse_protocol::fields::{Firm, Symbol, Token};
use bourse_protocol::itch;
use bourse_protocol::moldudp64::{self, GapTracker, GapTrackerConfig, PacketKind};
use bourse_protocol::ouch::{
    CancelOrder, Display, EnterOrder, OrderTerms, OutboundMessage, ReplaceOrder, Side,
};
use bourse_tools::client::{self, Client, ClientConfig, Event, LoginOutcome};
use socket2::{Domain, Protocol, Socket, Type};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------------------
// The daemon

struct Ports {
    order_entry: SocketAddr,
    snapshot: SocketAddr,
    rerequest: SocketAddr,
    admin: SocketAddr,
    group_a: SocketAddrV4,
    group_b: SocketAddrV4,
}

struct Boursed {
    child: Child,
    dir: PathBuf,
    /// Remove `dir` when dropped (false once handed on to a restart).
    owns_dir: bool,
    ports: Ports,
}

/// A UDP port free on this machine right now (for the multicast groups, which cannot use port 0).
fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

fn set(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    table
        .get_mut(section)
        .and_then(toml::Value::as_table_mut)
        .unwrap_or_else(|| panic!("section {section}"))
        .insert(key.to_owned(), value);
}

impl Boursed {
    /// The groups the daemon will send to (`id` picks 239.255.id.1 and .2), chosen before it starts so that
    /// receivers can join first and see the day from its first message.
    fn groups(id: u8) -> (SocketAddrV4, SocketAddrV4) {
        let port = free_udp_port();
        (
            SocketAddrV4::new(Ipv4Addr::new(239, 255, id, 1), port),
            SocketAddrV4::new(Ipv4Addr::new(239, 255, id, 2), port),
        )
    }

    fn start(name: &str, groups: (SocketAddrV4, SocketAddrV4), drop_feed_seqs: Option<&str>) -> Boursed {
        let dir = std::env::temp_dir().join(format!("bourse-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Boursed::start_in(dir, groups, drop_feed_seqs, true)
    }

    /// Starts `boursed` over `dir` (a fresh one, or the journal of an earlier run). `cancel_on_disconnect`
    /// is the value given to every login.
    fn start_in(
        dir: PathBuf,
        groups: (SocketAddrV4, SocketAddrV4),
        drop_feed_seqs: Option<&str>,
        cancel_on_disconnect: bool,
    ) -> Boursed {
        let mut config: toml::Table = DEFAULT_TOML.parse().unwrap();
        let text = |s: String| toml::Value::String(s);
        set(&mut config, "order_entry", "listen", text("127.0.0.1:0".into()));
        set(&mut config, "snapshot", "listen", text("127.0.0.1:0".into()));
        set(&mut config, "admin", "listen", text("127.0.0.1:0".into()));
        set(
            &mut config,
            "market_data",
            "rerequest_listen",
            text("127.0.0.1:0".into()),
        );
        set(&mut config, "market_data", "group_a", text(groups.0.to_string()));
        set(&mut config, "market_data", "group_b", text(groups.1.to_string()));
        set(
            &mut config,
            "market_data",
            "heartbeat_interval_ms",
            toml::Value::Integer(50),
        );
        set(
            &mut config,
            "market_data",
            "rerequest_count_max",
            toml::Value::Integer(3),
        );
        set(
            &mut config,
            "journal",
            "directory",
            text(dir.join("journal").display().to_string()),
        );
        set(&mut config, "journal", "sync", text("none".into()));
        set(&mut config, "engine", "orders_max", toml::Value::Integer(10_000));
        set(&mut config, "engine", "tokens_max", toml::Value::Integer(10_000));
        set(&mut config, "threading", "mode", text("shared".into()));
        for login in config["logins"].as_array_mut().unwrap() {
            login.as_table_mut().unwrap().insert(
                "cancel_on_disconnect".into(),
                toml::Value::Boolean(cancel_on_disconnect),
            );
        }
        let config_path = dir.join("boursed.toml");
        std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
        let ports_path = dir.join("ports");
        let log = std::fs::File::create(dir.join("boursed.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_boursed"));
        command
            .arg("--config")
            .arg(&config_path)
            .arg("--ports-file")
            .arg(&ports_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        match drop_feed_seqs {
            Some(seqs) => command.env("BOURSED_TEST_DROP_FEED_SEQS", seqs),
            None => command.env_remove("BOURSED_TEST_DROP_FEED_SEQS"),
        };
        let mut child = command.spawn().expect("spawn boursed");
        let deadline = Instant::now() + WAIT;
        let ports_text = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_path) {
                break text;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "boursed exited with {status} before writing its ports: {}",
                    std::fs::read_to_string(dir.join("boursed.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "no ports file from boursed");
            std::thread::sleep(Duration::from_millis(10));
        };
        let value: HashMap<&str, &str> = ports_text.lines().filter_map(|l| l.split_once('=')).collect();
        let addr = |key: &str| -> SocketAddr { value[key].parse().unwrap_or_else(|_| panic!("{key}")) };
        let group = |key: &str| -> SocketAddrV4 { value[key].parse().unwrap_or_else(|_| panic!("{key}")) };
        let ports = Ports {
            order_entry: addr("order_entry"),
            snapshot: addr("snapshot"),
            rerequest: addr("rerequest"),
            admin: addr("admin"),
            group_a: group("market_data_a"),
            group_b: group("market_data_b"),
        };
        assert_eq!((ports.group_a, ports.group_b), groups);
        Boursed {
            child,
            dir,
            owns_dir: true,
            ports,
        }
    }

    fn admin(&self, request: &AdminRequest) -> AdminReply {
        let mut stream = TcpStream::connect(self.ports.admin).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = serde_json::to_string(request).unwrap();
        line.push('\n');
        stream.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("admin reply {reply:?}: {e}"))
    }

    fn depth(&self, symbol: &str) -> DepthReply {
        match self.admin(&AdminRequest::Depth {
            symbol: symbol.to_owned(),
            levels: 100,
        }) {
            AdminReply::Depth(depth) => depth,
            other => panic!("depth: {other:?}"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("boursed.log")).unwrap_or_default()
    }

    /// Admin shutdown; the process must exit 0.
    fn shutdown(self) {
        self.stop();
    }

    /// Admin shutdown (exit 0), keeping the directory for a restart; returns it.
    fn shutdown_keep(mut self) -> PathBuf {
        self.owns_dir = false;
        let dir = self.dir.clone();
        self.stop();
        dir
    }

    fn stop(mut self) {
        let reply = self.admin(&AdminRequest::Shutdown);
        assert!(matches!(reply, AdminReply::Done { .. }), "{reply:?}");
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "boursed did not exit: {}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "boursed exit {status}: {}", self.log());
    }
}

impl Drop for Boursed {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The multicast receiver: GapTracker + FeedBook, re-requests on a unicast socket

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    A,
    B,
    Rerequest,
}

fn join(group: SocketAddrV4) -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&SocketAddr::V4(group).into()).unwrap();
    socket
        .join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST)
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

fn book_limits() -> FeedBookLimits {
    FeedBookLimits {
        locates_max: 8,
        orders_max: 10_000,
        levels_max: 4096,
    }
}

fn tracker_config() -> GapTrackerConfig {
    GapTrackerConfig {
        request_count_max: 100,
        gap_wait_ns: 5_000_000,
        request_timeout_ns: 200_000_000,
    }
}

struct Receiver {
    a: UdpSocket,
    b: UdpSocket,
    rerequest_socket: UdpSocket,
    rerequest: Option<SocketAddr>,
    tracker: GapTracker,
    book: FeedBook,
    epoch: Instant,
    /// Late join: packets kept (not applied) until the snapshot is in.
    buffer: Option<Vec<(Source, Vec<u8>)>>,
    /// Data packets by first sequence number, per group, to compare A and B.
    seen_a: HashMap<u64, Vec<u8>>,
    seen_b: HashMap<u64, Vec<u8>>,
    gaps: u64,
    recovered: u64,
    itchy_messages: u64,
    applied: Vec<u64>,
}

impl Receiver {
    fn join(groups: (SocketAddrV4, SocketAddrV4)) -> Receiver {
        let rerequest_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        rerequest_socket.set_nonblocking(true).unwrap();
        Receiver {
            a: join(groups.0),
            b: join(groups.1),
            rerequest_socket,
            rerequest: None,
            tracker: GapTracker::new(tracker_config()),
            book: FeedBook::new(book_limits()),
            epoch: Instant::now(),
            buffer: None,
            seen_a: HashMap::new(),
            seen_b: HashMap::new(),
            gaps: 0,
            recovered: 0,
            itchy_messages: 0,
            applied: Vec::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Reads every packet waiting on the three sockets; returns how many.
    fn pump(&mut self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 65536];
        for source in [Source::A, Source::B, Source::Rerequest] {
            loop {
                let socket = match source {
                    Source::A => &self.a,
                    Source::B => &self.b,
                    Source::Rerequest => &self.rerequest_socket,
                };
                let len = match socket.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("receive: {e}"),
                };
                n += 1;
                let bytes = buf[..len].to_vec();
                self.check(source, &bytes);
                match &mut self.buffer {
                    Some(buffer) => buffer.push((source, bytes)),
                    None => self.process(source, &bytes),
                }
            }
        }
        if self.buffer.is_none() {
            self.request();
        }
        n
    }

    /// Checks every multicast data packet: itchy reads its blocks; A and B copies are identical.
    fn check(&mut self, source: Source, bytes: &[u8]) {
        let packet = moldudp64::Packet::decode(bytes).expect("a MoldUDP64 packet");
        if packet.kind() != PacketKind::Data || source == Source::Rerequest {
            return;
        }
        let first = packet.header().sequence_number;
        let seen = match source {
            Source::A => &mut self.seen_a,
            _ => &mut self.seen_b,
        };
        assert!(
            seen.insert(first, bytes.to_vec()).is_none(),
            "{source:?} sent {first} twice"
        );
        if source == Source::A {
            let theirs: Vec<itchy::Message> =
                itchy::MessageStream::from_reader(Cursor::new(bytes[moldudp64::HEADER_LEN..].to_vec()))
                    .map(|r| r.expect("itchy parses the feed"))
                    .collect();
            assert_eq!(theirs.len(), packet.messages().count());
            for ((_, ours), theirs) in packet.messages().zip(&theirs) {
                assert_eq!(theirs.tag, ours[0], "message type");
                let ours = itch::Message::decode(ours).unwrap();
                if let (itch::Message::AddOrder(a), itchy::Body::AddOrder(t)) = (&ours, &theirs.body) {
                    assert_eq!(
                        (t.reference, t.shares, t.price.raw()),
                        (a.order_reference_number, a.shares, a.price)
                    );
                }
                if let (
                    itch::Message::OrderExecuted(e),
                    itchy::Body::OrderExecuted {
                        reference, executed, ..
                    },
                ) = (&ours, &theirs.body)
                {
                    assert_eq!(
                        (*reference, *executed),
                        (e.order_reference_number, e.executed_shares)
                    );
                }
            }
            self.itchy_messages += theirs.len() as u64;
        }
    }

    fn process(&mut self, source: Source, bytes: &[u8]) {
        let packet = moldudp64::Packet::decode(bytes).unwrap();
        let had_gap = self.tracker.gap().is_some();
        let now = self.now_ns();
        for (seq, message) in self.tracker.on_packet(&packet, now) {
            self.book
                .apply_bytes(message)
                .unwrap_or_else(|e| panic!("feed message {seq} does not apply: {e}"));
            self.applied.push(seq);
            if source == Source::Rerequest {
                self.recovered += 1;
            }
        }
        if !had_gap && self.tracker.gap().is_some() {
            self.gaps += 1;
        }
    }

    fn request(&mut self) {
        if let (Some(to), Some(request)) = (self.rerequest, self.tracker.poll_request(self.now_ns())) {
            self.rerequest_socket.send_to(&request.to_bytes(), to).unwrap();
        }
    }

    /// Pumps until every message up to `seq` is applied.
    fn sync_to(&mut self, seq: u64) {
        let deadline = Instant::now() + WAIT;
        while self.tracker.next_expected() <= seq {
            if self.pump() == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            assert!(
                Instant::now() < deadline,
                "feed stuck at {} waiting for {seq} (gap {:?})",
                self.tracker.next_expected(),
                self.tracker.gap()
            );
        }
    }

    /// Late join (docs/protocol.md 7.8): buffer, snapshot, apply the buffer above N. Returns N.
    /// (`snapshot` below takes a snapshot alone.)
    fn join_with_snapshot(&mut self, snapshot: SocketAddr, during: impl FnOnce()) -> u64 {
        self.buffer = Some(Vec::new());
        self.pump();
        during();
        let mut client = Client::connect(snapshot, &ClientConfig::default()).unwrap();
        let outcome = client.login("carol", "carol-pw", "", 1).unwrap();
        let LoginOutcome::Accepted { session, .. } = outcome else {
            panic!("snapshot login: {outcome:?}");
        };
        let mut messages = Vec::new();
        let n = {
            let this = std::cell::RefCell::new(&mut *self);
            client::read_snapshot(
                &mut client,
                WAIT,
                Duration::from_millis(5),
                || {
                    this.borrow_mut().pump();
                },
                |m| messages.push(*m),
            )
            .unwrap()
        };
        client.logout().unwrap();
        for m in &messages {
            self.book.apply(m).unwrap();
        }
        self.tracker = GapTracker::starting_at(tracker_config(), Some(session), n + 1);
        for (source, bytes) in self.buffer.take().unwrap() {
            self.process(source, &bytes);
        }
        n
    }

    fn assert_equals(&self, depth: &DepthReply) {
        let symbol = Symbol::new(&depth.symbol).unwrap();
        let (bids, asks) = self
            .book
            .depth(symbol, 100)
            .expect("instrument known to the feed");
        let admin = |levels: &[bourse_protocol::admin::DepthLevel]| -> Vec<(u32, u64, u32)> {
            levels.iter().map(|l| (l.price, l.shares, l.orders)).collect()
        };
        assert_eq!(
            bids,
            admin(&depth.bids),
            "{} bids at feed sequence {}",
            depth.symbol,
            depth.feed_sequence
        );
        assert_eq!(
            asks,
            admin(&depth.asks),
            "{} asks at feed sequence {}",
            depth.symbol,
            depth.feed_sequence
        );
        let locate = self.book.locate_of(symbol).unwrap();
        assert_eq!(self.book.is_halted(locate), depth.halted);
    }

    /// A and B carried the same bytes for every packet both delivered.
    fn assert_a_equals_b(&self) {
        let mut common = 0;
        for (first, bytes) in &self.seen_a {
            if let Some(other) = self.seen_b.get(first) {
                assert_eq!(bytes, other, "packet {first} differs between A and B");
                common += 1;
            }
        }
        assert!(common > 0);
    }
}

/// Syncs the receivers to admin's depth of `symbols` and compares.
fn quiet_point(daemon: &Boursed, receivers: &mut [&mut Receiver], symbols: &[&str]) {
    for symbol in symbols {
        let depth = daemon.depth(symbol);
        for r in receivers.iter_mut() {
            r.sync_to(depth.feed_sequence);
            // The daemon is quiet: nothing after feed_sequence exists yet.
            assert_eq!(r.tracker.next_expected(), depth.feed_sequence + 1);
            r.assert_equals(&depth);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Market makers

struct Trader {
    client: Client,
    firm: Firm,
    next_token: u32,
    name: &'static str,
}

fn token(name: &str, n: u32) -> Token {
    Token::new(&format!("{name}{n}")).unwrap()
}

impl Trader {
    fn login(daemon: &Boursed, user: &'static str, password: &str, firm: &str) -> Trader {
        let mut client = Client::connect(daemon.ports.order_entry, &ClientConfig::default()).unwrap();
        let outcome = client.login(user, password, "", 0).unwrap();
        assert!(
            matches!(outcome, LoginOutcome::Accepted { .. }),
            "{user}: {outcome:?}"
        );
        Trader {
            client,
            firm: Firm::new(firm).unwrap(),
            next_token: 1,
            name: user,
        }
    }

    fn enter(&mut self, stock: &str, side: Side, shares: u32, price: u32, display: Display) -> Token {
        let t = token(self.name, self.next_token);
        self.next_token += 1;
        let terms = OrderTerms {
            side,
            shares,
            stock: Symbol::new(stock).unwrap(),
            price,
            time_in_force: 99_999,
            firm: self.firm,
            display,
            capacity: b'A',
            intermarket_sweep: b'N',
            minimum_quantity: 0,
            cross_type: b'N',
        };
        self.client.enter(&EnterOrder::new(t, &terms, b'R')).unwrap();
        t
    }

    fn cancel(&mut self, order: Token, shares: u32) {
        self.client.cancel(&CancelOrder::new(order, shares)).unwrap();
    }

    fn replace(&mut self, order: Token, shares: u32, price: u32) -> Token {
        let t = token(self.name, self.next_token);
        self.next_token += 1;
        self.client
            .replace(&ReplaceOrder::new(
                order,
                t,
                shares,
                price,
                99_999,
                Display::Anonymous,
                b'N',
                0,
            ))
            .unwrap();
        t
    }

    /// The next `n` OUCH messages of this session.
    fn replies(&mut self, n: usize) -> Vec<OutboundMessage> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            let remaining = deadline.saturating_duration_since(Instant::now());
            assert!(
                !remaining.is_zero(),
                "{}: {} of {n} replies: {out:?}",
                self.name,
                out.len()
            );
            match self.client.recv(remaining).unwrap() {
                Some(Event::Sequenced(data)) => out.push(data.ouch().unwrap()),
                Some(Event::Heartbeat | Event::Debug(_)) | None => {}
                Some(other) => panic!("{}: {other:?}", self.name),
            }
        }
        out
    }

    fn expect(&mut self, kinds: &[u8]) -> Vec<OutboundMessage> {
        let replies = self.replies(kinds.len());
        let got: Vec<u8> = replies.iter().map(message_type).collect();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(kinds),
            "{}: {replies:?}",
            self.name
        );
        replies
    }
}

fn message_type(m: &OutboundMessage) -> u8 {
    match m {
        OutboundMessage::SystemEvent(_) => b'S',
        OutboundMessage::Accepted(_) => b'A',
        OutboundMessage::Replaced(_) => b'U',
        OutboundMessage::Canceled(_) => b'C',
        OutboundMessage::AiqCanceled(_) => b'D',
        OutboundMessage::Executed(_) => b'E',
        OutboundMessage::BrokenTrade(_) => b'B',
        OutboundMessage::PriceCorrection(_) => b'K',
        OutboundMessage::Rejected(_) => b'J',
        OutboundMessage::CancelPending(_) => b'P',
        OutboundMessage::CancelReject(_) => b'I',
        OutboundMessage::OrderModified(_) => b'M',
    }
}

fn executed(m: &OutboundMessage) -> (u32, u32) {
    match m {
        OutboundMessage::Executed(e) => (e.executed_shares.get(), e.execution_price.get()),
        other => panic!("not an execution: {other:?}"),
    }
}

const SYMBOLS: [&str; 2] = ["AAPL", "MSFT"];

/// A trading session between alice (ALFA) and bob (BETA) with quiet points; `late` runs once, with the
/// traders, between the second and the third step. Returns the traders still logged in (their logout would
/// cancel their orders: cancel-on-disconnect).
fn trade(
    daemon: &Boursed,
    receivers: &mut [&mut Receiver],
    mut late: impl FnMut(&mut Trader, &mut Trader),
) -> (Trader, Trader) {
    let mut alice = Trader::login(daemon, "alice", "alice-pw", "ALFA");
    let mut bob = Trader::login(daemon, "bob", "bob-pw", "BETA");

    // Step 1: both quote.
    let _a1 = alice.enter("AAPL", Side::Buy, 100, 1_890_000, Display::Anonymous);
    let _a2 = alice.enter("AAPL", Side::Buy, 200, 1_890_000, Display::Anonymous);
    let a3 = alice.enter("AAPL", Side::Buy, 150, 1_885_000, Display::Anonymous);
    let _a4 = alice.enter("AAPL", Side::Sell, 100, 1_910_000, Display::Attributable);
    let a5 = alice.enter("AAPL", Side::Sell, 300, 1_920_000, Display::Anonymous);
    let _a6 = alice.enter("MSFT", Side::Buy, 40, 4_190_000, Display::Anonymous);
    alice.expect(b"AAAAAA");
    let b1 = bob.enter("AAPL", Side::Buy, 50, 1_890_000, Display::Anonymous);
    let _b2 = bob.enter("AAPL", Side::Sell, 120, 1_915_000, Display::Anonymous);
    let _b3 = bob.enter("MSFT", Side::Sell, 60, 4_210_000, Display::Anonymous);
    bob.expect(b"AAA");
    quiet_point(daemon, receivers, &SYMBOLS);

    // Step 2: bob sells 250 at 189.00: alice's 100 then 150 of her 200 (time priority), bob's own bid untouched.
    let _b4 = bob.enter("AAPL", Side::Sell, 250, 1_890_000, Display::Anonymous);
    let bob_replies = bob.expect(b"AEE");
    assert_eq!(executed(&bob_replies[1]), (100, 1_890_000));
    assert_eq!(executed(&bob_replies[2]), (150, 1_890_000));
    let alice_replies = alice.expect(b"EE");
    assert_eq!(executed(&alice_replies[0]), (100, 1_890_000));
    assert_eq!(executed(&alice_replies[1]), (150, 1_890_000));
    quiet_point(daemon, receivers, &SYMBOLS);

    late(&mut alice, &mut bob);

    // Step 3: reduce, replace, cancel; then bob lifts alice's attributed offer and rests the rest.
    alice.cancel(a3, 100);
    alice.expect(b"C");
    let _a7 = alice.replace(a5, 250, 1_918_000);
    alice.expect(b"U");
    bob.cancel(b1, 0);
    bob.expect(b"C");
    let _b5 = bob.enter("AAPL", Side::Buy, 150, 1_910_000, Display::Anonymous);
    let bob_replies = bob.expect(b"AE");
    assert_eq!(executed(&bob_replies[1]), (100, 1_910_000));
    let alice_replies = alice.expect(b"E");
    assert_eq!(executed(&alice_replies[0]), (100, 1_910_000));
    quiet_point(daemon, receivers, &SYMBOLS);
    (alice, bob)
}

#[test]
fn two_market_makers_cross_and_the_feed_rebuilds_the_book_and_a_late_joiner_syncs() {
    let groups = Boursed::groups(31);
    let mut early = Receiver::join(groups);
    let daemon = Boursed::start("cross", groups, None);
    early.rerequest = Some(daemon.ports.rerequest);
    let mut late: Option<(Receiver, u64)> = None;
    let _traders = {
        let late_slot = &mut late;
        let (snapshot, rerequest) = (daemon.ports.snapshot, daemon.ports.rerequest);
        let mut receivers: Vec<&mut Receiver> = vec![&mut early];
        trade(&daemon, &mut receivers, |alice, bob| {
            // A receiver that joins now buffers while more orders arrive, then takes the snapshot.
            let mut receiver = Receiver::join(groups);
            receiver.rerequest = Some(rerequest);
            let n = receiver.join_with_snapshot(snapshot, || {
                alice.enter("MSFT", Side::Buy, 10, 4_180_000, Display::Anonymous);
                alice.expect(b"A");
                bob.enter("MSFT", Side::Sell, 20, 4_220_000, Display::Attributable);
                bob.expect(b"A");
            });
            *late_slot = Some((receiver, n));
        })
    };
    let (mut late_receiver, late_n) = late.expect("the late joiner ran");
    assert!(late_n > 0, "the snapshot carried a feed sequence");
    // The late joiner: after more trading, it equals admin depth like the early receiver does.
    for symbol in SYMBOLS {
        let depth = daemon.depth(symbol);
        for r in [&mut early, &mut late_receiver] {
            r.sync_to(depth.feed_sequence);
            r.assert_equals(&depth);
        }
    }
    for locate in [1u16, 2] {
        for side in [itch::Side::Buy, itch::Side::Sell] {
            assert_eq!(
                early.book.orders(locate, side).collect::<Vec<_>>(),
                late_receiver.book.orders(locate, side).collect::<Vec<_>>(),
                "same orders, same priority, same timestamps"
            );
        }
    }
    assert!(
        late_receiver.applied.iter().all(|&s| s > late_n),
        "nothing at or below N applied after the snapshot"
    );
    assert_eq!(early.gaps, 0, "{}", daemon.log());
    assert_eq!(early.recovered, 0);
    assert!(early.itchy_messages > 0, "itchy read the packets of A");
    early.assert_a_equals_b();
    // The stage's latency histogram (pop -> packet sent) reaches admin.
    let deadline = Instant::now() + WAIT;
    loop {
        let AdminReply::Latency { stages } = daemon.admin(&AdminRequest::Latency) else {
            panic!("latency reply");
        };
        let market_data = stages
            .iter()
            .find(|s| s.stage == "market_data")
            .expect("market_data stage");
        // The runner's time per agent call that did work: every pipeline agent worked.
        let worked = ["work_core", "work_ingress", "work_market_data"]
            .iter()
            .all(|name| {
                stages
                    .iter()
                    .find(|s| s.stage == *name)
                    .is_some_and(|s| s.count > 0 && s.p50_ns > 0)
            });
        if market_data.count > 0 && worked {
            assert!(market_data.p50_ns > 0 && market_data.max_ns >= market_data.p50_ns);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no market_data or work_* latency published: {stages:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.shutdown();
}

#[test]
fn dropped_feed_messages_are_seen_as_gaps_and_all_recovered_by_re_request() {
    let groups = Boursed::groups(32);
    let mut receiver = Receiver::join(groups);
    // 3 and 7: start-of-day messages; 14..=16: orders of the first step (the 11 start-of-day messages come
    // first). rerequest_count_max is 3, so the 3-message gap needs one full answer and more asks for others.
    let dropped = [3u64, 7, 14, 15, 16, 20];
    let daemon = Boursed::start("gaps", groups, Some("3,7,14,15,16,20"));
    receiver.rerequest = Some(daemon.ports.rerequest);
    let _traders = trade(&daemon, &mut [&mut receiver], |_, _| {});
    assert!(receiver.gaps > 0, "gaps seen");
    assert!(
        receiver.recovered >= dropped.len() as u64,
        "recovered {}",
        receiver.recovered
    );
    for seq in dropped {
        assert!(
            !receiver.seen_a.values().chain(receiver.seen_b.values()).any(|p| {
                let packet = moldudp64::Packet::decode(p).unwrap();
                packet.sequence_range().contains(&seq)
            }),
            "{seq} reached a multicast group"
        );
    }
    let mut applied = receiver.applied.clone();
    applied.sort_unstable();
    applied.dedup();
    assert_eq!(applied.len(), receiver.applied.len(), "each message applied once");
    assert_eq!(
        applied,
        (1..=*applied.last().unwrap()).collect::<Vec<_>>(),
        "every message applied, in order"
    );
    assert!(receiver.tracker.counters().requests > 0);
    receiver.assert_a_equals_b();
    daemon.shutdown();
}

/// A whole snapshot session: the messages before `G`, and `N`.
fn snapshot(addr: SocketAddr) -> (Vec<itch::Message>, u64) {
    let mut client = Client::connect(addr, &ClientConfig::default()).unwrap();
    let outcome = client.login("carol", "carol-pw", "", 1).unwrap();
    assert!(matches!(outcome, LoginOutcome::Accepted { .. }), "{outcome:?}");
    let mut messages = Vec::new();
    let n = client::read_snapshot(
        &mut client,
        WAIT,
        Duration::from_millis(5),
        || {},
        |m| messages.push(*m),
    )
    .unwrap();
    client.logout().unwrap();
    (messages, n)
}

#[test]
fn a_restart_continues_the_feed_and_serves_the_same_snapshot() {
    let groups = Boursed::groups(33);
    let mut receiver = Receiver::join(groups);
    let dir = std::env::temp_dir().join(format!("bourse-e2e-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Orders stay on the book across the restart: no cancel-on-disconnect.
    let daemon = Boursed::start_in(dir, groups, None, false);
    receiver.rerequest = Some(daemon.ports.rerequest);
    let traders = trade(&daemon, &mut [&mut receiver], |_, _| {});
    drop(traders);
    let (before, n) = snapshot(daemon.ports.snapshot);
    receiver.sync_to(n);
    assert_eq!(receiver.tracker.next_expected(), n + 1);
    let dir = daemon.shutdown_keep();

    let daemon = Boursed::start_in(dir, groups, None, false);
    receiver.rerequest = Some(daemon.ports.rerequest);
    let (after, n_after) = snapshot(daemon.ports.snapshot);
    assert_eq!(n_after, n, "the restart published nothing new");
    assert_eq!(
        after, before,
        "the snapshot book is rebuilt from the journal alone"
    );
    for symbol in SYMBOLS {
        let depth = daemon.depth(symbol);
        assert_eq!(depth.feed_sequence, n);
        receiver.assert_equals(&depth);
    }
    // The feed continues at n + 1 in the same session: the receiver goes on without a gap.
    let mut alice = Trader::login(&daemon, "alice", "alice-pw", "ALFA");
    alice.next_token = 100;
    alice.enter("MSFT", Side::Sell, 30, 4_230_000, Display::Anonymous);
    alice.expect(b"A");
    quiet_point(&daemon, &mut [&mut receiver], &SYMBOLS);
    assert_eq!(receiver.tracker.next_expected(), n + 2);
    assert_eq!(receiver.gaps, 0);
    receiver.assert_a_equals_b();
    daemon.shutdown();
}
