//! Corruption of committed data versus a torn tail: bit flips and zeroed 512 B / 4 KiB blocks, mid-log
//! (always detected, with the segment and offset of the damaged record) and in the last batch (always
//! repaired as a torn tail). `verify` must agree with recovery in every case.

use bourse_journal::{
    FaultConfig, FaultStorage, Journal, JournalConfig, JournalError, RawRecord, ReplayError, SplitMix64,
    SyncPolicy, verify, walk,
};

/// What `Journal::open_replay` returns over a `FaultStorage`.
type OpenReplay = Result<(Journal<FaultStorage>, bourse_journal::Recovery, u64), ReplayError<()>>;

/// Opens with `open_replay(1, ..)`; returns the result and the sequences visited.
fn open_replay_all(storage: FaultStorage) -> (OpenReplay, Vec<u64>) {
    let mut seen = Vec::new();
    let result = Journal::open_replay(storage, config(), 1, |r| {
        seen.push(r.sequence);
        Ok::<(), ()>(())
    });
    (result, seen)
}

fn config() -> JournalConfig {
    JournalConfig {
        segment_bytes: 8 << 10,
        payload_bytes_max: 1024,
        batch_records_max: 256,
        sync_policy: SyncPolicy::Batch,
        checkpoints_kept: 2,
    }
}

/// A journal of 40 batches over several segments; the last batch is large (over 8 KiB) and spans a
/// segment boundary, so that blocks of 4 KiB fit inside it.
fn build() -> FaultStorage {
    let (mut journal, _) = Journal::open(FaultStorage::new(FaultConfig::default()), config()).expect("open");
    for batch in 0..40u64 {
        let records = if batch == 39 { 90 } else { 3 + batch % 5 };
        for _ in 0..records {
            let sequence = journal.next_sequence();
            let len = (sequence * 41 % 120) as usize;
            journal.append(1, &vec![sequence as u8 | 1; len]).expect("append");
        }
        journal.commit_batch().expect("commit");
    }
    journal.into_storage()
}

/// Every record's (segment, offset, bytes on disk, sequence, is-commit), in stream order.
fn layout(storage: &mut FaultStorage) -> Vec<(u64, u64, u64, u64, bool)> {
    let mut out = Vec::new();
    walk(storage, |r: RawRecord<'_>| {
        let bytes = bourse_journal::format::record_bytes(r.payload.len() as u32);
        out.push((r.segment_id, r.offset, bytes, r.sequence, r.commit.is_some()));
    })
    .expect("walk");
    out
}

/// Index in `layout` of the first record of the last batch.
fn last_batch_start(layout: &[(u64, u64, u64, u64, bool)]) -> usize {
    let commits: Vec<usize> = layout
        .iter()
        .enumerate()
        .filter(|(_, r)| r.4)
        .map(|(i, _)| i)
        .collect();
    commits[commits.len() - 2] + 1
}

fn expect_corruption(mut storage: FaultStorage, segment_id: u64, offset: u64, what: &str) {
    match verify(&mut storage) {
        Err(JournalError::Corruption {
            segment_id: s,
            offset: o,
            ..
        }) => {
            assert_eq!(
                (s, o),
                (segment_id, offset),
                "{what}: verify names the damaged record"
            )
        }
        other => panic!("{what}: verify should report corruption, got {other:?}"),
    }
    let (replayed, seen) = open_replay_all(storage.clone());
    match replayed {
        Err(ReplayError::Journal(JournalError::Corruption {
            segment_id: s,
            offset: o,
            ..
        })) => assert_eq!((s, o), (segment_id, offset), "{what}: open_replay"),
        Err(other) => panic!("{what}: open_replay: expected corruption, got {other:?}"),
        Ok((_, recovery, _)) => panic!("{what}: open_replay: corruption not detected: {recovery:?}"),
    }
    // What it visited before finding the damage: whole committed batches, in order, from 1.
    assert!(
        seen.iter().enumerate().all(|(i, &s)| s == i as u64 + 1),
        "{what}: open_replay visited {seen:?}"
    );
    match Journal::open(storage, config()) {
        Err(JournalError::Corruption {
            segment_id: s,
            offset: o,
            reason,
        }) => {
            assert_eq!((s, o), (segment_id, offset), "{what}: {reason}")
        }
        Err(other) => panic!("{what}: expected corruption, got {other}"),
        Ok((_, recovery)) => panic!("{what}: corruption not detected: {recovery:?}"),
    }
}

