//! What stages publish for the admin endpoint: session rows, counters and latency histograms.
//!
//! Stages own their histograms and counters and record into them without allocation or locks. Every
//! [`PUBLISH_INTERVAL_NS`] (and never on the per-message path) a stage copies them here with
//! `try_lock`: a stage never waits for the admin thread; if the lock is busy it publishes next time.
//! Copying a histogram into a slot of the same bounds (`reset` + `add`) allocates nothing. The session
//! table (two strings per session) is built only when admin asks for it ([`Shared::sessions`] raises a
//! ticket that ingress answers on its next call), never on a timer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bourse_protocol::admin::{LatencyPoint, SessionInfo, StageLatency};
use hdrhistogram::Histogram;

/// How often a stage copies its numbers here, nanoseconds.
pub const PUBLISH_INTERVAL_NS: u64 = 100_000_000;
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

/// Numbers shared between the stages and the admin thread.
pub struct Shared {
    sessions: Mutex<Vec<SessionInfo>>,
    /// Session tables asked for by admin (a counter), and the last request the published table answers.
    sessions_asked: AtomicU64,
    sessions_answered: AtomicU64,
    histograms: Mutex<Vec<Histogram<u64>>>,
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
            histograms: Mutex::new(STAGES.iter().map(|_| latency_histogram()).collect()),
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

    /// Copies a stage's histogram (stage name from [`STAGES`]). Skipped if the lock is busy.
    pub fn publish_histogram(&self, stage: &str, h: &Histogram<u64>) {
        let Some(index) = STAGES.iter().position(|s| *s == stage) else {
            debug_assert!(false, "unknown stage {stage}");
            return;
        };
        if let Ok(mut guard) = self.histograms.try_lock() {
            let slot = &mut guard[index];
            slot.reset();
            let _ = slot.add(h);
        }
    }

    /// Percentiles and distribution of every stage, for the admin `latency` reply.
    pub fn latency(&self) -> Vec<StageLatency> {
        let Ok(guard) = self.histograms.lock() else {
            return Vec::new();
        };
        STAGES
            .iter()
            .zip(guard.iter())
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
    fn published_histogram_reads_back() {
        let shared = Shared::new();
        let mut h = latency_histogram();
        for ns in 1..=1000u64 {
            record(&mut h, ns * 1000);
        }
        shared.publish_histogram("wire_to_wire", &h);
        let rows = shared.latency();
        let w2w = rows.iter().find(|r| r.stage == "wire_to_wire").unwrap();
        assert_eq!(w2w.count, 1000);
        assert!(w2w.p50_ns >= 499_000 && w2w.p50_ns <= 501_000, "{}", w2w.p50_ns);
        assert!(w2w.points.len() > 10);
        assert!(
            w2w.points
                .windows(2)
                .all(|p| p[0].quantile_ppm <= p[1].quantile_ppm)
        );
        let ingress = rows.iter().find(|r| r.stage == "ingress").unwrap();
        assert_eq!(ingress.count, 0);
    }
}
