//! The checkpointer: a replica of the [`Machine`] on its own thread that follows the released journal
//! and writes the checkpoints, so that the pipeline thread never serializes its state.
//!
//! # Why a replica
//! A checkpoint holds every book, the order arena and the day's token table: it grows with the day
//! (70-170 MB after 30-85 M records of the end-to-end load). Serialized, written and `fsync`ed on the
//! pipeline thread it stopped matching for tens to hundreds of milliseconds every few seconds at
//! saturation. The engine is deterministic, so a second machine that re-runs the journaled steps holds
//! the same state at every step boundary, and its state can be written at leisure.
//!
//! # How it follows
//! - It starts from the core's state at start-up (a checkpoint blob taken once, before the ports open)
//!   and reads the journal after it with its own [`Reader`] (which checks every record's CRC as it goes).
//! - It follows only when a checkpoint is due or asked for, up to the core's released sequence at that
//!   moment ([`Checkpointer::release`] publishes it with the engine event count), then writes and stops
//!   again; the replica itself is built when the first checkpoint falls due. Between checkpoints the
//!   thread wakes every 10 ms to look at two counters and costs nothing else.
//! - It re-runs a step only once the whole step is released: a checkpoint never holds anything that a
//!   crash of the machine could take out of the journal. A step that spans two batches (a mass cancel
//!   bigger than a batch) is followed record by record as the rest is released.
//! - Every record the replica produces is compared with the journaled one, as start-up recovery does:
//!   a mismatch (a nondeterministic engine, a damaged journal) stops the checkpointer, which says so on
//!   stderr and in admin `status`, and writes nothing after it. Nothing is lost: the journal holds every
//!   step, and start-up re-checks the steps after the last good checkpoint.
//!
//! # Priority
//! Catching up is background work: the thread runs under `SCHED_IDLE` and yields its core between chunks
//! of 1,024 records, so that it takes only CPU time that nothing else on its core wants. On a 2-core
//! machine it shares a core with the other helpers and, in the benchmarks, with the load generator: at
//! normal priority, following all the time, it took a quarter of the client's rate in paired runs, and
//! its start (restoring the state allocates and writes a whole second engine) delayed a spinning client
//! by milliseconds. Under sustained saturation of its core it lags, and catches up when the load eases.
//! While a checkpoint is asked for (admin, shutdown) it runs at normal priority until it is written.
//!
//! # When it writes
//! When `journal.checkpoint_every_events` engine events have passed or `checkpoint_every_s` seconds (if
//! anything happened) since the last one fell due, when admin asks ([`Checkpointer::request`], answered
//! once written). A write is the journal's atomic checkpoint protocol (`bourse_journal::checkpoint::write`).
//! The last checkpoint, at shutdown, is the core's own: it stops this thread ([`Checkpointer::stop`]) and
//! writes its state, which is current, once everything is drained and nobody waits on the pipeline (the
//! replica may lag by a flood's worth of records, which would hold the shutdown up).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bourse_book::EngineConfig;
use bourse_journal::{MmapStorage, Reader};

use crate::machine::{Machine, RecordSink, StepError};

/// How often the thread looks whether a checkpoint is due, when none is.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// How long it sleeps while what it needs is not released yet.
const STEP_WAIT: Duration = Duration::from_micros(50);
/// Records re-run between two looks at the requests (and, in the background, two yields of the core).
const RECORDS_PER_CHUNK: u64 = 1024;
/// How long a released record may fail to read back before the journal is called damaged (the reader
/// takes a committed record whose CRC does not match for the end of what is written, and waits).
const UNREADABLE_AFTER: Duration = Duration::from_secs(2);

