//! Where the journal's bytes live: the [`Storage`] trait and its three implementations.
//!
//! The journal's writer, recovery, readers and checkpoints are written once over [`Storage`]:
//! - [`MmapStorage`]: segment files in a directory, preallocated, zero-filled and mapped with memmap2;
//!   checkpoint files written through the file system.
//! - [`MemStorage`]: everything in memory (tests, tools working on an image).
//! - [`FaultStorage`]: in memory, with a model of what a crash keeps (unsynced pages lost or kept in any
//!   combination, torn at 512 B sectors), injected EIO on sync and ENOSPC on segment creation.
//!
//! # Contract
//! - A segment is identified by the sequence number of its first record (`id`). `create_segment` returns
//!   only once the segment exists at its full size, reading as zeroes (written zeroes, or unwritten
//!   extents, see `mmap`), and its existence is durable (file and
//!   directory synced); it fails with [`StorageError::NoSpace`] if the space cannot be reserved.
//! - `write` copies into a segment; it never extends it. Writing past the end is a programmer error.
//! - `sync` makes the given range of a segment durable; after an error nothing can be assumed.
//! - Files ("blobs", used by checkpoints) follow POSIX: data is durable after `sync_file`, names after
//!   `sync_dir`.

mod fault;
mod memory;
mod mmap;

use crate::format::{RECORD_HEADER_BYTES, RecordHeader};

pub use fault::{FaultConfig, FaultStorage, PAGE_BYTES, SECTOR_BYTES, SplitMix64};
pub use memory::MemStorage;
pub use mmap::{
    ARCHIVE_MARKER_NAME, ArchivedSegments, CACHED_SEGMENTS_DEFAULT, MmapStorage, WRITE_BUFFER_BYTES,
    WriteMode,
};

/// An error from the storage below the journal.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No space left to create or extend a segment (ENOSPC).
    #[error("no space left to preallocate {bytes} bytes for segment {segment_id}")]
    NoSpace {
        /// Segment being created.
        segment_id: u64,
        /// Bytes requested.
        bytes: u64,
    },
    /// An I/O error (EIO on sync, a failed open, ...).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A segment or file that should exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// The storage was opened read-only.
    #[error("storage is read-only")]
    ReadOnly,
    /// Another writer holds the directory (a second `boursed` on the same journal, say).
    #[error(
        "journal directory {0} is in use by another writer (is a boursed already running on it?): nothing \
         was changed"
    )]
    InUse(String),
}

impl StorageError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The operations the journal needs from its storage (see the module contract).
pub trait Storage {
    /// Ids (first sequence numbers) of the existing segments, ascending.
    ///
    /// # Errors
    /// I/O errors while listing.
    fn segment_ids(&mut self) -> Result<Vec<u64>, StorageError>;

    /// Creates a segment of `bytes` bytes, reading as zeroes, with `header` at offset 0. Its size, its zeroes
    /// and its name are durable before this returns (a crash leaves it whole or absent); the header is
    /// durable once a `sync` covering offset 0 returns (the journal's first sync of a new segment starts
    /// at 0), so a crash before that may leave a whole, zero-filled segment without a header.
    ///
    /// # Errors
    /// [`StorageError::NoSpace`] when the space cannot be reserved; other I/O errors.
    fn create_segment(&mut self, id: u64, bytes: u64, header: &[u8]) -> Result<(), StorageError>;

    /// Told by the journal's writer once recovery is done, before it writes: whether its sync policy
    /// syncs (`Batch`, `EveryBatches`) or not (`None`). A storage with a choice of write paths picks the
    /// cheaper one for it ([`WriteMode::Auto`]), and one that never syncs may also skip making new
    /// segments' names durable ([`MmapStorage`] does); a no-op for the others.
    ///
    /// # Errors
    /// I/O errors while switching (mapping a segment again).
    fn choose_write_mode(&mut self, syncs: bool) -> Result<(), StorageError> {
        let _ = syncs;
        Ok(())
    }

