//! Engine configuration: instruments, firms (trading accounts), logins and capacities.
//!
//! Everything the engine needs to size its tables is here; [`crate::Engine::new`] validates it once
//! ([`ConfigError`]) and allocates every table to these limits. Nothing grows afterwards: input past a
//! limit is a [`bourse_protocol::reason::RejectReason::CapacityFull`] reject.
//!
//! # Units
//! Prices are OUCH price units (1/10000 of a dollar, `u32`), quantities are shares. Inside the engine they
//! become integer ticks ([`crate::Ticks`]) and lots ([`crate::Lots`]) of each instrument.

use std::collections::HashSet;

use bourse_protocol::fields::{Firm, Symbol};

/// Hard upper bound of [`EngineConfig::orders_max`] (order indices are `u32`, one value is a sentinel).
pub const ORDERS_MAX_LIMIT: u32 = 1 << 26;
/// Hard upper bound of [`EngineConfig::tokens_max`] (the token table has twice as many slots).
pub const TOKENS_MAX_LIMIT: u32 = 1 << 27;
/// Hard upper bound of the number of instruments (stock locate codes are `u16`).
pub const INSTRUMENTS_MAX_LIMIT: usize = 65_535;
/// Hard upper bound of the number of firms (firm indices are `u16`).
pub const FIRMS_MAX_LIMIT: usize = 65_535;
/// Hard limit on logins (an order keeps its login's index in 16 bits).
pub const LOGINS_MAX_LIMIT: usize = 65_536;
/// Time in force values (seconds) 1..=`TIF_EXPIRING_MAX_S` expire; 99998 and 99999 rest until end of day.
pub const TIF_EXPIRING_MAX_S: u32 = 99_997;
/// OUCH 4.2 "market hours" time in force: rests until end of day.
pub const TIF_MARKET_HOURS: u32 = 99_998;
/// OUCH 4.2 "system hours" time in force: rests until end of day.
pub const TIF_SYSTEM_HOURS: u32 = 99_999;

/// Self-trade prevention mode of a firm (opt-in; default [`StpMode::None`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum StpMode {
    /// Orders of the firm trade with each other.
    #[default]
    None = 0,
    /// The incoming order's remainder is canceled; the resting order stays.
    CancelNewest = 1,
    /// The resting order is canceled; the incoming order continues.
    CancelOldest = 2,
    /// Both are canceled.
    CancelBoth = 3,
    /// Both are reduced by the smaller open size; an order reduced to zero is canceled.
    Decrement = 4,
}

impl StpMode {
    /// The mode for its `repr(u8)` value.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::None),
            1 => Some(Self::CancelNewest),
            2 => Some(Self::CancelOldest),
            3 => Some(Self::CancelBoth),
            4 => Some(Self::Decrement),
            _ => None,
        }
    }
}

/// One tradable instrument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentConfig {
    /// OUCH/ITCH symbol (8 bytes, space padded).
    pub symbol: Symbol,
    /// ITCH stock locate code (stable for the day; non-zero, unique).
    pub locate: u16,
    /// Tick size in OUCH price units (1/10000 dollar); every limit price is a multiple of it.
    pub tick_size: u32,
    /// Lot size in shares; every order size is a multiple of it.
    pub lot_size: u32,
    /// Price collar half-width in basis points around the last trade (or `reference_price` before the
    /// first trade). 0 disables the collar (market orders then walk the whole book).
    pub collar_bps: u32,
    /// Reference price (OUCH price units) for the collar before the first trade; on the tick grid.
    pub reference_price: u32,
    /// Largest order size in shares.
    pub shares_max: u32,
    /// Largest order notional, in OUCH price units × shares (so $1,000,000 is `10_000_000_000`).
    /// A market order's notional uses its collar bound.
    pub notional_max: u64,
}

/// One trading account ("firm" in OUCH).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmConfig {
    /// The 4-byte OUCH firm / ITCH attribution.
    pub firm: Firm,
    /// Largest number of open (resting) orders of this firm across all instruments.
    pub open_orders_max: u32,
    /// Self-trade prevention between orders of this firm.
    pub stp: StpMode,
}

/// One OUCH login (SoupBinTCP username), identified by a number the session layer assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginConfig {
    /// The login id the commands carry.
    pub login: u32,
    /// Firms this login may trade for.
    pub firms: Vec<Firm>,
    /// The firm used when the Enter Order's firm is blank; must be one of `firms`.
    pub default_firm: Firm,
}

/// Everything [`crate::Engine::new`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Largest number of live orders (the order arena's size).
    pub orders_max: u32,
    /// Largest number of price levels per side of each instrument.
    pub levels_max: u32,
    /// Largest number of distinct (login, token) pairs per trading day.
    pub tokens_max: u32,
    /// Largest number of trades busted in one trading day (their match numbers are kept until Start of
    /// Day, so that a trade is busted once).
    pub busts_max: u32,
    /// First order reference number to assign (continues across restarts).
    pub order_ref_first: u64,
    /// First match number to assign (continues across restarts).
    pub match_number_first: u64,
    /// Instruments, in locate order is not required; symbols and locates must be unique.
    pub instruments: Vec<InstrumentConfig>,
    /// Firms (trading accounts); unique.
    pub firms: Vec<FirmConfig>,
    /// Logins; unique ids.
    pub logins: Vec<LoginConfig>,
}

