//! Executables: a typed error or sections + gaps that tile the input.
#![no_main]
use blt_pretokenize::{assert_accounts_for_every_byte, BinarySegmenter, Segmenter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(segs) = BinarySegmenter::default().segment(data) {
        assert_accounts_for_every_byte(data, &segs).unwrap();
    }
});
