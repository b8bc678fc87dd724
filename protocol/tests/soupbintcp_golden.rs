//! SoupBinTCP golden bytes, written by hand from the spec's tables (not produced by our encoder), and every
//! malformed case with its typed error.

use bourse_protocol::fields::Alpha;
use bourse_protocol::soupbintcp::{
    DecodeError, EncodeError, LoginAccepted, LoginRejectReason, LoginRequest, NumericError, NumericField,
    Packet, PacketType, StreamBuffer, decode_frame, write_frame_header,
};

/// Hex with optional spaces and `|` separators, for readability of hand-written frames.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

const MAX: usize = 1024;

fn login_v40() -> LoginRequest {
    LoginRequest {
        username: Alpha::new("USER01").unwrap(),
        password: Alpha::new("secret").unwrap(),
        requested_session: Alpha::BLANK,
        requested_sequence_number: 1,
        heartbeat_timeout_ms: None,
    }
}

/// Every packet type: the frame from the spec, and the packet it is.
fn goldens() -> Vec<(Vec<u8>, Packet<'static>)> {
    vec![
        (
            // len 47, 'L', "USER01", "secret    ", 10 blanks, 19 blanks + "1"
            hex(
                "002f 4c | 555345523031 | 73656372657420202020 | 20202020202020202020 |
                 2020202020202020202020202020202020202031",
            ),
            Packet::LoginRequest(login_v40()),
        ),
        (
            // 4.1: len 52, as above with requested sequence 0 and heartbeat timeout "15000"
            hex(
                "0034 4c | 555345523031 | 73656372657420202020 | 20202020202020202020 |
                 2020202020202020202020202020202020202030 | 3135303030",
            ),
            Packet::LoginRequest(LoginRequest {
                requested_sequence_number: 0,
                heartbeat_timeout_ms: Some(15_000),
                ..login_v40()
            }),
        ),
        (
            // len 31, 'A', "SESSION001", 18 blanks + "42"
            hex("001f 41 | 53455353494f4e303031 | 2020202020202020202020202020202020203432"),
            Packet::LoginAccepted(LoginAccepted {
                session: Alpha::new("SESSION001").unwrap(),
                sequence_number: 42,
            }),
        ),
        (
            hex("0002 4a 41"),
            Packet::LoginRejected(LoginRejectReason::NotAuthorized),
        ),
        (
            hex("0002 4a 53"),
            Packet::LoginRejected(LoginRejectReason::SessionNotAvailable),
        ),
        (hex("0004 53 010203"), Packet::SequencedData(&[1, 2, 3])),
        (hex("0001 53"), Packet::SequencedData(&[])),
        (hex("0003 55 abcd"), Packet::UnsequencedData(&[0xab, 0xcd])),
        (hex("0001 48"), Packet::ServerHeartbeat),
        (hex("0001 52"), Packet::ClientHeartbeat),
        (hex("0001 5a"), Packet::EndOfSession),
        (hex("0001 4f"), Packet::LogoutRequest),
        (hex("0006 2b 68656c6c6f"), Packet::Debug(b"hello")),
    ]
}

#[test]
fn every_packet_type_decodes_and_encodes_to_the_spec_bytes() {
    for (bytes, packet) in goldens() {
        assert_eq!(
            decode_frame(&bytes, MAX),
            Ok(Some((packet, bytes.len()))),
            "{bytes:02x?}"
        );
        let mut out = [0u8; 64];
        let len = packet.encode(&mut out).unwrap();
        assert_eq!(&out[..len], &bytes[..], "{packet:?}");
        assert_eq!(packet.frame_len(), bytes.len());
    }
}

