//! Scenario tables: readable text fixtures (`tests/scenarios/*.txt`), commands in, exact events out.
//!
//! # Format
//! - `# ...` comment; blank lines are ignored.
//! - `> command ...` applies a command at the current time (see [`parse_command`] for the syntax).
//! - `< event ...` lines following a command are exactly the events it must produce, in order; a
//!   command followed by no `<` line must produce no event.
//! - `= bids SYMBOL 10.00x300 9.99x100` / `= asks SYMBOL ...` asserts the depth (price x shares, best
//!   first); `= queue SYMBOL B 1/A 2/C` asserts the priority order of one side (login/token).
//! - `> at 30s` (or `ms`, `ns`) sets the clock; otherwise each command advances it by 1 µs.
//!
//! The runner's fixed configuration is in [`config`]. `BLESS=1 cargo test --test scenarios` prints the
//! actual events of a failing file, `BLESS=write` rewrites its `<` lines (for writing new fixtures: every
//! expected line must then be reviewed by hand, which is the point of the fixtures).

use std::fmt::Write as _;

use bourse_book::command::{EnterOrder, MassCancelScope, ReplaceOrder};
use bourse_book::config::{EngineConfig, FirmConfig, InstrumentConfig, LoginConfig, StpMode};
use bourse_book::event::{Canceled, Event, Party};
use bourse_book::{Command, Engine, Side};
use bourse_protocol::fields::{Alpha, Firm, PRICE_MARKET, Symbol, Token};
use bourse_protocol::reason::CancelReason;

fn firm(s: &str) -> Firm {
    Firm::new(s).unwrap()
}
fn symbol(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}
fn token(s: &str) -> Token {
    Token::new(s).unwrap()
}

/// Instruments: ACME (tick $0.01, lot 1, reference $10.00, collar 10%, ≤ 10,000 shares, ≤ $50,000),
/// LOTS (tick $0.05, lot 100, reference $20.00, collar 5%). Firms: F1, F2 (no STP), STPN (cancel newest),
/// STPO (cancel oldest), STPB (cancel both), STPD (decrement), LIM (2 open orders at most).
/// Logins: 1 (default F1; also STPN, STPO, STPB, STPD, LIM), 2 (F2 only), 3 (default F1; also STPN,
/// STPO, STPB, STPD: a second login of the same accounts). Capacity: 6 orders, 3 levels per side.
fn config() -> EngineConfig {
    let firm_cfg = |name: &str, stp: StpMode, open: u32| FirmConfig {
        firm: firm(name),
        open_orders_max: open,
        stp,
    };
    let all = ["F1", "STPN", "STPO", "STPB", "STPD", "LIM"].map(firm).to_vec();
    EngineConfig {
        orders_max: 6,
        levels_max: 3,
        tokens_max: 256,
        busts_max: 4,
        order_ref_first: 1,
        match_number_first: 1,
        instruments: vec![
            InstrumentConfig {
                symbol: symbol("ACME"),
                locate: 1,
                tick_size: 100,
                lot_size: 1,
                collar_bps: 1_000,
                reference_price: 100_000,
                shares_max: 10_000,
                notional_max: 500_000_000,
            },
            InstrumentConfig {
                symbol: symbol("LOTS"),
                locate: 2,
                tick_size: 500,
                lot_size: 100,
                collar_bps: 500,
                reference_price: 200_000,
                shares_max: 100_000,
                notional_max: 10_000_000_000,
            },
        ],
        firms: vec![
            firm_cfg("F1", StpMode::None, 100),
            firm_cfg("F2", StpMode::None, 100),
            firm_cfg("STPN", StpMode::CancelNewest, 100),
            firm_cfg("STPO", StpMode::CancelOldest, 100),
            firm_cfg("STPB", StpMode::CancelBoth, 100),
            firm_cfg("STPD", StpMode::Decrement, 100),
            firm_cfg("LIM", StpMode::None, 2),
        ],
        logins: vec![
            LoginConfig {
                login: 1,
                firms: all.clone(),
                default_firm: firm("F1"),
            },
            LoginConfig {
                login: 2,
                firms: vec![firm("F2")],
                default_firm: firm("F2"),
            },
            LoginConfig {
                login: 3,
                firms: all[..5].to_vec(),
                default_firm: firm("F1"),
            },
        ],
    }
}

