//! Seeded command streams for tests and benchmarks, and a small demo configuration.
//!
//! [`Workload`] is deterministic: the same [`WorkloadParams`] (seed included) give the same commands on
//! every machine. It uses its own [`SplitMix64`] generator (no `rand` dependency) and allocates only in
//! [`Workload::new`]. It does not see the engine's events, so it issues cancels, reduces, replaces and
//! modifies for tokens it sent recently (a ring of `recent_tokens_max`; a full cancel or a replace
//! forgets its token); those orders may already be filled, which the engine then ignores, as it would
//! for a real client's late cancel. Cancels outweigh passive adds so that the book stays bounded.
//!
//! # Layout of the generated day
//! Instruments `SYM0`, `SYM1`, ... (tick $0.01, lot 100 shares, reference $100.00, collar 10%); logins
//! 1..=N, each with its own firm `F<n>` (login n also may use firm `F<n+1>`, so two logins can share an
//! account and self-trade prevention triggers). Prices stay within ±`band_ticks` of the reference.

use bourse_protocol::fields::{Firm, PRICE_MARKET, Symbol, Token};
use bourse_protocol::reason::CancelReason;

use crate::command::{Command, EnterOrder, MassCancelScope, ReplaceOrder};
use crate::config::{EngineConfig, FirmConfig, InstrumentConfig, LoginConfig, StpMode};

/// SplitMix64: a tiny, fast, well-mixed 64-bit generator (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0); the tiny modulo bias is irrelevant here.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

/// Reference price of every demo instrument: $100.00.
pub const DEMO_REFERENCE_PRICE: u32 = 1_000_000;
/// Tick of every demo instrument: $0.01.
pub const DEMO_TICK_SIZE: u32 = 100;
/// Lot of every demo instrument: 100 shares.
pub const DEMO_LOT_SIZE: u32 = 100;

/// The symbol of demo instrument `i` (`SYM<i>`).
pub fn demo_symbol(i: usize) -> Symbol {
    let mut s = *b"SYM     ";
    write_decimal(&mut s[3..], i as u64);
    bourse_protocol::fields::Alpha(s)
}

/// The firm of demo login `n` (`F<n>`).
pub fn demo_firm(n: u32) -> Firm {
    let mut f = *b"F   ";
    write_decimal(&mut f[1..], u64::from(n));
    bourse_protocol::fields::Alpha(f)
}

/// Writes `value` in decimal at the start of `out` (left-justified, rest untouched).
fn write_decimal(out: &mut [u8], mut value: u64) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for (i, d) in digits[..n.min(out.len())].iter().rev().enumerate() {
        out[i] = *d;
    }
}

/// A configuration with `instruments` demo instruments and `logins` logins (one firm each; firm `n`
/// uses the self-trade mode `StpMode::from_u8(n % 5)`), with small tables (64 Ki orders, 256 Ki
/// tokens); see [`demo_config_sized`] for benchmark sizes.
pub fn demo_config(instruments: usize, logins: u32) -> EngineConfig {
    demo_config_sized(instruments, logins, 1 << 16, 1 << 18)
}

/// [`demo_config`] with explicit `orders_max` and `tokens_max` (a day of N orders needs N tokens).
pub fn demo_config_sized(instruments: usize, logins: u32, orders_max: u32, tokens_max: u32) -> EngineConfig {
    EngineConfig {
        orders_max,
        levels_max: 4096,
        tokens_max,
        busts_max: 1 << 16,
        order_ref_first: 1,
        match_number_first: 1,
        instruments: (0..instruments)
            .map(|i| InstrumentConfig {
                symbol: demo_symbol(i),
                locate: (i + 1) as u16,
                tick_size: DEMO_TICK_SIZE,
                lot_size: DEMO_LOT_SIZE,
                collar_bps: 1_000,
                reference_price: DEMO_REFERENCE_PRICE,
                shares_max: 1_000_000,
                notional_max: 10_000_000_000_000,
            })
            .collect(),
        firms: (1..=logins + 1)
            .map(|n| FirmConfig {
                firm: demo_firm(n),
                open_orders_max: 1 << 20,
                stp: StpMode::from_u8((n % 5) as u8).expect("0..5"),
            })
            .collect(),
        logins: (1..=logins)
            .map(|n| LoginConfig {
                login: n,
                firms: vec![demo_firm(n), demo_firm(n + 1)],
                default_firm: demo_firm(n),
            })
            .collect(),
    }
}

