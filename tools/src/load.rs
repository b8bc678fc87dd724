//! The load generator: N market-maker sessions over SoupBinTCP 4.0 + OUCH 4.2, open loop at a target rate,
//! order-to-ack latency measured from each order's *scheduled* send time. Shared by `bourse load`,
//! `bourse demo` and the end-to-end benchmark harness (`benches/src/bin/e2e.rs`).
//!
//! # What it does
//! 1. Connects every session (non-blocking, at most [`CONNECTS_IN_FLIGHT_MAX`] handshakes at once), logs each
//!    in with its own username and password (Requested Sequence Number 0: only new messages) and waits for
//!    every Login Accepted (bounded by `connect_timeout`).
//! 2. Sends requests on a fixed schedule: request `k` is due at `k / rate` seconds after the start, and goes to
//!    session `k mod N`; what falls due for one session in one loop round leaves in one `write`. What it is comes from that session's seeded [`mix::OrderMix`] (quotes near the touch
//!    on both sides, cancels and replaces of its own live orders, aggressive IOC orders, a few market orders).
//! 3. Reads every reply, keeps each session's view of its live orders, and records the latency of each
//!    request's **ack**: the first OUCH reply for it (Accepted or Rejected for an Enter Order, Replaced or
//!    Rejected for a Replace Order, Canceled for a Cancel Order), as `ack receive time - scheduled send time`.
//! 4. Stops sending at the count or duration, waits up to `drain_timeout` for the acks still due, reads on
//!    until the sessions are quiet ([`SETTLE_QUIET`], at most [`SETTLE_MAX`]: the maker's side of the last
//!    trades), logs out.
//!
//! # Closed loop
//! With [`LoadConfig::closed_loop`] there is no schedule: each session has one request in flight at a
//! time and sends its next as soon as its previous one is acked, and latency counts from the actual send.
//! This is the order-entry twin of a ping-pong: a host pause delays one sample, not every request that
//! fell due during it, so a closed-loop p99 compares with a closed-loop ping-pong's (the benchmark's floor)
//! method for method. The rate is not used; the run ends at the count or the duration.
//!
//! # Coordinated omission
//! The loop is open: a slow reply never delays the schedule. When the generator itself falls behind (the
//! machine is busy, a session's in-flight window is full), requests go out late but keep their scheduled
//! time, so the wait shows in the latency instead of vanishing (Gil Tene's correction, applied by
//! construction rather than after the fact).
//!
//! # Requests without a reply
//! bourse ignores, without reply, a Cancel or Replace whose order is no longer live (`docs/protocol.md` 3.3,
//! "Tokens"). That happens when an order dies (fully executed by another session, or canceled by the
//! exchange) while a cancel or replace for it is on the wire. The stream is ordered, so the generator sees
//! the order's death before the request is processed, and counts the request as **ignored** there: every
//! request ends as exactly one of acked, ignored or unanswered (the drain timed out or the session closed).
//!
//! # Is the client the bottleneck?
//! With busy polling the report carries the client's own busy meter ([`LoadReport::client_busy`]): the
//! share of the run spent in loop rounds that sent or read something. Near 100 % the client itself set the
//! achieved rate. Each request's bookkeeping is O(1) (the in-flight window in `window.rs`, the live orders
//! in `orders.rs`); before session 19 it was not, and the benchmark's saturated steps measured the client
//! for the echo server and for `boursed` alike (docs/PERFORMANCE.md, "Session 19").
//!
//! # Limits and threading
//! One thread, mio (epoll) readiness or spinning reads for a handful of sessions ([`PollMode`]). Every
//! per-session table is allocated at connect: `live_orders_max` orders, `in_flight_max` requests, a send and
//! a receive buffer of [`session_buffer_bytes`] each (64 KiB, less with thousands of sessions, so that all
//! of them together stay near [`SESSION_BUFFERS_BYTES_TOTAL`]); a session whose window or buffer is full
//! holds the schedule back (its requests go out late, their latency grows). At most [`SESSIONS_MAX`]
//! sessions. The latency histogram covers 1 ns to [`LATENCY_NS_MAX`] at 3 significant digits and saturates.
//! Every socket talks to the address given (tests and tools use 127.0.0.1).

pub mod cli;
pub mod daemon;
pub mod echo;
pub mod mix;
mod orders;
mod window;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bourse_protocol::fields::{Alpha, Firm, PRICE_MARKET, Token};
use bourse_protocol::ouch::{
    self, CancelOrder, Display, EnterOrder, Message, OrderState, OrderTerms, Outbound, ReplaceOrder, Side,
};
use bourse_protocol::soupbintcp::{
    self, LoginRequest, Packet, PacketType, Password, SessionName, StreamBuffer, Username,
};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll};

use mix::{Action, MixState, OrderMix};
pub use mix::{Instrument, MixWeights};
use orders::{LiveOrder, LiveOrders};
use window::{Kind, Pending, Window};

/// Most sessions one generator runs (mio tokens, file descriptors).
pub const SESSIONS_MAX: usize = 65_536;
/// TCP handshakes plus logins in progress at once during the connect phase.
pub const CONNECTS_IN_FLIGHT_MAX: usize = 256;
/// Largest send (and receive) buffer of one session.
pub const SESSION_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Smallest one: four maximal SoupBinTCP frames.
pub const SESSION_BUFFER_BYTES_MIN: usize = 4 * soupbintcp::FRAME_SIZE_MAX_DEFAULT;
/// What the send and receive buffers of all sessions together aim at (with many sessions each gets less).
pub const SESSION_BUFFERS_BYTES_TOTAL: usize = 128 * 1024 * 1024;

/// The send and receive buffer size of each of `sessions` sessions: [`SESSION_BUFFERS_BYTES_TOTAL`] shared
/// out (two buffers each), within [`SESSION_BUFFER_BYTES_MIN`]..=[`SESSION_BUFFER_BYTES_MAX`].
pub fn session_buffer_bytes(sessions: usize) -> usize {
    (SESSION_BUFFERS_BYTES_TOTAL / (2 * sessions.max(1)))
        .clamp(SESSION_BUFFER_BYTES_MIN, SESSION_BUFFER_BYTES_MAX)
}
/// Frames handled per session per read, before the loop goes back to the schedule.
pub const FRAMES_PER_READ_MAX: usize = 4096;
/// Requests sent per loop round at most (then replies are read again).
pub const SENDS_PER_ROUND_MAX: usize = 1024;
/// Largest latency the histogram holds, nanoseconds (larger samples saturate).
pub const LATENCY_NS_MAX: u64 = 600_000_000_000;
/// Readiness events handled per poll.
pub const EVENTS_MAX: usize = 1024;
/// Sessions at or below which [`PollMode::Auto`] spins over the sockets instead of asking epoll.
pub const SPIN_SESSIONS_MAX: usize = 4;
/// Largest scheduled request count (a guard against a rate times duration that cannot be meant).
pub const REQUESTS_MAX: u64 = 1 << 40;
/// Sessions checked for a due Client Heartbeat per loop round (round robin over all of them).
pub const HEARTBEAT_CHECKS_PER_ROUND: usize = 8;
/// After the last ack, replies are still read until none came for this long (the other side of a trade)...
pub const SETTLE_QUIET: Duration = Duration::from_millis(20);
/// ... but no longer than this.
pub const SETTLE_MAX: Duration = Duration::from_secs(1);
/// Without busy polling: the longest nap when the next send is less than a millisecond away (epoll cannot
/// wait for less); a reply that arrives during it is read up to this late.
pub const NAP_NS: u64 = 50_000;
/// Characters of the run prefix at the front of every token (the rest is a base-36 counter).
pub const TOKEN_PREFIX_LEN: usize = 6;

/// A login of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// SoupBinTCP username (1 to 6 characters).
    pub username: String,
    /// Password (1 to 10 characters).
    pub password: String,
}

/// When the schedule ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Requests scheduled over this long.
    Duration(Duration),
    /// This many requests.
    Count(u64),
}

/// How replies are waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// [`PollMode::Spin`] up to [`SPIN_SESSIONS_MAX`] sessions, [`PollMode::Epoll`] above.
    Auto,
    /// Readiness from epoll (mio).
    Epoll,
    /// Try a non-blocking read on every session each round (lowest latency for a few sessions).
    Spin,
}

