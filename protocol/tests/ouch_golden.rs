//! OUCH 4.2 golden bytes, written by hand from the spec's tables (not produced by our encoder), and every
//! malformed case with its typed error.

use bourse_protocol::fields::{Alpha, Token};
use bourse_protocol::ouch::*;
use bourse_protocol::reason::{CancelReason, RejectReason};

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

// "TOKEN000000001", "TOKEN000000002"
const TOK1: &str = "544f4b454e303030303030303031";
const TOK2: &str = "544f4b454e303030303030303032";
// 09:30:00.000000123 = 34_200_000_000_123 ns
const TS: &str = "00001f1aced9f07b";
const TS_NS: u64 = 34_200_000_000_123;

fn tok(n: u8) -> Token {
    Alpha::new(&format!("TOKEN00000000{n}")).unwrap()
}

fn terms() -> OrderTerms {
    OrderTerms {
        side: Side::Buy,
        shares: 100,
        stock: Alpha::new("AAPL").unwrap(),
        price: 1_502_500,
        time_in_force: 99_998,
        firm: Alpha::new("FIRM").unwrap(),
        display: Display::Anonymous,
        capacity: Capacity::Principal.code(),
        intermarket_sweep: IntermarketSweep::NotEligible.code(),
        minimum_quantity: 0,
        cross_type: CrossType::NoCross.code(),
    }
}

fn enter_order_bytes() -> Vec<u8> {
    // O | token | B | 100 | "AAPL    " | $150.25 | TIF 99998 | "FIRM" | Y | P | N | min 0 | N | N
    hex(&format!(
        "4f {TOK1} 42 00000064 4141504c20202020 0016ed24 0001869e 4649524d 59 50 4e 00000000 4e 4e"
    ))
}

fn inbound_goldens() -> Vec<(Vec<u8>, InboundMessage)> {
    vec![
        (
            enter_order_bytes(),
            InboundMessage::EnterOrder(EnterOrder::new(tok(1), &terms(), CustomerType::NotRetail.code())),
        ),
        (
            // U | existing | replacement | 200 | $150.26 | TIF 0 | Y | N | min 0
            hex(&format!(
                "55 {TOK1} {TOK2} 000000c8 0016ed88 00000000 59 4e 00000000"
            )),
            InboundMessage::ReplaceOrder(ReplaceOrder::new(
                tok(1),
                tok(2),
                200,
                1_502_600,
                0,
                Display::Anonymous,
                IntermarketSweep::NotEligible.code(),
                0,
            )),
        ),
        (
            hex(&format!("58 {TOK1} 00000000")),
            InboundMessage::CancelOrder(CancelOrder::new(tok(1), 0)),
        ),
        (
            hex(&format!("4d {TOK1} 54 00000032")),
            InboundMessage::ModifyOrder(ModifyOrder::new(tok(1), Side::SellShort, 50)),
        ),
    ]
}

fn outbound_goldens() -> Vec<(Vec<u8>, OutboundMessage)> {
    let replaced_terms = OrderTerms {
        shares: 200,
        price: 1_502_600,
        time_in_force: 0,
        ..terms()
    };
    vec![
        (
            hex(&format!("53 {TS} 53")),
            SystemEvent::new(TS_NS, EventCode::StartOfDay).into(),
        ),
        (
            // A | ts | token | B | 100 | AAPL | price | tif | FIRM | Y | ref 12345 | P | N | min 0 | N | L | ' '
            hex(&format!(
                "41 {TS} {TOK1} 42 00000064 4141504c20202020 0016ed24 0001869e 4649524d 59
                 0000000000003039 50 4e 00000000 4e 4c 20"
            )),
            Accepted::new(TS_NS, tok(1), &terms(), 12_345, OrderState::Live).into(),
        ),
        (
            hex(&format!(
                "55 {TS} {TOK2} 42 000000c8 4141504c20202020 0016ed88 00000000 4649524d 59
                 000000000000303a 50 4e 00000000 4e 4c {TOK1} 20"
            )),
            Replaced::new(TS_NS, tok(2), &replaced_terms, 12_346, OrderState::Live, tok(1)).into(),
        ),
        (
            hex(&format!("43 {TS} {TOK1} 00000064 55")),
            Canceled::new(TS_NS, tok(1), 100, CancelReason::UserRequested).into(),
        ),
        (
            // D | ts | token | decrement 100 | Q | prevented 50 | $150.25 | A
            hex(&format!("44 {TS} {TOK1} 00000064 51 00000032 0016ed24 41")),
            AiqCanceled::new(
                TS_NS,
                tok(1),
                100,
                CancelReason::SelfMatchPrevention,
                50,
                1_502_500,
                LiquidityFlag::Added,
            )
            .into(),
        ),
        (
            hex(&format!("45 {TS} {TOK1} 00000064 0016ed24 52 0000000000000007")),
            Executed::new(TS_NS, tok(1), 100, 1_502_500, LiquidityFlag::Removed, 7).into(),
        ),
        (
            hex(&format!("42 {TS} {TOK1} 0000000000000007 45")),
            BrokenTrade::new(TS_NS, tok(1), 7, BrokenTradeReason::Erroneous).into(),
        ),
        (
            hex(&format!("4b {TS} {TOK1} 0000000000000007 0016ed88 43")),
            PriceCorrection::new(TS_NS, tok(1), 7, 1_502_600, BrokenTradeReason::Consent).into(),
        ),
        (
            hex(&format!("4a {TS} {TOK1} 48")),
            Rejected::new(TS_NS, tok(1), RejectReason::Halted).into(),
        ),
        (
            hex(&format!("50 {TS} {TOK1}")),
            CancelPending::new(TS_NS, tok(1)).into(),
        ),
        (
            hex(&format!("49 {TS} {TOK1}")),
            CancelReject::new(TS_NS, tok(1)).into(),
        ),
        (
            hex(&format!("4d {TS} {TOK1} 53 00000032")),
            OrderModified::new(TS_NS, tok(1), Side::Sell, 50).into(),
        ),
    ]
}

