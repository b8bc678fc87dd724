//! OUCH 4.2 order-entry messages: fixed big-endian layouts, decoded in place and encoded without allocation.
//!
//! Byte tables: `docs/protocol.md` (OUCH 4.2 section). Every message is one SoupBinTCP payload: inbound
//! messages travel in Unsequenced Data (`U`), outbound ones in Sequenced Data (`S`).
//!
//! # Layout
//! Each message is a `#[repr(C)]` zerocopy struct whose size is asserted against the spec
//! (`const _: () = assert!(size_of::<T>() == N)`): integers are `big_endian::U32`/`U64`, alpha fields are
//! [`Alpha`](crate::fields::Alpha) ([`Token`], [`Symbol`], [`Firm`]), and the one-letter code fields bourse acts
//! on are `#[repr(u8)]` enums ([`Side`], [`Display`], [`EventCode`], [`OrderState`], [`LiquidityFlag`],
//! [`BrokenTradeReason`]), so a decoded message's fields are typed and valid by construction. The code fields
//! `docs/protocol.md` says bourse takes as *any byte* and echoes (Capacity, Intermarket Sweep Eligibility, Cross
//! Type, Customer Type) are raw `u8`; [`Capacity`], [`IntermarketSweep`], [`CrossType`] and [`CustomerType`] name
//! their OUCH letters. Reject and cancel reasons are raw bytes holding a [`RejectReason`] or [`CancelReason`]
//! letter (accessors `reason()`), checked on decode.
//!
//! | Dir | Type | Message          | Size |
//! |-----|------|------------------|------|
//! | in  | `O`  | [`EnterOrder`]   | 49   |
//! | in  | `U`  | [`ReplaceOrder`] | 47   |
//! | in  | `X`  | [`CancelOrder`]  | 19   |
//! | in  | `M`  | [`ModifyOrder`]  | 20   |
//! | out | `S`  | [`SystemEvent`]  | 10   |
//! | out | `A`  | [`Accepted`]     | 66   |
//! | out | `U`  | [`Replaced`]     | 80   |
//! | out | `C`  | [`Canceled`]     | 28   |
//! | out | `D`  | [`AiqCanceled`]  | 37   |
//! | out | `E`  | [`Executed`]     | 40   |
//! | out | `B`  | [`BrokenTrade`]  | 32   |
//! | out | `K`  | [`PriceCorrection`] | 36 |
//! | out | `J`  | [`Rejected`]     | 24   |
//! | out | `P`  | [`CancelPending`] | 23  |
//! | out | `I`  | [`CancelReject`] | 23   |
//! | out | `M`  | [`OrderModified`] | 28  |
//!
//! # Decoding
//! [`Inbound::decode`] and [`Outbound::decode`] borrow the message in place (no copy) after checking, in
//! order: a type byte is present ([`DecodeError::Empty`]), the type is known for the direction
//! ([`DecodeError::UnknownType`]), the length is exactly the type's size ([`DecodeError::Truncated`] when
//! shorter, [`DecodeError::WrongLength`] when longer), and every code field holds a letter OUCH 4.2 defines
//! ([`DecodeError::InvalidField`], which carries the order token so the engine can answer with a Rejected whose
//! reason is [`InvalidField::reject_reason`]; [`DecodeError::rejection`] gives both, and is `None` for the
//! errors a server answers with a disconnect). Each message type also has [`Message::decode`]. Decoding never
//! panics. Owned copies are plain `Copy` values: `*view`, or [`Inbound::to_message`] / [`Outbound::to_message`].
//!
//! # Encoding
//! Constructors take typed values (`Rejected::new` takes a [`RejectReason`], `Canceled::new` a
//! [`CancelReason`]); [`Message::encode`] writes the bytes into the caller's buffer and returns the length;
//! [`Message::encode_in_place`] writes the same bytes field by field straight into the caller's buffer (no
//! stack image of the message first; measured as fast as `encode`, not faster); [`Message::as_wire`] gives the
//! bytes in place.
//!
//! # Limits
//! Prices are `u32` with 4 implied decimals ([`crate::fields::PRICE_SCALE`]); time in force is seconds. The
//! meaning bourse gives each field (TIF values, market price, FOK, Firm) belongs to `docs/protocol.md` and the
//! book, not to this module.

use core::mem::{offset_of, size_of};

use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout, TryFromBytes, Unaligned};

use crate::fields::{Firm, Symbol, Token};
use crate::reason::{CancelReason, RejectReason};
use crate::write_field;

/// The size of the largest OUCH 4.2 message ([`Replaced`]); a buffer of this size holds any of them.
pub const MESSAGE_LEN_MAX: usize = 80;

/// OUCH letter fields: [`letter_enum!`] plus the zerocopy derives that let a layout hold them directly.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($body:tt)* }) => {
        letter_enum! {
            $(#[$meta])*
            #[derive(
                Clone, Copy, Debug, PartialEq, Eq, Hash, TryFromBytes, IntoBytes, KnownLayout, Immutable,
                Unaligned,
            )]
            $name { $($body)* }
        }
    };
}

code_enum! {
    /// Buy/Sell Indicator.
    Side {
        /// `B` buy.
        Buy = b'B',
        /// `S` sell (long).
        Sell = b'S',
        /// `T` sell short.
        SellShort = b'T',
        /// `E` sell short exempt.
        SellShortExempt = b'E',
    }
}

impl Side {
    /// True for the three sell types.
    pub const fn is_sell(self) -> bool {
        !matches!(self, Self::Buy)
    }
}

code_enum! {
    /// Display (OUCH 4.2 letters; which ones bourse honors is in `docs/protocol.md`).
    Display {
        /// `A` attributable, price to display.
        Attributable = b'A',
        /// `Y` anonymous, price to comply.
        Anonymous = b'Y',
        /// `N` non-display.
        NonDisplay = b'N',
        /// `P` post-only.
        PostOnly = b'P',
        /// `I` imbalance-only.
        ImbalanceOnly = b'I',
        /// `M` mid-point peg.
        MidpointPeg = b'M',
        /// `W` mid-point peg, post-only.
        MidpointPegPostOnly = b'W',
        /// `L` post-only and attributable, price to display.
        PostOnlyAttributable = b'L',
        /// `O` retail order type 1.
        RetailOrderType1 = b'O',
        /// `T` retail order type 2.
        RetailOrderType2 = b'T',
        /// `Q` retail price improvement.
        RetailPriceImprovement = b'Q',
        /// `R` round-lot only.
        RoundLotOnly = b'R',
    }
}

