//! The pipeline's compute, in process: one seeded command stream replayed through the stages the
//! `boursed` pipeline thread runs for every request, each added on top of the one before, all in the same
//! run, so that each stage's cost per command is a difference of medians measured minutes apart at most.
//!
//! 1. **engine**: `bourse_book::Engine::apply` into a reused event vector (the baseline);
//! 2. **+ outputs**: `bourse_daemon::machine::Machine::command`: the engine, the events mapped to OUCH and
//!    ITCH, every record encoded, session and feed numbering; records and messages go to a sink that
//!    only counts them;
//! 3. **+ journal**: the same, with every record appended to a real journal (`MmapStorage` in a temporary
//!    directory, sync `none`, spares built on a background thread as `boursed` does) and committed every
//!    [`BATCH_COMMANDS`] commands, and each OUCH/ITCH message copied into its release queue (as the core's
//!    `LiveSink` does);
//! 4. **+ feed book**: the same, with each ITCH message applied to a `FeedBook` (the market-data stage's
//!    snapshot book, built from the ITCH bytes).
//!
//! Every stage looks ahead as the daemon does, two messages deep (the live-index slots of the command
//! after next and the arena slot of the order the next one names, and in the feed stage the feed-book
//! bucket of the ITCH message after next and the order slot of the next, prefetched with the daemon's
//! own `bourse_daemon::core::prefetch_commands` and `prefetch_feed_messages`);
//! `--no-lookahead` runs them without, as before session 6.
//!
//! What it leaves out: sockets, SoupBinTCP framing, the rings between stages, the multicast packets and
//! the client, i.e. everything whose cost depends on the machine's network path and on the load
//! generator; `e2e` measures those. Being one thread with no peer, these figures move much less with the
//! host's noise than `e2e`'s throughput steps (which a client competes in), so they are the place to see
//! a change of a few per cent. Absolute figures are context only.
//!
//! ```text
//! cargo run --release -p bourse-benches --bin pipeline
//! cargo run --release -p bourse-benches --bin pipeline -- --commands 500000 --rounds 3 --mix common
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bourse_book::feed::{FeedBook, FeedBookLimits};
use bourse_book::workload::{Mix, Workload, WorkloadParams};
use bourse_book::{Command, Engine, EngineConfig, Event};
use bourse_daemon::machine::{Machine, RecordSink, StepError};
use bourse_journal::{Journal, JournalConfig, MmapStorage, SyncPolicy};
use bourse_protocol::fields::Alpha;
use clap::Parser;

/// The daemon's allocator, so that the tables sit on the same pages as in `boursed`.
#[global_allocator]
static ALLOC: bourse_daemon::huge_pages::HugePageAlloc = bourse_daemon::huge_pages::HugePageAlloc;

/// Commands per journal batch (the core commits once per round; at saturation a round takes dozens).
const BATCH_COMMANDS: usize = 64;
/// The OUCH echo bytes every Enter carries (Capacity, ISO, Cross Type).
const ECHO: [u8; 3] = *b"PNN";

#[derive(Debug, Parser)]
#[command(about = "The pipeline's compute in process: engine, + outputs, + journal, + feed book")]
struct Args {
    /// Commands in the stream.
    #[arg(long, default_value_t = 2_000_000)]
    commands: usize,
    /// Rounds (each stage once per round, in the same order); figures are medians over rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seed of the stream.
    #[arg(long, default_value_t = 0x5eed_2026)]
    seed: u64,
    /// `full` (every command kind the engine has) or `common` (adds, cancels, aggressive and market).
    #[arg(long, default_value = "full")]
    mix: String,
    /// Directory for the journals (one per run, removed after it); default: the system's temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The engine's order capacity (its tables are sized from it; `e2e` gives boursed 4,000,000).
    #[arg(long, default_value_t = 1 << 16)]
    orders_max: u32,
    /// The day's token capacity (at least the commands; `e2e` gives boursed 20,000,000).
    #[arg(long, default_value_t = 0)]
    tokens_max: u32,
    /// Without the daemon's lookahead (the core prefetching the live-index slots and arena slots of the
    /// next commands, market data the feed-book buckets and order slots of the next ITCH messages): the
    /// stages as before session 6.
    #[arg(long)]
    no_lookahead: bool,
}

/// The daemon's lookahead, if `on`: prefetches the arena slot command `i + 1` will read and the
/// live-index slots command `i + 2` will touch.
#[inline(always)]
fn look_ahead(on: bool, engine: &Engine, commands: &[(u64, Command)], i: usize) {
    if on {
        let command = |k: usize| commands.get(k).map(|(_, c)| c);
        bourse_daemon::core::prefetch_commands(engine, command(i + 1), command(i + 2));
    }
}

