//! Text splitting tiles every input, in every mode (Hugging Face pre-tokenizers included), with
//! and without a cap.
#![no_main]
use blt_pretokenize::{
    assert_accounts_for_every_byte, HfPreTokenizer, Segmenter, TextOptions, TextSegmenter,
    TextSplit,
};
use libfuzzer_sys::fuzz_target;

const PRE_TOKENIZERS: [&str; 4] = [
    r#"{"type": "Whitespace"}"#,
    r#"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#,
    r#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}"#,
    r#"{"type": "Sequence", "pretokenizers": [{"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Digits", "individual_digits": true}, {"type": "WhitespaceSplit"}]}"#,
];

fuzz_target!(|data: &[u8]| {
    let Some((&knob, doc)) = data.split_first() else {
        return;
    };
    let split = match knob as usize % 7 {
        0 => TextSplit::Whole,
        1 => TextSplit::Paragraphs,
        2 => TextSplit::Lines,
        n => TextSplit::PreTokenizer(
            HfPreTokenizer::from_json(PRE_TOKENIZERS[n - 3], "fuzz.json").unwrap(),
        ),
    };
    let cap = (knob >= 128).then_some((knob as usize % 17) + 1);
    let segs = TextSegmenter::new(TextOptions {
        split,
        max_segment_bytes: cap,
        pretokens_per_segment: (knob as usize / 7) % 4,
        ..Default::default()
    })
    .segment(doc)
    .expect("text never fails with these pre-tokenizers");
    assert_accounts_for_every_byte(doc, &segs).unwrap();
});