/// Everything a run needs. [`LoadConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The order-entry address of `boursed`.
    pub order_entry: SocketAddr,
    /// One login per session.
    pub logins: Vec<Credentials>,
    /// Instruments the mix trades (not empty).
    pub instruments: Vec<Instrument>,
    /// Offered requests per second, all sessions together.
    pub rate_per_s: f64,
    /// Duration or count.
    pub limit: Limit,
    /// Seed of every session's order mix.
    pub seed: u64,
    /// Order mix weights.
    pub weights: MixWeights,
    /// Six characters at the front of every token; `None`: derived from the clock (tokens are day-unique per
    /// login, so two runs of one day need different prefixes).
    pub token_prefix: Option<String>,
    /// Resting orders plus quotes in flight per session.
    pub live_orders_max: usize,
    /// Requests in flight per session.
    pub in_flight_max: usize,
    /// Bound on the connect and login phase.
    pub connect_timeout: Duration,
    /// Bound on waiting for acks after the last scheduled request.
    pub drain_timeout: Duration,
    /// A Client Heartbeat goes out after this long without sending.
    pub heartbeat_interval: Duration,
    /// How replies are waited for.
    pub poll: PollMode,
    /// Never sleep between rounds (lowest latency, one core busy); otherwise epoll waits for the whole
    /// milliseconds before the next scheduled send and the generator naps at most [`NAP_NS`] below that.
    pub busy_poll: bool,
    /// How often the progress callback runs (`None`: never).
    pub progress_interval: Option<Duration>,
    /// One request in flight per session, the next sent when the previous is acked, latency from the
    /// actual send time; `rate_per_s` is not used (see the module header, "Closed loop").
    pub closed_loop: bool,
    /// Sessions that send requests: the first this many (`None`: all). The others log in, read and send
    /// heartbeats: sessions connected beside the ones trading.
    pub senders: Option<usize>,
}

impl LoadConfig {
    /// Defaults: 1000 requests/s for 5 s, seed 1, the default mix, 32 live orders and 256 requests in flight
    /// per session, 10 s to connect, 5 s to drain, heartbeats every second, automatic polling, busy polling,
    /// progress every second.
    pub fn new(order_entry: SocketAddr, logins: Vec<Credentials>, instruments: Vec<Instrument>) -> Self {
        Self {
            order_entry,
            logins,
            instruments,
            rate_per_s: 1000.0,
            limit: Limit::Duration(Duration::from_secs(5)),
            seed: 1,
            weights: MixWeights::default(),
            token_prefix: None,
            live_orders_max: 32,
            in_flight_max: 256,
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            poll: PollMode::Auto,
            busy_poll: true,
            progress_interval: Some(Duration::from_secs(1)),
            closed_loop: false,
            senders: None,
        }
    }

    /// Requests the run may send: the count, or the rate times the duration (closed loop with a duration:
    /// [`REQUESTS_MAX`], the duration ends it).
    fn total_requests(&self) -> u64 {
        match self.limit {
            Limit::Count(n) => n,
            Limit::Duration(_) if self.closed_loop => REQUESTS_MAX,
            Limit::Duration(d) => (d.as_secs_f64() * self.rate_per_s).round() as u64,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration is not usable.
    #[error("load: {0}")]
    Config(String),
    /// A socket error during connect or login.
    #[error("load: session {user}: {error}")]
    Connect {
        /// The session's username.
        user: String,
        /// The error.
        error: io::Error,
    },
    /// The exchange refused a login.
    #[error("load: login {user} rejected ({reason})")]
    LoginRejected {
        /// The username.
        user: String,
        /// `not authorized` or `session not available`.
        reason: &'static str,
    },
    /// Not every session was logged in within `connect_timeout`.
    #[error("load: only {logged_in} of {sessions} sessions logged in within {timeout:?}")]
    ConnectTimeout {
        /// Sessions logged in.
        logged_in: usize,
        /// Sessions wanted.
        sessions: usize,
        /// The bound.
        timeout: Duration,
    },
    /// Poll or clock failure.
    #[error("load: {0}")]
    Io(#[from] io::Error),
}

/// Request kinds, in the order of [`LoadReport::sent`].
pub const KIND_NAMES: [&str; 5] = ["quote", "cancel", "replace", "aggressive", "market"];

/// A snapshot handed to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Seconds since the schedule started.
    pub elapsed_s: f64,
    /// Requests sent so far.
    pub sent: u64,
    /// Requests scheduled in total.
    pub scheduled: u64,
    /// Acks so far.
    pub acked: u64,
    /// p99 order-to-ack so far, nanoseconds.
    pub p99_ns: u64,
}

/// Width of the progress bar, characters.
const PROGRESS_BAR_WIDTH: usize = 20;

impl Progress {
    /// One line for a terminal, with a bar of what was sent of what is scheduled:
    /// `load: [######--------------]  30% 3.0s sent 3000/10000 acked 2999 p99 41.2us`.
    pub fn line(&self) -> String {
        let fraction = if self.scheduled == 0 {
            0.0
        } else {
            (self.sent as f64 / self.scheduled as f64).clamp(0.0, 1.0)
        };
        let filled = (fraction * PROGRESS_BAR_WIDTH as f64).round() as usize;
        format!(
            "load: [{}{}] {:>3.0}% {:.1}s sent {}/{} acked {} p99 {}",
            "#".repeat(filled),
            "-".repeat(PROGRESS_BAR_WIDTH - filled),
            fraction * 100.0,
            self.elapsed_s,
            self.sent,
            self.scheduled,
            self.acked,
            format_ns(self.p99_ns)
        )
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Sessions run.
    pub sessions: usize,
    /// Offered rate, requests per second (0 in closed loop).
    pub offered_per_s: f64,
    /// The run was closed loop (latency from the actual send time).
    pub closed_loop: bool,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests sent, by kind ([`KIND_NAMES`] order).
    pub sent: [u64; 5],
    /// Requests acked (the order-to-ack samples).
    pub acked: u64,
    /// Cancels and replaces the exchange ignored because their order died first (see the module header).
    pub ignored: u64,
    /// Requests without an ack when the run ended (drain timeout, closed session).
    pub unanswered: u64,
    /// Acks that were Accepted.
    pub accepted: u64,
    /// Acks that were Replaced.
    pub replaced: u64,
    /// Acks that were Canceled for the session's own Cancel Order.
    pub canceled: u64,
    /// Rejected acks by reason letter.
    pub rejected: Vec<(char, u64)>,
    /// Executions received (both sides of a trade between two sessions count once each).
    pub fills: u64,
    /// Shares executed.
    pub fill_shares: u64,
    /// Executions in which the session's order took liquidity (Liquidity Flag `R`): one per trade, so the
    /// number of trades when every participant is one of the sessions.
    pub taker_fills: u64,
    /// Cancels the session did not ask for, by reason letter (IOC remainders `I`, collars `K`, ...).
    pub other_cancels: Vec<(char, u64)>,
    /// Replies for tokens with no request waiting (should be 0).
    pub unmatched: u64,
    /// Sessions that ended before the run did (disconnects, End of Session).
    pub disconnects: u64,
    /// Debug packets received (their text, up to 10).
    pub debug_texts: Vec<String>,
    /// Times the schedule waited for a session's window or buffer.
    pub schedule_stalls: u64,
    /// With busy polling: the share of the run's time the client spent in rounds that sent or read
    /// something (near 1 at saturation: the client, not the server, set the rate). `None` when the client
    /// waited in epoll.
    pub client_busy: Option<f64>,
    /// Seconds from the first scheduled send to the last ack.
    pub elapsed_s: f64,
    /// Order-to-ack latency, nanoseconds, from the scheduled send time (closed loop: the actual one).
    pub latency: Histogram<u64>,
}

impl LoadReport {
    /// Acks per second over the run.
    pub fn achieved_per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.acked as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Total rejects.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }

    /// Total requests sent.
    pub fn sent_total(&self) -> u64 {
        self.sent.iter().sum()
    }

    /// Latency at quantile `q`, nanoseconds.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    /// The human summary: latency table, throughput, outcomes.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let h = &self.latency;
        out.push_str(&format!(
            "order-to-ack latency ({} samples, from the {} send time):\n",
            h.len(),
            if self.closed_loop { "actual" } else { "scheduled" }
        ));
        out.push_str(&latency_table(h));
        let offered = if self.closed_loop {
            "closed loop (one request in flight per session)".to_owned()
        } else {
            format!("offered {:.0}/s", self.offered_per_s)
        };
        let busy = self
            .client_busy
            .map(|b| format!("; client busy {:.0} %", 100.0 * b))
            .unwrap_or_default();
        out.push_str(&format!(
            "throughput: {offered}, achieved {:.0}/s over {:.2}s ({} sessions){busy}\n",
            self.achieved_per_s(),
            self.elapsed_s,
            self.sessions
        ));
        let sent: Vec<String> = KIND_NAMES
            .iter()
            .zip(self.sent)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        out.push_str(&format!(
            "sent {} ({}); acked {}, ignored {} (order gone first), unanswered {}\n",
            self.sent_total(),
            sent.join(", "),
            self.acked,
            self.ignored,
            self.unanswered
        ));
        out.push_str(&format!(
            "acks: accepted {}, replaced {}, canceled {}, rejected {}{}\n",
            self.accepted,
            self.replaced,
            self.canceled,
            self.rejected_total(),
            letters(&self.rejected)
        ));
        out.push_str(&format!(
            "fills {} ({} shares, {} as taker); other cancels {}{}\n",
            self.fills,
            self.fill_shares,
            self.taker_fills,
            self.other_cancels.iter().map(|(_, n)| n).sum::<u64>(),
            letters(&self.other_cancels)
        ));
        if self.disconnects > 0 || self.unmatched > 0 || self.schedule_stalls > 0 {
            out.push_str(&format!(
                "disconnects {}, unmatched replies {}, schedule stalls {}\n",
                self.disconnects, self.unmatched, self.schedule_stalls
            ));
        }
        for text in &self.debug_texts {
            out.push_str(&format!("debug from exchange: {text}\n"));
        }
        out
    }

    /// The report as JSON (latencies in nanoseconds).
    pub fn to_json(&self) -> serde_json::Value {
        let h = &self.latency;
        let map = |v: &[(char, u64)]| -> serde_json::Map<String, serde_json::Value> {
            v.iter()
                .map(|(c, n)| (c.to_string(), serde_json::json!(n)))
                .collect()
        };
        let sent: serde_json::Map<String, serde_json::Value> = KIND_NAMES
            .iter()
            .zip(self.sent)
            .map(|(k, n)| ((*k).to_owned(), serde_json::json!(n)))
            .collect();
        serde_json::json!({
            "sessions": self.sessions,
            "offered_per_s": self.offered_per_s,
            "closed_loop": self.closed_loop,
            "achieved_per_s": self.achieved_per_s(),
            "elapsed_s": self.elapsed_s,
            "scheduled": self.scheduled,
            "sent": sent,
            "acked": self.acked,
            "ignored": self.ignored,
            "unanswered": self.unanswered,
            "accepted": self.accepted,
            "replaced": self.replaced,
            "canceled": self.canceled,
            "rejected": map(&self.rejected),
            "fills": self.fills,
            "fill_shares": self.fill_shares,
            "taker_fills": self.taker_fills,
            "other_cancels": map(&self.other_cancels),
            "unmatched": self.unmatched,
            "disconnects": self.disconnects,
            "schedule_stalls": self.schedule_stalls,
            "client_busy": self.client_busy,
            "latency_ns": {
                "count": h.len(),
                "p50": h.value_at_quantile(0.5),
                "p90": h.value_at_quantile(0.9),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
                "mean": h.mean(),
            },
        })
    }
}

fn letters(counts: &[(char, u64)]) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts.iter().map(|(c, n)| format!("{c}:{n}")).collect();
    format!(" [{}]", parts.join(" "))
}

