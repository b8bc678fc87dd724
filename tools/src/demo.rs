//! `bourse demo`: the one-command tour. Starts `boursed` on free ports with its embedded default config and a
//! temporary journal, listens to its market data, runs a short load with the four demo market makers, prints
//! what happened in words, shuts the daemon down and removes the temporary directory.
//!
//! # Steps (every one bounded in time)
//! 1. Find `boursed` (next to `bourse`, then on `PATH`), take `boursed --print-default-config`, make every port
//!    0, give it fresh multicast groups, a journal in a temporary directory and a 50 ms market-data heartbeat,
//!    start it and wait for its ports file ([`START_TIMEOUT`]).
//! 2. Join both multicast groups ([`FeedListener`]): a MoldUDP64 [`GapTracker`] delivers each message once,
//!    asks the re-request server for every gap (the start-of-day messages sent before it joined included),
//!    counts messages, trades and gaps.
//! 3. Run the load generator with the config's logins (alice, bob, carol, demo) for `--duration` seconds at
//!    `--rate` requests per second.
//! 4. Wait until the listener has every message ([`FEED_SETTLE_TIMEOUT`]), ask admin for the top of each book
//!    and the daemon's own latency, print the summary, write the plot, shut the daemon down (admin
//!    `shutdown`, killed after [`STOP_TIMEOUT`]) and remove the directory.
//!
//! Exit code 0 when the demo ran and everything was consistent (every request answered, every gap
//! recovered), 1 when it ran but something did not add up, 2 when it could not run.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bourse_protocol::admin::{AdminReply, AdminRequest, DepthReply};
use bourse_protocol::fields::PRICE_SCALE;
use bourse_protocol::moldudp64::{GapTracker, GapTrackerConfig, Packet as MoldPacket, TrackerState};
use clap::Args;
use socket2::{Domain, Protocol, Socket, Type};

use crate::load::cli::{boursed_default_config, write_outputs};
use crate::load::daemon::{
    Daemon, DaemonConfigOptions, find_boursed, fresh_groups, instruments_from_config, logins_from_config,
    temp_dir,
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
/// Largest UDP datagram the listener reads.
const DATAGRAM_BYTES_MAX: usize = 65_536;
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

/// What the market-data listener saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounts {
    /// MoldUDP64 packets received (A, B and re-request answers).
    pub packets: u64,
    /// Messages delivered (each sequence number once).
    pub messages: u64,
    /// Executions on the feed (ITCH `E` and `C`): the trades.
    pub trades: u64,
    /// Orders added on the feed (ITCH `A` and `F`).
    pub adds: u64,
    /// Gaps seen (times the tracker went from in sync to missing messages).
    pub gaps: u64,
    /// Gaps closed again.
    pub recovered: u64,
    /// Re-requests sent.
    pub requests: u64,
    /// Whether every announced message was delivered at the end.
    pub synchronized: bool,
    /// The last sequence number delivered.
    pub last_sequence: u64,
}

/// A MoldUDP64 listener on groups A and B with gap recovery through the re-request server, on its own thread.
#[derive(Debug)]
pub struct FeedListener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<FeedCounts>>>,
}

fn join_group(group: SocketAddr) -> io::Result<UdpSocket> {
    let SocketAddr::V4(group) = group else {
        return Err(io::Error::other("market data group is not IPv4"));
    };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(*group.ip(), group.port())).into())?;
    socket.join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl FeedListener {
    /// Joins `a` and `b` and starts listening; gaps are asked of `rerequest`.
    ///
    /// # Errors
    /// Socket set-up errors.
    pub fn start(a: SocketAddr, b: SocketAddr, rerequest: SocketAddr) -> io::Result<Self> {
        let sockets = [join_group(a)?, join_group(b)?, UdpSocket::bind("127.0.0.1:0")?];
        sockets[2].set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("demo-feed".into())
            .spawn(move || listen(&sockets, rerequest, &flag))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening: once in sync (or after `settle`), returns the counts.
    ///
    /// # Errors
    /// The socket error that ended the listener.
    pub fn finish(mut self) -> io::Result<FeedCounts> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("feed listener panicked")),
            None => Ok(FeedCounts::default()),
        }
    }
}

