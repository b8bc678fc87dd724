//! Adapter for `lobster` 0.7.0: a single-threaded book with a pre-allocated order arena, `BTreeMap`
//! price levels holding `Vec` queues, `u128` ids and an event (with a `Vec` of fills) per order.
//!
//! Notes on the peer, for readers of the numbers: it never removes an emptied price level from its map
//! (finding the new touch walks past them), it never frees the arena slot of a fully filled maker, and
//! a cancel searches its level's `Vec` linearly. Stats tracking is left off: volume and trades are
//! counted here from the fills each event returns, as for every engine. Each event passes through
//! `std::hint::black_box` before it is counted, as bourse-book's events do: nothing an engine returns may
//! be left unbuilt because the counters do not read it.

use lobster::{OrderBook, OrderEvent, OrderType};

use crate::engine::{BenchBook, BookOutcome, Level};
use crate::workload::{EngineSizing, LimitOrder, MarketOrder, OrderId, Side};

/// Initial capacity of each price level's queue (lobster's own default is 10).
const LEVEL_QUEUE_CAPACITY: usize = 16;

/// `lobster::OrderBook` behind the [`BenchBook`] adapter.
#[derive(Debug)]
pub struct LobsterBook {
    book: OrderBook,
    traded_volume: u64,
    trade_count: u64,
    rejects: u64,
}

fn side(side: Side) -> lobster::Side {
    match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

impl LobsterBook {
    /// A book whose arena is pre-sized for the workload's peak of live orders.
    pub fn new(sizing: &EngineSizing) -> Self {
        Self {
            book: OrderBook::new(sizing.live_orders_max, LEVEL_QUEUE_CAPACITY, false),
            traded_volume: 0,
            trade_count: 0,
            rejects: 0,
        }
    }

    #[inline(always)]
    fn count(&mut self, event: OrderEvent, is_market: bool) {
        // Observed in full, as bourse-book's events are (see the bourse adapter): the compiler may not
        // skip building any part of the event that the counters below do not read.
        match std::hint::black_box(event) {
            OrderEvent::Filled {
                filled_qty, fills, ..
            }
            | OrderEvent::PartiallyFilled {
                filled_qty, fills, ..
            } => {
                self.traded_volume += filled_qty;
                self.trade_count += fills.len() as u64;
            }
            OrderEvent::Placed { .. } | OrderEvent::Canceled { .. } => {}
            OrderEvent::Unfilled { .. } => {
                if is_market {
                    self.rejects += 1;
                }
            }
        }
    }
}

impl BenchBook for LobsterBook {
    fn name(&self) -> &'static str {
        "lobster 0.7.0"
    }

    #[inline]
    fn add_limit(&mut self, order: &LimitOrder) {
        let event = self.book.execute(OrderType::Limit {
            id: u128::from(order.id),
            side: side(order.side),
            qty: order.qty,
            price: order.price_ticks,
        });
        self.count(event, false);
    }

    #[inline]
    fn cancel(&mut self, id: OrderId) {
        let event = self.book.execute(OrderType::Cancel { id: u128::from(id) });
        self.count(event, false);
    }

    #[inline]
    fn market(&mut self, order: &MarketOrder) {
        let event = self.book.execute(OrderType::Market {
            id: u128::from(order.id),
            side: side(order.side),
            qty: order.qty,
        });
        self.count(event, true);
    }

    fn outcome(&self) -> BookOutcome {
        // `depth(n)` only uses `n` as a capacity hint and returns every non-empty level, ascending.
        let depth = self.book.depth(0);
        let level = |level: &lobster::BookLevel| Level {
            price_ticks: level.price,
            qty: level.qty,
        };
        BookOutcome {
            bids: depth.bids.iter().rev().map(level).collect(),
            asks: depth.asks.iter().map(level).collect(),
            traded_volume: self.traded_volume,
            trade_count: self.trade_count,
            rejects: self.rejects,
        }
    }
}
