//! Read-only inspection of a whole journal for tools: [`verify`] (every CRC, sequence continuity, commit
//! matching, torn tail vs corruption) and [`walk`] (every record in stream order, for `dump`).
//! Neither changes the storage; `Journal::open` is what repairs a torn tail.

use std::collections::BTreeMap;

use crate::JournalError;
use crate::format::{CommitPayload, KIND_COMMIT, KIND_SEGMENT_END};
use crate::scan::{self, Scanner, Step, StopReason};
use crate::storage::Storage;

/// A batch, as its commit record describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// First sequence of the batch.
    pub first_sequence: u64,
    /// Last sequence of the batch.
    pub last_sequence: u64,
    /// Records in the batch.
    pub record_count: u32,
    /// CRC32C of the record CRCs.
    pub batch_crc: u32,
    /// What the writer knew was durable when it wrote the batch.
    pub durable_sequence: u64,
}

/// A record as stored, in stream order (caller records, commits, segment ends).
#[derive(Clone, Copy, Debug)]
pub struct RawRecord<'a> {
    /// Segment id.
    pub segment_id: u64,
    /// Offset of the header in the segment.
    pub offset: u64,
    /// Sequence field.
    pub sequence: u64,
    /// Kind field.
    pub kind: u16,
    /// CRC32C field.
    pub crc: u32,
    /// Payload bytes.
    pub payload: &'a [u8],
    /// For a commit record: the batch it closes.
    pub commit: Option<BatchInfo>,
}

/// The committed caller records of one kind ([`VerifyReport::records_by_kind`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindTotals {
    /// Records.
    pub records: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Their bytes on disk: header, payload and padding (commit records are counted apart, in
    /// [`VerifyReport::record_bytes`] only).
    pub record_bytes: u64,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files.
    pub segments: u32,
    /// First sequence of the journal.
    pub first_sequence: u64,
    /// Last committed sequence.
    pub last_committed: u64,
    /// Committed caller records.
    pub records: u64,
    /// Committed batches.
    pub batches: u64,
    /// Largest batch (records).
    pub batch_records_max: u32,
    /// Payload bytes of committed caller records.
    pub payload_bytes: u64,
    /// Bytes of committed records on disk (headers, padding, commits, segment ends).
    pub record_bytes: u64,
    /// Committed caller records per kind: how many, and their bytes.
    pub records_by_kind: BTreeMap<u16, KindTotals>,
    /// A torn tail that `Journal::open` would cut: (segment id, offset, uncommitted records, non-zero
    /// bytes after the cut).
    pub torn_tail: Option<(u64, u64, u64, u64)>,
    /// Where and why the scan stopped (the end of the log, normally zeroes after the last commit).
    pub stop: Option<(u64, u64, String)>,
    /// The log ends with a segment end right after its last commit, and the segment that follows (its
    /// first sequence here) is not in the directory: the journal's first segments without the rest, as
    /// an archive holds them. Not a torn tail.
    pub continues_at: Option<u64>,
}

/// Calls `visit` for every valid record in stream order up to where the log stops, then checks the rest
/// like recovery does.
///
/// # Errors
/// [`JournalError::Corruption`] naming segment and offset; storage errors.
pub fn walk<S: Storage>(
    storage: &mut S,
    mut visit: impl FnMut(RawRecord<'_>),
) -> Result<VerifyReport, JournalError> {
    let ids = storage.segment_ids()?;
    let scan = scan::recovery_scan(&*storage, ids.clone()).map_err(JournalError::from_corruption)?;
    let mut report = VerifyReport {
        segments: ids.len() as u32,
        first_sequence: scan.first_sequence,
        last_committed: scan.last_committed,
        records: scan.records,
        batches: scan.batches,
        ..VerifyReport::default()
    };
    if ids.is_empty() {
        return Ok(report);
    }
    if let Some((at, reason)) = scan.stop {
        let segment_id = ids[at.segment_index];
        let stop_reason = if reason == StopReason::Invalid(crate::format::Invalid::Zero) {
            "zeroes after the last commit".to_string()
        } else {
            reason.to_string()
        };
        report.stop = Some((segment_id, at.offset, stop_reason));
    }
    let ends_at_segment_end = matches!(scan.stop, Some((at, StopReason::NoNextSegment)) if at == scan.end)
        && scan.uncommitted_records == 0;
    if ends_at_segment_end {
        report.continues_at = Some(scan.last_committed + 1);
    } else if scan.tail_bytes > 0 || scan.uncommitted_records > 0 {
        report.torn_tail = Some((
            ids[scan.end.segment_index],
            scan.end.offset,
            scan.uncommitted_records,
            scan.tail_bytes,
        ));
    }
    let mut pending: Vec<(u16, u64, u64)> = Vec::new();
    let mut scanner = Scanner::new(ids.clone(), 0, ids[0]);
    loop {
        match scanner.step(&*storage) {
            Step::Record { at, header, payload } => {
                pending.push((header.kind, header.payload_bytes as u64, header.record_bytes()));
                visit(RawRecord {
                    segment_id: ids[at.segment_index],
                    offset: at.offset,
                    sequence: header.sequence,
                    kind: header.kind,
                    crc: header.crc,
                    payload,
                    commit: None,
                });
            }
            Step::Commit { at, header, commit } => {
                let CommitPayload {
                    first_sequence,
                    record_count,
                    batch_crc,
                    durable_sequence,
                } = commit;
                for (kind, payload_bytes, record_bytes) in pending.drain(..) {
                    let totals = report.records_by_kind.entry(kind).or_default();
                    totals.records += 1;
                    totals.payload_bytes += payload_bytes;
                    totals.record_bytes += record_bytes;
                    report.payload_bytes += payload_bytes;
                    report.record_bytes += record_bytes;
                }
                report.record_bytes += header.record_bytes();
                report.batch_records_max = report.batch_records_max.max(record_count);
                let bytes = storage.segment(ids[at.segment_index]);
                let payload = crate::format::decode_record(bytes, at.offset)
                    .map(|(_, p)| p)
                    .unwrap_or(&[]);
                visit(RawRecord {
                    segment_id: ids[at.segment_index],
                    offset: at.offset,
                    sequence: header.sequence,
                    kind: KIND_COMMIT,
                    crc: header.crc,
                    payload,
                    commit: Some(BatchInfo {
                        first_sequence,
                        last_sequence: header.sequence,
                        record_count,
                        batch_crc,
                        durable_sequence,
                    }),
                });
            }
            Step::SegmentEnd { at } => {
                report.record_bytes += crate::format::SEGMENT_END_RECORD_BYTES as u64;
                visit(RawRecord {
                    segment_id: ids[at.segment_index],
                    offset: at.offset,
                    sequence: scanner.next_sequence,
                    kind: KIND_SEGMENT_END,
                    crc: 0,
                    payload: &[],
                    commit: None,
                });
            }
            Step::SegmentStart => {}
            Step::Stop { .. } => break,
        }
    }
    Ok(report)
}

/// Checks the whole journal (every CRC, sequence continuity, commits) without changing it.
///
/// # Errors
/// [`JournalError::Corruption`] naming segment and offset; storage errors.
pub fn verify<S: Storage>(storage: &mut S) -> Result<VerifyReport, JournalError> {
    walk(storage, |_| {})
}
