//! `bourse`, the operator's and developer's command line: admin, market data, load, journal tools, demo.

mod journal;

use clap::{Parser, Subcommand};

/// bourse: the command line for the bourse exchange daemon.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a journal directory: verify, dump, stats (read-only).
    Journal(journal::JournalArgs),
    /// Load generator: N market-maker sessions, open loop, order-to-ack percentiles, .hgrm and SVG plot.
    Load(bourse_tools::load::cli::LoadArgs),
    /// Start boursed on free ports, trade on it for a few seconds, explain what happened, clean up.
    Demo(bourse_tools::demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Journal(args)) => std::process::exit(journal::run(args)),
        Some(Command::Load(args)) => std::process::exit(bourse_tools::load::cli::run(&args)),
        Some(Command::Demo(args)) => std::process::exit(bourse_tools::demo::run(&args)),
        None => Ok(()),
    }
}
