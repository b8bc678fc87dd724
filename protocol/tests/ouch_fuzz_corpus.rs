//! Runs the `ouch_inbound` fuzz target's function over its checked-in corpus
//! (`protocol/fuzz/corpus/ouch_inbound/`), so the target's checks run in every test run.
//!
//! Seed names say what they must give: `valid_*` decodes as an inbound message, `invalid_*` does not. Files
//! with other names (inputs a fuzzer saved) only have to pass the function's own checks.

use bourse_protocol::ouch::fuzz_check_inbound;

#[test]
fn every_corpus_file_passes_the_decoder_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/ouch_inbound");
    let mut named = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let valid = fuzz_check_inbound(&std::fs::read(&path).unwrap());
        if name.starts_with("valid_") {
            assert!(valid, "{name} should decode");
            named += 1;
        } else if name.starts_with("invalid_") {
            assert!(!valid, "{name} should not decode");
            named += 1;
        }
    }
    assert!(
        named >= 8,
        "the seed corpus is missing files: {named} named seeds"
    );
}
