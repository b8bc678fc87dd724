//! The market-data stage against real sockets: KIND_ITCH records are written into a real journal in a temp
//! directory and committed, the matching `ToFeed` records pushed into the ring, the agent runs on a shared
//! runner, and receivers joined on 127.0.0.1 (one group:port pair per test) check what goes out.
//!
//! Covered: packets byte-identical on A and B with contiguous headers, the payload limit, heartbeats when idle,
//! the bytes read back by the independent `itchy` decoder; the drop hook removes messages from A and B and the
//! re-request server returns them (cap, ignore rules, never past the last sent); the snapshot after N messages
//! (Add Orders in priority, `G` = N, login rejects); a restart over the same journal continues the sequence
//! and serves the same snapshot; End of Session; the shutdown handshake. No timing thresholds: waits are
//! bounded by generous timeouts that only turn a hang into a failure.

use std::io::{Cursor, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bourse_book::feed::{FeedBook, FeedBookLimits};
use bourse_daemon::agent::{self, Agent, Clock, IdleStrategy, RunnerHandle, StopFlag};
use bourse_daemon::config::{MarketDataConfig, SessionLogin, SnapshotConfig};
use bourse_daemon::market_data::{MarketData, MarketDataParams};
use bourse_daemon::msg::{Lifecycle, SessionName, ToFeed};
use bourse_daemon::ring;
use bourse_daemon::snapshot::SessionTimers;
use bourse_daemon::stats::Shared;
use bourse_journal::{Journal, JournalConfig, MmapStorage, SyncPolicy};
use bourse_protocol::fields::{Alpha, Firm, Symbol};
use bourse_protocol::itch::{
    AddOrder, AddOrderMpid, EventCode, Header, Message, OrderCancel, OrderDelete, OrderExecuted,
    OrderReplace, Side, StockDirectory, SystemEvent, Timestamp48, TradingAction, TradingState,
};
use bourse_protocol::journaled::{KIND_ADMIN, KIND_ITCH, encode_admin, encode_itch};
use bourse_protocol::moldudp64::{self, PacketKind};
use bourse_protocol::soupbintcp::{self, LoginRejectReason, LoginRequest, Packet};
use socket2::{Domain, Protocol, Socket, Type};

const WAIT: Duration = Duration::from_secs(10);
const SESSION: &str = "2026112601";

fn session() -> SessionName {
    Alpha::new(SESSION).unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// Harness

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("bourse-md-{name}-{}", std::process::id()));
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

/// A multicast receiver on one group (bound to group:port, joined on 127.0.0.1).
fn receiver(group: Ipv4Addr) -> (UdpSocket, u16) {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(group, 0)).into())
        .unwrap();
    socket.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let socket: UdpSocket = socket.into();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

struct Feeds {
    a: UdpSocket,
    b: UdpSocket,
    group_a: SocketAddr,
    group_b: SocketAddr,
}

/// Receivers on two groups of the test's own (`id` picks 239.255.id.1 and .2).
fn feeds(id: u8) -> Feeds {
    let ga = Ipv4Addr::new(239, 255, id, 1);
    let gb = Ipv4Addr::new(239, 255, id, 2);
    let (a, pa) = receiver(ga);
    let (b, pb) = receiver(gb);
    Feeds {
        a,
        b,
        group_a: SocketAddr::V4(SocketAddrV4::new(ga, pa)),
        group_b: SocketAddr::V4(SocketAddrV4::new(gb, pb)),
    }
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 65536];
    let n = socket.recv(&mut buf).expect("a packet before the timeout");
    buf[..n].to_vec()
}

fn header(bytes: &[u8]) -> moldudp64::PacketHeader {
    *moldudp64::Packet::decode(bytes)
        .expect("a MoldUDP64 packet")
        .header()
}

struct Options {
    payload_bytes_max: u32,
    heartbeat_interval_ms: u64,
    rerequest_count_max: u32,
    drop_feed_seqs: Vec<u64>,
    day_open: bool,
    snapshot_login_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            payload_bytes_max: 1400,
            heartbeat_interval_ms: 20,
            rerequest_count_max: 1000,
            drop_feed_seqs: Vec::new(),
            day_open: true,
            snapshot_login_timeout_ms: 5000,
        }
    }
}

/// The writer side (the core's part): a journal and the ring's producer.
struct Core {
    journal: Journal<MmapStorage>,
    producer: ring::Producer<ToFeed>,
    next_feed_seq: u64,
    /// Every feed message, index = feed seq - 1.
    sent: Vec<Vec<u8>>,
}

fn journal_config() -> JournalConfig {
    JournalConfig {
        segment_bytes: 1 << 20,
        payload_bytes_max: 4096,
        batch_records_max: 4096,
        sync_policy: SyncPolicy::None,
        checkpoints_kept: 1,
    }
}

impl Core {
    fn open(dir: &TempDir, next_feed_seq: u64) -> (Core, ring::Consumer<ToFeed>) {
        let (journal, _) = Journal::open(MmapStorage::open(&dir.0).unwrap(), journal_config()).unwrap();
        let (producer, consumer) = ring::ring(4096);
        (
            Core {
                journal,
                producer,
                next_feed_seq,
                sent: Vec::new(),
            },
            consumer,
        )
    }

