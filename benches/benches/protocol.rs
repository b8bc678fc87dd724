//! Criterion benches of the wire protocol crate, each beside a plain copy of the same bytes measured in the
//! same run (results and how to read them: `docs/PERFORMANCE.md`, "Protocol").
//!
//! Topology: one thread, everything in memory, no sockets. Each group holds its baseline:
//! - `ouch_enter_order`: decode (`Inbound::decode` and reading the fields a server reads) and encode
//!   (`EnterOrder::new` + `encode`) of [`MESSAGES`] Enter Orders, beside `copy_49_bytes` (each message copied
//!   into the same output slot encode writes).
//!   `encode_in_place` is the same through `Message::encode_in_place` (stored field by field into the slot).
//! - `ouch_executed`: the server's hottest reply, Executed (40 bytes) from the execution's fields, `encode`
//!   against `encode_in_place`, beside `copy_40_bytes`.
//! - `itch_add_order`: the same for ITCH Add Order (36 bytes), beside `copy_36_bytes`.
//! - `moldudp64_pack_add_orders`: a `PacketBuilder` packing [`MESSAGES`] Add Orders into 1400-byte packets
//!   (`push_itch`: encoded in place into the reserved slot; `reserve_encode`: what `push_itch` did before,
//!   `reserve` then `itch::Message::encode`; `reserve_add_order_in_place`: `reserve` then the typed
//!   `AddOrder::encode_in_place`, no enum dispatch; `push`: pre-encoded bytes), beside `copy_blocks` (the same length-prefixed
//!   blocks copied into one packet buffer with the same packet boundaries).
//! - `soupbintcp_stream_4KiB` / `_64KiB`: about 1 MiB of mixed client frames (Enter, Cancel and Replace in
//!   Unsequenced Data, Client Heartbeats) read in 4 KiB / 64 KiB chunks through `StreamBuffer`
//!   (`spare_mut`/`commit`/`next_packet`, as the server does), framing only (`stream_buffer`) and framing plus
//!   OUCH decode (`stream_buffer_ouch`), the same through the draining `for_each_packet`
//!   (`for_each_packet`, `for_each_packet_ouch`), beside `memcpy` (the same chunks copied into a buffer, which is what
//!   the socket read costs) and `length_prefix_walk` (stepping from length prefix to length prefix over the
//!   whole stream, no copy, no checks: the serial dependency every framer pays, a floor, not a decoder).
//!
//! Limits: [`MESSAGES`] messages per iteration in the message groups; [`STREAM_BYTES_MAX`] bytes of stream.
//! Workloads are deterministic (a fixed xorshift seed), built before measuring; nothing allocates while
//! measured.

use std::hint::black_box;
use std::ops::ControlFlow;

use bourse_protocol::fields::{Firm, Symbol, Token};
use bourse_protocol::itch;
use bourse_protocol::moldudp64::{self, PacketBuilder, PushError, Session};
use bourse_protocol::ouch::{self, Inbound, Message as _};
use bourse_protocol::soupbintcp::{self, FRAME_SIZE_MAX_DEFAULT, Packet, StreamBuffer};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

/// Messages per iteration in the per-message groups (enough to amortize the loop, small enough for L1/L2).
const MESSAGES: usize = 1024;
/// Size of the SoupBinTCP stream workload: frames are appended while they fit in 1 MiB.
const STREAM_BYTES_MAX: usize = 1 << 20;
/// Per-connection read buffer of the stream benches (a realistic server buffer).
const STREAM_BUFFER_BYTES: usize = 64 * 1024;

const ENTER_LEN: usize = 49;
const ADD_ORDER_LEN: usize = 36;
const EXECUTED_LEN: usize = 40;
const _: () = assert!(<ouch::Executed as ouch::Message>::LEN == EXECUTED_LEN);
const _: () = assert!(ouch::EnterOrder::LEN == ENTER_LEN);
const _: () = assert!(itch::AddOrder::LEN == ADD_ORDER_LEN);

