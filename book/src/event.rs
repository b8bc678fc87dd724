//! Events: the engine's only output, in the order the pipeline must publish them.
//!
//! Each event carries every field the OUCH reply and the ITCH message need, so the pipeline never
//! looks anything up. How each maps to the wire:
//!
//! | event | OUCH 4.2 (to the owning login) | ITCH 5.0 |
//! |---|---|---|
//! | [`Event::Accepted`] | `A` Accepted (OrderState `L`) | – |
//! | [`Event::Added`] | – | `A` Add Order, or `F` when `attributed` |
//! | [`Event::Executed`] | `E` to the resting side (flag `A`) and to the taker (flag `R`) | `E` Order Executed (resting ref) |
//! | [`Event::Canceled`] | `C` Canceled | if `on_book`: `D` Delete when `remaining == 0`, else `X` Cancel |
//! | [`Event::SelfTradeCanceled`] | `D` AIQ Canceled (reason `Q`) | as Canceled |
//! | [`Event::Replaced`] | `U` Replaced | `U` Order Replace if `feed_replace`, else `D` Delete of the previous ref (an `Added` follows if the replacement rests) |
//! | [`Event::Modified`] | `M` Order Modified | `X` Cancel of `decrement` shares if non-zero |
//! | [`Event::Rejected`] | `J` Rejected | – |
//! | [`Event::CancelRejected`] | `I` Cancel Reject (the order is unchanged) | – |
//! | [`Event::TradingAction`] | – | `H` Trading Action (`H` halted / `T` trading) |
//! | [`Event::SystemEvent`] | `S` System Event | `S` System Event |
//! | [`Event::Broken`] | `B` Broken Trade to both sides | `B` Broken Trade |
//! | [`Event::KillSwitch`] | – (admin reply) | – |
//!
//! Prices are OUCH price units, sizes are shares, timestamps are the `now_ns` given to `apply`.

use bourse_protocol::fields::{Firm, Symbol, Token};
use bourse_protocol::reason::{CancelReason, RejectReason};

/// One side of a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Party {
    /// Owning login.
    pub login: u32,
    /// Its token.
    pub token: Token,
    /// Its order reference number.
    pub order_ref: u64,
    /// Its firm.
    pub firm: Firm,
    /// Its OUCH side letter (`B`, `S`, `T`, `E`).
    pub side: u8,
    /// Shares still open on it after this event.
    pub remaining: u32,
}

/// Where an instrument's order is: for ITCH and for OUCH's Stock field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instrument {
    /// Symbol.
    pub symbol: Symbol,
    /// ITCH stock locate.
    pub locate: u16,
}

/// An order was accepted (before any execution it takes part in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Event time.
    pub timestamp_ns: u64,
    /// Owning login.
    pub login: u32,
    /// Token.
    pub token: Token,
    /// Assigned order reference number.
    pub order_ref: u64,
    /// OUCH side letter as entered.
    pub side: u8,
    /// Shares as entered.
    pub shares: u32,
    /// Instrument.
    pub instrument: Instrument,
    /// Price as entered ([`bourse_protocol::fields::PRICE_MARKET`] for a market order).
    pub price: u32,
    /// Time in force as entered.
    pub tif_s: u32,
    /// Resolved firm (never blank).
    pub firm: Firm,
    /// Display as entered.
    pub display: u8,
    /// Minimum quantity as entered.
    pub min_qty: u32,
    /// OUCH Capacity as entered.
    pub capacity: u8,
    /// OUCH Cross Type as entered.
    pub cross_type: u8,
}

/// An order (or the rest of one) now rests on the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    /// Event time.
    pub timestamp_ns: u64,
    /// Order reference number.
    pub order_ref: u64,
    /// Book side.
    pub side: crate::Side,
    /// Resting shares.
    pub shares: u32,
    /// Instrument.
    pub instrument: Instrument,
    /// Limit price.
    pub price: u32,
    /// Firm (the ITCH attribution when `attributed`).
    pub firm: Firm,
    /// Display `A`: publish as Add Order with MPID (`F`).
    pub attributed: bool,
}

