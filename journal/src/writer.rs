//! The single writer: [`Journal::open`] (recovery, then ready to append), [`Journal::append`],
//! [`Journal::commit_batch`] (group commit), checkpoints and replay.
//!
//! # Durability contract
//! Records become *released* only through [`Journal::commit_batch`] (or [`Journal::sync`]): the returned
//! [`Committed::released_up_to`] is the highest sequence whose outcome may be shown to anyone. What
//! "released" survives depends on [`SyncPolicy`]:
//! - `Batch` (default): the batch and its commit record are synced (`fdatasync` or `msync`, per the
//!   storage's write mode) before `commit_batch` returns: survives a process crash, an OS crash and a
//!   power loss.
//! - `EveryBatches(n)`: one sync every `n` batches; `released_up_to` only moves when a sync completes, so
//!   the promise is the same as `Batch`, with fewer syncs and later releases.
//! - `None`: no sync; released once handed to the kernel (`Storage::flush`, done at every commit).
//!   Survives a process crash (the page cache keeps the pages), not an OS crash or power loss.
//!
//! # Fail-stop
//! Any storage error while appending, rolling or syncing poisons the writer: that call and every later
//! one return an error ([`JournalError::Poisoned`] after the first). Nothing is retried.
//!
//! # Hot path
//! `append` and `commit_batch` do not allocate: they encode a 24-byte header on the stack and copy into the
//! storage. Rolling to a new segment (preallocate + zero-fill) happens inline when a segment is full.

use crate::JournalError;
use crate::checkpoint::{self, Checkpoint};
use crate::format::{
    self, COMMIT_PAYLOAD_BYTES, CommitPayload, KIND_COMMIT, KIND_INVALID, KIND_RESERVED_MIN,
    KIND_SEGMENT_END, RecordHeader, SEGMENT_END_RECORD_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::reader::Record;
use crate::scan;
use crate::storage::Storage;

/// Default segment size: 64 MiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Default largest payload: 64 KiB.
pub const PAYLOAD_BYTES_MAX_DEFAULT: u32 = 64 << 10;
/// Default largest batch: 65 536 records.
pub const BATCH_RECORDS_MAX_DEFAULT: u32 = 1 << 16;
/// Default number of checkpoints kept.
pub const CHECKPOINTS_KEPT_DEFAULT: u32 = 3;
/// Segment sizes are multiples of this (the page size).
pub const SEGMENT_ALIGN_BYTES: u64 = 4096;

/// When the writer syncs (see the module header for what each promises).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// One sync per batch, before it is released (group commit). Survives power loss.
    #[default]
    Batch,
    /// One sync every `n` batches; batches are released only when that sync completes.
    EveryBatches(u32),
    /// Never sync; released when in the mapping. Survives a process crash only.
    None,
}

/// The journal's configuration; every limit is named here.
#[derive(Clone, Copy, Debug)]
pub struct JournalConfig {
    /// Size of each segment file (a multiple of 4096).
    pub segment_bytes: u64,
    /// Largest payload accepted by `append`.
    pub payload_bytes_max: u32,
    /// Largest number of records in one batch.
    pub batch_records_max: u32,
    /// When to sync.
    pub sync_policy: SyncPolicy,
    /// How many checkpoints to keep (the newest ones).
    pub checkpoints_kept: u32,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            payload_bytes_max: PAYLOAD_BYTES_MAX_DEFAULT,
            batch_records_max: BATCH_RECORDS_MAX_DEFAULT,
            sync_policy: SyncPolicy::Batch,
            checkpoints_kept: CHECKPOINTS_KEPT_DEFAULT,
        }
    }
}