/// What the thread publishes (admin `status`, tests).
#[derive(Debug, Default)]
pub struct CheckpointerState {
    /// Journal sequence the replica has re-run up to.
    pub applied: AtomicU64,
    /// Journal sequence of the newest checkpoint this checkpointer wrote (0: none yet).
    pub written: AtomicU64,
    /// The replica disagreed with the journal, or the journal could not be read: nothing more is written.
    pub failed: AtomicBool,
    /// The thread has ended (after a failure, or a stop).
    pub ended: AtomicBool,
    /// The thread's id (0 until it runs), so that a request can raise its priority at once.
    tid: std::sync::atomic::AtomicI32,
}

/// Everything the checkpointer needs.
pub struct CheckpointerParams {
    /// The machine's state at `at` ([`Machine::checkpoint_blob`]).
    pub blob: Vec<u8>,
    /// The engine configuration (to restore the blob).
    pub engine_config: EngineConfig,
    /// Journal sequence of the last record the blob includes; no batch may be open after it.
    pub at: u64,
    /// Where that record's commit ends in the journal (`Journal::committed_at`).
    pub committed_at: (u64, u64),
    /// Released journal sequence at start.
    pub released: u64,
    /// The journal directory.
    pub journal_dir: PathBuf,
    /// Checkpoint after this many engine events (0: never by count).
    pub every_events: u64,
    /// Checkpoint after this long, if anything happened (zero: never by time).
    pub every: Duration,
    /// Checkpoints kept.
    pub kept: u32,
    /// Cores the thread may run on (empty: not pinned).
    pub helper_cores: Vec<usize>,
}

/// Called once a requested checkpoint is written (`Ok(sequence)`) or cannot be (`Err(reason)`).
pub type Answer = Box<dyn FnOnce(Result<u64, String>) + Send>;

/// A checkpoint at or after `at`, answered once written.
struct Request {
    at: u64,
    answer: Answer,
}

/// What the core writes and the thread reads.
#[derive(Debug, Default)]
struct FromCore {
    /// The core's released journal sequence.
    released: AtomicU64,
    /// The core's engine events since start (what `every_events` counts).
    events: AtomicU64,
    /// The handle was dropped.
    stop: AtomicBool,
}

