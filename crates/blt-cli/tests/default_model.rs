//! The built-in model: `blt` works with no `--model` on a fresh machine, and the shipped weights
//! still score the committed held-out sample as MODEL.md says.

use std::path::Path;
use std::process::Command;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The value MODEL.md records on its `heldout-sample bits/byte:` line.
fn recorded_bits_per_byte() -> f64 {
    let card = std::fs::read_to_string(crate_dir().join("../blt-default-model/MODEL.md")).unwrap();
    let line = card
        .lines()
        .find_map(|l| l.trim().strip_prefix("heldout-sample bits/byte:"))
        .expect("MODEL.md has a `heldout-sample bits/byte:` line");
    line.trim().trim_matches('`').parse().unwrap()
}

#[test]
fn shipped_model_reproduces_its_model_card() {
    let cache = tempfile::tempdir().unwrap();
    let sample = crate_dir().join("../blt-default-model/heldout-sample.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_blt"))
        .args(["eval", "--corpus", sample.to_str().unwrap(), "--json"])
        .env_remove("BLT_MODEL")
        .env("BLT_CACHE_DIR", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = v["bits_per_byte"].as_f64().unwrap();
    let want = recorded_bits_per_byte();
    assert!(
        (got - want).abs() <= 0.01,
        "bits/byte {got:.4}, MODEL.md says {want:.4}"
    );
    assert_eq!(v["model"], "blt-default");
    // The calibrated threshold from the model's config is the default.
    assert_ne!(v["threshold_source"], "the reference default");
}

#[test]
fn patches_fall_at_word_starts() {
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_blt"))
        .args([
            "patch",
            "--text",
            "predictable bytes are grouped into longer patches",
            "--json",
        ])
        .env_remove("BLT_MODEL")
        .env("BLT_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    let starts: Vec<usize> = serde_json::from_value(v["patch_starts"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(v["patch_lengths"].clone()).unwrap();
    // Most patches that start after a space start at the first letter of a word, and patches
    // are longer than single bytes on average.
    let after_space = starts
        .iter()
        .filter(|&&s| s >= 2 && ids[s - 1] == b' ' as u32 + 4)
        .count();
    let word_starts = ids.windows(2).filter(|w| w[0] == b' ' as u32 + 4).count();
    assert!(
        after_space * 2 >= word_starts,
        "{after_space} of {word_starts} word starts"
    );
    let mean = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
    assert!(mean > 2.0, "mean patch length {mean}");
}