impl Drop for FeedListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn listen(sockets: &[UdpSocket; 3], rerequest: SocketAddr, stop: &AtomicBool) -> io::Result<FeedCounts> {
    let start = Instant::now();
    let mut tracker = GapTracker::new(GapTrackerConfig {
        gap_wait_ns: 2_000_000,
        request_timeout_ns: 100_000_000,
        ..GapTrackerConfig::default()
    });
    let mut counts = FeedCounts::default();
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    let mut in_gap = false;
    let mut stop_window: Option<(Instant, Instant)> = None;
    loop {
        let mut got = false;
        for socket in sockets {
            // Bounded drain per socket per round.
            for _ in 0..1024 {
                let n = match socket.recv(&mut buffer) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                got = true;
                counts.packets += 1;
                let Ok(packet) = MoldPacket::decode(&buffer[..n]) else {
                    continue;
                };
                let now_ns = start.elapsed().as_nanos() as u64;
                for (sequence, message) in tracker.on_packet(&packet, now_ns) {
                    counts.messages += 1;
                    counts.last_sequence = sequence;
                    match message.first() {
                        Some(b'E' | b'C') => counts.trades += 1,
                        Some(b'A' | b'F') => counts.adds += 1,
                        _ => {}
                    }
                }
            }
        }
        let now_ns = start.elapsed().as_nanos() as u64;
        let gap_now = tracker.state() == TrackerState::Gap;
        if gap_now && !in_gap {
            counts.gaps += 1;
        } else if !gap_now && in_gap {
            counts.recovered += 1;
        }
        in_gap = gap_now;
        if let Some(request) = tracker.poll_request(now_ns) {
            let _ = sockets[2].send_to(&request.to_bytes(), rerequest);
        }
        if !got {
            std::thread::sleep(Duration::from_micros(200));
        }
        if stop.load(Ordering::Relaxed) {
            // Settle: keep listening a few heartbeats (they announce a dropped last packet), then stop once in
            // sync; never past FEED_SETTLE_TIMEOUT.
            let now = Instant::now();
            let (earliest, deadline) =
                *stop_window.get_or_insert((now + settle_time(), now + FEED_SETTLE_TIMEOUT));
            if (now >= earliest && !gap_now) || now >= deadline {
                break;
            }
        }
    }
    counts.requests = tracker.counters().requests;
    counts.synchronized = tracker.state() != TrackerState::Gap;
    Ok(counts)
}

/// How long the listener keeps listening after it is asked to stop, when in sync: long enough for a few
/// heartbeats, which announce a dropped last packet.
fn settle_time() -> Duration {
    Duration::from_millis(6 * DEMO_MD_HEARTBEAT_MS)
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
    let feed = FeedListener::start(ports.market_data_a, ports.market_data_b, ports.rerequest)
        .map_err(|e| format!("market-data listener: {e}"))?;
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
    let feed_counts = feed.finish().map_err(|e| format!("market-data listener: {e}"))?;
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
        "  trades: {} on the market-data feed; the market makers received {} fills ({} shares)",
        feed_counts.trades, report.fills, report.fill_shares
    );
    println!(
        "  market data: {} packets, {} messages ({} orders added), {} gaps found, {} recovered through {} \
         re-requests{}",
        feed_counts.packets,
        feed_counts.messages,
        feed_counts.adds,
        feed_counts.gaps,
        feed_counts.recovered,
        feed_counts.requests,
        if feed_counts.synchronized {
            ""
        } else {
            " (NOT in sync at the end)"
        }
    );
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
    let consistent = report.unanswered == 0
        && report.disconnects == 0
        && feed_counts.synchronized
        && feed_counts.gaps == feed_counts.recovered;
    println!(
        "demo {}: trades={} gaps={} recovered={} unanswered={}",
        if consistent { "ok" } else { "INCONSISTENT" },
        feed_counts.trades,
        feed_counts.gaps,
        feed_counts.recovered,
        report.unanswered
    );
    Ok(consistent)
}
