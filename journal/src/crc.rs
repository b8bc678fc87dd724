//! CRC32C (Castagnoli, reflected polynomial `0x82F63B78`, initial value and final xor `0xFFFF_FFFF`):
//! the checksum of every journal record, segment header and checkpoint file.
//!
//! # Why not the `crc32c` crate
//! Journal records are short (88 bytes for a 64-byte payload). The crate is tuned for long buffers: per
//! call it splits the input at 8-byte alignment and takes the unaligned head and tail one byte per `crc32`
//! instruction, then walks its 3-way-parallel paths; measured on this project's machine it takes about
//! twice as long as a plain loop of `crc32q` over 84 bytes (`docs/PERFORMANCE.md`, "Journal"). Here:
//! - on x86_64 with SSE4.2 (checked once per call with `is_x86_feature_detected!`, which reads a cached
//!   flag): one `crc32` instruction per 8 bytes (unaligned loads), then 4, 2, 1 for the tail;
//! - elsewhere: a portable slicing-by-8 table (8 KiB, built at compile time).
//!
//! [`record_crc`] computes a record's CRC (header bytes 4..24, then the payload) from the header fields
//! in one pass, without encoding the header first; [`record_crc_emitting`] does the same while handing
//! each payload word to the caller, which the mapped storage uses to copy the record in the same pass.
//!
//! # Invariants
//! Both paths give the same value for every input, equal to the `crc32c` crate's (tested against it on
//! random inputs and on the RFC 3720 vectors). Appending is associative over concatenation:
//! `append(append(c, a), b) == append(c, a ++ b)`.
//!
//! # Unsafe
//! The only `unsafe` is calling the SSE4.2 kernel (a `#[target_feature]` function), after the CPU was
//! checked to have the feature; each call is under a `// SAFETY:` comment.
#![allow(
    unsafe_code,
    reason = "SSE4.2 crc32 intrinsics behind a runtime feature check; each block has a SAFETY comment"
)]

/// Reflected CRC32C polynomial.
const POLYNOMIAL: u32 = 0x82F6_3B78;

/// Slicing-by-8 tables: `TABLE[0]` is the byte table; `TABLE[k][b]` is the CRC of byte `b` followed by
/// `k` zero bytes.
static TABLE: [[u32; 256]; 8] = build_table();

const fn build_table() -> [[u32; 256]; 8] {
    let mut table = [[0u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[0][n] = crc;
        n += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut n = 0;
        while n < 256 {
            let previous = table[k - 1][n];
            table[k][n] = table[0][(previous & 0xFF) as usize] ^ (previous >> 8);
            n += 1;
        }
        k += 1;
    }
    table
}

/// The CRC32C of `data`.
#[inline]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    append(0, data)
}

/// Continues `crc` (the CRC32C of earlier bytes) over `data`.
#[inline]
pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE4.2 (checked just above), the only requirement of the
            // `#[target_feature(enable = "sse4.2")]` function; it reads only through the slice.
            return !unsafe { x86::update(!crc, data) };
        }
    }
    !portable::update(!crc, data)
}

/// Continues `crc` over the four little-endian bytes of `value` (the batch CRC folds record CRCs).
#[inline]
pub(crate) fn append_u32(crc: u32, value: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE4.2 (checked just above), the only requirement of the
            // `#[target_feature(enable = "sse4.2")]` function.
            return !unsafe { x86::update_u32(!crc, value) };
        }
    }
    !portable::update(!crc, &value.to_le_bytes())
}

/// The CRC of a record: header bytes 4..24 (`payload_bytes`, `sequence`, `kind`, six reserved zero
/// bytes, all little-endian) followed by `payload`. Equal to `crc32c(&encoded_header[4..] ++ payload)`.
#[inline]
pub(crate) fn record_crc(payload_bytes: u32, sequence: u64, kind: u16, payload: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE4.2 (checked just above), the only requirement of the
            // `#[target_feature(enable = "sse4.2")]` function; it reads only through the slice.
            return !unsafe { x86::record(payload_bytes, sequence, kind, payload) };
        }
    }
    let mut head = [0u8; 20];
    head[0..4].copy_from_slice(&payload_bytes.to_le_bytes());
    head[4..12].copy_from_slice(&sequence.to_le_bytes());
    head[12..14].copy_from_slice(&kind.to_le_bytes());
    !portable::update(portable::update(!0, &head), payload)
}

/// [`record_crc`], handing each payload word to `emit` as it goes (its index from 0, in order; the last,
/// partial word padded with zero bytes), so that a copy of the payload takes its words from the same loads
/// as the checksum. `None` (and nothing emitted) when the CPU lacks SSE4.2.
#[inline]
pub(crate) fn record_crc_emitting(
    payload_bytes: u32,
    sequence: u64,
    kind: u16,
    payload: &[u8],
    emit: impl FnMut(usize, u64),
) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE4.2 (checked just above), the only requirement of the
            // `#[target_feature(enable = "sse4.2")]` function; it reads only through the slice.
            return Some(!unsafe { x86::record_emitting(payload_bytes, sequence, kind, payload, emit) });
        }
    }
    let _ = (payload_bytes, sequence, kind, payload, emit);
    None
}

/// The portable path (also the reference the SSE4.2 path is tested against).
mod portable {
    use super::TABLE;

