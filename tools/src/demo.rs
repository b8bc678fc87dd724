//! `bourse demo`: the one-command tour. Starts `boursed` on free ports with its embedded default config and a
//! temporary journal, listens to its market data, runs a short load with the four demo market makers, prints
//! what happened in words, shuts the daemon down and removes the temporary directory.
//!
//! # Steps (every one bounded in time)
//! 1. Find `boursed` (next to `bourse`, then on `PATH`), take `boursed --print-default-config`, make every port
//!    0, give it fresh multicast groups, a journal in a temporary directory and a 50 ms market-data heartbeat,
//!    start it and wait for its ports file ([`START_TIMEOUT`]).
//! 2. Join both multicast groups with [`FeedReceiver`] on a thread: each message applied once, every gap
//!    asked of the re-request server (the start-of-day messages sent before it joined included), a book per
//!    instrument.
//! 3. Run the load generator with the config's logins (alice, bob, carol, demo) for `--duration` seconds at
//!    `--rate` requests per second.
//! 4. Wait until the listener has every message ([`FEED_SETTLE_TIMEOUT`]), compare its books with the engine's
//!    at a quiet point ([`verify_books`]), ask admin for the top of each book and the daemon's own latency,
//!    print the summary, write the plot, shut the daemon down (admin `shutdown`, killed after
//!    [`STOP_TIMEOUT`]) and remove the directory.
//!
//! Exit code 0 when the demo ran and everything was consistent (every request answered, every gap
//! recovered, the feed's books equal to the engine's), 1 when it ran but something did not add up, 2 when it
//! could not run. The last line is machine-readable: `demo ok: trades=N gaps=N gaps_open=0 books_agree=true
//! unanswered=0`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bourse_protocol::admin::{AdminReply, AdminRequest, DepthReply};
use bourse_protocol::fields::PRICE_SCALE;
use clap::Args;

use crate::admin::AdminClient;
use crate::feed::{FeedConfig, FeedReceiver, book_diff, verify_books};
use crate::load::cli::{boursed_default_config, write_outputs};
use crate::load::daemon::{
    Daemon, DaemonConfigOptions, Ports, find_boursed, fresh_groups, instruments_from_config,
    logins_from_config, temp_dir,
};
use crate::load::{self, Limit, LoadConfig, format_ns, latency_table};

/// Bound on `boursed` writing its ports file.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on the listener catching up after the load.
pub const FEED_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the shutdown.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on each admin request.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait of one feed poll (the stop flag is checked between polls).
const FEED_POLL: Duration = Duration::from_millis(10);
/// Rounds of [`verify_books`] looking for a quiet point.
const VERIFY_ATTEMPTS: u32 = 50;
/// Market-data heartbeat of the demo daemon: a dropped last packet shows as a gap within this.
const DEMO_MD_HEARTBEAT_MS: u64 = 50;

/// `bourse demo ...`
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Seconds of load.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Requests per second, all market makers together.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Where to write the latency plot (SVG).
    #[arg(long, default_value = "bourse-demo-latency.svg")]
    pub plot: PathBuf,
    /// Also write the latency distribution (.hgrm).
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// The boursed executable (default: next to bourse, then on PATH).
    #[arg(long)]
    pub boursed: Option<PathBuf>,
    /// Keep the temporary directory (config, journal, daemon log) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// Seed of the order mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The market-data receiver ([`FeedReceiver`]: A/B arbitration, gap re-requests, a book per instrument) run
/// on its own thread while the load runs, handed back when stopped.
struct FeedThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<FeedReceiver, String>>>,
}

impl FeedThread {
    fn start(ports: &Ports) -> Result<Self, String> {
        let (SocketAddr::V4(a), SocketAddr::V4(b)) = (ports.market_data_a, ports.market_data_b) else {
            return Err("market data groups are not IPv4".into());
        };
        let mut receiver =
            FeedReceiver::join(FeedConfig::new(a, b, ports.rerequest)).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("demo-feed".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    receiver.poll(FEED_POLL).map_err(|e| e.to_string())?;
                }
                Ok(receiver)
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Result<FeedReceiver, String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err("the market-data thread panicked".into()),
        }
    }
}

impl Drop for FeedThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn price(p: u32) -> String {
    format!("{:.2}", f64::from(p) / f64::from(PRICE_SCALE))
}

fn top_of_book(depth: &DepthReply) -> String {
    let side = |levels: &[bourse_protocol::admin::DepthLevel]| match levels.first() {
        Some(l) => format!(
            "{:>9} x {:<6} ({} order{})",
            price(l.price),
            l.shares,
            l.orders,
            if l.orders == 1 { "" } else { "s" }
        ),
        None => format!("{:>9}   {:<6} {:>9}", "-", "", ""),
    };
    format!(
        "  {:<6} bid {}   ask {}{}",
        depth.symbol,
        side(&depth.bids),
        side(&depth.asks),
        if depth.halted { "  (halted)" } else { "" }
    )
}