/// `812ns`, `41.2us`, `3.10ms`, `2.00s`.
pub fn format_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

/// The p50/p90/p99/p99.9/max table of a nanosecond histogram, one line each.
pub fn latency_table(h: &Histogram<u64>) -> String {
    let rows = [
        ("p50", h.value_at_quantile(0.5)),
        ("p90", h.value_at_quantile(0.9)),
        ("p99", h.value_at_quantile(0.99)),
        ("p99.9", h.value_at_quantile(0.999)),
        ("max", h.max()),
    ];
    rows.iter()
        .map(|(name, ns)| format!("  {name:>6} {:>10}\n", format_ns(*ns)))
        .collect()
}

/// A new latency histogram: 1 ns to [`LATENCY_NS_MAX`], 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3) {
        Ok(h) => h,
        Err(e) => panic!("histogram bounds are constants: {e:?}"),
    }
}

/// A token prefix from the clock: six base-36 characters of the Unix time in milliseconds.
pub fn clock_token_prefix() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut out = [b'0'; TOKEN_PREFIX_LEN];
    base36(ms, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `value` in base 36 into `out`, right-aligned with leading zeros (the top digits drop off).
fn base36(mut value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value % 36) as usize];
        value /= 36;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting,
    LoginSent,
    Active,
    Closed,
}

/// Counters shared by all sessions of a run.
#[derive(Debug)]
struct Tally {
    sent: [u64; 5],
    /// Bytes read from the sessions.
    bytes_in: u64,
    acked: u64,
    ignored: u64,
    accepted: u64,
    replaced: u64,
    canceled: u64,
    rejected: [u64; 256],
    fills: u64,
    fill_shares: u64,
    taker_fills: u64,
    other_cancels: [u64; 256],
    unmatched: u64,
    disconnects: u64,
    debug_texts: Vec<String>,
    last_ack_ns: u64,
    latency: Histogram<u64>,
}

const DEBUG_TEXTS_MAX: usize = 10;

impl Tally {
    fn new() -> Self {
        Self {
            sent: [0; 5],
            bytes_in: 0,
            acked: 0,
            ignored: 0,
            accepted: 0,
            replaced: 0,
            canceled: 0,
            rejected: [0; 256],
            fills: 0,
            fill_shares: 0,
            taker_fills: 0,
            other_cancels: [0; 256],
            unmatched: 0,
            disconnects: 0,
            debug_texts: Vec::new(),
            last_ack_ns: 0,
            latency: new_histogram(),
        }
    }

    fn ack(&mut self, pending: &Pending, now_ns: u64) {
        self.acked += 1;
        self.last_ack_ns = now_ns;
        self.latency
            .saturating_record(now_ns.saturating_sub(pending.scheduled_ns).max(1));
    }
}

/// One market-maker session: its socket and receive buffer, and the rest ([`Core`]) apart so that frames
/// borrowed from the buffer can be handled by `&mut Core`.
struct Session {
    stream: Option<TcpStream>,
    rx: StreamBuffer,
    core: Core,
}

/// A session's state apart from the socket and the receive buffer.
struct Core {
    username: Username,
    password: Password,
    phase: Phase,
    tx: Vec<u8>,
    tx_start: usize,
    mix: OrderMix,
    token_prefix: [u8; TOKEN_PREFIX_LEN],
    token_next: u64,
    orders: LiveOrders,
    pending: Window,
    quotes_in_flight: usize,
    last_send_ns: u64,
    /// Until the session first sends: how much earlier than `heartbeat_interval` after the start its first
    /// heartbeat is due, so that idle sessions' heartbeats are spread over the interval instead of all
    /// falling due at once (10,000 of them in one burst every second).
    heartbeat_phase_ns: u64,
    /// Requests were queued this round and the session is in the round's flush list.
    queued_this_round: bool,
    live_orders_max: usize,
    in_flight_max: usize,
}

impl Core {
    fn pending_bytes(&self) -> usize {
        self.tx.len() - self.tx_start
    }

    fn can_send(&self) -> bool {
        self.phase == Phase::Active
            && self.pending.len() < self.in_flight_max
            && self.pending_bytes() + 3 + ouch::MESSAGE_LEN_MAX <= self.tx.capacity()
    }

    fn next_token(&mut self) -> Token {
        let mut bytes = [b'0'; 14];
        bytes[..TOKEN_PREFIX_LEN].copy_from_slice(&self.token_prefix);
        base36(self.token_next, &mut bytes[TOKEN_PREFIX_LEN..]);
        self.token_next += 1;
        Alpha(bytes)
    }

    /// Appends one frame (`U` + message) to the send buffer.
    fn queue_unsequenced<M: Message>(&mut self, message: &M) {
        let mut frame = [0u8; 3 + ouch::MESSAGE_LEN_MAX];
        let header = soupbintcp::write_frame_header(PacketType::UnsequencedData, M::LEN, &mut frame);
        // The buffer holds any OUCH message: a failure is a programmer error.
        let header = match header {
            Ok(n) => n,
            Err(e) => panic!("frame header: {e}"),
        };
        let len = match message.encode(&mut frame[header..]) {
            Ok(n) => n,
            Err(e) => panic!("encode: {e}"),
        };
        self.tx.extend_from_slice(&frame[..header + len]);
    }

