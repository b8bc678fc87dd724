//! ITCH 5.0 property tests: `decode(encode(m)) == m` for every message type, and decoding arbitrary bytes
//! never panics.

use bourse_protocol::fields::Alpha;
use bourse_protocol::itch::*;
use proptest::prelude::*;

fn header() -> impl Strategy<Value = Header> {
    (any::<u16>(), any::<u16>(), 0..=Timestamp48::NS_MAX).prop_map(|(stock_locate, tracking_number, ns)| {
        Header {
            stock_locate,
            tracking_number,
            timestamp: Timestamp48::new(ns).unwrap(),
        }
    })
}

fn alpha<const N: usize>() -> impl Strategy<Value = Alpha<N>> {
    any::<[u8; N]>().prop_map(Alpha)
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn event_code() -> impl Strategy<Value = EventCode> {
    prop::sample::select(vec![
        EventCode::StartOfMessages,
        EventCode::StartOfSystemHours,
        EventCode::StartOfMarketHours,
        EventCode::EndOfMarketHours,
        EventCode::EndOfSystemHours,
        EventCode::EndOfMessages,
    ])
}

fn trading_state() -> impl Strategy<Value = TradingState> {
    prop::sample::select(vec![
        TradingState::Halted,
        TradingState::Paused,
        TradingState::QuotationOnly,
        TradingState::Trading,
    ])
}

fn stock_directory() -> impl Strategy<Value = StockDirectory> {
    (
        header(),
        alpha::<8>(),
        any::<[u8; 4]>(),
        any::<u32>(),
        any::<[u8; 4]>(),
        alpha::<2>(),
        any::<[u8; 3]>(),
        any::<u32>(),
    )
        .prop_map(
            |(header, stock, a, round_lot_size, b, issue_sub_type, c, etp_leverage_factor)| StockDirectory {
                header,
                stock,
                market_category: a[0],
                financial_status_indicator: a[1],
                round_lot_size,
                round_lots_only: a[2],
                issue_classification: a[3],
                issue_sub_type,
                authenticity: b[0],
                short_sale_threshold_indicator: b[1],
                ipo_flag: b[2],
                luld_reference_price_tier: b[3],
                etp_flag: c[0],
                etp_leverage_factor,
                inverse_indicator: c[1],
            },
        )
}

/// Any message of any type, with any field values the types allow.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (header(), event_code())
            .prop_map(|(header, event_code)| Message::SystemEvent(SystemEvent { header, event_code })),
        stock_directory().prop_map(Message::StockDirectory),
        (header(), alpha::<8>(), trading_state(), any::<u8>(), alpha::<4>()).prop_map(
            |(header, stock, trading_state, reserved, reason)| Message::TradingAction(TradingAction {
                header,
                stock,
                trading_state,
                reserved,
                reason
            })
        ),
        (
            header(),
            any::<u64>(),
            side(),
            any::<u32>(),
            alpha::<8>(),
            any::<u32>()
        )
            .prop_map(|(header, order_reference_number, side, shares, stock, price)| {
                Message::AddOrder(AddOrder {
                    header,
                    order_reference_number,
                    side,
                    shares,
                    stock,
                    price,
                })
            }),
        (
            header(),
            any::<u64>(),
            side(),
            any::<u32>(),
            alpha::<8>(),
            any::<u32>(),
            alpha::<4>()
        )
            .prop_map(
                |(header, order_reference_number, side, shares, stock, price, attribution)| {
                    Message::AddOrderMpid(AddOrderMpid {
                        header,
                        order_reference_number,
                        side,
                        shares,
                        stock,
                        price,
                        attribution,
                    })
                }
            ),
        (header(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(
            |(header, order_reference_number, executed_shares, match_number)| {
                Message::OrderExecuted(OrderExecuted {
                    header,
                    order_reference_number,
                    executed_shares,
                    match_number,
                })
            }
        ),
        (
            header(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<bool>(),
            any::<u32>()
        )
            .prop_map(
                |(
                    header,
                    order_reference_number,
                    executed_shares,
                    match_number,
                    printable,
                    execution_price,
                )| {
                    Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
                        header,
                        order_reference_number,
                        executed_shares,
                        match_number,
                        printable,
                        execution_price,
                    })
                }
            ),
        (header(), any::<u64>(), any::<u32>()).prop_map(
            |(header, order_reference_number, canceled_shares)| {
                Message::OrderCancel(OrderCancel {
                    header,
                    order_reference_number,
                    canceled_shares,
                })
            }
        ),
        (header(), any::<u64>()).prop_map(|(header, order_reference_number)| Message::OrderDelete(
            OrderDelete {
                header,
                order_reference_number
            }
        )),
        (header(), any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(header, original_order_reference_number, new_order_reference_number, shares, price)| {
                Message::OrderReplace(OrderReplace {
                    header,
                    original_order_reference_number,
                    new_order_reference_number,
                    shares,
                    price,
                })
            }
        ),
        (
            header(),
            any::<u64>(),
            side(),
            any::<u32>(),
            alpha::<8>(),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(
                |(header, order_reference_number, side, shares, stock, price, match_number)| Message::Trade(
                    Trade {
                        header,
                        order_reference_number,
                        side,
                        shares,
                        stock,
                        price,
                        match_number,
                    }
                )
            ),
        (header(), any::<u64>())
            .prop_map(|(header, match_number)| Message::BrokenTrade(BrokenTrade { header, match_number })),
        prop_oneof![any::<u64>(), 0..1000u64]
            .prop_map(|sequence_number| Message::SnapshotEnd(SnapshotEnd { sequence_number })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_of_encode_is_identity(m in message()) {
        let mut buf = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut buf).unwrap();
        prop_assert_eq!(len, m.len());
        prop_assert_eq!(Some(len), message_len(m.message_type()));
        prop_assert_eq!(buf[0], m.message_type());
        prop_assert_eq!(Message::decode(&buf[..len]), Ok(m));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decoding_bytes_of_the_right_length_never_panics(
        t in prop::sample::select(b"SRHAFECXDUPBG".to_vec()),
        body in prop::collection::vec(any::<u8>(), MESSAGE_LEN_MAX),
    ) {
        let len = message_len(t).unwrap();
        let mut bytes = body[..len].to_vec();
        bytes[0] = t;
        // Whatever it says, a successful decode must re-encode to the same bytes.
        if let Ok(m) = Message::decode(&bytes) {
            let mut buf = [0u8; MESSAGE_LEN_MAX];
            let n = m.encode(&mut buf).unwrap();
            prop_assert_eq!(&buf[..n], &bytes[..]);
        }
    }
}
