//! Round trips, limits, readers (seek, tail), sync policies, and fatal errors (EIO, ENOSPC).

use bourse_journal::{
    CACHED_SEGMENTS_DEFAULT, FaultConfig, FaultStorage, Journal, JournalConfig, JournalError, MemStorage,
    MmapStorage, Reader, ReplayError, Storage, SyncPolicy, WriteMode,
};

fn small_config(sync_policy: SyncPolicy) -> JournalConfig {
    JournalConfig {
        segment_bytes: 16 << 10,
        payload_bytes_max: 1024,
        batch_records_max: 64,
        sync_policy,
        checkpoints_kept: 3,
    }
}

/// Payload of record `sequence`: its length and bytes follow from the sequence, so any mix-up shows.
fn payload_for(sequence: u64) -> Vec<u8> {
    let len = (sequence * 37 % 300) as usize;
    (0..len).map(|i| (sequence as usize * 31 + i) as u8).collect()
}

fn kind_for(sequence: u64) -> u16 {
    1 + (sequence % 7) as u16
}

/// Appends the record of `sequence` (kind and payload from [`kind_for`] and [`payload_for`]); returns the
/// sequence the journal gave it.
fn append_numbered<S: Storage>(journal: &mut Journal<S>, sequence: u64) -> u64 {
    journal
        .append(kind_for(sequence), &payload_for(sequence))
        .expect("append")
}

fn replay_all<S: Storage>(journal: &mut Journal<S>, from: u64) -> Vec<(u64, u16, Vec<u8>)> {
    let mut out = Vec::new();
    journal
        .replay_from(from, |r| {
            out.push((r.sequence, r.kind, r.payload.to_vec()));
            Ok::<(), ()>(())
        })
        .expect("replay");
    out
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn append_commit_reopen_replay_across_segments() {
    let config = small_config(SyncPolicy::Batch);
    let (mut journal, recovery) = Journal::open(MemStorage::new(), config).expect("open");
    assert_eq!(recovery.last_committed, 0);
    let mut sequence = 0;
    for batch in 0..120u64 {
        for _ in 0..(batch % 9 + 1) {
            sequence += 1;
            let got = append_numbered(&mut journal, sequence);
            assert_eq!(got, sequence);
        }
        let committed = journal.commit_batch().expect("commit");
        assert_eq!(committed.released_up_to, sequence);
    }
    let storage = journal.into_storage();
    let segments = storage.clone().segment_ids().expect("ids").len();
    assert!(segments > 5, "the test must roll segments, got {segments}");
    let (mut journal, recovery) = Journal::open(storage, config).expect("reopen");
    assert_eq!(recovery.last_committed, sequence);
    assert_eq!(recovery.records, sequence);
    assert_eq!(recovery.batches, 120);
    assert_eq!(recovery.torn_tail, None);
    let records = replay_all(&mut journal, 1);
    assert_eq!(records.len() as u64, sequence);
    for (i, (seq, kind, payload)) in records.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*kind, kind_for(*seq));
        assert_eq!(payload, &payload_for(*seq));
    }
    // Replay after a checkpoint sequence.
    let tail = replay_all(&mut journal, 300);
    assert_eq!(tail.first().map(|r| r.0), Some(300));
    assert_eq!(tail.len() as u64, sequence - 299);
    // Appending continues the sequence after reopen.
    assert_eq!(journal.append(1, b"next").expect("append"), sequence + 1);
    journal.commit_batch().expect("commit");
    let (_, recovery) = Journal::open(journal.into_storage(), config).expect("reopen");
    assert_eq!(recovery.last_committed, sequence + 1);
}

