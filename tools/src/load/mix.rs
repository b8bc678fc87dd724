//! The market-maker order mix: a seeded generator of what one session sends next.
//!
//! Each session owns an [`OrderMix`] (its own [`Rng`] stream, seeded from the run seed and the session index)
//! and asks it for the next [`Action`] given what the session knows of its own live orders ([`MixState`]).
//! The mix is deterministic: the same seed and the same sequence of states give the same actions, whatever
//! the timing of the run.
//!
//! # The mix
//! - **Quote** (passive, rests): a day limit order near the touch, `1..=ticks_max` ticks away from the
//!   instrument's reference price on its own side (bids below, asks above), so quotes never cross each other.
//!   `ticks_max` is [`QUOTE_TICKS_MAX`], less where the price collar is narrow ([`Instrument::ticks_max`]):
//!   every trade happens at a quote price, so the collar around any possible last trade still holds every
//!   price the mix sends, and no order is rejected for the collar.
//! - **Cancel** of one of the session's own live orders (the whole order).
//! - **Replace** of one of its own live orders to a new price near the touch (same side) and size.
//! - **Aggressive**: an IOC limit order priced `ticks_max` through the reference: it takes whatever quotes
//!   rest on the other side, and never rests itself.
//! - **Market**: an IOC market order (price `0x7FFFFFFF`), a few of them.
//!
//! # Bounds
//! A session keeps at most `live_orders_max` resting orders: a Quote is only drawn while the session has
//! room (live plus quotes in flight below the limit), otherwise the draw becomes a Cancel. Cancel and Replace
//! need a live order that no request is already working on; without one the draw becomes a Quote (room
//! permitting) or else an Aggressive order, which is always possible. So the book the load builds is bounded
//! by `sessions x live_orders_max` and every draw yields an action.

use bourse_protocol::fields::{PRICE_LIMIT_MAX, Symbol};
use bourse_protocol::ouch::Side;

/// Largest distance of a quote from the reference price, in ticks.
pub const QUOTE_TICKS_MAX: u32 = 5;
/// Largest order size, in lots.
pub const SIZE_LOTS_MAX: u32 = 10;

/// A SplitMix64 generator: tiny, seedable, good enough for a load mix (not for anything secret).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound > 0`; the tiny modulo bias does not matter here).
    ///
    /// # Panics
    /// If `bound` is 0 (a programmer error).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below(0)");
        self.next_u64() % bound
    }
}

/// An instrument the load trades: what the mix needs to price and size orders validly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instrument {
    /// Symbol.
    pub symbol: Symbol,
    /// Price grid, OUCH price units (1/10000 dollar).
    pub tick_size: u32,
    /// Size grid, shares.
    pub lot_size: u32,
    /// The centre of the quotes, OUCH price units, on the tick grid.
    pub reference_price: u32,
    /// Price collar half-width in basis points around the last trade (0: no collar).
    pub collar_bps: u32,
}

impl Instrument {
    /// How far from the reference the mix prices, in ticks: [`QUOTE_TICKS_MAX`], or fewer so that the whole
    /// range `reference ± ticks` lies inside the collar around any price in that range (the lowest price
    /// times `1 + collar` reaches the highest): `ticks <= reference x collar / (tick x (2 + collar))`. At
    /// least 1.
    pub fn ticks_max(&self) -> u32 {
        if self.collar_bps == 0 {
            return QUOTE_TICKS_MAX;
        }
        let tick = u64::from(self.tick_size.max(1));
        let fit = u64::from(self.reference_price) * u64::from(self.collar_bps)
            / (tick * (20_000 + u64::from(self.collar_bps)));
        (fit.min(u64::from(QUOTE_TICKS_MAX)) as u32).max(1)
    }

    /// `reference_price` plus or minus `ticks` ticks, kept within `tick_size..=PRICE_LIMIT_MAX`.
    fn price_at(&self, ticks_up: i64) -> u32 {
        let tick = i64::from(self.tick_size.max(1));
        let raw = i64::from(self.reference_price) + ticks_up * tick;
        let max = i64::from(PRICE_LIMIT_MAX) / tick * tick;
        raw.clamp(tick, max) as u32
    }
}

