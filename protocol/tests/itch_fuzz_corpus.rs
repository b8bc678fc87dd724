//! Runs the `itch_message` fuzz target's function over its checked-in corpus
//! (`protocol/fuzz/corpus/itch_message/`), so the target's checks run in every test run.
//!
//! Seed names say what they must give: `valid_<T>_*` decodes as a message of type `T`; `error_empty*`,
//! `error_unknown_type*`, `error_truncated*`, `error_wrong_length*`, `error_bad_side*`, `error_bad_event_code*`,
//! `error_bad_trading_state*`, `error_bad_printable*`, `error_bad_snapshot_digit*` and `error_snapshot_overflow*`
//! fail with that error. Files with other names (inputs a fuzzer saved) only have to pass the function's own
//! checks.

use bourse_protocol::itch::{DecodeError, fuzz_check_message};

/// The error a seed named `error_<name>...` must give.
fn error_name(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Empty => "empty",
        DecodeError::UnknownType { .. } => "unknown_type",
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::WrongLength { .. } => "wrong_length",
        DecodeError::BadSide(_) => "bad_side",
        DecodeError::BadEventCode(_) => "bad_event_code",
        DecodeError::BadTradingState(_) => "bad_trading_state",
        DecodeError::BadPrintable(_) => "bad_printable",
        DecodeError::BadSnapshotDigit { .. } => "bad_snapshot_digit",
        DecodeError::SnapshotSequenceOverflow => "snapshot_overflow",
    }
}

#[test]
fn every_corpus_file_passes_the_decoder_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/itch_message");
    let mut types_seen = Vec::new();
    let mut errors_seen = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = fuzz_check_message(&std::fs::read(&path).unwrap());
        if let Some(rest) = name.strip_prefix("valid_") {
            let message = result.unwrap_or_else(|e| panic!("{name} should decode: {e}"));
            assert_eq!(message.message_type(), rest.as_bytes()[0], "{name}: {message:?}");
            types_seen.push(message.message_type());
        } else if let Some(rest) = name.strip_prefix("error_") {
            let error = result.expect_err(&name);
            assert!(rest.starts_with(error_name(&error)), "{name}: {error:?}");
            errors_seen.push(error_name(&error));
        }
    }
    types_seen.sort_unstable();
    types_seen.dedup();
    assert_eq!(
        types_seen, b"ABCDEFGHPRSUX",
        "the seed corpus misses a valid message type"
    );
    errors_seen.sort_unstable();
    errors_seen.dedup();
    assert_eq!(
        errors_seen.len(),
        10,
        "the seed corpus misses an error: {errors_seen:?}"
    );
}
