//! `book_vs_peers`: bourse-book against the order books on crates.io, in one process, on one workload.
//!
//! Mode `side-by-side` generates the fixed-seed workload (`bourse_benches::workload`), then for each of
//! `--rounds` rounds replays it into a fresh instance of every engine in turn (untimed per operation:
//! one clock pair around the replay) and reports the median ops/s and the median of the per-round
//! ratios (the replays of one round ran back to back, under the same load); then one more replay per engine with a
//! clock pair around every operation gives p50/p99/p99.9 per operation kind. After every replay the
//! engine's depth per level, traded volume and trade count must equal the reference model's, or the run
//! stops: numbers from an engine that did different matching mean nothing.
//!
//! Mode `full-mix` runs bourse-book alone on the book crate's full command mix (replaces, reduces,
//! modifies, STP, risk rejects, expiry), with the same two-pass method.
//!
//! Run it in release: `cargo run --release -p bourse-benches --bin book_vs_peers -- --help`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use bourse_protocol::reason::RejectReason;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

use bourse_benches::engine::BookOutcome;
use bourse_benches::engines::bourse::BourseBook;
use bourse_benches::engines::lobster::LobsterBook;
use bourse_benches::engines::matchcore::MatchcoreBook;
use bourse_benches::engines::orderbook_rs::OrderbookRsBook;
use bourse_benches::full_mix::{FullMixClass, run_full_mix};
use bourse_benches::measure::{ThroughputRun, clock_pair_overhead_ns, latency, median, throughput};
use bourse_benches::model::ReferenceBook;
use bourse_benches::workload::{OpKind, Workload, WorkloadConfig, generate};

/// `boursed`'s allocator for every engine alike: allocations of 4 MiB or more on transparent huge pages.
#[global_allocator]
static ALLOC: bourse_daemon::huge_pages::HugePageAlloc = bourse_daemon::huge_pages::HugePageAlloc;

/// Default seed of both modes.
const SEED_DEFAULT: u64 = 0xB05E_2026;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Every engine on the common workload.
    SideBySide,
    /// bourse-book alone on its full command mix.
    FullMix,
    /// Both.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineId {
    /// bourse-book.
    Bourse,
    /// lobster 0.7.0.
    Lobster,
    /// orderbook-rs 0.15.3.
    OrderbookRs,
    /// matchcore 0.4.0.
    Matchcore,
    /// The naive reference model (a baseline, not a peer).
    Model,
}

impl EngineId {
    fn is_peer(self) -> bool {
        matches!(
            self,
            EngineId::Lobster | EngineId::OrderbookRs | EngineId::Matchcore
        )
    }
}

/// bourse-book against lobster, orderbook-rs and matchcore on one fixed-seed workload.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// Workload seed.
    #[arg(long, default_value_t = SEED_DEFAULT)]
    seed: u64,
    /// Operations in the side-by-side workload.
    #[arg(long, default_value_t = 2_000_000)]
    ops: usize,
    /// Commands in the full mix.
    #[arg(long, default_value_t = 2_000_000)]
    full_mix_commands: usize,
    /// Throughput rounds (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Engines in the side-by-side run (comma separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bourse,lobster,orderbook-rs,matchcore,model"
    )]
    engines: Vec<EngineId>,
    /// Skip the per-operation latency pass.
    #[arg(long)]
    no_latency: bool,
}

fn name(engine: EngineId) -> &'static str {
    match engine {
        EngineId::Bourse => "bourse-book",
        EngineId::Lobster => "lobster 0.7.0",
        EngineId::OrderbookRs => "orderbook-rs 0.15.3",
        EngineId::Matchcore => "matchcore 0.4.0",
        EngineId::Model => "reference model",
    }
}

