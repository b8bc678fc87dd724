//! The engine: books, order arena, token table, expiry timers and the command handlers.
//!
//! # Layout
//! - Order arena: `orders` (a `Vec` pre-sized to `orders_max`, grown only up to that capacity) plus a
//!   free list; an order's index is stable while it lives, and a generation counter makes stale timer
//!   entries harmless. An order is one 64-byte, line-aligned value holding its token as two words
//!   ([`crate::tokens::TokenWords`]); cancel by (login, token) is one live-index probe: O(1).
//! - Books: per instrument and side, a `Vec<Level>` sorted so that the best price is the LAST element
//!   (bids ascending, asks descending): taking liquidity pops from the end, and adding near the touch
//!   moves only the few levels better than it. Each level is an intrusive FIFO list through the
//!   orders' `prev`/`next` indices, with its total open lots. Capacity `levels_max` per side. Finding a
//!   level is O(1) through a price-indexed window (2 × `levels_max` ticks, at most `LEVEL_INDEX_TICKS`,
//!   around the reference price:
//!   price → position in the `Vec`, rewritten for the few levels a Vec insert/remove shifts); outside
//!   the window (or for a new level's place) it scans up to `TOUCH_SCAN_LEVELS` from the touch, then
//!   binary-searches the rest.
//! - Live-order index (`live`): (login, token) → arena index of resting orders only, 8 bytes a slot in
//!   line-sized groups of 8 (a lookup compares a group at once; a removal moves nothing),
//!   small and hot; the day's token set (`tokens`) is consulted only to dedupe new tokens, and an
//!   in-order token (the common case) is known new without a probe.
//! - Expiry timers: a binary min-heap of (expire time, order ref, index, generation), capacity
//!   `orders_max`, drained by [`Command::ExpireDue`].
//! - Busts: no copy of past trades. A fill writes nothing beyond its event; a [`Command::BustTrade`]
//!   names the trade as its Executed event did (the daemon reads it from the journal), and the engine
//!   keeps only the day's busted match numbers (sorted, capacity `busts_max`) and the day's first match
//!   number, so that a trade of the day is busted once and an older one not at all.
//! - Hot-path shape: `check_enter` and `validate` are inlined so their `Result` stays in registers.
//!
//! # Determinism
//! No clock, no randomness, no hash-map iteration: every loop walks arrays in index order or books in
//! price-time order, so the same commands at the same times give the same events.
//!
//! # Order of checks on Enter Order (docs/protocol.md 3.3, "Check order"; #1, throttle, is the daemon's)
//! unknown login (`L`, token not consumed; the daemon never sends one) → reused token (ignored) →
//! token table full (`Y`, not consumed) → #2 day closed `C` → #3 firm not allowed `L` → #4 kill switch
//! `a` → #5 symbol `S` → #6 halted `H` → #7 side, TIF `O` → #8 display `D` (not `Y`/`A`/`P`,
//! post-only with IOC, a Replace changing attribution) → #9 shares `Z` → #10 lot `e` → #11 price `X`
//! → #12 market not IOC or in a Replace `V` → #13 minimum quantity `N` → #14 collar `K` → #15
//! notional `n` → #16 open-order limit `U` → #17 capacity `Y` (order arena, or a new price level on a
//! full side) → #18 post-only would cross `P`. #16 and the arena part of #17 apply only to orders that
//! can rest (not IOC) and not to a Replace. A Replace first needs a live existing order (else
//! ignored) and a fresh replacement token (else ignored), then runs #2, #4, #6-#15, #17 (levels), #18.
//!
//! # Modify Order
//! Refused with [`Event::CancelRejected`] (OUCH Cancel Reject `I`), the order unchanged, when the side
//! letter is not the order's side (buy <-> sell, or not `B`/`S`/`T`/`E`), Shares is 0, above the open
//! size, or off the lot.

use bourse_protocol::fields::{Firm, PRICE_LIMIT_MAX, PRICE_MARKET, Symbol, Token};
use bourse_protocol::reason::{CancelReason, RejectReason};

use crate::command::{Command, EnterOrder, MassCancelScope, ReplaceOrder};
use crate::config::{ConfigError, EngineConfig, StpMode, TIF_EXPIRING_MAX_S, TIF_SYSTEM_HOURS};
use crate::event::{
    Accepted, Added, Canceled, Event, EventSink, Executed, Instrument, Modified, Party, Replaced,
    SelfTradeCanceled,
};
use crate::live::LiveTable;
use crate::tokens::{Insert, TokenTable, TokenWords};
use crate::types::{Divisor, Lots, Side, Ticks, display};

/// Null index of the intrusive lists.
pub(crate) const NIL: u32 = u32::MAX;
const NS_PER_S: u64 = 1_000_000_000;

/// A resting order in the arena: 64 bytes, aligned to a cache line, so that every access to an order
/// (its fields at both ends: `order_ref`, `live`) touches one line; a 72-byte order straddled two lines
/// for most slots. `repr(C)` keeps the token's words at offset 16, so whole-order copies move them with
/// the same 16-byte accesses that read them. An expiring order's time is not here: the expiry heap holds
/// it ([`Expiry`]), and the snapshot derives it from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Order {
    pub(crate) order_ref: u64,
    pub(crate) login: u32,
    /// Slot in the live-order index (not part of the snapshot: restore rebuilds the index).
    pub(crate) live_slot: u32,
    pub(crate) token: TokenWords,
    pub(crate) price: Ticks,
    pub(crate) open: Lots,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) generation: u32,
    pub(crate) firm: u16,
    pub(crate) instrument: u16,
    /// Index of `login` in the engine's sorted login list (not part of the snapshot: restore derives
    /// it), for the per-login resting count.
    pub(crate) login_ix: u16,
    pub(crate) side_letter: u8,
    pub(crate) display: u8,
    /// OUCH Capacity and Cross Type as entered (echoed, never interpreted).
    pub(crate) capacity: u8,
    pub(crate) cross_type: u8,
    pub(crate) live: bool,
}

const _: () = assert!(std::mem::size_of::<Order>() == 64);
const _: () = assert!(std::mem::offset_of!(Order, token) == 16);

/// A never-used arena slot.
pub(crate) const ORDER_VACANT: Order = Order {
    order_ref: 0,
    login: 0,
    live_slot: NIL,
    price: Ticks(0),
    open: Lots(0),
    prev: NIL,
    next: NIL,
    generation: 0,
    token: TokenWords::BLANK,
    firm: 0,
    instrument: 0,
    login_ix: 0,
    side_letter: 0,
    display: 0,
    capacity: 0,
    cross_type: 0,
    live: false,
};

