//! Integer newtypes of the engine: prices in ticks, sizes in lots, sides.
//!
//! The wire speaks OUCH price units (1/10000 dollar) and shares; each instrument converts with its own
//! tick and lot size ([`crate::config::InstrumentConfig`]). Keeping the two kinds apart in the type system
//! stops a price in ticks being compared with a price in dollars.

/// A price in ticks of one instrument (wire price = ticks × tick size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks(pub u32);

/// A size in lots of one instrument (shares = lots × lot size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lots(pub u32);

/// The side of the book an order rests on. OUCH sells `S`, short `T` and exempt `E` all match as [`Side::Sell`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bids.
    Buy,
    /// Offers.
    Sell,
}

impl Side {
    /// The side of an OUCH side letter, or `None` for a letter bourse does not accept.
    pub const fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'B' => Some(Self::Buy),
            b'S' | b'T' | b'E' => Some(Self::Sell),
            _ => None,
        }
    }

    /// The ITCH side letter (`B` or `S`).
    pub const fn itch_letter(self) -> u8 {
        match self {
            Self::Buy => b'B',
            Self::Sell => b'S',
        }
    }

    /// The other side.
    pub const fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }
}

/// Display values bourse honors (OUCH 4.2 Display field). Anything else is rejected `InvalidDisplay`.
pub mod display {
    /// `Y`: displayed, anonymous (ITCH Add Order `A`).
    pub const DISPLAYED: u8 = b'Y';
    /// `A`: displayed and attributed to the firm (ITCH Add Order with MPID `F`).
    pub const ATTRIBUTABLE: u8 = b'A';
    /// `P`: post-only, displayed anonymously; rejected if it would take liquidity.
    pub const POST_ONLY: u8 = b'P';

    /// True for a display value bourse accepts.
    pub const fn is_valid(value: u8) -> bool {
        matches!(value, DISPLAYED | ATTRIBUTABLE | POST_ONLY)
    }
}
