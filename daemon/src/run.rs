//! Running the exchange: recovery, start-up, sockets, stages, signals, shutdown. `main.rs` calls
//! [`run`]; tests use the binary.
//!
//! Order of start-up (docs/OPERATIONS.md "Start-up and recovery"): open the journal, load the newest
//! checkpoint, re-run and check every step after it, start a new day if none is open, apply
//! cancel-on-disconnect for every login (sessions do not survive a restart), and only then bind the
//! ports and report them. A mismatch or a damaged journal stops here with a non-zero exit.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bourse_protocol::admin::ThreadingModeName;

use crate::admin::{self, AdminContext};
use crate::agent::{self, Agent, Clock, StopFlag};
use crate::config::Config;
use crate::core::{self, Core, CoreParams};
use crate::ingress::{Ingress, IngressParams};
use crate::market_data::{MarketData, MarketDataParams};
use crate::msg::Lifecycle;
use crate::ring;
use crate::stats::{self, Shared};

/// How long shutdown may take before `boursed` gives up waiting for the stages.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// Stages the runner runs: core, ingress, market data.
const STAGE_AGENTS: usize = 3;
/// Env var of the test-only drop hook (comma-separated MoldUDP64 sequence numbers).
pub const DROP_FEED_ENV: &str = "BOURSED_TEST_DROP_FEED_SEQS";

