//! Sinks: safetensors bytes and folder sink, WebDataset shards (rolling, listing, decoding,
//! resume, determinism), checked also with the system `tar` and Python where present.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use blt_datasets::{
    safetensors_bytes, tar_index, write_atomic, DocumentRecord, Dtype, Error, OutputTensor,
    SafetensorsDirSink, ShardOptions, WebDatasetSink,
};
use safetensors::SafeTensors;

fn record(key: &str, payload: &[u8]) -> DocumentRecord {
    DocumentRecord::new(key)
        .with_metadata("format", "test_v1")
        .with_metadata("total_bytes", payload.len().to_string())
        .with_tensor(OutputTensor::u8("bytes", payload))
        .with_tensor(OutputTensor::i32("patch_lengths", [2], &[1, 2]))
        .with_tensor(OutputTensor::f32("entropies", [3], &[0.5, 1.25, -2.0]))
        .with_json(serde_json::json!({ "source": key, "total_bytes": payload.len() }))
}

fn options(max_shard_bytes: u64, max_shard_count: usize) -> ShardOptions {
    ShardOptions {
        max_shard_bytes,
        max_shard_count,
        ..ShardOptions::default()
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Reads every member of a shard as (name, bytes).
fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Checks the sample layout (`<key>.json`, `<key>.safetensors` pairs) and decodes every sample;
/// returns the keys in order.
fn decode_shard(path: &Path) -> Vec<String> {
    let members = members(path);
    assert_eq!(members.len() % 2, 0);
    let mut keys = Vec::new();
    for pair in members.chunks(2) {
        let key = pair[0].0.strip_suffix(".json").unwrap().to_owned();
        assert_eq!(pair[1].0, format!("{key}.safetensors"));
        let json: serde_json::Value = serde_json::from_slice(&pair[0].1).unwrap();
        assert_eq!(json["source"], key.as_str());
        let tensors = SafeTensors::deserialize(&pair[1].1).unwrap();
        let bytes = tensors.tensor("bytes").unwrap();
        assert_eq!(bytes.dtype(), Dtype::U8);
        assert_eq!(json["total_bytes"], bytes.data().len());
        assert_eq!(tensors.tensor("patch_lengths").unwrap().shape(), [2]);
        keys.push(key);
    }
    keys
}

fn system_tar_list(path: &Path) -> Option<Vec<String>> {
    let output = match Command::new("tar").arg("-tf").arg(path).output() {
        Ok(output) => output,
        Err(_) => {
            println!("note: no system `tar`; skipping the `tar -tf` check");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn safetensors_round_trip_and_determinism() {
    let values = [0.5f32, -1.0, 3.25, 65504.0];
    let rec = DocumentRecord::new("doc-1")
        .with_metadata("format", "blt_patches_v4")
        .with_metadata("num_patches", "2")
        .with_tensor(OutputTensor::u8("bytes", b"hello"))
        .with_tensor(OutputTensor::i32("patch_lengths", [2], &[2, 3]))
        .with_tensor(OutputTensor::i64("ids", [1, 2], &[-5, 1 << 40]))
        .with_tensor(OutputTensor::f32("entropies", [2, 2], &values))
        .with_tensor(OutputTensor::f16_from_f32("emb_f16", [4], &values))
        .with_tensor(OutputTensor::bf16_from_f32("emb_bf16", [4], &values))
        .with_tensor(OutputTensor::f32("scalar", [], &[7.0]));
    let bytes = safetensors_bytes(&rec).unwrap();

    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), 7);
    for tensor in &rec.tensors {
        let view = st.tensor(&tensor.name).unwrap();
        assert_eq!(view.dtype(), tensor.dtype, "{}", tensor.name);
        assert_eq!(view.shape(), tensor.shape.as_slice(), "{}", tensor.name);
        assert_eq!(view.data(), tensor.data.as_slice(), "{}", tensor.name);
        // Every tensor starts aligned to its element size within the file.
        let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset % (tensor.dtype.bitsize() / 8), 0, "{}", tensor.name);
    }
    let f16: Vec<f32> = st
        .tensor("emb_f16")
        .unwrap()
        .data()
        .chunks(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(f16, values);
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata: BTreeMap<String, String> =
        header.metadata().clone().unwrap().into_iter().collect();
    assert_eq!(metadata, rec.metadata);

    // Same content, tensors and metadata given in another order: the same bytes.
    let mut shuffled = rec.clone();
    shuffled.tensors.reverse();
    assert_eq!(safetensors_bytes(&shuffled).unwrap(), bytes);
    assert_eq!(safetensors_bytes(&rec).unwrap(), bytes);

    // No metadata: no `__metadata__` entry, still parses.
    let bare = DocumentRecord::new("bare").with_tensor(OutputTensor::u8("b", b""));
    let bytes = safetensors_bytes(&bare).unwrap();
    assert!(SafeTensors::read_metadata(&bytes)
        .unwrap()
        .1
        .metadata()
        .is_none());
}

#[test]
fn safetensors_dir_sink_writes_and_detects_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut sink = SafetensorsDirSink::new(&out).unwrap();
    let rec = record("doc-a", b"some bytes");
    assert!(!sink.is_complete("doc-a"));
    let path = sink.write(&rec).unwrap();
    assert_eq!(path, out.join("doc-a.safetensors"));
    assert_eq!(path, sink.path_of("doc-a"));
    assert!(sink.is_complete("doc-a"));
    assert_eq!(fs::read(&path).unwrap(), safetensors_bytes(&rec).unwrap());
    assert_eq!(file_names(&out), ["doc-a.safetensors"]);

    // Truncated, garbage, or not a key: not complete.
    let whole = fs::read(&path).unwrap();
    fs::write(sink.path_of("cut"), &whole[..whole.len() - 1]).unwrap();
    assert!(!sink.is_complete("cut"));
    fs::write(sink.path_of("junk"), b"not a safetensors file").unwrap();
    assert!(!sink.is_complete("junk"));
    assert!(!sink.is_complete("../doc-a"));

    // Invalid records are refused with their key.
    let err = sink.write(&DocumentRecord::new("a.b")).unwrap_err();
    assert!(
        matches!(err, Error::InvalidKey { ref key, .. } if key == "a.b"),
        "{err}"
    );

    // Stale temps of a killed run.
    fs::write(out.join("doc-b.safetensors.tmp-12345"), b"partial").unwrap();
    assert_eq!(sink.remove_stale_temps().unwrap(), 1);
    assert!(!out.join("doc-b.safetensors.tmp-12345").exists());
}

#[test]
fn write_atomic_replaces_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    write_atomic(&path, b"{}").unwrap();
    write_atomic(&path, b"{\"a\":1}").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
    assert_eq!(file_names(dir.path()), ["x.json"]);
}

#[test]
fn webdataset_rolls_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = WebDatasetSink::new(dir.path(), options(1 << 30, 2)).unwrap();
    let keys: Vec<String> = (0..5).map(|i| format!("doc-{i}")).collect();
    let mut closed = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let event = sink.write(&record(key, key.as_bytes())).unwrap();
        assert_eq!(event.shard_index, i as u64 / 2);
        // A shard closes as soon as it holds max_shard_count samples.
        assert_eq!(event.closed.len(), i % 2);
        closed.extend(event.closed);
    }
    closed.extend(sink.finish().unwrap());
    assert_eq!(
        file_names(dir.path()),
        ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    );
    let shard_keys: Vec<Vec<String>> = closed.iter().map(|s| s.keys.clone()).collect();
    assert_eq!(shard_keys, [&keys[0..2], &keys[2..4], &keys[4..5]]);
    for shard in &closed {
        assert_eq!(decode_shard(&shard.path), shard.keys);
        assert_eq!(fs::metadata(&shard.path).unwrap().len(), shard.bytes);
        let listing: Vec<String> = shard
            .keys
            .iter()
            .flat_map(|k| [format!("{k}.json"), format!("{k}.safetensors")])
            .collect();
        let index: Vec<String> = tar_index(&shard.path)
            .unwrap()
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(index, listing);
        if let Some(names) = system_tar_list(&shard.path) {
            assert_eq!(names, listing);
        }
    }
}

