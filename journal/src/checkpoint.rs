//! Checkpoints: an opaque snapshot blob at sequence N, written atomically; the newest K are kept.
//!
//! # Protocol
//! 1. write `checkpoint-{N:020}.ckp.tmp` (header, blob, CRC32C trailer: see `docs/journal.md`),
//! 2. `fsync` it, 3. rename it to `checkpoint-{N:020}.ckp`, 4. `fsync` the directory,
//! 5. remove checkpoints beyond the newest K and stale temporaries, `fsync` the directory.
//!
//! A crash at any point leaves every earlier checkpoint intact (nothing touches them before step 5, and
//! step 5 runs only once the new one is durable). Loading lists the checkpoint files newest first and
//! returns the first whose CRC is valid, so a torn or half-renamed new file is skipped.

use crate::JournalError;
use crate::format;
use crate::storage::Storage;

const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".ckp";
const TEMP_SUFFIX: &str = ".ckp.tmp";

/// A loaded checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The journal sequence the snapshot was taken at (replay from `sequence + 1`).
    pub sequence: u64,
    /// The snapshot, as given to `write`.
    pub blob: Vec<u8>,
    /// Newer checkpoint files that were skipped because they are invalid (torn, damaged).
    pub skipped_invalid: u32,
}

/// File name of the checkpoint at `sequence`.
pub fn file_name(sequence: u64) -> String {
    format!("{PREFIX}{sequence:020}{SUFFIX}")
}

fn parse(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Sequences of the checkpoint files present (valid or not), ascending.
///
/// # Errors
/// Storage errors.
pub fn list<S: Storage>(storage: &mut S) -> Result<Vec<u64>, JournalError> {
    let mut sequences: Vec<u64> = storage.file_names()?.iter().filter_map(|n| parse(n)).collect();
    sequences.sort_unstable();
    Ok(sequences)
}

/// Writes the checkpoint at `sequence` atomically and prunes to the newest `kept` (see the module header).
///
/// # Errors
/// Storage errors (earlier checkpoints stay usable).
pub fn write<S: Storage>(storage: &mut S, sequence: u64, blob: &[u8], kept: u32) -> Result<(), JournalError> {
    assert!(kept > 0, "at least one checkpoint must be kept");
    let name = file_name(sequence);
    let temp = format!("{PREFIX}{sequence:020}{TEMP_SUFFIX}");
    storage.write_file(&temp, &format::encode_checkpoint(sequence, blob))?;
    storage.sync_file(&temp)?;
    storage.rename_file(&temp, &name)?;
    storage.sync_dir()?;
    let sequences = list(storage)?;
    let mut removed = false;
    for &old in sequences.iter().rev().skip(kept as usize) {
        storage.remove_file(&file_name(old))?;
        removed = true;
    }
    for name in storage.file_names()? {
        if name.starts_with(PREFIX) && name.ends_with(TEMP_SUFFIX) {
            storage.remove_file(&name)?;
            removed = true;
        }
    }
    if removed {
        storage.sync_dir()?;
    }
    Ok(())
}

/// Loads the newest valid checkpoint, skipping invalid newer ones.
///
/// # Errors
/// Storage errors.
pub fn load_newest<S: Storage>(storage: &mut S) -> Result<Option<Checkpoint>, JournalError> {
    let mut skipped_invalid = 0;
    for &sequence in list(storage)?.iter().rev() {
        let Some(bytes) = storage.read_file(&file_name(sequence))? else {
            continue;
        };
        match format::decode_checkpoint(&bytes) {
            Some((stored, blob)) if stored == sequence => {
                return Ok(Some(Checkpoint {
                    sequence,
                    blob: blob.to_vec(),
                    skipped_invalid,
                }));
            }
            _ => skipped_invalid += 1,
        }
    }
    Ok(None)
}
