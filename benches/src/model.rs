//! A naive reference order book: written for clarity, used to generate the workload and as the expected
//! outcome every engine must reach.
//!
//! Each side is a `BTreeMap` from price to a FIFO queue of order ids; orders live in a `Vec` indexed by
//! id. Cancels are lazy: the order's open quantity drops to zero and the level's total with it, and the
//! dead id is skipped when it reaches the front of its queue (a level whose total reaches zero is removed
//! at once, dead ids and all). Strict price-time priority; fills at the resting order's price.
//!
//! It also answers the questions the generator needs (live orders, touch, side totals), so it keeps a
//! dense list of live ids with each order's slot in it. Not a measured engine's competitor (though the
//! harness times it as a naive baseline); correctness over speed, and it may allocate.

use std::collections::{BTreeMap, VecDeque};

use crate::engine::{BenchBook, BookOutcome, Level};
use crate::workload::{LimitOrder, MarketOrder, Op, OrderId, Side};

const SLOT_NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct RefOrder {
    side: Side,
    price_ticks: u64,
    /// Zero once filled or canceled.
    open_qty: u64,
    /// Index in `live_ids`, or `SLOT_NONE`.
    live_slot: u32,
}

#[derive(Debug, Default)]
struct RefLevel {
    open_qty: u64,
    queue: VecDeque<OrderId>,
}

/// The reference model.
#[derive(Debug, Default)]
pub struct ReferenceBook {
    orders: Vec<Option<RefOrder>>,
    bids: BTreeMap<u64, RefLevel>,
    asks: BTreeMap<u64, RefLevel>,
    live_ids: Vec<OrderId>,
    bid_qty: u64,
    ask_qty: u64,
    traded_volume: u64,
    trade_count: u64,
    rejects: u64,
}

impl ReferenceBook {
    /// An empty book with room for ids below `order_ids_capacity` before it grows.
    pub fn with_capacity(order_ids_capacity: usize) -> Self {
        Self {
            orders: Vec::with_capacity(order_ids_capacity),
            ..Self::default()
        }
    }

    /// Applies one operation (what [`BenchBook::apply`] does, callable without the trait in scope).
    pub fn apply(&mut self, op: &Op) {
        BenchBook::apply(self, op);
    }

    /// Number of live (resting) orders.
    pub fn live_count(&self) -> usize {
        self.live_ids.len()
    }

    /// The `index`-th live order id (`index < live_count()`); the order is arbitrary but deterministic.
    pub fn live_id(&self, index: usize) -> OrderId {
        self.live_ids[index]
    }

    /// The side of a known order.
    ///
    /// # Panics
    /// If `id` was never added (a programmer error).
    pub fn order_side(&self, id: OrderId) -> Side {
        self.orders[id as usize]
            .expect("order_side of an unknown id")
            .side
    }

    /// Best price on `side`, if any order rests there.
    pub fn best_price(&self, side: Side) -> Option<u64> {
        match side {
            Side::Buy => self.bids.keys().next_back().copied(),
            Side::Sell => self.asks.keys().next().copied(),
        }
    }

    /// Midpoint of the touch (or the one side present), in ticks.
    pub fn mid_ticks(&self) -> Option<u64> {
        match (self.best_price(Side::Buy), self.best_price(Side::Sell)) {
            (Some(bid), Some(ask)) => Some((bid + ask) / 2),
            (Some(price), None) | (None, Some(price)) => Some(price),
            (None, None) => None,
        }
    }

    /// Total open quantity resting on `side`.
    pub fn side_qty(&self, side: Side) -> u64 {
        match side {
            Side::Buy => self.bid_qty,
            Side::Sell => self.ask_qty,
        }
    }

    /// Quantity resting on the side opposite `taker_side` at prices a limit at `limit_ticks` reaches.
    pub fn crossable_qty(&self, taker_side: Side, limit_ticks: u64) -> u64 {
        match taker_side {
            Side::Buy => self
                .asks
                .range(..=limit_ticks)
                .map(|(_, level)| level.open_qty)
                .sum(),
            Side::Sell => self
                .bids
                .range(limit_ticks..)
                .map(|(_, level)| level.open_qty)
                .sum(),
        }
    }

    /// The outcome so far (same as [`BenchBook::outcome`]).
    pub fn outcome_now(&self) -> BookOutcome {
        BenchBook::outcome(self)
    }

    fn side_qty_mut(&mut self, side: Side) -> &mut u64 {
        match side {
            Side::Buy => &mut self.bid_qty,
            Side::Sell => &mut self.ask_qty,
        }
    }

