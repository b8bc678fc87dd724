//! Stages as agents, and the runners that put agents on threads (threading is configuration).
//!
//! An [`Agent`] is a pipeline stage that does a bounded amount of work per [`Agent::do_work`] call and
//! reports how much; it never blocks. A runner calls its agents in a loop until a stop flag is set and
//! asks an [`Idler`] to wait when a whole round did no work:
//! - [`spawn_shared`]: every agent on one thread, round-robin (tests, small machines);
//! - [`spawn_pinned`]: one thread per agent, each pinned to its own core with `core_affinity`; refuses to
//!   start ([`RunnerError::TooFewCores`]) when there are fewer cores than agents.
//!
//! [`choose_mode`] turns the configured [`ThreadingMode`] into the one to run: `auto` picks `pinned` only
//! when there is a core for every agent plus one to spare (for the OS and the clients), else `shared`.
//!
//! # Invariants
//! - An agent runs on exactly one thread for its whole life; [`Agent::on_close`] is called once, on that
//!   thread, after its last `do_work`.
//! - Runner loops are bounded by the stop flag, which is checked once per round; a round is one call to
//!   each agent, so stopping takes at most one round plus one idle wait (at most `park_ns_max`).
//! - No allocation in the loops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::stats;

/// A pipeline stage run by a runner (Aeron style).
pub trait Agent: Send {
    /// A short, stable name (thread names, logs, latency stages).
    fn name(&self) -> &'static str;
    /// Does at most a bounded amount of work and returns how many items it handled (0: idle).
    /// `now_ns` is the runner's clock: nanoseconds since the runner's epoch.
    fn do_work(&mut self, now_ns: u64) -> usize;
    /// Called once after the last `do_work`, on the agent's thread.
    fn on_close(&mut self) {}
}

/// The configured threading mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadingMode {
    /// Chosen from the cores available ([`choose_mode`]).
    Auto,
    /// All agents on one thread.
    Shared,
    /// One pinned thread per agent.
    Pinned,
}

/// The threading mode actually run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvedMode {
    /// All agents on one thread.
    Shared,
    /// One pinned thread per agent.
    Pinned,
}

impl ResolvedMode {
    /// `shared` or `pinned` (logs, admin status).
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedMode::Shared => "shared",
            ResolvedMode::Pinned => "pinned",
        }
    }
}

impl From<ResolvedMode> for bourse_protocol::admin::ThreadingModeName {
    fn from(mode: ResolvedMode) -> Self {
        match mode {
            ResolvedMode::Shared => Self::Shared,
            ResolvedMode::Pinned => Self::Pinned,
        }
    }
}

/// Why a runner did not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// `pinned` needs a core per agent.
    #[error(
        "threading needs {agents} cores for its stages (pinned: one per agent) but {cores} are available \
         (not counting threading.helper_cores)"
    )]
    TooFewCores {
        /// Agents to run.
        agents: usize,
        /// Cores available to this process.
        cores: usize,
    },
    /// No agents were given.
    #[error("a runner needs at least one agent")]
    NoAgents,
    /// `threading.helper_cores` names a core this process may not run on.
    #[error(
        "threading.helper_cores: core {core} is not one this process may run on (available: {available:?})"
    )]
    HelperCoreUnavailable {
        /// The core named.
        core: usize,
        /// The cores available.
        available: Vec<usize>,
    },
    /// The OS refused to create a thread.
    #[error("spawning the thread for agent {agent} failed: {message}")]
    Spawn {
        /// The agent's name.
        agent: &'static str,
        /// The OS error.
        message: String,
    },
}

/// Picks the mode to run for `agents` agents on a machine with `cores` available cores.
///
/// `auto` is `shared` when `cores < agents + 1`, else `pinned`.
///
/// # Errors
/// [`RunnerError::TooFewCores`] when `pinned` is asked for and `cores < agents`.
pub fn choose_mode(mode: ThreadingMode, cores: usize, agents: usize) -> Result<ResolvedMode, RunnerError> {
    match mode {
        ThreadingMode::Shared => Ok(ResolvedMode::Shared),
        ThreadingMode::Auto if cores < agents + 1 => Ok(ResolvedMode::Shared),
        ThreadingMode::Auto => Ok(ResolvedMode::Pinned),
        ThreadingMode::Pinned if cores < agents => Err(RunnerError::TooFewCores { agents, cores }),
        ThreadingMode::Pinned => Ok(ResolvedMode::Pinned),
    }
}

/// Where the stage threads and the helper threads (every thread that is not a stage: the journal's
/// spare builder, admin, the main thread) run; see [`placement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The threading mode run.
    pub mode: ResolvedMode,
    /// Under `pinned`, stage `i` runs on `stage_cores[i]`: the available cores that are not helper cores.
    pub stage_cores: Vec<core_affinity::CoreId>,
    /// Under `shared`, the core of the one stage thread: the first stage core when helper cores are
    /// configured, else none (not pinned).
    pub shared_core: Option<core_affinity::CoreId>,
    /// The helper threads' cores; empty: not pinned.
    pub helper_cores: Vec<usize>,
}