code_enum! {
    /// Capacity.
    Capacity {
        /// `A` agency.
        Agency = b'A',
        /// `P` principal.
        Principal = b'P',
        /// `R` riskless principal.
        Riskless = b'R',
        /// `O` other.
        Other = b'O',
    }
}

code_enum! {
    /// Intermarket Sweep Eligibility.
    IntermarketSweep {
        /// `Y` eligible.
        Eligible = b'Y',
        /// `N` not eligible.
        NotEligible = b'N',
    }
}

code_enum! {
    /// Cross Type.
    CrossType {
        /// `N` continuous market, no cross.
        NoCross = b'N',
        /// `O` opening cross.
        Opening = b'O',
        /// `C` closing cross.
        Closing = b'C',
        /// `I` intraday cross.
        Intraday = b'I',
        /// `H` halt/IPO cross.
        HaltIpo = b'H',
        /// `S` supplemental order.
        Supplemental = b'S',
        /// `R` retail.
        Retail = b'R',
    }
}

code_enum! {
    /// Customer Type (Enter Order only).
    CustomerType {
        /// `R` retail designated order.
        Retail = b'R',
        /// `N` not a retail designated order.
        NotRetail = b'N',
        /// ` ` the port's default.
        PortDefault = b' ',
    }
}

code_enum! {
    /// System Event code.
    EventCode {
        /// `S` start of day.
        StartOfDay = b'S',
        /// `E` end of day.
        EndOfDay = b'E',
    }
}

code_enum! {
    /// Order State in Accepted and Replaced.
    OrderState {
        /// `L` the order is live (resting or still working).
        Live = b'L',
        /// `D` the order is already dead (for example a fully executed or canceled IOC).
        Dead = b'D',
    }
}

code_enum! {
    /// Liquidity Flag of an execution (the letters bourse sends).
    LiquidityFlag {
        /// `A` added liquidity (the resting order).
        Added = b'A',
        /// `R` removed liquidity (the incoming order).
        Removed = b'R',
    }
}

code_enum! {
    /// Reason of a Broken Trade or Price Correction.
    BrokenTradeReason {
        /// `E` erroneous.
        Erroneous = b'E',
        /// `C` consent.
        Consent = b'C',
        /// `S` supervisory.
        Supervisory = b'S',
        /// `X` external.
        External = b'X',
    }
}

/// A code field with a letter OUCH 4.2 does not define for it (the byte is carried).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InvalidField {
    /// Buy/Sell Indicator.
    #[error("bad side {0:#04x}")]
    Side(u8),
    /// Display.
    #[error("bad display {0:#04x}")]
    Display(u8),
    /// System Event code.
    #[error("bad event code {0:#04x}")]
    EventCode(u8),
    /// Order State.
    #[error("bad order state {0:#04x}")]
    OrderState(u8),
    /// Liquidity Flag.
    #[error("bad liquidity flag {0:#04x}")]
    LiquidityFlag(u8),
    /// Broken Trade or Price Correction reason.
    #[error("bad broken trade reason {0:#04x}")]
    BrokenTradeReason(u8),
    /// Rejected reason: not a [`RejectReason`] letter.
    #[error("bad reject reason {0:#04x}")]
    RejectReason(u8),
    /// Canceled / AIQ Canceled reason: not a [`CancelReason`] letter.
    #[error("bad cancel reason {0:#04x}")]
    CancelReason(u8),
    /// The layout check failed without naming a field: a bug in this module, never expected (the fuzz check
    /// asserts it does not happen).
    #[error("invalid field (unexplained)")]
    Unexplained,
}

impl InvalidField {
    /// The Rejected reason for an inbound message with this field: [`RejectReason::InvalidDisplay`] for a bad
    /// Display, [`RejectReason::Other`] for everything else.
    pub const fn reject_reason(self) -> RejectReason {
        match self {
            Self::Display(_) => RejectReason::InvalidDisplay,
            _ => RejectReason::Other,
        }
    }
}

/// Why bytes are not a valid OUCH 4.2 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty message")]
    Empty,
    /// A type byte that is not an OUCH 4.2 message in this direction.
    #[error("unknown message type {message_type:#04x}")]
    UnknownType {
        /// The type byte.
        message_type: u8,
    },
    /// Fewer bytes than the type's size.
    #[error("message type {message_type:#04x} truncated: {length} of {expected} bytes")]
    Truncated {
        /// The type byte.
        message_type: u8,
        /// Bytes present.
        length: usize,
        /// The type's size.
        expected: usize,
    },
    /// More bytes than the type's size.
    #[error("message type {message_type:#04x} has {length} bytes, expected {expected}")]
    WrongLength {
        /// The type byte.
        message_type: u8,
        /// Bytes present.
        length: usize,
        /// The type's size.
        expected: usize,
    },
    /// The layout is right but a code field holds an undefined letter.
    #[error("message type {message_type:#04x}, token {token}: {field}")]
    InvalidField {
        /// The type byte.
        message_type: u8,
        /// The order token a Rejected would name (the replacement token of a Replace Order).
        token: Token,
        /// The field and its byte.
        field: InvalidField,
    },
}

