//! Fuzz target: the ITCH 5.0 message decoder over arbitrary input, one message per input
//! (`bourse_protocol::itch::fuzz_check_message`, also run over `corpus/itch_message/` by
//! `protocol/tests/itch_fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bourse_protocol::itch::fuzz_check_message(data);
});
