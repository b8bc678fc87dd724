//! "Our full mix": bourse-book alone on the book crate's own command generator with every command kind
//! (`bourse_book::workload::Mix::FULL`: passive and aggressive day orders, IOC and fill-or-kill, market
//! orders, cancels, reduces, replaces, modifies, self-trade prevention between firms, risk rejects,
//! expiring orders and their timer), measured per operation class.
//!
//! Commands are generated in chunks of [`CHUNK_COMMANDS`] into a reused buffer so the generator's own
//! cost stays outside every timed region and the stream never needs to sit in memory whole.
//!
//! An operation's class comes from the command and the events it produced: a command answered with a
//! reject is a "risk reject" whatever it was; one that triggered self-trade prevention is "stp".

use std::hint::black_box;
use std::time::{Duration, Instant};

use bourse_book::workload::{Mix, Workload, WorkloadParams};
use bourse_book::{Command, Engine, EngineConfig, Event, FnSink};
use bourse_protocol::fields::PRICE_MARKET;
use bourse_protocol::reason::RejectReason;
use hdrhistogram::Histogram;

use crate::measure::{latency_histogram, record_ns};

/// Commands generated per chunk.
pub const CHUNK_COMMANDS: usize = 1 << 16;
/// Live orders the full-mix engine can hold: above the ~80 k a 2 M-command run leaves resting, and
/// small enough that the live-order index stays cache-sized (it has 2 slots per order).
pub const FULL_MIX_ORDERS_MAX: u32 = 1 << 17;
/// Capacity of the event buffer (cleared after every command; never grown by the workload's commands).
pub const EVENTS_MAX: usize = 1 << 16;

/// Operation classes of the full mix, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FullMixClass {
    /// Enter of a day or expiring limit order that was not rejected and triggered no STP.
    EnterLimit,
    /// Enter with time in force 0 (IOC, fill-or-kill when minimum quantity = size).
    EnterIoc,
    /// Enter of a market order.
    EnterMarket,
    /// Cancel to size 0.
    Cancel,
    /// Cancel to a smaller size (keeps priority).
    Reduce,
    /// Replace.
    Replace,
    /// Modify.
    Modify,
    /// Any command answered with a reject event (risk checks: tick, lot, size, symbol, collar...).
    RiskReject,
    /// Any command during which self-trade prevention canceled shares.
    SelfTradePrevention,
    /// The expiry timer command.
    ExpireDue,
    /// Anything else.
    Other,
}

impl FullMixClass {
    /// Every class, in report order.
    pub const ALL: [FullMixClass; 11] = [
        FullMixClass::EnterLimit,
        FullMixClass::EnterIoc,
        FullMixClass::EnterMarket,
        FullMixClass::Cancel,
        FullMixClass::Reduce,
        FullMixClass::Replace,
        FullMixClass::Modify,
        FullMixClass::RiskReject,
        FullMixClass::SelfTradePrevention,
        FullMixClass::ExpireDue,
        FullMixClass::Other,
    ];

    /// Position in [`FullMixClass::ALL`].
    pub fn index(self) -> usize {
        FullMixClass::ALL
            .iter()
            .position(|class| *class == self)
            .expect("every class is listed")
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FullMixClass::EnterLimit => "enter limit (day/expiring)",
            FullMixClass::EnterIoc => "enter IOC/FOK",
            FullMixClass::EnterMarket => "enter market",
            FullMixClass::Cancel => "cancel",
            FullMixClass::Reduce => "reduce",
            FullMixClass::Replace => "replace",
            FullMixClass::Modify => "modify",
            FullMixClass::RiskReject => "risk reject",
            FullMixClass::SelfTradePrevention => "self-trade prevention",
            FullMixClass::ExpireDue => "expiry timer",
            FullMixClass::Other => "other",
        }
    }

    /// The class of `command`, given the events it produced.
    pub fn of(command: &Command, events: &[Event]) -> Self {
        if events.iter().any(|event| matches!(event, Event::Rejected { .. })) {
            return FullMixClass::RiskReject;
        }
        if events
            .iter()
            .any(|event| matches!(event, Event::SelfTradeCanceled(_)))
        {
            return FullMixClass::SelfTradePrevention;
        }
        match command {
            Command::Enter(order) if order.price == PRICE_MARKET => FullMixClass::EnterMarket,
            Command::Enter(order) if order.tif_s == 0 => FullMixClass::EnterIoc,
            Command::Enter(_) => FullMixClass::EnterLimit,
            Command::Cancel { shares: 0, .. } => FullMixClass::Cancel,
            Command::Cancel { .. } => FullMixClass::Reduce,
            Command::Replace(_) => FullMixClass::Replace,
            Command::Modify { .. } => FullMixClass::Modify,
            Command::ExpireDue => FullMixClass::ExpireDue,
            _ => FullMixClass::Other,
        }
    }
}

/// What one full-mix replay measured.
#[derive(Debug, Clone)]
pub struct FullMixRun {
    /// Commands applied.
    pub commands_count: usize,
    /// Time spent inside `Engine::apply` only (generation excluded), summed over chunks.
    pub apply_elapsed: Duration,
    /// Per-class latency histograms (empty when the run was not per-operation timed).
    pub by_class: Vec<Histogram<u64>>,
    /// Commands per class (per-operation runs only; zeros otherwise).
    pub class_counts: [u64; FullMixClass::ALL.len()],
    /// Events produced.
    pub events_count: u64,
    /// Executions produced.
    pub executions_count: u64,
    /// Live orders at the end.
    pub live_orders_end: usize,
    /// Reject events per reason, sorted by reason (per-operation runs only).
    pub reject_reasons: Vec<(RejectReason, u64)>,
}