#[test]
fn numeric_fields_accept_every_padding_seen_in_the_wild() {
    // Requested Sequence Number 1 as zero-padded, right-justified, and left-justified.
    for seq in [
        "00000000000000000001",
        "                   1",
        "1                   ",
        "   0000001          ",
    ] {
        let mut bytes = hex("002f 4c | 555345523031 | 73656372657420202020 | 20202020202020202020");
        bytes.extend_from_slice(seq.as_bytes());
        let Ok(Some((Packet::LoginRequest(r), 49))) = decode_frame(&bytes, MAX) else {
            panic!("{seq:?} did not decode");
        };
        assert_eq!(r.requested_sequence_number, 1, "{seq:?}");
    }
    // In a Login Request, blank numeric fields read as 0 (docs/protocol.md: blank = 0, live data only).
    let blank = hex(
        "0034 4c | 555345523031 | 73656372657420202020 | 20202020202020202020 |
         2020202020202020202020202020202020202020 | 2020202020",
    );
    let Ok(Some((Packet::LoginRequest(r), 54))) = decode_frame(&blank, MAX) else {
        panic!()
    };
    assert_eq!(
        (r.requested_sequence_number, r.heartbeat_timeout_ms),
        (0, Some(0))
    );
    // Login Accepted with a zero-padded sequence number.
    let bytes = hex("001f 41 | 53455353494f4e303031 | 3030303030303030303030303030303030303037");
    let Ok(Some((Packet::LoginAccepted(a), _))) = decode_frame(&bytes, MAX) else {
        panic!()
    };
    assert_eq!(a.sequence_number, 7);
}

/// Twenty nines, above `u64::MAX`, are a number above the next one (docs/protocol.md 2.2: the next
/// number), not a malformed field: only a byte other than a digit or padding is.
#[test]
fn a_requested_sequence_above_u64_is_the_largest() {
    let bytes = hex(
        "002f 4c | 555345523031 | 73656372657420202020 | 20202020202020202020 | 3939393939393939393939393939393939393939",
    );
    let Ok(Some((Packet::LoginRequest(r), _))) = decode_frame(&bytes, MAX) else {
        panic!()
    };
    assert_eq!(r.requested_sequence_number, u64::MAX);
}

#[test]
fn malformed_frames_return_their_error() {
    let login_prefix = "002f 4c | 555345523031 | 73656372657420202020 | 20202020202020202020";
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (hex("0000"), DecodeError::ZeroLength),
        (hex("0001 51"), DecodeError::UnknownType { packet_type: b'Q' }),
        (hex("0001 00"), DecodeError::UnknownType { packet_type: 0 }),
        (
            hex("0002 48 00"),
            DecodeError::WrongLength {
                packet_type: b'H',
                length: 2,
            },
        ),
        (
            hex("0002 52 00"),
            DecodeError::WrongLength {
                packet_type: b'R',
                length: 2,
            },
        ),
        (
            hex("0002 5a 00"),
            DecodeError::WrongLength {
                packet_type: b'Z',
                length: 2,
            },
        ),
        (
            hex("0002 4f 00"),
            DecodeError::WrongLength {
                packet_type: b'O',
                length: 2,
            },
        ),
        (
            hex("0001 4a"),
            DecodeError::WrongLength {
                packet_type: b'J',
                length: 1,
            },
        ),
        (
            hex("0003 4a 4141"),
            DecodeError::WrongLength {
                packet_type: b'J',
                length: 3,
            },
        ),
        (
            hex("0002 4a 58"),
            DecodeError::UnknownLoginRejectCode { code: b'X' },
        ),
        (
            hex("0002 41 20"),
            DecodeError::WrongLength {
                packet_type: b'A',
                length: 2,
            },
        ),
        (
            [hex("0030 4c"), vec![b'0'; 47]].concat(),
            DecodeError::WrongLength {
                packet_type: b'L',
                length: 48,
            },
        ),
        (
            hex(&format!(
                "{login_prefix} 2020202020202020202020202020202020203178"
            )),
            DecodeError::Numeric {
                field: NumericField::RequestedSequenceNumber,
                error: NumericError::NonDigit {
                    byte: b'x',
                    offset: 19,
                },
            },
        ),
        (
            hex("001f 41 | 53455353494f4e303031 | 2020202020202020202020202020202020202020"),
            DecodeError::Numeric {
                field: NumericField::SequenceNumber,
                error: NumericError::Blank,
            },
        ),
        (
            hex(&format!(
                "{login_prefix} 2020202020202020202020202020202020312032"
            )),
            DecodeError::Numeric {
                field: NumericField::RequestedSequenceNumber,
                error: NumericError::NonDigit {
                    byte: b' ',
                    offset: 18,
                },
            },
        ),
        (
            hex(
                &format!("{login_prefix} 2020202020202020202020202020202020202031 | 31352d3030")
                    .replace("002f", "0034"),
            ),
            DecodeError::Numeric {
                field: NumericField::HeartbeatTimeout,
                error: NumericError::NonDigit {
                    byte: b'-',
                    offset: 2,
                },
            },
        ),
        (
            hex("001f 41 | 53455353494f4e303031 | 2d31202020202020202020202020202020202020"),
            DecodeError::Numeric {
                field: NumericField::SequenceNumber,
                error: NumericError::NonDigit {
                    byte: b'-',
                    offset: 0,
                },
            },
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(decode_frame(&bytes, MAX), Err(error), "{bytes:02x?}");
    }
}

