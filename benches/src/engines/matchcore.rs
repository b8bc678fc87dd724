//! Adapter for `matchcore` 0.4.0: a single-threaded, deterministic book (`BTreeMap` price index over a
//! `Slab` of levels, `FxHashMap` orders), driven by sequenced commands that return an outcome.
//!
//! matchcore assigns order ids itself (the submit's sequence number) and requires consecutive sequence
//! numbers, so the adapter numbers every command and maps workload ids to matchcore ids through a table
//! sized once for the workload. Timestamps are the sequence number (monotonic, as it requires). Every
//! outcome passes through `std::hint::black_box` before it is read, as bourse-book's events do: nothing
//! an engine returns may be left unbuilt because the counters do not read it.

use matchcore::{
    CancelCmd, Command, CommandKind, CommandMeta, CommandOutcome, CommandReport, LimitOrder as McLimit,
    MarketOrder as McMarket, NewOrder, OrderBook, OrderFlags, OrderId as McOrderId, OrderKind, Price,
    Quantity, QuantityPolicy, SequenceNumber, SubmitCmd, TimeInForce, Timestamp,
};

use crate::engine::{BenchBook, BookOutcome, Level};
use crate::workload::{EngineSizing, LimitOrder, MarketOrder, OrderId, Side};

/// Marks a workload id matchcore has not assigned.
const UNASSIGNED: u64 = u64::MAX;

/// `matchcore::OrderBook` behind the [`BenchBook`] adapter.
#[derive(Debug)]
pub struct MatchcoreBook {
    book: OrderBook,
    next_sequence: u64,
    /// Workload id -> matchcore id; sized for the workload's largest id, never grown.
    ids: Vec<u64>,
    traded_volume: u64,
    trade_count: u64,
    rejects: u64,
}

fn side(side: Side) -> matchcore::Side {
    match side {
        Side::Buy => matchcore::Side::Buy,
        Side::Sell => matchcore::Side::Sell,
    }
}

impl MatchcoreBook {
    /// A fresh book and an id table for ids up to `sizing.order_id_max`.
    pub fn new(sizing: &EngineSizing) -> Self {
        let ids_len = usize::try_from(sizing.order_id_max).expect("order ids fit in memory") + 1;
        Self {
            book: OrderBook::new("BENCH"),
            next_sequence: 0,
            ids: vec![UNASSIGNED; ids_len],
            traded_volume: 0,
            trade_count: 0,
            rejects: 0,
        }
    }

    #[inline(always)]
    fn execute(&mut self, kind: CommandKind) -> (u64, CommandOutcome) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let meta = CommandMeta {
            sequence_number: SequenceNumber(sequence),
            timestamp: Timestamp(sequence),
        };
        // Observed in full, as bourse-book's events are (see the bourse adapter): the compiler may not
        // skip building any part of the outcome that the counters below do not read.
        (
            sequence,
            std::hint::black_box(self.book.execute(&Command { meta, kind })),
        )
    }

    #[inline(always)]
    fn submit(&mut self, id: OrderId, order: NewOrder) {
        let (sequence, outcome) = self.execute(CommandKind::Submit(SubmitCmd { order }));
        match outcome {
            CommandOutcome::Applied(CommandReport::Submit(effects)) => {
                let target = effects.target_order();
                if let Some(result) = target.match_result() {
                    self.trade_count += result.trades().len() as u64;
                    self.traded_volume += result.executed_quantity().0;
                }
                // A market order the book could not fill completely comes back canceled.
                if target.cancel_reason().is_some() {
                    self.rejects += 1;
                }
                match self.ids.get_mut(id as usize) {
                    Some(slot) => *slot = target.order_id().0,
                    None => self.rejects += 1,
                }
                debug_assert_eq!(target.order_id().0, sequence);
            }
            _ => self.rejects += 1,
        }
    }
}

impl BenchBook for MatchcoreBook {
    fn name(&self) -> &'static str {
        "matchcore 0.4.0"
    }

    #[inline]
    fn add_limit(&mut self, order: &LimitOrder) {
        let limit = McLimit::new(
            Price(order.price_ticks),
            QuantityPolicy::Standard {
                quantity: Quantity(order.qty),
            },
            OrderFlags::new(side(order.side), false, TimeInForce::Gtc),
        );
        self.submit(order.id, NewOrder::Limit(limit));
    }

    #[inline]
    fn cancel(&mut self, id: OrderId) {
        let Some(&order_id) = self
            .ids
            .get(id as usize)
            .filter(|order_id| **order_id != UNASSIGNED)
        else {
            self.rejects += 1;
            return;
        };
        let cancel = CancelCmd {
            order_id: McOrderId(order_id),
            order_kind: OrderKind::Limit,
        };
        match self.execute(CommandKind::Cancel(cancel)).1 {
            CommandOutcome::Applied(CommandReport::Cancel) => {}
            _ => self.rejects += 1,
        }
    }

    #[inline]
    fn market(&mut self, order: &MarketOrder) {
        let market = McMarket::new(Quantity(order.qty), side(order.side), false);
        self.submit(order.id, NewOrder::Market(market));
    }

    fn outcome(&self) -> BookOutcome {
        let limit = self.book.limit();
        let level = |(price, level_id): (&Price, &usize)| Level {
            price_ticks: price.0,
            qty: limit.levels()[*level_id].total_quantity().0,
        };
        BookOutcome {
            bids: limit.bids().iter().rev().map(level).collect(),
            asks: limit.asks().iter().map(level).collect(),
            traded_volume: self.traded_volume,
            trade_count: self.trade_count,
            rejects: self.rejects,
        }
    }
}
