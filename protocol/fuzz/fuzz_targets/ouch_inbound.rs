//! Fuzz target: the OUCH 4.2 message decoders over arbitrary input
//! (`bourse_protocol::ouch::fuzz_check_inbound`, also run over `corpus/ouch_inbound/` by
//! `protocol/tests/ouch_fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bourse_protocol::ouch::fuzz_check_inbound(data);
});