/// A configuration the engine cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A capacity is zero or above its hard limit.
    #[error("capacity {name} = {value} is out of range")]
    Capacity {
        /// The capacity's name.
        name: &'static str,
        /// Its configured value.
        value: u64,
    },
    /// Two instruments share a symbol or a locate, or a locate is zero.
    #[error("instrument {0} has a duplicate symbol or locate, or locate 0")]
    DuplicateInstrument(String),
    /// Tick size, lot size, reference price or maximum quantity is invalid.
    #[error("instrument {0}: tick, lot, reference price or shares_max invalid")]
    InstrumentValue(String),
    /// Two firms share a name.
    #[error("duplicate firm {0}")]
    DuplicateFirm(String),
    /// Two logins share an id.
    #[error("duplicate login {0}")]
    DuplicateLogin(u32),
    /// A login names a firm that is not configured, or its default firm is not among its firms.
    #[error("login {0} names an unknown firm or a default firm it may not use")]
    LoginFirm(u32),
}

impl EngineConfig {
    /// Checks every rule in [`ConfigError`].
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let capacity = |name: &'static str, value: u64, max: u64| {
            if value == 0 || value > max {
                Err(ConfigError::Capacity { name, value })
            } else {
                Ok(())
            }
        };
        capacity("orders_max", self.orders_max.into(), ORDERS_MAX_LIMIT.into())?;
        capacity("tokens_max", self.tokens_max.into(), TOKENS_MAX_LIMIT.into())?;
        capacity("levels_max", self.levels_max.into(), ORDERS_MAX_LIMIT.into())?;
        capacity("busts_max", self.busts_max.into(), ORDERS_MAX_LIMIT.into())?;
        capacity(
            "instruments",
            self.instruments.len() as u64,
            INSTRUMENTS_MAX_LIMIT as u64,
        )?;
        capacity("firms", self.firms.len() as u64, FIRMS_MAX_LIMIT as u64)?;
        if self.logins.len() > LOGINS_MAX_LIMIT {
            return Err(ConfigError::Capacity {
                name: "logins",
                value: self.logins.len() as u64,
            });
        }
        capacity("order_ref_first", self.order_ref_first, u64::MAX / 2)?;
        capacity("match_number_first", self.match_number_first, u64::MAX / 2)?;
        // Duplicates through sets: a pairwise check was quadratic (seconds at tens of thousands of logins).
        let (mut symbols, mut locates) = (HashSet::new(), HashSet::new());
        for a in &self.instruments {
            let name = a.symbol.to_string();
            if a.locate == 0 || !symbols.insert(a.symbol) || !locates.insert(a.locate) {
                return Err(ConfigError::DuplicateInstrument(name));
            }
            let price_ok = |p: u32| p > 0 && p <= bourse_protocol::fields::PRICE_LIMIT_MAX;
            if a.tick_size == 0
                || a.lot_size == 0
                || !price_ok(a.reference_price)
                || !a.reference_price.is_multiple_of(a.tick_size)
                || a.shares_max < a.lot_size
            {
                return Err(ConfigError::InstrumentValue(name));
            }
        }
        let mut firms = HashSet::with_capacity(self.firms.len());
        for a in &self.firms {
            if !firms.insert(a.firm) {
                return Err(ConfigError::DuplicateFirm(a.firm.to_string()));
            }
        }
        let mut logins = HashSet::with_capacity(self.logins.len());
        for a in &self.logins {
            if !logins.insert(a.login) {
                return Err(ConfigError::DuplicateLogin(a.login));
            }
            let known = |f: &Firm| firms.contains(f);
            if !a.firms.iter().all(known) || !a.firms.contains(&a.default_firm) {
                return Err(ConfigError::LoginFirm(a.login));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{demo_config, demo_firm, demo_symbol};

    #[test]
    fn duplicates_and_the_login_limit_are_refused() {
        assert_eq!(demo_config(3, 5).validate(), Ok(()));
        let mut c = demo_config(3, 5);
        c.instruments[2].symbol = demo_symbol(0);
        assert!(matches!(c.validate(), Err(ConfigError::DuplicateInstrument(s)) if s.trim() == "SYM0"));
        let mut c = demo_config(3, 5);
        c.instruments[2].locate = c.instruments[1].locate;
        assert!(matches!(c.validate(), Err(ConfigError::DuplicateInstrument(s)) if s.trim() == "SYM2"));
        let mut c = demo_config(3, 5);
        c.instruments[0].locate = 0;
        assert!(matches!(c.validate(), Err(ConfigError::DuplicateInstrument(_))));
        let mut c = demo_config(3, 5);
        c.firms[4].firm = demo_firm(2);
        assert!(matches!(c.validate(), Err(ConfigError::DuplicateFirm(f)) if f.trim() == "F2"));
        let mut c = demo_config(3, 5);
        c.logins[3].login = 2;
        assert_eq!(c.validate(), Err(ConfigError::DuplicateLogin(2)));
        let mut c = demo_config(3, 5);
        c.logins[1].firms.push(bourse_protocol::fields::Alpha(*b"NONE"));
        assert_eq!(c.validate(), Err(ConfigError::LoginFirm(2)));
        // 65,536 logins are accepted (an order keeps its login's index in 16 bits), one more is not.
        let mut c = demo_config(1, 1);
        let login = c.logins[0].clone();
        c.logins = (1..=LOGINS_MAX_LIMIT as u32)
            .map(|n| LoginConfig {
                login: n,
                ..login.clone()
            })
            .collect();
        assert_eq!(c.validate(), Ok(()));
        c.logins.push(LoginConfig {
            login: LOGINS_MAX_LIMIT as u32 + 1,
            ..login
        });
        assert_eq!(
            c.validate(),
            Err(ConfigError::Capacity {
                name: "logins",
                value: LOGINS_MAX_LIMIT as u64 + 1
            })
        );
    }
}