/// Places `agents` stages and the helper threads on the `available` cores, from `threading.mode` and
/// `threading.helper_cores` (`configured`): configured helper cores (each must be available) are kept
/// for helpers and the stages take the others (under `shared` its one thread is then pinned to the first
/// of them); without any, `pinned` gives the helpers the cores its stages leave free (none left: not
/// pinned) and `shared` pins nothing.
///
/// # Errors
/// [`RunnerError::HelperCoreUnavailable`], [`RunnerError::TooFewCores`] (also when the helper cores
/// leave too few for the stages), or [`choose_mode`]'s.
pub fn placement(
    mode: ThreadingMode,
    configured: &[usize],
    available: &[core_affinity::CoreId],
    agents: usize,
) -> Result<Placement, RunnerError> {
    if let Some(&core) = configured.iter().find(|&&c| !available.iter().any(|a| a.id == c)) {
        return Err(RunnerError::HelperCoreUnavailable {
            core,
            available: available.iter().map(|a| a.id).collect(),
        });
    }
    let resolved = choose_mode(mode, available.len(), agents)?;
    let stage_cores: Vec<core_affinity::CoreId> = available
        .iter()
        .copied()
        .filter(|a| !configured.contains(&a.id))
        .collect();
    let needed = match resolved {
        ResolvedMode::Pinned => agents,
        ResolvedMode::Shared if configured.is_empty() => 0,
        ResolvedMode::Shared => 1,
    };
    if stage_cores.len() < needed {
        return Err(RunnerError::TooFewCores {
            agents: needed,
            cores: stage_cores.len(),
        });
    }
    let helper_cores = match resolved {
        _ if !configured.is_empty() => configured.to_vec(),
        ResolvedMode::Pinned => stage_cores.iter().skip(agents).map(|a| a.id).collect(),
        ResolvedMode::Shared => Vec::new(),
    };
    let shared_core = match resolved {
        ResolvedMode::Shared if !configured.is_empty() => stage_cores.first().copied(),
        _ => None,
    };
    Ok(Placement {
        mode: resolved,
        stage_cores,
        shared_core,
        helper_cores,
    })
}

/// Restricts the calling thread to `cores` (`sched_setaffinity`); no-op when `cores` is empty. Threads
/// the caller starts afterwards inherit the restriction.
///
/// # Errors
/// The OS refused (a core outside the process's cpuset, or past the CPU set's width).
pub fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
    if cores.is_empty() {
        return Ok(());
    }
    #[allow(unsafe_code)]
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is the empty set; `sched_setaffinity`
    // reads `size_of::<cpu_set_t>()` bytes from a valid reference and changes only this thread (pid 0).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &core in cores {
            if core >= libc::CPU_SETSIZE as usize {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            libc::CPU_SET(core, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Pins the calling helper thread (`what` names it in the log) to `cores` with [`pin_current_thread`]. A
/// refusal is logged, not fatal: [`placement`] has checked the cores, and a helper serves correctly
/// wherever it runs.
pub fn pin_helper_thread(what: &str, cores: &[usize]) {
    if let Err(e) = pin_current_thread(cores) {
        eprintln!("boursed: the {what} could not be pinned to {cores:?}: {e}");
    }
}

/// The cores this process may run on (empty if the OS does not say).
pub fn available_cores() -> Vec<core_affinity::CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// How a runner thread waits when a round did no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Spin (`std::hint::spin_loop`): lowest latency, burns the core.
    BusySpin,
    /// `std::thread::yield_now`.
    Yield,
    /// Spin `spins_max` idle rounds, then yield `yields_max` rounds, then park from `park_ns_min`
    /// doubling up to `park_ns_max`. Any work resets it.
    Backoff {
        /// Idle rounds spent spinning.
        spins_max: u32,
        /// Idle rounds spent yielding after the spins.
        yields_max: u32,
        /// First park.
        park_ns_min: u64,
        /// Longest park.
        park_ns_max: u64,
    },
}

/// The state of an [`IdleStrategy`] on one thread.
#[derive(Clone, Debug)]
pub struct Idler {
    strategy: IdleStrategy,
    idle_rounds: u64,
    park_ns: u64,
}

/// What [`Idler::idle`] did (for tests and counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleAction {
    /// Work was done: no wait.
    None,
    /// Spun once.
    Spin,
    /// Yielded the thread.
    Yield,
    /// Parked for this many nanoseconds.
    Park(u64),
}

impl Idler {
    /// A fresh idler.
    ///
    /// # Panics
    /// If a backoff has `park_ns_min == 0` or `park_ns_max < park_ns_min` (config validation prevents it).
    pub fn new(strategy: IdleStrategy) -> Idler {
        let park_ns = match strategy {
            IdleStrategy::Backoff {
                park_ns_min,
                park_ns_max,
                ..
            } => {
                assert!(
                    park_ns_min > 0 && park_ns_max >= park_ns_min,
                    "bad backoff park range"
                );
                park_ns_min
            }
            _ => 0,
        };
        Idler {
            strategy,
            idle_rounds: 0,
            park_ns,
        }
    }

    /// Called after each round with the work it did; waits according to the strategy when `work == 0`.
    pub fn idle(&mut self, work: usize) -> IdleAction {
        if work > 0 {
            self.reset();
            return IdleAction::None;
        }
        self.idle_rounds = self.idle_rounds.saturating_add(1);
        match self.strategy {
            IdleStrategy::BusySpin => {
                std::hint::spin_loop();
                IdleAction::Spin
            }
            IdleStrategy::Yield => {
                std::thread::yield_now();
                IdleAction::Yield
            }
            IdleStrategy::Backoff {
                spins_max,
                yields_max,
                park_ns_max,
                ..
            } => {
                if self.idle_rounds <= u64::from(spins_max) {
                    std::hint::spin_loop();
                    IdleAction::Spin
                } else if self.idle_rounds <= u64::from(spins_max) + u64::from(yields_max) {
                    std::thread::yield_now();
                    IdleAction::Yield
                } else {
                    let park_ns = self.park_ns;
                    std::thread::park_timeout(Duration::from_nanos(park_ns));
                    self.park_ns = (park_ns.saturating_mul(2)).min(park_ns_max);
                    IdleAction::Park(park_ns)
                }
            }
        }
    }

