//! [`Reader`]: reads committed records from any sequence number, and tails a journal that another
//! writer (thread or process) is appending to.
//!
//! # How it reads
//! A [`crate::scan`] scanner runs ahead of the read position and validates every record (CRC, sequence,
//! commit match); the reader returns only records of batches whose commit record the scanner has passed,
//! so an unfinished batch is never seen. When the scanner reaches the end of what is written, the reader
//! returns `None`; calling [`Reader::next_record`] later continues (new segments are picked up).
//!
//! # Sparse index
//! Segment ids are first sequence numbers, so a seek first picks the segment by binary search; inside it,
//! the scanner records one [`IndexEntry`] every [`INDEX_STRIDE_RECORDS`] records, and a seek walks from
//! the nearest entry at or before the target. The index grows by one entry per stride
//! (10 M records: about 2 400 entries).
//!
//! # Limits
//! A reader in another process sees a batch once the writer has committed it (its bytes are in the page
//! cache), which can be before the writer's sync; replies wait for the sync, readers do not. A reader does
//! not tell corruption from an unfinished tail (it just waits); `Journal::open` and `verify` do.

use crate::JournalError;
use crate::format::{self, KIND_COMMIT, KIND_RESERVED_MIN, KIND_SEGMENT_END, SEGMENT_HEADER_BYTES};
use crate::scan::{CommitMark, Cursor, Scanner, Step, StopReason};
use crate::storage::Storage;

/// One index entry per this many records.
pub const INDEX_STRIDE_RECORDS: u64 = 4096;

/// A committed record as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Sequence number.
    pub sequence: u64,
    /// Kind (the caller's, below 0xFF00).
    pub kind: u16,
    /// Payload bytes.
    pub payload: &'a [u8],
    /// Segment holding it.
    pub segment_id: u64,
    /// Offset of its header in that segment.
    pub offset: u64,
}

/// A sparse index entry: where the record with `sequence` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Sequence of the record.
    pub sequence: u64,
    /// Segment id.
    pub segment_id: u64,
    /// Offset in the segment.
    pub offset: u64,
}

/// Reads committed records in order from any sequence (see the module header).
#[derive(Debug)]
pub struct Reader<S: Storage> {
    storage: S,
    /// `None` until the journal has a segment.
    scanner: Option<Scanner>,
    read_at: Cursor,
    /// Records below this sequence are skipped (set by `seek`).
    skip_below: u64,
    index: Vec<IndexEntry>,
}

impl<S: Storage> Reader<S> {
    /// A reader at the start of the journal in `storage`.
    ///
    /// # Errors
    /// Storage errors.
    pub fn new(mut storage: S) -> Result<Reader<S>, JournalError> {
        let ids = storage.segment_ids()?;
        let scanner = ids.first().map(|&first| Scanner::new(ids.clone(), 0, first));
        Ok(Reader {
            storage,
            scanner,
            read_at: Cursor {
                segment_index: 0,
                offset: 0,
            },
            skip_below: 0,
            index: Vec::new(),
        })
    }

    /// A reader positioned at (`segment_id`, `offset`), the point just after the commit of `last_sequence`
    /// ([`crate::Journal::committed_at`]), trusting everything before it (the writer's own committed data,
    /// already checked by recovery): its first record is `last_sequence + 1`, and nothing before is read.
    ///
    /// # Errors
    /// Storage errors; [`JournalError::Config`] if the segment does not exist.
    pub fn with_trusted_prefix(
        mut storage: S,
        segment_id: u64,
        offset: u64,
        last_sequence: u64,
    ) -> Result<Reader<S>, JournalError> {
        let ids = storage.segment_ids()?;
        let segment_index = ids
            .iter()
            .position(|&id| id == segment_id)
            .ok_or_else(|| JournalError::Config(format!("segment {segment_id} not in the journal")))?;
        let mut scanner = Scanner::new(ids, 0, last_sequence + 1);
        let at = Cursor {
            segment_index,
            offset,
        };
        scanner.at = at;
        scanner.mark = CommitMark { at, last_sequence };
        Ok(Reader {
            storage,
            scanner: Some(scanner),
            read_at: at,
            skip_below: last_sequence + 1,
            index: Vec::new(),
        })
    }

