//! The admin side of the CLI: the admin endpoint client, the ports file, and the admin commands
//! (`bourse status`, `sessions`, `logout`, `disable`, `enable`, `halt`, `resume`, `kill`, `unkill`, `bust`,
//! `checkpoint`, `eod`, `shutdown`, `depth`, `latency`).
//!
//! # Protocol
//! Line-delimited JSON over TCP (`docs/OPERATIONS.md` "Admin protocol"): one [`AdminRequest`] per line, one
//! [`AdminReply`] line back, in order. The types live in `bourse_protocol::admin`, so this crate does not
//! depend on the daemon. A reply line is at most [`ADMIN_LINE_BYTES_MAX`] bytes; a longer one is an error.
//!
//! # Output and exit codes
//! Tables by default (prices as dollars with 4 decimals, latencies in microseconds); `--json` prints the
//! reply line exactly as received. Exit codes: [`EXIT_OK`] 0, [`EXIT_ADMIN_ERROR`] 1 (an `error` reply; its
//! message goes to stderr), [`EXIT_UNREACHABLE`] 2 (nothing answers at the admin address, the connection broke,
//! the ports file cannot be read, or the `--plot` file cannot be written: the message names the address or
//! the file).
//!
//! # Ports file
//! `boursed --ports-file FILE` writes `key=value` lines once every socket is bound: `order_entry`,
//! `snapshot`, `rerequest`, `admin`, `market_data_a`, `market_data_b` ([`Ports`]).

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bourse_protocol::admin::{
    ADMIN_LINE_BYTES_MAX, AdminErrorCode, AdminReply, AdminRequest, DEPTH_LEVELS_MAX, DepthReply,
    LatencyPoint, SessionInfo, StageLatency, StatusReply, SyncPolicyName, ThreadingModeName,
};
use bourse_protocol::fields::PRICE_SCALE;
use clap::{Args, Subcommand};

use crate::plot;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the daemon answered with an `error` reply (or `md --verify` found a mismatch).
pub const EXIT_ADMIN_ERROR: i32 = 1;
/// Exit code: the daemon is not reachable (or the ports file is unreadable).
pub const EXIT_UNREACHABLE: i32 = 2;
/// The admin address of the embedded default config (`admin.listen`).
pub const ADMIN_ADDRESS_DEFAULT: &str = "127.0.0.1:26499";
/// Default bound on connecting to the admin port.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on waiting for a reply (a checkpoint or end of day may take a moment).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Levels per side `bourse depth` asks for by default.
pub const DEPTH_LEVELS_DEFAULT: u32 = 10;
/// The largest ports file read.
pub const PORTS_FILE_BYTES_MAX: u64 = 64 * 1024;

/// The addresses `boursed` bound, as its ports file lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Order entry (SoupBinTCP + OUCH).
    pub order_entry: SocketAddr,
    /// Snapshot (SoupBinTCP + ITCH).
    pub snapshot: SocketAddr,
    /// MoldUDP64 re-request server (UDP).
    pub rerequest: SocketAddr,
    /// Admin endpoint.
    pub admin: SocketAddr,
    /// Market data group A (multicast group:port).
    pub market_data_a: SocketAddr,
    /// Market data group B.
    pub market_data_b: SocketAddr,
}

