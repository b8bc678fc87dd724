//! Contract coverage: every row of the two tables of `docs/protocol.md` (section 5 "Inputs -> replies",
//! IDs `IR-nn`; section 6 "Engine events -> OUCH -> ITCH", IDs `EV-nn`) that concerns the engine is
//! exercised by a scenario fixture (`tests/scenarios/*.txt`), so that the coverage cannot silently rot
//! when a row is added to the contract.
//!
//! A fixture covers a row when a `#` comment names its ID (`# IR-12: ...`) and the next line that is not
//! a comment is a command (`> ...`): the ID sits right above the commands that exercise it. Rows the
//! engine never sees (session layer, throttle) are in [`DAEMON_ROWS`], each with the reason; the daemon's
//! tests cover them. The test also fails on a fixture naming an ID the contract does not have (a stale
//! reference) and on an allow-listed row that is not in the contract.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Rows that belong to the daemon, not the engine: the engine has no input that could exercise them.
const DAEMON_ROWS: &[(&str, &str)] = &[
    // Throttle: the session counts messages and rejects with `F` before the engine sees the order.
    ("IR-46", "a cancel over the throttle: the session layer's count"),
    // The engine's commands do not carry Capacity, ISO, Cross Type or Customer Type: the daemon echoes
    // them from the inbound message into Accepted/Replaced.
    (
        "IR-39",
        "Capacity, ISO, Cross Type, Customer Type never reach the engine",
    ),
    // SoupBinTCP session layer: framing, login, timers, send queue, connection limits. (The cancels
    // that a disconnect triggers are the engine's EV-13, covered by a fixture.)
    ("IR-66", "session: far over the throttle, disconnect"),
    ("IR-67", "session: Login Accepted"),
    ("IR-68", "session: Login Rejected A"),
    ("IR-69", "session: Login Rejected S"),
    ("IR-70", "session: Packet Length 0"),
    ("IR-71", "session: Packet Length above frame_size_max"),
    ("IR-72", "session: unknown packet type"),
    ("IR-73", "session: message before login"),
    ("IR-74", "session: login timeout"),
    ("IR-75", "session: malformed Login Request"),
    ("IR-76", "session: Login Request when logged in"),
    ("IR-77", "session: R or O with a payload"),
    ("IR-78", "session: U with no payload"),
    ("IR-79", "session: U with an unknown OUCH type"),
    ("IR-80", "session: U with the wrong OUCH length"),
    ("IR-81", "session: idle timeout"),
    ("IR-82", "session: send queue over its limit"),
    ("IR-83", "session: Logout Request"),
    ("IR-84", "session: Client Heartbeat, Debug"),
    ("IR-85", "session: connection over sessions_max"),
];

/// The `IR-nn` / `EV-nn` IDs in `text`, in order (two or more digits; `EV-09..12` yields only EV-09).
fn row_ids(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut ids = Vec::new();
    let mut i = 0;
    while i + 3 <= bytes.len() {
        let prefix = &bytes[i..i + 3];
        if prefix == b"IR-" || prefix == b"EV-" {
            let digits = bytes[i + 3..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits >= 2 {
                ids.push(text[i..i + 3 + digits].to_string());
                i += 3 + digits;
                continue;
            }
        }
        i += 1;
    }
    ids
}

/// The row IDs of the contract's tables: the first cell of a table row (`| IR-12 | ...`).
fn contract_rows(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|line| {
            let first = line.strip_prefix('|')?.split('|').next()?.trim();
            let ids = row_ids(first);
            (ids.len() == 1 && ids[0] == first).then(|| first.to_string())
        })
        .collect()
}

/// ID -> fixture locations (`file:line`) where a comment names it right above a command. Errors for
/// an ID named in a comment that is not followed by a command.
fn fixture_references(dir: &Path) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("scenario directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut errors = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(comment) = line.strip_prefix('#') else {
                continue;
            };
            let ids = row_ids(comment);
            if ids.is_empty() {
                continue;
            }
            let next = lines[i + 1..].iter().find(|l| !l.starts_with('#'));
            if !next.is_some_and(|l| l.starts_with("> ")) {
                errors.push(format!(
                    "{name}:{}: {} named in a comment not directly followed by a command",
                    i + 1,
                    ids.join(", ")
                ));
                continue;
            }
            for id in ids {
                refs.entry(id).or_default().push(format!("{name}:{}", i + 1));
            }
        }
    }
    (refs, errors)
}

#[test]
fn every_engine_row_of_the_contract_has_a_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../docs/protocol.md")).expect("docs/protocol.md");
    let rows = contract_rows(&doc);
    let unique: BTreeSet<&String> = rows.iter().collect();
    assert_eq!(
        unique.len(),
        rows.len(),
        "a row ID appears twice in the contract's tables"
    );
    // The parse must find both tables (85 input rows and 24 event rows when this test was written).
    let inputs = rows.iter().filter(|r| r.starts_with("IR-")).count();
    let events = rows.iter().filter(|r| r.starts_with("EV-")).count();
    assert!(
        inputs >= 80 && events >= 20,
        "parsed only {inputs} IR and {events} EV rows"
    );

    let (refs, mut errors) = fixture_references(&root.join("tests/scenarios"));
    let daemon: BTreeMap<&str, &str> = DAEMON_ROWS.iter().copied().collect();
    assert_eq!(daemon.len(), DAEMON_ROWS.len(), "allow-list names a row twice");
    for id in daemon.keys() {
        if !unique.contains(&id.to_string()) {
            errors.push(format!("allow-listed {id} is not a row of the contract"));
        }
    }
    for row in &rows {
        if !daemon.contains_key(row.as_str()) && !refs.contains_key(row) {
            errors.push(format!("{row}: no scenario fixture names it above a command"));
        }
    }
    for (id, places) in &refs {
        if !unique.contains(id) {
            errors.push(format!(
                "{id} (at {}) is not a row of the contract",
                places.join(", ")
            ));
        }
    }
    assert!(errors.is_empty(), "contract coverage:\n  {}", errors.join("\n  "));
}

#[test]
fn the_coverage_parsers_see_what_they_should() {
    assert_eq!(
        row_ids("# IR-12: x; EV-09..12 and IR-5 and EV-101"),
        ["IR-12", "EV-09", "EV-101"]
    );
    let doc = "| ID | x |\n|---|---|\n| IR-01 | a IR-02 |\n| EV-07 | b |\ntext IR-03\n| IR-04x | c |\n";
    assert_eq!(contract_rows(doc), ["IR-01", "EV-07"]);
    let dir = std::env::temp_dir().join(format!("bourse-coverage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.txt"),
        "# IR-01: named above a command\n# more words\n> enter 1 A B 1 ACME 10.00\n# IR-02: dangling\n\n> eod\n",
    )
    .unwrap();
    let (refs, errors) = fixture_references(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(refs.keys().collect::<Vec<_>>(), ["IR-01"]);
    assert_eq!(errors.len(), 1, "{errors:?}");
}
