//! The core stage: sequencer + matching + journal (group commit) in one agent, and start-up recovery.
//!
//! Per `do_work`: release what the journal already holds, take a bounded number of operator jobs and
//! session requests, stamp each with the day's clock (the sequencer), apply it through the [`Machine`]
//! (matching and the event -> OUCH/ITCH mapping), append every record, commit the batch (one sync under
//! `batch`), then push the outputs to the session and feed rings. Nothing reaches a ring before the
//! journal has released its record: a crash can lose requests that were never answered, never an
//! answered one.
//!
//! Why one agent and not three (sequencer, matching, journal) as DESIGN.md draws it: on the 2-core
//! machines we run on, every hop between stages is a cache-line transfer and a ring slot for no gain;
//! group commit comes for free (requests that arrive during a sync wait in the ring and form the next
//! batch). docs/ARCHITECTURE.md records the measurement-free reasoning and what would change it.
//!
//! Back-pressure: if the session or feed ring is full, outputs wait in a pending queue and no new
//! request is taken until it drains; requests then wait in their ring, and ingress stops reading.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{SystemTime, UNIX_EPOCH};

use bourse_book::{Command, Event, MassCancelScope, Side};
use bourse_journal::{Journal, MmapStorage, ReplayError, SyncPolicy};
use bourse_protocol::admin::{AdminErrorCode, AdminReply, AdminRequest, DepthLevel, DepthReply};
use bourse_protocol::fields::{Alpha, Firm, Symbol};
use bourse_protocol::journaled as j;
use bourse_protocol::reason::CancelReason;
use hdrhistogram::Histogram;

use crate::agent::Agent;
use crate::checkpointer::{Checkpointer, CheckpointerParams};
use crate::config::Config;
use crate::cycles::CycleClock;
use crate::machine::{Machine, RecordSink, StepError, StepFailure};
use crate::msg::{
    ITCH_LEN_MAX, Lifecycle, OUCH_OUT_LEN_MAX, Request, RequestBody, SessionName, ToFeed, ToSession,
};
use crate::ring::{Consumer, Producer};
use crate::stats::{self, Shared};

/// Requests taken per `do_work` (one journal batch at most this many commands).
pub const REQUESTS_PER_WORK_MAX: usize = 1024;
/// Smallest capacity of the queues of outputs waiting for their journal commit (allocated at start).
pub const PENDING_CAPACITY_MIN: usize = 1 << 16;
const NO_ECHO: [u8; 3] = *b"   ";

/// An operator request for the core, with where to answer.
pub struct AdminJob {
    /// The request (only those that touch the engine or the journal reach the core).
    pub request: AdminRequest,
    /// Where the reply goes.
    pub reply: Sender<AdminReply>,
}

/// Everything the core needs.
pub struct CoreParams {
    /// What recovery and start-up left: the machine, the journal writer, and the outputs start-up
    /// journaled (start of day, cancel-on-disconnect), released first.
    pub recovered: Recovered,
    /// The daemon config.
    pub config: Config,
    /// Session requests.
    pub requests: Consumer<Request>,
    /// Released OUCH and session control.
    pub to_sessions: Producer<ToSession>,
    /// Released ITCH.
    pub to_feed: Producer<ToFeed>,
    /// Operator jobs.
    pub admin: Receiver<AdminJob>,
    /// Published numbers.
    pub shared: Arc<Shared>,
    /// Shutdown handshake.
    pub lifecycle: Arc<Lifecycle>,
    /// Cores of the helper threads (the checkpointer's); empty: not pinned.
    pub helper_cores: Vec<usize>,
}

/// A reply to an operator job, sent once its records are released.
struct PendingReply {
    journal_seq: u64,
    reply: Sender<AdminReply>,
    message: AdminReply,
}

/// The core agent.
pub struct Core {
    machine: Machine,
    journal: Journal<MmapStorage>,
    /// `None` only inside [`Core::take_requests`], which works on the requests where they lie in the
    /// ring (see [`crate::ring::Consumer::peek_at`]) while the rest of the core is borrowed mutably.
    requests: Option<Consumer<Request>>,
    to_sessions: Producer<ToSession>,
    to_feed: Producer<ToFeed>,
    admin: Receiver<AdminJob>,
    shared: Arc<Shared>,
    lifecycle: Arc<Lifecycle>,
    cod: Vec<bool>,
    usernames: Vec<String>,
    pending_sessions: VecDeque<(u64, ToSession)>,
    pending_feed: VecDeque<(u64, ToFeed)>,
    pending_replies: VecDeque<PendingReply>,
    pending_max: usize,
    appended: bool,
    released_up_to: u64,
    feed_released: u64,
    every_batches: bool,
    /// Outputs are staged in the rings (see [`LiveSink`]): the policy releases a batch at its commit.
    stage: bool,
    /// The journal sequence of the last output staged in each ring, and the feed sequence of the last
    /// staged ITCH message (0: none yet).
    staged_sessions_seq: u64,
    staged_feed: StagedFeed,
    /// Follows the released journal with a replica and writes the checkpoints (see [`crate::checkpointer`]).
    checkpointer: Checkpointer,
    /// The journal's directory: a bust reads its trade back from there ([`crate::trades`]).
    journal_dir: std::path::PathBuf,
    last_publish_ns: u64,
    events_total: u64,
    h_matching: Histogram<u64>,
    h_journal: Histogram<u64>,
    closed: bool,
    flush_owed: bool,
    /// The sequencer clock: anchored once per `do_work`, read by cycle counter per command.
    clock: CycleClock,
    clock_anchor_day_ns: u64,
    /// The last command's stamp, nanoseconds since the anchor (ends its matching sample).
    clock_last: Option<u64>,
    clock_anchored: bool,
}

/// What the last ITCH message staged in the feed ring was.
#[derive(Clone, Copy, Debug, Default)]
struct StagedFeed {
    journal_seq: u64,
    feed_seq: u64,
}

/// The live sink: journal append, outputs built for release. Under a policy that releases each batch at
/// its commit (`none`, `batch`) an output is built in place in its ring, staged (unseen by the consumer),
/// and the core publishes it after the commit: no queue, no second copy. Outputs wait in the pending
/// queues instead when a ring is full (and after that, until the queue is empty again, so that order
/// holds) and under `every_batches`, whose release comes at a later sync.
struct LiveSink<'a> {
    journal: &'a mut Journal<MmapStorage>,
    sessions: &'a mut VecDeque<(u64, ToSession)>,
    feed: &'a mut VecDeque<(u64, ToFeed)>,
    appended: &'a mut bool,
    /// `None`: every output is queued (start-up, `every_batches`).
    staging: Option<Staging<'a>>,
}

/// The rings a [`LiveSink`] stages outputs in, and where it notes the last ones staged.
struct Staging<'a> {
    to_sessions: &'a mut Producer<ToSession>,
    to_feed: &'a mut Producer<ToFeed>,
    sessions_seq: &'a mut u64,
    feed: &'a mut StagedFeed,
}

/// Appends one record of a step to the open batch, committing the batch first when it is full: a step
/// bigger than a batch (a mass cancel of a huge book) spans two batches, and recovery re-checks them all
/// the same. The live sink's append (public for the in-process pipeline bench).
///
/// # Errors
/// The journal's (a poisoned writer, ENOSPC).
#[inline]
pub fn append_step_record<S: bourse_journal::Storage>(
    journal: &mut Journal<S>,
    kind: u16,
    payload: &[u8],
) -> Result<u64, StepError> {
    match journal.append(kind, payload) {
        Err(bourse_journal::JournalError::BatchFull { .. }) => {
            journal.commit_batch()?;
            Ok(journal.append(kind, payload)?)
        }
        other => Ok(other?),
    }
}

