//! ITCH 5.0 golden bytes, written by hand from the specification's tables (not produced by our encoder), and
//! every malformed case with its error.
//!
//! Common header in every sample: Stock Locate 7 (`00 07`; 0 for System Event), Tracking Number 0x0A0B
//! (`0a 0b`), Timestamp 0x1234_5678_9ABC ns (`12 34 56 78 9a bc`).

use bourse_protocol::fields::{Alpha, Firm, Symbol};
use bourse_protocol::itch::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

const TS: u64 = 0x1234_5678_9ABC;

fn header(stock_locate: u16) -> Header {
    Header {
        stock_locate,
        tracking_number: 0x0A0B,
        timestamp: Timestamp48::new(TS).unwrap(),
    }
}

fn aapl() -> Symbol {
    Symbol::new("AAPL").unwrap()
}

/// Every message type: the typed value and its bytes from the spec tables.
fn samples() -> Vec<(Message, Vec<u8>)> {
    vec![
        (
            Message::SystemEvent(SystemEvent {
                header: header(0),
                event_code: EventCode::StartOfMessages,
            }),
            // S | locate 0 | tracking | timestamp | 'O'
            hex("53  00 00  0a 0b  12 34 56 78 9a bc  4f"),
        ),
        (
            Message::StockDirectory(StockDirectory {
                header: header(7),
                stock: aapl(),
                market_category: b'Q',
                financial_status_indicator: b'N',
                round_lot_size: 100,
                round_lots_only: b'N',
                issue_classification: b'C',
                issue_sub_type: Alpha(*b"Z "),
                authenticity: b'P',
                short_sale_threshold_indicator: b'N',
                ipo_flag: b'N',
                luld_reference_price_tier: b'1',
                etp_flag: b'N',
                etp_leverage_factor: 1,
                inverse_indicator: b'N',
            }),
            // R | hdr | "AAPL    " | Q | N | round lot 100 | N | C | "Z " | P | N | N | 1 | N | leverage 1 | N
            hex(
                "52  00 07  0a 0b  12 34 56 78 9a bc  41 41 50 4c 20 20 20 20  51  4e  00 00 00 64  4e  43  5a 20 \
                 50  4e  4e  31  4e  00 00 00 01  4e",
            ),
        ),
        (
            Message::TradingAction(TradingAction {
                header: header(7),
                stock: aapl(),
                trading_state: TradingState::Halted,
                reserved: b' ',
                reason: Alpha(*b"T1  "),
            }),
            // H | hdr | "AAPL    " | 'H' | reserved ' ' | "T1  "
            hex("48  00 07  0a 0b  12 34 56 78 9a bc  41 41 50 4c 20 20 20 20  48  20  54 31 20 20"),
        ),
        (
            Message::AddOrder(AddOrder {
                header: header(7),
                order_reference_number: 12345,
                side: Side::Buy,
                shares: 100,
                stock: aapl(),
                price: 1_502_500,
            }),
            // A | hdr | ref 12345 | 'B' | 100 | "AAPL    " | 150.2500
            hex(
                "41  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  42  00 00 00 64 \
                 41 41 50 4c 20 20 20 20  00 16 ed 24",
            ),
        ),
        (
            Message::AddOrderMpid(AddOrderMpid {
                header: header(7),
                order_reference_number: 12345,
                side: Side::Sell,
                shares: 100,
                stock: aapl(),
                price: 1_502_500,
                attribution: Firm::new("BRSE").unwrap(),
            }),
            // F | hdr | ref 12345 | 'S' | 100 | "AAPL    " | 150.2500 | "BRSE"
            hex(
                "46  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  53  00 00 00 64 \
                 41 41 50 4c 20 20 20 20  00 16 ed 24  42 52 53 45",
            ),
        ),
        (
            Message::OrderExecuted(OrderExecuted {
                header: header(7),
                order_reference_number: 12345,
                executed_shares: 50,
                match_number: 123_456,
            }),
            // E | hdr | ref 12345 | 50 | match 123456
            hex(
                "45  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  00 00 00 32  00 00 00 00 00 01 e2 40",
            ),
        ),
        (
            Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
                header: header(7),
                order_reference_number: 12345,
                executed_shares: 50,
                match_number: 123_456,
                printable: true,
                execution_price: 1_502_600,
            }),
            // C | hdr | ref 12345 | 50 | match 123456 | 'Y' | 150.2600
            hex(
                "43  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  00 00 00 32 \
                 00 00 00 00 00 01 e2 40  59  00 16 ed 88",
            ),
        ),
        (
            Message::OrderCancel(OrderCancel {
                header: header(7),
                order_reference_number: 12345,
                canceled_shares: 10,
            }),
            // X | hdr | ref 12345 | 10
            hex("58  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  00 00 00 0a"),
        ),
        (
            Message::OrderDelete(OrderDelete {
                header: header(7),
                order_reference_number: 12345,
            }),
            // D | hdr | ref 12345
            hex("44  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39"),
        ),
        (
            Message::OrderReplace(OrderReplace {
                header: header(7),
                original_order_reference_number: 12345,
                new_order_reference_number: 12346,
                shares: 200,
                price: 1_502_600,
            }),
            // U | hdr | original 12345 | new 12346 | 200 | 150.2600
            hex(
                "55  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  00 00 00 00 00 00 30 3a \
                 00 00 00 c8  00 16 ed 88",
            ),
        ),
        (
            Message::Trade(Trade {
                header: header(7),
                order_reference_number: 0,
                side: Side::Sell,
                shares: 300,
                stock: aapl(),
                price: 1_502_500,
                match_number: 123_457,
            }),
            // P | hdr | ref 0 (hidden) | 'S' | 300 | "AAPL    " | 150.2500 | match 123457
            hex(
                "50  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 00 00  53  00 00 01 2c \
                 41 41 50 4c 20 20 20 20  00 16 ed 24  00 00 00 00 00 01 e2 41",
            ),
        ),
        (
            Message::BrokenTrade(BrokenTrade {
                header: header(7),
                match_number: 123_456,
            }),
            // B | hdr | match 123456
            hex("42  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 01 e2 40"),
        ),
        (
            Message::SnapshotEnd(SnapshotEnd { sequence_number: 42 }),
            // G | "                  42" (18 spaces, then the digits)
            hex("47  20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20  34 32"),
        ),
    ]
}