impl JournalConfig {
    /// Checks the relations between the limits.
    ///
    /// # Errors
    /// [`JournalError::Config`] naming the broken relation.
    pub fn validate(&self) -> Result<(), JournalError> {
        let needed = SEGMENT_HEADER_BYTES as u64
            + format::record_bytes(self.payload_bytes_max)
            + format::record_bytes(COMMIT_PAYLOAD_BYTES)
            + SEGMENT_END_RECORD_BYTES as u64;
        if !self.segment_bytes.is_multiple_of(SEGMENT_ALIGN_BYTES) || self.segment_bytes < needed {
            return Err(JournalError::Config(format!(
                "segment_bytes {} must be a multiple of {SEGMENT_ALIGN_BYTES} and at least {needed}",
                self.segment_bytes
            )));
        }
        if self.payload_bytes_max > format::PAYLOAD_BYTES_MAX {
            return Err(JournalError::Config(format!(
                "payload_bytes_max over {}",
                format::PAYLOAD_BYTES_MAX
            )));
        }
        if self.batch_records_max == 0 || self.checkpoints_kept == 0 {
            return Err(JournalError::Config(
                "batch_records_max and checkpoints_kept must be > 0".into(),
            ));
        }
        if let SyncPolicy::EveryBatches(0) = self.sync_policy {
            return Err(JournalError::Config("EveryBatches(0)".into()));
        }
        Ok(())
    }
}

/// What a commit released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Every record up to this sequence may be released (replies, market data), per the sync policy.
    pub released_up_to: u64,
    /// Every record up to this sequence is committed in the mapping (may be ahead of `released_up_to`
    /// under `EveryBatches`).
    pub written_up_to: u64,
}

/// A torn tail that recovery cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Segment where the log now ends.
    pub segment_id: u64,
    /// Offset in that segment where the log now ends (the cut).
    pub offset: u64,
    /// Valid records of an unfinished batch that were dropped.
    pub dropped_records: u64,
    /// Non-zero bytes after the cut that were zeroed or removed (with later segments).
    pub dropped_bytes: u64,
    /// Later segments removed.
    pub removed_segments: u32,
}

/// What [`Journal::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Sequence of the first record in the journal.
    pub first_sequence: u64,
    /// Last committed sequence (`first_sequence - 1` if the journal is empty).
    pub last_committed: u64,
    /// Committed records found.
    pub records: u64,
    /// Committed batches found.
    pub batches: u64,
    /// Segments after recovery.
    pub segments: u32,
    /// The torn tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
}

/// The journal's single writer over a [`Storage`].
#[derive(Debug)]
pub struct Journal<S: Storage> {
    storage: S,
    config: JournalConfig,
    /// Segment being written, its size (segments written under another config keep theirs) and the
    /// write offset in it.
    segment_id: u64,
    segment_bytes: u64,
    offset: u64,
    next_sequence: u64,
    first_sequence: u64,
    batch_first_sequence: u64,
    batch_records: u32,
    batch_crc: u32,
    written_up_to: u64,
    released_up_to: u64,
    /// Start of the bytes of the current segment not yet synced.
    unsynced_offset: u64,
    batches_since_sync: u32,
    poisoned: bool,
    /// Oldest segment left without a sync at a roll (policy `None`), which `sync()` must cover.
    oldest_unsynced_segment: Option<u64>,
    /// Segment id and offset just after the last commit record (where a reader's trusted prefix ends).
    committed_at: (u64, u64),
    /// Where the open batch's first record starts.
    batch_first_at: (u64, u64),
    /// The last batch committed by this writer.
    last_batch: Option<CommittedBatch>,
    /// Segments whose first record starts a batch, ascending: where the journal may be cut when older
    /// segments are archived ([`Journal::archive_before`]).
    aligned_segments: Vec<u64>,
}

/// Where a batch this writer committed lies: what an in-process [`crate::Reader`] needs to trust it
/// without re-reading it ([`crate::Reader::trust_committed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedBatch {
    /// The batch's first record (a seek target: sequence, segment, offset of its header).
    pub first: crate::IndexEntry,
    /// Segment holding the batch's commit record.
    pub end_segment_id: u64,
    /// Offset just after the commit record.
    pub end_offset: u64,
    /// Sequence of the batch's last record.
    pub last_sequence: u64,
}

/// A batch starts in a new segment when less than this fraction of its segment would be left.
const ROLL_SLACK_DIVISOR: u64 = 32;

/// Zeroes used to cut a torn tail.
const ZEROES: [u8; 4096] = [0u8; 4096];

