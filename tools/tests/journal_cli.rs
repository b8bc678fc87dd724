//! `bourse journal verify|dump|stats` over journals written by the test: clean, torn tail, corrupted.

use std::path::{Path, PathBuf};
use std::process::Command;

use bourse_journal::{Journal, JournalConfig, MmapStorage, SyncPolicy, walk};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bourse-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config() -> JournalConfig {
    JournalConfig {
        segment_bytes: 8 << 10,
        payload_bytes_max: 512,
        sync_policy: SyncPolicy::None,
        ..JournalConfig::default()
    }
}

/// 30 batches of 1..5 records over several segments; then `open_batch` uncommitted records.
fn write_journal(dir: &Path, open_batch: u64) {
    let (mut journal, _) = Journal::open(MmapStorage::open(dir).expect("dir"), config()).expect("open");
    for batch in 0..30u64 {
        for _ in 0..batch % 5 + 1 {
            let sequence = journal.next_sequence();
            journal
                .append(
                    1 + (sequence % 3) as u16,
                    format!("order {sequence} {}", "x".repeat(100)).as_bytes(),
                )
                .expect("append");
        }
        journal.commit_batch().expect("commit");
    }
    for _ in 0..open_batch {
        journal.append(1, b"uncommitted").expect("append");
    }
}

fn bourse(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(args)
        .output()
        .expect("run bourse");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stdout).expect("utf8"),
        String::from_utf8(output.stderr).expect("utf8"),
    )
}

