//! The daemon's own journal records: what `boursed` writes beside the book's command and event records,
//! so that session replay and MoldUDP64 re-requests are reads of the journal, not recomputation.
//!
//! The journal stores `(kind u16, payload)`; the book owns kinds `0x0001..=0x00FF` (its record kind byte,
//! see `bourse_book::record`). This module owns `0x0100..=0x01FF`. Integers are little-endian (journal
//! bytes, not wire bytes); the embedded OUCH and ITCH messages are their exact wire bytes.
//!
//! | kind | name | payload |
//! |---|---|---|
//! | 0x0100 | (retired) | was `KIND_SEQUENCED`, the timestamp and echo in a record of their own before the book command record; since 2026-11-26 they are the first 16 bytes of [`KIND_COMMAND`] (one record per command, not two) and 0x0100 is never written |
//! | 0x0105 | [`KIND_COMMAND`] | `timestamp_ns u64, echo 3 bytes, 5 zero bytes, book command record`: the sequencer's timestamp, the OUCH fields the engine does not see but Accepted/Replaced echo (Capacity, Intermarket Sweep Eligibility, Cross Type; spaces for non-order commands), then the book's own encoding of the command (`bourse_book::record`, its version and kind bytes included) |
//! | 0x0101 | [`KIND_OUCH`] | `login u32, session_seq u64, OUCH 4.2 outbound message` (one Sequenced Data packet's payload) |
//! | 0x0102 | [`KIND_ITCH`] | `feed_seq u64, ITCH 5.0 message` (one MoldUDP64 message block's data) |
//! | 0x0103 | [`KIND_DAY`] | `event u8 ([DAY_START] or [DAY_END]), session 10 bytes, day_base_unix_ns u64, timestamp_ns u64` (the UTC midnight the day's timestamps count from, and the event's timestamp) |
//! | 0x0104 | [`KIND_ADMIN`] | `action u8 ([ADMIN_DISABLE], [ADMIN_ENABLE], [ADMIN_LOGOUT]), login u32` |
//!
//! Order inside a batch: for each sequenced command, its `KIND_COMMAND` record, the book event records it
//! caused that the daemon journals (Executed, and the rare operator and day events: the order events
//! whose content the OUCH and ITCH records carry are not journaled since 2026-11-27, see `boursed`'s
//! `machine::journals_event`), then the OUCH and ITCH records those events produced, in publication order.
//! Decoding never panics: a short payload is `None`.

use crate::fields::Alpha;

/// Retired: the separate timestamp record that preceded each book command record until 2026-11-26 (now
/// the prefix of [`KIND_COMMAND`]). Never written; a journal that holds it was written by an older boursed.
pub const KIND_RETIRED_SEQUENCED: u16 = 0x0100;
/// One OUCH message in a login's sequenced stream.
pub const KIND_OUCH: u16 = 0x0101;
/// One ITCH message on the feed.
pub const KIND_ITCH: u16 = 0x0102;
/// A trading day started or ended.
pub const KIND_DAY: u16 = 0x0103;
/// An operator action on a login that the engine does not see.
pub const KIND_ADMIN: u16 = 0x0104;
/// One sequenced command: timestamp, echoed OUCH fields, the book command record.
pub const KIND_COMMAND: u16 = 0x0105;
/// Whether `kind` is in this module's range (`0x0100..=0x01FF`) but not a kind this version writes (a
/// retired one such as [`KIND_RETIRED_SEQUENCED`], or one from a newer version): a journal holding it
/// cannot be re-run by this version.
pub fn is_foreign_daemon_kind(kind: u16) -> bool {
    (0x0100..=0x01FF).contains(&kind)
        && !matches!(kind, KIND_OUCH | KIND_ITCH | KIND_DAY | KIND_ADMIN | KIND_COMMAND)
}

/// The name of one of this module's kinds (the table above), `None` outside them: for tools that count
/// records by kind (`bourse journal stats`).
pub fn kind_name(kind: u16) -> Option<&'static str> {
    Some(match kind {
        KIND_RETIRED_SEQUENCED => "Sequenced (retired)",
        KIND_OUCH => "OUCH",
        KIND_ITCH => "ITCH",
        KIND_DAY => "Day",
        KIND_ADMIN => "Admin",
        KIND_COMMAND => "Command",
        _ => return None,
    })
}

/// Bytes of a [`KIND_COMMAND`] payload before the book command record.
pub const COMMAND_PREFIX_LEN: usize = 16;

