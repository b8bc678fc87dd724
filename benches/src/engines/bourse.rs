//! Adapter for bourse-book: `Engine::apply(now_ns, &Command, &mut impl EventSink)` with OUCH-shaped
//! commands, on one instrument, one login and one firm with self-trade prevention off.
//!
//! # Configuration for the side-by-side run (and why)
//! - tick size $0.01 (100 price units), so a workload price of `t` ticks is the wire price `100 t`;
//!   lot size 1 share, as every peer counts shares.
//! - **Price collar off** (`collar_bps = 0`): peers have no collar; the workload never sends a market
//!   order for more than the opposite side holds, so it never needs one.
//! - Quantity and notional limits above anything the workload sends; one firm, STP off, an open-order
//!   limit above the workload's peak: no risk check ever rejects (a reject would show in `rejects`).
//! - Capacities from the workload's [`EngineSizing`]: arena for the peak of live orders, levels for the
//!   price band, tokens for every order id (tokens are day-unique).
//!
//! # What the adapter adds to bourse's cost
//! Each workload id becomes a 14-byte OUCH token (`T` and the id in decimal, as a sequential client
//! numbers its orders). A new order's token comes from an ASCII decimal counter incremented in place
//! inside one reusable Enter command (a client keeps its next token and a message template; workload
//! ids of new orders are consecutive); a cancel's token is formatted from the id with `itoa` and its
//! `Command` built per call. Events go to a counting sink (executions → volume and trades, rejects →
//! `rejects`) that passes every event through `std::hint::black_box` first, so that events the counters
//! do not read are still built in full, as the daemon needs them. Every cost here is counted against
//! bourse. A replace is cancel + new, as for the peers.

use bourse_book::{
    Command, Engine, EngineConfig, EnterOrder, Event, FirmConfig, FnSink, InstrumentConfig, LoginConfig,
    StpMode,
};
use bourse_protocol::fields::{Alpha, Firm, PRICE_MARKET, Symbol, Token};

use crate::engine::{BenchBook, BookOutcome, Level};
use crate::workload::{EngineSizing, LimitOrder, MarketOrder, OrderId, Side};

/// Wire price units per workload tick ($0.01).
pub const TICK_SIZE: u32 = 100;
/// The login every order comes from.
const LOGIN: u32 = 1;
/// OUCH time in force "system hours": rests until end of day.
const TIF_DAY_S: u32 = 99_999;
/// OUCH time in force 0: immediate or cancel.
const TIF_IOC_S: u32 = 0;
/// Busts a day (the side-by-side run busts none).
const BUSTS_MAX: u32 = 1024;

fn symbol() -> Symbol {
    Alpha(*b"BENCH   ")
}

fn firm() -> Firm {
    Alpha(*b"F1  ")
}

/// The token of workload order `id`: `T` and the id in decimal, left-justified, space-padded — the form
/// sequential OUCH clients use, and the same bytes as the book crate's `bourse_book::workload::token`
/// (checked by a test). On the wire the token comes for free, so the adapter keeps its cost, charged to
/// bourse-book, as low as it reasonably can: ids below 10^8 are formatted in registers
/// ([`token_of_eight_digits`], whose stores the engine's reads are forwarded from), larger ones with
/// `itoa` (digit pairs from a table).
///
/// # Panics
/// If `id` has more than 13 decimal digits (a programmer error: workloads are far smaller).
#[inline(always)]
pub fn order_token(id: OrderId) -> Token {
    if let Ok(small) = u32::try_from(id)
        && small < 100_000_000
    {
        return token_of_eight_digits(small);
    }
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(id).as_bytes();
    let mut bytes = *b"T             ";
    bytes[1..=digits.len()].copy_from_slice(digits);
    Alpha(bytes)
}

