//! What stages publish for the admin endpoint: session rows, counters and latency histograms.
//!
//! Stages own their histograms and counters and record into them without allocation or locks. Every
//! [`PUBLISH_INTERVAL_NS`] (and never on the per-message path) a stage publishes its counters and hands
//! over what its histograms recorded since the last time ([`Shared::hand_over_histogram`]): in O(1), a swap
//! with an empty histogram of the same bounds, under `try_lock`, so a stage never waits for the admin
//! thread and never copies (a copy of a histogram at bourse's bounds, 27,648 counts, held the pipeline
//! thread ~10 us). The admin thread merges what was handed over into each stage's total when it reads
//! ([`Shared::latency`]), after asking for one more hand-over so that the totals are current. The session
//! table (two strings per session) is built only when admin asks for it ([`Shared::sessions`] raises a
//! ticket that ingress answers on its next call), never on a timer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bourse_protocol::admin::{LatencyPoint, SessionInfo, StageLatency};
use hdrhistogram::Histogram;

/// How often a stage copies its numbers here, nanoseconds.
pub const PUBLISH_INTERVAL_NS: u64 = 100_000_000;
/// How long [`Shared::latency`] waits for the stages' next hand-over.
pub const LATENCY_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
/// Largest latency a histogram holds, nanoseconds (larger samples are clamped to it).
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// Stage names, in the order `latency` lists them. The `work_*` ones are the runner's (one `do_work` call
/// of that agent that did work, see [`crate::agent::BusyMeter`]).
pub const STAGES: [&str; 8] = [
    "ingress",
    "matching",
    "journal",
    "market_data",
    "wire_to_wire",
    "work_core",
    "work_ingress",
    "work_market_data",
];

/// The `work_*` stage of a pipeline agent (by [`crate::agent::Agent::name`]), if it is one.
pub fn work_stage(agent: &str) -> Option<&'static str> {
    match agent {
        "core" => Some("work_core"),
        "ingress" => Some("work_ingress"),
        "market_data" => Some("work_market_data"),
        _ => None,
    }
}

/// A latency histogram with bourse's bounds (1 ns .. [`LATENCY_NS_MAX`], 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("static histogram bounds are valid")
}

/// Records `ns` into `h` without allocating (clamped into the bounds).
#[inline]
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.clamp(1, LATENCY_NS_MAX));
}

/// One stage's latency as admin reads it: the total since start, and the stage's last hand-over, merged
/// into the total by the reader.
struct StageHistograms {
    total: Histogram<u64>,
    /// Empty unless `handed_over`; a stage swaps its histogram with it.
    pending: Histogram<u64>,
    handed_over: bool,
    /// Hand-overs so far (the reader waits for the next one).
    hand_overs: u64,
}

impl StageHistograms {
    fn new() -> StageHistograms {
        StageHistograms {
            total: latency_histogram(),
            pending: latency_histogram(),
            handed_over: false,
            hand_overs: 0,
        }
    }

    /// Adds the pending hand-over to the total (the reader's side: the copy is paid here).
    fn merge(&mut self) {
        if self.handed_over {
            let _ = self.total.add(&self.pending);
            self.pending.reset();
            self.handed_over = false;
        }
    }
}