    fn unlist_live(&mut self, id: OrderId) {
        let slot = self.orders[id as usize].as_ref().expect("live order").live_slot;
        assert_ne!(slot, SLOT_NONE, "order {id} is not listed as live");
        let last = self.live_ids.pop().expect("live list holds the order");
        if last != id {
            self.live_ids[slot as usize] = last;
            self.orders[last as usize]
                .as_mut()
                .expect("moved live order")
                .live_slot = slot;
        }
        self.orders[id as usize].as_mut().expect("live order").live_slot = SLOT_NONE;
    }

    /// Matches a taker against the opposite side; returns the quantity left.
    fn take(&mut self, taker_side: Side, limit_ticks: Option<u64>, mut qty: u64) -> u64 {
        while qty > 0 {
            let maker_side = taker_side.opposite();
            let levels = match maker_side {
                Side::Buy => &mut self.bids,
                Side::Sell => &mut self.asks,
            };
            let mut entry = match maker_side {
                Side::Buy => match levels.last_entry() {
                    Some(entry) => entry,
                    None => break,
                },
                Side::Sell => match levels.first_entry() {
                    Some(entry) => entry,
                    None => break,
                },
            };
            let price_ticks = *entry.key();
            let crosses = match (taker_side, limit_ticks) {
                (_, None) => true,
                (Side::Buy, Some(limit)) => price_ticks <= limit,
                (Side::Sell, Some(limit)) => price_ticks >= limit,
            };
            if !crosses {
                break;
            }
            let level = entry.get_mut();
            let mut filled_makers: Vec<OrderId> = Vec::new();
            let mut level_traded = 0;
            while qty > 0 && level.open_qty > 0 {
                let maker_id = *level
                    .queue
                    .front()
                    .expect("a level with open quantity has orders");
                let maker = self.orders[maker_id as usize]
                    .as_mut()
                    .expect("queued order exists");
                if maker.open_qty == 0 {
                    level.queue.pop_front();
                    continue;
                }
                let fill = qty.min(maker.open_qty);
                maker.open_qty -= fill;
                level.open_qty -= fill;
                qty -= fill;
                level_traded += fill;
                self.trade_count += 1;
                self.traded_volume += fill;
                if maker.open_qty == 0 {
                    level.queue.pop_front();
                    filled_makers.push(maker_id);
                }
            }
            if level.open_qty == 0 {
                entry.remove();
            }
            *self.side_qty_mut(maker_side) -= level_traded;
            for maker_id in filled_makers {
                self.unlist_live(maker_id);
            }
        }
        qty
    }

    fn rest(&mut self, order: &LimitOrder, qty: u64) {
        let levels = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels.entry(order.price_ticks).or_default();
        level.open_qty += qty;
        level.queue.push_back(order.id);
        *self.side_qty_mut(order.side) += qty;
        let slot = u32::try_from(self.live_ids.len()).expect("live orders fit in u32");
        self.live_ids.push(order.id);
        let record = self.orders[order.id as usize]
            .as_mut()
            .expect("order recorded before resting");
        record.open_qty = qty;
        record.live_slot = slot;
    }

    fn record_new(&mut self, id: OrderId, side: Side, price_ticks: u64) -> bool {
        let index = id as usize;
        if index >= self.orders.len() {
            self.orders.resize(index + 1, None);
        }
        if self.orders[index].is_some() {
            return false;
        }
        self.orders[index] = Some(RefOrder {
            side,
            price_ticks,
            open_qty: 0,
            live_slot: SLOT_NONE,
        });
        true
    }
}

fn depth(levels: &BTreeMap<u64, RefLevel>, best_first_descending: bool) -> Vec<Level> {
    let to_level = |(price, level): (&u64, &RefLevel)| Level {
        price_ticks: *price,
        qty: level.open_qty,
    };
    if best_first_descending {
        levels.iter().rev().map(to_level).collect()
    } else {
        levels.iter().map(to_level).collect()
    }
}