/// The core's handle on the checkpointer thread. Dropping it stops the thread without a final checkpoint
/// (as a crash would) and waits for it.
pub struct Checkpointer {
    from_core: Arc<FromCore>,
    state: Arc<CheckpointerState>,
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; the replica is restored from `p.blob` on that thread, when the first checkpoint
    /// falls due.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn spawn(p: CheckpointerParams) -> std::io::Result<Checkpointer> {
        let from_core = Arc::new(FromCore::default());
        from_core.released.store(p.released, Ordering::Relaxed);
        let state = Arc::new(CheckpointerState::default());
        state.applied.store(p.at, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (from_core, state) = (Arc::clone(&from_core), Arc::clone(&state));
            std::thread::Builder::new()
                .name("bourse-checkpoint".into())
                .spawn(move || {
                    state.tid.store(current_tid(), Ordering::Release);
                    crate::agent::pin_helper_thread("checkpointer", &p.helper_cores);
                    run(p, &from_core, &state, &rx);
                    state.ended.store(true, Ordering::Release);
                })?
        };
        Ok(Checkpointer {
            from_core,
            state,
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    /// The core released the journal up to `released_up_to`, having made `events_total` engine events
    /// since start (two stores; the thread follows up to the first when a checkpoint is due, and counts
    /// the second towards `every_events`).
    #[inline]
    pub fn release(&self, released_up_to: u64, events_total: u64) {
        self.from_core.events.store(events_total, Ordering::Relaxed);
        self.from_core.released.store(released_up_to, Ordering::Release);
    }

    /// Asks for a checkpoint at or after `at` (which must be released); `answer` is called once it is
    /// written, or with the reason it cannot be.
    pub fn request(&self, at: u64, answer: Answer) {
        let stopped = || Err("the checkpointer has stopped".to_owned());
        let Some(tx) = self.requests.as_ref() else {
            return answer(stopped());
        };
        match tx.send(Request { at, answer }) {
            Ok(()) => self.raise_priority(),
            Err(std::sync::mpsc::SendError(Request { answer, .. })) => answer(stopped()),
        }
    }

    /// Stops the thread and waits for it (a checkpoint being written is finished first; requests still
    /// waiting are answered with an error). The core does this at shutdown, then writes the last
    /// checkpoint itself: it is idle by then, and its state is current where the replica's may lag.
    pub fn stop(&mut self) {
        self.from_core.stop.store(true, Ordering::Release);
        self.requests = None;
        self.raise_priority();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// A checkpoint is waited for: normal priority now, rather than once the thread gets to run at its
    /// background priority and reads the request (it lowers itself again once nothing is waited for).
    fn raise_priority(&self) {
        let tid = self.state.tid.load(Ordering::Acquire);
        if tid != 0 {
            set_priority(tid, Priority::Normal);
        }
    }

    /// Whether the thread has ended.
    pub fn ended(&self) -> bool {
        self.state.ended.load(Ordering::Acquire)
    }

    /// What the thread publishes.
    pub fn state(&self) -> &Arc<CheckpointerState> {
        &self.state
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why following stopped.
enum Stopped {
    /// Asked to stop (the handle was dropped).
    Asked,
    /// The replica or the journal is wrong: nothing more may be written.
    Failed(String),
}

struct Follower<'a> {
    machine: Machine,
    reader: Reader<MmapStorage>,
    files: MmapStorage,
    from_core: &'a FromCore,
    state: &'a CheckpointerState,
    /// Last journal sequence re-run (always a step boundary between calls).
    applied: u64,
    /// A step's first record read but not yet released: its sequence and kind (payload in `held_payload`).
    held: Option<(u64, u16)>,
    held_payload: Vec<u8>,
    /// Since when a released record has not read back.
    unreadable_since: Option<Instant>,
    last_written: u64,
    kept: u32,
}

fn run(mut p: CheckpointerParams, from_core: &FromCore, state: &CheckpointerState, rx: &Receiver<Request>) {
    // The core's state at start, until the replica is built from it (then dropped: it can be large).
    let mut blob = std::mem::take(&mut p.blob);
    let fail = |why: String| {
        eprintln!("boursed: checkpointer stopped, no more checkpoints until a restart: {why}");
        state.failed.store(true, Ordering::Release);
    };
    let answer_all = |waiting: &mut Vec<(u64, Answer)>, result: Result<u64, String>| {
        for (_, answer) in waiting.drain(..) {
            answer(result.clone());
        }
    };
    let mut priority = Priority::Background;
    set_priority(0, priority);
    // Built when the first checkpoint is due, not at start: until then the thread costs nothing.
    let mut follower: Option<Follower<'_>> = None;
    let mut waiting: Vec<(u64, Answer)> = Vec::new();
    // A periodic checkpoint is due by the core's engine event count or by time; `due_at` is the released
    // sequence it must reach (what was released when it fell due).
    let mut due_at: Option<u64> = None;
    let mut events_at_due = from_core.events.load(Ordering::Acquire);
    let mut last_due = Instant::now();
    loop {
        if from_core.stop.load(Ordering::Acquire) {
            return answer_all(&mut waiting, Err("the daemon is stopping".into()));
        }
        while let Ok(r) = rx.try_recv() {
            waiting.push((r.at, r.answer));
        }
        let wanted = if waiting.is_empty() {
            Priority::Background
        } else {
            Priority::Normal
        };
        if wanted != priority {
            priority = wanted;
            set_priority(0, priority);
        }
        if due_at.is_none() {
            let events = from_core.events.load(Ordering::Acquire);
            let by_count = p.every_events > 0 && events.saturating_sub(events_at_due) >= p.every_events;
            let by_time = !p.every.is_zero() && events != events_at_due && last_due.elapsed() >= p.every;
            if by_count || by_time {
                due_at = Some(from_core.released.load(Ordering::Acquire));
                events_at_due = events;
                last_due = Instant::now();
            }
        }
        // The sequence to reach: the lowest of what is waited for.
        let target = waiting.iter().map(|(at, _)| *at).chain(due_at).min();
        let Some(target) = target else {
            match rx.recv_timeout(IDLE_WAIT) {
                Ok(r) => waiting.push((r.at, r.answer)),
                Err(RecvTimeoutError::Timeout) => {}
                // The core is gone (stopped, or a test dropping it as a crash would): no checkpoint.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            continue;
        };
        if follower.is_none() {
            match Follower::new(&p, &std::mem::take(&mut blob), from_core, state) {
                Ok(f) => follower = Some(f),
                Err(why) => {
                    answer_all(&mut waiting, Err(format!("the checkpointer stopped: {why}")));
                    return fail(why);
                }
            }
        }
        let f = follower.as_mut().expect("built above");
        let followed = match f.follow(RECORDS_PER_CHUNK) {
            Ok(n) => n,
            Err(Stopped::Asked) => return answer_all(&mut waiting, Err("the daemon is stopping".into())),
            Err(Stopped::Failed(why)) => {
                answer_all(&mut waiting, Err(format!("the checkpointer stopped: {why}")));
                return fail(why);
            }
        };
        if f.applied >= target {
            let result = f.write();
            match &result {
                Ok(at) => state.written.store(*at, Ordering::Release),
                // A failed write loses nothing (the journal has it all): say so, answer, go on.
                Err(e) => eprintln!("boursed: checkpoint at {} failed: {e}", f.applied),
            }
            let applied = f.applied;
            let (ready, later): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(at, _)| *at <= applied);
            waiting = later;
            for (_, answer) in ready {
                answer(result.clone());
            }
            if due_at.is_some_and(|at| at <= applied) {
                due_at = None;
            }
            continue;
        }
        if followed == 0 {
            // Caught up with what is released: wait for the core.
            match rx.recv_timeout(STEP_WAIT) {
                Ok(r) => waiting.push((r.at, r.answer)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else if priority == Priority::Background {
            // Between chunks, whatever else wants this core goes first.
            std::thread::yield_now();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Priority {
    /// `SCHED_IDLE`: only what nothing else on the core wants.
    Background,
    /// `SCHED_OTHER`: a checkpoint is waited for.
    Normal,
}

/// Sets the scheduling policy of thread `tid` (0: the calling thread; Linux schedules threads one by
/// one). A refusal is harmless: the thread keeps the policy it has.
#[allow(unsafe_code)]
fn set_priority(tid: libc::pid_t, priority: Priority) {
    let policy = match priority {
        Priority::Background => libc::SCHED_IDLE,
        Priority::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` reads one plain struct passed by reference.
    let _ = unsafe { libc::sched_setscheduler(tid, policy, &param) };
}

/// The calling thread's id.
#[allow(unsafe_code)]
fn current_tid() -> libc::pid_t {
    // SAFETY: `gettid` has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

impl<'a> Follower<'a> {
    fn new(
        p: &CheckpointerParams,
        blob: &[u8],
        from_core: &'a FromCore,
        state: &'a CheckpointerState,
    ) -> Result<Follower<'a>, String> {
        let machine = Machine::from_checkpoint(p.engine_config.clone(), blob)
            .map_err(|e| format!("the core's state did not restore: {e}"))?;
        let open = || {
            MmapStorage::open_for_checkpoints(&p.journal_dir)
                .map_err(|e| format!("journal {}: {e}", p.journal_dir.display()))
        };
        let (segment_id, offset) = p.committed_at;
        let reader = Reader::with_trusted_prefix(open()?, segment_id, offset, p.at)
            .map_err(|e| format!("journal reader: {e}"))?;
        Ok(Follower {
            machine,
            reader,
            files: open()?,
            from_core,
            state,
            applied: p.at,
            held: None,
            held_payload: Vec::with_capacity(256),
            unreadable_since: None,
            last_written: 0,
            kept: p.kept,
        })
    }

    /// Re-runs released steps, up to about `records_max` records; returns the records re-run.
    fn follow(&mut self, records_max: u64) -> Result<u64, Stopped> {
        let start = self.applied;
        while self.applied - start < records_max {
            if self.held.is_none() {
                let record = match self.reader.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        let next = self.applied + 1;
                        if self.from_core.released.load(Ordering::Acquire) >= next {
                            let since = *self.unreadable_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= UNREADABLE_AFTER {
                                return Err(Stopped::Failed(unreadable(next)));
                            }
                        }
                        break;
                    }
                    Err(e) => return Err(Stopped::Failed(format!("journal: {e}"))),
                };
                self.unreadable_since = None;
                if record.sequence != self.applied + 1 {
                    return Err(Stopped::Failed(format!(
                        "journal record {} where {} was next",
                        record.sequence,
                        self.applied + 1
                    )));
                }
                if !crate::core::starts_step(record.kind) {
                    return Err(Stopped::Failed(format!(
                        "journal record {} of kind {:#06x} outside any step",
                        record.sequence, record.kind
                    )));
                }
                self.held_payload.clear();
                self.held_payload.extend_from_slice(record.payload);
                self.held = Some((record.sequence, record.kind));
            }
            let (sequence, kind) = self.held.expect("held above");
            if sequence > self.from_core.released.load(Ordering::Acquire) {
                break;
            }
            self.held = None;
            let mut sink = FollowSink {
                reader: &mut self.reader,
                first: Some((kind, &self.held_payload)),
                next: sequence,
                from_core: self.from_core,
                stopped: false,
            };
            let result =
                crate::core::apply_step(&mut self.machine, sequence, kind, &self.held_payload, &mut sink);
            let (next, stopped) = (sink.next, sink.stopped);
            match result {
                Ok(()) => {}
                Err(_) if stopped => return Err(Stopped::Asked),
                Err(e) => return Err(Stopped::Failed(e.to_string())),
            }
            if next == sequence {
                return Err(Stopped::Failed(format!("step {sequence} produced no record")));
            }
            self.applied = next - 1;
            self.state.applied.store(self.applied, Ordering::Relaxed);
        }
        Ok(self.applied - start)
    }

    /// Writes the replica's state as the checkpoint at `applied`; returns that sequence.
    fn write(&mut self) -> Result<u64, String> {
        let at = self.applied;
        if at == self.last_written {
            return Ok(at);
        }
        let blob = self.machine.checkpoint_blob();
        bourse_journal::checkpoint::write(&mut self.files, at, &blob, self.kept)
            .map_err(|e| e.to_string())?;
        self.last_written = at;
        Ok(at)
    }
}

fn unreadable(sequence: u64) -> String {
    format!(
        "journal record {sequence} is released but does not read back (a damaged record?) after {UNREADABLE_AFTER:?}"
    )
}

/// Compares what the replica produces with the journal, record by record, waiting for the rest of a step
/// that is not released yet.
struct FollowSink<'s> {
    reader: &'s mut Reader<MmapStorage>,
    /// The step's first record, already read (kind, payload).
    first: Option<(u16, &'s [u8])>,
    /// Journal sequence of the next record the replica produces.
    next: u64,
    from_core: &'s FromCore,
    stopped: bool,
}

impl RecordSink for FollowSink<'_> {
    fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError> {
        let sequence = self.next;
        let mut unreadable_since = None;
        let same = if let Some((k, p)) = self.first.take() {
            k == kind && p == payload
        } else {
            loop {
                if self.from_core.stop.load(Ordering::Acquire) {
                    self.stopped = true;
                    return Err(StepError::mismatch(sequence, "stopped"));
                }
                if self.from_core.released.load(Ordering::Acquire) < sequence {
                    std::thread::sleep(STEP_WAIT);
                    continue;
                }
                match self.reader.next_record()? {
                    Some(r) if r.sequence == sequence => break r.kind == kind && r.payload == payload,
                    Some(r) => {
                        return Err(StepError::mismatch(
                            r.sequence,
                            format!("journal record {} where {sequence} was next", r.sequence),
                        ));
                    }
                    // Released but not read back yet (a segment the reader has not mapped yet): look
                    // again, for a while.
                    None => {
                        let since = *unreadable_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= UNREADABLE_AFTER {
                            return Err(StepError::mismatch(sequence, unreadable(sequence)));
                        }
                        std::thread::sleep(STEP_WAIT);
                    }
                }
            }
        };
        if !same {
            return Err(StepError::mismatch(
                sequence,
                format!("the replica produced a record of kind {kind:#06x} that differs from the journal's"),
            ));
        }
        self.next += 1;
        Ok(sequence)
    }
    fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, _: &[u8]) {}
    fn itch(&mut self, _: u64, _: u64, _: &[u8]) {}
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::mpsc;

    use bourse_book::{Command, EnterOrder, MassCancelScope};
    use bourse_journal::{Journal, WriteMode};
    use bourse_protocol::fields::{Firm, Symbol, Token};
    use bourse_protocol::reason::CancelReason;

    use crate::config::Config;

    /// Appends a step's records to the journal, as the core's live sink does.
    struct JournalSink<'a>(&'a mut Journal<MmapStorage>);

    impl RecordSink for JournalSink<'_> {
        fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError> {
            crate::core::append_step_record(self.0, kind, payload)
        }
        fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, _: &[u8]) {}
        fn itch(&mut self, _: u64, _: u64, _: &[u8]) {}
    }

    /// A journal written by a machine, and the state the checkpointer starts from.
    struct Day {
        dir: PathBuf,
        config: Config,
        journal: Journal<MmapStorage>,
        machine: Machine,
        blob: Vec<u8>,
        at: u64,
        committed_at: (u64, u64),
        ts: u64,
    }

    impl Day {
        fn open(name: &str, batch_records_max: u32) -> Day {
            let dir = std::env::temp_dir().join(format!("bourse-checkpointer-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let mut config = Config::embedded_default();
            config.journal.directory = dir.clone();
            config.journal.segment_bytes = 1 << 20;
            let mut journal_config = config.journal_config();
            journal_config.batch_records_max = batch_records_max;
            let storage = MmapStorage::open_with(&dir, WriteMode::Mapped).expect("journal directory");
            let (mut journal, _) = Journal::open(storage, journal_config).expect("journal");
            let mut machine = Machine::new(config.engine_config());
            let (session, base) = crate::core::next_session_name(crate::core::unix_now_ns(), None);
            machine
                .start_day(session, base, 1, &mut JournalSink(&mut journal))
                .expect("start of day");
            journal.commit_batch().expect("commit");
            Day {
                blob: machine.checkpoint_blob(),
                at: journal.next_sequence() - 1,
                committed_at: journal.committed_at(),
                dir,
                config,
                journal,
                machine,
                ts: 1,
            }
        }

        fn step(&mut self, command: &Command) {
            self.ts += 1_000;
            self.machine
                .command(
                    self.ts,
                    *b"   ",
                    command,
                    0,
                    0,
                    &mut JournalSink(&mut self.journal),
                )
                .expect("step");
        }

        fn commit(&mut self) -> u64 {
            self.journal.commit_batch().expect("commit");
            self.journal.next_sequence() - 1
        }

        /// Two logins trading: `n` orders, every other one crossing the one before; a commit every 10.
        fn trade(&mut self, n: u32) -> u64 {
            for i in 0..n {
                let (login, side) = if i % 2 == 0 { (1, b'B') } else { (2, b'S') };
                self.step(&enter(login, &format!("T{i}"), side, 100 + i, 1_900_000));
                if i % 10 == 9 {
                    self.commit();
                }
            }
            self.commit()
        }

        fn spawn(&self, released: u64, every_events: u64) -> Checkpointer {
            Checkpointer::spawn(CheckpointerParams {
                blob: self.blob.clone(),
                engine_config: self.config.engine_config(),
                at: self.at,
                committed_at: self.committed_at,
                released,
                journal_dir: self.dir.clone(),
                every_events,
                every: Duration::ZERO,
                kept: 3,
                helper_cores: Vec::new(),
            })
            .expect("checkpointer")
        }

        /// The newest checkpoint: its sequence and the state hash of the machine it restores.
        fn newest(&mut self) -> Option<(u64, u64)> {
            let mut storage = MmapStorage::open_read_only(&self.dir).expect("read-only");
            bourse_journal::checkpoint::load_newest(&mut storage)
                .expect("load")
                .map(|c| {
                    let machine =
                        Machine::from_checkpoint(self.config.engine_config(), &c.blob).expect("restore");
                    (c.sequence, machine.engine.state_hash())
                })
        }
    }

    impl Drop for Day {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A day limit order for AAPL, capacity P (the daemon's unit tests share it).
    pub(crate) fn enter(login: u32, token: &str, side: u8, shares: u32, price: u32) -> Command {
        Command::Enter(EnterOrder {
            login,
            token: Token::new(token).expect("token"),
            side,
            shares,
            symbol: Symbol::new("AAPL").expect("symbol"),
            price,
            tif_s: 99_999,
            firm: Firm::BLANK,
            display: b'Y',
            min_qty: 0,
            capacity: b'P',
            cross_type: b'N',
        })
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn ask(checkpointer: &Checkpointer, at: u64) -> mpsc::Receiver<Result<u64, String>> {
        let (tx, rx) = mpsc::channel();
        checkpointer.request(
            at,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx
    }

    #[test]
    fn the_replica_follows_the_journal_when_a_checkpoint_is_due_and_restores_the_writers_state() {
        let mut day = Day::open("follows", 65_536);
        let first = day.trade(300);
        assert!(day.machine.engine.order_count() > 0);
        let checkpointer = day.spawn(first, 100);
        // Nothing is due yet (the core has reported no event): nothing is followed.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(checkpointer.state().applied.load(Ordering::Relaxed), day.at);
        // 1,000 engine events are past `every_events`: a checkpoint at what is released.
        checkpointer.release(first, 1_000);
        wait_for("the first checkpoint", || {
            checkpointer.state().written.load(Ordering::Relaxed) == first
        });
        assert_eq!(day.newest(), Some((first, day.machine.engine.state_hash())));
        let second = day.trade(100);
        checkpointer.release(second, 1_050);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            checkpointer.state().written.load(Ordering::Relaxed),
            first,
            "50 events: not due"
        );
        checkpointer.release(second, 1_100);
        wait_for("the second checkpoint", || {
            checkpointer.state().written.load(Ordering::Relaxed) == second
        });
        let mut checkpointer = checkpointer;
        checkpointer.stop();
        assert!(checkpointer.ended());
        assert!(!checkpointer.state().failed.load(Ordering::Relaxed));
        assert_eq!(day.newest(), Some((second, day.machine.engine.state_hash())));
        let mut storage = MmapStorage::open_read_only(&day.dir).expect("read-only");
        let kept = bourse_journal::checkpoint::list(&mut storage).expect("list");
        assert_eq!(kept, vec![first, second]);
    }

    #[test]
    fn nothing_past_the_released_sequence_is_followed_or_checkpointed() {
        let mut day = Day::open("released", 65_536);
        let middle = day.trade(40);
        let hash_middle = day.machine.engine.state_hash();
        let last = day.trade(40);
        let checkpointer = day.spawn(middle, 0);
        let first = ask(&checkpointer, middle);
        assert_eq!(first.recv_timeout(Duration::from_secs(20)), Ok(Ok(middle)));
        assert_eq!(day.newest(), Some((middle, hash_middle)));
        // Asked for more than is released: no answer until the core releases it.
        let second = ask(&checkpointer, last);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(checkpointer.state().applied.load(Ordering::Relaxed), middle);
        assert!(second.try_recv().is_err());
        checkpointer.release(last, 0);
        assert_eq!(second.recv_timeout(Duration::from_secs(20)), Ok(Ok(last)));
        assert_eq!(day.newest(), Some((last, day.machine.engine.state_hash())));
        // Dropped (a crash, or the core's own last checkpoint at shutdown): it stops, writes nothing more.
        drop(checkpointer);
        assert_eq!(day.newest().map(|(at, _)| at), Some(last));
    }

    #[test]
    fn a_step_bigger_than_a_batch_is_followed_as_its_batches_are_released() {
        let mut day = Day::open("big-step", 8);
        for i in 0..20 {
            day.step(&enter(1, &format!("R{i}"), b'B', 100, 1_890_000 - i * 100));
            day.commit();
        }
        let before = day.journal.next_sequence() - 1;
        day.step(&Command::MassCancel {
            scope: MassCancelScope::Login(1),
            reason: CancelReason::UserRequested,
        });
        // The journal committed the step's records 8 at a time on its own (full batches).
        let first_batch = day.journal.committed().released_up_to;
        assert_eq!((first_batch - before) % 8, 0);
        let last = day.commit();
        assert!(
            first_batch > before && last > first_batch,
            "the mass cancel spans batches"
        );
        let checkpointer = day.spawn(first_batch, 0);
        let answer = ask(&checkpointer, last);
        wait_for("the replica to reach the step", || {
            checkpointer.state().applied.load(Ordering::Relaxed) == before
        });
        // It has started the step and waits for the rest of it: the step is not counted as followed.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(checkpointer.state().applied.load(Ordering::Relaxed), before);
        assert!(answer.try_recv().is_err());
        checkpointer.release(last, 0);
        assert_eq!(answer.recv_timeout(Duration::from_secs(20)), Ok(Ok(last)));
        assert_eq!(day.machine.engine.order_count(), 0);
        assert_eq!(day.newest(), Some((last, day.machine.engine.state_hash())));
    }

    #[test]
    fn a_journal_that_disagrees_with_the_replica_stops_it_before_any_checkpoint() {
        let mut day = Day::open("damaged", 65_536);
        let last = day.trade(50);
        // Change one byte of the payload of a record that is not a step's first (an engine event or an
        // output) in the segment file.
        let target = {
            let mut reader =
                Reader::new(MmapStorage::open_read_only(&day.dir).expect("read-only")).expect("reader");
            reader.seek(day.at + 30).expect("seek");
            let mut found = None;
            while let Some(r) = reader.next_record().expect("read") {
                if !crate::core::starts_step(r.kind) {
                    found = Some((r.segment_id, r.offset));
                    break;
                }
            }
            found.expect("a record after a step's first")
        };
        let path = day.dir.join(format!("{:020}.seg", target.0));
        let at = target.1 + u64::from(bourse_journal::format::RECORD_HEADER_BYTES) + 2;
        {
            use std::io::{Read, Seek, SeekFrom, Write};
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("segment");
            let mut byte = [0u8];
            file.seek(SeekFrom::Start(at)).expect("seek");
            file.read_exact(&mut byte).expect("read");
            file.seek(SeekFrom::Start(at)).expect("seek");
            file.write_all(&[byte[0] ^ 0x10]).expect("write");
        }
        let checkpointer = day.spawn(last, 1);
        let answer = ask(&checkpointer, last);
        wait_for("the checkpointer to stop", || checkpointer.ended());
        assert!(checkpointer.state().failed.load(Ordering::Relaxed));
        assert_eq!(checkpointer.state().written.load(Ordering::Relaxed), 0);
        assert!(checkpointer.state().applied.load(Ordering::Relaxed) < last);
        assert!(matches!(answer.recv_timeout(Duration::from_secs(5)), Ok(Err(_))));
        // Asked again after it stopped: answered at once, with the reason.
        let again = ask(&checkpointer, last);
        assert!(matches!(again.recv_timeout(Duration::from_secs(5)), Ok(Err(_))));
        assert_eq!(day.newest(), None);
    }
}
