//! Thread placement on the real binary: `threading.helper_cores` puts the helper threads (the journal's
//! spare builder, admin, the main thread) on their cores and the stage thread on another; a core the
//! process may not use stops the start with the key named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bourse_daemon::config::DEFAULT_TOML;
use bourse_tools::load::daemon::{Daemon, DaemonConfigOptions, DaemonError, daemon_config, temp_dir};

const WAIT: Duration = Duration::from_secs(20);

fn boursed() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boursed"))
}

fn config_text(dir: &Path, helper_cores: Vec<usize>) -> String {
    let options = DaemonConfigOptions {
        journal_dir: dir.join("journal"),
        sync: Some("none".into()),
        threading_mode: Some("shared".into()),
        idle: Some("backoff".into()),
        helper_cores: Some(helper_cores),
        ..DaemonConfigOptions::default()
    };
    daemon_config(DEFAULT_TOML, &options).expect("config")
}

/// (thread name, `Cpus_allowed_list`) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = entry.expect("task").path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_default();
        out.push((name.trim().to_owned(), allowed.trim().to_owned()));
    }
    out
}

#[test]
fn helper_threads_run_on_the_helper_cores_and_the_stage_thread_elsewhere() {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() < 2 {
        eprintln!(
            "skipped: this test needs two cores, the process may use {}",
            cores.len()
        );
        return;
    }
    let (stage, helper) = (cores[0].id, cores[cores.len() - 1].id);
    let dir = temp_dir("placement").expect("temp dir");
    let text = config_text(&dir, vec![helper]);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT)
        .expect("start")
        .removing_dir();
    let placed = threads(daemon.pid());
    let allowed = |name: &str| {
        placed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no thread {name} in {placed:?}"))
    };
    assert_eq!(allowed("bourse-shared"), stage.to_string(), "{placed:?}");
    // Thread names are cut at 15 bytes.
    assert_eq!(allowed("bourse-journal-"), helper.to_string(), "{placed:?}");
    assert_eq!(allowed("bourse-admin"), helper.to_string(), "{placed:?}");
    assert_eq!(allowed("boursed"), helper.to_string(), "{placed:?}");
    assert!(
        daemon
            .log()
            .contains(&format!("helper threads on cores [{helper}]")),
        "{}",
        daemon.log()
    );
    // The start-up line also names the resident memory, the tables included (written at creation).
    let log = daemon.log();
    let resident_mib: u64 = log
        .split("resident ")
        .nth(1)
        .and_then(|rest| rest.split(" MiB").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resident size in the start-up line: {log}"));
    assert!(resident_mib > 0, "{log}");
    assert!(daemon.stop(WAIT).expect("stop").success());
}

#[test]
fn a_helper_core_the_process_may_not_use_stops_the_start() {
    let dir = temp_dir("placement-bad").expect("temp dir");
    let text = config_text(&dir, vec![100_000]);
    let Err(error) = Daemon::start(&boursed(), &text, &dir, &[], WAIT) else {
        panic!("boursed started with helper core 100000");
    };
    let DaemonError::Exited { status, log } = error else {
        panic!("not an exit: {error:?}");
    };
    // A start-up error (exit 2), as `pinned` on too few cores: the config itself parses.
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("threading.helper_cores: core 100000"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
