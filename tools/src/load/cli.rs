//! `bourse load`: the load generator from the command line.
//!
//! The order-entry address comes from `--order-entry ADDR` or a `boursed` ports file (the global
//! `--ports-file`); the
//! logins from the daemon's config (`--users-from-config FILE`, every `[[logins]]`) or from `--user` /
//! `--password` lists; the instruments from the same config file, else from `--instruments-from-config`,
//! else from `boursed --print-default-config`. Prints a progress bar line on stderr every second, then the
//! summary (or, with the global `--json`, the report as JSON), and writes the `.hgrm` distribution and the SVG plot when asked.
//! Exit codes: 0 when every request was acked or ignored (its order gone first), 1 when some were unanswered
//! or a session was closed by the exchange, 2 on errors (bad arguments, no connection, login refused).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::daemon::{Ports, find_boursed, instruments_from_config, logins_from_config};
use super::{Credentials, Instrument, Limit, LoadConfig, LoadReport, PollMode};
use crate::{hgrm, plot};

/// Exit code when some requests were unanswered or sessions closed.
pub const EXIT_INCOMPLETE: i32 = 1;
/// Exit code for errors.
pub const EXIT_ERROR: i32 = 2;

/// `bourse load ...`
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The order-entry address (host:port); without it, the global `--ports-file` gives it.
    #[arg(long, value_name = "ADDR")]
    pub order_entry: Option<SocketAddr>,
    /// Sessions to run (default: every login given).
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Offered requests per second, all sessions together.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of schedule.
    #[arg(long, conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Requests to send (instead of a duration).
    #[arg(long)]
    pub count: Option<u64>,
    /// Closed loop: each session sends its next request when its previous one is acked, latency from the
    /// actual send time (`--rate` is not used).
    #[arg(long)]
    pub closed_loop: bool,
    /// Only the first N sessions send requests; the others log in and heartbeat (sessions connected beside
    /// the ones trading).
    #[arg(long, value_name = "N")]
    pub senders: Option<usize>,
    /// Take the logins (and instruments) from this boursed config file.
    #[arg(long, value_name = "FILE")]
    pub users_from_config: Option<PathBuf>,
    /// A username (repeat, one per session).
    #[arg(long = "user", value_name = "USER")]
    pub users: Vec<String>,
    /// A password (repeat, in the order of --user; one password is used for all).
    #[arg(long = "password", value_name = "PASSWORD")]
    pub passwords: Vec<String>,
    /// Take the instruments from this boursed config file (default: the --users-from-config file, else the
    /// embedded default of boursed).
    #[arg(long, value_name = "FILE")]
    pub instruments_from_config: Option<PathBuf>,
    /// Seed of the order mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the latency distribution as HdrHistogram percentile text (microseconds).
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write a percentile plot (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Sleep between rounds instead of busy-polling (spares a core, adds wake-up latency).
    #[arg(long)]
    pub no_busy_poll: bool,
    /// Resting orders plus quotes in flight per session.
    #[arg(long, default_value_t = 32)]
    pub live_orders_max: usize,
    /// Seconds to wait for the last acks.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
    /// A session sends a Client Heartbeat after this many milliseconds without sending (keep it under the
    /// server's `order_entry.idle_timeout_ms`).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The config text of the embedded default, from `boursed --print-default-config`.
///
/// # Errors
/// A message when boursed cannot be found or run.
pub fn boursed_default_config() -> Result<String, String> {
    let binary = find_boursed().ok_or("boursed not found next to bourse nor on PATH")?;
    let output = std::process::Command::new(&binary)
        .arg("--print-default-config")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(format!("{} --print-default-config failed", binary.display()));
    }
    String::from_utf8(output.stdout).map_err(|_| "boursed printed a config that is not UTF-8".to_owned())
}

