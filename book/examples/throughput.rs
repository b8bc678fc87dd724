//! Throughput and per-command latency of the engine on the seeded workloads, beside a baseline.
//!
//! Run: `cargo run --release -p bourse-book --example throughput -- [commands] [seed]`
//!
//! Baseline (same run, same commands): a plain `BTreeMap<price, VecDeque<order>>` book with a
//! `HashMap` from (login, token) to its order, handling only new limit/market orders and cancels (the
//! common mix); the engine does strictly more (risk checks, tokens, events). The side-by-side against
//! peer crates lives in `benches/` (another harness). Absolute figures depend on the machine.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use bourse_book::workload::{Mix, Workload, WorkloadParams};
use bourse_book::{Command, Engine, Event, FnSink};
use bourse_protocol::fields::{PRICE_MARKET, Token};

/// The baseline: a naive two-sided book for enter and cancel.
#[derive(Default)]
struct NaiveBook {
    bids: BTreeMap<u32, VecDeque<(u32, Token, u32)>>,
    asks: BTreeMap<u32, VecDeque<(u32, Token, u32)>>,
    live: HashMap<(u32, Token), (bool, u32)>,
    traded: u64,
}

impl NaiveBook {
    fn apply(&mut self, c: &Command) {
        match c {
            Command::Enter(o) => {
                let buy = o.side == b'B';
                let limit = if o.price == PRICE_MARKET {
                    if buy { u32::MAX } else { 0 }
                } else {
                    o.price
                };
                let mut left = o.shares;
                let opposite = if buy { &mut self.asks } else { &mut self.bids };
                while left > 0 {
                    let best = if buy {
                        opposite.keys().next()
                    } else {
                        opposite.keys().next_back()
                    };
                    let Some(&price) = best else { break };
                    if (buy && price > limit) || (!buy && price < limit) {
                        break;
                    }
                    let queue = opposite.get_mut(&price).unwrap();
                    let head = queue.front_mut().unwrap();
                    let fill = head.2.min(left);
                    head.2 -= fill;
                    left -= fill;
                    self.traded += u64::from(fill);
                    if head.2 == 0 {
                        let (login, token, _) = queue.pop_front().unwrap();
                        self.live.remove(&(login, token));
                        if queue.is_empty() {
                            opposite.remove(&price);
                        }
                    }
                }
                if left > 0 && o.tif_s != 0 && o.price != PRICE_MARKET {
                    let own = if buy { &mut self.bids } else { &mut self.asks };
                    own.entry(o.price)
                        .or_default()
                        .push_back((o.login, o.token, left));
                    self.live.insert((o.login, o.token), (buy, o.price));
                }
            }
            Command::Cancel { login, token, .. } => {
                if let Some((buy, price)) = self.live.remove(&(*login, *token)) {
                    let own = if buy { &mut self.bids } else { &mut self.asks };
                    let queue = own.get_mut(&price).unwrap();
                    queue.retain(|o| !(o.0 == *login && o.1 == *token));
                    if queue.is_empty() {
                        own.remove(&price);
                    }
                }
            }
            _ => {}
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn report(name: &str, elapsed_s: f64, latencies: &mut [u32]) -> f64 {
    latencies.sort_unstable();
    let ops = latencies.len() as f64 / elapsed_s;
    println!(
        "{name:<28} {:>10.0} ops/s   p50 {:>5} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>8} ns",
        ops,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        percentile(latencies, 0.999),
        latencies[latencies.len() - 1]
    );
    ops
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    for (mix_name, mix) in [("common", Mix::COMMON), ("full", Mix::FULL)] {
        let mut params = WorkloadParams::new(seed, mix);
        params.orders_max = 1 << 20;
        let commands: Vec<(u64, Command)> = Workload::new(params).take(n).collect();
        println!("== mix {mix_name}: {n} commands, seed {seed}");

        let mut engine = Engine::new(params.config_for(n)).expect("valid config");
        let mut latencies = vec![0u32; n];
        let mut events = 0u64;
        let mut sink = FnSink(|_e: Event| events += 1);
        let start = Instant::now();
        for (i, (now, c)) in commands.iter().enumerate() {
            let t = Instant::now();
            engine.apply(*now, c, &mut sink);
            latencies[i] = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let ours = report("bourse-book", elapsed, &mut latencies);
        println!(
            "  events {events}, resting orders {}, next match {}",
            engine.order_count(),
            engine.match_number_next()
        );

        if mix_name == "common" {
            let mut naive = NaiveBook::default();
            let start = Instant::now();
            for (i, (_, c)) in commands.iter().enumerate() {
                let t = Instant::now();
                naive.apply(c);
                latencies[i] = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
            }
            let elapsed = start.elapsed().as_secs_f64();
            let base = report("baseline BTreeMap+VecDeque", elapsed, &mut latencies);
            println!(
                "  ratio bourse-book / baseline: {:.2}x (baseline traded {} shares)",
                ours / base,
                naive.traded
            );
        }
    }
}