#[test]
fn verify_dump_stats_on_a_clean_journal() {
    let dir = temp_dir("clean");
    write_journal(&dir, 0);
    let path = dir.to_str().expect("path");
    let (code, out, err) = bourse(&["journal", "verify", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("batches 30"), "{out}");
    assert!(out.contains("ok"), "{out}");

    let (code, out, err) = bourse(&["journal", "dump", "--json", path]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let records: Vec<&serde_json::Value> = lines.iter().filter(|v| v["type"] == "record").collect();
    let commits = lines.iter().filter(|v| v["type"] == "commit").count();
    assert_eq!(commits, 30);
    assert_eq!(records.len(), 90);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["sequence"].as_u64(), Some(i as u64 + 1));
        let hex = record["payload_hex"].as_str().expect("hex");
        assert_eq!(hex.len() as u64, 2 * record["length"].as_u64().expect("length"));
        assert!(hex.starts_with(&"order ".bytes().map(|b| format!("{b:02x}")).collect::<String>()));
    }
    assert!(
        lines.iter().any(|v| v["type"] == "segment_end"),
        "several segments"
    );
    let summary = lines.last().expect("summary");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["last_committed"].as_u64(), Some(90));

    let (code, out, _) = bourse(&["journal", "dump", "--from", "88", path]);
    assert_eq!(code, 0);
    assert!(
        out.contains("seq         88") && out.contains("seq         90") && !out.contains("seq         87"),
        "{out}"
    );
    assert!(out.contains("commit  batch 86..=90 (5 records)"), "{out}");

    let (code, out, _) = bourse(&["journal", "stats", path]);
    assert_eq!(code, 0);
    assert!(
        out.contains("records 90") && out.contains("kind 0x0001 Enter: 30 records, payload "),
        "{out}"
    );
    // The per-kind bytes on disk and the commit records' add up to the journal's total.
    let number_after = |line: &str, label: &str| -> u64 {
        let rest = &line[line.find(label).unwrap_or_else(|| panic!("{label} in {line}")) + label.len()..];
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    let total = out
        .lines()
        .find(|l| l.starts_with("bytes: "))
        .map(|l| number_after(l, "on disk (records, commits, padding) "))
        .expect("bytes line");
    let kinds: Vec<&str> = out.lines().filter(|l| l.starts_with("kind ")).collect();
    assert_eq!(kinds.len(), 3, "{out}");
    assert!(kinds.iter().all(|l| l.contains(": 30 records")), "{out}");
    let framing = out
        .lines()
        .find(|l| l.starts_with("commit records"))
        .map(|l| number_after(l, "on disk "))
        .expect("commit line");
    let by_kind: u64 = kinds.iter().map(|l| number_after(l, "on disk ")).sum();
    assert!(framing > 0, "{out}");
    assert_eq!(by_kind + framing, total, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_reports_a_torn_tail_and_exits_zero() {
    let dir = temp_dir("torn");
    write_journal(&dir, 3);
    let (code, out, err) = bourse(&["journal", "verify", dir.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("torn tail: 3 uncommitted records"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_names_the_offset_of_corruption() {
    let dir = temp_dir("corrupt");
    write_journal(&dir, 0);
    // Flip a payload byte of record 10 (mid-log: later batches follow).
    let mut target = None;
    walk(&mut MmapStorage::open_read_only(&dir).expect("ro"), |r| {
        if r.sequence == 10 && r.commit.is_none() {
            target = Some((r.segment_id, r.offset));
        }
    })
    .expect("walk");
    let (segment_id, offset) = target.expect("record 10");
    let file = dir.join(format!("{segment_id:020}.seg"));
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[offset as usize + 30] ^= 0x40;
    std::fs::write(&file, &bytes).expect("write");
    let (code, out, err) = bourse(&["journal", "verify", dir.to_str().expect("path")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("CORRUPTION") && err.contains(&format!("segment {segment_id} at offset {offset}")),
        "{err}"
    );
    let (code, _, _) = bourse(&["journal", "dump", "--json", dir.to_str().expect("path")]);
    assert_eq!(code, 1);
    let (code, _, err) = bourse(&["journal", "verify", "/nonexistent/journal"]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Payloads that are `bourse-book` records are shown decoded; other payloads stay hex only.
#[test]
fn dump_decodes_book_records() {
    use bourse_book::workload::{Mix, Workload, WorkloadParams};
    use bourse_book::{Engine, Event};

    let dir = temp_dir("book");
    let params = WorkloadParams::new(7, Mix::COMMON);
    let mut engine = Engine::new(params.config_for(200)).expect("config");
    let mut workload = Workload::new(params);
    let (mut journal, _) = Journal::open(MmapStorage::open(&dir).expect("dir"), config()).expect("open");
    let mut events: Vec<Event> = Vec::with_capacity(1024);
    let mut buf = [0u8; 256];
    let mut executions = 0;
    for _ in 0..200 {
        let (now_ns, command) = workload.next_command();
        let len = command.encode(&mut buf).expect("encode");
        journal.append(1, &buf[..len]).expect("append");
        events.clear();
        engine.apply(now_ns, &command, &mut events);
        for event in &events {
            executions += usize::from(matches!(event, Event::Executed(_)));
            let len = event.encode(&mut buf).expect("encode");
            journal.append(2, &buf[..len]).expect("append");
        }
        journal.commit_batch().expect("commit");
    }
    journal.append(3, b"not a book record").expect("append");
    journal.commit_batch().expect("commit");
    drop(journal);
    assert!(executions > 0, "the workload traded");

    let path = dir.to_str().expect("path");
    let (code, text, _) = bourse(&["journal", "dump", path]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Enter("),
        "commands decoded:\n{}",
        &text[..text.len().min(2000)]
    );
    assert!(text.contains("Executed("), "events decoded");
    let (code, json, _) = bourse(&["journal", "dump", "--json", path]);
    assert_eq!(code, 0);
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|v| v["type"] == "record")
        .collect();
    let last = records.last().expect("records");
    assert!(last["decoded"].is_null(), "a foreign payload is hex only");
    assert!(
        records[..records.len() - 1]
            .iter()
            .all(|r| r["decoded"].is_string()),
        "every book record decoded"
    );
}

#[test]
fn dump_decodes_the_daemons_records() {
    use bourse_protocol::fields::{Alpha, Token};
    use bourse_protocol::journaled as j;
    use bourse_protocol::ouch;

    let dir = temp_dir("daemon");
    let (mut journal, _) = Journal::open(MmapStorage::open(&dir).expect("dir"), config()).expect("open");
    let day = j::DayRecord {
        event: j::DAY_START,
        session: Alpha(*b"2026112601"),
        day_base_unix_ns: 1_795_651_200_000_000_000,
        timestamp_ns: 5,
    };
    journal.append(j::KIND_DAY, &j::encode_day(&day)).unwrap();
    let mut command = [0u8; 128];
    j::encode_command_prefix(&mut command, 6, *b"PNN");
    let halt = bourse_book::Command::Halt {
        symbol: bourse_protocol::fields::Symbol::new("AAPL").unwrap(),
    };
    let n = halt.encode(&mut command[j::COMMAND_PREFIX_LEN..]).unwrap();
    journal
        .append(j::KIND_COMMAND, &command[..j::COMMAND_PREFIX_LEN + n])
        .unwrap();
    let reject = ouch::Rejected::new(
        6,
        Token::new("T1").unwrap(),
        bourse_protocol::reason::RejectReason::Halted,
    );
    let mut buf = [0u8; 128];
    let n = j::encode_ouch(&mut buf, 3, 9, ouch::Message::as_wire(&reject));
    journal.append(j::KIND_OUCH, &buf[..n]).unwrap();
    let delete = bourse_protocol::itch::OrderDelete {
        header: bourse_protocol::itch::Header {
            stock_locate: 1,
            tracking_number: 0,
            timestamp: bourse_protocol::itch::Timestamp48::new(6).unwrap(),
        },
        order_reference_number: 42,
    };
    let mut itch_bytes = [0u8; 64];
    let m = delete.encode(&mut itch_bytes).unwrap();
    let n = j::encode_itch(&mut buf, 12, &itch_bytes[..m]);
    journal.append(j::KIND_ITCH, &buf[..n]).unwrap();
    journal
        .append(j::KIND_ADMIN, &j::encode_admin(j::ADMIN_DISABLE, 2))
        .unwrap();
    journal.commit_batch().unwrap();
    drop(journal);

    let (code, text, _) = bourse(&["journal", "dump", dir.to_str().expect("path")]);
    assert_eq!(code, 0);
    for expected in [
        "Day { start, session: 2026112601",
        "Command { timestamp_ns: 6, echo: \"PNN\", command: Halt {",
        "Ouch { login: 3, session_seq: 9, message: Rejected(",
        "Itch { feed_seq: 12, message: OrderDelete(",
        "Admin { disable, login: 2 }",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
}

#[test]
fn verify_an_archived_journal_and_its_archive() {
    let dir = temp_dir("archived");
    write_journal(&dir, 0);
    let archive = dir.join("archive");
    let (mut journal, recovery) =
        Journal::open(MmapStorage::open(&dir).expect("dir"), config()).expect("open");
    let done = journal
        .archive_before(recovery.last_committed, &archive)
        .expect("archive");
    assert!(done.moved > 0, "{done:?}");
    drop(journal);
    let (path, archive_path) = (dir.to_str().expect("path"), archive.to_str().expect("path"));

    let (code, out, err) = bourse(&["journal", "verify", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("sequences {}..=", done.first_kept)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "segments before {:020}.seg were archived",
            done.first_kept
        )),
        "{out}"
    );
    let (code, out, err) = bourse(&["journal", "verify", archive_path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("sequences 1..={}", done.first_kept - 1)),
        "{out}"
    );
    assert!(
        out.contains(&format!("the journal continues in {:020}.seg", done.first_kept)),
        "{out}"
    );
    assert!(!out.contains("torn tail"), "{out}");

    // A dump from before the archive says so and starts at the journal's first record.
    let (code, out, err) = bourse(&["journal", "dump", path, "--from", "1", "--limit", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("records before {} were archived", done.first_kept)),
        "{err}"
    );
    assert!(out.contains(&format!("seq {:>10}", done.first_kept)), "{out}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn verify_lists_the_checkpoints_and_flags_one_after_the_journal() {
    let dir = temp_dir("checkpoint-ahead");
    write_journal(&dir, 0);
    let path = dir.to_str().expect("path");
    let last = {
        let mut storage = MmapStorage::open(&dir).expect("dir");
        let last = bourse_journal::verify(&mut storage)
            .expect("verify")
            .last_committed;
        bourse_journal::checkpoint::write(&mut storage, last - 10, b"state", 3).expect("checkpoint");
        last
    };
    let (code, out, err) = bourse(&["journal", "verify", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("checkpoints at sequences {}", last - 10)),
        "{out}"
    );

    // As a machine crash under sync `none` can leave it: a checkpoint past the journal's end.
    {
        let mut storage = MmapStorage::open(&dir).expect("dir");
        bourse_journal::checkpoint::write(&mut storage, last + 5, b"state", 3).expect("checkpoint");
    }
    let (code, out, err) = bourse(&["journal", "verify", path]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains(&format!("checkpoints at sequences {}, {}", last - 10, last + 5)),
        "{out}"
    );
    let name = bourse_journal::checkpoint::file_name(last + 5);
    assert!(err.contains("CHECKPOINT AHEAD") && err.contains(&name), "{err}");
    assert!(
        !err.contains(&bourse_journal::checkpoint::file_name(last - 10)),
        "{err}"
    );

    // A damaged checkpoint file there instead is skipped by start-up (it loads the newest valid one), so
    // verify only mentions it.
    let file = dir.join(&name);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&file, bytes).unwrap();
    let (code, out, err) = bourse(&["journal", "verify", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("not valid") && out.contains(&name), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