impl DecodeError {
    /// For an inbound message whose layout is sound but whose field is not, the token and the reason a
    /// Rejected should carry; `None` for errors with no trustworthy token (bourse disconnects on those). For a
    /// Modify Order (`message_type` `M`, a bad side letter) bourse answers Cancel Reject instead
    /// (`docs/protocol.md`, IR-55).
    pub const fn rejection(&self) -> Option<(Token, RejectReason)> {
        match *self {
            Self::InvalidField { token, field, .. } => Some((token, field.reject_reason())),
            _ => None,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("buffer of {available} bytes, message needs {needed}")]
pub struct EncodeError {
    /// Bytes the message needs.
    pub needed: usize,
    /// Bytes the caller gave.
    pub available: usize,
}

/// Implements [`Message::encode_in_place`] for a layout from the list of its fields: the message is
/// destructured without `..`, so a field missing from the list is a compile error, and each field is written
/// at its `offset_of!` into a fixed-size view of the output (constant offsets: no bounds check survives).
macro_rules! encode_in_place {
    ($name:ident { $($field:ident),+ $(,)? }) => {
        #[inline]
        fn encode_in_place(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
            let available = out.len();
            let Some(dst) = out.first_chunk_mut::<{ size_of::<$name>() }>() else {
                return Err(EncodeError {
                    needed: Self::LEN,
                    available,
                });
            };
            let $name { $($field),+ } = self;
            $( write_field(dst, offset_of!($name, $field), $field.as_bytes()); )+
            Ok(size_of::<$name>())
        }
    };
}

/// What every OUCH 4.2 message layout offers.
pub trait Message: TryFromBytes + IntoBytes + KnownLayout + Immutable + Unaligned + Copy {
    /// The type byte.
    const MESSAGE_TYPE: u8;
    /// The size on the wire, type byte included.
    const LEN: usize = size_of::<Self>();

    /// Offset of the token [`Message::token`] returns, `None` for a message without one (System Event).
    const TOKEN_OFFSET: Option<usize>;

    /// The order token the message is about (for a Replace Order, the replacement token; blank for a System
    /// Event).
    fn token(&self) -> Token;

    /// Checks the fields the layout keeps as raw bytes (reason letters); the default has none.
    ///
    /// # Errors
    /// The first field with an undefined letter.
    fn check_raw_fields(&self) -> Result<(), InvalidField> {
        Ok(())
    }

    /// Names the invalid code field of bytes of the right type and length that failed the layout check.
    fn diagnose(bytes: &[u8]) -> Option<InvalidField>;

    /// The message's bytes, in place.
    fn as_wire(&self) -> &[u8] {
        self.as_bytes()
    }

    /// Writes the message to the front of `out` and returns its length ([`Message::LEN`]).
    ///
    /// # Errors
    /// [`EncodeError`] if `out` is shorter than the message.
    #[inline]
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let available = out.len();
        match out.get_mut(..Self::LEN) {
            Some(dst) => {
                dst.copy_from_slice(self.as_bytes());
                Ok(Self::LEN)
            }
            None => Err(EncodeError {
                needed: Self::LEN,
                available,
            }),
        }
    }

    /// Writes the message to the front of `out` field by field, each field stored straight at its offset, and
    /// returns its length ([`Message::LEN`]): the same bytes as [`Message::encode`]. With the constructor
    /// inlined (`Executed::new(..).encode_in_place(out)`) no image of the message is built on the stack and
    /// copied out. Measured (`docs/PERFORMANCE.md`, "Protocol"): as fast as `encode` within the noise for Enter
    /// Order and Executed, both about 3.5x to 4x a copy: a store per field costs what the stack image did.
    ///
    /// # Errors
    /// [`EncodeError`] if `out` is shorter than the message; nothing is written then.
    fn encode_in_place(&self, out: &mut [u8]) -> Result<usize, EncodeError>;

    /// Decodes `bytes` in place as this message type (type byte, exact length, valid codes).
    ///
    /// # Errors
    /// [`DecodeError::Empty`], [`DecodeError::UnknownType`] for another type byte, [`DecodeError::Truncated`],
    /// [`DecodeError::WrongLength`], [`DecodeError::InvalidField`].
    fn decode(bytes: &[u8]) -> Result<&Self, DecodeError> {
        let (&message_type, _) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if message_type != Self::MESSAGE_TYPE {
            return Err(DecodeError::UnknownType { message_type });
        }
        let length = bytes.len();
        let expected = Self::LEN;
        if length < expected {
            return Err(DecodeError::Truncated {
                message_type,
                length,
                expected,
            });
        }
        if length > expected {
            return Err(DecodeError::WrongLength {
                message_type,
                length,
                expected,
            });
        }
        let invalid = |message: Option<&Self>, field| DecodeError::InvalidField {
            message_type,
            token: message.map_or_else(
                || Self::TOKEN_OFFSET.map_or(Token::BLANK, |at| token_at(bytes, at)),
                Message::token,
            ),
            field,
        };
        match Self::try_ref_from_bytes(bytes) {
            Ok(message) => message
                .check_raw_fields()
                .map(|()| message)
                .map_err(|f| invalid(Some(message), f)),
            Err(_) => Err(invalid(
                None,
                Self::diagnose(bytes).unwrap_or(InvalidField::Unexplained),
            )),
        }
    }
}

/// The 14-byte token at `offset` of bytes whose length was checked.
fn token_at(bytes: &[u8], offset: usize) -> Token {
    let mut token = Token::BLANK;
    if let Some(src) = bytes.get(offset..offset + 14) {
        token.0.copy_from_slice(src);
    }
    token
}

/// Checks one code field of raw bytes at `offset` with the enum's `from_code`.
fn check(
    bytes: &[u8],
    offset: usize,
    valid: fn(u8) -> bool,
    field: fn(u8) -> InvalidField,
) -> Option<InvalidField> {
    let byte = bytes.get(offset).copied().unwrap_or(0);
    (!valid(byte)).then(|| field(byte))
}

macro_rules! diagnose {
    ($bytes:expr, $ty:ty, [$($field:ident: $code:ident),+ $(,)?]) => {{
        let bytes: &[u8] = $bytes;
        None
            $(.or_else(|| check(
                bytes,
                offset_of!($ty, $field),
                |b| $code::from_code(b).is_some(),
                InvalidField::$code,
            )))+

    }};
}

/// The order terms shared by Enter Order, Accepted and Replaced, as typed values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderTerms {
    /// Buy/Sell Indicator.
    pub side: Side,
    /// Shares.
    pub shares: u32,
    /// Stock.
    pub stock: Symbol,
    /// Price, 4 implied decimals.
    pub price: u32,
    /// Time in force in seconds (0 = IOC, 99998 market hours, 99999 system hours).
    pub time_in_force: u32,
    /// Firm.
    pub firm: Firm,
    /// Display.
    pub display: Display,
    /// Capacity: any byte, echoed (letters in [`Capacity`]).
    pub capacity: u8,
    /// Intermarket Sweep Eligibility: any byte, echoed (letters in [`IntermarketSweep`]).
    pub intermarket_sweep: u8,
    /// Minimum Quantity.
    pub minimum_quantity: u32,
    /// Cross Type: any byte, echoed (letters in [`CrossType`]).
    pub cross_type: u8,
}

/// `terms()` for the three messages that carry the full order terms under the same field names.
macro_rules! impl_terms {
    ($($ty:ident),+) => {$(
        impl $ty {
            /// The order terms as typed values.
            pub fn terms(&self) -> OrderTerms {
                OrderTerms {
                    side: self.side,
                    shares: self.shares.get(),
                    stock: self.stock,
                    price: self.price.get(),
                    time_in_force: self.time_in_force.get(),
                    firm: self.firm,
                    display: self.display,
                    capacity: self.capacity,
                    intermarket_sweep: self.intermarket_sweep,
                    minimum_quantity: self.minimum_quantity.get(),
                    cross_type: self.cross_type,
                }
            }
        }
    )+};
}

