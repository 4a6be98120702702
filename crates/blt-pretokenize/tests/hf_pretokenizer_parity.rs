//! `HfPreTokenizer` against the Python `tokenizers` package: the pre-tokens' byte offsets of GPT-2
//! (ByteLevel), Llama (Metaspace) and BERT pre-tokenizer configurations, saved as `tokenizer.json`
//! files and run by `tokenizers` itself (`tests/fixtures/hf_pretokenizers/make.py` says how).

use std::path::Path;

use blt_pretokenize::{
    assert_accounts_for_every_byte, HfPreTokenizer, Segmenter, TextOptions, TextSegmenter,
    TextSplit,
};

#[test]
fn pre_token_offsets_match_the_python_tokenizers_package() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_pretokenizers");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for case in cases {
        let file = dir.join(case["tokenizer"].as_str().unwrap());
        let pre = HfPreTokenizer::from_file(&file).unwrap();
        let text = case["text"].as_str().unwrap();
        // Python's offsets, less the empty ones (a prepended ▁ covers no byte of the text)
        let want: Vec<std::ops::Range<usize>> = case["byte_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[0].as_u64().unwrap() as usize..o[1].as_u64().unwrap() as usize)
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(
            pre.pre_token_ranges(text).unwrap(),
            want,
            "{} on {text:?}",
            file.display()
        );
        // and as segments: those ranges as `pretokens`, everything else `gap`, every byte once
        let segs = TextSegmenter::new(TextOptions {
            split: TextSplit::PreTokenizer(pre),
            pretokens_per_segment: 1,
            ..Default::default()
        })
        .segment(text.as_bytes())
        .unwrap();
        assert_accounts_for_every_byte(text.as_bytes(), &segs).unwrap();
        let got: Vec<_> = segs
            .iter()
            // (an empty text is one empty segment)
            .filter(|s| s.label == "pretokens" && !s.byte_range.is_empty())
            .map(|s| s.byte_range.start as usize..s.byte_range.end as usize)
            .collect();
        assert_eq!(got, want, "{} on {text:?}", file.display());
    }
}
