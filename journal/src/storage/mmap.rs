//! [`MmapStorage`]: segment files in a directory, mapped with memmap2; checkpoint files beside them.
//!
//! # Layout
//! `DIR/{first_sequence:020}.seg` for segments, any other name for files (checkpoints).
//!
//! # Segment creation (no SIGBUS, ENOSPC is fatal)
//! A segment is built under a temporary name (`spare.seg.tmp` when prepared ahead by
//! `prepare_spare_segment`, else `{id:020}.seg.tmp` at the roll): `posix_fallocate` reserves every block
//! (ENOSPC surfaces here, never later as a SIGBUS on a page fault), the file is zero-filled with `write(2)`
//! (so that later `fdatasync`s flush data only, no unwritten-extent conversion) and `fsync`ed, and mapped at
//! its full, fixed size. At the roll its header is written, it is renamed to its final name and the
//! directory is `fsync`ed; the header becomes durable with the journal's first sync of the segment, which
//! starts at offset 0. The writer only writes inside the file's size, and segment files are never
//! truncated, so no access can fall beyond the end of the file. Temporaries left by a crash are removed at
//! open.
//!
//! # Spares built in the background ([`MmapStorage::build_spares_in_background`])
//! Building a segment costs its whole size in page-cache work (allocating, zeroing and mapping every
//! page): a writer that is never idle (the daemon at saturation) would pay it inline at each roll, tens of
//! milliseconds every 64 MiB. With a background builder (one thread, `bourse-journal-spare`), each roll
//! hands the next spare's construction to that thread as soon as it took the previous spare, so under a
//! steady load the spare is always ready; a roll that finds the build still running waits for it (never
//! longer than building it itself); a build that failed falls back to the inline path. The thread owns no
//! state of the journal: it creates `spare.seg.tmp`, maps it the way the writer needs, and hands over the
//! file and the mapping. It stops when the storage is dropped.
//!
//! Once `WriteMode::Auto` has chosen `Mapped` (a writer that never syncs), new segments skip the
//! zero-fill: `posix_fallocate` leaves unwritten extents, which read as zeroes, and only the file's size
//! and extents are synced. Writing and syncing 64 MiB of zeroes exists to spare later `fdatasync`s the
//! extent conversion; with no syncs it only slowed the roll (a roll without a spare: 50-150 ms with the
//! zero-fill, 18-60 ms without, on this project's machine). An explicit `Journal::sync` under policy
//! `None` then pays the conversion.
//!
//! # Retired segments
//! With the background builder, a roll also retires the writer's segments older than the previous one:
//! their mappings are replaced by unmapped [`Map::Lazy`] entries (mapped again if read) and handed to the
//! builder thread, which passes them to a retiring thread it starts (`bourse-journal-retire`, so that a
//! wait for writeback never delays a spare). That thread unmaps them, starts their writeback
//! (`sync_file_range`) and, once enough newer segments were retired, waits for it and drops their pages
//! from the page cache (`POSIX_FADV_DONTNEED`). A [`crate::Reader`] releases each segment it reads past
//! ([`Storage::release_segment`]). So the journal's memory is bounded (its last
//! [`CACHED_SEGMENTS_DEFAULT`] segments, or [`MmapStorage::set_cached_segments`]), and new segments are
//! built from recently freed pages rather than memory never touched before, which on a VM whose free
//! pages go back to the host costs several times as much to populate (docs/journal.md).
//!
//! # Two ways to write ([`WriteMode`])
//! - `Mapped`: records are copied into a shared writable mapping (on x86_64 with non-temporal stores,
//!   fenced at every flush: see `stream_record`); `sync` is `msync(MS_SYNC)` over the
//!   page-aligned range (on Linux, `fdatasync` of that range). Cheapest per record (no system call), but
//!   every page made clean by a sync takes a write fault (`page_mkwrite`) on its next write, and on ext4
//!   (data=ordered) that ties the inode to the running jbd2 transaction, so each sync also commits the
//!   file-system journal: measured about 5x the cost of `write` + `fdatasync` (docs/PERFORMANCE.md).
//! - `WriteCalls`: records are gathered in a buffer of [`WRITE_BUFFER_BYTES`] and handed to the
//!   kernel with `pwrite(2)` at each commit (`flush`), into the preallocated, zero-filled blocks; `sync` is
//!   `fdatasync`. The segments are still mapped (read-only) for recovery, readers and replay, which see the
//!   same page cache. One system call per batch; group commit costs what `write` + `fdatasync` costs.
//!
//! - `Auto` (default): the journal picks at open by its sync policy (`Storage::choose_write_mode`):
//!   `Mapped` under `None`, `WriteCalls` under `Batch` and `EveryBatches`. Recovery always reads through
//!   read-only mappings; with `Mapped` chosen, the segment the writer continues in is mapped again,
//!   writable, and every new segment is mapped writable.
//!
//! Either way the bytes of a committed batch are in the kernel (page cache) when `commit_batch` returns,
//! so a process crash never loses them.
//!
//! # Unsafe
//! Mapping a file is `unsafe` in memmap2 because another process could truncate or change the file
//! under the mapping; `posix_fallocate` is an FFI call; the `Mapped` writer's non-temporal stores and
//! store fence are x86_64 intrinsics (see `stream_record`). This module and the CRC kernel are the only
//! places in the crate with `unsafe`, each block under a `// SAFETY:` comment.
#![allow(
    unsafe_code,
    reason = "memmap2 mapping of segment files; each block has a SAFETY comment"
)]

use std::cell::{Cell, OnceCell};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use memmap2::{Advice, Mmap, MmapMut};

use super::{Storage, StorageError};
use crate::format::{PAYLOAD_BYTES_MAX, RECORD_HEADER_BYTES, RecordHeader, record_bytes};

