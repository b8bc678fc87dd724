//! MoldUDP64 gap tracker: unit cases, and a simulated A/B feed with losses, duplicates, reordering and a
//! re-request server that answers partly and loses answers. Whatever happens, the receiver delivers each
//! sequence number exactly once, in order, with the right bytes; its reported gap always equals the missing
//! range computed independently; and every request asks for exactly the start of that range.

use std::collections::BTreeMap;

use bourse_protocol::moldudp64::*;
use proptest::prelude::*;

fn session() -> Session {
    Session::new("20261126A").unwrap()
}

/// Packs `messages` (numbered from `first`) into packets of at most `payload` bytes.
fn packets(first: u64, payload: usize, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut builder = PacketBuilder::new(session(), first, payload);
    let mut out = Vec::new();
    for m in messages {
        match builder.push(m) {
            Ok(()) => {}
            Err(PushError::Full) => {
                out.push(builder.flush().unwrap().to_vec());
                builder.push(m).unwrap();
            }
            Err(e) => panic!("test messages must fit: {e}"),
        }
    }
    out.extend(builder.flush().map(<[u8]>::to_vec));
    out
}

/// Message `seq`'s bytes in these tests: 0 to [`MESSAGE_TEST_LEN_MAX`] bytes.
fn message(seq: u64) -> Vec<u8> {
    let len = (seq * 7 % (MESSAGE_TEST_LEN_MAX + 1)) as usize;
    (0..len).map(|i| (seq as u8).wrapping_add(i as u8)).collect()
}

const MESSAGE_TEST_LEN_MAX: u64 = 22;
/// The smallest payload limit that fits any test message.
const PAYLOAD_TEST_MIN: usize = HEADER_LEN + 2 + MESSAGE_TEST_LEN_MAX as usize;

fn messages(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(message).collect()
}

fn deliver(tracker: &mut GapTracker, bytes: &[u8], now_ns: u64) -> Vec<u64> {
    let packet = Packet::decode(bytes).unwrap();
    tracker
        .on_packet(&packet, now_ns)
        .map(|(seq, m)| {
            assert_eq!(m, message(seq).as_slice());
            seq
        })
        .collect()
}

fn config() -> GapTrackerConfig {
    GapTrackerConfig {
        request_count_max: MESSAGE_COUNT_MAX,
        gap_wait_ns: 1_000,
        request_timeout_ns: 50_000,
    }
}

#[test]
fn in_order_delivery_and_the_other_feed_is_skipped() {
    let p = packets(1, 60, &messages(1..10));
    assert!(p.len() >= 3);
    let mut t = GapTracker::new(config());
    let mut all = Vec::new();
    for bytes in &p {
        all.extend(deliver(&mut t, bytes, 0));
        // B feed's copy of the same packet.
        assert!(deliver(&mut t, bytes, 0).is_empty());
    }
    assert_eq!(all, (1..10).collect::<Vec<_>>());
    assert_eq!(t.next_expected(), 10);
    assert_eq!(t.state(), TrackerState::Synchronized);
    assert_eq!(t.counters().delivered, 9);
    assert_eq!(t.counters().duplicates, 9);
    assert_eq!(t.poll_request(1_000_000), None);
}

#[test]
fn a_gap_is_requested_after_the_wait_and_again_after_the_timeout() {
    let msgs = messages(1..31);
    let p = packets(1, 100, &msgs);
    assert!(p.len() >= 3);
    let end = |b: &Vec<u8>| Packet::decode(b).unwrap().next_sequence_number();
    let mut t = GapTracker::new(config());
    deliver(&mut t, &p[0], 0);
    let after_first = end(&p[0]);
    // p[1] is lost; p[2] arrives at t=10: not delivered, gap known.
    assert!(deliver(&mut t, &p[2], 10).is_empty());
    assert_eq!(t.gap(), Some(after_first..end(&p[2])));
    assert_eq!(t.state(), TrackerState::Gap);
    assert_eq!(t.counters().packets_ahead, 1);
    // Not before the wait: the other feed may still fill it.
    assert_eq!(t.poll_request(10 + 999), None);
    let expected = Request {
        session: session(),
        sequence_number: after_first,
        requested_count: u16::try_from(end(&p[2]) - after_first).unwrap(),
    };
    assert_eq!(t.poll_request(10 + 1_000), Some(expected));
    // Outstanding: not again until the timeout.
    assert_eq!(t.poll_request(10 + 1_000 + 49_999), None);
    assert_eq!(t.poll_request(10 + 1_000 + 50_000), Some(expected));
    assert_eq!(t.counters().requests, 2);
    // The answer: the requested messages, from the server, in one packet.
    let answer = packets(after_first, 1400, &messages(expected.range()));
    assert_eq!(answer.len(), 1);
    let got = deliver(&mut t, &answer[0], 60_000);
    assert_eq!(got, expected.range().collect::<Vec<_>>());
    assert_eq!(t.gap(), None);
    assert_eq!(t.state(), TrackerState::Synchronized);
    assert_eq!(t.poll_request(1_000_000), None);
}

