//! The daemon's configuration: a TOML file, or the embedded default (`default.toml`).
//!
//! This module owns the file format, its validation and its conversion into the libraries' configurations
//! ([`bourse_book::EngineConfig`], [`bourse_journal::JournalConfig`]). It does not open sockets or files.
//!
//! # Invariants
//! - Every limit, timer and rate the daemon uses is a key here; keys are named as `docs/protocol.md`
//!   section 8 and `docs/OPERATIONS.md` "Configuration" list them.
//! - Unknown keys are errors (`deny_unknown_fields`), so a typo never silently falls back to a default.
//! - [`Config::validate`] checks every value and every relation; its error names the key
//!   (`config: order_entry.frame_size_max = 20 is below 54`). A config that validates converts into an
//!   [`EngineConfig`] and a [`JournalConfig`] that their own `validate` accepts.
//!
//! # Identity
//! Logins are numbered 1, 2, ... in file order (the engine's login id) and instruments get stock locates
//! 1, 2, ... in file order. Reordering either list between two runs of the same trading day changes those
//! numbers; append instead.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use bourse_book::config::{
    FIRMS_MAX_LIMIT, INSTRUMENTS_MAX_LIMIT, LOGINS_MAX_LIMIT, ORDERS_MAX_LIMIT, TOKENS_MAX_LIMIT,
};
use bourse_book::{EngineConfig, FirmConfig, InstrumentConfig, LoginConfig, StpMode};
use bourse_journal::{JournalConfig, SEGMENT_ALIGN_BYTES, SyncPolicy};
use bourse_protocol::admin::SyncPolicyName;
use bourse_protocol::fields::{Firm, PRICE_LIMIT_MAX, Symbol};
use bourse_protocol::soupbintcp::{self, Password, Username};
use bourse_protocol::{itch, moldudp64};
use serde::Deserialize;

use crate::agent::{IdleStrategy, ThreadingMode};

/// The embedded default configuration (`daemon/src/default.toml`), printed by `--print-default-config`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Smallest accepted `order_entry.frame_size_max`: the 2-byte length plus the largest Login Request (52).
pub const FRAME_SIZE_MIN: u32 = soupbintcp::FRAME_SIZE_MAX_MIN as u32;
/// Largest accepted `order_entry.frame_size_max`: the 2-byte length plus a `u16` packet length.
pub const FRAME_SIZE_LIMIT: u32 = soupbintcp::FRAME_SIZE_LIMIT as u32;
const _: () = assert!(MARKET_DATA_PAYLOAD_MIN as usize <= moldudp64::PAYLOAD_BYTES_DEFAULT);
const _: () = assert!(FRAME_SIZE_MIN as usize <= soupbintcp::FRAME_SIZE_MAX_DEFAULT);
const _: () = assert!(FRAME_SIZE_MIN < FRAME_SIZE_LIMIT);

/// Largest accepted `order_entry.sessions_max` and `snapshot.sessions_max`.
pub const SESSIONS_MAX_LIMIT: u32 = 1 << 20;
/// Smallest accepted `market_data.payload_bytes_max`: a MoldUDP64 header plus one block of the largest
/// ITCH 5.0 message bourse sends.
pub const MARKET_DATA_PAYLOAD_MIN: u32 =
    (moldudp64::HEADER_LEN + moldudp64::BLOCK_LEN_PREFIX + itch::MESSAGE_LEN_MAX) as u32;
/// Largest accepted ring capacity (records).
pub const RING_CAPACITY_LIMIT: u32 = 1 << 24;
/// Most cores `threading.helper_cores` may list (the width of a CPU set).
pub const HELPER_CORES_MAX: usize = 1024;
/// Largest accepted timer value in milliseconds (one day).
pub const TIMER_MS_LIMIT: u64 = 86_400_000;

/// A configuration `boursed` cannot run with. `Display` names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML of the expected shape (wrong type, unknown key, missing key).
    #[error("config: {0}")]
    Parse(String),
    /// A value is out of range or contradicts another key.
    #[error("config: {key} = {value} {problem}")]
    Invalid {
        /// The key, with the array index where there is one (`instruments[2].tick_size`).
        key: String,
        /// The configured value as written.
        value: String,
        /// What is wrong with it ("is below 54").
        problem: String,
    },
}

