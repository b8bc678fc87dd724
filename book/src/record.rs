//! Records: the stable, versioned little-endian byte encoding of [`Command`] and [`Event`].
//!
//! The journal stores these bytes and `bourse journal dump` decodes them; nothing else defines them.
//!
//! # Layout
//! Every record is `version u8 (= RECORD_VERSION) | kind u8 | fields`, fields in declaration order,
//! integers little-endian, tokens/symbols/firms as their raw space-padded ASCII bytes, booleans one byte
//! (0 or 1), reasons as their OUCH letter, [`crate::Side`] as `B`/`S`. Party = `login u32, token 14,
//! order_ref u64, firm 4, side u8, remaining u32` (35 bytes); Instrument = `symbol 8, locate u16`.
//!
//! | kind | command | | kind | event |
//! |---|---|---|---|---|
//! | 0x01 | Enter | | 0x81 | Accepted |
//! | 0x02 | Cancel | | 0x82 | Added |
//! | 0x03 | Replace | | 0x83 | Executed |
//! | 0x04 | Modify | | 0x84 | Canceled |
//! | 0x05 | MassCancel (scope u8: 1 firm, 2 login, 3 instrument; then 8 bytes; reason) | | 0x85 | SelfTradeCanceled |
//! | 0x06 | KillSwitch | | 0x86 | Replaced |
//! | 0x07 | ExpireDue | | 0x87 | Modified |
//! | 0x08 | EndOfDay | | 0x88 | Rejected |
//! | 0x09 | StartOfDay | | 0x89 | TradingAction |
//! | 0x0A | Halt | | 0x8A | SystemEvent |
//! | 0x0B | Resume | | 0x8B | Broken |
//! | 0x0C | (retired: BustTrade by match number alone, before 2026-11-27) | | 0x8C | KillSwitch |
//! | 0x0D | Throttled (login u32, token 14) | | | |
//! | 0x0E | BustTrade (match_number u64, symbol 8, resting Party, taking Party) | | | |
//! | | | | 0x8D | CancelRejected (timestamp u64, login u32, token 14, order_ref u64) |
//!
//! A change of any layout bumps [`RECORD_VERSION`]; decoding a record of another version is an error.
//! A new kind (0x8D and 0x0D were added after version 1 shipped, 0x0E in version 2) changes no existing
//! layout, so it does not bump the version: older decoders report it as an unknown kind. 0x0C is retired:
//! the engine no longer keeps past trades, so a bust by match number alone cannot be applied, and
//! decoding it is an unknown-kind error. Version 2 added `capacity u8, cross_type u8`
//! after `min_qty` in Enter, Accepted and Replaced (the engine keeps them with the order, so the pipeline
//! needs no table of its own to echo them).
//! Decoding never panics: every malformed input is a [`DecodeError`].

use bourse_protocol::fields::Alpha;
use bourse_protocol::reason::{CancelReason, RejectReason};

use crate::command::{Command, EnterOrder, MassCancelScope, ReplaceOrder};
use crate::event::{
    Accepted, Added, Canceled, Event, Executed, Instrument, Modified, Party, Replaced, SelfTradeCanceled,
};
use crate::types::Side;

/// The version byte every record starts with.
pub const RECORD_VERSION: u8 = 2;
/// The kind byte of an Executed event record: the daemon journals Executed events under this kind byte,
/// and looks trades up by it (admin `bust`).
pub const KIND_EXECUTED: u8 = 0x83;
/// Largest encoded command, bytes.
pub const COMMAND_SIZE_MAX: usize = 96;
/// Largest encoded event, bytes.
pub const EVENT_SIZE_MAX: usize = 128;

