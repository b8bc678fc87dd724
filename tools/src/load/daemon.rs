//! `boursed` for tools and tests: writes a config from a base TOML text, starts the binary on free ports,
//! reads its ports file ([`crate::admin::Ports`]), talks to its admin endpoint ([`crate::admin::AdminClient`]),
//! and stops it.
//!
//! This module never links the daemon: it edits the config as TOML text (the `toml` crate) and runs the
//! `boursed` executable, as an operator would.
//!
//! # Generated configs
//! [`daemon_config`] takes a base text (`boursed --print-default-config`, or any config) and changes only
//! what the caller asks: every TCP/UDP listen port to 0 (so runs go in parallel), the multicast groups to
//! the caller's (or fresh ones), the journal directory, optionally the sync policy, threading, throttle and
//! capacities, and optionally replaces `[[logins]]` with `n` load logins [`load_login`] (`m00001`/`p00001`
//! ..., 6-character usernames being the SoupBinTCP limit) trading for the firm [`LOAD_FIRM`], which it adds.
//!
//! # Limits
//! - At most [`LOAD_LOGINS_MAX`] generated logins (5 digits).
//! - Start-up is bounded by the caller's timeout; [`Daemon`] kills the process on drop if it still runs.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bourse_protocol::admin::{AdminReply, AdminRequest};
use toml::{Table, Value};

use super::{Credentials, Instrument};
use crate::admin::AdminClient;
pub use crate::admin::Ports;

/// The firm generated load logins trade for.
pub const LOAD_FIRM: &str = "LOAD";
/// Most logins [`daemon_config`] generates.
pub const LOAD_LOGINS_MAX: usize = 99_999;
/// How often [`Daemon::start`] looks for the ports file.
const PORTS_POLL: Duration = Duration::from_millis(10);

/// Why a config could not be made or a daemon started or spoken to.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The base text is not a usable config.
    #[error("config: {0}")]
    Config(String),
    /// A file or process operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// `boursed` exited before writing its ports file.
    #[error("boursed exited with {status} before it was ready; its output:\n{log}")]
    Exited {
        /// Exit status.
        status: ExitStatus,
        /// Its stdout and stderr.
        log: String,
    },
    /// The ports file did not appear in time.
    #[error("boursed wrote no ports file within {0:?}")]
    Timeout(Duration),
    /// The ports file or an admin reply is not what was expected.
    #[error("{0}")]
    Protocol(String),
    /// No `boursed` executable was found.
    #[error("boursed not found next to {0} nor on PATH (build it: cargo build -p bourse-daemon)")]
    NotFound(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |error| DaemonError::Io { what, error }
}

/// What [`daemon_config`] changes in the base text (`None`: keep the base's value).
#[derive(Clone, Debug, Default)]
pub struct DaemonConfigOptions {
    /// `journal.directory`.
    pub journal_dir: PathBuf,
    /// Replace `[[logins]]` with this many load logins (and add the firm [`LOAD_FIRM`]).
    pub load_logins: Option<usize>,
    /// `journal.sync`: `none`, `batch` or `every_batches`.
    pub sync: Option<String>,
    /// `threading.mode`: `auto`, `shared` or `pinned`.
    pub threading_mode: Option<String>,
    /// `threading.idle`: `busy_spin`, `yield` or `backoff`.
    pub idle: Option<String>,
    /// Multicast groups A and B; `None`: fresh ones (a 239.193.x.y group per call, free UDP ports).
    pub market_data: Option<(SocketAddrV4, SocketAddrV4)>,
    /// `order_entry.throttle_msgs_per_s`, and the burst and excess limits with it (same value).
    pub throttle_msgs_per_s: Option<u32>,
    /// `engine.orders_max` (also the load firm's `open_orders_max`).
    pub orders_max: Option<u32>,
    /// `engine.tokens_max`.
    pub tokens_max: Option<u32>,
    /// `market_data.heartbeat_interval_ms` (a short one lets a listener see a dropped last packet sooner).
    pub market_data_heartbeat_ms: Option<u64>,
    /// `threading.helper_cores`.
    pub helper_cores: Option<Vec<usize>>,
}