impl_terms!(EnterOrder, Accepted, Replaced);

// ---------------------------------------------------------------------------------------------------------
// Inbound
// ---------------------------------------------------------------------------------------------------------

/// `O` Enter Order, 49 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EnterOrder {
    /// `O`.
    pub message_type: u8,
    /// Order Token.
    pub order_token: Token,
    /// Buy/Sell Indicator.
    pub side: Side,
    /// Shares.
    pub shares: U32,
    /// Stock.
    pub stock: Symbol,
    /// Price, 4 implied decimals.
    pub price: U32,
    /// Time in Force, seconds.
    pub time_in_force: U32,
    /// Firm.
    pub firm: Firm,
    /// Display.
    pub display: Display,
    /// Capacity: any byte, echoed (letters in [`Capacity`]).
    pub capacity: u8,
    /// Intermarket Sweep Eligibility: any byte, echoed (letters in [`IntermarketSweep`]).
    pub intermarket_sweep: u8,
    /// Minimum Quantity.
    pub minimum_quantity: U32,
    /// Cross Type: any byte, echoed (letters in [`CrossType`]).
    pub cross_type: u8,
    /// Customer Type: any byte (letters in [`CustomerType`]).
    pub customer_type: u8,
}
const _: () = assert!(size_of::<EnterOrder>() == 49);

impl EnterOrder {
    /// An Enter Order for `terms`.
    #[inline]
    pub fn new(order_token: Token, terms: &OrderTerms, customer_type: u8) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            order_token,
            side: terms.side,
            shares: terms.shares.into(),
            stock: terms.stock,
            price: terms.price.into(),
            time_in_force: terms.time_in_force.into(),
            firm: terms.firm,
            display: terms.display,
            capacity: terms.capacity,
            intermarket_sweep: terms.intermarket_sweep,
            minimum_quantity: terms.minimum_quantity.into(),
            cross_type: terms.cross_type,
            customer_type,
        }
    }
}

impl Message for EnterOrder {
    const MESSAGE_TYPE: u8 = b'O';
    encode_in_place!(EnterOrder {
        message_type,
        order_token,
        side,
        shares,
        stock,
        price,
        time_in_force,
        firm,
        display,
        capacity,
        intermarket_sweep,
        minimum_quantity,
        cross_type,
        customer_type
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(EnterOrder, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, EnterOrder, [
            side: Side, display: Display,
        ])
    }
}

/// `U` Replace Order, 47 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReplaceOrder {
    /// `U`.
    pub message_type: u8,
    /// Existing Order Token: the order to replace.
    pub existing_order_token: Token,
    /// Replacement Order Token: the new order's token.
    pub replacement_order_token: Token,
    /// Shares of the replacement.
    pub shares: U32,
    /// Price, 4 implied decimals.
    pub price: U32,
    /// Time in Force, seconds.
    pub time_in_force: U32,
    /// Display.
    pub display: Display,
    /// Intermarket Sweep Eligibility: any byte, echoed (letters in [`IntermarketSweep`]).
    pub intermarket_sweep: u8,
    /// Minimum Quantity.
    pub minimum_quantity: U32,
}
const _: () = assert!(size_of::<ReplaceOrder>() == 47);

impl ReplaceOrder {
    /// A Replace Order.
    #[allow(clippy::too_many_arguments)] // one argument per wire field, in wire order
    #[inline]
    pub fn new(
        existing_order_token: Token,
        replacement_order_token: Token,
        shares: u32,
        price: u32,
        time_in_force: u32,
        display: Display,
        intermarket_sweep: u8,
        minimum_quantity: u32,
    ) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            existing_order_token,
            replacement_order_token,
            shares: shares.into(),
            price: price.into(),
            time_in_force: time_in_force.into(),
            display,
            intermarket_sweep,
            minimum_quantity: minimum_quantity.into(),
        }
    }
}

impl Message for ReplaceOrder {
    const MESSAGE_TYPE: u8 = b'U';
    encode_in_place!(ReplaceOrder {
        message_type,
        existing_order_token,
        replacement_order_token,
        shares,
        price,
        time_in_force,
        display,
        intermarket_sweep,
        minimum_quantity
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(ReplaceOrder, replacement_order_token));
    fn token(&self) -> Token {
        self.replacement_order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, ReplaceOrder, [display: Display])
    }
}

/// `X` Cancel Order, 19 bytes. Shares is the new intended size (0 cancels the whole order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CancelOrder {
    /// `X`.
    pub message_type: u8,
    /// Order Token.
    pub order_token: Token,
    /// Shares: the new intended size.
    pub shares: U32,
}
const _: () = assert!(size_of::<CancelOrder>() == 19);

impl CancelOrder {
    /// A Cancel Order down to `shares` (0 = cancel all).
    #[inline]
    pub fn new(order_token: Token, shares: u32) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            order_token,
            shares: shares.into(),
        }
    }
}

impl Message for CancelOrder {
    const MESSAGE_TYPE: u8 = b'X';
    encode_in_place!(CancelOrder {
        message_type,
        order_token,
        shares
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(CancelOrder, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(_: &[u8]) -> Option<InvalidField> {
        None // every byte pattern is a valid Cancel Order
    }
}

/// `M` Modify Order, 20 bytes: reduce size, or switch between sell types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ModifyOrder {
    /// `M`.
    pub message_type: u8,
    /// Order Token.
    pub order_token: Token,
    /// Buy/Sell Indicator.
    pub side: Side,
    /// Shares: the new size.
    pub shares: U32,
}
const _: () = assert!(size_of::<ModifyOrder>() == 20);

impl ModifyOrder {
    /// A Modify Order.
    #[inline]
    pub fn new(order_token: Token, side: Side, shares: u32) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            order_token,
            side,
            shares: shares.into(),
        }
    }
}

