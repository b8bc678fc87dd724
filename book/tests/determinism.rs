//! Determinism: same stream twice = byte-identical events and equal state hashes; snapshot at a point
//! plus replay of the rest = a straight run; records round-trip; malformed bytes are typed errors.

use bourse_book::record::{self, COMMAND_SIZE_MAX, DecodeError, EVENT_SIZE_MAX};
use bourse_book::workload::{Mix, SplitMix64, Workload, WorkloadParams};
use bourse_book::{Command, Engine, Event};

fn commands(seed: u64, n: usize) -> Vec<(u64, Command)> {
    let mut stream: Vec<(u64, Command)> = Workload::new(WorkloadParams::new(seed, Mix::FULL))
        .take(n)
        .collect();
    // Sprinkle the admin commands the workload does not generate.
    let mut rng = SplitMix64(seed ^ 0xA5A5);
    for i in (0..stream.len()).step_by(997) {
        let now = stream[i].0;
        let symbol = bourse_book::workload::demo_symbol(rng.below(2) as usize);
        let extra = match rng.below(6) {
            0 => Command::Halt { symbol },
            1 => Command::Resume { symbol },
            2 => {
                // The parties as a journal lookup would give them; the engine only echoes them.
                let mut party = |side| bourse_book::event::Party {
                    login: 1 + rng.below(8) as u32,
                    token: bourse_book::workload::token(rng.below(1_000)),
                    order_ref: rng.below(1_000),
                    firm: bourse_book::workload::demo_firm(1 + rng.below(8) as u32),
                    side,
                    remaining: rng.below(500) as u32,
                };
                let (resting, taking) = (party(b'S'), party(b'B'));
                Command::BustTrade {
                    match_number: 1 + rng.below(200),
                    symbol,
                    resting,
                    taking,
                }
            }
            3 => Workload::disconnect(1 + rng.below(8) as u32),
            4 => Command::KillSwitch {
                firm: bourse_book::workload::demo_firm(1 + rng.below(8) as u32),
                on: rng.below(2) == 0,
            },
            _ => Command::ExpireDue,
        };
        stream[i] = (now, extra);
    }
    stream
}