/// Login `index` (1-based) of a generated config: `m00001` / `p00001`.
///
/// # Panics
/// If `index` is 0 or above [`LOAD_LOGINS_MAX`] (a programmer error).
pub fn load_login(index: usize) -> Credentials {
    assert!((1..=LOAD_LOGINS_MAX).contains(&index), "load login {index}");
    Credentials {
        username: format!("m{index:05}"),
        password: format!("p{index:05}"),
    }
}

/// The logins `1..=n` of a generated config.
pub fn load_logins(n: usize) -> Vec<Credentials> {
    (1..=n).map(load_login).collect()
}

fn parse(text: &str) -> Result<Table, DaemonError> {
    text.parse::<Table>()
        .map_err(|e| DaemonError::Config(e.to_string().trim_end().to_owned()))
}

fn section<'a>(table: &'a mut Table, name: &str) -> Result<&'a mut Table, DaemonError> {
    table
        .get_mut(name)
        .and_then(Value::as_table_mut)
        .ok_or_else(|| DaemonError::Config(format!("no [{name}] section")))
}

/// Sets the port of the `host:port` string at `table[key]` to 0.
fn port_zero(table: &mut Table, key: &str, section_name: &str) -> Result<(), DaemonError> {
    let value = table
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| DaemonError::Config(format!("no {section_name}.{key}")))?;
    let addr: SocketAddr = value
        .parse()
        .map_err(|_| DaemonError::Config(format!("{section_name}.{key} = {value:?} is not host:port")))?;
    table.insert(
        key.to_owned(),
        Value::String(SocketAddr::new(addr.ip(), 0).to_string()),
    );
    Ok(())
}

/// A free UDP port on 127.0.0.1 (bound, read, released: another process could take it, rarely).
fn free_udp_port() -> Result<u16, DaemonError> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(io_error("bind a UDP port"))?;
    Ok(socket.local_addr().map_err(io_error("local address"))?.port())
}

/// Fresh multicast groups for one daemon: 239.193.x.y from the process id and the clock, free ports.
pub fn fresh_groups() -> Result<(SocketAddrV4, SocketAddrV4), DaemonError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    let (x, y) = ((mix >> 8) as u8, (mix as u8) & 0xFE);
    Ok((
        SocketAddrV4::new(Ipv4Addr::new(239, 193, x, y), free_udp_port()?),
        SocketAddrV4::new(Ipv4Addr::new(239, 193, x, y | 1), free_udp_port()?),
    ))
}

