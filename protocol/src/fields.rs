//! Primitive field types shared by every message layout.
//!
//! - [`Alpha`]: a fixed-width ASCII field, left-justified and padded with spaces (OUCH, ITCH, SoupBinTCP).
//! - Prices on the wire are `u32` with 4 implied decimals ([`PRICE_SCALE`]); [`PRICE_MARKET`] marks a
//!   market order and [`PRICE_LIMIT_MAX`] is the largest limit price bourse accepts.
//!
//! Big-endian integers inside zerocopy layouts use [`zerocopy::byteorder::big_endian`] types directly.

use core::fmt;

/// Prices carry 4 implied decimal places: $150.25 is `1_502_500`.
pub const PRICE_SCALE: u32 = 10_000;
/// The special price $214,748.3647 (`0x7FFF_FFFF`): a market order (always IOC at bourse).
pub const PRICE_MARKET: u32 = 0x7FFF_FFFF;
/// The largest limit price bourse accepts: $199,999.9900 (`0x7735_939C`).
pub const PRICE_LIMIT_MAX: u32 = 0x7735_939C;

/// A fixed-width ASCII field of `N` bytes, left-justified and padded on the right with spaces.
///
/// The bytes are kept exactly as they travel; [`Alpha::trimmed`] gives the value without padding.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
    zerocopy::Unaligned,
)]
#[repr(transparent)]
pub struct Alpha<const N: usize>(pub [u8; N]);

impl<const N: usize> Alpha<N> {
    /// All spaces.
    pub const BLANK: Self = Self([b' '; N]);

    /// Pads `value` with spaces on the right. Returns `None` if it is longer than `N` bytes or not
    /// printable ASCII.
    pub fn new(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        if bytes.len() > N || !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            return None;
        }
        let mut out = [b' '; N];
        out[..bytes.len()].copy_from_slice(bytes);
        Some(Self(out))
    }

    /// The value without trailing spaces (leading spaces are kept: they are significant).
    pub fn trimmed(&self) -> &[u8] {
        let end = self.0.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        &self.0[..end]
    }

    /// True when every byte is a space.
    pub fn is_blank(&self) -> bool {
        self.0.iter().all(|&b| b == b' ')
    }

    /// The value as text, lossily, without trailing spaces; for logs and tables.
    pub fn as_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.trimmed())
    }
}

impl<const N: usize> Default for Alpha<N> {
    fn default() -> Self {
        Self::BLANK
    }
}

impl<const N: usize> fmt::Debug for Alpha<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str_lossy())
    }
}

impl<const N: usize> fmt::Display for Alpha<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str_lossy())
    }
}

/// OUCH order token: 14 bytes of client-chosen ASCII, day-unique per login.
pub type Token = Alpha<14>;
/// Instrument symbol (OUCH "Stock", ITCH "Stock"): 8 bytes.
pub type Symbol = Alpha<8>;
/// OUCH firm (bourse: the trading account) and ITCH attribution: 4 bytes.
pub type Firm = Alpha<4>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_pads_and_trims() {
        let s = Symbol::new("AAPL").unwrap();
        assert_eq!(&s.0, b"AAPL    ");
        assert_eq!(s.trimmed(), b"AAPL");
        assert!(Symbol::new("TOOLONGSYM").is_none());
        assert!(Symbol::new("BAD\u{7f}").is_none());
        assert!(Symbol::BLANK.is_blank());
        assert_eq!(Symbol::BLANK.trimmed(), b"");
    }

    #[test]
    fn price_constants_match_the_spec() {
        assert_eq!(PRICE_MARKET, 2_147_483_647);
        assert_eq!(PRICE_LIMIT_MAX, 1_999_999_900);
    }
}