/// Relative weights of each kind of command (0 disables a kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Day limit orders that rest near the touch (passive side).
    pub add_passive: u32,
    /// Day limit orders priced through the touch (they trade, then rest).
    pub add_aggressive: u32,
    /// IOC limit orders through the touch.
    pub ioc: u32,
    /// Market orders (IOC, bounded by the collar).
    pub market: u32,
    /// Full cancels of a recent token.
    pub cancel: u32,
    /// Reduces (Cancel with a smaller size) of a recent token.
    pub reduce: u32,
    /// Replaces of a recent token.
    pub replace: u32,
    /// Modifies (reduce or sell-type switch) of a recent token.
    pub modify: u32,
    /// Orders that fail a risk check (off tick, off lot, over size, unknown symbol, collar).
    pub risk_reject: u32,
    /// Orders for the login's second firm (shared with the next login: self-trade prevention).
    pub other_firm: u32,
    /// Orders with a short time in force, and `ExpireDue` timer commands.
    pub expiring: u32,
}

impl Mix {
    /// The subset every peer order book supports: adds near the touch, cancels, aggressive limits,
    /// market orders.
    pub const COMMON: Mix = Mix {
        add_passive: 40,
        add_aggressive: 8,
        ioc: 0,
        market: 4,
        cancel: 48,
        reduce: 0,
        replace: 0,
        modify: 0,
        risk_reject: 0,
        other_firm: 0,
        expiring: 0,
    };
    /// Everything the engine offers.
    pub const FULL: Mix = Mix {
        add_passive: 30,
        add_aggressive: 6,
        ioc: 5,
        market: 3,
        cancel: 32,
        reduce: 5,
        replace: 8,
        modify: 3,
        risk_reject: 3,
        other_firm: 3,
        expiring: 2,
    };

    fn total(&self) -> u64 {
        [
            self.add_passive,
            self.add_aggressive,
            self.ioc,
            self.market,
            self.cancel,
            self.reduce,
            self.replace,
            self.modify,
            self.risk_reject,
            self.other_firm,
            self.expiring,
        ]
        .iter()
        .map(|&w| u64::from(w))
        .sum()
    }
}

/// Parameters of a [`Workload`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadParams {
    /// Seed of the generator.
    pub seed: u64,
    /// Instruments (as in [`demo_config`]).
    pub instruments: usize,
    /// Logins (as in [`demo_config`]).
    pub logins: u32,
    /// Command mix.
    pub mix: Mix,
    /// Prices stay within this many ticks of the reference price.
    pub band_ticks: u32,
    /// Largest order size in lots.
    pub lots_max: u32,
    /// Recent tokens remembered for cancels and replaces.
    pub recent_tokens_max: usize,
    /// Simulated time advanced per command, nanoseconds.
    pub step_ns: u64,
    /// `orders_max` of [`WorkloadParams::config`].
    pub orders_max: u32,
    /// `tokens_max` of [`WorkloadParams::config`]: at least the number of commands to run.
    pub tokens_max: u32,
}

impl WorkloadParams {
    /// Sensible defaults for `seed` and `mix`: 2 instruments, 8 logins, ±20 ticks, ≤ 10 lots.
    pub fn new(seed: u64, mix: Mix) -> Self {
        Self {
            seed,
            instruments: 2,
            logins: 8,
            mix,
            band_ticks: 20,
            lots_max: 10,
            recent_tokens_max: 4096,
            step_ns: 1_000,
            orders_max: 1 << 16,
            tokens_max: 1 << 18,
        }
    }

    /// The engine configuration for a run of `commands` commands: tokens for every command (each Enter
    /// and Replace takes a day-unique token; a full token table rejects `Y`), `orders_max` as set.
    ///
    /// # Panics
    /// If `commands` is above [`crate::config::TOKENS_MAX_LIMIT`].
    pub fn config_for(&self, commands: usize) -> EngineConfig {
        let tokens_max = u32::try_from(commands.max(1)).expect("commands fit in u32");
        assert!(
            tokens_max <= crate::config::TOKENS_MAX_LIMIT,
            "{commands} commands need too many tokens"
        );
        demo_config_sized(
            self.instruments,
            self.logins,
            self.orders_max,
            tokens_max.max(self.tokens_max),
        )
    }

