//! Walking the record stream: the [`Scanner`] state machine (used by recovery, verify and readers), the
//! search that tells a torn tail from corruption, and the recovery scan.
//!
//! # Stream rules (see `docs/journal.md`, "Recovery")
//! Segments are read in id order; in each, records follow the header back to back. A caller record must
//! carry the next sequence number; a commit must match its batch (first sequence, count, CRC of the
//! record CRCs); a segment-end record sends the scan to the next segment, whose header must name the next
//! sequence. The first place where this fails is the *stop point*.
//!
//! At the stop point, recovery looks at everything after it for a *complete later batch* (records with
//! consecutive sequences closed by a matching commit). If one exists and its commit says that data past
//! the last good commit was already durable when it was written, durable data was lost: corruption,
//! reported with the segment and offset of the stop point. Otherwise the region is a torn tail: the log
//! ends at the last good commit, and what lies after it was never released.

use crate::format::{
    self, COMMIT_PAYLOAD_BYTES, CommitPayload, Invalid, KIND_COMMIT, KIND_RESERVED_MIN, KIND_SEGMENT_END,
    RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::reader::Record;
use crate::storage::Storage;

/// A place in the stream: a segment (by index in the scanner's id list) and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cursor {
    pub(crate) segment_index: usize,
    pub(crate) offset: u64,
}

/// Why the scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The bytes there are not a valid record.
    Invalid(Invalid),
    /// The segment header is missing or damaged.
    SegmentHeader,
    /// A record with the wrong sequence number.
    Sequence {
        /// Sequence that should come next.
        expected: u64,
        /// Sequence found.
        found: u64,
    },
    /// A commit that does not match the records before it.
    CommitMismatch,
    /// A record kind reserved by the journal but unknown.
    UnknownReservedKind(u16),
    /// A segment-end record with no next segment (yet).
    NoNextSegment,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Invalid(Invalid::Zero) => write!(f, "zeroed record header"),
            StopReason::Invalid(Invalid::Length) => write!(f, "record length runs past the segment"),
            StopReason::Invalid(Invalid::Kind) => write!(f, "invalid record kind or reserved bytes"),
            StopReason::Invalid(Invalid::Crc) => write!(f, "record CRC mismatch"),
            StopReason::SegmentHeader => write!(f, "invalid segment header"),
            StopReason::Sequence { expected, found } => {
                write!(f, "sequence {found} where {expected} was due")
            }
            StopReason::CommitMismatch => write!(f, "commit record does not match its batch"),
            StopReason::UnknownReservedKind(kind) => write!(f, "unknown reserved kind {kind:#06x}"),
            StopReason::NoNextSegment => write!(f, "segment end with no next segment"),
        }
    }
}

/// One step of the scanner.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A caller record.
    Record {
        at: Cursor,
        header: RecordHeader,
        payload: &'a [u8],
    },
    /// A commit record closing a batch.
    Commit {
        at: Cursor,
        header: RecordHeader,
        commit: CommitPayload,
    },
    /// A valid segment header was passed (the scan entered a segment).
    SegmentStart,
    /// A segment-end record: the scan moves to the next segment.
    SegmentEnd { at: Cursor },
    /// The stream cannot go on here.
    Stop { at: Cursor, reason: StopReason },
}

/// The last commit point the scanner passed: where a writer would continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommitMark {
    pub(crate) at: Cursor,
    /// Last committed sequence (first sequence - 1 if none).
    pub(crate) last_sequence: u64,
}

/// The stream state machine (see the module header).
#[derive(Clone, Debug)]
pub(crate) struct Scanner {
    pub(crate) ids: Vec<u64>,
    pub(crate) at: Cursor,
    pub(crate) next_sequence: u64,
    batch_first_sequence: u64,
    pub(crate) batch_records: u32,
    batch_crc: u32,
    pub(crate) mark: CommitMark,
}

impl Scanner {
    /// A scanner at the start of segment `segment_index`, expecting `next_sequence`.
    pub(crate) fn new(ids: Vec<u64>, segment_index: usize, next_sequence: u64) -> Scanner {
        let at = Cursor {
            segment_index,
            offset: 0,
        };
        Scanner {
            ids,
            at,
            next_sequence,
            batch_first_sequence: 0,
            batch_records: 0,
            batch_crc: 0,
            mark: CommitMark {
                at,
                last_sequence: next_sequence - 1,
            },
        }
    }