/// [`order_token`] of an id below 10^8, computed in registers (eight digits at once, SWAR) and written
/// with three stores that do not overlap: bytes 0..8, 8..10 and 10..14, the pieces in which the engine
/// reads a token (two 4-byte loads from the first, then a 2-byte and a 4-byte load). The engine reads a
/// Cancel's token right after the adapter builds it; a load is forwarded from an earlier store only when
/// that one store holds all its bytes, which `itoa`'s 2-byte digit stores and a variable-length copy
/// never do (a stall on every cancel and replace, charged to bourse-book although a client's token
/// comes from the wire).
#[inline(always)]
fn token_of_eight_digits(id: u32) -> Token {
    debug_assert!(id < 100_000_000);
    let (hi, lo) = (u64::from(id / 10_000), u64::from(id % 10_000));
    // Two 32-bit lanes of four digits each (the most significant lane first in memory), then four 16-bit
    // lanes of two digits (v / 100 = (v * 10486) >> 20 for v < 10^4), then eight bytes of one digit
    // (v / 10 = (v * 103) >> 10 for v < 100): every product stays inside its lane.
    let x = hi | (lo << 32);
    let q = ((x * 10_486) >> 20) & 0x0000_007F_0000_007F;
    let y = q | ((x - q * 100) << 16);
    let t = ((y * 103) >> 10) & 0x000F_000F_000F_000F;
    let z = t | ((y - t * 10) << 8);
    // Leading zero digits are the low bytes of `z` that are 0 (at least one digit is kept, for id 0).
    let lead = if z == 0 { 7 } else { z.trailing_zeros() / 8 };
    let count = 8 - lead;
    let digits = u128::from((z | 0x3030_3030_3030_3030) >> (8 * lead));
    let used = 8 * (count + 1);
    let spaces = 0x2020_2020_2020_2020_2020_2020_2020u128 & !((1u128 << used) - 1);
    let word = u128::from(b'T') | (digits << 8) | spaces;
    let mut bytes = [0u8; 14];
    bytes[..8].copy_from_slice(&(word as u64).to_le_bytes());
    bytes[8..10].copy_from_slice(&((word >> 64) as u16).to_le_bytes());
    bytes[10..].copy_from_slice(&((word >> 80) as u32).to_le_bytes());
    Alpha(bytes)
}

/// The next token a sequential client would send: an ASCII decimal counter incremented in place (carry
/// over trailing `9`s), as a real OUCH client keeps its next token, instead of formatting each id from
/// scratch. The digits live in the token field of the adapter's reusable Enter message (a client's
/// message template): the token reaches the engine without a copy through a temporary, whose two
/// overlapping 8-byte halves would stall the engine's first read of it (store forwarding). Produces
/// exactly the bytes of [`order_token`] (checked by a test).
#[derive(Debug, Clone, Copy)]
struct TokenCounter {
    /// The workload id whose token the template holds.
    id: OrderId,
    /// Number of decimal digits after the `T`.
    digits: usize,
    /// The increment carried past the first digit (or nothing set yet): the template is not
    /// `order_token(id)` (formatted on use).
    stale: bool,
}

impl TokenCounter {
    /// A counter whose template must be formatted on first use.
    const fn new() -> Self {
        Self {
            id: 0,
            digits: 0,
            stale: true,
        }
    }