/// Turns the arguments into a run configuration.
///
/// # Errors
/// A message naming the bad argument or file.
pub fn load_config(args: &LoadArgs, ports_file: Option<&Path>) -> Result<LoadConfig, String> {
    let order_entry = match (&args.order_entry, ports_file) {
        (Some(addr), _) => *addr,
        (None, Some(file)) => Ports::parse(&read(file)?).map_err(|e| e.to_string())?.order_entry,
        (None, None) => return Err("give --order-entry or --ports-file".into()),
    };
    let config_text = match &args.users_from_config {
        Some(file) => Some(read(file)?),
        None => None,
    };
    let mut logins: Vec<Credentials> = match &config_text {
        Some(text) => logins_from_config(text).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    if !args.users.is_empty() {
        if args.passwords.len() != 1 && args.passwords.len() != args.users.len() {
            return Err("give one --password for all users, or one per --user".into());
        }
        logins.extend(args.users.iter().enumerate().map(|(i, user)| Credentials {
            username: user.clone(),
            password: args.passwords[if args.passwords.len() == 1 { 0 } else { i }].clone(),
        }));
    }
    if logins.is_empty() {
        return Err("no logins: give --users-from-config FILE or --user/--password".into());
    }
    if let Some(n) = args.sessions {
        if n == 0 || n > logins.len() {
            return Err(format!("--sessions {n}: there are {} logins", logins.len()));
        }
        logins.truncate(n);
    }
    let instruments_text = match (&args.instruments_from_config, &config_text) {
        (Some(file), _) => read(file)?,
        (None, Some(text)) => text.clone(),
        (None, None) => boursed_default_config()?,
    };
    let instruments: Vec<Instrument> =
        instruments_from_config(&instruments_text).map_err(|e| e.to_string())?;
    let mut config = LoadConfig::new(order_entry, logins, instruments);
    config.rate_per_s = args.rate;
    config.limit = match (args.count, args.duration) {
        (Some(n), _) => Limit::Count(n),
        (None, Some(s)) if s.is_finite() && s > 0.0 => Limit::Duration(Duration::from_secs_f64(s)),
        (None, Some(s)) => return Err(format!("--duration {s}: must be above 0")),
        (None, None) => Limit::Duration(Duration::from_secs(5)),
    };
    config.seed = args.seed;
    config.closed_loop = args.closed_loop;
    config.senders = args.senders;
    config.live_orders_max = args.live_orders_max;
    config.busy_poll = !args.no_busy_poll;
    config.poll = PollMode::Auto;
    if !(args.drain_timeout.is_finite() && args.drain_timeout >= 0.0) {
        return Err(format!(
            "--drain-timeout {}: must be 0 or more",
            args.drain_timeout
        ));
    }
    config.drain_timeout = Duration::from_secs_f64(args.drain_timeout);
    if args.heartbeat_ms == 0 {
        return Err("--heartbeat-ms 0: must be 1 or more".into());
    }
    config.heartbeat_interval = Duration::from_millis(args.heartbeat_ms);
    config.progress_interval = (!args.quiet).then_some(Duration::from_secs(1));
    Ok(config)
}

/// Writes the `.hgrm` and SVG files a report asks for; returns what was written, for the summary.
///
/// # Errors
/// A message naming the file.
pub fn write_outputs(
    report: &LoadReport,
    hgrm_path: Option<&Path>,
    plot_path: Option<&Path>,
    title: &str,
) -> Result<Vec<String>, String> {
    let mut written = Vec::new();
    if let Some(path) = hgrm_path {
        std::fs::write(path, hgrm::hgrm_string(&report.latency, 1000.0))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(format!(
            "latency distribution (.hgrm, microseconds): {}",
            path.display()
        ));
    }
    if let Some(path) = plot_path {
        let series = plot::series_from_histogram("order-to-ack", &report.latency, 1000.0);
        std::fs::write(path, plot::percentile_svg(title, "us", &[series]))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(format!("latency plot (SVG): {}", path.display()));
    }
    Ok(written)
}

/// Runs `bourse load` (`ports_file` and `json` are the global options); returns the exit code.
pub fn run(args: &LoadArgs, ports_file: Option<&Path>, json: bool) -> i32 {
    let config = match load_config(args, ports_file) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("bourse load: {message}");
            return EXIT_ERROR;
        }
    };
    let quiet = args.quiet;
    let report = match super::run(&config, &mut |p| {
        if !quiet {
            eprintln!("{}", p.line());
        }
    }) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("bourse {error}");
            return EXIT_ERROR;
        }
    };
    let title = format!(
        "bourse load: {} sessions, {:.0}/s offered, order-to-ack",
        report.sessions, report.offered_per_s
    );
    let written = match write_outputs(&report, args.hgrm.as_deref(), args.plot.as_deref(), &title) {
        Ok(written) => written,
        Err(message) => {
            eprintln!("bourse load: {message}");
            return EXIT_ERROR;
        }
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary());
        for line in written {
            println!("{line}");
        }
    }
    if report.unanswered > 0 || report.disconnects > 0 {
        EXIT_INCOMPLETE
    } else {
        0
    }
}