    /// A scanner at a record boundary inside a segment, with no batch open (used by the search).
    fn at_record(ids: Vec<u64>, at: Cursor, next_sequence: u64) -> Scanner {
        let mut scanner = Scanner::new(ids, at.segment_index, next_sequence);
        scanner.at = at;
        scanner.mark.at = at;
        scanner
    }

    /// Moves the commit point to `at` / `last_sequence` without reading what lies before it (the caller
    /// vouches for it: the in-process writer committed it).
    pub(crate) fn trust_to(&mut self, at: Cursor, last_sequence: u64) {
        self.mark = CommitMark { at, last_sequence };
        self.rewind();
    }

    /// Goes back to the last commit point (a batch in progress is dropped from the scan).
    pub(crate) fn rewind(&mut self) {
        self.at = self.mark.at;
        self.next_sequence = self.mark.last_sequence + 1;
        self.batch_first_sequence = 0;
        self.batch_records = 0;
        self.batch_crc = 0;
    }

    /// Decodes what is at the cursor and moves past it.
    pub(crate) fn step<'s, S: Storage>(&mut self, storage: &'s S) -> Step<'s> {
        let at = self.at;
        let stop = |reason| Step::Stop { at, reason };
        let bytes = storage.segment(self.ids[at.segment_index]);
        if at.offset == 0 {
            match SegmentHeader::decode(bytes) {
                Some(h)
                    if h.first_sequence == self.next_sequence
                        && h.first_sequence == self.ids[at.segment_index]
                        && h.segment_bytes == bytes.len() as u64 =>
                {
                    self.at.offset = SEGMENT_HEADER_BYTES as u64;
                    if self.batch_records == 0 {
                        self.mark.at = self.at;
                    }
                    return Step::SegmentStart;
                }
                _ => return stop(StopReason::SegmentHeader),
            }
        }
        let (header, payload) = match format::decode_record(bytes, at.offset) {
            Ok(decoded) => decoded,
            Err(invalid) => return stop(StopReason::Invalid(invalid)),
        };
        match header.kind {
            KIND_COMMIT => {
                let Some(commit) = CommitPayload::decode(payload) else {
                    return stop(StopReason::CommitMismatch);
                };
                if self.batch_records == 0
                    || commit.first_sequence != self.batch_first_sequence
                    || commit.record_count != self.batch_records
                    || commit.batch_crc != self.batch_crc
                    || header.sequence != self.next_sequence - 1
                {
                    return stop(StopReason::CommitMismatch);
                }
                self.at.offset += header.record_bytes();
                self.batch_first_sequence = 0;
                self.batch_records = 0;
                self.batch_crc = 0;
                self.mark = CommitMark {
                    at: self.at,
                    last_sequence: header.sequence,
                };
                Step::Commit { at, header, commit }
            }
            KIND_SEGMENT_END => {
                if header.sequence != self.next_sequence || header.payload_bytes != 0 {
                    return stop(StopReason::Sequence {
                        expected: self.next_sequence,
                        found: header.sequence,
                    });
                }
                if at.segment_index + 1 >= self.ids.len() {
                    return stop(StopReason::NoNextSegment);
                }
                self.at = Cursor {
                    segment_index: at.segment_index + 1,
                    offset: 0,
                };
                Step::SegmentEnd { at }
            }
            kind if kind >= KIND_RESERVED_MIN => stop(StopReason::UnknownReservedKind(kind)),
            _ => {
                if header.sequence != self.next_sequence {
                    return stop(StopReason::Sequence {
                        expected: self.next_sequence,
                        found: header.sequence,
                    });
                }
                self.take_record(&header);
                Step::Record { at, header, payload }
            }
        }
    }

    /// Moves past a valid caller record carrying `next_sequence`: adds it to the open batch.
    #[inline]
    fn take_record(&mut self, header: &RecordHeader) {
        if self.batch_records == 0 {
            self.batch_first_sequence = header.sequence;
        }
        self.batch_records += 1;
        self.batch_crc = format::batch_crc_append(self.batch_crc, header.crc);
        self.next_sequence += 1;
        self.at.offset += header.record_bytes();
    }

    /// The fast path of a scan that needs no per-record [`Step`]: passes the caller records at the
    /// cursor, in the current segment, that [`Scanner::step`] would pass as `Step::Record` (valid, CRC
    /// checked, carrying the next sequence), and stops before anything else (a commit, a segment end, an
    /// invalid record, a wrong sequence, a segment header), which `step` then handles. Returns how many
    /// records it passed.
    pub(crate) fn pass_records<S: Storage>(&mut self, storage: &S) -> u64 {
        if self.at.offset == 0 {
            return 0;
        }
        let bytes = storage.segment(self.ids[self.at.segment_index]);
        let mut passed = 0;
        while let Ok((header, _)) = format::decode_record(bytes, self.at.offset) {
            if header.kind >= KIND_RESERVED_MIN || header.sequence != self.next_sequence {
                break;
            }
            self.take_record(&header);
            passed += 1;
        }
        passed
    }
}