#[test]
fn webdataset_rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    // Each sample here: json (512 + 512) + safetensors (512 + 512 for a small payload).
    let sample = 4 * 512;
    let max = 1024 + 2 * sample as u64; // two samples and the trailer fit, three do not
    let mut sink = WebDatasetSink::new(dir.path(), options(max, 100)).unwrap();
    let mut closed = Vec::new();
    for i in 0..5 {
        let event = sink.write(&record(&format!("s{i}"), b"tiny")).unwrap();
        closed.extend(event.closed);
    }
    // A sample larger than the limit gets a shard of its own.
    let big = vec![1u8; 10_000];
    let event = sink.write(&record("big", &big)).unwrap();
    closed.extend(event.closed);
    let event = sink.write(&record("after", b"x")).unwrap();
    assert_eq!(event.closed.last().unwrap().keys, ["big"]);
    closed.extend(event.closed);
    closed.extend(sink.finish().unwrap());
    let counts: Vec<usize> = closed.iter().map(|s| s.keys.len()).collect();
    assert_eq!(counts, [2, 2, 1, 1, 1]);
    for shard in &closed {
        let len = fs::metadata(&shard.path).unwrap().len();
        assert_eq!(len, shard.bytes);
        assert!(
            len <= max || shard.keys == ["big"],
            "{} is {len} bytes",
            shard.path.display()
        );
        decode_shard(&shard.path);
    }
}

