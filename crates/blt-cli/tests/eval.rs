//! End-to-end tests of `blt eval` and `blt calibrate` on the committed tiny model (copied to a
//! temp dir whenever a command may write into it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../blt-model/tests/fixtures")
}

fn blt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blt"))
        .args(args)
        .env_remove("BLT_MODEL")
        .env_remove("BLT_DEVICE")
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

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The ids and logits of the reference's `short` case (HF `BltPatcher` on the tiny model).
fn reference_short() -> (Vec<u32>, Vec<f32>) {
    let bytes = std::fs::read(fixtures().join("expected/tiny_f32.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids = st
        .tensor("short.ids")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let logits = st
        .tensor("short.logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (ids, logits)
}

#[test]
fn eval_json_is_the_reference_cross_entropy() {
    let (ids, logits) = reference_short();
    let text: Vec<u8> = ids[1..ids.len() - 1]
        .iter()
        .map(|&i| (i - 4) as u8)
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("short.txt");
    std::fs::write(&file, &text).unwrap();

    let v = json(&blt(&[
        "eval",
        "--model",
        path(&fixtures().join("tiny")),
        "--corpus",
        path(&file),
        "--json",
    ]));
    // Σ −ln softmax(logits[p])[ids[p+1]] over every byte and the EOS, in bits per input byte.
    let mut nats = 0.0;
    for p in 0..ids.len() - 1 {
        let row = &logits[p * 260..(p + 1) * 260];
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        nats += z.ln() - row[ids[p + 1] as usize] as f64;
    }
    let want = nats / std::f64::consts::LN_2 / text.len() as f64;
    let got = v["bits_per_byte"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    assert_eq!(v["documents"], 1);
    assert_eq!(v["bytes"], text.len());
    assert_eq!(v["tokens_scored"], text.len() + 1);
    assert_eq!(v["threshold_source"], "the reference default");
    let patches = v["patches"].as_f64().unwrap();
    let mean = v["mean_patch_length"].as_f64().unwrap();
    assert!((mean - ids.len() as f64 / patches).abs() < 1e-12);
    for key in [
        "nats_per_token",
        "mean_entropy",
        "median_patch_length",
        "patches_per_kb",
        "bytes_per_patch",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
}

#[test]
fn eval_reads_folders_with_a_glob_and_patching_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(corpus.join("sub")).unwrap();
    std::fs::write(corpus.join("a.txt"), "Hello, world. Hello again!").unwrap();
    std::fs::write(corpus.join("sub/b.txt"), "Another document, a bit longer.").unwrap();
    std::fs::write(corpus.join("c.md"), "# not a text file").unwrap();
    let model = fixtures().join("tiny");

    let all = json(&blt(&[
        "eval",
        "--model",
        path(&model),
        "--corpus",
        path(&corpus),
        "--json",
    ]));
    assert_eq!(all["documents"], 3);
    let txt = json(&blt(&[
        "eval",
        "--model",
        path(&model),
        "--corpus",
        path(&corpus),
        path(&corpus.join("a.txt")),
        "--glob",
        "*.txt",
        "--threshold",
        "2.5",
        "--max-patch-length",
        "3",
        "--json",
    ]));
    // a.txt named twice is read once.
    assert_eq!(txt["documents"], 2);
    assert_eq!(txt["bytes"], 26 + 31);
    assert_eq!(txt["threshold"], 2.5);
    assert_eq!(txt["threshold_source"], "--threshold");
    assert!(txt["mean_patch_length"].as_f64().unwrap() <= 3.0);

    let o = blt(&["eval", "--model", path(&model), "--corpus", path(&corpus)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("bits/byte") && out.contains("mean entropy"),
        "{out}"
    );
    assert!(out.contains("3 documents"), "{out}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = blt(&["eval", "--model", path(&model), "--corpus", path(&empty)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no documents"), "{}", stderr(&o));
}

#[test]
fn calibrate_writes_the_threshold_that_patch_then_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    copy_dir(&fixtures().join("tiny"), &model);
    let corpus = tmp.path().join("corpus.txt");
    let text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. "
        .repeat(12);
    std::fs::write(&corpus, &text).unwrap();
    let config_before = std::fs::read(model.join("config.json")).unwrap();

    // --dry-run: the answer, and the config untouched.
    let dry = json(&blt(&[
        "calibrate",
        "--model",
        path(&model),
        "--corpus",
        path(&corpus),
        "--target-mean-patch",
        "3",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["written"], false);
    assert_eq!(dry["old_threshold"], serde_json::Value::Null);
    assert_eq!(
        std::fs::read(model.join("config.json")).unwrap(),
        config_before
    );

    let o = blt(&[
        "calibrate",
        "--model",
        path(&model),
        "--corpus",
        path(&corpus),
        "--target-mean-patch",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("old threshold") && out.contains("new threshold"),
        "{out}"
    );
    assert!(out.contains("wrote patching_threshold"), "{out}");
    let threshold = dry["threshold"].as_f64().unwrap() as f32;
    let mean = dry["mean_patch_length"].as_f64().unwrap();
    assert!((mean - 3.0).abs() < 0.1, "mean patch length {mean}");
    assert!(
        out.contains(&format!("new threshold      {threshold}")),
        "{out}"
    );

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["args"]["patching_threshold"]
            .as_f64()
            .map(|t| t as f32),
        Some(threshold)
    );
    assert_eq!(
        config["args"]["attn_impl"], "xformers",
        "unknown keys are kept"
    );

    // `blt patch` now uses it by default: same patches as with the explicit threshold.
    let sample = "Pack my box with five dozen liquor jugs.";
    let o = blt(&["patch", "--model", path(&model), "--text", sample]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("threshold {threshold})")),
        "{}",
        stdout(&o)
    );
    let default = json(&blt(&[
        "patch",
        "--model",
        path(&model),
        "--text",
        sample,
        "--json",
    ]));
    let explicit = json(&blt(&[
        "patch",
        "--model",
        path(&fixtures().join("tiny")),
        "--text",
        sample,
        "--threshold",
        &threshold.to_string(),
        "--json",
    ]));
    assert_eq!(default["patch_lengths"], explicit["patch_lengths"]);

    // …and so does `blt eval`, whose mean patch length on the corpus is the calibrated one.
    let v = json(&blt(&[
        "eval",
        "--model",
        path(&model),
        "--corpus",
        path(&corpus),
        "--json",
    ]));
    assert_eq!(v["threshold_source"], "the model's config");
    assert_eq!(v["threshold"].as_f64().map(|t| t as f32), Some(threshold));
    assert_eq!(v["mean_patch_length"].as_f64(), Some(mean));

    // A second run reports the old threshold.
    let again = json(&blt(&[
        "calibrate",
        "--model",
        path(&model),
        "--corpus",
        path(&corpus),
        "--target-mean-patch",
        "3",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(
        again["old_threshold"].as_f64().map(|t| t as f32),
        Some(threshold)
    );
}

#[test]
fn calibrate_refuses_unreachable_targets_and_unwritable_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    copy_dir(&fixtures().join("tiny"), &model);
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, "Just a short line of text.").unwrap();
    let before = std::fs::read(model.join("config.json")).unwrap();
    for target in ["0.5", "1000"] {
        let o = blt(&[
            "calibrate",
            "--model",
            path(&model),
            "--corpus",
            path(&corpus),
            "--target-mean-patch",
            target,
        ]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("unreachable"), "{}", stderr(&o));
        assert_eq!(std::fs::read(model.join("config.json")).unwrap(), before);
    }

    let meta = tmp.path().join("micro-meta");
    copy_dir(&fixtures().join("micro-meta"), &meta);
    let params = std::fs::read(meta.join("params.json")).unwrap();
    let args = [
        "calibrate",
        "--model",
        path(&meta),
        "--corpus",
        path(&corpus),
        "--target-mean-patch",
        "2",
    ];
    let o = blt(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("params.json"), "{}", stderr(&o));
    assert_eq!(std::fs::read(meta.join("params.json")).unwrap(), params);
    let o = blt(&[&args[..], &["--dry-run"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dry run"), "{}", stdout(&o));
}
