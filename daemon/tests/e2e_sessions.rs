//! Order-entry sessions against the real `boursed` (a child process on ports from 0, a temp journal, its
//! own multicast groups): the bad-input table with a well-behaved session trading throughout, the slow
//! reader, and many sessions from a separate client process (this test binary, run again).
//!
//! Rows of `docs/protocol.md` are cited where a case checks one. Timers are milliseconds; every wait is a
//! generous timeout, never a measurement.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bourse_protocol::fields::{Alpha, PRICE_MARKET};
use bourse_protocol::ouch;

mod ingress_client;

use ingress_client::*;

/// Env of the many-sessions client process: the order-entry address.
const CLIENT_ADDR_ENV: &str = "BOURSE_E2E_ORDER_ENTRY";
/// Env of the many-sessions client process: `first,count` of the logins it uses.
const CLIENT_LOGINS_ENV: &str = "BOURSE_E2E_LOGINS";

// ---------------------------------------------------------------------------------------------------
// The daemon.

/// Replaces `key = ...` in `[section]` of a TOML text.
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut done = false;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        if line.starts_with('[') {
            in_section = line.trim() == header;
        }
        if in_section && !done && line.split('=').next().map(str::trim) == Some(key) {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "no {section}.{key} in the default config");
    out
}

fn username(i: u32) -> String {
    format!("u{i}")
}

fn password(i: u32) -> String {
    format!("p{i}")
}

/// Timers and limits of a test daemon.
struct Settings {
    logins: u32,
    login_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    idle_timeout_ms: u64,
    send_queue_bytes_max: u64,
    throttle_msgs_per_s: u32,
    throttle_burst_max: u32,
    throttle_excess_max: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            logins: 8,
            login_timeout_ms: 300,
            heartbeat_interval_ms: 200,
            idle_timeout_ms: 2_000,
            send_queue_bytes_max: 1 << 20,
            throttle_msgs_per_s: 1_000_000,
            throttle_burst_max: 1_000_000,
            throttle_excess_max: 1_000_000,
        }
    }
}

struct Daemon {
    child: Child,
    order_entry: SocketAddr,
    _dir: TempDir,
}

impl Daemon {
    /// Starts `boursed` and waits for its ports file.
    fn start(s: &Settings) -> Daemon {
        let dir = TempDir::new("e2e");
        let mut text = bourse_daemon::config::DEFAULT_TOML.to_string();
        // Logins: ours, generated (the demo ones dropped).
        let at = text.find("[[logins]]").expect("default config has logins");
        text.truncate(at);
        for i in 1..=s.logins {
            text.push_str(&format!(
                "[[logins]]\nusername = \"{}\"\npassword = \"{}\"\nfirm = \"ALFA\"\nfirms = [\"ALFA\"]\n\n",
                username(i),
                password(i)
            ));
        }
        // A multicast group:port of this test's own.
        let unique = (std::process::id() as u64 * 7 + NEXT_GROUP.fetch_add(1, Ordering::Relaxed)) % 250;
        let port = 30_000 + (std::process::id() % 20_000) as u16;
        let edits: Vec<(&str, &str, String)> = vec![
            ("order_entry", "listen", "\"127.0.0.1:0\"".into()),
            ("order_entry", "sessions_max", (s.logins + 100).to_string()),
            ("order_entry", "login_timeout_ms", s.login_timeout_ms.to_string()),
            (
                "order_entry",
                "heartbeat_interval_ms",
                s.heartbeat_interval_ms.to_string(),
            ),
            ("order_entry", "idle_timeout_ms", s.idle_timeout_ms.to_string()),
            (
                "order_entry",
                "send_queue_bytes_max",
                s.send_queue_bytes_max.to_string(),
            ),
            (
                "order_entry",
                "throttle_msgs_per_s",
                s.throttle_msgs_per_s.to_string(),
            ),
            (
                "order_entry",
                "throttle_burst_max",
                s.throttle_burst_max.to_string(),
            ),
            (
                "order_entry",
                "throttle_excess_max",
                s.throttle_excess_max.to_string(),
            ),
            ("snapshot", "listen", "\"127.0.0.1:0\"".into()),
            ("admin", "listen", "\"127.0.0.1:0\"".into()),
            ("market_data", "rerequest_listen", "\"127.0.0.1:0\"".into()),
            ("market_data", "group_a", format!("\"239.193.{unique}.1:{port}\"")),
            ("market_data", "group_b", format!("\"239.193.{unique}.2:{port}\"")),
            ("journal", "directory", format!("{:?}", dir.0.join("journal"))),
            ("journal", "sync", "\"none\"".into()),
            ("journal", "segment_bytes", (16u64 << 20).to_string()),
            ("threading", "mode", "\"shared\"".into()),
        ];
        for (section, key, value) in &edits {
            text = set(&text, section, key, value);
        }
        let config = dir.0.join("boursed.toml");
        std::fs::write(&config, &text).unwrap();
        let ports = dir.0.join("ports");
        let child = Command::new(env!("CARGO_BIN_EXE_boursed"))
            .arg("--config")
            .arg(&config)
            .arg("--ports-file")
            .arg(&ports)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start boursed");
        let mut daemon = Daemon {
            child,
            order_entry: "127.0.0.1:1".parse().unwrap(),
            _dir: dir,
        };
        let start = Instant::now();
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                break text;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("boursed exited at start-up: {status}");
            }
            assert!(start.elapsed() < WAIT, "boursed wrote no ports file");
            std::thread::sleep(Duration::from_millis(10));
        };
        let ports: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        daemon.order_entry = ports["order_entry"].parse().unwrap();
        daemon
    }

    /// Logs `login` in with `seq`; returns the client and the Login Accepted sequence number.
    fn login(&self, login: u32, seq: u64) -> (Client, u64) {
        login_at(self.order_entry, login, seq)
    }
}