/// Size of the write-gathering buffer of [`WriteMode::WriteCalls`] (allocated once, at open).
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Size of each `write(2)` of zeroes that fills a new segment. Not larger: ext4 caches a file written
/// in 1 MiB calls in 1 MiB folios, and every later small `pwrite` into such a folio walks all its 256
/// block buffers (`ext4_block_write_begin`, `block_commit_write`): measured 1.3 µs per 136-byte commit
/// with 1 MiB writes, 0.43 µs with 64 KiB (docs/PERFORMANCE.md, "Journal").
const ZERO_FILL_CHUNK_BYTES: usize = 64 << 10;
/// Writes one record (header, payload, zero padding to the record's 8-byte multiple) into `dst`, the
/// record's whole slot in a writable mapping, starting 8-byte aligned.
///
/// The journal is written once, front to back, into lines no core holds: ordinary stores read each line
/// from memory first (a read for ownership), and the stream of ~500 bytes per request evicts what the
/// pipeline keeps in cache. Non-temporal 8-byte stores (`movnti`) skip both; they are weakly ordered, so
/// `flush_pending` fences them before a commit is published (the writer's `flush` at every commit, `sync`,
/// a new segment, drop). Elsewhere: plain copies.
#[inline]
fn stream_record(dst: &mut [u8], header: &[u8; RECORD_HEADER_BYTES as usize], payload: &[u8]) {
    let words = dst.len() / 8;
    assert!(
        dst.len().is_multiple_of(8)
            && dst.len() >= header.len() + payload.len()
            && dst.len() < header.len() + payload.len() + 8,
        "a record slot is the record padded to 8 bytes"
    );
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            dst.as_ptr().addr().is_multiple_of(8),
            "record slots are 8-byte aligned"
        );
        let word_at = |i: usize| -> u64 {
            let mut word = [0u8; 8];
            for (k, byte) in word.iter_mut().enumerate() {
                let at = i * 8 + k;
                *byte = if at < header.len() {
                    header[at]
                } else {
                    payload.get(at - header.len()).copied().unwrap_or(0)
                };
            }
            u64::from_le_bytes(word)
        };
        let base = dst.as_mut_ptr().cast::<i64>();
        let head_words = header.len() / 8;
        for i in 0..words {
            let word = if i < head_words {
                u64::from_le_bytes(header[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
            } else if (i + 1) * 8 <= header.len() + payload.len() {
                let at = i * 8 - header.len();
                u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"))
            } else {
                // The last, partial word: payload bytes then zero padding.
                word_at(i)
            };
            // SAFETY: `base + i` is inside `dst` (i < dst.len() / 8) and 8-byte aligned (asserted); SSE2,
            // which `movnti` needs, is part of the x86_64 baseline.
            unsafe { std::arch::x86_64::_mm_stream_si64(base.add(i), word as i64) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = words;
        dst[..header.len()].copy_from_slice(header);
        dst[header.len()..header.len() + payload.len()].copy_from_slice(payload);
        dst[header.len() + payload.len()..].fill(0);
    }
}

/// Writes a new record into `dst`, its whole slot (8-byte aligned), from its fields: each payload word is
/// loaded once, for the CRC and for its non-temporal store, and the header, which holds the CRC, is
/// stored last (the stores are ordered only by the fence before the commit is published, so the order
/// within a record does not matter). Returns the header. The same bytes as [`RecordHeader::new`] then
/// [`stream_record`], which is the path without SSE4.2.
#[inline]
fn stream_new_record(dst: &mut [u8], kind: u16, sequence: u64, payload: &[u8]) -> RecordHeader {
    assert!(
        payload.len() as u64 <= PAYLOAD_BYTES_MAX as u64,
        "payload over the format limit"
    );
    let payload_bytes = payload.len() as u32;
    assert!(
        dst.len() as u64 == record_bytes(payload_bytes),
        "a record slot is the record padded to 8 bytes"
    );
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            dst.as_ptr().addr().is_multiple_of(8),
            "record slots are 8-byte aligned"
        );
        let base = dst.as_mut_ptr().cast::<i64>();
        let words = dst.len() / 8;
        let head_words = RECORD_HEADER_BYTES as usize / 8;
        // `move`: the base and bound stay in registers (a capture by reference is reloaded after every
        // store, which might have changed it as far as the compiler knows).
        let stream = move |i: usize, word: u64| {
            assert!(i < words, "a word inside the record's slot");
            // SAFETY: `base + i` is inside `dst` (i < dst.len() / 8, asserted) and 8-byte aligned
            // (asserted above); SSE2, which `movnti` needs, is part of the x86_64 baseline.
            unsafe { std::arch::x86_64::_mm_stream_si64(base.add(i), word as i64) };
        };
        if let Some(crc) =
            crate::crc::record_crc_emitting(payload_bytes, sequence, kind, payload, move |i, word| {
                stream(head_words + i, word)
            })
        {
            let header = RecordHeader {
                crc,
                payload_bytes,
                sequence,
                kind,
            };
            // The header's three words, as `RecordHeader::encode` lays them out.
            stream(0, u64::from(crc) | (u64::from(payload_bytes) << 32));
            stream(1, sequence);
            stream(2, u64::from(kind));
            return header;
        }
    }
    let header = RecordHeader::new(kind, sequence, payload);
    stream_record(dst, &header.encode(), payload);
    header
}

/// Orders the non-temporal stores of [`stream_record`] before every later store (no-op elsewhere).
#[inline]
fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline; a fence has no operands.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

/// File name suffix of segments.
const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of a segment being created (removed if found at open).
const SEGMENT_TEMP_SUFFIX: &str = ".seg.tmp";
/// Name of the spare segment prepared ahead of the writer (a temporary: removed if found at open).
const SPARE_NAME: &str = "spare.seg.tmp";

/// A zero-filled, synced, mapped file ready to become the next segment.
struct Spare {
    file: File,
    map: Map,
}

/// What a spare must be: its size and how it is built and mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpareShape {
    bytes: u64,
    /// Zeroes written and synced (see the module header), or left to `posix_fallocate`.
    write_zeroes: bool,
    /// Mapped writable and populated for writing (`Mapped`), or read-only.
    writable: bool,
}

/// What the background thread is asked to do.
enum Order {
    /// Build the spare at this path, in this shape.
    Build(PathBuf, SpareShape),
    /// A segment the writer no longer writes nor keeps mapped (see "Retired segments" in the module
    /// header), passed on to the retiring thread; the `usize` is how many retired segments stay cached.
    Retire(File, Map, usize),
}

/// The background builder of spares (see the module header).
struct SpareBuilder {
    /// Orders to the thread; dropped first at drop, which ends the thread.
    orders: Option<mpsc::Sender<Order>>,
    built: mpsc::Receiver<(SpareShape, Result<Spare, StorageError>)>,
    /// The shape of the build in progress, if one was ordered and not yet received.
    in_flight: Option<SpareShape>,
    thread: Option<JoinHandle<()>>,
}

impl SpareBuilder {
    fn spawn(on_start: Box<dyn FnOnce() + Send>) -> Result<SpareBuilder, StorageError> {
        let (orders, order_rx) = mpsc::channel::<Order>();
        let (built_tx, built) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bourse-journal-spare".into())
            .spawn(move || {
                on_start();
                // Retiring waits for writeback, which on a slow disk could hold up the next spare and
                // then the writer's roll: it gets a thread of its own, started from this one so that it
                // inherits the placement `on_start` gave. If it cannot be started, its receiver is gone
                // with it, every send fails, and this thread retires inline.
                let (retire_tx, retire_rx) = mpsc::channel::<(File, Map, usize)>();
                let retirer = std::thread::Builder::new()
                    .name("bourse-journal-retire".into())
                    .spawn(move || {
                        let mut retired = Retired::default();
                        // Bounded by the orders; ends when the builder drops its sender.
                        while let Ok((file, map, keep)) = retire_rx.recv() {
                            retired.retire(file, map, keep);
                        }
                    })
                    .ok();
                let mut inline = Retired::default();
                // Bounded by the orders: one build or retirement per order, and the loop ends when the
                // storage drops its sender.
                while let Ok(order) = order_rx.recv() {
                    match order {
                        Order::Build(path, shape) => {
                            let result = build_zeroed(&path, u64::MAX, shape);
                            if built_tx.send((shape, result)).is_err() {
                                break;
                            }
                        }
                        Order::Retire(file, map, keep) => {
                            if let Err(mpsc::SendError((file, map, keep))) = retire_tx.send((file, map, keep))
                            {
                                inline.retire(file, map, keep);
                            }
                        }
                    }
                }
                drop(retire_tx);
                if let Some(retirer) = retirer {
                    let _ = retirer.join();
                }
            })
            .map_err(|e| StorageError::io("spawn the spare-segment builder".to_owned(), e))?;
        Ok(SpareBuilder {
            orders: Some(orders),
            built,
            in_flight: None,
            thread: Some(thread),
        })
    }

