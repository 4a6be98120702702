//! ZIP containers: a typed error or members with safe paths and in-file data ranges.
#![no_main]
use blt_pretokenize::{extract_zip, ContainerLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ContainerLimits {
        max_members: 64,
        max_member_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        max_ratio: 100,
    };
    if let Ok(contents) = extract_zip(data, &limits) {
        let total: usize = contents.members.iter().map(|m| m.bytes.len()).sum();
        assert!(total as u64 <= limits.max_total_bytes);
        for m in contents.members {
            assert!(m.data_range.start <= m.data_range.end);
            assert!(m.data_range.end <= data.len() as u64);
            assert!(!m.inner_path.starts_with('/'));
            assert!(!m
                .inner_path
                .split('/')
                .any(|part| part == ".." || part.is_empty()));
        }
    }
});
