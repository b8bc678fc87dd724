//! Mass cancels (per login, per firm, per instrument, the kill switch, end of day) on books built by
//! seeded random streams: each cancels exactly the resting orders of its scope, in the documented order
//! (instrument by instrument in config order, bids then asks, best level first, FIFO), and nothing else;
//! the per-login and per-firm resting counts that let a mass cancel skip or stop its scan stay equal to
//! the books (`check_invariants`), also after a snapshot and restore.

use bourse_book::workload::{Mix, Workload, WorkloadParams, demo_firm, demo_symbol};
use bourse_book::{Command, Engine, Event, MassCancelScope, Side};
use bourse_protocol::reason::CancelReason;

/// (order ref, login, firm index) of every resting order, in mass-cancel order.
fn resting_in_cancel_order(engine: &Engine, instruments: usize) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    for i in 0..instruments {
        for side in [Side::Buy, Side::Sell] {
            for (order_ref, _, _, login, _) in engine.orders_in_priority(&demo_symbol(i), side) {
                out.push((order_ref, login));
            }
        }
    }
    out
}

fn canceled_refs(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Canceled(c) => Some(c.order_ref),
            _ => None,
        })
        .collect()
}

/// A book after `commands` commands of the full mix (every login has orders resting on some instruments).
fn built(seed: u64, commands: usize) -> (Engine, WorkloadParams, u64) {
    let mut params = WorkloadParams::new(seed, Mix::FULL);
    params.instruments = 3;
    params.logins = 12;
    let mut engine = Engine::new(params.config_for(commands)).unwrap();
    let mut events = Vec::new();
    let mut now = 0;
    for (now_ns, command) in Workload::new(params).take(commands) {
        events.clear();
        engine.apply(now_ns, &command, &mut events);
        now = now_ns;
    }
    engine.check_invariants().unwrap();
    assert!(engine.order_count() > 100, "seed {seed}: a book worth canceling");
    (engine, params, now)
}

#[test]
fn a_login_mass_cancel_takes_exactly_its_orders_in_book_order() {
    for seed in 1..=6 {
        let (mut engine, params, mut now) = built(seed, 3_000);
        // Every login in turn, plus one that does not exist (no events), and a login twice (the second
        // time it has nothing left: no events).
        let logins: Vec<u32> = (1..=params.logins).chain([params.logins + 7, 3]).collect();
        for login in logins {
            let before = resting_in_cancel_order(&engine, params.instruments);
            let expected: Vec<u64> = before
                .iter()
                .filter(|(_, l)| *l == login)
                .map(|(r, _)| *r)
                .collect();
            let mut events = Vec::new();
            now += 1_000;
            engine.apply(
                now,
                &Command::MassCancel {
                    scope: MassCancelScope::Login(login),
                    reason: CancelReason::UserRequested,
                },
                &mut events,
            );
            assert_eq!(canceled_refs(&events), expected, "seed {seed}, login {login}");
            assert_eq!(events.len(), expected.len(), "only Canceled events");
            let after = resting_in_cancel_order(&engine, params.instruments);
            let kept: Vec<(u64, u32)> = before.into_iter().filter(|(_, l)| *l != login).collect();
            assert_eq!(
                after, kept,
                "seed {seed}, login {login}: the others' orders stay, in order"
            );
            engine.check_invariants().unwrap();
        }
        assert_eq!(
            engine.order_count(),
            0,
            "seed {seed}: every login's orders were canceled"
        );
    }
}