/// Deterministic pseudo-random numbers for the workloads.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "NVDA", "SPY"];

fn token(i: u64) -> Token {
    Token::new(&format!("T{i:013}")).expect("14 ASCII characters")
}

fn symbol(rng: &mut XorShift) -> Symbol {
    Symbol::new(SYMBOLS[rng.below(SYMBOLS.len() as u64) as usize]).expect("short ASCII")
}

fn enter_order(rng: &mut XorShift, i: u64) -> ouch::EnterOrder {
    let terms = ouch::OrderTerms {
        side: if rng.below(2) == 0 {
            ouch::Side::Buy
        } else {
            ouch::Side::Sell
        },
        shares: 100 * (1 + rng.below(50) as u32),
        stock: symbol(rng),
        price: 1_500_000 + 100 * rng.below(1000) as u32,
        time_in_force: 99_999,
        firm: Firm::new("BRSE").expect("4 letters"),
        display: ouch::Display::Anonymous,
        capacity: b'A',
        intermarket_sweep: b'N',
        minimum_quantity: 0,
        cross_type: b'N',
    };
    ouch::EnterOrder::new(token(i), &terms, b'R')
}

fn add_order(rng: &mut XorShift, i: u64) -> itch::AddOrder {
    itch::AddOrder {
        header: itch::Header {
            stock_locate: 1 + rng.below(4) as u16,
            tracking_number: 0,
            timestamp: itch::Timestamp48::new(34_200_000_000_000 + i * 1000).expect("fits 48 bits"),
        },
        order_reference_number: 1_000_000 + i,
        side: if rng.below(2) == 0 {
            itch::Side::Buy
        } else {
            itch::Side::Sell
        },
        shares: 100 * (1 + rng.below(50) as u32),
        stock: symbol(rng),
        price: 1_500_000 + 100 * rng.below(1000) as u32,
    }
}

/// The fields of an Enter Order the order-entry stage reads before it hands the order to the book.
#[derive(Clone, Copy)]
#[expect(dead_code, reason = "the fields are only handed to black_box")]
struct EnterFields {
    token: Token,
    buy: bool,
    shares: u32,
    stock: Symbol,
    price: u32,
    time_in_force: u32,
    firm: Firm,
    display: u8,
    minimum_quantity: u32,
}

/// The baseline of the per-message groups: copies each `N`-byte message of `wire` into its slot of `out` as a
/// fixed-size array, which the compiler inlines (no `memcpy` call): the cheapest plain copy.
fn copy_messages<const N: usize>(wire: &[u8], out: &mut [u8]) {
    let (messages, _) = wire.as_chunks::<N>();
    let (slots, _) = out.as_chunks_mut::<N>();
    for (src, dst) in messages.iter().zip(slots) {
        *dst = *src;
    }
}

/// Checks that `encode` writes `wire` into `out` (over garbage), then measures it as the group's `name`.
fn bench_encode(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    out: &mut [u8],
    wire: &[u8],
    encode: impl Fn(&mut [u8]),
) {
    out.fill(0xA5);
    encode(out);
    assert_eq!(out, wire, "{name} writes the workload's bytes");
    group.bench_function(name, |b| {
        b.iter(|| {
            encode(out);
            black_box(&mut *out);
        });
    });
}

