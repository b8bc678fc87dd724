//! The side-by-side workload: a fixed-seed stream of operations that every engine supports and agrees on.
//!
//! # What it contains
//! Limit adds near the touch (passive), cancels of live orders, replaces (cancel + new, in every engine,
//! bourse included), aggressive limits that cross and rest any remainder, and market orders. Prices are
//! integer ticks in a band around a centre; quantities are integer shares (lot size 1).
//!
//! # Choices that keep engines from legitimately differing (each is a semantic where peers disagree)
//! - **Cancels only name live orders.** On an unknown or dead id lobster answers `Canceled`, orderbook-rs
//!   returns an error, bourse ignores it silently: none of that is matching, so the stream never does it.
//! - **Market orders only go out when the opposite side has liquidity, and never for more than it holds.**
//!   Into an empty side orderbook-rs returns `InsufficientLiquidity`, lobster `Unfilled`, matchcore a
//!   cancel; a remainder would be dropped by some and (for a market-to-limit) rested by others; bourse
//!   bounds a market order by its price collar. Capped this way every engine fills it completely.
//! - **An aggressive limit is only sent when the opposite side is non-empty and its price crosses the
//!   touch, and it never asks for more than rests at or better than its price**, so it fills completely
//!   and walks as many levels as it needs. matchcore 0.4.0 matches a crossing limit as if it had no limit
//!   price (`submit_crossable_order` passes `None` to `match_order`), so with a remainder it would trade
//!   through its limit where every other engine stops and rests the remainder. The config switch
//!   `aggressive_remainder_rests` lifts this cap (the tests run that variant on the other engines).
//! - **No self-trade prevention, no owners, no post-only, no IOC limits, no iceberg**: all orders belong
//!   to one account with STP off, so FIFO price-time priority alone decides every fill.
//! - **Prices stay in a band** (`price_center_ticks ± price_half_band_ticks`, never zero; a passive order
//!   never crosses even if the touch sits on the band's edge, so the band is soft by a tick there): lobster keeps
//!   empty levels in its map forever and matchcore rejects price 0; a bounded band keeps every engine's
//!   level count finite and the comparison about matching rather than about unbounded drift. The aggressor
//!   side is biased back towards the centre (mean reversion), so the touch wanders but stays inside.
//! - **Ids are dense and never reused** (1, 2, 3, ...): engines that assign their own ids (matchcore) are
//!   mapped through a pre-sized table.
//! - **Live orders are bounded** (`live_orders_max`) so engines with fixed arenas (bourse) never reject
//!   for capacity.
//!
//! The generator drives a [`ReferenceBook`] as it goes, so it knows which orders are live, where the
//! touch is and how much liquidity each side holds; the same model's final state is the expected
//! outcome every engine must reproduce.

use crate::model::ReferenceBook;
use crate::rng::{Draw, SplitMix64};

/// An order id as the workload names it: dense, starting at 1, never reused.
pub type OrderId = u64;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bids: a buy takes from the asks.
    Buy,
    /// Asks: a sell takes from the bids.
    Sell,
}

impl Side {
    /// The side a taker of this side matches against.
    pub fn opposite(self) -> Self {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// A limit order to add (good till cancel / day: its remainder rests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOrder {
    /// New, unique id.
    pub id: OrderId,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks (> 0).
    pub price_ticks: u64,
    /// Quantity in shares (> 0).
    pub qty: u64,
}

/// A market order: takes liquidity and never rests; never larger than the opposite side holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketOrder {
    /// New, unique id.
    pub id: OrderId,
    /// Buy or sell.
    pub side: Side,
    /// Quantity in shares (> 0).
    pub qty: u64,
}

/// One operation of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A limit that does not cross: rests at or behind the touch (or improves it inside the spread).
    AddPassive(LimitOrder),
    /// A limit that crosses the opposite touch: trades, and rests any remainder.
    AddAggressive(LimitOrder),
    /// Cancel a live order.
    Cancel(OrderId),
    /// Cancel a live order and add a new passive one on the same side (new id, loses priority).
    Replace {
        /// The live order to cancel.
        cancel_id: OrderId,
        /// Its passive replacement.
        new: LimitOrder,
    },
    /// A market order.
    Market(MarketOrder),
}