fn encode_events(events: &[Event], out: &mut Vec<u8>) {
    let mut buf = [0u8; EVENT_SIZE_MAX];
    for e in events {
        let n = e.encode(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
}

fn run(stream: &[(u64, Command)]) -> (Vec<u8>, u64) {
    let mut engine = Engine::new(WorkloadParams::new(0, Mix::FULL).config()).unwrap();
    let mut events = Vec::new();
    let mut bytes = Vec::new();
    for (now, c) in stream {
        events.clear();
        engine.apply(*now, c, &mut events);
        encode_events(&events, &mut bytes);
    }
    (bytes, engine.state_hash())
}

#[test]
fn same_stream_twice_gives_identical_bytes_and_hash() {
    for seed in [1, 2, 3] {
        let stream = commands(seed, 30_000);
        let (a, ha) = run(&stream);
        let (b, hb) = run(&stream);
        assert!(!a.is_empty());
        assert_eq!(a, b, "seed {seed}");
        assert_eq!(ha, hb, "seed {seed}");
    }
}

#[test]
fn different_streams_give_different_hashes() {
    let (_, a) = run(&commands(1, 5_000));
    let (_, b) = run(&commands(2, 5_000));
    assert_ne!(a, b);
}

#[test]
fn snapshot_plus_replay_equals_straight_run() {
    let config = WorkloadParams::new(0, Mix::FULL).config();
    for seed in [11u64, 12, 13, 14] {
        let stream = commands(seed, 20_000);
        let cut = 1 + SplitMix64(seed).below(stream.len() as u64 - 1) as usize;
        let (straight_events, straight_hash) = run(&stream);

        let mut engine = Engine::new(config.clone()).unwrap();
        let mut events = Vec::new();
        let mut bytes = Vec::new();
        for (now, c) in &stream[..cut] {
            events.clear();
            engine.apply(*now, c, &mut events);
            encode_events(&events, &mut bytes);
        }
        let mut snapshot = Vec::new();
        engine.snapshot(&mut snapshot);
        let mut restored = Engine::restore(config.clone(), &snapshot).unwrap();
        assert_eq!(
            restored.state_hash(),
            engine.state_hash(),
            "seed {seed}: restore changes state"
        );
        drop(engine);
        for (now, c) in &stream[cut..] {
            events.clear();
            restored.apply(*now, c, &mut events);
            encode_events(&events, &mut bytes);
        }
        assert_eq!(restored.state_hash(), straight_hash, "seed {seed} cut {cut}");
        assert!(bytes == straight_events, "seed {seed} cut {cut}: events differ");
    }
}

#[test]
fn snapshot_restore_rejects_bad_bytes() {
    let mut params = WorkloadParams::new(0, Mix::FULL);
    (params.orders_max, params.tokens_max) = (1 << 12, 1 << 12); // small tables: many restores below
    let config = params.config();
    let mut engine = Engine::new(config.clone()).unwrap();
    let mut events = Vec::new();
    for (now, c) in commands(5, 3_000) {
        engine.apply(now, &c, &mut events);
    }
    let mut snapshot = Vec::new();
    engine.snapshot(&mut snapshot);
    // Every truncation is an error, never a panic.
    for cut in (0..snapshot.len()).step_by(97) {
        assert!(
            Engine::restore(config.clone(), &snapshot[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let mut longer = snapshot.clone();
    longer.push(0);
    assert!(Engine::restore(config.clone(), &longer).is_err());
    let mut other = config.clone();
    other.orders_max += 1;
    assert!(matches!(
        Engine::restore(other, &snapshot),
        Err(bourse_book::RestoreError::Config { .. })
    ));
    // Flipped bytes: an error or (if the flip lands in a harmless field) a valid engine; never a panic.
    let mut rng = SplitMix64(9);
    for _ in 0..100 {
        let mut bad = snapshot.clone();
        let i = rng.below(bad.len() as u64) as usize;
        bad[i] ^= 1 << rng.below(8);
        let _ = Engine::restore(config.clone(), &bad);
    }
}

/// The variant name at the start of a `Debug` form (`Enter(..)`, `Cancel { .. }`, `ExpireDue`).
fn variant(debug: &str) -> &str {
    debug.split(['(', ' ', '{']).next().unwrap_or(debug)
}

#[test]
fn records_round_trip_and_reject_malformed_bytes() {
    let stream = commands(21, 20_000);
    let mut engine = Engine::new(WorkloadParams::new(0, Mix::FULL).config()).unwrap();
    let mut events = Vec::new();
    let mut buf = [0u8; EVENT_SIZE_MAX];
    let mut kinds = std::collections::BTreeSet::new();
    for (now, c) in &stream {
        let mut cbuf = [0u8; COMMAND_SIZE_MAX];
        let n = c.encode(&mut cbuf).unwrap();
        assert_eq!(Command::decode(&cbuf[..n]).unwrap(), (*c, n));
        assert_eq!(
            record::kind_name(cbuf[1]),
            Some(variant(&format!("{c:?}"))),
            "{c:?}"
        );
        for cut in 0..n {
            assert_eq!(Command::decode(&cbuf[..cut]), Err(DecodeError::Truncated));
        }
        assert!(c.encode(&mut cbuf[..n - 1]).is_err());
        events.clear();
        engine.apply(*now, c, &mut events);
        for e in &events {
            let n = e.encode(&mut buf).unwrap();
            kinds.insert(buf[1]);
            assert_eq!(
                record::kind_name(buf[1]),
                Some(variant(&format!("{e:?}"))),
                "{e:?}"
            );
            assert_eq!(Event::decode(&buf[..n]).unwrap(), (*e, n));
            assert_eq!(Event::decode(&buf[..n - 1]), Err(DecodeError::Truncated));
        }
    }
    // The stream exercised most event kinds, the Cancel Reject of a refused Modify among them.
    assert!(kinds.len() >= 9, "event kinds seen: {kinds:x?}");
    assert!(
        kinds.contains(&0x8D),
        "no CancelRejected in the stream: {kinds:x?}"
    );
    // CancelRejected (kind 0x8D), byte by byte as the layout table in `record` gives it.
    let e = Event::CancelRejected {
        timestamp_ns: 0x0102_0304,
        login: 7,
        token: bourse_protocol::fields::Token::new("T1").unwrap(),
        order_ref: 9,
    };
    let n = e.encode(&mut buf).unwrap();
    assert_eq!(record::kind_name(0x8D), Some("CancelRejected"));
    let mut expected = vec![2u8, 0x8D];
    expected.extend(0x0102_0304u64.to_le_bytes());
    expected.extend(7u32.to_le_bytes());
    expected.extend(b"T1            ");
    expected.extend(9u64.to_le_bytes());
    assert_eq!(&buf[..n], &expected[..]);
    assert_eq!(Event::decode(&buf[..n]).unwrap(), (e, n));
    // Version 1 records (before Capacity and Cross Type joined Enter, Accepted and Replaced) are refused.
    assert_eq!(Command::decode(&[1, 1]), Err(DecodeError::Version(1)));
    assert_eq!(Command::decode(&[2, 0x7F]), Err(DecodeError::Kind(0x7F)));
    assert_eq!(Event::decode(&[2, 0x01]), Err(DecodeError::Kind(0x01)));
    // Kind bytes no version has used have no name.
    for unused in [0x00, 0x0F, 0x7F, 0x80, 0x8E, 0xFF] {
        assert_eq!(record::kind_name(unused), None, "{unused:#04x}");
    }
    // The retired bust by match number alone (kind 0x0C) no longer decodes: nothing could apply it.
    let mut retired = vec![2u8, 0x0C];
    retired.extend(7u64.to_le_bytes());
    assert_eq!(Command::decode(&retired), Err(DecodeError::Kind(0x0C)));
    assert_eq!(record::kind_name(0x0C), Some("BustTrade (retired)"));
    // An Enter ends with its Capacity and Cross Type letters (version 2).
    let enter = Command::Enter(bourse_book::EnterOrder {
        login: 1,
        token: bourse_protocol::fields::Token::new("E1").unwrap(),
        side: b'B',
        shares: 100,
        symbol: bourse_protocol::fields::Symbol::new("ACME").unwrap(),
        price: 100_000,
        tif_s: 99_999,
        firm: bourse_protocol::fields::Firm::BLANK,
        display: b'Y',
        min_qty: 0,
        capacity: b'P',
        cross_type: b'C',
    });
    let n = enter.encode(&mut buf).unwrap();
    assert_eq!((n, &buf[..2], &buf[n - 2..n]), (52, &[2u8, 0x01][..], &b"PC"[..]));
    assert_eq!(Command::decode(&buf[..n]).unwrap(), (enter, n));
    // KillSwitch with a bool byte of 2.
    assert_eq!(
        Command::decode(&[2, 0x06, b'F', b'1', b' ', b' ', 2]),
        Err(DecodeError::Value("on"))
    );
    // Random bytes never panic.
    let mut rng = SplitMix64(3);
    for _ in 0..20_000 {
        let len = rng.below(100) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| if i == 0 { 1 } else { rng.next_u64() as u8 })
            .collect();
        let _ = Command::decode(&bytes);
        let _ = Event::decode(&bytes);
    }
}