    /// Journals the messages as one batch (with a KIND_ADMIN record before each, so that journal and feed
    /// sequences differ), commits, then releases them to the ring followed by a Flush.
    fn publish(&mut self, messages: &[Message]) {
        let mut released = Vec::new();
        for m in messages {
            let mut bytes = [0u8; 64];
            let len = m.encode(&mut bytes).unwrap();
            self.journal.append(KIND_ADMIN, &encode_admin(b'N', 7)).unwrap();
            let mut payload = [0u8; 80];
            let n = encode_itch(&mut payload, self.next_feed_seq, &bytes[..len]);
            let journal_seq = self.journal.append(KIND_ITCH, &payload[..n]).unwrap();
            released.push(ToFeed::message(self.next_feed_seq, journal_seq, &bytes[..len]));
            self.sent.push(bytes[..len].to_vec());
            self.next_feed_seq += 1;
        }
        self.journal.commit_batch().unwrap();
        for r in released {
            self.push(r);
        }
        self.push(ToFeed::Flush);
    }

    fn push(&mut self, record: ToFeed) {
        let deadline = Instant::now() + WAIT;
        let mut record = record;
        while let Err(ring::Full(back)) = self.producer.push(record) {
            assert!(Instant::now() < deadline, "ring stayed full");
            record = back;
            std::thread::yield_now();
        }
    }
}

struct Running {
    runner: RunnerHandle,
    lifecycle: Arc<Lifecycle>,
    snapshot: SocketAddr,
    rerequest: SocketAddr,
}

impl Running {
    fn stop(self) {
        self.runner.stop();
        self.runner.join();
    }
}

fn logins() -> Vec<SessionLogin> {
    vec![SessionLogin {
        login: 1,
        username: Alpha::new("alice").unwrap(),
        password: Alpha::new("alice-pw").unwrap(),
        cancel_on_disconnect: false,
    }]
}

fn limits() -> FeedBookLimits {
    FeedBookLimits {
        locates_max: 4,
        orders_max: 1024,
        levels_max: 64,
    }
}

/// The stage, built but not running, with its snapshot and re-request addresses and its lifecycle.
fn build(
    dir: &TempDir,
    feeds: &Feeds,
    consumer: ring::Consumer<ToFeed>,
    options: Options,
) -> (MarketData, SocketAddr, SocketAddr, Arc<Lifecycle>, Clock) {
    let rerequest_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let snapshot_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rerequest = rerequest_socket.local_addr().unwrap();
    let snapshot = snapshot_listener.local_addr().unwrap();
    let lifecycle = Arc::new(Lifecycle::default());
    let clock = Clock::new();
    let md = MarketData::new(MarketDataParams {
        market_data: MarketDataConfig {
            group_a: feeds.group_a,
            group_b: feeds.group_b,
            interface: Ipv4Addr::LOCALHOST,
            rerequest_listen: rerequest,
            payload_bytes_max: options.payload_bytes_max,
            heartbeat_interval_ms: options.heartbeat_interval_ms,
            rerequest_count_max: options.rerequest_count_max,
            rerequest_queue_max: 16,
        },
        snapshot: SnapshotConfig {
            listen: snapshot,
            sessions_max: 4,
        },
        logins: logins(),
        session: session(),
        day_open: options.day_open,
        rerequest_socket,
        snapshot_listener,
        journal_dir: dir.0.clone(),
        day_start_journal_seq: 1,
        feed: consumer,
        shared: Arc::new(Shared::new()),
        lifecycle: lifecycle.clone(),
        clock,
        scan_to_journal_seq: u64::MAX,
        drop_feed_seqs: options.drop_feed_seqs,
        book_limits: limits(),
        snapshot_timers: SessionTimers {
            login_timeout_ms: options.snapshot_login_timeout_ms,
            heartbeat_interval_ms: 50,
            idle_timeout_ms: 10_000,
        },
    })
    .expect("market data starts");
    assert_eq!(md.name(), "market_data");
    (md, snapshot, rerequest, lifecycle, clock)
}

fn start(dir: &TempDir, feeds: &Feeds, consumer: ring::Consumer<ToFeed>, options: Options) -> Running {
    let (md, snapshot, rerequest, lifecycle, clock) = build(dir, feeds, consumer, options);
    let runner = agent::spawn_shared(
        vec![Box::new(md)],
        None,
        IdleStrategy::Yield,
        clock,
        StopFlag::new(),
        agent::BusyMeter::new(),
    )
    .unwrap();
    Running {
        runner,
        lifecycle,
        snapshot,
        rerequest,
    }
}

/// A test's journal directory, receivers, writer side and running stage.
struct Setup {
    dir: TempDir,
    feeds: Feeds,
    core: Core,
    running: Running,
}

