//! On-disk formats: the segment header, the record header, the commit payload, the checkpoint file.
//!
//! Byte tables are in `docs/journal.md`; this module is their only encoder and decoder. Every integer is
//! little-endian, every size is a `u32` or `u64` (never `usize`), and every record starts at an offset
//! that is a multiple of [`RECORD_ALIGN_BYTES`].
//!
//! # Invariants
//! - A record is valid only if its CRC32C (over header bytes 4..24 and the payload) matches, its kind is
//!   not 0, and it fits inside its segment. An all-zero header is never valid (kind 0, and the CRC of 20
//!   zero bytes is not 0), so zero-filled space is never taken for data.
//! - Kinds at or above [`KIND_RESERVED_MIN`] belong to the journal ([`KIND_COMMIT`], [`KIND_SEGMENT_END`]).

use crate::crc;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BRSJRNL1";
/// Magic bytes at the start of every checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"BRSCKPT1";
/// On-disk format version of segments and checkpoints.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header; the first record starts here.
pub const SEGMENT_HEADER_BYTES: u32 = 64;
/// Size of a record header.
pub const RECORD_HEADER_BYTES: u32 = 24;
/// Records start at multiples of this many bytes; payloads are zero-padded up to it.
pub const RECORD_ALIGN_BYTES: u32 = 8;
/// Payload size of a commit record.
pub const COMMIT_PAYLOAD_BYTES: u32 = 24;
/// Size on disk of a whole commit record.
pub const COMMIT_RECORD_BYTES: u32 = RECORD_HEADER_BYTES + COMMIT_PAYLOAD_BYTES;
/// Size on disk of a segment-end record (no payload).
pub const SEGMENT_END_RECORD_BYTES: u32 = RECORD_HEADER_BYTES;
/// Largest payload the format can describe (the writer's configured limit is usually far lower).
pub const PAYLOAD_BYTES_MAX: u32 = 1 << 30;
/// Kind 0 is never valid: zero-filled space reads as kind 0.
pub const KIND_INVALID: u16 = 0;
/// First kind reserved for the journal itself; callers use `1..KIND_RESERVED_MIN`.
pub const KIND_RESERVED_MIN: u16 = 0xFF00;
/// Ends a batch: sequence = last record of the batch, payload = [`CommitPayload`].
pub const KIND_COMMIT: u16 = 0xFFFF;
/// Marks the intended end of a segment: the stream continues in the next segment.
pub const KIND_SEGMENT_END: u16 = 0xFFFE;
/// Size of the checkpoint file header (the blob follows, then a 4-byte CRC32C trailer).
pub const CHECKPOINT_HEADER_BYTES: u32 = 32;

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(COMMIT_RECORD_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));

/// Bytes a record with `payload_bytes` of payload occupies on disk (header + padded payload).
#[inline]
pub const fn record_bytes(payload_bytes: u32) -> u64 {
    let padded = (payload_bytes as u64).div_ceil(RECORD_ALIGN_BYTES as u64) * RECORD_ALIGN_BYTES as u64;
    RECORD_HEADER_BYTES as u64 + padded
}

#[inline]
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}
#[inline]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}
#[inline]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The header at the start of every segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number of the first record that starts in this segment (the segment's id).
    pub first_sequence: u64,
    /// Size of the segment file in bytes.
    pub segment_bytes: u64,
}

impl SegmentHeader {
    /// Encodes the header into its 64 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES as usize];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&SEGMENT_HEADER_BYTES.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_sequence.to_le_bytes());
        out[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a segment header; `None` if the magic, version, size or CRC is wrong.
    pub fn decode(bytes: &[u8]) -> Option<SegmentHeader> {
        if bytes.len() < SEGMENT_HEADER_BYTES as usize {
            return None;
        }
        let head = &bytes[..SEGMENT_HEADER_BYTES as usize];
        if head[0..8] != SEGMENT_MAGIC
            || u32_at(head, 8) != FORMAT_VERSION
            || u32_at(head, 12) != SEGMENT_HEADER_BYTES
            || crc::crc32c(&head[0..60]) != u32_at(head, 60)
        {
            return None;
        }
        Some(SegmentHeader {
            first_sequence: u64_at(head, 16),
            segment_bytes: u64_at(head, 24),
        })
    }
}

/// A record header as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC32C over header bytes 4..24 and the payload.
    pub crc: u32,
    /// Payload length in bytes (without padding).
    pub payload_bytes: u32,
    /// Sequence number (records of the caller: +1 each; commit: the batch's last; segment end: the next).
    pub sequence: u64,
    /// Record kind.
    pub kind: u16,
}