    /// A second reader over `storage`, another handle to this reader's journal, at this reader's position
    /// and trusting what this one has already checked (its commit mark and sparse index are copied), so it
    /// goes on from here without scanning the journal again. The two then move independently.
    ///
    /// `storage` must hold the same journal (e.g. a second `MmapStorage::open_read_only` of the same
    /// directory): a reader over other bytes would hand out records it never checked.
    pub fn fork(&self, storage: S) -> Reader<S> {
        Reader {
            storage,
            scanner: self.scanner.clone(),
            read_at: self.read_at,
            skip_below: self.skip_below,
            index: self.index.clone(),
        }
    }

    /// The storage (read access).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Last committed sequence seen by the scanner so far (0 if none).
    pub fn committed_up_to(&self) -> u64 {
        self.scanner.as_ref().map_or(0, |s| s.mark.last_sequence)
    }

    /// The sparse index built so far.
    pub fn index(&self) -> &[IndexEntry] {
        &self.index
    }

    /// Moves the scanner forward to the next commit. `false` if nothing new is committed yet.
    fn advance(&mut self) -> Result<bool, JournalError> {
        if self.scanner.is_none() {
            let ids = self.storage.segment_ids()?;
            let Some(&first) = ids.first() else {
                return Ok(false);
            };
            self.scanner = Some(Scanner::new(ids, 0, first));
        }
        let mut refreshed = false;
        loop {
            let scanner = self.scanner.as_mut().expect("scanner set above");
            match scanner.step(&self.storage) {
                Step::Record { at, header, .. } => {
                    let due = self
                        .index
                        .last()
                        .is_none_or(|e| header.sequence >= e.sequence + INDEX_STRIDE_RECORDS);
                    if due && self.index.last().is_none_or(|e| header.sequence > e.sequence) {
                        self.index.push(IndexEntry {
                            sequence: header.sequence,
                            segment_id: scanner.ids[at.segment_index],
                            offset: at.offset,
                        });
                    }
                }
                Step::Commit { .. } => return Ok(true),
                Step::SegmentStart | Step::SegmentEnd { .. } => {}
                Step::Stop { reason, .. } => {
                    scanner.rewind();
                    if refreshed {
                        return Ok(false);
                    }
                    // A writer elsewhere may have added a segment: look once, then give up for now.
                    let grew =
                        matches!(reason, StopReason::NoNextSegment) || reason == StopReason::SegmentHeader;
                    if !grew {
                        return Ok(false);
                    }
                    let ids = self.storage.segment_ids()?;
                    let scanner = self.scanner.as_mut().expect("scanner set above");
                    if ids.len() == scanner.ids.len() {
                        return Ok(false);
                    }
                    scanner.ids = ids;
                    refreshed = true;
                }
            }
        }
    }

    /// Trusts everything up to the end of `batch`, a batch the in-process writer committed
    /// ([`crate::Journal::last_committed_batch`]), without reading it, and notes its first record in the
    /// sparse index. A reader in the writer's process uses this instead of scanning (and checking the CRC
    /// of) every record a second time. Returns whether the view moved.
    ///
    /// # Errors
    /// Storage errors; [`JournalError::Config`] if the batch's segment is not in the journal.
    pub fn trust_committed(&mut self, batch: &crate::CommittedBatch) -> Result<bool, JournalError> {
        if batch.last_sequence <= self.committed_up_to() {
            return Ok(false);
        }
        if self.scanner.is_none() {
            let ids = self.storage.segment_ids()?;
            let Some(&first) = ids.first() else {
                return Err(JournalError::Config("the journal has no segment".into()));
            };
            self.scanner = Some(Scanner::new(ids, 0, first));
        }
        let known = |s: &Scanner, id: u64| s.ids.iter().position(|&x| x == id);
        let scanner = self.scanner.as_mut().expect("set above");
        if known(scanner, batch.end_segment_id).is_none() {
            let ids = self.storage.segment_ids()?;
            scanner.ids = ids;
        }
        let scanner = self.scanner.as_mut().expect("set above");
        let Some(segment_index) = known(scanner, batch.end_segment_id) else {
            return Err(JournalError::Config(format!(
                "segment {} not in the journal",
                batch.end_segment_id
            )));
        };
        scanner.trust_to(
            Cursor {
                segment_index,
                offset: batch.end_offset,
            },
            batch.last_sequence,
        );
        let due = self
            .index
            .last()
            .is_none_or(|e| batch.first.sequence >= e.sequence + INDEX_STRIDE_RECORDS);
        if due
            && self
                .index
                .last()
                .is_none_or(|e| batch.first.sequence > e.sequence)
        {
            self.index.push(batch.first);
        }
        Ok(true)
    }

