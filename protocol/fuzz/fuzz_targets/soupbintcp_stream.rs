//! Fuzz target: the SoupBinTCP stream decoder over arbitrary input, fed whole and in input-chosen chunks
//! (`bourse_protocol::soupbintcp::fuzz_check_stream`, also run over `corpus/soupbintcp_stream/` by
//! `protocol/tests/soupbintcp_fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bourse_protocol::soupbintcp::fuzz_check_stream(data);
});
