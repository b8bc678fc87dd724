//! Runs the `soupbintcp_stream` fuzz target's function over its checked-in corpus
//! (`protocol/fuzz/corpus/soupbintcp_stream/`), so the target's checks run in every test run.
//!
//! Seed names say what they must give: `packets_N_*` decodes N packets and stops on an incomplete tail or the
//! end, `error_oversize*` / `error_unknown_type*` / `error_bad_numeric*` stop on that error. Files with other
//! names (inputs a fuzzer saved) only have to pass the function's own checks.

use bourse_protocol::soupbintcp::{DecodeError, fuzz_check_stream};

#[test]
fn every_corpus_file_passes_the_stream_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/soupbintcp_stream");
    let mut named = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let check = fuzz_check_stream(&std::fs::read(&path).unwrap());
        if let Some(rest) = name.strip_prefix("packets_") {
            let n: usize = rest.split('_').next().unwrap().parse().unwrap();
            assert_eq!((check.packets, check.error), (n, None), "{name}");
            named += 1;
        } else if name.starts_with("error_") {
            let ok = match check.error {
                Some(DecodeError::Oversize { .. }) => name.starts_with("error_oversize"),
                Some(DecodeError::UnknownType { .. }) => name.starts_with("error_unknown_type"),
                Some(DecodeError::Numeric { .. }) => name.starts_with("error_bad_numeric"),
                _ => false,
            };
            assert!(ok, "{name}: {check:?}");
            named += 1;
        }
    }
    assert!(
        named >= 7,
        "the seed corpus is missing files: {named} named seeds"
    );
}
