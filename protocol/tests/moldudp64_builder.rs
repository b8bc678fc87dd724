//! MoldUDP64 packet builder properties: for random message sizes and payload limits it never splits a
//! message, never exceeds the limit, reports "full" only when the message truly does not fit, numbers messages
//! contiguously, and the reader gives back exactly the messages pushed.

use bourse_protocol::itch;
use bourse_protocol::moldudp64::*;
use proptest::prelude::*;

fn session() -> Session {
    Session::new("20261126A").unwrap()
}

/// Pushes every message, flushing on `Full`; returns the packets and checks the builder's promises on the way.
fn build_all(first: u64, payload_bytes_max: usize, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut builder = PacketBuilder::new(session(), first, payload_bytes_max);
    let mut packets = Vec::new();
    for message in messages {
        match builder.push(message) {
            Ok(()) => {}
            Err(PushError::Full) => {
                // Full only when the block truly does not fit.
                assert!(builder.len() + 2 + message.len() > payload_bytes_max);
                assert!(!builder.is_empty());
                let before = builder.len();
                packets.push(builder.flush().unwrap().to_vec());
                assert_eq!(packets.last().unwrap().len(), before);
                builder
                    .push(message)
                    .expect("a message that fits an empty packet is taken after a flush");
            }
            Err(PushError::TooLarge {
                len,
                payload_bytes_max: max,
            }) => {
                assert_eq!(max, payload_bytes_max);
                assert!(HEADER_LEN + 2 + len > payload_bytes_max);
                continue;
            }
        }
        assert!(builder.len() <= payload_bytes_max);
    }
    if let Some(last) = builder.flush() {
        packets.push(last.to_vec());
    }
    packets
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn packets_never_split_never_exceed_and_number_contiguously(
        payload_bytes_max in prop_oneof![Just(PAYLOAD_BYTES_DEFAULT), 23usize..600],
        first in prop_oneof![Just(1u64), 1u64..1_000_000],
        sizes in prop::collection::vec(prop_oneof![0usize..60, 0usize..1500], 0..200),
    ) {
        let messages: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let fitting: Vec<&Vec<u8>> = messages.iter().filter(|m| HEADER_LEN + 2 + m.len() <= payload_bytes_max).collect();
        let packets = build_all(first, payload_bytes_max, &messages);

        let mut next = first;
        let mut read_back: Vec<Vec<u8>> = Vec::new();
        for bytes in &packets {
            prop_assert!(bytes.len() <= payload_bytes_max);
            let packet = Packet::decode(bytes).unwrap();
            prop_assert_eq!(packet.kind(), PacketKind::Data);
            prop_assert_eq!(packet.header().session, session());
            prop_assert_eq!(packet.header().sequence_number, next, "contiguous");
            for (sequence_number, message) in packet.messages() {
                prop_assert_eq!(sequence_number, next);
                next += 1;
                read_back.push(message.to_vec());
            }
        }
        // Exactly the messages that can fit, whole, in order.
        prop_assert_eq!(read_back.len(), fitting.len());
        for (a, b) in read_back.iter().zip(fitting) {
            prop_assert_eq!(a, b);
        }
        // Greedy packing: a packet is flushed only when the next message would not fit in it.
        for pair in packets.windows(2) {
            let next_packet = Packet::decode(&pair[1]).unwrap();
            let (_, first_of_next) = next_packet.messages().next().unwrap();
            prop_assert!(pair[0].len() + 2 + first_of_next.len() > payload_bytes_max);
        }
    }
}

#[test]
fn itch_messages_pack_into_default_packets() {
    let header = itch::Header {
        stock_locate: 1,
        tracking_number: 0,
        timestamp: itch::Timestamp48::new(1).unwrap(),
    };
    let add = itch::Message::AddOrder(itch::AddOrder {
        header,
        order_reference_number: 1,
        side: itch::Side::Buy,
        shares: 100,
        stock: bourse_protocol::fields::Symbol::new("AAPL").unwrap(),
        price: 1_000_000,
    });
    let mut builder = PacketBuilder::new(session(), 1, PAYLOAD_BYTES_DEFAULT);
    let mut pushed = 0;
    while builder.push_itch(&add).is_ok() {
        pushed += 1;
    }
    // (1400 - 20) / (2 + 36) = 36 Add Orders per default packet.
    assert_eq!(pushed, 36);
    assert_eq!(builder.push_itch(&add), Err(PushError::Full));
    let packet = builder.flush().unwrap();
    assert_eq!(packet.len(), 20 + 36 * 38);
    let decoded: Vec<itch::Message> = Packet::decode(packet)
        .unwrap()
        .messages()
        .map(|(_, m)| itch::Message::decode(m).unwrap())
        .collect();
    assert_eq!(decoded, vec![add; 36]);
    assert_eq!(builder.next_sequence_number(), 37);
}

#[test]
fn reserve_fills_in_place_and_too_large_is_reported() {
    let mut builder = PacketBuilder::new(session(), 5, 64);
    builder.reserve(3).unwrap().copy_from_slice(b"abc");
    assert_eq!(builder.message_count(), 1);
    assert_eq!(
        builder.push(&[0; 43]),
        Err(PushError::TooLarge {
            len: 43,
            payload_bytes_max: 64
        })
    );
    assert_eq!(builder.push(&[0; 40]), Err(PushError::Full));
    assert_eq!(
        builder.message_count(),
        1,
        "a refused push leaves the packet as it was"
    );
    let packet = builder.flush().unwrap().to_vec();
    let read = Packet::decode(&packet).unwrap();
    assert_eq!(read.messages().collect::<Vec<_>>(), vec![(5, &b"abc"[..])]);
    builder.push(&[0; 42]).unwrap();
    assert_eq!(builder.len(), 64);
    assert_eq!(builder.next_sequence_number(), 7);
    assert_eq!(
        builder.push(&[0; 65_536]),
        Err(PushError::TooLarge {
            len: 65_536,
            payload_bytes_max: 64
        })
    );
}

#[test]
#[should_panic(expected = "flush before sending a heartbeat")]
fn heartbeat_with_unflushed_messages_is_a_programmer_error() {
    let mut builder = PacketBuilder::new(session(), 1, PAYLOAD_BYTES_DEFAULT);
    builder.push(b"x").unwrap();
    let _ = builder.heartbeat();
}

#[test]
fn reset_starts_over_for_a_re_request_answer() {
    let mut builder = PacketBuilder::new(session(), 100, PAYLOAD_BYTES_DEFAULT);
    builder.push(b"live").unwrap();
    // The server answers a request for 7.. with the same builder: unflushed messages are discarded.
    let other = Session::new("20261127A").unwrap();
    builder.reset(other, 7);
    assert!(builder.is_empty());
    builder.push(b"seven").unwrap();
    builder.push(b"eight").unwrap();
    let bytes = builder.flush().unwrap().to_vec();
    let packet = Packet::decode(&bytes).unwrap();
    assert_eq!(packet.header().session, other);
    assert_eq!(
        packet.messages().collect::<Vec<_>>(),
        vec![(7, &b"seven"[..]), (8, &b"eight"[..])]
    );
    assert_eq!(builder.next_sequence_number(), 9);
}
