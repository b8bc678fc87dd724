//! Criterion bench of mass cancels with many logins: what cancel-on-disconnect costs when 10,000 sessions
//! end at once, beside the unavoidable work measured in the same run (results and how to read them:
//! `docs/PERFORMANCE.md`, "Mass cancel with 10,000 logins").
//!
//! Topology: one thread, everything in memory. The book: [`INSTRUMENTS`] demo instruments, [`LOGINS`]
//! logins of one firm (as `bourse load` configures `boursed`), of which every [`RESTING_EVERY`]-th has
//! [`ORDERS_PER_RESTING_LOGIN`] day orders resting, spread over the instruments and both sides, at prices
//! that never cross. Each iteration starts from a copy of that engine (made by snapshot and restore,
//! outside the timing) and applies:
//! - `login_each` (the subject): one `MassCancel { Login }` per login, every login in turn (cancel-on-
//!   disconnect of every session);
//! - `instrument_each` (the baseline): one `MassCancel { Instrument }` per instrument: the same orders
//!   canceled, the same events built, with no search for whose they are.
//!
//! The ratio `login_each / instrument_each` is what finding each login's orders costs on top of canceling
//! them. Before the per-login resting counts, each login's cancel walked every resting order of every
//! instrument, so the subject grew with logins × resting orders.

use std::hint::black_box;

use bourse_book::workload::{demo_config_sized, demo_symbol};
use bourse_book::{Command, Engine, EnterOrder, Event, FirmConfig, LoginConfig, MassCancelScope, StpMode};
use bourse_protocol::fields::{Alpha, Firm, Token};
use bourse_protocol::reason::CancelReason;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Instruments of the book.
const INSTRUMENTS: usize = 4;
/// Logins configured (all of one firm).
const LOGINS: u32 = 10_000;
/// One login in this many has orders resting.
const RESTING_EVERY: u32 = 5;
/// Day orders each such login has resting.
const ORDERS_PER_RESTING_LOGIN: u32 = 10;

const FIRM: Firm = Alpha(*b"LOAD");

fn token(n: u32) -> Token {
    let mut t = *b"B             ";
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    t[1..1 + digits.len()].copy_from_slice(digits);
    Alpha(t)
}

/// The engine with its resting orders, and the number of them.
fn book() -> (Engine, usize) {
    let orders = (LOGINS / RESTING_EVERY) * ORDERS_PER_RESTING_LOGIN;
    let mut config = demo_config_sized(INSTRUMENTS, 1, orders.next_power_of_two(), 1 << 18);
    config.firms = vec![FirmConfig {
        firm: FIRM,
        open_orders_max: orders,
        stp: StpMode::None,
    }];
    config.logins = (1..=LOGINS)
        .map(|login| LoginConfig {
            login,
            firms: vec![FIRM],
            default_firm: FIRM,
        })
        .collect();
    let reference = config.instruments[0].reference_price;
    let tick = config.instruments[0].tick_size;
    let mut engine = Engine::new(config).expect("bench config");
    let mut events: Vec<Event> = Vec::new();
    let mut n = 0u32;
    for login in (1..=LOGINS).filter(|l| l.is_multiple_of(RESTING_EVERY)) {
        for k in 0..ORDERS_PER_RESTING_LOGIN {
            n += 1;
            let buy = n.is_multiple_of(2);
            // 1..=20 ticks away from the reference, buys below and sells above: never crossing.
            let away = (n % 20 + 1) * tick;
            let price = if buy { reference - away } else { reference + away };
            let enter = EnterOrder {
                login,
                token: token(k + 1),
                side: if buy { b'B' } else { b'S' },
                shares: 100,
                symbol: demo_symbol((n as usize / 2) % INSTRUMENTS),
                price,
                tif_s: 99_999,
                firm: FIRM,
                display: b'Y',
                min_qty: 0,
                capacity: b'A',
                cross_type: b'N',
            };
            events.clear();
            engine.apply(u64::from(n), &Command::Enter(enter), &mut events);
            assert!(
                matches!(events.as_slice(), [Event::Accepted(_), Event::Added(_)]),
                "bench order {n} rests: {events:?}"
            );
        }
    }
    let resting = engine.order_count();
    assert_eq!(resting, n as usize);
    (engine, resting)
}

fn copy(engine: &Engine, snapshot: &[u8]) -> Engine {
    Engine::restore(engine.config().clone(), snapshot).expect("restore")
}

fn mass_cancel(c: &mut Criterion) {
    let (engine, resting) = book();
    let mut snapshot = Vec::new();
    engine.snapshot(&mut snapshot);
    let mut group = c.benchmark_group(format!("mass_cancel_{LOGINS}_logins_{resting}_resting"));
    group.sample_size(10);
    let mut events: Vec<Event> = Vec::with_capacity(resting + 16);
    group.bench_function("login_each", |b| {
        b.iter_batched(
            || copy(&engine, &snapshot),
            |mut e| {
                for login in 1..=LOGINS {
                    events.clear();
                    e.apply(
                        1 << 40,
                        &Command::MassCancel {
                            scope: MassCancelScope::Login(login),
                            reason: CancelReason::UserRequested,
                        },
                        &mut events,
                    );
                    black_box(&events);
                }
                assert_eq!(e.order_count(), 0);
                e
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("instrument_each", |b| {
        b.iter_batched(
            || copy(&engine, &snapshot),
            |mut e| {
                for i in 0..INSTRUMENTS {
                    events.clear();
                    e.apply(
                        1 << 40,
                        &Command::MassCancel {
                            scope: MassCancelScope::Instrument(demo_symbol(i)),
                            reason: CancelReason::UserRequested,
                        },
                        &mut events,
                    );
                    black_box(&events);
                }
                assert_eq!(e.order_count(), 0);
                e
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, mass_cancel);
criterion_main!(benches);
