//! Checkpoints: atomic write, newest K kept, newest valid loaded; a crash at any step of a checkpoint
//! write (with unsynced data and directory operations lost, kept or torn at random) leaves the previous
//! checkpoint usable, and a completed write is always the one loaded.

use bourse_journal::{
    FaultConfig, FaultStorage, Journal, JournalConfig, MemStorage, SplitMix64, Storage, StorageError,
    checkpoint,
};

/// Delegates to a storage until `budget` operations have run, then fails everything: the process died
/// at that step.
struct DiesAfter<'a> {
    inner: &'a mut FaultStorage,
    budget: u32,
}

impl DiesAfter<'_> {
    fn spend(&mut self) -> Result<(), StorageError> {
        if self.budget == 0 {
            return Err(StorageError::NotFound("process died".into()));
        }
        self.budget -= 1;
        Ok(())
    }
}

impl Storage for DiesAfter<'_> {
    fn segment_ids(&mut self) -> Result<Vec<u64>, StorageError> {
        self.inner.segment_ids()
    }
    fn create_segment(&mut self, id: u64, bytes: u64, header: &[u8]) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.create_segment(id, bytes, header)
    }
    fn remove_segment(&mut self, id: u64) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.remove_segment(id)
    }
    fn segment(&self, id: u64) -> &[u8] {
        self.inner.segment(id)
    }
    fn write(&mut self, id: u64, offset: u64, bytes: &[u8]) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.write(id, offset, bytes)
    }
    fn sync(&mut self, id: u64, offset: u64, bytes: u64) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.sync(id, offset, bytes)
    }
    fn file_names(&mut self) -> Result<Vec<String>, StorageError> {
        self.inner.file_names()
    }
    fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.write_file(name, bytes)
    }
    fn sync_file(&mut self, name: &str) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.sync_file(name)
    }
    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.rename_file(from, to)
    }
    fn remove_file(&mut self, name: &str) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.remove_file(name)
    }
    fn sync_dir(&mut self) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.sync_dir()
    }
    fn read_file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.read_file(name)
    }
}

fn blob(sequence: u64) -> Vec<u8> {
    (0..3000 + sequence as usize % 500)
        .map(|i| (i as u64 * 7 + sequence) as u8)
        .collect()
}

#[test]
fn keeps_the_newest_k_and_loads_the_newest() {
    let mut storage = MemStorage::new();
    assert_eq!(checkpoint::load_newest(&mut storage).expect("load"), None);
    for sequence in [10u64, 20, 30, 40, 50] {
        checkpoint::write(&mut storage, sequence, &blob(sequence), 3).expect("write");
    }
    assert_eq!(checkpoint::list(&mut storage).expect("list"), vec![30, 40, 50]);
    let loaded = checkpoint::load_newest(&mut storage)
        .expect("load")
        .expect("some");
    assert_eq!(
        (loaded.sequence, loaded.blob, loaded.skipped_invalid),
        (50, blob(50), 0)
    );
    // A damaged newest one is skipped.
    storage.file_mut(&checkpoint::file_name(50)).expect("file")[100] ^= 4;
    let loaded = checkpoint::load_newest(&mut storage)
        .expect("load")
        .expect("some");
    assert_eq!((loaded.sequence, loaded.skipped_invalid), (40, 1));
    // A truncated one too.
    storage
        .file_mut(&checkpoint::file_name(40))
        .expect("file")
        .truncate(200);
    let loaded = checkpoint::load_newest(&mut storage)
        .expect("load")
        .expect("some");
    assert_eq!(
        (loaded.sequence, loaded.blob, loaded.skipped_invalid),
        (30, blob(30), 2)
    );
}

#[test]
fn a_crash_at_any_step_leaves_a_usable_checkpoint() {
    let mut rng = SplitMix64::new(3);
    let mut full_steps = None;
    for budget in 0..16u32 {
        for _ in 0..40 {
            let mut storage = FaultStorage::new(FaultConfig::default());
            checkpoint::write(&mut storage, 100, &blob(100), 2).expect("first");
            checkpoint::write(&mut storage, 200, &blob(200), 2).expect("second");
            let completed = {
                let mut dying = DiesAfter {
                    inner: &mut storage,
                    budget,
                };
                checkpoint::write(&mut dying, 300, &blob(300), 2).is_ok()
            };
            if completed && full_steps.is_none() {
                full_steps = Some(budget);
            }
            let mut after = storage.crash(rng.next_u64());
            let loaded = checkpoint::load_newest(&mut after)
                .expect("load")
                .expect("a checkpoint survives");
            assert!(
                loaded.sequence == 200 || loaded.sequence == 300,
                "budget {budget}: loaded {}",
                loaded.sequence
            );
            assert_eq!(loaded.blob, blob(loaded.sequence), "budget {budget}");
            if completed {
                assert_eq!(
                    loaded.sequence, 300,
                    "budget {budget}: a completed write must be loaded"
                );
            }
        }
    }
    assert!(
        full_steps.is_some_and(|steps| steps >= 5),
        "the protocol has at least 5 steps: {full_steps:?}"
    );
}

#[test]
fn journal_checkpoint_then_replay_the_rest() {
    let config = JournalConfig {
        segment_bytes: 8 << 10,
        payload_bytes_max: 1024,
        checkpoints_kept: 3,
        ..JournalConfig::default()
    };
    let (mut journal, _) = Journal::open(MemStorage::new(), config).expect("open");
    for sequence in 1..=200u64 {
        journal.append(2, &sequence.to_le_bytes()).expect("append");
        if sequence % 10 == 0 {
            journal.commit_batch().expect("commit");
        }
        if sequence % 50 == 0 && sequence < 200 {
            journal
                .write_checkpoint(sequence, format!("state at {sequence}").as_bytes())
                .expect("checkpoint");
        }
    }
    let (mut journal, _) = Journal::open(journal.into_storage(), config).expect("reopen");
    let loaded = journal.load_checkpoint().expect("load").expect("some");
    assert_eq!(loaded.sequence, 150);
    assert_eq!(loaded.blob, b"state at 150");
    let mut replayed = Vec::new();
    journal
        .replay_from(loaded.sequence + 1, |r| {
            replayed.push(u64::from_le_bytes(r.payload.try_into().expect("8 bytes")));
            Ok::<(), ()>(())
        })
        .expect("replay");
    assert_eq!(replayed, (151..=200).collect::<Vec<_>>());
    assert_eq!(
        checkpoint::list(&mut journal.into_storage()).expect("list"),
        vec![50, 100, 150]
    );
}