/// The name of a record kind (the second byte of every record): the [`Command`] or [`Event`] variant it
/// encodes, as in the table above; `None` for a byte no version has used. For tools that count records by
/// kind (`bourse journal stats`).
pub fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        0x01 => "Enter",
        0x02 => "Cancel",
        0x03 => "Replace",
        0x04 => "Modify",
        0x05 => "MassCancel",
        0x06 => "KillSwitch",
        0x07 => "ExpireDue",
        0x08 => "EndOfDay",
        0x09 => "StartOfDay",
        0x0A => "Halt",
        0x0B => "Resume",
        0x0C => "BustTrade (retired)",
        0x0D => "Throttled",
        0x0E => "BustTrade",
        0x81 => "Accepted",
        0x82 => "Added",
        KIND_EXECUTED => "Executed",
        0x84 => "Canceled",
        0x85 => "SelfTradeCanceled",
        0x86 => "Replaced",
        0x87 => "Modified",
        0x88 => "Rejected",
        0x89 => "TradingAction",
        0x8A => "SystemEvent",
        0x8B => "Broken",
        0x8C => "KillSwitch",
        0x8D => "CancelRejected",
        _ => return None,
    })
}

/// Encoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The output buffer is smaller than the record.
    #[error("buffer of {0} bytes too small for the record")]
    BufferTooSmall(usize),
}

/// Decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the record does.
    #[error("record truncated")]
    Truncated,
    /// The version byte is not [`RECORD_VERSION`].
    #[error("record version {0} unknown")]
    Version(u8),
    /// The kind byte is unknown.
    #[error("record kind {0:#04x} unknown")]
    Kind(u8),
    /// A field holds a value its type does not allow.
    #[error("field {0} holds an invalid value")]
    Value(&'static str),
}

pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pub(crate) pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + b.len();
        let Some(dst) = self.buf.get_mut(self.pos..end) else {
            return Err(EncodeError::BufferTooSmall(self.buf.len()));
        };
        dst.copy_from_slice(b);
        self.pos = end;
        Ok(())
    }
    fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.bytes(&[v])
    }
    fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
    fn bool(&mut self, v: bool) -> Result<(), EncodeError> {
        self.u8(u8::from(v))
    }
    fn side(&mut self, v: Side) -> Result<(), EncodeError> {
        self.u8(v.itch_letter())
    }
    fn instrument(&mut self, v: &Instrument) -> Result<(), EncodeError> {
        self.bytes(&v.symbol.0)?;
        self.u16(v.locate)
    }
    fn party(&mut self, p: &Party) -> Result<(), EncodeError> {
        self.u32(p.login)?;
        self.bytes(&p.token.0)?;
        self.u64(p.order_ref)?;
        self.bytes(&p.firm.0)?;
        self.u8(p.side)?;
        self.u32(p.remaining)
    }
    fn canceled(&mut self, c: &Canceled) -> Result<(), EncodeError> {
        self.u64(c.timestamp_ns)?;
        self.u32(c.login)?;
        self.bytes(&c.token.0)?;
        self.u64(c.order_ref)?;
        self.instrument(&c.instrument)?;
        self.side(c.side)?;
        self.u32(c.price)?;
        self.u32(c.decrement)?;
        self.u32(c.remaining)?;
        self.u8(c.reason.code())?;
        self.bool(c.on_book)
    }
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let src = self
            .bytes
            .get(self.pos..self.pos + N)
            .ok_or(DecodeError::Truncated)?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(src);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Value(field)),
        }
    }
    pub(crate) fn alpha<const N: usize>(&mut self) -> Result<Alpha<N>, DecodeError> {
        Ok(Alpha(self.array()?))
    }
    fn side(&mut self) -> Result<Side, DecodeError> {
        match self.u8()? {
            b'B' => Ok(Side::Buy),
            b'S' => Ok(Side::Sell),
            _ => Err(DecodeError::Value("side")),
        }
    }
    fn cancel_reason(&mut self) -> Result<CancelReason, DecodeError> {
        CancelReason::from_code(self.u8()?).ok_or(DecodeError::Value("cancel reason"))
    }
    fn instrument(&mut self) -> Result<Instrument, DecodeError> {
        Ok(Instrument {
            symbol: self.alpha()?,
            locate: self.u16()?,
        })
    }
    pub(crate) fn party(&mut self) -> Result<Party, DecodeError> {
        Ok(Party {
            login: self.u32()?,
            token: self.alpha()?,
            order_ref: self.u64()?,
            firm: self.alpha()?,
            side: self.u8()?,
            remaining: self.u32()?,
        })
    }
    fn canceled(&mut self) -> Result<Canceled, DecodeError> {
        Ok(Canceled {
            timestamp_ns: self.u64()?,
            login: self.u32()?,
            token: self.alpha()?,
            order_ref: self.u64()?,
            instrument: self.instrument()?,
            side: self.side()?,
            price: self.u32()?,
            decrement: self.u32()?,
            remaining: self.u32()?,
            reason: self.cancel_reason()?,
            on_book: self.bool("on_book")?,
        })
    }
    fn header(&mut self) -> Result<u8, DecodeError> {
        let version = self.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::Version(version));
        }
        self.u8()
    }
}