    /// Makes `token` the token of `id`: as it is when `id` is the next in sequence, else formatted.
    #[inline(always)]
    fn prepare(&mut self, id: OrderId, token: &mut Token) {
        if id != self.id || self.stale {
            *token = order_token(id);
            self.id = id;
            self.digits = token.0[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            self.stale = false;
        }
    }

    /// Moves `token` (the token of the counter's id) to the token of the next id, in place.
    #[inline(always)]
    fn advance(&mut self, token: &mut Token) {
        self.id += 1;
        let bytes = &mut token.0;
        let mut i = self.digits;
        // Bounded: at most `digits` carries.
        while i >= 1 {
            if bytes[i] == b'9' {
                bytes[i] = b'0';
                i -= 1;
            } else {
                bytes[i] += 1;
                return;
            }
        }
        // All nines: one more digit (rare; formatted from scratch on use).
        self.stale = true;
    }
}

/// The engine configuration for a side-by-side workload of this size.
///
/// # Panics
/// If the workload is larger than the engine's hard limits allow (a programmer error).
pub fn side_by_side_config(sizing: &EngineSizing) -> EngineConfig {
    let live_orders_max = u32::try_from(sizing.live_orders_max).expect("live orders fit in u32");
    let orders_max = live_orders_max.saturating_mul(2).max(1_024);
    let band_ticks =
        u32::try_from(sizing.price_max_ticks - sizing.price_min_ticks).expect("band fits in u32");
    let tokens_max = u32::try_from(sizing.order_id_max + 1).expect("order ids fit in u32");
    let shares_max = u32::try_from(sizing.order_qty_max).expect("order sizes fit in u32");
    let price_max = u64::from(TICK_SIZE) * (sizing.price_max_ticks + 1);
    EngineConfig {
        orders_max,
        // Levels per side: the whole band, plus the ticks a passive order may sit past its edge.
        levels_max: band_ticks + 8,
        tokens_max,
        busts_max: BUSTS_MAX,
        order_ref_first: 1,
        match_number_first: 1,
        instruments: vec![InstrumentConfig {
            symbol: symbol(),
            locate: 1,
            tick_size: TICK_SIZE,
            lot_size: 1,
            collar_bps: 0,
            reference_price: u32::try_from(u64::from(TICK_SIZE) * sizing.price_min_ticks.max(1))
                .expect("reference price fits in u32"),
            shares_max,
            notional_max: price_max * u64::from(shares_max),
        }],
        firms: vec![FirmConfig {
            firm: firm(),
            open_orders_max: orders_max,
            stp: StpMode::None,
        }],
        logins: vec![LoginConfig {
            login: LOGIN,
            firms: vec![firm()],
            default_firm: firm(),
        }],
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    traded_volume: u64,
    trade_count: u64,
    rejects: u64,
}

/// `bourse_book::Engine` behind the [`BenchBook`] adapter.
pub struct BourseBook {
    engine: Engine,
    /// Time passed to `apply`: one nanosecond per call (the engine only orders by it).
    now_ns: u64,
    counters: Counters,
    /// The reusable Enter message (always `Command::Enter`), passed to the engine by reference and
    /// updated field by field; its token is the next new order's (see [`TokenCounter`]).
    enter: Command,
    /// The counter behind `enter.token` (workload ids of new orders are sequential).
    next_token: TokenCounter,
}

impl std::fmt::Debug for BourseBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BourseBook")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn side_letter(side: Side) -> u8 {
    match side {
        Side::Buy => b'B',
        Side::Sell => b'S',
    }
}

impl BourseBook {
    /// An engine configured by [`side_by_side_config`].
    ///
    /// # Panics
    /// If the engine refuses the configuration (a programmer error in [`side_by_side_config`]).
    pub fn new(sizing: &EngineSizing) -> Self {
        let engine = Engine::new(side_by_side_config(sizing)).expect("side-by-side config is valid");
        Self {
            engine,
            now_ns: 0,
            counters: Counters::default(),
            enter: Command::Enter(EnterOrder {
                login: LOGIN,
                token: Token::BLANK,
                side: b'B',
                shares: 0,
                symbol: symbol(),
                price: 0,
                tif_s: 0,
                firm: Firm::BLANK,
                display: b'Y',
                min_qty: 0,
                capacity: b'P',
                cross_type: b'N',
            }),
            next_token: TokenCounter::new(),
        }
    }

    #[inline(always)]
    fn apply(&mut self, command: &Command) {
        Self::apply_to(&mut self.engine, &mut self.now_ns, &mut self.counters, command);
    }

    /// [`Self::apply`] with the fields borrowed apart (the command may be one of `self`'s).
    #[inline(always)]
    fn apply_to(engine: &mut Engine, now_ns: &mut u64, counters: &mut Counters, command: &Command) {
        *now_ns += 1;
        let mut sink = FnSink(|event: Event| {
            // Every event is made observable, so that the compiler cannot skip building the ones the
            // counters do not read (Accepted, Canceled, ...): the daemon reads all of their fields.
            let event = std::hint::black_box(event);
            match event {
                Event::Executed(executed) => {
                    counters.trade_count += 1;
                    counters.traded_volume += u64::from(executed.shares);
                }
                Event::Rejected { .. } => counters.rejects += 1,
                _ => {}
            }
        });
        engine.apply(*now_ns, command, &mut sink);
    }