    /// Orders a build unless one is in progress. Returns whether it ordered one.
    fn order(&mut self, path: PathBuf, shape: SpareShape) -> bool {
        if self.in_flight.is_some() {
            return false;
        }
        let Some(orders) = self.orders.as_ref() else {
            return false;
        };
        if orders.send(Order::Build(path, shape)).is_err() {
            return false;
        }
        self.in_flight = Some(shape);
        true
    }

    /// Hands a retired segment's mapping to the thread (dropped here if the thread is gone); `keep`
    /// retired segments stay cached.
    fn retire(&mut self, file: File, map: Map, keep: usize) {
        if let Some(orders) = self.orders.as_ref() {
            let _ = orders.send(Order::Retire(file, map, keep));
        }
    }

    /// The finished build, if any: without waiting, or waiting for the one in progress.
    fn take(&mut self, wait: bool) -> Option<(SpareShape, Result<Spare, StorageError>)> {
        self.in_flight?;
        let received = if wait {
            self.built.recv().ok()
        } else {
            self.built.try_recv().ok()
        };
        if received.is_some() {
            self.in_flight = None;
        }
        received
    }
}

impl Drop for SpareBuilder {
    fn drop(&mut self) {
        drop(self.orders.take());
        if let Some(thread) = self.thread.take() {
            // A build in progress finishes first (its file is a temporary, removed at the next open).
            let _ = thread.join();
        }
    }
}

/// Segments retired by the writer, on the retiring thread: their pages are written back at once and
/// dropped from the page cache once enough newer segments were retired (see "Retired segments" in the
/// module header).
#[derive(Default)]
struct Retired {
    /// Written back (or being written), still cached: oldest first.
    cached: std::collections::VecDeque<File>,
}

/// The journal's most recent segments kept in the page cache by default, the writer's two mapped ones
/// included ([`MmapStorage::set_cached_segments`]).
pub const CACHED_SEGMENTS_DEFAULT: usize = 6;
/// The writer's own mapped segments: the one it writes and the previous one.
const WRITER_SEGMENTS: usize = 2;

impl Retired {
    /// Retires a segment; `keep` retired segments stay cached.
    fn retire(&mut self, file: File, map: Map, keep: usize) {
        // Unmapping takes the address-space lock and tears down a segment's page-table entries: here,
        // not on the writer's thread.
        drop(map);
        start_writeback(&file);
        self.cached.push_back(file);
        // One in, usually one out (more after the limit was lowered).
        while self.cached.len() > keep
            && let Some(oldest) = self.cached.pop_front()
        {
            drop_cached_pages(&oldest);
        }
    }
}