    fn queue_packet(&mut self, packet: &Packet<'_>) {
        let mut frame = [0u8; 64];
        match packet.encode(&mut frame) {
            Ok(n) => self.tx.extend_from_slice(&frame[..n]),
            Err(e) => panic!("control packet encode: {e}"),
        }
    }

    fn mix_state(&self) -> MixState {
        MixState {
            live: self.orders.len(),
            idle: self.orders.idle(),
            quotes_in_flight: self.quotes_in_flight,
            live_orders_max: self.live_orders_max,
        }
    }

    /// Draws the next action and queues its request, scheduled at `scheduled_ns`.
    fn send_next(&mut self, scheduled_ns: u64, now_ns: u64, instruments: &[Instrument], tally: &mut Tally) {
        let action = self.mix.next(self.mix_state(), instruments);
        let (kind, token, target) = match action {
            Action::Quote {
                instrument,
                side,
                price,
                shares,
            } => {
                let token = self.enter(instrument, side, price, shares, 99_999, instruments);
                self.quotes_in_flight += 1;
                (Kind::Quote, token, Token::BLANK)
            }
            Action::Aggressive {
                instrument,
                side,
                price,
                shares,
            } => (
                Kind::Aggressive,
                self.enter(instrument, side, price, shares, 0, instruments),
                Token::BLANK,
            ),
            Action::Market {
                instrument,
                side,
                shares,
            } => (
                Kind::Market,
                self.enter(instrument, side, PRICE_MARKET, shares, 0, instruments),
                Token::BLANK,
            ),
            Action::Cancel { nth } => {
                let Some(order) = self.orders.take_idle(nth, self.pending.next_id()) else {
                    unreachable!("the mix draws Cancel only with an idle order")
                };
                let target = order.token;
                self.queue_unsequenced(&CancelOrder::new(target, 0));
                (Kind::Cancel, target, target)
            }
            Action::Replace { nth, ticks, lots } => {
                let replacement = self.next_token();
                let Some(order) = self.orders.take_idle(nth, self.pending.next_id()) else {
                    unreachable!("the mix draws Replace only with an idle order")
                };
                let (target, spec, side) = (order.token, instruments[order.instrument], order.side);
                let price = mix::quote_price(&spec, side, ticks.min(spec.ticks_max()));
                let shares = lots * spec.lot_size.max(1);
                let message = ReplaceOrder::new(
                    target,
                    replacement,
                    shares,
                    price,
                    99_999,
                    Display::Anonymous,
                    b'N',
                    0,
                );
                self.queue_unsequenced(&message);
                (Kind::Replace, replacement, target)
            }
        };
        tally.sent[kind as usize] += 1;
        self.pending.push(Pending {
            kind,
            token,
            target,
            scheduled_ns,
        });
        self.last_send_ns = now_ns;
        self.heartbeat_phase_ns = 0;
    }

    fn enter(
        &mut self,
        instrument: usize,
        side: Side,
        price: u32,
        shares: u32,
        time_in_force: u32,
        instruments: &[Instrument],
    ) -> Token {
        let token = self.next_token();
        let terms = OrderTerms {
            side,
            shares,
            stock: instruments[instrument].symbol,
            price,
            time_in_force,
            firm: Firm::BLANK,
            display: Display::Anonymous,
            capacity: b'P',
            intermarket_sweep: b'N',
            minimum_quantity: 0,
            cross_type: b'N',
        };
        self.queue_unsequenced(&EnterOrder::new(token, &terms, b' '));
        token
    }

    /// An order died (executed in full, or canceled by the exchange): any cancel or replace on the wire for it
    /// will be ignored.
    fn order_gone(&mut self, token: Token, tally: &mut Tally) {
        let Some((order, busy)) = self.orders.remove(token) else {
            // Not in the table: no cancel or replace can name it.
            return;
        };
        // Only a busy order has a cancel or replace on the wire (one: the mix draws idle orders only),
        // found by the id kept with the order.
        if busy
            && self
                .pending
                .take_id(order.request, |p| {
                    matches!(p.kind, Kind::Cancel | Kind::Replace) && p.target == token
                })
                .is_some()
        {
            tally.ignored += 1;
        }
    }

