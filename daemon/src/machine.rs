//! The deterministic heart of the core stage: engine + day state + the records each step writes.
//!
//! A [`Machine`] turns one step (a sequenced command, a day start, an operator action on a login) into
//! journal records through a [`RecordSink`]: live, the sink appends to the journal and queues the
//! outputs for release; in recovery, the sink compares each record with the journaled one. Because the
//! same code writes and re-checks, a changed engine or mapping stops recovery instead of serving a
//! different book.
//!
//! Per sequenced command the records are: `KIND_COMMAND` (timestamp, echo and the book's command record),
//! the book's event records that [`journals_event`] keeps (Executed and the rare ones; the order events
//! that OUCH and ITCH carry are not journaled), then one `KIND_OUCH` / `KIND_ITCH` per output in
//! publication order (end of day adds ITCH `S M` before and `S C` after the engine's events, then
//! `KIND_DAY` end).

use bourse_book::{Command, Engine, EngineConfig, Event};
use bourse_protocol::fields::{Alpha, Firm, Symbol};
use bourse_protocol::journaled::{self as j};
use bourse_protocol::{itch, ouch};

use crate::msg::SessionName;
use crate::outputs::{self, DirectoryEntry, Output, OutputSink};

/// Where a step's records go.
pub trait RecordSink {
    /// One record; returns its journal sequence.
    ///
    /// # Errors
    /// Journal errors (live) or a mismatch (recovery).
    fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError>;
    /// An OUCH output was recorded at `journal_seq` (live: queue it for release).
    fn ouch(&mut self, login: u32, session_seq: u64, journal_seq: u64, recv_ns: u64, bytes: &[u8]);
    /// An ITCH output was recorded at `journal_seq`.
    fn itch(&mut self, feed_seq: u64, journal_seq: u64, bytes: &[u8]);

    /// Whether the machine hands this sink the event records the journal does not hold (see
    /// [`journals_event`]) through [`RecordSink::unjournaled`]. Only recovery's check wants them, to
    /// compare them with a journal that an older version wrote with every event in it; live, they are
    /// not even encoded.
    const WANTS_UNJOURNALED: bool = false;

    /// An event record the journal does not hold (only when [`RecordSink::WANTS_UNJOURNALED`]).
    ///
    /// # Errors
    /// A mismatch (recovery).
    fn unjournaled(&mut self, _kind: u16, _payload: &[u8]) -> Result<(), StepError> {
        Ok(())
    }
}

/// Whether a step journals the book's `event` as a record of its own.
///
/// The order events that a client is told of in OUCH and the feed in ITCH (Accepted, Added, Canceled,
/// SelfTradeCanceled, Replaced, Modified, Rejected) are not journaled: the step's `KIND_OUCH` and
/// `KIND_ITCH` records carry what they say, and recovery compares those. They were 28 % of the journal's
/// bytes. Executed is journaled, because a bust reads both parties of a trade from it
/// (`crate::trades`), and so are the operator's and the day's events (rare) and CancelRejected (its
/// order reference reaches no output).
#[inline]
pub fn journals_event(event: &Event) -> bool {
    !matches!(
        event,
        Event::Accepted(_)
            | Event::Added(_)
            | Event::Canceled(_)
            | Event::SelfTradeCanceled(_)
            | Event::Replaced(_)
            | Event::Modified(_)
            | Event::Rejected { .. }
    )
}

/// A step could not be recorded: a boxed [`StepFailure`], so that the `Result`s of the per-record calls
/// on the hot path are two words returned in registers, not a large value copied through memory.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StepError(pub Box<StepFailure>);

impl StepError {
    /// A recovery mismatch at journal sequence `sequence`.
    pub fn mismatch(sequence: u64, detail: impl Into<String>) -> StepError {
        StepError(Box::new(StepFailure::Mismatch {
            sequence,
            detail: detail.into(),
        }))
    }
}

impl From<bourse_journal::JournalError> for StepError {
    fn from(e: bourse_journal::JournalError) -> StepError {
        StepError(Box::new(StepFailure::Journal(e)))
    }
}