/// Starts writing back every dirty page of `file` (`sync_file_range`, no wait; best effort).
fn start_writeback(file: &File) {
    // SAFETY: plain FFI call on a file descriptor `file` owns; no memory is passed.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Waits for `file`'s pages to be written back and drops the clean ones that no mapping holds from the
/// page cache (best effort: a page still mapped by a reader stays).
fn drop_cached_pages(file: &File) {
    let fd = file.as_raw_fd();
    // SAFETY: plain FFI calls on a file descriptor `file` owns; no memory is passed.
    unsafe {
        let _ = libc::sync_file_range(
            fd,
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
        let _ = libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

enum Map {
    ReadWrite(MmapMut),
    ReadOnly(Mmap),
    /// A segment a read-only storage found after it opened (a tailing reader's view of a writer's new
    /// segment): mapped at its first read, without populating. Mapping it when found would put an
    /// `mmap` (which waits for the address-space lock while the writer's spare builder populates the
    /// next spare: 7.5 ms measured) and a populate of 64 MiB of pages (1.4-3 ms) on the reader's thread
    /// at every roll, which in boursed is the pipeline thread; the in-process market-data reader never
    /// reads the segments it follows unless a re-request asks for them.
    Lazy {
        len: usize,
        map: OnceCell<Mmap>,
    },
}

struct Segment {
    id: u64,
    file: File,
    map: Map,
}

/// How a writable [`MmapStorage`] writes (see the module header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Copy into a shared writable mapping; sync with `msync`.
    Mapped,
    /// Gather in a buffer, `pwrite(2)` at each flush; sync with `fdatasync`. Mappings are read-only.
    WriteCalls,
    /// Chosen by the journal's sync policy when the writer opens (`Storage::choose_write_mode`):
    /// `Mapped` under policy `None` (no syncs: the cheapest appends), `WriteCalls` under `Batch` and
    /// `EveryBatches` (the cheapest syncs). Until then it writes like `WriteCalls`.
    #[default]
    Auto,
}

impl Map {
    /// Replaces the mapping with an unmapped [`Map::Lazy`] of the same length; returns the old one.
    fn unmapped(&mut self) -> Map {
        let len = self.len();
        std::mem::replace(
            self,
            Map::Lazy {
                len,
                map: OnceCell::new(),
            },
        )
    }

    /// Whether it holds a mapping now (a lazy one once it was read).
    fn is_mapped(&self) -> bool {
        match self {
            Map::ReadWrite(_) | Map::ReadOnly(_) => true,
            Map::Lazy { map, .. } => map.get().is_some(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Map::ReadWrite(m) => m.len(),
            Map::ReadOnly(m) => m.len(),
            Map::Lazy { len, .. } => *len,
        }
    }
}

impl Segment {
    /// The segment's bytes; a lazily mapped segment is mapped now. A mapping that fails (address space
    /// or memory exhausted) reads as empty this time: a reader then sees nothing committed there yet and
    /// asks again on its next call.
    fn bytes(&self) -> &[u8] {
        match &self.map {
            Map::ReadWrite(m) => m,
            Map::ReadOnly(m) => m,
            Map::Lazy { map, .. } => {
                if map.get().is_none() {
                    // SAFETY: as in `map_file`'s read-only case: segment files are created whole and
                    // never truncated or resized by bourse, and bytes past the last commit a reader has
                    // checked are checked by CRC before any use.
                    match unsafe { Mmap::map(&self.file) } {
                        Ok(mapped) => {
                            let _ = map.set(mapped);
                        }
                        Err(_) => return &[],
                    }
                }
                map.get().map_or(&[], |m| &m[..])
            }
        }
    }
}

/// Segments and files in a directory (see the module header).
pub struct MmapStorage {
    dir: PathBuf,
    read_only: bool,
    /// Whole files (checkpoints) may be written although the segments are read-only
    /// ([`MmapStorage::open_for_checkpoints`]).
    files_writable: bool,
    mode: WriteMode,
    /// Mapped segments, ascending by id.
    segments: Vec<Segment>,
    /// `WriteCalls`: bytes written but not yet handed to the kernel, for `pending_segment` from
    /// `pending_offset`. Capacity [`WRITE_BUFFER_BYTES`], never grown.
    pending: Vec<u8>,
    pending_segment: u64,
    pending_offset: u64,
    /// The next segment, prepared ahead (`prepare_spare_segment`).
    spare: Option<Spare>,
    /// Builds spares on another thread (`build_spares_in_background`), if enabled.
    builder: Option<SpareBuilder>,
    /// Segments created from a prepared spare (rather than built at the roll).
    spares_taken: u64,
    /// Whether new segments get their zeroes written (see the module header); false only once `Auto`
    /// chose `Mapped` for a writer that never syncs.
    write_zeroes: bool,
    /// Index of the segment looked up last (scans and readers ask for the same one many times in a row).
    lookup_hint: Cell<usize>,
    /// The journal's most recent segments kept in the page cache when a background builder retires the
    /// older ones (the writer's two mapped segments included).
    cached_segments: usize,
    /// Whether a new segment's name is made durable (`fsync` of the directory) when it is created: false
    /// once the journal said it never syncs (`choose_write_mode(false)`), which promises nothing across a
    /// machine crash; the roll then costs no directory sync on the writer's thread (0.4-0.7 ms measured).
    name_syncs: bool,
    /// Segments below this id were archived ([`MmapStorage::archive_segments`]): they are not part of the
    /// journal any more, even while a move that a crash interrupted has left some in the directory.
    /// Read from [`ARCHIVE_MARKER_NAME`] at open; 0 when nothing was archived.
    archived_before: u64,
    /// A writer's exclusive lock on its directory (`flock` of the directory itself), held while it is
    /// open; read-only opens take none.
    _writer_lock: Option<File>,
}

impl std::fmt::Debug for MmapStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapStorage")
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .field("mode", &self.mode)
            .field("segments", &self.segments.len())
            .finish()
    }
}

fn segment_name(id: u64) -> String {
    format!("{id:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The file naming the first segment kept once older ones were archived: its decimal id and a newline.
pub const ARCHIVE_MARKER_NAME: &str = "segments-archived-before";
/// The marker while it is written (removed if found at open).
const ARCHIVE_MARKER_TEMP: &str = "segments-archived-before.tmp";

/// The id in `dir`'s archive marker (0: there is none).
fn read_archive_marker(dir: &Path) -> Result<u64, StorageError> {
    let path = dir.join(ARCHIVE_MARKER_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim_end_matches('\n').parse::<u64>() {
            Ok(id) if id > 0 && text.ends_with('\n') => Ok(id),
            _ => Err(StorageError::io(
                format!("read {}", path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a segment id and a newline: {text:?}"),
                ),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StorageError::io(format!("read {}", path.display()), e)),
    }
}

/// What [`MmapStorage::archive_segments`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchivedSegments {
    /// The first segment left in the journal (0: nothing was ever archived).
    pub first_kept: u64,
    /// Segment files moved by this call (those a crash left behind included).
    pub moved: u32,
    /// Their bytes.
    pub bytes: u64,
}

/// An error unless `a` and `b` are on one file system (a rename between them works).
fn same_file_system(a: &Path, b: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::MetadataExt;
    let device = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| StorageError::io(format!("stat {}", p.display()), e))
    };
    if device(a)? == device(b)? {
        return Ok(());
    }
    Err(StorageError::io(
        format!("archive {} from {}", b.display(), a.display()),
        std::io::Error::new(
            std::io::ErrorKind::CrossesDevices,
            "the archive directory must be on the journal's file system (segments are moved by rename)",
        ),
    ))
}

/// Takes the writer's exclusive lock on `dir` (`flock` of the directory, released when the returned
/// handle closes, a crash included). [`StorageError::InUse`] if another open file holds it, in this
/// process or another; `None` where the file system has no such locks (the open goes on unlocked).
fn lock_directory(dir: &Path) -> Result<Option<File>, StorageError> {
    let handle = File::open(dir).map_err(|e| StorageError::io(format!("open {}", dir.display()), e))?;
    match handle.try_lock() {
        Ok(()) => Ok(Some(handle)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::InUse(dir.display().to_string())),
        Err(std::fs::TryLockError::Error(_)) => Ok(None),
    }
}

fn sync_directory(dir: &Path) -> Result<(), StorageError> {
    let handle = File::open(dir).map_err(|e| StorageError::io(format!("open {}", dir.display()), e))?;
    handle
        .sync_all()
        .map_err(|e| StorageError::io(format!("fsync {}", dir.display()), e))
}

impl MmapStorage {
    /// Opens (creating it if needed) the journal directory `dir` for writing and maps its segments.
    ///
    /// # Errors
    /// I/O errors while creating, listing, opening or mapping.
    pub fn open(dir: impl AsRef<Path>) -> Result<MmapStorage, StorageError> {
        MmapStorage::open_with(dir, WriteMode::default())
    }

    /// Like [`MmapStorage::open`], choosing how to write.
    ///
    /// # Errors
    /// I/O errors while creating, listing, opening or mapping.
    pub fn open_with(dir: impl AsRef<Path>, mode: WriteMode) -> Result<MmapStorage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        // Before anything changes (the temporaries below are the running writer's spare): two writers
        // would interleave their records in one segment.
        let writer_lock = lock_directory(&dir)?;
        let pending = if mode != WriteMode::Mapped {
            Vec::with_capacity(WRITE_BUFFER_BYTES)
        } else {
            Vec::new()
        };
        let mut storage = MmapStorage {
            dir,
            read_only: false,
            files_writable: true,
            mode,
            segments: Vec::new(),
            pending,
            pending_segment: 0,
            pending_offset: 0,
            spare: None,
            builder: None,
            spares_taken: 0,
            write_zeroes: true,
            lookup_hint: Cell::new(0),
            cached_segments: CACHED_SEGMENTS_DEFAULT,
            name_syncs: true,
            archived_before: 0,
            _writer_lock: writer_lock,
        };
        storage.remove_temporaries()?;
        storage.archived_before = read_archive_marker(&storage.dir)?;
        storage.refresh(false)?;
        // The marker names the first segment kept, which holds committed records and is never removed.
        // Without it the segments kept after the last archive were lost (moved or deleted by hand), and a
        // writer would start a new first segment below the marker: hidden from every open, and later
        // archived over the segment of that name.
        let first = storage.segments.first().map(|s| s.id);
        if storage.archived_before > 0 && first != Some(storage.archived_before) {
            return Err(StorageError::NotFound(format!(
                "segment {} that {} in {} names as the journal's first (found {first:?}): the segments kept \
                 after the last archive are missing",
                storage.archived_before,
                ARCHIVE_MARKER_NAME,
                storage.dir.display()
            )));
        }
        Ok(storage)
    }

    /// Opens `dir` read-only (tools, tailing readers in other processes); every write fails.
    ///
    /// # Errors
    /// I/O errors; [`StorageError::NotFound`] if `dir` does not exist.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<MmapStorage, StorageError> {
        MmapStorage::open_read_only_with(dir.as_ref(), false)
    }

    /// Opens `dir` to read its segments (never written, as [`MmapStorage::open_read_only`]) and to write
    /// whole files: the storage of a thread that follows the journal beside its writer and writes the
    /// checkpoints (`crate::checkpoint::write`). Unlike [`MmapStorage::open`] it removes no temporary
    /// file, so the writer's spare segment is safe.
    ///
    /// # Errors
    /// As [`MmapStorage::open_read_only`].
    pub fn open_for_checkpoints(dir: impl AsRef<Path>) -> Result<MmapStorage, StorageError> {
        MmapStorage::open_read_only_with(dir.as_ref(), true)
    }

    fn open_read_only_with(dir: &Path, files_writable: bool) -> Result<MmapStorage, StorageError> {
        let dir = dir.to_path_buf();
        if !dir.is_dir() {
            return Err(StorageError::NotFound(dir.display().to_string()));
        }
        let mut storage = MmapStorage {
            dir,
            read_only: true,
            files_writable,
            mode: WriteMode::WriteCalls,
            segments: Vec::new(),
            pending: Vec::new(),
            pending_segment: 0,
            pending_offset: 0,
            spare: None,
            builder: None,
            spares_taken: 0,
            write_zeroes: true,
            lookup_hint: Cell::new(0),
            cached_segments: CACHED_SEGMENTS_DEFAULT,
            name_syncs: true,
            archived_before: 0,
            _writer_lock: None,
        };
        storage.archived_before = read_archive_marker(&storage.dir)?;
        storage.refresh(false)?;
        Ok(storage)
    }

    /// How it writes now: the mode it was opened with, or for [`WriteMode::Auto`] the one chosen when
    /// the journal's writer opened (`Auto` until then).
    pub fn write_mode(&self) -> WriteMode {
        self.mode
    }

    /// The segments this storage holds mapped now, ascending: a writer with a background builder keeps
    /// its last two, a reader the ones it has not read past (see "Retired segments" in the module
    /// header).
    pub fn mapped_segment_ids(&self) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|s| s.map.is_mapped())
            .map(|s| s.id)
            .collect()
    }

    /// Keeps the journal's `segments` most recent segments in the page cache (at least the writer's two)
    /// once a background builder retires the older ones (see "Retired segments" in the module header);
    /// [`CACHED_SEGMENTS_DEFAULT`] until set. Takes effect at the next roll.
    pub fn set_cached_segments(&mut self, segments: usize) {
        self.cached_segments = segments.max(WRITER_SEGMENTS);
    }

    /// How many segments were created from a prepared spare (the rest were built at their roll).
    pub fn spares_taken(&self) -> u64 {
        self.spares_taken
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Segments below this id were archived (0: none).
    pub fn archived_before(&self) -> u64 {
        self.archived_before
    }

    /// Moves every segment below `first_kept` into `archive_dir` (created if needed, and checked to be on
    /// the journal's file system, so that a move is a rename, at every call). Crash-safe: the marker
    /// [`ARCHIVE_MARKER_NAME`] naming `first_kept` is made durable first, and from then on every open
    /// ignores the older segments, so a crash between the moves leaves a journal that starts at
    /// `first_kept` with some old files still beside it, which the next call moves. The caller
    /// ([`crate::Journal::archive_before`]) chooses a `first_kept` that starts a batch.
    ///
    /// A `first_kept` at or below the marker's only finishes an interrupted move.
    ///
    /// # Errors
    /// [`StorageError::ReadOnly`]; [`StorageError::NotFound`] if `first_kept` is not a segment here;
    /// I/O errors (another file system: `EXDEV`, reported before anything is changed).
    pub fn archive_segments(
        &mut self,
        first_kept: u64,
        archive_dir: &Path,
    ) -> Result<ArchivedSegments, StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        // Checked at every call, so that a misplaced archive shows at the first start, not on the day
        // something is first due to move.
        std::fs::create_dir_all(archive_dir)
            .map_err(|e| StorageError::io(format!("create {}", archive_dir.display()), e))?;
        same_file_system(&self.dir, archive_dir)?;
        if first_kept > self.archived_before {
            if !self.segments.iter().any(|s| s.id == first_kept) {
                return Err(StorageError::NotFound(format!("segment {first_kept}")));
            }
            self.flush_pending()?;
            // Atomically, as a checkpoint file is written.
            self.write_file(ARCHIVE_MARKER_TEMP, format!("{first_kept}\n").as_bytes())?;
            self.sync_file(ARCHIVE_MARKER_TEMP)?;
            self.rename_file(ARCHIVE_MARKER_TEMP, ARCHIVE_MARKER_NAME)?;
            self.sync_dir()?;
            self.archived_before = first_kept;
            self.segments.retain(|s| s.id >= first_kept);
            self.lookup_hint.set(0);
        }
        let mut done = ArchivedSegments {
            first_kept: self.archived_before,
            ..ArchivedSegments::default()
        };
        let old: Vec<String> = self
            .list_names()?
            .into_iter()
            .filter(|n| parse_segment_name(n).is_some_and(|id| id < self.archived_before))
            .collect();
        if old.is_empty() {
            return Ok(done);
        }
        for name in old {
            let (from, to) = (self.path(&name), archive_dir.join(&name));
            let bytes = std::fs::metadata(&from).map_or(0, |m| m.len());
            std::fs::rename(&from, &to)
                .map_err(|e| StorageError::io(format!("move {} to {}", from.display(), to.display()), e))?;
            done.moved += 1;
            done.bytes += bytes;
        }
        sync_directory(archive_dir)?;
        sync_directory(&self.dir)?;
        Ok(done)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn remove_temporaries(&mut self) -> Result<(), StorageError> {
        for name in self.list_names()? {
            if name.ends_with(SEGMENT_TEMP_SUFFIX) || name == ARCHIVE_MARKER_TEMP {
                let path = self.path(&name);
                std::fs::remove_file(&path)
                    .map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    fn list_names(&self) -> Result<Vec<String>, StorageError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| StorageError::io(format!("list {}", self.dir.display()), e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(format!("list {}", self.dir.display()), e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Maps segments that appeared since the last look (new segments of a writer in another process,
    /// or in this one). At open (`lazily` false) every segment is mapped and populated for the scan that
    /// follows; a read-only storage maps the ones it finds later at their first read ([`Map::Lazy`]).
    fn refresh(&mut self, lazily: bool) -> Result<(), StorageError> {
        for name in self.list_names()? {
            let Some(id) = parse_segment_name(&name) else {
                continue;
            };
            if id < self.archived_before || self.segments.iter().any(|s| s.id == id) {
                continue;
            }
            let (file, map) = if lazily {
                self.open_segment_lazily(&name)?
            } else {
                self.map_segment(&name, false)?
            };
            let at = self.segments.partition_point(|s| s.id < id);
            self.segments.insert(at, Segment { id, file, map });
        }
        Ok(())
    }

    fn open_segment_lazily(&self, name: &str) -> Result<(File, Map), StorageError> {
        let path = self.path(name);
        let io = |what: &str, e| StorageError::io(format!("{what} {}", path.display()), e);
        let file = File::open(&path).map_err(|e| io("open", e))?;
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        let len = usize::try_from(len)
            .map_err(|_| StorageError::NotFound(format!("{} too large", path.display())))?;
        Ok((
            file,
            Map::Lazy {
                len,
                map: OnceCell::new(),
            },
        ))
    }

    fn map_segment(&self, name: &str, populate: bool) -> Result<(File, Map), StorageError> {
        let path = self.path(name);
        let file = OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(&path)
            .map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
        let map = map_file(&file, &path, self.writable_maps(), populate)?;
        Ok((file, map))
    }

    /// Whether segments are mapped writable (`Mapped`), else read-only.
    fn writable_maps(&self) -> bool {
        !self.read_only && self.mode == WriteMode::Mapped
    }

    /// What a spare must be now.
    fn spare_shape(&self, bytes: u64) -> SpareShape {
        SpareShape {
            bytes,
            write_zeroes: self.write_zeroes,
            writable: self.writable_maps(),
        }
    }

    /// Takes the background builder's finished spare into `self.spare` if it has the `shape` needed now
    /// (one built before the write mode was chosen is dropped). `wait`: wait for a build in progress.
    /// Returns the build's error, if it failed.
    fn receive_spare(&mut self, shape: SpareShape, wait: bool) -> Option<StorageError> {
        let (built_shape, result) = self.builder.as_mut()?.take(wait)?;
        match result {
            Ok(spare) if built_shape == shape => {
                self.spare = Some(spare);
                None
            }
            Ok(_) => None,
            Err(error) => Some(error),
        }
    }

    /// From now on, spares are built on a background thread (see the module header): each roll orders
    /// the next one, and [`Storage::prepare_spare_segment`] orders one instead of building it. For a
    /// writer that is never idle. The thread ends when the storage is dropped.
    ///
    /// # Errors
    /// [`StorageError::ReadOnly`]; the thread could not be started.
    pub fn build_spares_in_background(&mut self) -> Result<(), StorageError> {
        self.build_spares_in_background_with(|| {})
    }

    /// Like [`MmapStorage::build_spares_in_background`]; the helper thread first runs `on_start` (the
    /// daemon pins it to its helper cores there, away from the pipeline's: building a spare is the
    /// kernel allocating and zeroing 64 MiB of page cache, a third of the pipeline core at saturation).
    ///
    /// # Errors
    /// [`StorageError::ReadOnly`]; the thread could not be started.
    pub fn build_spares_in_background_with(
        &mut self,
        on_start: impl FnOnce() + Send + 'static,
    ) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        if self.builder.is_none() {
            self.builder = Some(SpareBuilder::spawn(Box::new(on_start))?);
        }
        Ok(())
    }

    /// Index of segment `id`: the last one (the writer's) first, else a binary search (ids ascend).
    #[inline]
    fn index_of(&self, id: u64) -> Option<usize> {
        let hint = self.lookup_hint.get();
        if self.segments.get(hint).is_some_and(|s| s.id == id) {
            return Some(hint);
        }
        let index = match self.segments.last() {
            Some(last) if last.id == id => Some(self.segments.len() - 1),
            _ => self.segments.binary_search_by_key(&id, |s| s.id).ok(),
        }?;
        self.lookup_hint.set(index);
        Some(index)
    }

    /// Hands the gathered bytes to the kernel (`WriteCalls`); under `Mapped`, makes the streamed records
    /// visible (a store fence) before anything that publishes them.
    fn flush_pending(&mut self) -> Result<(), StorageError> {
        if self.mode == WriteMode::Mapped {
            store_fence();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let (id, offset) = (self.pending_segment, self.pending_offset);
        let segment = self
            .find(id)
            .ok_or_else(|| StorageError::NotFound(format!("segment {id}")))?;
        let result = segment
            .file
            .write_all_at(&self.pending, offset)
            .map_err(|e| StorageError::io(format!("pwrite segment {id} at {offset}"), e));
        self.pending.clear();
        result
    }

    fn find(&self, id: u64) -> Option<&Segment> {
        self.index_of(id).map(|index| &self.segments[index])
    }

    #[inline]
    fn find_mut(&mut self, id: u64) -> Option<&mut Segment> {
        self.index_of(id).map(|index| &mut self.segments[index])
    }
}

/// Maps `file` read-only, or writable (populated for writing when `populate`, else for reading).
fn map_file(file: &File, path: &Path, writable: bool, populate: bool) -> Result<Map, StorageError> {
    let map = if !writable {
        // SAFETY: segment files are created whole (temporary name, rename) and never truncated or
        // resized by bourse; the mapping covers the file's full size at open, so every access is
        // inside the file. The writer never rewrites bytes of a committed batch (only a new writer's
        // recovery zeroes an uncommitted tail), and bytes past the last commit a reader has checked
        // may change while read: they are read as plain bytes and checked by CRC before any use.
        let map =
            unsafe { Mmap::map(file) }.map_err(|e| StorageError::io(format!("map {}", path.display()), e))?;
        // Map the pages in one call rather than one fault per 64 KiB while scanning (best effort).
        let _ = map.advise(Advice::PopulateRead);
        Map::ReadOnly(map)
    } else {
        // SAFETY: as above; in addition there is one writer per journal directory (the caller's
        // contract), so no other process writes through another mapping of this file.
        let map = unsafe { MmapMut::map_mut(file) }
            .map_err(|e| StorageError::io(format!("map {}", path.display()), e))?;
        if populate {
            // A new segment, about to be written: take the write faults (page_mkwrite) now, when
            // the spare is prepared, rather than one per page on the writer's path. Best effort:
            // kernels before 5.14 do not know MADV_POPULATE_WRITE; the pages then fault as written.
            let _ = map.advise(Advice::PopulateWrite);
        } else {
            // An existing segment, about to be scanned by recovery: map its pages in one call
            // rather than one fault per 64 KiB (best effort).
            let _ = map.advise(Advice::PopulateRead);
        }
        Map::ReadWrite(map)
    };
    Ok(map)
}

/// Creates `path` with `bytes` reserved (`posix_fallocate`), zero-filled and `fsync`ed, and maps it
/// as `shape` says (writable mappings are populated for writing). `id` only names the segment in errors.
fn build_zeroed(path: &Path, id: u64, shape: SpareShape) -> Result<Spare, StorageError> {
    let bytes = shape.bytes;
    let io = |what: &str, e| StorageError::io(format!("{what} {}", path.display()), e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io("create", e))?;
    let length = i64::try_from(bytes).map_err(|_| StorageError::NoSpace {
        segment_id: id,
        bytes,
    })?;
    // posix_fallocate returns the error number instead of setting errno.
    let rc = {
        // SAFETY: plain FFI call on a file descriptor this function owns; no memory is passed.
        unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length) }
    };
    if rc != 0 {
        let _ = std::fs::remove_file(path);
        if rc == libc::ENOSPC || rc == libc::EFBIG {
            return Err(StorageError::NoSpace {
                segment_id: id,
                bytes,
            });
        }
        return Err(io("fallocate", std::io::Error::from_raw_os_error(rc)));
    }
    if shape.write_zeroes {
        let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
        let mut written = 0u64;
        while written < bytes {
            let chunk = (bytes - written).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
            file.write_all(&zeros[..chunk]).map_err(|e| io("zero-fill", e))?;
            written += chunk as u64;
        }
    }
    file.sync_all().map_err(|e| io("fsync", e))?;
    let map = map_file(&file, path, shape.writable, true)?;
    Ok(Spare { file, map })
}

impl Storage for MmapStorage {
    fn segment_ids(&mut self) -> Result<Vec<u64>, StorageError> {
        if self.read_only {
            self.refresh(true)?;
        }
        Ok(self.segments.iter().map(|s| s.id).collect())
    }

    fn create_segment(&mut self, id: u64, bytes: u64, header: &[u8]) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        assert!(
            header.len() as u64 <= bytes,
            "segment header larger than the segment"
        );
        self.flush_pending()?;
        let name = segment_name(id);
        let target = self.path(&name);
        let shape = self.spare_shape(bytes);
        if self.spare.is_none() {
            // A build in progress on the background thread: wait for it (never longer than building).
            self.receive_spare(shape, true);
        }
        let (file, map, source) = match self.spare.take() {
            Some(spare) if spare.map.len() as u64 == bytes => {
                self.spares_taken += 1;
                let source = self.path(SPARE_NAME);
                (spare.file, spare.map, source)
            }
            _ => {
                let source = self.path(&format!("{id:020}{SEGMENT_TEMP_SUFFIX}"));
                let spare = build_zeroed(&source, id, shape)?;
                (spare.file, spare.map, source)
            }
        };
        let io = |what: &str, e| StorageError::io(format!("{what} {}", source.display()), e);
        // The header is made durable by the journal's first sync of this segment, which starts at
        // offset 0 (the `Storage::create_segment` contract): no data sync here.
        file.write_all_at(header, 0).map_err(|e| io("write header", e))?;
        std::fs::rename(&source, &target).map_err(|e| io("rename", e))?;
        if self.name_syncs {
            sync_directory(&self.dir)?;
        }
        let at = self.segments.partition_point(|s| s.id < id);
        self.segments.insert(at, Segment { id, file, map });
        // The spare was taken (or missing): the background builder starts on the next one now, so that
        // it is ready long before the next roll.
        if let Some(builder) = self.builder.as_mut() {
            builder.order(self.dir.join(SPARE_NAME), shape);
            // The segments before the previous one are not written again: the retiring thread unmaps
            // them and writes them back (see "Retired segments" in the module header).
            for old in &mut self.segments[..at.saturating_sub(1)] {
                if !old.map.is_mapped() {
                    continue;
                }
                let Ok(file) = old.file.try_clone() else {
                    continue;
                };
                builder.retire(
                    file,
                    old.map.unmapped(),
                    self.cached_segments.saturating_sub(WRITER_SEGMENTS),
                );
            }
        }
        Ok(())
    }

    fn choose_write_mode(&mut self, syncs: bool) -> Result<(), StorageError> {
        if self.read_only {
            return Ok(());
        }
        self.name_syncs = syncs;
        if self.mode != WriteMode::Auto {
            return Ok(());
        }
        if syncs {
            self.mode = WriteMode::WriteCalls;
            return Ok(());
        }
        self.flush_pending()?;
        self.mode = WriteMode::Mapped;
        // No syncs will follow: new segments keep the unwritten extents of `posix_fallocate` (they read
        // as zeroes) instead of writing and syncing their zeroes, which only spares later syncs work.
        self.write_zeroes = false;
        // A spare prepared before the choice is mapped read-only: build it again later.
        self.spare = None;
        // The writer continues in the last segment: map it writable (older ones are never written
        // again and keep their read-only mappings; `write` and `sync` handle both kinds).
        if let Some(last) = self.segments.len().checked_sub(1) {
            let path = self.path(&segment_name(self.segments[last].id));
            let map = map_file(&self.segments[last].file, &path, true, false)?;
            self.segments[last].map = map;
        }
        Ok(())
    }

    fn prepare_spare_segment(&mut self, bytes: u64) -> Result<bool, StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        if self.spare.as_ref().is_some_and(|s| s.map.len() as u64 == bytes) {
            return Ok(false);
        }
        self.spare = None;
        let shape = self.spare_shape(bytes);
        let path = self.path(SPARE_NAME);
        if self.builder.is_some() {
            if let Some(error) = self.receive_spare(shape, false) {
                return Err(error);
            }
            if self.spare.is_some() {
                return Ok(true);
            }
            return Ok(self.builder.as_mut().is_some_and(|b| b.order(path, shape)));
        }
        self.spare = Some(build_zeroed(&path, u64::MAX, shape)?);
        Ok(true)
    }

    fn remove_segment(&mut self, id: u64) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        let index = self
            .segments
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| StorageError::NotFound(format!("segment {id}")))?;
        if self.pending_segment == id {
            self.pending.clear();
        }
        self.segments.remove(index);
        let path = self.path(&segment_name(id));
        std::fs::remove_file(&path).map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
        sync_directory(&self.dir)
    }

    fn segment(&self, id: u64) -> &[u8] {
        self.find(id).map(Segment::bytes).unwrap_or(&[])
    }

    fn release_segment(&mut self, id: u64) {
        // The writer's own mappings are retired at its rolls, never here.
        if let Some(segment) = self.find_mut(id)
            && !matches!(segment.map, Map::ReadWrite(_))
        {
            drop(segment.map.unmapped());
        }
    }

    fn write(&mut self, id: u64, offset: u64, bytes: &[u8]) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        let segment = self.find_mut(id).expect("write to a segment that does not exist");
        let segment_bytes = segment.map.len();
        assert!(
            offset as usize + bytes.len() <= segment_bytes,
            "write past the end of segment {id}"
        );
        if let Map::ReadWrite(map) = &mut segment.map {
            map[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
            return Ok(());
        }
        let contiguous =
            self.pending_segment == id && self.pending_offset + self.pending.len() as u64 == offset;
        if !self.pending.is_empty() && (!contiguous || self.pending.len() + bytes.len() > WRITE_BUFFER_BYTES)
        {
            self.flush_pending()?;
        }
        if bytes.len() > WRITE_BUFFER_BYTES {
            let segment = self.find(id).expect("checked above");
            return segment
                .file
                .write_all_at(bytes, offset)
                .map_err(|e| StorageError::io(format!("pwrite segment {id} at {offset}"), e));
        }
        if self.pending.is_empty() {
            self.pending_segment = id;
            self.pending_offset = offset;
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn write_record(
        &mut self,
        id: u64,
        offset: u64,
        header: &[u8; RECORD_HEADER_BYTES as usize],
        payload: &[u8],
    ) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        let segment = self.find_mut(id).expect("write to a segment that does not exist");
        if let Map::ReadWrite(map) = &mut segment.map {
            // One lookup and one bounds check; the header copy has a fixed size (no memcpy call).
            let start = offset as usize;
            let payload_start = start + header.len();
            let end = payload_start + payload.len();
            assert!(end <= map.len(), "write past the end of segment {id}");
            let padded_end = start + crate::format::record_bytes(payload.len() as u32) as usize;
            assert!(padded_end <= map.len(), "write past the end of segment {id}");
            stream_record(&mut map[start..padded_end], header, payload);
            return Ok(());
        }
        self.write(id, offset, header)?;
        self.write(id, offset + header.len() as u64, payload)
    }

    fn write_new_record(
        &mut self,
        id: u64,
        offset: u64,
        kind: u16,
        sequence: u64,
        payload: &[u8],
    ) -> Result<RecordHeader, StorageError> {
        if !self.read_only
            && let Some(segment) = self.find_mut(id)
            && let Map::ReadWrite(map) = &mut segment.map
        {
            let start = offset as usize;
            let end = start + record_bytes(payload.len() as u32) as usize;
            assert!(end <= map.len(), "write past the end of segment {id}");
            return Ok(stream_new_record(&mut map[start..end], kind, sequence, payload));
        }
        super::write_new_record_in_two_passes(self, id, offset, kind, sequence, payload)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.flush_pending()
    }

    fn sync(&mut self, id: u64, offset: u64, bytes: u64) -> Result<(), StorageError> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        self.flush_pending()?;
        let segment = self
            .find(id)
            .ok_or_else(|| StorageError::NotFound(format!("segment {id}")))?;
        match &segment.map {
            Map::ReadWrite(map) => map
                .flush_range(offset as usize, bytes as usize)
                .map_err(|e| StorageError::io(format!("msync segment {id} at {offset}"), e)),
            Map::ReadOnly(_) | Map::Lazy { .. } => segment
                .file
                .sync_data()
                .map_err(|e| StorageError::io(format!("fdatasync segment {id}"), e)),
        }
    }

    fn file_names(&mut self) -> Result<Vec<String>, StorageError> {
        Ok(self
            .list_names()?
            .into_iter()
            .filter(|n| parse_segment_name(n).is_none() && !n.ends_with(SEGMENT_TEMP_SUFFIX))
            .collect())
    }

    fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        if !self.files_writable {
            return Err(StorageError::ReadOnly);
        }
        let path = self.path(name);
        std::fs::write(&path, bytes).map_err(|e| StorageError::io(format!("write {}", path.display()), e))
    }

    fn sync_file(&mut self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
        file.sync_all()
            .map_err(|e| StorageError::io(format!("fsync {}", path.display()), e))
    }

    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let (from, to) = (self.path(from), self.path(to));
        std::fs::rename(&from, &to).map_err(|e| StorageError::io(format!("rename {}", from.display()), e))
    }

    fn remove_file(&mut self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        std::fs::remove_file(&path).map_err(|e| StorageError::io(format!("remove {}", path.display()), e))
    }

    fn sync_dir(&mut self) -> Result<(), StorageError> {
        sync_directory(&self.dir)
    }

    fn read_file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(format!("read {}", path.display()), e)),
        }
    }
}