impl ConfigError {
    /// The key this error names (`None` for a parse error, whose message names it itself).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Parse(_) => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

fn invalid(key: impl Into<String>, value: impl fmt::Display, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

/// Checks `min <= value <= max` for an integer key.
fn range<T: PartialOrd + fmt::Display + Copy>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min {
        return Err(invalid(key, value, format!("is below {min}")));
    }
    if value > max {
        return Err(invalid(key, value, format!("is above {max}")));
    }
    Ok(())
}

/// Checks that the array `key` lists 1 to `max` entries.
fn list_len(key: &str, len: usize, max: usize) -> Result<(), ConfigError> {
    if (1..=max).contains(&len) {
        Ok(())
    } else {
        Err(invalid(key, len, format!("must list 1 to {max} {key}")))
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[order_entry]`: the SoupBinTCP + OUCH server.
    pub order_entry: OrderEntryConfig,
    /// `[snapshot]`: the GLIMPSE-style snapshot server.
    pub snapshot: SnapshotConfig,
    /// `[market_data]`: MoldUDP64 multicast and the re-request server.
    pub market_data: MarketDataConfig,
    /// `[admin]`: the line-delimited JSON admin endpoint.
    pub admin: AdminConfig,
    /// `[engine]`: matching engine capacities.
    pub engine: EngineLimits,
    /// `[journal]`: journal directory, sync policy, checkpoints.
    pub journal: JournalSection,
    /// `[threading]`: how stages are put on threads and how they idle.
    pub threading: ThreadingConfig,
    /// `[rings]`: capacities of the SPSC rings between stages.
    pub rings: RingsConfig,
    /// `[[instruments]]`: tradable instruments; locates 1, 2, ... in this order.
    pub instruments: Vec<InstrumentSection>,
    /// `[[firms]]`: trading accounts.
    pub firms: Vec<FirmSection>,
    /// `[[logins]]`: SoupBinTCP logins; engine login ids 1, 2, ... in this order.
    pub logins: Vec<LoginSection>,
}

/// `[order_entry]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderEntryConfig {
    /// TCP listen address (port 0: any free port, reported at start).
    pub listen: SocketAddr,
    /// Concurrent order-entry connections.
    pub sessions_max: u32,
    /// Largest SoupBinTCP frame (2-byte length included) accepted from a client.
    pub frame_size_max: u32,
    /// Connect -> Login Request.
    pub login_timeout_ms: u64,
    /// Server heartbeat after this long without output.
    pub heartbeat_interval_ms: u64,
    /// Nothing received from a logged-in client for this long: disconnect.
    pub idle_timeout_ms: u64,
    /// Bytes queued for one session before it is disconnected.
    pub send_queue_bytes_max: u64,
    /// Sustained OUCH messages per second per session.
    pub throttle_msgs_per_s: u32,
    /// Token bucket size (burst).
    pub throttle_burst_max: u32,
    /// Excess messages within one second before a disconnect.
    pub throttle_excess_max: u32,
}

/// `[snapshot]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// TCP listen address (port 0 allowed).
    pub listen: SocketAddr,
    /// Concurrent snapshot sessions.
    pub sessions_max: u32,
}

/// `[market_data]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDataConfig {
    /// Multicast group and port of feed A.
    pub group_a: SocketAddr,
    /// Multicast group and port of feed B (identical packets).
    pub group_b: SocketAddr,
    /// Interface the multicast is sent on.
    pub interface: Ipv4Addr,
    /// UDP listen address of the re-request server (port 0 allowed).
    pub rerequest_listen: SocketAddr,
    /// UDP payload bytes of one MoldUDP64 packet.
    pub payload_bytes_max: u32,
    /// MoldUDP64 heartbeat interval when idle.
    pub heartbeat_interval_ms: u64,
    /// Messages answered per re-request.
    pub rerequest_count_max: u32,
    /// Re-requests waiting to be served.
    pub rerequest_queue_max: u32,
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// TCP listen address of the admin endpoint (port 0 allowed).
    pub listen: SocketAddr,
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineLimits {
    /// Live orders in the engine.
    pub orders_max: u32,
    /// Price levels per instrument and side.
    pub levels_max: u32,
    /// Distinct (login, token) pairs per day.
    pub tokens_max: u32,
    /// Trades busted per day (admin `bust`).
    pub busts_max: u32,
}

/// `[journal] sync`: the name of a [`SyncPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncName {
    /// Never sync (survives a process crash only).
    None,
    /// One sync per batch (group commit).
    Batch,
    /// One sync every `sync_every_batches` batches.
    EveryBatches,
}

/// `[journal]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Directory of segments and checkpoints (relative to the working directory unless absolute).
    pub directory: PathBuf,
    /// Sync policy.
    pub sync: SyncName,
    /// Batches per sync when `sync = "every_batches"`.
    pub sync_every_batches: u32,
    /// Size of each segment file (a multiple of 4096).
    pub segment_bytes: u64,
    /// Largest journal record payload.
    pub payload_bytes_max: u32,
    /// Largest number of records in one batch.
    pub batch_records_max: u32,
    /// Checkpoints kept (the newest).
    pub checkpoints_kept: u32,
    /// Checkpoint after this many journaled events.
    pub checkpoint_every_events: u64,
    /// Checkpoint after this many seconds.
    pub checkpoint_every_s: u64,
    /// The journal's most recent segments kept in the page cache (the writer's two included); older
    /// ones are written back and dropped from it (docs/journal.md, "Retired segments").
    #[serde(default = "cached_segments_default")]
    pub cached_segments: u32,
    /// Whether start-up moves the segments nothing needs any more (all their records are before the
    /// oldest checkpoint kept and before the day's start) to `archive_directory` (docs/journal.md,
    /// "Archived segments").
    #[serde(default = "archive_default")]
    pub archive: bool,
    /// Where archived segments go: inside the journal directory unless absolute, and on its file system.
    #[serde(default = "archive_directory_default")]
    pub archive_directory: PathBuf,
}

fn cached_segments_default() -> u32 {
    bourse_journal::CACHED_SEGMENTS_DEFAULT as u32
}

fn archive_default() -> bool {
    true
}

fn archive_directory_default() -> PathBuf {
    PathBuf::from("archive")
}

/// `[threading] idle`: the name of an [`IdleStrategy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleName {
    /// Spin.
    BusySpin,
    /// `std::thread::yield_now`.
    Yield,
    /// Spin, then yield, then park with exponential backoff.
    Backoff,
}

/// `[threading]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadingConfig {
    /// `auto`, `shared` or `pinned`.
    pub mode: ThreadingMode,
    /// How an agent thread waits when no agent did work.
    pub idle: IdleName,
    /// Backoff: idle rounds spent spinning.
    pub idle_spins_max: u32,
    /// Backoff: idle rounds spent yielding after the spins.
    pub idle_yields_max: u32,
    /// Backoff: first park.
    pub idle_park_ns_min: u64,
    /// Backoff: longest park (doubles up to it).
    pub idle_park_ns_max: u64,
    /// Cores for the threads that are not stages (the journal's spare builder, admin, the main thread):
    /// empty (the default) means the cores `pinned` leaves free, and no pinning under `shared`. The
    /// daemon checks at start that each is a core it may run on.
    #[serde(default)]
    pub helper_cores: Vec<usize>,
}

/// `[rings]`: capacities in records (powers of two).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingsConfig {
    /// Ingress -> core requests.
    pub commands_capacity: u32,
    /// Core -> ingress: OUCH replies released to sessions (and session control).
    pub replies_capacity: u32,
    /// Core -> market data: ITCH messages released to the feed.
    pub market_data_capacity: u32,
}

/// `[[instruments]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentSection {
    /// Symbol, 1 to 8 printable ASCII bytes.
    pub symbol: String,
    /// Price grid in OUCH price units (1/10000 dollar).
    pub tick_size: u32,
    /// Size grid in shares.
    pub lot_size: u32,
    /// Collar half-width in basis points (0: no collar).
    pub collar_bps: u32,
    /// Collar centre before the first trade, OUCH price units, on the tick grid.
    pub reference_price: u32,
    /// Largest order size in shares.
    pub shares_max: u32,
    /// Largest price x shares (OUCH price units x shares).
    pub notional_max: u64,
}

