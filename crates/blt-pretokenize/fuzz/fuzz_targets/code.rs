//! Code units and gaps tile every input, in every language, however broken the code.
#![no_main]
use blt_pretokenize::{assert_accounts_for_every_byte, CodeSegmenter, Language, Segmenter};
use libfuzzer_sys::fuzz_target;

const LANGUAGES: [Language; 9] = [
    Language::Rust,
    Language::Python,
    Language::JavaScript,
    Language::TypeScript,
    Language::Tsx,
    Language::C,
    Language::Cpp,
    Language::Go,
    Language::Java,
];

fuzz_target!(|data: &[u8]| {
    let Some((&knob, src)) = data.split_first() else {
        return;
    };
    let language = LANGUAGES[knob as usize % LANGUAGES.len()];
    if let Ok(segs) = CodeSegmenter::new(language, Default::default()).segment(src) {
        assert_accounts_for_every_byte(src, &segs).unwrap();
    }
});
