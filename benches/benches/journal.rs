//! Journal benchmark (harness = false): append throughput and recovery speed, each beside a baseline of
//! plain `write(2)` / `read(2)` on the same file system, measured in the same run and reported as ratios.
//!
//! Topology: one thread, files in `BOURSE_BENCH_DIR` (default: the cargo target tmp dir, on /work).
//! - append, sync `none`: the journal (commit every `batch` records), `WriteCalls` and the default
//!   `Auto` (which picks `Mapped`), beside
//!   `write(2)` of the same on-disk bytes, one call per record, and one call per batch.
//! - append, sync `batch`: the journal (one sync per batch), both write modes, beside `write(2)` + one
//!   `fdatasync` per batch (per record and per batch writes). Journal times include segment rolls.
//! - recovery: `Journal::open` (full CRC scan), then + `replay_from(1)` of every record, and
//!   `Journal::open_replay` (both in one pass), beside a plain sequential `read(2)` of the segment files
//!   (1 MiB buffer), page cache warm for all.
//!
//! - crc: the CRC32C of one 88-byte record, the journal's own beside the `crc32c` crate.
//!
//! Each measurement is repeated `REPEATS` times alternating journal and baseline; the best of each is
//! reported. `BOURSE_BENCH_QUICK=1` shrinks the counts for a smoke run; `BOURSE_BENCH_ONLY=append`,
//! `append-none`, `append-batch`, `crc` or `recovery` runs one part.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourse_journal::{Journal, JournalConfig, MmapStorage, SyncPolicy, WriteMode, format};

const REPEATS: usize = 3;

struct Sizes {
    none_records: u64,
    batch_batches: [u64; 3],
    recovery_records: u64,
}

fn bench_dir() -> PathBuf {
    let root = std::env::var_os("BOURSE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal-bench"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    root
}

fn config(sync_policy: SyncPolicy) -> JournalConfig {
    JournalConfig {
        sync_policy,
        ..JournalConfig::default()
    }
}

/// Records per timed chunk of an append run (a multiple of every batch size measured).
const CHUNK_RECORDS: u64 = 4096;
const _: () = assert!(CHUNK_RECORDS.is_multiple_of(256));

/// One append run: its total time and the times of its whole chunks of [`CHUNK_RECORDS`] records.
struct Run {
    total: Duration,
    chunks: Vec<Duration>,
}

/// Cuts a run into chunks at batch ends (the clock is read once per chunk, not per record).
struct Chunker {
    start: Instant,
    chunk_start: Instant,
    chunks: Vec<Duration>,
}

impl Chunker {
    fn start() -> Chunker {
        let now = Instant::now();
        Chunker {
            start: now,
            chunk_start: now,
            chunks: Vec::with_capacity(1024),
        }
    }
    /// Called after each batch with the number of records done so far.
    fn batch_done(&mut self, records_done: u64) {
        if records_done.is_multiple_of(CHUNK_RECORDS) {
            let now = Instant::now();
            self.chunks.push(now - self.chunk_start);
            self.chunk_start = now;
        }
    }
    fn finish(self) -> Run {
        Run {
            total: self.start.elapsed(),
            chunks: self.chunks,
        }
    }
}

fn journal_append(
    dir: &Path,
    mode: WriteMode,
    policy: SyncPolicy,
    batch: u64,
    payload_bytes: usize,
    records: u64,
) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    let storage = MmapStorage::open_with(dir, mode).expect("dir");
    let (mut journal, _) = Journal::open(storage, config(policy)).expect("open");
    // The daemon prepares the next segment when idle (here: before the load starts).
    journal.prepare_next_segment().expect("spare");
    let payload = vec![0xA5u8; payload_bytes];
    let mut chunker = Chunker::start();
    for i in 0..records {
        journal.append(1, &payload).expect("append");
        if (i + 1) % batch == 0 {
            journal.commit_batch().expect("commit");
            chunker.batch_done(i + 1);
        }
    }
    journal.commit_batch().expect("commit");
    let run = chunker.finish();
    drop(journal);
    let _ = std::fs::remove_dir_all(dir);
    run
}