/// The kind of an operation, for per-kind counts and latency histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`Op::AddPassive`].
    AddPassive,
    /// [`Op::AddAggressive`].
    AddAggressive,
    /// [`Op::Cancel`].
    Cancel,
    /// [`Op::Replace`].
    Replace,
    /// [`Op::Market`].
    Market,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 5] = [
        OpKind::AddPassive,
        OpKind::AddAggressive,
        OpKind::Cancel,
        OpKind::Replace,
        OpKind::Market,
    ];

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            OpKind::AddPassive => 0,
            OpKind::AddAggressive => 1,
            OpKind::Cancel => 2,
            OpKind::Replace => 3,
            OpKind::Market => 4,
        }
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::AddPassive => "add passive",
            OpKind::AddAggressive => "add aggressive",
            OpKind::Cancel => "cancel",
            OpKind::Replace => "replace",
            OpKind::Market => "market",
        }
    }
}

impl Op {
    /// This operation's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::AddPassive(_) => OpKind::AddPassive,
            Op::AddAggressive(_) => OpKind::AddAggressive,
            Op::Cancel(_) => OpKind::Cancel,
            Op::Replace { .. } => OpKind::Replace,
            Op::Market(_) => OpKind::Market,
        }
    }
}

/// Parameters of a workload; everything about it follows from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// PRNG seed.
    pub seed: u64,
    /// Number of operations (a replace counts as one).
    pub ops_count: usize,
    /// Centre of the price band, in ticks.
    pub price_center_ticks: u64,
    /// Half width of the price band, in ticks (every price is within centre ± this, and > 0).
    pub price_half_band_ticks: u64,
    /// The number of live orders the add/cancel balance steers towards.
    pub live_orders_target: usize,
    /// Hard bound on live orders (an add past it becomes a cancel).
    pub live_orders_max: usize,
    /// Percent of operations that are aggressive limits.
    pub aggressive_percent: u64,
    /// Percent of operations that are market orders.
    pub market_percent: u64,
    /// Percent of operations that are replaces.
    pub replace_percent: u64,
    /// Largest passive order, in shares.
    pub passive_qty_max: u64,
    /// Largest aggressive or market order, in shares.
    pub taker_qty_max: u64,
    /// Whether an aggressive limit may ask for more than rests at or better than its price (and so
    /// rest a remainder). Off for the side-by-side run, see the module header (matchcore).
    pub aggressive_remainder_rests: bool,
}

impl WorkloadConfig {
    /// The side-by-side benchmark's workload: `ops_count` operations from `seed`.
    pub fn side_by_side(seed: u64, ops_count: usize) -> Self {
        Self {
            seed,
            ops_count,
            price_center_ticks: 10_000,
            price_half_band_ticks: 1_000,
            live_orders_target: 5_000,
            live_orders_max: 20_000,
            aggressive_percent: 8,
            market_percent: 4,
            replace_percent: 10,
            passive_qty_max: 500,
            taker_qty_max: 1_500,
            aggressive_remainder_rests: false,
        }
    }

    /// Lowest price any order of this workload may carry.
    pub fn price_min_ticks(&self) -> u64 {
        self.price_center_ticks - self.price_half_band_ticks
    }

    /// Highest price any order of this workload may carry.
    pub fn price_max_ticks(&self) -> u64 {
        self.price_center_ticks + self.price_half_band_ticks
    }
}

/// What an engine must be able to hold to run a workload without a capacity reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSizing {
    /// Largest order id used (ids are `1..=order_id_max`).
    pub order_id_max: OrderId,
    /// Most orders live at once.
    pub live_orders_max: usize,
    /// Lowest price in ticks.
    pub price_min_ticks: u64,
    /// Highest price in ticks.
    pub price_max_ticks: u64,
    /// Largest single order, in shares.
    pub order_qty_max: u64,
}