    /// Prepares, off the writer's hot path, a zero-filled segment of `bytes` for the next
    /// `create_segment` of that size, so that a roll costs a header write, one data sync and a rename
    /// instead of writing and syncing the whole segment. Returns whether anything was done (false: a spare
    /// is already there, or the storage has no use for one).
    ///
    /// # Errors
    /// [`StorageError::NoSpace`]; other I/O errors. The writer is unaffected: a roll without a spare
    /// creates the segment itself.
    fn prepare_spare_segment(&mut self, bytes: u64) -> Result<bool, StorageError> {
        let _ = bytes;
        Ok(false)
    }

    /// Removes a segment, durably.
    ///
    /// # Errors
    /// I/O errors; [`StorageError::NotFound`].
    fn remove_segment(&mut self, id: u64) -> Result<(), StorageError>;

    /// The whole current image of a segment (as the writer left it); empty if it does not exist.
    fn segment(&self, id: u64) -> &[u8];

    /// A reader is done with segment `id` for now (it read past its end): a storage may unmap it (it is
    /// mapped again at its next read). Never called for the segment being written.
    fn release_segment(&mut self, _id: u64) {}

    /// Copies `bytes` into segment `id` at `offset`.
    ///
    /// # Errors
    /// [`StorageError::ReadOnly`]; I/O errors of implementations that write through syscalls.
    ///
    /// # Panics
    /// If the write would run past the end of the segment (a writer bug).
    fn write(&mut self, id: u64, offset: u64, bytes: &[u8]) -> Result<(), StorageError>;

    /// Copies a record, its encoded `header` then its `payload`, into segment `id` at `offset` (the
    /// same as two `write`s; storages override it to look the segment up and check bounds once).
    ///
    /// # Errors
    /// As [`Storage::write`].
    ///
    /// # Panics
    /// As [`Storage::write`].
    fn write_record(
        &mut self,
        id: u64,
        offset: u64,
        header: &[u8; RECORD_HEADER_BYTES as usize],
        payload: &[u8],
    ) -> Result<(), StorageError> {
        self.write(id, offset, header)?;
        self.write(id, offset + RECORD_HEADER_BYTES as u64, payload)
    }

    /// Writes a new record from its fields into segment `id` at `offset` and returns its header: the
    /// same bytes as [`RecordHeader::new`] then [`Storage::write_record`] (the default). A storage that
    /// copies word by word computes the CRC in the same pass as the copy.
    ///
    /// # Errors
    /// As [`Storage::write`].
    ///
    /// # Panics
    /// As [`Storage::write`]; a payload over the format limit.
    fn write_new_record(
        &mut self,
        id: u64,
        offset: u64,
        kind: u16,
        sequence: u64,
        payload: &[u8],
    ) -> Result<RecordHeader, StorageError> {
        write_new_record_in_two_passes(self, id, offset, kind, sequence, payload)
    }

    /// Hands every byte written so far to the kernel, so that a process crash cannot lose it
    /// (storages that buffer writes); called at each commit. A no-op for the others.
    ///
    /// # Errors
    /// I/O errors: what was written is in doubt, and the journal must stop.
    fn flush(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Makes `[offset, offset + bytes)` of segment `id` durable (after flushing it).
    ///
    /// # Errors
    /// Any error (EIO): the range's durability is unknown, and the journal must stop.
    fn sync(&mut self, id: u64, offset: u64, bytes: u64) -> Result<(), StorageError>;

    /// Names of the files (not segments) in the storage.
    ///
    /// # Errors
    /// I/O errors while listing.
    fn file_names(&mut self) -> Result<Vec<String>, StorageError>;

    /// Creates or replaces file `name` with `bytes` (not durable until `sync_file` + `sync_dir`).
    ///
    /// # Errors
    /// I/O errors.
    fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError>;

    /// Makes the data of file `name` durable.
    ///
    /// # Errors
    /// I/O errors.
    fn sync_file(&mut self, name: &str) -> Result<(), StorageError>;

    /// Renames file `from` to `to`, replacing `to` (not durable until `sync_dir`).
    ///
    /// # Errors
    /// I/O errors.
    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), StorageError>;

