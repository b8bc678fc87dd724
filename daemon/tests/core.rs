//! The core stage in-process: requests in through its ring, released outputs out of its rings, the
//! journal on disk, then recovery over the same journal (same state, and a journal that disagrees with
//! the engine stops start-up).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bourse_book::{Command, EnterOrder};
use bourse_daemon::agent::Agent;
use bourse_daemon::config::{Config, SyncName};
use bourse_daemon::core::{self, Core, CoreParams, StartError};
use bourse_daemon::msg::{Lifecycle, Request, RequestBody, ToFeed, ToSession};
use bourse_daemon::ring::{self, Consumer, Producer};
use bourse_daemon::stats::Shared;
use bourse_protocol::fields::{Alpha, Firm, PRICE_MARKET, Symbol, Token};
use bourse_protocol::itch;
use bourse_protocol::journaled as j;
use bourse_protocol::ouch::{self, OutboundMessage};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

fn temp_dir(name: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bourse-core-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &std::path::Path, sync: SyncName) -> Config {
    let mut config = Config::embedded_default();
    config.journal.directory = dir.to_path_buf();
    config.journal.sync = sync;
    config.journal.segment_bytes = 1 << 20;
    config.validate().expect("test config is valid");
    config
}

struct Harness {
    core: Core,
    requests: Producer<Request>,
    sessions: Consumer<ToSession>,
    feed: Consumer<ToFeed>,
    ouch: Vec<(u32, u64, Vec<u8>)>,
    itch: Vec<(u64, Vec<u8>)>,
    lifecycle: Arc<Lifecycle>,
    shared: Arc<Shared>,
    jobs: std::sync::mpsc::Sender<core::AdminJob>,
}

impl Harness {
    fn start(config: &Config) -> Result<Harness, StartError> {
        Harness::start_with_rings(config, 1024)
    }

    /// With reply and feed rings of `capacity` records.
    fn start_with_rings(config: &Config, capacity: usize) -> Result<Harness, StartError> {
        let mut recovered = core::recover(config)?;
        core::start_up(&mut recovered, config)?;
        let (requests, requests_rx) = ring::ring(1024);
        let (sessions_tx, sessions) = ring::ring(capacity);
        let (feed_tx, feed) = ring::ring(capacity);
        let (jobs, jobs_rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::new());
        let lifecycle = Arc::new(Lifecycle::default());
        let core = Core::new(CoreParams {
            recovered,
            config: config.clone(),
            requests: requests_rx,
            to_sessions: sessions_tx,
            to_feed: feed_tx,
            admin: jobs_rx,
            shared: Arc::clone(&shared),
            lifecycle: Arc::clone(&lifecycle),
            helper_cores: Vec::new(),
        });
        Ok(Harness {
            core,
            requests,
            sessions,
            feed,
            ouch: Vec::new(),
            itch: Vec::new(),
            lifecycle,
            shared,
            jobs,
        })
    }

    fn run(&mut self) {
        self.run_draining(100, usize::MAX);
    }

    /// `rounds` rounds of the core, each followed by taking at most `per_round` records of each ring.
    fn run_draining(&mut self, rounds: usize, per_round: usize) {
        for _ in 0..rounds {
            self.core.do_work(0);
            self.sessions.drain(per_round, |r| {
                if let ToSession::Ouch {
                    login,
                    session_seq,
                    len,
                    bytes,
                    ..
                } = *r
                {
                    self.ouch
                        .push((login, session_seq, bytes[..len as usize].to_vec()));
                }
            });
            self.feed.drain(per_round, |r| {
                if let ToFeed::Message {
                    feed_seq, len, bytes, ..
                } = *r
                {
                    self.itch.push((feed_seq, bytes[..len as usize].to_vec()));
                }
            });
        }
    }

    fn send(&mut self, login: u32, command: Command) {
        self.requests
            .push(Request {
                login,
                recv_ns: 1,
                body: RequestBody::Order(command),
                echo: *b"PNN",
            })
            .expect("room in the ring");
    }

    fn shutdown(mut self) {
        self.lifecycle.ingress_closed.store(true, Ordering::Release);
        // The core closes once the checkpointer thread has written the last checkpoint.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.lifecycle.core_closed.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            self.core.do_work(0);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(self.lifecycle.core_closed.load(Ordering::Acquire));
    }
}