/// Relative weights of the actions (any scale; zero removes an action).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixWeights {
    /// Passive quotes near the touch.
    pub quote: u32,
    /// Cancels of own live orders.
    pub cancel: u32,
    /// Replaces of own live orders.
    pub replace: u32,
    /// Aggressive IOC limit orders that cross.
    pub aggressive: u32,
    /// IOC market orders.
    pub market: u32,
}

impl Default for MixWeights {
    /// 50 % quotes, 20 % cancels, 15 % replaces, 12 % aggressive, 3 % market.
    fn default() -> Self {
        Self {
            quote: 50,
            cancel: 20,
            replace: 15,
            aggressive: 12,
            market: 3,
        }
    }
}

impl MixWeights {
    fn total(&self) -> u64 {
        u64::from(self.quote)
            + u64::from(self.cancel)
            + u64::from(self.replace)
            + u64::from(self.aggressive)
            + u64::from(self.market)
    }
}

/// What the session knows when it draws: its live orders and how many quotes are in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixState {
    /// Resting orders known live (accepted, not yet executed or canceled).
    pub live: usize,
    /// Of those, the ones no cancel or replace is working on (candidates for Cancel and Replace).
    pub idle: usize,
    /// Quotes sent and not yet answered.
    pub quotes_in_flight: usize,
    /// The session's limit on live orders plus quotes in flight.
    pub live_orders_max: usize,
}

/// The next thing a session sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A resting day limit order.
    Quote {
        /// Index into the instrument list.
        instrument: usize,
        /// Buy or sell.
        side: Side,
        /// Limit price.
        price: u32,
        /// Shares.
        shares: u32,
    },
    /// Cancel the `nth` idle live order (in the session's order table order).
    Cancel {
        /// Index among the idle live orders.
        nth: usize,
    },
    /// Replace the `nth` idle live order: new price `ticks` away from the reference on its side, new size.
    Replace {
        /// Index among the idle live orders.
        nth: usize,
        /// Distance from the reference, in ticks (`1..=ticks_max` of the drawn instrument; the caller clamps
        /// it to the order's own instrument's [`Instrument::ticks_max`]).
        ticks: u32,
        /// New size in lots (`1..=SIZE_LOTS_MAX`).
        lots: u32,
    },
    /// An IOC limit order through the reference price.
    Aggressive {
        /// Index into the instrument list.
        instrument: usize,
        /// Buy or sell.
        side: Side,
        /// Limit price.
        price: u32,
        /// Shares.
        shares: u32,
    },
    /// An IOC market order.
    Market {
        /// Index into the instrument list.
        instrument: usize,
        /// Buy or sell.
        side: Side,
        /// Shares.
        shares: u32,
    },
}

/// One session's seeded order mix.
#[derive(Clone, Debug)]
pub struct OrderMix {
    rng: Rng,
    weights: MixWeights,
}