fn bench_ouch_enter_order(c: &mut Criterion) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let orders: Vec<ouch::EnterOrder> = (0..MESSAGES as u64).map(|i| enter_order(&mut rng, i)).collect();
    let wire: Vec<u8> = orders.iter().flat_map(|o| o.as_wire().to_vec()).collect();
    let mut out = vec![0u8; wire.len()];

    let mut group = c.benchmark_group("ouch_enter_order");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("copy_49_bytes", |b| {
        b.iter(|| copy_messages::<ENTER_LEN>(black_box(&wire), black_box(&mut out)));
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for message in black_box(&wire).chunks_exact(ENTER_LEN) {
                let Ok(Inbound::EnterOrder(order)) = Inbound::decode(message) else {
                    panic!("the workload holds only valid Enter Orders");
                };
                black_box(EnterFields {
                    token: order.order_token,
                    buy: !order.side.is_sell(),
                    shares: order.shares.get(),
                    stock: order.stock,
                    price: order.price.get(),
                    time_in_force: order.time_in_force.get(),
                    firm: order.firm,
                    display: order.display.code(),
                    minimum_quantity: order.minimum_quantity.get(),
                });
            }
        });
    });
    let terms: Vec<(Token, ouch::OrderTerms)> = orders.iter().map(|o| (o.order_token, o.terms())).collect();
    let encode = |out: &mut [u8]| {
        for ((token, terms), dst) in black_box(&terms).iter().zip(out.chunks_exact_mut(ENTER_LEN)) {
            let len = ouch::EnterOrder::new(*token, terms, b'R')
                .encode(dst)
                .expect("49-byte slot");
            debug_assert_eq!(len, ENTER_LEN);
        }
    };
    bench_encode(&mut group, "encode", &mut out, &wire, encode);
    let encode_in_place = |out: &mut [u8]| {
        for ((token, terms), dst) in black_box(&terms).iter().zip(out.chunks_exact_mut(ENTER_LEN)) {
            let len = ouch::EnterOrder::new(*token, terms, b'R')
                .encode_in_place(dst)
                .expect("49-byte slot");
            debug_assert_eq!(len, ENTER_LEN);
        }
    };
    bench_encode(&mut group, "encode_in_place", &mut out, &wire, encode_in_place);
    group.finish();
}

/// The fields the matching stage hands the reply path for one execution.
#[derive(Clone, Copy)]
struct Execution {
    timestamp_ns: u64,
    token: Token,
    shares: u32,
    price: u32,
    match_number: u64,
}

/// The server's hottest reply: OUCH Executed (40 bytes) built from the execution's fields, `encode` (built on
/// the stack, then copied) against `encode_in_place` (stored field by field into the output slot).
fn bench_ouch_executed(c: &mut Criterion) {
    let mut rng = XorShift(0x6A09_E667_F3BC_C909);
    let executions: Vec<Execution> = (0..MESSAGES as u64)
        .map(|i| Execution {
            timestamp_ns: 34_200_000_000_000 + i * 1000,
            token: token(rng.below(MESSAGES as u64)),
            shares: 100 * (1 + rng.below(50) as u32),
            price: 1_500_000 + 100 * rng.below(1000) as u32,
            match_number: 1 + i,
        })
        .collect();
    let executed = |e: &Execution| {
        ouch::Executed::new(
            e.timestamp_ns,
            e.token,
            e.shares,
            e.price,
            ouch::LiquidityFlag::Added,
            e.match_number,
        )
    };
    let wire: Vec<u8> = executions
        .iter()
        .flat_map(|e| executed(e).as_wire().to_vec())
        .collect();
    let mut out = vec![0u8; wire.len()];

    let mut group = c.benchmark_group("ouch_executed");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("copy_40_bytes", |b| {
        b.iter(|| copy_messages::<EXECUTED_LEN>(black_box(&wire), black_box(&mut out)));
    });
    let encode = |out: &mut [u8]| {
        for (e, dst) in black_box(&executions)
            .iter()
            .zip(out.chunks_exact_mut(EXECUTED_LEN))
        {
            let len = executed(e).encode(dst).expect("40-byte slot");
            debug_assert_eq!(len, EXECUTED_LEN);
        }
    };
    bench_encode(&mut group, "encode", &mut out, &wire, encode);
    let encode_in_place = |out: &mut [u8]| {
        for (e, dst) in black_box(&executions)
            .iter()
            .zip(out.chunks_exact_mut(EXECUTED_LEN))
        {
            let len = executed(e).encode_in_place(dst).expect("40-byte slot");
            debug_assert_eq!(len, EXECUTED_LEN);
        }
    };
    bench_encode(&mut group, "encode_in_place", &mut out, &wire, encode_in_place);
    group.finish();
}

