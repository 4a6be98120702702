//! Fuzzes `ImageSegmenter`: any bytes give segments or a typed error, never a panic, a hang or an
//! allocation past the pixel limit; every segment obeys the byte-accounting rule.
#![no_main]

use blt_pretokenize::{ImageOptions, ImageSegmenter, Segmenter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, document)) = data.split_first() else {
        return;
    };
    let options = ImageOptions {
        // Small enough that a fuzzed header cannot exhaust memory; the limit itself is tested.
        max_decoded_pixels: 1 << 22,
        patch_size: Some(u32::from(knob % 32) + 1),
        max_side: if knob & 0x80 != 0 { Some(64) } else { None },
        ..Default::default()
    };
    let Ok(segmenter) = ImageSegmenter::new(options) else {
        return;
    };
    if let Ok(segments) = segmenter.segment(document) {
        assert!(!segments.is_empty());
        for segment in &segments {
            assert_eq!(segment.byte_range, 0..document.len() as u64);
            let pixels = segment.decoded.as_ref().expect("patches carry pixels");
            let w = segment.metadata["width"].as_u64().unwrap_or(0);
            let h = segment.metadata["height"].as_u64().unwrap_or(0);
            assert_eq!(pixels.len() as u64, w * h * 3);
        }
    }
});