impl RecordHeader {
    /// Builds the header for `payload`, computing the CRC.
    #[inline]
    pub fn new(kind: u16, sequence: u64, payload: &[u8]) -> RecordHeader {
        assert!(
            payload.len() as u64 <= PAYLOAD_BYTES_MAX as u64,
            "payload over the format limit"
        );
        let mut header = RecordHeader {
            crc: 0,
            payload_bytes: payload.len() as u32,
            sequence,
            kind,
        };
        // Header bytes 4..24 and the payload in one pass, from the fields (nothing encoded twice).
        header.crc = crc::record_crc(header.payload_bytes, sequence, kind, payload);
        header
    }

    /// Encodes the header into its 24 bytes.
    #[inline]
    pub fn encode(&self) -> [u8; RECORD_HEADER_BYTES as usize] {
        // Three whole little-endian words (18..24 reserved, zero), each stored with one 8-byte store: the
        // storage copies the header in 8-byte loads right away, and a load spanning two narrower stores
        // of the same bytes cannot take its data from the store buffer (a store-forwarding stall, which
        // profiles showed on the first copy of every record).
        let words = [
            u64::from(self.crc) | (u64::from(self.payload_bytes) << 32),
            self.sequence,
            u64::from(self.kind),
        ];
        let mut out = [0u8; RECORD_HEADER_BYTES as usize];
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Reads the fields of a 24-byte header (no checks).
    #[inline]
    fn read(head: &[u8]) -> RecordHeader {
        RecordHeader {
            crc: u32_at(head, 0),
            payload_bytes: u32_at(head, 4),
            sequence: u64_at(head, 8),
            kind: u16_at(head, 16),
        }
    }

    /// Bytes the whole record occupies on disk.
    #[inline]
    pub fn record_bytes(&self) -> u64 {
        record_bytes(self.payload_bytes)
    }
}

/// Why the bytes at an offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The header is all zero bytes (never written, or zeroed).
    Zero,
    /// The record would run past the end of the segment.
    Length,
    /// Kind 0, or reserved bytes or padding not zero.
    Kind,
    /// The CRC does not match.
    Crc,
}

/// Decodes the record at `offset` of a segment image and checks its CRC.
///
/// # Errors
/// [`Invalid`] says why the bytes there are not a valid record.
#[inline]
pub fn decode_record(segment: &[u8], offset: u64) -> Result<(RecordHeader, &[u8]), Invalid> {
    let start = offset as usize;
    let header_end = start + RECORD_HEADER_BYTES as usize;
    if !offset.is_multiple_of(RECORD_ALIGN_BYTES as u64) || header_end > segment.len() {
        return Err(Invalid::Length);
    }
    let head = &segment[start..header_end];
    let word = |at: usize| u64_at(head, at);
    if word(0) | word(8) | word(16) == 0 {
        return Err(Invalid::Zero);
    }
    let header = RecordHeader::read(head);
    // Bytes 18..24 are reserved: zero.
    if header.kind == KIND_INVALID || word(16) >> 16 != 0 {
        return Err(Invalid::Kind);
    }
    if header.payload_bytes > PAYLOAD_BYTES_MAX
        || (start as u64) + header.record_bytes() > segment.len() as u64
    {
        return Err(Invalid::Length);
    }
    let payload_end = header_end + header.payload_bytes as usize;
    let record_end = start + header.record_bytes() as usize;
    if segment[payload_end..record_end].iter().any(|&b| b != 0) {
        return Err(Invalid::Kind);
    }
    // Header bytes 4..24 and the payload are contiguous: one CRC pass over both.
    if crc::crc32c(&segment[start + 4..payload_end]) != header.crc {
        return Err(Invalid::Crc);
    }
    Ok((header, &segment[header_end..payload_end]))
}

/// Decodes a record that a scan already checked (CRC included): bounds are checked, the CRC is not
/// recomputed. `None` if the bytes no longer look like a record (changed underneath).
#[inline]
pub fn decode_record_trusted(segment: &[u8], offset: u64) -> Option<(RecordHeader, &[u8])> {
    let start = offset as usize;
    let header_end = start.checked_add(RECORD_HEADER_BYTES as usize)?;
    let head = segment.get(start..header_end)?;
    let header = RecordHeader::read(head);
    if header.kind == KIND_INVALID {
        return None;
    }
    let payload = segment.get(header_end..header_end + header.payload_bytes as usize)?;
    Some((header, payload))
}

