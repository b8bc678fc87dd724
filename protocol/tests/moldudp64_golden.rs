//! MoldUDP64 golden bytes written by hand from the specification's tables, every malformed packet with its
//! error, and stock Wireshark (tshark) reading our packets back.

mod support;

use bourse_protocol::itch;
use bourse_protocol::moldudp64::*;
use support::{Transport, tshark_fields};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

fn session() -> Session {
    Session::new("SESSION001").unwrap()
}

/// System Event 'O', locate 0, tracking 0, timestamp 1 ns: 12 bytes.
const SYSTEM_EVENT: &str = "53 00 00 00 00 00 00 00 00 00 01 4f";
/// Add Order ref 12345, Buy 100 AAPL @ 150.2500, locate 7, timestamp 2 ns: 36 bytes.
const ADD_ORDER: &str = "41 00 07 00 00 00 00 00 00 00 02 00 00 00 00 00 00 30 39 42 00 00 00 64 \
                         41 41 50 4c 20 20 20 20 00 16 ed 24";

/// Session "SESSION001", sequence 1, count 2; blocks of 12 and 36 bytes.
fn data_packet_golden() -> Vec<u8> {
    hex(&format!(
        "53 45 53 53 49 4f 4e 30 30 31  00 00 00 00 00 00 00 01  00 02  00 0c {SYSTEM_EVENT}  00 24 {ADD_ORDER}"
    ))
}

fn heartbeat_golden() -> Vec<u8> {
    // Session, sequence 7 (next to send), count 0.
    hex("53 45 53 53 49 4f 4e 30 30 31  00 00 00 00 00 00 00 07  00 00")
}

fn end_of_session_golden() -> Vec<u8> {
    // Session, sequence 9 (next), count 0xFFFF.
    hex("53 45 53 53 49 4f 4e 30 30 31  00 00 00 00 00 00 00 09  ff ff")
}

fn request_golden() -> Vec<u8> {
    // Session, first wanted 3, requested count 5.
    hex("53 45 53 53 49 4f 4e 30 30 31  00 00 00 00 00 00 00 03  00 05")
}

#[test]
fn builder_writes_the_golden_data_packet_and_the_reader_reads_it() {
    let mut builder = PacketBuilder::new(session(), 1, PAYLOAD_BYTES_DEFAULT);
    let system_event = itch::Message::decode(&hex(SYSTEM_EVENT)).unwrap();
    builder.push_itch(&system_event).unwrap();
    builder.push(&hex(ADD_ORDER)).unwrap();
    assert_eq!(builder.next_sequence_number(), 3);
    let packet = builder.flush().unwrap().to_vec();
    assert_eq!(packet, data_packet_golden());
    assert!(builder.flush().is_none(), "nothing left after a flush");

    let read = Packet::decode(&packet).unwrap();
    assert_eq!(read.kind(), PacketKind::Data);
    assert_eq!(
        *read.header(),
        PacketHeader {
            session: session(),
            sequence_number: 1,
            message_count: 2
        }
    );
    assert_eq!(read.sequence_range(), 1..3);
    let messages: Vec<(u64, Vec<u8>)> = read.messages().map(|(s, m)| (s, m.to_vec())).collect();
    assert_eq!(messages, vec![(1, hex(SYSTEM_EVENT)), (2, hex(ADD_ORDER))]);
}