    #[inline(always)]
    fn enter(&mut self, id: OrderId, side: Side, qty: u64, price: u32, tif_s: u32) {
        let Ok(shares) = u32::try_from(qty) else {
            self.counters.rejects += 1;
            return;
        };
        let Command::Enter(enter) = &mut self.enter else {
            unreachable!("the template is an Enter")
        };
        self.next_token.prepare(id, &mut enter.token);
        enter.side = side_letter(side);
        enter.shares = shares;
        enter.price = price;
        enter.tif_s = tif_s;
        Self::apply_to(
            &mut self.engine,
            &mut self.now_ns,
            &mut self.counters,
            &self.enter,
        );
        let Command::Enter(enter) = &mut self.enter else {
            unreachable!("the template is an Enter")
        };
        self.next_token.advance(&mut enter.token);
    }
}

impl BenchBook for BourseBook {
    fn name(&self) -> &'static str {
        "bourse-book"
    }

    #[inline]
    fn add_limit(&mut self, order: &LimitOrder) {
        let Some(price) = u32::try_from(order.price_ticks)
            .ok()
            .and_then(|ticks| ticks.checked_mul(TICK_SIZE))
        else {
            self.counters.rejects += 1;
            return;
        };
        self.enter(order.id, order.side, order.qty, price, TIF_DAY_S);
    }

    #[inline]
    fn cancel(&mut self, id: OrderId) {
        self.apply(&Command::Cancel {
            login: LOGIN,
            token: order_token(id),
            shares: 0,
        });
    }

    #[inline]
    fn market(&mut self, order: &MarketOrder) {
        self.enter(order.id, order.side, order.qty, PRICE_MARKET, TIF_IOC_S);
    }

    fn outcome(&self) -> BookOutcome {
        let levels = |side: bourse_book::Side| -> Vec<Level> {
            self.engine
                .depth(&symbol(), side)
                .into_iter()
                .map(|(price, shares, _orders)| Level {
                    price_ticks: u64::from(price / TICK_SIZE),
                    qty: shares,
                })
                .collect()
        };
        BookOutcome {
            bids: levels(bourse_book::Side::Buy),
            asks: levels(bourse_book::Side::Sell),
            traded_volume: self.counters.traded_volume,
            trade_count: self.counters.trade_count,
            rejects: self.counters.rejects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenCounter, order_token};
    use bourse_protocol::fields::Token;

    #[test]
    fn the_token_counter_gives_the_formatted_tokens_in_and_out_of_sequence() {
        let mut counter = TokenCounter::new();
        let mut template = Token::BLANK;
        let mut token = |id| {
            counter.prepare(id, &mut template);
            let token = template;
            counter.advance(&mut template);
            token
        };
        for id in 0..=10_050 {
            assert_eq!(token(id), order_token(id), "id {id}");
        }
        // Out of sequence (a jump, a step back), then across a change of length.
        for id in [99_998, 99_999, 100_000, 100_001, 7, 8, 9, 10, 9_999_999_999_999] {
            assert_eq!(token(id), order_token(id), "id {id}");
        }
        assert_eq!(&token(0).0, b"T0            ");
        assert_eq!(&token(1).0, b"T1            ");
    }

    #[test]
    fn tokens_match_the_book_crates_form_and_are_distinct() {
        let ids = [0, 1, 9, 10, 99, 100, 1 << 40, 9_999_999_999_999];
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(order_token(*id), bourse_book::workload::token(*id), "id {id}");
            assert!(
                ids[..i]
                    .iter()
                    .all(|other| order_token(*other) != order_token(*id))
            );
        }
        assert_eq!(&order_token(33).0, b"T33           ");
    }

    #[test]
    fn eight_digit_tokens_agree_with_the_book_crates_form() {
        // Every power of ten and its neighbours (each digit count, both ends), the largest id in the
        // register path and its successor (the formatted path), then a stride through the whole range.
        let mut ids: Vec<u64> = (0..=8)
            .flat_map(|e| {
                let p = 10u64.pow(e);
                [p.saturating_sub(1), p, p + 1]
            })
            .collect();
        ids.extend(0..=1_000);
        ids.extend((0..100_000_000).step_by(9_973));
        for id in ids {
            assert_eq!(order_token(id), bourse_book::workload::token(id), "id {id}");
        }
    }
}