impl<S: Storage> Journal<S> {
    /// Opens the journal in `storage`: recovers (cutting a torn tail durably), tells the storage whether
    /// the sync policy syncs (`Storage::choose_write_mode`: [`crate::WriteMode::Auto`] picks its write path
    /// here), then is ready to append after the last committed record.
    ///
    /// # Errors
    /// [`JournalError::Corruption`] if committed data is damaged (nothing is changed then);
    /// [`JournalError::Config`]; storage errors.
    pub fn open(mut storage: S, config: JournalConfig) -> Result<(Journal<S>, Recovery), JournalError> {
        config.validate()?;
        let ids = storage.segment_ids()?;
        let scan = scan::recovery_scan(&storage, ids).map_err(JournalError::from_corruption)?;
        Journal::finish_open(storage, config, scan)
    }

    /// [`Journal::open`] and [`Journal::replay_from`]`(from_sequence, visit)` in one pass over the
    /// files: each batch is visited as soon as recovery has checked its commit record, while its bytes
    /// are still in the CPU cache, instead of reading the whole journal a second time. Returns the
    /// journal, what recovery found, and the number of records visited. (Load the checkpoint first with
    /// [`checkpoint::load_newest`] on the storage to know `from_sequence`.)
    ///
    /// Only committed batches are visited, in order, each whole. But recovery decides whether damage is
    /// a torn tail or corruption only at the end of the scan: if this returns an error, the visitor may
    /// already have seen records (all of them committed and checked, before the damage); discard what
    /// it built.
    ///
    /// # Errors
    /// As [`Journal::open`], in [`ReplayError::Journal`]; [`ReplayError::Visitor`] with the visitor's
    /// error (the open stops there and the storage is dropped unchanged).
    pub fn open_replay<E>(
        mut storage: S,
        config: JournalConfig,
        from_sequence: u64,
        mut visit: impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<(Journal<S>, Recovery, u64), ReplayError<E>> {
        config.validate().map_err(ReplayError::Journal)?;
        let ids = storage
            .segment_ids()
            .map_err(|e| ReplayError::Journal(e.into()))?;
        let mut visited = 0u64;
        let on_batch = |storage: &S, ids: &[u64], start: scan::Cursor, commit_at: scan::Cursor| {
            visited += scan::visit_checked(storage, ids, start, commit_at, from_sequence, &mut visit)
                .map_err(|e| e.map_err(changed_underneath))?;
            Ok(())
        };
        let scan = scan::recovery_scan_visiting(&storage, ids, on_batch).map_err(|e| match e {
            scan::ScanError::Corruption(c) => ReplayError::Journal(JournalError::from_corruption(c)),
            scan::ScanError::Visitor(Ok(e)) => ReplayError::Visitor(e),
            scan::ScanError::Visitor(Err(e)) => ReplayError::Journal(e),
        })?;
        let (journal, recovery) =
            Journal::finish_open(storage, config, scan).map_err(ReplayError::Journal)?;
        Ok((journal, recovery, visited))
    }

    /// The second half of opening: cuts the torn tail, chooses the write mode, positions the writer.
    fn finish_open(
        mut storage: S,
        config: JournalConfig,
        mut scan: scan::RecoveryScan,
    ) -> Result<(Journal<S>, Recovery), JournalError> {
        let mut torn_tail = None;
        let mut segment_id = 0;
        let mut offset = 0;
        let mut aligned_segments = std::mem::take(&mut scan.aligned);
        if !scan.ids.is_empty() {
            let end = scan.end;
            let removed_from = if end.offset == 0 {
                end.segment_index
            } else {
                end.segment_index + 1
            };
            let removed_segments = (scan.ids.len() - removed_from) as u32;
            if let Some(&first_removed) = scan.ids.get(removed_from) {
                aligned_segments.retain(|&id| id < first_removed);
            }
            if scan.tail_bytes > 0 || removed_segments > 0 {
                for &id in scan.ids[removed_from..].iter().rev() {
                    storage.remove_segment(id)?;
                }
                if end.offset > 0 {
                    let id = scan.ids[end.segment_index];
                    let stop = scan::nonzero_end(storage.segment(id), end.offset);
                    let mut at = end.offset;
                    while at < stop {
                        let chunk = (stop - at).min(ZEROES.len() as u64);
                        storage.write(id, at, &ZEROES[..chunk as usize])?;
                        at += chunk;
                    }
                    storage.sync(id, end.offset, stop - end.offset)?;
                }
                torn_tail = Some(TornTail {
                    segment_id: scan.ids[end.segment_index],
                    offset: end.offset,
                    dropped_records: scan.uncommitted_records,
                    dropped_bytes: scan.tail_bytes,
                    removed_segments,
                });
            }
            if end.offset > 0 {
                segment_id = scan.ids[end.segment_index];
                offset = end.offset;
            }
        }
        storage.choose_write_mode(config.sync_policy != SyncPolicy::None)?;
        let next_sequence = scan.last_committed + 1;
        let mut journal = Journal {
            storage,
            config,
            segment_id,
            segment_bytes: 0,
            offset,
            next_sequence,
            first_sequence: scan.first_sequence,
            batch_first_sequence: 0,
            batch_records: 0,
            batch_crc: 0,
            written_up_to: scan.last_committed,
            released_up_to: scan.last_committed,
            unsynced_offset: offset,
            batches_since_sync: 0,
            poisoned: false,
            committed_at: (segment_id, offset),
            oldest_unsynced_segment: None,
            batch_first_at: (segment_id, offset),
            last_batch: None,
            aligned_segments,
        };
        journal.segment_bytes = journal.storage.segment(segment_id).len() as u64;
        if offset == 0 {
            journal.create_segment(next_sequence)?;
            journal.committed_at = (journal.segment_id, journal.offset);
        }
        let segments = journal.storage.segment_ids()?.len() as u32;
        let recovery = Recovery {
            first_sequence: scan.first_sequence,
            last_committed: scan.last_committed,
            records: scan.records,
            batches: scan.batches,
            segments,
            torn_tail,
        };
        Ok((journal, recovery))
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    /// Sequence number the next appended record will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// What is committed and released so far.
    pub fn committed(&self) -> Committed {
        Committed {
            released_up_to: self.released_up_to,
            written_up_to: self.written_up_to,
        }
    }

    /// Whether a fatal error stopped the writer.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Read access to the storage (tests, tools).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back (the journal is closed without a sync).
    pub fn into_storage(self) -> S {
        self.storage
    }

    fn usable(&self) -> Result<(), JournalError> {
        if self.poisoned {
            Err(JournalError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison<T>(&mut self, error: impl Into<JournalError>) -> Result<T, JournalError> {
        self.poisoned = true;
        Err(error.into())
    }

    fn create_segment(&mut self, id: u64) -> Result<(), JournalError> {
        let header = SegmentHeader {
            first_sequence: id,
            segment_bytes: self.config.segment_bytes,
        }
        .encode();
        if let Err(e) = self
            .storage
            .create_segment(id, self.config.segment_bytes, &header)
        {
            return self.poison(e);
        }
        self.segment_id = id;
        self.segment_bytes = self.config.segment_bytes;
        self.offset = SEGMENT_HEADER_BYTES as u64;
        if self.batch_records == 0 {
            self.aligned_segments.push(id);
        }
        // The first sync of a new segment starts at 0: it makes the header durable too.
        self.unsynced_offset = 0;
        Ok(())
    }

    fn write_record(
        &mut self,
        kind: u16,
        sequence: u64,
        payload: &[u8],
    ) -> Result<RecordHeader, JournalError> {
        let (id, at) = (self.segment_id, self.offset);
        // Header then payload: contiguous, so buffering storages gather them into one write; a mapped
        // storage computes the CRC in the same pass as its copy. The padding after the payload is already
        // zero (segments are zero-filled, cut tails are zeroed).
        match self.storage.write_new_record(id, at, kind, sequence, payload) {
            Ok(header) => {
                self.offset += header.record_bytes();
                Ok(header)
            }
            Err(e) => self.poison(e),
        }
    }

    /// Makes room for `record_bytes` (plus a segment-end record), rolling to a new segment if needed.
    ///
    /// A batch's first record also rolls when it would leave less than [`ROLL_SLACK_DIVISOR`]th of the
    /// segment free (unless the segment is still empty): then a batch rarely spans two segments, and
    /// the segment boundaries are places where the journal can be cut ([`Journal::archive_before`]).
    fn ensure_room(&mut self, record_bytes: u64) -> Result<(), JournalError> {
        let end = self.offset + record_bytes + SEGMENT_END_RECORD_BYTES as u64;
        let slack = if self.batch_records == 0 && self.offset > SEGMENT_HEADER_BYTES as u64 {
            self.segment_bytes / ROLL_SLACK_DIVISOR
        } else {
            0
        };
        if end + slack <= self.segment_bytes {
            return Ok(());
        }
        self.write_record(KIND_SEGMENT_END, self.next_sequence, &[])?;
        if self.config.sync_policy != SyncPolicy::None {
            self.sync_current()?;
        } else if self.oldest_unsynced_segment.is_none() {
            // Left unsynced: `sync()` will have to cover it.
            self.oldest_unsynced_segment = Some(self.segment_id);
        }
        self.create_segment(self.next_sequence)
    }

    fn sync_current(&mut self) -> Result<(), JournalError> {
        let (id, from) = (self.segment_id, self.unsynced_offset);
        if let Err(e) = self.storage.sync(id, from, self.offset - from) {
            return self.poison(e);
        }
        self.unsynced_offset = self.offset;
        Ok(())
    }

    /// Prepares the next segment ahead of time (zero-filled, synced, mapped), so that the next roll
    /// does not write and sync a whole segment inline. Call it when idle (the daemon's journal stage,
    /// when it has no work, e.g. right after `open`). Returns whether anything was done.
    ///
    /// # Errors
    /// Storage errors (ENOSPC): the writer stays usable; the next roll will try again inline.
    pub fn prepare_next_segment(&mut self) -> Result<bool, JournalError> {
        self.usable()?;
        Ok(self.storage.prepare_spare_segment(self.config.segment_bytes)?)
    }

    /// Appends one record to the open batch; returns its sequence number. Not released until
    /// [`Journal::commit_batch`].
    ///
    /// # Errors
    /// Operating errors that leave the writer usable: [`JournalError::ReservedKind`],
    /// [`JournalError::PayloadTooLarge`], [`JournalError::BatchFull`]. Fatal ones that poison it: storage
    /// errors (ENOSPC on a new segment), [`JournalError::Poisoned`].
    pub fn append(&mut self, kind: u16, payload: &[u8]) -> Result<u64, JournalError> {
        self.usable()?;
        if kind == KIND_INVALID || kind >= KIND_RESERVED_MIN {
            return Err(JournalError::ReservedKind(kind));
        }
        if payload.len() as u64 > self.config.payload_bytes_max as u64 {
            return Err(JournalError::PayloadTooLarge {
                bytes: payload.len() as u64,
                max: self.config.payload_bytes_max,
            });
        }
        if self.batch_records >= self.config.batch_records_max {
            return Err(JournalError::BatchFull {
                records_max: self.config.batch_records_max,
            });
        }
        self.ensure_room(format::record_bytes(payload.len() as u32))?;
        let sequence = self.next_sequence;
        if self.batch_records == 0 {
            self.batch_first_at = (self.segment_id, self.offset);
        }
        let header = self.write_record(kind, sequence, payload)?;
        if self.batch_records == 0 {
            self.batch_first_sequence = sequence;
        }
        self.batch_records += 1;
        self.batch_crc = format::batch_crc_append(self.batch_crc, header.crc);
        self.next_sequence += 1;
        Ok(sequence)
    }

    /// Closes the open batch with a commit record and syncs per the policy; returns what may now be
    /// released. An empty batch changes nothing.
    ///
    /// # Errors
    /// Storage errors (EIO on sync, ENOSPC on a new segment) poison the writer: the batch is NOT released
    /// and must never be acknowledged; [`JournalError::Poisoned`] afterwards.
    pub fn commit_batch(&mut self) -> Result<Committed, JournalError> {
        self.usable()?;
        if self.batch_records == 0 {
            return Ok(self.committed());
        }
        self.ensure_room(format::record_bytes(COMMIT_PAYLOAD_BYTES))?;
        let last = self.next_sequence - 1;
        let durable_sequence = match self.config.sync_policy {
            SyncPolicy::None => self.written_up_to,
            SyncPolicy::Batch | SyncPolicy::EveryBatches(_) => self.released_up_to,
        };
        let commit = CommitPayload {
            first_sequence: self.batch_first_sequence,
            record_count: self.batch_records,
            batch_crc: self.batch_crc,
            durable_sequence,
        };
        self.write_record(KIND_COMMIT, last, &commit.encode())?;
        if let Err(e) = self.storage.flush() {
            return self.poison(e);
        }
        self.last_batch = Some(CommittedBatch {
            first: crate::IndexEntry {
                sequence: self.batch_first_sequence,
                segment_id: self.batch_first_at.0,
                offset: self.batch_first_at.1,
            },
            end_segment_id: self.segment_id,
            end_offset: self.offset,
            last_sequence: last,
        });
        self.batch_records = 0;
        self.batch_crc = 0;
        self.batch_first_sequence = 0;
        self.written_up_to = last;
        self.committed_at = (self.segment_id, self.offset);
        self.batches_since_sync += 1;
        match self.config.sync_policy {
            SyncPolicy::None => self.released_up_to = last,
            SyncPolicy::Batch => {
                self.sync()?;
            }
            SyncPolicy::EveryBatches(n) => {
                if self.batches_since_sync >= n {
                    self.sync()?;
                }
            }
        }
        Ok(self.committed())
    }

    /// Syncs everything committed so far and releases it (under `EveryBatches`, to release early).
    ///
    /// # Errors
    /// A storage error poisons the writer.
    pub fn sync(&mut self) -> Result<Committed, JournalError> {
        self.usable()?;
        if let Some(oldest) = self.oldest_unsynced_segment {
            // Segments left unsynced at rolls (policy `None`): sync them whole.
            let ids = match self.storage.segment_ids() {
                Ok(ids) => ids,
                Err(e) => return self.poison(e),
            };
            for id in ids
                .into_iter()
                .filter(|&id| id >= oldest && id != self.segment_id)
            {
                let bytes = self.storage.segment(id).len() as u64;
                if let Err(e) = self.storage.sync(id, 0, bytes) {
                    return self.poison(e);
                }
            }
            self.oldest_unsynced_segment = None;
        }
        self.sync_current()?;
        self.batches_since_sync = 0;
        self.released_up_to = self.written_up_to;
        Ok(self.committed())
    }

    /// Writes a checkpoint (an opaque snapshot blob) at `sequence` atomically and keeps the newest
    /// `checkpoints_kept`. A failure leaves the previous checkpoints usable and the writer unaffected.
    ///
    /// # Errors
    /// Storage errors.
    ///
    /// # Panics
    /// If `sequence` is past what is released (a checkpoint must never be ahead of the journal).
    pub fn write_checkpoint(&mut self, sequence: u64, blob: &[u8]) -> Result<(), JournalError> {
        assert!(
            sequence <= self.released_up_to,
            "checkpoint at {sequence} ahead of the released journal"
        );
        checkpoint::write(&mut self.storage, sequence, blob, self.config.checkpoints_kept)
    }

    /// Loads the newest valid checkpoint (CRC-checked), if any.
    ///
    /// # Errors
    /// Storage errors.
    pub fn load_checkpoint(&mut self) -> Result<Option<Checkpoint>, JournalError> {
        checkpoint::load_newest(&mut self.storage)
    }

    /// Calls `visit` for every committed record with sequence >= `from_sequence`, in order (replay after
    /// a checkpoint). Returns the number of records visited.
    ///
    /// Everything up to the last commit was checked by recovery (or written by this writer), so replay
    /// walks it directly: one segment lookup per segment, no CRC recomputed, no per-record state beyond
    /// the offset; records of an open batch are never visited.
    ///
    /// # Errors
    /// [`ReplayError::Visitor`] with the visitor's error (replay stops there); journal errors.
    pub fn replay_from<E>(
        &mut self,
        from_sequence: u64,
        mut visit: impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<u64, ReplayError<E>> {
        let (end_id, end_offset) = self.committed_at;
        let ids = self
            .storage
            .segment_ids()
            .map_err(|e| ReplayError::Journal(e.into()))?;
        // Segment ids are first sequences: start in the last segment starting at or before the target.
        let first = ids.partition_point(|&id| id <= from_sequence).saturating_sub(1);
        let Some(end) = ids.iter().position(|&id| id == end_id) else {
            return Ok(0);
        };
        let from = scan::Cursor {
            segment_index: first.min(end),
            offset: 0,
        };
        let to = scan::Cursor {
            segment_index: end,
            offset: end_offset,
        };
        scan::visit_checked(&self.storage, &ids, from, to, from_sequence, &mut visit).map_err(|e| match e {
            Ok(e) => ReplayError::Visitor(e),
            Err(at) => ReplayError::Journal(changed_underneath(at)),
        })
    }

    /// The last batch this writer committed (`None` before the first commit since open).
    pub fn last_committed_batch(&self) -> Option<CommittedBatch> {
        self.last_batch
    }

    /// Where the last commit record ends (segment id, offset): a reader made with
    /// [`crate::Reader::with_trusted_prefix`] there reads on from the next batch.
    pub fn committed_at(&self) -> (u64, u64) {
        self.committed_at
    }

    /// Where the writer is (segment id, offset): for tools and tests.
    pub fn position(&self) -> (u64, u64) {
        (self.segment_id, self.offset)
    }

    /// First sequence in the journal.
    pub fn first_sequence(&self) -> u64 {
        self.first_sequence
    }

    /// The sequences of the checkpoints kept, ascending.
    ///
    /// # Errors
    /// Storage errors.
    pub fn checkpoint_sequences(&mut self) -> Result<Vec<u64>, JournalError> {
        crate::checkpoint::list(&mut self.storage)
    }
}

impl Journal<crate::MmapStorage> {
    /// Moves the segments that hold only records before `sequence` into `archive_dir`, so that the
    /// journal directory (and every later open's recovery scan) starts at the last segment boundary at
    /// or before `sequence` where no batch spans two segments (see `ensure_room`: the writer makes such
    /// boundaries the rule). Records from `sequence` on all stay. Also finishes a move a crash
    /// interrupted. See [`crate::MmapStorage::archive_segments`] for the crash-safety argument.
    ///
    /// # Errors
    /// Storage errors (nothing is lost: a failed move leaves a segment where it was, and the marker
    /// already excludes it, or the marker was not written and the journal is unchanged).
    pub fn archive_before(
        &mut self,
        sequence: u64,
        archive_dir: &std::path::Path,
    ) -> Result<crate::ArchivedSegments, JournalError> {
        self.usable()?;
        let limit = sequence.min(self.segment_id);
        let cut = self
            .aligned_segments
            .iter()
            .rev()
            .find(|&&id| id <= limit)
            .copied()
            .unwrap_or(0);
        // Nothing new to cut: only finish a move a crash interrupted, if any.
        let first_kept = if cut > self.first_sequence {
            cut
        } else {
            self.storage.archived_before()
        };
        let done = self.storage.archive_segments(first_kept, archive_dir)?;
        if done.first_kept > self.first_sequence {
            self.first_sequence = done.first_kept;
        }
        self.aligned_segments.retain(|&id| id >= done.first_kept);
        Ok(done)
    }
}

/// The error for checked bytes (segment id, offset) that no longer decode as the record they were.
fn changed_underneath((segment_id, offset): (u64, u64)) -> JournalError {
    JournalError::Corruption {
        segment_id,
        offset,
        reason: "checked record changed underneath the replay".into(),
    }
}

/// An error from [`Journal::replay_from`] and [`Journal::open_replay`].
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading the journal failed.
    #[error("journal: {0}")]
    Journal(JournalError),
    /// The visitor failed.
    #[error("replay visitor failed")]
    Visitor(E),
}

const _: () = assert!(SEGMENT_END_RECORD_BYTES as u64 == format::record_bytes(0));