#[test]
fn heartbeat_end_of_session_and_request_golden_bytes() {
    let mut builder = PacketBuilder::new(session(), 7, PAYLOAD_BYTES_DEFAULT);
    assert_eq!(builder.heartbeat().to_vec(), heartbeat_golden());
    assert_eq!(
        PacketHeader::heartbeat(session(), 7).to_bytes().to_vec(),
        heartbeat_golden()
    );
    builder.push(b"ab").unwrap();
    builder.push(b"cd").unwrap();
    builder.flush().unwrap();
    assert_eq!(builder.end_of_session().to_vec(), end_of_session_golden());

    let heartbeat_bytes = heartbeat_golden();
    let heartbeat = Packet::decode(&heartbeat_bytes).unwrap();
    assert_eq!(heartbeat.kind(), PacketKind::Heartbeat);
    assert_eq!(heartbeat.sequence_range(), 7..7);
    assert_eq!(heartbeat.messages().count(), 0);
    let end_bytes = end_of_session_golden();
    let end = Packet::decode(&end_bytes).unwrap();
    assert_eq!(end.kind(), PacketKind::EndOfSession);
    assert_eq!(end.next_sequence_number(), 9);
    assert_eq!(end.messages().count(), 0);

    let request = Request {
        session: session(),
        sequence_number: 3,
        requested_count: 5,
    };
    assert_eq!(request.to_bytes().to_vec(), request_golden());
    assert_eq!(Request::decode(&request_golden()), Ok(request));
    assert_eq!(request.range(), 3..8);
}

#[test]
fn malformed_packets_are_typed_errors() {
    let good = data_packet_golden();
    // Shorter than a header.
    for len in 0..HEADER_LEN {
        assert_eq!(Packet::decode(&good[..len]), Err(PacketError::Truncated { len }));
        assert_eq!(Request::decode(&good[..len]), Err(PacketError::Truncated { len }));
    }
    // Every cut inside the blocks: first block (index 0) cut while the cut is before its end (20 + 2 + 12),
    // second block (index 1) after.
    for len in HEADER_LEN..good.len() {
        let index = if len < HEADER_LEN + 2 + 12 { 0 } else { 1 };
        if len == HEADER_LEN + 2 + 12 {
            // Exactly one whole block: the second is missing entirely.
            assert_eq!(
                Packet::decode(&good[..len]),
                Err(PacketError::BlockTruncated {
                    index: 1,
                    message_count: 2
                })
            );
            continue;
        }
        assert_eq!(
            Packet::decode(&good[..len]),
            Err(PacketError::BlockTruncated {
                index,
                message_count: 2
            }),
            "cut at {len}"
        );
    }
    // More bytes than the count announces.
    let mut long = good.clone();
    long.extend_from_slice(&[0, 1, b'x']);
    assert_eq!(
        Packet::decode(&long),
        Err(PacketError::TrailingBytes { extra: 3 })
    );
    // Count says 3, two blocks present.
    let mut count3 = good.clone();
    count3[19] = 3;
    assert_eq!(
        Packet::decode(&count3),
        Err(PacketError::BlockTruncated {
            index: 2,
            message_count: 3
        })
    );
    // Count says 1, two blocks present.
    let mut count1 = good;
    count1[19] = 1;
    assert_eq!(
        Packet::decode(&count1),
        Err(PacketError::TrailingBytes { extra: 2 + 36 })
    );
    // A block length running past the end.
    let mut overlong = hex("53 45 53 53 49 4f 4e 30 30 31  00 00 00 00 00 00 00 01  00 01  00 05 61 62 63");
    assert_eq!(
        Packet::decode(&overlong),
        Err(PacketError::BlockTruncated {
            index: 0,
            message_count: 1
        })
    );
    overlong.extend_from_slice(b"de");
    assert!(Packet::decode(&overlong).is_ok());
    // Heartbeat, end of session and request carry nothing after the header.
    for golden in [heartbeat_golden(), end_of_session_golden()] {
        let mut extra = golden;
        extra.push(0);
        assert_eq!(
            Packet::decode(&extra),
            Err(PacketError::TrailingBytes { extra: 1 })
        );
    }
    let mut extra = request_golden();
    extra.push(0);
    assert_eq!(
        Request::decode(&extra),
        Err(PacketError::TrailingBytes { extra: 1 })
    );
    // Sequence numbers that would wrap.
    let wrap = hex("53 45 53 53 49 4f 4e 30 30 31  ff ff ff ff ff ff ff ff  00 01  00 00");
    assert_eq!(Packet::decode(&wrap), Err(PacketError::SequenceOverflow));
    let last = hex("53 45 53 53 49 4f 4e 30 30 31  ff ff ff ff ff ff ff fe  00 01  00 00");
    assert_eq!(
        Packet::decode(&last).unwrap().sequence_range(),
        u64::MAX - 1..u64::MAX
    );
}

