//! End-to-end tests of the `blt` binary on the committed tiny parity model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../blt-model/tests/fixtures")
}

fn blt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blt"))
        .args(args)
        .env_remove("BLT_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tiny() -> String {
    fixtures().join("tiny").display().to_string()
}

#[test]
fn patch_json_matches_the_reference_entropies() {
    // The `short` parity case, fed as text: the entropies equal HF BltPatcher's.
    let exp = std::fs::read(fixtures().join("expected/tiny_f32.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&exp).unwrap();
    let ids: Vec<u32> = st
        .tensor("short.ids")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let want: Vec<f32> = st
        .tensor("short.entropies")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let text: String = ids[1..ids.len() - 1]
        .iter()
        .map(|&i| (i - 4) as u8 as char)
        .collect();

    let o = blt(&["patch", "--model", &tiny(), "--text", &text, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got_ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(got_ids, ids);
    let got: Vec<f32> = serde_json::from_value(v["entropies"].clone()).unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let starts: Vec<usize> = serde_json::from_value(v["patch_starts"].clone()).unwrap();
    let lengths: Vec<usize> = serde_json::from_value(v["patch_lengths"].clone()).unwrap();
    assert_eq!(starts[..2], [0, 1]);
    assert_eq!(lengths.iter().sum::<usize>(), ids.len());
    let want_lengths: Vec<usize> = st
        .tensor("short.patch_lengths")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect();
    assert_eq!(lengths, want_lengths);

    // Weight-only quantization: the same run with int8 weights stays close.
    let o = blt(&[
        "patch",
        "--model",
        &tiny(),
        "--text",
        &text,
        "--json",
        "--quantize",
        "int8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got: Vec<f32> = serde_json::from_value(v["entropies"].clone()).unwrap();
    let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
    let worst = diffs.iter().copied().fold(0.0f32, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!("int8 weights: mean |Δentropy| {mean}, worst {worst}");
    assert!(
        mean < 0.05,
        "int8 weights moved entropies by {mean} on average"
    );
    assert!(worst > 0.0, "--quantize int8 changed nothing");
}

#[test]
fn patch_text_output_marks_boundaries_and_binary_files_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.bin");
    std::fs::write(&file, [0u8, 255, 10, 13, b'|', 0xC3, 0x28, b'a', b'b']).unwrap();
    let o = blt(&[
        "patch",
        "--model",
        &tiny(),
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("⟨BOS⟩|"), "{out}");
    assert!(out.contains("\\xff") && out.contains("⟨EOS⟩"), "{out}");
    assert!(out.contains("11 tokens"), "{out}");

    let o = blt(&[
        "patch",
        "--model",
        &tiny(),
        "--text",
        "Hi there, you!",
        "--mode",
        "space",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // REFERENCE.md §5.4 space example, plus the EOS we add
    assert_eq!(v["patch_starts"], serde_json::json!([0, 1, 4, 10, 15]));
}

#[test]
fn inspect_model_reports_layout_and_completeness() {
    let o = blt(&["inspect-model", &tiny()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("layers.2.feed_forward.w2.weight"), "{out}");
    assert!(out.contains("complete"), "{out}");
    let o = blt(&[
        "inspect-model",
        &fixtures().join("micro-hf").display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["format"], "HuggingFace");
    assert_eq!(v["complete"], true);

    // a checkpoint without the output head: non-zero exit, the missing tensor listed
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tiny/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(fixtures().join("tiny/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "output.weight")
        .collect();
    safetensors::serialize_to_file(kept, None, &dir.path().join("model.safetensors")).unwrap();
    let o = blt(&["inspect-model", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("missing      output.weight"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn errors_are_clear_and_not_panics() {
    let o = blt(&["patch", "--model", "/no/such/model", "--text", "x"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("/no/such/model") && !err.contains("panicked"),
        "{err}"
    );

    // a repo id in offline mode with an empty cache says what is missing and what to do
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_blt"))
        .args(["patch", "--model", "facebook/blt-entropy", "--text", "x"])
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("HF_HUB_OFFLINE") && err.contains("model.safetensors"),
        "{err}"
    );

    let o = blt(&[
        "patch",
        "--model",
        &tiny(),
        "--text",
        "x",
        "--device",
        "cuda",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cuda"), "{}", stderr(&o));
}