/// `[[firms]] stp_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StpName {
    /// No self-trade prevention.
    None,
    /// Cancel the incoming order's remainder.
    CancelNewest,
    /// Cancel the resting order.
    CancelOldest,
    /// Cancel both.
    CancelBoth,
    /// Reduce both by the smaller size.
    Decrement,
}

impl From<StpName> for StpMode {
    fn from(name: StpName) -> StpMode {
        match name {
            StpName::None => StpMode::None,
            StpName::CancelNewest => StpMode::CancelNewest,
            StpName::CancelOldest => StpMode::CancelOldest,
            StpName::CancelBoth => StpMode::CancelBoth,
            StpName::Decrement => StpMode::Decrement,
        }
    }
}

/// `[[firms]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmSection {
    /// Firm, 1 to 4 printable ASCII bytes.
    pub firm: String,
    /// Resting orders of this firm across all instruments (default [`FIRM_OPEN_ORDERS_MAX_DEFAULT`]).
    #[serde(default = "open_orders_max_default")]
    pub open_orders_max: u32,
    /// Self-trade prevention mode (default `none`).
    #[serde(default = "stp_mode_default")]
    pub stp_mode: StpName,
}

/// `firms[].open_orders_max` when the key is absent.
pub const FIRM_OPEN_ORDERS_MAX_DEFAULT: u32 = 10_000;

fn open_orders_max_default() -> u32 {
    FIRM_OPEN_ORDERS_MAX_DEFAULT
}

fn stp_mode_default() -> StpName {
    StpName::None
}

fn cancel_on_disconnect_default() -> bool {
    true
}

/// `[[logins]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    /// SoupBinTCP username, 1 to 6 printable ASCII bytes.
    pub username: String,
    /// SoupBinTCP password, 1 to 10 printable ASCII bytes.
    pub password: String,
    /// Default firm (used when an Enter Order's firm is blank); one of `firms`.
    pub firm: String,
    /// Firms this login may trade for (default: `[firm]`).
    #[serde(default)]
    pub firms: Vec<String>,
    /// Cancel the login's orders when its last session disconnects.
    #[serde(default = "cancel_on_disconnect_default")]
    pub cancel_on_disconnect: bool,
}

/// A login as the session layer needs it: credentials, engine id and cancel-on-disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLogin {
    /// The engine's login id (1-based file order).
    pub login: u32,
    /// Space-padded username.
    pub username: Username,
    /// Space-padded password.
    pub password: Password,
    /// Cancel-on-disconnect.
    pub cancel_on_disconnect: bool,
}

fn text<const N: usize>(key: String, value: &str) -> Result<bourse_protocol::fields::Alpha<N>, ConfigError> {
    if value.is_empty() || value.starts_with(' ') || value.ends_with(' ') {
        return Err(invalid(
            key,
            format!("{value:?}"),
            "must not be empty or start or end with a space",
        ));
    }
    bourse_protocol::fields::Alpha::<N>::new(value).ok_or_else(|| {
        invalid(
            key,
            format!("{value:?}"),
            format!("must be at most {N} printable ASCII bytes"),
        )
    })
}

/// A validated text field as a space-padded field.
///
/// # Panics
/// If the text is not valid for the field (only called on validated configs).
fn alpha<const N: usize>(s: &str) -> bourse_protocol::fields::Alpha<N> {
    match bourse_protocol::fields::Alpha::new(s) {
        Some(v) => v,
        None => panic!("config conversion on an unvalidated config: {s:?}"),
    }
}

impl Config {
    /// The sync policy as operators read it: `none`, `batch` or `every_batches (N)`.
    pub fn sync_policy_label(&self) -> String {
        match self.journal.sync {
            SyncName::None => "none".to_owned(),
            SyncName::Batch => "batch".to_owned(),
            SyncName::EveryBatches => format!("every_batches ({})", self.journal.sync_every_batches),
        }
    }

    /// The embedded default, parsed and validated.
    ///
    /// # Panics
    /// If the embedded default is invalid (a build defect the tests catch).
    pub fn embedded_default() -> Config {
        match Config::from_toml(DEFAULT_TOML) {
            Ok(config) => config,
            Err(error) => panic!("embedded default config is invalid: {error}"),
        }
    }