/// Why a ports file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    /// The file could not be read.
    #[error("cannot read the ports file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A key is missing.
    #[error("the ports file has no `{0}` line")]
    Missing(&'static str),
    /// A value is not an address.
    #[error("the ports file's `{key}` is not an address: {value:?}")]
    BadAddress {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

impl Ports {
    /// Parses `key=value` lines; unknown keys and blank lines are ignored.
    ///
    /// # Errors
    /// [`PortsError::Missing`], [`PortsError::BadAddress`].
    pub fn parse(text: &str) -> Result<Self, PortsError> {
        let mut found: [Option<SocketAddr>; 6] = [None; 6];
        const KEYS: [&str; 6] = [
            "order_entry",
            "snapshot",
            "rerequest",
            "admin",
            "market_data_a",
            "market_data_b",
        ];
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if let Some(index) = KEYS.iter().position(|k| *k == key) {
                found[index] = Some(value.parse().map_err(|_| PortsError::BadAddress {
                    key: key.to_owned(),
                    value: value.to_owned(),
                })?);
            }
        }
        let get = |index: usize| found[index].ok_or(PortsError::Missing(KEYS[index]));
        Ok(Self {
            order_entry: get(0)?,
            snapshot: get(1)?,
            rerequest: get(2)?,
            admin: get(3)?,
            market_data_a: get(4)?,
            market_data_b: get(5)?,
        })
    }

    /// Reads and parses a ports file (at most [`PORTS_FILE_BYTES_MAX`] bytes).
    ///
    /// # Errors
    /// [`PortsError`].
    pub fn read(path: &Path) -> Result<Self, PortsError> {
        let read = |source| PortsError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(PORTS_FILE_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(read)?;
        Self::parse(&text)
    }
}

/// Why an admin request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nothing answers at the address.
    #[error("cannot reach the bourse admin endpoint at {address}: {source} (is boursed running?)")]
    Unreachable {
        /// The address tried.
        address: String,
        /// The connect error.
        source: io::Error,
    },
    /// The connection broke (or timed out) during a request.
    #[error("admin connection to {address} failed: {source}")]
    Io {
        /// The address.
        address: String,
        /// The error.
        source: io::Error,
    },
    /// The daemon closed the connection without a reply.
    #[error("the admin endpoint at {0} closed the connection without a reply")]
    Closed(String),
    /// A reply line over [`ADMIN_LINE_BYTES_MAX`].
    #[error("admin reply over {ADMIN_LINE_BYTES_MAX} bytes")]
    LineTooLong,
    /// A reply that is not an [`AdminReply`].
    #[error("admin reply does not decode ({error}): {line}")]
    BadReply {
        /// The line.
        line: String,
        /// The JSON error.
        error: String,
    },
    /// The daemon answered with an error reply (from the typed helpers such as [`AdminClient::depth`]).
    #[error("{code:?}: {message}")]
    Refused {
        /// Its code.
        code: AdminErrorCode,
        /// Its message.
        message: String,
    },
    /// The daemon answered with a reply of another type than the request calls for.
    #[error("unexpected admin reply: {0}")]
    UnexpectedReply(String),
}

impl AdminError {
    /// The CLI exit code for this error: [`EXIT_ADMIN_ERROR`] for a refusal, [`EXIT_UNREACHABLE`] otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Refused { .. } => EXIT_ADMIN_ERROR,
            _ => EXIT_UNREACHABLE,
        }
    }
}

/// One reply: decoded, and the line exactly as received (without its newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminResponse {
    /// The decoded reply.
    pub reply: AdminReply,
    /// The line as received.
    pub line: String,
}