#[test]
fn webdataset_resume_removes_temp_and_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = WebDatasetSink::new(dir.path(), options(1 << 30, 2)).unwrap();
    for i in 0..3 {
        sink.write(&record(&format!("k{i}"), b"abc")).unwrap();
    }
    // Killed with shard 1 open: it stays a .tar.tmp.
    drop(sink);
    assert_eq!(
        file_names(dir.path()),
        ["shard-000000.tar", "shard-000001.tar.tmp"]
    );
    let done = WebDatasetSink::completed_keys(dir.path(), "shard").unwrap();
    assert_eq!(done.into_iter().collect::<Vec<_>>(), ["k0", "k1"]);

    fs::write(dir.path().join("shard-000007.tar.tmp"), b"junk").unwrap();
    fs::write(dir.path().join("other-000009.tar.tmp"), b"not ours").unwrap();
    let mut sink = WebDatasetSink::new(dir.path(), options(1 << 30, 2)).unwrap();
    assert_eq!(
        file_names(dir.path()),
        ["other-000009.tar.tmp", "shard-000000.tar"]
    );
    let event = sink.write(&record("k2", b"abc")).unwrap();
    assert_eq!(event.shard_index, 1);
    let last = sink.finish().unwrap().unwrap();
    assert_eq!(last.path, dir.path().join("shard-000001.tar"));
    let done = WebDatasetSink::completed_keys(dir.path(), "shard").unwrap();
    assert_eq!(done.into_iter().collect::<Vec<_>>(), ["k0", "k1", "k2"]);

    // Numbering continues after the highest complete shard, even past a gap.
    fs::rename(
        dir.path().join("shard-000001.tar"),
        dir.path().join("shard-000004.tar"),
    )
    .unwrap();
    let mut sink = WebDatasetSink::new(dir.path(), options(1 << 30, 2)).unwrap();
    assert_eq!(sink.write(&record("k3", b"abc")).unwrap().shard_index, 5);
    assert!(sink.finish().unwrap().is_some());

    // An absent folder has no keys; a finish with nothing open closes nothing.
    assert!(
        WebDatasetSink::completed_keys(dir.path().join("none"), "shard")
            .unwrap()
            .is_empty()
    );
    let sink = WebDatasetSink::new(dir.path().join("fresh"), ShardOptions::default()).unwrap();
    assert!(sink.finish().unwrap().is_none());
    assert!(file_names(&dir.path().join("fresh")).is_empty());
}

fn write_shards(dir: &Path, records: &[DocumentRecord]) -> Vec<PathBuf> {
    let mut sink = WebDatasetSink::new(dir, options(1 << 30, 3)).unwrap();
    let mut paths = Vec::new();
    for rec in records {
        paths.extend(sink.write(rec).unwrap().closed.into_iter().map(|s| s.path));
    }
    paths.extend(sink.finish().unwrap().map(|s| s.path));
    paths
}

#[test]
fn webdataset_shards_are_byte_identical_for_identical_inputs() {
    let records: Vec<DocumentRecord> = (0..7)
        .map(|i| record(&format!("d{i}"), &vec![i as u8; 100 * i]))
        .collect();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = write_shards(a.path(), &records);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a different wall clock
    let pb = write_shards(b.path(), &records);
    assert_eq!(pa.len(), 3);
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(fs::read(x).unwrap(), fs::read(y).unwrap());
    }
}

#[test]
fn webdataset_refuses_bad_records_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = WebDatasetSink::new(dir.path(), ShardOptions::default()).unwrap();
    sink.write(&record("same", b"1")).unwrap();
    let err = sink.write(&record("same", b"2")).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateKey { ref key, .. } if key == "same"),
        "{err}"
    );
    let err = sink.write(&record("has.dot", b"2")).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
    let last = sink.finish().unwrap().unwrap();
    assert_eq!(decode_shard(&last.path), ["same"]);

    for bad in [
        options(0, 1),
        options(1, 0),
        ShardOptions {
            prefix: "a.b".into(),
            ..ShardOptions::default()
        },
    ] {
        let err = WebDatasetSink::new(dir.path(), bad).unwrap_err();
        assert!(matches!(err, Error::InvalidOptions { .. }), "{err}");
    }
}