    /// Parses and validates a TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for syntax, types, unknown or missing keys; [`ConfigError::Invalid`] from
    /// [`Config::validate`].
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string().trim_end().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value and every relation between values.
    ///
    /// # Errors
    /// The first problem found, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_order_entry()?;
        self.validate_network()?;
        self.validate_engine()?;
        self.validate_journal()?;
        self.validate_threading()?;
        self.validate_instruments()?;
        self.validate_firms()?;
        self.validate_logins()?;
        // The engine's own rules, in case they are stricter than ours (the checks above should have caught
        // every case; this keeps a future engine rule from surfacing only at start-up of the pipeline).
        self.engine_config().validate().map_err(|e| {
            invalid(
                "engine",
                "[engine], [[instruments]], [[firms]], [[logins]]",
                format!("is rejected by the engine: {e}"),
            )
        })?;
        Ok(())
    }

    fn validate_order_entry(&self) -> Result<(), ConfigError> {
        let o = &self.order_entry;
        range("order_entry.sessions_max", o.sessions_max, 1, SESSIONS_MAX_LIMIT)?;
        range(
            "order_entry.frame_size_max",
            o.frame_size_max,
            FRAME_SIZE_MIN,
            FRAME_SIZE_LIMIT,
        )?;
        range(
            "order_entry.login_timeout_ms",
            o.login_timeout_ms,
            1,
            TIMER_MS_LIMIT,
        )?;
        range(
            "order_entry.heartbeat_interval_ms",
            o.heartbeat_interval_ms,
            1,
            TIMER_MS_LIMIT,
        )?;
        range(
            "order_entry.idle_timeout_ms",
            o.idle_timeout_ms,
            1,
            TIMER_MS_LIMIT,
        )?;
        if o.idle_timeout_ms <= o.heartbeat_interval_ms {
            return Err(invalid(
                "order_entry.idle_timeout_ms",
                o.idle_timeout_ms,
                format!(
                    "must be above order_entry.heartbeat_interval_ms ({})",
                    o.heartbeat_interval_ms
                ),
            ));
        }
        range(
            "order_entry.send_queue_bytes_max",
            o.send_queue_bytes_max,
            u64::from(o.frame_size_max),
            1 << 30,
        )?;
        range(
            "order_entry.throttle_msgs_per_s",
            o.throttle_msgs_per_s,
            1,
            10_000_000,
        )?;
        range(
            "order_entry.throttle_burst_max",
            o.throttle_burst_max,
            1,
            10_000_000,
        )?;
        range(
            "order_entry.throttle_excess_max",
            o.throttle_excess_max,
            1,
            10_000_000,
        )?;
        range(
            "snapshot.sessions_max",
            self.snapshot.sessions_max,
            1,
            SESSIONS_MAX_LIMIT,
        )?;
        Ok(())
    }

    fn validate_network(&self) -> Result<(), ConfigError> {
        let m = &self.market_data;
        for (key, group) in [
            ("market_data.group_a", m.group_a),
            ("market_data.group_b", m.group_b),
        ] {
            if !group.ip().is_multicast() || !group.is_ipv4() {
                return Err(invalid(
                    key,
                    group,
                    "is not an IPv4 multicast group (224.0.0.0/4)",
                ));
            }
            if group.port() == 0 {
                return Err(invalid(key, group, "needs a port (0 is not allowed for a group)"));
            }
        }
        if m.group_a == m.group_b {
            return Err(invalid(
                "market_data.group_b",
                m.group_b,
                "must differ from market_data.group_a",
            ));
        }
        if m.interface.is_multicast() || m.interface.is_unspecified() {
            return Err(invalid(
                "market_data.interface",
                m.interface,
                "must be a unicast interface address",
            ));
        }
        range(
            "market_data.payload_bytes_max",
            m.payload_bytes_max,
            MARKET_DATA_PAYLOAD_MIN,
            moldudp64::PAYLOAD_BYTES_MAX as u32,
        )?;
        range(
            "market_data.heartbeat_interval_ms",
            m.heartbeat_interval_ms,
            1,
            TIMER_MS_LIMIT,
        )?;
        range(
            "market_data.rerequest_count_max",
            m.rerequest_count_max,
            1,
            u32::from(moldudp64::MESSAGE_COUNT_MAX),
        )?;
        range(
            "market_data.rerequest_queue_max",
            m.rerequest_queue_max,
            1,
            1 << 16,
        )?;
        // TCP listeners: a fixed port may be used once (UDP re-request may share a number with TCP).
        let tcp = [
            ("order_entry.listen", self.order_entry.listen),
            ("snapshot.listen", self.snapshot.listen),
            ("admin.listen", self.admin.listen),
        ];
        for (i, (key, addr)) in tcp.iter().enumerate() {
            if addr.port() != 0 && tcp[..i].iter().any(|(_, other)| other == addr) {
                return Err(invalid(*key, addr, "is already used by another listener"));
            }
        }
        Ok(())
    }

    fn validate_engine(&self) -> Result<(), ConfigError> {
        let e = &self.engine;
        range("engine.orders_max", e.orders_max, 1, ORDERS_MAX_LIMIT)?;
        range("engine.levels_max", e.levels_max, 1, ORDERS_MAX_LIMIT)?;
        range("engine.tokens_max", e.tokens_max, 1, TOKENS_MAX_LIMIT)?;
        range("engine.busts_max", e.busts_max, 1, ORDERS_MAX_LIMIT)?;
        Ok(())
    }

    fn validate_journal(&self) -> Result<(), ConfigError> {
        let j = &self.journal;
        if j.directory.as_os_str().is_empty() {
            return Err(invalid("journal.directory", "\"\"", "must not be empty"));
        }
        range("journal.sync_every_batches", j.sync_every_batches, 1, 1 << 20)?;
        if !j.segment_bytes.is_multiple_of(SEGMENT_ALIGN_BYTES) {
            return Err(invalid(
                "journal.segment_bytes",
                j.segment_bytes,
                format!("is not a multiple of {SEGMENT_ALIGN_BYTES}"),
            ));
        }
        range("journal.segment_bytes", j.segment_bytes, 1 << 20, 1 << 40)?;
        range("journal.payload_bytes_max", j.payload_bytes_max, 256, 1 << 24)?;
        if u64::from(j.payload_bytes_max) * 4 > j.segment_bytes {
            return Err(invalid(
                "journal.payload_bytes_max",
                j.payload_bytes_max,
                format!(
                    "must be at most a quarter of journal.segment_bytes ({})",
                    j.segment_bytes
                ),
            ));
        }
        range("journal.batch_records_max", j.batch_records_max, 1, 1 << 24)?;
        range("journal.checkpoints_kept", j.checkpoints_kept, 1, 1000)?;
        range(
            "journal.checkpoint_every_events",
            j.checkpoint_every_events,
            1,
            u64::MAX / 2,
        )?;
        range("journal.checkpoint_every_s", j.checkpoint_every_s, 1, 86_400)?;
        range("journal.cached_segments", j.cached_segments, 2, 65_536)?;
        let archive = j.archive_directory.as_os_str();
        if archive.is_empty()
            || archive == "."
            || self.journal_archive_directory().as_deref() == Some(&j.directory)
        {
            return Err(invalid(
                "journal.archive_directory",
                format!("{:?}", j.archive_directory.display().to_string()),
                "must name a directory other than the journal directory",
            ));
        }
        // The library's own rules, in case they are stricter than ours.
        self.journal_config()
            .validate()
            .map_err(|e| invalid("journal", "[journal]", format!("is rejected by the journal: {e}")))?;
        Ok(())
    }

    fn validate_threading(&self) -> Result<(), ConfigError> {
        let t = &self.threading;
        range("threading.idle_spins_max", t.idle_spins_max, 0, 1 << 20)?;
        range("threading.idle_yields_max", t.idle_yields_max, 0, 1 << 20)?;
        range("threading.idle_park_ns_min", t.idle_park_ns_min, 1, 1_000_000_000)?;
        range(
            "threading.idle_park_ns_max",
            t.idle_park_ns_max,
            t.idle_park_ns_min,
            1_000_000_000,
        )?;
        if t.helper_cores.len() > HELPER_CORES_MAX {
            return Err(invalid(
                "threading.helper_cores",
                format!("{:?}", t.helper_cores),
                format!("lists more than {HELPER_CORES_MAX} cores"),
            ));
        }
        let r = &self.rings;
        for (key, capacity) in [
            ("rings.commands_capacity", r.commands_capacity),
            ("rings.replies_capacity", r.replies_capacity),
            ("rings.market_data_capacity", r.market_data_capacity),
        ] {
            range(key, capacity, 2, RING_CAPACITY_LIMIT)?;
            if !capacity.is_power_of_two() {
                return Err(invalid(key, capacity, "is not a power of two"));
            }
        }
        Ok(())
    }

    fn validate_instruments(&self) -> Result<(), ConfigError> {
        list_len("instruments", self.instruments.len(), INSTRUMENTS_MAX_LIMIT)?;
        // Duplicates through a set: a pairwise check was quadratic (seconds of start-up at tens of
        // thousands of entries).
        let mut seen = HashSet::with_capacity(self.instruments.len());
        for (i, a) in self.instruments.iter().enumerate() {
            let key = |field: &str| format!("instruments[{i}].{field}");
            let _: Symbol = text(key("symbol"), &a.symbol)?;
            if !seen.insert(a.symbol.as_str()) {
                return Err(invalid(key("symbol"), &a.symbol, "is listed twice"));
            }
            range(&key("tick_size"), a.tick_size, 1, PRICE_LIMIT_MAX)?;
            range(&key("lot_size"), a.lot_size, 1, u32::MAX)?;
            range(&key("collar_bps"), a.collar_bps, 0, 10_000)?;
            range(&key("reference_price"), a.reference_price, 1, PRICE_LIMIT_MAX)?;
            if !a.reference_price.is_multiple_of(a.tick_size) {
                return Err(invalid(
                    key("reference_price"),
                    a.reference_price,
                    format!("is not a multiple of tick_size ({})", a.tick_size),
                ));
            }
            range(&key("shares_max"), a.shares_max, a.lot_size, u32::MAX)?;
            range(&key("notional_max"), a.notional_max, 1, u64::MAX)?;
        }
        Ok(())
    }

    fn validate_firms(&self) -> Result<(), ConfigError> {
        list_len("firms", self.firms.len(), FIRMS_MAX_LIMIT)?;
        let mut seen = HashSet::with_capacity(self.firms.len());
        for (i, a) in self.firms.iter().enumerate() {
            let key = |field: &str| format!("firms[{i}].{field}");
            let _: Firm = text(key("firm"), &a.firm)?;
            if !seen.insert(a.firm.as_str()) {
                return Err(invalid(key("firm"), &a.firm, "is listed twice"));
            }
            range(
                &key("open_orders_max"),
                a.open_orders_max,
                1,
                self.engine.orders_max,
            )?;
        }
        Ok(())
    }

    fn validate_logins(&self) -> Result<(), ConfigError> {
        list_len("logins", self.logins.len(), LOGINS_MAX_LIMIT)?;
        let firms: HashSet<&str> = self.firms.iter().map(|b| b.firm.as_str()).collect();
        let known = |f: &str| firms.contains(f);
        let mut usernames = HashSet::with_capacity(self.logins.len());
        for (i, a) in self.logins.iter().enumerate() {
            let key = |field: &str| format!("logins[{i}].{field}");
            let _: Username = text(key("username"), &a.username)?;
            if !usernames.insert(a.username.as_str()) {
                return Err(invalid(key("username"), &a.username, "is listed twice"));
            }
            let _: Password = text(key("password"), &a.password)?;
            if !known(&a.firm) {
                return Err(invalid(key("firm"), &a.firm, "is not in [[firms]]"));
            }
            for (j, f) in a.firms.iter().enumerate() {
                if !known(f) {
                    return Err(invalid(
                        format!("logins[{i}].firms[{j}]"),
                        f,
                        "is not in [[firms]]",
                    ));
                }
            }
            if !a.firms.is_empty() && !a.firms.contains(&a.firm) {
                return Err(invalid(key("firm"), &a.firm, "is not among the login's firms"));
            }
        }
        Ok(())
    }

    /// The engine's configuration. `order_ref_first` and `match_number_first` are 1: the daemon replaces
    /// them with the values recovered from the journal.
    ///
    /// # Panics
    /// If called on a config that [`Config::validate`] rejects (a programmer error).
    pub fn engine_config(&self) -> EngineConfig {
        let instruments = self
            .instruments
            .iter()
            .enumerate()
            .map(|(i, a)| InstrumentConfig {
                symbol: alpha(&a.symbol),
                locate: u16::try_from(i + 1).expect("instrument count checked by validate"),
                tick_size: a.tick_size,
                lot_size: a.lot_size,
                collar_bps: a.collar_bps,
                reference_price: a.reference_price,
                shares_max: a.shares_max,
                notional_max: a.notional_max,
            })
            .collect();
        let firms = self
            .firms
            .iter()
            .map(|a| FirmConfig {
                firm: alpha(&a.firm),
                open_orders_max: a.open_orders_max,
                stp: a.stp_mode.into(),
            })
            .collect();
        let logins = self
            .logins
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let firms: Vec<Firm> = if a.firms.is_empty() {
                    vec![alpha(&a.firm)]
                } else {
                    a.firms.iter().map(|f| alpha(f)).collect()
                };
                LoginConfig {
                    login: u32::try_from(i + 1).expect("login count checked by validate"),
                    firms,
                    default_firm: alpha(&a.firm),
                }
            })
            .collect();
        EngineConfig {
            orders_max: self.engine.orders_max,
            levels_max: self.engine.levels_max,
            tokens_max: self.engine.tokens_max,
            busts_max: self.engine.busts_max,
            order_ref_first: 1,
            match_number_first: 1,
            instruments,
            firms,
            logins,
        }
    }

    /// The session layer's view of the logins, in engine login id order.
    ///
    /// # Panics
    /// If called on a config that [`Config::validate`] rejects (a programmer error).
    pub fn session_logins(&self) -> Vec<SessionLogin> {
        self.logins
            .iter()
            .enumerate()
            .map(|(i, a)| SessionLogin {
                login: u32::try_from(i + 1).expect("login count checked by validate"),
                username: Username::new(&a.username).expect("username checked by validate"),
                password: Password::new(&a.password).expect("password checked by validate"),
                cancel_on_disconnect: a.cancel_on_disconnect,
            })
            .collect()
    }

    /// The journal's configuration.
    pub fn journal_config(&self) -> JournalConfig {
        let j = &self.journal;
        JournalConfig {
            segment_bytes: j.segment_bytes,
            payload_bytes_max: j.payload_bytes_max,
            batch_records_max: j.batch_records_max,
            sync_policy: match j.sync {
                SyncName::None => SyncPolicy::None,
                SyncName::Batch => SyncPolicy::Batch,
                SyncName::EveryBatches => SyncPolicy::EveryBatches(j.sync_every_batches),
            },
            checkpoints_kept: j.checkpoints_kept,
        }
    }

    /// Where start-up archives old segments (`journal.archive_directory` resolved against the journal
    /// directory), or `None` when `journal.archive` is off.
    pub fn journal_archive_directory(&self) -> Option<PathBuf> {
        let j = &self.journal;
        j.archive.then(|| j.directory.join(&j.archive_directory))
    }

    /// The sync policy as the admin `status` reply names it.
    pub fn sync_policy_name(&self) -> SyncPolicyName {
        match self.journal.sync {
            SyncName::None => SyncPolicyName::None,
            SyncName::Batch => SyncPolicyName::Batch,
            SyncName::EveryBatches => SyncPolicyName::EveryBatches(self.journal.sync_every_batches),
        }
    }

    /// The idle strategy of agent threads.
    pub fn idle_strategy(&self) -> IdleStrategy {
        let t = &self.threading;
        match t.idle {
            IdleName::BusySpin => IdleStrategy::BusySpin,
            IdleName::Yield => IdleStrategy::Yield,
            IdleName::Backoff => IdleStrategy::Backoff {
                spins_max: t.idle_spins_max,
                yields_max: t.idle_yields_max,
                park_ns_min: t.idle_park_ns_min,
                park_ns_max: t.idle_park_ns_max,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut toml::Table)) -> String {
        let mut table: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        edit(&mut table);
        toml::to_string(&table).unwrap()
    }

    fn set(section: &str, key: &str, value: impl Into<toml::Value>) -> String {
        let value = value.into();
        with(|t| {
            t[section].as_table_mut().unwrap().insert(key.to_owned(), value);
        })
    }

    fn set_item(array: &str, index: usize, key: &str, value: impl Into<toml::Value>) -> String {
        let value = value.into();
        with(|t| {
            t[array].as_array_mut().unwrap()[index]
                .as_table_mut()
                .unwrap()
                .insert(key.to_owned(), value);
        })
    }

    #[test]
    fn embedded_default_parses_validates_and_converts() {
        let config = Config::embedded_default();
        assert!((3..=4).contains(&config.instruments.len()));
        let engine = config.engine_config();
        engine.validate().unwrap();
        assert_eq!(engine.instruments.len(), config.instruments.len());
        assert_eq!(engine.instruments[0].locate, 1);
        assert_eq!(engine.instruments[0].symbol, Symbol::new("AAPL").unwrap());
        assert_eq!(engine.logins.len(), config.logins.len());
        // carol: default firm GAMA, may also trade ALFA.
        let carol = &engine.logins[2];
        assert_eq!(carol.login, 3);
        assert_eq!(carol.default_firm, Firm::new("GAMA").unwrap());
        assert_eq!(
            carol.firms,
            vec![Firm::new("GAMA").unwrap(), Firm::new("ALFA").unwrap()]
        );
        assert_eq!(engine.firms[1].stp, StpMode::CancelNewest);
        let journal = config.journal_config();
        journal.validate().unwrap();
        assert_eq!(journal.sync_policy, SyncPolicy::Batch);
        assert_eq!(config.sync_policy_name(), SyncPolicyName::Batch);
        let logins = config.session_logins();
        assert_eq!(logins[0].username, Username::new("alice").unwrap());
        assert!(!logins[2].cancel_on_disconnect);
        assert!(config.market_data.group_a.ip().to_string().starts_with("239."));
        assert_eq!(config.market_data.interface, Ipv4Addr::LOCALHOST);
        assert_eq!(config.market_data.payload_bytes_max, 1400);
        assert_eq!(config.threading.mode, ThreadingMode::Auto);
    }

    #[test]
    fn logins_are_limited_to_what_an_order_can_name() {
        // The default's logins plus enough generated ones to pass the limit by one.
        let base = Config::embedded_default().logins.len();
        let text = with(|t| {
            let logins = t["logins"].as_array_mut().unwrap();
            let template = logins[0].clone();
            for n in 0..LOGINS_MAX_LIMIT + 1 - base {
                let mut login = template.clone();
                login["username"] = format!("u{n:05}").into();
                logins.push(login);
            }
        });
        let e = Config::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("logins") && e.contains("65536"), "{e}");
    }

    #[test]
    fn embedded_default_builds_an_engine() {
        let engine = bourse_book::Engine::new(Config::embedded_default().engine_config());
        assert!(engine.is_ok(), "{:?}", engine.err());
    }

    #[test]
    fn omitted_login_firms_default_to_the_default_firm() {
        let text = with(|t| {
            t["logins"].as_array_mut().unwrap()[0]
                .as_table_mut()
                .unwrap()
                .remove("firms");
        });
        let engine = Config::from_toml(&text).unwrap().engine_config();
        assert_eq!(engine.logins[0].firms, vec![Firm::new("ALFA").unwrap()]);
    }

    #[test]
    fn optional_keys_take_their_documented_defaults() {
        let text = with(|t| {
            let firm = t["firms"].as_array_mut().unwrap()[2].as_table_mut().unwrap();
            firm.remove("open_orders_max");
            firm.remove("stp_mode");
            t["logins"].as_array_mut().unwrap()[2]
                .as_table_mut()
                .unwrap()
                .remove("cancel_on_disconnect");
        });
        let config = Config::from_toml(&text).unwrap();
        let engine = config.engine_config();
        assert_eq!(engine.firms[2].open_orders_max, FIRM_OPEN_ORDERS_MAX_DEFAULT);
        assert_eq!(engine.firms[2].stp, StpMode::None);
        assert!(config.session_logins()[2].cancel_on_disconnect);
    }

    #[test]
    fn sync_every_batches_converts() {
        let config = Config::from_toml(&set("journal", "sync", "every_batches")).unwrap();
        assert_eq!(config.journal_config().sync_policy, SyncPolicy::EveryBatches(8));
        assert_eq!(config.sync_policy_name(), SyncPolicyName::EveryBatches(8));
    }

    #[test]
    fn every_validation_error_names_its_key() {
        let cases: Vec<(String, &str, &str)> = vec![
            (
                set("order_entry", "frame_size_max", 20),
                "order_entry.frame_size_max",
                "config: order_entry.frame_size_max = 20 is below 54",
            ),
            (
                set("order_entry", "frame_size_max", 70_000),
                "order_entry.frame_size_max",
                "is above 65537",
            ),
            (
                set("order_entry", "sessions_max", 0),
                "order_entry.sessions_max",
                "is below 1",
            ),
            (
                set("order_entry", "login_timeout_ms", 0),
                "order_entry.login_timeout_ms",
                "is below 1",
            ),
            (
                set("order_entry", "heartbeat_interval_ms", 0),
                "order_entry.heartbeat_interval_ms",
                "is below 1",
            ),
            (
                set("order_entry", "idle_timeout_ms", 500),
                "order_entry.idle_timeout_ms",
                "heartbeat_interval_ms",
            ),
            (
                set("order_entry", "send_queue_bytes_max", 100),
                "order_entry.send_queue_bytes_max",
                "is below 1024",
            ),
            (
                set("order_entry", "throttle_msgs_per_s", 0),
                "order_entry.throttle_msgs_per_s",
                "is below 1",
            ),
            (
                set("order_entry", "throttle_burst_max", 0),
                "order_entry.throttle_burst_max",
                "is below 1",
            ),
            (
                set("order_entry", "throttle_excess_max", 0),
                "order_entry.throttle_excess_max",
                "is below 1",
            ),
            (
                set("snapshot", "sessions_max", 0),
                "snapshot.sessions_max",
                "is below 1",
            ),
            (
                set("snapshot", "listen", "127.0.0.1:26400"),
                "snapshot.listen",
                "already used",
            ),
            (
                set("market_data", "group_a", "10.0.0.1:26477"),
                "market_data.group_a",
                "multicast",
            ),
            (
                set("market_data", "group_b", "239.192.77.1:26477"),
                "market_data.group_b",
                "differ",
            ),
            (
                set("market_data", "group_b", "239.192.77.9:0"),
                "market_data.group_b",
                "port",
            ),
            (
                set("market_data", "interface", "0.0.0.0"),
                "market_data.interface",
                "unicast",
            ),
            (
                set("market_data", "payload_bytes_max", 40),
                "market_data.payload_bytes_max",
                "is below 66",
            ),
            (
                set("market_data", "payload_bytes_max", 70_000),
                "market_data.payload_bytes_max",
                "is above 65507",
            ),
            (
                set("market_data", "heartbeat_interval_ms", 0),
                "market_data.heartbeat_interval_ms",
                "is below 1",
            ),
            (
                set("market_data", "rerequest_count_max", 0),
                "market_data.rerequest_count_max",
                "is below 1",
            ),
            (
                set("market_data", "rerequest_queue_max", 0),
                "market_data.rerequest_queue_max",
                "is below 1",
            ),
            (set("engine", "orders_max", 0), "engine.orders_max", "is below 1"),
            (set("engine", "levels_max", 0), "engine.levels_max", "is below 1"),
            (
                set("engine", "tokens_max", i64::from(TOKENS_MAX_LIMIT) + 1),
                "engine.tokens_max",
                "is above",
            ),
            (set("engine", "busts_max", 0), "engine.busts_max", "is below 1"),
            (set("journal", "directory", ""), "journal.directory", "empty"),
            (
                set("journal", "sync_every_batches", 0),
                "journal.sync_every_batches",
                "is below 1",
            ),
            (
                set("journal", "segment_bytes", 1_000_000),
                "journal.segment_bytes",
                "multiple of 4096",
            ),
            (
                set("journal", "segment_bytes", 4096),
                "journal.segment_bytes",
                "is below",
            ),
            (
                set("journal", "payload_bytes_max", 100),
                "journal.payload_bytes_max",
                "is below 256",
            ),
            (
                with(|t| {
                    let j = t["journal"].as_table_mut().unwrap();
                    j.insert("segment_bytes".into(), (1i64 << 20).into());
                    j.insert("payload_bytes_max".into(), (1i64 << 19).into());
                }),
                "journal.payload_bytes_max",
                "quarter",
            ),
            (
                set("journal", "batch_records_max", 0),
                "journal.batch_records_max",
                "is below 1",
            ),
            (
                set("journal", "checkpoints_kept", 0),
                "journal.checkpoints_kept",
                "is below 1",
            ),
            (
                set("journal", "checkpoint_every_events", 0),
                "journal.checkpoint_every_events",
                "is below 1",
            ),
            (
                set("journal", "checkpoint_every_s", 0),
                "journal.checkpoint_every_s",
                "is below 1",
            ),
            (
                set("journal", "cached_segments", 1),
                "journal.cached_segments",
                "is below 2",
            ),
            (
                set("journal", "archive_directory", ""),
                "journal.archive_directory",
                "other than the journal directory",
            ),
            (
                set("journal", "archive_directory", "."),
                "journal.archive_directory",
                "other than the journal directory",
            ),
            (
                set("threading", "idle_park_ns_min", 0),
                "threading.idle_park_ns_min",
                "is below 1",
            ),
            (
                set("threading", "idle_park_ns_max", 10),
                "threading.idle_park_ns_max",
                "is below 1000",
            ),
            (
                set("rings", "commands_capacity", 1000),
                "rings.commands_capacity",
                "power of two",
            ),
            (
                set("rings", "replies_capacity", 1),
                "rings.replies_capacity",
                "is below 2",
            ),
            (
                set_item("instruments", 1, "symbol", "TOOLONGSYM"),
                "instruments[1].symbol",
                "at most 8",
            ),
            (
                set_item("instruments", 1, "symbol", ""),
                "instruments[1].symbol",
                "empty",
            ),
            (
                set_item("instruments", 1, "symbol", "AAPL "),
                "instruments[1].symbol",
                "end with a space",
            ),
            (
                set_item("instruments", 1, "symbol", "A\u{7f}"),
                "instruments[1].symbol",
                "printable ASCII",
            ),
            (
                set_item("instruments", 1, "symbol", "AAPL"),
                "instruments[1].symbol",
                "twice",
            ),
            (
                set_item("instruments", 0, "tick_size", 0),
                "instruments[0].tick_size",
                "is below 1",
            ),
            (
                set_item("instruments", 0, "lot_size", 0),
                "instruments[0].lot_size",
                "is below 1",
            ),
            (
                set_item("instruments", 0, "collar_bps", 20_000),
                "instruments[0].collar_bps",
                "is above 10000",
            ),
            (
                set_item("instruments", 0, "reference_price", 1_900_050),
                "instruments[0].reference_price",
                "tick_size",
            ),
            (
                set_item("instruments", 2, "shares_max", 50),
                "instruments[2].shares_max",
                "is below 100",
            ),
            (
                set_item("instruments", 0, "notional_max", 0),
                "instruments[0].notional_max",
                "is below 1",
            ),
            (
                set_item("firms", 0, "firm", "TOOLONG"),
                "firms[0].firm",
                "at most 4",
            ),
            (set_item("firms", 1, "firm", "ALFA"), "firms[1].firm", "twice"),
            (
                set_item("firms", 0, "open_orders_max", 0),
                "firms[0].open_orders_max",
                "is below 1",
            ),
            (
                set_item("logins", 0, "username", "toolongname"),
                "logins[0].username",
                "at most 6",
            ),
            (
                set_item("logins", 1, "username", "alice"),
                "logins[1].username",
                "twice",
            ),
            (
                set_item("logins", 0, "password", "much-too-long"),
                "logins[0].password",
                "at most 10",
            ),
            (
                set_item("logins", 0, "firm", "NOPE"),
                "logins[0].firm",
                "not in [[firms]]",
            ),
            (
                set_item("logins", 0, "firm", "BETA"),
                "logins[0].firm",
                "not among",
            ),
            (
                set_item("logins", 0, "firms", vec!["ALFA", "NOPE"]),
                "logins[0].firms[1]",
                "not in [[firms]]",
            ),
            (
                with(|t| {
                    t.insert("instruments".into(), toml::Value::Array(vec![]));
                }),
                "instruments",
                "1 to",
            ),
        ];
        for (text, key, needle) in cases {
            let error = Config::from_toml(&text).expect_err(key);
            let message = error.to_string();
            assert_eq!(error.key(), Some(key), "{message}");
            assert!(message.starts_with(&format!("config: {key} = ")), "{message}");
            assert!(message.contains(needle), "{key}: {message} lacks {needle:?}");
        }
    }

    /// Every key of the default appears in docs/OPERATIONS.md "Configuration" (so the doc cannot drift).
    #[test]
    fn every_key_is_documented() {
        let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/OPERATIONS.md");
        let doc = std::fs::read_to_string(doc_path).unwrap();
        let table: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        let mut keys = Vec::new();
        for (section, value) in &table {
            match value {
                toml::Value::Table(t) => keys.extend(t.keys().map(|k| format!("`{section}.{k}`"))),
                toml::Value::Array(items) => {
                    for item in items {
                        let t = item.as_table().unwrap();
                        keys.extend(t.keys().map(|k| format!("`{section}[].{k}`")));
                    }
                }
                other => panic!("top-level value {section} = {other}"),
            }
        }
        assert!(keys.len() > 60, "{keys:?}");
        for key in keys {
            assert!(
                doc.contains(&format!("| {key} |")),
                "{key} is not documented in {doc_path}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        for (text, name) in [
            (set("order_entry", "frame_size_mx", 1024), "frame_size_mx"),
            (
                with(|t| {
                    t.insert("extra".into(), toml::Value::Integer(1));
                }),
                "extra",
            ),
            (set_item("instruments", 0, "tick", 1), "tick"),
        ] {
            let error = Config::from_toml(&text).unwrap_err();
            assert!(matches!(error, ConfigError::Parse(_)));
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn missing_keys_and_bad_enum_values_are_parse_errors() {
        let missing = with(|t| {
            t["order_entry"].as_table_mut().unwrap().remove("sessions_max");
        });
        let error = Config::from_toml(&missing).unwrap_err();
        assert!(error.to_string().contains("sessions_max"), "{error}");
        let error = Config::from_toml(&set("threading", "mode", "fast")).unwrap_err();
        assert!(error.to_string().contains("fast"), "{error}");
        let error = Config::from_toml(&set("journal", "sync", "sometimes")).unwrap_err();
        assert!(error.to_string().contains("sometimes"), "{error}");
        assert!(Config::from_toml("not [ toml").is_err());
    }

    #[test]
    fn ports_zero_are_allowed_everywhere_but_groups() {
        let text = with(|t| {
            for section in ["order_entry", "snapshot", "admin"] {
                t[section]
                    .as_table_mut()
                    .unwrap()
                    .insert("listen".into(), "127.0.0.1:0".into());
            }
            t["market_data"]
                .as_table_mut()
                .unwrap()
                .insert("rerequest_listen".into(), "127.0.0.1:0".into());
        });
        let config = Config::from_toml(&text).unwrap();
        assert_eq!(config.order_entry.listen.port(), 0);
        assert_eq!(config.admin.listen.port(), 0);
    }
}