    fn reset(&mut self) {
        self.idle_rounds = 0;
        if let IdleStrategy::Backoff { park_ns_min, .. } = self.strategy {
            self.park_ns = park_ns_min;
        }
    }
}

/// The runner clock: monotonic nanoseconds since an epoch shared by every thread of a runner.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the epoch (saturates after 584 years).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// The stop flag shared by a runner's threads and whoever stops them.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Asks every runner holding this flag to stop after its current round.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once [`StopFlag::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Time the runner's threads spent in rounds that did work, in nanoseconds (all threads together): the
/// pipeline's utilization (admin `status`), and the cost of a request at saturation when divided by the
/// requests handled (the end-to-end harness). A round's time runs from its start to the next round's
/// start, so a round that did work is counted whole, its idle wait excluded.
///
/// With a [`WorkSink`] ([`BusyMeter::with_work_sink`]) the runner also times every `do_work` call that
/// did work, per agent, and hands each agent's histogram to the sink every [`stats::PUBLISH_INTERVAL_NS`]
/// and at close: where a round's time goes, stage by stage.
#[derive(Clone, Default)]
pub struct BusyMeter {
    busy_ns: Arc<AtomicU64>,
    work: Option<WorkSink>,
}

/// Receives an agent's work-time histogram: (agent name, nanoseconds per `do_work` call that did work,
/// recorded since the sink last took them). The sink may take the samples (swap the histogram with an empty
/// one of the same bounds, as [`stats::Shared::hand_over_histogram`] does) or leave them for the next call.
pub type WorkSink = Arc<dyn Fn(&'static str, &mut Histogram<u64>) + Send + Sync>;

impl std::fmt::Debug for BusyMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusyMeter")
            .field("busy_ns", &self.busy_ns())
            .field("work_sink", &self.work.is_some())
            .finish()
    }
}

impl BusyMeter {
    /// A meter at zero.
    pub fn new() -> BusyMeter {
        BusyMeter::default()
    }

    /// The same meter (shared count), whose runner also times each agent's calls into `sink`.
    pub fn with_work_sink(self, sink: WorkSink) -> BusyMeter {
        BusyMeter {
            busy_ns: self.busy_ns,
            work: Some(sink),
        }
    }

    /// Busy nanoseconds so far.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns.load(Ordering::Relaxed)
    }

    fn add(&self, ns: u64) {
        self.busy_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// A runner thread's per-agent work times (see [`BusyMeter`]): one histogram per agent, allocated at start;
/// recording allocates nothing. Without a sink it records nothing.
struct WorkTimes {
    names: Vec<&'static str>,
    histograms: Vec<Histogram<u64>>,
    sink: Option<WorkSink>,
    /// The call being timed: (agent index, its start), ended by the thread's next clock read.
    open: Option<(usize, u64)>,
    next_publish_ns: u64,
}

impl WorkTimes {
    fn new(names: Vec<&'static str>, meter: &BusyMeter) -> WorkTimes {
        let histograms = match meter.work {
            Some(_) => names.iter().map(|_| stats::latency_histogram()).collect(),
            None => Vec::new(),
        };
        WorkTimes {
            names,
            histograms,
            sink: meter.work.clone(),
            open: None,
            next_publish_ns: 0,
        }
    }

    /// The thread read the clock (`now_ns`): ends the call being timed, if any.
    #[inline]
    fn at(&mut self, now_ns: u64) {
        if let Some((agent, start_ns)) = self.open.take() {
            stats::record(&mut self.histograms[agent], now_ns.saturating_sub(start_ns));
        }
    }

    /// Agent `agent` was called at `now_ns` and did `done` work: timed until the next clock read.
    #[inline]
    fn called(&mut self, agent: usize, now_ns: u64, done: usize) {
        if done > 0 && self.sink.is_some() {
            self.open = Some((agent, now_ns));
        }
    }

    /// Hands the histograms to the sink once [`stats::PUBLISH_INTERVAL_NS`] has passed (or when `force`d,
    /// at close).
    fn publish(&mut self, now_ns: u64, force: bool) {
        let Some(sink) = &self.sink else { return };
        if !force && now_ns < self.next_publish_ns {
            return;
        }
        self.next_publish_ns = now_ns.saturating_add(stats::PUBLISH_INTERVAL_NS);
        for (name, h) in self.names.iter().zip(&mut self.histograms) {
            sink(name, h);
        }
    }
}

/// Counts the time of rounds that did work into a [`BusyMeter`] (one clock read per round).
struct RoundTimer {
    meter: BusyMeter,
    /// Start of the previous round.
    previous: Option<u64>,
}

impl RoundTimer {
    fn new(meter: BusyMeter) -> RoundTimer {
        RoundTimer {
            meter,
            previous: None,
        }
    }

    /// A round starts (or the runner stops) at `now_ns`; the previous round did work when `worked`, and
    /// then its time, from its start to `now_ns`, is busy time.
    #[inline]
    fn round(&mut self, now_ns: u64, worked: bool) {
        if let Some(start_ns) = self.previous
            && worked
        {
            self.meter.add(now_ns.saturating_sub(start_ns));
        }
        self.previous = Some(now_ns);
    }
}

/// What one agent did while it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentReport {
    /// The agent's name.
    pub name: &'static str,
    /// Sum of its `do_work` results.
    pub work_total: u64,
    /// The core it was pinned to (`None` under `shared`).
    pub core: Option<usize>,
}