/// A generated workload and the outcome a correct engine reaches after replaying it.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The parameters it was generated from.
    pub config: WorkloadConfig,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// How big an engine must be to replay it.
    pub sizing: EngineSizing,
    /// Count of each kind, indexed by [`OpKind::index`].
    pub kind_counts: [u64; 5],
    /// The final state of the reference model after every operation.
    pub expected: crate::engine::BookOutcome,
}

/// Generates the workload `config` describes. Deterministic: the same config gives the same ops.
///
/// # Panics
/// If the config is inconsistent (band reaching zero, percentages over 100, target over max): a
/// programmer error.
pub fn generate(config: &WorkloadConfig) -> Workload {
    assert!(config.price_half_band_ticks > 0 && config.price_center_ticks > config.price_half_band_ticks);
    assert!(config.aggressive_percent + config.market_percent + config.replace_percent < 100);
    assert!(config.live_orders_target > 0 && config.live_orders_target <= config.live_orders_max);
    assert!(config.passive_qty_max > 0 && config.taker_qty_max > 0);

    let mut generator = Generator {
        config,
        rng: SplitMix64(config.seed),
        model: ReferenceBook::with_capacity(config.ops_count + 1),
        next_id: 1,
        live_orders_peak: 0,
    };
    let mut ops = Vec::with_capacity(config.ops_count);
    let mut kind_counts = [0u64; 5];
    for _ in 0..config.ops_count {
        let op = generator.next_op();
        kind_counts[op.kind().index()] += 1;
        ops.push(op);
        generator.live_orders_peak = generator.live_orders_peak.max(generator.model.live_count());
    }
    let sizing = EngineSizing {
        order_id_max: generator.next_id - 1,
        live_orders_max: generator.live_orders_peak,
        price_min_ticks: config.price_min_ticks(),
        price_max_ticks: config.price_max_ticks(),
        order_qty_max: config.passive_qty_max.max(config.taker_qty_max),
    };
    let expected = generator.model.outcome_now();
    Workload {
        config: config.clone(),
        ops,
        sizing,
        kind_counts,
        expected,
    }
}

struct Generator<'a> {
    config: &'a WorkloadConfig,
    rng: SplitMix64,
    model: ReferenceBook,
    next_id: OrderId,
    live_orders_peak: usize,
}

