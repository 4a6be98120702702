//! PDF: a typed error or views that account for every byte and share one source id.
#![no_main]
use blt_pretokenize::{assert_accounts_for_every_byte, PdfOptions, PdfSegmenter, Segmenter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = PdfOptions {
        max_pages: 16,
        max_page_content_bytes: 1 << 20,
        ..Default::default()
    };
    if let Ok(segs) = PdfSegmenter::new(options).segment(data) {
        assert_accounts_for_every_byte(data, &segs).unwrap();
        let id = segs.first().and_then(|s| s.source_id.clone());
        assert!(segs.iter().all(|s| s.source_id == id));
    }
});