fn bench_itch_add_order(c: &mut Criterion) {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let orders: Vec<itch::AddOrder> = (0..MESSAGES as u64).map(|i| add_order(&mut rng, i)).collect();
    let mut wire = vec![0u8; MESSAGES * ADD_ORDER_LEN];
    for (order, dst) in orders.iter().zip(wire.chunks_exact_mut(ADD_ORDER_LEN)) {
        order.encode(dst).expect("36-byte slot");
    }
    let mut out = vec![0u8; wire.len()];

    let mut group = c.benchmark_group("itch_add_order");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("copy_36_bytes", |b| {
        b.iter(|| copy_messages::<ADD_ORDER_LEN>(black_box(&wire), black_box(&mut out)));
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for message in black_box(&wire).chunks_exact(ADD_ORDER_LEN) {
                let Ok(itch::Message::AddOrder(order)) = itch::Message::decode(message) else {
                    panic!("the workload holds only valid Add Orders");
                };
                black_box(order);
            }
        });
    });
    let encode = |out: &mut [u8]| {
        for (order, dst) in black_box(&orders).iter().zip(out.chunks_exact_mut(ADD_ORDER_LEN)) {
            let len = order.encode(dst).expect("36-byte slot");
            debug_assert_eq!(len, ADD_ORDER_LEN);
        }
    };
    bench_encode(&mut group, "encode", &mut out, &wire, encode);
    let encode_in_place = |out: &mut [u8]| {
        for (order, dst) in black_box(&orders).iter().zip(out.chunks_exact_mut(ADD_ORDER_LEN)) {
            let len = order.encode_in_place(dst).expect("36-byte slot");
            debug_assert_eq!(len, ADD_ORDER_LEN);
        }
    };
    bench_encode(&mut group, "encode_in_place", &mut out, &wire, encode_in_place);
    group.finish();
}