impl Message for ModifyOrder {
    const MESSAGE_TYPE: u8 = b'M';
    encode_in_place!(ModifyOrder {
        message_type,
        order_token,
        side,
        shares
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(ModifyOrder, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, ModifyOrder, [side: Side])
    }
}

/// An inbound (client to exchange) message, borrowed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// `O`.
    EnterOrder(&'a EnterOrder),
    /// `U`.
    ReplaceOrder(&'a ReplaceOrder),
    /// `X`.
    CancelOrder(&'a CancelOrder),
    /// `M`.
    ModifyOrder(&'a ModifyOrder),
}

/// An owned copy of an inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundMessage {
    /// `O`.
    EnterOrder(EnterOrder),
    /// `U`.
    ReplaceOrder(ReplaceOrder),
    /// `X`.
    CancelOrder(CancelOrder),
    /// `M`.
    ModifyOrder(ModifyOrder),
}

impl<'a> Inbound<'a> {
    /// Decodes one inbound message (the payload of a SoupBinTCP Unsequenced Data packet) in place.
    ///
    /// # Errors
    /// See [`Message::decode`]; [`DecodeError::UnknownType`] for a type that is not `O`, `U`, `X` or `M`.
    #[inline]
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let &message_type = bytes.first().ok_or(DecodeError::Empty)?;
        Ok(match message_type {
            b'O' => Self::EnterOrder(EnterOrder::decode(bytes)?),
            b'U' => Self::ReplaceOrder(ReplaceOrder::decode(bytes)?),
            b'X' => Self::CancelOrder(CancelOrder::decode(bytes)?),
            b'M' => Self::ModifyOrder(ModifyOrder::decode(bytes)?),
            _ => return Err(DecodeError::UnknownType { message_type }),
        })
    }

    /// The message's bytes, in place.
    pub fn as_wire(&self) -> &'a [u8] {
        match *self {
            Self::EnterOrder(m) => m.as_bytes(),
            Self::ReplaceOrder(m) => m.as_bytes(),
            Self::CancelOrder(m) => m.as_bytes(),
            Self::ModifyOrder(m) => m.as_bytes(),
        }
    }

    /// The order token (for a Replace Order, the replacement token).
    pub fn token(&self) -> Token {
        match *self {
            Self::EnterOrder(m) => m.token(),
            Self::ReplaceOrder(m) => m.token(),
            Self::CancelOrder(m) => m.token(),
            Self::ModifyOrder(m) => m.token(),
        }
    }

    /// An owned copy.
    pub fn to_message(&self) -> InboundMessage {
        match *self {
            Self::EnterOrder(m) => InboundMessage::EnterOrder(*m),
            Self::ReplaceOrder(m) => InboundMessage::ReplaceOrder(*m),
            Self::CancelOrder(m) => InboundMessage::CancelOrder(*m),
            Self::ModifyOrder(m) => InboundMessage::ModifyOrder(*m),
        }
    }
}

impl InboundMessage {
    /// A borrowed view of this copy.
    pub fn as_inbound(&self) -> Inbound<'_> {
        match self {
            Self::EnterOrder(m) => Inbound::EnterOrder(m),
            Self::ReplaceOrder(m) => Inbound::ReplaceOrder(m),
            Self::CancelOrder(m) => Inbound::CancelOrder(m),
            Self::ModifyOrder(m) => Inbound::ModifyOrder(m),
        }
    }

    /// The order token (for a Replace Order, the replacement token).
    pub fn token(&self) -> Token {
        match self {
            Self::EnterOrder(m) => m.token(),
            Self::ReplaceOrder(m) => m.token(),
            Self::CancelOrder(m) => m.token(),
            Self::ModifyOrder(m) => m.token(),
        }
    }

    /// Writes the message to the front of `out` and returns its length.
    ///
    /// # Errors
    /// [`EncodeError`] if `out` is too short.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Self::EnterOrder(m) => m.encode(out),
            Self::ReplaceOrder(m) => m.encode(out),
            Self::CancelOrder(m) => m.encode(out),
            Self::ModifyOrder(m) => m.encode(out),
        }
    }

    /// [`InboundMessage::encode`] field by field ([`Message::encode_in_place`]): the same bytes.
    ///
    /// # Errors
    /// [`EncodeError`] if `out` is too short.
    #[inline]
    pub fn encode_in_place(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Self::EnterOrder(m) => m.encode_in_place(out),
            Self::ReplaceOrder(m) => m.encode_in_place(out),
            Self::CancelOrder(m) => m.encode_in_place(out),
            Self::ModifyOrder(m) => m.encode_in_place(out),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------------------------------------

/// `S` System Event, 10 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SystemEvent {
    /// `S`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Event Code.
    pub event_code: EventCode,
}
const _: () = assert!(size_of::<SystemEvent>() == 10);

impl SystemEvent {
    /// A System Event.
    #[inline]
    pub fn new(timestamp_ns: u64, event_code: EventCode) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            event_code,
        }
    }
}

impl Message for SystemEvent {
    const MESSAGE_TYPE: u8 = b'S';
    encode_in_place!(SystemEvent {
        message_type,
        timestamp_ns,
        event_code
    });
    const TOKEN_OFFSET: Option<usize> = None;
    fn token(&self) -> Token {
        Token::BLANK
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, SystemEvent, [event_code: EventCode])
    }
}

/// `A` Accepted, 66 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Accepted {
    /// `A`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Buy/Sell Indicator.
    pub side: Side,
    /// Shares.
    pub shares: U32,
    /// Stock.
    pub stock: Symbol,
    /// Price, 4 implied decimals.
    pub price: U32,
    /// Time in Force, seconds.
    pub time_in_force: U32,
    /// Firm.
    pub firm: Firm,
    /// Display.
    pub display: Display,
    /// Order Reference Number (bourse: equals the ITCH order reference).
    pub order_reference_number: U64,
    /// Capacity: any byte, echoed (letters in [`Capacity`]).
    pub capacity: u8,
    /// Intermarket Sweep Eligibility: any byte, echoed (letters in [`IntermarketSweep`]).
    pub intermarket_sweep: u8,
    /// Minimum Quantity.
    pub minimum_quantity: U32,
    /// Cross Type: any byte, echoed (letters in [`CrossType`]).
    pub cross_type: u8,
    /// Order State.
    pub order_state: OrderState,
    /// BBO Weight Indicator (bourse sends a space: unspecified).
    pub bbo_weight_indicator: u8,
}
const _: () = assert!(size_of::<Accepted>() == 66);