impl Command {
    /// Encodes into `buf`, returning the number of bytes written (at most [`COMMAND_SIZE_MAX`]).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`].
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(buf);
        w.u8(RECORD_VERSION)?;
        match self {
            Command::Enter(o) => {
                w.u8(0x01)?;
                w.u32(o.login)?;
                w.bytes(&o.token.0)?;
                w.u8(o.side)?;
                w.u32(o.shares)?;
                w.bytes(&o.symbol.0)?;
                w.u32(o.price)?;
                w.u32(o.tif_s)?;
                w.bytes(&o.firm.0)?;
                w.u8(o.display)?;
                w.u32(o.min_qty)?;
                w.u8(o.capacity)?;
                w.u8(o.cross_type)?;
            }
            Command::Cancel { login, token, shares } => {
                w.u8(0x02)?;
                w.u32(*login)?;
                w.bytes(&token.0)?;
                w.u32(*shares)?;
            }
            Command::Replace(r) => {
                w.u8(0x03)?;
                w.u32(r.login)?;
                w.bytes(&r.existing_token.0)?;
                w.bytes(&r.replacement_token.0)?;
                w.u32(r.shares)?;
                w.u32(r.price)?;
                w.u32(r.tif_s)?;
                w.u8(r.display)?;
                w.u32(r.min_qty)?;
            }
            Command::Modify {
                login,
                token,
                side,
                shares,
            } => {
                w.u8(0x04)?;
                w.u32(*login)?;
                w.bytes(&token.0)?;
                w.u8(*side)?;
                w.u32(*shares)?;
            }
            Command::MassCancel { scope, reason } => {
                w.u8(0x05)?;
                let mut value = [b' '; 8];
                let code = match scope {
                    MassCancelScope::Firm(f) => {
                        value[..4].copy_from_slice(&f.0);
                        1
                    }
                    MassCancelScope::Login(l) => {
                        value[..4].copy_from_slice(&l.to_le_bytes());
                        2
                    }
                    MassCancelScope::Instrument(s) => {
                        value.copy_from_slice(&s.0);
                        3
                    }
                };
                w.u8(code)?;
                w.bytes(&value)?;
                w.u8(reason.code())?;
            }
            Command::KillSwitch { firm, on } => {
                w.u8(0x06)?;
                w.bytes(&firm.0)?;
                w.bool(*on)?;
            }
            Command::ExpireDue => w.u8(0x07)?,
            Command::EndOfDay => w.u8(0x08)?,
            Command::StartOfDay => w.u8(0x09)?,
            Command::Halt { symbol } => {
                w.u8(0x0A)?;
                w.bytes(&symbol.0)?;
            }
            Command::Resume { symbol } => {
                w.u8(0x0B)?;
                w.bytes(&symbol.0)?;
            }
            Command::BustTrade {
                match_number,
                symbol,
                resting,
                taking,
            } => {
                w.u8(0x0E)?;
                w.u64(*match_number)?;
                w.bytes(&symbol.0)?;
                w.party(resting)?;
                w.party(taking)?;
            }
            Command::Throttled { login, token } => {
                w.u8(0x0D)?;
                w.u32(*login)?;
                w.bytes(&token.0)?;
            }
        }
        Ok(w.pos)
    }

    /// Decodes one command from the start of `bytes`, returning it and the bytes it used.
    ///
    /// # Errors
    /// [`DecodeError`] for truncated, unknown-version, unknown-kind or invalid-field input.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(bytes);
        let command = match r.header()? {
            0x01 => Command::Enter(EnterOrder {
                login: r.u32()?,
                token: r.alpha()?,
                side: r.u8()?,
                shares: r.u32()?,
                symbol: r.alpha()?,
                price: r.u32()?,
                tif_s: r.u32()?,
                firm: r.alpha()?,
                display: r.u8()?,
                min_qty: r.u32()?,
                capacity: r.u8()?,
                cross_type: r.u8()?,
            }),
            0x02 => Command::Cancel {
                login: r.u32()?,
                token: r.alpha()?,
                shares: r.u32()?,
            },
            0x03 => Command::Replace(ReplaceOrder {
                login: r.u32()?,
                existing_token: r.alpha()?,
                replacement_token: r.alpha()?,
                shares: r.u32()?,
                price: r.u32()?,
                tif_s: r.u32()?,
                display: r.u8()?,
                min_qty: r.u32()?,
            }),
            0x04 => Command::Modify {
                login: r.u32()?,
                token: r.alpha()?,
                side: r.u8()?,
                shares: r.u32()?,
            },
            0x05 => {
                let code = r.u8()?;
                let value: [u8; 8] = r.array()?;
                let scope = match code {
                    1 if value[4..] == [b' '; 4] => {
                        MassCancelScope::Firm(Alpha([value[0], value[1], value[2], value[3]]))
                    }
                    2 if value[4..] == [b' '; 4] => {
                        MassCancelScope::Login(u32::from_le_bytes([value[0], value[1], value[2], value[3]]))
                    }
                    3 => MassCancelScope::Instrument(Alpha(value)),
                    _ => return Err(DecodeError::Value("mass cancel scope")),
                };
                Command::MassCancel {
                    scope,
                    reason: r.cancel_reason()?,
                }
            }
            0x06 => Command::KillSwitch {
                firm: r.alpha()?,
                on: r.bool("on")?,
            },
            0x07 => Command::ExpireDue,
            0x08 => Command::EndOfDay,
            0x09 => Command::StartOfDay,
            0x0A => Command::Halt { symbol: r.alpha()? },
            0x0B => Command::Resume { symbol: r.alpha()? },
            0x0E => Command::BustTrade {
                match_number: r.u64()?,
                symbol: r.alpha()?,
                resting: r.party()?,
                taking: r.party()?,
            },
            0x0D => Command::Throttled {
                login: r.u32()?,
                token: r.alpha()?,
            },
            kind => return Err(DecodeError::Kind(kind)),
        };
        Ok((command, r.pos))
    }
}