/// A connection to the admin endpoint. Requests are answered in order, one at a time.
#[derive(Debug)]
pub struct AdminClient {
    address: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl AdminClient {
    /// Connects within [`CONNECT_TIMEOUT`]; replies are awaited at most [`REPLY_TIMEOUT`].
    ///
    /// # Errors
    /// [`AdminError::Unreachable`].
    pub fn connect(address: &str) -> Result<Self, AdminError> {
        Self::connect_with(address, CONNECT_TIMEOUT, REPLY_TIMEOUT)
    }

    /// Connects within `connect_timeout`; replies are awaited at most `reply_timeout`.
    ///
    /// # Errors
    /// [`AdminError::Unreachable`].
    pub fn connect_with(
        address: &str,
        connect_timeout: Duration,
        reply_timeout: Duration,
    ) -> Result<Self, AdminError> {
        let unreachable = |source| AdminError::Unreachable {
            address: address.to_owned(),
            source,
        };
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing");
        for peer in address.to_socket_addrs().map_err(unreachable)? {
            match TcpStream::connect_timeout(&peer, connect_timeout) {
                Ok(stream) => {
                    let io = |source| AdminError::Io {
                        address: address.to_owned(),
                        source,
                    };
                    stream.set_read_timeout(Some(reply_timeout)).map_err(io)?;
                    stream.set_write_timeout(Some(reply_timeout)).map_err(io)?;
                    let writer = stream.try_clone().map_err(io)?;
                    return Ok(Self {
                        address: address.to_owned(),
                        reader: BufReader::new(stream),
                        writer,
                    });
                }
                Err(error) => last = error,
            }
        }
        Err(unreachable(last))
    }

    /// The address connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends one request and waits for its reply.
    ///
    /// # Errors
    /// [`AdminError::Io`], [`AdminError::Closed`], [`AdminError::LineTooLong`], [`AdminError::BadReply`].
    pub fn request(&mut self, request: &AdminRequest) -> Result<AdminResponse, AdminError> {
        let mut line = serde_json::to_string(request).map_err(|e| AdminError::BadReply {
            line: String::new(),
            error: e.to_string(),
        })?;
        line.push('\n');
        self.request_line(&line)
    }

    /// Sends `line` as it is (a newline is appended when missing) and waits for the reply: for tests of
    /// malformed requests.
    ///
    /// # Errors
    /// As [`AdminClient::request`].
    pub fn request_line(&mut self, line: &str) -> Result<AdminResponse, AdminError> {
        let io = |source| AdminError::Io {
            address: self.address.clone(),
            source,
        };
        self.writer.write_all(line.as_bytes()).map_err(io)?;
        if !line.ends_with('\n') {
            self.writer.write_all(b"\n").map_err(io)?;
        }
        let mut reply = String::new();
        let limit = ADMIN_LINE_BYTES_MAX as u64;
        let n = (&mut self.reader)
            .take(limit)
            .read_line(&mut reply)
            .map_err(|source| AdminError::Io {
                address: self.address.clone(),
                source,
            })?;
        if n == 0 {
            return Err(AdminError::Closed(self.address.clone()));
        }
        if !reply.ends_with('\n') {
            return Err(if n as u64 >= limit {
                AdminError::LineTooLong
            } else {
                AdminError::Closed(self.address.clone())
            });
        }
        reply.pop();
        if reply.ends_with('\r') {
            reply.pop();
        }
        match serde_json::from_str(&reply) {
            Ok(decoded) => Ok(AdminResponse {
                reply: decoded,
                line: reply,
            }),
            Err(error) => Err(AdminError::BadReply {
                line: reply,
                error: error.to_string(),
            }),
        }
    }

    /// The depth of one book (`levels` per side).
    ///
    /// # Errors
    /// [`AdminError::Refused`] for an error reply, the errors of [`AdminClient::request`].
    pub fn depth(&mut self, symbol: &str, levels: u32) -> Result<DepthReply, AdminError> {
        match self.request(&AdminRequest::Depth {
            symbol: symbol.to_owned(),
            levels,
        })? {
            AdminResponse {
                reply: AdminReply::Depth(depth),
                ..
            } => Ok(depth),
            other => Err(refused_or_unexpected(other)),
        }
    }

    /// The daemon's status.
    ///
    /// # Errors
    /// As [`AdminClient::depth`].
    pub fn status(&mut self) -> Result<StatusReply, AdminError> {
        match self.request(&AdminRequest::Status)? {
            AdminResponse {
                reply: AdminReply::Status(status),
                ..
            } => Ok(status),
            other => Err(refused_or_unexpected(other)),
        }
    }

    /// The latency distributions.
    ///
    /// # Errors
    /// As [`AdminClient::depth`].
    pub fn latency(&mut self) -> Result<Vec<StageLatency>, AdminError> {
        match self.request(&AdminRequest::Latency)? {
            AdminResponse {
                reply: AdminReply::Latency { stages },
                ..
            } => Ok(stages),
            other => Err(refused_or_unexpected(other)),
        }
    }
}

fn refused_or_unexpected(response: AdminResponse) -> AdminError {
    match response.reply {
        AdminReply::Error { code, message } => AdminError::Refused { code, message },
        _ => AdminError::UnexpectedReply(response.line),
    }
}

/// Options every command that talks to the daemon takes (global: they may come before or after the
/// subcommand).
#[derive(Args, Clone, Debug, Default)]
pub struct GlobalOptions {
    /// Admin address of boursed (default: the ports file's, else the embedded default config's
    /// 127.0.0.1:26499).
    #[arg(long, global = true, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Read the daemon's addresses from the ports file boursed wrote (`boursed --ports-file FILE`).
    #[arg(long, global = true, value_name = "FILE")]
    pub ports_file: Option<PathBuf>,
    /// Print the admin reply JSON exactly as received (md: a JSON summary at the end).
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalOptions {
    /// The admin address to use: `--admin`, else the ports file's `admin`, else the default.
    ///
    /// # Errors
    /// [`PortsError`] when the ports file cannot be used.
    pub fn admin_address(&self) -> Result<String, PortsError> {
        if let Some(address) = &self.admin {
            return Ok(address.clone());
        }
        match &self.ports_file {
            Some(path) => Ok(Ports::read(path)?.admin.to_string()),
            None => Ok(ADMIN_ADDRESS_DEFAULT.to_owned()),
        }
    }
}

/// The admin subcommands (flattened into the `bourse` command line).
#[derive(Subcommand, Clone, Debug)]
pub enum AdminCommand {
    /// Daemon status: uptime, sessions, orders, events/s, ring depths, sync policy.
    Status,
    /// Connected order-entry sessions.
    Sessions,
    /// Force-logout every session of a login.
    Logout {
        /// SoupBinTCP username.
        user: String,
    },
    /// Log a login out and refuse its logins until enabled.
    Disable {
        /// SoupBinTCP username.
        user: String,
    },
    /// Allow a disabled login again.
    Enable {
        /// SoupBinTCP username.
        user: String,
    },
    /// Halt trading in an instrument.
    Halt {
        /// Instrument symbol.
        symbol: String,
    },
    /// Resume trading in a halted instrument.
    Resume {
        /// Instrument symbol.
        symbol: String,
    },
    /// Kill switch: cancel every order of a firm and block new ones.
    Kill {
        /// Firm.
        firm: String,
    },
    /// Lift a firm's kill switch.
    Unkill {
        /// Firm.
        firm: String,
    },
    /// Bust a trade (Broken Trade to both sides and on the feed).
    Bust {
        /// The trade's match number.
        #[arg(value_name = "MATCH")]
        match_number: u64,
    },
    /// Write a checkpoint now.
    Checkpoint,
    /// Run the end of the trading day.
    Eod,
    /// Drain, checkpoint and stop the daemon.
    Shutdown,
    /// The price levels of a book.
    Depth {
        /// Instrument symbol.
        symbol: String,
        /// Levels per side.
        #[arg(long, default_value_t = DEPTH_LEVELS_DEFAULT,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(DEPTH_LEVELS_MAX)))]
        levels: u32,
    },
    /// Latency percentiles per stage and wire to wire.
    Latency {
        /// Also draw the percentile distributions as SVG into FILE.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
}

impl AdminCommand {
    /// The request this command sends.
    pub fn request(&self) -> AdminRequest {
        match self {
            Self::Status => AdminRequest::Status,
            Self::Sessions => AdminRequest::Sessions,
            Self::Logout { user } => AdminRequest::Logout { user: user.clone() },
            Self::Disable { user } => AdminRequest::Disable { user: user.clone() },
            Self::Enable { user } => AdminRequest::Enable { user: user.clone() },
            Self::Halt { symbol } => AdminRequest::Halt {
                symbol: symbol.clone(),
            },
            Self::Resume { symbol } => AdminRequest::Resume {
                symbol: symbol.clone(),
            },
            Self::Kill { firm } => AdminRequest::Kill { firm: firm.clone() },
            Self::Unkill { firm } => AdminRequest::Unkill { firm: firm.clone() },
            Self::Bust { match_number } => AdminRequest::Bust {
                match_number: *match_number,
            },
            Self::Checkpoint => AdminRequest::Checkpoint,
            Self::Eod => AdminRequest::EndOfDay,
            Self::Shutdown => AdminRequest::Shutdown,
            Self::Depth { symbol, levels } => AdminRequest::Depth {
                symbol: symbol.clone(),
                levels: *levels,
            },
            Self::Latency { .. } => AdminRequest::Latency,
        }
    }
}

/// Runs one admin command: prints its table (or the JSON line) on stdout, errors on stderr, and returns the
/// exit code.
pub fn run(command: &AdminCommand, options: &GlobalOptions) -> i32 {
    let address = match options.admin_address() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("bourse: {error}");
            return EXIT_UNREACHABLE;
        }
    };
    let response = AdminClient::connect(&address).and_then(|mut client| client.request(&command.request()));
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            eprintln!("bourse: {error}");
            return error.exit_code();
        }
    };
    let mut out = String::new();
    let code = render(command, options.json, &response, &mut out);
    print!("{out}");
    if code == EXIT_OK
        && let (AdminCommand::Latency { plot: Some(path) }, AdminReply::Latency { stages }) =
            (command, &response.reply)
    {
        let svg = latency_svg(stages);
        if let Err(error) = std::fs::write(path, svg) {
            eprintln!("bourse: cannot write the plot {}: {error}", path.display());
            return EXIT_UNREACHABLE;
        }
        if !options.json {
            println!("plot written to {}", path.display());
        }
    }
    code
}