fn expect_torn_tail(mut storage: FaultStorage, last_good: u64, what: &str) {
    let report = verify(&mut storage).unwrap_or_else(|e| panic!("{what}: verify: {e}"));
    assert_eq!(report.last_committed, last_good, "{what}");
    assert!(report.torn_tail.is_some(), "{what}: verify reports the torn tail");
    let (replayed, seen) = open_replay_all(storage.clone());
    let (_, replay_recovery, visited) = replayed.unwrap_or_else(|e| panic!("{what}: open_replay: {e:?}"));
    assert_eq!(replay_recovery.last_committed, last_good, "{what}");
    assert_eq!(visited, last_good, "{what}");
    assert_eq!(
        seen,
        (1..=last_good).collect::<Vec<_>>(),
        "{what}: only committed records"
    );
    let (mut journal, recovery) = Journal::open(storage, config()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(recovery, replay_recovery, "{what}");
    assert_eq!(recovery.last_committed, last_good, "{what}");
    let torn = recovery
        .torn_tail
        .unwrap_or_else(|| panic!("{what}: no torn tail reported"));
    assert!(torn.dropped_bytes > 0, "{what}");
    // Repaired: appending works and a reopen is clean.
    journal.append(1, b"after repair").expect("append");
    journal.commit_batch().expect("commit");
    let (_, again) = Journal::open(journal.into_storage(), config()).expect("reopen");
    assert_eq!(again.last_committed, last_good + 1);
    assert_eq!(
        again.torn_tail, None,
        "{what}: the repair was durable and complete"
    );
}

#[test]
fn the_clean_journal_verifies() {
    let mut storage = build();
    let report = verify(&mut storage).expect("verify");
    assert_eq!(report.batches, 40);
    assert_eq!(report.torn_tail, None);
    assert!(report.segments >= 3, "{report:?}");
}

#[test]
fn bit_flips_mid_log_are_corruption() {
    let pristine = build();
    let records = layout(&mut pristine.clone());
    let last_start = last_batch_start(&records);
    let mut rng = SplitMix64::new(7);
    for trial in 0..300 {
        let (segment_id, offset, bytes, _, _) = records[rng.below(last_start as u64) as usize];
        let byte = offset + rng.below(bytes);
        let mut storage = pristine.clone();
        storage.flip_bit(segment_id, byte, rng.below(8) as u8);
        expect_corruption(
            storage,
            segment_id,
            offset,
            &format!("trial {trial}: flip at {segment_id}:{byte}"),
        );
    }
}

#[test]
fn flipped_segment_header_mid_log_is_corruption() {
    let pristine = build();
    let records = layout(&mut pristine.clone());
    let second_segment = records
        .iter()
        .map(|r| r.0)
        .find(|&s| s != records[0].0)
        .expect("two segments");
    for byte in [0u64, 9, 17, 30, 61] {
        let mut storage = pristine.clone();
        storage.flip_bit(second_segment, byte, 3);
        expect_corruption(storage, second_segment, 0, &format!("header byte {byte}"));
    }
}

#[test]
fn zeroed_blocks_mid_log_are_corruption() {
    let pristine = build();
    let records = layout(&mut pristine.clone());
    let last_start = last_batch_start(&records);
    let (last_segment, last_offset, ..) = records[last_start];
    for block in [512u64, 4096] {
        for (segment_id, offset, _, _, _) in records[..last_start].iter().copied() {
            let start = (offset / block) * block;
            if start < 64 || (segment_id == last_segment && start + block > last_offset) {
                continue; // the header, or a block reaching into the last batch
            }
            let mut storage = pristine.clone();
            storage.zero(segment_id, start, block);
            // The first record touched by the block is where the scan stops.
            let first_hit = records
                .iter()
                .find(|r| r.0 == segment_id && r.1 + r.2 > start)
                .map(|r| r.1)
                .expect("a record in the block");
            expect_corruption(
                storage,
                segment_id,
                first_hit,
                &format!("{block} B block at {segment_id}:{start}"),
            );
        }
    }
}

#[test]
fn damage_in_the_last_batch_is_a_torn_tail() {
    let pristine = build();
    let records = layout(&mut pristine.clone());
    let last_start = last_batch_start(&records);
    let last_good = records[last_start - 1].3;
    let mut rng = SplitMix64::new(11);
    for trial in 0..100 {
        let (segment_id, offset, bytes, _, _) =
            records[last_start + rng.below((records.len() - last_start) as u64) as usize];
        let byte = offset + rng.below(bytes);
        let mut storage = pristine.clone();
        storage.flip_bit(segment_id, byte, rng.below(8) as u8);
        expect_torn_tail(
            storage,
            last_good,
            &format!("trial {trial}: flip at {segment_id}:{byte}"),
        );
    }
    for block in [512u64, 4096] {
        for (segment_id, offset, bytes, ..) in records[last_start..].iter().copied() {
            // A block that starts inside this record (so it hits the last batch, not the one before).
            let start = offset.div_ceil(block) * block;
            if start >= offset + bytes {
                continue;
            }
            let mut storage = pristine.clone();
            storage.zero(
                segment_id,
                start.max(64),
                block.min(config().segment_bytes - start.max(64)),
            );
            expect_torn_tail(
                storage,
                last_good,
                &format!("{block} B block at {segment_id}:{start}"),
            );
        }
    }
}
