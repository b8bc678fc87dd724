//! Recovery of the real `boursed` binary: kill -9 while orders stream in, restart, and check that
//! nothing acknowledged is lost, that the book equals a replay of the journal (from the checkpoint and
//! from the start), that a re-login with the next sequence number receives exactly what was missed,
//! that cancel-on-disconnect is applied at start-up, that a crash restarts from the checkpointer
//! thread's checkpoint, and that a journal altered to disagree with the engine stops start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourse_daemon::config::{Config, DEFAULT_TOML};
use bourse_daemon::core;
use bourse_protocol::admin::{AdminReply, AdminRequest};
use bourse_protocol::fields::{Alpha, Symbol, Token};
use bourse_protocol::ouch::{self, OutboundMessage};
use bourse_protocol::reason::CancelReason;
use bourse_tools::client::{Client, ClientConfig, Event, LoginOutcome, limit_order};
use bourse_tools::load::daemon::{Daemon, DaemonConfigOptions, daemon_config, temp_dir};

const WAIT: Duration = Duration::from_secs(20);

fn boursed() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boursed"))
}

/// The default config on free ports in `dir`, sync `batch`, with cancel-on-disconnect set for every
/// login.
fn config_text(dir: &Path, cancel_on_disconnect: bool) -> String {
    let options = DaemonConfigOptions {
        journal_dir: dir.join("journal"),
        sync: Some("batch".into()),
        ..DaemonConfigOptions::default()
    };
    let text = daemon_config(DEFAULT_TOML, &options).expect("config");
    let cod = format!("cancel_on_disconnect = {cancel_on_disconnect}");
    text.replace("cancel_on_disconnect = true", &cod)
        .replace("cancel_on_disconnect = false", &cod)
}

fn parsed(text: &str) -> Config {
    Config::from_toml(text).expect("valid config")
}

fn login(daemon: &Daemon, user: &str, password: &str, sequence: u64) -> (Client, u64) {
    let mut client = Client::connect(daemon.ports.order_entry, &ClientConfig::default()).expect("connect");
    match client.login(user, password, "", sequence).expect("login") {
        LoginOutcome::Accepted { sequence_next, .. } => (client, sequence_next),
        other => panic!("login of {user} refused: {other:?}"),
    }
}

fn buy(token: &str, price: u32) -> ouch::EnterOrder {
    limit_order(token, ouch::Side::Buy, 10, "AAPL", price, "").expect("valid order")
}

/// Enters a buy of 10 AAPL for each `i` in `range`, token `{prefix}{i}` at `base_price + i * 100`, and
/// returns what the session received until 300 ms passed quietly.
fn enter_buys(
    client: &mut Client,
    prefix: &str,
    range: std::ops::Range<u32>,
    base_price: u32,
) -> Vec<(u64, OutboundMessage)> {
    for i in range {
        client
            .enter(&buy(&format!("{prefix}{i}"), base_price + i * 100))
            .unwrap();
    }
    drain(client, Duration::from_millis(300))
}