#[test]
fn the_other_feed_fills_a_gap_before_any_request() {
    let p = packets(1, 60, &messages(1..20));
    let mut t = GapTracker::new(config());
    deliver(&mut t, &p[0], 0);
    assert!(deliver(&mut t, &p[2], 0).is_empty());
    // B brings p[1] and p[2] within the wait.
    assert!(!deliver(&mut t, &p[1], 500).is_empty());
    assert!(!deliver(&mut t, &p[2], 600).is_empty());
    assert_eq!(t.gap(), None);
    assert_eq!(t.poll_request(5_000), None);
    assert_eq!(t.counters().requests, 0);
}

#[test]
fn heartbeat_reveals_a_gap_and_requests_are_capped() {
    let mut t = GapTracker::new(GapTrackerConfig {
        request_count_max: 10,
        ..config()
    });
    let p = packets(1, 1400, &messages(1..5));
    assert_eq!(deliver(&mut t, &p[0], 0), vec![1, 2, 3, 4]);
    // Heartbeat says the next number is 30: 5..30 were lost.
    let hb = PacketHeader::heartbeat(session(), 30).to_bytes();
    assert!(deliver(&mut t, &hb, 100).is_empty());
    assert_eq!(t.gap(), Some(5..30));
    let r = t.poll_request(2_000).unwrap();
    assert_eq!((r.sequence_number, r.requested_count), (5, 10));
    // A partial answer (5..10): the rest is asked for once the answer has been quiet for `gap_wait_ns`.
    let part = packets(5, 1400, &messages(5..10));
    assert_eq!(deliver(&mut t, &part[0], 2_100), (5..10).collect::<Vec<_>>());
    assert_eq!(t.poll_request(2_200), None);
    assert_eq!(t.poll_request(2_100 + 999), None);
    let r = t.poll_request(2_100 + 1_000).unwrap();
    assert_eq!((r.sequence_number, r.requested_count), (10, 10));
    // A full answer: the next request (the rest, capped) is due at once.
    let full = packets(10, 1400, &messages(10..20));
    assert_eq!(deliver(&mut t, &full[0], 3_200), (10..20).collect::<Vec<_>>());
    let r = t.poll_request(3_200).unwrap();
    assert_eq!((r.sequence_number, r.requested_count), (20, 10));
    // No answer at all: asked again after the timeout only.
    assert_eq!(t.poll_request(3_200 + 49_999), None);
    let r = t.poll_request(3_200 + 50_000).unwrap();
    assert_eq!((r.sequence_number, r.requested_count), (20, 10));
}

#[test]
fn end_of_session_ends_once_caught_up() {
    let mut t = GapTracker::new(config());
    let p = packets(1, 1400, &messages(1..4));
    deliver(&mut t, &p[0], 0);
    let eos = PacketHeader::end_of_session(session(), 6).to_bytes();
    deliver(&mut t, &eos, 0);
    assert_eq!(t.state(), TrackerState::Gap, "4 and 5 are still missing");
    let rest = packets(4, 1400, &messages(4..6));
    assert_eq!(deliver(&mut t, &rest[0], 10), vec![4, 5]);
    assert_eq!(t.state(), TrackerState::Ended);
    let eos_at_end = PacketHeader::end_of_session(session(), 4).to_bytes();
    let mut t2 = GapTracker::new(config());
    deliver(&mut t2, &p[0], 0);
    deliver(&mut t2, &eos_at_end, 0);
    assert_eq!(t2.state(), TrackerState::Ended);
}

#[test]
fn other_sessions_are_ignored() {
    let mut t = GapTracker::starting_at(config(), Some(session()), 1);
    let mut other = PacketBuilder::new(Session::new("20261127A").unwrap(), 1, 1400);
    other.push(b"x").unwrap();
    let bytes = other.flush().unwrap().to_vec();
    assert!(t.on_packet(&Packet::decode(&bytes).unwrap(), 0).next().is_none());
    assert_eq!(t.counters().wrong_session, 1);
    assert_eq!(t.next_expected(), 1);
    assert_eq!(t.gap(), None);
}