fn run_throughput(engine: EngineId, workload: &Workload) -> ThroughputRun {
    let sizing = &workload.sizing;
    let ops = &workload.ops;
    match engine {
        EngineId::Bourse => throughput(|| BourseBook::new(sizing), ops),
        EngineId::Lobster => throughput(|| LobsterBook::new(sizing), ops),
        EngineId::OrderbookRs => throughput(|| OrderbookRsBook::new(sizing), ops),
        EngineId::Matchcore => throughput(|| MatchcoreBook::new(sizing), ops),
        EngineId::Model => throughput(|| ReferenceBook::with_capacity(ops.len() + 1), ops),
    }
}

fn run_latency(engine: EngineId, workload: &Workload) -> bourse_benches::measure::LatencyRun {
    let sizing = &workload.sizing;
    let ops = &workload.ops;
    match engine {
        EngineId::Bourse => latency(|| BourseBook::new(sizing), ops),
        EngineId::Lobster => latency(|| LobsterBook::new(sizing), ops),
        EngineId::OrderbookRs => latency(|| OrderbookRsBook::new(sizing), ops),
        EngineId::Matchcore => latency(|| MatchcoreBook::new(sizing), ops),
        EngineId::Model => latency(|| ReferenceBook::with_capacity(ops.len() + 1), ops),
    }
}

fn check_outcome(engine: EngineId, outcome: &BookOutcome, workload: &Workload) -> Result<()> {
    if let Some(difference) = outcome.first_difference(&workload.expected) {
        bail!(
            "{} did different matching: {difference}\n  got      {}\n  expected {}",
            name(engine),
            outcome.summary(),
            workload.expected.summary()
        );
    }
    Ok(())
}

fn percentiles(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return "| – | – | – | – |".to_owned();
    }
    format!(
        "| {} | {} | {} | {} |",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max()
    )
}

fn side_by_side(args: &Args) -> Result<()> {
    let config = WorkloadConfig::side_by_side(args.seed, args.ops);
    let workload = generate(&config);
    println!(
        "## Side by side: {} operations, seed {:#x}\n",
        workload.ops.len(),
        args.seed
    );
    let kinds: Vec<String> = OpKind::ALL
        .iter()
        .map(|kind| format!("{} {}", workload.kind_counts[kind.index()], kind.name()))
        .collect();
    println!("operations: {}", kinds.join(", "));
    println!(
        "peak live orders {}, largest id {}, price band {}..={} ticks",
        workload.sizing.live_orders_max,
        workload.sizing.order_id_max,
        workload.sizing.price_min_ticks,
        workload.sizing.price_max_ticks
    );
    println!("expected end state: {}\n", workload.expected.summary());

    let rounds = args.rounds.max(1);
    let mut ops_per_s: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); args.engines.len()];
    for round in 0..rounds {
        for (slot, engine) in args.engines.iter().enumerate() {
            let run = run_throughput(*engine, &workload);
            check_outcome(*engine, &run.outcome, &workload)?;
            eprintln!(
                "round {}/{rounds}: {:<22} {:>12.0} ops/s ({:.3} s)",
                round + 1,
                name(*engine),
                run.ops_per_s(),
                run.elapsed.as_secs_f64()
            );
            ops_per_s[slot].push(run.ops_per_s());
        }
    }
    let medians: Vec<f64> = ops_per_s.iter().map(|runs| median(runs)).collect();
    let bourse_slot = args.engines.iter().position(|engine| *engine == EngineId::Bourse);
    // The ratio to each engine is the median of per-round ratios: the two replays of a round ran
    // back to back, so they shared the machine's load; medians of separate columns need not.
    let ratio_to = |slot: usize| -> Option<f64> {
        let bourse_runs = &ops_per_s[bourse_slot?];
        let ratios: Vec<f64> = bourse_runs
            .iter()
            .zip(&ops_per_s[slot])
            .map(|(bourse, other)| bourse / other)
            .collect();
        Some(median(&ratios))
    };

    println!("### Throughput ({rounds} rounds; every run checked for same matching)\n");
    println!(
        "| engine | ops/s (median) | min..max over rounds | ns/op (median) | bourse-book ÷ engine (median of per-round ratios) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (slot, engine) in args.engines.iter().enumerate() {
        let runs = &ops_per_s[slot];
        let low = runs.iter().copied().fold(f64::INFINITY, f64::min);
        let high = runs.iter().copied().fold(0.0, f64::max);
        let ratio = ratio_to(slot).map_or("–".to_owned(), |ratio| format!("{ratio:.2}×"));
        println!(
            "| {} | {:.0} | {:.0}..{:.0} | {:.0} | {ratio} |",
            name(*engine),
            medians[slot],
            low,
            high,
            1e9 / medians[slot]
        );
    }
    let fastest_peer = args
        .engines
        .iter()
        .enumerate()
        .filter(|(_, engine)| engine.is_peer())
        .max_by(|(a, _), (b, _)| medians[*a].total_cmp(&medians[*b]));
    if let Some((slot, engine)) = fastest_peer
        && let Some(ratio) = ratio_to(slot)
    {
        println!(
            "\nbourse-book ÷ fastest peer ({}): {ratio:.2}× (target ≥ 1.5×)\n",
            name(*engine)
        );
    }

    if args.no_latency {
        return Ok(());
    }
    println!(
        "### Latency per operation, ns (one clock pair per operation; a pair alone costs ~{} ns here)\n",
        clock_pair_overhead_ns()
    );
    println!("| engine | operation | count | p50 | p99 | p99.9 | max |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for engine in &args.engines {
        let run = run_latency(*engine, &workload);
        check_outcome(*engine, &run.outcome, &workload)?;
        for kind in OpKind::ALL {
            let histogram = run.kind(kind);
            println!(
                "| {} | {} | {} {}",
                name(*engine),
                kind.name(),
                histogram.len(),
                percentiles(histogram)
            );
        }
    }
    println!();
    Ok(())
}

