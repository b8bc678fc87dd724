//! The trading day on the real binary: end of day over admin (cancels, System Event E, End of Session,
//! logins refused), and the restart that starts the next day (new session name, sequences from 1);
//! operator actions (halt, kill, bust) reach the sessions as the contract says.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourse_daemon::config::DEFAULT_TOML;
use bourse_protocol::admin::{AdminErrorCode, AdminReply, AdminRequest};
use bourse_protocol::fields::Token;
use bourse_protocol::ouch::{self, OutboundMessage};
use bourse_protocol::reason::{CancelReason, RejectReason};
use bourse_protocol::soupbintcp::LoginRejectReason;
use bourse_tools::client::{Client, ClientConfig, Event, LoginOutcome, limit_order};
use bourse_tools::load::daemon::{Daemon, DaemonConfigOptions, daemon_config, temp_dir};

const WAIT: Duration = Duration::from_secs(20);

fn boursed() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boursed"))
}

fn config_text(dir: &Path) -> String {
    let options = DaemonConfigOptions {
        journal_dir: dir.join("journal"),
        sync: Some("none".into()),
        ..DaemonConfigOptions::default()
    };
    daemon_config(DEFAULT_TOML, &options).expect("config")
}

fn connect(daemon: &Daemon, user: &str, password: &str, session: &str, seq: u64) -> (Client, LoginOutcome) {
    let mut client = Client::connect(daemon.ports.order_entry, &ClientConfig::default()).expect("connect");
    let outcome = client.login(user, password, session, seq).expect("login");
    (client, outcome)
}

fn order(token: &str, side: ouch::Side, shares: u32, price: u32) -> ouch::EnterOrder {
    limit_order(token, side, shares, "AAPL", price, "").expect("valid order")
}

/// Reads events until `quiet` passes without any sequenced message, an End of Session or a close.
fn read(client: &mut Client, quiet: Duration) -> (Vec<OutboundMessage>, bool, bool) {
    let (mut messages, mut end, mut closed) = (Vec::new(), false, false);
    let mut last = Instant::now();
    while last.elapsed() < quiet && !closed {
        match client.recv(Duration::from_millis(50)) {
            Ok(Some(Event::Sequenced(d))) => {
                messages.push(d.ouch().unwrap());
                last = Instant::now();
            }
            Ok(Some(Event::EndOfSession)) => end = true,
            Ok(Some(Event::Closed)) | Err(_) => closed = true,
            Ok(_) => {}
        }
    }
    (messages, end, closed)
}

fn admin(daemon: &Daemon, request: AdminRequest) -> AdminReply {
    daemon.admin(&request, WAIT).expect("admin")
}