fn bench_moldudp64_pack(c: &mut Criterion) {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let orders: Vec<itch::Message> = (0..MESSAGES as u64)
        .map(|i| itch::Message::AddOrder(add_order(&mut rng, i)))
        .collect();
    let mut wire = vec![0u8; MESSAGES * ADD_ORDER_LEN];
    for (order, dst) in orders.iter().zip(wire.chunks_exact_mut(ADD_ORDER_LEN)) {
        order.encode(dst).expect("36-byte slot");
    }
    let session = Session::new("20261126A").expect("10 ASCII characters");
    let payload_bytes_max = moldudp64::PAYLOAD_BYTES_DEFAULT;
    let block_len = moldudp64::BLOCK_LEN_PREFIX + ADD_ORDER_LEN;
    let blocks_per_packet = (payload_bytes_max - moldudp64::HEADER_LEN) / block_len;
    let packets = MESSAGES.div_ceil(blocks_per_packet);
    let packet_bytes = MESSAGES * block_len + packets * moldudp64::HEADER_LEN;
    let mut builder = PacketBuilder::new(session, 1, payload_bytes_max);

    let mut group = c.benchmark_group("moldudp64_pack_add_orders");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    let mut blocks = vec![0u8; MESSAGES * block_len];
    for (message, block) in wire
        .chunks_exact(ADD_ORDER_LEN)
        .zip(blocks.chunks_exact_mut(block_len))
    {
        block[..2].copy_from_slice(&(ADD_ORDER_LEN as u16).to_be_bytes());
        block[2..].copy_from_slice(message);
    }
    let header = moldudp64::PacketHeader {
        session,
        sequence_number: 1,
        message_count: blocks_per_packet as u16,
    }
    .to_bytes();
    let mut packet = vec![0u8; payload_bytes_max];
    group.bench_function("copy_blocks", |b| {
        b.iter(|| {
            for chunk in black_box(&blocks).chunks(blocks_per_packet * block_len) {
                packet[moldudp64::HEADER_LEN..moldudp64::HEADER_LEN + chunk.len()].copy_from_slice(chunk);
                packet[..moldudp64::HEADER_LEN].copy_from_slice(&header);
                black_box(&mut packet);
            }
        });
    });
    // Both return the bytes packed, checked once before measuring.
    let pack_itch = |builder: &mut PacketBuilder| {
        let mut packed_bytes = 0;
        for message in black_box(&orders) {
            if let Err(PushError::Full) = builder.push_itch(message) {
                packed_bytes += black_box(builder.flush().expect("a full packet")).len();
                builder
                    .push_itch(message)
                    .expect("an empty packet takes an Add Order");
            }
        }
        packed_bytes + black_box(builder.flush().expect("messages pushed")).len()
    };
    // What push_itch did before it encoded in place: reserve the slot, then `itch::Message::encode` (the
    // message built on the stack, then copied into the slot).
    let pack_reserve_encode = |builder: &mut PacketBuilder| {
        let mut packed_bytes = 0;
        for message in black_box(&orders) {
            let slot = match builder.reserve(message.len()) {
                Ok(slot) => slot,
                Err(PushError::Full) => {
                    packed_bytes += black_box(builder.flush().expect("a full packet")).len();
                    builder
                        .reserve(message.len())
                        .expect("an empty packet takes an Add Order")
                }
                Err(error) => panic!("{error}"),
            };
            message.encode(slot).expect("a slot of the message's length");
        }
        packed_bytes + black_box(builder.flush().expect("messages pushed")).len()
    };
    // A publisher that knows the type: reserve, then the typed in-place encoder (no enum dispatch).
    let add_orders: Vec<itch::AddOrder> = orders
        .iter()
        .map(|m| match m {
            itch::Message::AddOrder(order) => *order,
            _ => unreachable!("the workload holds only Add Orders"),
        })
        .collect();
    let pack_typed_in_place = |builder: &mut PacketBuilder| {
        let mut packed_bytes = 0;
        for order in black_box(&add_orders) {
            let slot = match builder.reserve(itch::AddOrder::LEN) {
                Ok(slot) => slot,
                Err(PushError::Full) => {
                    packed_bytes += black_box(builder.flush().expect("a full packet")).len();
                    builder
                        .reserve(itch::AddOrder::LEN)
                        .expect("an empty packet takes an Add Order")
                }
                Err(error) => panic!("{error}"),
            };
            order
                .encode_in_place(slot)
                .expect("a slot of the message's length");
        }
        packed_bytes + black_box(builder.flush().expect("messages pushed")).len()
    };
    let pack_bytes = |builder: &mut PacketBuilder| {
        let mut packed_bytes = 0;
        for message in black_box(&wire).chunks_exact(ADD_ORDER_LEN) {
            if let Err(PushError::Full) = builder.push(message) {
                packed_bytes += black_box(builder.flush().expect("a full packet")).len();
                builder.push(message).expect("an empty packet takes an Add Order");
            }
        }
        packed_bytes + black_box(builder.flush().expect("messages pushed")).len()
    };
    assert_eq!(
        pack_itch(&mut builder),
        packet_bytes,
        "push_itch packs the expected bytes"
    );
    assert_eq!(
        pack_bytes(&mut builder),
        packet_bytes,
        "push packs the expected bytes"
    );
    assert_eq!(pack_reserve_encode(&mut builder), packet_bytes);
    assert_eq!(pack_typed_in_place(&mut builder), packet_bytes);
    group.bench_function("push_itch", |b| b.iter(|| pack_itch(&mut builder)));
    group.bench_function("reserve_encode", |b| b.iter(|| pack_reserve_encode(&mut builder)));
    group.bench_function("reserve_add_order_in_place", |b| {
        b.iter(|| pack_typed_in_place(&mut builder))
    });
    group.bench_function("push", |b| b.iter(|| pack_bytes(&mut builder)));
    group.finish();
}

