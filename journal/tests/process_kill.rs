//! A real process is killed with SIGKILL at random moments while it appends; every sequence it reported
//! as released (over a pipe, after `commit_batch` returned) must be in the journal after recovery.
//!
//! The child is this test binary re-executed with `JOURNAL_CHILD_DIR` set: it runs only
//! `child_writer`, which appends batches to the journal in that directory and prints `released N` after
//! each commit. SIGKILL keeps the page cache, so this test proves the commit protocol and recovery under
//! a real process death; the fault-injecting storage (tests/crash.rs) is what proves the syncs. Trials
//! cycle through both sync policies and the three write modes (`Auto` under `none` writes through the
//! mapping into segments built without written zeroes).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bourse_journal::{Journal, JournalConfig, MmapStorage, SplitMix64, SyncPolicy, WriteMode};

const CHILD_DIR_ENV: &str = "JOURNAL_CHILD_DIR";
const CHILD_POLICY_ENV: &str = "JOURNAL_CHILD_POLICY";
const CHILD_MODE_ENV: &str = "JOURNAL_CHILD_WRITE_MODE";
/// Upper bound of batches a child writes if it is never killed.
const CHILD_BATCHES_MAX: u64 = 1_000_000;
const TRIALS: u64 = 60;

fn config(sync_policy: SyncPolicy) -> JournalConfig {
    JournalConfig {
        segment_bytes: 64 << 10,
        payload_bytes_max: 256,
        batch_records_max: 64,
        sync_policy,
        checkpoints_kept: 2,
    }
}

fn payload_for(sequence: u64) -> [u8; 64] {
    let mut payload = [0u8; 64];
    for (i, chunk) in payload.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(sequence.wrapping_mul(0x9E37_79B9) ^ i as u64).to_le_bytes());
    }
    payload
}

#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let policy = match std::env::var(CHILD_POLICY_ENV).as_deref() {
        Ok("none") => SyncPolicy::None,
        _ => SyncPolicy::Batch,
    };
    let mode = match std::env::var(CHILD_MODE_ENV).as_deref() {
        Ok("mapped") => WriteMode::Mapped,
        Ok("auto") => WriteMode::Auto,
        _ => WriteMode::WriteCalls,
    };
    let (mut journal, recovery) =
        Journal::open(MmapStorage::open_with(&dir, mode).expect("dir"), config(policy)).expect("open");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "recovered {}", recovery.last_committed).expect("pipe");
    out.flush().expect("pipe");
    let mut rng = SplitMix64::new(recovery.last_committed);
    for _ in 0..CHILD_BATCHES_MAX {
        for _ in 0..1 + rng.below(16) {
            let sequence = journal.next_sequence();
            journal.append(3, &payload_for(sequence)).expect("append");
        }
        let committed = journal.commit_batch().expect("commit");
        writeln!(out, "released {}", committed.released_up_to).expect("pipe");
        out.flush().expect("pipe");
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_released() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("journal-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = SplitMix64::new(0x5EED);
    let mut released_max = 0u64;
    for trial in 0..TRIALS {
        let policy = if trial % 2 == 0 { "batch" } else { "none" };
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, &dir)
            .env(CHILD_POLICY_ENV, policy)
            .env(
                CHILD_MODE_ENV,
                ["calls", "mapped", "auto"][(trial / 2 % 3) as usize],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let released_before = released_max;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Batch-policy children pay an fdatasync per batch (milliseconds on a busy disk): kill them sooner.
        let kill_after = if policy == "batch" {
            rng.below(16)
        } else {
            rng.below(80)
        };
        let mut seen = 0u64;
        let mut recovered_by_child = None;
        while seen < kill_after {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(n) = line.strip_prefix("released ") {
                released_max = released_max.max(n.parse().expect("number"));
                seen += 1;
            } else if let Some(n) = line.strip_prefix("recovered ") {
                recovered_by_child = Some(n.parse::<u64>().expect("number"));
            }
        }
        child.kill().expect("SIGKILL");
        // Lines the child wrote before it died were reported: they count too.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("released ") {
                released_max = released_max.max(n.parse().expect("number"));
            }
        }
        let status = child.wait().expect("wait");
        assert!(
            !status.success() || kill_after == 0,
            "trial {trial}: the child must have been killed"
        );
        if let Some(recovered) = recovered_by_child {
            assert!(
                recovered >= released_before,
                "trial {trial}: the child's own recovery lost records"
            );
        }
        // Recover in this process and check every released record is there, intact.
        let (mut journal, recovery) =
            Journal::open(MmapStorage::open(&dir).expect("dir"), config(SyncPolicy::Batch)).expect("recover");
        assert!(
            recovery.last_committed >= released_max,
            "trial {trial} ({policy}): released {released_max}, recovered {}",
            recovery.last_committed
        );
        let mut expected = 1u64;
        journal
            .replay_from(1, |r| {
                assert_eq!(r.sequence, expected);
                assert_eq!(
                    r.payload,
                    payload_for(r.sequence).as_slice(),
                    "trial {trial}: payload of {}",
                    r.sequence
                );
                expected += 1;
                Ok::<(), ()>(())
            })
            .expect("replay");
        assert_eq!(expected - 1, recovery.last_committed);
        released_max = recovery.last_committed;
    }
    assert!(released_max > 0, "children released something");
    let _ = std::fs::remove_dir_all(&dir);
}