#[test]
fn after_a_snapshot_older_messages_are_duplicates() {
    // Snapshot ended at 5: start at 6.
    let mut t = GapTracker::starting_at(config(), None, 6);
    let p = packets(1, 1400, &messages(1..9));
    assert_eq!(deliver(&mut t, &p[0], 0), vec![6, 7, 8]);
    assert_eq!(t.counters().duplicates, 5);
    assert_eq!(t.session(), Some(session()));
}

/// A tiny deterministic generator for the simulation (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    message_total: u64,
    payload: usize,
    loss_percent: u64,
    jitter_ns: u64,
    server_count_max: u64,
    answer_loss_percent: u64,
    request_count_max: u16,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        1u64..400,
        PAYLOAD_TEST_MIN..300,
        0u64..60,
        prop_oneof![Just(0u64), 1u64..5_000],
        1u64..50,
        0u64..40,
        prop_oneof![Just(MESSAGE_COUNT_MAX), 1u16..20],
    )
        .prop_map(
            |(
                seed,
                message_total,
                payload,
                loss_percent,
                jitter_ns,
                server_count_max,
                answer_loss_percent,
                request_count_max,
            )| {
                Scenario {
                    seed: seed | 1,
                    message_total,
                    payload,
                    loss_percent,
                    jitter_ns,
                    server_count_max,
                    answer_loss_percent,
                    request_count_max,
                }
            },
        )
}

/// Runs one scenario to the end and checks every promise on the way.
/// What the simulated network and server did, to show a scenario exercised them.
#[derive(Debug, Default)]
struct SimStats {
    answers_lost: u64,
    answers_partial: u64,
}

fn simulate(s: &Scenario) -> Result<(TrackerCounters, SimStats), TestCaseError> {
    let mut stats = SimStats::default();
    let mut rng = Rng(s.seed);
    let config = GapTrackerConfig {
        request_count_max: s.request_count_max,
        gap_wait_ns: 2_000,
        request_timeout_ns: 20_000,
    };
    let feed = packets(1, s.payload, &messages(1..s.message_total + 1));
    // Arrivals: (time, tie-break) -> packet. Each packet goes on A and B, 1 µs apart, each copy lost or
    // delayed by jitter independently.
    let mut arrivals: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut tie = 0u64;
    let mut schedule = |arrivals: &mut BTreeMap<(u64, u64), Vec<u8>>, at: u64, bytes: Vec<u8>| {
        tie += 1;
        arrivals.insert((at, tie), bytes);
    };
    for (i, bytes) in feed.iter().enumerate() {
        let sent = i as u64 * 1_000;
        for _feed in 0..2 {
            if !rng.percent(s.loss_percent) {
                let jitter = if s.jitter_ns == 0 {
                    0
                } else {
                    rng.below(s.jitter_ns)
                };
                schedule(&mut arrivals, sent + jitter, bytes.clone());
            }
        }
    }
    // End of day: End of Session, reliably (the sender repeats it; one copy is enough here).
    let end = feed.len() as u64 * 1_000 + s.jitter_ns;
    schedule(
        &mut arrivals,
        end,
        PacketHeader::end_of_session(session(), s.message_total + 1)
            .to_bytes()
            .to_vec(),
    );

    let mut tracker = GapTracker::new(config);
    let mut delivered: Vec<u64> = Vec::new();
    let mut announced_end = 1u64;
    let mut now = 0u64;
    let tick_ns = 1_000;
    for _step in 0..200_000 {
        if tracker.state() == TrackerState::Ended {
            break;
        }
        let next_arrival = arrivals.keys().next().map(|&(at, _)| at);
        let timer = (tracker.state() == TrackerState::Gap).then_some(now + tick_ns);
        let at = match (next_arrival, timer) {
            (Some(a), Some(t)) => a.min(t),
            (Some(a), None) => a,
            (None, Some(t)) => t,
            (None, None) => return Err(TestCaseError::fail("nothing left to happen but not ended")),
        };
        now = now.max(at);
        if next_arrival == Some(at) {
            let (_, bytes) = arrivals.pop_first().unwrap();
            let packet = Packet::decode(&bytes).unwrap();
            announced_end = announced_end.max(packet.next_sequence_number());
            for (seq, m) in tracker.on_packet(&packet, now) {
                prop_assert_eq!(seq, delivered.len() as u64 + 1, "exactly once, in order");
                prop_assert_eq!(m.to_vec(), message(seq));
                delivered.push(seq);
            }
        }
        // The reported gap is exactly what is announced and not delivered.
        let model_next = delivered.len() as u64 + 1;
        prop_assert_eq!(tracker.next_expected(), model_next);
        let model_gap = (announced_end > model_next).then_some(model_next..announced_end);
        prop_assert_eq!(tracker.gap(), model_gap.clone());

        if let Some(request) = tracker.poll_request(now) {
            let gap = model_gap.clone().expect("a request only for a gap");
            prop_assert_eq!(request.session, session());
            prop_assert_eq!(request.sequence_number, gap.start, "asks from the first missing");
            let want = (gap.end - gap.start).min(u64::from(s.request_count_max));
            prop_assert_eq!(
                u64::from(request.requested_count),
                want,
                "exactly the gap, capped"
            );
            // The server answers with up to its own cap, maybe lost on the way back.
            let answer_end =
                request.sequence_number + u64::from(request.requested_count).min(s.server_count_max);
            let answer_end = answer_end.min(s.message_total + 1);
            if answer_end < request.range().end {
                stats.answers_partial += 1;
            }
            if rng.percent(s.answer_loss_percent) {
                stats.answers_lost += 1;
            } else {
                for bytes in packets(
                    request.sequence_number,
                    s.payload,
                    &messages(request.sequence_number..answer_end),
                ) {
                    schedule(&mut arrivals, now + 500 + rng.below(1_000), bytes);
                }
            }
        }
    }
    prop_assert_eq!(
        tracker.state(),
        TrackerState::Ended,
        "caught up and ended: {:?}",
        s
    );
    prop_assert_eq!(delivered, (1..=s.message_total).collect::<Vec<_>>());
    prop_assert_eq!(tracker.counters().delivered, s.message_total);
    Ok((*tracker.counters(), stats))
}

