//! The admin commands of the real `bourse` binary against a scripted admin endpoint (a listener in the
//! test that answers canned reply lines), and against nothing at all: exit codes, `--json` exactness,
//! tables, the ports file, the latency plot.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;

fn bourse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bourse"))
        .args(args)
        .output()
        .expect("run bourse")
}

/// Serves one connection: for each request line received, records it and answers `reply`.
fn fake_admin(reply: &'static str) -> (SocketAddr, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut requests = Vec::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            requests.push(line);
            writer.write_all(reply.as_bytes()).unwrap();
            writer.write_all(b"\n").unwrap();
        }
        requests
    });
    (address, handle)
}

fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bourse-admin-fake-{name}-{}", std::process::id()))
}

#[test]
fn unreachable_daemon_exits_2_naming_the_address() {
    // A port that was just free: nothing listens there.
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    for args in [
        vec!["status"],
        vec!["depth", "AAPL"],
        vec!["halt", "AAPL"],
        vec!["latency"],
    ] {
        let mut full = vec!["--admin", address.as_str()];
        full.extend(&args);
        let output = bourse(&full);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&address), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let output = bourse(&["--ports-file", "/nonexistent/bourse-ports", "status"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/bourse-ports"));
}

#[test]
fn json_is_the_reply_line_as_received_and_requests_are_well_formed() {
    const REPLY: &str = r#"{"type":"depth","symbol":"AAPL","halted":false,"feed_sequence":12,"bids":[{"price":1899900,"shares":300,"orders":2}],"asks":[]}"#;
    let (address, server) = fake_admin(REPLY);
    let output = bourse(&[
        "depth",
        "AAPL",
        "--levels",
        "3",
        "--json",
        "--admin",
        &address.to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), format!("{REPLY}\n"));
    assert_eq!(
        server.join().unwrap(),
        [r#"{"type":"depth","symbol":"AAPL","levels":3}"#]
    );

    // The same reply as a table, through a ports file.
    let (address, server) = fake_admin(REPLY);
    let ports = temp_path("ports");
    std::fs::write(
        &ports,
        format!(
            "order_entry=127.0.0.1:1\nsnapshot=127.0.0.1:2\nrerequest=127.0.0.1:3\nadmin={address}\n\
             market_data_a=239.1.1.1:4\nmarket_data_b=239.1.1.2:5\n"
        ),
    )
    .unwrap();
    let output = bourse(&["--ports-file", ports.to_str().unwrap(), "depth", "AAPL"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("189.9900"), "{stdout}");
    assert!(stdout.starts_with("AAPL  feed sequence 12\n"), "{stdout}");
    assert_eq!(
        server.join().unwrap(),
        [r#"{"type":"depth","symbol":"AAPL","levels":10}"#]
    );
}

#[test]
fn an_error_reply_exits_1_with_the_message_on_stderr() {
    const REPLY: &str = r#"{"type":"error","code":"unknown_firm","message":"no firm ZZZZ"}"#;
    let (address, server) = fake_admin(REPLY);
    let output = bourse(&["kill", "ZZZZ", "--admin", &address.to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no firm ZZZZ") && stderr.contains("unknown_firm"),
        "{stderr}"
    );
    assert_eq!(server.join().unwrap(), [r#"{"type":"kill","firm":"ZZZZ"}"#]);
}

#[test]
fn latency_plot_is_written() {
    const REPLY: &str = r#"{"type":"latency","stages":[{"stage":"wire_to_wire","count":100,"p50_ns":9000,"p90_ns":12000,"p99_ns":20000,"p999_ns":40000,"max_ns":80000,"points":[{"quantile_ppm":0,"value_ns":5000},{"quantile_ppm":500000,"value_ns":9000},{"quantile_ppm":990000,"value_ns":20000},{"quantile_ppm":1000000,"value_ns":80000}]}]}"#;
    let (address, server) = fake_admin(REPLY);
    let plot = temp_path("latency.svg");
    let _ = std::fs::remove_file(&plot);
    let output = bourse(&[
        "latency",
        "--plot",
        plot.to_str().unwrap(),
        "--admin",
        &address.to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("wire_to_wire") && stdout.contains("9.00") && stdout.contains("80.00"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 1);
    assert_eq!(server.join().unwrap(), [r#"{"type":"latency"}"#]);
}