/// The payload of a commit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitPayload {
    /// Sequence of the first record of the batch.
    pub first_sequence: u64,
    /// Number of records in the batch (commit excluded).
    pub record_count: u32,
    /// CRC32C over the little-endian record CRCs of the batch, in order.
    pub batch_crc: u32,
    /// Every record up to this sequence was durable, under the writer's sync policy, before this batch
    /// was written (`batch`, `every`: synced; `none`: in the mapping). Recovery uses it to tell a lost
    /// unsynced batch (a crash) from lost durable data (corruption).
    pub durable_sequence: u64,
}

impl CommitPayload {
    /// Encodes the payload into its 24 bytes.
    pub fn encode(&self) -> [u8; COMMIT_PAYLOAD_BYTES as usize] {
        let mut out = [0u8; COMMIT_PAYLOAD_BYTES as usize];
        out[0..8].copy_from_slice(&self.first_sequence.to_le_bytes());
        out[8..12].copy_from_slice(&self.record_count.to_le_bytes());
        out[12..16].copy_from_slice(&self.batch_crc.to_le_bytes());
        out[16..24].copy_from_slice(&self.durable_sequence.to_le_bytes());
        out
    }

    /// Decodes a commit payload; `None` if the length is wrong.
    pub fn decode(payload: &[u8]) -> Option<CommitPayload> {
        if payload.len() != COMMIT_PAYLOAD_BYTES as usize {
            return None;
        }
        Some(CommitPayload {
            first_sequence: u64_at(payload, 0),
            record_count: u32_at(payload, 8),
            batch_crc: u32_at(payload, 12),
            durable_sequence: u64_at(payload, 16),
        })
    }
}

/// Folds one record CRC into a running batch CRC.
#[inline]
pub fn batch_crc_append(batch_crc: u32, record_crc: u32) -> u32 {
    crc::append_u32(batch_crc, record_crc)
}

/// Encodes a checkpoint file: header, blob, CRC32C trailer over both.
pub fn encode_checkpoint(sequence: u64, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_BYTES as usize + blob.len() + 4);
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&CHECKPOINT_HEADER_BYTES.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(blob);
    let crc = crc::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks a checkpoint file; `None` if anything is wrong (torn, truncated, flipped).
pub fn decode_checkpoint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let header = CHECKPOINT_HEADER_BYTES as usize;
    if bytes.len() < header + 4
        || bytes[0..8] != CHECKPOINT_MAGIC
        || u32_at(bytes, 8) != FORMAT_VERSION
        || u32_at(bytes, 12) != CHECKPOINT_HEADER_BYTES
    {
        return None;
    }
    let sequence = u64_at(bytes, 16);
    let blob_bytes = u64_at(bytes, 24);
    if blob_bytes != (bytes.len() - header - 4) as u64 {
        return None;
    }
    let body_end = bytes.len() - 4;
    if crc::crc32c(&bytes[..body_end]) != u32_at(bytes, body_end) {
        return None;
    }
    Some((sequence, &bytes[header..body_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_header_is_invalid() {
        let zeros = [0u8; 64];
        assert_eq!(decode_record(&zeros, 0), Err(Invalid::Zero));
    }

    #[test]
    fn record_round_trips_and_a_flip_is_caught() {
        let payload = b"hello journal";
        let header = RecordHeader::new(7, 42, payload);
        let mut seg = vec![0u8; 128];
        seg[8..32].copy_from_slice(&header.encode());
        seg[32..32 + payload.len()].copy_from_slice(payload);
        let (decoded, got) = decode_record(&seg, 8).expect("valid");
        assert_eq!(decoded, header);
        assert_eq!(got, payload);
        assert_eq!(decoded.record_bytes(), 24 + 16);
        seg[33] ^= 0x10;
        assert_eq!(decode_record(&seg, 8), Err(Invalid::Crc));
    }

    #[test]
    fn segment_header_and_checkpoint_round_trip() {
        let h = SegmentHeader {
            first_sequence: 9,
            segment_bytes: 1 << 20,
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Some(h));
        let file = encode_checkpoint(77, b"snapshot");
        assert_eq!(decode_checkpoint(&file), Some((77, &b"snapshot"[..])));
        assert_eq!(decode_checkpoint(&file[..file.len() - 1]), None);
    }
}