#[test]
fn the_simulation_exercises_losses_duplicates_partial_answers_and_timeouts() {
    let s = Scenario {
        seed: 0x9E37_79B9_7F4A_7C15,
        message_total: 399,
        payload: 100,
        loss_percent: 20,
        jitter_ns: 1_500,
        server_count_max: 7,
        answer_loss_percent: 30,
        request_count_max: 12,
    };
    let (counters, stats) = simulate(&s).unwrap();
    assert_eq!(counters.delivered, 399);
    assert!(counters.duplicates > 0, "{counters:?}");
    assert!(counters.packets_ahead > 0, "{counters:?}");
    assert!(counters.requests > 1, "{counters:?}");
    assert!(stats.answers_lost > 0 && stats.answers_partial > 0, "{stats:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn lossy_ab_feed_with_requests_delivers_everything_exactly_once_in_order(s in scenario()) {
        let (counters, _) = simulate(&s)?;
        prop_assert!(counters.delivered == s.message_total);
    }
}

/// An arbitrary (but well-formed) packet: any sequence number, small counts, heartbeats and end of session.
fn adversarial_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![1u64..40, Just(u64::MAX - 3), any::<u64>()],
        prop_oneof![3 => 0u16..6, 1 => Just(END_OF_SESSION_COUNT)],
        any::<bool>(),
    )
        .prop_filter_map("sequence numbers must not wrap", |(seq, count, other_session)| {
            let blocks = if count == END_OF_SESSION_COUNT { 0 } else { count };
            seq.checked_add(u64::from(blocks))?;
            let name = if other_session { "20261127A" } else { "20261126A" };
            let mut bytes = PacketHeader {
                session: Session::new(name).unwrap(),
                sequence_number: seq,
                message_count: count,
            }
            .to_bytes()
            .to_vec();
            for i in 0..blocks {
                bytes.extend_from_slice(&[0, 1, i as u8]);
            }
            Some(bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_packets_never_break_the_invariants(
        packets in prop::collection::vec(adversarial_packet(), 1..60),
        times in prop::collection::vec(0u64..10_000, 60),
    ) {
        let mut tracker = GapTracker::starting_at(config(), Some(session()), 1);
        let mut now = 0;
        for (bytes, dt) in packets.iter().zip(&times) {
            now += dt;
            let before = tracker.next_expected();
            let packet = Packet::decode(bytes).unwrap();
            let mut expect = before;
            for (seq, _) in tracker.on_packet(&packet, now) {
                prop_assert_eq!(seq, expect, "in order, from the next expected");
                expect += 1;
            }
            prop_assert_eq!(tracker.next_expected(), expect);
            if let Some(gap) = tracker.gap() {
                prop_assert_eq!(gap.start, tracker.next_expected());
                prop_assert!(gap.end > gap.start);
            }
            if let Some(request) = tracker.poll_request(now) {
                prop_assert_eq!(request.sequence_number, tracker.next_expected());
                prop_assert!(request.requested_count >= 1);
                prop_assert!(request.range().end <= tracker.gap().unwrap().end);
            }
        }
    }
}
