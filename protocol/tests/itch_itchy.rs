//! Independent decoder: the `itchy` crate (0.3.4) reads our ITCH 5.0 bytes back with the same field values,
//! for every message type it supports (all of ours except bourse's own `G` snapshot end marker).
//!
//! itchy reads a stream of u16-length-prefixed messages, i.e. the blocks of MoldUDP64 packets.

mod itch_strategy;

use std::io::Cursor;

use bourse_protocol::fields::Alpha;
use bourse_protocol::itch::*;
use itchy::Body;
use proptest::prelude::*;

fn itchy_side(side: Side) -> itchy::Side {
    match side {
        Side::Buy => itchy::Side::Buy,
        Side::Sell => itchy::Side::Sell,
    }
}

fn text<const N: usize>(a: &Alpha<N>) -> &str {
    std::str::from_utf8(&a.0).unwrap()
}

fn yes_no(b: u8) -> bool {
    b == b'Y'
}

fn maybe_yes_no(b: u8) -> Option<bool> {
    match b {
        b'Y' => Some(true),
        b'N' => Some(false),
        _ => None,
    }
}

/// Asserts that itchy's reading of our message has the same field values.
fn assert_same(ours: &Message, theirs: &itchy::Message) {
    let header = ours.header().unwrap();
    assert_eq!(theirs.tag, ours.message_type());
    assert_eq!(theirs.stock_locate, header.stock_locate);
    assert_eq!(theirs.tracking_number, header.tracking_number);
    assert_eq!(theirs.timestamp, header.timestamp.ns());
    match (ours, &theirs.body) {
        (Message::SystemEvent(m), Body::SystemEvent { event }) => {
            let expected = match m.event_code {
                EventCode::StartOfMessages => itchy::EventCode::StartOfMessages,
                EventCode::StartOfSystemHours => itchy::EventCode::StartOfSystemHours,
                EventCode::StartOfMarketHours => itchy::EventCode::StartOfMarketHours,
                EventCode::EndOfMarketHours => itchy::EventCode::EndOfMarketHours,
                EventCode::EndOfSystemHours => itchy::EventCode::EndOfSystemHours,
                EventCode::EndOfMessages => itchy::EventCode::EndOfMessages,
            };
            assert_eq!(*event, expected);
        }
        (Message::StockDirectory(m), Body::StockDirectory(d)) => {
            assert_eq!(d.stock.as_str(), text(&m.stock));
            assert_eq!(d.round_lot_size, m.round_lot_size);
            assert_eq!(d.round_lots_only, yes_no(m.round_lots_only));
            assert_eq!(d.authenticity, m.authenticity == b'P');
            assert_eq!(
                d.short_sale_threshold,
                maybe_yes_no(m.short_sale_threshold_indicator)
            );
            assert_eq!(d.ipo_flag, maybe_yes_no(m.ipo_flag));
            assert_eq!(d.etp_flag, maybe_yes_no(m.etp_flag));
            assert_eq!(d.etp_leverage_factor, m.etp_leverage_factor);
            assert_eq!(d.inverse_indicator, yes_no(m.inverse_indicator));
            let category = match m.market_category {
                b'Q' => itchy::MarketCategory::NasdaqGlobalSelect,
                b'G' => itchy::MarketCategory::NasdaqGlobalMarket,
                b'S' => itchy::MarketCategory::NasdaqCapitalMarket,
                b'N' => itchy::MarketCategory::Nyse,
                b'A' => itchy::MarketCategory::NyseMkt,
                b'P' => itchy::MarketCategory::NyseArca,
                b'Z' => itchy::MarketCategory::BatsZExchange,
                b'V' => itchy::MarketCategory::InvestorsExchange,
                _ => itchy::MarketCategory::Unavailable,
            };
            assert_eq!(d.market_category, category);
            let tier = match m.luld_reference_price_tier {
                b'1' => itchy::LuldRefPriceTier::Tier1,
                b'2' => itchy::LuldRefPriceTier::Tier2,
                _ => itchy::LuldRefPriceTier::Na,
            };
            assert_eq!(d.luld_ref_price_tier, tier);
            if m.issue_classification == b'C' {
                assert_eq!(d.issue_classification, itchy::IssueClassification::CommonStock);
            }
            if m.issue_sub_type.0 == *b"Z " {
                assert_eq!(d.issue_subtype, itchy::IssueSubType::NotApplicable);
            }
            if m.financial_status_indicator == b'N' {
                assert_eq!(d.financial_status, itchy::FinancialStatus::Normal);
            }
        }
        (
            Message::TradingAction(m),
            Body::TradingAction {
                stock,
                trading_state,
                reason,
            },
        ) => {
            assert_eq!(stock.as_str(), text(&m.stock));
            assert_eq!(reason.as_str(), text(&m.reason));
            let expected = match m.trading_state {
                TradingState::Halted => itchy::TradingState::Halted,
                TradingState::Paused => itchy::TradingState::Paused,
                TradingState::QuotationOnly => itchy::TradingState::QuotationOnly,
                TradingState::Trading => itchy::TradingState::Trading,
            };
            assert_eq!(*trading_state, expected);
        }
        (Message::AddOrder(m), Body::AddOrder(a)) => {
            assert_eq!(a.reference, m.order_reference_number);
            assert_eq!(a.side, itchy_side(m.side));
            assert_eq!(a.shares, m.shares);
            assert_eq!(a.stock.as_str(), text(&m.stock));
            assert_eq!(a.price.raw(), m.price);
            assert_eq!(a.mpid, None);
        }
        (Message::AddOrderMpid(m), Body::AddOrder(a)) => {
            assert_eq!(a.reference, m.order_reference_number);
            assert_eq!(a.side, itchy_side(m.side));
            assert_eq!(a.shares, m.shares);
            assert_eq!(a.stock.as_str(), text(&m.stock));
            assert_eq!(a.price.raw(), m.price);
            assert_eq!(a.mpid.as_ref().map(|s| s.as_str()), Some(text(&m.attribution)));
        }
        (
            Message::OrderExecuted(m),
            Body::OrderExecuted {
                reference,
                executed,
                match_number,
            },
        ) => {
            assert_eq!(*reference, m.order_reference_number);
            assert_eq!(*executed, m.executed_shares);
            assert_eq!(*match_number, m.match_number);
        }
        (
            Message::OrderExecutedWithPrice(m),
            Body::OrderExecutedWithPrice {
                reference,
                executed,
                match_number,
                printable,
                price,
            },
        ) => {
            assert_eq!(*reference, m.order_reference_number);
            assert_eq!(*executed, m.executed_shares);
            assert_eq!(*match_number, m.match_number);
            assert_eq!(*printable, m.printable);
            assert_eq!(price.raw(), m.execution_price);
        }
        (Message::OrderCancel(m), Body::OrderCancelled { reference, cancelled }) => {
            assert_eq!(*reference, m.order_reference_number);
            assert_eq!(*cancelled, m.canceled_shares);
        }
        (Message::OrderDelete(m), Body::DeleteOrder { reference }) => {
            assert_eq!(*reference, m.order_reference_number);
        }
        (Message::OrderReplace(m), Body::ReplaceOrder(r)) => {
            assert_eq!(r.old_reference, m.original_order_reference_number);
            assert_eq!(r.new_reference, m.new_order_reference_number);
            assert_eq!(r.shares, m.shares);
            assert_eq!(r.price.raw(), m.price);
        }
        (Message::Trade(m), Body::NonCrossTrade(t)) => {
            assert_eq!(t.reference, m.order_reference_number);
            assert_eq!(t.side, itchy_side(m.side));
            assert_eq!(t.shares, m.shares);
            assert_eq!(t.stock.as_str(), text(&m.stock));
            assert_eq!(t.price.raw(), m.price);
            assert_eq!(t.match_number, m.match_number);
        }
        (Message::BrokenTrade(m), Body::BrokenTrade { match_number }) => {
            assert_eq!(*match_number, m.match_number);
        }
        (ours, theirs) => panic!("itchy read {theirs:?} for {ours:?}"),
    }
}