/// [`KIND_DAY`] event: the day named by the session started.
pub const DAY_START: u8 = b'S';
/// [`KIND_DAY`] event: the day named by the session ended (end of day done).
pub const DAY_END: u8 = b'E';
/// [`KIND_ADMIN`] action: login disabled (its Login Requests get `J` `A`).
pub const ADMIN_DISABLE: u8 = b'D';
/// [`KIND_ADMIN`] action: login enabled again.
pub const ADMIN_ENABLE: u8 = b'N';
/// [`KIND_ADMIN`] action: the operator forced the login's connection closed.
pub const ADMIN_LOGOUT: u8 = b'L';

/// Bytes before the OUCH message in a [`KIND_OUCH`] payload.
pub const OUCH_PREFIX_LEN: usize = 12;
/// Bytes before the ITCH message in a [`KIND_ITCH`] payload.
pub const ITCH_PREFIX_LEN: usize = 8;

/// Writes a [`KIND_OUCH`] payload into `out`; returns its length. `out` must hold `12 + message.len()`.
pub fn encode_ouch(out: &mut [u8], login: u32, session_seq: u64, message: &[u8]) -> usize {
    out[0..4].copy_from_slice(&login.to_le_bytes());
    out[4..12].copy_from_slice(&session_seq.to_le_bytes());
    out[12..12 + message.len()].copy_from_slice(message);
    OUCH_PREFIX_LEN + message.len()
}

/// Reads a [`KIND_OUCH`] payload: `(login, session_seq, message)`.
pub fn decode_ouch(payload: &[u8]) -> Option<(u32, u64, &[u8])> {
    if payload.len() <= OUCH_PREFIX_LEN {
        return None;
    }
    let login = u32::from_le_bytes(payload[0..4].try_into().ok()?);
    let seq = u64::from_le_bytes(payload[4..12].try_into().ok()?);
    Some((login, seq, &payload[OUCH_PREFIX_LEN..]))
}

/// Writes a [`KIND_ITCH`] payload into `out`; returns its length. `out` must hold `8 + message.len()`.
pub fn encode_itch(out: &mut [u8], feed_seq: u64, message: &[u8]) -> usize {
    out[0..8].copy_from_slice(&feed_seq.to_le_bytes());
    out[8..8 + message.len()].copy_from_slice(message);
    ITCH_PREFIX_LEN + message.len()
}

/// Reads a [`KIND_ITCH`] payload: `(feed_seq, message)`.
pub fn decode_itch(payload: &[u8]) -> Option<(u64, &[u8])> {
    if payload.len() <= ITCH_PREFIX_LEN {
        return None;
    }
    let seq = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    Some((seq, &payload[ITCH_PREFIX_LEN..]))
}

/// Writes a [`KIND_COMMAND`] payload's prefix (timestamp and the echoed OUCH fields: Capacity, ISO, Cross
/// Type) into `out[..COMMAND_PREFIX_LEN]`; the book command record goes right after it. Two whole 8-byte
/// words, so that the journal's 8-byte reads of the payload that follow at once forward from the stores.
///
/// # Panics
/// If `out` is shorter than [`COMMAND_PREFIX_LEN`].
pub fn encode_command_prefix(out: &mut [u8], timestamp_ns: u64, echo: [u8; 3]) {
    let second = u64::from(echo[0]) | (u64::from(echo[1]) << 8) | (u64::from(echo[2]) << 16);
    out[..8].copy_from_slice(&timestamp_ns.to_le_bytes());
    out[8..16].copy_from_slice(&second.to_le_bytes());
}

/// Reads a [`KIND_COMMAND`] payload: `(timestamp_ns, echo, book command record)`.
pub fn decode_command(payload: &[u8]) -> Option<(u64, [u8; 3], &[u8])> {
    if payload.len() <= COMMAND_PREFIX_LEN || payload[11..COMMAND_PREFIX_LEN] != [0; 5] {
        return None;
    }
    let ts = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    Some((
        ts,
        [payload[8], payload[9], payload[10]],
        &payload[COMMAND_PREFIX_LEN..],
    ))
}

/// A [`KIND_DAY`] record's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayRecord {
    /// [`DAY_START`] or [`DAY_END`].
    pub event: u8,
    /// The day's session name.
    pub session: Alpha<10>,
    /// Unix time of the UTC midnight the day's timestamps count from, nanoseconds.
    pub day_base_unix_ns: u64,
    /// The event's timestamp (nanoseconds since `day_base_unix_ns`).
    pub timestamp_ns: u64,
}

