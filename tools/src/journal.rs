//! `bourse journal verify|dump|stats DIR`: read-only inspection of a journal directory.
//!
//! - `verify`: checks every CRC, sequence continuity and every commit; prints a summary. Exit 0 when
//!   clean or when only a torn tail is found (an unfinished batch: `boursed` cuts it at start), 1 on
//!   corruption of committed data (the message names the segment file and byte offset), 2 on other errors.
//! - `dump`: every record in stream order: segment, offset, sequence, kind, length, CRC and the payload in
//!   hex, with batch boundaries (commit records) and segment ends; `--json` prints one JSON object per
//!   line (JSON Lines). Payloads go through a [`PayloadDecoder`]: [`BookRecords`] shows every payload that
//!   is a `bourse-book` command or event record (`bourse_book::record`) decoded (the text goes to
//!   `decoded`); anything else is shown as hex only.
//! - `stats`: counts, sizes, batch sizes, records per kind.
//!
//! Nothing here writes to the journal: the storage is opened read-only.

use std::io::Write;
use std::path::PathBuf;

use bourse_journal::format::{KIND_COMMIT, KIND_SEGMENT_END};
use bourse_journal::{JournalError, MmapStorage, RawRecord, VerifyReport};
use clap::{Args, Subcommand};

/// Exit code for corruption of committed data.
pub(crate) const EXIT_CORRUPTION: i32 = 1;
/// Exit code for other errors (no such directory, I/O).
pub(crate) const EXIT_ERROR: i32 = 2;
/// Exit code of `verify` when a checkpoint is after the journal's last committed record (acknowledged
/// records are missing; `boursed` refuses to start on the directory).
pub(crate) const EXIT_CHECKPOINT_AHEAD: i32 = 3;