impl RecordSink for LiveSink<'_> {
    fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError> {
        *self.appended = true;
        append_step_record(self.journal, kind, payload)
    }
    // Both build the record in the queue's slot and copy the message bytes there: a message built on
    // the stack and then moved was read back with wide loads right after the narrower stores of its
    // copy, a store-forwarding stall that showed as ~6 % of the pipeline thread at saturation.
    fn ouch(&mut self, login: u32, session_seq: u64, journal_seq: u64, recv_ns: u64, bytes: &[u8]) {
        let record = || ToSession::Ouch {
            login,
            session_seq,
            journal_seq,
            recv_ns,
            len: bytes.len() as u8,
            bytes: [0; OUCH_OUT_LEN_MAX],
        };
        if let Some(staging) = self.staging.as_mut()
            && self.sessions.is_empty()
            && let Ok(ToSession::Ouch { bytes: slot, .. }) = staging.to_sessions.stage(record())
        {
            slot[..bytes.len()].copy_from_slice(bytes);
            *staging.sessions_seq = journal_seq;
            return;
        }
        self.sessions.push_back((journal_seq, record()));
        if let Some((_, ToSession::Ouch { bytes: slot, .. })) = self.sessions.back_mut() {
            slot[..bytes.len()].copy_from_slice(bytes);
        }
    }
    fn itch(&mut self, feed_seq: u64, journal_seq: u64, bytes: &[u8]) {
        let record = || ToFeed::Message {
            feed_seq,
            journal_seq,
            len: bytes.len() as u8,
            bytes: [0; ITCH_LEN_MAX],
        };
        if let Some(staging) = self.staging.as_mut()
            && self.feed.is_empty()
            && let Ok(ToFeed::Message { bytes: slot, .. }) = staging.to_feed.stage(record())
        {
            slot[..bytes.len()].copy_from_slice(bytes);
            *staging.feed = StagedFeed {
                journal_seq,
                feed_seq,
            };
            return;
        }
        self.feed.push_back((journal_seq, record()));
        if let Some((_, ToFeed::Message { bytes: slot, .. })) = self.feed.back_mut() {
            slot[..bytes.len()].copy_from_slice(bytes);
        }
    }
}

/// The live sink's staging when `stage` is on (the core's fields, borrowed apart from the rest).
fn staging<'a>(
    stage: bool,
    to_sessions: &'a mut Producer<ToSession>,
    to_feed: &'a mut Producer<ToFeed>,
    sessions_seq: &'a mut u64,
    feed: &'a mut StagedFeed,
) -> Option<Staging<'a>> {
    stage.then_some(Staging {
        to_sessions,
        to_feed,
        sessions_seq,
        feed,
    })
}

/// Prints why and exits: the journal failed, so nothing more may be acknowledged (fail-stop).
fn fatal(what: &str) -> ! {
    eprintln!("boursed: FATAL: {what}; stopping without acknowledging anything more");
    std::process::exit(70);
}