#[test]
fn inbound_messages_match_the_spec_bytes() {
    let sizes = [49, 47, 19, 20];
    for ((bytes, message), size) in inbound_goldens().into_iter().zip(sizes) {
        assert_eq!(bytes.len(), size, "{message:?}");
        let decoded = Inbound::decode(&bytes).unwrap();
        assert_eq!(decoded.to_message(), message);
        assert_eq!(decoded.as_wire().as_ptr(), bytes.as_ptr(), "decoded in place");
        let mut out = [0u8; MESSAGE_LEN_MAX];
        let len = message.encode(&mut out).unwrap();
        assert_eq!(&out[..len], &bytes[..]);
    }
}

#[test]
fn outbound_messages_match_the_spec_bytes() {
    let sizes = [10, 66, 80, 28, 37, 40, 32, 36, 24, 23, 23, 28];
    for ((bytes, message), size) in outbound_goldens().into_iter().zip(sizes) {
        assert_eq!(bytes.len(), size, "{message:?}");
        assert_eq!(Outbound::decode(&bytes).unwrap().to_message(), message);
        assert_eq!(message.as_wire(), &bytes[..]);
        let mut out = [0u8; MESSAGE_LEN_MAX];
        let len = message.encode(&mut out).unwrap();
        assert_eq!(&out[..len], &bytes[..]);
    }
}

#[test]
fn typed_accessors() {
    let bytes = enter_order_bytes();
    let Ok(Inbound::EnterOrder(order)) = Inbound::decode(&bytes) else {
        panic!()
    };
    assert_eq!(order.terms(), terms());
    assert_eq!(order.side, Side::Buy);
    assert!(!order.side.is_sell());
    assert!(Side::SellShortExempt.is_sell());
    assert_eq!(order.display, Display::Anonymous);
    assert_eq!(Capacity::from_code(order.capacity), Some(Capacity::Principal));
    assert_eq!(
        CustomerType::from_code(order.customer_type),
        Some(CustomerType::NotRetail)
    );
    assert_eq!(order.shares.get(), 100);
    assert_eq!(order.stock.trimmed(), b"AAPL");
    assert_eq!(Inbound::decode(&bytes).unwrap().token(), tok(1));
    let rejected = Rejected::new(1, tok(1), RejectReason::PriceCollar);
    assert_eq!(rejected.reason(), Some(RejectReason::PriceCollar));
    let canceled = Canceled::new(1, tok(1), 5, CancelReason::LoggedOff);
    assert_eq!(canceled.reason(), Some(CancelReason::LoggedOff));
    for side in Side::ALL {
        assert_eq!(Side::from_code(side.code()), Some(*side));
    }
    assert_eq!(Side::from_code(b'X'), None);
}