/// Runs `bourse demo`; returns the exit code.
pub fn run(args: &DemoArgs) -> i32 {
    match demo(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(message) => {
            eprintln!("bourse demo: {message}");
            2
        }
    }
}

fn demo(args: &DemoArgs) -> Result<bool, String> {
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 600.0) {
        return Err(format!(
            "--duration {}: must be above 0 and at most 600",
            args.duration
        ));
    }
    let binary = match &args.boursed {
        Some(path) => path.clone(),
        None => {
            find_boursed().ok_or("boursed not found next to bourse nor on PATH (cargo build --release)")?
        }
    };
    let base = if args.boursed.is_some() {
        let output = std::process::Command::new(&binary)
            .arg("--print-default-config")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        boursed_default_config()?
    };
    let dir = temp_dir("demo").map_err(|e| e.to_string())?;
    let result = demo_in(args, &binary, &base, &dir);
    if args.keep {
        println!("kept {} (config, journal, boursed.log)", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn demo_in(
    args: &DemoArgs,
    binary: &std::path::Path,
    base: &str,
    dir: &std::path::Path,
) -> Result<bool, String> {
    let groups = fresh_groups().map_err(|e| e.to_string())?;
    let options = DaemonConfigOptions {
        journal_dir: dir.join("journal"),
        market_data: Some(groups),
        market_data_heartbeat_ms: Some(DEMO_MD_HEARTBEAT_MS),
        ..DaemonConfigOptions::default()
    };
    let config_text = crate::load::daemon::daemon_config(base, &options).map_err(|e| e.to_string())?;
    let logins = logins_from_config(&config_text).map_err(|e| e.to_string())?;
    let instruments = instruments_from_config(&config_text).map_err(|e| e.to_string())?;
    println!(
        "bourse demo: starting {} with its default config on free ports",
        binary.display()
    );
    let mut daemon =
        Daemon::start(binary, &config_text, dir, &[], START_TIMEOUT).map_err(|e| e.to_string())?;
    let ports = daemon.ports;
    println!(
        "  boursed pid {} is up: order entry {}, admin {}, market data {} and {}, re-requests {}",
        daemon.pid(),
        ports.order_entry,
        ports.admin,
        ports.market_data_a,
        ports.market_data_b,
        ports.rerequest
    );
    let feed = FeedThread::start(&ports).map_err(|e| format!("market-data listener: {e}"))?;
    let names: Vec<&str> = logins.iter().map(|l| l.username.as_str()).collect();
    println!(
        "  {} market makers ({}) send {:.0} orders/s for {:.1}s: quotes on both sides near the touch, cancels, \
         replaces, aggressive orders that trade, a few market orders",
        logins.len(),
        names.join(", "),
        args.rate,
        args.duration
    );
    let mut config = LoadConfig::new(ports.order_entry, logins, instruments.clone());
    config.rate_per_s = args.rate;
    config.limit = Limit::Duration(Duration::from_secs_f64(args.duration));
    config.seed = args.seed;
    config.busy_poll = false;
    config.poll = load::PollMode::Epoll;
    let report = load::run(&config, &mut |p| eprintln!("  {}", p.line())).map_err(|e| e.to_string())?;
    let mut receiver = feed.finish().map_err(|e| format!("market-data listener: {e}"))?;
    // Catch up (a dropped last packet shows at the next heartbeat) and compare every book with the engine's.
    let _ = receiver.poll_until(FEED_SETTLE_TIMEOUT, |r| r.gap().is_none());
    let verify = AdminClient::connect_with(&ports.admin.to_string(), ADMIN_TIMEOUT, ADMIN_TIMEOUT)
        .map_err(|e| e.to_string())
        .and_then(|mut admin| verify_books(&mut receiver, &mut admin, VERIFY_ATTEMPTS));
    let feed_counts = receiver.counters();
    // When the books could not be compared, say how far apart the feed and the engine are.
    let feed_behind = match (&verify, instruments.first()) {
        (Ok(v), Some(first)) if !v.is_ok() => {
            let symbol = first.symbol.as_str_lossy().into_owned();
            match daemon.admin(&AdminRequest::Depth { symbol, levels: 1 }, ADMIN_TIMEOUT) {
                Ok(AdminReply::Depth(d)) if d.feed_sequence > receiver.applied_sequence() => Some(format!(
                    "  the engine has released market data up to sequence {}, the feed delivered up to {} and \
                     announces nothing more",
                    d.feed_sequence,
                    receiver.applied_sequence()
                )),
                _ => None,
            }
        }
        _ => None,
    };
    let feed_in_sync = receiver.gap().is_none();
    let mut books = Vec::new();
    for instrument in &instruments {
        let symbol = instrument.symbol.as_str_lossy().into_owned();
        match daemon.admin(
            &AdminRequest::Depth {
                symbol: symbol.clone(),
                levels: 1,
            },
            ADMIN_TIMEOUT,
        ) {
            Ok(AdminReply::Depth(depth)) => books.push(top_of_book(&depth)),
            Ok(other) => books.push(format!("  {symbol:<6} admin answered {other:?}")),
            Err(e) => books.push(format!("  {symbol:<6} admin depth failed: {e}")),
        }
    }
    let daemon_latency = match daemon.admin(&AdminRequest::Latency, ADMIN_TIMEOUT) {
        Ok(AdminReply::Latency { stages }) => stages
            .iter()
            .find(|s| s.stage == "wire_to_wire")
            .filter(|s| s.count > 0)
            .map(|s| {
                format!(
                    "  inside boursed (wire to wire, {} replies): p50 {}, p99 {}, p99.9 {}, max {}",
                    s.count,
                    format_ns(s.p50_ns),
                    format_ns(s.p99_ns),
                    format_ns(s.p999_ns),
                    format_ns(s.max_ns)
                )
            }),
        _ => None,
    };
    let title = format!(
        "bourse demo: {} market makers, {:.0} orders/s, order-to-ack",
        report.sessions, report.offered_per_s
    );
    let written = write_outputs(&report, args.hgrm.as_deref(), Some(&args.plot), &title)?;
    let status = daemon.stop(STOP_TIMEOUT).map_err(|e| e.to_string())?;

    let sent = report.sent_total();
    println!();
    println!("What happened");
    println!(
        "  orders sent: {sent} ({})",
        load::KIND_NAMES
            .iter()
            .zip(report.sent)
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  answered: {} acknowledged ({} accepted, {} replaced, {} canceled, {} rejected{}), {} ignored because \
         their order had already traded away, {} unanswered",
        report.acked,
        report.accepted,
        report.replaced,
        report.canceled,
        report.rejected_total(),
        if report.rejected.is_empty() {
            String::new()
        } else {
            format!(
                " by reason {}",
                report
                    .rejected
                    .iter()
                    .map(|(c, n)| format!("{c}:{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        },
        report.ignored,
        report.unanswered
    );
    println!(
        "  trades: {} (the market makers received {} fills for {} shares; every trade has one taker)",
        report.taker_fills, report.fills, report.fill_shares
    );
    println!(
        "  market data: {} packets on A, {} on B (identical copies), {} messages applied; {} gaps found and \
         {} re-requests sent, {} messages recovered through them{}",
        feed_counts.packets_a,
        feed_counts.packets_b,
        feed_counts.messages,
        feed_counts.gaps,
        feed_counts.requests,
        feed_counts.recovered,
        if feed_in_sync {
            "; every gap recovered"
        } else {
            "; a gap is STILL OPEN"
        }
    );
    let books_agree = match &verify {
        Ok(v) if v.is_ok() => {
            println!(
                "  the books rebuilt from market data equal the engine's books ({} instruments compared)",
                v.compared.len()
            );
            true
        }
        Ok(v) => {
            println!(
                "  books from market data DIFFER from the engine's: {} differ, {} not compared",
                v.mismatches.len(),
                v.unverified.len()
            );
            for mismatch in &v.mismatches {
                print!("{}", book_diff(mismatch));
            }
            if let Some(line) = &feed_behind {
                println!("{line}");
            }
            false
        }
        Err(e) => {
            println!("  could not compare the books: {e}");
            false
        }
    };
    println!("Top of book at the end (price x shares)");
    for line in &books {
        println!("{line}");
    }
    println!(
        "Order-to-ack latency, measured by the market makers from each order's scheduled send time ({} samples):",
        report.latency.len()
    );
    print!("{}", latency_table(&report.latency));
    if let Some(line) = daemon_latency {
        println!("{line}");
    }
    for line in written {
        println!("  {line}");
    }
    println!(
        "  boursed shut down ({}); {}",
        status,
        if args.keep {
            "directory kept"
        } else {
            "its temporary directory is removed"
        }
    );
    let consistent = report.unanswered == 0 && report.disconnects == 0 && feed_in_sync && books_agree;
    println!(
        "demo {}: trades={} gaps={} gaps_open={} books_agree={} unanswered={}",
        if consistent { "ok" } else { "INCONSISTENT" },
        report.taker_fills,
        feed_counts.gaps,
        u8::from(!feed_in_sync),
        books_agree,
        report.unanswered
    );
    Ok(consistent)
}