/// A [`KIND_DAY`] payload.
pub fn encode_day(day: &DayRecord) -> [u8; 27] {
    let mut out = [0u8; 27];
    out[0] = day.event;
    out[1..11].copy_from_slice(&day.session.0);
    out[11..19].copy_from_slice(&day.day_base_unix_ns.to_le_bytes());
    out[19..27].copy_from_slice(&day.timestamp_ns.to_le_bytes());
    out
}

/// Reads a [`KIND_DAY`] payload.
pub fn decode_day(payload: &[u8]) -> Option<DayRecord> {
    if payload.len() != 27 {
        return None;
    }
    Some(DayRecord {
        event: payload[0],
        session: Alpha(payload[1..11].try_into().ok()?),
        day_base_unix_ns: u64::from_le_bytes(payload[11..19].try_into().ok()?),
        timestamp_ns: u64::from_le_bytes(payload[19..27].try_into().ok()?),
    })
}

/// A [`KIND_ADMIN`] payload.
pub fn encode_admin(action: u8, login: u32) -> [u8; 5] {
    let mut out = [0u8; 5];
    out[0] = action;
    out[1..5].copy_from_slice(&login.to_le_bytes());
    out
}

/// Reads a [`KIND_ADMIN`] payload: `(action, login)`.
pub fn decode_admin(payload: &[u8]) -> Option<(u8, u32)> {
    if payload.len() != 5 {
        return None;
    }
    Some((payload[0], u32::from_le_bytes(payload[1..5].try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = [0u8; 64];
        let n = encode_ouch(&mut buf, 7, 42, b"Sabc");
        assert_eq!(decode_ouch(&buf[..n]), Some((7, 42, &b"Sabc"[..])));
        let n = encode_itch(&mut buf, 9, b"A12");
        assert_eq!(decode_itch(&buf[..n]), Some((9, &b"A12"[..])));
        let mut command = [0u8; 20];
        encode_command_prefix(&mut command, 5, *b"PNN");
        command[16..].copy_from_slice(b"\x01\x02ab");
        assert_eq!(decode_command(&command), Some((5, *b"PNN", &b"\x01\x02ab"[..])));
        let day = DayRecord {
            event: DAY_START,
            session: Alpha::<10>(*b"2026112601"),
            day_base_unix_ns: 1_790_000_000_000_000_000,
            timestamp_ns: 5,
        };
        assert_eq!(decode_day(&encode_day(&day)), Some(day));
        assert_eq!(
            decode_admin(&encode_admin(ADMIN_DISABLE, 3)),
            Some((ADMIN_DISABLE, 3))
        );
    }

    #[test]
    fn only_the_kinds_written_are_at_home() {
        for kind in [KIND_OUCH, KIND_ITCH, KIND_DAY, KIND_ADMIN, KIND_COMMAND] {
            assert!(!is_foreign_daemon_kind(kind), "{kind:#06x}");
        }
        assert!(is_foreign_daemon_kind(KIND_RETIRED_SEQUENCED));
        assert!(is_foreign_daemon_kind(0x0106));
        assert!(is_foreign_daemon_kind(0x01FF));
        assert!(!is_foreign_daemon_kind(0x0081), "book kinds are the book's");
        assert!(!is_foreign_daemon_kind(0x0200), "outside this module's range");
        // Every kind of the range has a name exactly when it is written or retired.
        for kind in 0x0100..=0x01FF {
            let known = !is_foreign_daemon_kind(kind) || kind == KIND_RETIRED_SEQUENCED;
            assert_eq!(kind_name(kind).is_some(), known, "{kind:#06x}");
        }
        assert_eq!(kind_name(KIND_OUCH), Some("OUCH"));
        assert_eq!(kind_name(0x0081), None, "book kinds are named by the book");
    }

    #[test]
    fn short_payloads_are_none() {
        assert_eq!(decode_ouch(&[0u8; 12]), None);
        assert_eq!(decode_itch(&[0u8; 8]), None);
        assert_eq!(decode_command(&[0u8; 16]), None, "no command record");
        let mut bad_padding = [0u8; 20];
        bad_padding[12] = 1;
        assert_eq!(decode_command(&bad_padding), None, "reserved bytes must be zero");
        assert_eq!(decode_day(&[0u8; 26]), None);
        assert_eq!(decode_admin(&[0u8; 4]), None);
    }
}