/// Why a step could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum StepFailure {
    /// The journal refused the record (fatal: fail-stop).
    #[error("journal: {0}")]
    Journal(bourse_journal::JournalError),
    /// Recovery: the re-run step differs from the journal.
    #[error("recovery mismatch at journal sequence {sequence}: {detail}")]
    Mismatch {
        /// Journal sequence of the first differing record.
        sequence: u64,
        /// What differs.
        detail: String,
    },
}

/// The state of the trading day beside the engine; all of it goes into checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayState {
    /// The day's session name.
    pub session: SessionName,
    /// Unix time of the UTC midnight of the day's start date, nanoseconds (timestamps count from it).
    pub day_base_unix_ns: u64,
    /// Orders are accepted (false after end of day).
    pub day_open: bool,
    /// Journal sequence of the day's `KIND_DAY` start record.
    pub day_start_journal_seq: u64,
    /// Next session sequence number per login id (index 0 unused).
    pub next_session_seq: Vec<u64>,
    /// Next MoldUDP64 sequence number.
    pub next_feed_seq: u64,
    /// Operator-disabled logins (index = login id).
    pub disabled: Vec<bool>,
    /// Largest timestamp given to a command (timestamps never go back).
    pub last_timestamp_ns: u64,
}

/// Engine, day state and the static tables the mapping needs.
pub struct Machine {
    /// The engine.
    pub engine: Engine,
    /// The day (None before the first day starts).
    pub day: Option<DayState>,
    engine_config: EngineConfig,
    directory: Vec<DirectoryEntry>,
    logins: u32,
    events: Vec<Event>,
}

/// Numbers and records the outputs `produce` hands over, in order, each as it comes (no copy of the
/// message in between); the requester's OUCH replies carry `recv_ns`. After an error the rest are not
/// recorded and the error is returned.
///
/// # Panics
/// If an output comes while no day is open (the engine makes none before the first day starts).
fn record_outputs(
    day: &mut Option<DayState>,
    requester: u32,
    recv_ns: u64,
    sink: &mut impl RecordSink,
    produce: impl FnOnce(&mut dyn FnMut(Output<'_>)),
) -> Result<(), StepError> {
    let mut result = Ok(());
    produce(&mut |output: Output<'_>| {
        if result.is_ok() {
            let day = day.as_mut().expect("a day is open before any output");
            result = record_output(day, output, requester, recv_ns, sink);
        }
    });
    result
}

/// Numbers one output (session or feed sequence), records it and hands it to the sink for release.
#[inline(always)]
fn record_output(
    day: &mut DayState,
    output: Output<'_>,
    requester: u32,
    recv_ns: u64,
    sink: &mut impl RecordSink,
) -> Result<(), StepError> {
    let mut buf = [0u8; j::OUCH_PREFIX_LEN + OUTPUT_LEN_MAX];
    match output {
        Output::Ouch { login, bytes } => {
            let Some(next) = day.next_session_seq.get_mut(login as usize) else {
                return Ok(());
            };
            let seq = *next;
            *next += 1;
            let n = j::encode_ouch(&mut buf, login, seq, bytes);
            let journal_seq = sink.record(j::KIND_OUCH, &buf[..n])?;
            let recv_ns = if login == requester { recv_ns } else { 0 };
            sink.ouch(login, seq, journal_seq, recv_ns, bytes);
        }
        Output::Itch { bytes } => {
            let seq = day.next_feed_seq;
            day.next_feed_seq += 1;
            let n = j::encode_itch(&mut buf, seq, bytes);
            let journal_seq = sink.record(j::KIND_ITCH, &buf[..n])?;
            sink.itch(seq, journal_seq, bytes);
        }
    }
    Ok(())
}

/// The command path's output sink: [`record_output`] inlined at every emit site of the mapping.
struct Recorder<'a, S> {
    day: &'a mut Option<DayState>,
    requester: u32,
    recv_ns: u64,
    sink: &'a mut S,
    result: Result<(), StepError>,
}

