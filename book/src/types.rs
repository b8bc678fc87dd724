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

/// Exact division of a `u32` by a divisor fixed at configuration time (tick and lot sizes), without a
/// hardware divide on the hot path: `q = (m × n) >> 64` with `m = ⌈2⁶⁴ / d⌉` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019: exact for every 32-bit `n` and `d`); `d = 1` is
/// the identity. A `div` costs tens of cycles on every Enter and Cancel; a 64 × 64 multiply a few.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Divisor {
    /// The divisor (≥ 1).
    d: u32,
    /// `⌈2⁶⁴ / d⌉`, or 0 for `d = 1`.
    m: u64,
}

impl Divisor {
    /// The divisor `d`.
    ///
    /// # Panics
    /// If `d` is 0 (configurations are validated: tick and lot sizes are ≥ 1).
    pub(crate) const fn new(d: u32) -> Self {
        assert!(d > 0, "divisor is 0");
        let m = if d == 1 { 0 } else { u64::MAX / d as u64 + 1 };
        Self { d, m }
    }

    /// `n / d` and `n % d`.
    #[inline]
    pub(crate) const fn div_rem(self, n: u32) -> (u32, u32) {
        if self.d == 1 {
            return (n, 0);
        }
        let q = ((self.m as u128 * n as u128) >> 64) as u32;
        (q, n - q * self.d)
    }

    /// `n / d`.
    #[inline]
    pub(crate) const fn div(self, n: u32) -> u32 {
        self.div_rem(n).0
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;

    /// SplitMix64: a deterministic stream of test values.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn divisor_matches_hardware_division() {
        let mut divisors = vec![
            1,
            2,
            3,
            5,
            7,
            10,
            100,
            641,
            10_000,
            65_537,
            u32::MAX - 1,
            u32::MAX,
        ];
        divisors.extend((0..32).map(|s| 1u32 << s));
        divisors.extend((0..32).map(|s| (1u32 << s).wrapping_sub(1).max(1)));
        let mut state = 7;
        divisors.extend((0..200).map(|_| (next(&mut state) as u32).max(1)));
        divisors.extend((0..200).map(|_| (next(&mut state) % 100_000) as u32 + 1));
        for d in divisors {
            let div = Divisor::new(d);
            let mut numerators = vec![
                0,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                u32::MAX,
                u32::MAX - 1,
                u32::MAX / d * d,
            ];
            numerators.extend((0..500).map(|_| next(&mut state) as u32));
            numerators.extend((0..100).map(|_| (next(&mut state) % 1_000_000) as u32));
            for n in numerators {
                assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
            }
        }
    }
}