    fn on_ouch(&mut self, bytes: &[u8], now_ns: u64, instruments: &[Instrument], tally: &mut Tally) {
        let Ok(message) = Outbound::decode(bytes) else {
            tally.unmatched += 1;
            return;
        };
        match message {
            Outbound::Accepted(a) => {
                let token = a.order_token;
                let Some(p) = self.pending.take_first(|p| {
                    matches!(p.kind, Kind::Quote | Kind::Aggressive | Kind::Market) && p.token == token
                }) else {
                    tally.unmatched += 1;
                    return;
                };
                tally.ack(&p, now_ns);
                tally.accepted += 1;
                if p.kind == Kind::Quote {
                    self.quotes_in_flight -= 1;
                    if a.order_state == OrderState::Live && self.orders.len() < self.live_orders_max {
                        let instrument = instruments.iter().position(|i| i.symbol == a.stock).unwrap_or(0);
                        self.orders.push(LiveOrder {
                            token,
                            instrument,
                            side: a.side,
                            open: a.shares.get(),
                            request: 0,
                        });
                    }
                }
            }
            Outbound::Rejected(r) => {
                let token = r.order_token;
                let Some(p) = self
                    .pending
                    .take_first(|p| p.kind != Kind::Cancel && p.token == token)
                else {
                    tally.unmatched += 1;
                    return;
                };
                tally.ack(&p, now_ns);
                tally.rejected[usize::from(r.reason)] += 1;
                match p.kind {
                    Kind::Quote => self.quotes_in_flight -= 1,
                    Kind::Replace => {
                        self.orders.set_idle(p.target);
                    }
                    _ => {}
                }
            }
            Outbound::Replaced(r) => {
                let token = r.replacement_order_token;
                let Some(p) = self
                    .pending
                    .take_first(|p| p.kind == Kind::Replace && p.token == token)
                else {
                    tally.unmatched += 1;
                    return;
                };
                tally.ack(&p, now_ns);
                tally.replaced += 1;
                if let Some((old, _)) = self.orders.remove(r.previous_order_token)
                    && r.order_state == OrderState::Live
                {
                    self.orders.push(LiveOrder {
                        token,
                        instrument: old.instrument,
                        side: old.side,
                        open: r.shares.get(),
                        request: 0,
                    });
                }
            }
            Outbound::Canceled(c) => {
                self.on_cancel(c.order_token, c.decrement_shares.get(), c.reason, now_ns, tally)
            }
            Outbound::AiqCanceled(c) => {
                self.on_cancel(c.order_token, c.decrement_shares.get(), c.reason, now_ns, tally);
            }
            Outbound::Executed(e) => {
                tally.fills += 1;
                tally.fill_shares += u64::from(e.executed_shares.get());
                if e.liquidity_flag == ouch::LiquidityFlag::Removed {
                    tally.taker_fills += 1;
                }
                let token = e.order_token;
                if let Some(order) = self.orders.get_mut(token) {
                    order.open = order.open.saturating_sub(e.executed_shares.get());
                    if order.open == 0 {
                        self.order_gone(token, tally);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_cancel(&mut self, token: Token, decrement: u32, reason: u8, now_ns: u64, tally: &mut Tally) {
        let Some((busy, request)) = self.orders.is_busy(token) else {
            // Not in the table (an IOC's remainder, an order never tracked): no Cancel of ours names it.
            tally.other_cancels[usize::from(reason)] += 1;
            return;
        };
        // Only a busy order can have a Cancel of ours in flight, found by the id kept with the order.
        if busy
            && let Some(p) = self
                .pending
                .take_id(request, |p| p.kind == Kind::Cancel && p.target == token)
        {
            tally.ack(&p, now_ns);
            tally.canceled += 1;
            self.orders.remove(token);
            return;
        }
        tally.other_cancels[usize::from(reason)] += 1;
        let Some(order) = self.orders.get_mut(token) else {
            unreachable!("the order was found above");
        };
        order.open = order.open.saturating_sub(decrement);
        if order.open == 0 {
            self.order_gone(token, tally);
        }
    }
}

impl Session {
    /// Writes what is queued; `Ok(false)` when the peer closed.
    fn flush(&mut self) -> io::Result<bool> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let core = &mut self.core;
        while core.tx_start < core.tx.len() {
            match stream.write(&core.tx[core.tx_start..]) {
                Ok(0) => return Ok(false),
                Ok(n) => core.tx_start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if core.tx_start == core.tx.len() {
            core.tx.clear();
            core.tx_start = 0;
        }
        Ok(true)
    }

    /// Reads what is there and handles every complete frame. Returns `false` when the session ended.
    fn read(
        &mut self,
        now_ns: u64,
        instruments: &[Instrument],
        tally: &mut Tally,
    ) -> Result<bool, LoadError> {
        for _ in 0..FRAMES_PER_READ_MAX {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(false);
            };
            let n = match stream.read(self.rx.spare_mut()) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(false),
            };
            self.rx.commit(n);
            tally.bytes_in += n as u64;
            let mut result: Result<bool, LoadError> = Ok(true);
            // Split borrows: the packet borrows `rx`, the handlers use `core`.
            let Session { rx, core, .. } = self;
            let drained = rx.for_each_packet(usize::MAX, |packet| {
                match packet {
                    Packet::SequencedData(bytes) => core.on_ouch(bytes, now_ns, instruments, tally),
                    Packet::LoginAccepted(_) if core.phase == Phase::LoginSent => {
                        core.phase = Phase::Active;
                    }
                    Packet::LoginRejected(reason) => {
                        result = Err(LoadError::LoginRejected {
                            user: core.username.as_str_lossy().into_owned(),
                            reason: match reason {
                                soupbintcp::LoginRejectReason::NotAuthorized => "not authorized",
                                soupbintcp::LoginRejectReason::SessionNotAvailable => "session not available",
                            },
                        });
                        return ControlFlow::Break(());
                    }
                    Packet::EndOfSession => {
                        result = Ok(false);
                        return ControlFlow::Break(());
                    }
                    Packet::Debug(text) if tally.debug_texts.len() < DEBUG_TEXTS_MAX => {
                        tally.debug_texts.push(String::from_utf8_lossy(text).into_owned());
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            });
            if drained.is_err() {
                return Ok(false);
            }
            if !matches!(result, Ok(true)) {
                return result;
            }
        }
        Ok(true)
    }
}

fn config_error(text: impl Into<String>) -> LoadError {
    LoadError::Config(text.into())
}

fn validate(config: &LoadConfig) -> Result<(), LoadError> {
    let sessions = config.logins.len();
    if sessions == 0 || sessions > SESSIONS_MAX {
        return Err(config_error(format!(
            "sessions = {sessions}: must be 1 to {SESSIONS_MAX}"
        )));
    }
    if config.instruments.is_empty() {
        return Err(config_error("no instruments to trade"));
    }
    let rate_ok = config.rate_per_s.is_finite() && config.rate_per_s > 0.0;
    if !config.closed_loop && !rate_ok {
        return Err(config_error(format!(
            "rate = {}: must be above 0",
            config.rate_per_s
        )));
    }
    let total = config.total_requests();
    if total == 0 || total > REQUESTS_MAX {
        return Err(config_error(format!(
            "{total} requests scheduled: must be 1 to {REQUESTS_MAX}"
        )));
    }
    if config.senders.is_some_and(|k| k == 0 || k > sessions) {
        return Err(config_error(format!(
            "senders = {:?}: must be 1 to the {sessions} sessions",
            config.senders
        )));
    }
    if config.live_orders_max == 0 || config.in_flight_max == 0 {
        return Err(config_error("live_orders_max and in_flight_max must be above 0"));
    }
    let w = config.weights;
    if [w.quote, w.cancel, w.replace, w.aggressive, w.market]
        .iter()
        .all(|&x| x == 0)
    {
        return Err(config_error("every mix weight is 0"));
    }
    if let Some(prefix) = &config.token_prefix
        && (prefix.len() != TOKEN_PREFIX_LEN || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(config_error(format!(
            "token prefix {prefix:?}: must be {TOKEN_PREFIX_LEN} ASCII letters or digits"
        )));
    }
    for login in &config.logins {
        if Username::new(&login.username).is_none_or(|u| u.is_blank())
            || Password::new(&login.password).is_none()
        {
            return Err(config_error(format!(
                "login {:?}: username 1 to 6 and password up to 10 printable ASCII characters",
                login.username
            )));
        }
    }
    Ok(())
}

fn now_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// Runs the load as configured; calls `progress` every `progress_interval` while it runs.
///
/// # Errors
/// [`LoadError`] when the configuration is unusable or the sessions cannot all connect and log in. Failures
/// during the run (a session closed by the exchange) are counted in the report, not errors.
pub fn run(config: &LoadConfig, progress: &mut dyn FnMut(&Progress)) -> Result<LoadReport, LoadError> {
    validate(config)?;
    let n = config.logins.len();
    let prefix: [u8; TOKEN_PREFIX_LEN] = {
        let text = config.token_prefix.clone().unwrap_or_else(clock_token_prefix);
        let mut out = [b'0'; TOKEN_PREFIX_LEN];
        out.copy_from_slice(&text.as_bytes()[..TOKEN_PREFIX_LEN]);
        out
    };
    let buffer_bytes = session_buffer_bytes(n);
    let mut sessions: Vec<Session> = config
        .logins
        .iter()
        .enumerate()
        .map(|(index, login)| Session {
            stream: None,
            rx: StreamBuffer::new(buffer_bytes, soupbintcp::FRAME_SIZE_MAX_DEFAULT),
            core: Core {
                username: Username::new(&login.username).unwrap_or_default(),
                password: Password::new(&login.password).unwrap_or_default(),
                phase: Phase::Idle,
                tx: Vec::with_capacity(buffer_bytes),
                tx_start: 0,
                mix: OrderMix::new(config.seed, index as u64, config.weights),
                token_prefix: prefix,
                token_next: 1,
                orders: LiveOrders::with_capacity(config.live_orders_max),
                pending: Window::with_capacity(config.in_flight_max),
                quotes_in_flight: 0,
                last_send_ns: 0,
                heartbeat_phase_ns: (config.heartbeat_interval.as_nanos() as u64)
                    .saturating_mul(index as u64)
                    / config.logins.len() as u64,
                queued_this_round: false,
                live_orders_max: config.live_orders_max,
                in_flight_max: config.in_flight_max,
            },
        })
        .collect();
    // Touch every buffer page now, not on a session's first request during the measurement.
    for session in sessions.iter_mut() {
        session.rx.spare_mut().fill(0);
        let capacity = session.core.tx.capacity();
        session.core.tx.resize(capacity, 0);
        session.core.tx.clear();
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(EVENTS_MAX);
    let mut tally = Tally::new();
    connect_all(config, &mut sessions, &mut poll, &mut events, &mut tally)?;

    let spin = match config.poll {
        PollMode::Spin => true,
        PollMode::Epoll => false,
        PollMode::Auto => n <= SPIN_SESSIONS_MAX,
    };
    let mut total = config.total_requests();
    // Closed loop with a duration: sends stop at its end.
    let end_ns = match config.limit {
        Limit::Duration(d) if config.closed_loop => d.as_nanos() as u64,
        _ => u64::MAX,
    };
    let mut last_send_ns = 0u64;
    let senders = config.senders.unwrap_or(n).clamp(1, n);
    let interval_ns = 1e9 / config.rate_per_s;
    let scheduled_at = |k: u64| (k as f64 * interval_ns) as u64;
    let last_scheduled_ns = scheduled_at(total - 1);
    let drain_ns = config.drain_timeout.as_nanos() as u64;
    let heartbeat_ns = config.heartbeat_interval.as_nanos() as u64;
    let progress_ns = config.progress_interval.map(|d| d.as_nanos() as u64);
    let mut next_progress_ns = progress_ns.unwrap_or(u64::MAX);
    let mut heartbeat_cursor = 0usize;
    let mut next_k = 0u64;
    let mut stalls = 0u64;
    let start = Instant::now();
    let mut live = n;
    let mut touched: Vec<usize> = Vec::with_capacity(SENDS_PER_ROUND_MAX);
    // The client's own busy meter (busy polling only, where a round never waits): the time of rounds that
    // sent or read something. Near 100 % at saturation, the client and not the server set the rate.
    let mut busy_ns = 0u64;
    let mut round_start_ns = 0u64;
    let mut round_work = (0u64, 0u64);
    let mut round_was_busy = false;
    loop {
        let now = now_ns(start);
        if round_was_busy {
            busy_ns += now.saturating_sub(round_start_ns);
        }
        round_start_ns = now;
        // 1. Everything due, in schedule order (closed loop: every sender with nothing in flight).
        if config.closed_loop {
            if now >= end_ns {
                total = total.min(next_k);
            }
            for (index, session) in sessions.iter_mut().enumerate().take(senders) {
                if next_k >= total {
                    break;
                }
                if session.core.phase != Phase::Active || !session.core.pending.is_empty() {
                    continue;
                }
                session.core.send_next(now, now, &config.instruments, &mut tally);
                session.core.queued_this_round = true;
                touched.push(index);
                next_k += 1;
                last_send_ns = now;
            }
        } else {
            let mut budget = SENDS_PER_ROUND_MAX;
            while next_k < total && budget > 0 {
                let due = scheduled_at(next_k);
                if due > now {
                    break;
                }
                let session = &mut sessions[(next_k % senders as u64) as usize];
                if session.core.phase != Phase::Active {
                    // A closed session's share of the schedule is dropped, not sent: it counts as unanswered.
                    next_k += 1;
                    continue;
                }
                if !session.core.can_send() {
                    stalls += 1;
                    break;
                }
                session.core.send_next(due, now, &config.instruments, &mut tally);
                if !session.core.queued_this_round {
                    session.core.queued_this_round = true;
                    touched.push((next_k % senders as u64) as usize);
                }
                next_k += 1;
                budget -= 1;
            }
        }
        // Everything a session got this round leaves in one write (the batching a real client has).
        for &index in &touched {
            let session = &mut sessions[index];
            session.core.queued_this_round = false;
            if !session.flush().unwrap_or(false) {
                close(session, &mut poll, &mut tally, &mut live);
            }
        }
        touched.clear();
        // 2. Replies.
        let now = now_ns(start);
        // Closed loop, busy polling, in epoll mode: the senders' sockets are read directly, and the other
        // sessions (and heartbeats, step 3) are served only while no sender has a request in flight, so
        // that the client's housekeeping for thousands of idle sessions never sits inside a measured
        // round trip. (Without busy polling everything waits in epoll, below.)
        let closed_loop_housekeeping = config.closed_loop && !spin && config.busy_poll;
        let mut quiet = true;
        if closed_loop_housekeeping {
            for session in sessions.iter_mut().take(senders) {
                serve(session, now, config, &mut tally, &mut poll, &mut live)?;
            }
            quiet = sessions.iter().take(senders).all(|s| s.core.pending.is_empty());
            if quiet {
                poll_events(&mut poll, &mut events, Duration::ZERO)?;
                let now = now_ns(start);
                for event in events.iter() {
                    if event.token().0 >= senders {
                        let session = &mut sessions[event.token().0];
                        serve(session, now, config, &mut tally, &mut poll, &mut live)?;
                    }
                }
            }
        } else if spin {
            for session in sessions.iter_mut() {
                serve(session, now, config, &mut tally, &mut poll, &mut live)?;
            }
        } else {
            // epoll waits in whole milliseconds: sleeping in it until a send due sooner would send late. Wait in
            // epoll only for whole milliseconds before the next send; closer to it, check without waiting and
            // nap for at most NAP_NS (so a reply waits at most that long to be read).
            // Closed loop: nothing goes out before a reply comes, which ends the wait.
            let until_send_ns = if next_k < total && !config.closed_loop {
                scheduled_at(next_k).saturating_sub(now)
            } else {
                1_000_000
            };
            let timeout = if config.busy_poll {
                Duration::ZERO
            } else {
                Duration::from_millis(until_send_ns.min(1_000_000) / 1_000_000)
            };
            poll_events(&mut poll, &mut events, timeout)?;
            let now = now_ns(start);
            if events.is_empty() && timeout.is_zero() && !config.busy_poll {
                std::thread::sleep(Duration::from_nanos(until_send_ns.min(NAP_NS)));
            }
            for event in events.iter() {
                let session = &mut sessions[event.token().0];
                serve(session, now, config, &mut tally, &mut poll, &mut live)?;
            }
        }
        let now = now_ns(start);
        // 3. Heartbeats for quiet sessions: a few sessions per round, round robin, so that thousands of
        // sessions never get their heartbeats in one burst of writes (a stall for everything behind it).
        let heartbeat_checks = if quiet {
            HEARTBEAT_CHECKS_PER_ROUND.min(n)
        } else {
            0
        };
        for _ in 0..heartbeat_checks {
            let session = &mut sessions[heartbeat_cursor];
            heartbeat_cursor = (heartbeat_cursor + 1) % n;
            if session.core.phase == Phase::Active
                && now.saturating_sub(session.core.last_send_ns) + session.core.heartbeat_phase_ns
                    >= heartbeat_ns
            {
                session.core.queue_packet(&Packet::ClientHeartbeat);
                session.core.last_send_ns = now;
                session.core.heartbeat_phase_ns = 0;
                if !session.flush().unwrap_or(false) {
                    close(session, &mut poll, &mut tally, &mut live);
                }
            }
        }
        if now >= next_progress_ns {
            next_progress_ns = now + progress_ns.unwrap_or(u64::MAX / 2);
            progress(&Progress {
                elapsed_s: now as f64 / 1e9,
                sent: tally.sent.iter().sum(),
                scheduled: if total == REQUESTS_MAX && config.closed_loop {
                    next_k
                } else {
                    total
                },
                acked: tally.acked,
                p99_ns: tally.latency.value_at_quantile(0.99),
            });
        }
        let work = (tally.sent.iter().sum::<u64>(), tally.bytes_in);
        round_was_busy = config.busy_poll && work != round_work;
        round_work = work;
        // 4. The end: everything sent and answered, or the drain bound, or nobody left.
        if next_k >= total {
            let outstanding: usize = sessions.iter().map(|s| s.core.pending.len()).sum();
            let last_due_ns = if config.closed_loop {
                last_send_ns
            } else {
                last_scheduled_ns.max(scheduled_at(next_k.saturating_sub(1)))
            };
            if outstanding == 0 || now > last_due_ns + drain_ns {
                break;
            }
        }
        if live == 0 {
            break;
        }
    }
    let loop_ns = now_ns(start);
    // Settle: the other side of a trade (the maker's Executed) and unsolicited cancels may still be on their
    // way to sessions that have no request open; read until quiet, bounded.
    let settle_end = Instant::now() + SETTLE_MAX;
    let mut quiet_since = Instant::now();
    while live > 0 && Instant::now() < settle_end && quiet_since.elapsed() < SETTLE_QUIET {
        let before = tally.fills + tally.unmatched + tally.other_cancels.iter().sum::<u64>();
        poll_events(&mut poll, &mut events, Duration::from_millis(1))?;
        let now = now_ns(start);
        for event in events.iter() {
            let session = &mut sessions[event.token().0];
            serve(session, now, config, &mut tally, &mut poll, &mut live)?;
        }
        if spin {
            for session in sessions.iter_mut() {
                serve(session, now, config, &mut tally, &mut poll, &mut live)?;
            }
        }
        if tally.fills + tally.unmatched + tally.other_cancels.iter().sum::<u64>() != before {
            quiet_since = Instant::now();
        }
    }
    let unanswered = total - tally.acked - tally.ignored;
    // Log out (best effort) and close.
    for session in sessions.iter_mut() {
        if session.core.phase == Phase::Active {
            session.core.queue_packet(&Packet::LogoutRequest);
            let _ = session.flush();
        }
        if let Some(mut stream) = session.stream.take() {
            let _ = poll.registry().deregister(&mut stream);
        }
    }
    let letters_of = |counts: &[u64; 256]| -> Vec<(char, u64)> {
        counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (char::from(c as u8), *n))
            .collect()
    };
    Ok(LoadReport {
        sessions: n,
        offered_per_s: if config.closed_loop {
            0.0
        } else {
            config.rate_per_s
        },
        closed_loop: config.closed_loop,
        scheduled: total,
        sent: tally.sent,
        acked: tally.acked,
        ignored: tally.ignored,
        unanswered,
        accepted: tally.accepted,
        replaced: tally.replaced,
        canceled: tally.canceled,
        rejected: letters_of(&tally.rejected),
        fills: tally.fills,
        fill_shares: tally.fill_shares,
        taker_fills: tally.taker_fills,
        other_cancels: letters_of(&tally.other_cancels),
        unmatched: tally.unmatched,
        disconnects: tally.disconnects,
        debug_texts: tally.debug_texts,
        schedule_stalls: stalls,
        client_busy: (config.busy_poll && loop_ns > 0).then(|| busy_ns as f64 / loop_ns as f64),
        elapsed_s: tally.last_ack_ns.max(if config.closed_loop {
            last_send_ns
        } else {
            last_scheduled_ns
        }) as f64
            / 1e9,
        latency: tally.latency,
    })
}

/// Waits up to `timeout` for readiness; an interrupted wait counts as no events.
fn poll_events(poll: &mut Poll, events: &mut Events, timeout: Duration) -> io::Result<()> {
    match poll.poll(events, Some(timeout)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        other => other,
    }
}

/// Reads what an active session has and handles it, then goes on with a pending partial write (reads are
/// the chance to retry); closes the session when the peer ended it. Other sessions are left alone.
fn serve(
    session: &mut Session,
    now: u64,
    config: &LoadConfig,
    tally: &mut Tally,
    poll: &mut Poll,
    live: &mut usize,
) -> Result<(), LoadError> {
    if session.core.phase != Phase::Active {
        return Ok(());
    }
    let open = session.read(now, &config.instruments, tally)?;
    if !(open && (session.core.pending_bytes() == 0 || session.flush().unwrap_or(false))) {
        close(session, poll, tally, live);
    }
    Ok(())
}

fn close(session: &mut Session, poll: &mut Poll, tally: &mut Tally, live: &mut usize) {
    if session.core.phase == Phase::Closed {
        return;
    }
    session.core.phase = Phase::Closed;
    tally.disconnects += 1;
    *live = live.saturating_sub(1);
    if let Some(mut stream) = session.stream.take() {
        let _ = poll.registry().deregister(&mut stream);
    }
}

/// Connects and logs in every session, at most [`CONNECTS_IN_FLIGHT_MAX`] at once.
fn connect_all(
    config: &LoadConfig,
    sessions: &mut [Session],
    poll: &mut Poll,
    events: &mut Events,
    tally: &mut Tally,
) -> Result<(), LoadError> {
    let n = sessions.len();
    let deadline = Instant::now() + config.connect_timeout;
    let mut started = 0usize;
    let mut in_flight = 0usize;
    let mut active = 0usize;
    while active < n {
        while started < n && in_flight < CONNECTS_IN_FLIGHT_MAX {
            let session = &mut sessions[started];
            let user = session.core.username.as_str_lossy().into_owned();
            let mut stream = TcpStream::connect(config.order_entry).map_err(|error| LoadError::Connect {
                user: user.clone(),
                error,
            })?;
            poll.registry()
                .register(
                    &mut stream,
                    mio::Token(started),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|error| LoadError::Connect { user, error })?;
            session.stream = Some(stream);
            session.core.phase = Phase::Connecting;
            started += 1;
            in_flight += 1;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(LoadError::ConnectTimeout {
                logged_in: active,
                sessions: n,
                timeout: config.connect_timeout,
            });
        }
        poll.poll(events, Some((deadline - now).min(Duration::from_millis(10))))?;
        for event in events.iter() {
            let session = &mut sessions[event.token().0];
            let user_name = session_user(&session.core);
            let user = || user_name.clone();
            match session.core.phase {
                Phase::Connecting if event.is_writable() || event.is_readable() => {
                    let Some(stream) = session.stream.as_ref() else {
                        continue;
                    };
                    if let Ok(Some(error)) | Err(error) = stream.take_error() {
                        return Err(LoadError::Connect { user: user(), error });
                    }
                    match stream.peer_addr() {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                        Err(error) => return Err(LoadError::Connect { user: user(), error }),
                    }
                    let _ = stream.set_nodelay(true);
                    let login = LoginRequest {
                        username: session.core.username,
                        password: session.core.password,
                        requested_session: SessionName::BLANK,
                        requested_sequence_number: 0,
                        heartbeat_timeout_ms: None,
                    };
                    session.core.queue_packet(&Packet::LoginRequest(login));
                    session.core.phase = Phase::LoginSent;
                    if !session
                        .flush()
                        .map_err(|error| LoadError::Connect { user: user(), error })?
                    {
                        return Err(LoadError::Connect {
                            user: user(),
                            error: io::Error::new(io::ErrorKind::ConnectionReset, "closed before login"),
                        });
                    }
                }
                Phase::LoginSent => {
                    if !session.read(0, &config.instruments, tally)? {
                        return Err(LoadError::Connect {
                            user: user(),
                            error: io::Error::new(io::ErrorKind::ConnectionReset, "closed during login"),
                        });
                    }
                    if session.core.pending_bytes() > 0 {
                        let _ = session.flush();
                    }
                    if session.core.phase == Phase::Active {
                        active += 1;
                        in_flight -= 1;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn session_user(core: &Core) -> String {
    core.username.as_str_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::echo::{EchoOptions, EchoServer, EchoStats};
    use super::*;

    #[test]
    fn the_progress_line_has_a_bar() {
        let p = Progress {
            elapsed_s: 3.0,
            sent: 3000,
            scheduled: 10_000,
            acked: 2999,
            p99_ns: 41_200,
        };
        assert!(
            p.line()
                .starts_with("load: [######--------------]  30% 3.0s sent 3000/10000 acked 2999"),
            "{}",
            p.line()
        );
        let done = Progress { sent: 10_000, ..p };
        assert!(
            done.line().starts_with("load: [####################] 100%"),
            "{}",
            done.line()
        );
        let none = Progress {
            scheduled: 0,
            sent: 0,
            ..p
        };
        assert!(
            none.line().starts_with("load: [--------------------]   0%"),
            "{}",
            none.line()
        );
    }
    use super::mix::tests::instruments;
    use bourse_protocol::ouch::{Executed, LiquidityFlag};

    fn logins(n: usize) -> Vec<Credentials> {
        (0..n)
            .map(|i| Credentials {
                username: format!("u{i}"),
                password: "pw".into(),
            })
            .collect()
    }

    #[test]
    fn every_request_is_acked_by_the_echo_server() {
        let server = EchoServer::start(EchoOptions::default()).unwrap();
        let mut config = LoadConfig::new(server.addr(), logins(3), instruments());
        config.rate_per_s = 20_000.0;
        config.limit = Limit::Count(600);
        config.poll = PollMode::Epoll;
        config.busy_poll = false;
        config.token_prefix = Some("TEST01".into());
        let report = run(&config, &mut |_| {}).unwrap();
        let stats = server.stop().unwrap();
        assert_eq!(stats.logins, 3);
        assert_eq!(stats.requests, 600);
        assert_eq!(report.sent_total(), 600);
        assert_eq!(report.acked, 600, "{}", report.summary());
        assert_eq!((report.ignored, report.unanswered, report.unmatched), (0, 0, 0));
        assert_eq!(report.latency.len(), 600);
        assert_eq!(report.accepted + report.replaced + report.canceled, 600);
        assert_eq!(report.sent[Kind::Cancel as usize], report.canceled);
        assert_eq!(report.sent[Kind::Replace as usize], report.replaced);
        for kind in [Kind::Quote, Kind::Cancel, Kind::Replace, Kind::Aggressive] {
            assert!(report.sent[kind as usize] > 0, "{kind:?}: {}", report.summary());
        }
        let json = report.to_json();
        assert_eq!(json["acked"], 600);
        assert!(json["latency_ns"]["p99"].as_u64().unwrap() >= json["latency_ns"]["p50"].as_u64().unwrap());
    }

    #[test]
    fn spin_polling_one_session_works_too() {
        let server = EchoServer::start(EchoOptions::default()).unwrap();
        let mut config = LoadConfig::new(server.addr(), logins(1), instruments());
        config.rate_per_s = 10_000.0;
        config.limit = Limit::Count(200);
        config.poll = PollMode::Spin;
        let report = run(&config, &mut |_| {}).unwrap();
        assert_eq!(report.acked, 200, "{}", report.summary());
    }

    /// Runs `requests` from `sessions` sessions against an echo server that stalls for `stall` after its
    /// `after`th request, the client in epoll without busy polling; `configure` sets the rest.
    fn run_against_stalled_echo(
        sessions: usize,
        requests: u64,
        (after, stall): (u64, Duration),
        configure: impl FnOnce(&mut LoadConfig),
    ) -> (LoadReport, EchoStats) {
        let server = EchoServer::start(EchoOptions {
            busy_poll: false,
            stall: Some((after, stall)),
        })
        .unwrap();
        let mut config = LoadConfig::new(server.addr(), logins(sessions), instruments());
        config.limit = Limit::Count(requests);
        config.poll = PollMode::Epoll;
        config.busy_poll = false;
        configure(&mut config);
        let report = run(&config, &mut |_| {}).unwrap();
        (report, server.stop().unwrap())
    }

    /// A stall of the server shows in full: every request scheduled during the first half of the stall waits
    /// at least half the stall, measured from its scheduled time (a closed-loop client would have sent them
    /// late and recorded one slow sample).
    #[test]
    fn a_stalled_server_shows_in_the_latency_from_scheduled_time() {
        let stall = Duration::from_millis(200);
        let (report, _) = run_against_stalled_echo(1, 400, (50, stall), |c| c.rate_per_s = 1000.0);
        assert_eq!(report.acked, 400, "{}", report.summary());
        let stall_ns = stall.as_nanos() as u64;
        // Request 50 (scheduled at 49 ms) is answered after the whole stall.
        assert!(
            report.latency.max() >= stall_ns - stall_ns / 100,
            "{}",
            report.latency.max()
        );
        // Requests 50..=150 (scheduled 49..149 ms) all wait at least half the stall: at least 100 samples.
        let slow = report.latency.count_between(stall_ns / 2, u64::MAX / 2);
        assert!(slow >= 100, "{slow} samples at or above {} ns", stall_ns / 2);
    }

    /// The same stall in closed loop: one request in flight, so only the request the server sat on waits
    /// for it, and the next goes out when its ack comes (latency from the actual send).
    #[test]
    fn closed_loop_sends_one_request_at_a_time_and_a_stall_costs_one_sample() {
        let stall = Duration::from_millis(200);
        let (report, stats) = run_against_stalled_echo(1, 400, (50, stall), |c| {
            c.closed_loop = true;
            c.rate_per_s = f64::NAN; // not used in closed loop
        });
        assert_eq!(stats.requests, 400);
        assert_eq!(
            (report.acked, report.unanswered),
            (400, 0),
            "{}",
            report.summary()
        );
        assert!(report.closed_loop && report.summary().contains("closed loop"));
        let stall_ns = stall.as_nanos() as u64;
        assert!(report.latency.max() >= stall_ns - stall_ns / 100);
        let slow = report.latency.count_between(stall_ns / 2, u64::MAX / 2);
        assert_eq!(slow, 1, "only the stalled request waits: {}", report.summary());
    }

    /// Closed loop over three sessions: each has one request in flight, so a stall of the server holds
    /// three; with one sender the other two stay logged in and send nothing, so it holds one.
    #[test]
    fn closed_loop_keeps_one_request_in_flight_per_sender() {
        let stall = Duration::from_millis(100);
        // Busy polling reads the senders directly and the others between requests; without, all wait in epoll.
        for (senders, in_flight, busy_poll) in [
            (None, 3, false),
            (Some(1), 1, false),
            (None, 3, true),
            (Some(1), 1, true),
        ] {
            let (report, stats) = run_against_stalled_echo(3, 300, (30, stall), |c| {
                c.closed_loop = true;
                c.senders = senders;
                c.busy_poll = busy_poll;
            });
            assert_eq!(report.disconnects, 0, "{}", report.summary());
            assert_eq!((stats.logins, stats.requests), (3, 300));
            assert_eq!(report.acked, 300, "{}", report.summary());
            let slow = report
                .latency
                .count_between(stall.as_nanos() as u64 / 2, u64::MAX / 2);
            assert_eq!(slow, in_flight, "senders {senders:?}: {}", report.summary());
            // The client's busy meter runs only when it busy-polls; the 100 ms stall, with nothing to send
            // or read, is idle time, and it is most of the run.
            match report.client_busy {
                Some(busy) => assert!(busy_poll && busy > 0.0 && busy < 0.5, "busy {busy}"),
                None => assert!(!busy_poll),
            }
        }
        let mut config = LoadConfig::new("127.0.0.1:1".parse().unwrap(), logins(3), instruments());
        for bad in [0, 4] {
            config.senders = Some(bad);
            assert!(matches!(run(&config, &mut |_| {}), Err(LoadError::Config(_))));
        }
    }

    /// Closed loop for a duration: it ends by itself and answers everything it sent.
    #[test]
    fn closed_loop_for_a_duration_stops_at_its_end() {
        let server = EchoServer::start(EchoOptions::default()).unwrap();
        let mut config = LoadConfig::new(server.addr(), logins(2), instruments());
        config.closed_loop = true;
        config.limit = Limit::Duration(Duration::from_millis(200));
        config.poll = PollMode::Epoll;
        config.busy_poll = false;
        let report = run(&config, &mut |_| {}).unwrap();
        let stats = server.stop().unwrap();
        assert!(report.sent_total() > 0);
        assert_eq!(report.scheduled, report.sent_total(), "{}", report.summary());
        assert_eq!(stats.requests, report.sent_total());
        assert_eq!(report.acked, report.sent_total(), "{}", report.summary());
        assert_eq!(report.unanswered, 0);
        assert!(report.elapsed_s < 2.0, "{}", report.summary());
    }

    fn core(live_orders_max: usize) -> Core {
        Core {
            username: Username::new("u").unwrap(),
            password: Password::new("p").unwrap(),
            phase: Phase::Active,
            tx: Vec::new(),
            tx_start: 0,
            mix: OrderMix::new(1, 0, MixWeights::default()),
            token_prefix: *b"TEST00",
            token_next: 1,
            orders: LiveOrders::with_capacity(0),
            pending: Window::with_capacity(16),
            quotes_in_flight: 0,
            last_send_ns: 0,
            heartbeat_phase_ns: 0,
            queued_this_round: false,
            live_orders_max,
            in_flight_max: 16,
        }
    }

    #[test]
    fn a_cancel_whose_order_dies_first_is_ignored_not_lost() {
        let instruments = instruments();
        let mut tally = Tally::new();
        let mut core = core(4);
        let token = core.next_token();
        core.orders.push(LiveOrder {
            token,
            instrument: 0,
            side: Side::Buy,
            open: 10,
            request: 0,
        });
        core.orders.take_idle(0, core.pending.next_id());
        core.pending.push(Pending {
            kind: Kind::Cancel,
            token,
            target: token,
            scheduled_ns: 5,
        });
        // Executed in two parts: the first leaves the cancel waiting, the second kills the order.
        let executed = |shares| Executed::new(0, token, shares, 1_899_900, LiquidityFlag::Added, 1);
        core.on_ouch(executed(4).as_wire(), 10, &instruments, &mut tally);
        assert_eq!((tally.ignored, core.pending.len()), (0, 1));
        assert_eq!(core.orders.get_mut(token).map(|o| o.open), Some(6));
        core.on_ouch(executed(6).as_wire(), 20, &instruments, &mut tally);
        assert_eq!((tally.ignored, tally.acked, core.pending.len()), (1, 0, 0));
        assert_eq!(core.orders.len(), 0);
        assert_eq!((tally.fills, tally.fill_shares, tally.taker_fills), (2, 10, 0));
    }

    #[test]
    fn session_buffers_shrink_with_many_sessions_within_bounds() {
        assert_eq!(session_buffer_bytes(1), SESSION_BUFFER_BYTES_MAX);
        assert_eq!(session_buffer_bytes(100), SESSION_BUFFER_BYTES_MAX);
        let many = session_buffer_bytes(10_000);
        assert!((SESSION_BUFFER_BYTES_MIN..SESSION_BUFFER_BYTES_MAX).contains(&many));
        assert!(2 * 10_000 * many <= SESSION_BUFFERS_BYTES_TOTAL);
        assert_eq!(session_buffer_bytes(SESSIONS_MAX), SESSION_BUFFER_BYTES_MIN);
    }

    #[test]
    fn tokens_are_prefix_and_base36_counter() {
        let mut core = core(1);
        assert_eq!(&core.next_token().0, b"TEST0000000001");
        core.token_next = 36;
        assert_eq!(&core.next_token().0, b"TEST0000000010");
        assert_eq!(clock_token_prefix().len(), TOKEN_PREFIX_LEN);
    }

    #[test]
    fn bad_configs_are_errors() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut config = LoadConfig::new(addr, Vec::new(), instruments());
        assert!(matches!(run(&config, &mut |_| {}), Err(LoadError::Config(_))));
        config.logins = vec![Credentials {
            username: "toolongname".into(),
            password: "x".into(),
        }];
        assert!(matches!(run(&config, &mut |_| {}), Err(LoadError::Config(_))));
        config.logins = logins(1);
        config.rate_per_s = 0.0;
        assert!(matches!(run(&config, &mut |_| {}), Err(LoadError::Config(_))));
        config.rate_per_s = 10.0;
        config.token_prefix = Some("short".into());
        assert!(matches!(run(&config, &mut |_| {}), Err(LoadError::Config(_))));
    }
}