fn full_mix(args: &Args) -> Result<()> {
    let rounds = args.rounds.max(1);
    println!(
        "## bourse-book alone, full mix: {} commands, seed {:#x}\n",
        args.full_mix_commands, args.seed
    );
    let mut per_s = Vec::with_capacity(rounds);
    let mut reference = None;
    for round in 0..rounds {
        let run = run_full_mix(args.seed, args.full_mix_commands, false);
        eprintln!(
            "full mix round {}/{rounds}: {:.0} commands/s",
            round + 1,
            run.commands_per_s()
        );
        per_s.push(run.commands_per_s());
        let signature = (run.events_count, run.executions_count, run.live_orders_end);
        if *reference.get_or_insert(signature) != signature {
            bail!("full mix is not deterministic: {signature:?} vs {reference:?}");
        }
    }
    let timed = run_full_mix(args.seed, args.full_mix_commands, true);
    println!(
        "{:.0} commands/s (median of {rounds} rounds; apply only, generation excluded); {} events, {} executions, \
         {} live orders at the end\n",
        median(&per_s),
        timed.events_count,
        timed.executions_count,
        timed.live_orders_end
    );
    if timed
        .reject_reasons
        .iter()
        .any(|(reason, _)| *reason == RejectReason::CapacityFull)
    {
        bail!(
            "the full mix met a capacity limit ({:?}): its numbers would be rejects",
            timed.reject_reasons
        );
    }
    let reasons: Vec<String> = timed
        .reject_reasons
        .iter()
        .map(|(reason, count)| format!("{reason:?} {count}"))
        .collect();
    println!(
        "reject events by reason: {}\n",
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        }
    );
    println!("| operation | count | p50 | p99 | p99.9 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for class in FullMixClass::ALL {
        let histogram = &timed.by_class[class.index()];
        if !histogram.is_empty() {
            println!(
                "| {} | {} {}",
                class.name(),
                histogram.len(),
                percentiles(histogram)
            );
        }
    }
    println!();
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; measure with --release");
    }
    let result = match args.mode {
        Mode::SideBySide => side_by_side(&args),
        Mode::FullMix => full_mix(&args),
        Mode::All => side_by_side(&args).and_then(|()| full_mix(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
