//! The day's token set is fast for increasing tokens but must be correct for any order: the full mix
//! with every token scrambled (its characters reversed, so consecutive tokens arrive far out of order
//! and mostly take the exceptions path) gives the same sequence of events as the ordered run, and a
//! snapshot at a random point plus replay of the rest equals a straight run.

use bourse_book::workload::{Mix, SplitMix64, Workload, WorkloadParams};
use bourse_book::{Command, Engine, Event};
use bourse_protocol::fields::{Alpha, Token};

/// Reverses the token's characters (trailing spaces stay padding): a bijection that destroys order.
fn scramble(t: Token) -> Token {
    let len = t.0.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let mut b = t.0;
    b[..len].reverse();
    Alpha(b)
}

fn scrambled(c: &Command) -> Command {
    let mut c = *c;
    match &mut c {
        Command::Enter(o) => o.token = scramble(o.token),
        Command::Cancel { token, .. } | Command::Modify { token, .. } => *token = scramble(*token),
        Command::Replace(r) => {
            r.existing_token = scramble(r.existing_token);
            r.replacement_token = scramble(r.replacement_token);
        }
        _ => {}
    }
    c
}

fn run(engine: &mut Engine, stream: &[(u64, Command)], kinds: &mut Vec<std::mem::Discriminant<Event>>) {
    let mut events = Vec::new();
    for (now, c) in stream {
        events.clear();
        engine.apply(*now, c, &mut events);
        kinds.extend(events.iter().map(std::mem::discriminant));
    }
}

#[test]
fn scrambled_tokens_give_the_same_events_and_survive_a_snapshot() {
    let config = WorkloadParams::new(0, Mix::FULL).config();
    for seed in [21u64, 22] {
        let ordered: Vec<(u64, Command)> = Workload::new(WorkloadParams::new(seed, Mix::FULL))
            .take(20_000)
            .collect();
        // Resends of earlier tokens, so duplicates of out-of-order tokens are exercised too.
        let mut rng = SplitMix64(seed);
        let mut stream = ordered.clone();
        for i in (0..stream.len()).step_by(7) {
            let j = rng.below(i as u64 + 1) as usize;
            if let Command::Enter(_) = stream[j].1 {
                stream[i] = (stream[i].0, stream[j].1);
            }
        }
        let shuffled: Vec<(u64, Command)> = stream.iter().map(|(t, c)| (*t, scrambled(c))).collect();

        let (mut a, mut b) = (Vec::new(), Vec::new());
        run(&mut Engine::new(config.clone()).unwrap(), &stream, &mut a);
        let mut straight = Engine::new(config.clone()).unwrap();
        run(&mut straight, &shuffled, &mut b);
        assert_eq!(a, b, "seed {seed}: scrambled tokens changed the events");

        let cut = 1 + rng.below(shuffled.len() as u64 - 1) as usize;
        let mut engine = Engine::new(config.clone()).unwrap();
        let mut kinds = Vec::new();
        run(&mut engine, &shuffled[..cut], &mut kinds);
        let mut snapshot = Vec::new();
        engine.snapshot(&mut snapshot);
        let mut restored = Engine::restore(config.clone(), &snapshot).unwrap();
        assert_eq!(
            restored.state_hash(),
            engine.state_hash(),
            "seed {seed}: restore changes state"
        );
        run(&mut restored, &shuffled[cut..], &mut kinds);
        assert_eq!(kinds, b, "seed {seed} cut {cut}: events differ after restore");
        assert_eq!(
            restored.state_hash(),
            straight.state_hash(),
            "seed {seed} cut {cut}"
        );
    }
}