/// Writes what the CLI prints for `response` into `out` and returns the exit code. An `error` reply's
/// message goes to stderr (and the JSON line, if `json`, to `out`).
pub fn render(command: &AdminCommand, json: bool, response: &AdminResponse, out: &mut String) -> i32 {
    if let AdminReply::Error { code, message } = &response.reply {
        if json {
            out.push_str(&response.line);
            out.push('\n');
        }
        eprintln!(
            "bourse: {}: {message} ({})",
            command_name(command),
            error_code_name(*code)
        );
        return EXIT_ADMIN_ERROR;
    }
    if json {
        out.push_str(&response.line);
        out.push('\n');
        return EXIT_OK;
    }
    match &response.reply {
        AdminReply::Status(status) => out.push_str(&status_table(status)),
        AdminReply::Sessions { sessions } => out.push_str(&sessions_table(sessions)),
        AdminReply::Depth(depth) => out.push_str(&depth_table(depth)),
        AdminReply::Latency { stages } => out.push_str(&latency_table(stages)),
        AdminReply::Done {
            request,
            sequence,
            message,
        } => {
            let _ = write!(out, "{request}: {message}");
            if let Some(sequence) = sequence {
                let _ = write!(out, " (journal sequence {sequence})");
            }
            out.push('\n');
        }
        AdminReply::Error { .. } => {}
    }
    EXIT_OK
}