/// A complete later batch found after a stop point.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LaterBatch {
    pub(crate) at: Cursor,
    pub(crate) first_sequence: u64,
    pub(crate) durable_sequence: u64,
}

/// Looks after `from` for a complete batch whose commit claims `durable_sequence > last_good`: proof
/// that durable data was lost. Returns the first such batch. Linear in the bytes searched: a chain that
/// fails is never re-walked from one of its own records.
pub(crate) fn find_durable_later_batch<S: Storage>(
    storage: &S,
    ids: &[u64],
    from: Cursor,
    last_good: u64,
) -> Option<LaterBatch> {
    let align = RECORD_ALIGN_BYTES as u64;
    let mut segment_index = from.segment_index;
    let mut offset = (from.offset + align).max(SEGMENT_HEADER_BYTES as u64);
    while segment_index < ids.len() {
        let bytes = storage.segment(ids[segment_index]);
        let mut moved_segment = false;
        while offset + RECORD_HEADER_BYTES as u64 <= bytes.len() as u64 {
            let (header, _) = match format::decode_record(bytes, offset) {
                Ok(decoded) => decoded,
                Err(_) => {
                    // Skip zeroes fast: a record header holds a non-zero byte among its 24, so no record
                    // can start more than 23 bytes before the next non-zero byte.
                    let Some(nonzero) = next_nonzero(bytes, offset + align) else {
                        break;
                    };
                    let earliest = nonzero
                        .saturating_sub(RECORD_HEADER_BYTES as u64 - 1)
                        .div_ceil(align)
                        * align;
                    offset = earliest.max(offset + align);
                    continue;
                }
            };
            if header.kind >= KIND_RESERVED_MIN {
                offset += header.record_bytes();
                continue;
            }
            // Try a batch starting at this record.
            let at = Cursor {
                segment_index,
                offset,
            };
            let mut chain = Scanner::at_record(ids.to_vec(), at, header.sequence);
            let resume = loop {
                match chain.step(storage) {
                    Step::Record { .. } | Step::SegmentStart | Step::SegmentEnd { .. } => {}
                    Step::Commit { commit, .. } => {
                        if commit.durable_sequence > last_good {
                            return Some(LaterBatch {
                                at,
                                first_sequence: commit.first_sequence,
                                durable_sequence: commit.durable_sequence,
                            });
                        }
                        break chain.at;
                    }
                    Step::Stop { at: stop_at, reason } => {
                        let skip = if reason == StopReason::CommitMismatch {
                            format::record_bytes(COMMIT_PAYLOAD_BYTES)
                        } else {
                            align
                        };
                        break Cursor {
                            segment_index: stop_at.segment_index,
                            offset: stop_at.offset + skip,
                        };
                    }
                }
            };
            if resume.segment_index != segment_index {
                segment_index = resume.segment_index;
                offset = resume.offset.max(SEGMENT_HEADER_BYTES as u64);
                moved_segment = true;
                break;
            }
            offset = resume.offset.max(offset + align);
        }
        if !moved_segment {
            segment_index += 1;
            offset = SEGMENT_HEADER_BYTES as u64;
        }
    }
    None
}

/// Bytes per step of the zero scans (a cache line).
const ZERO_SCAN_CHUNK_BYTES: usize = 64;