impl Event {
    /// Encodes into `buf`, returning the number of bytes written (at most [`EVENT_SIZE_MAX`]).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`].
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(buf);
        w.u8(RECORD_VERSION)?;
        match self {
            Event::Accepted(a) => {
                w.u8(0x81)?;
                w.u64(a.timestamp_ns)?;
                w.u32(a.login)?;
                w.bytes(&a.token.0)?;
                w.u64(a.order_ref)?;
                w.u8(a.side)?;
                w.u32(a.shares)?;
                w.instrument(&a.instrument)?;
                w.u32(a.price)?;
                w.u32(a.tif_s)?;
                w.bytes(&a.firm.0)?;
                w.u8(a.display)?;
                w.u32(a.min_qty)?;
                w.u8(a.capacity)?;
                w.u8(a.cross_type)?;
            }
            Event::Added(a) => {
                w.u8(0x82)?;
                w.u64(a.timestamp_ns)?;
                w.u64(a.order_ref)?;
                w.side(a.side)?;
                w.u32(a.shares)?;
                w.instrument(&a.instrument)?;
                w.u32(a.price)?;
                w.bytes(&a.firm.0)?;
                w.bool(a.attributed)?;
            }
            Event::Executed(x) => {
                w.u8(KIND_EXECUTED)?;
                w.u64(x.timestamp_ns)?;
                w.u64(x.match_number)?;
                w.instrument(&x.instrument)?;
                w.u32(x.price)?;
                w.u32(x.shares)?;
                w.party(&x.resting)?;
                w.party(&x.taking)?;
            }
            Event::Canceled(c) => {
                w.u8(0x84)?;
                w.canceled(c)?;
            }
            Event::SelfTradeCanceled(s) => {
                w.u8(0x85)?;
                w.canceled(&s.canceled)?;
                w.u32(s.prevented)?;
                w.u32(s.execution_price)?;
                w.u8(s.liquidity)?;
            }
            Event::Replaced(r) => {
                w.u8(0x86)?;
                w.u64(r.timestamp_ns)?;
                w.u32(r.login)?;
                w.bytes(&r.previous_token.0)?;
                w.u64(r.previous_order_ref)?;
                w.u32(r.previous_remaining)?;
                w.bytes(&r.token.0)?;
                w.u64(r.order_ref)?;
                w.u8(r.side)?;
                w.u32(r.shares)?;
                w.instrument(&r.instrument)?;
                w.u32(r.price)?;
                w.u32(r.tif_s)?;
                w.bytes(&r.firm.0)?;
                w.u8(r.display)?;
                w.u32(r.min_qty)?;
                w.u8(r.capacity)?;
                w.u8(r.cross_type)?;
                w.bool(r.feed_replace)?;
            }
            Event::Modified(m) => {
                w.u8(0x87)?;
                w.u64(m.timestamp_ns)?;
                w.u32(m.login)?;
                w.bytes(&m.token.0)?;
                w.u64(m.order_ref)?;
                w.instrument(&m.instrument)?;
                w.u8(m.side)?;
                w.u32(m.shares)?;
                w.u32(m.decrement)?;
            }
            Event::Rejected {
                timestamp_ns,
                login,
                token,
                reason,
            } => {
                w.u8(0x88)?;
                w.u64(*timestamp_ns)?;
                w.u32(*login)?;
                w.bytes(&token.0)?;
                w.u8(reason.code())?;
            }
            Event::CancelRejected {
                timestamp_ns,
                login,
                token,
                order_ref,
            } => {
                w.u8(0x8D)?;
                w.u64(*timestamp_ns)?;
                w.u32(*login)?;
                w.bytes(&token.0)?;
                w.u64(*order_ref)?;
            }
            Event::TradingAction {
                timestamp_ns,
                instrument,
                halted,
            } => {
                w.u8(0x89)?;
                w.u64(*timestamp_ns)?;
                w.instrument(instrument)?;
                w.bool(*halted)?;
            }
            Event::SystemEvent { timestamp_ns, code } => {
                w.u8(0x8A)?;
                w.u64(*timestamp_ns)?;
                w.u8(*code)?;
            }
            Event::Broken {
                timestamp_ns,
                match_number,
                instrument,
                resting,
                taking,
            } => {
                w.u8(0x8B)?;
                w.u64(*timestamp_ns)?;
                w.u64(*match_number)?;
                w.instrument(instrument)?;
                w.party(resting)?;
                w.party(taking)?;
            }
            Event::KillSwitch {
                timestamp_ns,
                firm,
                on,
            } => {
                w.u8(0x8C)?;
                w.u64(*timestamp_ns)?;
                w.bytes(&firm.0)?;
                w.bool(*on)?;
            }
        }
        Ok(w.pos)
    }

    /// Decodes one event from the start of `bytes`, returning it and the bytes it used.
    ///
    /// # Errors
    /// [`DecodeError`] for truncated, unknown-version, unknown-kind or invalid-field input.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(bytes);
        let event = match r.header()? {
            0x81 => Event::Accepted(Accepted {
                timestamp_ns: r.u64()?,
                login: r.u32()?,
                token: r.alpha()?,
                order_ref: r.u64()?,
                side: r.u8()?,
                shares: r.u32()?,
                instrument: r.instrument()?,
                price: r.u32()?,
                tif_s: r.u32()?,
                firm: r.alpha()?,
                display: r.u8()?,
                min_qty: r.u32()?,
                capacity: r.u8()?,
                cross_type: r.u8()?,
            }),
            0x82 => Event::Added(Added {
                timestamp_ns: r.u64()?,
                order_ref: r.u64()?,
                side: r.side()?,
                shares: r.u32()?,
                instrument: r.instrument()?,
                price: r.u32()?,
                firm: r.alpha()?,
                attributed: r.bool("attributed")?,
            }),
            KIND_EXECUTED => Event::Executed(Executed {
                timestamp_ns: r.u64()?,
                match_number: r.u64()?,
                instrument: r.instrument()?,
                price: r.u32()?,
                shares: r.u32()?,
                resting: r.party()?,
                taking: r.party()?,
            }),
            0x84 => Event::Canceled(r.canceled()?),
            0x85 => Event::SelfTradeCanceled(SelfTradeCanceled {
                canceled: r.canceled()?,
                prevented: r.u32()?,
                execution_price: r.u32()?,
                liquidity: r.u8()?,
            }),
            0x86 => Event::Replaced(Replaced {
                timestamp_ns: r.u64()?,
                login: r.u32()?,
                previous_token: r.alpha()?,
                previous_order_ref: r.u64()?,
                previous_remaining: r.u32()?,
                token: r.alpha()?,
                order_ref: r.u64()?,
                side: r.u8()?,
                shares: r.u32()?,
                instrument: r.instrument()?,
                price: r.u32()?,
                tif_s: r.u32()?,
                firm: r.alpha()?,
                display: r.u8()?,
                min_qty: r.u32()?,
                capacity: r.u8()?,
                cross_type: r.u8()?,
                feed_replace: r.bool("feed_replace")?,
            }),
            0x87 => Event::Modified(Modified {
                timestamp_ns: r.u64()?,
                login: r.u32()?,
                token: r.alpha()?,
                order_ref: r.u64()?,
                instrument: r.instrument()?,
                side: r.u8()?,
                shares: r.u32()?,
                decrement: r.u32()?,
            }),
            0x88 => Event::Rejected {
                timestamp_ns: r.u64()?,
                login: r.u32()?,
                token: r.alpha::<14>()?,
                reason: RejectReason::from_code(r.u8()?).ok_or(DecodeError::Value("reject reason"))?,
            },
            0x8D => Event::CancelRejected {
                timestamp_ns: r.u64()?,
                login: r.u32()?,
                token: r.alpha::<14>()?,
                order_ref: r.u64()?,
            },
            0x89 => Event::TradingAction {
                timestamp_ns: r.u64()?,
                instrument: r.instrument()?,
                halted: r.bool("halted")?,
            },
            0x8A => Event::SystemEvent {
                timestamp_ns: r.u64()?,
                code: r.u8()?,
            },
            0x8B => Event::Broken {
                timestamp_ns: r.u64()?,
                match_number: r.u64()?,
                instrument: r.instrument()?,
                resting: r.party()?,
                taking: r.party()?,
            },
            0x8C => Event::KillSwitch {
                timestamp_ns: r.u64()?,
                firm: r.alpha()?,
                on: r.bool("on")?,
            },
            kind => return Err(DecodeError::Kind(kind)),
        };
        Ok((event, r.pos))
    }
}