/// The base config text with the changes of `options` (see the module header).
///
/// # Errors
/// [`DaemonError::Config`] when the base text is not TOML with the expected sections.
pub fn daemon_config(base: &str, options: &DaemonConfigOptions) -> Result<String, DaemonError> {
    let mut root = parse(base)?;
    port_zero(section(&mut root, "order_entry")?, "listen", "order_entry")?;
    port_zero(section(&mut root, "snapshot")?, "listen", "snapshot")?;
    port_zero(section(&mut root, "admin")?, "listen", "admin")?;
    let (a, b) = match options.market_data {
        Some(groups) => groups,
        None => fresh_groups()?,
    };
    {
        let md = section(&mut root, "market_data")?;
        port_zero(md, "rerequest_listen", "market_data")?;
        md.insert("group_a".into(), Value::String(a.to_string()));
        md.insert("group_b".into(), Value::String(b.to_string()));
        md.insert("interface".into(), Value::String("127.0.0.1".into()));
        if let Some(ms) = options.market_data_heartbeat_ms {
            md.insert("heartbeat_interval_ms".into(), Value::Integer(ms as i64));
        }
    }
    {
        let journal = section(&mut root, "journal")?;
        journal.insert(
            "directory".into(),
            Value::String(options.journal_dir.to_string_lossy().into_owned()),
        );
        if let Some(sync) = &options.sync {
            journal.insert("sync".into(), Value::String(sync.clone()));
        }
    }
    {
        let threading = section(&mut root, "threading")?;
        if let Some(mode) = &options.threading_mode {
            threading.insert("mode".into(), Value::String(mode.clone()));
        }
        if let Some(idle) = &options.idle {
            threading.insert("idle".into(), Value::String(idle.clone()));
        }
        if let Some(cores) = &options.helper_cores {
            let cores = cores.iter().map(|&c| Value::Integer(c as i64)).collect();
            threading.insert("helper_cores".into(), Value::Array(cores));
        }
    }
    if let Some(rate) = options.throttle_msgs_per_s {
        let order_entry = section(&mut root, "order_entry")?;
        for key in ["throttle_msgs_per_s", "throttle_burst_max", "throttle_excess_max"] {
            order_entry.insert(key.into(), Value::Integer(i64::from(rate)));
        }
    }
    {
        let engine = section(&mut root, "engine")?;
        if let Some(orders) = options.orders_max {
            engine.insert("orders_max".into(), Value::Integer(i64::from(orders)));
        }
        if let Some(tokens) = options.tokens_max {
            engine.insert("tokens_max".into(), Value::Integer(i64::from(tokens)));
        }
    }
    if let Some(n) = options.load_logins {
        if n == 0 || n > LOAD_LOGINS_MAX {
            return Err(DaemonError::Config(format!(
                "{n} load logins: must be 1 to {LOAD_LOGINS_MAX}"
            )));
        }
        let orders_max = section(&mut root, "engine")?
            .get("orders_max")
            .and_then(Value::as_integer)
            .unwrap_or(1_000_000);
        let firms = root
            .entry("firms")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| DaemonError::Config("firms is not an array of tables".into()))?;
        firms.retain(|f| f.get("firm").and_then(Value::as_str) != Some(LOAD_FIRM));
        let mut firm = Table::new();
        firm.insert("firm".into(), Value::String(LOAD_FIRM.into()));
        firm.insert("open_orders_max".into(), Value::Integer(orders_max));
        firm.insert("stp_mode".into(), Value::String("none".into()));
        firms.push(Value::Table(firm));
        let logins = load_logins(n)
            .into_iter()
            .map(|c| {
                let mut login = Table::new();
                login.insert("username".into(), Value::String(c.username));
                login.insert("password".into(), Value::String(c.password));
                login.insert("firm".into(), Value::String(LOAD_FIRM.into()));
                login.insert(
                    "firms".into(),
                    Value::Array(vec![Value::String(LOAD_FIRM.into())]),
                );
                login.insert("cancel_on_disconnect".into(), Value::Boolean(true));
                Value::Table(login)
            })
            .collect();
        root.insert("logins".into(), Value::Array(logins));
        let sessions = section(&mut root, "order_entry")?;
        let max = sessions
            .get("sessions_max")
            .and_then(Value::as_integer)
            .unwrap_or(0);
        if max < n as i64 + 16 {
            sessions.insert("sessions_max".into(), Value::Integer(n as i64 + 16));
        }
    }
    toml::to_string(&root).map_err(|e| DaemonError::Config(e.to_string()))
}

/// The `[[logins]]` of a config text as credentials.
///
/// # Errors
/// [`DaemonError::Config`] when the text is not TOML or a login lacks a username or password.
pub fn logins_from_config(text: &str) -> Result<Vec<Credentials>, DaemonError> {
    let root = parse(text)?;
    let logins = root
        .get("logins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    logins
        .iter()
        .enumerate()
        .map(|(i, login)| {
            let field = |key: &str| {
                login
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| DaemonError::Config(format!("logins[{i}].{key} missing")))
            };
            Ok(Credentials {
                username: field("username")?,
                password: field("password")?,
            })
        })
        .collect()
}

/// The `[[instruments]]` of a config text, as the load mix needs them.
///
/// # Errors
/// [`DaemonError::Config`] when the text is not TOML or an instrument lacks a key or has a bad value.
pub fn instruments_from_config(text: &str) -> Result<Vec<Instrument>, DaemonError> {
    let root = parse(text)?;
    let list = root
        .get("instruments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = |key: &str| DaemonError::Config(format!("instruments[{i}].{key} missing or invalid"));
            let number = |key: &str| {
                item.get(key)
                    .and_then(Value::as_integer)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| bad(key))
            };
            let symbol = item
                .get("symbol")
                .and_then(Value::as_str)
                .and_then(bourse_protocol::fields::Symbol::new)
                .ok_or_else(|| bad("symbol"))?;
            Ok(Instrument {
                symbol,
                tick_size: number("tick_size")?.max(1),
                lot_size: number("lot_size")?.max(1),
                reference_price: number("reference_price")?,
                collar_bps: if item.get("collar_bps").is_some() {
                    number("collar_bps")?
                } else {
                    0
                },
            })
        })
        .collect()
}