/// A trade between a resting order and an incoming one, at the resting order's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Executed {
    /// Event time.
    pub timestamp_ns: u64,
    /// Match number (unique, increasing).
    pub match_number: u64,
    /// Instrument.
    pub instrument: Instrument,
    /// Execution price (the resting order's).
    pub price: u32,
    /// Executed shares.
    pub shares: u32,
    /// The resting order (liquidity flag `A`).
    pub resting: Party,
    /// The incoming order (liquidity flag `R`).
    pub taking: Party,
}

/// An order lost `decrement` shares (to zero when `remaining == 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canceled {
    /// Event time.
    pub timestamp_ns: u64,
    /// Owning login.
    pub login: u32,
    /// Token.
    pub token: Token,
    /// Order reference number.
    pub order_ref: u64,
    /// Instrument.
    pub instrument: Instrument,
    /// Book side.
    pub side: crate::Side,
    /// Limit price of the order (OUCH units; [`bourse_protocol::fields::PRICE_MARKET`] for a market order).
    pub price: u32,
    /// Shares taken off.
    pub decrement: u32,
    /// Shares still open.
    pub remaining: u32,
    /// Why.
    pub reason: CancelReason,
    /// The order was resting on the book (so ITCH shows the cancel).
    pub on_book: bool,
}

/// Self-trade prevention took shares off an order (OUCH AIQ Canceled, reason `Q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfTradeCanceled {
    /// The cancel itself (reason is always [`CancelReason::SelfMatchPrevention`]).
    pub canceled: Canceled,
    /// Shares that would have traded.
    pub prevented: u32,
    /// The resting order's price.
    pub execution_price: u32,
    /// `A` for the resting order, `R` for the incoming one.
    pub liquidity: u8,
}

/// A live order was replaced by a new one (new token, new reference, no time priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// Event time.
    pub timestamp_ns: u64,
    /// Owning login.
    pub login: u32,
    /// Token of the replaced order (now dead).
    pub previous_token: Token,
    /// Reference of the replaced order.
    pub previous_order_ref: u64,
    /// Shares the replaced order had open (all leave the book).
    pub previous_remaining: u32,
    /// Replacement token.
    pub token: Token,
    /// Replacement order reference number.
    pub order_ref: u64,
    /// OUCH side letter (inherited).
    pub side: u8,
    /// Replacement shares.
    pub shares: u32,
    /// Instrument (inherited).
    pub instrument: Instrument,
    /// Replacement price.
    pub price: u32,
    /// Replacement time in force.
    pub tif_s: u32,
    /// Firm (inherited).
    pub firm: Firm,
    /// Replacement display.
    pub display: u8,
    /// Replacement minimum quantity.
    pub min_qty: u32,
    /// OUCH Capacity (inherited from the Enter).
    pub capacity: u8,
    /// OUCH Cross Type (inherited from the Enter).
    pub cross_type: u8,
    /// True when the replacement rests whole without crossing: ITCH shows Order Replace (`U`).
    /// False: ITCH shows Delete of the previous order, then executions, then an Add if it rests.
    pub feed_replace: bool,
}

/// A live order was modified (reduced and/or switched between sell types); it keeps its priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modified {
    /// Event time.
    pub timestamp_ns: u64,
    /// Owning login.
    pub login: u32,
    /// Token.
    pub token: Token,
    /// Order reference number.
    pub order_ref: u64,
    /// Instrument.
    pub instrument: Instrument,
    /// New OUCH side letter.
    pub side: u8,
    /// New open shares.
    pub shares: u32,
    /// Shares taken off.
    pub decrement: u32,
}

