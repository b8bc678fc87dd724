//! Engine events -> OUCH replies and ITCH messages: docs/protocol.md section 6 (EV-01..EV-25) as code.
//!
//! Pure and deterministic: the same events (and the same request echo) give the same bytes, which is what lets recovery re-run a command and compare its outputs with the journaled ones.
//! Sequence numbers are not assigned here; the core numbers each output as it journals it.

use bourse_book::{Event, Side as BookSide};
use bourse_protocol::fields::{Alpha, Symbol};
use bourse_protocol::itch::{self, Header, Timestamp48};
use bourse_protocol::ouch;
use bourse_protocol::reason::CancelReason;

/// Where an output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output<'a> {
    /// An OUCH message into a login's stream.
    Ouch {
        /// The login.
        login: u32,
        /// The message bytes.
        bytes: &'a [u8],
    },
    /// An ITCH message on the feed.
    Itch {
        /// The message bytes.
        bytes: &'a [u8],
    },
}

/// Where the mapping's outputs go: any `FnMut(Output)`, or a sink of the core's own whose `output` is
/// inlined at each message's emit site (so that the message's length there is a constant).
pub trait OutputSink {
    /// Takes one output.
    fn output(&mut self, output: Output<'_>);
}

impl<F: FnMut(Output<'_>)> OutputSink for F {
    #[inline(always)]
    fn output(&mut self, output: Output<'_>) {
        self(output);
    }
}

/// One instrument as the Stock Directory shows it.
#[derive(Clone, Copy, Debug)]
pub struct DirectoryEntry {
    /// Symbol.
    pub symbol: Symbol,
    /// Lot size in shares.
    pub lot_size: u32,
}

fn header(locate: u16, timestamp_ns: u64) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 0,
        timestamp: Timestamp48::new(timestamp_ns.min(Timestamp48::NS_MAX)).expect("clamped to 48 bits"),
    }
}

fn ouch_side(letter: u8) -> ouch::Side {
    ouch::Side::from_code(letter).unwrap_or(ouch::Side::Buy)
}

fn ouch_display(letter: u8) -> ouch::Display {
    ouch::Display::from_code(letter).unwrap_or(ouch::Display::Anonymous)
}

fn itch_side(side: BookSide) -> itch::Side {
    match side {
        BookSide::Buy => itch::Side::Buy,
        BookSide::Sell => itch::Side::Sell,
    }
}

/// Emits `message` as ITCH through `out`.
macro_rules! emit_itch {
    ($out:expr, $msg:expr) => {{
        let mut buf = [0u8; itch::MESSAGE_LEN_MAX];
        let n = $msg
            .encode(&mut buf)
            .expect("MESSAGE_LEN_MAX holds every ITCH message");
        $out.output(Output::Itch { bytes: &buf[..n] });
    }};
}

/// Emits an OUCH message to `login` through `out`.
fn emit_ouch<M: ouch::Message>(out: &mut impl OutputSink, login: u32, msg: &M) {
    out.output(Output::Ouch {
        login,
        bytes: msg.as_wire(),
    });
}

/// The ITCH System Event with `code`.
pub fn system_event(out: &mut impl OutputSink, timestamp_ns: u64, code: itch::EventCode) {
    emit_itch!(
        out,
        itch::SystemEvent {
            header: header(0, timestamp_ns),
            event_code: code,
        }
    );
}

/// Stock Directory for one instrument (locate = position from 1).
pub fn stock_directory(out: &mut impl OutputSink, timestamp_ns: u64, locate: u16, entry: &DirectoryEntry) {
    emit_itch!(
        out,
        itch::StockDirectory::bourse(header(locate, timestamp_ns), entry.symbol, entry.lot_size)
    );
}

/// Stock Trading Action.
pub fn trading_action(
    out: &mut impl OutputSink,
    timestamp_ns: u64,
    locate: u16,
    symbol: Symbol,
    halted: bool,
) {
    emit_itch!(
        out,
        itch::TradingAction {
            header: header(locate, timestamp_ns),
            stock: symbol,
            trading_state: if halted {
                itch::TradingState::Halted
            } else {
                itch::TradingState::Trading
            },
            reserved: b' ',
            reason: Alpha::BLANK,
        }
    );
}