#[test]
fn malformed_inbound_returns_its_error() {
    let enter = enter_order_bytes();
    let with = |offset: usize, byte: u8| {
        let mut b = enter.clone();
        b[offset] = byte;
        b
    };
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (vec![], DecodeError::Empty),
        (hex("5a"), DecodeError::UnknownType { message_type: b'Z' }),
        (hex("41"), DecodeError::UnknownType { message_type: b'A' }), // outbound-only type
        (
            enter[..48].to_vec(),
            DecodeError::Truncated {
                message_type: b'O',
                length: 48,
                expected: 49,
            },
        ),
        (
            [&enter[..], &[0]].concat(),
            DecodeError::WrongLength {
                message_type: b'O',
                length: 50,
                expected: 49,
            },
        ),
        (
            hex("58"),
            DecodeError::Truncated {
                message_type: b'X',
                length: 1,
                expected: 19,
            },
        ),
        (
            hex(&format!(
                "55 {TOK1} {TOK2} 000000c8 0016ed88 00000000 59 4e 00000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
            )),
            DecodeError::WrongLength {
                message_type: b'U',
                length: 80,
                expected: 47,
            },
        ),
        (
            with(15, b'X'),
            DecodeError::InvalidField {
                message_type: b'O',
                token: tok(1),
                field: InvalidField::Side(b'X'),
            },
        ),
        (
            with(40, b'Z'),
            DecodeError::InvalidField {
                message_type: b'O',
                token: tok(1),
                field: InvalidField::Display(b'Z'),
            },
        ),
        (
            hex(&format!("4d {TOK1} 00 00000032")),
            DecodeError::InvalidField {
                message_type: b'M',
                token: tok(1),
                field: InvalidField::Side(0),
            },
        ),
        (
            // a bad Display in a Replace Order names the replacement token
            hex(&format!(
                "55 {TOK1} {TOK2} 000000c8 0016ed88 00000000 3f 4e 00000000"
            )),
            DecodeError::InvalidField {
                message_type: b'U',
                token: tok(2),
                field: InvalidField::Display(b'?'),
            },
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(Inbound::decode(&bytes), Err(error), "{bytes:02x?}");
    }
    assert_eq!(
        InvalidField::Display(b'Z').reject_reason(),
        RejectReason::InvalidDisplay
    );
    assert_eq!(InvalidField::Side(b'Z').reject_reason(), RejectReason::Other);
    // Capacity, Intermarket Sweep, Cross Type and Customer Type take any byte (docs/protocol.md: echoed).
    for offset in [41, 42, 47, 48] {
        let bytes = with(offset, 0x01);
        let Ok(Inbound::EnterOrder(order)) = Inbound::decode(&bytes) else {
            panic!("offset {offset}")
        };
        assert_eq!(order.as_wire()[offset], 0x01);
    }
}

#[test]
fn malformed_outbound_returns_its_error() {
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (vec![], DecodeError::Empty),
        (hex("4f"), DecodeError::UnknownType { message_type: b'O' }), // inbound-only type
        (
            hex(&format!("53 {TS}")),
            DecodeError::Truncated {
                message_type: b'S',
                length: 9,
                expected: 10,
            },
        ),
        (
            hex(&format!("53 {TS} 58")),
            DecodeError::InvalidField {
                message_type: b'S',
                token: Token::BLANK,
                field: InvalidField::EventCode(b'X'),
            },
        ),
        (
            hex(&format!("4a {TS} {TOK1} 3f")),
            DecodeError::InvalidField {
                message_type: b'J',
                token: tok(1),
                field: InvalidField::RejectReason(b'?'),
            },
        ),
        (
            hex(&format!("43 {TS} {TOK1} 00000064 3f")),
            DecodeError::InvalidField {
                message_type: b'C',
                token: tok(1),
                field: InvalidField::CancelReason(b'?'),
            },
        ),
        (
            hex(&format!("44 {TS} {TOK1} 00000064 3f 00000032 0016ed24 41")),
            DecodeError::InvalidField {
                message_type: b'D',
                token: tok(1),
                field: InvalidField::CancelReason(b'?'),
            },
        ),
        (
            hex(&format!("44 {TS} {TOK1} 00000064 51 00000032 0016ed24 3f")),
            DecodeError::InvalidField {
                message_type: b'D',
                token: tok(1),
                field: InvalidField::LiquidityFlag(b'?'),
            },
        ),
        (
            hex(&format!("45 {TS} {TOK1} 00000064 0016ed24 3f 0000000000000007")),
            DecodeError::InvalidField {
                message_type: b'E',
                token: tok(1),
                field: InvalidField::LiquidityFlag(b'?'),
            },
        ),
        (
            hex(&format!("42 {TS} {TOK1} 0000000000000007 3f")),
            DecodeError::InvalidField {
                message_type: b'B',
                token: tok(1),
                field: InvalidField::BrokenTradeReason(b'?'),
            },
        ),
        (
            hex(&format!("4d {TS} {TOK1} 3f 00000032")),
            DecodeError::InvalidField {
                message_type: b'M',
                token: tok(1),
                field: InvalidField::Side(b'?'),
            },
        ),
        (
            // Replaced with a bad Order State names the replacement token
            hex(&format!(
                "55 {TS} {TOK2} 42 000000c8 4141504c20202020 0016ed88 00000000 4649524d 59
                 000000000000303a 50 4e 00000000 4e 3f {TOK1} 20"
            )),
            DecodeError::InvalidField {
                message_type: b'U',
                token: tok(2),
                field: InvalidField::OrderState(b'?'),
            },
        ),
        (
            // a 47-byte 'U' is a Replace Order, never a Replaced
            hex(&format!(
                "55 {TOK1} {TOK2} 000000c8 0016ed88 00000000 59 4e 00000000"
            )),
            DecodeError::Truncated {
                message_type: b'U',
                length: 47,
                expected: 80,
            },
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(Outbound::decode(&bytes), Err(error), "{bytes:02x?}");
    }
}

#[test]
fn encode_into_a_short_buffer_fails() {
    let mut out = [0u8; 48];
    let order = EnterOrder::new(tok(1), &terms(), CustomerType::PortDefault.code());
    assert_eq!(
        order.encode(&mut out),
        Err(EncodeError {
            needed: 49,
            available: 48
        })
    );
    assert_eq!(EnterOrder::LEN, 49);
}