#[test]
fn oversize_is_reported_from_the_length_prefix_alone() {
    // Length 0x0400 = 1024: a 1026-byte frame, above a 1024-byte maximum; only the prefix has arrived.
    assert_eq!(
        decode_frame(&hex("0400"), MAX),
        Err(DecodeError::Oversize {
            frame_size: 1026,
            frame_size_max: 1024
        })
    );
    // Exactly at the maximum is fine (and incomplete here).
    assert_eq!(decode_frame(&hex("03fe 53"), MAX), Ok(None));
    let mut stream = StreamBuffer::new(2048, MAX);
    stream.push(&hex("0001 48 ffff"));
    assert_eq!(stream.next_packet(), Ok(Some(Packet::ServerHeartbeat)));
    assert_eq!(
        stream.next_packet(),
        Err(DecodeError::Oversize {
            frame_size: 65537,
            frame_size_max: MAX
        })
    );
}

#[test]
fn incomplete_frames_wait_for_more_bytes() {
    let frame = hex("001f 41 | 53455353494f4e303031 | 2020202020202020202020202020202020203432");
    for cut in 0..frame.len() {
        assert_eq!(decode_frame(&frame[..cut], MAX), Ok(None), "cut at {cut}");
    }
}

#[test]
fn direction_of_each_packet_type() {
    use PacketType::*;
    for t in [LoginRequest, UnsequencedData, ClientHeartbeat, LogoutRequest] {
        assert!(t.is_sent_by_client() && !t.is_sent_by_server(), "{t:?}");
    }
    for t in [
        LoginAccepted,
        LoginRejected,
        SequencedData,
        ServerHeartbeat,
        EndOfSession,
    ] {
        assert!(t.is_sent_by_server() && !t.is_sent_by_client(), "{t:?}");
    }
    assert!(Debug.is_sent_by_client() && Debug.is_sent_by_server());
}

#[test]
fn encoding_errors() {
    let mut small = [0u8; 10];
    assert_eq!(
        Packet::LoginRequest(login_v40()).encode(&mut small),
        Err(EncodeError::BufferTooSmall {
            needed: 49,
            available: 10
        })
    );
    let mut out = [0u8; 64];
    let too_slow = LoginRequest {
        heartbeat_timeout_ms: Some(100_000),
        ..login_v40()
    };
    assert_eq!(
        Packet::LoginRequest(too_slow).encode(&mut out),
        Err(EncodeError::NumberTooWide {
            value: 100_000,
            width: 5
        })
    );
    let big = vec![0u8; 65535];
    let mut huge = vec![0u8; 70_000];
    assert_eq!(
        Packet::SequencedData(&big).encode(&mut huge),
        Err(EncodeError::PayloadTooLong { len: 65535 })
    );
    assert_eq!(Packet::SequencedData(&big[..65534]).encode(&mut huge), Ok(65537));
    // In-place header for an application message written behind it.
    assert_eq!(write_frame_header(PacketType::SequencedData, 3, &mut out), Ok(3));
    assert_eq!(&out[..3], &hex("0004 53")[..]);
    assert_eq!(
        write_frame_header(PacketType::SequencedData, 62, &mut out),
        Err(EncodeError::BufferTooSmall {
            needed: 65,
            available: 64
        })
    );
}