fn parse_price(s: &str) -> Result<u32, String> {
    if s == "MKT" {
        return Ok(PRICE_MARKET);
    }
    let s = s.strip_prefix('@').unwrap_or(s);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 4 {
        return Err(format!("price {s}: more than 4 decimals"));
    }
    let whole: u64 = whole.parse().map_err(|_| format!("bad price {s}"))?;
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| format!("bad price {s}"))?
    };
    let value = whole * 10_000 + frac_value * 10u64.pow(4 - frac.len() as u32);
    u32::try_from(value).map_err(|_| format!("price {s} too large"))
}

fn price_text(p: u32) -> String {
    if p == PRICE_MARKET {
        return "MKT".into();
    }
    let mut s = format!("{}.{:04}", p / 10_000, p % 10_000);
    while s.ends_with('0') && s.len() - s.find('.').unwrap() > 3 {
        s.pop();
    }
    s
}

fn parse_tif(s: &str) -> Result<u32, String> {
    match s {
        "ioc" => Ok(0),
        "day" => Ok(99_999),
        "mkt-hours" => Ok(99_998),
        _ => s
            .trim_end_matches('s')
            .parse()
            .map_err(|_| format!("bad tif {s}")),
    }
}

/// `30s`, `500ms`, `7ns` or a bare number of nanoseconds.
fn parse_time_ns(w: &str) -> Option<u64> {
    let (digits, scale) = if let Some(d) = w.strip_suffix("ms") {
        (d, 1_000_000)
    } else if let Some(d) = w.strip_suffix("ns") {
        (d, 1)
    } else if let Some(d) = w.strip_suffix('s') {
        (d, 1_000_000_000)
    } else {
        (w, 1)
    };
    digits.parse::<u64>().ok().map(|v| v * scale)
}

fn tif_text(t: u32) -> String {
    match t {
        0 => "ioc".into(),
        99_999 => "day".into(),
        99_998 => "mkt-hours".into(),
        n => format!("{n}s"),
    }
}

fn letter(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => Err(format!("expected one letter, got {s}")),
    }
}

/// Options `key=value` after the positional arguments.
fn options<'a>(words: &[&'a str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .ok_or_else(|| format!("expected key=value, got {w}"))
        })
        .collect()
}