#[test]
fn firm_instrument_kill_switch_and_end_of_day_cancel_their_scope_in_order() {
    for seed in 11..=14 {
        let (mut engine, params, mut now) = built(seed, 3_000);
        let mut step = |engine: &mut Engine, command: Command, keep: &dyn Fn(&Engine) -> Vec<u64>| {
            let before = resting_in_cancel_order(engine, params.instruments);
            let doomed = keep(engine);
            let mut events = Vec::new();
            now += 1_000;
            engine.apply(now, &command, &mut events);
            assert_eq!(canceled_refs(&events), doomed, "seed {seed}: {command:?}");
            let after: Vec<u64> = resting_in_cancel_order(engine, params.instruments)
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            let kept: Vec<u64> = before
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| !doomed.contains(r))
                .collect();
            assert_eq!(after, kept, "seed {seed}: {command:?}");
            engine.check_invariants().unwrap();
        };
        // A firm's resting orders, as its mass cancel on a copy of the engine finds them (login n may trade
        // for firms F<n> and F<n+1>, so a firm's orders come from two logins). The test checks that they
        // come in book order, that the real cancel takes the same, and that a second one takes nothing.
        let firm_orders = |engine: &Engine, firm: u32| -> Vec<u64> {
            let mut probe = engine_clone(engine);
            let mut events = Vec::new();
            probe.apply(
                u64::MAX / 2,
                &Command::MassCancel {
                    scope: MassCancelScope::Firm(demo_firm(firm)),
                    reason: CancelReason::UserRequested,
                },
                &mut events,
            );
            canceled_refs(&events)
        };
        // The instrument cancel: exactly SYM1's orders, bids then asks.
        step(
            &mut engine,
            Command::MassCancel {
                scope: MassCancelScope::Instrument(demo_symbol(1)),
                reason: CancelReason::UserRequested,
            },
            &|e: &Engine| {
                [Side::Buy, Side::Sell]
                    .into_iter()
                    .flat_map(|s| e.orders_in_priority(&demo_symbol(1), s))
                    .map(|o| o.0)
                    .collect()
            },
        );
        // A firm's cancel takes a subset of the book in book order; the same firm again takes nothing.
        let f3 = firm_orders(&engine, 3);
        let all: Vec<u64> = resting_in_cancel_order(&engine, params.instruments)
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        let in_order: Vec<u64> = all.iter().copied().filter(|r| f3.contains(r)).collect();
        assert_eq!(f3, in_order, "seed {seed}: the firm's cancels follow book order");
        let f3_again = f3.clone();
        step(
            &mut engine,
            Command::MassCancel {
                scope: MassCancelScope::Firm(demo_firm(3)),
                reason: CancelReason::UserRequested,
            },
            &move |_| f3_again.clone(),
        );
        assert!(firm_orders(&engine, 3).is_empty());
        // The kill switch of firm F5: the same orders as its mass cancel would take.
        let f5 = firm_orders(&engine, 5);
        step(
            &mut engine,
            Command::KillSwitch {
                firm: demo_firm(5),
                on: true,
            },
            &move |_| f5.clone(),
        );
        // End of day: everything left, in book order.
        step(&mut engine, Command::EndOfDay, &|e: &Engine| {
            resting_in_cancel_order(e, params.instruments)
                .into_iter()
                .map(|(r, _)| r)
                .collect()
        });
        assert_eq!(engine.order_count(), 0);
    }
}

/// An independent copy through a snapshot (the engine is not `Clone`).
fn engine_clone(engine: &Engine) -> Engine {
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes);
    Engine::restore(engine.config().clone(), &bytes).unwrap()
}

#[test]
fn resting_counts_survive_a_restore_and_keep_skipping_right() {
    let (engine, params, now) = built(21, 4_000);
    let mut restored = engine_clone(&engine);
    restored.check_invariants().unwrap();
    let mut original = engine;
    // The same login cancels on both: the same events.
    for login in 1..=params.logins {
        let command = Command::MassCancel {
            scope: MassCancelScope::Login(login),
            reason: CancelReason::UserRequested,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        original.apply(now + u64::from(login), &command, &mut a);
        restored.apply(now + u64::from(login), &command, &mut b);
        assert_eq!(a, b, "login {login}");
        restored.check_invariants().unwrap();
    }
    assert_eq!(original.state_hash(), restored.state_hash());
}
