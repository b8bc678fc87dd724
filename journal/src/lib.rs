//! The journal of bourse: an append-only log of CRC32C-framed records in mmap segments, with group
//! commit, checkpoints and recovery.
//!
//! It is payload-agnostic: it stores bytes with a caller-chosen `kind`; `bourse-book` owns what they
//! mean. See `docs/journal.md` for the byte tables, the durability contract and the recovery rules.
//!
//! # Parts
//! - [`mod@format`]: the on-disk bytes (segment header, record header, commit payload, checkpoint file).
//! - [`storage`]: where bytes live: [`MmapStorage`] (files), [`MemStorage`], [`FaultStorage`] (crash model).
//! - [`Journal`]: the single writer: `open` (recovery; `open_replay`: recovery and replay in one pass) →
//!   `append`* → `commit_batch` (group commit).
//! - [`Reader`]: committed records from any sequence, tailing a live journal through a sparse index.
//! - [`checkpoint`]: snapshot blobs written atomically, the newest K kept.
//! - [`verify`]: a read-only check of a whole journal, for tools.
//!
//! # Invariants
//! - Sequence numbers of caller records go up by one, across batches and segments.
//! - A batch is visible to readers and recovery only with its commit record; recovery never guesses the
//!   end from zeros, and never skips over damaged committed data.
//! - One writer per journal. Unsafe code lives only in `storage::mmap` (mapping files) and `crc` (the
//!   SSE4.2 `crc32` instruction behind a runtime CPU check).

pub mod checkpoint;
mod crc;
pub mod format;
mod reader;
mod scan;
pub mod storage;
mod verify;
mod writer;

pub use checkpoint::Checkpoint;
pub use reader::{INDEX_STRIDE_RECORDS, IndexEntry, Reader, Record};
pub use scan::StopReason;
pub use storage::{
    ARCHIVE_MARKER_NAME, ArchivedSegments, CACHED_SEGMENTS_DEFAULT, FaultConfig, FaultStorage, MemStorage,
    MmapStorage, SplitMix64, Storage, StorageError, WriteMode,
};
pub use verify::{BatchInfo, KindTotals, RawRecord, VerifyReport, verify, walk};
pub use writer::{
    BATCH_RECORDS_MAX_DEFAULT, CHECKPOINTS_KEPT_DEFAULT, Committed, CommittedBatch, Journal, JournalConfig,
    PAYLOAD_BYTES_MAX_DEFAULT, Recovery, ReplayError, SEGMENT_ALIGN_BYTES, SEGMENT_BYTES_DEFAULT, SyncPolicy,
    TornTail,
};

/// An error of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// An earlier fatal error stopped the writer; nothing more may be appended or released.
    #[error("journal writer is poisoned by an earlier fatal error")]
    Poisoned,
    /// Committed data is damaged: recovery stops here and changes nothing.
    #[error("corruption in segment {segment_id} at offset {offset}: {reason}")]
    Corruption {
        /// Segment id (first sequence; file `{segment_id:020}.seg`).
        segment_id: u64,
        /// Byte offset in the segment.
        offset: u64,
        /// What is wrong, and what proves it is committed data.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// Kinds 0 and 0xFF00.. are not for callers.
    #[error("record kind {0:#06x} is reserved")]
    ReservedKind(u16),
    /// The payload is over `payload_bytes_max`.
    #[error("payload of {bytes} bytes over the limit of {max}")]
    PayloadTooLarge {
        /// Payload size.
        bytes: u64,
        /// The limit.
        max: u32,
    },
    /// The batch has `batch_records_max` records: commit first.
    #[error("batch is full ({records_max} records)")]
    BatchFull {
        /// The limit.
        records_max: u32,
    },
}

impl JournalError {
    pub(crate) fn from_corruption(c: scan::Corruption) -> JournalError {
        JournalError::Corruption {
            segment_id: c.segment_id,
            offset: c.offset,
            reason: format!(
                "{}; a later complete batch (first sequence {}, segment {} offset {}) says data up to sequence {} \
                 was durable",
                c.reason,
                c.later.first_sequence,
                c.later_segment_id,
                c.later.at.offset,
                c.later.durable_sequence
            ),
        }
    }
}