/// Plain write(2) of the same on-disk bytes: one call per record (`per_batch` false) or per batch.
fn baseline_append(
    path: &Path,
    sync: bool,
    per_batch: bool,
    batch: u64,
    payload_bytes: usize,
    records: u64,
) -> Run {
    let _ = std::fs::remove_file(path);
    let record_bytes = format::record_bytes(payload_bytes as u32) as usize;
    let mut file = File::create(path).expect("create");
    let buffer = vec![0xA5u8; record_bytes * batch as usize];
    let mut chunker = Chunker::start();
    let mut i = 0;
    while i < records {
        let n = batch.min(records - i);
        if per_batch {
            file.write_all(&buffer[..record_bytes * n as usize])
                .expect("write");
        } else {
            for _ in 0..n {
                file.write_all(&buffer[..record_bytes]).expect("write");
            }
        }
        if sync {
            file.sync_data().expect("fdatasync");
        }
        i += n;
        chunker.batch_done(i);
    }
    let run = chunker.finish();
    drop(file);
    let _ = std::fs::remove_file(path);
    run
}

/// Median time of one chunk over every chunk of every run (`None` if the runs are shorter than a chunk).
fn median_chunk(runs: &[Run]) -> Option<Duration> {
    let mut chunks: Vec<Duration> = runs.iter().flat_map(|r| r.chunks.iter().copied()).collect();
    chunks.sort();
    chunks.get(chunks.len() / 2).copied()
}

fn per_second(count: u64, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64()
}

fn best(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[0]
}

