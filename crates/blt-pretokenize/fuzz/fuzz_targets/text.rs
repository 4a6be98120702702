//! Text splitting tiles every input, in every mode, with and without a cap.
#![no_main]
use blt_pretokenize::{
    assert_accounts_for_every_byte, Segmenter, TextOptions, TextSegmenter, TextSplit,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, doc)) = data.split_first() else {
        return;
    };
    let split = [TextSplit::Whole, TextSplit::Paragraphs, TextSplit::Lines][knob as usize % 3];
    let cap = (knob >= 128).then_some((knob as usize % 17) + 1);
    let segs = TextSegmenter::new(TextOptions {
        split,
        max_segment_bytes: cap,
    })
    .segment(doc)
    .expect("text never fails");
    assert_accounts_for_every_byte(doc, &segs).unwrap();
});