    /// Removes file `name` (not durable until `sync_dir`).
    ///
    /// # Errors
    /// I/O errors.
    fn remove_file(&mut self, name: &str) -> Result<(), StorageError>;

    /// Makes the directory's names (creations, renames, removals) durable.
    ///
    /// # Errors
    /// I/O errors.
    fn sync_dir(&mut self) -> Result<(), StorageError>;

    /// Reads file `name`; `None` if it does not exist.
    ///
    /// # Errors
    /// I/O errors.
    fn read_file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;
}

/// A mutable reference to a storage is a storage (a reader can borrow the writer's storage).
/// [`Storage::write_new_record`]'s default: the header with its CRC ([`RecordHeader::new`]), then
/// [`Storage::write_record`].
fn write_new_record_in_two_passes<S: Storage + ?Sized>(
    storage: &mut S,
    id: u64,
    offset: u64,
    kind: u16,
    sequence: u64,
    payload: &[u8],
) -> Result<RecordHeader, StorageError> {
    let header = RecordHeader::new(kind, sequence, payload);
    storage.write_record(id, offset, &header.encode(), payload)?;
    Ok(header)
}

impl<S: Storage + ?Sized> Storage for &mut S {
    fn segment_ids(&mut self) -> Result<Vec<u64>, StorageError> {
        (**self).segment_ids()
    }
    fn create_segment(&mut self, id: u64, bytes: u64, header: &[u8]) -> Result<(), StorageError> {
        (**self).create_segment(id, bytes, header)
    }
    fn choose_write_mode(&mut self, syncs: bool) -> Result<(), StorageError> {
        (**self).choose_write_mode(syncs)
    }
    fn prepare_spare_segment(&mut self, bytes: u64) -> Result<bool, StorageError> {
        (**self).prepare_spare_segment(bytes)
    }
    fn remove_segment(&mut self, id: u64) -> Result<(), StorageError> {
        (**self).remove_segment(id)
    }
    fn segment(&self, id: u64) -> &[u8] {
        (**self).segment(id)
    }
    fn release_segment(&mut self, id: u64) {
        (**self).release_segment(id);
    }
    fn write(&mut self, id: u64, offset: u64, bytes: &[u8]) -> Result<(), StorageError> {
        (**self).write(id, offset, bytes)
    }
    fn write_record(
        &mut self,
        id: u64,
        offset: u64,
        header: &[u8; RECORD_HEADER_BYTES as usize],
        payload: &[u8],
    ) -> Result<(), StorageError> {
        (**self).write_record(id, offset, header, payload)
    }
    fn write_new_record(
        &mut self,
        id: u64,
        offset: u64,
        kind: u16,
        sequence: u64,
        payload: &[u8],
    ) -> Result<RecordHeader, StorageError> {
        (**self).write_new_record(id, offset, kind, sequence, payload)
    }
    fn flush(&mut self) -> Result<(), StorageError> {
        (**self).flush()
    }
    fn sync(&mut self, id: u64, offset: u64, bytes: u64) -> Result<(), StorageError> {
        (**self).sync(id, offset, bytes)
    }
    fn file_names(&mut self) -> Result<Vec<String>, StorageError> {
        (**self).file_names()
    }
    fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        (**self).write_file(name, bytes)
    }
    fn sync_file(&mut self, name: &str) -> Result<(), StorageError> {
        (**self).sync_file(name)
    }
    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        (**self).rename_file(from, to)
    }
    fn remove_file(&mut self, name: &str) -> Result<(), StorageError> {
        (**self).remove_file(name)
    }
    fn sync_dir(&mut self) -> Result<(), StorageError> {
        (**self).sync_dir()
    }
    fn read_file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).read_file(name)
    }
}