/// `boursed` next to the running executable (or its parent directory, for test executables in
/// `target/<profile>/deps`), then on `PATH`.
pub fn find_boursed() -> Option<PathBuf> {
    let name = format!("boursed{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        for candidate in [dir.join(&name), dir.join("..").join(&name)] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(&name))
            .find(|p| p.is_file())
    })
}

/// A fresh, empty temporary directory `bourse-<what>-<pid>-<nanos>`.
///
/// # Errors
/// [`DaemonError::Io`] if it cannot be created.
pub fn temp_dir(what: &str) -> Result<PathBuf, DaemonError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("bourse-{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io_error(format!("create {}", dir.display())))?;
    Ok(dir)
}

/// A running `boursed`, killed on drop if it still runs.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Its bound addresses.
    pub ports: Ports,
    /// Its working directory (config, ports file, log, journal under it).
    pub dir: PathBuf,
    /// Remove `dir` when dropped ([`Daemon::removing_dir`]).
    remove_dir: bool,
}

impl Daemon {
    /// Writes `config_text` to `dir/boursed.toml` and starts `binary --config .. --ports-file dir/ports`,
    /// its stdout and stderr going to `dir/boursed.log`, with the extra environment `env`; waits for the
    /// ports file.
    ///
    /// # Errors
    /// [`DaemonError::Exited`] with its log if it exits first, [`DaemonError::Timeout`] if the ports file does
    /// not appear within `timeout` (the process is killed), [`DaemonError::Io`] for file and spawn errors.
    pub fn start(
        binary: &Path,
        config_text: &str,
        dir: &Path,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Daemon, DaemonError> {
        let config = dir.join("boursed.toml");
        let ports_file = dir.join("ports");
        let log_path = dir.join("boursed.log");
        std::fs::write(&config, config_text).map_err(io_error(format!("write {}", config.display())))?;
        let _ = std::fs::remove_file(&ports_file);
        let log = std::fs::File::create(&log_path).map_err(io_error("create boursed.log"))?;
        let log_err = log.try_clone().map_err(io_error("clone log handle"))?;
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(&config)
            .arg("--ports-file")
            .arg(&ports_file)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .map_err(io_error(format!("start {}", binary.display())))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().map_err(io_error("wait for boursed"))? {
                return Err(DaemonError::Exited {
                    status,
                    log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                });
            }
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(ports) = Ports::parse(&text)
            {
                return Ok(Daemon {
                    child,
                    ports,
                    dir: dir.to_path_buf(),
                    remove_dir: false,
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DaemonError::Timeout(timeout));
            }
            std::thread::sleep(PORTS_POLL);
        }
    }

    /// This daemon removes its directory (config, log, journal) when dropped: for a directory of its own
    /// that nothing reads afterwards (a test's, a benchmark row's). A journal two daemons share in turn
    /// (a restart) must not use it.
    pub fn removing_dir(mut self) -> Daemon {
        self.remove_dir = true;
        self
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one admin request and reads its reply (bounded by `timeout` per read and write).
    ///
    /// # Errors
    /// [`DaemonError::Io`] for socket errors, [`DaemonError::Protocol`] for a reply that does not decode.
    pub fn admin(&self, request: &AdminRequest, timeout: Duration) -> Result<AdminReply, DaemonError> {
        let mut client = AdminClient::connect_with(&self.ports.admin.to_string(), timeout, timeout)
            .map_err(|e| DaemonError::Protocol(e.to_string()))?;
        client
            .request(request)
            .map(|response| response.reply)
            .map_err(|e| DaemonError::Protocol(e.to_string()))
    }

    /// Asks for a shutdown over admin and waits up to `timeout` for the exit; kills it after that.
    ///
    /// # Errors
    /// [`DaemonError::Io`] if waiting fails.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus, DaemonError> {
        let _ = self.admin(&AdminRequest::Shutdown, timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(io_error("wait for boursed"))? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return self.child.wait().map_err(io_error("wait for boursed"));
            }
            std::thread::sleep(PORTS_POLL);
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("boursed.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[order_entry]
listen = "127.0.0.1:26400"
sessions_max = 100
throttle_msgs_per_s = 10
throttle_burst_max = 10
throttle_excess_max = 10
[snapshot]
listen = "127.0.0.1:26401"
[market_data]
group_a = "239.192.77.1:26477"
group_b = "239.192.77.2:26478"
interface = "127.0.0.1"
rerequest_listen = "127.0.0.1:26479"
[admin]
listen = "127.0.0.1:26499"
[engine]
orders_max = 5000
tokens_max = 5000
[journal]
directory = "bourse-journal"
sync = "batch"
[threading]
mode = "auto"
idle = "backoff"
[[instruments]]
symbol = "AAPL"
tick_size = 100
lot_size = 1
reference_price = 1900000
[[firms]]
firm = "ALFA"
[[logins]]
username = "alice"
password = "alice-pw"
firm = "ALFA"
"#;

    #[test]
    fn generated_config_has_zero_ports_and_load_logins() {
        let options = DaemonConfigOptions {
            journal_dir: PathBuf::from("/tmp/x/journal"),
            load_logins: Some(3),
            sync: Some("none".into()),
            threading_mode: Some("shared".into()),
            idle: Some("busy_spin".into()),
            market_data: Some((
                "239.193.1.2:5000".parse().unwrap(),
                "239.193.1.3:5001".parse().unwrap(),
            )),
            throttle_msgs_per_s: Some(1_000_000),
            orders_max: None,
            tokens_max: Some(2_000_000),
            market_data_heartbeat_ms: Some(50),
            helper_cores: Some(vec![1]),
        };
        let text = daemon_config(BASE, &options).unwrap();
        let root: Table = text.parse().unwrap();
        let get = |s: &str, k: &str| root[s][k].clone();
        assert_eq!(get("order_entry", "listen").as_str(), Some("127.0.0.1:0"));
        assert_eq!(get("snapshot", "listen").as_str(), Some("127.0.0.1:0"));
        assert_eq!(get("admin", "listen").as_str(), Some("127.0.0.1:0"));
        assert_eq!(
            get("market_data", "rerequest_listen").as_str(),
            Some("127.0.0.1:0")
        );
        assert_eq!(get("market_data", "group_b").as_str(), Some("239.193.1.3:5001"));
        assert_eq!(get("journal", "directory").as_str(), Some("/tmp/x/journal"));
        assert_eq!(get("journal", "sync").as_str(), Some("none"));
        assert_eq!(get("threading", "idle").as_str(), Some("busy_spin"));
        assert_eq!(
            get("threading", "helper_cores").as_array().map(|a| a.len()),
            Some(1)
        );
        assert_eq!(
            get("order_entry", "throttle_burst_max").as_integer(),
            Some(1_000_000)
        );
        assert_eq!(get("engine", "tokens_max").as_integer(), Some(2_000_000));
        assert_eq!(get("market_data", "heartbeat_interval_ms").as_integer(), Some(50));
        let logins = logins_from_config(&text).unwrap();
        assert_eq!(logins, load_logins(3));
        assert_eq!(logins[2].username, "m00003");
        let firms = root["firms"].as_array().unwrap();
        assert_eq!(firms.len(), 2, "ALFA kept, LOAD added");
        assert_eq!(firms[1]["open_orders_max"].as_integer(), Some(5000));
        let instruments = instruments_from_config(&text).unwrap();
        assert_eq!(instruments.len(), 1);
        assert_eq!(instruments[0].reference_price, 1_900_000);
        // Without load logins the base's logins stay.
        let options = DaemonConfigOptions {
            journal_dir: PathBuf::from("j"),
            ..Default::default()
        };
        let text = daemon_config(BASE, &options).unwrap();
        assert_eq!(logins_from_config(&text).unwrap()[0].username, "alice");
    }

    #[test]
    fn bad_base_text_is_an_error() {
        let options = DaemonConfigOptions::default();
        assert!(matches!(
            daemon_config("not = [toml", &options),
            Err(DaemonError::Config(_))
        ));
        assert!(matches!(
            daemon_config("x = 1", &options),
            Err(DaemonError::Config(_))
        ));
    }
}