/// Command syntax (prices in dollars, `MKT` for market; TIF `ioc`, `day`, `mkt-hours` or `30s`):
/// - `enter LOGIN TOKEN SIDE SHARES SYMBOL PRICE [tif=day] [firm=] [display=Y] [min=0]`
/// - `cancel LOGIN TOKEN SHARES`
/// - `replace LOGIN OLD NEW SHARES PRICE [tif=day] [display=Y] [min=0]`
/// - `modify LOGIN TOKEN SIDE SHARES`
/// - `masscancel firm F | login N | symbol S  [reason=S]`
/// - `kill FIRM on|off`, `expire`, `eod`, `sod`, `halt SYMBOL`, `resume SYMBOL`, `bust MATCH`
fn parse_command(words: &[&str]) -> Result<Command, String> {
    let num = |s: &str| s.parse::<u32>().map_err(|_| format!("bad number {s}"));
    let need = |n: usize| {
        if words.len() < n {
            Err(format!("{}: too few arguments", words[0]))
        } else {
            Ok(())
        }
    };
    Ok(match words[0] {
        "enter" => {
            need(7)?;
            let mut o = EnterOrder {
                login: num(words[1])?,
                token: token(words[2]),
                side: letter(words[3])?,
                shares: num(words[4])?,
                symbol: symbol(words[5]),
                price: parse_price(words[6])?,
                tif_s: 99_999,
                firm: Firm::BLANK,
                display: b'Y',
                min_qty: 0,
                capacity: CAPACITY_DEFAULT,
                cross_type: CROSS_TYPE_DEFAULT,
            };
            for (k, v) in options(&words[7..])? {
                match k {
                    "tif" => o.tif_s = parse_tif(v)?,
                    "firm" => o.firm = firm(v),
                    "display" => o.display = letter(v)?,
                    "min" => o.min_qty = num(v)?,
                    "cap" => o.capacity = letter(v)?,
                    "cross" => o.cross_type = letter(v)?,
                    _ => return Err(format!("unknown option {k}")),
                }
            }
            Command::Enter(o)
        }
        "cancel" => {
            need(4)?;
            Command::Cancel {
                login: num(words[1])?,
                token: token(words[2]),
                shares: num(words[3])?,
            }
        }
        "replace" => {
            need(6)?;
            let mut r = ReplaceOrder {
                login: num(words[1])?,
                existing_token: token(words[2]),
                replacement_token: token(words[3]),
                shares: num(words[4])?,
                price: parse_price(words[5])?,
                tif_s: 99_999,
                display: b'Y',
                min_qty: 0,
            };
            for (k, v) in options(&words[6..])? {
                match k {
                    "tif" => r.tif_s = parse_tif(v)?,
                    "display" => r.display = letter(v)?,
                    "min" => r.min_qty = num(v)?,
                    _ => return Err(format!("unknown option {k}")),
                }
            }
            Command::Replace(r)
        }
        "modify" => {
            need(5)?;
            Command::Modify {
                login: num(words[1])?,
                token: token(words[2]),
                side: letter(words[3])?,
                shares: num(words[4])?,
            }
        }
        "masscancel" => {
            need(3)?;
            let scope = match words[1] {
                "firm" => MassCancelScope::Firm(firm(words[2])),
                "login" => MassCancelScope::Login(num(words[2])?),
                "symbol" => MassCancelScope::Instrument(symbol(words[2])),
                s => return Err(format!("bad scope {s}")),
            };
            let mut reason = CancelReason::Supervisory;
            for (k, v) in options(&words[3..])? {
                match k {
                    "reason" => reason = CancelReason::from_code(letter(v)?).ok_or("bad reason")?,
                    _ => return Err(format!("unknown option {k}")),
                }
            }
            Command::MassCancel { scope, reason }
        }
        "kill" => {
            need(3)?;
            Command::KillSwitch {
                firm: firm(words[1]),
                on: words[2] == "on",
            }
        }
        "expire" => Command::ExpireDue,
        "eod" => Command::EndOfDay,
        "sod" => Command::StartOfDay,
        "halt" => {
            need(2)?;
            Command::Halt {
                symbol: symbol(words[1]),
            }
        }
        "resume" => {
            need(2)?;
            Command::Resume {
                symbol: symbol(words[1]),
            }
        }
        "bust" => {
            need(2)?;
            // The trade is filled in from the scenario's Executed events (`with_trade`), as the daemon
            // reads it from the journal.
            Command::BustTrade {
                match_number: words[1].parse().map_err(|_| "bad match number")?,
                symbol: Symbol::BLANK,
                resting: PARTY_BLANK,
                taking: PARTY_BLANK,
            }
        }
        "throttled" => {
            need(3)?;
            Command::Throttled {
                login: num(words[1])?,
                token: token(words[2]),
            }
        }
        w => return Err(format!("unknown command {w}")),
    })
}

/// A party naming nobody (a bust of a match number no Executed event named).
const PARTY_BLANK: Party = Party {
    login: 0,
    token: Token::BLANK,
    order_ref: 0,
    firm: Firm::BLANK,
    side: b' ',
    remaining: 0,
};

/// The trades a run's Executed events named, by match number: what the daemon reads back from the
/// journal to bust one.
type Trades = std::collections::BTreeMap<u64, (Symbol, Party, Party)>;

fn note_trades(events: &[Event], trades: &mut Trades) {
    for e in events {
        if let Event::Executed(x) = e {
            trades.insert(x.match_number, (x.instrument.symbol, x.resting, x.taking));
        }
    }
}