impl<S: RecordSink> OutputSink for Recorder<'_, S> {
    #[inline(always)]
    fn output(&mut self, output: Output<'_>) {
        if self.result.is_ok() {
            let day = self.day.as_mut().expect("a day is open before any output");
            self.result = record_output(day, output, self.requester, self.recv_ns, self.sink);
        }
    }
}

/// Longest OUCH or ITCH message the mapping produces.
const OUTPUT_LEN_MAX: usize = if ouch::MESSAGE_LEN_MAX > itch::MESSAGE_LEN_MAX {
    ouch::MESSAGE_LEN_MAX
} else {
    itch::MESSAGE_LEN_MAX
};

impl Machine {
    /// A machine with a fresh engine and no day.
    ///
    /// # Panics
    /// If the engine config is invalid (validated before).
    pub fn new(engine_config: EngineConfig) -> Machine {
        let engine = Engine::new(engine_config.clone()).expect("validated engine config");
        Machine::with_engine(engine_config, engine, None)
    }

    /// A machine from restored parts.
    pub fn with_engine(engine_config: EngineConfig, engine: Engine, day: Option<DayState>) -> Machine {
        let directory = engine_config
            .instruments
            .iter()
            .map(|i| DirectoryEntry {
                symbol: i.symbol,
                lot_size: i.lot_size,
            })
            .collect();
        let logins = engine_config.logins.len() as u32;
        Machine {
            engine,
            day,
            engine_config,
            directory,
            logins,
            events: Vec::with_capacity(4096),
        }
    }

    /// Number of configured logins.
    pub fn logins(&self) -> u32 {
        self.logins
    }

    /// Whether a trading day is open (started and not ended).
    pub fn day_open(&self) -> bool {
        self.day.as_ref().is_some_and(|d| d.day_open)
    }

