//! Detection never panics, and a forced modality is always honoured.
#![no_main]
use blt_pretokenize::{detect, Modality};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = std::path::Path::new("input.bin");
    let _ = detect(data, Some(name), None);
    let forced = Modality::ALL[data.first().copied().unwrap_or(0) as usize % Modality::ALL.len()];
    assert_eq!(detect(data, None, Some(forced)).modality(), forced);
});