/// Unix time now, nanoseconds.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Core {
    /// A core over a recovered machine and journal (a day must be open or ended: see [`start_up`]).
    pub fn new(p: CoreParams) -> Core {
        let Recovered {
            machine,
            journal,
            startup_sessions,
            startup_feed,
            ..
        } = p.recovered;
        let cod = std::iter::once(false)
            .chain(p.config.logins.iter().map(|l| l.cancel_on_disconnect))
            .collect();
        let usernames = p.config.logins.iter().map(|l| l.username.clone()).collect();
        let released_up_to = journal.committed().released_up_to;
        // The replica starts from this state; recovery and start-up left no batch open.
        let at = journal.next_sequence() - 1;
        debug_assert_eq!(
            journal.position(),
            journal.committed_at(),
            "no open batch at start"
        );
        let checkpointer = Checkpointer::spawn(CheckpointerParams {
            blob: machine.checkpoint_blob(),
            engine_config: p.config.engine_config(),
            at,
            committed_at: journal.committed_at(),
            released: released_up_to,
            journal_dir: p.config.journal.directory.clone(),
            every_events: p.config.journal.checkpoint_every_events,
            every: std::time::Duration::from_secs(p.config.journal.checkpoint_every_s),
            kept: p.config.journal.checkpoints_kept,
            helper_cores: p.helper_cores.clone(),
        })
        .unwrap_or_else(|e| fatal(&format!("checkpointer thread: {e}")));
        p.shared.set_checkpointer(Arc::clone(checkpointer.state()));
        let every_batches = matches!(journal.config().sync_policy, SyncPolicy::EveryBatches(_));
        let pending_max = p.to_sessions.capacity().max(p.to_feed.capacity());
        let feed_released = machine.day.as_ref().map_or(0, |d| d.next_feed_seq - 1);
        p.shared.feed_sequence.store(feed_released, Ordering::Relaxed);
        // Room beyond the back-pressure threshold: one `do_work` may overshoot it by the outputs of up to
        // REQUESTS_PER_WORK_MAX requests. Only the front of the buffer is warm (see `release`).
        let pending_capacity = pending_max.max(PENDING_CAPACITY_MIN);
        let mut pending_sessions = VecDeque::with_capacity(pending_capacity);
        pending_sessions.extend(startup_sessions);
        let mut pending_feed = VecDeque::with_capacity(pending_capacity);
        pending_feed.extend(startup_feed);
        let feed_released = pending_feed.front().map_or(feed_released, |(_, f)| match f {
            ToFeed::Message { feed_seq, .. } => feed_seq - 1,
            _ => feed_released,
        });
        Core {
            machine,
            journal,
            requests: Some(p.requests),
            to_sessions: p.to_sessions,
            to_feed: p.to_feed,
            admin: p.admin,
            shared: p.shared,
            lifecycle: p.lifecycle,
            cod,
            usernames,
            pending_sessions,
            pending_feed,
            pending_replies: VecDeque::new(),
            pending_max,
            appended: false,
            released_up_to,
            feed_released,
            every_batches,
            stage: !every_batches,
            staged_sessions_seq: 0,
            staged_feed: StagedFeed::default(),
            checkpointer,
            journal_dir: p.config.journal.directory.clone(),
            last_publish_ns: 0,
            events_total: 0,
            h_matching: stats::latency_histogram(),
            h_journal: stats::latency_histogram(),
            closed: false,
            flush_owed: false,
            clock: CycleClock::new(),
            clock_anchor_day_ns: 0,
            clock_last: None,
            clock_anchored: false,
        }
    }

    /// The engine's state hash (tests: compare with a recovered engine).
    pub fn state_hash(&self) -> u64 {
        self.machine.engine.state_hash()
    }

    /// Live orders in the engine.
    pub fn order_count(&self) -> usize {
        self.machine.engine.order_count()
    }

    fn day_ns(&self) -> u64 {
        let day = self.machine.day.as_ref().expect("a day exists after start-up");
        unix_now_ns()
            .saturating_sub(day.day_base_unix_ns)
            .max(day.last_timestamp_ns)
    }

    /// Anchors the sequencer clock: one monotonic and one wall-clock read per `do_work`; commands are
    /// stamped relative to it by cycle counter ([`CycleClock`]; one counter read per command, which
    /// also ends the previous command's matching sample).
    fn anchor_clock(&mut self) {
        let Some(day) = self.machine.day.as_ref() else {
            return;
        };
        self.clock.anchor();
        self.clock_anchor_day_ns = unix_now_ns().saturating_sub(day.day_base_unix_ns);
        self.clock_last = None;
    }

    /// The timestamp of the command about to be applied, never below the last one given, and the
    /// stamp's nanoseconds since the anchor.
    fn stamp(&mut self) -> (u64, u64) {
        if !self.clock_anchored {
            self.anchor_clock();
            self.clock_anchored = true;
        }
        let since = self.clock.since_anchor_ns();
        if let Some(previous) = self.clock_last.take() {
            stats::record(&mut self.h_matching, since.saturating_sub(previous));
        }
        let last = self.machine.day.as_ref().map_or(0, |d| d.last_timestamp_ns);
        ((self.clock_anchor_day_ns + since).max(last), since)
    }

    /// Ends the matching sample of the last command of a batch.
    fn close_sample(&mut self) {
        if let Some(previous) = self.clock_last.take() {
            let since = self.clock.since_anchor_ns();
            stats::record(&mut self.h_matching, since.saturating_sub(previous));
        }
    }

    /// Sequences, matches and journals one command; returns the journal sequence of its `KIND_COMMAND`
    /// record (what admin replies name, and wait for).
    fn apply(&mut self, command: &Command, echo: [u8; 3], requester: u32, recv_ns: u64) -> u64 {
        let (ts, start) = self.stamp();
        let first = self.journal.next_sequence();
        let mut sink = LiveSink {
            journal: &mut self.journal,
            sessions: &mut self.pending_sessions,
            feed: &mut self.pending_feed,
            appended: &mut self.appended,
            staging: staging(
                self.stage,
                &mut self.to_sessions,
                &mut self.to_feed,
                &mut self.staged_sessions_seq,
                &mut self.staged_feed,
            ),
        };
        if let Err(e) = self
            .machine
            .command(ts, echo, command, requester, recv_ns, &mut sink)
        {
            fatal(&e.to_string());
        }
        self.events_total += self.machine.last_events().len() as u64;
        self.clock_last = Some(start);
        first
    }

    fn requests(&self) -> &Consumer<Request> {
        self.requests
            .as_ref()
            .expect("the request ring is back after every take")
    }

    /// Applies up to [`REQUESTS_PER_WORK_MAX`] requests where they lie in the ring (no copy through the
    /// stack), each slot handed back to ingress once applied.
    fn take_requests(&mut self) -> usize {
        let mut requests = self
            .requests
            .take()
            .expect("the request ring is back after every take");
        let mut taken = 0;
        while taken < REQUESTS_PER_WORK_MAX {
            let Some(request) = requests.peek_at(0) else {
                break;
            };
            // Two commands of lookahead (see `prefetch_commands`), so that the next orders' cache misses
            // overlap this one's work: on the nominal load mix each live-index read was a miss worth
            // 4-10 % of the pipeline thread, and the arena slot it led to another 5 %.
            let command_at = |i| match requests.peek_at(i) {
                Some(Request {
                    body: RequestBody::Order(command),
                    ..
                }) => Some(command),
                _ => None,
            };
            prefetch_commands(&self.machine.engine, command_at(1), command_at(2));
            self.handle_request(request);
            requests.skip();
            taken += 1;
        }
        self.requests = Some(requests);
        taken
    }

    fn handle_request(&mut self, request: &Request) {
        let login = request.login;
        match &request.body {
            RequestBody::Order(command) => {
                self.apply(command, request.echo, login, request.recv_ns);
            }
            RequestBody::Throttled { token } => {
                self.apply(
                    &Command::Throttled { login, token: *token },
                    NO_ECHO,
                    login,
                    request.recv_ns,
                );
            }
            RequestBody::EndOfDayBarrier => {
                let last = self.journal.next_sequence() - 1;
                self.pending_sessions
                    .push_back((last, ToSession::EndOfDayDrained));
            }
            RequestBody::SessionEnded => {
                if self.cod.get(login as usize).copied().unwrap_or(false) {
                    let command = Command::MassCancel {
                        scope: MassCancelScope::Login(login),
                        reason: CancelReason::LoggedOff,
                    };
                    self.apply(&command, NO_ECHO, 0, 0);
                }
            }
        }
    }

    fn login_id(&self, user: &str) -> Option<u32> {
        self.usernames
            .iter()
            .position(|u| u == user)
            .map(|i| i as u32 + 1)
    }

    fn error(code: AdminErrorCode, message: impl Into<String>) -> AdminReply {
        AdminReply::Error {
            code,
            message: message.into(),
        }
    }

    fn done(request: &AdminRequest, sequence: Option<u64>, message: impl Into<String>) -> AdminReply {
        let name = serde_json::to_value(request)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        AdminReply::Done {
            request: name,
            sequence,
            message: message.into(),
        }
    }

    /// Handles one operator job; returns the reply now, or `None` when it waits for release.
    fn handle_admin(&mut self, job: AdminJob) {
        let AdminJob { request, reply } = job;
        // After end of day a halt, resume or kill switch publishes nothing: it is the state the next
        // day starts with (the machine keeps both across days), which the reply says.
        let next_day = if self.machine.day_open() {
            ""
        } else {
            " (the day has ended: from the next day's start)"
        };
        let now = |r: AdminReply| {
            let _ = reply.send(r);
        };
        match &request {
            AdminRequest::Halt { symbol } | AdminRequest::Resume { symbol } => {
                let halt = matches!(request, AdminRequest::Halt { .. });
                let Some(sym) = Symbol::new(symbol) else {
                    return now(Self::error(
                        AdminErrorCode::UnknownSymbol,
                        format!("no instrument {symbol}"),
                    ));
                };
                match self.machine.engine.is_halted(&sym) {
                    None => now(Self::error(
                        AdminErrorCode::UnknownSymbol,
                        format!("no instrument {symbol}"),
                    )),
                    Some(h) if h == halt => now(Self::error(
                        AdminErrorCode::AlreadyInState,
                        format!("{symbol} is already {}", if halt { "halted" } else { "trading" }),
                    )),
                    Some(_) => {
                        let command = if halt {
                            Command::Halt { symbol: sym }
                        } else {
                            Command::Resume { symbol: sym }
                        };
                        let seq = self.apply(&command, NO_ECHO, 0, 0);
                        let message = Self::done(
                            &request,
                            Some(seq),
                            format!("{symbol} {}{next_day}", if halt { "halted" } else { "resumed" }),
                        );
                        self.wait_release(seq, reply, message);
                    }
                }
            }
            AdminRequest::Kill { firm } | AdminRequest::Unkill { firm } => {
                let on = matches!(request, AdminRequest::Kill { .. });
                let known = Firm::new(firm)
                    .filter(|f| self.machine.engine_config().firms.iter().any(|c| c.firm == *f));
                let Some(f) = known else {
                    return now(Self::error(
                        AdminErrorCode::UnknownFirm,
                        format!("no firm {firm}"),
                    ));
                };
                let seq = self.apply(&Command::KillSwitch { firm: f, on }, NO_ECHO, 0, 0);
                let canceled = self
                    .machine
                    .last_events()
                    .iter()
                    .filter(|e| matches!(e, Event::Canceled(_)))
                    .count();
                let changed = self
                    .machine
                    .last_events()
                    .iter()
                    .any(|e| matches!(e, Event::KillSwitch { .. }));
                let message = if !changed {
                    Self::error(
                        AdminErrorCode::AlreadyInState,
                        format!(
                            "kill switch of {firm} is already {}",
                            if on { "on" } else { "off" }
                        ),
                    )
                } else if on {
                    Self::done(
                        &request,
                        Some(seq),
                        format!("{firm} killed: {canceled} orders canceled, new orders blocked{next_day}"),
                    )
                } else {
                    Self::done(&request, Some(seq), format!("{firm} may trade again{next_day}"))
                };
                self.wait_release(seq, reply, message);
            }
            AdminRequest::Bust { .. } if !self.machine.day_open() => {
                // Its Broken Trade messages would follow the day's End of Session on the feed and in the
                // sessions' streams, which nobody can log in to any more.
                now(Self::error(
                    AdminErrorCode::Unavailable,
                    "the trading day has ended: a trade can be busted only before end of day",
                ));
            }
            AdminRequest::Bust { match_number } => {
                // The day's trades only: each day's engine numbers its trades from 1.
                let day_from = self.machine.day.as_ref().map_or(0, |d| d.day_start_journal_seq);
                let trade = match self.journal.last_committed_batch() {
                    Some(batch) => {
                        crate::trades::find_executed(&self.journal_dir, day_from, &batch, *match_number)
                    }
                    None => Ok(None),
                };
                let trade = match trade {
                    Ok(Some(trade)) => trade,
                    Ok(None) => {
                        return now(Self::error(
                            AdminErrorCode::UnknownMatch,
                            format!("no trade {match_number} in the journal"),
                        ));
                    }
                    Err(e) => {
                        return now(Self::error(
                            AdminErrorCode::Internal,
                            format!("reading trade {match_number} from the journal: {e}"),
                        ));
                    }
                };
                let seq = self.apply(
                    &Command::BustTrade {
                        match_number: *match_number,
                        symbol: trade.instrument.symbol,
                        resting: trade.resting,
                        taking: trade.taking,
                    },
                    NO_ECHO,
                    0,
                    0,
                );
                let busted = self
                    .machine
                    .last_events()
                    .iter()
                    .any(|e| matches!(e, Event::Broken { .. }));
                let message = if busted {
                    Self::done(&request, Some(seq), format!("trade {match_number} busted"))
                } else {
                    Self::error(
                        AdminErrorCode::UnknownMatch,
                        format!(
                            "trade {match_number} not busted (already busted, of an earlier day, or the day's \
                             engine.busts_max reached)"
                        ),
                    )
                };
                self.wait_release(seq, reply, message);
            }
            AdminRequest::EndOfDay => {
                if !self.machine.day_open() {
                    return now(Self::error(
                        AdminErrorCode::AlreadyInState,
                        "the trading day has already ended",
                    ));
                }
                let orders = self.machine.engine.order_count();
                let seq = self.apply(&Command::EndOfDay, NO_ECHO, 0, 0);
                let last = self.journal.next_sequence() - 1;
                self.pending_sessions.push_back((last, ToSession::EndOfDay));
                self.pending_feed.push_back((last, ToFeed::EndOfSession));
                let message = Self::done(
                    &request,
                    Some(seq),
                    format!("end of day: {orders} orders canceled, sessions ended"),
                );
                self.wait_release(last, reply, message);
            }
            AdminRequest::Logout { user }
            | AdminRequest::Disable { user }
            | AdminRequest::Enable { user } => {
                let Some(login) = self.login_id(user) else {
                    return now(Self::error(
                        AdminErrorCode::UnknownUser,
                        format!("no login {user}"),
                    ));
                };
                let (action, control) = match request {
                    AdminRequest::Logout { .. } => (j::ADMIN_LOGOUT, ToSession::ForceLogout { login }),
                    AdminRequest::Disable { .. } => (
                        j::ADMIN_DISABLE,
                        ToSession::SetEnabled {
                            login,
                            enabled: false,
                        },
                    ),
                    _ => (j::ADMIN_ENABLE, ToSession::SetEnabled { login, enabled: true }),
                };
                let mut sink = LiveSink {
                    journal: &mut self.journal,
                    sessions: &mut self.pending_sessions,
                    feed: &mut self.pending_feed,
                    appended: &mut self.appended,
                    staging: staging(
                        self.stage,
                        &mut self.to_sessions,
                        &mut self.to_feed,
                        &mut self.staged_sessions_seq,
                        &mut self.staged_feed,
                    ),
                };
                let seq = match self.machine.login_action(action, login, &mut sink) {
                    Ok(seq) => seq,
                    Err(e) => fatal(&e.to_string()),
                };
                self.pending_sessions.push_back((seq, control));
                let message = Self::done(&request, Some(seq), format!("{user}: done"));
                self.wait_release(seq, reply, message);
            }
            AdminRequest::Checkpoint => {
                // Written by the checkpointer's replica once it reaches `at`; answered then.
                let at = self.checkpoint_point();
                self.checkpointer.request(
                    at,
                    Box::new(move |result| {
                        let _ = reply.send(match result {
                            Ok(written) => Self::done(
                                &request,
                                None,
                                format!("checkpoint at journal sequence {written}"),
                            ),
                            Err(why) => Self::error(AdminErrorCode::Internal, format!("checkpoint: {why}")),
                        });
                    }),
                );
            }
            AdminRequest::Depth { symbol, levels } => {
                let reply_message = match Symbol::new(symbol)
                    .and_then(|s| self.machine.engine.is_halted(&s).map(|h| (s, h)))
                {
                    None => Self::error(AdminErrorCode::UnknownSymbol, format!("no instrument {symbol}")),
                    Some(_) if *levels == 0 || *levels > bourse_protocol::admin::DEPTH_LEVELS_MAX => {
                        Self::error(
                            AdminErrorCode::OutOfRange,
                            format!("levels must be 1..={}", bourse_protocol::admin::DEPTH_LEVELS_MAX),
                        )
                    }
                    Some((sym, halted)) => {
                        let side = |s: Side| {
                            self.machine
                                .engine
                                .depth(&sym, s)
                                .into_iter()
                                .take(*levels as usize)
                                .map(|(price, shares, orders)| DepthLevel {
                                    price,
                                    shares,
                                    orders,
                                })
                                .collect()
                        };
                        AdminReply::Depth(DepthReply {
                            symbol: symbol.clone(),
                            halted,
                            feed_sequence: self.machine.day.as_ref().map_or(0, |d| d.next_feed_seq - 1),
                            bids: side(Side::Buy),
                            asks: side(Side::Sell),
                        })
                    }
                };
                // Depth reads the engine after everything applied so far; answer once it is released, so
                // the feed has the same messages when the caller compares.
                let last = self.journal.next_sequence() - 1;
                self.wait_release(last, reply, reply_message);
            }
            _ => now(Self::error(AdminErrorCode::BadRequest, "not a core request")),
        }
    }

    fn wait_release(&mut self, journal_seq: u64, reply: Sender<AdminReply>, message: AdminReply) {
        self.pending_replies.push_back(PendingReply {
            journal_seq,
            reply,
            message,
        });
    }

    /// Publishes the outputs staged in the rings once the journal has released them; returns how many.
    fn publish_staged(&mut self) -> usize {
        let mut n = 0;
        let staged = self.to_sessions.staged();
        if staged > 0 && self.staged_sessions_seq <= self.released_up_to {
            self.to_sessions.publish();
            n += staged as usize;
        }
        let staged = self.to_feed.staged();
        if staged > 0 && self.staged_feed.journal_seq <= self.released_up_to {
            self.to_feed.publish();
            self.feed_released = self.staged_feed.feed_seq;
            self.flush_owed = true;
            self.shared
                .feed_sequence
                .store(self.feed_released, Ordering::Relaxed);
            n += staged as usize;
        }
        n
    }

    /// Publishes released staged outputs, then pushes released queued ones into the rings, in order, as
    /// far as they have room; returns how many.
    fn release(&mut self) -> usize {
        // Staged outputs come before anything queued (outputs are queued only once a ring was full).
        let mut n = self.publish_staged();
        // Each record is copied from its queue slot straight into the ring (`push_copy`).
        // A push publishes what is staged before it, so nothing queued goes while staged outputs wait.
        while let Some((seq, record)) = self.pending_sessions.front() {
            if *seq > self.released_up_to
                || self.to_sessions.staged() > 0
                || !self.to_sessions.push_copy(record)
            {
                break;
            }
            self.pending_sessions.pop_front();
            n += 1;
        }
        while let Some((seq, record)) = self.pending_feed.front() {
            if *seq > self.released_up_to || self.to_feed.staged() > 0 || !self.to_feed.push_copy(record) {
                break;
            }
            if let ToFeed::Message { feed_seq, .. } = record {
                self.feed_released = *feed_seq;
                self.flush_owed = true;
            }
            self.pending_feed.pop_front();
            n += 1;
        }
        if n > 0 {
            self.shared
                .feed_sequence
                .store(self.feed_released, Ordering::Relaxed);
        }
        // An emptied queue starts again at the front of its buffer (`clear` resets the head), so each
        // step's outputs go to the same few, cache-warm lines instead of sweeping megabytes of cold ones.
        if self.pending_sessions.is_empty() {
            self.pending_sessions.clear();
        }
        if self.pending_feed.is_empty() {
            self.pending_feed.clear();
        }
        // A batch's messages are out: tell market data to send what it holds (after them, never before).
        if self.flush_owed && self.to_feed.staged() == 0 && self.to_feed.push(ToFeed::Flush).is_ok() {
            self.flush_owed = false;
        }
        while let Some(front) = self.pending_replies.front() {
            let seq = front.journal_seq;
            if seq > self.released_up_to
                || self.to_sessions.staged() > 0
                || self.to_feed.staged() > 0
                || self.pending_sessions.front().is_some_and(|(s, _)| *s <= seq)
                || self.pending_feed.front().is_some_and(|(s, _)| *s <= seq)
            {
                break;
            }
            let p = self.pending_replies.pop_front().expect("front exists");
            let _ = p.reply.send(p.message);
        }
        n
    }

    fn commit(&mut self) {
        if !self.appended {
            return;
        }
        let start = std::time::Instant::now();
        match self.journal.commit_batch() {
            Ok(c) => self.set_released(c.released_up_to),
            Err(e) => fatal(&format!("journal commit: {e}")),
        }
        stats::record(&mut self.h_journal, start.elapsed().as_nanos() as u64);
        self.appended = false;
        // The batch's staged messages go first (a push would publish them without their bookkeeping).
        self.publish_staged();
        if self.to_feed.staged() == 0
            && let Some(batch) = self.journal.last_committed_batch()
        {
            let _ = self.to_feed.push(ToFeed::Committed(batch));
        }
    }

    /// Commits and releases everything journaled; returns the last journal sequence, where a checkpoint
    /// of the current state would be.
    fn checkpoint_point(&mut self) -> u64 {
        self.commit();
        if self.every_batches {
            match self.journal.sync() {
                Ok(c) => self.set_released(c.released_up_to),
                Err(e) => fatal(&format!("journal sync: {e}")),
            }
        }
        self.journal.next_sequence() - 1
    }

    /// The journal released up to `released_up_to`: what may be shown, and what the checkpointer may
    /// follow.
    #[inline]
    fn set_released(&mut self, released_up_to: u64) {
        self.released_up_to = released_up_to;
        self.checkpointer.release(released_up_to, self.events_total);
    }

    fn publish(&mut self, now_ns: u64) {
        self.last_publish_ns = now_ns;
        self.shared.hand_over_histogram("matching", &mut self.h_matching);
        self.shared.hand_over_histogram("journal", &mut self.h_journal);
        self.shared
            .orders
            .store(self.machine.engine.order_count() as u64, Ordering::Relaxed);
        self.shared
            .events_total
            .store(self.events_total, Ordering::Relaxed);
        self.shared
            .journal_sequence
            .store(self.journal.next_sequence() - 1, Ordering::Relaxed);
        self.shared.ring_len[0].store(self.requests().len() as u64, Ordering::Relaxed);
    }
}

