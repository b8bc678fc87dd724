//! Archiving old segments: rolls that start batches in new segments, the marker, the states a crash can
//! leave, and a journal that starts later than sequence 1 (open, replay, readers, verify, appends).

use std::path::{Path, PathBuf};

use bourse_journal::{ARCHIVE_MARKER_NAME, Journal, JournalConfig, MmapStorage, Reader, SyncPolicy, verify};

fn config() -> JournalConfig {
    JournalConfig {
        segment_bytes: 16 << 10,
        payload_bytes_max: 4096,
        batch_records_max: 1024,
        sync_policy: SyncPolicy::Batch,
        checkpoints_kept: 3,
    }
}

/// Payload of record `sequence`: its length and bytes follow from the sequence, so any mix-up shows.
fn payload_for(sequence: u64, len_max: u64) -> Vec<u8> {
    let len = (sequence * 37 % len_max) as usize;
    (0..len).map(|i| (sequence as usize * 31 + i) as u8).collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("archive-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Appends `batches` batches of `records` records each, payloads up to `len_max` bytes.
fn write_batches(journal: &mut Journal<MmapStorage>, batches: u64, records: u64, len_max: u64) {
    for _ in 0..batches {
        for _ in 0..records {
            let sequence = journal.next_sequence();
            journal
                .append(1, &payload_for(sequence, len_max))
                .expect("append");
        }
        journal.commit_batch().expect("commit");
    }
}

/// Segment ids of the segment files in `dir`, ascending.
fn segment_files(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Every committed record, through a fresh open.
fn all_records(dir: &Path) -> (u64, Vec<(u64, Vec<u8>)>) {
    let storage = MmapStorage::open(dir).expect("storage");
    let (mut journal, recovery) = Journal::open(storage, config()).expect("open");
    let mut out = Vec::new();
    journal
        .replay_from(recovery.first_sequence, |r| {
            out.push((r.sequence, r.payload.to_vec()));
            Ok::<(), ()>(())
        })
        .expect("replay");
    (recovery.first_sequence, out)
}

/// A new journal in a fresh directory, and where its archive goes.
fn fresh(name: &str) -> (PathBuf, PathBuf, Journal<MmapStorage>) {
    let dir = temp_dir(name);
    let journal = open(&dir);
    (dir.clone(), dir.join("archive"), journal)
}

/// The records of `all` from sequence `first` on.
fn from_sequence(all: &[(u64, Vec<u8>)], first: u64) -> Vec<(u64, Vec<u8>)> {
    all.iter().filter(|(s, _)| *s >= first).cloned().collect()
}

fn open(dir: &Path) -> Journal<MmapStorage> {
    Journal::open(MmapStorage::open(dir).expect("storage"), config())
        .expect("open")
        .0
}

#[test]
fn archiving_moves_whole_segments_and_the_rest_still_works() {
    let (dir, archive, mut journal) = fresh("moves");
    // Batches of two records of at most 100 bytes: smaller than the roll slack (512 bytes here), so
    // every segment starts a batch.
    write_batches(&mut journal, 600, 2, 100);
    drop(journal);
    let (_, before) = all_records(&dir);
    let segments = segment_files(&dir);
    assert!(segments.len() >= 6, "{segments:?}");
    let cut_at = before[before.len() / 2].0;
    let expected_first = *segments
        .iter()
        .rev()
        .find(|&&id| id <= cut_at)
        .expect("a segment");

    let mut journal = open(&dir);
    let done = journal.archive_before(cut_at, &archive).expect("archive");
    assert_eq!(done.first_kept, expected_first);
    let moved: Vec<u64> = segments
        .iter()
        .copied()
        .filter(|&id| id < expected_first)
        .collect();
    assert_eq!(done.moved as usize, moved.len());
    assert_eq!(segment_files(&archive), moved);
    assert_eq!(journal.first_sequence(), expected_first);
    assert_eq!(
        std::fs::read_to_string(dir.join(ARCHIVE_MARKER_NAME)).expect("marker"),
        format!("{expected_first}\n")
    );
    // The writer goes on.
    write_batches(&mut journal, 10, 2, 100);
    let last = journal.next_sequence() - 1;
    drop(journal);

    // A fresh open starts at the cut, with every record from there, byte for byte.
    let (first, after) = all_records(&dir);
    assert_eq!(first, expected_first);
    let kept: Vec<_> = before
        .iter()
        .filter(|(s, _)| *s >= expected_first)
        .cloned()
        .collect();
    assert_eq!(&after[..kept.len()], &kept[..]);
    assert_eq!(after.last().expect("records").0, last);

    // A reader in another process and the tools see the same journal.
    let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("read-only")).expect("reader");
    reader.seek(cut_at).expect("seek");
    let record = reader.next_record().expect("read").expect("a record");
    assert_eq!(record.sequence, cut_at);
    let report = verify(&mut MmapStorage::open_read_only(&dir).expect("read-only")).expect("verify");
    assert_eq!(report.first_sequence, expected_first);
    assert_eq!(report.last_committed, last);
    assert_eq!((report.continues_at, report.torn_tail), (None, None));
    // The archive verifies on its own: it ends where the journal directory goes on, not in a torn tail.
    let report = verify(&mut MmapStorage::open_read_only(&archive).expect("archive")).expect("verify");
    assert_eq!(
        (report.first_sequence, report.last_committed),
        (1, expected_first - 1)
    );
    assert_eq!(
        (report.continues_at, report.torn_tail),
        (Some(expected_first), None)
    );

    // Archiving again at or before the cut moves nothing.
    let mut journal = open(&dir);
    let again = journal.archive_before(cut_at, &archive).expect("archive again");
    assert_eq!((again.first_kept, again.moved), (expected_first, 0));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_batch_across_two_segments_is_never_cut() {
    let (dir, archive, mut journal) = fresh("spanning");
    write_batches(&mut journal, 100, 2, 100);
    // One batch of 40 records of ~1-2 KiB: about three segments' worth, so it spans segments.
    let big_first = journal.next_sequence();
    write_batches(&mut journal, 1, 40, 2000);
    let big_last = journal.next_sequence() - 1;
    write_batches(&mut journal, 100, 2, 100);
    drop(journal);
    let segments = segment_files(&dir);
    let inside: Vec<u64> = segments
        .iter()
        .copied()
        .filter(|&id| id > big_first && id <= big_last)
        .collect();
    assert!(!inside.is_empty(), "the big batch spans segments: {segments:?}");
    let (_, before) = all_records(&dir);

    // Asked to cut right after the big batch began in a new segment: the cut moves back to before it.
    let mut journal = open(&dir);
    let done = journal
        .archive_before(*inside.last().expect("a segment"), &archive)
        .expect("archive");
    assert!(
        done.first_kept <= big_first,
        "cut at {} inside the batch from {big_first}",
        done.first_kept
    );
    drop(journal);
    let (first, after) = all_records(&dir);
    assert_eq!(first, done.first_kept);
    assert_eq!(after, from_sequence(&before, first));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn what_a_crash_leaves_opens_and_the_next_archive_finishes() {
    let (dir, archive, mut journal) = fresh("crash");
    write_batches(&mut journal, 600, 2, 100);
    let cut_at = journal.next_sequence() / 2;
    let done = journal.archive_before(cut_at, &archive).expect("archive");
    assert!(done.moved >= 2);
    drop(journal);
    let (_, before) = all_records(&dir);

    // The marker is durable but two moves did not happen: those files are not part of the journal.
    let left: Vec<u64> = segment_files(&archive).into_iter().rev().take(2).collect();
    for id in &left {
        let name = format!("{id:020}.seg");
        std::fs::rename(archive.join(&name), dir.join(&name)).expect("move back");
    }
    assert_eq!(all_records(&dir), (done.first_kept, before.clone()));
    let mut journal = open(&dir);
    let finished = journal.archive_before(1, &archive).expect("finish");
    assert_eq!((finished.first_kept, finished.moved), (done.first_kept, 2));
    assert!(segment_files(&dir).iter().all(|&id| id >= done.first_kept));
    drop(journal);

    // A marker caught while it was written is removed at open and changes nothing.
    std::fs::write(dir.join(format!("{ARCHIVE_MARKER_NAME}.tmp")), "999999\n").expect("temp marker");
    assert_eq!(all_records(&dir), (done.first_kept, before));
    assert!(!dir.join(format!("{ARCHIVE_MARKER_NAME}.tmp")).exists());

    // Without the segment the marker names, a writer's open refuses (it would start a new first segment
    // below the marker); a read-only one still shows what is there.
    let first_kept = dir.join(format!("{:020}.seg", done.first_kept));
    let aside = dir.join("aside");
    std::fs::rename(&first_kept, &aside).expect("move aside");
    let error = MmapStorage::open(&dir).expect_err("the first kept segment is missing");
    assert!(
        error
            .to_string()
            .contains("segments kept after the last archive are missing"),
        "{error}"
    );
    assert!(
        segment_files(&dir).iter().all(|&id| id > done.first_kept),
        "nothing written below it"
    );
    MmapStorage::open_read_only(&dir).expect("read-only");
    std::fs::rename(&aside, &first_kept).expect("move back");

    // A damaged marker stops the open, naming the file (it could otherwise hide or expose segments).
    std::fs::write(dir.join(ARCHIVE_MARKER_NAME), "12x\n").expect("damaged marker");
    let error = MmapStorage::open(&dir).expect_err("a damaged marker");
    assert!(error.to_string().contains(ARCHIVE_MARKER_NAME), "{error}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn nothing_to_archive_writes_nothing() {
    let (dir, archive, mut journal) = fresh("nothing");
    write_batches(&mut journal, 600, 2, 100);
    for sequence in [0, 1, 2] {
        let done = journal.archive_before(sequence, &archive).expect("archive");
        assert_eq!((done.first_kept, done.moved), (0, 0));
    }
    assert!(!dir.join(ARCHIVE_MARKER_NAME).exists());
    assert_eq!(std::fs::read_dir(&archive).expect("created, empty").count(), 0);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
