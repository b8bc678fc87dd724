//! `bourse_book::feed::FeedBook`: hand-built ITCH sequences give the expected depth and priority, bad input is a
//! typed error that leaves the book unchanged, and random adds/cancels/executes/replaces agree with a naive model.

use bourse_book::feed::{FeedBook, FeedBookLimits, FeedError, RestingOrder};
use bourse_protocol::fields::{Alpha, Firm, Symbol};
use bourse_protocol::itch::{
    AddOrder, AddOrderMpid, BrokenTrade, EventCode, Header, Message, OrderCancel, OrderDelete, OrderExecuted,
    OrderExecutedWithPrice, OrderReplace, Side, SnapshotEnd, StockDirectory, SystemEvent, Timestamp48, Trade,
    TradingAction, TradingState,
};
use proptest::prelude::*;

fn header(locate: u16, ns: u64) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 0,
        timestamp: Timestamp48::new(ns).unwrap(),
    }
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

fn directory(locate: u16, stock: &str) -> Message {
    Message::StockDirectory(StockDirectory::bourse(header(locate, 1), sym(stock), 100))
}

fn add(locate: u16, stock: &str, reference: u64, side: Side, shares: u32, price: u32, ns: u64) -> Message {
    Message::AddOrder(AddOrder {
        header: header(locate, ns),
        order_reference_number: reference,
        side,
        shares,
        stock: sym(stock),
        price,
    })
}

fn executed(locate: u16, reference: u64, shares: u32) -> Message {
    Message::OrderExecuted(OrderExecuted {
        header: header(locate, 50),
        order_reference_number: reference,
        executed_shares: shares,
        match_number: 1,
    })
}

fn cancel(locate: u16, reference: u64, shares: u32) -> Message {
    Message::OrderCancel(OrderCancel {
        header: header(locate, 60),
        order_reference_number: reference,
        canceled_shares: shares,
    })
}

fn delete(locate: u16, reference: u64) -> Message {
    Message::OrderDelete(OrderDelete {
        header: header(locate, 70),
        order_reference_number: reference,
    })
}

fn replace(locate: u16, original: u64, new: u64, shares: u32, price: u32, ns: u64) -> Message {
    Message::OrderReplace(OrderReplace {
        header: header(locate, ns),
        original_order_reference_number: original,
        new_order_reference_number: new,
        shares,
        price,
    })
}

fn limits() -> FeedBookLimits {
    FeedBookLimits {
        locates_max: 4,
        orders_max: 64,
        levels_max: 8,
    }
}

/// A book with AAPL at locate 1 and MSFT at locate 2.
fn book() -> FeedBook {
    let mut book = FeedBook::new(limits());
    book.apply(&Message::SystemEvent(SystemEvent {
        header: header(0, 1),
        event_code: EventCode::StartOfMessages,
    }))
    .unwrap();
    book.apply(&directory(1, "AAPL")).unwrap();
    book.apply(&directory(2, "MSFT")).unwrap();
    book
}

fn refs(book: &FeedBook, locate: u16, side: Side) -> Vec<u64> {
    book.orders(locate, side).map(|o| o.reference).collect()
}