/// Reads sequenced OUCH messages until `quiet` passes without one (or the connection closes).
fn drain(client: &mut Client, quiet: Duration) -> Vec<(u64, OutboundMessage)> {
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        match client.recv(Duration::from_millis(50)) {
            Ok(Some(Event::Sequenced(data))) => {
                out.push((data.sequence_number, data.ouch().expect("valid OUCH")));
                last = Instant::now();
            }
            Ok(Some(Event::Closed)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

fn depth(daemon: &Daemon, symbol: &str) -> BTreeMap<u32, (u64, u32)> {
    let request = AdminRequest::Depth {
        symbol: symbol.into(),
        levels: 1000,
    };
    match daemon.admin(&request, WAIT).expect("admin depth") {
        AdminReply::Depth(d) => d.bids.iter().map(|l| (l.price, (l.shares, l.orders))).collect(),
        other => panic!("{other:?}"),
    }
}

fn kill9(daemon: &mut Daemon) {
    let status = std::process::Command::new("kill")
        .args(["-9", &daemon.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Reap it (Daemon::stop kills if still running; here it is dead already).
    let _ = daemon.stop(Duration::from_secs(5));
}

/// Starts `boursed` on `text` in `dir` where start-up must refuse: panics with `accepted` if it starts,
/// or if it did not exit by itself; returns its exit status and log.
fn refused_start(text: &str, dir: &Path, accepted: &str) -> (std::process::ExitStatus, String) {
    match Daemon::start(&boursed(), text, dir, &[], WAIT) {
        Err(bourse_tools::load::daemon::DaemonError::Exited { status, log }) => {
            assert!(!status.success(), "{log}");
            (status, log)
        }
        Err(other) => panic!("expected start-up to stop, got {other}"),
        Ok(_) => panic!("{accepted}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let dir = temp_dir("e2e-kill9").unwrap();
    let text = config_text(&dir, false);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, first) = login(&daemon, "alice", "alice-pw", 0);
    // The day's stream starts with System Event S (seq 1); a login from "now" starts after it.
    assert_eq!(first, 2);

    // Stream orders at distinct prices from a writer thread; read acks here; kill -9 midway.
    let orders: u32 = 400;
    let writer_stream = alice.stream().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut sent = Vec::new();
        let mut w = writer_stream;
        for i in 0..orders {
            let order = buy(&format!("K{i:05}"), 1_800_000 + i * 100);
            let mut frame = vec![0u8, 50, b'U'];
            frame.extend_from_slice(ouch::Message::as_wire(&order));
            if std::io::Write::write_all(&mut w, &frame).is_err() {
                break;
            }
            sent.push(i);
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    let mut acked: BTreeSet<u32> = BTreeSet::new();
    let mut last_seq = first - 1;
    let mut killed = false;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match alice.recv(Duration::from_millis(100)) {
            Ok(Some(Event::Sequenced(data))) => {
                assert_eq!(data.sequence_number, last_seq + 1, "gap in the live stream");
                last_seq = data.sequence_number;
                match data.ouch().unwrap() {
                    OutboundMessage::Accepted(a) => {
                        let token = String::from_utf8_lossy(a.order_token.trimmed()).to_string();
                        acked.insert(token[1..].parse().unwrap());
                    }
                    other => panic!("unexpected {other:?}"),
                }
                if !killed && acked.len() >= 100 {
                    kill9(&mut daemon);
                    killed = true;
                }
            }
            Ok(Some(Event::Closed)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(killed, "the daemon was never killed ({} acks)", acked.len());
    let sent: BTreeSet<u32> = writer.join().unwrap().into_iter().collect();

    // Restart on the same journal.
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    let book = depth(&daemon, "AAPL");
    let in_book: BTreeSet<u32> = book.keys().map(|p| (p - 1_800_000) / 100).collect();
    for i in &acked {
        assert!(in_book.contains(i), "acknowledged order K{i:05} lost");
    }
    assert!(
        in_book.is_subset(&sent),
        "an order that was never sent is in the book"
    );
    assert!(book.values().all(|&(shares, orders)| shares == 10 && orders == 1));
    eprintln!(
        "sent {}, acknowledged before the kill {}, in the book after restart {}",
        sent.len(),
        acked.len(),
        in_book.len()
    );

    // A re-login with the next sequence number receives exactly what it missed: the Accepted of every
    // order in the book that was not acknowledged before the kill, in order, numbered on from last_seq.
    let (mut alice, next) = login(&daemon, "alice", "alice-pw", last_seq + 1);
    let replay = drain(&mut alice, Duration::from_millis(500));
    assert_eq!(next, last_seq + 1);
    let seqs: Vec<u64> = replay.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (last_seq + 1..last_seq + 1 + replay.len() as u64).collect::<Vec<_>>()
    );
    let missed: BTreeSet<u32> = replay
        .iter()
        .map(|(_, m)| match m {
            OutboundMessage::Accepted(a) => String::from_utf8_lossy(a.order_token.trimmed())[1..]
                .parse()
                .unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(missed, in_book.difference(&acked).copied().collect());
    let status = daemon.stop(WAIT).expect("stop");
    assert!(status.success(), "{}", daemon.log());

    // The book equals a replay of the journal: from the checkpoint written at shutdown, and from the
    // start of the journal (a copy without checkpoints); both re-run and check every step.
    let config = parsed(&text);
    let from_checkpoint = core::recover(&config).expect("recover from the checkpoint");
    let hash = from_checkpoint.machine.engine.state_hash();
    let orders_recovered = from_checkpoint.machine.engine.order_count();
    drop(from_checkpoint);
    let full = dir.join("journal-full");
    copy_dir(&config.journal.directory, &full);
    for entry in std::fs::read_dir(&full).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains("checkpoint") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut full_config = config.clone();
    full_config.journal.directory = full;
    let replayed = core::recover(&full_config).expect("full replay");
    assert_eq!(replayed.machine.engine.state_hash(), hash);
    assert_eq!(orders_recovered, in_book.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancel_on_disconnect_is_applied_at_start_up_after_a_crash() {
    let dir = temp_dir("e2e-cod").unwrap();
    let text = config_text(&dir, true);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, first) = login(&daemon, "alice", "alice-pw", 0);
    let acks = enter_buys(&mut alice, "C", 0..3, 1_850_000);
    assert_eq!(acks.len(), 3);
    let last_seq = acks.last().unwrap().0;
    assert_eq!(depth(&daemon, "AAPL").len(), 3);
    kill9(&mut daemon);

    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    assert!(
        depth(&daemon, "AAPL").is_empty(),
        "start-up did not cancel the crashed session's orders"
    );
    let (mut alice, next) = login(&daemon, "alice", "alice-pw", last_seq + 1);
    assert_eq!(next, last_seq + 1);
    let replay = drain(&mut alice, Duration::from_millis(500));
    assert_eq!(replay.len(), 3, "{replay:?}");
    for (_, m) in &replay {
        match m {
            OutboundMessage::Canceled(c) => {
                assert_eq!(c.reason(), Some(CancelReason::LoggedOff));
                assert_eq!(c.decrement_shares.get(), 10);
            }
            other => panic!("expected Canceled L, got {other:?}"),
        }
    }
    assert!(first >= 2);
    daemon.stop(WAIT).expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_altered_to_disagree_stops_start_up() {
    let dir = temp_dir("e2e-altered").unwrap();
    let text = config_text(&dir, false);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 0);
    alice.enter(&buy("A1", 1_850_000)).unwrap();
    assert_eq!(drain(&mut alice, Duration::from_millis(300)).len(), 1);
    kill9(&mut daemon);

    // Append a step whose journaled outcome is not the engine's: an Enter the journal says was
    // rejected for an unknown symbol although AAPL exists.
    let config = parsed(&text);
    {
        use bourse_protocol::journaled as j;
        let storage = bourse_journal::MmapStorage::open(&config.journal.directory).unwrap();
        let (mut journal, _) = bourse_journal::Journal::open(storage, config.journal_config()).unwrap();
        let command = bourse_book::Command::Enter(bourse_book::EnterOrder {
            login: 1,
            token: Token::new("A2").unwrap(),
            side: b'B',
            shares: 10,
            symbol: Symbol::new("AAPL").unwrap(),
            price: 1_850_000,
            tif_s: 99_999,
            firm: Alpha::BLANK,
            display: b'Y',
            min_qty: 0,
            capacity: b'P',
            cross_type: b'N',
        });
        let mut buf = [0u8; 128];
        j::encode_command_prefix(&mut buf, u64::from(u32::MAX), *b"PNN");
        let n = command.encode(&mut buf[j::COMMAND_PREFIX_LEN..]).unwrap();
        journal
            .append(j::KIND_COMMAND, &buf[..j::COMMAND_PREFIX_LEN + n])
            .unwrap();
        let event = bourse_book::Event::Rejected {
            timestamp_ns: u64::from(u32::MAX),
            login: 1,
            token: Token::new("A2").unwrap(),
            reason: bourse_protocol::reason::RejectReason::InvalidStock,
        };
        let n = event.encode(&mut buf).unwrap();
        journal.append(u16::from(buf[1]), &buf[..n]).unwrap();
        journal.commit_batch().unwrap();
    }
    let (status, log) = refused_start(
        &text,
        &dir,
        "start-up accepted a journal that disagrees with the engine",
    );
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("recovery mismatch"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint written by the checkpointer thread (asked for through admin while trading goes on) is
/// what a restart after a crash starts from, with every step after it re-run and checked.
#[test]
fn a_crash_recovers_from_the_checkpointers_checkpoint() {
    let dir = temp_dir("e2e-checkpointer").unwrap();
    let text = config_text(&dir, false);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 0);
    assert_eq!(enter_buys(&mut alice, "P", 0..20, 1_800_000).len(), 20);
    let written: u64 = match daemon.admin(&AdminRequest::Checkpoint, WAIT).expect("checkpoint") {
        AdminReply::Done { message, .. } => message
            .strip_prefix("checkpoint at journal sequence ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{message}")),
        other => panic!("{other:?}"),
    };
    match daemon.admin(&AdminRequest::Status, WAIT).expect("status") {
        AdminReply::Status(s) => {
            assert_eq!((s.checkpoint_sequence, s.checkpointer_failed), (written, false));
            assert!(s.checkpointer_sequence >= written);
        }
        other => panic!("{other:?}"),
    }
    // Ten orders after it (far from `checkpoint_every_events`: no other checkpoint), then a crash.
    assert_eq!(enter_buys(&mut alice, "P", 20..30, 1_800_000).len(), 10);
    kill9(&mut daemon);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("recovered: checkpoint at"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("recovered: checkpoint at {written}, 10 steps")),
        "{line}"
    );
    assert_eq!(depth(&daemon, "AAPL").len(), 30);
    let status = daemon.stop(WAIT).expect("stop");
    assert!(status.success(), "{}", daemon.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads sequenced OUCH messages until `count` arrived (or `WAIT` passed); returns how many did.
fn receive(client: &mut Client, count: usize) -> usize {
    let (mut got, deadline) = (0, Instant::now() + WAIT);
    while got < count && Instant::now() < deadline {
        match client.recv(Duration::from_millis(50)) {
            Ok(Some(Event::Sequenced(_))) => got += 1,
            Ok(Some(Event::Closed)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    got
}

/// Segment ids of the segment files in `dir`, ascending.
fn segment_files(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .into_string()
                        .ok()?
                        .strip_suffix(".seg")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

#[test]
fn the_next_days_start_archives_the_old_segments_and_recovery_goes_on() {
    let dir = temp_dir("e2e-archive").unwrap();
    let options = DaemonConfigOptions {
        journal_dir: dir.join("journal"),
        sync: Some("none".into()),
        throttle_msgs_per_s: Some(1_000_000),
        ..DaemonConfigOptions::default()
    };
    let text = daemon_config(DEFAULT_TOML, &options).expect("config");
    // Small segments, and one checkpoint kept: the next day's start-up checkpoint is then the oldest.
    let text = text
        .replace("segment_bytes = 67108864", "segment_bytes = 1048576")
        .replace("checkpoints_kept = 3", "checkpoints_kept = 1");
    assert_eq!(parsed(&text).journal.segment_bytes, 1 << 20, "the replace took");
    assert_eq!(parsed(&text).journal.checkpoints_kept, 1, "the replace took");
    let journal = dir.join("journal");
    let archive = journal.join("archive");

    // Day 1: 15,000 resting buys (several segments' worth), then end of day and a clean stop.
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    match daemon.admin(&AdminRequest::Status, WAIT).expect("status") {
        AdminReply::Status(s) => assert_eq!(s.journal_first_sequence, 1),
        other => panic!("{other:?}"),
    }
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 1);
    assert_eq!(receive(&mut alice, 1), 1, "Start of Day");
    for chunk in 0..30u32 {
        for i in chunk * 500..(chunk + 1) * 500 {
            let order = buy(&format!("D{i}"), 1_850_000 + (i % 500) * 100);
            alice.enter(&order).unwrap();
        }
        assert_eq!(receive(&mut alice, 500), 500, "acks of chunk {chunk}");
    }
    assert!(matches!(
        daemon.admin(&AdminRequest::EndOfDay, WAIT).expect("admin"),
        AdminReply::Done { .. }
    ));
    assert!(daemon.stop(WAIT).unwrap().success());
    let day_one = segment_files(&journal);
    assert!(day_one.len() >= 3, "day 1 filled several segments: {day_one:?}");
    assert!(segment_files(&archive).is_empty(), "nothing archived on day 1");

    // Day 2 starts: every segment holding only day-1 records moves to the archive, and the rest of the
    // journal is a working journal.
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    let moved = segment_files(&archive);
    let kept = segment_files(&journal);
    assert!(!moved.is_empty(), "old segments archived; log:\n{}", daemon.log());
    assert_eq!(
        [moved.clone(), kept.clone()].concat(),
        [day_one.clone(), kept[day_one.len() - moved.len()..].to_vec()].concat(),
        "whole segments moved, oldest first"
    );
    assert!(
        daemon.log().contains("holding only records before sequence"),
        "{}",
        daemon.log()
    );
    let marker = std::fs::read_to_string(journal.join(bourse_journal::ARCHIVE_MARKER_NAME)).expect("marker");
    assert_eq!(marker, format!("{}\n", kept[0]));
    match daemon.admin(&AdminRequest::Status, WAIT).expect("status") {
        AdminReply::Status(s) => assert_eq!(s.journal_first_sequence, kept[0]),
        other => panic!("{other:?}"),
    }
    let (mut alice, next) = login(&daemon, "alice", "alice-pw", 1);
    assert_eq!(next, 1, "a new day");
    alice.enter(&buy("N1", 1_900_000)).unwrap();
    let before_crash = drain(&mut alice, Duration::from_millis(300));
    assert_eq!(
        before_crash.len(),
        2,
        "Start of Day and the ack: {before_crash:?}"
    );
    assert_eq!(depth(&daemon, "AAPL").len(), 1, "day orders ended with day 1");

    // A crash on day 2 recovers from the archived journal: the session replays exactly the day's messages.
    kill9(&mut daemon);
    let daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart after a crash");
    assert!(daemon.log().contains("trading day continues"), "{}", daemon.log());
    let (mut alice, next) = login(&daemon, "alice", "alice-pw", 1);
    assert_eq!(next, 1);
    // alice has cancel-on-disconnect (the default config): start-up canceled N1 and journaled it.
    let replayed = drain(&mut alice, Duration::from_millis(300));
    assert_eq!(replayed[..2], before_crash[..], "{replayed:?}");
    assert!(
        matches!(&replayed[2..], [(3, OutboundMessage::Canceled(c))] if c.order_token == Token::new("N1").unwrap()),
        "{replayed:?}"
    );
    assert!(depth(&daemon, "AAPL").is_empty());
    drop(alice);
    drop(daemon);

    // Without the first segment kept, the journal would start over below the marker: start-up refuses.
    let first_kept = journal.join(format!("{:020}.seg", kept[0]));
    let aside = dir.join("aside.seg");
    std::fs::rename(&first_kept, &aside).unwrap();
    let error = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("segments kept after the last archive are missing"),
        "{error}"
    );
    assert!(
        segment_files(&journal).iter().all(|&id| id > kept[0]),
        "nothing new written below the marker: {:?}",
        segment_files(&journal)
    );
    std::fs::rename(&aside, &first_kept).unwrap();

    // Without a checkpoint the archived records would be needed: start-up refuses, naming the marker.
    for entry in std::fs::read_dir(&journal).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("checkpoint") {
            std::fs::remove_file(journal.join(name)).unwrap();
        }
    }
    let error = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect_err("refused");
    assert!(
        error.to_string().contains(bourse_journal::ARCHIVE_MARKER_NAME),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_archive_directory_on_another_file_system_stops_the_first_start() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("e2e-archive-xdev").unwrap();
    let elsewhere = PathBuf::from(format!("/dev/shm/bourse-archive-{}", std::process::id()));
    let device = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
    match (device(&dir), device(Path::new("/dev/shm"))) {
        (Ok(a), Ok(b)) if a != b => {}
        other => {
            eprintln!("skipped: no second file system at /dev/shm here ({other:?})");
            return;
        }
    }
    let text = config_text(&dir, false).replace(
        "archive_directory = \"archive\"",
        &format!("archive_directory = {:?}", elsewhere.display().to_string()),
    );
    assert_eq!(
        parsed(&text).journal.archive_directory,
        elsewhere,
        "the replace took"
    );
    let error = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("journal.archive_directory"), "{message}");
    assert!(message.contains("file system"), "{message}");
    let _ = std::fs::remove_dir_all(&elsewhere);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A journal that ends before the newest checkpoint has lost acknowledged records (here: its segments
/// put back from an older copy; in life, a machine crash under sync `none`). Start-up refuses and names
/// the checkpoint files that are ahead of it; with those moved away, the daemon starts from the journal
/// as it is, and what it acknowledges from then on survives the next crash. (Before the check it started
/// with the checkpoint's book, the two lost orders in it, and its pipeline stopped on a feed sequence
/// gap right after acknowledging the next order.)
#[test]
fn a_journal_that_ends_before_the_newest_checkpoint_stops_start_up() {
    let dir = temp_dir("e2e-behind").unwrap();
    let text = config_text(&dir, false);
    let journal = dir.join("journal");
    let older = dir.join("older-segments");
    let segments = |from: &Path| -> Vec<PathBuf> {
        segment_files(from)
            .into_iter()
            .map(|id| from.join(format!("{id:020}.seg")))
            .collect()
    };

    // Three orders, a clean stop (its checkpoint), and a copy of the segments as they are then.
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 0);
    assert_eq!(enter_buys(&mut alice, "A", 0..3, 1_850_000).len(), 3);
    assert!(daemon.stop(WAIT).unwrap().success());
    std::fs::create_dir_all(&older).unwrap();
    for path in segments(&journal) {
        std::fs::copy(&path, older.join(path.file_name().unwrap())).unwrap();
    }
    assert!(!segments(&older).is_empty(), "segments copied");

    // Two more orders and a clean stop: a newer checkpoint. Then the older segments go back.
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 0);
    assert_eq!(enter_buys(&mut alice, "B", 0..2, 1_860_000).len(), 2);
    assert!(daemon.stop(WAIT).unwrap().success());
    for path in segments(&journal) {
        std::fs::remove_file(path).unwrap();
    }
    for path in segments(&older) {
        std::fs::copy(&path, journal.join(path.file_name().unwrap())).unwrap();
    }

    let (_, log) = refused_start(
        &text,
        &dir,
        "start-up accepted a journal that ends before the newest checkpoint",
    );
    let end: u64 = log
        .split("ends at sequence ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the journal's end in: {log}"));
    let checkpoints: Vec<(u64, String)> = {
        let mut storage = bourse_journal::MmapStorage::open_read_only(&journal).unwrap();
        bourse_journal::checkpoint::list(&mut storage)
            .unwrap()
            .into_iter()
            .map(|c| (c, bourse_journal::checkpoint::file_name(c)))
            .collect()
    };
    let ahead: Vec<&String> = checkpoints
        .iter()
        .filter(|(s, _)| *s > end)
        .map(|(_, n)| n)
        .collect();
    assert!(
        !ahead.is_empty(),
        "a checkpoint ahead of the journal: {checkpoints:?}"
    );
    for name in &ahead {
        assert!(log.contains(name.as_str()), "the error names {name}: {log}");
    }
    assert!(
        checkpoints.iter().any(|(s, _)| *s <= end),
        "an older checkpoint stays usable: {checkpoints:?}"
    );

    // The operator's way on: the checkpoints ahead moved away. The book is the journal's (the two later
    // orders are gone with their records), and a new order survives a crash and the restart after it.
    let aside = dir.join("checkpoints-ahead");
    std::fs::create_dir_all(&aside).unwrap();
    for name in &ahead {
        std::fs::rename(journal.join(name), aside.join(name)).unwrap();
    }
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start from the journal");
    assert_eq!(depth(&daemon, "AAPL").len(), 3, "the journal's three orders");
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 0);
    assert_eq!(enter_buys(&mut alice, "C", 0..1, 1_870_000).len(), 1);
    let book = depth(&daemon, "AAPL");
    assert_eq!(book.len(), 4);
    kill9(&mut daemon);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart after the crash");
    assert_eq!(
        depth(&daemon, "AAPL"),
        book,
        "the order acknowledged after the fallback is kept"
    );
    daemon.stop(WAIT).expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second `boursed` started on a journal directory that a running one writes (a second config naming
/// the same directory, a restart while the old process still drains) stops before it changes anything,
/// and the running daemon trades on; its journal verifies and restarts with every order.
#[test]
fn a_second_boursed_on_the_same_journal_is_refused_and_the_first_trades_on() {
    let dir = temp_dir("e2e-second").unwrap();
    let second_dir = temp_dir("e2e-second-files").unwrap();
    let text = config_text(&dir, false);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, _) = login(&daemon, "alice", "alice-pw", 0);
    assert_eq!(enter_buys(&mut alice, "F", 0..2, 1_850_000).len(), 2);

    // The same journal directory; its own ports (0), config, ports file and log.
    let (_, log) = refused_start(
        &text,
        &second_dir,
        "a second boursed started on a journal that another one writes",
    );
    assert!(log.contains("in use by another writer"), "{log}");

    assert_eq!(
        enter_buys(&mut alice, "G", 0..2, 1_860_000).len(),
        2,
        "the first trades on"
    );
    let book = depth(&daemon, "AAPL");
    assert_eq!(book.len(), 4);
    assert!(daemon.stop(WAIT).unwrap().success());
    let config = parsed(&text);
    let mut storage = bourse_journal::MmapStorage::open_read_only(&config.journal.directory).unwrap();
    let report = bourse_journal::verify(&mut storage).expect("the journal verifies");
    assert!(report.torn_tail.is_none(), "{report:?}");
    let daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    assert_eq!(depth(&daemon, "AAPL"), book);
    let mut daemon = daemon;
    daemon.stop(WAIT).expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&second_dir);
}