fn chunk_is_zero(chunk: &[u8]) -> bool {
    if chunk.len() == ZERO_SCAN_CHUNK_BYTES {
        let mut acc = 0u64;
        for word in chunk.chunks_exact(8) {
            acc |= u64::from_ne_bytes([
                word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
            ]);
        }
        return acc == 0;
    }
    chunk.iter().all(|&b| b == 0)
}

/// Offset of the first non-zero byte of `bytes` at or after `from`, if any.
pub(crate) fn next_nonzero(bytes: &[u8], from: u64) -> Option<u64> {
    let from = (from as usize).min(bytes.len());
    let mut at = from;
    // Byte steps up to a chunk boundary, then whole chunks, then the rest.
    while at < bytes.len() && !at.is_multiple_of(ZERO_SCAN_CHUNK_BYTES) {
        if bytes[at] != 0 {
            return Some(at as u64);
        }
        at += 1;
    }
    for chunk in bytes[at..].chunks(ZERO_SCAN_CHUNK_BYTES) {
        if !chunk_is_zero(chunk) {
            let inside = chunk.iter().position(|&b| b != 0).expect("non-zero chunk");
            return Some((at + inside) as u64);
        }
        at += chunk.len();
    }
    None
}

/// Offset one past the last non-zero byte of `bytes` at or after `from` (`from` if none).
pub(crate) fn nonzero_end(bytes: &[u8], from: u64) -> u64 {
    let from = (from as usize).min(bytes.len());
    let mut end = bytes.len();
    while end > from {
        let start = end.saturating_sub(ZERO_SCAN_CHUNK_BYTES).max(from);
        let chunk = &bytes[start..end];
        if !chunk_is_zero(chunk) {
            let last = chunk.iter().rposition(|&b| b != 0).expect("non-zero chunk");
            return (start + last + 1) as u64;
        }
        end = start;
    }
    from as u64
}

/// What a recovery scan found.
#[derive(Clone, Debug)]
pub(crate) struct RecoveryScan {
    pub(crate) ids: Vec<u64>,
    /// Where the committed log ends (the writer continues here). `offset == 0`: that segment and all
    /// later ones hold nothing committed.
    pub(crate) end: Cursor,
    pub(crate) first_sequence: u64,
    pub(crate) last_committed: u64,
    pub(crate) records: u64,
    pub(crate) batches: u64,
    /// Valid records of the unfinished batch after `end` (dropped by repair).
    pub(crate) uncommitted_records: u64,
    /// Non-zero bytes after `end` (in its segment and later segments).
    pub(crate) tail_bytes: u64,
    pub(crate) stop: Option<(Cursor, StopReason)>,
    /// Segments whose first record starts a batch (no batch spans into them), ascending: the points
    /// where the journal may be cut when older segments are archived.
    pub(crate) aligned: Vec<u64>,
}

/// Corruption of committed data, found by [`recovery_scan`].
#[derive(Clone, Debug)]
pub(crate) struct Corruption {
    pub(crate) segment_id: u64,
    pub(crate) offset: u64,
    pub(crate) reason: StopReason,
    pub(crate) later: LaterBatch,
    pub(crate) later_segment_id: u64,
}

/// Why a recovery scan with a batch visitor did not finish.
#[derive(Debug)]
pub(crate) enum ScanError<E> {
    /// Committed data is damaged.
    Corruption(Corruption),
    /// The batch visitor failed (the scan stopped there).
    Visitor(E),
}

