//! Commands: the engine's only input. Each is applied whole, in sequence order, at a caller-given time.
//!
//! Fields are the OUCH values as the client sent them (side and display letters, wire prices, shares);
//! the engine validates them, so a bad value is a reject event, never a panic.

use crate::event::Party;
use bourse_protocol::fields::{Firm, Symbol, Token};
use bourse_protocol::reason::CancelReason;

/// An OUCH Enter Order, with the login that sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnterOrder {
    /// Login (OUCH account) that owns the token.
    pub login: u32,
    /// Client token, day-unique per login.
    pub token: Token,
    /// `B` buy, `S` sell, `T` sell short, `E` sell short exempt.
    pub side: u8,
    /// Order size in shares.
    pub shares: u32,
    /// Instrument.
    pub symbol: Symbol,
    /// Limit price in OUCH price units, or [`bourse_protocol::fields::PRICE_MARKET`] for a market order.
    pub price: u32,
    /// Time in force, seconds: 0 IOC, 1..=99997 expire after N seconds, 99998/99999 day.
    pub tif_s: u32,
    /// Trading account; blank = the login's default firm.
    pub firm: Firm,
    /// `Y` displayed, `A` attributable, `P` post-only.
    pub display: u8,
    /// Minimum quantity (only with IOC; equal to `shares` makes a fill-or-kill). 0 = none.
    pub min_qty: u32,
    /// OUCH Capacity letter. Not interpreted: kept with the order and echoed in its Accepted and in the
    /// Replaced of any replacement (OUCH's Replace does not carry it).
    pub capacity: u8,
    /// OUCH Cross Type letter. Not interpreted: kept and echoed like `capacity`.
    pub cross_type: u8,
}

/// An OUCH Replace Order: a new order (new token, new reference, no time priority) in place of a live one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaceOrder {
    /// Login that owns both tokens.
    pub login: u32,
    /// Token of the live order to replace.
    pub existing_token: Token,
    /// Token of the replacement (must never have been seen today).
    pub replacement_token: Token,
    /// Open size of the replacement, in shares.
    pub shares: u32,
    /// Limit price of the replacement (a market price is rejected).
    pub price: u32,
    /// Time in force of the replacement.
    pub tif_s: u32,
    /// Display of the replacement.
    pub display: u8,
    /// Minimum quantity of the replacement (IOC only).
    pub min_qty: u32,
}

/// Which orders a [`Command::MassCancel`] cancels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MassCancelScope {
    /// All orders of a firm.
    Firm(Firm),
    /// All orders of a login (cancel-on-disconnect).
    Login(u32),
    /// All orders of an instrument.
    Instrument(Symbol),
}

/// One sequenced input of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// OUCH Enter Order.
    Enter(EnterOrder),
    /// OUCH Cancel Order: `shares` is the new intended open size (0 cancels, a decrease keeps priority,
    /// at least the open size is a no-op).
    Cancel {
        /// Login that owns the token.
        login: u32,
        /// Token of the order.
        token: Token,
        /// New intended open size in shares.
        shares: u32,
    },
    /// OUCH Replace Order.
    Replace(ReplaceOrder),
    /// OUCH Modify Order: reduce the size or switch between sell types (`S`, `T`, `E`).
    Modify {
        /// Login that owns the token.
        login: u32,
        /// Token of the order.
        token: Token,
        /// New side letter.
        side: u8,
        /// New open size in shares.
        shares: u32,
    },
    /// Cancel every order in a scope, with the given reason (`S` admin, `L` cancel-on-disconnect, ...).
    MassCancel {
        /// Which orders.
        scope: MassCancelScope,
        /// Reason sent on each Canceled.
        reason: CancelReason,
    },
    /// Turn a firm's kill switch on (cancel its orders with reason `S`, reject its new ones) or off.
    KillSwitch {
        /// The firm.
        firm: Firm,
        /// On blocks, off unblocks.
        on: bool,
    },
    /// Cancel (reason `T`) every order whose time in force expired at or before `now`.
    ExpireDue,
    /// End the trading day: cancel all resting orders (reason `E`), then reject new orders `Closed`.
    EndOfDay,
    /// Start a new trading day after an end of day: forget the day's tokens and accept orders again.
    StartOfDay,
    /// Halt an instrument: new orders and replaces are rejected `Halted`; resting orders stay.
    Halt {
        /// The instrument.
        symbol: Symbol,
    },
    /// Resume a halted instrument.
    Resume {
        /// The instrument.
        symbol: Symbol,
    },
    /// Bust (break) a trade of the current day. The engine keeps no copy of past trades: the caller
    /// names the trade as its [`crate::Event::Executed`] did (the daemon reads it from the journal), and the
    /// engine checks that the match number is one of the day's, not yet busted.
    BustTrade {
        /// The trade's match number.
        match_number: u64,
        /// Its instrument's symbol.
        symbol: Symbol,
        /// The resting side, as the Executed event named it.
        resting: Party,
        /// The taking side, as the Executed event named it.
        taking: Party,
    },
    /// An Enter or Replace Order that arrived over the session's throttle (the daemon's check #1): the
    /// token (an Enter's, a Replace's replacement) is recorded and Rejected `F`; a token already seen is
    /// ignored, as for any Enter.
    Throttled {
        /// Login that sent it.
        login: u32,
        /// The token to record and reject.
        token: Token,
    },
}