/// Numbers shared between the stages and the admin thread.
pub struct Shared {
    sessions: Mutex<Vec<SessionInfo>>,
    /// Session tables asked for by admin (a counter), and the last request the published table answers.
    sessions_asked: AtomicU64,
    sessions_answered: AtomicU64,
    /// One per stage of [`STAGES`].
    histograms: Vec<Mutex<StageHistograms>>,
    /// Logged-in order-entry sessions (ingress writes).
    pub sessions_logged_in: AtomicU64,
    /// Live orders in the engine (core writes).
    pub orders: AtomicU64,
    /// Engine events journaled since start (core writes).
    pub events_total: AtomicU64,
    /// Sequence number of the last journaled record (core writes).
    pub journal_sequence: AtomicU64,
    /// Last MoldUDP64 sequence number released to the feed (core writes).
    pub feed_sequence: AtomicU64,
    /// Operator-disabled logins (index = login id), for the stages that check logins: ingress writes it
    /// (start-up state and every enable/disable it carries out), the snapshot server reads it.
    disabled_logins: Mutex<Vec<bool>>,
    /// Ring fill, in [`STAGES`]-independent order: commands, replies, market data (writers: consumers).
    pub ring_len: [AtomicU64; 3],
    /// Busy time of the pipeline threads (the runner writes).
    pub busy: crate::agent::BusyMeter,
    /// What the checkpointer publishes (the core sets it at start).
    checkpointer: Mutex<Option<Arc<crate::checkpointer::CheckpointerState>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("sessions_logged_in", &self.sessions_logged_in)
            .field("journal_sequence", &self.journal_sequence)
            .finish_non_exhaustive()
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

impl Shared {
    /// Empty numbers, one histogram slot per stage in [`STAGES`].
    pub fn new() -> Shared {
        Shared {
            sessions: Mutex::new(Vec::new()),
            sessions_asked: AtomicU64::new(0),
            sessions_answered: AtomicU64::new(0),
            histograms: STAGES
                .iter()
                .map(|_| Mutex::new(StageHistograms::new()))
                .collect(),
            sessions_logged_in: AtomicU64::new(0),
            orders: AtomicU64::new(0),
            events_total: AtomicU64::new(0),
            journal_sequence: AtomicU64::new(0),
            feed_sequence: AtomicU64::new(0),
            ring_len: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            disabled_logins: Mutex::new(Vec::new()),
            busy: crate::agent::BusyMeter::new(),
            checkpointer: Mutex::new(None),
        }
    }