/// About 1 MiB of client frames: 55% Enter Order, 25% Cancel Order, 15% Replace Order (each in Unsequenced
/// Data), 5% Client Heartbeat. Returns the stream and its frame count.
fn client_stream() -> (Vec<u8>, usize) {
    let mut rng = XorShift(0x5851_F42D_4C95_7F2D);
    let mut stream = Vec::with_capacity(STREAM_BYTES_MAX);
    let mut frame = [0u8; soupbintcp::FRAME_HEADER_LEN + 1 + ouch::MESSAGE_LEN_MAX];
    let mut frames = 0;
    for i in 0.. {
        let pick = rng.below(100);
        let len = if pick < 95 {
            let payload = &mut frame[3..];
            let payload_len = if pick < 55 {
                enter_order(&mut rng, i).encode(payload)
            } else if pick < 80 {
                ouch::CancelOrder::new(token(rng.below(i + 1)), 0).encode(payload)
            } else {
                ouch::ReplaceOrder::new(
                    token(rng.below(i + 1)),
                    token(i),
                    100,
                    1_500_000,
                    99_999,
                    ouch::Display::Anonymous,
                    b'N',
                    0,
                )
                .encode(payload)
            }
            .expect("MESSAGE_LEN_MAX slot");
            soupbintcp::write_frame_header(soupbintcp::PacketType::UnsequencedData, payload_len, &mut frame)
                .expect("frame fits")
                + payload_len
        } else {
            Packet::ClientHeartbeat.encode(&mut frame).expect("3 bytes")
        };
        if stream.len() + len > STREAM_BYTES_MAX {
            break;
        }
        stream.extend_from_slice(&frame[..len]);
        frames += 1;
    }
    (stream, frames)
}

/// What the framing loop saw; checked after measuring so the work cannot be skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct StreamCounts {
    frames: usize,
    payload_bytes: usize,
    enter_orders: usize,
}

/// Reads `stream` in `chunk_bytes` chunks through `buffer` as a readiness-based server does, and frames it.
fn frame_stream(buffer: &mut StreamBuffer, stream: &[u8], chunk_bytes: usize, ouch: bool) -> StreamCounts {
    buffer.clear();
    let mut counts = StreamCounts::default();
    let mut fed = 0;
    while fed < stream.len() {
        let spare = buffer.spare_mut();
        let n = spare.len().min(chunk_bytes).min(stream.len() - fed);
        spare[..n].copy_from_slice(&stream[fed..fed + n]);
        buffer.commit(n);
        fed += n;
        while let Some(packet) = buffer.next_packet().expect("a well-formed stream") {
            counts.frames += 1;
            if let Packet::UnsequencedData(payload) = packet {
                counts.payload_bytes += payload.len();
                if ouch {
                    match Inbound::decode(payload).expect("valid OUCH") {
                        Inbound::EnterOrder(order) => {
                            counts.enter_orders += 1;
                            black_box((order.order_token, order.shares.get(), order.price.get()));
                        }
                        other => {
                            black_box(other.token());
                        }
                    }
                }
            }
        }
    }
    counts
}