    /// The engine configuration this workload is written for, with `tokens_max` as set (default 256 Ki:
    /// enough for about 300 k commands; use [`WorkloadParams::config_for`] for longer runs).
    pub fn config(&self) -> EngineConfig {
        demo_config_sized(self.instruments, self.logins, self.orders_max, self.tokens_max)
    }
}

/// A deterministic stream of (time, command) pairs.
pub struct Workload {
    params: WorkloadParams,
    rng: SplitMix64,
    now_ns: u64,
    /// Next token number per login (index login - 1): each login numbers its tokens 1, 2, 3, ...
    token_next: Vec<u64>,
    /// (login, token, side letter, instrument) of recent orders, a ring.
    recent: Vec<(u32, Token, u8, usize)>,
    recent_next: usize,
}

/// Token `n` as 14 ASCII characters: `T` then the decimal number, left-justified.
pub fn token(n: u64) -> Token {
    let mut t = *b"T             ";
    write_decimal(&mut t[1..], n);
    bourse_protocol::fields::Alpha(t)
}

impl Workload {
    /// A new stream.
    ///
    /// # Panics
    /// If `params` has zero instruments, logins, lots or recent tokens, or an all-zero mix.
    pub fn new(params: WorkloadParams) -> Self {
        assert!(params.instruments > 0 && params.logins > 0 && params.lots_max > 0);
        assert!(params.recent_tokens_max > 0 && params.mix.total() > 0);
        Self {
            params,
            rng: SplitMix64(params.seed),
            now_ns: 0,
            token_next: vec![1; params.logins as usize],
            recent: Vec::with_capacity(params.recent_tokens_max),
            recent_next: 0,
        }
    }

    fn remember(&mut self, entry: (u32, Token, u8, usize)) {
        if self.recent.len() < self.params.recent_tokens_max {
            self.recent.push(entry);
        } else {
            self.recent[self.recent_next] = entry;
            self.recent_next = (self.recent_next + 1) % self.params.recent_tokens_max;
        }
    }

    /// A recent token; `forget` removes it (a full cancel or a replace ends that order).
    fn pick_recent(&mut self, forget: bool) -> Option<(u32, Token, u8, usize)> {
        if self.recent.is_empty() {
            return None;
        }
        let i = self.rng.below(self.recent.len() as u64) as usize;
        let entry = self.recent[i];
        if forget {
            self.recent.swap_remove(i);
            self.recent_next = self.recent_next.min(self.recent.len().saturating_sub(1));
        }
        Some(entry)
    }

    fn new_token(&mut self, login: u32) -> Token {
        let next = &mut self.token_next[login as usize - 1];
        let t = token(*next);
        *next += 1;
        t
    }

    /// Price `offset` ticks from the reference, away from (passive) or through (aggressive) the middle.
    fn price(&mut self, side: u8, aggressive: bool) -> u32 {
        let offset = self.rng.below(u64::from(self.params.band_ticks)) as u32 + 1;
        let up = (side == b'B') == aggressive;
        let ticks = DEMO_REFERENCE_PRICE / DEMO_TICK_SIZE;
        let ticks = if up { ticks + offset } else { ticks - offset };
        ticks * DEMO_TICK_SIZE
    }

    /// The next (time, command).
    pub fn next_command(&mut self) -> (u64, Command) {
        self.now_ns += self.params.step_ns;
        let m = self.params.mix;
        let mut pick = self.rng.below(m.total());
        let mut kind = 0usize;
        for (k, w) in [
            m.add_passive,
            m.add_aggressive,
            m.ioc,
            m.market,
            m.cancel,
            m.reduce,
            m.replace,
            m.modify,
            m.risk_reject,
            m.other_firm,
            m.expiring,
        ]
        .iter()
        .enumerate()
        {
            if pick < u64::from(*w) {
                kind = k;
                break;
            }
            pick -= u64::from(*w);
        }
        let command = match kind {
            4..=7 => match self.pick_recent(kind == 4 || kind == 6) {
                Some(recent) => self.amend(kind, recent),
                None => self.enter(0),
            },
            _ => self.enter(kind),
        };
        (self.now_ns, command)
    }

