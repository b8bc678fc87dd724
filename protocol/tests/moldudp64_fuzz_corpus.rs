//! Runs the `moldudp64_packet` fuzz target's function over its checked-in corpus
//! (`protocol/fuzz/corpus/moldudp64_packet/`), so the target's checks run in every test run.
//!
//! Seed names say what they must give: `data_N_*` decodes as a data packet of N messages (`data_N_itch_*`: all
//! N blocks are ITCH messages), `heartbeat_*` and `end_of_session_*` as those packets, `request_*` as a request;
//! `error_truncated*`, `error_block_truncated*`, `error_trailing_bytes*` and `error_sequence_overflow*` fail
//! `Packet::decode` with that error. Files with other names (inputs a fuzzer saved) only have to pass the
//! function's own checks.

use bourse_protocol::moldudp64::{PacketError, PacketKind, fuzz_check_packet};

#[test]
fn every_corpus_file_passes_the_packet_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/moldudp64_packet");
    let mut named = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let check = fuzz_check_packet(&std::fs::read(&path).unwrap());
        if let Some(rest) = name.strip_prefix("data_") {
            let n: usize = rest.split('_').next().unwrap().parse().unwrap();
            assert_eq!(check.packet, Ok((PacketKind::Data, n)), "{name}");
            if rest.split('_').nth(1) == Some("itch") {
                assert_eq!(check.itch_messages, n, "{name}");
            }
        } else if name.starts_with("heartbeat_") {
            assert_eq!(check.packet, Ok((PacketKind::Heartbeat, 0)), "{name}");
        } else if name.starts_with("end_of_session_") {
            assert_eq!(check.packet, Ok((PacketKind::EndOfSession, 0)), "{name}");
        } else if name.starts_with("request_") {
            assert!(check.request.is_ok(), "{name}: {check:?}");
        } else if let Some(rest) = name.strip_prefix("error_") {
            let ok = match check.packet {
                Err(PacketError::Truncated { .. }) => rest.starts_with("truncated"),
                Err(PacketError::BlockTruncated { .. }) => rest.starts_with("block_truncated"),
                Err(PacketError::TrailingBytes { .. }) => rest.starts_with("trailing_bytes"),
                Err(PacketError::SequenceOverflow) => rest.starts_with("sequence_overflow"),
                Ok(_) => false,
            };
            assert!(ok, "{name}: {check:?}");
        } else {
            continue;
        }
        named += 1;
    }
    assert!(
        named >= 17,
        "the seed corpus is missing files: {named} named seeds"
    );
}