#[test]
fn replay_from_any_sequence_skips_an_open_batch_across_a_roll() {
    let config = small_config(SyncPolicy::None);
    let (mut journal, _) = Journal::open(MemStorage::new(), config).expect("open");
    let mut sequence = 0u64;
    for batch in 0..40u64 {
        for _ in 0..(batch % 7 + 1) {
            sequence += 1;
            append_numbered(&mut journal, sequence);
        }
        journal.commit_batch().expect("commit");
    }
    let committed = sequence;
    // An open batch long enough to roll into a new segment: never replayed.
    let segment_before = journal.position().0;
    while journal.position().0 == segment_before {
        sequence += 1;
        append_numbered(&mut journal, sequence);
    }
    for from in 0..=committed + 2 {
        let records = replay_all(&mut journal, from);
        let expected: Vec<u64> = (from.max(1)..=committed).collect();
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            expected,
            "from {from}"
        );
        assert!(
            records
                .iter()
                .all(|(s, k, p)| *k == kind_for(*s) && p == &payload_for(*s))
        );
    }
}

#[test]
fn open_replay_visits_what_open_then_replay_from_visits() {
    // Batches of up to 80 records span segment rolls; the last batch is left open (a torn tail).
    let config = small_config(SyncPolicy::Batch);
    let (mut journal, _) = Journal::open(MemStorage::new(), config).expect("open");
    let mut sequence = 0u64;
    for batch in 0..30u64 {
        for _ in 0..(batch * 13 % 60 + 1) {
            sequence += 1;
            append_numbered(&mut journal, sequence);
        }
        journal.commit_batch().expect("commit");
    }
    let committed = sequence;
    for _ in 0..20 {
        sequence += 1;
        append_numbered(&mut journal, sequence);
    }
    let storage = journal.into_storage();
    for from in [
        0,
        1,
        2,
        committed / 3,
        committed / 2 + 1,
        committed,
        committed + 1,
        u64::MAX,
    ] {
        let mut visited = Vec::new();
        let (mut journal, recovery, count) = Journal::open_replay(storage.clone(), config, from, |r| {
            visited.push((r.sequence, r.kind, r.payload.to_vec()));
            Ok::<(), ()>(())
        })
        .expect("open_replay");
        let (mut plain, plain_recovery) = Journal::open(storage.clone(), config).expect("open");
        assert_eq!(recovery, plain_recovery);
        assert_eq!(recovery.last_committed, committed);
        assert_eq!(count, visited.len() as u64);
        assert_eq!(visited, replay_all(&mut plain, from), "from {from}");
        assert_eq!(visited, replay_all(&mut journal, from), "from {from}");
        // The journal it returns appends after the last committed record.
        assert_eq!(journal.append(1, b"next").expect("append"), committed + 1);
    }
    // A visitor error stops the open.
    let result = Journal::open_replay(storage, config, 1, |r| {
        if r.sequence == 100 {
            Err(r.sequence)
        } else {
            Ok(())
        }
    });
    assert!(matches!(result, Err(ReplayError::Visitor(100))));
}

#[test]
fn reader_seeks_anywhere_and_never_sees_an_open_batch() {
    let config = small_config(SyncPolicy::None);
    let (mut journal, _) = Journal::open(MemStorage::new(), config).expect("open");
    for sequence in 1..=9000u64 {
        append_numbered(&mut journal, sequence);
        if sequence % 10 == 0 {
            journal.commit_batch().expect("commit");
        }
    }
    // 9000 is committed; an open batch of 5 follows.
    for sequence in 9001..=9005u64 {
        append_numbered(&mut journal, sequence);
    }
    let storage = journal.into_storage();
    let mut reader = Reader::new(storage.clone()).expect("reader");
    for target in [1u64, 2, 777, 2048, 8999, 9000, 4097, 1500, 4, 8193] {
        reader.seek(target).expect("seek");
        let record = reader.next_record().expect("read").expect("a record");
        assert_eq!(record.sequence, target);
        assert_eq!(record.payload, payload_for(target).as_slice());
    }
    assert!(
        reader.index().len() >= 3,
        "the sparse index has an entry per stride: {:?}",
        reader.index()
    );
    reader.seek(8995).expect("seek");
    let mut seen = Vec::new();
    while let Some(record) = reader.next_record().expect("read") {
        seen.push(record.sequence);
    }
    assert_eq!(seen, (8995..=9000).collect::<Vec<_>>());
    assert_eq!(reader.committed_up_to(), 9000);
}