impl Agent for Core {
    fn name(&self) -> &'static str {
        "core"
    }

    fn do_work(&mut self, now_ns: u64) -> usize {
        if self.closed {
            return self.release();
        }
        let mut work = self.release();
        self.clock_anchored = false;
        let backlog = self.pending_sessions.len().max(self.pending_feed.len());
        if backlog < self.pending_max {
            for _ in 0..4 {
                match self.admin.try_recv() {
                    Ok(job) => {
                        self.handle_admin(job);
                        work += 1;
                    }
                    Err(_) => break,
                }
            }
            let open = self.machine.day_open();
            if open
                && let Some(due) = self.machine.engine.next_expiry_ns()
                && due <= self.day_ns()
            {
                self.apply(&Command::ExpireDue, NO_ECHO, 0, 0);
                work += 1;
            }
            work += self.take_requests();
        }
        self.close_sample();
        self.commit();
        work += self.release();
        if work == 0 {
            if self.every_batches && (!self.pending_sessions.is_empty() || !self.pending_feed.is_empty()) {
                match self.journal.sync() {
                    Ok(c) => self.set_released(c.released_up_to),
                    Err(e) => fatal(&format!("journal sync: {e}")),
                }
                work += self.release();
            }
            if let Err(e) = self.journal.prepare_next_segment() {
                fatal(&format!("journal segment: {e}"));
            }
        }
        if now_ns.saturating_sub(self.last_publish_ns) >= stats::PUBLISH_INTERVAL_NS {
            self.publish(now_ns);
        }
        if self.lifecycle.ingress_closed.load(Ordering::Acquire) && self.requests().is_empty() && work == 0 {
            self.commit();
            self.release();
            if self.pending_sessions.is_empty()
                && self.pending_feed.is_empty()
                && self.to_sessions.staged() == 0
                && self.to_feed.staged() == 0
            {
                // The last checkpoint holds everything. The core writes it itself: nothing waits on the
                // pipeline any more, and its state is current where the checkpointer's replica may lag
                // by a flood's worth of records (see `crate::checkpointer`).
                self.checkpointer.stop();
                let at = self.checkpoint_point();
                let blob = self.machine.checkpoint_blob();
                if let Err(e) = self.journal.write_checkpoint(at, &blob) {
                    // A failed checkpoint loses nothing (the journal has it all); say so and go on.
                    eprintln!("boursed: checkpoint at {at} failed: {e}");
                }
                self.publish(now_ns);
                self.closed = true;
                self.lifecycle.core_closed.store(true, Ordering::Release);
            }
        }
        work
    }
}

