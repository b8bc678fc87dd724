//! The in-process pipeline bench (`src/bin/pipeline.rs`) on a tiny stream: every stage runs, ends in the
//! same engine state as the engine alone (the binary checks it and fails otherwise), and the table names
//! every stage. Timings are not looked at.

use std::process::Command;

#[test]
fn every_stage_runs_the_same_matching_and_is_reported() {
    let dir = std::env::temp_dir().join(format!("bourse-pipeline-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mix in ["full", "common"] {
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(["--commands", "3000", "--rounds", "1", "--mix", mix, "--dir"])
            .arg(&dir)
            .output()
            .expect("run the pipeline bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mix}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for stage in ["| engine |", "| + outputs", "| + journal", "| + feed book"] {
            assert!(stdout.contains(stage), "{mix}: no row {stage} in\n{stdout}");
        }
    }
    // Each run removes its journal.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["--mix", "nonsense", "--commands", "10"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
