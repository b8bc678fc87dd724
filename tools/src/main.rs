//! `bourse`, the operator's and developer's command line: admin, market data, load, journal tools, demo.
//!
//! The commands live in the `bourse_tools` library (`admin`, `feed`) and in `journal`; this file only parses
//! the command line and dispatches.

mod journal;

use bourse_tools::{admin, feed};
use clap::{Parser, Subcommand};

/// bourse: the command line for the bourse exchange daemon.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    global: admin::GlobalOptions,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a journal directory: verify, dump, stats (read-only).
    Journal(journal::JournalArgs),
    /// Admin commands (over the daemon's JSON admin port).
    #[command(flatten)]
    Admin(admin::AdminCommand),
    /// Market data: join the feed, keep every book, show them live; `--verify` against the engine.
    Md(feed::MdArgs),
    /// Load generator: N market-maker sessions, open loop, order-to-ack percentiles, .hgrm and SVG plot.
    Load(bourse_tools::load::cli::LoadArgs),
    /// Start boursed on free ports, trade on it for a few seconds, explain what happened, clean up.
    Demo(bourse_tools::demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Journal(args)) => std::process::exit(journal::run(args)),
        Some(Command::Admin(command)) => std::process::exit(admin::run(&command, &cli.global)),
        Some(Command::Md(args)) => std::process::exit(feed::run_md(&args, &cli.global)),
        Some(Command::Load(args)) => std::process::exit(bourse_tools::load::cli::run(&args)),
        Some(Command::Demo(args)) => std::process::exit(bourse_tools::demo::run(&args)),
        None => Ok(()),
    }
}
