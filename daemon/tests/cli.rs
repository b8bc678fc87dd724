//! The `boursed` binary's configuration flags, run as a process.

use std::path::PathBuf;
use std::process::{Command, Output};

use bourse_daemon::config::{Config, DEFAULT_TOML};

fn boursed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boursed"))
        .args(args)
        .output()
        .expect("run boursed")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("boursed-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Removes the directory of a [`temp_file`] (one per test process).
fn remove_temp_files(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn print_default_config_round_trips_through_the_parser() {
    let out = boursed(&["--print-default-config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, DEFAULT_TOML);
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.engine_config(), Config::embedded_default().engine_config());
    // And the printed text, saved to a file, checks clean.
    let path = temp_file("printed.toml", &text);
    let out = boursed(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("config ok: 4 instruments, 3 firms, 4 logins, sync batch, threading auto")
    );
    remove_temp_files(&path);
}

#[test]
fn check_config_fails_with_the_key_named() {
    let bad = DEFAULT_TOML.replace("frame_size_max = 1024", "frame_size_max = 20");
    assert_ne!(bad, DEFAULT_TOML);
    let path = temp_file("bad.toml", &bad);
    let out = boursed(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config: order_entry.frame_size_max = 20 is below 54"),
        "{stderr}"
    );

    let typo = DEFAULT_TOML.replace("sessions_max = 64", "sessions_mx = 64");
    let path = temp_file("typo.toml", &typo);
    let out = boursed(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sessions_mx"));

    let out = boursed(&["--config", "/nonexistent/boursed.toml", "--check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    remove_temp_files(&path);
}

#[test]
fn a_bad_config_stops_a_run_with_exit_1() {
    let path = temp_file("bad-run.toml", "nonsense = 1\n");
    let out = boursed(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
    remove_temp_files(&path);
}
