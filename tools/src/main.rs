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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Journal(args)) => std::process::exit(journal::run(args)),
        None => Ok(()),
    }
}