impl Order {
    /// The book side. Branch-free (a compare, no jump on the letter: a cancel's side is as unpredictable
    /// as the workload's): only valid letters are ever stored (checked at entry, modify and restore; and
    /// by [`Engine::check_invariants`]), so any letter but `B` is a sell letter.
    #[inline]
    pub(crate) fn side(&self) -> Side {
        debug_assert!(
            Side::from_letter(self.side_letter).is_some(),
            "resting orders have a valid side"
        );
        if self.side_letter == b'B' {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}

/// One price level: total open lots and a FIFO list of orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) price: Ticks,
    pub(crate) open: u64,
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

/// Upper bound of the ticks covered by each side's price → level index ([`Book::find`]). The window is
/// `2 × levels_max` ticks rounded up to a power of two (at least 16, at most this), centred on the
/// instrument's reference price: 8 bytes per tick per instrument (both sides), a third of what the
/// pre-sized level `Vec`s take, so memory stays proportional to the configuration. A level inside is
/// found in O(1); a price outside falls back to the search from the touch.
pub(crate) const LEVEL_INDEX_TICKS: u32 = 1 << 14;

/// Per-instrument state.
pub(crate) struct Book {
    /// Ascending: best bid last.
    pub(crate) bids: Vec<Level>,
    /// Descending: best ask last.
    pub(crate) asks: Vec<Level>,
    /// Per side (bids, asks): for the price `index_base + i` ticks, 1 + the index of its level in the
    /// side's `Vec`, or 0 when that price has no level. An accelerator only (not in the snapshot).
    index: [Vec<u32>; 2],
    /// Lowest price in ticks covered by `index`.
    index_base: u32,
    pub(crate) halted: bool,
    /// Wire price of the last trade, 0 before the first.
    pub(crate) last_trade_price: u32,
}

const fn side_ix(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl Book {
    /// An empty book whose level index is centred on `reference_ticks`; every table pre-touched.
    pub(crate) fn new(levels_max: usize, reference_ticks: u32) -> Self {
        let window = u32::try_from(levels_max.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(16, LEVEL_INDEX_TICKS)
            .next_power_of_two();
        Self {
            bids: pretouched(levels_max, LEVEL_VACANT),
            asks: pretouched(levels_max, LEVEL_VACANT),
            index: [0, 1].map(|_| {
                // Written now (not a lazily zeroed allocation), so the day takes no page faults here.
                let mut v = vec![u32::MAX; window as usize];
                v.fill(0);
                v
            }),
            index_base: reference_ticks.saturating_sub(window / 2),
            halted: false,
            last_trade_price: 0,
        }
    }

    /// Where `price` is (`Ok`) or would go (`Err`) in one side's levels (best price last): O(1) when
    /// the price is in the index window and has a level, else the search from the touch.
    #[inline]
    pub(crate) fn find(&self, side: Side, price: Ticks) -> Result<usize, usize> {
        let slot = price.0.wrapping_sub(self.index_base) as usize;
        match self.index[side_ix(side)].get(slot) {
            Some(&v) if v != 0 => Ok(v as usize - 1),
            _ => position(self.levels(side), side, price),
        }
    }

    /// Inserts a level at `at` (as [`Book::find`] said) and reindexes the levels it shifted.
    fn insert_level(&mut self, side: Side, at: usize, level: Level) {
        self.levels_mut(side).insert(at, level);
        self.reindex_from(side, at);
    }

    /// Removes the level at `at` and reindexes the levels it shifted.
    fn remove_level(&mut self, side: Side, at: usize) {
        let price = self.levels_mut(side).remove(at).price;
        let slot = price.0.wrapping_sub(self.index_base) as usize;
        if let Some(v) = self.index[side_ix(side)].get_mut(slot) {
            *v = 0;
        }
        self.reindex_from(side, at);
    }

    /// Writes the index entries of the levels from `from` on (those a Vec insert/remove shifted: the
    /// better ones, near the touch).
    fn reindex_from(&mut self, side: Side, from: usize) {
        let base = self.index_base;
        let (levels, index) = match side {
            Side::Buy => (&self.bids, &mut self.index[0]),
            Side::Sell => (&self.asks, &mut self.index[1]),
        };
        for (i, l) in levels.iter().enumerate().skip(from) {
            if let Some(v) = index.get_mut(l.price.0.wrapping_sub(base) as usize) {
                *v = i as u32 + 1;
            }
        }
    }

    /// Rebuilds both sides' index from the levels (restore).
    pub(crate) fn reindex(&mut self) {
        self.index[0].fill(0);
        self.index[1].fill(0);
        self.reindex_from(Side::Buy, 0);
        self.reindex_from(Side::Sell, 0);
    }

    /// Checks the index against the levels: O(levels) for `full == false`, O(window) otherwise.
    pub(crate) fn check_index(&self, full: bool) -> Result<(), String> {
        for side in [Side::Buy, Side::Sell] {
            let (levels, index) = (self.levels(side), &self.index[side_ix(side)]);
            let mut inside = 0;
            for (i, l) in levels.iter().enumerate() {
                if let Some(&v) = index.get(l.price.0.wrapping_sub(self.index_base) as usize) {
                    inside += 1;
                    if v as usize != i + 1 {
                        return Err(format!("{side:?} level {:?} indexed {v}, at {i}", l.price));
                    }
                }
            }
            if full && index.iter().filter(|&&v| v != 0).count() != inside {
                return Err(format!("{side:?} level index holds stale entries"));
            }
        }
        Ok(())
    }

    pub(crate) fn levels(&self, side: Side) -> &Vec<Level> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }
    fn levels_mut(&mut self, side: Side) -> &mut Vec<Level> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

/// Per-firm state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct FirmState {
    pub(crate) killed: bool,
    pub(crate) open_orders: u32,
}

/// A pending expiry (heap entry). Stale when the order at `index` no longer has `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expiry {
    pub(crate) expire_ns: u64,
    pub(crate) order_ref: u64,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Expiry {
    fn key(&self) -> (u64, u64) {
        (self.expire_ns, self.order_ref)
    }
}

/// An instrument's tick and lot sizes, ready to divide by.
#[derive(Clone, Copy, Debug)]
struct InstrumentDivisors {
    tick: Divisor,
    lot: Divisor,
}

/// Why [`Engine::restore`] refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The bytes end early or hold an invalid value.
    #[error("snapshot malformed: {0}")]
    Malformed(#[from] crate::record::DecodeError),
    /// Bytes follow the end of the snapshot.
    #[error("{0} bytes after the end of the snapshot")]
    TrailingBytes(usize),
    /// Magic or version unknown.
    #[error("not a bourse-book snapshot of a known version")]
    Version,
    /// The snapshot was taken under a different configuration.
    #[error("snapshot configuration fingerprint {found:#x} differs from {expected:#x}")]
    Config {
        /// Fingerprint of this engine's configuration.
        expected: u64,
        /// Fingerprint in the snapshot.
        found: u64,
    },
    /// A table in the snapshot is larger than its configured capacity, or an index is out of range.
    #[error("snapshot value out of range: {0}")]
    Range(&'static str),
}

/// The incoming order while it matches.
struct Taker {
    token: TokenWords,
    login: u32,
    /// Index of `login` in the sorted login list.
    login_ix: u16,
    order_ref: u64,
    firm: u16,
    instrument: u16,
    side: Side,
    side_letter: u8,
    display: u8,
    capacity: u8,
    cross_type: u8,
    /// Effective limit (a market order's is its collar bound).
    limit: Ticks,
    /// Wire price as entered (for events).
    price_wire: u32,
    market: bool,
    remaining: Lots,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Filled,
    Limit,
    Exhausted,
    SelfTrade,
}

/// What validation of a new or replacement order yields.
struct Valid {
    lots: Lots,
    limit: Ticks,
    market: bool,
    ioc: bool,
    expire_ns: u64,
    min_qty: u32,
}

/// The matching engine. See the crate documentation for the API and [`Command`] for the inputs.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) books: Vec<Book>,
    /// Per instrument: its tick size and lot size as [`Divisor`]s (derived from the configuration).
    divisors: Vec<InstrumentDivisors>,
    /// (symbol, instrument index), sorted by symbol.
    symbols: Vec<(Symbol, u16)>,
    pub(crate) firms: Vec<FirmState>,
    /// (login id, allowed firm indices, default firm index), sorted by login id.
    logins: Vec<(u32, Vec<u16>, u16)>,
    /// Resting orders per login index: a login with none is skipped by its mass cancel (every
    /// cancel-on-disconnect), and one with some stops the scan once all are found.
    pub(crate) login_resting: Vec<u32>,
    pub(crate) orders: Vec<Order>,
    pub(crate) free: Vec<u32>,
    pub(crate) tokens: TokenTable,
    pub(crate) live: LiveTable,
    pub(crate) expiries: Vec<Expiry>,
    /// Match numbers busted since Start of Day, ascending (capacity `busts_max`).
    pub(crate) busted: Vec<u64>,
    /// The first match number of the current day: older trades are not busted.
    pub(crate) day_first_match: u64,
    pub(crate) order_ref_next: u64,
    pub(crate) match_number_next: u64,
    pub(crate) closed: bool,
    scratch: Vec<u32>,
}

/// An empty `Vec` of capacity `capacity` whose memory has been written once, so that filling it
/// during the trading day takes no page faults (allocation and first touch happen at start).
fn pretouched<T: Clone>(capacity: usize, fill: T) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    v.resize(capacity, fill);
    v.clear();
    v
}

const LEVEL_VACANT: Level = Level {
    price: Ticks(0),
    open: 0,
    head: NIL,
    tail: NIL,
};
const EXPIRY_VACANT: Expiry = Expiry {
    expire_ns: 0,
    order_ref: 0,
    index: NIL,
    generation: 0,
};
/// Levels scanned linearly from the touch before falling back to a binary search: most orders
/// arrive at or near the touch, where a short predictable scan beats a binary search.
const TOUCH_SCAN_LEVELS: usize = 8;

/// Where `price` is (`Ok`) or would go (`Err`) in one side's levels (best price last).
fn position(levels: &[Level], side: Side, price: Ticks) -> Result<usize, usize> {
    // `behind(level)`: that level ranks behind `price` on this side (further from the touch).
    let behind = |level: Ticks| match side {
        Side::Buy => level < price,
        Side::Sell => level > price,
    };
    let len = levels.len();
    for i in (len.saturating_sub(TOUCH_SCAN_LEVELS)..len).rev() {
        let level = levels[i].price;
        if level == price {
            return Ok(i);
        }
        if behind(level) {
            return Err(i + 1);
        }
    }
    let head = &levels[..len.saturating_sub(TOUCH_SCAN_LEVELS)];
    match side {
        Side::Buy => head.binary_search_by(|l| l.price.cmp(&price)),
        Side::Sell => head.binary_search_by(|l| price.cmp(&l.price)),
    }
}

/// True when an incoming order on `side` with limit `limit` trades with a resting level at `price`.
fn crosses(side: Side, limit: Ticks, price: Ticks) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

impl Engine {
    /// Validates `config` and allocates every table to its limits.
    ///
    /// # Errors
    /// [`ConfigError`] for a configuration the engine cannot run with.
    pub fn new(config: EngineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let levels_max = config.levels_max as usize;
        let books = config
            .instruments
            .iter()
            .map(|c| Book::new(levels_max, c.reference_price / c.tick_size))
            .collect();
        let mut symbols: Vec<(Symbol, u16)> = config
            .instruments
            .iter()
            .enumerate()
            .map(|(i, c)| (c.symbol, i as u16))
            .collect();
        symbols.sort();
        let divisors = config
            .instruments
            .iter()
            .map(|c| InstrumentDivisors {
                tick: Divisor::new(c.tick_size),
                lot: Divisor::new(c.lot_size),
            })
            .collect();
        let firm_indexes: std::collections::HashMap<Firm, u16> = config
            .firms
            .iter()
            .enumerate()
            .map(|(i, c)| (c.firm, i as u16))
            .collect();
        let firm_index = |f: &Firm| firm_indexes[f];
        let mut logins: Vec<(u32, Vec<u16>, u16)> = config
            .logins
            .iter()
            .map(|l| {
                (
                    l.login,
                    l.firms.iter().map(firm_index).collect(),
                    firm_index(&l.default_firm),
                )
            })
            .collect();
        logins.sort();
        let orders_max = config.orders_max as usize;
        // Touch the arena's pages now (fill, then empty: the capacity stays) so that the trading day
        // takes no page faults; `orders.len()` is the high-water mark of slots ever used.
        let orders = pretouched(orders_max, ORDER_VACANT);
        Ok(Self {
            divisors,
            books,
            symbols,
            firms: vec![FirmState::default(); config.firms.len()],
            login_resting: vec![0; logins.len()],
            logins,
            orders,
            free: pretouched(orders_max, 0),
            tokens: TokenTable::new(config.logins.len(), config.tokens_max),
            live: LiveTable::new(config.orders_max),
            expiries: pretouched(orders_max, EXPIRY_VACANT),
            busted: Vec::with_capacity(config.busts_max as usize),
            day_first_match: config.match_number_first,
            order_ref_next: config.order_ref_first,
            match_number_next: config.match_number_first,
            closed: false,
            scratch: pretouched(orders_max, 0),
            config,
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Applies one sequenced command at time `now_ns` (nanoseconds since midnight of the trading day),
    /// writing its events to `out` in publication order. Never panics on bad input: a bad command is a
    /// reject event or, where the protocol says so, ignored (no event).
    ///
    /// # Panics
    /// Only on a broken internal invariant (a bug), never on input.
    pub fn apply(&mut self, now_ns: u64, command: &Command, out: &mut impl EventSink) {
        match command {
            Command::Enter(order) => self.enter(now_ns, order, out),
            Command::Cancel { login, token, shares } => self.cancel(now_ns, *login, token, *shares, out),
            Command::Replace(order) => self.replace(now_ns, order, out),
            Command::Modify {
                login,
                token,
                side,
                shares,
            } => self.modify(now_ns, *login, token, *side, *shares, out),
            Command::MassCancel { scope, reason } => self.mass_cancel(now_ns, *scope, *reason, out),
            Command::KillSwitch { firm, on } => self.kill_switch(now_ns, firm, *on, out),
            Command::ExpireDue => self.expire_due(now_ns, out),
            Command::EndOfDay => self.end_of_day(now_ns, out),
            Command::StartOfDay => {
                if self.closed {
                    self.tokens.clear();
                    self.busted.clear();
                    self.day_first_match = self.match_number_next;
                    self.closed = false;
                    out.push(Event::SystemEvent {
                        timestamp_ns: now_ns,
                        code: b'S',
                    });
                }
            }
            Command::Halt { symbol } => self.set_halt(now_ns, symbol, true, out),
            Command::Resume { symbol } => self.set_halt(now_ns, symbol, false, out),
            Command::BustTrade {
                match_number,
                symbol,
                resting,
                taking,
            } => self.bust(now_ns, *match_number, symbol, resting, taking, out),
            Command::Throttled { login, token } => self.throttled(now_ns, *login, token, out),
        }
    }

    /// Time of the earliest pending expiry (it may belong to an order already gone: an
    /// [`Command::ExpireDue`] at that time then does nothing). The daemon sequences `ExpireDue` then.
    pub fn next_expiry_ns(&self) -> Option<u64> {
        self.expiries.first().map(|e| e.expire_ns)
    }

    /// Whether an instrument is halted (`None`: unknown symbol).
    pub fn is_halted(&self, symbol: &Symbol) -> Option<bool> {
        self.instrument_index(symbol).map(|i| self.books[i].halted)
    }

    /// Whether a firm's kill switch is on (`None`: unknown firm).
    pub fn is_killed(&self, firm: &Firm) -> Option<bool> {
        self.firm_index(firm).map(|f| self.firms[f as usize].killed)
    }

    // ----- queries (tests, tools) -----

    /// Number of live (resting) orders.
    pub fn order_count(&self) -> usize {
        self.orders.len() - self.free.len()
    }

    /// The next order reference number the engine will assign.
    pub fn order_ref_next(&self) -> u64 {
        self.order_ref_next
    }

    /// The next match number the engine will assign.
    pub fn match_number_next(&self) -> u64 {
        self.match_number_next
    }

    /// Depth of one side of an instrument, best first: (price, total shares, order count) per level.
    /// Returns an empty list for an unknown symbol. Allocates: for tests and tools, not the hot path.
    pub fn depth(&self, symbol: &Symbol, side: Side) -> Vec<(u32, u64, u32)> {
        let Some(i) = self.instrument_index(symbol) else {
            return Vec::new();
        };
        let c = &self.config.instruments[i];
        self.books[i]
            .levels(side)
            .iter()
            .rev()
            .map(|l| {
                let mut count = 0;
                let mut o = l.head;
                while o != NIL {
                    count += 1;
                    o = self.orders[o as usize].next;
                }
                (l.price.0 * c.tick_size, l.open * u64::from(c.lot_size), count)
            })
            .collect()
    }

    /// Orders of one side of an instrument in priority order (best level first, FIFO within it):
    /// (order ref, price, open shares, login, token). Allocates: for tests and tools.
    pub fn orders_in_priority(&self, symbol: &Symbol, side: Side) -> Vec<(u64, u32, u32, u32, Token)> {
        let Some(i) = self.instrument_index(symbol) else {
            return Vec::new();
        };
        let c = &self.config.instruments[i];
        let mut out = Vec::new();
        for l in self.books[i].levels(side).iter().rev() {
            let mut o = l.head;
            while o != NIL {
                let order = &self.orders[o as usize];
                out.push((
                    order.order_ref,
                    order.price.0 * c.tick_size,
                    order.open.0 * c.lot_size,
                    order.login,
                    order.token.token(),
                ));
                o = order.next;
            }
        }
        out
    }

    /// Whether the trading day is closed (after end of day, before start of day).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Checks the structural invariants (never crossed, level totals equal their orders, FIFO lists
    /// consistent, every live order in exactly one level, firm open counts right).
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        // The day's busts: ascending, of the day, already traded, within busts_max.
        let day = self.day_first_match..self.match_number_next;
        if self.busted.windows(2).any(|w| w[0] >= w[1])
            || self.busted.iter().any(|m| !day.contains(m))
            || self.busted.len() > self.config.busts_max as usize
        {
            return Err(format!("busted match numbers {:?} outside {day:?}", self.busted));
        }
        let mut seen = 0usize;
        let mut firm_open = vec![0u32; self.firms.len()];
        let mut login_open = vec![0u32; self.login_resting.len()];
        for (i, book) in self.books.iter().enumerate() {
            book.check_index(false)
                .map_err(|e| format!("instrument {i}: {e}"))?;
            if let (Some(b), Some(a)) = (book.bids.last(), book.asks.last())
                && b.price >= a.price
            {
                return Err(format!(
                    "instrument {i} crossed: bid {:?} ask {:?}",
                    b.price, a.price
                ));
            }
            for side in [Side::Buy, Side::Sell] {
                let levels = book.levels(side);
                for w in levels.windows(2) {
                    let ordered = match side {
                        Side::Buy => w[0].price < w[1].price,
                        Side::Sell => w[0].price > w[1].price,
                    };
                    if !ordered {
                        return Err(format!("instrument {i} {side:?} levels out of order"));
                    }
                }
                for l in levels {
                    let (mut sum, mut o, mut prev, mut last_ref) = (0u64, l.head, NIL, 0u64);
                    if o == NIL {
                        return Err(format!("instrument {i} empty level {:?}", l.price));
                    }
                    while o != NIL {
                        let order = &self.orders[o as usize];
                        if !order.live
                            || order.prev != prev
                            || order.price != l.price
                            || Side::from_letter(order.side_letter) != Some(side)
                        {
                            return Err(format!("order {o} badly linked in level {:?}", l.price));
                        }
                        if order.open.0 == 0 {
                            return Err(format!("order {o} rests with zero size"));
                        }
                        // FIFO: later entries have larger refs (every rest takes a fresh ref).
                        if order.order_ref <= last_ref {
                            return Err(format!("level {:?} not in FIFO order", l.price));
                        }
                        last_ref = order.order_ref;
                        sum += u64::from(order.open.0);
                        firm_open[order.firm as usize] += 1;
                        if self.login_index(order.login) != Some(usize::from(order.login_ix)) {
                            return Err(format!(
                                "order {} has login index {}",
                                order.order_ref, order.login_ix
                            ));
                        }
                        login_open[usize::from(order.login_ix)] += 1;
                        seen += 1;
                        prev = o;
                        o = order.next;
                    }
                    if prev != l.tail || sum != l.open {
                        return Err(format!("level {:?} tail or total wrong", l.price));
                    }
                }
            }
        }
        if self.live.count() != seen {
            return Err(format!(
                "live index holds {} orders, books {seen}",
                self.live.count()
            ));
        }
        if seen != self.order_count() {
            return Err(format!(
                "{seen} orders on books, {} live in arena",
                self.order_count()
            ));
        }
        for (f, s) in self.firms.iter().enumerate() {
            if s.open_orders != firm_open[f] {
                return Err(format!(
                    "firm {f} open count {} vs {}",
                    s.open_orders, firm_open[f]
                ));
            }
        }
        if self.login_resting != login_open {
            return Err("per-login resting counts disagree with the books".to_owned());
        }
        Ok(())
    }

    /// Checks the live-order index entry by entry (O(capacity), unlike [`Engine::check_invariants`]):
    /// every entry reachable from its home slot and matching its order.
    ///
    /// # Errors
    /// A description of the first broken entry.
    pub fn check_indexes(&self) -> Result<(), String> {
        for (i, book) in self.books.iter().enumerate() {
            book.check_index(true)
                .map_err(|e| format!("instrument {i}: {e}"))?;
        }
        self.live.check(&self.orders)
    }

    // ----- lookups -----

    #[inline]
    fn instrument_index(&self, symbol: &Symbol) -> Option<usize> {
        self.symbols
            .binary_search_by(|(s, _)| s.cmp(symbol))
            .ok()
            .map(|i| self.symbols[i].1 as usize)
    }

    pub(crate) fn login_index(&self, login: u32) -> Option<usize> {
        self.logins.binary_search_by(|(l, _, _)| l.cmp(&login)).ok()
    }

    fn firm_index(&self, firm: &Firm) -> Option<u16> {
        self.config
            .firms
            .iter()
            .position(|c| c.firm == *firm)
            .map(|i| i as u16)
    }

    fn instrument_event(&self, i: u16) -> Instrument {
        let c = &self.config.instruments[i as usize];
        Instrument {
            symbol: c.symbol,
            locate: c.locate,
        }
    }

    fn price_wire(&self, i: u16, ticks: Ticks) -> u32 {
        ticks.0 * self.config.instruments[i as usize].tick_size
    }

    fn shares(&self, i: u16, lots: Lots) -> u32 {
        lots.0 * self.config.instruments[i as usize].lot_size
    }

    /// Collar band (lower, upper) in wire price units; (0, u64::MAX) when disabled.
    #[inline(always)]
    fn collar(&self, i: usize) -> (u64, u64) {
        let c = &self.config.instruments[i];
        if c.collar_bps == 0 {
            return (0, u64::MAX);
        }
        let last = self.books[i].last_trade_price;
        let reference = u64::from(if last > 0 { last } else { c.reference_price });
        let half = reference * u64::from(c.collar_bps) / 10_000;
        (reference.saturating_sub(half), reference + half)
    }

    fn party(&self, order: &Order, remaining: Lots) -> Party {
        Party {
            login: order.login,
            token: order.token.token(),
            order_ref: order.order_ref,
            firm: self.config.firms[order.firm as usize].firm,
            side: order.side_letter,
            remaining: self.shares(order.instrument, remaining),
        }
    }

    fn taker_party(&self, t: &Taker) -> Party {
        Party {
            login: t.login,
            token: t.token.token(),
            order_ref: t.order_ref,
            firm: self.config.firms[t.firm as usize].firm,
            side: t.side_letter,
            remaining: self.shares(t.instrument, t.remaining),
        }
    }

    fn take_order_ref(&mut self) -> u64 {
        let r = self.order_ref_next;
        self.order_ref_next += 1;
        r
    }

    // ----- validation -----

    /// Checks shared by Enter and Replace, from the TIF check (#7 of the check order) on; the caller
    /// has checked the day, the firm, the kill switch, the symbol, the halt and the side.
    /// `replaced_display` is the Display of the order a Replace replaces (`None` for an Enter);
    /// `frees_level`: that order is alone at its level, which it leaves (so a full side gets a level
    /// back for the replacement).
    ///
    /// Inlined: its `Result<Valid, _>` then stays in registers instead of being written to the stack
    /// in pieces and read back whole (a store-forwarding stall on every Enter, seen in the profile).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn validate(
        &self,
        now_ns: u64,
        inst: usize,
        firm: u16,
        side: Side,
        shares: u32,
        price: u32,
        tif_s: u32,
        display_value: u8,
        min_qty: u32,
        replaced_display: Option<u8>,
        frees_level: bool,
    ) -> Result<Valid, RejectReason> {
        let c = &self.config.instruments[inst];
        let book = &self.books[inst];
        let replace = replaced_display.is_some();
        if tif_s > TIF_SYSTEM_HOURS {
            return Err(RejectReason::Other);
        }
        let ioc = tif_s == 0;
        let post_only = display_value == display::POST_ONLY;
        // Display: the value, post-only with IOC, and (Replace) a change of attribution, which the
        // feed's Order Replace cannot show.
        let attribution_changes = replaced_display
            .is_some_and(|d| (d == display::ATTRIBUTABLE) != (display_value == display::ATTRIBUTABLE));
        if !display::is_valid(display_value) || (post_only && ioc) || attribution_changes {
            return Err(RejectReason::InvalidDisplay);
        }
        if shares == 0 || shares > c.shares_max {
            return Err(RejectReason::InvalidShares);
        }
        let divisors = self.divisors[inst];
        let (lots, odd_shares) = divisors.lot.div_rem(shares);
        if odd_shares != 0 {
            return Err(RejectReason::InvalidLot);
        }
        let lots = Lots(lots);
        let market = price == PRICE_MARKET;
        let (price_ticks, odd_price) = divisors.tick.div_rem(price);
        if !market && (price == 0 || price > PRICE_LIMIT_MAX || odd_price != 0) {
            return Err(RejectReason::InvalidPrice);
        }
        if market && (!ioc || replace) {
            return Err(RejectReason::InvalidOrderType);
        }
        if min_qty > 0 && (!ioc || min_qty > shares) {
            return Err(RejectReason::InvalidMinimumQuantity);
        }
        let (lower, upper) = self.collar(inst);
        let limit = if market {
            match side {
                Side::Buy => Ticks((upper / u64::from(c.tick_size)).min(u64::from(u32::MAX)) as u32),
                Side::Sell => Ticks(lower.div_ceil(u64::from(c.tick_size)) as u32),
            }
        } else {
            if u64::from(price) < lower || u64::from(price) > upper {
                return Err(RejectReason::PriceCollar);
            }
            Ticks(price_ticks)
        };
        let notional_price = if market {
            let reference = u64::from(if book.last_trade_price > 0 {
                book.last_trade_price
            } else {
                c.reference_price
            });
            match side {
                Side::Buy if upper != u64::MAX => upper,
                Side::Sell if lower > 0 => lower,
                _ => reference,
            }
        } else {
            u64::from(price)
        };
        if u128::from(notional_price) * u128::from(shares) > u128::from(c.notional_max) {
            return Err(RejectReason::NotionalLimit);
        }
        if !ioc && !replace {
            let f = &self.config.firms[firm as usize];
            if self.firms[firm as usize].open_orders >= f.open_orders_max {
                return Err(RejectReason::OpenOrderLimit);
            }
            if self.free.is_empty() && self.orders.len() >= self.config.orders_max as usize {
                return Err(RejectReason::CapacityFull);
            }
        }
        if !ioc {
            let levels = book.levels(side);
            let in_use = levels.len() - usize::from(frees_level);
            if in_use >= self.config.levels_max as usize && book.find(side, limit).is_err() {
                return Err(RejectReason::CapacityFull);
            }
        }
        if post_only && self.would_cross(inst, side, limit) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        let expire_ns = if (1..=TIF_EXPIRING_MAX_S).contains(&tif_s) {
            now_ns.saturating_add(u64::from(tif_s) * NS_PER_S)
        } else {
            0
        };
        Ok(Valid {
            lots,
            limit,
            market,
            ioc,
            expire_ns,
            min_qty,
        })
    }

    fn would_cross(&self, inst: usize, side: Side, limit: Ticks) -> bool {
        self.books[inst]
            .levels(side.opposite())
            .last()
            .is_some_and(|l| crosses(side, limit, l.price))
    }

    fn reject(&self, now_ns: u64, login: u32, token: Token, reason: RejectReason, out: &mut impl EventSink) {
        out.push(Event::Rejected {
            timestamp_ns: now_ns,
            login,
            token,
            reason,
        });
    }

    fn throttled(&mut self, now_ns: u64, login: u32, token: &Token, out: &mut impl EventSink) {
        let Some(login_ix) = self.login_index(login) else {
            return self.reject(now_ns, login, *token, RejectReason::FirmNotAuthorized, out);
        };
        match self.tokens.insert(login_ix, TokenWords::of(token)) {
            Insert::Added => self.reject(now_ns, login, *token, RejectReason::Throttled, out),
            Insert::Known => {}
            Insert::Full => self.reject(now_ns, login, *token, RejectReason::CapacityFull, out),
        }
    }

    // ----- Enter -----

    fn enter(&mut self, now_ns: u64, o: &EnterOrder, out: &mut impl EventSink) {
        let Some(login_ix) = self.login_index(o.login) else {
            return self.reject(now_ns, o.login, o.token, RejectReason::FirmNotAuthorized, out);
        };
        let token = TokenWords::of(&o.token);
        match self.tokens.insert(login_ix, token) {
            Insert::Added => {}
            Insert::Known => return, // reused token: ignored
            Insert::Full => return self.reject(now_ns, o.login, o.token, RejectReason::CapacityFull, out),
        }
        let checked = self.check_enter(now_ns, login_ix, o);
        let (firm, inst, side, v) = match checked {
            Ok(x) => x,
            Err(reason) => return self.reject(now_ns, o.login, o.token, reason, out),
        };
        let order_ref = self.take_order_ref();
        out.push(Event::Accepted(Accepted {
            timestamp_ns: now_ns,
            login: o.login,
            token: o.token,
            order_ref,
            side: o.side,
            shares: o.shares,
            instrument: self.instrument_event(inst),
            price: o.price,
            tif_s: o.tif_s,
            firm: self.config.firms[firm as usize].firm,
            display: o.display,
            min_qty: o.min_qty,
            capacity: o.capacity,
            cross_type: o.cross_type,
        }));
        let mut t = Taker {
            login: o.login,
            login_ix: login_ix as u16,
            token,
            order_ref,
            firm,
            instrument: inst,
            side,
            side_letter: o.side,
            display: o.display,
            capacity: o.capacity,
            cross_type: o.cross_type,
            limit: v.limit,
            price_wire: o.price,
            market: v.market,
            remaining: v.lots,
        };
        self.execute(now_ns, &mut t, &v, true, out);
    }

    /// Inlined for the same reason as [`Engine::validate`].
    #[inline(always)]
    fn check_enter(
        &self,
        now_ns: u64,
        login_ix: usize,
        o: &EnterOrder,
    ) -> Result<(u16, u16, Side, Valid), RejectReason> {
        if self.closed {
            return Err(RejectReason::Closed);
        }
        let (_, allowed, default_firm) = &self.logins[login_ix];
        let firm = if o.firm.is_blank() {
            *default_firm
        } else {
            match self.firm_index(&o.firm) {
                Some(f) if allowed.contains(&f) => f,
                _ => return Err(RejectReason::FirmNotAuthorized),
            }
        };
        if self.firms[firm as usize].killed {
            return Err(RejectReason::KillSwitch);
        }
        let inst = self
            .instrument_index(&o.symbol)
            .ok_or(RejectReason::InvalidStock)?;
        if self.books[inst].halted {
            return Err(RejectReason::Halted);
        }
        let side = Side::from_letter(o.side).ok_or(RejectReason::Other)?;
        let v = self.validate(
            now_ns, inst, firm, side, o.shares, o.price, o.tif_s, o.display, o.min_qty, None, false,
        )?;
        Ok((firm, inst as u16, side, v))
    }

    /// Minimum-quantity check, matching, then rest or cancel the remainder.
    fn execute(&mut self, now_ns: u64, t: &mut Taker, v: &Valid, emit_added: bool, out: &mut impl EventSink) {
        if v.min_qty > 0 {
            let available = self.takeable(t);
            if self.shares(t.instrument, available) < v.min_qty {
                let remaining = t.remaining;
                t.remaining = Lots(0);
                return self.cancel_taker(now_ns, t, remaining, CancelReason::ImmediateOrCancel, out);
            }
        }
        let stop = self.match_incoming(now_ns, t, out);
        if t.remaining.0 == 0 {
            return;
        }
        if v.ioc {
            let reason = if t.market && stop == Stop::Limit {
                CancelReason::MarketCollar
            } else {
                CancelReason::ImmediateOrCancel
            };
            let remaining = t.remaining;
            t.remaining = Lots(0);
            return self.cancel_taker(now_ns, t, remaining, reason, out);
        }
        // Rest.
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                assert!(
                    self.orders.len() < self.config.orders_max as usize,
                    "arena capacity checked in validate"
                );
                self.orders.push(ORDER_VACANT);
                (self.orders.len() - 1) as u32
            }
        };
        // Field by field: `prev` and `next` are written by `link` and `live_slot` by the live index's
        // insert, right below, and the slot keeps its `generation`; writing them here too would only
        // add stores to every resting Enter.
        let o = &mut self.orders[index as usize];
        let generation = o.generation;
        o.order_ref = t.order_ref;
        o.login = t.login;
        o.login_ix = t.login_ix;
        o.price = t.limit;
        o.open = t.remaining;
        o.token = t.token;
        o.firm = t.firm;
        o.instrument = t.instrument;
        o.side_letter = t.side_letter;
        o.display = t.display;
        o.capacity = t.capacity;
        o.cross_type = t.cross_type;
        o.live = true;
        self.link(index);
        self.live.insert(index, &mut self.orders);
        self.firms[t.firm as usize].open_orders += 1;
        self.login_resting[usize::from(t.login_ix)] += 1;
        if v.expire_ns > 0 {
            self.push_expiry(Expiry {
                expire_ns: v.expire_ns,
                order_ref: t.order_ref,
                index,
                generation,
            });
        }
        if emit_added {
            out.push(Event::Added(Added {
                timestamp_ns: now_ns,
                order_ref: t.order_ref,
                side: t.side,
                shares: self.shares(t.instrument, t.remaining),
                instrument: self.instrument_event(t.instrument),
                price: self.price_wire(t.instrument, t.limit),
                firm: self.config.firms[t.firm as usize].firm,
                attributed: t.display == display::ATTRIBUTABLE,
            }));
        }
    }

    fn cancel_taker(
        &self,
        now_ns: u64,
        t: &Taker,
        decrement: Lots,
        reason: CancelReason,
        out: &mut impl EventSink,
    ) {
        out.push(Event::Canceled(self.taker_canceled(now_ns, t, decrement, reason)));
    }

    fn taker_canceled(&self, now_ns: u64, t: &Taker, decrement: Lots, reason: CancelReason) -> Canceled {
        Canceled {
            timestamp_ns: now_ns,
            login: t.login,
            token: t.token.token(),
            order_ref: t.order_ref,
            instrument: self.instrument_event(t.instrument),
            side: t.side,
            price: t.price_wire,
            decrement: self.shares(t.instrument, decrement),
            remaining: self.shares(t.instrument, t.remaining),
            reason,
            on_book: false,
        }
    }

    #[inline]
    fn order_canceled(&self, now_ns: u64, order: &Order, decrement: Lots, reason: CancelReason) -> Canceled {
        Canceled {
            timestamp_ns: now_ns,
            login: order.login,
            token: order.token.token(),
            order_ref: order.order_ref,
            instrument: self.instrument_event(order.instrument),
            side: order.side(),
            price: self.price_wire(order.instrument, order.price),
            decrement: self.shares(order.instrument, decrement),
            remaining: self.shares(order.instrument, Lots(order.open.0 - decrement.0)),
            reason,
            on_book: true,
        }
    }

    /// Lots the taker could trade right now, excluding what self-trade prevention would stop.
    fn takeable(&self, t: &Taker) -> Lots {
        let stp = self.config.firms[t.firm as usize].stp;
        let levels = self.books[t.instrument as usize].levels(t.side.opposite());
        let (mut available, mut remaining) = (0u32, t.remaining.0);
        for level in levels.iter().rev() {
            if !crosses(t.side, t.limit, level.price) {
                break;
            }
            let mut o = level.head;
            while o != NIL {
                let r = &self.orders[o as usize];
                let q = r.open.0.min(remaining);
                if stp != StpMode::None && r.firm == t.firm {
                    match stp {
                        StpMode::CancelNewest | StpMode::CancelBoth => return Lots(available),
                        StpMode::Decrement => remaining -= q,
                        StpMode::CancelOldest | StpMode::None => {}
                    }
                } else {
                    available += q;
                    remaining -= q;
                }
                if remaining == 0 {
                    return Lots(available);
                }
                o = r.next;
            }
        }
        Lots(available)
    }

    fn match_incoming(&mut self, now_ns: u64, t: &mut Taker, out: &mut impl EventSink) -> Stop {
        let inst = t.instrument as usize;
        let opposite = t.side.opposite();
        let stp = self.config.firms[t.firm as usize].stp;
        // Bounded: every iteration removes an order or lots from the book, or ends the loop.
        loop {
            if t.remaining.0 == 0 {
                return Stop::Filled;
            }
            let Some(level) = self.books[inst].levels(opposite).last() else {
                return Stop::Exhausted;
            };
            if !crosses(t.side, t.limit, level.price) {
                return Stop::Limit;
            }
            let index = level.head;
            let resting = self.orders[index as usize];
            let price = self.price_wire(t.instrument, resting.price);
            if stp != StpMode::None && resting.firm == t.firm {
                let prevented = Lots(resting.open.0.min(t.remaining.0));
                let (resting_decrement, taker_decrement) = match stp {
                    StpMode::CancelNewest => (Lots(0), t.remaining),
                    StpMode::CancelOldest => (resting.open, Lots(0)),
                    StpMode::CancelBoth => (resting.open, t.remaining),
                    StpMode::Decrement | StpMode::None => (prevented, prevented),
                };
                if resting_decrement.0 > 0 {
                    let canceled = self.order_canceled(
                        now_ns,
                        &resting,
                        resting_decrement,
                        CancelReason::SelfMatchPrevention,
                    );
                    out.push(Event::SelfTradeCanceled(SelfTradeCanceled {
                        canceled,
                        prevented: self.shares(t.instrument, prevented),
                        execution_price: price,
                        liquidity: b'A',
                    }));
                    self.take_lots(index, resting_decrement);
                }
                if taker_decrement.0 > 0 {
                    t.remaining = Lots(t.remaining.0 - taker_decrement.0);
                    let canceled =
                        self.taker_canceled(now_ns, t, taker_decrement, CancelReason::SelfMatchPrevention);
                    out.push(Event::SelfTradeCanceled(SelfTradeCanceled {
                        canceled,
                        prevented: self.shares(t.instrument, prevented),
                        execution_price: price,
                        liquidity: b'R',
                    }));
                    if t.remaining.0 == 0 {
                        return Stop::SelfTrade;
                    }
                }
                continue;
            }
            let fill = Lots(resting.open.0.min(t.remaining.0));
            t.remaining = Lots(t.remaining.0 - fill.0);
            self.take_lots(index, fill);
            let match_number = self.match_number_next;
            self.match_number_next += 1;
            self.books[inst].last_trade_price = price;
            out.push(Event::Executed(Executed {
                timestamp_ns: now_ns,
                match_number,
                instrument: self.instrument_event(t.instrument),
                price,
                shares: self.shares(t.instrument, fill),
                resting: self.party(&resting, Lots(resting.open.0 - fill.0)),
                taking: self.taker_party(t),
            }));
        }
    }

    // ----- book primitives -----

    /// Appends a live order to the tail of its level (creating the level).
    fn link(&mut self, index: u32) {
        let order = self.orders[index as usize];
        let side = order.side();
        let book = &mut self.books[order.instrument as usize];
        let at = match book.find(side, order.price) {
            Ok(at) => at,
            Err(at) => {
                let levels = book.levels(side);
                assert!(
                    levels.len() < levels.capacity(),
                    "level capacity checked in validate"
                );
                book.insert_level(
                    side,
                    at,
                    Level {
                        price: order.price,
                        open: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                at
            }
        };
        let level = &mut book.levels_mut(side)[at];
        let tail = level.tail;
        level.open += u64::from(order.open.0);
        level.tail = index;
        if tail == NIL {
            level.head = index;
        }
        if tail != NIL {
            self.orders[tail as usize].next = index;
        }
        let o = &mut self.orders[index as usize];
        o.prev = tail;
        o.next = NIL;
    }

    /// Takes `lots` off a resting order; at zero it leaves the book and the arena.
    fn take_lots(&mut self, index: u32, lots: Lots) {
        let order = self.orders[index as usize];
        assert!(order.live && lots.0 <= order.open.0 && lots.0 > 0);
        let side = order.side();
        let book = &mut self.books[order.instrument as usize];
        let levels = book.levels(side);
        let at = match levels.last() {
            // The touch (every maker a taker fills): no index lookup.
            Some(l) if l.price == order.price => levels.len() - 1,
            _ => book.find(side, order.price).expect("a live order's level exists"),
        };
        book.levels_mut(side)[at].open -= u64::from(lots.0);
        let open = Lots(order.open.0 - lots.0);
        self.orders[index as usize].open = open;
        if open.0 > 0 {
            return;
        }
        // Unlink.
        let (prev, next) = (order.prev, order.next);
        if prev != NIL {
            self.orders[prev as usize].next = next;
        }
        if next != NIL {
            self.orders[next as usize].prev = prev;
        }
        let book = &mut self.books[order.instrument as usize];
        let level = &mut book.levels_mut(side)[at];
        if level.head == index {
            level.head = next;
        }
        if level.tail == index {
            level.tail = prev;
        }
        if level.head == NIL {
            book.remove_level(side, at);
        }
        let o = &mut self.orders[index as usize];
        o.live = false;
        o.generation = o.generation.wrapping_add(1);
        o.prev = NIL;
        o.next = NIL;
        let live_slot = std::mem::replace(&mut o.live_slot, NIL);
        self.live.remove(live_slot, &order);
        self.firms[order.firm as usize].open_orders -= 1;
        self.login_resting[usize::from(order.login_ix)] -= 1;
        self.free.push(index);
    }

    /// Cancels `decrement` lots of a resting order (all of it when equal to its open size). Inlined: it is
    /// the user cancel's whole tail (the event built in place, then [`Engine::take_lots`]).
    #[inline(always)]
    fn cancel_lots(
        &mut self,
        now_ns: u64,
        index: u32,
        decrement: Lots,
        reason: CancelReason,
        out: &mut impl EventSink,
    ) {
        let order = self.orders[index as usize];
        out.push(Event::Canceled(
            self.order_canceled(now_ns, &order, decrement, reason),
        ));
        self.take_lots(index, decrement);
    }

    /// True when the resting order at `index` is the only order of its level.
    fn alone_at_level(&self, index: u32) -> bool {
        let order = &self.orders[index as usize];
        let book = &self.books[order.instrument as usize];
        let levels = book.levels(order.side());
        book.find(order.side(), order.price)
            .is_ok_and(|i| levels[i].head == index && levels[i].tail == index)
    }

    /// The arena index of the live order of (login, token), if any.
    /// Where `command` will first touch the live-order index, which is large and read at random: the home
    /// slot of the (login, token) a Cancel, Modify or Replace names, and the home slot where an Enter's or
    /// a Replace's new token will be inserted if the order rests. A caller holding the next command while it
    /// applies this one can prefetch those lines so that the misses overlap the work (the book itself
    /// cannot issue a prefetch: it has no unsafe code). `[None, None]` for other commands. Reading the
    /// addresses is harmless; they are never dereferenced here.
    #[inline]
    pub fn lookup_addresses(&self, command: &Command) -> [Option<*const u8>; 2] {
        let home = |login: u32, token: &Token| Some(self.live.home_address(login, TokenWords::of(token)));
        match command {
            Command::Cancel { login, token, .. } | Command::Modify { login, token, .. } => {
                [home(*login, token), None]
            }
            Command::Replace(r) => [
                home(r.login, &r.existing_token),
                home(r.login, &r.replacement_token),
            ],
            Command::Enter(o) => [home(o.login, &o.token), None],
            _ => [None, None],
        }
    }

    /// Where `command` will next miss once [`Engine::lookup_addresses`]' lines are in: the arena slot of
    /// the order a Cancel, Modify or Replace names, found through its home group (so call this a command
    /// after prefetching that group, or the read here is the miss). A hint, like `lookup_addresses`: it
    /// may name another order when two share a tag, and `None` when the entry passed its home group; the
    /// address is never dereferenced here. `None` for other commands. (An Enter's first trade partner,
    /// the head of the opposite best level, was tried too: it did not shorten `execute` and the lookup
    /// cost more than it saved; docs/PERFORMANCE.md, "Session 16".)
    #[inline]
    pub fn order_address(&self, command: &Command) -> Option<*const u8> {
        let (login, token) = match command {
            Command::Cancel { login, token, .. } | Command::Modify { login, token, .. } => (*login, token),
            Command::Replace(r) => (r.login, &r.existing_token),
            _ => return None,
        };
        let index = self.live.likely_index(login, TokenWords::of(token))?;
        self.orders
            .get(index as usize)
            .map(|o| std::ptr::from_ref(o).cast())
    }

    #[inline]
    fn live_order(&self, login: u32, token: &Token) -> Option<u32> {
        self.live.get(login, TokenWords::of(token), &self.orders)
    }

    // ----- Cancel, Modify, Replace -----

    fn cancel(&mut self, now_ns: u64, login: u32, token: &Token, shares: u32, out: &mut impl EventSink) {
        let Some(index) = self.live_order(login, token) else {
            return;
        };
        let order = self.orders[index as usize];
        let intended = Lots(self.divisors[order.instrument as usize].lot.div(shares));
        if intended.0 >= order.open.0 {
            return;
        }
        self.cancel_lots(
            now_ns,
            index,
            Lots(order.open.0 - intended.0),
            CancelReason::UserRequested,
            out,
        );
    }

    fn modify(
        &mut self,
        now_ns: u64,
        login: u32,
        token: &Token,
        side: u8,
        shares: u32,
        out: &mut impl EventSink,
    ) {
        let Some(index) = self.live_order(login, token) else {
            return;
        };
        let order = self.orders[index as usize];
        let lot = self.config.instruments[order.instrument as usize].lot_size;
        // Refused (Cancel Reject, order unchanged): a side letter that is not this order's side
        // (buy <-> sell, or not `B`/`S`/`T`/`E`), Shares 0, an increase, or off the lot.
        let refused = Side::from_letter(side) != Some(order.side())
            || shares == 0
            || shares / lot > order.open.0
            || !shares.is_multiple_of(lot);
        if refused {
            out.push(Event::CancelRejected {
                timestamp_ns: now_ns,
                login,
                token: *token,
                order_ref: order.order_ref,
            });
            return;
        }
        let decrement = Lots(order.open.0 - shares / lot);
        self.orders[index as usize].side_letter = side;
        if decrement.0 > 0 {
            self.take_lots(index, decrement);
        }
        out.push(Event::Modified(Modified {
            timestamp_ns: now_ns,
            login,
            token: *token,
            order_ref: order.order_ref,
            instrument: self.instrument_event(order.instrument),
            side,
            shares,
            decrement: self.shares(order.instrument, decrement),
        }));
    }

    fn replace(&mut self, now_ns: u64, r: &ReplaceOrder, out: &mut impl EventSink) {
        let Some(index) = self.live_order(r.login, &r.existing_token) else {
            return;
        };
        let Some(login_ix) = self.login_index(r.login) else {
            return; // unreachable in practice: a live order's login is configured
        };
        let replacement = TokenWords::of(&r.replacement_token);
        match self.tokens.insert(login_ix, replacement) {
            Insert::Added => {}
            Insert::Known => return,
            Insert::Full => {
                return self.reject(
                    now_ns,
                    r.login,
                    r.replacement_token,
                    RejectReason::CapacityFull,
                    out,
                );
            }
        }
        let old = self.orders[index as usize];
        let side = old.side();
        let checked = if self.closed {
            Err(RejectReason::Closed)
        } else if self.firms[old.firm as usize].killed {
            Err(RejectReason::KillSwitch)
        } else if self.books[old.instrument as usize].halted {
            Err(RejectReason::Halted)
        } else {
            self.validate(
                now_ns,
                old.instrument as usize,
                old.firm,
                side,
                r.shares,
                r.price,
                r.tif_s,
                r.display,
                r.min_qty,
                Some(old.display),
                self.alone_at_level(index),
            )
        };
        let v = match checked {
            Ok(v) => v,
            Err(reason) => return self.reject(now_ns, r.login, r.replacement_token, reason, out),
        };
        let feed_replace = !v.ioc && !self.would_cross(old.instrument as usize, side, v.limit);
        self.take_lots(index, old.open);
        let order_ref = self.take_order_ref();
        out.push(Event::Replaced(Replaced {
            timestamp_ns: now_ns,
            login: r.login,
            previous_token: old.token.token(),
            previous_order_ref: old.order_ref,
            previous_remaining: self.shares(old.instrument, old.open),
            token: r.replacement_token,
            order_ref,
            side: old.side_letter,
            shares: r.shares,
            instrument: self.instrument_event(old.instrument),
            price: r.price,
            tif_s: r.tif_s,
            firm: self.config.firms[old.firm as usize].firm,
            display: r.display,
            min_qty: r.min_qty,
            capacity: old.capacity,
            cross_type: old.cross_type,
            feed_replace,
        }));
        let mut t = Taker {
            login: r.login,
            login_ix: login_ix as u16,
            token: replacement,
            order_ref,
            firm: old.firm,
            instrument: old.instrument,
            side,
            side_letter: old.side_letter,
            display: r.display,
            capacity: old.capacity,
            cross_type: old.cross_type,
            limit: v.limit,
            price_wire: r.price,
            market: false,
            remaining: v.lots,
        };
        self.execute(now_ns, &mut t, &v, !feed_replace, out);
    }

    // ----- mass actions -----

    /// Cancels every resting order matching `filter`, instrument by instrument (config order), bids then
    /// asks, best level first, FIFO within a level. `matching` is how many resting orders match (the
    /// caller's count, or an upper bound): none scans nothing, and the scan stops at the last one, so a
    /// login's or a firm's mass cancel does not walk the whole book once its orders are found.
    fn cancel_where(
        &mut self,
        now_ns: u64,
        instrument: Option<usize>,
        matching: u32,
        filter: impl Fn(&Order) -> bool,
        reason: CancelReason,
        out: &mut impl EventSink,
    ) {
        if matching == 0 {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let range = match instrument {
            Some(i) => i..i + 1,
            None => 0..self.books.len(),
        };
        'scan: for i in range {
            for side in [Side::Buy, Side::Sell] {
                for level in self.books[i].levels(side).iter().rev() {
                    let mut o = level.head;
                    while o != NIL {
                        let order = &self.orders[o as usize];
                        if filter(order) {
                            scratch.push(o);
                            if scratch.len() == matching as usize {
                                break 'scan;
                            }
                        }
                        o = order.next;
                    }
                }
            }
        }
        for &index in &scratch {
            let open = self.orders[index as usize].open;
            self.cancel_lots(now_ns, index, open, reason, out);
        }
        scratch.clear();
        self.scratch = scratch;
    }

    fn mass_cancel(
        &mut self,
        now_ns: u64,
        scope: MassCancelScope,
        reason: CancelReason,
        out: &mut impl EventSink,
    ) {
        match scope {
            MassCancelScope::Firm(firm) => {
                if let Some(f) = self.firm_index(&firm) {
                    let matching = self.firms[f as usize].open_orders;
                    self.cancel_where(now_ns, None, matching, |o| o.firm == f, reason, out);
                }
            }
            MassCancelScope::Login(login) => {
                // An unknown login has no orders.
                if let Some(ix) = self.login_index(login) {
                    let matching = self.login_resting[ix];
                    self.cancel_where(now_ns, None, matching, |o| o.login == login, reason, out);
                }
            }
            MassCancelScope::Instrument(symbol) => {
                if let Some(i) = self.instrument_index(&symbol) {
                    let matching = self.order_count() as u32;
                    self.cancel_where(now_ns, Some(i), matching, |_| true, reason, out);
                }
            }
        }
    }

    fn kill_switch(&mut self, now_ns: u64, firm: &Firm, on: bool, out: &mut impl EventSink) {
        let Some(f) = self.firm_index(firm) else { return };
        self.firms[f as usize].killed = on;
        if on {
            let matching = self.firms[f as usize].open_orders;
            self.cancel_where(
                now_ns,
                None,
                matching,
                |o| o.firm == f,
                CancelReason::Supervisory,
                out,
            );
        }
        out.push(Event::KillSwitch {
            timestamp_ns: now_ns,
            firm: *firm,
            on,
        });
    }

    fn end_of_day(&mut self, now_ns: u64, out: &mut impl EventSink) {
        if self.closed {
            return;
        }
        let matching = self.order_count() as u32;
        self.cancel_where(now_ns, None, matching, |_| true, CancelReason::Closed, out);
        self.expiries.clear();
        self.closed = true;
        out.push(Event::SystemEvent {
            timestamp_ns: now_ns,
            code: b'E',
        });
    }

    fn set_halt(&mut self, now_ns: u64, symbol: &Symbol, halted: bool, out: &mut impl EventSink) {
        let Some(i) = self.instrument_index(symbol) else {
            return;
        };
        if self.books[i].halted == halted {
            return;
        }
        self.books[i].halted = halted;
        out.push(Event::TradingAction {
            timestamp_ns: now_ns,
            instrument: self.instrument_event(i as u16),
            halted,
        });
    }

    /// Busts a trade of the day that is not busted yet, as the command names it; anything else (a match
    /// number not yet given, one of an earlier day, one already busted, an unknown symbol, the day's
    /// `busts_max` reached) is ignored: the daemon checks what it can report first.
    fn bust(
        &mut self,
        now_ns: u64,
        match_number: u64,
        symbol: &Symbol,
        resting: &Party,
        taking: &Party,
        out: &mut impl EventSink,
    ) {
        if match_number < self.day_first_match || match_number >= self.match_number_next {
            return;
        }
        let Some(inst) = self.instrument_index(symbol) else {
            return;
        };
        let Err(at) = self.busted.binary_search(&match_number) else {
            return;
        };
        if self.busted.len() >= self.config.busts_max as usize {
            return;
        }
        self.busted.insert(at, match_number);
        out.push(Event::Broken {
            timestamp_ns: now_ns,
            match_number,
            instrument: self.instrument_event(inst as u16),
            resting: *resting,
            taking: *taking,
        });
    }

    // ----- expiry heap -----

    fn push_expiry(&mut self, e: Expiry) {
        if self.expiries.len() == self.expiries.capacity() {
            // Drop stale entries (orders gone since), then rebuild the heap. Live entries < orders_max.
            let orders = &self.orders;
            self.expiries.retain(|x| {
                let o = &orders[x.index as usize];
                o.live && o.generation == x.generation
            });
            for i in (0..self.expiries.len() / 2).rev() {
                self.sift_down(i);
            }
        }
        assert!(self.expiries.len() < self.expiries.capacity());
        self.expiries.push(e);
        let mut i = self.expiries.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.expiries[parent].key() <= self.expiries[i].key() {
                break;
            }
            self.expiries.swap(parent, i);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.expiries.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.expiries[l].key() < self.expiries[m].key() {
                m = l;
            }
            if r < n && self.expiries[r].key() < self.expiries[m].key() {
                m = r;
            }
            if m == i {
                return;
            }
            self.expiries.swap(i, m);
            i = m;
        }
    }

    fn expire_due(&mut self, now_ns: u64, out: &mut impl EventSink) {
        // Bounded by the heap's length: each iteration pops one entry.
        while let Some(top) = self.expiries.first().copied() {
            if top.expire_ns > now_ns {
                break;
            }
            let last = self.expiries.pop().expect("non-empty");
            if !self.expiries.is_empty() {
                self.expiries[0] = last;
                self.sift_down(0);
            }
            let o = self.orders[top.index as usize];
            if o.live && o.generation == top.generation {
                self.cancel_lots(now_ns, top.index, o.open, CancelReason::Timeout, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SplitMix64;

    /// A day or expiring buy of 100 shares of the demo's first instrument by login 2.
    fn buy(token: u64, price: u32, tif_s: u32) -> Command {
        Command::Enter(EnterOrder {
            login: 2,
            token: crate::workload::token(token),
            side: b'B',
            shares: 100,
            symbol: crate::workload::demo_symbol(0),
            price,
            tif_s,
            firm: Firm::BLANK,
            display: b'Y',
            min_qty: 0,
            capacity: b'A',
            cross_type: b'N',
        })
    }

    /// Login 2's cancel of all that is left of its order `token` (Shares 0).
    fn cancel_all(token: u64) -> Command {
        Command::Cancel {
            login: 2,
            token: crate::workload::token(token),
            shares: 0,
        }
    }

    /// The prefetch addresses of a Cancel, Replace or Modify start with the live index's home slot of its
    /// (login, token), the slot the lookup reads first; a Replace's second and an Enter's first are the
    /// home slot of the new token; other commands have none.
    #[test]
    fn lookup_addresses_are_the_home_slots_of_the_named_tokens() {
        let engine = Engine::new(crate::workload::demo_config(2, 3)).unwrap();
        let token = crate::workload::token(7);
        let home = engine.live.home_address(2, TokenWords::of(&token));
        let cancel = cancel_all(7);
        assert_eq!(engine.lookup_addresses(&cancel), [Some(home), None]);
        let modify = Command::Modify {
            login: 2,
            token,
            side: b'S',
            shares: 0,
        };
        assert_eq!(engine.lookup_addresses(&modify), [Some(home), None]);
        let replace = Command::Replace(ReplaceOrder {
            login: 2,
            existing_token: token,
            replacement_token: crate::workload::token(8),
            shares: 100,
            price: 100_000,
            tif_s: 99_999,
            display: b'Y',
            min_qty: 0,
        });
        let replacement = engine
            .live
            .home_address(2, TokenWords::of(&crate::workload::token(8)));
        assert_eq!(engine.lookup_addresses(&replace), [Some(home), Some(replacement)]);
        let slots = engine.live.home_address(1, TokenWords::of(&token));
        assert_ne!(slots, home, "another login's order hashes elsewhere here");
        let enter = buy(7, 100_000, 99_999);
        assert_eq!(engine.lookup_addresses(&enter), [Some(home), None]);
        assert_eq!(engine.lookup_addresses(&Command::ExpireDue), [None, None]);
    }

    /// The second stage of the lookahead: a Cancel, Modify or Replace of a resting order gives that
    /// order's arena slot; a token with no entry, and an Enter, give none.
    #[test]
    fn order_address_is_the_arena_slot_of_the_named_order() {
        let mut engine = Engine::new(crate::workload::demo_config(2, 3)).unwrap();
        let mut sink = crate::event::FnSink(|_| {});
        let enter = |token: u64| buy(token, 999_900, 99_999);
        for t in 1..=3 {
            engine.apply(1_000 * t, &enter(t), &mut sink);
        }
        let cancel = cancel_all;
        for t in 1..=3 {
            let index = engine.live_order(2, &crate::workload::token(t)).expect("resting") as usize;
            let slot: *const u8 = std::ptr::from_ref(&engine.orders[index]).cast();
            assert_eq!(engine.order_address(&cancel(t)), Some(slot), "token {t}");
            let replace = Command::Replace(ReplaceOrder {
                login: 2,
                existing_token: crate::workload::token(t),
                replacement_token: crate::workload::token(10 + t),
                shares: 100,
                price: 999_800,
                tif_s: 99_999,
                display: b'Y',
                min_qty: 0,
            });
            assert_eq!(engine.order_address(&replace), Some(slot), "token {t}");
        }
        assert_eq!(engine.order_address(&cancel(9)), None, "no entry");
        assert_eq!(engine.order_address(&enter(9)), None);
        assert_eq!(engine.order_address(&Command::ExpireDue), None);
    }

    /// The snapshot's per-order expiry, which orders no longer keep, comes from each live order's own heap
    /// entry: an expiring order's time, 0 for a day order, and 0 for a day order in a slot whose previous
    /// occupant left a stale entry behind (canceled before it expired).
    #[test]
    fn order_expiries_come_from_each_live_orders_heap_entry() {
        let mut engine = Engine::new(crate::workload::demo_config(2, 3)).unwrap();
        let enter = buy;
        let mut sink = crate::event::FnSink(|_| {});
        let slot_of = |engine: &Engine, token: u64| {
            engine
                .live_order(2, &crate::workload::token(token))
                .expect("resting") as usize
        };
        engine.apply(1_000, &enter(1, 999_900, 5), &mut sink);
        let first = slot_of(&engine, 1);
        engine.apply(2_000, &enter(2, 999_800, 99_999), &mut sink);
        let day = slot_of(&engine, 2);
        let cancel = cancel_all(1);
        engine.apply(3_000, &cancel, &mut sink);
        // The freed slot is taken again, by a day order; its old heap entry stays, stale.
        engine.apply(4_000, &enter(3, 999_700, 99_999), &mut sink);
        assert_eq!(slot_of(&engine, 3), first);
        engine.apply(5_000, &enter(4, 999_600, 7), &mut sink);
        let expiring = slot_of(&engine, 4);
        assert_eq!(
            engine.expiries.len(),
            2,
            "the canceled order's entry is still in the heap"
        );
        let expiries = engine.order_expiries();
        assert_eq!(expiries[first], 0);
        assert_eq!(expiries[day], 0);
        assert_eq!(expiries[expiring], 5_000 + 7 * NS_PER_S);
        assert_eq!(expiries.iter().filter(|&&e| e != 0).count(), 1);
    }

    /// The price-indexed `Book::find` agrees with the search, and the index stays exact, while levels
    /// come and go across (and beyond) both edges of the index window.
    #[test]
    fn level_index_agrees_with_search_across_the_window_edges() {
        let mut book = Book::new(64, 1_000); // window: 128 ticks from 936
        let window = book.index[0].len() as u32;
        assert_eq!((window, book.index_base), (128, 936));
        let (lo, hi) = (book.index_base - 20, book.index_base + window + 20);
        let edges = [lo, book.index_base, book.index_base + window - 1, hi];
        let mut rng = SplitMix64(11);
        for _ in 0..3_000 {
            let side = if rng.below(2) == 0 { Side::Buy } else { Side::Sell };
            let price = if rng.below(4) == 0 {
                Ticks(edges[rng.below(4) as usize] - 10 + rng.below(20) as u32)
            } else {
                Ticks(lo + rng.below(u64::from(hi - lo)) as u32)
            };
            let found = book.find(side, price);
            assert_eq!(found, position(book.levels(side), side, price));
            match found {
                Ok(at) => book.remove_level(side, at),
                Err(at) if book.levels(side).len() < 64 => book.insert_level(
                    side,
                    at,
                    Level {
                        price,
                        open: 1,
                        head: 0,
                        tail: 0,
                    },
                ),
                Err(_) => {}
            }
            book.check_index(true).unwrap();
        }
    }

    /// The touch scan plus binary search finds the same place as a plain binary search.
    #[test]
    fn position_agrees_with_binary_search() {
        let mut rng = SplitMix64(3);
        for _ in 0..5_000 {
            let n = rng.below(30) as usize;
            let mut prices: Vec<u32> = (0..n).map(|_| 1 + rng.below(60) as u32).collect();
            prices.sort_unstable();
            prices.dedup();
            let price = Ticks(rng.below(62) as u32);
            for side in [Side::Buy, Side::Sell] {
                let mut ordered = prices.clone();
                if side == Side::Sell {
                    ordered.reverse();
                }
                let levels: Vec<Level> = ordered
                    .iter()
                    .map(|&p| Level {
                        price: Ticks(p),
                        open: 1,
                        head: 0,
                        tail: 0,
                    })
                    .collect();
                let expected = match side {
                    Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
                    Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
                };
                assert_eq!(
                    position(&levels, side, price),
                    expected,
                    "{side:?} {price:?} in {ordered:?}"
                );
            }
        }
    }
}
