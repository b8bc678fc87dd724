//! Fuzz target: the MoldUDP64 packet and request readers over arbitrary input, one UDP payload per input,
//! with every block also checked as an ITCH message (`bourse_protocol::moldudp64::fuzz_check_packet`, also run
//! over `corpus/moldudp64_packet/` by `protocol/tests/moldudp64_fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bourse_protocol::moldudp64::fuzz_check_packet(data);
});
