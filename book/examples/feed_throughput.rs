//! Throughput of `FeedBook` (a book rebuilt from ITCH) beside two baselines in the same run.
//!
//! Run: `cargo run --release -p bourse-book --example feed_throughput -- [messages] [seed]`
//!
//! The stream: a seeded mix of Add Order (50 %), Executed (15 %), Cancel (10 %), Delete (15 %) and Replace
//! (10 %) on one instrument, prices within 64 ticks of a mid, about 10,000 orders resting. Every message is
//! encoded once up front; each contender decodes the bytes and applies them:
//! - `decode only`: `Message::decode` and nothing else (the floor);
//! - `naive`: a `BTreeMap<price, VecDeque<reference>>` per side and a `HashMap` from reference to order;
//! - `FeedBook`: the fixed-table book.
//!
//! Absolute figures depend on the machine; the ratios to the baselines are the result.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use bourse_book::feed::{FeedBook, FeedBookLimits};
use bourse_protocol::fields::Symbol;
use bourse_protocol::itch::{
    AddOrder, Header, Message, OrderCancel, OrderDelete, OrderExecuted, OrderReplace, Side, StockDirectory,
    Timestamp48,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn header(ns: u64) -> Header {
    Header {
        stock_locate: 1,
        tracking_number: 0,
        timestamp: Timestamp48::new(ns).expect("small timestamp"),
    }
}

/// The stream as encoded messages, the directory first.
fn stream(messages: usize, seed: u64) -> Vec<Vec<u8>> {
    let symbol = Symbol::new("AAPL").expect("valid symbol");
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(messages + 1);
    let encode = |m: &Message| {
        let mut buf = [0u8; 64];
        let n = m.encode(&mut buf).expect("fits");
        buf[..n].to_vec()
    };
    out.push(encode(&Message::StockDirectory(StockDirectory::bourse(
        header(1),
        symbol,
        100,
    ))));
    // Live orders: (reference, open shares).
    let mut live: Vec<(u64, u32)> = Vec::new();
    let mut next_reference = 1u64;
    for i in 0..messages as u64 {
        let roll = rng.below(100);
        let ns = 1000 + i;
        let message = if live.len() < 10_000 && (roll < 50 || live.is_empty()) || live.len() < 100 {
            let buy = rng.below(2) == 0;
            let offset = rng.below(64) as u32 * 100;
            let price = if buy {
                1_000_000 - offset
            } else {
                1_000_100 + offset
            };
            let shares = 1 + rng.below(500) as u32;
            live.push((next_reference, shares));
            next_reference += 1;
            Message::AddOrder(AddOrder {
                header: header(ns),
                order_reference_number: next_reference - 1,
                side: if buy { Side::Buy } else { Side::Sell },
                shares,
                stock: symbol,
                price,
            })
        } else {
            let pick = rng.below(live.len() as u64) as usize;
            let (reference, open) = live[pick];
            if roll < 65 {
                let shares = 1 + rng.below(u64::from(open)) as u32;
                if shares == open {
                    live.swap_remove(pick);
                } else {
                    live[pick].1 -= shares;
                }
                Message::OrderExecuted(OrderExecuted {
                    header: header(ns),
                    order_reference_number: reference,
                    executed_shares: shares,
                    match_number: i,
                })
            } else if roll < 75 && open > 1 {
                let shares = 1 + rng.below(u64::from(open - 1)) as u32;
                live[pick].1 -= shares;
                Message::OrderCancel(OrderCancel {
                    header: header(ns),
                    order_reference_number: reference,
                    canceled_shares: shares,
                })
            } else if roll < 90 {
                live.swap_remove(pick);
                Message::OrderDelete(OrderDelete {
                    header: header(ns),
                    order_reference_number: reference,
                })
            } else {
                let shares = 1 + rng.below(500) as u32;
                live[pick] = (next_reference, shares);
                next_reference += 1;
                Message::OrderReplace(OrderReplace {
                    header: header(ns),
                    original_order_reference_number: reference,
                    new_order_reference_number: next_reference - 1,
                    shares,
                    // A replace keeps its side; any price is valid for the book.
                    price: 990_000 + rng.below(256) as u32 * 100,
                })
            }
        };
        out.push(encode(&message));
    }
    out
}

#[derive(Default)]
struct Naive {
    levels: [BTreeMap<u32, VecDeque<u64>>; 2],
    orders: HashMap<u64, (usize, u32, u32)>,
}

impl Naive {
    fn remove(&mut self, reference: u64) {
        let (side, price, _) = self.orders.remove(&reference).expect("known order");
        let level = self.levels[side].get_mut(&price).expect("level exists");
        level.retain(|&r| r != reference);
        if level.is_empty() {
            self.levels[side].remove(&price);
        }
    }

    fn reduce(&mut self, reference: u64, shares: u32) {
        let open = &mut self.orders.get_mut(&reference).expect("known order").2;
        *open -= shares;
        if *open == 0 {
            self.remove(reference);
        }
    }

    fn apply(&mut self, m: &Message) {
        match m {
            Message::AddOrder(a) => {
                let side = usize::from(a.side == Side::Sell);
                self.orders
                    .insert(a.order_reference_number, (side, a.price, a.shares));
                self.levels[side]
                    .entry(a.price)
                    .or_default()
                    .push_back(a.order_reference_number);
            }
            Message::OrderExecuted(e) => self.reduce(e.order_reference_number, e.executed_shares),
            Message::OrderCancel(c) => self.reduce(c.order_reference_number, c.canceled_shares),
            Message::OrderDelete(d) => self.remove(d.order_reference_number),
            Message::OrderReplace(r) => {
                let side = self.orders[&r.original_order_reference_number].0;
                self.remove(r.original_order_reference_number);
                self.orders
                    .insert(r.new_order_reference_number, (side, r.price, r.shares));
                self.levels[side]
                    .entry(r.price)
                    .or_default()
                    .push_back(r.new_order_reference_number);
            }
            _ => {}
        }
    }
}

fn run(name: &str, messages: &[Vec<u8>], mut apply: impl FnMut(&[u8])) -> f64 {
    let start = Instant::now();
    for m in messages {
        apply(m);
    }
    let ns = start.elapsed().as_nanos() as f64 / messages.len() as f64;
    println!("{name:>12}: {ns:7.1} ns/message");
    ns
}

fn main() {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().map_or(2_000_000, |a| a.parse().expect("messages"));
    let seed: u64 = args.next().map_or(7, |a| a.parse().expect("seed"));
    let stream = stream(messages, seed);
    println!("{} ITCH messages, seed {seed}", stream.len());

    let mut decoded = 0u64;
    let floor = run("decode only", &stream, |bytes| {
        decoded += u64::from(Message::decode(bytes).expect("valid").message_type());
    });
    std::hint::black_box(decoded);

    let mut naive = Naive::default();
    let baseline = run("naive", &stream, |bytes| {
        naive.apply(&Message::decode(bytes).expect("valid"))
    });

    let mut book = FeedBook::new(FeedBookLimits {
        locates_max: 1,
        orders_max: 65_536,
        levels_max: 1024,
    });
    let ours = run("FeedBook", &stream, |bytes| {
        book.apply_bytes(bytes).expect("applies")
    });

    // The same book at the end.
    let naive_orders = naive.orders.len();
    assert_eq!(
        book.live_orders() as usize,
        naive_orders,
        "both books hold the same orders"
    );
    println!(
        "FeedBook / naive: {:.2}x the time; FeedBook / decode only: {:.2}x; {naive_orders} orders resting at the end",
        ours / baseline,
        ours / floor
    );
}