impl Generator<'_> {
    fn new_id(&mut self) -> OrderId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Draws the next operation and applies it to the model.
    fn next_op(&mut self) -> Op {
        let config = self.config;
        let roll = self.rng.below(100);
        let live = self.model.live_count();
        let op = if roll < config.aggressive_percent {
            self.aggressive_limit()
        } else if roll < config.aggressive_percent + config.market_percent {
            self.market()
        } else if roll < config.aggressive_percent + config.market_percent + config.replace_percent {
            self.replace()
        } else if live >= config.live_orders_max {
            self.cancel()
        } else {
            // Steer the live count towards the target: at the target, adds and cancels are even.
            let cancel_percent = (50 * live / config.live_orders_target).min(90) as u64;
            if self.rng.percent(cancel_percent) {
                self.cancel()
            } else {
                None
            }
        };
        let op = match op {
            Some(op) => op,
            None => {
                let side = if self.rng.percent(50) {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let order = self.passive_order(side);
                Op::AddPassive(order)
            }
        };
        self.model.apply(&op);
        op
    }

    /// A side for a taker, biased back towards the centre of the band.
    fn taker_side(&mut self) -> Side {
        let config = self.config;
        let mid = self.model.mid_ticks().unwrap_or(config.price_center_ticks) as i64;
        let offset = mid - config.price_center_ticks as i64;
        // Buy probability from 80% (far below the centre) to 20% (far above it).
        let buy_percent = (50 - 30 * offset / config.price_half_band_ticks as i64).clamp(20, 80) as u64;
        if self.rng.percent(buy_percent) {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn aggressive_limit(&mut self) -> Option<Op> {
        let side = self.taker_side();
        let touch = self.model.best_price(side.opposite())?;
        let through_ticks = self.rng.below(4);
        // Through the touch by 0..=3 ticks, inside the band unless the touch itself is at its edge.
        let price_ticks = match side {
            Side::Buy => (touch + through_ticks).min(self.config.price_max_ticks().max(touch)),
            Side::Sell => touch
                .saturating_sub(through_ticks)
                .max(self.config.price_min_ticks().min(touch)),
        };
        let mut qty = self.rng.between(1, self.config.taker_qty_max);
        if !self.config.aggressive_remainder_rests {
            qty = qty.min(self.model.crossable_qty(side, price_ticks));
        }
        Some(Op::AddAggressive(LimitOrder {
            id: self.new_id(),
            side,
            price_ticks,
            qty,
        }))
    }

    fn market(&mut self) -> Option<Op> {
        let side = self.taker_side();
        let available = self.model.side_qty(side.opposite());
        if available == 0 {
            return None;
        }
        let qty = self.rng.between(1, self.config.taker_qty_max).min(available);
        Some(Op::Market(MarketOrder {
            id: self.new_id(),
            side,
            qty,
        }))
    }

    fn cancel(&mut self) -> Option<Op> {
        let live = self.model.live_count();
        if live == 0 {
            return None;
        }
        let index = self.rng.below(live as u64) as usize;
        Some(Op::Cancel(self.model.live_id(index)))
    }

    fn replace(&mut self) -> Option<Op> {
        let live = self.model.live_count();
        if live == 0 {
            return None;
        }
        let cancel_id = self.model.live_id(self.rng.below(live as u64) as usize);
        let side = self.model.order_side(cancel_id);
        // The replacement is priced against the book as it is once the old order is gone; the model
        // applies the whole replace, so compute its price with the old order still in and keep it
        // passive either way (the old order is on the same side: removing it never makes us cross).
        let new = self.passive_order(side);
        Some(Op::Replace { cancel_id, new })
    }

    /// A passive limit on `side`: at the touch, a few ticks behind it, or inside the spread.
    fn passive_order(&mut self, side: Side) -> LimitOrder {
        let config = self.config;
        let own_touch = self.model.best_price(side);
        let far_touch = self.model.best_price(side.opposite());
        let depth_ticks = match self.rng.below(100) {
            0..=29 => 0,
            30..=79 => self.rng.between(1, 4),
            _ => self.rng.between(5, 30),
        };
        let improve = self.rng.percent(10);
        let price_ticks = match side {
            Side::Buy => {
                let anchor = match (own_touch, far_touch) {
                    (Some(bid), Some(ask)) if improve && ask - bid > 1 => bid + 1,
                    (Some(bid), _) => bid.saturating_sub(depth_ticks),
                    (None, Some(ask)) => ask.saturating_sub(1 + depth_ticks),
                    (None, None) => config.price_center_ticks - 1 - depth_ticks,
                };
                // Into the band, then below the ask whatever the band says: never crossing wins.
                let banded = anchor.clamp(config.price_min_ticks(), config.price_max_ticks());
                far_touch.map_or(banded, |ask| banded.min(ask - 1))
            }
            Side::Sell => {
                let anchor = match (own_touch, far_touch) {
                    (Some(ask), Some(bid)) if improve && ask - bid > 1 => ask - 1,
                    (Some(ask), _) => ask + depth_ticks,
                    (None, Some(bid)) => bid + 1 + depth_ticks,
                    (None, None) => config.price_center_ticks + 1 + depth_ticks,
                };
                let banded = anchor.clamp(config.price_min_ticks(), config.price_max_ticks());
                far_touch.map_or(banded, |bid| banded.max(bid + 1))
            }
        };
        let qty = self.rng.between(1, config.passive_qty_max);
        LimitOrder {
            id: self.new_id(),
            side,
            price_ticks,
            qty,
        }
    }
}
