//! Test support: proptest strategies for every ITCH message, shared by the round-trip and `itchy` tests.
//!
//! [`message`] with `itchy_readable == false` gives any value the types allow (any bytes in alpha and flag
//! fields, the snapshot end marker included); with `true` only values the `itchy` decoder accepts (printable
//! ASCII, the flag codes it knows, no `G` marker, which it does not know).
#![allow(dead_code, unreachable_pub)]

use bourse_protocol::fields::Alpha;
use bourse_protocol::itch::*;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

fn header() -> impl Strategy<Value = Header> {
    (any::<u16>(), any::<u16>(), 0..=Timestamp48::NS_MAX).prop_map(|(stock_locate, tracking_number, ns)| {
        Header {
            stock_locate,
            tracking_number,
            timestamp: Timestamp48::new(ns).unwrap(),
        }
    })
}

/// An alpha field: any bytes, or printable ASCII only (itchy reads alpha fields as UTF-8 and panics otherwise).
fn alpha<const N: usize>(itchy_readable: bool) -> BoxedStrategy<Alpha<N>> {
    if itchy_readable {
        prop::array::uniform(0x20u8..0x7f).prop_map(Alpha).boxed()
    } else {
        any::<[u8; N]>().prop_map(Alpha).boxed()
    }
}

/// A one-letter flag: one of `codes` when itchy must read it, else any byte.
fn flag(itchy_readable: bool, codes: &[u8]) -> BoxedStrategy<u8> {
    if itchy_readable {
        prop::sample::select(codes.to_vec()).boxed()
    } else {
        any::<u8>().boxed()
    }
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn stock_directory(r: bool) -> impl Strategy<Value = Message> {
    let sub_type = if r {
        prop::sample::select(vec![*b"A ", *b"AI", *b"B ", *b"C ", *b"CB", *b"Z "])
            .prop_map(Alpha)
            .boxed()
    } else {
        alpha::<2>(false)
    };
    (
        (
            header(),
            alpha::<8>(r),
            flag(r, b"QGSNAPZV "),
            flag(r, b"NDEQSGHJKC "),
            any::<u32>(),
            flag(r, b"YN"),
            flag(r, b"ABCFILNOPQRSTUVW"),
            sub_type,
        ),
        (
            flag(r, b"PT"),
            flag(r, b"YN "),
            flag(r, b"YN "),
            flag(r, b" 12"),
            flag(r, b"YN "),
            any::<u32>(),
            flag(r, b"YN"),
        ),
    )
        .prop_map(
            |(
                (
                    header,
                    stock,
                    market_category,
                    financial_status_indicator,
                    round_lot_size,
                    round_lots_only,
                    issue_classification,
                    issue_sub_type,
                ),
                (
                    authenticity,
                    short_sale_threshold_indicator,
                    ipo_flag,
                    luld_reference_price_tier,
                    etp_flag,
                    etp_leverage_factor,
                    inverse_indicator,
                ),
            )| {
                Message::StockDirectory(StockDirectory {
                    header,
                    stock,
                    market_category,
                    financial_status_indicator,
                    round_lot_size,
                    round_lots_only,
                    issue_classification,
                    issue_sub_type,
                    authenticity,
                    short_sale_threshold_indicator,
                    ipo_flag,
                    luld_reference_price_tier,
                    etp_flag,
                    etp_leverage_factor,
                    inverse_indicator,
                })
            },
        )
}

/// Any ITCH message; see the module header for `itchy_readable`.
pub fn message(itchy_readable: bool) -> BoxedStrategy<Message> {
    let r = itchy_readable;
    let typed = prop_oneof![
        (header(), prop::sample::select(b"OSQMEC".to_vec())).prop_map(|(header, code)| {
            Message::SystemEvent(SystemEvent {
                header,
                event_code: EventCode::from_code(code).unwrap(),
            })
        }),
        stock_directory(r),
        (
            header(),
            alpha::<8>(r),
            prop::sample::select(b"HPQT".to_vec()),
            flag(r, b" "),
            alpha::<4>(r)
        )
            .prop_map(|(header, stock, state, reserved, reason)| Message::TradingAction(
                TradingAction {
                    header,
                    stock,
                    trading_state: TradingState::from_code(state).unwrap(),
                    reserved,
                    reason,
                }
            )),
        (
            header(),
            any::<u64>(),
            side(),
            any::<u32>(),
            alpha::<8>(r),
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
            alpha::<8>(r),
            any::<u32>(),
            alpha::<4>(r)
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
        (header(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(header, r, s, m)| {
            Message::OrderExecuted(OrderExecuted {
                header,
                order_reference_number: r,
                executed_shares: s,
                match_number: m,
            })
        }),
        (
            header(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<bool>(),
            any::<u32>()
        )
            .prop_map(|(header, r, s, m, printable, p)| Message::OrderExecutedWithPrice(
                OrderExecutedWithPrice {
                    header,
                    order_reference_number: r,
                    executed_shares: s,
                    match_number: m,
                    printable,
                    execution_price: p,
                }
            )),
        (header(), any::<u64>(), any::<u32>()).prop_map(|(header, r, s)| Message::OrderCancel(OrderCancel {
            header,
            order_reference_number: r,
            canceled_shares: s,
        })),
        (header(), any::<u64>()).prop_map(|(header, r)| Message::OrderDelete(OrderDelete {
            header,
            order_reference_number: r
        })),
        (header(), any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(header, o, n, s, p)| {
                Message::OrderReplace(OrderReplace {
                    header,
                    original_order_reference_number: o,
                    new_order_reference_number: n,
                    shares: s,
                    price: p,
                })
            }
        ),
        (
            header(),
            any::<u64>(),
            side(),
            any::<u32>(),
            alpha::<8>(r),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(
                |(header, r, side, shares, stock, price, m)| Message::Trade(Trade {
                    header,
                    order_reference_number: r,
                    side,
                    shares,
                    stock,
                    price,
                    match_number: m,
                })
            ),
        (header(), any::<u64>()).prop_map(|(header, m)| Message::BrokenTrade(BrokenTrade {
            header,
            match_number: m
        })),
    ];
    if itchy_readable {
        typed.boxed()
    } else {
        let snapshot_end = prop_oneof![any::<u64>(), 0..1000u64]
            .prop_map(|sequence_number| Message::SnapshotEnd(SnapshotEnd { sequence_number }));
        prop_oneof![12 => typed, 1 => snapshot_end].boxed()
    }
}
