//! The adapter every engine in the side-by-side benchmark implements, and what "same matching" means.
//!
//! An adapter translates the workload's operations into one engine's own API and keeps two counters
//! from what the engine returns: traded volume and trade count (one trade = one maker order filled, in
//! whole or in part, by one taker). After a replay, [`BenchBook::outcome`] reads the engine's book back
//! as aggregated depth per price level. Two engines did the same matching when their outcomes are equal:
//! same levels with the same quantities on both sides, same volume, same number of trades, and no
//! operation refused (`rejects == 0`).
//!
//! Adapters do only what the engine's API makes necessary (id mapping, result inspection); they keep no
//! book of their own.

use crate::workload::{LimitOrder, MarketOrder, Op, OrderId};

/// One aggregated price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price in ticks.
    pub price_ticks: u64,
    /// Sum of the open quantity of every order resting at that price, in shares.
    pub qty: u64,
}

/// An engine's state after a replay, in a form every engine can produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookOutcome {
    /// Bid levels, best (highest) first; no empty level.
    pub bids: Vec<Level>,
    /// Ask levels, best (lowest) first; no empty level.
    pub asks: Vec<Level>,
    /// Shares traded.
    pub traded_volume: u64,
    /// Number of fills (taker, maker pairs).
    pub trade_count: u64,
    /// Operations the engine refused or answered unexpectedly (must be zero on this workload).
    pub rejects: u64,
}

impl BookOutcome {
    /// A one-line summary for logs: level counts, best prices, volume, trades, rejects.
    pub fn summary(&self) -> String {
        format!(
            "{} bid levels (best {:?}), {} ask levels (best {:?}), volume {}, trades {}, rejects {}",
            self.bids.len(),
            self.bids.first().map(|level| level.price_ticks),
            self.asks.len(),
            self.asks.first().map(|level| level.price_ticks),
            self.traded_volume,
            self.trade_count,
            self.rejects
        )
    }

    /// The first difference from `other`, described, or `None` when equal.
    pub fn first_difference(&self, other: &BookOutcome) -> Option<String> {
        if self.traded_volume != other.traded_volume {
            return Some(format!(
                "traded volume {} vs {}",
                self.traded_volume, other.traded_volume
            ));
        }
        if self.trade_count != other.trade_count {
            return Some(format!(
                "trade count {} vs {}",
                self.trade_count, other.trade_count
            ));
        }
        if self.rejects != other.rejects {
            return Some(format!("rejects {} vs {}", self.rejects, other.rejects));
        }
        for (name, ours, theirs) in [("bid", &self.bids, &other.bids), ("ask", &self.asks, &other.asks)] {
            if let Some(index) = ours.iter().zip(theirs.iter()).position(|(a, b)| a != b) {
                return Some(format!(
                    "{name} level {index}: {:?} vs {:?}",
                    ours[index], theirs[index]
                ));
            }
            if ours.len() != theirs.len() {
                return Some(format!("{name} level count {} vs {}", ours.len(), theirs.len()));
            }
        }
        None
    }
}

/// An order book that can replay the side-by-side workload.
pub trait BenchBook {
    /// The engine's name in reports (crate name and version).
    fn name(&self) -> &'static str;

    /// Adds a limit order (rests whatever does not trade).
    fn add_limit(&mut self, order: &LimitOrder);

    /// Cancels a live order.
    fn cancel(&mut self, id: OrderId);

    /// Sends a market order.
    fn market(&mut self, order: &MarketOrder);

    /// Replaces `cancel_id` by `new`: a cancel then a new order, in every engine.
    fn replace(&mut self, cancel_id: OrderId, new: &LimitOrder) {
        self.cancel(cancel_id);
        self.add_limit(new);
    }

    /// Reads the book back as aggregated depth, with the counters kept so far.
    fn outcome(&self) -> BookOutcome;

    /// Applies one workload operation.
    #[inline(always)]
    fn apply(&mut self, op: &Op) {
        match op {
            Op::AddPassive(order) | Op::AddAggressive(order) => self.add_limit(order),
            Op::Cancel(id) => self.cancel(*id),
            Op::Replace { cancel_id, new } => self.replace(*cancel_id, new),
            Op::Market(order) => self.market(order),
        }
    }
}

/// Replays every operation of `ops` into `book`, untimed.
pub fn replay<B: BenchBook>(book: &mut B, ops: &[Op]) {
    for op in ops {
        book.apply(op);
    }
}
