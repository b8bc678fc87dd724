//! `boursed`, the exchange daemon: TCP order entry -> sequencer -> matching -> journal -> multicast.
//!
//! `boursed` alone runs the embedded default config; `--config FILE` a file; `--print-default-config`
//! prints the default; `--check-config` validates (exit 0 when valid, 1 with an error naming the key).
//! `--ports-file FILE` names where the bound addresses are written (default `<journal>/ports`).
//! Exit codes: 0 after a clean shutdown (SIGTERM, SIGINT, admin `shutdown`), 1 bad config, 2 start-up
//! failed (journal damaged, recovery mismatch, a port in use), 70 a fatal journal error while running.

use std::path::PathBuf;
use std::process::ExitCode;

use bourse_daemon::agent::ThreadingMode;
use bourse_daemon::config::{Config, DEFAULT_TOML};
use clap::Parser;

/// Large tables (engine, snapshot book) on transparent huge pages: fewer TLB misses on random lookups.
#[global_allocator]
static ALLOC: bourse_daemon::huge_pages::HugePageAlloc = bourse_daemon::huge_pages::HugePageAlloc;

/// The bourse exchange daemon.
#[derive(Debug, Parser)]
#[command(name = "boursed", version, about)]
struct Args {
    /// Configuration file (TOML); without it the embedded default is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long, conflicts_with_all = ["config", "check_config"])]
    print_default_config: bool,
    /// Validate the configuration and exit: 0 when valid, 1 otherwise.
    #[arg(long)]
    check_config: bool,
    /// Where to write the bound addresses (`key=addr` lines) once start-up is done.
    #[arg(long, value_name = "FILE")]
    ports_file: Option<PathBuf>,
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        None => Config::from_toml(DEFAULT_TOML).map_err(|e| e.to_string()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config: cannot read {}: {e}", path.display()))?;
            Config::from_toml(&text).map_err(|e| format!("{e} (in {})", path.display()))
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    let config = match load(args.config.as_ref()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("boursed: {message}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        let sync = config.sync_policy_label();
        let threading = match config.threading.mode {
            ThreadingMode::Auto => "auto",
            ThreadingMode::Shared => "shared",
            ThreadingMode::Pinned => "pinned",
        };
        println!(
            "boursed: config ok: {} instruments, {} firms, {} logins, sync {sync}, threading {threading}",
            config.instruments.len(),
            config.firms.len(),
            config.logins.len(),
        );
        return ExitCode::SUCCESS;
    }
    match bourse_daemon::run::run(config, args.ports_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boursed: {e}");
            ExitCode::from(2)
        }
    }
}