// ----- start-up -----

/// Why start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The journal could not be opened or is damaged.
    #[error("journal: {0}")]
    Journal(#[from] bourse_journal::JournalError),
    /// The newest checkpoint cannot be used.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Re-running the journaled commands gave different outcomes.
    #[error("{0}")]
    Mismatch(String),
    /// Old segments could not be archived (`journal.archive_directory`); nothing was lost.
    #[error("journal.archive_directory {dir}: {error}")]
    Archive {
        /// The archive directory.
        dir: String,
        /// What failed.
        error: bourse_journal::JournalError,
    },
}

/// What recovery found.
pub struct Recovered {
    /// The machine after every journaled step.
    pub machine: Machine,
    /// The journal, ready to append.
    pub journal: Journal<MmapStorage>,
    /// Journal sequence of the checkpoint used (0: none).
    pub checkpoint_sequence: u64,
    /// Steps re-run and checked.
    pub steps_replayed: u64,
    /// Records after the checkpoint.
    pub records_replayed: u64,
    /// Last journal sequence recovery found (before start-up wrote anything).
    pub recovered_up_to: u64,
    /// Outputs start-up journaled (start of day, cancel-on-disconnect), to be released first.
    pub startup_sessions: VecDeque<(u64, ToSession)>,
    /// Feed outputs start-up journaled.
    pub startup_feed: VecDeque<(u64, ToFeed)>,
}