/// A sink that numbers records and counts messages: what the outputs cost without a journal.
#[derive(Default)]
struct CountSink {
    next: u64,
    ouch: u64,
    itch: u64,
}

impl RecordSink for CountSink {
    fn record(&mut self, _kind: u16, payload: &[u8]) -> Result<u64, StepError> {
        self.next += 1;
        std::hint::black_box(payload);
        Ok(self.next)
    }
    fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, bytes: &[u8]) {
        self.ouch += 1;
        std::hint::black_box(bytes);
    }
    fn itch(&mut self, _: u64, _: u64, bytes: &[u8]) {
        self.itch += 1;
        std::hint::black_box(bytes);
    }
}

/// One queued message, as the core keeps it until the journal releases it.
#[derive(Clone, Copy)]
struct Queued {
    len: u8,
    bytes: [u8; 80],
}

/// A sink that journals every record and queues every message, optionally applying ITCH to a feed book.
struct JournalSink {
    journal: Journal<MmapStorage>,
    ouch: VecDeque<Queued>,
    itch: VecDeque<Queued>,
    feed: Option<FeedBook>,
    /// Prefetch the next ITCH message's feed-book bucket, as market data does.
    lookahead: bool,
}

impl JournalSink {
    fn queue(queue: &mut VecDeque<Queued>, bytes: &[u8]) {
        queue.push_back(Queued {
            len: bytes.len() as u8,
            bytes: [0; 80],
        });
        if let Some(q) = queue.back_mut() {
            q.bytes[..bytes.len()].copy_from_slice(bytes);
        }
    }

    /// Commits the batch and releases the queues (the core hands them to ingress and market data).
    fn commit(&mut self) -> Result<()> {
        self.journal.commit_batch()?;
        let released = self.ouch.len() + self.itch.len();
        std::hint::black_box(released);
        if let Some(feed) = self.feed.as_mut() {
            for (i, m) in self.itch.iter().enumerate() {
                if self.lookahead {
                    let message = |k: usize| self.itch.get(k).map(|m| &m.bytes[..usize::from(m.len)]);
                    bourse_daemon::core::prefetch_feed_messages(feed, message(i + 1), message(i + 2));
                }
                feed.apply_bytes(&m.bytes[..usize::from(m.len)])
                    .map_err(|e| anyhow::anyhow!("feed book refused our own ITCH: {e}"))?;
            }
        }
        self.ouch.clear();
        self.itch.clear();
        Ok(())
    }
}

impl RecordSink for JournalSink {
    fn record(&mut self, kind: u16, payload: &[u8]) -> Result<u64, StepError> {
        bourse_daemon::core::append_step_record(&mut self.journal, kind, payload)
    }
    fn ouch(&mut self, _: u32, _: u64, _: u64, _: u64, bytes: &[u8]) {
        Self::queue(&mut self.ouch, bytes);
    }
    fn itch(&mut self, _: u64, _: u64, bytes: &[u8]) {
        Self::queue(&mut self.itch, bytes);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Engine,
    Outputs,
    Journal,
    Feed,
}

const STAGES: [Stage; 4] = [Stage::Engine, Stage::Outputs, Stage::Journal, Stage::Feed];

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Engine => "engine",
            Stage::Outputs => "+ outputs (events -> OUCH/ITCH, records encoded)",
            Stage::Journal => "+ journal (append, commit every 64, queues)",
            Stage::Feed => "+ feed book (ITCH applied)",
        }
    }
}

/// What a run produced, to check that every stage ran the same matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Outcome {
    state_hash: u64,
}