#[test]
fn webdataset_long_keys_use_pax_names() {
    let dir = tempfile::tempdir().unwrap();
    let key = format!("{}-0123456789abcdef", "k".repeat(150));
    let mut sink = WebDatasetSink::new(dir.path(), ShardOptions::default()).unwrap();
    sink.write(&record(&key, b"long")).unwrap();
    sink.write(&record("short", b"s")).unwrap();
    let shard = sink.finish().unwrap().unwrap();
    let expected = [
        format!("{key}.json"),
        format!("{key}.safetensors"),
        "short.json".to_owned(),
        "short.safetensors".to_owned(),
    ];
    let names: Vec<String> = tar_index(&shard.path)
        .unwrap()
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(names, expected);
    assert_eq!(decode_shard(&shard.path), [key.clone(), "short".to_owned()]);
    assert_eq!(fs::metadata(&shard.path).unwrap().len(), shard.bytes);
    if let Some(listing) = system_tar_list(&shard.path) {
        assert_eq!(listing, expected);
    }
    let done = WebDatasetSink::completed_keys(dir.path(), "shard").unwrap();
    assert!(done.contains(&key));
}

fn python() -> String {
    std::env::var("BLT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn python_can_import(module: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn one_shard(dir: &Path) -> PathBuf {
    let records: Vec<DocumentRecord> = ["alpha", "beta-2", "gamma_3"]
        .iter()
        .map(|k| record(k, k.as_bytes()))
        .collect();
    let paths = write_shards(dir, &records);
    assert_eq!(paths.len(), 1);
    paths[0].clone()
}

#[test]
fn python_tarfile_reads_shards_as_posix() {
    if !python_can_import("tarfile") {
        // No Python 3 here: the system-tar and tar-crate checks above still run.
        println!("note: no python3; skipping the tarfile check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shard = one_shard(dir.path());
    let script = r#"
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    members = tf.getmembers()
    for m in members:
        assert m.isfile() and m.mode == 0o644 and m.mtime == 0 and m.uid == 0 and m.gid == 0, m
    print(" ".join(m.name for m in members))
"#;
    let output = Command::new(python())
        .args(["-c", script])
        .arg(&shard)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        "alpha.json alpha.safetensors beta-2.json beta-2.safetensors gamma_3.json gamma_3.safetensors"
    );
}

#[test]
fn python_webdataset_reads_shards() {
    if !python_can_import("webdataset") {
        // The Python `webdataset` package is not installed (set BLT_TEST_PYTHON to an
        // interpreter that has it): nothing to check here, and nothing is installed for it.
        println!("note: python `webdataset` not importable; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shard = one_shard(dir.path());
    let script = r#"
import sys, json, webdataset as wds
keys = []
for sample in wds.WebDataset(sys.argv[1], shardshuffle=False):
    meta = json.loads(sample["json"])
    assert meta["source"] == sample["__key__"], (meta, sample["__key__"])
    assert sample["safetensors"][:8] != b"", sample["__key__"]
    keys.append(sample["__key__"])
print(" ".join(keys))
"#;
    let output = Command::new(python())
        .args(["-c", script])
        .arg(&shard)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        "alpha beta-2 gamma_3"
    );
}

#[test]
fn webdataset_reports_a_rolled_shard_when_the_next_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = WebDatasetSink::new(dir.path(), options(4096, 100)).unwrap();
    assert!(sink
        .write(&record("first", b"1"))
        .unwrap()
        .closed
        .is_empty());
    // A folder where the next shard's temp file would go: creating it fails, even as root.
    let blocker = dir.path().join("shard-000001.tar.tmp");
    fs::create_dir(&blocker).unwrap();
    let err = sink.write(&record("second", b"2")).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == blocker),
        "{err}"
    );
    let rolled = sink.drain_closed();
    assert_eq!(rolled.len(), 1);
    assert_eq!(rolled[0].keys, ["first"]);
    assert_eq!(decode_shard(&rolled[0].path), ["first"]);
    fs::remove_dir(&blocker).unwrap();
    let event = sink.write(&record("second", b"2")).unwrap();
    assert!(event.closed.is_empty());
    assert_eq!(event.shard_index, 1);
    assert_eq!(sink.finish().unwrap().unwrap().keys, ["second"]);
}