    /// The engine configuration.
    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine_config
    }

    /// Starts a trading day named `session` (a fresh engine: references and match numbers from 1) and
    /// records the start-of-day block.
    ///
    /// # Errors
    /// From the sink.
    pub fn start_day(
        &mut self,
        session: SessionName,
        day_base_unix_ns: u64,
        timestamp_ns: u64,
        sink: &mut impl RecordSink,
    ) -> Result<(), StepError> {
        let halted: Vec<bool> = self
            .directory
            .iter()
            .map(|d| self.engine.is_halted(&d.symbol).unwrap_or(false))
            .collect();
        let killed: Vec<Firm> = self
            .engine_config
            .firms
            .iter()
            .map(|f| f.firm)
            .filter(|f| self.engine.is_killed(f).unwrap_or(false))
            .collect();
        self.engine = Engine::new(self.engine_config.clone()).expect("validated engine config");
        let seq = sink.record(
            j::KIND_DAY,
            &j::encode_day(&j::DayRecord {
                event: j::DAY_START,
                session,
                day_base_unix_ns,
                timestamp_ns,
            }),
        )?;
        let logins = self.logins as usize;
        self.day = Some(DayState {
            session,
            day_base_unix_ns,
            day_open: true,
            day_start_journal_seq: seq,
            next_session_seq: vec![1; logins + 1],
            next_feed_seq: 1,
            disabled: self
                .day
                .as_ref()
                .map_or_else(|| vec![false; logins + 1], |d| d.disabled.clone()),
            last_timestamp_ns: timestamp_ns,
        });
        // Halts and kill switches last across days: re-apply them silently (the block below shows the
        // halts; a kill switch on a fresh book cancels nothing and publishes nothing).
        let carried = (self.directory.iter().zip(&halted))
            .filter(|(_, h)| **h)
            .map(|(d, _)| Command::Halt { symbol: d.symbol })
            .chain(
                killed
                    .into_iter()
                    .map(|firm| Command::KillSwitch { firm, on: true }),
            );
        for command in carried {
            self.events.clear();
            self.engine.apply(timestamp_ns, &command, &mut self.events);
        }
        let (directory, logins) = (&self.directory, self.logins);
        record_outputs(&mut self.day, 0, 0, sink, |out| {
            outputs::start_of_day(&mut { out }, timestamp_ns, directory, &halted, logins);
        })
    }

    /// Applies one sequenced command at `timestamp_ns` and records it with its events and outputs.
    /// `requester` is the login whose request it is (0 for operator and timer commands): its replies
    /// carry `recv_ns`.
    ///
    /// # Errors
    /// From the sink.
    ///
    /// # Panics
    /// If no day is open (the core starts one before any command).
    pub fn command<S: RecordSink>(
        &mut self,
        timestamp_ns: u64,
        echo: [u8; 3],
        command: &Command,
        requester: u32,
        recv_ns: u64,
        sink: &mut S,
    ) -> Result<(), StepError> {
        let mut buf = [0u8; j::COMMAND_PREFIX_LEN + bourse_book::record::COMMAND_SIZE_MAX];
        j::encode_command_prefix(&mut buf, timestamp_ns, echo);
        let n = command
            .encode(&mut buf[j::COMMAND_PREFIX_LEN..])
            .expect("COMMAND_SIZE_MAX holds every command");
        sink.record(j::KIND_COMMAND, &buf[..j::COMMAND_PREFIX_LEN + n])?;
        if let Some(day) = self.day.as_mut() {
            day.last_timestamp_ns = day.last_timestamp_ns.max(timestamp_ns);
        }
        self.events.clear();
        self.engine.apply(timestamp_ns, command, &mut self.events);
        let events = std::mem::take(&mut self.events);
        let mut ebuf = [0u8; bourse_book::record::EVENT_SIZE_MAX];
        for event in &events {
            let journaled = journals_event(event);
            if !journaled && !S::WANTS_UNJOURNALED {
                continue;
            }
            let n = event.encode(&mut ebuf).expect("EVENT_SIZE_MAX holds every event");
            if journaled {
                sink.record(u16::from(ebuf[1]), &ebuf[..n])?;
            } else {
                sink.unjournaled(u16::from(ebuf[1]), &ebuf[..n])?;
            }
        }
        let end_of_day = matches!(command, Command::EndOfDay) && !events.is_empty();
        let mut result = Ok(());
        if end_of_day {
            result = self.emit_system_event(timestamp_ns, itch::EventCode::EndOfMarketHours, sink);
        }
        // After end of day the feed and the sessions have ended: an operator's halt, resume or kill switch
        // then only sets the state the next day starts with (its start-of-day block shows the halts).
        let day_closed = !self.day_open();
        let silent = day_closed
            && matches!(
                command,
                Command::Halt { .. } | Command::Resume { .. } | Command::KillSwitch { .. }
            );
        if result.is_ok() && !silent {
            // Not through `record_outputs`' `dyn FnMut`: through a sink whose `output` is inlined at
            // each message's emit site, where the message's length is a constant, so its copies into the
            // journal record and the release queue are inlined moves, not a `memcpy` call per output
            // (those calls were 7 % of the pipeline thread's samples at saturation; in process the
            // mapping now costs ~30 ns less per command: docs/PERFORMANCE.md, session 21).
            let mut recorder = Recorder {
                day: &mut self.day,
                requester,
                recv_ns,
                sink,
                result: Ok(()),
            };
            outputs::map_events(&events, echo, self.logins, &mut recorder);
            result = recorder.result;
        }
        if result.is_ok() && end_of_day {
            result = self.emit_system_event(timestamp_ns, itch::EventCode::EndOfMessages, sink);
            if result.is_ok() {
                let (session, day_base_unix_ns) = self
                    .day
                    .as_ref()
                    .map_or((Alpha::BLANK, 0), |d| (d.session, d.day_base_unix_ns));
                let record = j::DayRecord {
                    event: j::DAY_END,
                    session,
                    day_base_unix_ns,
                    timestamp_ns,
                };
                result = sink.record(j::KIND_DAY, &j::encode_day(&record)).map(|_| ());
                if let Some(day) = self.day.as_mut() {
                    day.day_open = false;
                }
            }
        }
        self.events = events;
        result
    }

    /// The events of the last command (for admin replies).
    pub fn last_events(&self) -> &[Event] {
        &self.events
    }

    /// Records an operator action on a login (disable, enable, force logout) and applies it.
    ///
    /// # Errors
    /// From the sink.
    pub fn login_action(
        &mut self,
        action: u8,
        login: u32,
        sink: &mut impl RecordSink,
    ) -> Result<u64, StepError> {
        let seq = sink.record(j::KIND_ADMIN, &j::encode_admin(action, login))?;
        if let Some(day) = self.day.as_mut()
            && let Some(slot) = day.disabled.get_mut(login as usize)
        {
            match action {
                j::ADMIN_DISABLE => *slot = true,
                j::ADMIN_ENABLE => *slot = false,
                _ => {}
            }
        }
        Ok(seq)
    }

    fn emit_system_event(
        &mut self,
        timestamp_ns: u64,
        code: itch::EventCode,
        sink: &mut impl RecordSink,
    ) -> Result<(), StepError> {
        record_outputs(&mut self.day, 0, 0, sink, |out| {
            outputs::system_event(&mut { out }, timestamp_ns, code);
        })
    }

    /// Symbol of instrument `locate` (1-based), if any.
    pub fn symbol(&self, locate: u16) -> Option<Symbol> {
        self.directory
            .get(usize::from(locate).checked_sub(1)?)
            .map(|d| d.symbol)
    }

    /// The checkpoint blob: day state, engine snapshot.
    pub fn checkpoint_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(CHECKPOINT_MAGIC);
        match &self.day {
            None => out.push(0),
            Some(d) => {
                out.push(1);
                out.extend_from_slice(&d.session.0);
                out.extend_from_slice(&d.day_base_unix_ns.to_le_bytes());
                out.push(u8::from(d.day_open));
                out.extend_from_slice(&d.day_start_journal_seq.to_le_bytes());
                out.extend_from_slice(&d.next_feed_seq.to_le_bytes());
                out.extend_from_slice(&d.last_timestamp_ns.to_le_bytes());
                out.extend_from_slice(&(d.next_session_seq.len() as u32).to_le_bytes());
                for (s, dis) in d.next_session_seq.iter().zip(&d.disabled) {
                    out.extend_from_slice(&s.to_le_bytes());
                    out.push(u8::from(*dis));
                }
            }
        }
        self.engine.snapshot(&mut out);
        out
    }

    /// Restores a machine from [`Machine::checkpoint_blob`] bytes.
    ///
    /// # Errors
    /// A description of what is wrong with the blob.
    pub fn from_checkpoint(engine_config: EngineConfig, blob: &[u8]) -> Result<Machine, String> {
        let mut r = Cursor { bytes: blob, pos: 0 };
        let magic = r.take(CHECKPOINT_MAGIC.len())?;
        if magic == b"BRSDCKP1" {
            return Err(
                "checkpoint written by an older boursed (BRSDCKP1, before book records version 2): \
                 keep that journal directory for the version that wrote it and start on an empty one"
                    .into(),
            );
        }
        if magic != CHECKPOINT_MAGIC {
            return Err("not a boursed checkpoint (magic)".into());
        }
        let day = match r.u8()? {
            0 => None,
            1 => {
                let session = Alpha(r.take(10)?.try_into().map_err(|_| "session")?);
                let day_base_unix_ns = r.u64()?;
                let day_open = r.u8()? == 1;
                let day_start_journal_seq = r.u64()?;
                let next_feed_seq = r.u64()?;
                let last_timestamp_ns = r.u64()?;
                let n = r.u32()? as usize;
                if n != engine_config.logins.len() + 1 {
                    return Err(format!(
                        "checkpoint has {} logins, config has {}: logins may only be appended between days",
                        n.saturating_sub(1),
                        engine_config.logins.len()
                    ));
                }
                let mut next_session_seq = Vec::with_capacity(n);
                let mut disabled = Vec::with_capacity(n);
                for _ in 0..n {
                    next_session_seq.push(r.u64()?);
                    disabled.push(r.u8()? == 1);
                }
                Some(DayState {
                    session,
                    day_base_unix_ns,
                    day_open,
                    day_start_journal_seq,
                    next_session_seq,
                    next_feed_seq,
                    disabled,
                    last_timestamp_ns,
                })
            }
            _ => return Err("bad day flag".into()),
        };
        let engine =
            Engine::restore(engine_config.clone(), &blob[r.pos..]).map_err(|e| format!("engine: {e}"))?;
        Ok(Machine::with_engine(engine_config, engine, day))
    }
}