fn run(
    stage: Stage,
    config: &EngineConfig,
    commands: &[(u64, Command)],
    dir: &std::path::Path,
    lookahead: bool,
) -> Result<(f64, Outcome)> {
    match stage {
        Stage::Engine => {
            let mut engine = Engine::new(config.clone()).context("engine config")?;
            let mut events: Vec<Event> = Vec::with_capacity(4096);
            let start = Instant::now();
            for (i, (ts, command)) in commands.iter().enumerate() {
                look_ahead(lookahead, &engine, commands, i);
                engine.apply(*ts, command, &mut events);
                std::hint::black_box(events.len());
                events.clear();
            }
            let ns = start.elapsed().as_nanos() as f64;
            Ok((
                ns,
                Outcome {
                    state_hash: engine.state_hash(),
                },
            ))
        }
        Stage::Outputs => {
            let mut machine = Machine::new(config.clone());
            let mut sink = CountSink::default();
            machine.start_day(Alpha(*b"2026112701"), 0, 1, &mut sink)?;
            let start = Instant::now();
            for (i, (ts, command)) in commands.iter().enumerate() {
                look_ahead(lookahead, &machine.engine, commands, i);
                machine.command(*ts, ECHO, command, 1, 0, &mut sink)?;
            }
            let ns = start.elapsed().as_nanos() as f64;
            std::hint::black_box((sink.ouch, sink.itch));
            Ok((
                ns,
                Outcome {
                    state_hash: machine.engine.state_hash(),
                },
            ))
        }
        Stage::Journal | Stage::Feed => {
            let journal_dir = dir.join(format!("journal-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&journal_dir);
            std::fs::create_dir_all(&journal_dir)?;
            let result = (|| -> Result<(f64, Outcome)> {
                let mut storage = MmapStorage::open(&journal_dir)?;
                storage.build_spares_in_background_with(|| {})?;
                let journal_config = JournalConfig {
                    sync_policy: SyncPolicy::None,
                    ..JournalConfig::default()
                };
                let (journal, _) = Journal::open(storage, journal_config)?;
                let feed = (stage == Stage::Feed).then(|| {
                    FeedBook::new(FeedBookLimits {
                        locates_max: config.instruments.len() as u16,
                        orders_max: config.orders_max,
                        levels_max: config.levels_max,
                    })
                });
                let mut sink = JournalSink {
                    journal,
                    ouch: VecDeque::with_capacity(1 << 14),
                    itch: VecDeque::with_capacity(1 << 14),
                    feed,
                    lookahead,
                };
                let mut machine = Machine::new(config.clone());
                machine.start_day(Alpha(*b"2026112701"), 0, 1, &mut sink)?;
                sink.commit()?;
                let start = Instant::now();
                for (i, (ts, command)) in commands.iter().enumerate() {
                    look_ahead(lookahead, &machine.engine, commands, i);
                    machine.command(*ts, ECHO, command, 1, 0, &mut sink)?;
                    if i % BATCH_COMMANDS == BATCH_COMMANDS - 1 {
                        sink.commit()?;
                    }
                }
                sink.commit()?;
                let ns = start.elapsed().as_nanos() as f64;
                Ok((
                    ns,
                    Outcome {
                        state_hash: machine.engine.state_hash(),
                    },
                ))
            })();
            let _ = std::fs::remove_dir_all(&journal_dir);
            result
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mix = match args.mix.as_str() {
        "full" => Mix::FULL,
        "common" => Mix::COMMON,
        other => anyhow::bail!("--mix {other}: expected full or common"),
    };
    anyhow::ensure!(
        args.commands > 0 && args.rounds > 0,
        "--commands and --rounds must be above 0"
    );
    let mut params = WorkloadParams::new(args.seed, mix);
    params.orders_max = args.orders_max;
    params.tokens_max = params.tokens_max.max(args.tokens_max);
    let config = params.config_for(args.commands);
    let commands: Vec<(u64, Command)> = Workload::new(params).take(args.commands).collect();
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    println!(
        "pipeline: {} commands ({} mix, seed {:#x}), {} instruments, {} logins, orders_max {}, tokens_max {}, {} rounds, lookahead {}",
        args.commands,
        args.mix,
        args.seed,
        params.instruments,
        params.logins,
        config.orders_max,
        config.tokens_max,
        args.rounds,
        if args.no_lookahead { "off" } else { "on" }
    );
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut expected: Option<Outcome> = None;
    for round in 1..=args.rounds {
        for (i, stage) in STAGES.iter().enumerate() {
            let (ns, outcome) = run(*stage, &config, &commands, &dir, !args.no_lookahead)?;
            // Every stage must have run the same matching, or the differences mean nothing.
            match expected {
                None => expected = Some(outcome),
                Some(e) => anyhow::ensure!(
                    e == outcome,
                    "stage {:?} ended in another state ({:?} against {:?})",
                    stage,
                    outcome,
                    e
                ),
            }
            let per_command = ns / args.commands as f64;
            eprintln!(
                "round {round}/{}: {:<52} {per_command:>7.1} ns/command",
                args.rounds,
                stage.name()
            );
            per_stage[i].push(per_command);
        }
    }
    println!();
    println!("| stage | ns/command (median) | min..max | added by the stage | x engine |");
    println!("|---|---:|---:|---:|---:|");
    let medians: Vec<f64> = per_stage.iter_mut().map(|v| median(v)).collect();
    for (i, stage) in STAGES.iter().enumerate() {
        let v = &per_stage[i];
        let (lo, hi) = (
            v.first().copied().unwrap_or(0.0),
            v.last().copied().unwrap_or(0.0),
        );
        let added = if i == 0 {
            medians[0]
        } else {
            medians[i] - medians[i - 1]
        };
        println!(
            "| {} | {:.1} | {:.1}..{:.1} | {:.1} | {:.2}x |",
            stage.name(),
            medians[i],
            lo,
            hi,
            added,
            medians[i] / medians[0]
        );
    }
    Ok(())
}