/// Walks the records between `from` (a record boundary or a segment start) and `to` (exclusive) that a
/// scan has already checked, calling `visit` for caller records with sequence >= `from_sequence`. Returns
/// how many it visited.
///
/// # Errors
/// The visitor's error (the walk stops there); `None` inside means the checked bytes changed underneath
/// (segment, offset).
pub(crate) fn visit_checked<S: Storage, E>(
    storage: &S,
    ids: &[u64],
    from: Cursor,
    to: Cursor,
    from_sequence: u64,
    visit: &mut impl FnMut(Record<'_>) -> Result<(), E>,
) -> Result<u64, Result<E, (u64, u64)>> {
    let mut at = from;
    let mut count = 0u64;
    while at < to {
        let segment_id = ids[at.segment_index];
        let bytes = storage.segment(segment_id);
        let stop = if at.segment_index == to.segment_index {
            to.offset
        } else {
            bytes.len() as u64
        };
        let mut offset = at.offset.max(SEGMENT_HEADER_BYTES as u64);
        let mut next_segment = false;
        while offset < stop {
            let Some((header, payload)) = format::decode_record_trusted(bytes, offset) else {
                return Err(Err((segment_id, offset)));
            };
            match header.kind {
                KIND_SEGMENT_END => {
                    next_segment = true;
                    break;
                }
                KIND_COMMIT => {}
                kind if kind >= KIND_RESERVED_MIN => return Err(Err((segment_id, offset))),
                _ if header.sequence >= from_sequence => {
                    visit(Record {
                        sequence: header.sequence,
                        kind: header.kind,
                        payload,
                        segment_id,
                        offset,
                    })
                    .map_err(Ok)?;
                    count += 1;
                }
                _ => {}
            }
            offset += header.record_bytes();
        }
        if !next_segment && at.segment_index == to.segment_index {
            break;
        }
        at = Cursor {
            segment_index: at.segment_index + 1,
            offset: 0,
        };
    }
    Ok(count)
}

/// Scans the whole stream, tells torn tail from corruption; changes nothing.
pub(crate) fn recovery_scan<S: Storage>(storage: &S, ids: Vec<u64>) -> Result<RecoveryScan, Corruption> {
    let no_visits = |_: &S, _: &[u64], _: Cursor, _: Cursor| Ok::<(), std::convert::Infallible>(());
    recovery_scan_visiting(storage, ids, no_visits).map_err(|e| match e {
        ScanError::Corruption(c) => c,
        ScanError::Visitor(never) => match never {},
    })
}

/// [`recovery_scan`], calling `on_batch(storage, ids, batch_start, commit_at)` for each batch as soon as
/// its commit record is checked (the batch's bytes are still in the CPU cache then).
pub(crate) fn recovery_scan_visiting<S: Storage, E>(
    storage: &S,
    ids: Vec<u64>,
    mut on_batch: impl FnMut(&S, &[u64], Cursor, Cursor) -> Result<(), E>,
) -> Result<RecoveryScan, ScanError<E>> {
    let mut scan = RecoveryScan {
        ids: ids.clone(),
        end: Cursor {
            segment_index: 0,
            offset: 0,
        },
        first_sequence: ids.first().copied().unwrap_or(1),
        last_committed: ids.first().copied().unwrap_or(1) - 1,
        records: 0,
        batches: 0,
        uncommitted_records: 0,
        tail_bytes: 0,
        stop: None,
        aligned: Vec::new(),
    };
    if ids.is_empty() {
        return Ok(scan);
    }
    let mut scanner = Scanner::new(ids.clone(), 0, ids[0]);
    let (stop_at, reason) = loop {
        scanner.pass_records(storage);
        // Where the open batch started (the mark moves only at commits and empty segment starts).
        let batch_start = scanner.mark.at;
        match scanner.step(storage) {
            Step::SegmentStart => {
                if scanner.batch_records == 0 {
                    scan.aligned.push(scanner.ids[scanner.at.segment_index]);
                }
            }
            Step::Record { .. } | Step::SegmentEnd { .. } => {}
            Step::Commit { at, commit, .. } => {
                scan.records += commit.record_count as u64;
                scan.batches += 1;
                on_batch(storage, &scanner.ids, batch_start, at).map_err(ScanError::Visitor)?;
            }
            Step::Stop { at, reason } => break (at, reason),
        }
    };
    scan.end = scanner.mark.at;
    scan.last_committed = scanner.mark.last_sequence;
    scan.uncommitted_records = scanner.batch_records as u64;
    scan.stop = Some((stop_at, reason));
    if let Some(later) = find_durable_later_batch(storage, &ids, stop_at, scan.last_committed) {
        return Err(ScanError::Corruption(Corruption {
            segment_id: ids[stop_at.segment_index],
            offset: stop_at.offset,
            reason,
            later,
            later_segment_id: ids[later.at.segment_index],
        }));
    }
    // Everything non-zero after the end is the torn tail.
    for (index, &id) in ids.iter().enumerate().skip(scan.end.segment_index) {
        let bytes = storage.segment(id);
        let from = if index == scan.end.segment_index {
            scan.end.offset
        } else {
            0
        };
        let end = nonzero_end(bytes, from);
        scan.tail_bytes += end - from;
    }
    Ok(scan)
}