impl Accepted {
    /// An Accepted echoing `terms`, with BBO Weight Indicator blank.
    #[inline]
    pub fn new(
        timestamp_ns: u64,
        order_token: Token,
        terms: &OrderTerms,
        order_reference_number: u64,
        order_state: OrderState,
    ) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            side: terms.side,
            shares: terms.shares.into(),
            stock: terms.stock,
            price: terms.price.into(),
            time_in_force: terms.time_in_force.into(),
            firm: terms.firm,
            display: terms.display,
            order_reference_number: order_reference_number.into(),
            capacity: terms.capacity,
            intermarket_sweep: terms.intermarket_sweep,
            minimum_quantity: terms.minimum_quantity.into(),
            cross_type: terms.cross_type,
            order_state,
            bbo_weight_indicator: b' ',
        }
    }
}

impl Message for Accepted {
    const MESSAGE_TYPE: u8 = b'A';
    encode_in_place!(Accepted {
        message_type,
        timestamp_ns,
        order_token,
        side,
        shares,
        stock,
        price,
        time_in_force,
        firm,
        display,
        order_reference_number,
        capacity,
        intermarket_sweep,
        minimum_quantity,
        cross_type,
        order_state,
        bbo_weight_indicator
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(Accepted, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, Accepted, [
            side: Side, display: Display, order_state: OrderState,
        ])
    }
}

/// `U` Replaced, 80 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Replaced {
    /// `U`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Replacement Order Token.
    pub replacement_order_token: Token,
    /// Buy/Sell Indicator.
    pub side: Side,
    /// Shares.
    pub shares: U32,
    /// Stock.
    pub stock: Symbol,
    /// Price, 4 implied decimals.
    pub price: U32,
    /// Time in Force, seconds.
    pub time_in_force: U32,
    /// Firm.
    pub firm: Firm,
    /// Display.
    pub display: Display,
    /// Order Reference Number of the replacement.
    pub order_reference_number: U64,
    /// Capacity: any byte, echoed (letters in [`Capacity`]).
    pub capacity: u8,
    /// Intermarket Sweep Eligibility: any byte, echoed (letters in [`IntermarketSweep`]).
    pub intermarket_sweep: u8,
    /// Minimum Quantity.
    pub minimum_quantity: U32,
    /// Cross Type: any byte, echoed (letters in [`CrossType`]).
    pub cross_type: u8,
    /// Order State.
    pub order_state: OrderState,
    /// Previous Order Token: the replaced order.
    pub previous_order_token: Token,
    /// BBO Weight Indicator (bourse sends a space: unspecified).
    pub bbo_weight_indicator: u8,
}
const _: () = assert!(size_of::<Replaced>() == 80);
const _: () = assert!(MESSAGE_LEN_MAX == size_of::<Replaced>());

impl Replaced {
    /// A Replaced echoing `terms`, with BBO Weight Indicator blank.
    #[inline]
    pub fn new(
        timestamp_ns: u64,
        replacement_order_token: Token,
        terms: &OrderTerms,
        order_reference_number: u64,
        order_state: OrderState,
        previous_order_token: Token,
    ) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            replacement_order_token,
            side: terms.side,
            shares: terms.shares.into(),
            stock: terms.stock,
            price: terms.price.into(),
            time_in_force: terms.time_in_force.into(),
            firm: terms.firm,
            display: terms.display,
            order_reference_number: order_reference_number.into(),
            capacity: terms.capacity,
            intermarket_sweep: terms.intermarket_sweep,
            minimum_quantity: terms.minimum_quantity.into(),
            cross_type: terms.cross_type,
            order_state,
            previous_order_token,
            bbo_weight_indicator: b' ',
        }
    }
}

impl Message for Replaced {
    const MESSAGE_TYPE: u8 = b'U';
    encode_in_place!(Replaced {
        message_type,
        timestamp_ns,
        replacement_order_token,
        side,
        shares,
        stock,
        price,
        time_in_force,
        firm,
        display,
        order_reference_number,
        capacity,
        intermarket_sweep,
        minimum_quantity,
        cross_type,
        order_state,
        previous_order_token,
        bbo_weight_indicator
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(Replaced, replacement_order_token));
    fn token(&self) -> Token {
        self.replacement_order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, Replaced, [
            side: Side, display: Display, order_state: OrderState,
        ])
    }
}

/// `C` Canceled, 28 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Canceled {
    /// `C`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Decrement Shares: shares taken off the order.
    pub decrement_shares: U32,
    /// Reason: a [`CancelReason`] letter; see [`Canceled::reason`].
    pub reason: u8,
}
const _: () = assert!(size_of::<Canceled>() == 28);

impl Canceled {
    /// A Canceled.
    #[inline]
    pub fn new(timestamp_ns: u64, order_token: Token, decrement_shares: u32, reason: CancelReason) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            decrement_shares: decrement_shares.into(),
            reason: reason.code(),
        }
    }

    /// The reason; `Some` for every decoded message.
    pub fn reason(&self) -> Option<CancelReason> {
        CancelReason::from_code(self.reason)
    }
}

impl Message for Canceled {
    const MESSAGE_TYPE: u8 = b'C';
    encode_in_place!(Canceled {
        message_type,
        timestamp_ns,
        order_token,
        decrement_shares,
        reason
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(Canceled, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn check_raw_fields(&self) -> Result<(), InvalidField> {
        self.reason()
            .map(drop)
            .ok_or(InvalidField::CancelReason(self.reason))
    }
    fn diagnose(_: &[u8]) -> Option<InvalidField> {
        None // the reason is a raw byte, checked by `check_raw_fields`
    }
}

/// `D` AIQ Canceled, 37 bytes (bourse: self-trade prevention cancels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct AiqCanceled {
    /// `D`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Decrement Shares: shares taken off the order.
    pub decrement_shares: U32,
    /// Reason: a [`CancelReason`] letter; see [`AiqCanceled::reason`].
    pub reason: u8,
    /// Quantity Prevented from Trading.
    pub quantity_prevented_from_trading: U32,
    /// Execution Price (the price at which it would have traded), 4 implied decimals.
    pub execution_price: U32,
    /// Liquidity Flag.
    pub liquidity_flag: LiquidityFlag,
}
const _: () = assert!(size_of::<AiqCanceled>() == 37);

impl AiqCanceled {
    /// An AIQ Canceled.
    #[inline]
    pub fn new(
        timestamp_ns: u64,
        order_token: Token,
        decrement_shares: u32,
        reason: CancelReason,
        quantity_prevented_from_trading: u32,
        execution_price: u32,
        liquidity_flag: LiquidityFlag,
    ) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            decrement_shares: decrement_shares.into(),
            reason: reason.code(),
            quantity_prevented_from_trading: quantity_prevented_from_trading.into(),
            execution_price: execution_price.into(),
            liquidity_flag,
        }
    }