fn append_table(root: &Path, sizes: &Sizes, policies: &[SyncPolicy]) {
    println!(
        "## append (records/s; each ratio = journal time / baseline time, <= 1 means the journal is faster)"
    );
    println!(
        "journal `calls` = WriteMode::WriteCalls (gathered pwrite + fdatasync), `mapped` = memcpy into the mapping + msync: under `none` WriteMode::Auto (the default, which picks Mapped), under `batch` WriteMode::Mapped"
    );
    println!();
    println!(
        "steady = median time of a {CHUNK_RECORDS}-record chunk over all runs (robust to preemption by other processes; excludes the rare roll)"
    );
    println!();
    println!(
        "| policy | payload B | batch | records | calls rec/s | mapped rec/s | write/record rec/s | write/batch rec/s | calls / write-record | calls / write-batch | mapped / write-record | mapped / write-batch | steady calls / write-batch | steady mapped / write-record | steady mapped / write-batch |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let dir = root.join("append");
    let file = root.join("baseline.log");
    for &policy in policies {
        for payload_bytes in [64usize, 128] {
            for (index, batch) in [1u64, 16, 256].into_iter().enumerate() {
                let (sync, records) = match policy {
                    SyncPolicy::None => (false, sizes.none_records),
                    _ => (true, sizes.batch_batches[index] * batch),
                };
                // Under `none` the default (`Auto`) is the mapped path users get: it picks `Mapped`.
                let mapped_mode = match policy {
                    SyncPolicy::None => WriteMode::Auto,
                    _ => WriteMode::Mapped,
                };
                let mut runs: [Vec<Run>; 4] = Default::default();
                for _ in 0..REPEATS {
                    runs[0].push(journal_append(
                        &dir,
                        WriteMode::WriteCalls,
                        policy,
                        batch,
                        payload_bytes,
                        records,
                    ));
                    runs[1].push(journal_append(
                        &dir,
                        mapped_mode,
                        policy,
                        batch,
                        payload_bytes,
                        records,
                    ));
                    runs[2].push(baseline_append(&file, sync, false, batch, payload_bytes, records));
                    runs[3].push(baseline_append(&file, sync, true, batch, payload_bytes, records));
                }
                let steady = runs.each_ref().map(|r| median_chunk(r));
                let [calls, mapped, per_record, per_batch] =
                    runs.map(|r| best(r.into_iter().map(|run| run.total).collect()));
                let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
                let steady_ratio = |a: usize, b: usize| match (steady[a], steady[b]) {
                    (Some(a), Some(b)) => format!("{:.2}", ratio(a, b)),
                    _ => "-".to_string(),
                };
                println!(
                    "| {} | {payload_bytes} | {batch} | {records} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                    if sync { "batch" } else { "none" },
                    per_second(records, calls),
                    per_second(records, mapped),
                    per_second(records, per_record),
                    per_second(records, per_batch),
                    ratio(calls, per_record),
                    ratio(calls, per_batch),
                    ratio(mapped, per_record),
                    ratio(mapped, per_batch),
                    steady_ratio(0, 3),
                    steady_ratio(1, 2),
                    steady_ratio(1, 3),
                );
            }
        }
    }
}

fn recovery_table(root: &Path, sizes: &Sizes) {
    let dir = root.join("recovery");
    let records = sizes.recovery_records;
    let build_start = Instant::now();
    {
        let (mut journal, _) =
            Journal::open(MmapStorage::open(&dir).expect("dir"), config(SyncPolicy::None)).expect("open");
        let mut payload = [0u8; 64];
        for i in 0..records {
            payload[..8].copy_from_slice(&i.to_le_bytes());
            journal.append(1, &payload).expect("append");
            if (i + 1) % 256 == 0 {
                journal.commit_batch().expect("commit");
            }
        }
        journal.commit_batch().expect("commit");
        journal.sync().expect("sync");
    }
    let build = build_start.elapsed();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    let file_bytes: u64 = files.iter().map(|p| p.metadata().expect("stat").len()).sum();
    let mut buffer = vec![0u8; 1 << 20];
    let (mut ours, mut scan_only, mut plain, mut one_pass) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let start = Instant::now();
        let mut total = 0u64;
        for path in &files {
            let mut file = File::open(path).expect("open");
            loop {
                let n = file.read(&mut buffer).expect("read");
                if n == 0 {
                    break;
                }
                total = total.wrapping_add(buffer[n - 1] as u64 + n as u64);
            }
        }
        std::hint::black_box(total);
        plain.push(start.elapsed());

        let start = Instant::now();
        let (mut journal, recovery) =
            Journal::open(MmapStorage::open(&dir).expect("dir"), config(SyncPolicy::None)).expect("open");
        let scanned = start.elapsed();
        assert_eq!(recovery.last_committed, records);
        let mut sum = 0u64;
        let replayed = journal
            .replay_from(1, |r| {
                sum = sum.wrapping_add(r.payload[0] as u64);
                Ok::<(), ()>(())
            })
            .expect("replay");
        assert_eq!(replayed, records);
        std::hint::black_box(sum);
        ours.push(start.elapsed());
        scan_only.push(scanned);
        drop(journal);

        let start = Instant::now();
        let mut sum = 0u64;
        let (journal, recovery, replayed) = Journal::open_replay(
            MmapStorage::open(&dir).expect("dir"),
            config(SyncPolicy::None),
            1,
            |r| {
                sum = sum.wrapping_add(r.payload[0] as u64);
                Ok::<(), ()>(())
            },
        )
        .expect("open_replay");
        one_pass.push(start.elapsed());
        assert_eq!((recovery.last_committed, replayed), (records, records));
        std::hint::black_box(sum);
        drop(journal);
    }
    let (ours, scan_only, plain, one_pass) = (best(ours), best(scan_only), best(plain), best(one_pass));
    println!();
    println!(
        "## recovery ({records} records of 64 B, batches of 256, {} segment files, {:.0} MiB; built in {:.1} s)",
        files.len(),
        file_bytes as f64 / (1 << 20) as f64,
        build.as_secs_f64()
    );
    println!("| what | time ms | records/s | MiB/s of segment files | ratio to plain read |");
    println!("|---|---|---|---|---|");
    let mib = file_bytes as f64 / (1 << 20) as f64;
    for (name, d) in [
        ("plain read(2) of the files", plain),
        ("open (scan + CRC check)", scan_only),
        ("open + replay_from(1) of every record", ours),
        ("open_replay(1): open and replay in one pass", one_pass),
    ] {
        println!(
            "| {name} | {:.1} | {:.0} | {:.0} | {:.2} |",
            d.as_secs_f64() * 1e3,
            per_second(records, d),
            mib / d.as_secs_f64(),
            plain.as_secs_f64() / d.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// CRC of one 88-byte record (64-byte payload; header bytes 4..24 + payload = 84 bytes): the `crc32c`
/// crate over the encoded bytes, beside the journal's own (`RecordHeader::new`, one pass from the header
/// fields), over `records` different records.
fn crc_table(records: u64) {
    let payload_bytes = 64usize;
    let record_bytes = format::record_bytes(payload_bytes as u32) as usize;
    // 1 MiB of records, walked round and round (stays in cache, like a scan of a warm segment).
    let count = (1usize << 20) / record_bytes;
    let mut image = vec![0u8; count * record_bytes];
    for (i, record) in image.chunks_exact_mut(record_bytes).enumerate() {
        let payload = [(i % 251) as u8; 64];
        let header = format::RecordHeader::new(1, i as u64 + 1, &payload);
        record[..24].copy_from_slice(&header.encode());
        record[24..24 + payload_bytes].copy_from_slice(&payload);
    }
    let (mut crate_runs, mut ours_runs) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let start = Instant::now();
        let mut acc = 0u32;
        for i in 0..records as usize {
            let record = &image[(i % count) * record_bytes..][..record_bytes];
            acc ^= crc32c::crc32c(&record[4..24 + payload_bytes]);
        }
        std::hint::black_box(acc);
        crate_runs.push(start.elapsed());
        let start = Instant::now();
        let mut acc = 0u32;
        for i in 0..records as usize {
            let record = &image[(i % count) * record_bytes..][..record_bytes];
            acc ^= format::RecordHeader::new(1, i as u64, &record[24..24 + payload_bytes]).crc;
        }
        std::hint::black_box(acc);
        ours_runs.push(start.elapsed());
    }
    let (crate_time, ours_time) = (best(crate_runs), best(ours_runs));
    println!();
    println!("## CRC32C of an 88-byte record (84 bytes covered), {records} records");
    println!("| what | ns per record | ratio to the crate |");
    println!("|---|---|---|");
    for (name, d) in [
        ("`crc32c` crate, `crc32c(&record[4..88])`", crate_time),
        (
            "journal, `RecordHeader::new` (crc32q loop from the fields)",
            ours_time,
        ),
    ] {
        println!(
            "| {name} | {:.1} | {:.2} |",
            d.as_secs_f64() * 1e9 / records as f64,
            d.as_secs_f64() / crate_time.as_secs_f64()
        );
    }
}

fn main() {
    let quick = std::env::var_os("BOURSE_BENCH_QUICK").is_some();
    let sizes = if quick {
        Sizes {
            none_records: 100_000,
            batch_batches: [20, 20, 20],
            recovery_records: 1_000_000,
        }
    } else {
        Sizes {
            none_records: 1_000_000,
            batch_batches: [200, 200, 200],
            recovery_records: 10_000_000,
        }
    };
    let root = bench_dir();
    println!(
        "# journal benchmark in {} (best of {REPEATS}, alternating)",
        root.display()
    );
    let only = std::env::var("BOURSE_BENCH_ONLY").unwrap_or_default();
    match only.as_str() {
        "" | "append" => append_table(&root, &sizes, &[SyncPolicy::None, SyncPolicy::Batch]),
        "append-none" => append_table(&root, &sizes, &[SyncPolicy::None]),
        "append-batch" => append_table(&root, &sizes, &[SyncPolicy::Batch]),
        _ => {}
    }
    if only.is_empty() || only == "crc" {
        crc_table(sizes.recovery_records);
    }
    if only.is_empty() || only == "recovery" {
        recovery_table(&root, &sizes);
    }
    let _ = std::fs::remove_dir_all(&root);
}
