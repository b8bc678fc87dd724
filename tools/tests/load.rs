//! The load generator and `bourse demo` against a real `boursed` (found next to the test executable, in
//! `target/<profile>/boursed`: the workspace test run builds it for the daemon's own tests; alone, run
//! `cargo build -p bourse-daemon` first).
//!
//! No timing thresholds: these check counts, files and formats.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bourse_tools::hgrm::parse_hgrm;
use bourse_tools::load::cli::write_outputs;
use bourse_tools::load::daemon::{
    Daemon, DaemonConfigOptions, daemon_config, find_boursed, instruments_from_config, load_logins, temp_dir,
};
use bourse_tools::load::{self, Limit, LoadConfig, PollMode};

fn boursed() -> PathBuf {
    find_boursed().expect("boursed is not built next to the tests: cargo build -p bourse-daemon")
}

fn default_config(boursed: &Path) -> String {
    let output = Command::new(boursed)
        .arg("--print-default-config")
        .output()
        .expect("run boursed --print-default-config");
    assert!(output.status.success());
    String::from_utf8(output.stdout).expect("UTF-8 config")
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `boursed` with its default config, `logins` load logins, sync `none`, threading `shared`, on free ports in a
/// fresh directory; returns the directory (removed on drop), the daemon and its config text.
fn start_boursed(what: &str, logins: usize) -> (Dir, Daemon, String) {
    let binary = boursed();
    let base = default_config(&binary);
    let dir = Dir(temp_dir(what).unwrap());
    let options = DaemonConfigOptions {
        journal_dir: dir.0.join("journal"),
        load_logins: Some(logins),
        sync: Some("none".into()),
        threading_mode: Some("shared".into()),
        ..DaemonConfigOptions::default()
    };
    let text = daemon_config(&base, &options).unwrap();
    let daemon = Daemon::start(&binary, &text, &dir.0, &[], Duration::from_secs(60)).unwrap();
    (dir, daemon, text)
}

#[test]
fn load_against_boursed_acks_every_request_and_writes_hgrm_and_svg() {
    let (dir, mut daemon, text) = start_boursed("load-test", 4);

    let mut config = LoadConfig::new(
        daemon.ports.order_entry,
        load_logins(4),
        instruments_from_config(&text).unwrap(),
    );
    config.rate_per_s = 2000.0;
    config.limit = Limit::Count(400);
    config.seed = 7;
    config.poll = PollMode::Epoll;
    config.busy_poll = false;
    config.drain_timeout = Duration::from_secs(30);
    let report = load::run(&config, &mut |_| {}).unwrap();
    let summary = report.summary();
    assert_eq!(report.sent_total(), 400, "{summary}");
    // Every request ends as an ack, or as ignored because its order traded away first.
    assert_eq!(report.acked + report.ignored, 400, "{summary}");
    assert_eq!(report.unanswered, 0, "{summary}");
    assert_eq!((report.disconnects, report.unmatched), (0, 0), "{summary}");
    assert!(report.debug_texts.is_empty(), "{summary}");
    assert_eq!(report.latency.len(), report.acked);
    assert_eq!(
        report.rejected_total(),
        0,
        "the mix sends only valid orders: {summary}"
    );
    assert!(
        report.fills > 0,
        "aggressive orders trade against quotes: {summary}"
    );
    // Both sides of every trade are load sessions: one taker fill and one maker fill each.
    assert_eq!(report.fills, 2 * report.taker_fills, "{summary}");

    let hgrm_path = dir.0.join("latency.hgrm");
    let svg_path = dir.0.join("latency.svg");
    let written = write_outputs(&report, Some(&hgrm_path), Some(&svg_path), "load test").unwrap();
    assert_eq!(written.len(), 2);

    let hgrm = parse_hgrm(&std::fs::read_to_string(&hgrm_path).unwrap()).unwrap();
    assert_eq!(hgrm.total_count, report.acked);
    assert_eq!(hgrm.points.last().unwrap().quantile, 1.0);
    let max_us = report.latency.max() as f64 / 1000.0;
    assert!(
        (hgrm.max - max_us).abs() <= max_us / 100.0 + 0.001,
        "{} vs {max_us}",
        hgrm.max
    );

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let document = roxmltree::Document::parse(&svg).expect("the plot is well-formed XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let series: Vec<&str> = document
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("class") == Some("series"))
        .filter_map(|n| n.attribute("data-name"))
        .collect();
    assert_eq!(series, ["order-to-ack"]);

    let status = daemon.stop(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "boursed exit {status}; log:\n{}", daemon.log());
}

/// Runs `bourse --json load ARGS --quiet --users-from-config FILE` against the daemon of `dir`; returns its
/// JSON report.
fn bourse_load_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .arg("--ports-file")
        .arg(dir.join("ports"))
        .arg("--json")
        .arg("load")
        .args(args)
        .arg("--quiet")
        .arg("--users-from-config")
        .arg(dir.join("boursed.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn bourse_load_command_runs_against_boursed() {
    let (dir, mut daemon, _) = start_boursed("load-cli-test", 2);
    let hgrm_path = dir.0.join("cli.hgrm");
    let json = bourse_load_json(
        &dir.0,
        &[
            "--rate",
            "1000",
            "--count",
            "200",
            "--no-busy-poll",
            "--hgrm",
            hgrm_path.to_str().unwrap(),
        ],
    );
    assert_eq!(json["sessions"], 2);
    assert_eq!(
        json["acked"].as_u64().unwrap() + json["ignored"].as_u64().unwrap(),
        200
    );
    assert_eq!(json["unanswered"], 0);
    let hgrm = parse_hgrm(&std::fs::read_to_string(&hgrm_path).unwrap()).unwrap();
    assert_eq!(hgrm.total_count, json["acked"].as_u64().unwrap());
    assert_eq!(json["closed_loop"], false);

    // Closed loop: one request at a time; each is answered before the next goes.
    let json = bourse_load_json(&dir.0, &["--closed-loop", "--count", "300"]);
    assert_eq!(json["closed_loop"], true);
    assert_eq!(
        json["acked"].as_u64().unwrap() + json["ignored"].as_u64().unwrap(),
        300
    );
    assert_eq!(json["unanswered"], 0);
    assert!(daemon.stop(Duration::from_secs(20)).unwrap().success());
}

/// The whole demo, with market-data drops injected: it must trade, recover every gap and find the feed's
/// books equal to the engine's (exit 0).
#[test]
fn bourse_demo_trades_and_recovers_every_gap() {
    let binary = boursed();
    let dir = Dir(temp_dir("demo-test").unwrap());
    let plot = dir.0.join("demo.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["demo", "--duration", "1", "--rate", "1000"])
        .arg("--boursed")
        .arg(&binary)
        .arg("--plot")
        .arg(&plot)
        .env("BOURSED_TEST_DROP_FEED_SEQS", "30,31,200,500")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let field = |name: &str| -> String {
        last.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {last:?}\n{stdout}{stderr}"))
            .to_owned()
    };
    let trades: u64 = field("trades").parse().unwrap();
    let gaps: u64 = field("gaps").parse().unwrap();
    assert!(trades > 0, "{stdout}");
    assert!(gaps > 0, "the dropped sequence numbers are gaps: {stdout}");
    assert_eq!(field("gaps_open"), "0", "{stdout}");
    assert_eq!(field("unanswered"), "0", "{stdout}");
    assert_eq!(field("books_agree"), "true", "{stdout}{stderr}");
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Top of book at the end"));
    assert!(roxmltree::Document::parse(&std::fs::read_to_string(&plot).unwrap()).is_ok());
}

/// `--heartbeat-ms` sets how often an idle session heartbeats: against a server that drops a session
/// silent for 400 ms (its own heartbeats every 100 ms), the session that only heartbeats stays with `--heartbeat-ms 100` and is dropped with
/// the default 1,000 ms; 0 is refused.
#[test]
fn bourse_load_heartbeat_interval_keeps_idle_sessions_alive() {
    let binary = boursed();
    let dir = Dir(temp_dir("load-heartbeat").unwrap());
    let options = DaemonConfigOptions {
        journal_dir: dir.0.join("journal"),
        load_logins: Some(2),
        sync: Some("none".into()),
        threading_mode: Some("shared".into()),
        ..DaemonConfigOptions::default()
    };
    let mut config: toml::Table = daemon_config(&default_config(&binary), &options)
        .unwrap()
        .parse()
        .unwrap();
    let order_entry = config["order_entry"].as_table_mut().unwrap();
    order_entry.insert("idle_timeout_ms".into(), toml::Value::Integer(400));
    order_entry.insert("heartbeat_interval_ms".into(), toml::Value::Integer(100));
    let text = toml::to_string(&config).unwrap();
    let mut daemon = Daemon::start(&binary, &text, &dir.0, &[], Duration::from_secs(60)).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bourse"))
            .arg("--ports-file")
            .arg(dir.0.join("ports"))
            .arg("--json")
            .arg("load")
            .args([
                "--rate",
                "100",
                "--duration",
                "1.5",
                "--senders",
                "1",
                "--quiet",
                "--no-busy-poll",
            ])
            .arg("--users-from-config")
            .arg(dir.0.join("boursed.toml"))
            .args(extra)
            .output()
            .unwrap()
    };
    let report = |output: &std::process::Output| -> serde_json::Value {
        serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    };

    let kept = run(&["--heartbeat-ms", "100"]);
    let json = report(&kept);
    assert_eq!(json["sessions"], 2);
    assert_eq!(json["disconnects"], 0, "{json}");
    assert!(kept.status.success(), "{json}");

    let dropped = run(&[]);
    let json = report(&dropped);
    assert!(json["disconnects"].as_u64().unwrap() >= 1, "{json}");

    let refused = run(&["--heartbeat-ms", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--heartbeat-ms"));
    assert!(daemon.stop(Duration::from_secs(20)).unwrap().success());
}