    /// The reason; `Some` for every decoded message.
    pub fn reason(&self) -> Option<CancelReason> {
        CancelReason::from_code(self.reason)
    }
}

impl Message for AiqCanceled {
    const MESSAGE_TYPE: u8 = b'D';
    encode_in_place!(AiqCanceled {
        message_type,
        timestamp_ns,
        order_token,
        decrement_shares,
        reason,
        quantity_prevented_from_trading,
        execution_price,
        liquidity_flag
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(AiqCanceled, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn check_raw_fields(&self) -> Result<(), InvalidField> {
        self.reason()
            .map(drop)
            .ok_or(InvalidField::CancelReason(self.reason))
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, AiqCanceled, [liquidity_flag: LiquidityFlag])
    }
}

/// `E` Executed, 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Executed {
    /// `E`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Executed Shares.
    pub executed_shares: U32,
    /// Execution Price, 4 implied decimals.
    pub execution_price: U32,
    /// Liquidity Flag.
    pub liquidity_flag: LiquidityFlag,
    /// Match Number (shared with ITCH).
    pub match_number: U64,
}
const _: () = assert!(size_of::<Executed>() == 40);

impl Executed {
    /// An Executed.
    #[inline]
    pub fn new(
        timestamp_ns: u64,
        order_token: Token,
        executed_shares: u32,
        execution_price: u32,
        liquidity_flag: LiquidityFlag,
        match_number: u64,
    ) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            executed_shares: executed_shares.into(),
            execution_price: execution_price.into(),
            liquidity_flag,
            match_number: match_number.into(),
        }
    }
}

impl Message for Executed {
    const MESSAGE_TYPE: u8 = b'E';
    encode_in_place!(Executed {
        message_type,
        timestamp_ns,
        order_token,
        executed_shares,
        execution_price,
        liquidity_flag,
        match_number
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(Executed, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, Executed, [liquidity_flag: LiquidityFlag])
    }
}

/// `B` Broken Trade, 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BrokenTrade {
    /// `B`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Match Number of the broken execution.
    pub match_number: U64,
    /// Reason.
    pub reason: BrokenTradeReason,
}
const _: () = assert!(size_of::<BrokenTrade>() == 32);

impl BrokenTrade {
    /// A Broken Trade.
    #[inline]
    pub fn new(timestamp_ns: u64, order_token: Token, match_number: u64, reason: BrokenTradeReason) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            match_number: match_number.into(),
            reason,
        }
    }
}

impl Message for BrokenTrade {
    const MESSAGE_TYPE: u8 = b'B';
    encode_in_place!(BrokenTrade {
        message_type,
        timestamp_ns,
        order_token,
        match_number,
        reason
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(BrokenTrade, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, BrokenTrade, [reason: BrokenTradeReason])
    }
}

/// `K` Price Correction, 36 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct PriceCorrection {
    /// `K`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Match Number of the corrected execution.
    pub match_number: U64,
    /// New Execution Price, 4 implied decimals.
    pub new_execution_price: U32,
    /// Reason.
    pub reason: BrokenTradeReason,
}
const _: () = assert!(size_of::<PriceCorrection>() == 36);

impl PriceCorrection {
    /// A Price Correction.
    #[inline]
    pub fn new(
        timestamp_ns: u64,
        order_token: Token,
        match_number: u64,
        new_execution_price: u32,
        reason: BrokenTradeReason,
    ) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            match_number: match_number.into(),
            new_execution_price: new_execution_price.into(),
            reason,
        }
    }
}

impl Message for PriceCorrection {
    const MESSAGE_TYPE: u8 = b'K';
    encode_in_place!(PriceCorrection {
        message_type,
        timestamp_ns,
        order_token,
        match_number,
        new_execution_price,
        reason
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(PriceCorrection, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, PriceCorrection, [reason: BrokenTradeReason])
    }
}

/// `J` Rejected, 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Rejected {
    /// `J`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Reason: a [`RejectReason`] letter; see [`Rejected::reason`].
    pub reason: u8,
}
const _: () = assert!(size_of::<Rejected>() == 24);

impl Rejected {
    /// A Rejected.
    #[inline]
    pub fn new(timestamp_ns: u64, order_token: Token, reason: RejectReason) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            reason: reason.code(),
        }
    }

    /// The reason; `Some` for every decoded message.
    pub fn reason(&self) -> Option<RejectReason> {
        RejectReason::from_code(self.reason)
    }
}

impl Message for Rejected {
    const MESSAGE_TYPE: u8 = b'J';
    encode_in_place!(Rejected {
        message_type,
        timestamp_ns,
        order_token,
        reason
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(Rejected, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn check_raw_fields(&self) -> Result<(), InvalidField> {
        self.reason()
            .map(drop)
            .ok_or(InvalidField::RejectReason(self.reason))
    }
    fn diagnose(_: &[u8]) -> Option<InvalidField> {
        None // the reason is a raw byte, checked by `check_raw_fields`
    }
}

/// `P` Cancel Pending, 23 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CancelPending {
    /// `P`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
}
const _: () = assert!(size_of::<CancelPending>() == 23);

impl CancelPending {
    /// A Cancel Pending.
    #[inline]
    pub fn new(timestamp_ns: u64, order_token: Token) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
        }
    }
}

impl Message for CancelPending {
    const MESSAGE_TYPE: u8 = b'P';
    encode_in_place!(CancelPending {
        message_type,
        timestamp_ns,
        order_token
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(CancelPending, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(_: &[u8]) -> Option<InvalidField> {
        None
    }
}

/// `I` Cancel Reject, 23 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CancelReject {
    /// `I`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
}
const _: () = assert!(size_of::<CancelReject>() == 23);

impl CancelReject {
    /// A Cancel Reject.
    #[inline]
    pub fn new(timestamp_ns: u64, order_token: Token) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
        }
    }
}