/// Version 2 dropped the echo table (Capacity and Cross Type per live order), which the engine's snapshot
/// now holds.
const CHECKPOINT_MAGIC: &[u8; 8] = b"BRSDCKP2";

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("checkpoint truncated")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "u32")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "u64")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_book::EnterOrder;
    use bourse_protocol::fields::{Firm, Token};
    use bourse_protocol::ouch;

    fn enter(login: u32, token: &str, side: u8, shares: u32, tif_s: u32, echo: [u8; 3]) -> Command {
        Command::Enter(EnterOrder {
            login,
            token: Token::new(token).unwrap(),
            side,
            shares,
            symbol: Symbol::new("AAPL").unwrap(),
            price: 1_900_000,
            tif_s,
            firm: Firm::BLANK,
            display: b'Y',
            min_qty: 0,
            capacity: echo[0],
            cross_type: echo[2],
        })
    }

    const NO_ECHO: [u8; 3] = *b"   ";

    /// Counts records (the journal sequence is the count) and keeps the OUCH and ITCH messages.
    #[derive(Default)]
    struct Published {
        records: u64,
        ouch: Vec<Vec<u8>>,
        itch: Vec<Vec<u8>>,
    }

    impl RecordSink for Published {
        fn record(&mut self, _: u16, _: &[u8]) -> Result<u64, StepError> {
            self.records += 1;
            Ok(self.records)
        }
        fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, bytes: &[u8]) {
            self.ouch.push(bytes.to_vec());
        }
        fn itch(&mut self, _: u64, _: u64, bytes: &[u8]) {
            self.itch.push(bytes.to_vec());
        }
    }

    /// After end of day the feed and the sessions have ended: a halt and a kill switch publish nothing
    /// then, and the next day starts with both (the halt in its start-of-day block, the kill switch
    /// rejecting the firm's orders).
    #[test]
    fn a_halt_and_a_kill_switch_after_end_of_day_publish_nothing_and_last_into_the_next_day() {
        let config = crate::config::Config::embedded_default().engine_config();
        let mut m = Machine::new(config);
        let mut sink = Published::default();
        let aapl = Symbol::new("AAPL").unwrap();
        let alfa = Firm::new("ALFA").unwrap();
        m.start_day(Alpha(*b"2026112801"), 0, 1, &mut sink).unwrap();
        // Before end of day a halt is on the feed (Stock Trading Action, state H).
        m.command(2, NO_ECHO, &Command::Halt { symbol: aapl }, 0, 0, &mut sink)
            .unwrap();
        assert!(matches!(&sink.itch[..], [.., h] if h[0] == b'H' && h[19] == b'H'));
        m.command(3, NO_ECHO, &Command::Resume { symbol: aapl }, 0, 0, &mut sink)
            .unwrap();
        m.command(4, NO_ECHO, &Command::EndOfDay, 0, 0, &mut sink)
            .unwrap();
        let records = sink.records;
        sink.ouch.clear();
        sink.itch.clear();
        m.command(5, NO_ECHO, &Command::Halt { symbol: aapl }, 0, 0, &mut sink)
            .unwrap();
        m.command(
            6,
            NO_ECHO,
            &Command::KillSwitch { firm: alfa, on: true },
            0,
            0,
            &mut sink,
        )
        .unwrap();
        assert!(
            sink.ouch.is_empty() && sink.itch.is_empty(),
            "{:?} {:?}",
            sink.ouch,
            sink.itch
        );
        assert!(sink.records > records, "the commands themselves are journaled");
        assert_eq!(m.engine.is_halted(&aapl), Some(true));
        assert_eq!(m.engine.is_killed(&alfa), Some(true));

        m.start_day(Alpha(*b"2026112802"), 0, 7, &mut sink).unwrap();
        assert!(
            sink.itch
                .iter()
                .any(|h| h[0] == b'H' && h[11..19] == *b"AAPL    " && h[19] == b'H'),
            "the next day's start shows AAPL halted: {:?}",
            sink.itch
        );
        assert_eq!(m.engine.is_killed(&alfa), Some(true));
        sink.ouch.clear();
        m.command(
            8,
            NO_ECHO,
            &enter(1, "K1", b'B', 100, 99_999, NO_ECHO),
            1,
            0,
            &mut sink,
        )
        .unwrap();
        let ouch::Outbound::Rejected(r) = ouch::Outbound::decode(&sink.ouch[0]).unwrap() else {
            panic!("not a Rejected: {:?}", sink.ouch[0]);
        };
        assert_eq!(r.reason, b'a', "the kill switch of ALFA still on");
    }

    /// Capacity and Cross Type of the Enter reach the Accepted and, through a checkpoint and a restore,
    /// the Replaced of a replacement (the engine keeps them: OUCH's Replace carries neither); the ISO of
    /// each is its own request's.
    #[test]
    fn capacity_and_cross_type_survive_a_checkpoint_into_the_replaced() {
        let config = crate::config::Config::embedded_default().engine_config();
        let mut m = Machine::new(config);
        let mut sink = Published::default();
        m.start_day(Alpha(*b"2026112601"), 0, 1, &mut sink).unwrap();
        sink.ouch.clear();
        m.command(
            2,
            *b"PYC",
            &enter(1, "A", b'B', 100, 99_999, *b"PYC"),
            1,
            0,
            &mut sink,
        )
        .unwrap();
        let ouch::Outbound::Accepted(a) = ouch::Outbound::decode(&sink.ouch[0]).unwrap() else {
            panic!("not an Accepted: {:?}", sink.ouch[0]);
        };
        assert_eq!(
            (a.capacity, a.intermarket_sweep, a.cross_type),
            (b'P', b'Y', b'C')
        );
        let blob = m.checkpoint_blob();
        let mut restored = Machine::from_checkpoint(m.engine_config().clone(), &blob).unwrap();
        assert_eq!(restored.checkpoint_blob(), blob);
        assert_eq!(restored.day, m.day);
        // A checkpoint of the format before (with the outputs' echo table) is refused by name.
        let mut old = blob.clone();
        old[..8].copy_from_slice(b"BRSDCKP1");
        match Machine::from_checkpoint(m.engine_config().clone(), &old) {
            Err(e) => assert!(e.contains("older boursed"), "{e}"),
            Ok(_) => panic!("a BRSDCKP1 checkpoint was restored"),
        }
        let replace = Command::Replace(bourse_book::ReplaceOrder {
            login: 1,
            existing_token: Token::new("A").unwrap(),
            replacement_token: Token::new("A2").unwrap(),
            shares: 100,
            price: 1_900_000,
            tif_s: 99_999,
            display: b'Y',
            min_qty: 0,
        });
        sink.ouch.clear();
        restored.command(3, *b" N ", &replace, 1, 0, &mut sink).unwrap();
        let ouch::Outbound::Replaced(r) = ouch::Outbound::decode(&sink.ouch[0]).unwrap() else {
            panic!("not a Replaced: {:?}", sink.ouch[0]);
        };
        assert_eq!(
            (r.capacity, r.intermarket_sweep, r.cross_type),
            (b'P', b'N', b'C')
        );
    }
}
