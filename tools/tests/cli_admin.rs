//! Every admin command of the real `bourse` binary against a real `boursed` (started on free ports with a
//! temporary journal and multicast groups of its own), and `bourse md --verify` after orders, with feed
//! messages dropped by the daemon's test hook so the receiver has gaps to recover.
//!
//! `boursed` is taken from beside the test executable (`target/<profile>/boursed`): build it first
//! (`cargo build -p bourse-daemon`, or run the workspace's tests, which build every binary first).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bourse_protocol::admin::AdminReply;
use bourse_protocol::fields::Token;
use bourse_protocol::ouch::{EnterOrder, OutboundMessage, Side};
use bourse_protocol::soupbintcp::LoginRejectReason;
use bourse_tools::client::{Client, ClientConfig, Event, LoginOutcome, limit_order};
use bourse_tools::load::daemon::{Daemon, DaemonConfigOptions, daemon_config, find_boursed, temp_dir};

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn boursed() -> PathBuf {
    find_boursed().expect("boursed not built: run `cargo build -p bourse-daemon` first")
}

/// A daemon with the embedded default config, on free ports, with the extra environment `env`.
fn start(what: &str, env: &[(&str, &str)]) -> Daemon {
    let binary = boursed();
    let base = Command::new(&binary)
        .arg("--print-default-config")
        .output()
        .expect("boursed --print-default-config");
    assert!(base.status.success());
    let dir = temp_dir(what).unwrap();
    let config = daemon_config(
        &String::from_utf8(base.stdout).unwrap(),
        &DaemonConfigOptions {
            journal_dir: dir.join("journal"),
            threading_mode: Some("shared".into()),
            ..DaemonConfigOptions::default()
        },
    )
    .unwrap();
    Daemon::start(&binary, &config, &dir, env, START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"))
        .removing_dir()
}

fn ports_file(daemon: &Daemon) -> String {
    daemon.dir.join("ports").to_str().unwrap().to_owned()
}

fn bourse(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bourse"))
        .arg("--ports-file")
        .arg(ports_file(daemon))
        .args(args)
        .output()
        .expect("run bourse")
}

/// Runs `bourse ARGS --json`: exit 0 and one reply line that decodes; returns it.
fn json(daemon: &Daemon, args: &[&str]) -> (AdminReply, serde_json::Value) {
    let mut full = args.to_vec();
    full.push("--json");
    let output = bourse(daemon, &full);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let reply: AdminReply = serde_json::from_str(stdout.trim_end()).unwrap();
    (reply, serde_json::from_str(stdout.trim_end()).unwrap())
}

/// Runs `bourse ARGS`: returns the exit code, stdout and stderr.
fn run(daemon: &Daemon, args: &[&str]) -> (Option<i32>, String, String) {
    let output = bourse(daemon, args);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn expect_done(daemon: &Daemon, args: &[&str]) {
    let (reply, value) = json(daemon, args);
    assert!(matches!(reply, AdminReply::Done { .. }), "{args:?}: {reply:?}");
    assert_eq!(value["type"], "done");
}

fn expect_error(daemon: &Daemon, args: &[&str], code: &str) {
    let (status, stdout, stderr) = run(daemon, args);
    assert_eq!(status, Some(1), "{args:?}: {stdout} {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(code), "{args:?}: {stderr}");
}

fn login(daemon: &Daemon, user: &str, password: &str) -> (Client, LoginOutcome) {
    let mut client = Client::connect(daemon.ports.order_entry, &ClientConfig::default()).unwrap();
    let outcome = client.login(user, password, "", 0).unwrap();
    (client, outcome)
}

fn logged_in(daemon: &Daemon, user: &str, password: &str) -> Client {
    let (client, outcome) = login(daemon, user, password);
    assert!(
        matches!(outcome, LoginOutcome::Accepted { .. }),
        "{user}: {outcome:?}"
    );
    client
}

fn order(token: &str, side: Side, shares: u32, stock: &str, price: u32, firm: &str) -> EnterOrder {
    limit_order(token, side, shares, stock, price, firm).unwrap()
}

/// Waits (bounded) for the next OUCH message on `client`, skipping heartbeats.
fn next_ouch(client: &mut Client) -> OutboundMessage {
    for _ in 0..100 {
        match client.recv(Duration::from_millis(100)).unwrap() {
            Some(Event::Sequenced(data)) => return data.ouch().unwrap(),
            Some(Event::Closed) => panic!("closed"),
            _ => {}
        }
    }
    panic!("no OUCH message within 10 s")
}

/// Waits (bounded) until the server closes `client`.
fn wait_closed(client: &mut Client) -> bool {
    for _ in 0..100 {
        if let Some(Event::Closed) = client.recv(Duration::from_millis(100)).unwrap() {
            return true;
        }
    }
    false
}

/// Alice buys 100 AAPL at `price` and Bob sells 100 at it: returns the match number.
fn cross(alice: &mut Client, bob: &mut Client, n: u32, price: u32) -> u64 {
    alice
        .enter(&order(&format!("AB{n}"), Side::Buy, 100, "AAPL", price, "ALFA"))
        .unwrap();
    assert!(matches!(next_ouch(alice), OutboundMessage::Accepted(_)));
    bob.enter(&order(&format!("BS{n}"), Side::Sell, 100, "AAPL", price, "BETA"))
        .unwrap();
    assert!(matches!(next_ouch(bob), OutboundMessage::Accepted(_)));
    let OutboundMessage::Executed(executed) = next_ouch(bob) else {
        panic!("no execution")
    };
    let OutboundMessage::Executed(theirs) = next_ouch(alice) else {
        panic!("no execution on the other side")
    };
    assert_eq!(executed.match_number.get(), theirs.match_number.get());
    executed.match_number.get()
}

#[test]
fn every_admin_command_against_a_running_daemon() {
    let mut daemon = start("cli-admin", &[]);

    // status, sessions, depth, latency: tables and JSON.
    let (reply, value) = json(&daemon, &["status"]);
    assert!(matches!(reply, AdminReply::Status(_)));
    assert_eq!(value["type"], "status");
    for key in [
        "uptime_ms",
        "sessions",
        "orders",
        "journal_sequence",
        "rings",
        "sync_policy",
    ] {
        assert!(value.get(key).is_some(), "status lacks {key}: {value}");
    }
    let (status, stdout, _) = run(&daemon, &["status"]);
    assert_eq!(status, Some(0));
    assert!(
        stdout.contains("journal sequence") && stdout.contains("sync policy"),
        "{stdout}"
    );

    let mut alice = logged_in(&daemon, "alice", "alice-pw");
    let mut bob = logged_in(&daemon, "bob", "bob-pw");
    // The session table is published periodically: ask until both logins show (bounded).
    let mut users = Vec::new();
    for _ in 0..100 {
        let (reply, value) = json(&daemon, &["sessions"]);
        assert_eq!(value["type"], "sessions");
        let AdminReply::Sessions { sessions } = reply else {
            panic!("{reply:?}")
        };
        users = sessions.iter().filter_map(|s| s.user.clone()).collect();
        if users.contains(&"alice".to_owned()) && users.contains(&"bob".to_owned()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        users.contains(&"alice".to_owned()) && users.contains(&"bob".to_owned()),
        "{users:?}"
    );
    let (_, stdout, _) = run(&daemon, &["sessions"]);
    assert!(stdout.contains("alice") && stdout.contains("bob"), "{stdout}");

    // A resting bid shows in depth.
    alice
        .enter(&order("REST1", Side::Buy, 300, "AAPL", 1_899_900, "ALFA"))
        .unwrap();
    assert!(matches!(next_ouch(&mut alice), OutboundMessage::Accepted(_)));
    let (reply, value) = json(&daemon, &["depth", "AAPL", "--levels", "3"]);
    let AdminReply::Depth(depth) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(value["type"], "depth");
    assert_eq!(depth.bids[0].price, 1_899_900);
    assert_eq!(depth.bids[0].shares, 300);
    let (status, stdout, _) = run(&daemon, &["depth", "AAPL"]);
    assert_eq!(status, Some(0));
    assert!(stdout.contains("189.9900") && stdout.contains("300"), "{stdout}");
    expect_error(&daemon, &["depth", "ZZZZ"], "unknown_symbol");

    // Halt and resume.
    expect_done(&daemon, &["halt", "AAPL"]);
    expect_error(&daemon, &["halt", "AAPL"], "already_in_state");
    let (_, stdout, _) = run(&daemon, &["depth", "AAPL"]);
    assert!(stdout.contains("HALTED"), "{stdout}");
    expect_done(&daemon, &["resume", "AAPL"]);
    expect_error(&daemon, &["halt", "ZZZZ"], "unknown_symbol");

    // A trade, then its bust.
    let match_number = cross(&mut alice, &mut bob, 1, 1_900_000);
    let (status, stdout, _) = run(&daemon, &["bust", &match_number.to_string()]);
    assert_eq!(status, Some(0));
    assert!(stdout.starts_with("bust: "), "{stdout}");
    assert!(matches!(next_ouch(&mut alice), OutboundMessage::BrokenTrade(_)));
    assert!(matches!(next_ouch(&mut bob), OutboundMessage::BrokenTrade(_)));
    expect_error(&daemon, &["bust", "999999"], "unknown_match");

    // Kill switch: the resting bid is canceled; new orders are rejected until unkill.
    expect_done(&daemon, &["kill", "ALFA"]);
    assert!(matches!(next_ouch(&mut alice), OutboundMessage::Canceled(_)));
    alice
        .enter(&order("AFTERKILL", Side::Buy, 100, "AAPL", 1_899_900, "ALFA"))
        .unwrap();
    assert!(matches!(next_ouch(&mut alice), OutboundMessage::Rejected(_)));
    expect_done(&daemon, &["unkill", "ALFA"]);
    expect_error(&daemon, &["kill", "ZZZZ"], "unknown_firm");

    // Logout, disable, enable.
    expect_done(&daemon, &["logout", "alice"]);
    assert!(wait_closed(&mut alice), "alice was not logged out");
    expect_done(&daemon, &["disable", "bob"]);
    assert!(wait_closed(&mut bob), "bob was not logged out");
    let (_, outcome) = login(&daemon, "bob", "bob-pw");
    assert_eq!(outcome, LoginOutcome::Rejected(LoginRejectReason::NotAuthorized));
    expect_done(&daemon, &["enable", "bob"]);
    let _bob = logged_in(&daemon, "bob", "bob-pw");
    expect_error(&daemon, &["disable", "nobody"], "unknown_user");

    // Checkpoint, latency (with a plot).
    expect_done(&daemon, &["checkpoint"]);
    let (reply, value) = json(&daemon, &["latency"]);
    let AdminReply::Latency { stages } = reply else {
        panic!("{reply:?}")
    };
    assert!(stages.iter().any(|s| s.stage == "wire_to_wire"), "{value}");
    let plot = daemon.dir.join("latency.svg");
    let (status, stdout, stderr) = run(&daemon, &["latency", "--plot", plot.to_str().unwrap()]);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stdout.contains("wire_to_wire"), "{stdout}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg ") && svg.trim_end().ends_with("</svg>"));

    // End of day, then shutdown: the daemon exits 0 and is unreachable afterwards (exit 2).
    // A feed receiver running across the end of day stops by itself at End of Session, with every message of
    // the day applied (it joined without a snapshot: the day comes from re-requests and the feed).
    let md = md_child(&daemon, &["--no-snapshot", "--duration", "60", "--json"]);
    expect_done(&daemon, &["eod"]);
    let summary = md_summary(md.wait_with_output().unwrap());
    assert_eq!(summary["end_of_session"], true, "{summary}");
    assert!(summary["gap_open"].is_null(), "{summary}");
    assert_eq!(summary["book_errors"], 0, "{summary}");
    assert!(summary["messages"].as_u64().unwrap() > 0, "{summary}");
    let books = summary["books"].as_array().unwrap();
    assert!(
        books.iter().all(|b| b["bids"].as_array().unwrap().is_empty()),
        "eod cancels every order: {summary}"
    );
    expect_done(&daemon, &["shutdown"]);
    let exit = daemon.stop(Duration::from_secs(30)).unwrap();
    assert!(exit.success(), "boursed exited with {exit}: {}", daemon.log());
    // (The daemon removes its ports file at exit: name the admin address.)
    let admin = daemon.ports.admin.to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["--admin", &admin, "status"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach") && stderr.contains(&admin),
        "{stderr}"
    );
}

fn md_child(daemon: &Daemon, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bourse"))
        .arg("--ports-file")
        .arg(ports_file(daemon))
        .arg("md")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bourse md")
}

fn md_summary(output: Output) -> serde_json::Value {
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "bourse md: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim_end()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Some resting orders on two instruments, a few crosses, a cancel. Returns the sessions: they stay logged in
/// (cancel-on-disconnect would cancel the resting orders at logout).
fn trade_a_little(daemon: &Daemon) -> (Client, Client) {
    let mut alice = logged_in(daemon, "alice", "alice-pw");
    let mut bob = logged_in(daemon, "bob", "bob-pw");
    for i in 0..5u32 {
        alice
            .enter(&order(
                &format!("AR{i}"),
                Side::Buy,
                100 + i,
                "AAPL",
                1_899_000 - 100 * i,
                "ALFA",
            ))
            .unwrap();
        assert!(matches!(next_ouch(&mut alice), OutboundMessage::Accepted(_)));
        bob.enter(&order(
            &format!("BR{i}"),
            Side::Sell,
            200 + i,
            "MSFT",
            4_201_000 + 100 * i,
            "BETA",
        ))
        .unwrap();
        assert!(matches!(next_ouch(&mut bob), OutboundMessage::Accepted(_)));
    }
    for n in 0..3 {
        cross(&mut alice, &mut bob, 100 + n, 1_900_000);
    }
    alice
        .cancel(&bourse_protocol::ouch::CancelOrder::new(
            Token::new("AR2").unwrap(),
            0,
        ))
        .unwrap();
    assert!(matches!(next_ouch(&mut alice), OutboundMessage::Canceled(_)));
    (alice, bob)
}

#[test]
fn md_verify_agrees_with_the_engine_after_orders_with_gaps() {
    // Feed messages 3, 7 and 12 never go out on A or B: the receiver must re-request them.
    let daemon = start("cli-md", &[("BOURSED_TEST_DROP_FEED_SEQS", "3,7,12")]);

    // A receiver from the start of the day (no snapshot: everything comes from the feed and re-requests).
    let early = md_child(
        &daemon,
        &["--no-snapshot", "--duration", "4", "--verify", "--json"],
    );
    // Let it join before the orders (no assertion depends on this: a late start only means more re-requests).
    std::thread::sleep(Duration::from_millis(300));
    let _sessions = trade_a_little(&daemon);
    let summary = md_summary(early.wait_with_output().unwrap());
    assert_eq!(summary["verify"]["ok"], true, "{summary}");
    assert!(summary["gaps"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["recovered"].as_u64().unwrap() >= 3, "{summary}");
    assert!(summary["gap_open"].is_null(), "{summary}");
    assert_eq!(summary["book_errors"], 0, "{summary}");
    let compared = summary["verify"]["compared"].as_array().unwrap();
    assert!(
        compared.iter().any(|s| s == "AAPL") && compared.iter().any(|s| s == "MSFT"),
        "{summary}"
    );

    // A late joiner: through the snapshot, then the feed.
    let late = md_child(&daemon, &["--duration", "0.5", "--verify", "--json"]);
    let summary = md_summary(late.wait_with_output().unwrap());
    assert_eq!(summary["verify"]["ok"], true, "{summary}");
    assert!(summary["snapshot_sequence"].as_u64().unwrap() > 0, "{summary}");
    let books = summary["books"].as_array().unwrap();
    let aapl = books.iter().find(|b| b["symbol"] == "AAPL").unwrap();
    assert_eq!(
        aapl["bids"].as_array().unwrap().len(),
        4,
        "5 resting bids, one canceled: {summary}"
    );
    drop(daemon);
}

#[test]
fn md_verify_fails_cleanly_when_admin_is_unreachable() {
    let daemon = start("cli-md-noadmin", &[]);
    let output = Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(["md", "--ports-file", &ports_file(&daemon)])
        .args(["--duration", "0.2", "--verify", "--admin", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("127.0.0.1:1"));
}

/// Sends `bytes` on an admin connection and reads one reply line.
fn admin_line(stream: &mut std::net::TcpStream, bytes: &[u8]) -> String {
    use std::io::{BufRead, Write};
    stream.write_all(bytes).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn bad_admin_lines_and_idle_connections_do_not_lock_the_operator_out() {
    use std::io::Read;
    use std::net::TcpStream;
    let daemon = start("cli-admin-bad", &[]);
    let admin = daemon.ports.admin;
    let mut conn = TcpStream::connect(admin).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Not JSON, then not UTF-8: each a bad_request, and the connection stays open for the next line.
    assert!(admin_line(&mut conn, b"not json\n").contains("bad_request"));
    let reply = admin_line(&mut conn, b"{\"type\":\"st\xff\xfeatus\"}\n");
    assert!(
        reply.contains("bad_request") && reply.contains("UTF-8"),
        "{reply}"
    );
    assert!(admin_line(&mut conn, b"{\"type\":\"status\"}\n").contains("\"type\":\"status\""));
    // A line over the limit: refused, then the connection is closed.
    let long = vec![b' '; bourse_protocol::admin::ADMIN_LINE_BYTES_MAX + 1];
    assert!(admin_line(&mut conn, &long).contains("bad_request"));
    let mut rest = Vec::new();
    assert_eq!(conn.read_to_end(&mut rest).unwrap_or(0), 0);

    // Every admin place taken by connections that never send: the operator's command still gets in, in
    // the place of the one idle longest (which is closed).
    let idle: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(admin).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1200));
    let (reply, _) = json(&daemon, &["status"]);
    assert!(matches!(reply, AdminReply::Status(_)), "{reply:?}");
    let closed = idle
        .into_iter()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            matches!((&*s).read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(closed >= 1, "an idle connection gave its place");
}
