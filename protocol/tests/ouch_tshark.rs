//! Wireshark agrees: every OUCH 4.2 message we encode, carried in SoupBinTCP, is read back by stock tshark
//! (which recognises OUCH by type and exact length) with the values we encoded.

mod support;
use bourse_protocol::fields::{Alpha, Token};
use bourse_protocol::ouch::*;
use bourse_protocol::reason::{CancelReason, RejectReason};
use bourse_protocol::soupbintcp::{LoginAccepted, Packet};
use support::{Transport, tshark_fields};

fn tok(text: &str) -> Token {
    Alpha::new(text).unwrap()
}

fn frame(packet: Packet<'_>) -> Vec<u8> {
    let mut out = vec![0u8; packet.frame_len()];
    packet.encode(&mut out).unwrap();
    out
}

fn terms() -> OrderTerms {
    OrderTerms {
        side: Side::SellShort,
        shares: 100,
        stock: Alpha::new("AAPL").unwrap(),
        price: 1_502_500,
        time_in_force: 99_998,
        firm: Alpha::new("FIRM").unwrap(),
        display: Display::PostOnly,
        capacity: Capacity::Agency.code(),
        intermarket_sweep: IntermarketSweep::Eligible.code(),
        minimum_quantity: 7,
        cross_type: CrossType::Closing.code(),
    }
}

/// 09:30:00.000000123 and how tshark prints it.
const TS_NS: u64 = 34_200_000_000_123;
const TS_SHOWN: &str = "9:30:00.000000123";