#[test]
fn tailing_reader_follows_a_live_writer_across_segments() {
    tailing_reader(WriteMode::WriteCalls);
    tailing_reader(WriteMode::Mapped);
    tailing_reader(WriteMode::Auto);
}

fn tailing_reader(mode: WriteMode) {
    let dir = temp_dir(&format!("tail-{mode:?}"));
    let config = small_config(SyncPolicy::None);
    let (mut journal, _) =
        Journal::open(MmapStorage::open_with(&dir, mode).expect("dir"), config).expect("open");
    let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("ro")).expect("reader");
    assert!(reader.next_record().expect("read").is_none());
    let mut next_expected = 1u64;
    for round in 0..40u64 {
        for _ in 0..(round % 5 + 1) * 7 {
            let sequence = journal.next_sequence();
            append_numbered(&mut journal, sequence);
        }
        // Not committed yet: invisible.
        assert!(reader.next_record().expect("read").is_none());
        journal.commit_batch().expect("commit");
        while let Some(record) = reader.next_record().expect("read") {
            assert_eq!(record.sequence, next_expected);
            assert_eq!(record.payload, payload_for(next_expected).as_slice());
            next_expected += 1;
        }
        assert_eq!(next_expected, journal.next_sequence());
    }
    assert!(
        journal.storage().dir().read_dir().expect("ls").count() > 3,
        "rolled segments"
    );
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mmap_storage_round_trip_and_reopen() {
    mmap_round_trip(WriteMode::WriteCalls);
    mmap_round_trip(WriteMode::Mapped);
    mmap_round_trip(WriteMode::Auto);
}

