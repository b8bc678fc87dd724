//! Invariants after every command of seeded random streams (the full command mix).

use bourse_book::workload::{Mix, Workload, WorkloadParams};
use bourse_book::{Engine, Event};

fn run_checked(seed: u64, mix: Mix, commands: usize) {
    let params = WorkloadParams::new(seed, mix);
    let mut engine = Engine::new(params.config()).unwrap();
    let mut events = Vec::with_capacity(4096);
    let (mut last_ref, mut last_match) = (0u64, 0u64);
    for (i, (now_ns, command)) in Workload::new(params).take(commands).enumerate() {
        events.clear();
        engine.apply(now_ns, &command, &mut events);
        if let Err(e) = engine.check_invariants() {
            panic!("seed {seed}: after {command:?}: {e}");
        }
        if i % 1_000 == 999
            && let Err(e) = engine.check_indexes()
        {
            panic!("seed {seed}: after {command:?}: {e}");
        }
        for e in &events {
            let new_ref = match e {
                Event::Accepted(a) => Some(a.order_ref),
                Event::Replaced(r) => Some(r.order_ref),
                _ => None,
            };
            if let Some(r) = new_ref {
                assert!(r > last_ref, "seed {seed}: order ref {r} not above {last_ref}");
                last_ref = r;
            }
            if let Event::Executed(x) = e {
                assert!(
                    x.match_number > last_match,
                    "seed {seed}: match numbers not increasing"
                );
                last_match = x.match_number;
                assert!(x.shares > 0);
            }
            assert_eq!(e.timestamp_ns(), now_ns);
        }
    }
}

#[test]
fn invariants_hold_on_the_full_mix() {
    for seed in 1..=8 {
        run_checked(seed, Mix::FULL, 20_000);
    }
}

#[test]
fn invariants_hold_on_the_common_mix() {
    for seed in 100..=103 {
        run_checked(seed, Mix::COMMON, 20_000);
    }
}