#[test]
fn zero_length_blocks_are_read() {
    let bytes = hex("53 45 53 53 49 4f 4e 30 30 31  00 00 00 00 00 00 00 04  00 02  00 00  00 01 7a");
    let packet = Packet::decode(&bytes).unwrap();
    let messages: Vec<(u64, &[u8])> = packet.messages().collect();
    assert_eq!(messages, vec![(4, &b""[..]), (5, &b"z"[..])]);
}

#[test]
fn tshark_reads_our_data_heartbeat_end_of_session_and_request() {
    let packets = vec![
        data_packet_golden(),
        heartbeat_golden(),
        end_of_session_golden(),
        request_golden(),
    ];
    let rows = tshark_fields(
        Transport::Udp,
        &packets,
        "moldudp64",
        &[
            "moldudp64.session",
            "moldudp64.sequence",
            "moldudp64.count",
            "moldudp64.msglen",
            "moldudp64.msgseq",
            // Present (as "1") when tshark takes the packet for a re-request: tshark 4.0 says so of every
            // header-only packet with a non-zero count, End of Session included (the bytes have the same shape;
            // only the direction tells them apart).
            "moldudp64.request",
        ],
    );
    let expect = |row: [&str; 6]| row.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            expect(["SESSION001", "1", "2", "12,36", "1,2", ""]),
            expect(["SESSION001", "7", "0", "", "", ""]),
            expect(["SESSION001", "9", "65535", "", "", "1"]),
            expect(["SESSION001", "3", "5", "", "", "1"]),
        ]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(packet) = Packet::decode(&bytes) {
                // A packet that decodes accounts for every byte: header, prefixes and messages.
                let body: usize = packet.messages().map(|(_, m)| 2 + m.len()).sum();
                prop_assert_eq!(HEADER_LEN + body, bytes.len());
                prop_assert_eq!(packet.messages().count() as u64, packet.sequence_range().end - packet.sequence_range().start);
            }
            let _ = Request::decode(&bytes);
        }

        #[test]
        fn packets_with_a_valid_header_and_random_blocks_decode_or_fail_typed(
            sequence_number in prop_oneof![any::<u64>(), Just(u64::MAX), 0u64..10],
            message_count in prop_oneof![any::<u16>(), 0u16..5],
            body in prop::collection::vec(any::<u8>(), 0..60),
        ) {
            let mut bytes = PacketHeader { session: session(), sequence_number, message_count }.to_bytes().to_vec();
            bytes.extend_from_slice(&body);
            match Packet::decode(&bytes) {
                Ok(packet) => prop_assert_eq!(packet.header().sequence_number, sequence_number),
                Err(PacketError::Truncated { .. }) => prop_assert!(false, "a whole header is never truncated"),
                Err(_) => {}
            }
        }

        #[test]
        fn header_and_request_round_trip(sequence_number in any::<u64>(), count in prop_oneof![any::<u16>(), Just(0u16), Just(END_OF_SESSION_COUNT)], name in "[ -~]{0,10}") {
            let session = Session::new(&name).unwrap();
            let request = Request { session, sequence_number, requested_count: count };
            prop_assert_eq!(Request::decode(&request.to_bytes()), Ok(request));
            let header = PacketHeader { session, sequence_number, message_count: count };
            if count == 0 || count == END_OF_SESSION_COUNT {
                // Heartbeat and End of Session are whole packets by themselves.
                let bytes = header.to_bytes();
                prop_assert_eq!(Packet::decode(&bytes).map(|p| *p.header()), Ok(header));
            }
        }
    }
}