#[test]
fn a_sequence_of_messages_gives_the_expected_depth_and_priority() {
    let mut b = book();
    b.apply(&add(1, "AAPL", 1, Side::Buy, 100, 1_000_000, 10))
        .unwrap();
    b.apply(&add(1, "AAPL", 2, Side::Buy, 200, 1_000_000, 11))
        .unwrap();
    b.apply(&add(1, "AAPL", 3, Side::Buy, 300, 990_000, 12)).unwrap();
    b.apply(&Message::AddOrderMpid(AddOrderMpid {
        header: header(1, 13),
        order_reference_number: 4,
        side: Side::Sell,
        shares: 400,
        stock: sym("AAPL"),
        price: 1_010_000,
        attribution: Firm::new("FIRM").unwrap(),
    }))
    .unwrap();
    b.apply(&add(1, "AAPL", 5, Side::Sell, 500, 1_020_000, 14))
        .unwrap();
    b.apply(&add(2, "MSFT", 6, Side::Sell, 100, 3_000_000, 15))
        .unwrap();

    let (bids, asks) = b.depth(1, 10).unwrap();
    assert_eq!(bids, vec![(1_000_000, 300, 2), (990_000, 300, 1)]);
    assert_eq!(asks, vec![(1_010_000, 400, 1), (1_020_000, 500, 1)]);
    assert_eq!(
        b.depth(sym("MSFT"), 10).unwrap(),
        (vec![], vec![(3_000_000, 100, 1)])
    );
    assert_eq!(b.depth(1, 1).unwrap().0, vec![(1_000_000, 300, 2)]);
    assert!(b.depth(3, 10).is_none());
    assert!(b.depth(sym("NOPE"), 10).is_none());

    // Partial execution keeps priority; executed with price too; cancel keeps priority.
    b.apply(&executed(1, 1, 40)).unwrap();
    b.apply(&Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
        header: header(1, 20),
        order_reference_number: 1,
        executed_shares: 10,
        match_number: 2,
        printable: true,
        execution_price: 1_000_100,
    }))
    .unwrap();
    b.apply(&cancel(1, 2, 50)).unwrap();
    assert_eq!(refs(&b, 1, Side::Buy), vec![1, 2, 3]);
    assert_eq!(
        b.depth(1, 10).unwrap().0,
        vec![(1_000_000, 200, 2), (990_000, 300, 1)]
    );

    // A full execution removes the order (no Delete follows).
    b.apply(&executed(1, 1, 50)).unwrap();
    assert_eq!(refs(&b, 1, Side::Buy), vec![2, 3]);
    assert!(b.order(1).is_none());

    // Replace at the same price goes to the back of the level, with the replace's timestamp.
    b.apply(&add(1, "AAPL", 7, Side::Buy, 100, 1_000_000, 21))
        .unwrap();
    b.apply(&replace(1, 2, 8, 150, 1_000_000, 22)).unwrap();
    assert_eq!(refs(&b, 1, Side::Buy), vec![7, 8, 3]);
    let replaced = b.order(8).unwrap();
    assert_eq!(replaced.timestamp.ns(), 22);
    assert_eq!(
        (replaced.side, replaced.shares, replaced.price),
        (Side::Buy, 150, 1_000_000)
    );
    // Replace to a new better price makes a new level; the attribution stays.
    b.apply(&replace(1, 4, 9, 400, 1_005_000, 23)).unwrap();
    assert_eq!(b.order(9).unwrap().attribution, Some(Firm::new("FIRM").unwrap()));
    assert_eq!(
        b.depth(1, 10).unwrap().1,
        vec![(1_005_000, 400, 1), (1_020_000, 500, 1)]
    );

    // Delete, trade and broken trade.
    b.apply(&delete(1, 3)).unwrap();
    b.apply(&Message::Trade(Trade {
        header: header(1, 30),
        order_reference_number: 0,
        side: Side::Buy,
        shares: 1,
        stock: sym("AAPL"),
        price: 1,
        match_number: 3,
    }))
    .unwrap();
    b.apply(&Message::BrokenTrade(BrokenTrade {
        header: header(1, 31),
        match_number: 3,
    }))
    .unwrap();
    assert_eq!(b.depth(1, 10).unwrap().0, vec![(1_000_000, 250, 2)]);

    // Trading state and system event.
    assert_eq!(b.trading_state(1), None);
    b.apply(&Message::TradingAction(TradingAction {
        header: header(1, 32),
        stock: sym("AAPL"),
        trading_state: TradingState::Halted,
        reserved: b' ',
        reason: Alpha::BLANK,
    }))
    .unwrap();
    assert!(b.is_halted(1));
    assert!(!b.is_halted(2));
    b.apply(&Message::SystemEvent(SystemEvent {
        header: header(0, 33),
        event_code: EventCode::StartOfMarketHours,
    }))
    .unwrap();
    assert_eq!(b.last_event_code(), Some(EventCode::StartOfMarketHours));
    assert_eq!(
        b.directories().map(|d| d.stock).collect::<Vec<_>>(),
        vec![sym("AAPL"), sym("MSFT")]
    );
    assert_eq!(b.locate_of(sym("MSFT")), Some(2));
    assert_eq!(b.live_orders(), 5);
    // 3 setup + 6 adds + 2 exec + cancel + exec + add + 2 replaces + delete + trade + broken + H + S.
    assert_eq!(b.messages_applied(), 21);
}