fn enter(login: u32, token: &str, side: u8, shares: u32, price: u32) -> Command {
    Command::Enter(EnterOrder {
        login,
        token: Token::new(token).unwrap(),
        side,
        shares,
        symbol: Symbol::new("AAPL").unwrap(),
        price,
        tif_s: 99_999,
        firm: Firm::BLANK,
        display: b'Y',
        min_qty: 0,
        capacity: b'P',
        cross_type: b'N',
    })
}

fn decode_ouch(bytes: &[u8]) -> OutboundMessage {
    ouch::Outbound::decode(bytes).expect("valid OUCH").to_message()
}

#[test]
fn a_cross_is_journaled_released_and_recovered() {
    let dir = temp_dir("cross");
    let config = config(&dir, SyncName::Batch);
    let mut h = Harness::start(&config).expect("start");
    h.run();
    // Start of day: ITCH S O, R x4, H x4, S S, S Q; OUCH S S to each of the 4 logins.
    let types: Vec<u8> = h.itch.iter().map(|(_, b)| b[0]).collect();
    assert_eq!(types, b"SRRRRHHHHSS");
    assert_eq!(
        h.itch.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<_>>()
    );
    assert_eq!(h.ouch.len(), 4);
    h.ouch.clear();
    h.itch.clear();

    h.send(1, enter(1, "A1", b'B', 100, 1_900_000));
    h.send(2, enter(2, "B1", b'S', 60, 1_900_000));
    let mut market = enter(2, "B2", b'S', 10, PRICE_MARKET); // market order: IOC, bounded by the collar
    if let Command::Enter(o) = &mut market {
        o.tif_s = 0;
    }
    h.send(2, market);
    h.run();
    let alice: Vec<_> = h.ouch.iter().filter(|(l, _, _)| *l == 1).collect();
    let bob: Vec<_> = h.ouch.iter().filter(|(l, _, _)| *l == 2).collect();
    let all: Vec<_> = h.ouch.iter().map(|(l, s, b)| (*l, *s, decode_ouch(b))).collect();
    assert_eq!(
        alice.iter().map(|(_, s, _)| *s).collect::<Vec<_>>(),
        vec![2, 3, 4],
        "{all:#?}"
    );
    match decode_ouch(&alice[0].2) {
        OutboundMessage::Accepted(a) => {
            assert_eq!(a.order_token, Token::new("A1").unwrap());
            assert_eq!(a.capacity, b'P');
            assert_eq!(a.cross_type, b'N');
            assert_eq!(a.order_state, ouch::OrderState::Live);
        }
        other => panic!("expected Accepted, got {other:?}"),
    }
    match decode_ouch(&alice[1].2) {
        OutboundMessage::Executed(e) => {
            assert_eq!(e.executed_shares.get(), 60);
            assert_eq!(e.liquidity_flag, ouch::LiquidityFlag::Added);
            assert_eq!(e.match_number.get(), 1);
        }
        other => panic!("expected Executed, got {other:?}"),
    }
    match decode_ouch(&bob[1].2) {
        OutboundMessage::Executed(e) => assert_eq!(e.liquidity_flag, ouch::LiquidityFlag::Removed),
        other => panic!("expected Executed, got {other:?}"),
    }
    // ITCH: Add (alice), Executed 60, Executed 10 (market order), no Add for the takers.
    let types: Vec<u8> = h.itch.iter().map(|(_, b)| b[0]).collect();
    assert_eq!(types, b"AEE");
    match itch::Message::decode(&h.itch[2].1).unwrap() {
        itch::Message::OrderExecuted(e) => {
            assert_eq!(e.executed_shares, 10);
            assert_eq!(e.match_number, 2);
        }
        other => panic!("{other:?}"),
    }
    let hash = h.core_state_hash();
    h.shutdown();

    // Recovery from the checkpoint written at shutdown: nothing to replay, same book.
    let recovered = core::recover(&config).expect("recover");
    assert_eq!(recovered.steps_replayed, 0);
    assert_eq!(recovered.machine.engine.state_hash(), hash);
    drop(recovered);

    // Remove the checkpoints: a full replay of the journal checks every step and gives the same book.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains("checkpoint") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let recovered = core::recover(&config).expect("full replay");
    assert!(recovered.steps_replayed >= 4, "{}", recovered.steps_replayed);
    assert_eq!(recovered.machine.engine.state_hash(), hash);
    // The journal's spare builder writes into the directory until the journal is dropped.
    drop(recovered);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Outputs are built in place in the rings (staged, published at release) while the rings have room, and
/// queued when they fill: either way, under every sync policy, each login's OUCH stream and the feed come
/// out whole, numbered without a gap, and the same as through rings that never fill.
#[test]
fn outputs_come_out_whole_and_in_order_through_rings_that_fill() {
    type Seen = (Vec<(u32, u64, u8)>, Vec<(u64, u8)>);
    let run = |sync: SyncName, capacity: usize, per_round: usize| -> Seen {
        let dir = temp_dir("full-rings");
        let config = config(&dir, sync);
        let mut h = Harness::start_with_rings(&config, capacity).expect("start");
        for round in 0..30u32 {
            // Resting buys and sells that cross: Accepted, Executed, Add Order, Order Executed.
            h.send(1, enter(1, &format!("A{round}"), b'B', 100, 1_900_000));
            h.send(2, enter(2, &format!("B{round}"), b'S', 40, 1_900_000));
            h.run_draining(3, per_round);
        }
        h.run_draining(400, per_round);
        let seen = (
            h.ouch.iter().map(|(l, s, b)| (*l, *s, b[0])).collect(),
            h.itch.iter().map(|(s, b)| (*s, b[0])).collect(),
        );
        h.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        seen
    };
    for sync in [SyncName::None, SyncName::Batch, SyncName::EveryBatches] {
        let (ouch, itch) = run(sync, 4, 3);
        for login in 1..=4u32 {
            let seqs: Vec<u64> = ouch
                .iter()
                .filter(|(l, ..)| *l == login)
                .map(|(_, s, _)| *s)
                .collect();
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "{sync:?} login {login}"
            );
        }
        let feed: Vec<u64> = itch.iter().map(|(s, _)| *s).collect();
        assert_eq!(feed, (1..=feed.len() as u64).collect::<Vec<_>>(), "{sync:?}");
        assert!(
            itch.len() > 11 + 30 * 2,
            "{sync:?}: the day start, an Add and executions per round"
        );
        assert_eq!(
            (ouch, itch),
            run(sync, 1024, usize::MAX),
            "{sync:?}: as through roomy rings"
        );
    }
}