/// Every output of the engine. `Copy` and fixed size: stages pass them over rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// See [`Accepted`].
    Accepted(Accepted),
    /// See [`Added`].
    Added(Added),
    /// See [`Executed`].
    Executed(Executed),
    /// See [`Canceled`].
    Canceled(Canceled),
    /// See [`SelfTradeCanceled`].
    SelfTradeCanceled(SelfTradeCanceled),
    /// See [`Replaced`].
    Replaced(Replaced),
    /// See [`Modified`].
    Modified(Modified),
    /// An Enter or Replace was rejected; it consumes its token (for a Replace: the replacement token).
    Rejected {
        /// Event time.
        timestamp_ns: u64,
        /// Login.
        login: u32,
        /// The token (for a Replace: the replacement token).
        token: Token,
        /// Why.
        reason: RejectReason,
    },
    /// A Modify Order of a live order was refused (OUCH Cancel Reject `I`): the order is unchanged,
    /// still live, and keeps its priority. Not a Rejected `J`, which would tell an OUCH client the
    /// order is dead.
    CancelRejected {
        /// Event time.
        timestamp_ns: u64,
        /// Owning login.
        login: u32,
        /// The order's token.
        token: Token,
        /// The order's reference number (for the journal; OUCH `I` carries only the token).
        order_ref: u64,
    },
    /// An instrument was halted or resumed.
    TradingAction {
        /// Event time.
        timestamp_ns: u64,
        /// Instrument.
        instrument: Instrument,
        /// True: halted (ITCH `H`); false: trading (ITCH `T`).
        halted: bool,
    },
    /// Start (`S`) or end (`E`) of the trading day.
    SystemEvent {
        /// Event time.
        timestamp_ns: u64,
        /// `S` or `E`.
        code: u8,
    },
    /// A trade was busted.
    Broken {
        /// Event time.
        timestamp_ns: u64,
        /// Match number of the busted trade.
        match_number: u64,
        /// Instrument.
        instrument: Instrument,
        /// Resting side as it was at the trade (remaining = after the trade).
        resting: Party,
        /// Taking side as it was at the trade.
        taking: Party,
    },
    /// A firm's kill switch changed (after the cancels it caused).
    KillSwitch {
        /// Event time.
        timestamp_ns: u64,
        /// The firm.
        firm: Firm,
        /// New state.
        on: bool,
    },
}

impl Event {
    /// The event's timestamp.
    pub fn timestamp_ns(&self) -> u64 {
        match self {
            Self::Accepted(e) => e.timestamp_ns,
            Self::Added(e) => e.timestamp_ns,
            Self::Executed(e) => e.timestamp_ns,
            Self::Canceled(e) => e.timestamp_ns,
            Self::SelfTradeCanceled(e) => e.canceled.timestamp_ns,
            Self::Replaced(e) => e.timestamp_ns,
            Self::Modified(e) => e.timestamp_ns,
            Self::Rejected { timestamp_ns, .. }
            | Self::CancelRejected { timestamp_ns, .. }
            | Self::TradingAction { timestamp_ns, .. }
            | Self::SystemEvent { timestamp_ns, .. }
            | Self::Broken { timestamp_ns, .. }
            | Self::KillSwitch { timestamp_ns, .. } => *timestamp_ns,
        }
    }
}

/// Where the engine writes its events. Implemented for `Vec<Event>` (pre-size it: pushing past its
/// capacity allocates) and for closures via [`FnSink`].
pub trait EventSink {
    /// Receives one event, in publication order.
    fn push(&mut self, event: Event);
}

impl EventSink for Vec<Event> {
    #[inline]
    fn push(&mut self, event: Event) {
        Vec::push(self, event);
    }
}

/// An [`EventSink`] that calls a closure for each event (for example, to count without storing).
pub struct FnSink<F: FnMut(Event)>(pub F);

impl<F: FnMut(Event)> EventSink for FnSink<F> {
    fn push(&mut self, event: Event) {
        (self.0)(event);
    }
}