/// A `bust` command with its trade filled in from `trades` (left blank for a match number no Executed
/// event named); any other command as it is.
fn with_trade(command: Command, trades: &Trades) -> Command {
    match command {
        Command::BustTrade { match_number, .. } => match trades.get(&match_number) {
            Some(&(symbol, resting, taking)) => Command::BustTrade {
                match_number,
                symbol,
                resting,
                taking,
            },
            None => command,
        },
        other => other,
    }
}

fn who(login: u32, token: &Token) -> String {
    format!("{login}/{}", token.as_str_lossy())
}

fn party(p: &Party) -> String {
    format!(
        "{} ref={} {} {} left={}",
        who(p.login, &p.token),
        p.order_ref,
        p.side as char,
        p.firm,
        p.remaining
    )
}

fn canceled(c: &Canceled) -> String {
    let side = match c.side {
        Side::Buy => 'B',
        Side::Sell => 'S',
    };
    format!(
        "{} ref={} {side} {} @{} -{} left={} reason={} {}",
        who(c.login, &c.token),
        c.order_ref,
        c.instrument.symbol,
        price_text(c.price),
        c.decrement,
        c.remaining,
        c.reason.code() as char,
        if c.on_book { "book" } else { "nobook" }
    )
}

/// Capacity and Cross Type of an `enter` without `cap=` / `cross=`; rendered only when they differ.
const CAPACITY_DEFAULT: u8 = b'A';
const CROSS_TYPE_DEFAULT: u8 = b'N';

/// ` cap=X cross=Y` for the letters that are not the defaults.
fn echo_text(s: &mut String, capacity: u8, cross_type: u8) {
    if capacity != CAPACITY_DEFAULT {
        let _ = write!(s, " cap={}", capacity as char);
    }
    if cross_type != CROSS_TYPE_DEFAULT {
        let _ = write!(s, " cross={}", cross_type as char);
    }
}

/// One event as a fixture line (without the `< `).
fn render(e: &Event) -> String {
    match e {
        Event::Accepted(a) => {
            let mut s = format!(
                "accepted {} ref={} {} {} {} @{} {} {} {}",
                who(a.login, &a.token),
                a.order_ref,
                a.side as char,
                a.shares,
                a.instrument.symbol,
                price_text(a.price),
                tif_text(a.tif_s),
                a.firm,
                a.display as char
            );
            if a.min_qty > 0 {
                let _ = write!(s, " min={}", a.min_qty);
            }
            echo_text(&mut s, a.capacity, a.cross_type);
            s
        }
        Event::Added(a) => format!(
            "added ref={} {} {} {} @{} {}{}",
            a.order_ref,
            a.side.itch_letter() as char,
            a.shares,
            a.instrument.symbol,
            price_text(a.price),
            a.firm,
            if a.attributed { " attributed" } else { "" }
        ),
        Event::Executed(x) => format!(
            "executed #{} {} {} @{} resting {} | taking {}",
            x.match_number,
            x.instrument.symbol,
            x.shares,
            price_text(x.price),
            party(&x.resting),
            party(&x.taking)
        ),
        Event::Canceled(c) => format!("canceled {}", canceled(c)),
        Event::SelfTradeCanceled(s) => format!(
            "aiq-canceled {} prevented={} @{} liq={}",
            canceled(&s.canceled),
            s.prevented,
            price_text(s.execution_price),
            s.liquidity as char
        ),
        Event::Replaced(r) => {
            let mut s = format!(
                "replaced {} ref={} left={} -> {} ref={} {} {} {} @{} {} {} {} feed={}",
                who(r.login, &r.previous_token),
                r.previous_order_ref,
                r.previous_remaining,
                r.token.as_str_lossy(),
                r.order_ref,
                r.side as char,
                r.shares,
                r.instrument.symbol,
                price_text(r.price),
                tif_text(r.tif_s),
                r.firm,
                r.display as char,
                if r.feed_replace { "replace" } else { "delete" }
            );
            if r.min_qty > 0 {
                let _ = write!(s, " min={}", r.min_qty);
            }
            echo_text(&mut s, r.capacity, r.cross_type);
            s
        }
        Event::Modified(m) => format!(
            "modified {} ref={} {} {} {} -{}",
            who(m.login, &m.token),
            m.order_ref,
            m.instrument.symbol,
            m.side as char,
            m.shares,
            m.decrement
        ),
        Event::Rejected {
            login, token, reason, ..
        } => {
            format!("rejected {} reason={}", who(*login, token), reason.code() as char)
        }
        Event::CancelRejected {
            login,
            token,
            order_ref,
            ..
        } => format!("cancel-rejected {} ref={order_ref}", who(*login, token)),
        Event::TradingAction {
            instrument, halted, ..
        } => {
            format!(
                "trading {} {}",
                instrument.symbol,
                if *halted { "halted" } else { "resumed" }
            )
        }
        Event::SystemEvent { code, .. } => format!("system {}", *code as char),
        Event::Broken {
            match_number,
            instrument,
            resting,
            taking,
            ..
        } => {
            format!(
                "broken #{match_number} {} resting {} | taking {}",
                instrument.symbol,
                party(resting),
                party(taking)
            )
        }
        Event::KillSwitch { firm, on, .. } => format!("killswitch {firm} {}", if *on { "on" } else { "off" }),
    }
}