#[test]
fn bytes_round_trip_through_apply_bytes() {
    let mut b = book();
    let mut buf = [0u8; 64];
    let n = add(1, "AAPL", 1, Side::Sell, 100, 500, 9)
        .encode(&mut buf)
        .unwrap();
    b.apply_bytes(&buf[..n]).unwrap();
    assert_eq!(b.depth(1, 5).unwrap().1, vec![(500, 100, 1)]);
    assert!(matches!(b.apply_bytes(&buf[..n - 1]), Err(FeedError::Decode(_))));
    assert!(matches!(b.apply_bytes(&[]), Err(FeedError::Decode(_))));
}

/// The prefetch address of a message: one place for every message that names reference `r` (the bucket a
/// lookup of `r` starts at), none for adds, directory entries and bytes too short to name an order.
#[test]
fn lookup_address_names_the_bucket_of_the_referenced_order() {
    let b = book();
    let bytes = |m: Message| {
        let mut buf = [0u8; 64];
        let n = m.encode(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let named = [
        bytes(executed(1, 7, 10)),
        bytes(cancel(1, 7, 10)),
        bytes(delete(1, 7)),
        bytes(replace(1, 7, 8, 100, 500, 9)),
    ];
    let home = b.lookup_address(&named[0]).expect("an execution names an order");
    for m in &named {
        assert_eq!(b.lookup_address(m), Some(home), "message {}", m[0] as char);
    }
    assert_ne!(
        b.lookup_address(&bytes(delete(1, 8))),
        Some(home),
        "the next reference's bucket"
    );
    assert_eq!(
        b.lookup_address(&bytes(add(1, "AAPL", 7, Side::Sell, 100, 500, 9))),
        None
    );
    assert_eq!(b.lookup_address(&bytes(directory(1, "AAPL"))), None);
    assert_eq!(
        b.lookup_address(&named[2][..18]),
        None,
        "too short to hold the reference"
    );
    assert_eq!(b.lookup_address(&[]), None);
}

/// `slot_address` names the slot of the live order a message names (one address per order, the same for
/// every message naming it), and nothing for an unknown reference, an add or bytes too short.
#[test]
fn slot_address_names_the_slot_of_the_referenced_live_order() {
    let mut b = book();
    let bytes = |m: Message| {
        let mut buf = [0u8; 64];
        let n = m.encode(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    assert_eq!(b.slot_address(&bytes(delete(1, 7))), None, "not added yet");
    b.apply(&add(1, "AAPL", 7, Side::Sell, 100, 500, 9)).unwrap();
    b.apply(&add(1, "AAPL", 8, Side::Buy, 100, 400, 10)).unwrap();
    let seven = b.slot_address(&bytes(delete(1, 7))).expect("order 7 is live");
    for m in [
        bytes(executed(1, 7, 10)),
        bytes(cancel(1, 7, 10)),
        bytes(replace(1, 7, 9, 100, 500, 11)),
    ] {
        assert_eq!(b.slot_address(&m), Some(seven), "message {}", m[0] as char);
    }
    let eight = b.slot_address(&bytes(delete(1, 8))).expect("order 8 is live");
    assert_ne!(seven, eight);
    assert_eq!(
        b.slot_address(&bytes(add(1, "AAPL", 9, Side::Sell, 100, 500, 12))),
        None
    );
    assert_eq!(b.slot_address(&bytes(delete(1, 7))[..18]), None);
    b.apply(&delete(1, 7)).unwrap();
    assert_eq!(b.slot_address(&bytes(delete(1, 7))), None, "deleted");
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let mut b = book();
    b.apply(&add(1, "AAPL", 1, Side::Buy, 100, 1_000, 10)).unwrap();
    let applied = b.messages_applied();
    let before = (b.depth(1, 10), refs(&b, 1, Side::Buy));
    let cases: Vec<(Message, FeedError)> = vec![
        (executed(1, 99, 1), FeedError::UnknownOrder { reference: 99 }),
        (cancel(1, 99, 1), FeedError::UnknownOrder { reference: 99 }),
        (delete(1, 99), FeedError::UnknownOrder { reference: 99 }),
        (
            replace(1, 99, 100, 1, 1, 1),
            FeedError::UnknownOrder { reference: 99 },
        ),
        (
            executed(1, 1, 101),
            FeedError::BadShares {
                reference: 1,
                shares: 101,
                open: 100,
            },
        ),
        (
            cancel(1, 1, 0),
            FeedError::BadShares {
                reference: 1,
                shares: 0,
                open: 100,
            },
        ),
        (
            add(1, "AAPL", 1, Side::Buy, 1, 1, 1),
            FeedError::DuplicateOrder { reference: 1 },
        ),
        (
            replace(1, 1, 1, 1, 1, 1),
            FeedError::DuplicateOrder { reference: 1 },
        ),
        (
            add(1, "AAPL", 2, Side::Buy, 0, 1, 1),
            FeedError::ZeroShares { reference: 2 },
        ),
        (replace(1, 1, 2, 0, 1, 1), FeedError::ZeroShares { reference: 2 }),
        (
            add(1, "MSFT", 2, Side::Buy, 1, 1, 1),
            FeedError::StockMismatch {
                locate: 1,
                stock: sym("MSFT"),
            },
        ),
        (
            add(3, "IBM", 2, Side::Buy, 1, 1, 1),
            FeedError::UnknownLocate { locate: 3 },
        ),
        (
            add(0, "AAPL", 2, Side::Buy, 1, 1, 1),
            FeedError::LocateOutOfRange {
                locate: 0,
                locates_max: 4,
            },
        ),
        (
            directory(5, "X"),
            FeedError::LocateOutOfRange {
                locate: 5,
                locates_max: 4,
            },
        ),
        (
            Message::SnapshotEnd(SnapshotEnd { sequence_number: 1 }),
            FeedError::NotAFeedMessage { message_type: b'G' },
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(b.apply(&message), Err(expected), "{message:?}");
        assert_eq!((b.depth(1, 10), refs(&b, 1, Side::Buy)), before, "{message:?}");
    }
    assert_eq!(b.messages_applied(), applied);
}

#[test]
fn limits_are_errors_not_growth() {
    let mut b = FeedBook::new(FeedBookLimits {
        locates_max: 1,
        orders_max: 3,
        levels_max: 2,
    });
    b.apply(&directory(1, "AAPL")).unwrap();
    b.apply(&add(1, "AAPL", 1, Side::Buy, 1, 10, 1)).unwrap();
    b.apply(&add(1, "AAPL", 2, Side::Buy, 1, 20, 1)).unwrap();
    assert_eq!(
        b.apply(&add(1, "AAPL", 3, Side::Buy, 1, 30, 1)),
        Err(FeedError::LevelsFull {
            locate: 1,
            side: Side::Buy,
            levels_max: 2
        })
    );
    // Joining an existing level is fine; the other side has its own levels.
    b.apply(&add(1, "AAPL", 3, Side::Buy, 1, 20, 1)).unwrap();
    assert_eq!(
        b.apply(&add(1, "AAPL", 4, Side::Sell, 1, 40, 1)),
        Err(FeedError::OrdersFull { orders_max: 3 })
    );
    // A replace frees its slot first, and its level when alone there.
    b.apply(&replace(1, 1, 5, 1, 30, 2)).unwrap();
    assert_eq!(b.depth(1, 5).unwrap().0, vec![(30, 1, 1), (20, 2, 2)]);
    // Not alone: the new level does not fit.
    assert!(matches!(
        b.apply(&replace(1, 2, 6, 1, 40, 3)),
        Err(FeedError::LevelsFull { .. })
    ));
    b.clear();
    assert_eq!(b.live_orders(), 0);
    assert!(b.depth(1, 5).is_none());
    b.apply(&directory(1, "AAPL")).unwrap();
    for r in 1..=3 {
        b.apply(&add(1, "AAPL", r, Side::Sell, 1, 10, 1)).unwrap();
    }
    assert_eq!(refs(&b, 1, Side::Sell), vec![1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------------------
// Against a naive model: a plain list of orders in arrival order.

#[derive(Clone, Debug)]
enum Op {
    Add { side: bool, price: u32, shares: u32 },
    Execute { pick: usize, shares: u32 },
    Cancel { pick: usize, shares: u32 },
    Delete { pick: usize },
    Replace { pick: usize, price: u32, shares: u32 },
    Unknown { reference: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 95u32..105, 1u32..500).prop_map(|(side, price, shares)| Op::Add { side, price, shares }),
        2 => (any::<usize>(), 1u32..500).prop_map(|(pick, shares)| Op::Execute { pick, shares }),
        2 => (any::<usize>(), 1u32..500).prop_map(|(pick, shares)| Op::Cancel { pick, shares }),
        1 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        2 => (any::<usize>(), 95u32..105, 1u32..500).prop_map(|(pick, price, shares)| Op::Replace { pick, price, shares }),
        1 => (1_000_000u64..1_000_010).prop_map(|reference| Op::Unknown { reference }),
    ]
}

/// Model orders: (reference, side, price, shares, arrival number).
type ModelOrder = (u64, Side, u32, u32, u64);

fn model_depth(model: &[ModelOrder], side: Side) -> Vec<(u32, u64, u32)> {
    let mut prices: Vec<u32> = model.iter().filter(|o| o.1 == side).map(|o| o.2).collect();
    prices.sort_unstable();
    prices.dedup();
    if side == Side::Buy {
        prices.reverse();
    }
    prices
        .into_iter()
        .map(|p| {
            let at: Vec<_> = model.iter().filter(|o| o.1 == side && o.2 == p).collect();
            (p, at.iter().map(|o| u64::from(o.3)).sum(), at.len() as u32)
        })
        .collect()
}

fn model_priority(model: &[ModelOrder], side: Side) -> Vec<(u64, u32, u32)> {
    let mut orders: Vec<ModelOrder> = model.iter().filter(|o| o.1 == side).copied().collect();
    orders.sort_by_key(|o| (if side == Side::Buy { u32::MAX - o.2 } else { o.2 }, o.4));
    orders.iter().map(|o| (o.0, o.2, o.3)).collect()
}

proptest! {
    #[test]
    fn random_streams_agree_with_a_naive_model(ops in proptest::collection::vec(op(), 1..300)) {
        let mut b = FeedBook::new(FeedBookLimits { locates_max: 1, orders_max: 1024, levels_max: 16 });
        b.apply(&directory(1, "AAPL")).unwrap();
        let mut model: Vec<ModelOrder> = Vec::new();
        let mut next_reference = 1u64;
        let mut arrival = 0u64;
        for op in ops {
            arrival += 1;
            match op {
                Op::Add { side, price, shares } => {
                    let side = if side { Side::Buy } else { Side::Sell };
                    b.apply(&add(1, "AAPL", next_reference, side, shares, price, arrival)).unwrap();
                    model.push((next_reference, side, price, shares, arrival));
                    next_reference += 1;
                }
                Op::Execute { pick, shares } | Op::Cancel { pick, shares } if !model.is_empty() => {
                    let i = pick % model.len();
                    let (reference, open) = (model[i].0, model[i].3);
                    let message = if matches!(op, Op::Execute { .. }) { executed(1, reference, shares) } else { cancel(1, reference, shares) };
                    let result = b.apply(&message);
                    if shares > open {
                        prop_assert_eq!(result, Err(FeedError::BadShares { reference, shares, open }));
                    } else {
                        prop_assert_eq!(result, Ok(()));
                        model[i].3 -= shares;
                        if model[i].3 == 0 {
                            model.remove(i);
                        }
                    }
                }
                Op::Delete { pick } if !model.is_empty() => {
                    let i = pick % model.len();
                    b.apply(&delete(1, model[i].0)).unwrap();
                    model.remove(i);
                }
                Op::Replace { pick, price, shares } if !model.is_empty() => {
                    let i = pick % model.len();
                    b.apply(&replace(1, model[i].0, next_reference, shares, price, arrival)).unwrap();
                    let side = model[i].1;
                    model.remove(i);
                    model.push((next_reference, side, price, shares, arrival));
                    next_reference += 1;
                }
                Op::Unknown { reference } => {
                    prop_assert_eq!(b.apply(&delete(1, reference)), Err(FeedError::UnknownOrder { reference }));
                }
                _ => {}
            }
            for side in [Side::Buy, Side::Sell] {
                let (bids, asks) = b.depth(1, usize::MAX).unwrap();
                let got = if side == Side::Buy { bids } else { asks };
                prop_assert_eq!(got, model_depth(&model, side));
                let priority: Vec<(u64, u32, u32)> =
                    b.orders(1, side).map(|o: RestingOrder| (o.reference, o.price, o.shares)).collect();
                prop_assert_eq!(priority, model_priority(&model, side));
            }
            prop_assert_eq!(b.live_orders() as usize, model.len());
        }
    }
}

proptest! {
    /// A small order table (32 buckets for 16 orders) under random references: adds, deletes, duplicates and a
    /// full table agree with a plain set, so the index's probing and backward-shift deletion keep every order
    /// reachable. Half the references are another's plus 2^32 (the same low 32 bits, which the buckets keep).
    #[test]
    fn the_reference_index_agrees_with_a_set_under_collisions(
        ops in proptest::collection::vec((any::<bool>(), 0u64..200, any::<bool>(), any::<usize>()), 1..400)
    ) {
        let mut b = FeedBook::new(FeedBookLimits { locates_max: 1, orders_max: 16, levels_max: 64 });
        b.apply(&directory(1, "AAPL")).unwrap();
        let mut live: Vec<u64> = Vec::new();
        for (is_add, low, high, pick) in ops {
            let reference = low | (u64::from(high) << 32);
            if is_add || live.is_empty() {
                let result = b.apply(&add(1, "AAPL", reference, Side::Buy, 1, 100 + (reference % 50) as u32, 1));
                if live.contains(&reference) {
                    prop_assert_eq!(result, Err(FeedError::DuplicateOrder { reference }));
                } else if live.len() == 16 {
                    prop_assert_eq!(result, Err(FeedError::OrdersFull { orders_max: 16 }));
                } else {
                    prop_assert_eq!(result, Ok(()));
                    live.push(reference);
                }
            } else {
                let reference = live.swap_remove(pick % live.len());
                prop_assert_eq!(b.apply(&delete(1, reference)), Ok(()));
            }
            for r in (0u64..200).flat_map(|low| [low, low | 1 << 32]) {
                prop_assert_eq!(b.order(r).is_some(), live.contains(&r), "reference {}", r);
            }
            prop_assert_eq!(b.live_orders() as usize, live.len());
        }
    }
}