/// `bourse journal ...`
#[derive(Args)]
pub(crate) struct JournalArgs {
    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Check every CRC, the sequence continuity and every commit; print a summary.
    Verify {
        /// The journal directory.
        dir: PathBuf,
    },
    /// Print the records readably (or as JSON Lines with --json).
    Dump {
        /// The journal directory.
        dir: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Print records from this sequence on.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Print at most this many caller records.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Print counts, sizes and batch statistics.
    Stats {
        /// The journal directory.
        dir: PathBuf,
    },
}

/// Turns a payload into text for `dump`. The book crate will provide one that knows each kind.
pub(crate) trait PayloadDecoder {
    /// A readable form of `payload` of record `kind`, or `None` if this decoder does not know it.
    fn decode(&self, kind: u16, payload: &[u8]) -> Option<String>;
}

/// Decodes the daemon's records (`bourse_protocol::journaled`: sequenced header, OUCH and ITCH outputs,
/// day and admin records) and payloads that are whole `bourse-book` records: a command (record kind byte
/// below 0x80) or an event (0x80 and above). A payload that is not exactly one valid
/// record stays hex only.
pub(crate) struct BookRecords;

impl PayloadDecoder for BookRecords {
    fn decode(&self, kind: u16, payload: &[u8]) -> Option<String> {
        use bourse_protocol::journaled as j;
        match kind {
            j::KIND_COMMAND => {
                let (ts, echo, record) = j::decode_command(payload)?;
                let command = match bourse_book::Command::decode(record) {
                    Ok((command, used)) if used == record.len() => format!("{command:?}"),
                    _ => return None,
                };
                return Some(format!(
                    "Command {{ timestamp_ns: {ts}, echo: {:?}, command: {command} }}",
                    String::from_utf8_lossy(&echo)
                ));
            }
            j::KIND_OUCH => {
                let (login, seq, message) = j::decode_ouch(payload)?;
                let decoded = bourse_protocol::ouch::Outbound::decode(message)
                    .ok()?
                    .to_message();
                return Some(format!(
                    "Ouch {{ login: {login}, session_seq: {seq}, message: {decoded:?} }}"
                ));
            }
            j::KIND_ITCH => {
                let (seq, message) = j::decode_itch(payload)?;
                let decoded = bourse_protocol::itch::Message::decode(message).ok()?;
                return Some(format!("Itch {{ feed_seq: {seq}, message: {decoded:?} }}"));
            }
            j::KIND_DAY => {
                let d = j::decode_day(payload)?;
                let what = if d.event == j::DAY_START { "start" } else { "end" };
                return Some(format!(
                    "Day {{ {what}, session: {}, day_base_unix_ns: {}, timestamp_ns: {} }}",
                    d.session, d.day_base_unix_ns, d.timestamp_ns
                ));
            }
            j::KIND_ADMIN => {
                let (action, login) = j::decode_admin(payload)?;
                let what = match action {
                    j::ADMIN_DISABLE => "disable",
                    j::ADMIN_ENABLE => "enable",
                    j::ADMIN_LOGOUT => "force logout",
                    _ => "unknown action",
                };
                return Some(format!("Admin {{ {what}, login: {login} }}"));
            }
            _ => {}
        }
        let record_kind = *payload.get(1)?;
        if record_kind < 0x80 {
            match bourse_book::Command::decode(payload) {
                Ok((command, used)) if used == payload.len() => Some(format!("{command:?}")),
                _ => None,
            }
        } else {
            match bourse_book::Event::decode(payload) {
                Ok((event, used)) if used == payload.len() => Some(format!("{event:?}")),
                _ => None,
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Runs a `bourse journal` command; returns the process exit code.
pub(crate) fn run(args: JournalArgs) -> i32 {
    let result = match args.command {
        JournalCommand::Verify { dir } => verify(dir),
        JournalCommand::Dump {
            dir,
            json,
            from,
            limit,
        } => dump(dir, json, from, limit, &BookRecords).map(|()| 0),
        JournalCommand::Stats { dir } => stats(dir).map(|()| 0),
    };
    match result {
        Ok(code) => code,
        Err(error @ JournalError::Corruption { .. }) => {
            eprintln!("bourse journal: CORRUPTION: {error}");
            EXIT_CORRUPTION
        }
        Err(error) => {
            eprintln!("bourse journal: {error}");
            EXIT_ERROR
        }
    }
}

fn open(dir: &PathBuf) -> Result<MmapStorage, JournalError> {
    Ok(MmapStorage::open_read_only(dir)?)
}

fn segment_file(segment_id: u64) -> String {
    format!("{segment_id:020}.seg")
}

fn print_summary(report: &VerifyReport) {
    println!(
        "segments {}  records {}  batches {}  sequences {}..={}",
        report.segments, report.records, report.batches, report.first_sequence, report.last_committed
    );
    if let Some((segment_id, offset, records, bytes)) = report.torn_tail {
        println!(
            "torn tail: {records} uncommitted records, {bytes} non-zero bytes after {} offset {offset} \
             (never released; cut when the journal is next opened for writing)",
            segment_file(segment_id)
        );
    }
    if let Some(next) = report.continues_at {
        println!(
            "ends with a segment end: the journal continues in {}, which is not in this directory (an archive \
             holds a journal's first segments; the rest are in the journal directory)",
            segment_file(next)
        );
    }
}

/// Returns the exit code: 0, or [`EXIT_CHECKPOINT_AHEAD`].
fn verify(dir: PathBuf) -> Result<i32, JournalError> {
    let mut storage = open(&dir)?;
    let report = bourse_journal::verify(&mut storage)?;
    print_summary(&report);
    if storage.archived_before() > 0 {
        println!(
            "segments before {} were archived (the file {} says so; boursed's journal.archive_directory holds them)",
            segment_file(storage.archived_before()),
            bourse_journal::ARCHIVE_MARKER_NAME
        );
    }
    let checkpoints = bourse_journal::checkpoint::list(&mut storage)?;
    if !checkpoints.is_empty() {
        let at: Vec<String> = checkpoints.iter().map(u64::to_string).collect();
        println!("checkpoints at sequences {}", at.join(", "));
    }
    println!("ok: every CRC, sequence and commit checked");
    // A checkpoint is written only at a released sequence: a valid one after the last committed record
    // means the journal lost acknowledged records, and boursed (which starts from the newest valid one)
    // refuses to start. An invalid file is skipped by start-up, so it is only mentioned.
    let ahead: Vec<String> = checkpoints
        .iter()
        .filter(|&&c| c > report.last_committed)
        .map(|&c| bourse_journal::checkpoint::file_name(c))
        .collect();
    if ahead.is_empty() {
        return Ok(0);
    }
    let newest_valid = bourse_journal::checkpoint::load_newest(&mut storage)?.map_or(0, |c| c.sequence);
    if newest_valid <= report.last_committed {
        println!(
            "not valid (torn or damaged), so start-up skips them: {} after the journal's last committed record",
            ahead.join(", ")
        );
        return Ok(0);
    }
    eprintln!(
        "bourse journal: CHECKPOINT AHEAD: {} after the journal's last committed record {}: records that were \
         acknowledged are missing, and boursed will not start on this directory until the missing segments \
         are back or those checkpoint files are moved away (docs/OPERATIONS.md, Start-up and recovery)",
        ahead.join(", "),
        report.last_committed
    );
    Ok(EXIT_CHECKPOINT_AHEAD)
}

fn dump(
    dir: PathBuf,
    json: bool,
    from: u64,
    limit: Option<u64>,
    decoder: &dyn PayloadDecoder,
) -> Result<(), JournalError> {
    let mut storage = open(&dir)?;
    let archived_before = storage.archived_before();
    if from < archived_before {
        eprintln!(
            "note: records before {archived_before} were archived ({}); dumping from there",
            bourse_journal::ARCHIVE_MARKER_NAME
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let limit = limit.unwrap_or(u64::MAX);
    let mut write_error = None;
    let report = bourse_journal::walk(&mut storage, |r: RawRecord<'_>| {
        if r.sequence < from || printed >= limit || write_error.is_some() {
            return;
        }
        let line = if json {
            json_line(&r, decoder)
        } else {
            text_line(&r, decoder)
        };
        if r.kind != KIND_COMMIT && r.kind != KIND_SEGMENT_END {
            printed += 1;
        }
        if let Err(e) = writeln!(out, "{line}") {
            write_error = Some(e);
        }
    })?;
    if let Some(e) = write_error {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(JournalError::Storage(bourse_journal::StorageError::Io {
                what: "write stdout".into(),
                source: e,
            }));
        }
        return Ok(());
    }
    if json {
        let torn = match report.torn_tail {
            Some((segment_id, offset, records, bytes)) => format!(
                "{{\"segment_id\":{segment_id},\"offset\":{offset},\"uncommitted_records\":{records},\"bytes\":{bytes}}}"
            ),
            None => "null".into(),
        };
        let _ = writeln!(
            out,
            "{{\"type\":\"summary\",\"segments\":{},\"records\":{},\"batches\":{},\"first_sequence\":{},\"last_committed\":{},\"torn_tail\":{torn}}}",
            report.segments, report.records, report.batches, report.first_sequence, report.last_committed
        );
    } else {
        let _ = out.flush();
        print_summary(&report);
    }
    Ok(())
}

fn text_line(r: &RawRecord<'_>, decoder: &dyn PayloadDecoder) -> String {
    let place = format!("{} @{:>9}", segment_file(r.segment_id), r.offset);
    match (r.kind, r.commit) {
        (KIND_COMMIT, Some(b)) => format!(
            "{place}  ---- commit  batch {}..={} ({} records)  batch crc {:08x}  durable up to {}",
            b.first_sequence, b.last_sequence, b.record_count, b.batch_crc, b.durable_sequence
        ),
        (KIND_SEGMENT_END, _) => format!("{place}  ---- segment end, continues at sequence {}", r.sequence),
        _ => {
            let decoded = decoder
                .decode(r.kind, r.payload)
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            format!(
                "{place}  seq {:>10}  kind {:#06x}  len {:>5}  crc {:08x}  {}{decoded}",
                r.sequence,
                r.kind,
                r.payload.len(),
                r.crc,
                hex(r.payload)
            )
        }
    }
}

fn json_line(r: &RawRecord<'_>, decoder: &dyn PayloadDecoder) -> String {
    match (r.kind, r.commit) {
        (KIND_COMMIT, Some(b)) => format!(
            "{{\"type\":\"commit\",\"segment_id\":{},\"offset\":{},\"first_sequence\":{},\"last_sequence\":{},\"record_count\":{},\"batch_crc\":{},\"durable_sequence\":{}}}",
            r.segment_id,
            r.offset,
            b.first_sequence,
            b.last_sequence,
            b.record_count,
            b.batch_crc,
            b.durable_sequence
        ),
        (KIND_SEGMENT_END, _) => format!(
            "{{\"type\":\"segment_end\",\"segment_id\":{},\"offset\":{},\"next_sequence\":{}}}",
            r.segment_id, r.offset, r.sequence
        ),
        _ => {
            let decoded = decoder
                .decode(r.kind, r.payload)
                .map(|d| json_string(&d))
                .unwrap_or_else(|| "null".into());
            format!(
                "{{\"type\":\"record\",\"segment_id\":{},\"offset\":{},\"sequence\":{},\"kind\":{},\"length\":{},\"crc\":{},\"payload_hex\":\"{}\",\"decoded\":{decoded}}}",
                r.segment_id,
                r.offset,
                r.sequence,
                r.kind,
                r.payload.len(),
                r.crc,
                hex(r.payload)
            )
        }
    }
}

fn stats(dir: PathBuf) -> Result<(), JournalError> {
    let mut storage = open(&dir)?;
    let report = bourse_journal::verify(&mut storage)?;
    print_summary(&report);
    let mean = if report.batches == 0 {
        0.0
    } else {
        report.records as f64 / report.batches as f64
    };
    println!(
        "batch size: mean {mean:.1} records, max {}",
        report.batch_records_max
    );
    println!(
        "bytes: payload {}  on disk (records, commits, padding) {}  overhead {:.1}%",
        report.payload_bytes,
        report.record_bytes,
        share(report.record_bytes - report.payload_bytes, report.record_bytes)
    );
    let mut kinds_bytes = 0;
    for (&kind, totals) in &report.records_by_kind {
        kinds_bytes += totals.record_bytes;
        println!(
            "kind {kind:#06x} {}: {} records, payload {} B ({:.1} B each), on disk {} B ({:.1}%)",
            kind_name(kind),
            totals.records,
            totals.payload_bytes,
            totals.payload_bytes as f64 / totals.records.max(1) as f64,
            totals.record_bytes,
            share(totals.record_bytes, report.record_bytes),
        );
    }
    let framing = report.record_bytes - kinds_bytes;
    println!(
        "commit records and segment ends: on disk {framing} B ({:.1}%)",
        share(framing, report.record_bytes)
    );
    Ok(())
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// What a journal record kind holds: a `bourse-book` command or event (kinds below 0x0100, the book's
/// record kind byte), one of the daemon's own records, or `unknown`.
fn kind_name(kind: u16) -> &'static str {
    match u8::try_from(kind) {
        Ok(book_kind) => bourse_book::record::kind_name(book_kind),
        Err(_) => bourse_protocol::journaled::kind_name(kind),
    }
    .unwrap_or("unknown")
}