fn command_name(command: &AdminCommand) -> &'static str {
    match command {
        AdminCommand::Status => "status",
        AdminCommand::Sessions => "sessions",
        AdminCommand::Logout { .. } => "logout",
        AdminCommand::Disable { .. } => "disable",
        AdminCommand::Enable { .. } => "enable",
        AdminCommand::Halt { .. } => "halt",
        AdminCommand::Resume { .. } => "resume",
        AdminCommand::Kill { .. } => "kill",
        AdminCommand::Unkill { .. } => "unkill",
        AdminCommand::Bust { .. } => "bust",
        AdminCommand::Checkpoint => "checkpoint",
        AdminCommand::Eod => "eod",
        AdminCommand::Shutdown => "shutdown",
        AdminCommand::Depth { .. } => "depth",
        AdminCommand::Latency { .. } => "latency",
    }
}

fn error_code_name(code: AdminErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}

/// An OUCH price (1/10000 dollar) as dollars with 4 decimals: `1900000` -> `190.0000`.
pub fn format_price(price: u32) -> String {
    format!("{}.{:04}", price / PRICE_SCALE, price % PRICE_SCALE)
}

/// Nanoseconds as microseconds with 2 decimals: `12345` -> `12.35`.
pub fn format_us(ns: u64) -> String {
    let hundredths = (ns + 5) / 10;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Column alignment in a [`Table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A plain-text table: a header row and rows, each column as wide as its widest cell, two spaces apart.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    ///
    /// # Panics
    /// If the row does not have one cell per column (a programmer error).
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.rows.push(cells);
        self
    }

    /// The table as text, one line per row, header first; no trailing spaces.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.columns[i].0.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `bourse status` as text.
pub fn status_table(status: &StatusReply) -> String {
    let sync = match status.sync_policy {
        SyncPolicyName::None => "none".to_owned(),
        SyncPolicyName::Batch => "batch".to_owned(),
        SyncPolicyName::EveryBatches(n) => format!("every {n} batches"),
    };
    let threading = match status.threading_mode {
        ThreadingModeName::Shared => "shared",
        ThreadingModeName::Pinned => "pinned",
    };
    let mut table = Table::new(&[("", Align::Left), ("", Align::Right)]);
    for (name, value) in [
        ("uptime", format!("{:.3} s", status.uptime_ms as f64 / 1000.0)),
        ("sessions", status.sessions.to_string()),
        ("orders", status.orders.to_string()),
        ("events", status.events_total.to_string()),
        ("events/s", status.events_per_s.to_string()),
        ("journal sequence", status.journal_sequence.to_string()),
        (
            "journal from",
            match status.journal_first_sequence {
                0 => "-".to_owned(),
                first => first.to_string(),
            },
        ),
        ("sync policy", sync),
        ("threading", threading.to_owned()),
        (
            "pipeline busy",
            format!("{:.1} %", status.pipeline_busy_ns_per_s as f64 / 1e7),
        ),
        (
            "busy since start",
            format!("{:.3} s", status.pipeline_busy_ns as f64 / 1e9),
        ),
        (
            "last checkpoint",
            match status.checkpoint_sequence {
                0 => "none since start".to_owned(),
                at => format!("at {at}"),
            },
        ),
        (
            "checkpointer",
            if status.checkpointer_failed {
                format!(
                    "STOPPED at {} (see the daemon's log)",
                    status.checkpointer_sequence
                )
            } else {
                format!("at {}", status.checkpointer_sequence)
            },
        ),
    ] {
        table.row(vec![name.to_owned(), value]);
    }
    // The header row of a key/value table is empty: drop it.
    let mut out: String = table.render().lines().skip(1).fold(String::new(), |mut s, l| {
        s.push_str(l);
        s.push('\n');
        s
    });
    if !status.rings.is_empty() {
        out.push('\n');
        let mut rings = Table::new(&[
            ("ring", Align::Left),
            ("len", Align::Right),
            ("capacity", Align::Right),
        ]);
        for ring in &status.rings {
            rings.row(vec![
                ring.ring.clone(),
                ring.len.to_string(),
                ring.capacity.to_string(),
            ]);
        }
        out.push_str(&rings.render());
    }
    out
}

/// `bourse sessions` as text.
pub fn sessions_table(sessions: &[SessionInfo]) -> String {
    let mut table = Table::new(&[
        ("user", Align::Left),
        ("peer", Align::Left),
        ("seq next", Align::Right),
        ("send queue B", Align::Right),
        ("in", Align::Right),
        ("out", Align::Right),
        ("connected s", Align::Right),
    ]);
    for s in sessions {
        table.row(vec![
            s.user.clone().unwrap_or_else(|| "-".to_owned()),
            s.peer.clone(),
            s.sequence_next.to_string(),
            s.send_queue_bytes.to_string(),
            s.messages_in.to_string(),
            s.messages_out.to_string(),
            format!("{:.1}", s.connected_ms as f64 / 1000.0),
        ]);
    }
    let mut out = table.render();
    let _ = writeln!(out, "{} session(s)", sessions.len());
    out
}

/// `bourse depth` as text: bids and asks side by side, best first.
pub fn depth_table(depth: &DepthReply) -> String {
    let mut out = format!(
        "{}{}  feed sequence {}\n",
        depth.symbol,
        if depth.halted { "  HALTED" } else { "" },
        depth.feed_sequence
    );
    let mut table = Table::new(&[
        ("bid orders", Align::Right),
        ("bid shares", Align::Right),
        ("bid $", Align::Right),
        ("ask $", Align::Right),
        ("ask shares", Align::Right),
        ("ask orders", Align::Right),
    ]);
    let rows = depth.bids.len().max(depth.asks.len());
    for i in 0..rows {
        let mut cells = match depth.bids.get(i) {
            Some(l) => vec![l.orders.to_string(), l.shares.to_string(), format_price(l.price)],
            None => vec![String::new(), String::new(), String::new()],
        };
        cells.extend(match depth.asks.get(i) {
            Some(l) => vec![format_price(l.price), l.shares.to_string(), l.orders.to_string()],
            None => vec![String::new(), String::new(), String::new()],
        });
        table.row(cells);
    }
    out.push_str(&table.render());
    if rows == 0 {
        out.push_str("(empty book)\n");
    }
    out
}

/// `bourse latency` as text: one row per stage, microseconds.
pub fn latency_table(stages: &[StageLatency]) -> String {
    let mut table = Table::new(&[
        ("stage", Align::Left),
        ("count", Align::Right),
        ("p50 us", Align::Right),
        ("p90 us", Align::Right),
        ("p99 us", Align::Right),
        ("p99.9 us", Align::Right),
        ("max us", Align::Right),
    ]);
    for s in stages {
        table.row(vec![
            s.stage.clone(),
            s.count.to_string(),
            format_us(s.p50_ns),
            format_us(s.p90_ns),
            format_us(s.p99_ns),
            format_us(s.p999_ns),
            format_us(s.max_ns),
        ]);
    }
    table.render()
}

/// The percentile plot of [`AdminReply::Latency`] as SVG (drawn by [`crate::plot`]): one line per stage
/// with samples, x = percentile on the log `1/(1-q)` axis, y = latency in microseconds.
pub fn latency_svg(stages: &[StageLatency]) -> String {
    let series: Vec<plot::Series> = stages
        .iter()
        .filter(|s| s.count > 0 && !s.points.is_empty())
        .map(|s| plot::Series {
            name: s.stage.clone(),
            points: s.points.iter().map(latency_point).collect(),
        })
        .collect();
    plot::percentile_svg("bourse latency by percentile", "us", &series)
}

/// A latency point as `(quantile, microseconds)`.
fn latency_point(point: &LatencyPoint) -> (f64, f64) {
    (
        f64::from(point.quantile_ppm) / 1e6,
        point.value_ns as f64 / 1000.0,
    )
}

#[cfg(test)]
mod tests {
    use bourse_protocol::admin::{DepthLevel, RingDepth};

    use super::*;

    #[test]
    fn ports_file_parses_and_names_what_is_missing() {
        let text = "order_entry=127.0.0.1:1\nsnapshot=127.0.0.1:2\nrerequest=127.0.0.1:3\nadmin=127.0.0.1:4\n\
                    market_data_a=239.1.2.3:5\nmarket_data_b=239.1.2.4:6\nfuture_key=x\n";
        let ports = Ports::parse(text).unwrap();
        assert_eq!(ports.admin, "127.0.0.1:4".parse().unwrap());
        assert_eq!(ports.market_data_b, "239.1.2.4:6".parse().unwrap());
        assert!(matches!(
            Ports::parse("admin=127.0.0.1:4"),
            Err(PortsError::Missing("order_entry"))
        ));
        assert!(matches!(
            Ports::parse(&text.replace("127.0.0.1:4", "nope")),
            Err(PortsError::BadAddress { key, .. }) if key == "admin"
        ));
        assert!(matches!(
            Ports::read(Path::new("/nonexistent/bourse/ports")),
            Err(PortsError::Read { .. })
        ));
    }

    #[test]
    fn prices_and_microseconds_format() {
        assert_eq!(format_price(1_900_000), "190.0000");
        assert_eq!(format_price(1_502_500), "150.2500");
        assert_eq!(format_price(1), "0.0001");
        assert_eq!(format_price(u32::MAX), "429496.7295");
        assert_eq!(format_us(12_345), "12.35");
        assert_eq!(format_us(0), "0.00");
        assert_eq!(format_us(999), "1.00");
    }

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&[("name", Align::Left), ("n", Align::Right)]);
        table
            .row(vec!["a".into(), "1000".into()])
            .row(vec!["longer".into(), "7".into()]);
        assert_eq!(table.render(), "name       n\na       1000\nlonger     7\n");

        let depth = DepthReply {
            symbol: "AAPL".into(),
            halted: true,
            feed_sequence: 42,
            bids: vec![
                DepthLevel {
                    price: 1_899_900,
                    shares: 300,
                    orders: 2,
                },
                DepthLevel {
                    price: 1_899_800,
                    shares: 5,
                    orders: 1,
                },
            ],
            asks: vec![DepthLevel {
                price: 1_900_100,
                shares: 1_000,
                orders: 12,
            }],
        };
        let text = depth_table(&depth);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "AAPL  HALTED  feed sequence 42");
        assert_eq!(
            lines[1],
            "bid orders  bid shares     bid $     ask $  ask shares  ask orders"
        );
        assert_eq!(
            lines[2],
            "         2         300  189.9900  190.0100        1000          12"
        );
        assert_eq!(lines[3], "         1           5  189.9800");
        assert!(
            depth_table(&DepthReply {
                bids: vec![],
                asks: vec![],
                ..depth
            })
            .contains("(empty book)")
        );

        let status = StatusReply {
            uptime_ms: 1_500,
            sessions: 2,
            orders: 10,
            events_total: 1_000,
            events_per_s: 250,
            journal_sequence: 1_020,
            rings: vec![RingDepth {
                ring: "commands".into(),
                len: 3,
                capacity: 65_536,
            }],
            sync_policy: SyncPolicyName::EveryBatches(8),
            threading_mode: ThreadingModeName::Shared,
            pipeline_busy_ns: 1_200_000_000,
            pipeline_busy_ns_per_s: 372_000_000,
            checkpoint_sequence: 0,
            checkpointer_sequence: 1_020,
            checkpointer_failed: false,
            journal_first_sequence: 1,
        };
        let text = status_table(&status);
        assert!(text.contains("\nlast checkpoint   none since start\n"), "{text}");
        assert!(text.contains("\ncheckpointer               at 1020\n"), "{text}");
        let stopped = status_table(&StatusReply {
            checkpoint_sequence: 900,
            checkpointer_failed: true,
            ..status.clone()
        });
        let line = |name: &str| {
            stopped
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or("")
                .to_owned()
        };
        assert!(line("last checkpoint").ends_with(" at 900"), "{stopped}");
        assert!(
            line("checkpointer").ends_with(" STOPPED at 1020 (see the daemon's log)"),
            "{stopped}"
        );
        assert!(text.starts_with("uptime                     1.500 s\n"), "{text}");
        assert!(text.contains("\nsync policy        every 8 batches\n"), "{text}");
        assert!(text.contains("\nthreading                   shared\n"), "{text}");
        assert!(text.contains("commands    3     65536\n"), "{text}");
        assert!(text.contains("\npipeline busy               37.2 %\n"), "{text}");
        assert!(text.contains("\nbusy since start           1.200 s\n"), "{text}");
    }

    #[test]
    fn json_mode_prints_the_line_as_received_and_errors_exit_1() {
        let line = r#"{"type":"done","request":"halt","sequence":7,"message":"AAPL halted"}"#;
        let response = AdminResponse {
            reply: serde_json::from_str(line).unwrap(),
            line: line.to_owned(),
        };
        let command = AdminCommand::Halt {
            symbol: "AAPL".into(),
        };
        let mut out = String::new();
        assert_eq!(render(&command, true, &response, &mut out), EXIT_OK);
        assert_eq!(out, format!("{line}\n"));
        out.clear();
        assert_eq!(render(&command, false, &response, &mut out), EXIT_OK);
        assert_eq!(out, "halt: AAPL halted (journal sequence 7)\n");

        let error = r#"{"type":"error","code":"unknown_symbol","message":"no instrument ZZZZ"}"#;
        let response = AdminResponse {
            reply: serde_json::from_str(error).unwrap(),
            line: error.to_owned(),
        };
        out.clear();
        assert_eq!(render(&command, false, &response, &mut out), EXIT_ADMIN_ERROR);
        assert!(out.is_empty());
        assert_eq!(error_code_name(AdminErrorCode::UnknownSymbol), "unknown_symbol");
    }

    /// Checks that every tag opens and closes in order (a small well-formedness check; attribute values must
    /// not contain `<`, `>` or unescaped `&`).
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(!text.contains('>'), "stray > in {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "bad entity in {text:?}"
                );
            }
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "{tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag}");
            if tag.starts_with('?') {
                // The XML declaration.
            } else if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap().to_owned();
                stack.push(name);
            } else if stack.is_empty() {
                panic!("element outside the root: {tag}");
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(rest.trim().is_empty());
    }

    #[test]
    fn latency_plot_is_well_formed_svg_with_a_line_per_stage() {
        let points: Vec<LatencyPoint> = [0, 500_000, 900_000, 990_000, 999_000, 999_900, 1_000_000]
            .iter()
            .enumerate()
            .map(|(i, &q)| LatencyPoint {
                quantile_ppm: q,
                value_ns: 1_000 * (i as u64 + 1),
            })
            .collect();
        let stage = |name: &str, count| StageLatency {
            stage: name.into(),
            count,
            p50_ns: 2_000,
            p90_ns: 3_000,
            p99_ns: 4_000,
            p999_ns: 5_000,
            max_ns: 7_000,
            points: points.clone(),
        };
        let stages = vec![stage("wire_to_wire", 10), stage("a<b&c", 3), stage("empty", 0)];
        let svg = latency_svg(&stages);
        assert_well_formed(&svg);
        assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "the empty stage is not drawn"
        );
        assert!(svg.contains("a&lt;b&amp;c"));
        assert!(svg.contains(">99.9%<"));
        // 7 points on the line; the last (q = 1) sits at the right edge.
        assert!(svg.contains(r#"data-name="wire_to_wire""#));
        let line = svg.lines().find(|l| l.starts_with("<polyline")).unwrap();
        let coords = line.split("points=\"").nth(1).unwrap().trim_end_matches("\"/>");
        assert_eq!(coords.split(' ').count(), 7);
        let xs: Vec<f64> = coords
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            xs.windows(2).all(|w| w[0] <= w[1]),
            "x grows with the percentile: {xs:?}"
        );
        assert_well_formed(&latency_svg(&[]));
    }
}