    fn amend(&mut self, kind: usize, (login, token, side, instrument): (u32, Token, u8, usize)) -> Command {
        let lots = self.rng.below(u64::from(self.params.lots_max)) as u32;
        match kind {
            4 => Command::Cancel {
                login,
                token,
                shares: 0,
            },
            5 => Command::Cancel {
                login,
                token,
                shares: lots * DEMO_LOT_SIZE,
            },
            6 => {
                let replacement_token = self.new_token(login);
                let aggressive = self.rng.below(4) == 0;
                let price = self.price(side, aggressive);
                self.remember((login, replacement_token, side, instrument));
                Command::Replace(ReplaceOrder {
                    login,
                    existing_token: token,
                    replacement_token,
                    shares: (lots + 1) * DEMO_LOT_SIZE,
                    price,
                    tif_s: 99_999,
                    display: b'Y',
                    min_qty: 0,
                })
            }
            _ => {
                let side = if side == b'B' {
                    b'B'
                } else {
                    [b'S', b'T', b'E'][self.rng.below(3) as usize]
                };
                Command::Modify {
                    login,
                    token,
                    side,
                    shares: (lots + 1) * DEMO_LOT_SIZE,
                }
            }
        }
    }

    fn enter(&mut self, kind: usize) -> Command {
        let p = self.params;
        let login = self.rng.below(u64::from(p.logins)) as u32 + 1;
        let instrument = self.rng.below(p.instruments as u64) as usize;
        let side = if self.rng.below(2) == 0 { b'B' } else { b'S' };
        let token = self.new_token(login);
        let lots = self.rng.below(u64::from(p.lots_max)) as u32 + 1;
        let mut order = EnterOrder {
            login,
            token,
            side,
            shares: lots * DEMO_LOT_SIZE,
            symbol: demo_symbol(instrument),
            price: self.price(side, false),
            tif_s: 99_999,
            firm: Firm::BLANK,
            display: b'Y',
            min_qty: 0,
            // Varied without drawing from the stream (the streams stay as they were): replaces must carry
            // each order's own letters over.
            capacity: [b'A', b'P', b'R'][login as usize % 3],
            cross_type: if login.is_multiple_of(2) { b'N' } else { b'O' },
        };
        match kind {
            1 => order.price = self.price(side, true),
            2 => {
                order.price = self.price(side, true);
                order.tif_s = 0;
                if self.rng.below(3) == 0 {
                    order.min_qty = order.shares; // fill-or-kill
                }
            }
            3 => {
                order.price = PRICE_MARKET;
                order.tif_s = 0;
            }
            8 => match self.rng.below(5) {
                0 => order.price += 1,
                1 => order.shares += 1,
                2 => order.shares = 2_000_000,
                3 => order.symbol = demo_symbol(p.instruments + 7),
                _ => order.price = DEMO_REFERENCE_PRICE * 2,
            },
            9 => {
                order.firm = demo_firm(login + 1);
                let aggressive = self.rng.below(2) == 0;
                order.price = self.price(side, aggressive);
            }
            10 => {
                if self.rng.below(2) == 0 {
                    return Command::ExpireDue;
                }
                order.tif_s = 1 + self.rng.below(3) as u32;
            }
            _ => {
                if self.rng.below(20) == 0 {
                    order.display = if self.rng.below(2) == 0 { b'A' } else { b'P' };
                }
            }
        }
        if order.tif_s != 0 && order.symbol == demo_symbol(instrument) {
            self.remember((login, token, side, instrument));
        }
        order.min_qty = order.min_qty.min(order.shares);
        order.into()
    }

    /// A mass-cancel command for a login's orders (cancel-on-disconnect), for tests that want one.
    pub fn disconnect(login: u32) -> Command {
        Command::MassCancel {
            scope: MassCancelScope::Login(login),
            reason: CancelReason::LoggedOff,
        }
    }
}

impl From<EnterOrder> for Command {
    fn from(order: EnterOrder) -> Self {
        Command::Enter(order)
    }
}

impl Iterator for Workload {
    type Item = (u64, Command);
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_command())
    }
}
