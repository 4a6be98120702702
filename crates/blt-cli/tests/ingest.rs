//! End-to-end tests of `blt ingest` and `blt inspect` on the committed tiny parity model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../blt-model/tests/fixtures/tiny")
        .display()
        .to_string()
}

fn blt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blt"));
    c.env_remove("BLT_MODEL").env("HF_HUB_OFFLINE", "1");
    c
}

fn run(args: &[&str], cwd: &Path) -> Output {
    blt().args(args).current_dir(cwd).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir` (relative path → bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            out.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    out
}

fn tensor_f32(st: &safetensors::SafeTensors<'_>, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn tensor_i32(st: &safetensors::SafeTensors<'_>, name: &str) -> Vec<i32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn folder_with_good_and_bad_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    let files: [(&str, &[u8]); 5] = [
        (
            "prose.txt",
            b"Entropy patching groups predictable bytes together.",
        ),
        ("empty.txt", b""),
        ("invalid.txt", b"caf\xc3 \xff\xfe not utf-8"),
        ("sub/blob.bin", &[0, 1, 2, 3, 255, 254, 128, 10]),
        ("huge.txt", &[b'x'; 5000]),
    ];
    for (name, bytes) in files {
        std::fs::write(input.join(name), bytes).unwrap();
    }
    let o = run(
        &[
            "ingest",
            "--model",
            &model(),
            "--input",
            "in",
            "--output",
            "out",
            "--max-doc-bytes",
            "4096",
            "--export-json",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("4 written, 0 skipped, 1 failed of 5 documents"),
        "{err}"
    );
    assert!(err.contains("huge.txt") && err.contains("4096"), "{err}");

    let out = tmp.path().join("out");
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["stats"]["failed"], 1);
    assert_eq!(run_json["stats"]["failures"][0]["stage"], "read");

    // Each good document: a complete safetensors output whose entropies and patches equal
    // `blt patch` on the same bytes, a sidecar, and its JSON export.
    let mut seen = 0;
    for (name, bytes) in files.iter().filter(|(n, _)| *n != "huge.txt") {
        let key_prefix = name.replace(['/', '.'], "_");
        let file = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let f = p.file_name().unwrap().to_string_lossy().into_owned();
                f.starts_with(&format!("{key_prefix}-")) && f.ends_with(".safetensors")
            })
            .unwrap_or_else(|| panic!("no output for {name}"));
        let data = std::fs::read(&file).unwrap();
        let st = safetensors::SafeTensors::deserialize(&data).unwrap();
        assert_eq!(st.tensor("bytes").unwrap().data(), *bytes);
        let path = input.join(name);
        let p = run(
            &[
                "patch",
                "--model",
                &model(),
                "--file",
                path.to_str().unwrap(),
                "--json",
            ],
            tmp.path(),
        );
        assert!(p.status.success(), "{}", text(&p.stderr));
        let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
        let want: Vec<f32> = serde_json::from_value(v["entropies"].clone()).unwrap();
        let got = tensor_f32(&st, "entropies");
        assert_eq!(got.len(), want.len(), "{name}");
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
        }
        let lengths: Vec<i32> = serde_json::from_value(v["patch_lengths"].clone()).unwrap();
        assert_eq!(tensor_i32(&st, "patch_lengths"), lengths, "{name}");
        let emb = st.tensor("embeddings").unwrap();
        assert_eq!(emb.shape(), &[lengths.len(), 128]);
        let stem = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".safetensors", "");
        assert!(out.join(format!("{stem}.hypergraph.sqlite")).is_file());
        assert!(out.join(format!("{stem}.hypergraph.json")).is_file());
        seen += 1;
    }
    assert_eq!(seen, 4);
    // nothing temporary left
    assert!(
        tree(&out).keys().all(|k| !k.contains(".tmp")),
        "{:?}",
        tree(&out).keys()
    );

    // inspect reads an output and a sidecar
    let any = tree(&out)
        .into_keys()
        .find(|k| k.starts_with("prose_txt") && k.ends_with(".safetensors"))
        .unwrap();
    let o = run(&["inspect", &format!("out/{any}"), "--json"], tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bytes"], files[0].1.len());
    assert!(v["entropy_percentiles"]["p50"].is_number());
    let sidecar = any.replace(".safetensors", ".hypergraph.sqlite");
    let o = run(&["inspect", &format!("out/{sidecar}")], tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("hypergraph-sidecar"));
}

#[test]
fn every_document_failing_is_an_error_and_fail_fast_stops() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("big.txt"), [b'a'; 100]).unwrap();
    let o = run(
        &[
            "ingest",
            "--model",
            &model(),
            "--file",
            "big.txt",
            "--output",
            "o",
            "--max-doc-bytes",
            "10",
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("every document failed"),
        "{}",
        text(&o.stderr)
    );

    std::fs::write(tmp.path().join("ok.txt"), b"fine").unwrap();
    let list = "big.txt\nok.txt\n";
    let mut child = blt()
        .args([
            "ingest",
            "--model",
            &model(),
            "--stdin-list",
            "--output",
            "o2",
            "--max-doc-bytes",
            "10",
            "--fail-fast",
        ])
        .current_dir(tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("big.txt"), "{}", text(&o.stderr));
}

fn make_corpus(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let body: String = (0..(40 + (i * 37) % 400))
            .map(|j| (b'a' + ((i * 7 + j * 13) % 26) as u8) as char)
            .collect();
        std::fs::write(
            dir.join(format!("doc{i:04}.txt")),
            format!("Document {i}: {body}"),
        )
        .unwrap();
    }
}

fn ingest_args<'a>(out: &'a str, extra: &[&'a str], model: &'a str) -> Vec<&'a str> {
    let mut a = vec![
        "ingest", "--model", model, "--input", "corpus", "--output", out,
    ];
    a.extend_from_slice(extra);
    a
}

fn kill_and_resume(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 400);
    let model = model();

    // The uninterrupted run.
    let o = run(&ingest_args("whole", extra, &model), tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));

    // A run killed part-way (SIGKILL), then resumed.
    let mut child = blt()
        .args(ingest_args("killed", extra, &model))
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killed = tmp.path().join("killed");
    let start = Instant::now();
    let mut interrupted = false;
    while start.elapsed() < Duration::from_secs(120) {
        // complete outputs only (temporary files do not count)
        let n = std::fs::read_dir(&killed)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.ends_with(".safetensors") || name.ends_with(".tar")
                    })
                    .count()
            })
            .unwrap_or(0);
        if n >= 3 {
            child.kill().unwrap();
            interrupted = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait().unwrap();
    assert!(interrupted, "the run finished before it could be killed");
    assert!(
        !killed.join("run.json").exists(),
        "the run was killed after it completed"
    );

    let mut resume = extra.to_vec();
    resume.push("--resume");
    let o = run(&ingest_args("killed", &resume, &model), tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(!err.contains(" 0 skipped"), "resume skipped nothing: {err}");

    let (mut a, mut b): (BTreeMap<_, _>, BTreeMap<_, _>) =
        (tree(&tmp.path().join("whole")), tree(&killed));
    a.remove("run.json");
    b.remove("run.json");
    assert!(
        b.keys().all(|k| !k.contains(".tmp")),
        "temporary files left: {:?}",
        b.keys()
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs after kill + resume");
    }
}

/// Several writer threads write what one writes, byte for byte; a file listed twice is written
/// once at a time (never two threads into one temporary file); the run's stage times are there.
#[test]
fn parallel_writers_write_what_one_writer_writes() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 60);
    let model = model();
    for (out, threads) in [("one", "1"), ("many", "4")] {
        let o = run(
            &ingest_args(out, &["--write-threads", threads], &model),
            tmp.path(),
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let (mut one, mut many) = (
        tree(&tmp.path().join("one")),
        tree(&tmp.path().join("many")),
    );
    let run_json: serde_json::Value = serde_json::from_slice(&many["run.json"]).unwrap();
    let stats = &run_json["stats"];
    assert_eq!(stats["written"], 60);
    for key in [
        "model_seconds",
        "model_blocked_seconds",
        "postprocess_seconds",
        "write_seconds",
    ] {
        assert!(
            stats[key]
                .as_f64()
                .is_some_and(|s| s > 0.0 || key == "model_blocked_seconds"),
            "{key}: {stats}"
        );
    }
    assert_eq!(stats["files"].as_array().map(Vec::len), Some(120));
    one.remove("run.json");
    many.remove("run.json");
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        many.keys().collect::<Vec<_>>()
    );
    for (k, v) in &one {
        assert!(v == &many[k], "{k} differs between one writer and four");
    }
}

#[test]
fn killed_run_resumes_to_identical_outputs() {
    kill_and_resume(&["--embeddings", "none"]);
}

#[test]
fn killed_webdataset_run_resumes_to_identical_shards() {
    kill_and_resume(&[
        "--format",
        "webdataset",
        "--shard-max-count",
        "25",
        "--embeddings",
        "patch",
    ]);
}

#[test]
fn webdataset_shards_list_and_decode() {
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 30);
    let model = model();
    let o = run(
        &ingest_args(
            "shards",
            &["--format", "webdataset", "--shard-max-count", "12"],
            &model,
        ),
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = tmp.path().join("shards");
    let files: Vec<PathBuf> = ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
        .iter()
        .map(|f| out.join(f))
        .collect();
    let mut samples = 0;
    for f in &files {
        assert!(f.is_file(), "{} missing", f.display());
        let sidecar = f.with_extension("hypergraph.sqlite");
        assert!(sidecar.is_file(), "{} missing", sidecar.display());
        if let Ok(listing) = Command::new("tar").arg("-tf").arg(f).output() {
            let names = text(&listing.stdout);
            let names: Vec<&str> = names.lines().collect();
            assert_eq!(names.len() % 2, 0);
            for pair in names.chunks(2) {
                let key = pair[0].strip_suffix(".json").unwrap();
                assert_eq!(pair[1], format!("{key}.safetensors"));
            }
        }
        let o = run(&["inspect", f.to_str().unwrap(), "--json"], tmp.path());
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        samples += v["samples"].as_u64().unwrap();
    }
    assert_eq!(samples, 30);
}

#[test]
fn resume_rebuilds_a_missing_shard_sidecar_identically() {
    // A run killed after a shard was closed but before its sidecar was renamed into place.
    let tmp = tempfile::tempdir().unwrap();
    make_corpus(&tmp.path().join("corpus"), 20);
    let model = model();
    let args = [
        "--format",
        "webdataset",
        "--shard-max-count",
        "8",
        "--export-json",
    ];
    let o = run(&ingest_args("s", &args, &model), tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sidecar = tmp.path().join("s/shard-000001.hypergraph.sqlite");
    let json = tmp.path().join("s/shard-000001.hypergraph.json");
    let (before, before_json) = (
        std::fs::read(&sidecar).unwrap(),
        std::fs::read(&json).unwrap(),
    );
    std::fs::remove_file(&sidecar).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = run(&ingest_args("s", &resume, &model), tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("0 written, 20 skipped"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read(&sidecar).unwrap(), before);
    assert_eq!(std::fs::read(&json).unwrap(), before_json);
}