static NEXT_GROUP: AtomicU64 = AtomicU64::new(0);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // already gone (and reaped: its pid may belong to someone else now)
        }
        // SIGTERM: the orderly shutdown; then make sure it is gone.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn login_at(addr: SocketAddr, login: u32, seq: u64) -> (Client, u64) {
    let (c, _, seq) = log_in(addr, &username(login), &password(login), seq);
    (c, seq)
}

// ---------------------------------------------------------------------------------------------------
// Orders.

fn terms(symbol: &str, price: u32, time_in_force: u32) -> ouch::OrderTerms {
    ouch::OrderTerms {
        side: ouch::Side::Buy,
        shares: 100,
        stock: Alpha::new(symbol).unwrap(),
        price,
        time_in_force,
        firm: Alpha::BLANK,
        display: ouch::Display::Anonymous,
        capacity: b'A',
        intermarket_sweep: b'N',
        minimum_quantity: 0,
        cross_type: b'N',
    }
}

/// An IOC buy of AAPL at the reference price: into an empty book it is Accepted then Canceled (`I`).
fn ioc(token_text: &str) -> Vec<u8> {
    enter_order(token_text, &terms("AAPL", 1_900_000, 0))
}

/// Sends an IOC and checks its two replies: Accepted, then Canceled with the same token.
fn trade(c: &mut Client, token_text: &str) {
    c.send(&ioc(token_text));
    let accepted = c.sequenced();
    assert_eq!(
        (accepted[0], message_token(&accepted)),
        (b'A', token_text.as_bytes()),
        "{accepted:?}"
    );
    let canceled = c.sequenced();
    assert_eq!(
        (canceled[0], message_token(&canceled)),
        (b'C', token_text.as_bytes()),
        "{canceled:?}"
    );
}

/// A well-behaved session that trades in a thread until told to stop; counts its round trips.
struct Trader {
    running: Arc<AtomicBool>,
    trades: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    heartbeats: Option<std::thread::JoinHandle<()>>,
}