#[test]
fn every_message_encodes_to_its_golden_bytes_and_back() {
    let samples = samples();
    assert_eq!(samples.len(), 13, "one sample per message type");
    for (message, golden) in &samples {
        let mut buf = [0xEE_u8; MESSAGE_LEN_MAX + 8];
        let len = message.encode(&mut buf).unwrap();
        assert_eq!(&buf[..len], &golden[..], "encode {message:?}");
        assert!(buf[len..].iter().all(|&b| b == 0xEE), "wrote past the message");
        assert_eq!(len, message.len());
        assert_eq!(Some(len), message_len(golden[0]));
        assert_eq!(message.message_type(), golden[0]);
        assert_eq!(
            Message::decode(golden).as_ref(),
            Ok(message),
            "decode {:?}",
            golden[0] as char
        );
    }
}

#[test]
fn typed_decoders_accept_their_own_type_only() {
    let add = hex(
        "41  00 07  0a 0b  12 34 56 78 9a bc  00 00 00 00 00 00 30 39  42  00 00 00 64 \
                   41 41 50 4c 20 20 20 20  00 16 ed 24",
    );
    let decoded = AddOrder::decode(&add).unwrap();
    assert_eq!(decoded.order_reference_number, 12345);
    assert_eq!(decoded.header.timestamp.ns(), TS);
    assert_eq!(
        OrderDelete::decode(&add),
        Err(DecodeError::UnknownType { message_type: b'A' })
    );
    assert_eq!(OrderDelete::decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn snapshot_end_marker_extremes() {
    let mut buf = [0u8; 21];
    SnapshotEnd { sequence_number: 0 }.encode(&mut buf).unwrap();
    assert_eq!(&buf, b"G                   0");
    SnapshotEnd {
        sequence_number: u64::MAX,
    }
    .encode(&mut buf)
    .unwrap();
    assert_eq!(&buf, b"G18446744073709551615");
    assert_eq!(
        Message::decode(b"G18446744073709551615"),
        Ok(Message::SnapshotEnd(SnapshotEnd {
            sequence_number: u64::MAX
        }))
    );
    // Zero padding is digits too: accepted.
    assert_eq!(
        SnapshotEnd::decode(b"G00000000000000000042"),
        Ok(SnapshotEnd { sequence_number: 42 })
    );
}

#[test]
fn empty_and_unknown_types_are_errors() {
    assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
    for t in [b'Q', b'Z', b'a', 0, 0xFF] {
        assert_eq!(
            Message::decode(&[t; 40]),
            Err(DecodeError::UnknownType { message_type: t })
        );
    }
}

#[test]
fn short_input_is_truncated_and_long_input_is_wrong_length_for_every_type() {
    for (_, golden) in samples() {
        let t = golden[0];
        for cut in 1..golden.len() {
            assert_eq!(
                Message::decode(&golden[..cut]),
                Err(DecodeError::Truncated {
                    message_type: t,
                    expected: golden.len(),
                    actual: cut
                }),
                "type {:?} cut at {cut}",
                t as char
            );
        }
        let mut long = golden.clone();
        long.push(b' ');
        assert_eq!(
            Message::decode(&long),
            Err(DecodeError::WrongLength {
                message_type: t,
                expected: golden.len(),
                actual: golden.len() + 1
            })
        );
    }
}

/// Replaces byte `offset` of the golden sample of `message_type`.
fn corrupt(message_type: u8, offset: usize, byte: u8) -> Vec<u8> {
    let mut bytes = samples()
        .into_iter()
        .find(|(_, g)| g[0] == message_type)
        .unwrap()
        .1;
    bytes[offset] = byte;
    bytes
}

#[test]
fn bad_codes_are_typed_errors() {
    // Side at offset 19 in A, F and P.
    for t in [b'A', b'F', b'P'] {
        for bad in [b'b', b'T', b' ', 0] {
            assert_eq!(
                Message::decode(&corrupt(t, 19, bad)),
                Err(DecodeError::BadSide(bad))
            );
        }
    }
    assert_eq!(
        Message::decode(&corrupt(b'S', 11, b'X')),
        Err(DecodeError::BadEventCode(b'X'))
    );
    assert_eq!(
        Message::decode(&corrupt(b'H', 19, b'R')),
        Err(DecodeError::BadTradingState(b'R'))
    );
    // Printable at offset 31 in C.
    assert_eq!(
        Message::decode(&corrupt(b'C', 31, b'y')),
        Err(DecodeError::BadPrintable(b'y'))
    );
}

#[test]
fn bad_snapshot_sequences_are_typed_errors() {
    assert_eq!(
        Message::decode(b"G                 4x2"),
        Err(DecodeError::BadSnapshotDigit {
            offset: 18,
            byte: b'x'
        })
    );
    // A space after a digit: not right-justified.
    assert_eq!(
        Message::decode(b"G42                  "),
        Err(DecodeError::BadSnapshotDigit {
            offset: 2,
            byte: b' '
        })
    );
    assert_eq!(
        Message::decode(b"G                  -1"),
        Err(DecodeError::BadSnapshotDigit {
            offset: 18,
            byte: b'-'
        })
    );
    assert_eq!(
        Message::decode(b"G                    "),
        Err(DecodeError::BadSnapshotDigit {
            offset: 19,
            byte: b' '
        })
    );
    assert_eq!(
        Message::decode(b"G18446744073709551616"),
        Err(DecodeError::SnapshotSequenceOverflow)
    );
    assert_eq!(
        Message::decode(b"G99999999999999999999"),
        Err(DecodeError::SnapshotSequenceOverflow)
    );
}

#[test]
fn encoding_into_a_short_buffer_is_an_error_and_writes_nothing() {
    for (message, golden) in samples() {
        let mut buf = vec![0xEE_u8; golden.len() - 1];
        assert_eq!(
            message.encode(&mut buf),
            Err(EncodeError::BufferTooSmall {
                needed: golden.len(),
                available: golden.len() - 1
            })
        );
        assert!(buf.iter().all(|&b| b == 0xEE));
    }
}

#[test]
fn header_accessor() {
    for (message, golden) in samples() {
        match message.header() {
            Some(h) => {
                assert_eq!(h.timestamp.ns(), TS);
                assert_eq!(h.tracking_number, 0x0A0B);
            }
            None => assert_eq!(golden[0], b'G'),
        }
    }
}