    /// Updates a raw (pre-inverted) CRC state over `data`, eight bytes per step.
    pub(super) fn update(mut crc: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let low = crc ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            crc = TABLE[7][(low & 0xFF) as usize]
                ^ TABLE[6][((low >> 8) & 0xFF) as usize]
                ^ TABLE[5][((low >> 16) & 0xFF) as usize]
                ^ TABLE[4][(low >> 24) as usize]
                ^ TABLE[3][chunk[4] as usize]
                ^ TABLE[2][chunk[5] as usize]
                ^ TABLE[1][chunk[6] as usize]
                ^ TABLE[0][chunk[7] as usize];
        }
        for &byte in chunks.remainder() {
            crc = TABLE[0][((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8);
        }
        crc
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};

    /// Updates a raw (pre-inverted) CRC state over `data` with the `crc32` instruction.
    ///
    /// # Safety
    /// The CPU must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn update(crc: u32, data: &[u8]) -> u32 {
        let mut state = crc as u64;
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
            state = _mm_crc32_u64(state, word);
        }
        tail(state as u32, chunks.remainder())
    }

    /// Updates a raw CRC state over the four little-endian bytes of `value`.
    ///
    /// # Safety
    /// The CPU must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn update_u32(crc: u32, value: u32) -> u32 {
        _mm_crc32_u32(crc, value)
    }

    /// The last 0..8 bytes: 4, 2, then 1 at a time.
    #[inline]
    #[target_feature(enable = "sse4.2")]
    fn tail(mut crc: u32, mut rest: &[u8]) -> u32 {
        if rest.len() >= 4 {
            crc = _mm_crc32_u32(crc, u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
            rest = &rest[4..];
        }
        if rest.len() >= 2 {
            crc = _mm_crc32_u16(crc, u16::from_le_bytes([rest[0], rest[1]]));
            rest = &rest[2..];
        }
        if let Some(&byte) = rest.first() {
            crc = _mm_crc32_u8(crc, byte);
        }
        crc
    }

    /// [`record`], handing each payload word to `emit` (see [`super::record_crc_emitting`]).
    ///
    /// # Safety
    /// The CPU must support SSE4.2.
    #[inline]
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn record_emitting(
        payload_bytes: u32,
        sequence: u64,
        kind: u16,
        payload: &[u8],
        mut emit: impl FnMut(usize, u64),
    ) -> u32 {
        let mut state = _mm_crc32_u32(!0, payload_bytes) as u64;
        state = _mm_crc32_u64(state, sequence);
        // Bytes 16..24: the kind, then six reserved zero bytes.
        state = _mm_crc32_u64(state, kind as u64);
        let mut chunks = payload.chunks_exact(8);
        let mut index = 0;
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
            state = _mm_crc32_u64(state, word);
            emit(index, word);
            index += 1;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Assembled in a register: a byte copy into a stack word read back at once would stall.
            let word = rest.iter().rev().fold(0u64, |w, &b| (w << 8) | u64::from(b));
            emit(index, word);
        }
        tail(state as u32, rest)
    }

    /// A record's raw CRC state from its header fields and payload (see [`super::record_crc`]).
    ///
    /// # Safety
    /// The CPU must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn record(payload_bytes: u32, sequence: u64, kind: u16, payload: &[u8]) -> u32 {
        // SAFETY: the same requirement as this function's (SSE4.2); nothing is emitted.
        unsafe { record_emitting(payload_bytes, sequence, kind, payload, |_, _| {}) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Vectors from RFC 3720 (iSCSI), appendix B.4.
    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113F_DB5C);
        assert_eq!(!portable::update(!0, b"123456789"), 0xE306_9283);
    }

    fn header_bytes(payload_bytes: u32, sequence: u64, kind: u16) -> [u8; 20] {
        let mut head = [0u8; 20];
        head[0..4].copy_from_slice(&payload_bytes.to_le_bytes());
        head[4..12].copy_from_slice(&sequence.to_le_bytes());
        head[12..14].copy_from_slice(&kind.to_le_bytes());
        head
    }

    proptest! {
        #[test]
        fn equals_the_crate_on_random_input(data in proptest::collection::vec(any::<u8>(), 0..600), start in 0usize..8, seed in any::<u32>()) {
            let data = &data[start.min(data.len())..];
            prop_assert_eq!(crc32c(data), crc32c::crc32c(data));
            prop_assert_eq!(!portable::update(!0, data), crc32c::crc32c(data));
            prop_assert_eq!(append(seed, data), crc32c::crc32c_append(seed, data));
            prop_assert_eq!(!portable::update(!seed, data), crc32c::crc32c_append(seed, data));
        }

        #[test]
        fn append_u32_is_append_of_its_bytes(seed in any::<u32>(), value in any::<u32>()) {
            prop_assert_eq!(append_u32(seed, value), crc32c::crc32c_append(seed, &value.to_le_bytes()));
        }

        #[test]
        fn append_splits_anywhere(data in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let cut = cut.index(data.len() + 1);
            prop_assert_eq!(append(crc32c(&data[..cut]), &data[cut..]), crc32c(&data));
        }

        #[test]
        fn record_crc_is_the_crc_of_header_then_payload(payload in proptest::collection::vec(any::<u8>(), 0..200), sequence in any::<u64>(), kind in any::<u16>()) {
            let mut bytes = header_bytes(payload.len() as u32, sequence, kind).to_vec();
            bytes.extend_from_slice(&payload);
            let expected = crc32c::crc32c(&bytes);
            prop_assert_eq!(record_crc(payload.len() as u32, sequence, kind, &payload), expected);
            let head = header_bytes(payload.len() as u32, sequence, kind);
            prop_assert_eq!(!portable::update(portable::update(!0, &head), &payload), expected);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn both_paths_agree_on_every_length() {
        if !std::arch::is_x86_feature_detected!("sse4.2") {
            return;
        }
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for end in start..data.len() {
                let slice = &data[start..end];
                // SAFETY: SSE4.2 is present (checked above).
                let hw = unsafe { x86::update(!0, slice) };
                assert_eq!(hw, portable::update(!0, slice), "bytes {start}..{end}");
            }
        }
    }
}