impl Drop for MmapStorage {
    fn drop(&mut self) {
        // Best effort: a committed batch was already flushed; this hands over an unfinished one.
        let _ = self.flush_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_record_streamed_with_its_crc_is_the_record_encoded_then_copied() {
        let dir = temp_dir("fused");
        let mut storage = MmapStorage::open_with(&dir, WriteMode::Mapped).expect("storage");
        storage.create_segment(1, 1 << 16, b"header").expect("segment");
        let mut offset = 64u64;
        for len in 0..=72usize {
            let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37) ^ len as u8).collect();
            let (kind, sequence) = (0x0100 + len as u16, 1_000_000 + len as u64);
            let header = storage
                .write_new_record(1, offset, kind, sequence, &payload)
                .expect("write");
            assert_eq!(
                header,
                RecordHeader::new(kind, sequence, &payload),
                "payload of {len} bytes"
            );
            storage.flush().expect("flush");
            let mut expected = header.encode().to_vec();
            expected.extend_from_slice(&payload);
            expected.resize(record_bytes(len as u32) as usize, 0);
            let start = offset as usize;
            assert_eq!(
                &storage.segment(1)[start..start + expected.len()],
                expected.as_slice()
            );
            offset += expected.len() as u64;
        }
        drop(storage);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bourse-mmap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_checkpoint_storage_writes_checkpoints_beside_a_writer_and_never_its_segments() {
        let dir = temp_dir("checkpoints");
        let mut writer = MmapStorage::open_with(&dir, WriteMode::WriteCalls).expect("writer");
        writer.create_segment(1, 4096, b"first").expect("segment 1");
        // The writer's spare in the making: opening for checkpoints must not remove it (`open` does).
        let spare = dir.join(format!("spare{SEGMENT_TEMP_SUFFIX}"));
        std::fs::write(&spare, b"spare").expect("spare");
        let mut files = MmapStorage::open_for_checkpoints(&dir).expect("checkpoint storage");
        assert!(spare.exists());
        crate::checkpoint::write(&mut files, 7, b"state", 2).expect("checkpoint");
        let loaded = crate::checkpoint::load_newest(&mut writer)
            .expect("load")
            .expect("one");
        assert_eq!((loaded.sequence, loaded.blob.as_slice()), (7, &b"state"[..]));
        assert!(matches!(
            files.create_segment(2, 4096, b"second"),
            Err(StorageError::ReadOnly)
        ));
        assert!(matches!(files.write(1, 100, b"x"), Err(StorageError::ReadOnly)));
        // A plain read-only storage writes no file at all.
        let mut reader = MmapStorage::open_read_only(&dir).expect("reader");
        assert!(matches!(
            reader.write_file("x", b"x"),
            Err(StorageError::ReadOnly)
        ));
        drop((files, reader, writer));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_read_only_storage_maps_segments_it_finds_later_at_their_first_read() {
        let dir = temp_dir("lazy");
        let mut writer = MmapStorage::open_with(&dir, WriteMode::WriteCalls).expect("writer");
        writer.create_segment(1, 4096, b"first").expect("segment 1");
        let mut reader = MmapStorage::open_read_only(&dir).expect("reader");
        // Found at open: mapped at once (recovery and tools scan it next).
        assert!(matches!(reader.segments[0].map, Map::ReadOnly(_)));
        writer.create_segment(2, 8192, b"second").expect("segment 2");
        assert_eq!(reader.segment_ids().expect("ids"), vec![1, 2]);
        // Found later (a roll of the writer): opened, not mapped, until something reads it.
        assert!(matches!(&reader.segments[1].map, Map::Lazy { len: 8192, map } if map.get().is_none()));
        assert_eq!(&reader.segment(2)[..6], b"second");
        assert_eq!(reader.segment(2).len(), 8192);
        assert!(matches!(&reader.segments[1].map, Map::Lazy { map, .. } if map.get().is_some()));
        assert_eq!(&reader.segment(1)[..5], b"first");
        drop((reader, writer));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