/// OUCH System Event to every login `1..=logins`.
pub fn ouch_system_event(out: &mut impl OutputSink, timestamp_ns: u64, logins: u32, code: ouch::EventCode) {
    let msg = ouch::SystemEvent::new(timestamp_ns, code);
    for login in 1..=logins {
        emit_ouch(out, login, &msg);
    }
}

/// The start-of-day block (EV-20): ITCH `S O`, `R` and `H` per instrument, `S S`, `S Q`; OUCH `S S` to
/// every login.
pub fn start_of_day(
    out: &mut impl OutputSink,
    timestamp_ns: u64,
    directory: &[DirectoryEntry],
    halted: &[bool],
    logins: u32,
) {
    system_event(out, timestamp_ns, itch::EventCode::StartOfMessages);
    for (i, entry) in directory.iter().enumerate() {
        stock_directory(out, timestamp_ns, (i + 1) as u16, entry);
    }
    for (i, entry) in directory.iter().enumerate() {
        trading_action(out, timestamp_ns, (i + 1) as u16, entry.symbol, halted[i]);
    }
    system_event(out, timestamp_ns, itch::EventCode::StartOfSystemHours);
    system_event(out, timestamp_ns, itch::EventCode::StartOfMarketHours);
    ouch_system_event(out, timestamp_ns, logins, ouch::EventCode::StartOfDay);
}

/// Maps the events of one command, in order, to outputs. `echo` is the request's echo bytes
/// (`ingress::order_echo`), of which only the Intermarket Sweep Eligibility (`echo[1]`) is used: the
/// engine's events carry Capacity and Cross Type, which an order keeps. `logins` is the number of
/// configured logins (System Events go to all of them).
pub fn map_events(events: &[Event], echo: [u8; 3], logins: u32, out: &mut impl OutputSink) {
    for event in events {
        map_event(event, echo, logins, out);
    }
}