#[test]
fn operator_actions_reach_the_sessions() {
    let dir = temp_dir("e2e-ops").unwrap();
    let text = config_text(&dir);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, _) = connect(&daemon, "alice", "alice-pw", "", 0);
    let (mut bob, _) = connect(&daemon, "bob", "bob-pw", "", 0);
    alice
        .enter(&order("A1", ouch::Side::Buy, 100, 1_900_000))
        .unwrap();
    alice
        .enter(&order("A2", ouch::Side::Buy, 100, 1_890_000))
        .unwrap();
    bob.enter(&order("B1", ouch::Side::Sell, 40, 1_900_000)).unwrap();
    let (a, _, _) = read(&mut alice, Duration::from_millis(300));
    let (b, _, _) = read(&mut bob, Duration::from_millis(300));
    assert_eq!(a.len(), 3, "{a:?}"); // A, A, E
    assert_eq!(b.len(), 2, "{b:?}"); // A, E
    let match_number = match &b[1] {
        OutboundMessage::Executed(e) => e.match_number.get(),
        other => panic!("{other:?}"),
    };

    // Bust: Broken Trade to both sides.
    match admin(&daemon, AdminRequest::Bust { match_number }) {
        AdminReply::Done { sequence, .. } => assert!(sequence.is_some()),
        other => panic!("{other:?}"),
    }
    for client in [&mut alice, &mut bob] {
        let (m, _, _) = read(client, Duration::from_millis(300));
        assert!(
            matches!(&m[..], [OutboundMessage::BrokenTrade(t)] if t.match_number.get() == match_number),
            "{m:?}"
        );
    }
    match admin(&daemon, AdminRequest::Bust { match_number }) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::UnknownMatch),
        other => panic!("{other:?}"),
    }

    // Halt: new orders rejected H; resume; unknown symbols are errors, a second halt is AlreadyInState.
    assert!(matches!(
        admin(
            &daemon,
            AdminRequest::Halt {
                symbol: "AAPL".into()
            }
        ),
        AdminReply::Done { .. }
    ));
    match admin(
        &daemon,
        AdminRequest::Halt {
            symbol: "AAPL".into(),
        },
    ) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::AlreadyInState),
        other => panic!("{other:?}"),
    }
    match admin(
        &daemon,
        AdminRequest::Halt {
            symbol: "NOPE".into(),
        },
    ) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::UnknownSymbol),
        other => panic!("{other:?}"),
    }
    bob.enter(&order("B2", ouch::Side::Sell, 10, 1_950_000)).unwrap();
    let (m, _, _) = read(&mut bob, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::Rejected(r)] if r.reason() == Some(RejectReason::Halted)),
        "{m:?}"
    );
    assert!(matches!(
        admin(
            &daemon,
            AdminRequest::Resume {
                symbol: "AAPL".into()
            }
        ),
        AdminReply::Done { .. }
    ));

    // Kill switch on alice's firm: her resting orders canceled S, her new ones rejected; unkill.
    match admin(&daemon, AdminRequest::Kill { firm: "ALFA".into() }) {
        AdminReply::Done { message, .. } => assert!(message.contains("2 orders canceled"), "{message}"),
        other => panic!("{other:?}"),
    }
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m.iter().all(
            |x| matches!(x, OutboundMessage::Canceled(c) if c.reason() == Some(CancelReason::Supervisory))
        )
    );
    alice.enter(&order("A3", ouch::Side::Buy, 10, 1_900_000)).unwrap();
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert!(matches!(&m[..], [OutboundMessage::Rejected(_)]), "{m:?}");
    assert!(matches!(
        admin(&daemon, AdminRequest::Unkill { firm: "ALFA".into() }),
        AdminReply::Done { .. }
    ));
    match admin(&daemon, AdminRequest::Kill { firm: "NOPE".into() }) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::UnknownFirm),
        other => panic!("{other:?}"),
    }

    // Disable: the session is closed and logins refused A; enable lets it back in.
    assert!(matches!(
        admin(&daemon, AdminRequest::Disable { user: "bob".into() }),
        AdminReply::Done { .. }
    ));
    let (_, _, closed) = read(&mut bob, Duration::from_millis(500));
    assert!(closed, "a disabled login's session stays open");
    let (_, outcome) = connect(&daemon, "bob", "bob-pw", "", 0);
    assert_eq!(outcome, LoginOutcome::Rejected(LoginRejectReason::NotAuthorized));
    assert!(matches!(
        admin(&daemon, AdminRequest::Enable { user: "bob".into() }),
        AdminReply::Done { .. }
    ));
    let (_, outcome) = connect(&daemon, "bob", "bob-pw", "", 0);
    assert!(matches!(outcome, LoginOutcome::Accepted { .. }), "{outcome:?}");
    match admin(
        &daemon,
        AdminRequest::Logout {
            user: "nobody".into(),
        },
    ) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::UnknownUser),
        other => panic!("{other:?}"),
    }
    assert!(daemon.stop(WAIT).unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn end_of_day_then_restart_starts_the_next_day() {
    let dir = temp_dir("e2e-eod").unwrap();
    let text = config_text(&dir);
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("start");
    let (mut alice, outcome) = connect(&daemon, "alice", "alice-pw", "", 1);
    let LoginOutcome::Accepted { session, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::SystemEvent(_)]),
        "start of day first: {m:?}"
    );
    alice
        .enter(&order("A1", ouch::Side::Buy, 100, 1_900_000))
        .unwrap();
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert_eq!(m.len(), 1);
    // Trade 1 of the day: bob's X1 takes 30 of alice's A1.
    let (mut bob, _) = connect(&daemon, "bob", "bob-pw", "", 0);
    bob.enter(&order("X1", ouch::Side::Sell, 30, 1_900_000)).unwrap();
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::Executed(e)] if e.match_number.get() == 1),
        "{m:?}"
    );

    match admin(&daemon, AdminRequest::EndOfDay) {
        AdminReply::Done { .. } => {}
        other => panic!("{other:?}"),
    }
    let (m, end, closed) = read(&mut alice, Duration::from_millis(500));
    assert!(
        matches!(&m[0], OutboundMessage::Canceled(c) if c.reason() == Some(CancelReason::Closed)),
        "{m:?}"
    );
    assert!(
        matches!(&m[1], OutboundMessage::SystemEvent(e) if e.event_code == ouch::EventCode::EndOfDay),
        "{m:?}"
    );
    assert!(
        end && closed,
        "End of Session then close expected (end {end}, closed {closed})"
    );
    let (_, outcome) = connect(&daemon, "alice", "alice-pw", "", 0);
    assert_eq!(
        outcome,
        LoginOutcome::Rejected(LoginRejectReason::SessionNotAvailable)
    );
    match admin(&daemon, AdminRequest::EndOfDay) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::AlreadyInState),
        other => panic!("{other:?}"),
    }
    // The day's feed and sessions have ended: a bust would publish after them and is refused; a halt
    // and a kill switch set the state the next day starts with.
    match admin(&daemon, AdminRequest::Bust { match_number: 1 }) {
        AdminReply::Error { code, .. } => assert_eq!(code, AdminErrorCode::Unavailable),
        other => panic!("{other:?}"),
    }
    for request in [
        AdminRequest::Halt {
            symbol: "MSFT".into(),
        },
        AdminRequest::Kill { firm: "GAMA".into() },
    ] {
        match admin(&daemon, request) {
            AdminReply::Done { message, .. } => assert!(message.contains("next day"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(daemon.stop(WAIT).unwrap().success());

    // Restart: a new day, a new session name, sequence numbers from 1 (System Event S first).
    let mut daemon = Daemon::start(&boursed(), &text, &dir, &[], WAIT).expect("restart");
    let (_, outcome) = connect(&daemon, "alice", "alice-pw", &session.to_string(), 1);
    assert_eq!(
        outcome,
        LoginOutcome::Rejected(LoginRejectReason::SessionNotAvailable),
        "old session name"
    );
    let (mut alice, outcome) = connect(&daemon, "alice", "alice-pw", "", 1);
    let LoginOutcome::Accepted {
        session: next,
        sequence_next,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_ne!(next, session);
    assert_eq!(&next.0[..8], &session.0[..8], "same date");
    assert_eq!(sequence_next, 1);
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::SystemEvent(e)] if e.event_code == ouch::EventCode::StartOfDay),
        "{m:?}"
    );
    match admin(
        &daemon,
        AdminRequest::Depth {
            symbol: "MSFT".into(),
            levels: 1,
        },
    ) {
        AdminReply::Depth(d) => assert!(d.halted, "MSFT halted after end of day stays halted"),
        other => panic!("{other:?}"),
    }
    let (mut carol, _) = connect(&daemon, "carol", "carol-pw", "", 0);
    carol
        .enter(&order("G1", ouch::Side::Buy, 100, 1_900_000))
        .unwrap();
    let (m, _, _) = read(&mut carol, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::Rejected(r)] if r.reason() == Some(RejectReason::KillSwitch)),
        "GAMA's kill switch from the day before: {m:?}"
    );
    // Tokens are day-unique: A1 is new again today.
    alice
        .enter(&order("A1", ouch::Side::Buy, 100, 1_900_000))
        .unwrap();
    let (m, _, _) = read(&mut alice, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::Accepted(a)] if a.order_reference_number.get() == 1),
        "{m:?}"
    );
    // Trade 1 of the new day (match numbers start again): bob's Y1 takes 20 of alice's A1. Its bust is
    // read back from today's journal records, not yesterday's trade 1 (bob's X1).
    let (mut bob, _) = connect(&daemon, "bob", "bob-pw", "", 0);
    bob.enter(&order("Y1", ouch::Side::Sell, 20, 1_900_000)).unwrap();
    let (m, _, _) = read(&mut bob, Duration::from_millis(300));
    assert!(
        matches!(&m[..], [OutboundMessage::Accepted(_), OutboundMessage::Executed(e)] if e.match_number.get() == 1),
        "{m:?}"
    );
    let _ = read(&mut alice, Duration::from_millis(300));
    match admin(&daemon, AdminRequest::Bust { match_number: 1 }) {
        AdminReply::Done { .. } => {}
        other => panic!("{other:?}"),
    }
    for (client, token) in [(&mut alice, "A1"), (&mut bob, "Y1")] {
        let (m, _, _) = read(client, Duration::from_millis(300));
        assert!(
            matches!(&m[..], [OutboundMessage::BrokenTrade(t)]
                if t.match_number.get() == 1 && t.order_token == Token::new(token).unwrap()),
            "{m:?}"
        );
    }
    assert!(daemon.stop(WAIT).unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
