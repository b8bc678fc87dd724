//! Cost per feed message of the market-data stage, beside a baseline in the same run.
//!
//! Run: `cargo run --release -p bourse-daemon --example market_data_throughput -- [messages] [batch]`
//!
//! Both contenders get the same ITCH stream (Add Order and Order Delete alternating around ~1,000 resting
//! orders) in batches of `batch` messages (default 8) and send every packet to two multicast groups on
//! 127.0.0.1 (no receiver joined):
//! - `baseline`: a `PacketBuilder` filled with the batch's bytes, flushed at the end of each batch and sent
//!   with two `send_to` calls: the floor of "put these messages on A and B";
//! - `stage`: the `MarketData` agent on one thread: each batch is pushed into its ring as `ToFeed` records and
//!   a Flush, then `do_work` runs until the ring is empty (popping, the feed index, the `FeedBook`, packets,
//!   A and B, the latency histogram, its I/O polls).
//!
//! The ratio stage / baseline is the result; absolute figures depend on the machine.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_book::feed::FeedBookLimits;
use bourse_daemon::agent::{Agent, Clock};
use bourse_daemon::config::{MarketDataConfig, SnapshotConfig};
use bourse_daemon::market_data::{MarketData, MarketDataParams};
use bourse_daemon::msg::{Lifecycle, ToFeed};
use bourse_daemon::ring;
use bourse_daemon::snapshot::SessionTimers;
use bourse_daemon::stats::Shared;
use bourse_protocol::fields::{Alpha, Symbol};
use bourse_protocol::itch::{AddOrder, Header, Message, OrderDelete, Side, StockDirectory, Timestamp48};
use bourse_protocol::moldudp64::PacketBuilder;
use socket2::{Domain, Protocol, Socket, Type};

fn header(ns: u64) -> Header {
    Header {
        stock_locate: 1,
        tracking_number: 0,
        timestamp: Timestamp48::new(ns).expect("small timestamp"),
    }
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = m.encode(&mut buf).expect("fits");
    buf[..n].to_vec()
}

fn stream(messages: usize) -> Vec<Vec<u8>> {
    let stock = Symbol::new("AAPL").expect("valid");
    let mut out = vec![encode(&Message::StockDirectory(StockDirectory::bourse(
        header(1),
        stock,
        100,
    )))];
    for i in 0..messages as u64 {
        let reference = i / 2 + 1;
        let message = if i % 2 == 0 || reference <= 1000 {
            let buy = reference % 2 == 0;
            let offset = (reference % 50) as u32 * 100;
            Message::AddOrder(AddOrder {
                header: header(10 + i),
                order_reference_number: reference * 2 + u64::from(i % 2 == 1),
                side: if buy { Side::Buy } else { Side::Sell },
                shares: 100,
                stock,
                price: if buy {
                    1_000_000 - offset
                } else {
                    1_000_100 + offset
                },
            })
        } else {
            // Delete an order added about 1,000 orders ago.
            let old = i / 2 + 1 - 1000;
            Message::OrderDelete(OrderDelete {
                header: header(10 + i),
                order_reference_number: old * 2,
            })
        };
        out.push(encode(&message));
    }
    out
}

fn free_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sender() -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    socket
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .expect("multicast if");
    socket.set_multicast_ttl_v4(1).expect("ttl");
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    socket.into()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().map_or(1_000_000, |a| a.parse().expect("messages"));
    let batch: usize = args.next().map_or(8, |a| a.parse().expect("batch"));
    let stream = stream(messages);
    let port = free_port();
    let group_a = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(239, 255, 98, 1), port));
    let group_b = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(239, 255, 98, 2), port));
    let session = Alpha::new("2026112601").expect("valid");
    println!("{} ITCH messages in batches of {batch}", stream.len());

    // Baseline.
    let socket = sender();
    let mut builder = PacketBuilder::new(session, 1, 1400);
    let start = Instant::now();
    for chunk in stream.chunks(batch) {
        for m in chunk {
            if builder.push(m).is_err() {
                let packet = builder.flush().expect("a full packet");
                let _ = socket.send_to(packet, group_a);
                let _ = socket.send_to(packet, group_b);
                builder.push(m).expect("fits an empty packet");
            }
        }
        if let Some(packet) = builder.flush() {
            let _ = socket.send_to(packet, group_a);
            let _ = socket.send_to(packet, group_b);
        }
    }
    let baseline = start.elapsed();

    // The stage.
    let dir = std::env::temp_dir().join(format!("bourse-md-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut producer, consumer) = ring::ring::<ToFeed>(1 << 16);
    let clock = Clock::new();
    let rerequest_socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let snapshot_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut stage = MarketData::new(MarketDataParams {
        market_data: MarketDataConfig {
            group_a,
            group_b,
            interface: Ipv4Addr::LOCALHOST,
            rerequest_listen: rerequest_socket.local_addr().expect("addr"),
            payload_bytes_max: 1400,
            heartbeat_interval_ms: 1000,
            rerequest_count_max: 1000,
            rerequest_queue_max: 64,
        },
        snapshot: SnapshotConfig {
            listen: snapshot_listener.local_addr().expect("addr"),
            sessions_max: 4,
        },
        logins: Vec::new(),
        session,
        day_open: true,
        rerequest_socket,
        snapshot_listener,
        journal_dir: dir.clone(),
        day_start_journal_seq: 1,
        feed: consumer,
        shared: Arc::new(Shared::new()),
        lifecycle: Arc::new(Lifecycle::default()),
        clock,
        scan_to_journal_seq: u64::MAX,
        drop_feed_seqs: Vec::new(),
        book_limits: FeedBookLimits {
            locates_max: 4,
            orders_max: 100_000,
            levels_max: 4096,
        },
        snapshot_timers: SessionTimers {
            login_timeout_ms: 1000,
            heartbeat_interval_ms: 1000,
            idle_timeout_ms: 1000,
        },
    })
    .expect("market data starts");
    let mut in_stage = Duration::ZERO;
    let mut feed_seq = 0u64;
    for chunk in stream.chunks(batch) {
        for m in chunk {
            feed_seq += 1;
            // Journal sequences are not read here (no re-requests): any increasing number.
            let _ = producer.push(ToFeed::message(feed_seq, feed_seq * 4, m));
        }
        let _ = producer.push(ToFeed::Flush);
        let start = Instant::now();
        while stage.do_work(clock.now_ns()) > 0 && producer.free_slots() < producer.capacity() {}
        in_stage += start.elapsed();
    }
    assert_eq!(stage.next_feed_seq(), feed_seq + 1, "every message went out");
    assert_eq!(stage.counters().book_errors, 0);
    let _ = std::fs::remove_dir_all(&dir);

    let per = |d: Duration| d.as_nanos() as f64 / stream.len() as f64;
    println!("    baseline: {:7.1} ns/message", per(baseline));
    println!("       stage: {:7.1} ns/message", per(in_stage));
    println!(
        "stage / baseline: {:.2}x; {} packets",
        per(in_stage) / per(baseline),
        stage.counters().packets_sent
    );
}