impl OrderMix {
    /// The mix of session `session` in a run seeded with `seed`.
    ///
    /// # Panics
    /// If every weight is zero (a programmer error; the CLI checks it).
    pub fn new(seed: u64, session: u64, weights: MixWeights) -> Self {
        assert!(weights.total() > 0, "order mix with all weights zero");
        // Two SplitMix64 steps apart per session: independent-looking streams from one seed.
        let mut seeder = Rng::new(seed ^ session.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self {
            rng: Rng::new(seeder.next_u64()),
            weights,
        }
    }

    /// The random stream, for the caller's own draws (replace prices are drawn here too).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Draws the next action for a session in `state`, over `instruments` (not empty).
    ///
    /// # Panics
    /// If `instruments` is empty (a programmer error).
    pub fn next(&mut self, state: MixState, instruments: &[Instrument]) -> Action {
        assert!(!instruments.is_empty(), "order mix without instruments");
        let w = self.weights;
        let mut pick = self.rng.below(w.total());
        let room = state.live + state.quotes_in_flight < state.live_orders_max;
        let kind = [w.quote, w.cancel, w.replace, w.aggressive, w.market]
            .iter()
            .position(|&weight| {
                let hit = pick < u64::from(weight);
                pick = pick.saturating_sub(u64::from(weight));
                hit
            })
            .unwrap_or(0);
        // Fall back as the module header says: always something valid.
        let kind = match kind {
            0 if !room => {
                if state.idle > 0 {
                    1
                } else {
                    3
                }
            }
            1 | 2 if state.idle == 0 => {
                if room {
                    0
                } else {
                    3
                }
            }
            k => k,
        };
        let instrument = self.rng.below(instruments.len() as u64) as usize;
        let spec = instruments[instrument];
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let lots = 1 + self.rng.below(u64::from(SIZE_LOTS_MAX)) as u32;
        let shares = lots * spec.lot_size.max(1);
        let ticks = 1 + self.rng.below(u64::from(spec.ticks_max())) as u32;
        match kind {
            0 => Action::Quote {
                instrument,
                side,
                price: quote_price(&spec, side, ticks),
                shares,
            },
            1 => Action::Cancel {
                nth: self.rng.below(state.idle as u64) as usize,
            },
            2 => Action::Replace {
                nth: self.rng.below(state.idle as u64) as usize,
                ticks,
                lots,
            },
            3 => Action::Aggressive {
                instrument,
                side,
                price: aggressive_price(&spec, side),
                shares,
            },
            _ => Action::Market {
                instrument,
                side,
                shares,
            },
        }
    }
}

/// A passive price `ticks` ticks away from the reference on `side`'s own side of it.
pub fn quote_price(instrument: &Instrument, side: Side, ticks: u32) -> u32 {
    let ticks = i64::from(ticks);
    if side.is_sell() {
        instrument.price_at(ticks)
    } else {
        instrument.price_at(-ticks)
    }
}

/// An IOC limit price [`Instrument::ticks_max`] through the reference: it reaches every quote of the other
/// side.
pub fn aggressive_price(instrument: &Instrument, side: Side) -> u32 {
    let ticks = i64::from(instrument.ticks_max());
    if side.is_sell() {
        instrument.price_at(-ticks)
    } else {
        instrument.price_at(ticks)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two instruments with different ticks, lots and collars (the load generator's tests use them too).
    pub(crate) fn instruments() -> Vec<Instrument> {
        vec![
            Instrument {
                symbol: Symbol::new("AAPL").unwrap(),
                tick_size: 100,
                lot_size: 1,
                reference_price: 1_900_000,
                collar_bps: 1000,
            },
            Instrument {
                symbol: Symbol::new("BRSE").unwrap(),
                tick_size: 500,
                lot_size: 100,
                reference_price: 100_000,
                collar_bps: 500,
            },
        ]
    }

    /// A little model of the session's book so the state sequence follows the actions.
    fn run(seed: u64, session: u64, steps: usize) -> Vec<Action> {
        let instruments = instruments();
        let mut mix = OrderMix::new(seed, session, MixWeights::default());
        let mut live = 0usize;
        let mut out = Vec::new();
        for _ in 0..steps {
            let state = MixState {
                live,
                idle: live,
                quotes_in_flight: 0,
                live_orders_max: 8,
            };
            let action = mix.next(state, &instruments);
            match action {
                Action::Quote { .. } => live += 1,
                Action::Cancel { .. } => live -= 1,
                _ => {}
            }
            out.push(action);
        }
        out
    }

    #[test]
    fn same_seed_same_actions_other_seed_other_actions() {
        let a = run(42, 3, 500);
        assert_eq!(a, run(42, 3, 500));
        assert_ne!(a, run(43, 3, 500));
        assert_ne!(a, run(42, 4, 500), "sessions draw independent streams");
    }

    #[test]
    fn every_kind_appears_and_prices_are_valid() {
        let instruments = instruments();
        let actions = run(7, 0, 5000);
        let mut seen = [0usize; 5];
        for action in &actions {
            match *action {
                Action::Quote {
                    instrument,
                    side,
                    price,
                    shares,
                } => {
                    seen[0] += 1;
                    let spec = instruments[instrument];
                    assert_eq!(price % spec.tick_size, 0);
                    assert_eq!(shares % spec.lot_size, 0);
                    // Quotes stay on their own side of the reference: they never cross each other.
                    if side.is_sell() {
                        assert!(price > spec.reference_price);
                    } else {
                        assert!(price < spec.reference_price);
                    }
                    let ticks = price.abs_diff(spec.reference_price) / spec.tick_size;
                    assert!((1..=spec.ticks_max()).contains(&ticks));
                }
                Action::Cancel { .. } => seen[1] += 1,
                Action::Replace { ticks, lots, .. } => {
                    seen[2] += 1;
                    assert!((1..=QUOTE_TICKS_MAX).contains(&ticks));
                    assert!((1..=SIZE_LOTS_MAX).contains(&lots));
                }
                Action::Aggressive {
                    instrument,
                    side,
                    price,
                    ..
                } => {
                    seen[3] += 1;
                    let spec = instruments[instrument];
                    // Through every quote of the other side.
                    let reach = spec.ticks_max() * spec.tick_size;
                    if side.is_sell() {
                        assert!(price <= spec.reference_price - reach);
                    } else {
                        assert!(price >= spec.reference_price + reach);
                    }
                }
                Action::Market { .. } => seen[4] += 1,
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "every action kind drawn: {seen:?}");
        // Market orders are "a few": well under the aggressive ones.
        assert!(seen[4] < seen[3]);
    }

    /// Every price the mix can send lies inside the collar around every price it can trade at.
    #[test]
    fn prices_stay_inside_the_collar_around_any_trade() {
        for spec in instruments() {
            let k = spec.ticks_max();
            let low = u64::from(spec.reference_price - k * spec.tick_size);
            let high = u64::from(spec.reference_price + k * spec.tick_size);
            // The band around the lowest possible last trade still reaches the highest price, and back.
            let bps = u64::from(spec.collar_bps);
            assert!(low + low * bps / 10_000 >= high, "{spec:?}");
            assert!(high - high * bps / 10_000 <= low, "{spec:?}");
        }
        let brse = instruments()[1];
        assert_eq!(brse.ticks_max(), 4, "5 % of 10.00 over 0.05 ticks");
        assert_eq!(instruments()[0].ticks_max(), QUOTE_TICKS_MAX);
        let no_collar = Instrument {
            collar_bps: 0,
            ..brse
        };
        assert_eq!(no_collar.ticks_max(), QUOTE_TICKS_MAX);
    }

    #[test]
    fn bounds_turn_draws_into_valid_actions() {
        let instruments = instruments();
        let mut mix = OrderMix::new(1, 0, MixWeights::default());
        for _ in 0..1000 {
            // Full and nothing idle: only IOC orders are possible.
            let full_busy = MixState {
                live: 4,
                idle: 0,
                quotes_in_flight: 4,
                live_orders_max: 8,
            };
            let a = mix.next(full_busy, &instruments);
            assert!(
                matches!(a, Action::Aggressive { .. } | Action::Market { .. }),
                "{a:?}"
            );
            // Empty: no cancel or replace can be drawn.
            let empty = MixState {
                live: 0,
                idle: 0,
                quotes_in_flight: 0,
                live_orders_max: 8,
            };
            let a = mix.next(empty, &instruments);
            assert!(
                !matches!(a, Action::Cancel { .. } | Action::Replace { .. }),
                "{a:?}"
            );
            // Full with idle orders: never a new quote.
            let full = MixState {
                live: 8,
                idle: 3,
                quotes_in_flight: 0,
                live_orders_max: 8,
            };
            match mix.next(full, &instruments) {
                Action::Quote { .. } => panic!("quote drawn past live_orders_max"),
                Action::Cancel { nth } | Action::Replace { nth, .. } => assert!(nth < 3),
                _ => {}
            }
        }
    }
}