fn setup(name: &str, id: u8, options: Options) -> Setup {
    let dir = TempDir::new(name);
    let feeds = feeds(id);
    let (core, consumer) = Core::open(&dir, 1);
    let running = start(&dir, &feeds, consumer, options);
    Setup {
        dir,
        feeds,
        core,
        running,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Messages

fn ts(ns: u64) -> Timestamp48 {
    Timestamp48::new(ns).unwrap()
}

fn hdr(locate: u16, ns: u64) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 0,
        timestamp: ts(ns),
    }
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

fn system(code: EventCode, ns: u64) -> Message {
    Message::SystemEvent(SystemEvent {
        header: hdr(0, ns),
        event_code: code,
    })
}

fn directory(locate: u16, stock: &str) -> Message {
    Message::StockDirectory(StockDirectory::bourse(hdr(locate, 2), sym(stock), 100))
}

fn trading(locate: u16, stock: &str, state: TradingState) -> Message {
    Message::TradingAction(TradingAction {
        header: hdr(locate, 3),
        stock: sym(stock),
        trading_state: state,
        reserved: b' ',
        reason: Alpha::BLANK,
    })
}

/// The start of a day: 7 messages.
fn day_start() -> Vec<Message> {
    vec![
        system(EventCode::StartOfMessages, 1),
        directory(1, "AAPL"),
        directory(2, "MSFT"),
        trading(1, "AAPL", TradingState::Trading),
        trading(2, "MSFT", TradingState::Trading),
        system(EventCode::StartOfSystemHours, 4),
        system(EventCode::StartOfMarketHours, 5),
    ]
}

fn add(locate: u16, stock: &str, reference: u64, side: Side, shares: u32, price: u32, ns: u64) -> Message {
    Message::AddOrder(AddOrder {
        header: hdr(locate, ns),
        order_reference_number: reference,
        side,
        shares,
        stock: sym(stock),
        price,
    })
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = m.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

// ---------------------------------------------------------------------------------------------------------
// Reading the feed

/// A feed message with its sequence number.
type Numbered = (u64, Vec<u8>);

/// Reads packets from one group until data up to `last_seq` is seen; checks that every packet's header
/// carries the next expected sequence (heartbeats included) and returns (data packets, messages by seq).
fn read_until(socket: &UdpSocket, first_seq: u64, last_seq: u64) -> (Vec<Vec<u8>>, Vec<Numbered>) {
    let mut next = first_seq;
    let mut packets = Vec::new();
    let mut messages = Vec::new();
    while next <= last_seq {
        let bytes = recv(socket);
        let packet = moldudp64::Packet::decode(&bytes).unwrap();
        assert_eq!(packet.header().session, session());
        match packet.kind() {
            PacketKind::Heartbeat => assert_eq!(packet.header().sequence_number, next, "heartbeat"),
            PacketKind::EndOfSession => panic!("unexpected End of Session"),
            PacketKind::Data => {
                assert!(
                    packet.header().sequence_number >= next,
                    "sequence went back: {} < {next}",
                    packet.header().sequence_number
                );
                for (seq, m) in packet.messages() {
                    messages.push((seq, m.to_vec()));
                }
                next = packet.next_sequence_number();
                packets.push(bytes);
            }
        }
    }
    (packets, messages)
}

fn itchy_reads(blocks: &[u8]) -> Vec<itchy::Message> {
    itchy::MessageStream::from_reader(Cursor::new(blocks.to_vec()))
        .map(|r| r.expect("itchy parses our bytes"))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot client

/// A Login Request frame (Requested Sequence Number 1).
fn login_request(user: &str, password: &str, requested_session: &str) -> Vec<u8> {
    let mut frame = [0u8; 64];
    let n = Packet::LoginRequest(LoginRequest {
        username: Alpha::new(user).unwrap(),
        password: Alpha::new(password).unwrap(),
        requested_session: Alpha::new(requested_session).unwrap(),
        requested_sequence_number: 1,
        heartbeat_timeout_ms: None,
    })
    .encode(&mut frame)
    .unwrap();
    frame[..n].to_vec()
}

struct SoupClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl SoupClient {
    fn connect(addr: SocketAddr) -> SoupClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        SoupClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// True when the server closed the connection (end of stream or reset) before sending anything more.
    fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    fn login(addr: SocketAddr, user: &str, password: &str, requested_session: &str) -> SoupClient {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
            .write_all(&login_request(user, password, requested_session))
            .unwrap();
        SoupClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next packet as (type, payload); `None` when the server closed.
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((packet, used)) = soupbintcp::decode_frame(&self.buf, 65536).unwrap() {
                let kind = packet.packet_type().code();
                let payload = self.buf[3..used].to_vec();
                self.buf.drain(..used);
                return Some((kind, payload));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read before the timeout");
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Login Accepted, then every Sequenced Data message up to and including `G`.
    fn snapshot(&mut self) -> Vec<Message> {
        let (kind, payload) = self.next().expect("login reply");
        assert_eq!(kind, b'A', "Login Accepted");
        assert_eq!(&payload[..10], SESSION.as_bytes());
        assert_eq!(soupbintcp::parse_numeric(&payload[10..30]).unwrap(), 1);
        let mut out = Vec::new();
        loop {
            let (kind, payload) = self.next().expect("snapshot data");
            if kind == b'H' {
                continue;
            }
            assert_eq!(kind, b'S');
            let m = Message::decode(&payload).unwrap();
            let end = matches!(m, Message::SnapshotEnd(_));
            out.push(m);
            if end {
                return out;
            }
        }
    }
}

fn snapshot_seq(messages: &[Message]) -> u64 {
    match messages.last() {
        Some(Message::SnapshotEnd(g)) => g.sequence_number,
        other => panic!("snapshot does not end with G: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tests

#[test]
fn packets_are_identical_on_a_and_b_contiguous_bounded_and_read_by_itchy() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup(
        "ab",
        11,
        Options {
            payload_bytes_max: 200,
            ..Options::default()
        },
    );
    core.publish(&day_start());
    let mut batch = Vec::new();
    for r in 1..=40u64 {
        let side = if r % 2 == 0 { Side::Buy } else { Side::Sell };
        let price = if side == Side::Buy {
            1_000_000 - 100 * r as u32
        } else {
            1_010_000 + 100 * r as u32
        };
        batch.push(add(1, "AAPL", r, side, 100, price, 10 + r));
    }
    batch.push(Message::AddOrderMpid(AddOrderMpid {
        header: hdr(2, 60),
        order_reference_number: 41,
        side: Side::Buy,
        shares: 5,
        stock: sym("MSFT"),
        price: 4_000_000,
        attribution: Firm::new("ALFA").unwrap(),
    }));
    core.publish(&batch);
    let last = core.next_feed_seq - 1;
    assert_eq!(last, 48);

    let (packets_a, messages_a) = read_until(&feeds.a, 1, last);
    let (packets_b, messages_b) = read_until(&feeds.b, 1, last);
    assert_eq!(packets_a, packets_b, "A and B carry the same bytes");
    assert!(
        packets_a.len() > 2,
        "a 200-byte limit splits 48 messages over several packets"
    );
    for p in &packets_a {
        assert!(p.len() <= 200, "packet of {} bytes", p.len());
    }
    assert_eq!(messages_a, messages_b);
    let expected: Vec<(u64, Vec<u8>)> = core
        .sent
        .iter()
        .enumerate()
        .map(|(i, m)| (i as u64 + 1, m.clone()))
        .collect();
    assert_eq!(messages_a, expected, "every message once, in order, as journaled");

    // The independent decoder reads the blocks of every packet with the same values.
    let mut decoded = Vec::new();
    for p in &packets_a {
        decoded.extend(itchy_reads(&p[moldudp64::HEADER_LEN..]));
    }
    assert_eq!(decoded.len(), 48);
    assert!(matches!(
        decoded[0].body,
        itchy::Body::SystemEvent {
            event: itchy::EventCode::StartOfMessages
        }
    ));
    match &decoded[7].body {
        itchy::Body::AddOrder(a) => {
            assert_eq!((a.reference, a.shares, a.side), (1, 100, itchy::Side::Sell));
            assert_eq!(a.stock.as_str().trim_end(), "AAPL");
            assert_eq!(a.price.raw(), 1_010_100);
            assert_eq!(decoded[7].stock_locate, 1);
            assert_eq!(decoded[7].timestamp, 11);
        }
        other => panic!("{other:?}"),
    }
    match &decoded[47].body {
        itchy::Body::AddOrder(a) => assert_eq!(a.mpid.as_ref().map(|s| s.as_str()), Some("ALFA")),
        other => panic!("{other:?}"),
    }

    // Idle: heartbeats on both groups carrying the next number.
    for socket in [&feeds.a, &feeds.b] {
        let h = header(&recv(socket));
        assert_eq!(h.kind(), PacketKind::Heartbeat);
        assert_eq!(h.sequence_number, 49);
    }
    running.stop();
}

fn request(socket: &UdpSocket, to: SocketAddr, session: &str, first: u64, count: u16) {
    let r = moldudp64::Request {
        session: Alpha::new(session).unwrap(),
        sequence_number: first,
        requested_count: count,
    };
    socket.send_to(&r.to_bytes(), to).unwrap();
}

/// Reads answer packets until `count` messages arrived; returns (seq, bytes) in order.
fn answer(socket: &UdpSocket, count: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while out.len() < count {
        let bytes = recv(socket);
        let packet = moldudp64::Packet::decode(&bytes).unwrap();
        assert_eq!(packet.kind(), PacketKind::Data);
        assert_eq!(packet.header().session, session());
        for (seq, m) in packet.messages() {
            out.push((seq, m.to_vec()));
        }
    }
    assert_eq!(out.len(), count, "no more than asked for in the packets read");
    out
}

#[test]
fn dropped_messages_never_reach_a_or_b_and_re_requests_return_them() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup(
        "drop",
        12,
        Options {
            drop_feed_seqs: vec![3, 9, 10],
            rerequest_count_max: 4,
            ..Options::default()
        },
    );
    core.publish(&day_start());
    let adds: Vec<Message> = (1..=8u64)
        .map(|r| add(1, "AAPL", r, Side::Buy, 10, 1_000_000, 20 + r))
        .collect();
    core.publish(&adds);
    let last = core.next_feed_seq - 1;
    assert_eq!(last, 15);
    for socket in [&feeds.a, &feeds.b] {
        let (_, messages) = read_until(socket, 1, last);
        let seqs: Vec<u64> = messages.iter().map(|m| m.0).collect();
        let expected: Vec<u64> = (1..=15).filter(|s| ![3, 9, 10].contains(s)).collect();
        assert_eq!(seqs, expected, "the dropped numbers are gaps on both groups");
        for (seq, bytes) in messages {
            assert_eq!(bytes, core.sent[seq as usize - 1]);
        }
    }

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    // Ignored: another session, count 0, first at or past the next number (16), a malformed request. The
    // server answers in arrival order, so the first answer must be the valid request's.
    request(&client, running.rerequest, "2026112599", 3, 1);
    request(&client, running.rerequest, SESSION, 3, 0);
    request(&client, running.rerequest, SESSION, 16, 5);
    client.send_to(&[0u8; 7], running.rerequest).unwrap();
    request(&client, running.rerequest, SESSION, 3, 1);
    assert_eq!(answer(&client, 1), vec![(3, core.sent[2].clone())]);

    // 9 and 10 in one answer.
    request(&client, running.rerequest, SESSION, 9, 2);
    assert_eq!(
        answer(&client, 2),
        vec![(9, core.sent[8].clone()), (10, core.sent[9].clone())]
    );

    // The cap (4) applies.
    request(&client, running.rerequest, SESSION, 1, 100);
    let capped = answer(&client, 4);
    assert_eq!(capped.iter().map(|m| m.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    // Never beyond the last sent (15): asking 14.. for 4 gives 14 and 15; the next answer is the next request's.
    request(&client, running.rerequest, SESSION, 14, 4);
    request(&client, running.rerequest, SESSION, 7, 1);
    assert_eq!(
        answer(&client, 2).iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![14, 15]
    );
    assert_eq!(answer(&client, 1), vec![(7, core.sent[6].clone())]);
    running.stop();
}

fn check_snapshot_of_the_test_book(snapshot: &[Message], n: u64) {
    // S (last code Q), R x2, H x2, then the Add Orders in priority, then G = N.
    assert!(matches!(
        snapshot[0],
        Message::SystemEvent(SystemEvent {
            event_code: EventCode::StartOfMarketHours,
            ..
        })
    ));
    assert!(
        matches!(&snapshot[1], Message::StockDirectory(d) if d.stock == sym("AAPL") && d.header.stock_locate == 1)
    );
    assert!(
        matches!(&snapshot[2], Message::StockDirectory(d) if d.stock == sym("MSFT") && d.header.stock_locate == 2)
    );
    assert!(
        matches!(&snapshot[3], Message::TradingAction(t) if t.header.stock_locate == 1 && t.trading_state == TradingState::Halted)
    );
    assert!(
        matches!(&snapshot[4], Message::TradingAction(t) if t.header.stock_locate == 2 && t.trading_state == TradingState::Trading)
    );
    let adds: Vec<(u16, u64, Side, u32, u32, u64, bool)> = snapshot[5..snapshot.len() - 1]
        .iter()
        .map(|m| match m {
            Message::AddOrder(a) => (
                a.header.stock_locate,
                a.order_reference_number,
                a.side,
                a.shares,
                a.price,
                a.header.timestamp.ns(),
                false,
            ),
            Message::AddOrderMpid(a) => (
                a.header.stock_locate,
                a.order_reference_number,
                a.side,
                a.shares,
                a.price,
                a.header.timestamp.ns(),
                true,
            ),
            other => panic!("not an Add Order: {other:?}"),
        })
        .collect();
    assert_eq!(
        adds,
        vec![
            // AAPL buys: 100.00 (ref 2 then the replacement 7, at the back), 99.00 (ref 3).
            (1, 2, Side::Buy, 150, 1_000_000, 12, false),
            (1, 7, Side::Buy, 80, 1_000_000, 40, false),
            (1, 3, Side::Buy, 300, 990_000, 13, false),
            // AAPL sells: 101.00 ref 4 (attributed), 101.50 ref 6.
            (1, 4, Side::Sell, 400, 1_010_000, 14, true),
            (1, 6, Side::Sell, 60, 1_015_000, 16, false),
            // MSFT: one buy.
            (2, 8, Side::Buy, 10, 4_000_000, 41, false),
        ]
    );
    assert_eq!(snapshot_seq(snapshot), n);
}

/// The test book: executions, cancels, a delete, a replace and a halt after the day start.
fn trading_day(core: &mut Core) -> u64 {
    core.publish(&day_start());
    core.publish(&[
        add(1, "AAPL", 1, Side::Buy, 100, 1_000_000, 11),
        add(1, "AAPL", 2, Side::Buy, 200, 1_000_000, 12),
        add(1, "AAPL", 3, Side::Buy, 300, 990_000, 13),
        Message::AddOrderMpid(AddOrderMpid {
            header: hdr(1, 14),
            order_reference_number: 4,
            side: Side::Sell,
            shares: 400,
            stock: sym("AAPL"),
            price: 1_010_000,
            attribution: Firm::new("ALFA").unwrap(),
        }),
        add(1, "AAPL", 5, Side::Sell, 500, 1_020_000, 15),
        add(1, "AAPL", 6, Side::Sell, 100, 1_015_000, 16),
    ]);
    core.publish(&[
        Message::OrderExecuted(OrderExecuted {
            header: hdr(1, 30),
            order_reference_number: 1,
            executed_shares: 100,
            match_number: 1,
        }),
        Message::OrderCancel(OrderCancel {
            header: hdr(1, 31),
            order_reference_number: 2,
            canceled_shares: 50,
        }),
        Message::OrderDelete(OrderDelete {
            header: hdr(1, 32),
            order_reference_number: 5,
        }),
        Message::OrderCancel(OrderCancel {
            header: hdr(1, 33),
            order_reference_number: 6,
            canceled_shares: 40,
        }),
        add(1, "AAPL", 99, Side::Buy, 10, 1_000_000, 34),
        Message::OrderReplace(OrderReplace {
            header: hdr(1, 40),
            original_order_reference_number: 99,
            new_order_reference_number: 7,
            shares: 80,
            price: 1_000_000,
        }),
        add(2, "MSFT", 8, Side::Buy, 10, 4_000_000, 41),
        trading(1, "AAPL", TradingState::Halted),
    ]);
    core.next_feed_seq - 1
}

#[test]
fn snapshot_after_n_messages_has_the_orders_in_priority_and_ends_with_g_n() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup("snapshot", 13, Options::default());
    let n = trading_day(&mut core);
    assert_eq!(n, 21);
    // Once the feed carried N, the book has applied it.
    read_until(&feeds.a, 1, n);
    let mut client = SoupClient::login(running.snapshot, "alice", "alice-pw", "");
    let snapshot = client.snapshot();
    check_snapshot_of_the_test_book(&snapshot, n);
    // Then heartbeats only.
    assert_eq!(client.next().unwrap().0, b'H');

    // The snapshot rebuilds the same book as the feed does.
    let mut from_feed = FeedBook::new(limits());
    for m in &core.sent {
        from_feed.apply_bytes(m).unwrap();
    }
    let mut from_snapshot = FeedBook::new(limits());
    for m in &snapshot[..snapshot.len() - 1] {
        from_snapshot.apply(m).unwrap();
    }
    for locate in [1, 2] {
        assert_eq!(from_feed.depth(locate, 100), from_snapshot.depth(locate, 100));
        for side in [Side::Buy, Side::Sell] {
            assert_eq!(
                from_feed.orders(locate, side).collect::<Vec<_>>(),
                from_snapshot.orders(locate, side).collect::<Vec<_>>()
            );
        }
    }

    // Logins: wrong password -> J A; another session -> J S; padded session name of today -> accepted.
    let mut bad = SoupClient::login(running.snapshot, "alice", "wrong", "");
    assert_eq!(
        bad.next(),
        Some((b'J', vec![LoginRejectReason::NotAuthorized.code()]))
    );
    assert_eq!(bad.next(), None, "closed after the reject");
    let mut other = SoupClient::login(running.snapshot, "alice", "alice-pw", "2026112501");
    assert_eq!(
        other.next(),
        Some((b'J', vec![LoginRejectReason::SessionNotAvailable.code()]))
    );
    let mut named = SoupClient::login(running.snapshot, "alice", "alice-pw", SESSION);
    assert_eq!(named.snapshot(), snapshot);

    // More feed: a new snapshot carries the new N.
    core.publish(&[add(2, "MSFT", 9, Side::Sell, 5, 4_100_000, 50)]);
    read_until(&feeds.a, n + 1, n + 1);
    let mut later = SoupClient::login(running.snapshot, "alice", "alice-pw", "");
    let later = later.snapshot();
    assert_eq!(snapshot_seq(&later), n + 1);
    assert_eq!(later.len(), snapshot.len() + 1);
    running.stop();
}

#[test]
fn a_restart_continues_the_sequence_and_serves_the_same_snapshot() {
    let Setup {
        dir,
        feeds,
        mut core,
        running,
    } = setup("restart", 14, Options::default());
    let n = trading_day(&mut core);
    read_until(&feeds.a, 1, n);
    read_until(&feeds.b, 1, n);
    let before = SoupClient::login(running.snapshot, "alice", "alice-pw", "").snapshot();
    running.stop();
    let sent = core.sent.clone();
    drop(core);

    // A new stage over the same journal, and a new core continuing at n + 1.
    let (mut core, consumer) = Core::open(&dir, n + 1);
    core.sent = sent;
    let running = start(&dir, &feeds, consumer, Options::default());
    let after = SoupClient::login(running.snapshot, "alice", "alice-pw", "").snapshot();
    assert_eq!(after, before, "the snapshot is rebuilt from the journal alone");
    // Heartbeats carry n + 1 (skip any packet of the first run still queued: none is data after n).
    loop {
        let h = header(&recv(&feeds.a));
        if h.kind() == PacketKind::Heartbeat && h.sequence_number == n + 1 {
            break;
        }
        assert!(h.sequence_number <= n + 1);
    }
    // A record the stage already read from the journal is skipped; the next one continues the sequence.
    let old = ToFeed::message(n, 1, &core.sent[n as usize - 1]);
    core.push(old);
    core.publish(&[add(2, "MSFT", 10, Side::Sell, 7, 4_200_000, 60)]);
    let (_, messages) = read_until(&feeds.a, n + 1, n + 1);
    assert_eq!(messages, vec![(n + 1, core.sent[n as usize].clone())]);
    // Re-requests reach messages of the first run.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    request(&client, running.rerequest, SESSION, 2, 3);
    let answered = answer(&client, 3);
    assert_eq!(
        answered,
        (2..=4u64)
            .map(|s| (s, core.sent[s as usize - 1].clone()))
            .collect::<Vec<_>>()
    );
    running.stop();
}

#[test]
fn end_of_session_is_sent_then_repeated_and_closes_snapshot_logins() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup("eos", 15, Options::default());
    core.publish(&day_start());
    core.publish(&[
        system(EventCode::EndOfSystemHours, 90),
        system(EventCode::EndOfMessages, 91),
    ]);
    core.push(ToFeed::EndOfSession);
    for socket in [&feeds.a, &feeds.b] {
        read_until(socket, 1, 9);
        // The End of Session follows at once (heartbeats may come before it), then it is repeated and no
        // heartbeat comes any more.
        let mut eos_seen = 0;
        while eos_seen < 3 {
            let h = header(&recv(socket));
            assert_eq!(h.sequence_number, 10);
            if h.kind() == PacketKind::EndOfSession {
                eos_seen += 1;
            } else {
                assert_eq!(eos_seen, 0, "no heartbeat after End of Session");
                assert_eq!(h.kind(), PacketKind::Heartbeat);
            }
        }
    }
    let mut late = SoupClient::login(running.snapshot, "alice", "alice-pw", "");
    assert_eq!(
        late.next(),
        Some((b'J', vec![LoginRejectReason::SessionNotAvailable.code()]))
    );
    running.stop();
}

#[test]
fn a_closed_day_rejects_snapshots_and_repeats_end_of_session() {
    let Setup {
        dir: _dir,
        feeds,
        core: _core,
        running,
    } = setup(
        "closed",
        16,
        Options {
            day_open: false,
            ..Options::default()
        },
    );
    let mut client = SoupClient::login(running.snapshot, "alice", "alice-pw", "");
    assert_eq!(
        client.next(),
        Some((b'J', vec![LoginRejectReason::SessionNotAvailable.code()]))
    );
    // A day that is closed repeats End of Session instead of heartbeats.
    assert_eq!(header(&recv(&feeds.a)).kind(), PacketKind::EndOfSession);
    running.stop();
}

#[test]
fn messages_go_out_without_a_flush_and_shutdown_sets_feed_closed() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup("shutdown", 18, Options::default());
    // Released without a Flush: they go out once the ring is drained, before any shutdown.
    let messages = day_start();
    for (i, m) in messages.iter().enumerate() {
        let bytes = encode(m);
        let mut payload = [0u8; 80];
        let n = encode_itch(&mut payload, i as u64 + 1, &bytes);
        let journal_seq = core.journal.append(KIND_ITCH, &payload[..n]).unwrap();
        core.journal.commit_batch().unwrap();
        core.push(ToFeed::message(i as u64 + 1, journal_seq, &bytes));
    }
    let (_, messages) = read_until(&feeds.a, 1, 7);
    assert_eq!(messages.len(), 7);
    running.lifecycle.core_closed.store(true, Ordering::Release);
    let deadline = Instant::now() + WAIT;
    while !running.lifecycle.feed_closed.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "feed_closed not set");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Everything released before the close went out.
    let (_, messages) = read_until(&feeds.b, 1, 7);
    assert_eq!(messages.len(), 7);
    running.stop();
}

#[test]
fn construction_rejects_a_journal_whose_feed_is_not_contiguous() {
    let dir = TempDir::new("gap");
    let (mut core, _consumer) = Core::open(&dir, 1);
    core.publish(&day_start()[..2]);
    core.next_feed_seq = 5;
    core.publish(&day_start()[2..3]);
    drop(core);
    let feeds = feeds(17);
    let (_p, consumer) = ring::ring::<ToFeed>(16);
    let result = MarketData::new(MarketDataParams {
        market_data: MarketDataConfig {
            group_a: feeds.group_a,
            group_b: feeds.group_b,
            interface: Ipv4Addr::LOCALHOST,
            rerequest_listen: "127.0.0.1:0".parse().unwrap(),
            payload_bytes_max: 1400,
            heartbeat_interval_ms: 20,
            rerequest_count_max: 10,
            rerequest_queue_max: 4,
        },
        snapshot: SnapshotConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            sessions_max: 1,
        },
        logins: logins(),
        session: session(),
        day_open: true,
        rerequest_socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
        snapshot_listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        journal_dir: dir.0.clone(),
        day_start_journal_seq: 1,
        feed: consumer,
        shared: Arc::new(Shared::new()),
        lifecycle: Arc::new(Lifecycle::default()),
        clock: Clock::new(),
        scan_to_journal_seq: u64::MAX,
        drop_feed_seqs: Vec::new(),
        book_limits: limits(),
        snapshot_timers: SessionTimers {
            login_timeout_ms: 100,
            heartbeat_interval_ms: 100,
            idle_timeout_ms: 100,
        },
    });
    let error = result.err().expect("a gap in the journaled feed is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("feed sequence 5 after 2"), "{error}");
}

#[test]
fn snapshot_sessions_follow_the_soupbintcp_rules() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup(
        "soup",
        19,
        Options {
            snapshot_login_timeout_ms: 100,
            ..Options::default()
        },
    );
    core.publish(&day_start());
    read_until(&feeds.a, 1, 7);

    // Login Request and Client Heartbeat in one write: the heartbeat counts as after the login.
    let mut both = SoupClient::connect(running.snapshot);
    let mut frames = [0u8; 64];
    let mut both_frames = login_request("alice", "alice-pw", "");
    let m = Packet::ClientHeartbeat.encode(&mut frames).unwrap();
    both_frames.extend_from_slice(&frames[..m]);
    both.stream.write_all(&both_frames).unwrap();
    let snapshot = both.snapshot();
    assert_eq!(snapshot_seq(&snapshot), 7);
    assert_eq!(snapshot.len(), 1 + 2 + 2 + 1);
    // Logout Request closes.
    let m = Packet::LogoutRequest.encode(&mut frames).unwrap();
    both.stream.write_all(&frames[..m]).unwrap();
    while both.next().is_some() {}

    // Silence past the login timeout: closed without a packet.
    let mut silent = SoupClient::connect(running.snapshot);
    assert!(silent.closed());
    // Half a frame, then silence: the same.
    let mut half = SoupClient::connect(running.snapshot);
    half.stream.write_all(&[0, 47, b'L', b'a']).unwrap();
    assert!(half.closed());
    // A packet other than Login Request before login: a Debug saying why (section 2.7), then closed.
    let mut early = SoupClient::connect(running.snapshot);
    let m = Packet::ClientHeartbeat.encode(&mut frames).unwrap();
    early.stream.write_all(&frames[..m]).unwrap();
    assert_eq!(early.next(), Some((b'+', b"message before login".to_vec())));
    assert!(early.closed());
    // Garbage: the same.
    let mut garbage = SoupClient::connect(running.snapshot);
    garbage.stream.write_all(&[0xFF; 32]).unwrap();
    assert_eq!(garbage.next(), Some((b'+', b"malformed frame".to_vec())));
    assert!(garbage.closed());
    // A second Login Request after login, in the middle of the snapshot or after it: the same.
    let mut twice = SoupClient::login(running.snapshot, "alice", "alice-pw", "");
    twice.snapshot();
    twice
        .stream
        .write_all(&login_request("alice", "alice-pw", ""))
        .unwrap();
    let mut last = None;
    while let Some(packet) = twice.next() {
        last = Some(packet);
    }
    assert_eq!(
        last,
        Some((b'+', b"login request on a logged-in connection".to_vec()))
    );

    // sessions_max = 4: with four logged in, a fifth connection is closed at connect.
    let mut held: Vec<SoupClient> = (0..4)
        .map(|_| {
            let mut c = SoupClient::login(running.snapshot, "alice", "alice-pw", "");
            c.snapshot();
            c
        })
        .collect();
    let mut fifth = SoupClient::connect(running.snapshot);
    assert!(fifth.closed());
    assert_eq!(held[0].next().map(|p| p.0), Some(b'H'), "the others are served");
    running.stop();
}

#[test]
fn a_large_book_streams_its_snapshot_and_re_requests_seek_through_the_index() {
    let Setup {
        dir: _dir,
        feeds,
        mut core,
        running,
    } = setup("large", 20, Options::default());
    core.publish(&day_start());
    // 1000 orders over 50 levels a side (the test limits: 1024 orders, 64 levels).
    for chunk in 0..10u64 {
        let batch: Vec<Message> = (0..100u64)
            .map(|i| {
                let r = chunk * 100 + i + 1;
                let side = if r % 2 == 0 { Side::Buy } else { Side::Sell };
                let level = (r % 50) as u32;
                let price = if side == Side::Buy {
                    1_000_000 - 100 * level
                } else {
                    1_010_000 + 100 * level
                };
                add(1, "AAPL", r, side, 1 + (r % 7) as u32, price, 100 + r)
            })
            .collect();
        core.publish(&batch);
    }
    let n = core.next_feed_seq - 1;
    read_until(&feeds.a, 1, n);
    let snapshot = SoupClient::login(running.snapshot, "alice", "alice-pw", "").snapshot();
    assert_eq!(snapshot_seq(&snapshot), n);
    let mut model = FeedBook::new(limits());
    for m in &core.sent {
        model.apply_bytes(m).unwrap();
    }
    let expected: Vec<Vec<u8>> = [Side::Buy, Side::Sell]
        .iter()
        .flat_map(|&side| model.orders(1u16, side).collect::<Vec<_>>())
        .map(|o| {
            encode(&Message::AddOrder(AddOrder {
                header: Header {
                    stock_locate: 1,
                    tracking_number: 0,
                    timestamp: o.timestamp,
                },
                order_reference_number: o.reference,
                side: o.side,
                shares: o.shares,
                stock: sym("AAPL"),
                price: o.price,
            }))
        })
        .collect();
    let got: Vec<Vec<u8>> = snapshot[5..snapshot.len() - 1].iter().map(encode).collect();
    assert_eq!(got.len(), 1000);
    assert_eq!(got, expected);

    // Re-requests far into the day, across index strides and packets.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    for first in [500u64, 70, 1000, n - 2] {
        let count = 100.min(n + 1 - first) as usize;
        request(&client, running.rerequest, SESSION, first, 100);
        let answered = answer(&client, count);
        assert_eq!(
            answered,
            (first..first + count as u64)
                .map(|s| (s, core.sent[s as usize - 1].clone()))
                .collect::<Vec<_>>()
        );
    }
    running.stop();
}

/// The snapshot book follows the journal off the publishing path: a round that publishes applies nothing to
/// it, a round with nothing to publish applies `BOOK_IDLE_RECORDS_PER_WORK` journal records, and a snapshot
/// login waits, read but unanswered, until the book holds every released message; its image is then as of
/// the last one. The stage is driven by hand (no runner), so every step is deterministic.
#[test]
fn the_snapshot_book_catches_up_off_the_feed_path_and_a_login_waits_for_it() {
    use bourse_daemon::market_data::{BOOK_CATCH_UP_RECORDS_PER_POLL, BOOK_IDLE_RECORDS_PER_WORK};
    let dir = TempDir::new("lag");
    let feeds = feeds(21);
    let (mut core, consumer) = Core::open(&dir, 1);
    let (mut md, snapshot_addr, _, _, clock) = build(&dir, &feeds, consumer, Options::default());
    // Every call a millisecond later, so that every call also polls the snapshot server.
    let mut now_ns = clock.now_ns();
    let mut work = |md: &mut MarketData| {
        now_ns += 1_000_000;
        md.do_work(now_ns)
    };
    core.publish(&day_start());
    assert!(work(&mut md) > 0);
    // More journal records (two per message: an admin record, then the ITCH) than one catch-up slice.
    let chunks = (BOOK_CATCH_UP_RECORDS_PER_POLL / 4000 + 2) as u64;
    let mut reference = 0u64;
    for _ in 0..chunks {
        let mut messages = Vec::new();
        for _ in 0..1000 {
            reference += 1;
            messages.push(add(1, "AAPL", reference, Side::Buy, 100, 1_000_000, 20));
            messages.push(Message::OrderDelete(OrderDelete {
                header: hdr(1, 21),
                order_reference_number: reference,
            }));
        }
        core.publish(&messages);
        assert!(work(&mut md) > 0, "published");
        assert_eq!(
            md.book_feed_seq(),
            0,
            "a round that publishes leaves the book alone"
        );
    }
    let last = 7 + chunks * 2000;
    assert_eq!(md.next_feed_seq(), last + 1, "everything was published");
    // Idle: one small slice (two journal records per message).
    work(&mut md);
    assert_eq!(md.book_feed_seq(), (BOOK_IDLE_RECORDS_PER_WORK / 2) as u64);
    // A snapshot client logs in: answered only once the book is current.
    let mut client = SoupClient::login(snapshot_addr, "alice", "alice-pw", "");
    client.stream.set_nonblocking(true).unwrap();
    let mut waited = 0;
    for _ in 0..100 {
        work(&mut md);
        if md.book_feed_seq() == last {
            break;
        }
        waited += 1;
        let mut byte = [0u8; 1];
        assert!(
            matches!(client.stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "nothing is sent while the book is behind (at {} of {last})",
            md.book_feed_seq()
        );
    }
    assert_eq!(md.book_feed_seq(), last);
    assert!(waited >= 1, "the login waited at least one catch-up slice");
    client.stream.set_nonblocking(false).unwrap();
    let snapshot = client.snapshot();
    assert_eq!(snapshot_seq(&snapshot), last);
    // Every order was deleted again: the image has the day's state and no order.
    assert!(
        !snapshot
            .iter()
            .any(|m| matches!(m, Message::AddOrder(_) | Message::AddOrderMpid(_)))
    );
    // The client stays connected with its image: that keeps nothing eager. A publishing round leaves
    // the book behind again.
    core.publish(&[add(1, "AAPL", reference + 1, Side::Sell, 100, 1_010_000, 30)]);
    assert!(work(&mut md) > 0, "published");
    assert_eq!(md.next_feed_seq(), last + 2);
    assert_eq!(
        md.book_feed_seq(),
        last,
        "only a login waiting for its image pulls the book along"
    );
    drop(client);
}
