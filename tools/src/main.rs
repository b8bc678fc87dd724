//! `bourse`, the operator's and developer's command line: admin, market data, load, journal tools, demo.

use clap::Parser;

/// bourse: the command line for the bourse exchange daemon.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
