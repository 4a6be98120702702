//! Fuzzes `AudioSegmenter`: any bytes give frames or a typed error, never a panic or a hang; the
//! frames tile the decoded samples.
#![no_main]

use blt_pretokenize::{AudioOptions, AudioSegmenter, Segmenter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = AudioOptions {
        // Small enough that a fuzzed header cannot exhaust memory; the limit itself is tested.
        max_decoded_samples: 1 << 22,
        frame_ms: 250,
        ..Default::default()
    };
    let Ok(segmenter) = AudioSegmenter::new(options) else {
        return;
    };
    if let Ok(segments) = segmenter.segment(data) {
        assert!(!segments.is_empty());
        let mut next = 0;
        for segment in &segments {
            assert_eq!(segment.byte_range, 0..data.len() as u64);
            assert_eq!(segment.metadata["start_sample"].as_u64(), Some(next));
            next += segment.metadata["num_samples"].as_u64().unwrap_or(0);
        }
        assert_eq!(segments[0].metadata["total_samples"].as_u64(), Some(next));
    }
});