#[test]
fn auto_write_mode_follows_the_sync_policy_and_continues_after_reopen() {
    for (policy, chosen) in [
        (SyncPolicy::None, WriteMode::Mapped),
        (SyncPolicy::Batch, WriteMode::WriteCalls),
        (SyncPolicy::EveryBatches(3), WriteMode::WriteCalls),
    ] {
        let dir = temp_dir(&format!("auto-{policy:?}"));
        let config = small_config(policy);
        let mut next = 1u64;
        for round in 0..3 {
            let storage = MmapStorage::open(&dir).expect("dir");
            assert_eq!(
                storage.write_mode(),
                WriteMode::Auto,
                "undecided until the writer opens"
            );
            let (mut journal, recovery) = Journal::open(storage, config).expect("open");
            assert_eq!(journal.storage().write_mode(), chosen, "{policy:?}");
            assert_eq!(recovery.last_committed, next - 1, "{policy:?} round {round}");
            assert!(recovery.torn_tail.is_none());
            // Continues in the segment recovery ended in, then rolls into new ones.
            for _ in 0..300 {
                journal
                    .append(kind_for(next), &payload_for(next))
                    .expect("append");
                if next.is_multiple_of(10) {
                    journal.commit_batch().expect("commit");
                    if next.is_multiple_of(100) {
                        journal.prepare_next_segment().expect("spare");
                    }
                }
                next += 1;
            }
            journal.commit_batch().expect("commit");
            journal.sync().expect("sync");
        }
        reopen_and_check_all(&dir, config, 900);
        let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("ro")).expect("reader");
        let mut seen = 0u64;
        while let Some(record) = reader.next_record().expect("read") {
            seen += 1;
            assert_eq!(record.sequence, seen);
            assert_eq!(record.payload, payload_for(seen).as_slice());
        }
        assert_eq!(seen, 900);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Reopens the journal in `dir`: `last` records committed, each with the payload and kind its sequence
/// gives ([`payload_for`], [`kind_for`]).
fn reopen_and_check_all(dir: &std::path::Path, config: JournalConfig, last: u64) {
    let (mut journal, recovery) =
        Journal::open(MmapStorage::open(dir).expect("dir"), config).expect("reopen");
    assert_eq!(recovery.last_committed, last);
    let records = replay_all(&mut journal, 1);
    assert_eq!(records.len() as u64, last);
    assert!(
        records
            .iter()
            .all(|(s, k, p)| p == &payload_for(*s) && *k == kind_for(*s))
    );
}

/// A writer that is never idle (never calls `prepare_next_segment`) with spares built in the background:
/// creating the first segment orders the next one, so every roll takes a spare the builder made, in both
/// write paths, and the records read back whole.
#[test]
fn background_spares_serve_every_roll() {
    for policy in [SyncPolicy::None, SyncPolicy::Batch] {
        let dir = temp_dir(&format!("background-{policy:?}"));
        let config = small_config(policy);
        let mut storage = MmapStorage::open(&dir).expect("dir");
        storage.build_spares_in_background().expect("builder");
        let (mut journal, _) = Journal::open(storage, config).expect("open");
        for sequence in 1..=600u64 {
            append_numbered(&mut journal, sequence);
            if sequence % 20 == 0 {
                journal.commit_batch().expect("commit");
            }
        }
        journal.sync().expect("sync");
        let segments = segment_files(&dir).len() as u64;
        assert!(
            segments >= 4,
            "{policy:?}: the run rolls several times ({segments} segments)"
        );
        let rolls = segments - 1;
        assert_eq!(
            journal.storage().spares_taken(),
            rolls,
            "{policy:?}: every roll takes the builder's spare"
        );
        drop(journal);
        reopen_and_check_all(&dir, config, 600);
        // The spare left at drop is a temporary: the reopen above removed it.
        assert!(!dir.join("spare.seg.tmp").exists(), "{policy:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A writer with spares built in the background keeps only its last two segments mapped: each roll
/// retires the older ones (unmapped on the builder's thread, written back, and dropped from the page
/// cache once the journal's `cached` newest segments are newer), and every record still reads back. A
/// reader keeps mapped only the segment it has not read past, and maps the others again when it seeks
/// back.
#[test]
fn retired_segments_leave_the_writer_and_the_page_cache_and_read_back_whole() {
    for (policy, cached) in [
        (SyncPolicy::None, CACHED_SEGMENTS_DEFAULT),
        (SyncPolicy::Batch, CACHED_SEGMENTS_DEFAULT),
        (SyncPolicy::None, 3),
    ] {
        let dir = temp_dir(&format!("retire-{policy:?}-{cached}"));
        let config = small_config(policy);
        let mut storage = MmapStorage::open(&dir).expect("dir");
        storage.set_cached_segments(cached);
        storage.build_spares_in_background().expect("builder");
        let (mut journal, _) = Journal::open(storage, config).expect("open");
        let last = 1_500u64;
        for sequence in 1..=last {
            append_numbered(&mut journal, sequence);
            if sequence % 20 == 0 {
                journal.commit_batch().expect("commit");
            }
        }
        journal.commit_batch().expect("commit");
        let mut ids: Vec<u64> = segment_files(&dir);
        ids.sort_unstable();
        assert!(ids.len() >= 10, "{policy:?}: {} segments", ids.len());
        assert_eq!(
            journal.storage().mapped_segment_ids(),
            ids[ids.len() - 2..],
            "{policy:?}: the writer maps its last two segments only"
        );
        // Dropping the journal stops the builder after the orders it was given. The newest segment
        // outside the `cached` newest has left the page cache, and so has the oldest.
        drop(journal);
        for id in [ids[0], ids[ids.len() - 1 - cached]] {
            if let Some(resident) = resident_pages(&dir.join(format!("{id:020}.seg"))) {
                assert_eq!(
                    resident, 0,
                    "{policy:?}, {cached} cached: segment {id} left the page cache"
                );
            }
        }

        let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("reader")).expect("reader");
        assert_eq!(
            reader.storage().mapped_segment_ids(),
            ids,
            "{policy:?}: all mapped at open"
        );
        for pass in 0..2 {
            let mut sequence = 0;
            while let Some(record) = reader.next_record().expect("read") {
                sequence += 1;
                assert_eq!(record.sequence, sequence);
                assert_eq!(record.kind, kind_for(sequence));
                assert_eq!(record.payload, payload_for(sequence).as_slice());
                let mapped = reader.storage().mapped_segment_ids();
                assert!(
                    pass == 0 || mapped.len() <= 2,
                    "{policy:?}: a reader that seeked back maps {mapped:?}"
                );
            }
            assert_eq!(sequence, last, "{policy:?}, pass {pass}");
            assert_eq!(
                reader.storage().mapped_segment_ids(),
                ids[ids.len() - 1..],
                "{policy:?}, pass {pass}: read to the end, the reader maps the last segment only"
            );
            reader.seek(1).expect("seek back");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Ids of the segment files in `dir`.
fn segment_files(dir: &std::path::Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect()
}

/// Pages of `path` in the page cache (`mincore` over a fresh mapping), or `None` on tmpfs, whose pages
/// are the file and never leave.
#[allow(unsafe_code)]
fn resident_pages(path: &std::path::Path) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open");
    // SAFETY: `statfs` writes into the zeroed struct it is given.
    let on_tmpfs = unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        libc::fstatfs(file.as_raw_fd(), &mut fs) == 0 && fs.f_type == libc::TMPFS_MAGIC
    };
    if on_tmpfs {
        return None;
    }
    let len = file.metadata().expect("stat").len() as usize;
    // SAFETY: the file is a finished segment nobody writes; the mapping is read-only and only its
    // residency is asked, never its bytes.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: `vec` holds one byte per page of the mapping, as `mincore` requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore");
    Some(vec.iter().filter(|&&b| b & 1 != 0).count())
}

fn mmap_round_trip(mode: WriteMode) {
    let dir = temp_dir(&format!("mmap-{mode:?}"));
    let config = small_config(SyncPolicy::Batch);
    let (mut journal, _) =
        Journal::open(MmapStorage::open_with(&dir, mode).expect("dir"), config).expect("open");
    let mut spares = 0;
    for sequence in 1..=500u64 {
        append_numbered(&mut journal, sequence);
        if sequence % 25 == 0 {
            journal.commit_batch().expect("commit");
            // Idle time: prepare the next segment, so rolls take the spare.
            if journal.prepare_next_segment().expect("spare") {
                spares += 1;
            }
        }
    }
    assert!(spares >= 3, "rolls used prepared spares: {spares}");
    // A batch left open is not recovered.
    journal.append(1, b"never committed").expect("append");
    drop(journal);
    let (mut journal, recovery) =
        Journal::open(MmapStorage::open_with(&dir, mode).expect("dir"), config).expect("reopen");
    assert_eq!(recovery.last_committed, 500);
    assert_eq!(recovery.torn_tail.map(|t| t.dropped_records), Some(1), "{mode:?}");
    let records = replay_all(&mut journal, 1);
    assert_eq!(records.len(), 500);
    assert!(records.iter().all(|(s, _, p)| p == &payload_for(*s)));
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn operating_errors_leave_the_writer_usable() {
    let (mut journal, _) = Journal::open(MemStorage::new(), small_config(SyncPolicy::Batch)).expect("open");
    assert!(matches!(
        journal.append(0, b"x"),
        Err(JournalError::ReservedKind(0))
    ));
    assert!(matches!(
        journal.append(0xFFFF, b"x"),
        Err(JournalError::ReservedKind(0xFFFF))
    ));
    assert!(matches!(
        journal.append(1, &[0u8; 1025]),
        Err(JournalError::PayloadTooLarge { .. })
    ));
    for _ in 0..64 {
        journal.append(1, b"x").expect("append");
    }
    assert!(matches!(
        journal.append(1, b"x"),
        Err(JournalError::BatchFull { records_max: 64 })
    ));
    assert_eq!(journal.commit_batch().expect("commit").released_up_to, 64);
    assert!(!journal.is_poisoned());
    assert!(matches!(
        Journal::open(
            MemStorage::new(),
            JournalConfig {
                segment_bytes: 1000,
                ..JournalConfig::default()
            }
        ),
        Err(JournalError::Config(_))
    ));
}

#[test]
fn every_batches_policy_releases_only_after_its_sync() {
    let (mut journal, _) = Journal::open(
        FaultStorage::new(FaultConfig::default()),
        small_config(SyncPolicy::EveryBatches(3)),
    )
    .expect("open");
    let syncs_before = journal.storage().sync_count();
    let mut released = Vec::new();
    for batch in 1..=6u64 {
        journal.append(1, b"abc").expect("append");
        released.push(journal.commit_batch().expect("commit"));
        let _ = batch;
    }
    let up_to: Vec<u64> = released.iter().map(|c| c.released_up_to).collect();
    assert_eq!(up_to, vec![0, 0, 3, 3, 3, 6]);
    assert_eq!(released[3].written_up_to, 4);
    assert_eq!(journal.storage().sync_count() - syncs_before, 2);
    journal.append(1, b"abc").expect("append");
    journal.commit_batch().expect("commit");
    assert_eq!(journal.sync().expect("sync").released_up_to, 7);
}

#[test]
fn eio_on_sync_poisons_and_never_releases() {
    let mut storage = FaultStorage::new(FaultConfig::default());
    let (mut journal, _) = Journal::open(&mut storage, small_config(SyncPolicy::Batch)).expect("open");
    journal.append(1, b"first").expect("append");
    assert_eq!(journal.commit_batch().expect("commit").released_up_to, 1);
    let _ = journal.into_storage();
    let syncs = storage.sync_count();
    storage.set_faults(FaultConfig {
        sync_eio_from: Some(syncs),
        create_enospc_from: None,
    });
    let (mut journal, _) = Journal::open(&mut storage, small_config(SyncPolicy::Batch)).expect("open");
    journal.append(1, b"second").expect("append");
    let error = journal.commit_batch().expect_err("EIO");
    assert!(matches!(error, JournalError::Storage(_)), "{error}");
    assert!(journal.is_poisoned());
    assert_eq!(journal.committed().released_up_to, 1);
    assert!(matches!(journal.append(1, b"third"), Err(JournalError::Poisoned)));
    assert!(matches!(journal.commit_batch(), Err(JournalError::Poisoned)));
    assert!(matches!(journal.sync(), Err(JournalError::Poisoned)));
}

#[test]
fn enospc_on_a_new_segment_is_fatal() {
    let storage = FaultStorage::new(FaultConfig {
        sync_eio_from: None,
        create_enospc_from: Some(1),
    });
    let (mut journal, _) = Journal::open(storage, small_config(SyncPolicy::Batch)).expect("open");
    let error = loop {
        match journal.append(1, &[7u8; 1000]) {
            Ok(_) => {
                journal.commit_batch().expect("commit");
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            error,
            JournalError::Storage(bourse_journal::StorageError::NoSpace { .. })
        ),
        "{error}"
    );
    assert!(matches!(journal.append(1, b"x"), Err(JournalError::Poisoned)));
    let released = journal.committed().released_up_to;
    let (mut journal, recovery) =
        Journal::open(journal.into_storage().crash(1), small_config(SyncPolicy::Batch)).expect("recover");
    assert_eq!(recovery.last_committed, released);
    assert_eq!(replay_all(&mut journal, 1).len() as u64, released);
}

#[test]
fn replay_stops_at_a_visitor_error() {
    let (mut journal, _) = Journal::open(MemStorage::new(), small_config(SyncPolicy::None)).expect("open");
    for _ in 0..10 {
        journal.append(1, b"r").expect("append");
    }
    journal.commit_batch().expect("commit");
    let mut seen = 0;
    let result = journal.replay_from(1, |r| {
        seen += 1;
        if r.sequence == 4 { Err("mismatch") } else { Ok(()) }
    });
    assert!(matches!(result, Err(ReplayError::Visitor("mismatch"))));
    assert_eq!(seen, 4);
}

#[test]
fn reopening_with_another_segment_size_keeps_each_segment_within_its_own_size() {
    let mut storage = MemStorage::new();
    let mut sequence = 0u64;
    for segment_kib in [16u64, 8, 32, 8] {
        let config = JournalConfig {
            segment_bytes: segment_kib << 10,
            ..small_config(SyncPolicy::Batch)
        };
        let (mut journal, recovery) = Journal::open(storage, config).expect("open");
        assert_eq!(recovery.last_committed, sequence);
        for _ in 0..100 {
            sequence += 1;
            append_numbered(&mut journal, sequence);
            if sequence.is_multiple_of(4) {
                journal.commit_batch().expect("commit");
            }
        }
        journal.commit_batch().expect("commit");
        storage = journal.into_storage();
    }
    let (mut journal, recovery) = Journal::open(storage, small_config(SyncPolicy::Batch)).expect("open");
    assert_eq!(recovery.last_committed, sequence);
    let records = replay_all(&mut journal, 1);
    assert_eq!(records.len() as u64, sequence);
    assert!(records.iter().all(|(s, _, p)| p == &payload_for(*s)));
}

#[test]
fn a_reader_trusting_the_writers_batches_reads_and_seeks_without_scanning() {
    for mode in [WriteMode::WriteCalls, WriteMode::Mapped] {
        let dir = temp_dir(&format!("trust-{mode:?}"));
        let config = small_config(SyncPolicy::None);
        let (mut journal, _) =
            Journal::open(MmapStorage::open_with(&dir, mode).expect("dir"), config).expect("open");
        let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("ro")).expect("reader");
        let mut batches = 0;
        for round in 0..40u64 {
            for _ in 0..(round % 5 + 1) * 7 {
                let sequence = journal.next_sequence();
                append_numbered(&mut journal, sequence);
            }
            journal.commit_batch().expect("commit");
            let batch = journal.last_committed_batch().expect("a batch");
            assert!(reader.trust_committed(&batch).expect("trust"));
            assert!(
                !reader.trust_committed(&batch).expect("trust again"),
                "no move the second time"
            );
            assert_eq!(reader.committed_up_to(), batch.last_sequence);
            batches += 1;
        }
        assert!(
            batches > 0 && journal.storage().dir().read_dir().expect("ls").count() > 3,
            "several segments"
        );
        let last = journal.next_sequence() - 1;
        // Seek anywhere (the index holds batch starts) and read on to the end, in order, exact payloads.
        for target in [1, 2, 77, last / 2, last - 3, last] {
            reader.seek(target).expect("seek");
            let mut expected = target;
            while let Some(record) = reader.next_record().expect("read") {
                assert_eq!(record.sequence, expected);
                assert_eq!(record.payload, payload_for(expected).as_slice());
                expected += 1;
            }
            assert_eq!(expected, last + 1, "read to the end from {target}");
        }
        // Records appended but not committed stay invisible; trusting stops at the commit.
        journal.append(1, b"open").expect("append");
        reader.seek(last).expect("seek");
        assert_eq!(
            reader.next_record().expect("read").map(|r| r.sequence),
            Some(last)
        );
        assert!(reader.next_record().expect("read").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A mapped journal (sync `none`) of records 1..=3000, committed 10 at a time.
fn mapped_journal_of_3000(name: &str) -> (std::path::PathBuf, Journal<MmapStorage>) {
    let dir = temp_dir(name);
    let (mut journal, _) = Journal::open(
        MmapStorage::open_with(&dir, WriteMode::Mapped).expect("dir"),
        small_config(SyncPolicy::None),
    )
    .expect("open");
    for sequence in 1..=3000u64 {
        append_numbered(&mut journal, sequence);
        if sequence % 10 == 0 {
            journal.commit_batch().expect("commit");
        }
    }
    (dir, journal)
}

#[test]
fn a_forked_reader_goes_on_from_the_same_record_and_moves_on_its_own() {
    let (dir, mut journal) = mapped_journal_of_3000("fork");
    let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("ro")).expect("reader");
    for expected in 1..=1234u64 {
        assert_eq!(
            reader.next_record().expect("read").map(|r| r.sequence),
            Some(expected)
        );
    }
    let mut fork = reader.fork(MmapStorage::open_read_only(&dir).expect("ro"));
    // Both go on from 1235, independently.
    for expected in 1235..=1300u64 {
        let record = fork.next_record().expect("read").expect("a record");
        assert_eq!(
            (record.sequence, record.payload),
            (expected, payload_for(expected).as_slice())
        );
    }
    assert_eq!(
        reader.next_record().expect("read").map(|r| r.sequence),
        Some(1235)
    );
    // The fork tails the writer: a later batch shows once committed, trusted or scanned.
    for sequence in 3001..=3005u64 {
        append_numbered(&mut journal, sequence);
    }
    fork.seek(2999).expect("seek");
    let seen: Vec<u64> =
        std::iter::from_fn(|| fork.next_record().expect("read").map(|r| r.sequence)).collect();
    assert_eq!(seen, vec![2999, 3000], "an open batch stays invisible");
    journal.commit_batch().expect("commit");
    let batch = journal.last_committed_batch().expect("a batch");
    assert!(fork.trust_committed(&batch).expect("trust"));
    let seen: Vec<u64> =
        std::iter::from_fn(|| fork.next_record().expect("read").map(|r| r.sequence)).collect();
    assert_eq!(seen, (3001..=3005).collect::<Vec<_>>());
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_with_a_trusted_prefix_starts_after_the_last_commit_and_tails_the_writer() {
    // Enough records to roll segments, so the position is not in the first one.
    let (dir, mut journal) = mapped_journal_of_3000("trusted-prefix");
    let (segment_id, offset) = journal.committed_at();
    assert!(segment_id > 1, "the journal rolled");
    let mut reader = Reader::with_trusted_prefix(
        MmapStorage::open_read_only(&dir).expect("ro"),
        segment_id,
        offset,
        3000,
    )
    .expect("reader");
    assert!(
        reader.next_record().expect("read").is_none(),
        "nothing after the commit yet"
    );
    for sequence in 3001..=3025u64 {
        append_numbered(&mut journal, sequence);
        if sequence % 10 == 0 {
            journal.commit_batch().expect("commit");
        }
    }
    // Two committed batches are seen (scanned and checked), the open one is not.
    let seen: Vec<(u64, Vec<u8>)> = std::iter::from_fn(|| {
        reader
            .next_record()
            .expect("read")
            .map(|r| (r.sequence, r.payload.to_vec()))
    })
    .collect();
    let expected: Vec<(u64, Vec<u8>)> = (3001..=3020).map(|s| (s, payload_for(s))).collect();
    assert_eq!(seen, expected);
    assert!(
        Reader::with_trusted_prefix(MmapStorage::open_read_only(&dir).expect("ro"), 999_999, 0, 1).is_err(),
        "an unknown segment is refused"
    );
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One writer per directory: a second writable open (another `boursed` on the same journal, say) is
/// refused before it changes anything, while readers and the checkpoint storage open beside the writer;
/// once the writer is gone (closed, or its process dead) the directory opens for writing again.
#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_directory() {
    let dir = temp_dir("second-writer");
    let config = small_config(SyncPolicy::Batch);
    let (mut journal, _) = Journal::open(MmapStorage::open(&dir).expect("dir"), config).expect("open");
    for sequence in 1..=20 {
        append_numbered(&mut journal, sequence);
    }
    journal.commit_batch().expect("commit");
    // The writer's spare segment is a temporary file that a writer's open would remove.
    let files = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let before = files(&dir);
    for mode in [WriteMode::Mapped, WriteMode::WriteCalls] {
        match MmapStorage::open_with(&dir, mode) {
            Err(bourse_journal::StorageError::InUse(named)) => {
                assert_eq!(std::path::Path::new(&named), dir.as_path());
            }
            other => panic!("a second writer opened: {other:?}"),
        }
    }
    assert_eq!(files(&dir), before, "the refused open changed nothing");
    let mut reader = Reader::new(MmapStorage::open_read_only(&dir).expect("reader")).expect("reader");
    let mut read = 0;
    while reader.next_record().expect("read").is_some() {
        read += 1;
    }
    assert_eq!(read, 20);
    MmapStorage::open_for_checkpoints(&dir).expect("the checkpoint storage opens beside the writer");

    drop(journal);
    let (journal, recovery) = Journal::open(
        MmapStorage::open(&dir).expect("the directory is free again"),
        config,
    )
    .expect("open");
    assert_eq!(recovery.last_committed, 20);
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}
