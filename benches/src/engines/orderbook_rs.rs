//! Adapter for `orderbook-rs` 0.15.3: a thread-safe book (lock-free skip-list price levels, `DashMap`
//! order locations, a submit gate, per-order `Arc`s), built with `OrderBook::<()>::new` and no
//! listeners, no risk layer, no STP, no tick or lot validation: its leanest configuration.
//!
//! Limits go through `add_limit_order_with_result` (GTC) so the fills of each call come back to the
//! caller; markets through `submit_market_order`. Trades are counted from the returned `MatchResult`.
//! Every result passes through `std::hint::black_box` before it is read, as bourse-book's events do:
//! nothing an engine returns may be left unbuilt because the counters do not read it.

use orderbook_rs::{Id, OrderBook, TimeInForce};

use crate::engine::{BenchBook, BookOutcome, Level};
use crate::workload::{EngineSizing, LimitOrder, MarketOrder, OrderId, Side};

/// `orderbook_rs::OrderBook<()>` behind the [`BenchBook`] adapter.
pub struct OrderbookRsBook {
    book: OrderBook<()>,
    traded_volume: u64,
    trade_count: u64,
    rejects: u64,
}

impl std::fmt::Debug for OrderbookRsBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderbookRsBook")
            .field("trade_count", &self.trade_count)
            .finish_non_exhaustive()
    }
}

fn side(side: Side) -> orderbook_rs::Side {
    match side {
        Side::Buy => orderbook_rs::Side::Buy,
        Side::Sell => orderbook_rs::Side::Sell,
    }
}

impl OrderbookRsBook {
    /// A fresh book (the peer has no capacity parameters; `sizing` is unused).
    pub fn new(_sizing: &EngineSizing) -> Self {
        Self {
            book: OrderBook::new("BENCH"),
            traded_volume: 0,
            trade_count: 0,
            rejects: 0,
        }
    }

    #[inline(always)]
    fn count(&mut self, trades_count: usize, traded_volume: u64) {
        self.trade_count += trades_count as u64;
        self.traded_volume += traded_volume;
    }
}

impl BenchBook for OrderbookRsBook {
    fn name(&self) -> &'static str {
        "orderbook-rs 0.15.3"
    }

    #[inline]
    fn add_limit(&mut self, order: &LimitOrder) {
        // Every result is observed in full, as bourse-book's events are (see the bourse adapter).
        match std::hint::black_box(self.book.add_limit_order_with_result(
            Id::from_u64(order.id),
            u128::from(order.price_ticks),
            order.qty,
            side(order.side),
            TimeInForce::Gtc,
            None,
        )) {
            Ok((_, Some(result))) => {
                let trades = result.match_result.trades().as_vec();
                self.count(
                    trades.len(),
                    trades.iter().map(|trade| trade.quantity().as_u64()).sum(),
                );
            }
            Ok((_, None)) => {}
            Err(_) => self.rejects += 1,
        }
    }

    #[inline]
    fn cancel(&mut self, id: OrderId) {
        match std::hint::black_box(self.book.cancel_order(Id::from_u64(id))) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => self.rejects += 1,
        }
    }

    #[inline]
    fn market(&mut self, order: &MarketOrder) {
        match std::hint::black_box(self.book.submit_market_order(
            Id::from_u64(order.id),
            order.qty,
            side(order.side),
        )) {
            Ok(result) => {
                let trades = result.trades().as_vec();
                self.count(
                    trades.len(),
                    trades.iter().map(|trade| trade.quantity().as_u64()).sum(),
                );
            }
            Err(_) => self.rejects += 1,
        }
    }

    fn outcome(&self) -> BookOutcome {
        let mut outcome = BookOutcome {
            traded_volume: self.traded_volume,
            trade_count: self.trade_count,
            rejects: self.rejects,
            ..BookOutcome::default()
        };
        match self.book.create_snapshot(usize::MAX) {
            Ok(snapshot) => {
                // Snapshot sides are best first already: bids descending, asks ascending. A price or
                // quantity that does not convert shows up as u64::MAX and fails the comparison.
                for (levels, snapshot_levels) in [
                    (&mut outcome.bids, &snapshot.bids),
                    (&mut outcome.asks, &snapshot.asks),
                ] {
                    *levels = snapshot_levels
                        .iter()
                        .map(|level| Level {
                            price_ticks: u64::try_from(level.price().as_u128()).unwrap_or(u64::MAX),
                            qty: level.total_quantity().map_or(u64::MAX, |qty| qty.as_u64()),
                        })
                        .collect();
                }
            }
            Err(_) => outcome.rejects += 1,
        }
        outcome
    }
}