fn map_event(event: &Event, echo: [u8; 3], logins: u32, out: &mut impl OutputSink) {
    match event {
        Event::Accepted(a) => {
            let terms = ouch::OrderTerms {
                side: ouch_side(a.side),
                shares: a.shares,
                stock: a.instrument.symbol,
                price: a.price,
                time_in_force: a.tif_s,
                firm: a.firm,
                display: ouch_display(a.display),
                capacity: a.capacity,
                intermarket_sweep: echo[1],
                minimum_quantity: a.min_qty,
                cross_type: a.cross_type,
            };
            let msg = ouch::Accepted::new(
                a.timestamp_ns,
                a.token,
                &terms,
                a.order_ref,
                ouch::OrderState::Live,
            );
            emit_ouch(out, a.login, &msg);
        }
        Event::Added(a) => {
            if a.attributed {
                emit_itch!(
                    out,
                    itch::AddOrderMpid {
                        header: header(a.instrument.locate, a.timestamp_ns),
                        order_reference_number: a.order_ref,
                        side: itch_side(a.side),
                        shares: a.shares,
                        stock: a.instrument.symbol,
                        price: a.price,
                        attribution: a.firm,
                    }
                );
            } else {
                emit_itch!(
                    out,
                    itch::AddOrder {
                        header: header(a.instrument.locate, a.timestamp_ns),
                        order_reference_number: a.order_ref,
                        side: itch_side(a.side),
                        shares: a.shares,
                        stock: a.instrument.symbol,
                        price: a.price,
                    }
                );
            }
        }
        Event::Executed(e) => {
            // The maker first, then the taker: each its own Executed with its liquidity flag.
            for (party, flag) in [
                (&e.resting, ouch::LiquidityFlag::Added),
                (&e.taking, ouch::LiquidityFlag::Removed),
            ] {
                let executed = ouch::Executed::new(
                    e.timestamp_ns,
                    party.token,
                    e.shares,
                    e.price,
                    flag,
                    e.match_number,
                );
                emit_ouch(out, party.login, &executed);
            }
            emit_itch!(
                out,
                itch::OrderExecuted {
                    header: header(e.instrument.locate, e.timestamp_ns),
                    order_reference_number: e.resting.order_ref,
                    executed_shares: e.shares,
                    match_number: e.match_number,
                }
            );
        }
        Event::Canceled(c) => {
            let msg = ouch::Canceled::new(c.timestamp_ns, c.token, c.decrement, c.reason);
            emit_ouch(out, c.login, &msg);
            feed_cancel(c, out);
        }
        Event::SelfTradeCanceled(s) => {
            let c = &s.canceled;
            let flag = if s.liquidity == b'A' {
                ouch::LiquidityFlag::Added
            } else {
                ouch::LiquidityFlag::Removed
            };
            let msg = ouch::AiqCanceled::new(
                c.timestamp_ns,
                c.token,
                c.decrement,
                CancelReason::SelfMatchPrevention,
                s.prevented,
                s.execution_price,
                flag,
            );
            emit_ouch(out, c.login, &msg);
            feed_cancel(c, out);
        }
        Event::Replaced(r) => {
            let terms = ouch::OrderTerms {
                side: ouch_side(r.side),
                shares: r.shares,
                stock: r.instrument.symbol,
                price: r.price,
                time_in_force: r.tif_s,
                firm: r.firm,
                display: ouch_display(r.display),
                capacity: r.capacity,
                intermarket_sweep: echo[1],
                minimum_quantity: r.min_qty,
                cross_type: r.cross_type,
            };
            let msg = ouch::Replaced::new(
                r.timestamp_ns,
                r.token,
                &terms,
                r.order_ref,
                ouch::OrderState::Live,
                r.previous_token,
            );
            emit_ouch(out, r.login, &msg);
            if r.feed_replace {
                emit_itch!(
                    out,
                    itch::OrderReplace {
                        header: header(r.instrument.locate, r.timestamp_ns),
                        original_order_reference_number: r.previous_order_ref,
                        new_order_reference_number: r.order_ref,
                        shares: r.shares,
                        price: r.price,
                    }
                );
            } else {
                emit_itch!(
                    out,
                    itch::OrderDelete {
                        header: header(r.instrument.locate, r.timestamp_ns),
                        order_reference_number: r.previous_order_ref,
                    }
                );
            }
        }
        Event::Modified(m) => {
            let msg = ouch::OrderModified::new(m.timestamp_ns, m.token, ouch_side(m.side), m.shares);
            emit_ouch(out, m.login, &msg);
            if m.decrement > 0 {
                emit_itch!(
                    out,
                    itch::OrderCancel {
                        header: header(m.instrument.locate, m.timestamp_ns),
                        order_reference_number: m.order_ref,
                        canceled_shares: m.decrement,
                    }
                );
            }
        }
        Event::Rejected {
            timestamp_ns,
            login,
            token,
            reason,
        } => {
            emit_ouch(out, *login, &ouch::Rejected::new(*timestamp_ns, *token, *reason));
        }
        Event::CancelRejected {
            timestamp_ns,
            login,
            token,
            ..
        } => {
            emit_ouch(out, *login, &ouch::CancelReject::new(*timestamp_ns, *token));
        }
        Event::TradingAction {
            timestamp_ns,
            instrument,
            halted,
        } => trading_action(out, *timestamp_ns, instrument.locate, instrument.symbol, *halted),
        Event::SystemEvent { timestamp_ns, code } => {
            if let Some(itch_code) = itch::EventCode::from_code(*code) {
                system_event(out, *timestamp_ns, itch_code);
            }
            if let Some(ouch_code) = ouch::EventCode::from_code(*code) {
                ouch_system_event(out, *timestamp_ns, logins, ouch_code);
            }
        }
        Event::Broken {
            timestamp_ns,
            match_number,
            instrument,
            resting,
            taking,
        } => {
            for party in [resting, taking] {
                let msg = ouch::BrokenTrade::new(
                    *timestamp_ns,
                    party.token,
                    *match_number,
                    ouch::BrokenTradeReason::Supervisory,
                );
                emit_ouch(out, party.login, &msg);
            }
            emit_itch!(
                out,
                itch::BrokenTrade {
                    header: header(instrument.locate, *timestamp_ns),
                    match_number: *match_number,
                }
            );
        }
        Event::KillSwitch { .. } => {}
    }
}

fn feed_cancel(c: &bourse_book::event::Canceled, out: &mut impl OutputSink) {
    if !c.on_book {
        return;
    }
    if c.remaining == 0 {
        emit_itch!(
            out,
            itch::OrderDelete {
                header: header(c.instrument.locate, c.timestamp_ns),
                order_reference_number: c.order_ref,
            }
        );
    } else {
        emit_itch!(
            out,
            itch::OrderCancel {
                header: header(c.instrument.locate, c.timestamp_ns),
                order_reference_number: c.order_ref,
                canceled_shares: c.decrement,
            }
        );
    }
}
