//! The reason letters bourse sends in OUCH Rejected (`J`), Canceled (`C`) and AIQ Canceled (`D`).
//!
//! OUCH 4.2 letters are used where one fits (stock Wireshark names them); the bourse-specific ones are
//! capital or lower-case letters that OUCH 4.2 does not define for the field, fixed here and documented in
//! `docs/protocol.md`. The engine (`bourse-book`) produces these values; the wire carries [`RejectReason::code`].

letter_enum! {
    /// Why an Enter Order or Replace Order was rejected (OUCH `J` Rejected, Reason field).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    RejectReason {
        /// `H` (OUCH 4.2): the instrument is halted.
        Halted = b'H',
        /// `S` (OUCH 4.2): unknown symbol.
        InvalidStock = b'S',
        /// `X` (OUCH 4.2): price is zero, above the largest limit price, or not on the instrument's tick grid.
        InvalidPrice = b'X',
        /// `Z` (OUCH 4.2): shares are zero or above the instrument's maximum order quantity.
        InvalidShares = b'Z',
        /// `N` (OUCH 4.2): minimum quantity above shares, or on an order that is not IOC.
        InvalidMinimumQuantity = b'N',
        /// `D` (OUCH 4.2): a Display value bourse does not offer.
        InvalidDisplay = b'D',
        /// `C` (OUCH 4.2): the trading day has ended; no orders until the next start of day.
        Closed = b'C',
        /// `L` (OUCH 4.2): the Firm field names an account this login may not trade for.
        FirmNotAuthorized = b'L',
        /// `a` (OUCH 4.2 "Reject All enabled"): the firm's kill switch is on.
        KillSwitch = b'a',
        /// `e` (OUCH 4.2 "Odd lot order restriction"): shares are not a multiple of the instrument's lot.
        InvalidLot = b'e',
        /// `n` (OUCH 4.2 "Exceeded dollar value limit"): price × shares is above the maximum order notional.
        NotionalLimit = b'n',
        /// `O` (OUCH 4.2): anything else (a field bourse does not support, such as an unknown side or TIF).
        Other = b'O',
        /// `K` (bourse): the limit price is outside the instrument's price collar.
        PriceCollar = b'K',
        /// `P` (bourse): a post-only order that would take liquidity.
        PostOnlyWouldCross = b'P',
        /// `F` (bourse): the session sent faster than its throttle allows.
        Throttled = b'F',
        /// `U` (bourse): the account already has its maximum number of open orders.
        OpenOrderLimit = b'U',
        /// `Y` (bourse): the engine's order capacity is full (a system limit, not the client's fault).
        CapacityFull = b'Y',
        /// `V` (bourse): a market order (price `0x7FFFFFFF`) that is not IOC, or a Replace to a market price.
        InvalidOrderType = b'V',
    }
}

letter_enum! {
    /// Why an order (or part of it) was canceled (OUCH `C` Canceled / `D` AIQ Canceled, Reason field).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    CancelReason {
        /// `U` (OUCH 4.2): the client asked (Cancel Order, or a Cancel reducing the size).
        UserRequested = b'U',
        /// `I` (OUCH 4.2): the unfilled part of an IOC, FOK or market order, or an unmet minimum quantity.
        ImmediateOrCancel = b'I',
        /// `T` (OUCH 4.2): the order's time in force expired.
        Timeout = b'T',
        /// `S` (OUCH 4.2): canceled by an operator (admin cancel, kill switch).
        Supervisory = b'S',
        /// `Q` (OUCH 4.2): self-trade prevention (sent as AIQ Canceled).
        SelfMatchPrevention = b'Q',
        /// `E` (OUCH 4.2 "Closed"): a day order canceled at end of day.
        Closed = b'E',
        /// `H` (OUCH 4.2): canceled because the instrument was halted.
        Halted = b'H',
        /// `K` (OUCH 4.2 "Market Collars"): the rest of a market order stopped at the price collar.
        MarketCollar = b'K',
        /// `L` (bourse): cancel-on-disconnect: the owning login's session ended.
        LoggedOff = b'L',
        /// `Z` (OUCH 4.2): a system cancel.
        System = b'Z',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_unique_and_round_trip() {
        for (i, a) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(RejectReason::from_code(a.code()), Some(*a));
            for b in &RejectReason::ALL[i + 1..] {
                assert_ne!(a.code(), b.code());
            }
        }
        for (i, a) in CancelReason::ALL.iter().enumerate() {
            assert_eq!(CancelReason::from_code(a.code()), Some(*a));
            for b in &CancelReason::ALL[i + 1..] {
                assert_ne!(a.code(), b.code());
            }
        }
        assert_eq!(RejectReason::from_code(b'?'), None);
        assert_eq!(CancelReason::from_code(b'?'), None);
    }
}