/// Runs a daemon core once on `config` (a day starts), stops it, then appends one batch written by `write`
/// to its journal, as a tampering or an older version would have.
fn append_after_a_run(
    config: &Config,
    write: impl FnOnce(&mut bourse_journal::Journal<bourse_journal::MmapStorage>),
) {
    let mut h = Harness::start(config).expect("start");
    h.run();
    h.shutdown();
    let storage = bourse_journal::MmapStorage::open(&config.journal.directory).unwrap();
    let (mut journal, _) = bourse_journal::Journal::open(storage, config.journal_config()).unwrap();
    write(&mut journal);
    journal.commit_batch().unwrap();
}

#[test]
fn a_journal_that_disagrees_with_the_engine_stops_start_up() {
    let dir = temp_dir("mismatch");
    let config = config(&dir, SyncName::None);
    // Append a step whose journaled outcome is not what the engine does: an Enter that the journal
    // says was rejected 'S' although AAPL exists.
    append_after_a_run(&config, |journal| {
        let command = enter(1, "X1", b'B', 100, 1_900_000);
        let mut buf = [0u8; 128];
        j::encode_command_prefix(&mut buf, 5_000, *b"PNN");
        let n = command.encode(&mut buf[j::COMMAND_PREFIX_LEN..]).unwrap();
        journal
            .append(j::KIND_COMMAND, &buf[..j::COMMAND_PREFIX_LEN + n])
            .unwrap();
        let event = bourse_book::Event::Rejected {
            timestamp_ns: 5_000,
            login: 1,
            token: Token::new("X1").unwrap(),
            reason: bourse_protocol::reason::RejectReason::InvalidStock,
        };
        let n = event.encode(&mut buf).unwrap();
        journal.append(u16::from(buf[1]), &buf[..n]).unwrap();
    });
    match Harness::start(&config) {
        Err(StartError::Mismatch(detail)) => assert!(detail.contains("recovery mismatch"), "{detail}"),
        Err(other) => panic!("expected a mismatch, got {other}"),
        Ok(_) => panic!("start-up accepted a journal that disagrees with the engine"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_from_before_the_command_record_stops_start_up_with_a_clear_error() {
    let dir = temp_dir("retired-kind");
    let config = config(&dir, SyncName::None);
    // What an older boursed wrote before each book command record.
    append_after_a_run(&config, |journal| {
        let mut old = [0u8; 11];
        old[..8].copy_from_slice(&5_000u64.to_le_bytes());
        old[8..].copy_from_slice(b"PNN");
        journal.append(j::KIND_RETIRED_SEQUENCED, &old).unwrap();
    });
    match Harness::start(&config) {
        Err(StartError::Mismatch(detail)) => {
            assert!(detail.contains("record kind 0x0100"), "{detail}");
            assert!(detail.contains("empty journal directory"), "{detail}");
        }
        Err(other) => panic!("expected a mismatch, got {other}"),
        Ok(_) => panic!("start-up accepted a record kind it no longer writes"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancel_on_disconnect_at_start_up_is_journaled() {
    let dir = temp_dir("cod");
    let config = config(&dir, SyncName::Batch);
    let mut h = Harness::start(&config).expect("start");
    h.send(1, enter(1, "A1", b'B', 100, 1_890_000)); // alice: cancel_on_disconnect = true
    h.send(3, enter(3, "C1", b'B', 100, 1_880_000)); // carol: false
    h.run();
    // A crash: no shutdown, no checkpoint beyond the start-of-day one.
    drop(h);
    let mut h2 = Harness::start(&config).expect("restart");
    h2.run();
    let alice: Vec<OutboundMessage> = h2
        .ouch
        .iter()
        .filter(|(l, _, _)| *l == 1)
        .map(|(_, _, b)| decode_ouch(b))
        .collect();
    assert_eq!(alice.len(), 1, "{alice:?}");
    match &alice[0] {
        OutboundMessage::Canceled(c) => {
            assert_eq!(c.reason(), Some(bourse_protocol::reason::CancelReason::LoggedOff));
            assert_eq!(c.decrement_shares.get(), 100);
        }
        other => panic!("{other:?}"),
    }
    assert!(h2.ouch.iter().all(|(l, _, _)| *l != 3));
    assert_eq!(h2.itch.iter().map(|(_, b)| b[0]).collect::<Vec<u8>>(), b"D");
    assert_eq!(h2.core_orders(), 1);
    let _ = Alpha::<1>::BLANK;
    // The journal's spare builder writes into the directory until the core is dropped.
    drop(h2);
    let _ = std::fs::remove_dir_all(&dir);
}

impl Harness {
    fn core_state_hash(&self) -> u64 {
        self.core.state_hash()
    }
    fn core_orders(&self) -> usize {
        self.core.order_count()
    }
}

#[test]
fn checkpoints_come_from_the_checkpointer_and_recovery_starts_from_them() {
    let dir = temp_dir("checkpointer");
    let mut config = config(&dir, SyncName::Batch);
    config.journal.checkpoint_every_events = 20;
    let mut h = Harness::start(&config).expect("start");
    let (_, at_start, _) = h.shared.checkpointer();
    for i in 0..60u32 {
        let (login, side) = if i % 2 == 0 { (1, b'B') } else { (2, b'S') };
        h.send(login, enter(login, &format!("K{i}"), side, 100 + i, 1_900_000));
        h.run_draining(2, usize::MAX);
    }
    // Periodic checkpoints, written by the checkpointer thread as it follows the journal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while h.shared.checkpointer().1 <= at_start {
        assert!(std::time::Instant::now() < deadline, "no periodic checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Admin `checkpoint`: answered once the checkpointer has written it, at the last journaled record.
    let (tx, rx) = std::sync::mpsc::channel();
    h.jobs
        .send(core::AdminJob {
            request: bourse_protocol::admin::AdminRequest::Checkpoint,
            reply: tx,
        })
        .expect("job");
    let reply = loop {
        h.core.do_work(0);
        if let Ok(reply) = rx.try_recv() {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "no answer to checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let last: u64 = match reply {
        bourse_protocol::admin::AdminReply::Done { message, .. } => message
            .strip_prefix("checkpoint at journal sequence ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{message}")),
        other => panic!("{other:?}"),
    };
    let (applied, written, failed) = h.shared.checkpointer();
    assert_eq!((applied, written, failed), (last, last, false));
    let hash = h.core_state_hash();
    // A crash right after: recovery starts from that checkpoint, with nothing to re-run.
    drop(h);
    let recovered = core::recover(&config).expect("recover");
    assert_eq!(recovered.checkpoint_sequence, last);
    assert_eq!(
        recovered.recovered_up_to, last,
        "the checkpoint is at the last journaled record"
    );
    assert_eq!(recovered.steps_replayed, 0);
    assert_eq!(recovered.machine.engine.state_hash(), hash);
    drop(recovered);
    let _ = std::fs::remove_dir_all(&dir);
}