impl BenchBook for ReferenceBook {
    fn name(&self) -> &'static str {
        "reference model (BTreeMap + VecDeque)"
    }

    fn add_limit(&mut self, order: &LimitOrder) {
        if order.qty == 0 || !self.record_new(order.id, order.side, order.price_ticks) {
            self.rejects += 1;
            return;
        }
        let left = self.take(order.side, Some(order.price_ticks), order.qty);
        if left > 0 {
            self.rest(order, left);
        }
    }

    fn cancel(&mut self, id: OrderId) {
        let Some(Some(order)) = self.orders.get(id as usize).copied() else {
            self.rejects += 1;
            return;
        };
        if order.open_qty == 0 {
            self.rejects += 1;
            return;
        }
        let levels = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = levels
            .get_mut(&order.price_ticks)
            .expect("a live order's level exists");
        level.open_qty -= order.open_qty;
        if level.open_qty == 0 {
            levels.remove(&order.price_ticks);
        }
        *self.side_qty_mut(order.side) -= order.open_qty;
        self.orders[id as usize].as_mut().expect("known order").open_qty = 0;
        self.unlist_live(id);
    }

    fn market(&mut self, order: &MarketOrder) {
        if order.qty == 0 || !self.record_new(order.id, order.side, 0) {
            self.rejects += 1;
            return;
        }
        self.take(order.side, None, order.qty);
    }

    fn outcome(&self) -> BookOutcome {
        BookOutcome {
            bids: depth(&self.bids, true),
            asks: depth(&self.asks, false),
            traded_volume: self.traded_volume,
            trade_count: self.trade_count,
            rejects: self.rejects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReferenceBook;
    use crate::engine::{BenchBook, Level};
    use crate::workload::{LimitOrder, MarketOrder, Side};

    fn limit(id: u64, side: Side, price_ticks: u64, qty: u64) -> LimitOrder {
        LimitOrder {
            id,
            side,
            price_ticks,
            qty,
        }
    }

    #[test]
    fn fifo_within_a_level_and_fills_at_resting_price() {
        let mut book = ReferenceBook::default();
        book.add_limit(&limit(1, Side::Sell, 101, 10));
        book.add_limit(&limit(2, Side::Sell, 101, 10));
        book.add_limit(&limit(3, Side::Sell, 102, 10));
        // Takes all of order 1, half of order 2; order 3 untouched.
        book.add_limit(&limit(4, Side::Buy, 105, 15));
        let outcome = book.outcome_now();
        assert_eq!(outcome.trade_count, 2);
        assert_eq!(outcome.traded_volume, 15);
        assert_eq!(
            outcome.asks,
            vec![
                Level {
                    price_ticks: 101,
                    qty: 5
                },
                Level {
                    price_ticks: 102,
                    qty: 10
                }
            ]
        );
        assert!(outcome.bids.is_empty());
        assert_eq!(book.live_count(), 2);
        // Order 1 is gone (filled): canceling it is a reject; order 2 cancels its remaining 5.
        book.cancel(1);
        book.cancel(2);
        let outcome = book.outcome_now();
        assert_eq!(outcome.rejects, 1);
        assert_eq!(
            outcome.asks,
            vec![Level {
                price_ticks: 102,
                qty: 10
            }]
        );
    }

    #[test]
    fn aggressive_remainder_rests_and_market_never_rests() {
        let mut book = ReferenceBook::default();
        book.add_limit(&limit(1, Side::Buy, 99, 5));
        book.add_limit(&limit(2, Side::Sell, 98, 8));
        let outcome = book.outcome_now();
        assert_eq!(
            outcome.asks,
            vec![Level {
                price_ticks: 98,
                qty: 3
            }]
        );
        assert!(outcome.bids.is_empty());
        book.market(&MarketOrder {
            id: 3,
            side: Side::Buy,
            qty: 10,
        });
        let outcome = book.outcome_now();
        assert!(outcome.asks.is_empty() && outcome.bids.is_empty());
        assert_eq!((outcome.trade_count, outcome.traded_volume), (2, 8));
        assert_eq!(book.live_count(), 0);
    }

    #[test]
    fn canceled_order_in_the_middle_of_a_queue_is_skipped() {
        let mut book = ReferenceBook::default();
        for id in 1..=3 {
            book.add_limit(&limit(id, Side::Buy, 50, 4));
        }
        book.cancel(2);
        book.market(&MarketOrder {
            id: 4,
            side: Side::Sell,
            qty: 6,
        });
        let outcome = book.outcome_now();
        // Fills order 1 (4) then order 3 (2): two trades, order 2 skipped.
        assert_eq!((outcome.trade_count, outcome.traded_volume), (2, 6));
        assert_eq!(
            outcome.bids,
            vec![Level {
                price_ticks: 50,
                qty: 2
            }]
        );
        assert_eq!(book.live_count(), 1);
        assert_eq!(book.live_id(0), 3);
    }
}