/// [`frame_stream`] with the draining API: `for_each_packet` instead of a `next_packet` loop.
fn frame_stream_drain(
    buffer: &mut StreamBuffer,
    stream: &[u8],
    chunk_bytes: usize,
    ouch: bool,
) -> StreamCounts {
    buffer.clear();
    let mut counts = StreamCounts::default();
    let mut fed = 0;
    while fed < stream.len() {
        let spare = buffer.spare_mut();
        let n = spare.len().min(chunk_bytes).min(stream.len() - fed);
        spare[..n].copy_from_slice(&stream[fed..fed + n]);
        buffer.commit(n);
        fed += n;
        let frames = buffer
            .for_each_packet(usize::MAX, |packet| {
                if let Packet::UnsequencedData(payload) = packet {
                    counts.payload_bytes += payload.len();
                    if ouch {
                        match Inbound::decode(payload).expect("valid OUCH") {
                            Inbound::EnterOrder(order) => {
                                counts.enter_orders += 1;
                                black_box((order.order_token, order.shares.get(), order.price.get()));
                            }
                            other => {
                                black_box(other.token());
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            })
            .expect("a well-formed stream");
        counts.frames += frames;
    }
    counts
}

/// Counts the frames of a well-formed `stream` by stepping from length prefix to length prefix.
fn length_prefix_walk(stream: &[u8]) -> usize {
    let mut frames = 0;
    let mut at = 0;
    while let Some(prefix) = stream.get(at..at + 2) {
        at += 2 + usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        frames += 1;
    }
    frames
}

fn bench_soupbintcp_stream(c: &mut Criterion) {
    let (stream, frames) = client_stream();
    let mut buffer = StreamBuffer::new(STREAM_BUFFER_BYTES, FRAME_SIZE_MAX_DEFAULT);
    let mut copy_target = vec![0u8; STREAM_BUFFER_BYTES];
    for chunk_bytes in [4 * 1024, 64 * 1024] {
        let mut group = c.benchmark_group(format!("soupbintcp_stream_{}KiB", chunk_bytes / 1024));
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                // Walk the buffer as the StreamBuffer does, so both touch the same amount of memory.
                let mut offset = 0;
                for chunk in black_box(&stream).chunks(chunk_bytes) {
                    if offset + chunk.len() > copy_target.len() {
                        offset = 0;
                    }
                    copy_target[offset..offset + chunk.len()].copy_from_slice(chunk);
                    offset += chunk.len();
                    black_box(&mut copy_target);
                }
            });
        });
        // Reference, not a decoder: the serial chain every framer pays (read a length, step past the frame),
        // with no validation and no copy; what is left above it is the decoder's own cost.
        assert_eq!(length_prefix_walk(&stream), frames);
        group.bench_function("length_prefix_walk", |b| {
            b.iter(|| length_prefix_walk(black_box(&stream)))
        });
        let framed = frame_stream(&mut buffer, &stream, chunk_bytes, false);
        let decoded = frame_stream(&mut buffer, &stream, chunk_bytes, true);
        assert_eq!(
            (framed.frames, decoded.frames),
            (frames, frames),
            "every frame decoded"
        );
        assert!(decoded.enter_orders > frames / 2, "{decoded:?}");
        assert_eq!(
            frame_stream_drain(&mut buffer, &stream, chunk_bytes, false),
            framed
        );
        assert_eq!(
            frame_stream_drain(&mut buffer, &stream, chunk_bytes, true),
            decoded
        );
        group.bench_function("stream_buffer", |b| {
            b.iter(|| frame_stream(&mut buffer, black_box(&stream), chunk_bytes, false));
        });
        group.bench_function("stream_buffer_ouch", |b| {
            b.iter(|| frame_stream(&mut buffer, black_box(&stream), chunk_bytes, true));
        });
        group.bench_function("for_each_packet", |b| {
            b.iter(|| frame_stream_drain(&mut buffer, black_box(&stream), chunk_bytes, false));
        });
        group.bench_function("for_each_packet_ouch", |b| {
            b.iter(|| frame_stream_drain(&mut buffer, black_box(&stream), chunk_bytes, true));
        });
        group.finish();
    }
    eprintln!(
        "soupbintcp stream workload: {} bytes, {frames} frames ({:.1} bytes/frame)",
        stream.len(),
        stream.len() as f64 / frames as f64
    );
}

criterion_group!(
    benches,
    bench_ouch_enter_order,
    bench_ouch_executed,
    bench_itch_add_order,
    bench_moldudp64_pack,
    bench_soupbintcp_stream
);
criterion_main!(benches);