impl Trader {
    fn start(daemon: &Daemon, login: u32) -> Trader {
        let (mut c, _) = daemon.login(login, 0);
        let running = Arc::new(AtomicBool::new(true));
        let trades = Arc::new(AtomicU64::new(0));
        // Client heartbeats from a thread of their own, so a slow reply never idles the session out.
        let heartbeats = {
            let running = Arc::clone(&running);
            let mut stream = c.s.try_clone().unwrap();
            std::thread::spawn(move || {
                use std::io::Write;
                while running.load(Ordering::Acquire) {
                    let _ = stream.write_all(&frame(b'R', &[]));
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let thread = {
            let running = Arc::clone(&running);
            let trades = Arc::clone(&trades);
            std::thread::spawn(move || {
                let mut i = 0u64;
                while running.load(Ordering::Acquire) {
                    trade(&mut c, &format!("G{i}"));
                    i += 1;
                    trades.store(i, Ordering::Release);
                    // 40 round trips a second at most: under every throttle a test sets.
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
        };
        Trader {
            running,
            trades,
            thread: Some(thread),
            heartbeats: Some(heartbeats),
        }
    }

    /// Waits until the trader has done `more` further round trips (it is still trading).
    fn keeps_trading(&self, more: u64) {
        let from = self.trades.load(Ordering::Acquire);
        wait_until("the good session's trades", || {
            self.trades.load(Ordering::Acquire) >= from + more
        });
    }

    fn stop(mut self) {
        self.running.store(false, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the good session failed");
        }
        if let Some(thread) = self.heartbeats.take() {
            thread.join().expect("the heartbeat thread failed");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Tests.

/// What to send for one case, and what must come back.
enum Expect {
    /// Debug, then the end of the stream (IR-66, IR-70..IR-80).
    DebugThenClose,
    /// The end of the stream with no packet (IR-74, IR-81).
    SilentClose,
    /// Login Rejected with this code, then the end of the stream (IR-68, IR-69).
    Rejected(u8),
    /// One OUCH Rejected for this token with this reason (IR-14, IR-13, IR-19). Tokens are day-unique
    /// per login: a reused one would be ignored (IR-06).
    OuchReject(&'static str, u8),
}

struct Case {
    name: &'static str,
    logged_in: bool,
    bytes: Vec<u8>,
    expect: Expect,
}

/// The bad-input table of issue 5 against `boursed`: each case gets the documented reject or
/// disconnect, and a second session keeps trading throughout.
#[test]
fn bad_input_table_against_boursed() {
    let daemon = Daemon::start(&Settings {
        throttle_msgs_per_s: 100,
        throttle_burst_max: 10,
        throttle_excess_max: 50,
        ..Settings::default()
    });
    let good = Trader::start(&daemon, 8);
    let mut flood = Vec::new();
    for i in 0..300 {
        flood.extend_from_slice(&ioc(&format!("F{i}")));
    }
    let cases = vec![
        Case {
            name: "garbage bytes",
            logged_in: false,
            bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            expect: Expect::DebugThenClose,
        },
        Case {
            name: "a frame over the maximum (IR-71)",
            logged_in: true,
            bytes: vec![0x7f, 0xff, b'U', 0, 0, 0],
            expect: Expect::DebugThenClose,
        },
        Case {
            name: "a message before login (IR-73)",
            logged_in: false,
            bytes: ioc("EARLY"),
            expect: Expect::DebugThenClose,
        },
        Case {
            name: "a wrong password (IR-68)",
            logged_in: false,
            bytes: login_frame(&username(1), "wrong", "", 0),
            expect: Expect::Rejected(b'A'),
        },
        Case {
            name: "a second login (IR-68)",
            logged_in: false,
            bytes: login_frame(&username(8), &password(8), "", 0),
            expect: Expect::Rejected(b'A'),
        },
        Case {
            name: "another session name (IR-69)",
            logged_in: false,
            bytes: login_frame(&username(1), &password(1), "1999010101", 0),
            expect: Expect::Rejected(b'S'),
        },
        Case {
            name: "an unknown symbol (IR-14)",
            logged_in: true,
            bytes: enter_order("BAD1", &terms("NOPE", 1_900_000, 99_999)),
            expect: Expect::OuchReject("BAD1", b'S'),
        },
        Case {
            name: "an off-tick price (IR-13)",
            logged_in: true,
            bytes: enter_order("BAD2", &terms("AAPL", 1_900_050, 99_999)),
            expect: Expect::OuchReject("BAD2", b'X'),
        },
        Case {
            name: "a market order that is not IOC (IR-19)",
            logged_in: true,
            bytes: enter_order("BAD3", &terms("AAPL", PRICE_MARKET, 99_999)),
            expect: Expect::OuchReject("BAD3", b'V'),
        },
        Case {
            name: "a flood past the throttle (IR-37, IR-66)",
            logged_in: true,
            bytes: flood,
            expect: Expect::DebugThenClose,
        },
        Case {
            name: "connect and send nothing (IR-74)",
            logged_in: false,
            bytes: Vec::new(),
            expect: Expect::SilentClose,
        },
        Case {
            name: "half a frame then silence (IR-74)",
            logged_in: false,
            bytes: login_frame(&username(1), &password(1), "", 0)[..25].to_vec(),
            expect: Expect::SilentClose,
        },
        Case {
            name: "half a frame then silence after login (IR-81)",
            logged_in: true,
            bytes: ioc("HALF")[..20].to_vec(),
            expect: Expect::SilentClose,
        },
        Case {
            name: "an unknown OUCH type (IR-79)",
            logged_in: true,
            bytes: frame(b'U', b"Qxxxxxxxxxxxxxxxxxx"),
            expect: Expect::DebugThenClose,
        },
        Case {
            name: "an OUCH message of the wrong length (IR-80)",
            logged_in: true,
            bytes: frame(b'U', &ioc("SHORT")[3..40]),
            expect: Expect::DebugThenClose,
        },
    ];
    for case in cases {
        let mut c = if case.logged_in {
            daemon.login(1, 0).0
        } else {
            Client::connect(daemon.order_entry)
        };
        c.send(&case.bytes);
        match case.expect {
            Expect::DebugThenClose => {
                let seen = c.until_closed();
                assert!(
                    seen.iter().any(|(t, _)| *t == b'+'),
                    "{}: no Debug before the close: {seen:?}",
                    case.name
                );
                if case.name.contains("flood") {
                    // The connection closed at once; the replies to what came before the verdict are in
                    // the login's stream: the burst accepted, then throttle rejects `F` (IR-37).
                    let (mut again, first) = daemon.login(1, 1);
                    assert_eq!(first, 1);
                    again.send(&ioc("AFTERFLOOD"));
                    let (mut accepted, mut throttled) = (0, 0);
                    loop {
                        let m = again.sequenced();
                        let token = message_token(&m).to_vec();
                        if token == b"AFTERFLOOD" {
                            break;
                        }
                        if token.starts_with(b"F") {
                            match (m[0], m.get(23)) {
                                (b'A', _) => accepted += 1,
                                (b'J', Some(b'F')) => throttled += 1,
                                _ => {}
                            }
                        }
                    }
                    assert!(accepted >= 10, "{}: {accepted} accepted", case.name);
                    assert!(throttled > 0, "{}: no throttle reject", case.name);
                    assert!(accepted + throttled < 300, "{}: never disconnected", case.name);
                    again.send(&frame(b'O', &[]));
                    again.until_closed();
                }
            }
            Expect::SilentClose => assert_eq!(c.until_closed(), vec![], "{}", case.name),
            Expect::Rejected(code) => {
                assert_eq!(c.until_closed(), vec![(b'J', vec![code])], "{}", case.name)
            }
            Expect::OuchReject(token, reason) => {
                let m = c.sequenced();
                assert_eq!(
                    (m[0], message_token(&m), m[23]),
                    (b'J', token.as_bytes(), reason),
                    "{}",
                    case.name
                );
                c.send(&frame(b'O', &[]));
                c.until_closed();
            }
        }
        // The well-behaved session is not disturbed.
        good.keeps_trading(2);
        // Login 1 is free for the next case once boursed has noticed the end.
        wait_until("login 1 free again", || {
            can_log_in(daemon.order_entry, &username(1), &password(1))
        });
    }
    good.stop();
}

/// IR-82 against `boursed`: a client that never reads is disconnected at its send-queue limit while
/// another session keeps trading; it logs in again with its next sequence number and receives exactly
/// the rest of its stream.
#[test]
fn slow_reader_against_boursed() {
    const ORDERS: u64 = 200_000;
    let daemon = Daemon::start(&Settings {
        send_queue_bytes_max: 64 * 1024,
        idle_timeout_ms: 10_000,
        ..Settings::default()
    });
    let good = Trader::start(&daemon, 2);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&daemon.order_entry.into()).unwrap();
    let mut slow = Client { s: socket.into() };
    slow.s.set_read_timeout(Some(WAIT)).unwrap();
    slow.send(&login_frame(&username(1), &password(1), "", 0));
    // The stream already holds the start-of-day System Event: the session starts after it.
    let first_seq = match slow.next() {
        Next::Packet(b'A', payload) => accepted_seq(&payload),
        other => panic!("slow login: {other:?}"),
    };
    // Orders whose replies it does not read: each IOC is answered Accepted + Canceled.
    // Paced (at most 200 orders per 10 ms) so that the core is not flooded: the point is the replies
    // piling up, not the requests.
    let mut writer = slow.s.try_clone().unwrap();
    let let_go = Arc::new(AtomicBool::new(false));
    let sender = {
        let let_go = Arc::clone(&let_go);
        std::thread::spawn(move || {
            use std::io::Write;
            let mut sent = 0u64;
            'chunks: while sent < ORDERS && !let_go.load(Ordering::Acquire) {
                for _ in 0..200 {
                    if writer.write_all(&ioc(&format!("T{sent}"))).is_err() {
                        break 'chunks; // disconnected
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };
    // It reads nothing until boursed has let it go: a second login of login 1 is refused (`J A`) while
    // the slow session is logged in, and accepted once it was disconnected.
    wait_until("the slow session disconnected", || {
        can_log_in(daemon.order_entry, &username(1), &password(1))
    });
    let_go.store(true, Ordering::Release);
    let sent = sender.join().unwrap();
    // Whatever reached it before the close: A, C pairs for T0, T1, ... in order.
    let mut stream: Vec<(u8, Vec<u8>)> = Vec::new();
    loop {
        match slow.next_data() {
            Next::Packet(b'S', m) => stream.push((m[0], message_token(&m).to_vec())),
            Next::Packet(t, p) => panic!("unexpected packet {t} {p:?}"),
            Next::Closed => break,
        }
    }
    assert!(
        (stream.len() as u64) < 2 * sent,
        "the slow reader got everything: not disconnected"
    );
    good.keeps_trading(3);
    // Again, from the next number: the rest of the stream, then a live reply.
    let next = first_seq + stream.len() as u64;
    let (mut again, first) = daemon.login(1, next);
    assert_eq!(first, next);
    again.send(&ioc("LAST"));
    loop {
        let m = again.sequenced();
        let token = message_token(&m).to_vec();
        if token == b"LAST" {
            assert_eq!(m[0], b'A');
            break;
        }
        stream.push((m[0], token));
    }
    // The whole stream: A then C for T0, T1, ... with nothing missing or repeated.
    assert!(stream.len().is_multiple_of(2), "{} messages", stream.len());
    for (i, pair) in stream.chunks(2).enumerate() {
        let token = format!("T{i}").into_bytes();
        assert_eq!(pair[0], (b'A', token.clone()), "message {}", 2 * i + 1);
        assert_eq!(pair[1], (b'C', token), "message {}", 2 * i + 2);
    }
    good.stop();
}

/// Many sessions from a separate client process: every one logs in and trades.
#[test]
fn many_sessions_from_another_process() {
    // 1,000 in CI; `BOURSE_E2E_SESSIONS=10000` for the full count by hand.
    let sessions: u32 = std::env::var("BOURSE_E2E_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let daemon = Daemon::start(&Settings {
        logins: sessions + 1,
        idle_timeout_ms: 60_000,
        heartbeat_interval_ms: 30_000,
        ..Settings::default()
    });
    let good = Trader::start(&daemon, sessions + 1);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "many_sessions_client", "--ignored", "--nocapture"])
        .env(CLIENT_ADDR_ENV, daemon.order_entry.to_string())
        .env(CLIENT_LOGINS_ENV, format!("1,{sessions}"))
        .output()
        .expect("run the client process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client process failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "many_sessions_client: {sessions} sessions logged in and traded"
        )),
        "the client process did not run its sessions: {stdout}"
    );
    good.keeps_trading(2);
    good.stop();
}

/// The client process of [`many_sessions_from_another_process`] (ignored unless run by it).
#[test]
#[ignore = "run by many_sessions_from_another_process in a process of its own"]
fn many_sessions_client() {
    let (Ok(addr), Ok(logins)) = (std::env::var(CLIENT_ADDR_ENV), std::env::var(CLIENT_LOGINS_ENV)) else {
        return;
    };
    let addr: SocketAddr = addr.parse().unwrap();
    let (first, count) = logins.split_once(',').unwrap();
    let (first, count): (u32, u32) = (first.parse().unwrap(), count.parse().unwrap());
    let mut clients = log_in_all(
        addr,
        (first..first + count).map(|login| (username(login), password(login))),
    );
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&ioc(&format!("M{i}")));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        for kind in [b'A', b'C'] {
            let m = c.sequenced();
            assert_eq!((m[0], message_token(&m)), (kind, format!("M{i}").as_bytes()));
        }
    }
    for c in clients.iter_mut() {
        c.send(&frame(b'O', &[]));
    }
    for c in clients.iter_mut() {
        assert_eq!(c.until_closed(), vec![]);
    }
    println!("many_sessions_client: {count} sessions logged in and traded");
}