/// Compares re-run records with the journaled ones of one step.
struct CompareSink<'a> {
    expected: &'a [(u64, u16, Vec<u8>)],
    at: usize,
}

impl RecordSink for CompareSink<'_> {
    fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError> {
        let Some((seq, k, p)) = self.expected.get(self.at) else {
            let after = self.expected.last().map_or(0, |r| r.0);
            return Err(StepError::mismatch(
                after + 1,
                format!("the engine produced a record of kind {kind:#06x} that the journal does not have"),
            ));
        };
        if *k != kind || p.as_slice() != payload {
            return Err(differs(*seq, *k, p, kind, payload));
        }
        self.at += 1;
        Ok(*seq)
    }
    fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, _: &[u8]) {}
    fn itch(&mut self, _: u64, _: u64, _: &[u8]) {}

    const WANTS_UNJOURNALED: bool = true;

    /// A journal that an older version wrote holds every event: where the next journaled record is of
    /// the event's kind, it must be the same bytes. A journal this version wrote has none of them.
    fn unjournaled(&mut self, kind: u16, payload: &[u8]) -> Result<(), StepError> {
        if let Some((seq, k, p)) = self.expected.get(self.at)
            && *k == kind
        {
            if p.as_slice() != payload {
                return Err(differs(*seq, *k, p, kind, payload));
            }
            self.at += 1;
        }
        Ok(())
    }
}

/// The journal's record `seq` (`k`, `p`) is not the one the engine produced (`kind`, `payload`).
fn differs(seq: u64, k: u16, p: &[u8], kind: u16, payload: &[u8]) -> StepError {
    StepError::mismatch(
        seq,
        format!(
            "journal has kind {k:#06x} {} bytes, the engine produced kind {kind:#06x} {} bytes{}",
            p.len(),
            payload.len(),
            if k == kind { " with different content" } else { "" }
        ),
    )
}

/// Re-runs one journaled step (records of one group) through the machine and checks it.
fn verify_step(machine: &mut Machine, group: &[(u64, u16, Vec<u8>)]) -> Result<(), StepError> {
    let (first_seq, kind, payload) = &group[0];
    let mut sink = CompareSink {
        expected: group,
        at: 0,
    };
    apply_step(machine, *first_seq, *kind, payload, &mut sink)?;
    if sink.at != group.len() {
        let (seq, k, _) = &group[sink.at];
        return Err(StepError::mismatch(
            *seq,
            format!("the journal has a record of kind {k:#06x} that re-running the step did not produce"),
        ));
    }
    Ok(())
}

/// Re-runs the step that starts with the journaled record (`first_seq`, `kind`, `payload`) through the
/// machine, which produces every record of the step, that one included, into `sink` (recovery and the
/// checkpointer compare them with the journal's).
///
/// # Errors
/// The sink's, or a first record that cannot start a step.
pub(crate) fn apply_step(
    machine: &mut Machine,
    first_seq: u64,
    kind: u16,
    payload: &[u8],
    sink: &mut impl RecordSink,
) -> Result<(), StepError> {
    let bad = |detail: &str| StepError::mismatch(first_seq, detail);
    match kind {
        j::KIND_COMMAND => {
            let (ts, echo, cmd_bytes) =
                j::decode_command(payload).ok_or_else(|| bad("bad command record"))?;
            let (command, used) =
                Command::decode(cmd_bytes).map_err(|e| bad(&format!("command record: {e}")))?;
            if used != cmd_bytes.len() {
                return Err(bad("bytes after the command record"));
            }
            machine.command(ts, echo, &command, 0, 0, sink)?;
        }
        j::KIND_DAY => {
            let day = j::decode_day(payload).ok_or_else(|| bad("bad day record"))?;
            if day.event != j::DAY_START {
                return Err(bad("a day end record outside an end-of-day command"));
            }
            machine.start_day(day.session, day.day_base_unix_ns, day.timestamp_ns, sink)?;
        }
        j::KIND_ADMIN => {
            let (action, login) = j::decode_admin(payload).ok_or_else(|| bad("bad admin record"))?;
            machine.login_action(action, login, sink)?;
        }
        other => {
            return Err(bad(&format!(
                "a step cannot start with a record of kind {other:#06x}"
            )));
        }
    }
    Ok(())
}

/// Whether a record of `kind` starts a step (a command, a day record, an operator's login action).
pub(crate) fn starts_step(kind: u16) -> bool {
    matches!(kind, j::KIND_COMMAND | j::KIND_DAY | j::KIND_ADMIN)
}

/// Opens the journal, loads the newest checkpoint and re-runs (and checks) every step after it.
///
/// # Errors
/// [`StartError`]: a damaged journal, an unusable checkpoint, or outcomes that differ from the journal.
pub fn recover(config: &Config) -> Result<Recovered, StartError> {
    recover_with_helpers(config, Vec::new())
}

/// [`recover`], with the journal's spare builder pinned to `helper_cores` (none: not pinned).
///
/// # Errors
/// As [`recover`].
pub fn recover_with_helpers(config: &Config, helper_cores: Vec<usize>) -> Result<Recovered, StartError> {
    let engine_config = config.engine_config();
    let mut storage =
        MmapStorage::open(&config.journal.directory).map_err(bourse_journal::JournalError::from)?;
    // The core is never idle at saturation: the next segment is built on a helper thread, not inline
    // at the roll, and away from the pipeline's core when there are helper cores (docs/ARCHITECTURE.md).
    storage.set_cached_segments(config.journal.cached_segments as usize);
    storage
        .build_spares_in_background_with(move || {
            crate::agent::pin_helper_thread("journal's spare builder", &helper_cores);
        })
        .map_err(bourse_journal::JournalError::from)?;
    let checkpoint = bourse_journal::checkpoint::load_newest(&mut storage)?;
    let (mut machine, from, checkpoint_sequence) = match checkpoint {
        Some(c) => (
            Machine::from_checkpoint(engine_config, &c.blob).map_err(StartError::Checkpoint)?,
            c.sequence + 1,
            c.sequence,
        ),
        None => (Machine::new(engine_config), 1, 0),
    };
    let journal_from = storage.archived_before();
    if from < journal_from {
        return Err(StartError::Checkpoint(format!(
            "the journal in {} starts at sequence {journal_from} (the segments before it were archived, see \
             its `{}` file) but the newest usable checkpoint needs the records from {from} on: put the \
             archived segments back and delete that file, or restore a checkpoint from after {}",
            config.journal.directory.display(),
            bourse_journal::ARCHIVE_MARKER_NAME,
            journal_from - 1,
        )));
    }
    let mut group: Vec<(u64, u16, Vec<u8>)> = Vec::new();
    let mut steps = 0u64;
    let visit = |r: bourse_journal::Record<'_>| -> Result<(), StepError> {
        if starts_step(r.kind) && !group.is_empty() {
            verify_step(&mut machine, &group)?;
            steps += 1;
            group.clear();
        }
        if j::is_foreign_daemon_kind(r.kind) {
            return Err(StepError::mismatch(
                r.sequence,
                format!(
                    "record kind {:#06x} is not one this version writes (0x0100 was retired on \
                     2026-11-26): the journal was written by another boursed version; keep the directory \
                     for that version and start this one on an empty journal directory",
                    r.kind
                ),
            ));
        }
        if group.is_empty() && !starts_step(r.kind) {
            return Err(StepError::mismatch(
                r.sequence,
                format!("record of kind {:#06x} outside any step", r.kind),
            ));
        }
        group.push((r.sequence, r.kind, r.payload.to_vec()));
        Ok(())
    };
    let opened = Journal::open_replay(storage, config.journal_config(), from, visit);
    let (mut journal, _recovery, records) = match opened {
        Ok(x) => x,
        Err(ReplayError::Journal(e)) => return Err(StartError::Journal(e)),
        Err(ReplayError::Visitor(e)) => return Err(StartError::Mismatch(e.to_string())),
    };
    if !group.is_empty() {
        verify_step(&mut machine, &group).map_err(|e| StartError::Mismatch(e.to_string()))?;
        steps += 1;
    }
    let recovered_up_to = journal.next_sequence() - 1;
    // A checkpoint is only ever written at a released sequence, so a journal that ends before it has
    // lost records that were acknowledged (a machine crash under sync `none`, segments removed, or an
    // older copy of them put back). Going on serves the checkpoint's book, which the journal cannot
    // replay, and numbers new records over the lost ones (before this check the pipeline then stopped
    // on a feed sequence gap at the first order it acknowledged).
    if checkpoint_sequence > recovered_up_to {
        return Err(StartError::Checkpoint(format!(
            "the newest checkpoint is at sequence {checkpoint_sequence} but the journal in {} ends at \
             sequence {recovered_up_to}: records that were acknowledged are missing from the journal (a \
             machine crash under sync `none`, or segments removed or restored from an older copy). Put \
             the missing segments back; or, to start from the journal as it is and lose what it no longer \
             holds, move the checkpoint files after sequence {recovered_up_to} ({}) out of the directory",
            config.journal.directory.display(),
            beyond_names(&mut journal, recovered_up_to)?,
        )));
    }
    Ok(Recovered {
        machine,
        journal,
        checkpoint_sequence,
        steps_replayed: steps,
        records_replayed: records,
        recovered_up_to,
        startup_sessions: VecDeque::new(),
        startup_feed: VecDeque::new(),
    })
}