/// Running threads of a runner.
#[derive(Debug)]
pub struct RunnerHandle {
    mode: ResolvedMode,
    stop: StopFlag,
    threads: Vec<JoinHandle<Vec<AgentReport>>>,
}

impl RunnerHandle {
    /// The mode this runner runs.
    pub fn mode(&self) -> ResolvedMode {
        self.mode
    }

    /// Sets the stop flag (every holder of the flag sees it).
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Waits for every thread (after [`RunnerHandle::stop`] or a stop from elsewhere) and returns the
    /// agents' reports in the order they were given.
    ///
    /// # Panics
    /// If an agent panicked (the panic is resumed here).
    pub fn join(self) -> Vec<AgentReport> {
        let mut reports = Vec::new();
        for thread in self.threads {
            match thread.join() {
                Ok(r) => reports.extend(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        reports
    }
}

/// Runs `agents` round-robin on the current thread until `stop` is set, then closes them.
pub fn run_shared(
    agents: &mut [Box<dyn Agent>],
    idle: IdleStrategy,
    clock: Clock,
    stop: &StopFlag,
    meter: BusyMeter,
) -> Vec<u64> {
    let mut idler = Idler::new(idle);
    let mut times = WorkTimes::new(agents.iter().map(|a| a.name()).collect(), &meter);
    let mut timer = RoundTimer::new(meter);
    let mut work_totals = vec![0u64; agents.len()];
    let mut work = 0usize;
    while !stop.is_stopped() {
        let start_ns = clock.now_ns();
        // A round that did work does not idle, so the last agent's call ends at the next round's start.
        times.at(start_ns);
        times.publish(start_ns, false);
        timer.round(start_ns, work > 0);
        work = 0;
        for (index, (agent, total)) in agents.iter_mut().zip(work_totals.iter_mut()).enumerate() {
            let now_ns = if index == 0 { start_ns } else { clock.now_ns() };
            times.at(now_ns);
            let done = agent.do_work(now_ns);
            times.called(index, now_ns, done);
            *total += done as u64;
            work += done;
        }
        idler.idle(work);
    }
    let end_ns = clock.now_ns();
    times.at(end_ns);
    times.publish(end_ns, true);
    timer.round(end_ns, work > 0);
    for agent in agents.iter_mut() {
        agent.on_close();
    }
    work_totals
}

/// Starts one thread (`bourse-shared`) that runs every agent round-robin until `stop` is set, pinned to
/// `core` if one is given.
///
/// # Errors
/// [`RunnerError::NoAgents`], or [`RunnerError::Spawn`].
pub fn spawn_shared(
    mut agents: Vec<Box<dyn Agent>>,
    core: Option<core_affinity::CoreId>,
    idle: IdleStrategy,
    clock: Clock,
    stop: StopFlag,
    meter: BusyMeter,
) -> Result<RunnerHandle, RunnerError> {
    if agents.is_empty() {
        return Err(RunnerError::NoAgents);
    }
    let names: Vec<&'static str> = agents.iter().map(|a| a.name()).collect();
    let thread_stop = stop.clone();
    let (placed, wait_placed) = std::sync::mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("bourse-shared".to_owned())
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let _ = placed.send(());
            let totals = run_shared(&mut agents, idle, clock, &thread_stop, meter);
            names
                .into_iter()
                .zip(totals)
                .map(|(name, work_total)| AgentReport {
                    name,
                    work_total,
                    core: None,
                })
                .collect()
        })
        .map_err(|e| RunnerError::Spawn {
            agent: "shared",
            message: e.to_string(),
        })?;
    // Returns once the thread runs named and pinned: what the daemon reports ready is placed.
    let _ = wait_placed.recv();
    Ok(RunnerHandle {
        mode: ResolvedMode::Shared,
        stop,
        threads: vec![thread],
    })
}

/// Starts one thread per agent, agent `i` pinned to `cores[i]`, each looping until `stop` is set.
///
/// `cores` is injected (normally [`available_cores`]) so that the refusal can be tested. If a thread
/// cannot be pinned it still runs and its report says `core: None`.
///
/// # Errors
/// [`RunnerError::TooFewCores`] when `cores.len() < agents.len()` (nothing is started);
/// [`RunnerError::NoAgents`]; [`RunnerError::Spawn`] (threads already started are stopped and joined).
pub fn spawn_pinned(
    agents: Vec<Box<dyn Agent>>,
    cores: &[core_affinity::CoreId],
    idle: IdleStrategy,
    clock: Clock,
    stop: StopFlag,
    meter: BusyMeter,
) -> Result<RunnerHandle, RunnerError> {
    if agents.is_empty() {
        return Err(RunnerError::NoAgents);
    }
    if cores.len() < agents.len() {
        return Err(RunnerError::TooFewCores {
            agents: agents.len(),
            cores: cores.len(),
        });
    }
    let mut threads = Vec::with_capacity(agents.len());
    for (mut agent, &core) in agents.into_iter().zip(cores) {
        let name = agent.name();
        let thread_stop = stop.clone();
        let meter = meter.clone();
        let (placed, wait_placed) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name(format!("bourse-{name}"))
            .spawn(move || {
                let pinned = core_affinity::set_for_current(core);
                let _ = placed.send(());
                let mut idler = Idler::new(idle);
                let mut times = WorkTimes::new(vec![name], &meter);
                let mut timer = RoundTimer::new(meter);
                let mut work_total = 0u64;
                let mut done = 0usize;
                while !thread_stop.is_stopped() {
                    let now_ns = clock.now_ns();
                    times.at(now_ns);
                    times.publish(now_ns, false);
                    timer.round(now_ns, done > 0);
                    done = agent.do_work(now_ns);
                    times.called(0, now_ns, done);
                    work_total += done as u64;
                    idler.idle(done);
                }
                let end_ns = clock.now_ns();
                times.at(end_ns);
                times.publish(end_ns, true);
                timer.round(end_ns, done > 0);
                agent.on_close();
                vec![AgentReport {
                    name,
                    work_total,
                    core: pinned.then_some(core.id),
                }]
            });
        match spawned {
            Ok(thread) => {
                let _ = wait_placed.recv();
                threads.push(thread);
            }
            Err(e) => {
                stop.stop();
                for thread in threads {
                    let _ = thread.join();
                }
                return Err(RunnerError::Spawn {
                    agent: name,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(RunnerHandle {
        mode: ResolvedMode::Pinned,
        stop,
        threads,
    })
}

/// Starts `agents` as `placement` says (see [`placement`]): the one entry point the daemon uses.
///
/// # Errors
/// As [`spawn_shared`] and [`spawn_pinned`].
pub fn spawn(
    placement: &Placement,
    agents: Vec<Box<dyn Agent>>,
    idle: IdleStrategy,
    clock: Clock,
    stop: StopFlag,
    meter: BusyMeter,
) -> Result<RunnerHandle, RunnerError> {
    match placement.mode {
        ResolvedMode::Shared => spawn_shared(agents, placement.shared_core, idle, clock, stop, meter),
        ResolvedMode::Pinned => spawn_pinned(agents, &placement.stage_cores, idle, clock, stop, meter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{Consumer, Producer, ring};
    use std::sync::Mutex;

    const RECORDS: u64 = 200_000;
    const BATCH_MAX: usize = 64;

    /// Pushes 1..=RECORDS, at most BATCH_MAX per call, retrying on a full ring.
    struct Source {
        out: Producer<u64>,
        next: u64,
    }

    impl Agent for Source {
        fn name(&self) -> &'static str {
            "source"
        }
        fn do_work(&mut self, _now_ns: u64) -> usize {
            let mut done = 0;
            while done < BATCH_MAX && self.next <= RECORDS {
                if self.out.push(self.next).is_err() {
                    break;
                }
                self.next += 1;
                done += 1;
            }
            done
        }
    }

    /// Forwards records, adding 1_000_000, and checks they arrive in order.
    struct Relay {
        input: Consumer<u64>,
        out: Producer<u64>,
        pending: Option<u64>,
        expected: u64,
    }

    impl Agent for Relay {
        fn name(&self) -> &'static str {
            "relay"
        }
        fn do_work(&mut self, _now_ns: u64) -> usize {
            let mut done = 0;
            while done < BATCH_MAX {
                let record = match self.pending.take().or_else(|| self.input.pop()) {
                    Some(r) => r,
                    None => break,
                };
                if self.out.push(record + 1_000_000).is_err() {
                    self.pending = Some(record);
                    break;
                }
                if self.expected != record {
                    panic!("relay got {record}, expected {}", self.expected);
                }
                self.expected += 1;
                done += 1;
            }
            done
        }
    }

    /// Collects every record; records `on_close`.
    struct Sink {
        input: Consumer<u64>,
        seen: Arc<Mutex<Vec<u64>>>,
        closed: Arc<AtomicBool>,
        stop_when_done: Option<StopFlag>,
        local: Vec<u64>,
    }

    impl Agent for Sink {
        fn name(&self) -> &'static str {
            "sink"
        }
        fn do_work(&mut self, _now_ns: u64) -> usize {
            let local = &mut self.local;
            let done = self.input.drain(BATCH_MAX, |r| local.push(*r));
            if self.local.len() as u64 == RECORDS
                && let Some(stop) = self.stop_when_done.take()
            {
                stop.stop();
            }
            done
        }
        fn on_close(&mut self) {
            self.seen.lock().unwrap().extend_from_slice(&self.local);
            self.closed.store(true, Ordering::Release);
        }
    }

    /// The agents, the records the sink saw (filled at close) and whether the sink was closed.
    type Pipeline = (Vec<Box<dyn Agent>>, Arc<Mutex<Vec<u64>>>, Arc<AtomicBool>);

    fn pipeline(stop: &StopFlag) -> Pipeline {
        // Small rings so that back-pressure (Full) happens often.
        let (p1, c1) = ring::<u64>(16);
        let (p2, c2) = ring::<u64>(8);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let agents: Vec<Box<dyn Agent>> = vec![
            Box::new(Source { out: p1, next: 1 }),
            Box::new(Relay {
                input: c1,
                out: p2,
                pending: None,
                expected: 1,
            }),
            Box::new(Sink {
                input: c2,
                seen: Arc::clone(&seen),
                closed: Arc::clone(&closed),
                stop_when_done: Some(stop.clone()),
                local: Vec::with_capacity(RECORDS as usize),
            }),
        ];
        (agents, seen, closed)
    }

    fn check_delivery(seen: &Mutex<Vec<u64>>, closed: &AtomicBool, reports: &[AgentReport]) {
        assert!(closed.load(Ordering::Acquire), "on_close was not called");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len() as u64, RECORDS);
        for (i, r) in seen.iter().enumerate() {
            assert_eq!(*r, i as u64 + 1 + 1_000_000, "record {i} out of order");
        }
        let names: Vec<_> = reports.iter().map(|r| r.name).collect();
        assert_eq!(names, ["source", "relay", "sink"]);
        for r in reports {
            assert_eq!(r.work_total, RECORDS, "{}", r.name);
        }
    }

    fn backoff() -> IdleStrategy {
        IdleStrategy::Backoff {
            spins_max: 10,
            yields_max: 10,
            park_ns_min: 1_000,
            park_ns_max: 100_000,
        }
    }

    #[test]
    fn shared_runner_delivers_every_record_in_order_and_stops() {
        for idle in [IdleStrategy::BusySpin, IdleStrategy::Yield, backoff()] {
            let stop = StopFlag::new();
            let (agents, seen, closed) = pipeline(&stop);
            let meter = BusyMeter::new();
            let handle = spawn_shared(agents, None, idle, Clock::new(), stop.clone(), meter.clone()).unwrap();
            assert_eq!(handle.mode(), ResolvedMode::Shared);
            let reports = handle.join(); // the sink stops the runner once it has everything
            check_delivery(&seen, &closed, &reports);
            assert!(meter.busy_ns() > 0, "rounds that moved records count as busy");
            assert!(reports.iter().all(|r| r.core.is_none()));
        }
    }

    #[test]
    fn pinned_runner_delivers_every_record_in_order_and_stops() {
        let stop = StopFlag::new();
        let (agents, seen, closed) = pipeline(&stop);
        // Three agents need three cores; a machine with fewer runs them pinned to repeated cores
        // only through this test's injection (the pinned runner itself refuses, see below).
        let real = available_cores();
        assert!(!real.is_empty());
        let cores: Vec<_> = (0..3).map(|i| real[i % real.len()]).collect();
        let handle = spawn_pinned(
            agents,
            &cores,
            backoff(),
            Clock::new(),
            stop.clone(),
            BusyMeter::new(),
        )
        .unwrap();
        assert_eq!(handle.mode(), ResolvedMode::Pinned);
        let reports = handle.join();
        check_delivery(&seen, &closed, &reports);
        for (report, core) in reports.iter().zip(&cores) {
            assert_eq!(report.core, Some(core.id), "{} not pinned", report.name);
        }
    }

    /// Works `calls_max` times, each call spinning at least `spin`, then sets the stop flag.
    struct Spinner {
        calls: usize,
        calls_max: usize,
        spin: Duration,
        stop: StopFlag,
    }

    impl Spinner {
        fn new(calls_max: usize, spin: Duration, stop: &StopFlag) -> Spinner {
            Spinner {
                calls: 0,
                calls_max,
                spin,
                stop: stop.clone(),
            }
        }
    }

    impl Agent for Spinner {
        fn name(&self) -> &'static str {
            "spinner"
        }
        fn do_work(&mut self, _now_ns: u64) -> usize {
            if self.calls == self.calls_max {
                self.stop.stop();
                return 0;
            }
            self.calls += 1;
            let start = Instant::now();
            while start.elapsed() < self.spin {
                std::hint::spin_loop();
            }
            1
        }
    }

    struct Never;

    impl Agent for Never {
        fn name(&self) -> &'static str {
            "never"
        }
        fn do_work(&mut self, _now_ns: u64) -> usize {
            0
        }
    }

    /// (agent, calls recorded, shortest call ns) as last published.
    type Published = Arc<Mutex<Vec<(&'static str, u64, u64)>>>;

    fn collecting_meter() -> (BusyMeter, Published) {
        let published: Published = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&published);
        let meter = BusyMeter::new().with_work_sink(Arc::new(move |agent, h| {
            let mut p = sink.lock().unwrap();
            p.retain(|(a, _, _)| *a != agent);
            p.push((agent, h.len(), if h.is_empty() { 0 } else { h.min() }));
        }));
        (meter, published)
    }

    #[test]
    fn a_round_is_busy_time_when_it_did_work_not_when_the_one_before_it_did() {
        let meter = BusyMeter::new();
        let mut timer = RoundTimer::new(meter.clone());
        // Rounds start at 0 (works), 10 (idle, then waits), 30 (works), 35 (works); the runner stops at 42.
        timer.round(0, false);
        timer.round(10, true);
        timer.round(30, false);
        timer.round(35, true);
        timer.round(42, true);
        assert_eq!(meter.busy_ns(), 10 + 5 + 7);
        // A runner that stops right after an idle round adds nothing for it.
        let meter = BusyMeter::new();
        let mut timer = RoundTimer::new(meter.clone());
        timer.round(0, false);
        timer.round(10, false);
        assert_eq!(meter.busy_ns(), 0);
    }

    #[test]
    fn runners_time_each_call_that_did_work_per_agent() {
        const CALLS: usize = 50;
        const SPIN: Duration = Duration::from_micros(20);
        let get = |p: &Published, agent: &str| p.lock().unwrap().iter().find(|e| e.0 == agent).copied();
        // Shared: the spinner's calls are timed (each at least its spin), the agent that never works has
        // an empty histogram; the last call is ended and published at close.
        let (meter, published) = collecting_meter();
        let stop = StopFlag::new();
        let spinner = Spinner::new(CALLS, SPIN, &stop);
        let agents: Vec<Box<dyn Agent>> = vec![Box::new(Never), Box::new(spinner), Box::new(Never)];
        let handle = spawn_shared(agents, None, backoff(), Clock::new(), stop, meter.clone()).unwrap();
        handle.join();
        let (_, calls, min_ns) = get(&published, "spinner").expect("spinner published");
        assert_eq!(calls, CALLS as u64);
        assert!(
            min_ns >= SPIN.as_nanos() as u64,
            "a call is timed whole: {min_ns} ns"
        );
        assert_eq!(get(&published, "never").expect("never published").1, 0);
        assert!(meter.busy_ns() >= CALLS as u64 * SPIN.as_nanos() as u64);
        // Pinned: the same, one agent per thread.
        let (meter, published) = collecting_meter();
        let stop = StopFlag::new();
        let spinner = Spinner::new(CALLS, SPIN, &stop);
        let handle = spawn_pinned(
            vec![Box::new(spinner)],
            &available_cores()[..1],
            backoff(),
            Clock::new(),
            stop,
            meter,
        )
        .unwrap();
        handle.join();
        let (_, calls, min_ns) = get(&published, "spinner").expect("spinner published");
        assert_eq!(calls, CALLS as u64);
        assert!(min_ns >= SPIN.as_nanos() as u64);
        // Without a sink nothing is recorded (and nothing published).
        let stop = StopFlag::new();
        let spinner = Spinner::new(3, SPIN, &stop);
        let handle = spawn_shared(
            vec![Box::new(spinner)],
            None,
            backoff(),
            Clock::new(),
            stop,
            BusyMeter::new(),
        );
        assert_eq!(handle.unwrap().join()[0].work_total, 3);
    }

    #[test]
    fn runners_stop_when_told_while_agents_are_idle() {
        struct Idle(Arc<AtomicBool>);
        impl Agent for Idle {
            fn name(&self) -> &'static str {
                "idle"
            }
            fn do_work(&mut self, _now_ns: u64) -> usize {
                0
            }
            fn on_close(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let closed = Arc::new(AtomicBool::new(false));
        let stop = StopFlag::new();
        let meter = BusyMeter::new();
        let handle = spawn_shared(
            vec![Box::new(Idle(Arc::clone(&closed)))],
            None,
            backoff(),
            Clock::new(),
            stop,
            meter.clone(),
        )
        .unwrap();
        handle.stop();
        let reports = handle.join();
        assert_eq!(reports[0].work_total, 0);
        assert_eq!(meter.busy_ns(), 0, "rounds without work are not busy time");
        assert!(closed.load(Ordering::Acquire));

        let closed = Arc::new(AtomicBool::new(false));
        let cores = &available_cores()[..1];
        let handle = spawn_pinned(
            vec![Box::new(Idle(Arc::clone(&closed)))],
            cores,
            backoff(),
            Clock::new(),
            StopFlag::new(),
            BusyMeter::new(),
        )
        .unwrap();
        handle.stop();
        handle.join();
        assert!(closed.load(Ordering::Acquire));
    }

    #[test]
    fn pinned_refuses_with_too_few_cores() {
        let stop = StopFlag::new();
        let (agents, _, closed) = pipeline(&stop);
        let two = vec![core_affinity::CoreId { id: 0 }, core_affinity::CoreId { id: 1 }];
        let error = spawn_pinned(
            agents,
            &two,
            IdleStrategy::BusySpin,
            Clock::new(),
            stop,
            BusyMeter::new(),
        )
        .unwrap_err();
        assert_eq!(error, RunnerError::TooFewCores { agents: 3, cores: 2 });
        assert!(error.to_string().contains("needs 3 cores"));
        assert!(!closed.load(Ordering::Acquire), "nothing may have run");

        let error = placement(ThreadingMode::Pinned, &[], &two, 3).unwrap_err();
        assert!(matches!(error, RunnerError::TooFewCores { .. }));
        assert_eq!(
            spawn_shared(
                Vec::new(),
                None,
                IdleStrategy::Yield,
                Clock::new(),
                StopFlag::new(),
                BusyMeter::new()
            )
            .unwrap_err(),
            RunnerError::NoAgents
        );
    }

    #[test]
    fn mode_chooser() {
        use ResolvedMode::{Pinned, Shared};
        let cases = [
            (ThreadingMode::Auto, 2, 5, Ok(Shared)),
            (ThreadingMode::Auto, 5, 5, Ok(Shared)),
            (ThreadingMode::Auto, 6, 5, Ok(Pinned)),
            (ThreadingMode::Shared, 64, 5, Ok(Shared)),
            (ThreadingMode::Pinned, 5, 5, Ok(Pinned)),
            (
                ThreadingMode::Pinned,
                4,
                5,
                Err(RunnerError::TooFewCores { agents: 5, cores: 4 }),
            ),
        ];
        for (mode, cores, agents, expected) in cases {
            assert_eq!(
                choose_mode(mode, cores, agents),
                expected,
                "{mode:?} {cores} {agents}"
            );
        }
    }

    #[test]
    fn backoff_spins_then_yields_then_parks_doubling_and_resets_on_work() {
        let mut idler = Idler::new(IdleStrategy::Backoff {
            spins_max: 2,
            yields_max: 1,
            park_ns_min: 1_000,
            park_ns_max: 3_000,
        });
        let actions: Vec<_> = (0..6).map(|_| idler.idle(0)).collect();
        assert_eq!(
            actions,
            [
                IdleAction::Spin,
                IdleAction::Spin,
                IdleAction::Yield,
                IdleAction::Park(1_000),
                IdleAction::Park(2_000),
                IdleAction::Park(3_000),
            ]
        );
        assert_eq!(idler.idle(1), IdleAction::None);
        assert_eq!(idler.idle(0), IdleAction::Spin);
        let mut spin = Idler::new(IdleStrategy::BusySpin);
        assert_eq!(spin.idle(0), IdleAction::Spin);
        let mut yielder = Idler::new(IdleStrategy::Yield);
        assert_eq!(yielder.idle(0), IdleAction::Yield);
    }

    fn ids(cores: &[usize]) -> Vec<core_affinity::CoreId> {
        cores.iter().map(|&id| core_affinity::CoreId { id }).collect()
    }

    #[test]
    fn placement_keeps_helper_cores_for_helpers_and_gives_the_stages_the_rest() {
        use ThreadingMode::{Auto, Pinned, Shared};
        // (mode, helper_cores, available) -> (mode run, stage cores, shared core, helper cores)
        type Case = (
            ThreadingMode,
            &'static [usize],
            &'static [usize],
            ResolvedMode,
            &'static [usize],
            Option<usize>,
            &'static [usize],
        );
        let cases: [Case; 6] = [
            // Two cores, nothing configured: one unpinned thread, helpers unpinned (the old behaviour).
            (Shared, &[], &[0, 1], ResolvedMode::Shared, &[0, 1], None, &[]),
            (Auto, &[], &[0, 1], ResolvedMode::Shared, &[0, 1], None, &[]),
            // Two cores, helpers on 1: the stage thread on 0 (the benchmark's topology).
            (Shared, &[1], &[0, 1], ResolvedMode::Shared, &[0], Some(0), &[1]),
            // Eight cores: pinned stages on 0-2, helpers on what they leave.
            (
                Auto,
                &[],
                &[0, 1, 2, 3, 4, 5, 6, 7],
                ResolvedMode::Pinned,
                &[0, 1, 2, 3, 4, 5, 6, 7],
                None,
                &[3, 4, 5, 6, 7],
            ),
            // Helpers on 0 (where the OS's interrupts go): stages on the others.
            (
                Pinned,
                &[0],
                &[0, 1, 2, 3],
                ResolvedMode::Pinned,
                &[1, 2, 3],
                None,
                &[0],
            ),
            // Exactly one per stage: helpers not pinned.
            (
                Pinned,
                &[],
                &[4, 5, 6],
                ResolvedMode::Pinned,
                &[4, 5, 6],
                None,
                &[],
            ),
        ];
        for (mode, configured, available, run, stages, shared, helpers) in cases {
            let placed = placement(mode, configured, &ids(available), 3).unwrap();
            let label = format!("{mode:?} helpers {configured:?} on {available:?}");
            assert_eq!(placed.mode, run, "{label}");
            assert_eq!(placed.stage_cores, ids(stages), "{label}");
            assert_eq!(placed.shared_core.map(|c| c.id), shared, "{label}");
            assert_eq!(placed.helper_cores, helpers, "{label}");
        }
    }

    #[test]
    fn placement_refuses_unavailable_helper_cores_and_helpers_that_starve_the_stages() {
        let error = placement(ThreadingMode::Shared, &[5], &ids(&[0, 1]), 3).unwrap_err();
        assert!(
            matches!(error, RunnerError::HelperCoreUnavailable { core: 5, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("threading.helper_cores"), "{error}");
        let error = placement(ThreadingMode::Shared, &[0, 1], &ids(&[0, 1]), 3).unwrap_err();
        assert!(
            matches!(error, RunnerError::TooFewCores { agents: 1, cores: 0 }),
            "{error:?}"
        );
        let error = placement(ThreadingMode::Pinned, &[2], &ids(&[0, 1, 2]), 3).unwrap_err();
        assert!(
            matches!(error, RunnerError::TooFewCores { agents: 3, cores: 2 }),
            "{error:?}"
        );
    }

    #[test]
    fn pin_current_thread_restricts_the_caller_only() {
        let available = available_cores();
        let last = available.last().expect("at least one core").id;
        let seen = std::thread::spawn(move || {
            pin_current_thread(&[last]).expect("pin");
            core_affinity::get_core_ids().unwrap_or_default()
        })
        .join()
        .unwrap();
        assert_eq!(seen, ids(&[last]));
        assert_eq!(available_cores(), available, "the calling thread is untouched");
        pin_current_thread(&[]).expect("empty: no-op");
        assert_eq!(available_cores(), available);
        let error = std::thread::spawn(|| pin_current_thread(&[libc::CPU_SETSIZE as usize]))
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EINVAL));
    }
}