impl FullMixRun {
    /// Commands per second of `apply` time.
    pub fn commands_per_s(&self) -> f64 {
        self.commands_count as f64 / self.apply_elapsed.as_secs_f64()
    }
}

/// The generator parameters of the full mix from `seed`.
pub fn full_mix_params(seed: u64) -> WorkloadParams {
    WorkloadParams::new(seed, Mix::FULL)
}

/// The engine configuration of a full-mix run of `commands_count` commands: the book crate's
/// `config_for` (a token for every command) with room for [`FULL_MIX_ORDERS_MAX`] live orders, so no
/// command meets a capacity limit — the mix's rejects are the risk checks it asks for, nothing else.
///
/// # Panics
/// If `commands_count` is above the engine's token limit (a programmer error).
pub fn full_mix_config(params: &WorkloadParams, commands_count: usize) -> EngineConfig {
    WorkloadParams {
        orders_max: FULL_MIX_ORDERS_MAX,
        ..*params
    }
    .config_for(commands_count)
}

/// Replays `commands_count` full-mix commands from `seed` into a fresh engine. With `per_operation`
/// the clock is read around every command (latency histograms); without, once around each chunk.
///
/// # Panics
/// If the book crate's demo configuration is refused (a bug there).
pub fn run_full_mix(seed: u64, commands_count: usize, per_operation: bool) -> FullMixRun {
    let params = full_mix_params(seed);
    let mut engine =
        Engine::new(full_mix_config(&params, commands_count)).expect("the demo configuration is valid");
    let mut workload = Workload::new(params);
    let mut chunk: Vec<(u64, Command)> = Vec::with_capacity(CHUNK_COMMANDS);
    let mut events: Vec<Event> = Vec::with_capacity(EVENTS_MAX);
    let mut run = FullMixRun {
        commands_count,
        apply_elapsed: Duration::ZERO,
        by_class: FullMixClass::ALL.iter().map(|_| latency_histogram()).collect(),
        class_counts: [0; FullMixClass::ALL.len()],
        events_count: 0,
        executions_count: 0,
        live_orders_end: 0,
        reject_reasons: Vec::new(),
    };
    let mut left = commands_count;
    while left > 0 {
        chunk.clear();
        chunk.extend((&mut workload).take(left.min(CHUNK_COMMANDS)));
        left -= chunk.len();
        if per_operation {
            for (now_ns, command) in &chunk {
                events.clear();
                let start = Instant::now();
                engine.apply(*now_ns, black_box(command), &mut events);
                let elapsed = start.elapsed();
                run.apply_elapsed += elapsed;
                let class = FullMixClass::of(command, &events);
                record_ns(&mut run.by_class[class.index()], elapsed.as_nanos() as u64);
                tally(&mut run, class, &events);
            }
        } else {
            // One clock pair per chunk; events are only counted (a closure sink, no buffer).
            let (mut events_count, mut executions_count) = (0u64, 0u64);
            let mut sink = FnSink(|event: Event| {
                events_count += 1;
                executions_count += u64::from(matches!(event, Event::Executed(_)));
            });
            let start = Instant::now();
            for (now_ns, command) in &chunk {
                engine.apply(*now_ns, black_box(command), &mut sink);
            }
            run.apply_elapsed += start.elapsed();
            run.events_count += events_count;
            run.executions_count += executions_count;
        }
    }
    run.live_orders_end = engine.order_count();
    run
}

fn tally(run: &mut FullMixRun, class: FullMixClass, events: &[Event]) {
    run.class_counts[class.index()] += 1;
    for event in events {
        if let Event::Rejected { reason, .. } = event {
            match run
                .reject_reasons
                .binary_search_by_key(reason, |(known, _)| *known)
            {
                Ok(at) => run.reject_reasons[at].1 += 1,
                Err(at) => run.reject_reasons.insert(at, (*reason, 1)),
            }
        }
    }
    run.events_count += events.len() as u64;
    run.executions_count += events
        .iter()
        .filter(|event| matches!(event, Event::Executed(_)))
        .count() as u64;
}

#[cfg(test)]
mod tests {
    use super::{FullMixClass, RejectReason, run_full_mix};

    #[test]
    fn full_mix_exercises_every_class_and_both_modes_agree() {
        let timed = run_full_mix(7, 20_000, true);
        let batched = run_full_mix(7, 20_000, false);
        assert_eq!(timed.events_count, batched.events_count);
        assert_eq!(timed.executions_count, batched.executions_count);
        assert_eq!(timed.live_orders_end, batched.live_orders_end);
        for class in FullMixClass::ALL {
            if class != FullMixClass::Other {
                assert!(timed.class_counts[class.index()] > 0, "no {}", class.name());
            }
        }
        assert_eq!(timed.class_counts.iter().sum::<u64>(), 20_000);
        assert!(timed.executions_count > 1_000);
        let rejects: u64 = timed.reject_reasons.iter().map(|(_, count)| count).sum();
        assert!(rejects >= timed.class_counts[FullMixClass::RiskReject.index()]);
        // Sized so that no command meets a capacity limit.
        assert!(
            timed
                .reject_reasons
                .iter()
                .all(|(reason, _)| *reason != RejectReason::CapacityFull)
        );
    }
}