/// The checkpoint files after `sequence`, by name, for a start-up error.
fn beyond_names(journal: &mut Journal<MmapStorage>, sequence: u64) -> Result<String, StartError> {
    let names: Vec<String> = journal
        .checkpoint_sequences()?
        .into_iter()
        .filter(|&c| c > sequence)
        .map(bourse_journal::checkpoint::file_name)
        .collect();
    Ok(names.join(", "))
}

/// Moves the journal segments nothing needs any more to `journal.archive_directory` (if
/// `journal.archive` is on), after [`start_up`] and before any reader opens the journal: those whose
/// records all precede both the oldest checkpoint kept (a start-up may fall back to it) and the day's
/// start (session replays, re-requests, the snapshot book and busts read the day's records). Returns
/// what was moved, or `None` when archiving is off.
///
/// # Errors
/// Journal and file-system errors (an archive directory on another file system among them); nothing is
/// lost (see [`bourse_journal::MmapStorage::archive_segments`]).
pub fn archive_journal(
    recovered: &mut Recovered,
    config: &Config,
) -> Result<Option<bourse_journal::ArchivedSegments>, StartError> {
    let Some(archive_dir) = config.journal_archive_directory() else {
        return Ok(None);
    };
    let journal = &mut recovered.journal;
    let oldest_checkpoint = journal.checkpoint_sequences()?.first().copied();
    let day_start = recovered
        .machine
        .day
        .as_ref()
        .map_or(0, |d| d.day_start_journal_seq);
    // No checkpoint: a start-up re-runs the journal from its first record, so everything stays.
    let before = oldest_checkpoint.map_or(0, |c| (c + 1).min(day_start));
    journal
        .archive_before(before, &archive_dir)
        .map(Some)
        .map_err(|error| StartError::Archive {
            dir: archive_dir.display().to_string(),
            error,
        })
}