/// Our messages as a u16-length-prefixed stream (MoldUDP64 blocks), read back by itchy.
fn itchy_reads(messages: &[Message]) -> Vec<itchy::Message> {
    let mut stream = Vec::new();
    for m in messages {
        let mut buf = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut buf).unwrap();
        stream.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        stream.extend_from_slice(&buf[..len]);
    }
    itchy::MessageStream::from_reader(Cursor::new(stream))
        .map(|r| r.expect("itchy parses our bytes"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn itchy_reads_our_messages_with_the_same_values(messages in prop::collection::vec(itch_strategy::message(true), 1..40)) {
        let theirs = itchy_reads(&messages);
        prop_assert_eq!(theirs.len(), messages.len());
        for (ours, theirs) in messages.iter().zip(&theirs) {
            assert_same(ours, theirs);
        }
    }
}

#[test]
fn itchy_reads_each_message_type_once() {
    // A fixed stream with one message of each type itchy knows, so a strategy change cannot drop a type.
    let h = Header {
        stock_locate: 7,
        tracking_number: 0,
        timestamp: Timestamp48::new(52_200_000_000_123).unwrap(),
    };
    let stock = bourse_protocol::fields::Symbol::new("AAPL").unwrap();
    let messages = [
        Message::SystemEvent(SystemEvent {
            header: h,
            event_code: EventCode::StartOfMarketHours,
        }),
        Message::StockDirectory(StockDirectory {
            header: h,
            stock,
            market_category: b'Q',
            financial_status_indicator: b'N',
            round_lot_size: 100,
            round_lots_only: b'N',
            issue_classification: b'C',
            issue_sub_type: Alpha(*b"Z "),
            authenticity: b'P',
            short_sale_threshold_indicator: b'N',
            ipo_flag: b' ',
            luld_reference_price_tier: b'1',
            etp_flag: b'N',
            etp_leverage_factor: 0,
            inverse_indicator: b'N',
        }),
        Message::TradingAction(TradingAction {
            header: h,
            stock,
            trading_state: TradingState::Trading,
            reserved: b' ',
            reason: Alpha::BLANK,
        }),
        Message::AddOrder(AddOrder {
            header: h,
            order_reference_number: 12345,
            side: Side::Buy,
            shares: 100,
            stock,
            price: 1_502_500,
        }),
        Message::AddOrderMpid(AddOrderMpid {
            header: h,
            order_reference_number: 12346,
            side: Side::Sell,
            shares: 200,
            stock,
            price: 1_502_600,
            attribution: bourse_protocol::fields::Firm::new("BRSE").unwrap(),
        }),
        Message::OrderExecuted(OrderExecuted {
            header: h,
            order_reference_number: 12345,
            executed_shares: 10,
            match_number: 1,
        }),
        Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
            header: h,
            order_reference_number: 12345,
            executed_shares: 10,
            match_number: 2,
            printable: false,
            execution_price: 1_502_400,
        }),
        Message::OrderCancel(OrderCancel {
            header: h,
            order_reference_number: 12345,
            canceled_shares: 5,
        }),
        Message::OrderReplace(OrderReplace {
            header: h,
            original_order_reference_number: 12345,
            new_order_reference_number: 12347,
            shares: 75,
            price: 1_502_300,
        }),
        Message::OrderDelete(OrderDelete {
            header: h,
            order_reference_number: 12347,
        }),
        Message::Trade(Trade {
            header: h,
            order_reference_number: 0,
            side: Side::Buy,
            shares: 30,
            stock,
            price: 1_502_500,
            match_number: 3,
        }),
        Message::BrokenTrade(BrokenTrade {
            header: h,
            match_number: 3,
        }),
    ];
    let theirs = itchy_reads(&messages);
    assert_eq!(theirs.len(), messages.len());
    for (ours, theirs) in messages.iter().zip(&theirs) {
        assert_same(ours, theirs);
    }
}