/// Why `boursed` could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Start-up recovery failed.
    #[error("start-up: {0}")]
    Start(#[from] core::StartError),
    /// A socket or file could not be opened.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The threads could not be started.
    #[error("threads: {0}")]
    Runner(#[from] agent::RunnerError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// Raises the open-file limit to its hard limit (10,000 sessions need 10,000 descriptors); returns the
/// limit in force.
#[allow(unsafe_code)]
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the plain structs passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

fn drop_feed_seqs() -> Vec<u64> {
    std::env::var(DROP_FEED_ENV)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Runs the exchange until SIGTERM/SIGINT or admin `shutdown`; returns once everything is closed.
///
/// # Errors
/// [`RunError`] at start-up; after start-up, fatal journal errors exit the process (fail-stop).
pub fn run(config: Config, ports_file: Option<PathBuf>) -> Result<(), RunError> {
    let fd_limit = raise_fd_limit();
    let started = Instant::now();
    std::fs::create_dir_all(&config.journal.directory).map_err(io(format!(
        "journal directory {}",
        config.journal.directory.display()
    )))?;
    // Placement is decided before recovery starts the journal's helper thread.
    let cores = agent::available_cores();
    let placement = agent::placement(
        config.threading.mode,
        &config.threading.helper_cores,
        &cores,
        STAGE_AGENTS,
    )?;
    let helper_cores = placement.helper_cores.clone();
    let mode = placement.mode;
    let mut recovered = core::recover_with_helpers(&config, helper_cores.clone())?;
    let start = core::start_up(&mut recovered, &config)?;
    if let Some(archived) = core::archive_journal(&mut recovered, &config)?
        && archived.moved > 0
    {
        eprintln!(
            "boursed: journal: moved {} segments ({:.1} MiB) holding only records before sequence {} to {}",
            archived.moved,
            archived.bytes as f64 / f64::from(1 << 20),
            archived.first_kept,
            config.journal_archive_directory().unwrap_or_default().display(),
        );
    }
    let journal_first_sequence = recovered.journal.first_sequence();
    let day = recovered.machine.day.clone().expect("start-up opens a day");
    eprintln!(
        "boursed: recovered: checkpoint at {}, {} steps ({} records) re-run and checked, journal at {}; {}; \
         session {}; cancel-on-disconnect at start-up: {} orders of {} logins ({:.1} ms)",
        recovered.checkpoint_sequence,
        recovered.steps_replayed,
        recovered.records_replayed,
        recovered.journal.next_sequence() - 1,
        if start.new_day {
            "new trading day"
        } else {
            "trading day continues"
        },
        day.session,
        start.cod_orders,
        start.cod_logins,
        started.elapsed().as_secs_f64() * 1e3,
    );

    let order_entry = TcpListener::bind(config.order_entry.listen)
        .map_err(io(format!("order_entry.listen {}", config.order_entry.listen)))?;
    let snapshot = TcpListener::bind(config.snapshot.listen)
        .map_err(io(format!("snapshot.listen {}", config.snapshot.listen)))?;
    let rerequest = UdpSocket::bind(config.market_data.rerequest_listen).map_err(io(format!(
        "market_data.rerequest_listen {}",
        config.market_data.rerequest_listen
    )))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .map_err(io(format!("admin.listen {}", config.admin.listen)))?;
    let addr = |r: std::io::Result<SocketAddr>, what: &str| r.map_err(io(what.to_owned()));
    let ports = [
        (
            "order_entry",
            addr(order_entry.local_addr(), "order_entry")?.to_string(),
        ),
        ("snapshot", addr(snapshot.local_addr(), "snapshot")?.to_string()),
        (
            "rerequest",
            addr(rerequest.local_addr(), "rerequest")?.to_string(),
        ),
        ("admin", addr(admin_listener.local_addr(), "admin")?.to_string()),
        ("market_data_a", config.market_data.group_a.to_string()),
        ("market_data_b", config.market_data.group_b.to_string()),
    ];

    let shared = Arc::new(Shared::new());
    for (login, &disabled) in day.disabled.iter().enumerate() {
        shared.set_login_disabled(login as u32, disabled);
    }
    let lifecycle = Arc::new(Lifecycle::default());
    let clock = Clock::new();
    let (requests_tx, requests_rx) = ring::ring(config.rings.commands_capacity as usize);
    let (sessions_tx, sessions_rx) = ring::ring(config.rings.replies_capacity as usize);
    let (feed_tx, feed_rx) = ring::ring(config.rings.market_data_capacity as usize);
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();

    let logins = config.session_logins();
    let ingress = Ingress::new(IngressParams {
        listener: order_entry,
        order_entry: config.order_entry.clone(),
        logins: logins.clone(),
        session: day.session,
        day_open: day.day_open,
        next_seq: day.next_session_seq.clone(),
        disabled: day.disabled.clone(),
        journal_dir: config.journal.directory.clone(),
        day_start_journal_seq: day.day_start_journal_seq,
        requests: requests_tx,
        replies: sessions_rx,
        shared: Arc::clone(&shared),
        lifecycle: Arc::clone(&lifecycle),
        clock,
    })
    .map_err(io("ingress"))?;
    let market_data = MarketData::new(MarketDataParams {
        market_data: config.market_data.clone(),
        snapshot: config.snapshot.clone(),
        logins,
        session: day.session,
        day_open: day.day_open,
        rerequest_socket: rerequest,
        snapshot_listener: snapshot,
        journal_dir: config.journal.directory.clone(),
        day_start_journal_seq: day.day_start_journal_seq,
        feed: feed_rx,
        shared: Arc::clone(&shared),
        lifecycle: Arc::clone(&lifecycle),
        clock,
        scan_to_journal_seq: recovered.recovered_up_to,
        drop_feed_seqs: drop_feed_seqs(),
        book_limits: crate::market_data::feed_book_limits(&config),
        snapshot_timers: crate::snapshot::SessionTimers::from_order_entry(&config.order_entry),
    })
    .map_err(io("market data"))?;
    let core = Core::new(CoreParams {
        recovered,
        config: config.clone(),
        requests: requests_rx,
        to_sessions: sessions_tx,
        to_feed: feed_tx,
        admin: jobs_rx,
        shared: Arc::clone(&shared),
        lifecycle: Arc::clone(&lifecycle),
        helper_cores: helper_cores.clone(),
    });

    // Under `shared` the round order matters: core, then ingress (which writes the replies the core just
    // released, then reads new requests), then market data. A request read in one round is matched at the
    // start of the next and its reply written right after, so the multicast sends of market data never sit
    // between a request and its reply.
    let agents: Vec<Box<dyn Agent>> = vec![Box::new(core), Box::new(ingress), Box::new(market_data)];
    debug_assert_eq!(agents.len(), STAGE_AGENTS);
    let stop = StopFlag::new();
    let runner = agent::spawn(&placement, agents, config.idle_strategy(), clock, stop.clone(), {
        // Each agent's time per call that did work, as the `work_*` latency stages.
        let published = Arc::clone(&shared);
        shared.busy.clone().with_work_sink(Arc::new(move |agent, h| {
            if let Some(stage) = stats::work_stage(agent) {
                published.hand_over_histogram(stage, h);
            }
        }))
    })?;

    let context = Arc::new(AdminContext::new(
        jobs_tx,
        Arc::clone(&shared),
        Arc::clone(&lifecycle),
        config.sync_policy_name(),
        ThreadingModeName::from(mode),
        [
            u64::from(config.rings.commands_capacity),
            u64::from(config.rings.replies_capacity),
            u64::from(config.rings.market_data_capacity),
        ],
        journal_first_sequence,
    ));
    admin::spawn(admin_listener, context, helper_cores.clone()).map_err(io("admin thread"))?;
    // The main thread only waits for a signal from now on: a helper too (the stages were started above,
    // with the process's placement).
    agent::pin_helper_thread("main thread", &helper_cores);

    let term = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&term)).map_err(io("signal handler"))?;
    }

    let line: Vec<String> = ports.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!(
        "boursed: sync {}, threading {} ({} agents on {} cores available), idle {:?}, helper threads {}, open files {}, \
         resident {}",
        config.sync_policy_label(),
        mode.as_str(),
        STAGE_AGENTS,
        cores.len(),
        config.threading.idle,
        match (&placement.shared_core, helper_cores.is_empty()) {
            (_, true) => "not pinned".to_owned(),
            (Some(core), false) =>
                format!("on cores {helper_cores:?} (the stage thread on core {})", core.id),
            (None, false) => format!("on cores {helper_cores:?}"),
        },
        fd_limit,
        resident_text(),
    );
    println!("boursed: listening {}", line.join(" "));
    let _ = std::io::stdout().flush();
    let ports_path = ports_file.unwrap_or_else(|| config.journal.directory.join("ports"));
    let tmp = ports_path.with_extension("tmp");
    std::fs::write(&tmp, line.join("\n") + "\n").map_err(io(format!("ports file {}", tmp.display())))?;
    std::fs::rename(&tmp, &ports_path).map_err(io(format!("ports file {}", ports_path.display())))?;

    // Wait for a signal or admin shutdown, then the handshake (msg::Lifecycle).
    while !term.load(Ordering::Acquire) && !lifecycle.shutdown.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("boursed: shutting down: closing sessions, draining, checkpointing");
    lifecycle.shutdown.store(true, Ordering::Release);
    let deadline = Instant::now() + SHUTDOWN_WAIT;
    while !lifecycle.feed_closed.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let clean = lifecycle.feed_closed.load(Ordering::Acquire);
    runner.stop();
    runner.join();
    let _ = std::fs::remove_file(&ports_path);
    if clean {
        eprintln!("boursed: stopped cleanly");
    } else {
        eprintln!(
            "boursed: stopped after {SHUTDOWN_WAIT:?} without a clean drain (the journal holds everything acknowledged)"
        );
    }
    Ok(())
}

/// The process's resident memory as the start-up line shows it (the tables are written at creation, so this
/// is what `[engine]` and the rings cost): `VmRSS` of `/proc/self/status` (Linux), else "unknown". Worth
/// watching on virtual machines: on the development VM, gigabytes of resident memory made the whole machine
/// pause for tens of milliseconds every second or two (docs/OPERATIONS.md, "Sizing the tables").
fn resident_text() -> String {
    let kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match kib {
        Some(kib) => format!("{} MiB", kib >> 10),
        None => "unknown".to_owned(),
    }
}
