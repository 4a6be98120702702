//! The dispatcher, under every file name flavour: a typed error or a valid segmentation.
#![no_main]
use blt_pretokenize::{assert_accounts_for_every_byte, Pretokenized, Pretokenizer};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 12] = [
    "a.txt", "a.rs", "a.py", "a.ts", "a.c", "a.java", "a.go", "a.pdf", "a.exe", "a.zip", "a.png",
    "noext",
];

fuzz_target!(|data: &[u8]| {
    let Some((&knob, doc)) = data.split_first() else {
        return;
    };
    let name = std::path::Path::new(NAMES[knob as usize % NAMES.len()]);
    if let Ok((_, Pretokenized::Segments(segs))) =
        Pretokenizer::default().pretokenize(doc, Some(name))
    {
        assert_accounts_for_every_byte(doc, &segs).unwrap();
    }
});