impl Message for CancelReject {
    const MESSAGE_TYPE: u8 = b'I';
    encode_in_place!(CancelReject {
        message_type,
        timestamp_ns,
        order_token
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(CancelReject, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(_: &[u8]) -> Option<InvalidField> {
        None
    }
}

/// `M` Order Modified, 28 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct OrderModified {
    /// `M`.
    pub message_type: u8,
    /// Timestamp, nanoseconds since midnight.
    pub timestamp_ns: U64,
    /// Order Token.
    pub order_token: Token,
    /// Buy/Sell Indicator (after the modify).
    pub side: Side,
    /// Shares: the order's new open size.
    pub shares: U32,
}
const _: () = assert!(size_of::<OrderModified>() == 28);

impl OrderModified {
    /// An Order Modified.
    #[inline]
    pub fn new(timestamp_ns: u64, order_token: Token, side: Side, shares: u32) -> Self {
        Self {
            message_type: Self::MESSAGE_TYPE,
            timestamp_ns: timestamp_ns.into(),
            order_token,
            side,
            shares: shares.into(),
        }
    }
}

impl Message for OrderModified {
    const MESSAGE_TYPE: u8 = b'M';
    encode_in_place!(OrderModified {
        message_type,
        timestamp_ns,
        order_token,
        side,
        shares
    });
    const TOKEN_OFFSET: Option<usize> = Some(offset_of!(OrderModified, order_token));
    fn token(&self) -> Token {
        self.order_token
    }
    fn diagnose(bytes: &[u8]) -> Option<InvalidField> {
        diagnose!(bytes, OrderModified, [side: Side])
    }
}

macro_rules! outbound_enums {
    ($($variant:ident),+ $(,)?) => {
        /// An outbound (exchange to client) message, borrowed in place.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Outbound<'a> {
            $(
                #[doc = concat!("[`", stringify!($variant), "`].")]
                $variant(&'a $variant),
            )+
        }

        /// An owned copy of an outbound message.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum OutboundMessage {
            $(
                #[doc = concat!("[`", stringify!($variant), "`].")]
                $variant($variant),
            )+
        }

        impl<'a> Outbound<'a> {
            /// Decodes one outbound message (the payload of a SoupBinTCP Sequenced Data packet) in place.
            ///
            /// # Errors
            /// See [`Message::decode`]; [`DecodeError::UnknownType`] for a type OUCH 4.2 does not send.
            pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
                let &message_type = bytes.first().ok_or(DecodeError::Empty)?;
                $(
                    if message_type == $variant::MESSAGE_TYPE {
                        return $variant::decode(bytes).map(Self::$variant);
                    }
                )+
                Err(DecodeError::UnknownType { message_type })
            }

            /// The message's bytes, in place.
            pub fn as_wire(&self) -> &'a [u8] {
                match *self {
                    $(Self::$variant(m) => m.as_bytes(),)+
                }
            }

            /// An owned copy.
            pub fn to_message(&self) -> OutboundMessage {
                match *self {
                    $(Self::$variant(m) => OutboundMessage::$variant(*m),)+
                }
            }
        }

        impl OutboundMessage {
            /// A borrowed view of this copy.
            pub fn as_outbound(&self) -> Outbound<'_> {
                match self {
                    $(Self::$variant(m) => Outbound::$variant(m),)+
                }
            }

            /// The message's bytes, in place.
            pub fn as_wire(&self) -> &[u8] {
                match self {
                    $(Self::$variant(m) => m.as_bytes(),)+
                }
            }

            /// The order token the message is about (blank for a System Event).
            pub fn token(&self) -> Token {
                match self {
                    $(Self::$variant(m) => m.token(),)+
                }
            }

            /// Writes the message to the front of `out` and returns its length.
            ///
            /// # Errors
            /// [`EncodeError`] if `out` is too short.
            pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
                match self {
                    $(Self::$variant(m) => m.encode(out),)+
                }
            }

            /// [`OutboundMessage::encode`] field by field ([`Message::encode_in_place`]): the same bytes.
            ///
            /// # Errors
            /// [`EncodeError`] if `out` is too short.
            #[inline]
            pub fn encode_in_place(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
                match self {
                    $(Self::$variant(m) => m.encode_in_place(out),)+
                }
            }
        }

        $(
            impl From<$variant> for OutboundMessage {
                fn from(m: $variant) -> Self {
                    Self::$variant(m)
                }
            }
        )+
    };
}

outbound_enums!(
    SystemEvent,
    Accepted,
    Replaced,
    Canceled,
    AiqCanceled,
    Executed,
    BrokenTrade,
    PriceCorrection,
    Rejected,
    CancelPending,
    CancelReject,
    OrderModified,
);

/// Fuzz and corpus check of the message decoders: decodes `input` as an inbound and as an outbound message;
/// whatever decodes must be exactly the input bytes, re-encode to them, and decode again to the same value;
/// whatever fails must fail with the error its first byte and length predict. Returns whether `input` is a
/// valid inbound message.
///
/// # Panics
/// If a decoder breaks one of those properties (that is what the fuzzer looks for).
pub fn fuzz_check_inbound(input: &[u8]) -> bool {
    let mut scratch = [0u8; MESSAGE_LEN_MAX];
    let inbound = Inbound::decode(input);
    match inbound {
        Ok(message) => {
            assert_eq!(message.as_wire(), input, "an inbound view is the input");
            let owned = message.to_message();
            let len = owned
                .encode(&mut scratch)
                .expect("MESSAGE_LEN_MAX holds every message");
            assert_eq!(&scratch[..len], input, "inbound re-encodes to its bytes");
            assert_eq!(
                Inbound::decode(&scratch[..len]).map(|m| m.to_message()),
                Ok(owned)
            );
        }
        Err(error) => check_error(error, input),
    }
    match Outbound::decode(input) {
        Ok(message) => {
            assert_eq!(message.as_wire(), input, "an outbound view is the input");
            let owned = message.to_message();
            let len = owned
                .encode(&mut scratch)
                .expect("MESSAGE_LEN_MAX holds every message");
            assert_eq!(&scratch[..len], input, "outbound re-encodes to its bytes");
            assert_eq!(
                Outbound::decode(&scratch[..len]).map(|m| m.to_message()),
                Ok(owned)
            );
        }
        Err(error) => check_error(error, input),
    }
    inbound.is_ok()
}

fn check_error(error: DecodeError, input: &[u8]) {
    match error {
        DecodeError::Empty => assert!(input.is_empty()),
        DecodeError::UnknownType { message_type } => assert_eq!(Some(&message_type), input.first()),
        DecodeError::Truncated { length, expected, .. } => {
            assert_eq!(length, input.len());
            assert!(length < expected);
        }
        DecodeError::WrongLength { length, expected, .. } => {
            assert_eq!(length, input.len());
            assert!(length > expected);
        }
        DecodeError::InvalidField { field, .. } => {
            assert_ne!(
                field,
                InvalidField::Unexplained,
                "diagnose found no invalid field"
            );
            assert!(input.len() <= MESSAGE_LEN_MAX);
        }
    }
}