    /// Positions the reader so that the next record returned has sequence `sequence` (or the first one
    /// after it, if it is not committed yet).
    ///
    /// # Errors
    /// Storage errors.
    pub fn seek(&mut self, sequence: u64) -> Result<(), JournalError> {
        while self.committed_up_to() < sequence {
            if !self.advance()? {
                break;
            }
        }
        self.skip_below = sequence;
        let Some(scanner) = self.scanner.as_ref() else {
            return Ok(());
        };
        // Segment level: ids are first sequences.
        let segment_index = scanner
            .ids
            .partition_point(|&id| id <= sequence)
            .saturating_sub(1);
        self.read_at = Cursor {
            segment_index,
            offset: 0,
        };
        // Record level: the nearest index entry at or before the target, in the same segment.
        let at = self.index.partition_point(|e| e.sequence <= sequence);
        if at > 0 {
            let entry = self.index[at - 1];
            if let Some(index) = scanner.ids.iter().position(|&id| id == entry.segment_id) {
                let candidate = Cursor {
                    segment_index: index,
                    offset: entry.offset,
                };
                if candidate > self.read_at && candidate < scanner.mark.at {
                    self.read_at = candidate;
                }
            }
        }
        Ok(())
    }

    /// The next committed record, or `None` if the reader has caught up with the writer (call again
    /// later to tail).
    ///
    /// # Errors
    /// Storage errors; [`JournalError::Corruption`] if checked bytes changed underneath.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, JournalError> {
        let (segment_id, offset, header) = 'found: loop {
            let Some(scanner) = self.scanner.as_ref() else {
                if !self.advance()? {
                    return Ok(None);
                }
                continue;
            };
            if self.read_at >= scanner.mark.at {
                if !self.advance()? {
                    return Ok(None);
                }
                continue;
            }
            let segment_id = scanner.ids[self.read_at.segment_index];
            if self.read_at.offset == 0 {
                self.read_at.offset = SEGMENT_HEADER_BYTES as u64;
                continue;
            }
            let at = self.read_at;
            let mark = scanner.mark.at;
            let mut passed = None;
            let bytes = self.storage.segment(segment_id);
            // Records of the same segment up to the scanner's commit mark, without going back round the
            // outer loop (one segment lookup for many records).
            let mut offset = at.offset;
            loop {
                let Some((header, _)) = format::decode_record_trusted(bytes, offset) else {
                    return Err(JournalError::Corruption {
                        segment_id,
                        offset,
                        reason: "checked record changed underneath the reader".into(),
                    });
                };
                match header.kind {
                    KIND_SEGMENT_END => {
                        self.read_at = Cursor {
                            segment_index: at.segment_index + 1,
                            offset: 0,
                        };
                        passed = Some(segment_id);
                        break;
                    }
                    KIND_COMMIT => offset += header.record_bytes(),
                    kind if kind >= KIND_RESERVED_MIN => {
                        unreachable!("the scanner stops at unknown reserved kinds")
                    }
                    _ => {
                        let record_offset = offset;
                        offset += header.record_bytes();
                        if header.sequence >= self.skip_below {
                            self.read_at.offset = offset;
                            break 'found (segment_id, record_offset, header);
                        }
                    }
                }
                let here = Cursor {
                    segment_index: at.segment_index,
                    offset,
                };
                if here >= mark {
                    self.read_at = here;
                    break;
                }
            }
            // Read to its end: the storage may unmap it (a reader keeps one segment mapped, not the
            // whole journal; see `Storage::release_segment`).
            if let Some(id) = passed {
                self.storage.release_segment(id);
            }
        };
        let start = (offset + format::RECORD_HEADER_BYTES as u64) as usize;
        let payload = &self.storage.segment(segment_id)[start..start + header.payload_bytes as usize];
        Ok(Some(Record {
            sequence: header.sequence,
            kind: header.kind,
            payload,
            segment_id,
            offset,
        }))
    }
}