fn depth_text(engine: &Engine, sym: &Symbol, side: Side) -> String {
    engine
        .depth(sym, side)
        .iter()
        .map(|(p, q, _)| format!("{}x{q}", price_text(*p)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn queue_text(engine: &Engine, sym: &Symbol, side: Side) -> String {
    engine
        .orders_in_priority(sym, side)
        .iter()
        .map(|(_, _, _, login, tok)| who(*login, tok))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one fixture; returns the list of mismatches (empty = pass) and the actual transcript.
fn run_fixture(text: &str) -> (Vec<String>, String) {
    let mut engine = Engine::new(config()).expect("scenario config is valid");
    let mut errors = Vec::new();
    let mut transcript = String::new();
    let mut now_ns = 0u64;
    let mut pending: Option<(usize, Vec<String>, Vec<String>)> = None; // (line, expected, actual)
    let mut trades = Trades::new();
    let flush = |pending: &mut Option<(usize, Vec<String>, Vec<String>)>, errors: &mut Vec<String>| {
        if let Some((line, expected, actual)) = pending.take()
            && expected != actual
        {
            errors.push(format!(
                "line {line}: events differ\n  expected:\n    {}\n  actual:\n    {}",
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("< ") {
            match pending.as_mut() {
                Some((_, expected, _)) => expected.push(rest.trim().to_string()),
                None => errors.push(format!("line {line_no}: event line without a command")),
            }
            transcript.push_str(raw);
            transcript.push('\n');
            continue;
        }
        flush(&mut pending, &mut errors);
        if let Some(rest) = line.strip_prefix("= ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (actual, expected) = match words.as_slice() {
                ["bids", sym, levels @ ..] => {
                    (depth_text(&engine, &symbol(sym), Side::Buy), levels.join(" "))
                }
                ["asks", sym, levels @ ..] => {
                    (depth_text(&engine, &symbol(sym), Side::Sell), levels.join(" "))
                }
                ["queue", sym, side, orders @ ..] => {
                    let side = if *side == "B" { Side::Buy } else { Side::Sell };
                    (queue_text(&engine, &symbol(sym), side), orders.join(" "))
                }
                _ => {
                    errors.push(format!("line {line_no}: bad assertion {rest}"));
                    continue;
                }
            };
            if actual != expected {
                errors.push(format!("line {line_no}: {rest}\n  actual: {actual}"));
            }
            transcript.push_str(raw);
            transcript.push('\n');
            continue;
        }
        if let Some(rest) = line.strip_prefix("> ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            transcript.push_str(raw);
            transcript.push('\n');
            if words.first() == Some(&"at") && words.len() == 2 {
                match parse_time_ns(words[1]) {
                    Some(t) => now_ns = t,
                    None => errors.push(format!("line {line_no}: bad time {}", words[1])),
                }
                continue;
            }
            let command = match parse_command(&words) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!("line {line_no}: {e}"));
                    continue;
                }
            };
            now_ns += 1_000;
            let mut events = Vec::new();
            engine.apply(now_ns, &with_trade(command, &trades), &mut events);
            note_trades(&events, &mut trades);
            if let Err(e) = engine.check_invariants() {
                errors.push(format!("line {line_no}: invariant broken: {e}"));
            }
            let actual: Vec<String> = events.iter().map(render).collect();
            for e in &events {
                assert_eq!(e.timestamp_ns(), now_ns, "every event carries the command's time");
            }
            pending = Some((line_no, Vec::new(), actual));
            continue;
        }
        if !(line.is_empty() || line.starts_with('#')) {
            errors.push(format!("line {line_no}: unrecognised line: {line}"));
        }
        transcript.push_str(raw);
        transcript.push('\n');
    }
    flush(&mut pending, &mut errors);
    (errors, transcript)
}

/// The transcript with actual events (for BLESS): commands and comments kept, `<` lines regenerated.
fn actual_transcript(text: &str) -> String {
    let mut engine = Engine::new(config()).expect("valid");
    let mut out = String::new();
    let mut now_ns = 0u64;
    let mut trades = Trades::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("< ") {
            continue;
        }
        out.push_str(raw);
        out.push('\n');
        if let Some(rest) = line.strip_prefix("> ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.first() == Some(&"at") {
                now_ns = parse_time_ns(words.get(1).copied().unwrap_or("")).unwrap_or(now_ns);
                continue;
            }
            if let Ok(c) = parse_command(&words) {
                now_ns += 1_000;
                let mut events = Vec::new();
                engine.apply(now_ns, &with_trade(c, &trades), &mut events);
                note_trades(&events, &mut trades);
                for e in &events {
                    out.push_str("< ");
                    out.push_str(&render(e));
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[test]
fn scenario_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the scenario files in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut commands = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        commands += text.lines().filter(|l| l.trim().starts_with("> ")).count();
        let (errors, _) = run_fixture(&text);
        if !errors.is_empty() {
            match std::env::var("BLESS").as_deref() {
                Ok("write") => std::fs::write(path, actual_transcript(&text)).unwrap(),
                Ok(_) => eprintln!("==== actual {}\n{}", path.display(), actual_transcript(&text)),
                Err(_) => {}
            }
            failures.push(format!("{}:\n{}", path.display(), errors.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(commands > 100, "only {commands} scenario commands");
}

#[test]
fn the_runner_catches_a_wrong_expectation() {
    let text = "> enter 1 A B 100 ACME 10.00\n< accepted 1/A ref=1 B 100 ACME @10.00 day F1 Y\n< added ref=1 B 100 ACME @10.00 F2\n";
    let (errors, _) = run_fixture(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (errors, _) = run_fixture("> enter 1 A B 100 ACME 10.00\n= bids ACME 10.00x200\n");
    assert_eq!(errors.len(), 2, "missing events and wrong depth: {errors:?}");
    let _ = Alpha::<1>::BLANK;
}

/// Takers of several fills each, on the engine and on one restored from a snapshot taken mid-way: a bust
/// of each fill gives one Broken with the parties its Executed event named, once.
#[test]
fn a_bust_breaks_each_fill_once_on_the_engine_and_on_a_restored_one() {
    // Three resting sells of 100 and one buy of 300 that takes all three: three fills per round.
    let round = |engine: &mut Engine, n: u32, executed: &mut Vec<(u64, Party, Party)>| {
        for k in 0..3 {
            apply_line(engine, &format!("enter 2 S{n}_{k} S 100 ACME 10.00"), executed);
        }
        apply_line(engine, &format!("enter 1 B{n} B 300 ACME 10.00"), executed);
    };
    let mut engine = Engine::new(config()).unwrap();
    let mut executed = Vec::new();
    round(&mut engine, 1, &mut executed);
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes);
    let mut restored = Engine::restore(config(), &bytes).unwrap();
    let mut executed_restored = executed.clone();
    round(&mut engine, 2, &mut executed);
    round(&mut restored, 2, &mut executed_restored);
    assert_eq!(executed, executed_restored);
    assert_eq!(executed.len(), 6);
    for e in [&mut engine, &mut restored] {
        // `busts_max` is 4 a day: the first four busts are made, the rest ignored.
        for m in 1..=6u64 {
            let made = bust(e, m, &executed);
            if m <= 4 {
                assert_eq!(made, Some(parties_of(&executed, m)), "match {m}");
                assert_eq!(bust(e, m, &executed), None, "match {m} busted twice");
            } else {
                assert_eq!(made, None, "match {m}: over the day's busts_max");
            }
        }
    }
}

/// A bust names the instrument by symbol: one the engine does not know is ignored.
#[test]
fn a_bust_of_an_unknown_symbol_is_ignored() {
    let mut engine = Engine::new(config()).unwrap();
    let mut executed = Vec::new();
    apply_line(&mut engine, "enter 2 S1 S 100 ACME 10.00", &mut executed);
    apply_line(&mut engine, "enter 1 B1 B 100 ACME 10.00", &mut executed);
    let (resting, taking) = parties_of(&executed, 1);
    let mut events = Vec::new();
    let command = |symbol| Command::BustTrade {
        match_number: 1,
        symbol,
        resting,
        taking,
    };
    engine.apply(0, &command(crate::symbol("NOPE")), &mut events);
    assert!(events.is_empty(), "{events:?}");
    engine.apply(0, &command(crate::symbol("ACME")), &mut events);
    assert!(matches!(events.as_slice(), [Event::Broken { .. }]), "{events:?}");
}

/// Applies one scenario command line; returns its events and records each Executed's parties.
fn apply_line(engine: &mut Engine, line: &str, executed: &mut Vec<(u64, Party, Party)>) -> Vec<Event> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut events = Vec::new();
    engine.apply(0, &parse_command(&words).unwrap(), &mut events);
    for e in &events {
        if let Event::Executed(x) = e {
            executed.push((x.match_number, x.resting, x.taking));
        }
    }
    events
}

/// Busts `match_number`, named as its Executed event in `executed` named it (blank parties if none did, as
/// for a match number never traded): `Some((resting, taking))` of its Broken event, `None` if it gave no
/// event.
fn bust(engine: &mut Engine, match_number: u64, executed: &[(u64, Party, Party)]) -> Option<(Party, Party)> {
    let (resting, taking) = executed
        .iter()
        .find(|(m, _, _)| *m == match_number)
        .map_or((PARTY_BLANK, PARTY_BLANK), |&(_, r, t)| (r, t));
    let mut events = Vec::new();
    let command = Command::BustTrade {
        match_number,
        symbol: symbol("ACME"),
        resting,
        taking,
    };
    engine.apply(0, &command, &mut events);
    match events.as_slice() {
        [] => None,
        [
            Event::Broken {
                match_number: m,
                resting,
                taking,
                ..
            },
        ] if *m == match_number => Some((*resting, *taking)),
        other => panic!("bust {match_number}: {other:?}"),
    }
}

/// The parties of `match_number`'s Executed event.
fn parties_of(executed: &[(u64, Party, Party)], match_number: u64) -> (Party, Party) {
    let &(_, resting, taking) = executed
        .iter()
        .find(|(m, _, _)| *m == match_number)
        .expect("an executed match number");
    (resting, taking)
}

/// A bust names both parties as they were at the trade (tokens, refs, remaining) after both orders have
/// left the book since (filled, canceled, replaced), on the engine and on one restored from a snapshot
/// taken after they left; a taker whose token arrived out of order (so the token table keeps it apart
/// from the login's in-order tokens) included.
#[test]
fn a_bust_names_the_parties_at_the_trade_after_their_orders_left_the_book() {
    let mut engine = Engine::new(config()).unwrap();
    let mut executed = Vec::new();
    for line in [
        "enter 2 S1 S 100 ACME 10.00",
        // #1: S1 filled; B1 rests 50.
        "enter 1 B1 B 150 ACME 10.00",
        "enter 2 S3 S 100 ACME 10.05",
        // #2: S2 is below login 2's highest token (S3): out of order. B1 filled.
        "enter 2 S2 S 50 ACME 10.00",
        // #3: S3 left 60, then canceled.
        "enter 1 B2 B 40 ACME 10.05",
        "cancel 2 S3 0",
        // #4: S4 left 90, then replaced by S5.
        "enter 2 S4 S 100 ACME 10.00",
        "enter 1 B3 B 10 ACME 10.00",
        "replace 2 S4 S5 90 10.10",
    ] {
        apply_line(&mut engine, line, &mut executed);
    }
    assert_eq!(executed.len(), 4);
    assert_eq!(engine.order_count(), 1, "only S5 rests");
    assert_eq!(parties_of(&executed, 2).1.token, token("S2"));
    assert_eq!(parties_of(&executed, 3).0.remaining, 60);
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes);
    let mut restored = Engine::restore(config(), &bytes).unwrap();
    for e in [&mut engine, &mut restored] {
        for m in 1..=4 {
            assert_eq!(bust(e, m, &executed), Some(parties_of(&executed, m)), "match {m}");
            assert_eq!(bust(e, m, &executed), None, "match {m} busted twice");
        }
        assert_eq!(bust(e, 5, &executed), None, "no trade 5 yet");
    }
}

/// Busts are of the current day and once: a bust made before a snapshot stays made after the restore;
/// after End and Start of Day the previous day's trades are not busted (on the engine, on one restored
/// before the new day and on one restored after its first trade) while the new day's are.
#[test]
fn busts_are_of_the_current_day_once_across_restores_and_days() {
    // One trade per round: a resting sell of 100 taken by a buy of 100.
    let round = |engine: &mut Engine, n: u32, executed: &mut Vec<(u64, Party, Party)>| {
        apply_line(engine, &format!("enter 2 S{n} S 100 ACME 10.00"), executed);
        apply_line(engine, &format!("enter 1 B{n} B 100 ACME 10.00"), executed);
    };
    let mut engine = Engine::new(config()).unwrap();
    let mut executed = Vec::new();
    for n in 1..=5 {
        round(&mut engine, n, &mut executed);
    }
    assert_eq!(bust(&mut engine, 5, &executed), Some(parties_of(&executed, 5)));
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes);
    let mut restored = Engine::restore(config(), &bytes).unwrap();
    assert_eq!(restored.state_hash(), engine.state_hash());
    assert_eq!(
        bust(&mut restored, 5, &executed),
        None,
        "busted before the snapshot"
    );
    assert_eq!(
        bust(&mut restored, 1, &executed),
        Some(parties_of(&executed, 1)),
        "the day's oldest"
    );
    assert_eq!(bust(&mut engine, 1, &executed), Some(parties_of(&executed, 1)));
    assert_eq!(engine.state_hash(), restored.state_hash());
    let mut day2 = Vec::new();
    for e in [&mut engine, &mut restored] {
        for line in ["eod", "sod"] {
            apply_line(e, line, &mut Vec::new());
        }
        let mut executed_here = Vec::new();
        round(e, 6, &mut executed_here);
        assert_eq!(executed_here.len(), 1);
        day2 = executed_here;
    }
    assert_eq!(engine.state_hash(), restored.state_hash());
    engine.snapshot({
        bytes.clear();
        &mut bytes
    });
    let mut restored_day2 = Engine::restore(config(), &bytes).unwrap();
    for e in [&mut engine, &mut restored, &mut restored_day2] {
        assert_eq!(bust(e, 3, &executed), None, "a trade of the previous day");
        assert_eq!(bust(e, 6, &day2), Some(parties_of(&day2, 6)));
        assert_eq!(bust(e, 6, &day2), None, "busted twice");
        assert_eq!(bust(e, 7, &day2), None, "no trade 7 yet");
    }
}