    /// Where the checkpointer publishes its progress.
    pub fn set_checkpointer(&self, state: Arc<crate::checkpointer::CheckpointerState>) {
        *self.checkpointer.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    /// The checkpointer's progress: (journal sequence its replica reached, newest checkpoint it wrote,
    /// whether it stopped on a failure); zeros before the core starts.
    pub fn checkpointer(&self) -> (u64, u64, bool) {
        let state = self.checkpointer.lock().unwrap_or_else(|e| e.into_inner());
        state.as_ref().map_or((0, 0, false), |s| {
            (
                s.applied.load(Ordering::Relaxed),
                s.written.load(Ordering::Relaxed),
                s.failed.load(Ordering::Relaxed),
            )
        })
    }

    /// Marks login `login` disabled (true) or enabled.
    pub fn set_login_disabled(&self, login: u32, disabled: bool) {
        let mut flags = self.disabled_logins.lock().unwrap_or_else(|e| e.into_inner());
        let index = login as usize;
        if flags.len() <= index {
            flags.resize(index + 1, false);
        }
        flags[index] = disabled;
    }

    /// Whether the operator disabled login `login`.
    pub fn is_login_disabled(&self, login: u32) -> bool {
        let flags = self.disabled_logins.lock().unwrap_or_else(|e| e.into_inner());
        flags.get(login as usize).copied().unwrap_or(false)
    }

    /// The request ticket ingress should answer with a fresh session table, if admin asked for one
    /// (one atomic load when nobody asked).
    pub fn sessions_wanted(&self) -> Option<u64> {
        let asked = self.sessions_asked.load(Ordering::Acquire);
        (asked != self.sessions_answered.load(Ordering::Acquire)).then_some(asked)
    }

    /// Replaces the session table (ingress, when [`Shared::sessions_wanted`]) and marks request
    /// `ticket` answered. Skipped if the lock is busy (it is asked again next time).
    pub fn publish_sessions(&self, ticket: u64, rows: impl FnOnce(&mut Vec<SessionInfo>)) {
        if let Ok(mut guard) = self.sessions.try_lock() {
            guard.clear();
            rows(&mut guard);
            self.sessions_answered.store(ticket, Ordering::Release);
        }
    }

    /// Asks ingress for a fresh session table and waits for it (at most `wait`); then the table (the
    /// last one published if ingress did not answer in time, e.g. while it is stopped).
    pub fn sessions(&self, wait: std::time::Duration) -> Vec<SessionInfo> {
        let ticket = self.sessions_asked.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = std::time::Instant::now() + wait;
        while self.sessions_answered.load(Ordering::Acquire) < ticket && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.sessions.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Hands over what `h` recorded since its last hand-over (stage name from [`STAGES`]), in O(1): `h` is
    /// swapped with the stage's empty buffer and comes back empty. Skipped, with `h` keeping its samples
    /// for the next time, while the previous hand-over is not merged yet or the lock is busy. `h` must
    /// have bourse's bounds ([`latency_histogram`]).
    pub fn hand_over_histogram(&self, stage: &str, h: &mut Histogram<u64>) {
        let Some(index) = STAGES.iter().position(|s| *s == stage) else {
            debug_assert!(false, "unknown stage {stage}");
            return;
        };
        if let Ok(mut slot) = self.histograms[index].try_lock()
            && !slot.handed_over
        {
            std::mem::swap(&mut slot.pending, h);
            slot.handed_over = true;
            slot.hand_overs += 1;
        }
    }

    /// Percentiles and distribution of every stage since start, for the admin `latency` reply. Merges
    /// what the stages handed over, then waits (at most [`LATENCY_WAIT`]) for every stage that has handed
    /// over before to do so once more, so that the figures are at most one interval old; a stage that
    /// has stopped is read as it last handed over.
    pub fn latency(&self) -> Vec<StageLatency> {
        let lock = |m: &Mutex<StageHistograms>| -> (bool, u64) {
            let mut slot = m.lock().unwrap_or_else(|e| e.into_inner());
            slot.merge();
            (slot.hand_overs > 0, slot.hand_overs)
        };
        let asked: Vec<(bool, u64)> = self.histograms.iter().map(lock).collect();
        let deadline = std::time::Instant::now() + LATENCY_WAIT;
        while std::time::Instant::now() < deadline {
            let current = self.histograms.iter().zip(&asked).all(|(m, (active, at))| {
                !active || m.lock().unwrap_or_else(|e| e.into_inner()).hand_overs > *at
            });
            if current {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let totals: Vec<Histogram<u64>> = self
            .histograms
            .iter()
            .map(|m| {
                let mut slot = m.lock().unwrap_or_else(|e| e.into_inner());
                slot.merge();
                slot.total.clone()
            })
            .collect();
        STAGES
            .iter()
            .zip(totals.iter())
            .map(|(stage, h)| StageLatency {
                stage: (*stage).to_string(),
                count: h.len(),
                p50_ns: h.value_at_quantile(0.50),
                p90_ns: h.value_at_quantile(0.90),
                p99_ns: h.value_at_quantile(0.99),
                p999_ns: h.value_at_quantile(0.999),
                max_ns: h.max(),
                points: h
                    .iter_quantiles(5)
                    .map(|v| LatencyPoint {
                        quantile_ppm: (v.quantile_iterated_to() * 1_000_000.0) as u32,
                        value_ns: v.value_iterated_to(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_over_histograms_add_up_and_reads_wait_for_the_next_hand_over() {
        let shared = Arc::new(Shared::new());
        let mut h = latency_histogram();
        for ns in 1..=1000u64 {
            record(&mut h, ns * 1000);
        }
        shared.hand_over_histogram("wire_to_wire", &mut h);
        assert!(
            h.is_empty(),
            "the samples moved in O(1), the stage got an empty histogram back"
        );
        // Not merged yet: a second hand-over is refused and the stage keeps its samples.
        record(&mut h, 7_000_000);
        shared.hand_over_histogram("wire_to_wire", &mut h);
        assert_eq!(h.len(), 1);
        // A reader merges, then waits for the stage's next hand-over (here from another thread, as a stage
        // publishes on its own schedule), so the sample kept above is counted too.
        let stage = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                shared.hand_over_histogram("wire_to_wire", &mut h);
                h
            })
        };
        let rows = shared.latency();
        assert!(stage.join().unwrap().is_empty());
        let w2w = rows.iter().find(|r| r.stage == "wire_to_wire").unwrap();
        assert_eq!(w2w.count, 1001);
        assert!(w2w.p50_ns >= 500_000 && w2w.p50_ns <= 502_000, "{}", w2w.p50_ns);
        assert!(w2w.max_ns >= 7_000_000);
        assert!(w2w.points.len() > 10);
        assert!(
            w2w.points
                .windows(2)
                .all(|p| p[0].quantile_ppm <= p[1].quantile_ppm)
        );
        // A stage that never handed over reads empty, and is not waited for; totals stay since start.
        let ingress = rows.iter().find(|r| r.stage == "ingress").unwrap();
        assert_eq!(ingress.count, 0);
        let mut more = latency_histogram();
        record(&mut more, 1_000);
        shared.hand_over_histogram("wire_to_wire", &mut more);
        let again = shared.latency();
        assert_eq!(
            again.iter().find(|r| r.stage == "wire_to_wire").unwrap().count,
            1002
        );
    }
}