/// The session name of a new day started at `unix_ns`: `YYYYMMDDnn`, `nn` one above the previous
/// day's if that one started on the same date.
pub fn next_session_name(unix_ns: u64, previous: Option<SessionName>) -> (SessionName, u64) {
    let days = unix_ns / 86_400_000_000_000;
    let (y, m, d) = civil_from_days(days as i64);
    let date = format!("{y:04}{m:02}{d:02}");
    let nn = match previous {
        Some(p) if p.0.starts_with(date.as_bytes()) => {
            std::str::from_utf8(&p.0[8..])
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(0)
                + 1
        }
        _ => 1,
    };
    let name = Alpha::new(&format!("{date}{:02}", nn.min(99))).expect("10 ASCII digits");
    (name, days * 86_400_000_000_000)
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What start-up did after recovery.
#[derive(Debug)]
pub struct StartUp {
    /// A new trading day was started.
    pub new_day: bool,
    /// Logins whose orders were canceled at start-up (cancel-on-disconnect after a crash).
    pub cod_logins: u32,
    /// Orders those cancels removed.
    pub cod_orders: u64,
}

/// After recovery and before the ports open: starts a new day if none is running, applies
/// cancel-on-disconnect for every login (after a crash their sessions are gone), commits and, for a new
/// day, checkpoints.
///
/// # Errors
/// Journal errors.
pub fn start_up(recovered: &mut Recovered, config: &Config) -> Result<StartUp, StartError> {
    let machine = &mut recovered.machine;
    let journal = &mut recovered.journal;
    let mut appended = false;
    let mut sink = LiveSink {
        journal,
        sessions: &mut recovered.startup_sessions,
        feed: &mut recovered.startup_feed,
        appended: &mut appended,
        staging: None,
    };
    let to_err = |e: StepError| match *e.0 {
        StepFailure::Journal(e) => StartError::Journal(e),
        StepFailure::Mismatch { detail, .. } => StartError::Mismatch(detail),
    };
    let needs_day = !machine.day_open();
    if needs_day {
        let now = unix_now_ns();
        let (session, base) = next_session_name(now, machine.day.as_ref().map(|d| d.session));
        machine
            .start_day(session, base, now - base, &mut sink)
            .map_err(to_err)?;
    }
    let mut cod_logins = 0;
    let before = machine.engine.order_count() as u64;
    if before > 0 {
        for (i, login) in config.logins.iter().enumerate() {
            if !login.cancel_on_disconnect {
                continue;
            }
            let day = machine.day.as_ref().expect("a day is open");
            let ts = unix_now_ns()
                .saturating_sub(day.day_base_unix_ns)
                .max(day.last_timestamp_ns);
            let command = Command::MassCancel {
                scope: MassCancelScope::Login(i as u32 + 1),
                reason: CancelReason::LoggedOff,
            };
            machine
                .command(ts, NO_ECHO, &command, 0, 0, &mut sink)
                .map_err(to_err)?;
            if !machine.last_events().is_empty() {
                cod_logins += 1;
            }
        }
    }
    let cod_orders = before - machine.engine.order_count() as u64;
    if appended {
        journal_commit(recovered)?;
    }
    if needs_day {
        // The day's start was just committed (and synced, `journal_commit`): checkpoint it.
        let at = recovered.journal.next_sequence() - 1;
        recovered
            .journal
            .write_checkpoint(at, &recovered.machine.checkpoint_blob())?;
    }
    Ok(StartUp {
        new_day: needs_day,
        cod_logins,
        cod_orders,
    })
}

fn journal_commit(recovered: &mut Recovered) -> Result<(), StartError> {
    recovered.journal.commit_batch()?;
    if matches!(
        recovered.journal.config().sync_policy,
        SyncPolicy::EveryBatches(_)
    ) {
        recovered.journal.sync()?;
    }
    Ok(())
}

/// The core's lookahead, two commands deep, while the command before `next` is applied: the live-order
/// index lines the command `after` it will read first ([`bourse_book::Engine::lookup_addresses`]), and the
/// arena slot `next` will read ([`bourse_book::Engine::order_address`], found through the index line
/// prefetched one command earlier).
#[inline(always)]
pub fn prefetch_commands(engine: &bourse_book::Engine, next: Option<&Command>, after: Option<&Command>) {
    if let Some(command) = after {
        for address in engine.lookup_addresses(command).into_iter().flatten() {
            prefetch(address);
        }
    }
    if let Some(address) = next.and_then(|command| engine.order_address(command)) {
        prefetch(address);
    }
}

/// Market data's lookahead, two messages deep, while the message before `next` is applied: the snapshot
/// book's bucket the ITCH message `after` will read first ([`bourse_book::feed::FeedBook::lookup_address`]),
/// and the order slot `next` will read ([`bourse_book::feed::FeedBook::slot_address`], from the bucket
/// prefetched one message earlier).
#[inline(always)]
pub fn prefetch_feed_messages(book: &bourse_book::feed::FeedBook, next: Option<&[u8]>, after: Option<&[u8]>) {
    if let Some(address) = after.and_then(|m| book.lookup_address(m)) {
        prefetch(address);
    }
    if let Some(address) = next.and_then(|m| book.slot_address(m)) {
        prefetch(address);
    }
}

/// Asks the CPU to bring the cache line at `address` in: a hint (no fault, no effect on memory; nothing on
/// other architectures).
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_book::ReplaceOrder;
    use bourse_protocol::fields::Token;

    use crate::checkpointer::tests::enter;

    /// A journal in memory, one group of records per step. With `OLD`, it also takes the events this
    /// version does not journal, as versions before `5dbccf2` wrote them.
    #[derive(Default)]
    struct Tape<const OLD: bool> {
        steps: Vec<Vec<(u64, u16, Vec<u8>)>>,
        next: u64,
    }

    impl<const OLD: bool> Tape<OLD> {
        fn push(&mut self, kind: u16, payload: &[u8]) -> u64 {
            self.next += 1;
            self.steps
                .last_mut()
                .unwrap()
                .push((self.next, kind, payload.to_vec()));
            self.next
        }
    }

    impl<const OLD: bool> RecordSink for Tape<OLD> {
        fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError> {
            Ok(self.push(kind, payload))
        }
        fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, _: &[u8]) {}
        fn itch(&mut self, _: u64, _: u64, _: &[u8]) {}
        const WANTS_UNJOURNALED: bool = OLD;
        fn unjournaled(&mut self, kind: u16, payload: &[u8]) -> Result<(), StepError> {
            self.push(kind, payload);
            Ok(())
        }
    }

    /// A day of rests, a replace, a trade and a cancel, recorded into `tape`.
    fn a_day<const OLD: bool>() -> Tape<OLD> {
        let config = Config::embedded_default().engine_config();
        let mut m = Machine::new(config);
        let mut tape = Tape::<OLD>::default();
        tape.steps.push(Vec::new());
        m.start_day(Alpha(*b"2026112801"), 0, 1, &mut tape).unwrap();
        let replace = Command::Replace(ReplaceOrder {
            login: 1,
            existing_token: Token::new("B1").unwrap(),
            replacement_token: Token::new("B2").unwrap(),
            shares: 200,
            price: 1_890_000,
            tif_s: 99_999,
            display: b'Y',
            min_qty: 0,
        });
        let cancel = Command::Cancel {
            login: 2,
            token: Token::new("S2").unwrap(),
            shares: 0,
        };
        let steps = [
            enter(1, "B1", b'B', 100, 1_880_000),
            replace,
            enter(2, "S1", b'S', 100, 1_890_000),
            enter(2, "S2", b'S', 100, 1_950_000),
            cancel,
        ];
        for (ts, command) in (2..).zip(&steps) {
            tape.steps.push(Vec::new());
            m.command(ts, *b"PNN", command, 0, 0, &mut tape).unwrap();
        }
        tape
    }

    /// Every step of `steps` re-run on a fresh machine and checked as recovery does.
    fn verify(steps: &[Vec<(u64, u16, Vec<u8>)>]) -> Result<(), StepError> {
        let mut m = Machine::new(Config::embedded_default().engine_config());
        steps.iter().try_for_each(|step| verify_step(&mut m, step))
    }

    /// The journal sequence a verification stopped at.
    fn mismatch_at(verified: Result<(), StepError>) -> u64 {
        match verified.map_err(|e| *e.0) {
            Err(StepFailure::Mismatch { sequence, .. }) => sequence,
            Err(other) => panic!("{other}"),
            Ok(()) => panic!("verified"),
        }
    }

    fn kinds(steps: &[Vec<(u64, u16, Vec<u8>)>]) -> Vec<u16> {
        steps.iter().flatten().map(|r| r.1).collect()
    }

    /// The order events that OUCH and ITCH carry are not journaled, and recovery still checks a journal
    /// that an older version wrote with them: equal bytes pass, different bytes stop it.
    #[test]
    fn recovery_checks_journals_with_and_without_the_order_events() {
        let new = a_day::<false>();
        let old = a_day::<true>();
        let (accepted, added, executed, canceled, replaced) = (0x81, 0x82, 0x83, 0x84, 0x86);
        let new_kinds = kinds(&new.steps);
        for k in [accepted, added, canceled, replaced] {
            assert!(!new_kinds.contains(&k), "{k:#06x} journaled");
            assert!(
                kinds(&old.steps).contains(&k),
                "{k:#06x} missing from the old tape"
            );
        }
        assert_eq!(new_kinds.iter().filter(|&&k| k == executed).count(), 1);
        // Apart from those events, the same records.
        let old_rest: Vec<u16> = kinds(&old.steps)
            .into_iter()
            .filter(|k| ![accepted, added, canceled, replaced].contains(k))
            .collect();
        assert_eq!(old_rest, new_kinds);

        verify(&new.steps).unwrap();
        verify(&old.steps).unwrap();

        // An older journal whose Accepted differs from the engine's (the price).
        let mut altered = old.steps.clone();
        let at = altered.iter_mut().flatten().find(|r| r.1 == accepted).unwrap();
        let seq = at.0;
        let last = at.2.len() - 1;
        at.2[last] ^= 1;
        assert_eq!(mismatch_at(verify(&altered)), seq, "an altered Accepted");
        // A journal of this version whose OUCH reply differs: the outputs are what is checked.
        let mut altered = new.steps.clone();
        let at = altered
            .iter_mut()
            .flatten()
            .find(|r| r.1 == j::KIND_OUCH)
            .unwrap();
        let seq = at.0;
        let last = at.2.len() - 1;
        at.2[last] ^= 1;
        assert_eq!(mismatch_at(verify(&altered)), seq, "an altered OUCH record");
    }

    #[test]
    fn session_names_follow_the_date() {
        // 2026-11-26 12:00 UTC
        let t = 1_795_694_400_000_000_000u64;
        let (name, base) = next_session_name(t, None);
        assert_eq!(&name.0, b"2026112601");
        assert_eq!(base % 86_400_000_000_000, 0);
        assert!(t - base < 86_400_000_000_000);
        let (second, _) = next_session_name(t, Some(name));
        assert_eq!(&second.0, b"2026112602");
        let (other, _) = next_session_name(t, Some(Alpha(*b"2026112509")));
        assert_eq!(&other.0, b"2026112601");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
    }
}