/// Runs tshark once over all `messages` (each one SoupBinTCP packet) and checks every message's fields: the
/// listed ones have the listed values, every other field of the union is absent.
fn check(transport: Transport, packets: Vec<Vec<u8>>, expected: &[Vec<(&str, String)>]) {
    let mut names: Vec<&str> = vec!["ouch.packet_type"];
    for fields in expected {
        for (name, _) in fields {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    let rows = tshark_fields(transport, &packets, "ouch", &names);
    assert_eq!(
        rows.len(),
        expected.len(),
        "tshark decoded {} OUCH messages: {rows:?}",
        rows.len()
    );
    for (row, fields) in rows.iter().zip(expected) {
        for (i, name) in names.iter().enumerate().skip(1) {
            let want = fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v.as_str());
            assert_eq!(row[i], want, "{name} in {row:?}");
        }
    }
}

fn f(name: &'static str, value: impl ToString) -> (&'static str, String) {
    (name, value.to_string())
}

fn letter(c: char) -> String {
    format!("'{c}'")
}

/// Adds each message's expected type letter (and a field every message has) to its expected fields.
fn tagged(
    expected: Vec<Vec<(&'static str, String)>>,
    types: &[char],
    common: Option<(&'static str, String)>,
) -> Vec<Vec<(&'static str, String)>> {
    assert_eq!(expected.len(), types.len());
    expected
        .into_iter()
        .zip(types)
        .map(|(mut fields, &t)| {
            fields.insert(0, f("ouch.packet_type", letter(t)));
            fields.extend(common.clone());
            fields
        })
        .collect()
}

/// The fields tshark shows for `terms()` with the given side, shares and price.
fn terms_fields(side: char, shares: u32, price: u32) -> Vec<(&'static str, String)> {
    vec![
        f("ouch.buy_sell_indicator", letter(side)),
        f("ouch.shares", shares),
        f("ouch.stock", "AAPL    "),
        f("ouch.price", price),
        f("ouch.tif", 99_998),
        f("ouch.firm", "FIRM"),
        f("ouch.display", letter('P')),
        f("ouch.capacity", letter('A')),
        f("ouch.iso_eligible", letter('Y')),
        f("ouch.min_quantity", 7),
        f("ouch.cross_type", letter('C')),
    ]
}

#[test]
fn inbound_messages() {
    let messages = [
        InboundMessage::EnterOrder(EnterOrder::new(
            tok("TOKEN000000001"),
            &terms(),
            CustomerType::Retail.code(),
        )),
        InboundMessage::ReplaceOrder(ReplaceOrder::new(
            tok("TOKEN000000001"),
            tok("TOKEN000000002"),
            200,
            1_502_600,
            0,
            Display::Attributable,
            IntermarketSweep::NotEligible.code(),
            9,
        )),
        InboundMessage::CancelOrder(CancelOrder::new(tok("TOKEN000000003"), 0)),
        InboundMessage::ModifyOrder(ModifyOrder::new(tok("TOKEN000000004"), Side::SellShortExempt, 50)),
    ];
    let packets = messages
        .iter()
        .map(|m| {
            let mut buf = [0u8; MESSAGE_LEN_MAX];
            let len = m.encode(&mut buf).unwrap();
            frame(Packet::UnsequencedData(&buf[..len]))
        })
        .collect();
    let expected = vec![
        [
            vec![
                f("ouch.order_token", "TOKEN000000001"),
                f("ouch.customer_type", letter('R')),
            ],
            terms_fields('T', 100, 1_502_500),
        ]
        .concat(),
        vec![
            f("ouch.existing_order_token", "TOKEN000000001"),
            f("ouch.replacement_order_token", "TOKEN000000002"),
            f("ouch.shares", 200),
            f("ouch.price", 1_502_600),
            f("ouch.tif", 0),
            f("ouch.display", letter('A')),
            f("ouch.iso_eligible", letter('N')),
            f("ouch.min_quantity", 9),
        ],
        vec![f("ouch.order_token", "TOKEN000000003"), f("ouch.shares", 0)],
        vec![
            f("ouch.order_token", "TOKEN000000004"),
            f("ouch.buy_sell_indicator", letter('E')),
            f("ouch.shares", 50),
        ],
    ];
    let types = ['O', 'U', 'X', 'M'];
    check(
        Transport::Tcp { to_server: true },
        packets,
        &tagged(expected, &types, None),
    );
}

#[test]
fn outbound_messages() {
    let t = tok("TOKEN000000001");
    let replaced_terms = OrderTerms {
        side: Side::Buy,
        shares: 300,
        price: 1_502_700,
        ..terms()
    };
    let messages: Vec<OutboundMessage> = vec![
        SystemEvent::new(TS_NS, EventCode::StartOfDay).into(),
        Accepted::new(TS_NS, t, &terms(), 12_345, OrderState::Live).into(),
        Replaced::new(
            TS_NS,
            tok("TOKEN000000002"),
            &replaced_terms,
            12_346,
            OrderState::Dead,
            t,
        )
        .into(),
        Canceled::new(TS_NS, t, 60, CancelReason::Timeout).into(),
        AiqCanceled::new(
            TS_NS,
            t,
            61,
            CancelReason::SelfMatchPrevention,
            62,
            1_502_800,
            LiquidityFlag::Removed,
        )
        .into(),
        Executed::new(TS_NS, t, 63, 1_502_900, LiquidityFlag::Added, 77).into(),
        BrokenTrade::new(TS_NS, t, 78, BrokenTradeReason::Supervisory).into(),
        PriceCorrection::new(TS_NS, t, 79, 1_503_000, BrokenTradeReason::External).into(),
        Rejected::new(TS_NS, t, RejectReason::InvalidPrice).into(),
        CancelPending::new(TS_NS, t).into(),
        CancelReject::new(TS_NS, t).into(),
        OrderModified::new(TS_NS, t, Side::Sell, 64).into(),
    ];
    // tshark needs the Login Accepted to follow the session.
    let mut packets = vec![frame(Packet::LoginAccepted(LoginAccepted {
        session: Alpha::new("SESSION001").unwrap(),
        sequence_number: 1,
    }))];
    packets.extend(messages.iter().map(|m| frame(Packet::SequencedData(m.as_wire()))));
    let token = || f("ouch.order_token", "TOKEN000000001");
    let expected = vec![
        vec![f("ouch.event_code", letter('S'))],
        [
            vec![
                token(),
                f("ouch.order_reference_number", 12_345),
                f("ouch.order_state", letter('L')),
            ],
            [
                terms_fields('T', 100, 1_502_500),
                vec![f("ouch.bbo_weight_indicator", letter(' '))],
            ]
            .concat(),
        ]
        .concat(),
        [
            vec![
                f("ouch.replacement_order_token", "TOKEN000000002"),
                f("ouch.previous_order_token", "TOKEN000000001"),
                f("ouch.order_reference_number", 12_346),
                f("ouch.order_state", letter('D')),
            ],
            terms_fields('B', 300, 1_502_700),
            vec![f("ouch.bbo_weight_indicator", letter(' '))],
        ]
        .concat(),
        vec![
            token(),
            f("ouch.decrement_shares", 60),
            f("ouch.cancel_reason", letter('T')),
        ],
        vec![
            token(),
            f("ouch.decrement_shares", 61),
            f("ouch.cancel_reason", letter('Q')),
            f("ouch.quantity_prevented_from_trading", 62),
            f("ouch.execution_price", 1_502_800),
            f("ouch.liquidity_flag", letter('R')),
        ],
        vec![
            token(),
            f("ouch.executed_shares", 63),
            f("ouch.execution_price", 1_502_900),
            f("ouch.liquidity_flag", letter('A')),
            f("ouch.match_number", 77),
        ],
        vec![
            token(),
            f("ouch.match_number", 78),
            f("ouch.broken_trade_reason", letter('S')),
        ],
        vec![
            token(),
            f("ouch.match_number", 79),
            f("ouch.new_execution_price", 1_503_000),
            f("ouch.price_correction_reason", letter('X')),
        ],
        vec![token(), f("ouch.reject_reason", letter('X'))],
        vec![token()],
        vec![token()],
        vec![
            token(),
            f("ouch.buy_sell_indicator", letter('S')),
            f("ouch.shares", 64),
        ],
    ];
    let types = ['S', 'A', 'U', 'C', 'D', 'E', 'B', 'K', 'J', 'P', 'I', 'M'];
    let expected = tagged(expected, &types, Some(f("ouch.timestamp", TS_SHOWN)));
    check(Transport::Tcp { to_server: false }, packets, &expected);
}
