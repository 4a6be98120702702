//! A broken checkpoint is a typed error naming the tensor and the file, never a panic: a missing
//! tensor, a wrong shape, a wrong dtype, a truncated file, a garbage header, a bad config; a
//! damaged PyTorch archive (missing, short or corrupt storage) is an error, never zeros; a hostile
//! config is refused before anything is allocated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blt_model::backend::Cpu;
use blt_model::{Checkpoint, Error, TensorDamage};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

/// A copy of the tiny checkpoint whose weights file is rewritten by `edit`.
fn broken_copy(
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: HashMap<String, TensorView<'_>> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(&views, None, &dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load_err(dir: &Path) -> Error {
    let result = Checkpoint::open(dir).and_then(|c| c.load::<Cpu>(&Default::default(), None));
    match result {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor() {
    let dir = broken_copy(|t| t.retain(|(n, ..)| n != "layers.1.feed_forward.w3.weight"));
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::MissingTensor { name, path } if name == "layers.1.feed_forward.w3.weight" && path.ends_with("model.safetensors")),
        "{err}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn wrong_shape() {
    let dir = broken_copy(|t| {
        let w = t
            .iter_mut()
            .find(|(n, ..)| n == "layers.0.attention.wk.weight")
            .unwrap();
        w.2 = vec![64, 256]; // same bytes, other shape
    });
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::ShapeMismatch { name, expected, found, .. }
            if name == "layers.0.attention.wk.weight" && expected == &vec![128, 128] && found == &vec![64, 256]),
        "{err}"
    );
}

#[test]
fn wrong_dtype() {
    let dir = broken_copy(|t| {
        let w = t.iter_mut().find(|(n, ..)| n == "norm.weight").unwrap();
        w.1 = Dtype::I32; // 4-byte ints: same byte length
    });
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::UnsupportedDType { name, .. } if name == "norm.weight"),
        "{err}"
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::InvalidWeights { path, .. } if path.ends_with("model.safetensors")),
        "{err}"
    );
}

#[test]
fn garbage_header() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).unwrap();
    let mut garbage = 40u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"{ this is not json at all, not even close");
    std::fs::write(dir.path().join("model.safetensors"), garbage).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(&err, Error::InvalidWeights { .. }), "{err}");
    // an absurd header length must not make the loader allocate or panic either
    std::fs::write(dir.path().join("model.safetensors"), u64::MAX.to_le_bytes()).unwrap();
    assert!(matches!(load_err(dir.path()), Error::InvalidWeights { .. }));
}

#[test]
fn bad_config_and_unknown_layout() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(load_err(dir.path()), Error::UnknownLayout { .. }));
    std::fs::copy(
        tiny().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        "{\"args\": {\"dim\": \"wide\"}}",
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Config { path, .. } if path.ends_with("config.json")),
        "{err}"
    );
    // a config that disagrees with the weights names the first mismatching tensor
    std::fs::write(
        dir.path().join("config.json"),
        std::fs::read_to_string(tiny().join("config.json"))
            .unwrap()
            .replace("\"n_layers\": 3", "\"n_layers\": 4"),
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::MissingTensor { name, .. } if name.starts_with("layers.3.")),
        "{err}"
    );
}

// ---- safetensors whose header and data disagree ----

/// A copy of the tiny checkpoint whose safetensors header (JSON) is rewritten by `edit` and
/// whose data section is rewritten by `data`, byte for byte otherwise.
fn header_edited(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    data: impl FnOnce(&mut Vec<u8>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut body = bytes[8 + n..].to_vec();
    edit(&mut header);
    data(&mut body);
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&body);
    std::fs::write(dir.path().join("model.safetensors"), out).unwrap();
    dir
}

fn offsets(header: &serde_json::Map<String, serde_json::Value>, name: &str) -> (u64, u64) {
    let o = &header[name]["data_offsets"];
    (o[0].as_u64().unwrap(), o[1].as_u64().unwrap())
}

fn set_offsets(
    header: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    (start, end): (u64, u64),
) {
    header[name]["data_offsets"] = serde_json::json!([start, end]);
}

fn assert_invalid_safetensors(dir: &Path) {
    let err = load_err(dir);
    assert!(
        matches!(&err, Error::InvalidWeights { path, format, .. }
            if path.ends_with("model.safetensors") && *format == "safetensors"),
        "{err}"
    );
}

#[test]
fn a_rewritten_header_loads_when_it_is_consistent() {
    // the helper alone (no edit) and a header listing tensors in another order still load:
    // the failures below come from the edits
    let dir = header_edited(|_| {}, |_| {});
    Checkpoint::open(dir.path())
        .and_then(|c| c.load::<Cpu>(&Default::default(), None))
        .unwrap();
    let dir = header_edited(
        |h| {
            let reversed: Vec<_> = std::mem::take(h).into_iter().rev().collect();
            h.extend(reversed);
        },
        |_| {},
    );
    Checkpoint::open(dir.path())
        .and_then(|c| c.load::<Cpu>(&Default::default(), None))
        .unwrap();
}

#[test]
fn safetensors_offsets_past_the_end() {
    let dir = header_edited(
        |h| {
            let (start, end) = offsets(h, "output.weight");
            set_offsets(h, "output.weight", (start + (1 << 20), end + (1 << 20)));
        },
        |_| {},
    );
    assert_invalid_safetensors(dir.path());
}

#[test]
fn safetensors_overlapping_offsets() {
    let dir = header_edited(
        |h| {
            // norm.weight re-uses the bytes of the first ffn_norm: same length, overlapping
            let other = offsets(h, "layers.0.ffn_norm.weight");
            set_offsets(h, "norm.weight", other);
        },
        |_| {},
    );
    assert_invalid_safetensors(dir.path());
}

#[test]
fn safetensors_dtype_size_mismatch() {
    let dir = header_edited(
        |h| h["norm.weight"]["dtype"] = "BF16".into(), // half the bytes of the F32 it spans
        |_| {},
    );
    assert_invalid_safetensors(dir.path());
    let dir = header_edited(
        |h| h["norm.weight"]["shape"] = serde_json::json!([32]),
        |_| {},
    );
    assert_invalid_safetensors(dir.path());
}

#[test]
fn safetensors_short_or_long_by_one_byte() {
    let dir = header_edited(|_| {}, |data| data.truncate(data.len() - 1));
    assert_invalid_safetensors(dir.path());
    let dir = header_edited(|_| {}, |data| data.push(0));
    assert_invalid_safetensors(dir.path());
}

// ---- damaged PyTorch checkpoints ----

fn micro_meta() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/micro-meta")
}

/// The entries of the micro Meta checkpoint's zip archive, in order.
fn pth_entries() -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(micro_meta().join("consolidated.pth")).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().unwrap().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// A copy of the micro Meta checkpoint whose archive entries are rewritten by `edit`.
fn pth_copy(edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        micro_meta().join("params.json"),
        dir.path().join("params.json"),
    )
    .unwrap();
    let mut entries = pth_entries();
    edit(&mut entries);
    let file = std::fs::File::create(dir.path().join("consolidated.pth")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    for (name, bytes) in &entries {
        zip.start_file(name.as_str(), options).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    }
    zip.finish().unwrap();
    dir
}

fn entry<'e>(entries: &'e mut [(String, Vec<u8>)], name: &str) -> &'e mut Vec<u8> {
    &mut entries.iter_mut().find(|(n, _)| n == name).unwrap().1
}

fn pth_damage(dir: &Path) -> (String, TensorDamage) {
    match load_err(dir) {
        Error::DamagedTensor {
            path,
            name,
            problem,
        } => {
            assert!(path.ends_with("consolidated.pth"), "{}", path.display());
            (name, problem)
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_rewritten_pth_loads_and_matches_the_fixture() {
    let dir = pth_copy(|_| {});
    let device = Default::default();
    let copy = Checkpoint::open(dir.path())
        .and_then(|c| c.load::<Cpu>(&device, None))
        .unwrap();
    let fixture = Checkpoint::open(&micro_meta())
        .and_then(|c| c.load::<Cpu>(&device, None))
        .unwrap();
    let weights = |m: &blt_model::EntropyModel<Cpu>| {
        m.tok_embeddings
            .weight
            .val()
            .into_data()
            .into_vec::<f32>()
            .unwrap()
    };
    let w = weights(&copy);
    assert!(w.iter().any(|&x| x != 0.0));
    assert_eq!(w, weights(&fixture));
}

#[test]
fn pth_without_a_storage_entry() {
    let dir = pth_copy(|e| e.retain(|(n, _)| n != "consolidated/data/0"));
    let (name, problem) = pth_damage(dir.path());
    assert_eq!(name, "tok_embeddings.weight");
    assert_eq!(
        problem,
        TensorDamage::MissingStorage {
            entry: "consolidated/data/0".into()
        }
    );
}

#[test]
fn pth_with_a_short_storage_entry() {
    let dir = pth_copy(|e| entry(e, "consolidated/data/5").truncate(24_576));
    let (name, problem) = pth_damage(dir.path());
    assert!(name.starts_with("layers.0.feed_forward."), "{name}");
    assert_eq!(
        problem,
        TensorDamage::ShortStorage {
            entry: "consolidated/data/5".into(),
            needed: 49_152,
            found: 24_576
        }
    );
    // one element short
    let dir = pth_copy(|e| drop(entry(e, "consolidated/data/8").drain(252..)));
    let (_, problem) = pth_damage(dir.path());
    assert!(
        matches!(
            problem,
            TensorDamage::ShortStorage {
                needed: 256,
                found: 252,
                ..
            }
        ),
        "{problem}"
    );
}

#[test]
fn pth_with_an_empty_storage_entry() {
    let dir = pth_copy(|e| entry(e, "consolidated/data/0").clear());
    let (name, problem) = pth_damage(dir.path());
    assert_eq!(name, "tok_embeddings.weight");
    assert!(
        matches!(problem, TensorDamage::ShortStorage { found: 0, .. }),
        "{problem}"
    );
}

/// Rewrites the first occurrence of `from` in the archive's pickle with `to` (same length).
fn patch_pickle(entries: &mut [(String, Vec<u8>)], from: &[u8], to: &[u8]) {
    let pickle = entry(entries, "consolidated/data.pkl");
    let at = pickle
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the pickle");
    pickle[at..at + to.len()].copy_from_slice(to);
}

#[test]
fn pth_offset_past_the_storage() {
    // tok_embeddings: BINPERSID, storage offset BININT1 0, shape (BININT2 260, BININT1 64)
    let dir = pth_copy(|e| {
        patch_pickle(
            e,
            b"Q\x4b\x00\x4d\x04\x01\x4b\x40",
            b"Q\x4b\x10\x4d\x04\x01\x4b\x40",
        )
    });
    let (name, problem) = pth_damage(dir.path());
    assert_eq!(name, "tok_embeddings.weight");
    assert_eq!(
        problem,
        TensorDamage::ShortStorage {
            entry: "consolidated/data/0".into(),
            needed: (16 + 260 * 64) * 4,
            found: 260 * 64 * 4
        }
    );
}

#[test]
fn pth_with_transposed_strides() {
    // tok_embeddings' strides (64, 1) → (1, 64): burn-store would read it row-major, wrongly
    let dir = pth_copy(|e| patch_pickle(e, b"\x4b\x40\x4b\x01\x86", b"\x4b\x01\x4b\x40\x86"));
    let (name, problem) = pth_damage(dir.path());
    assert_eq!(name, "tok_embeddings.weight");
    assert_eq!(
        problem,
        TensorDamage::NonContiguous {
            shape: vec![260, 64],
            stride: vec![1, 64]
        }
    );
}

#[test]
fn pth_whose_storage_fails_its_crc() {
    let dir = pth_copy(|_| {});
    let path = dir.path().join("consolidated.pth");
    // flip one byte inside the stored (uncompressed) bytes of data/3, leaving its CRC
    let start = {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let entry = archive.by_name("consolidated/data/3").unwrap();
        entry.data_start().unwrap()
    };
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start as usize + 100] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let (name, problem) = pth_damage(dir.path());
    assert!(name.starts_with("layers.0.attention."), "{name}");
    assert!(
        matches!(&problem, TensorDamage::UnreadableStorage { entry, .. } if entry == "consolidated/data/3"),
        "{problem}"
    );
}

#[test]
fn pth_with_a_hostile_pickle() {
    // 200 nested lists: burn-store's recursive reader is never given it
    let mut deep = vec![0x80, 2];
    deep.extend(std::iter::repeat_n(b']', 200));
    deep.extend(std::iter::repeat_n(b'a', 199));
    deep.push(b'.');
    let dir = pth_copy(|e| *entry(e, "consolidated/data.pkl") = deep);
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::InvalidWeights { format, reason, .. } if *format == "PyTorch" && reason.contains("deeper")),
        "{err}"
    );
    // a pickle cut short
    let dir = pth_copy(|e| entry(e, "consolidated/data.pkl").truncate(500));
    assert!(matches!(load_err(dir.path()), Error::InvalidWeights { .. }));
    // not a zip archive at all
    std::fs::write(dir.path().join("consolidated.pth"), b"\x80\x02}q\x00.").unwrap();
    assert!(matches!(load_err(dir.path()), Error::InvalidWeights { .. }));
}

// ---- hostile configs: refused before anything is allocated ----

/// Opens a hub-layout checkpoint whose config.json is `config` (the tiny weights beside it).
fn open_with_config(config: serde_json::Value) -> Error {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    load_err(dir.path())
}

fn tiny_config() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap()).unwrap()
}

fn with(edits: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut config = tiny_config();
    let args = config
        .get_mut("args")
        .and_then(|a| a.as_object_mut())
        .unwrap();
    for (k, v) in edits {
        args.insert(k.to_string(), v.clone());
    }
    config
}

fn assert_config_error(config: serde_json::Value, field: &str) {
    let err = open_with_config(config.clone());
    assert!(
        matches!(&err, Error::Config { path, reason } if path.ends_with("config.json") && reason.contains(field)),
        "{config}: {err}"
    );
}

#[test]
fn hostile_config_sizes_are_refused() {
    use serde_json::json;
    let huge = json!(1u64 << 40);
    for (field, value) in [
        ("dim", huge.clone()),
        ("n_layers", json!(1_000_000_000u64)),
        ("vocab_size", huge.clone()),
        ("max_seqlen", huge.clone()),
        ("sliding_window", huge.clone()),
        ("n_heads", huge.clone()),
        ("n_kv_heads", huge.clone()),
        ("head_dim", huge.clone()),
        ("multiple_of", huge.clone()),
        ("ffn_hidden_dim", huge.clone()),
        ("n_heads", json!(0)),
        ("n_layers", json!(0)),
        ("sliding_window", json!(0)),
        ("head_dim", json!(0)),
        ("head_dim", json!(63)),
        ("rope_theta", json!(0.0)),
        ("rope_theta", json!(-1.0)),
        ("norm_eps", json!(0.0)),
        ("ffn_dim_multiplier", json!(-1.0)),
        ("n_layers", json!(u64::MAX)),
    ] {
        assert_config_error(with(&[(field, value)]), field);
    }
    // values serde refuses (its message names the value, not the field)
    for (field, value) in [
        ("dim", json!(-64)),
        ("dim", json!(64.5)),
        ("n_layers", json!("many")),
        ("eos_id", json!(1u64 << 33)),
        ("eos_id", json!(-1)),
    ] {
        assert_config_error(with(&[(field, value)]), "not an LMTransformer config");
    }
    // dim not a multiple of n_heads; n_heads not a multiple of n_kv_heads
    assert_config_error(with(&[("n_heads", json!(3))]), "n_heads");
    assert_config_error(with(&[("n_kv_heads", json!(3))]), "n_kv_heads");
    // an attention wider than MAX_DIM through an explicit head_dim
    assert_config_error(
        with(&[("n_heads", json!(1024)), ("head_dim", json!(1024))]),
        "head_dim",
    );
    // each bound alone is fine, the rotary table is not: 2^20 positions × 512
    assert_config_error(
        with(&[
            ("max_seqlen", json!(1u64 << 20)),
            ("head_dim", json!(512)),
            ("n_heads", json!(2)),
        ]),
        "rotary",
    );
    // each size within its bound, the whole model not: 1024 layers of width 65536
    assert_config_error(
        with(&[
            ("dim", json!(65536)),
            ("n_layers", json!(1024)),
            ("n_heads", json!(1024)),
        ]),
        "parameters",
    );
    // a huge SwiGLU size through the multiplier
    assert_config_error(with(&[("ffn_dim_multiplier", json!(1e300))]), "SwiGLU");
    // Meta's params.json and a Hugging Face config go through the same checks
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        micro_meta().join("consolidated.pth"),
        dir.path().join("consolidated.pth"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("params.json"),
        json!({"entropy_model": {"dim": 1u64 << 40, "n_layers": 2, "n_heads": 2}}).to_string(),
    )
    .unwrap();
    assert!(matches!(load_err(dir.path()), Error::Config { reason, .. } if reason.contains("dim")));
    let hf = json!({"patcher_config": {"hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 1u64 << 40, "vocab_size": 260}});
    assert!(
        matches!(open_with_config(hf), Error::Config { reason, .. } if reason.contains("ffn_hidden_dim"))
    );
    let hf = json!({"patcher_config": {"hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 192, "eos_token_id": 1u64 << 33}});
    assert!(
        matches!(open_with_config(hf), Error::Config { reason, .. } if reason.contains("eos_token_id"))
    );
}

#[test]
fn a_config_file_of_gigabytes_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let file = std::fs::File::create(dir.path().join("config.json")).unwrap();
    file.set_len(4 << 30).unwrap(); // sparse: no disk used
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Config { reason, .. } if reason.contains("larger than")),
        "{err}"
    );
}

#[test]
fn a_large_config_the_weights_do_not_match_fails_before_allocating() {
    // within every bound, but 9.7 G parameters (39 GB in f32): allocating the model before
    // comparing it with the file would abort the test process
    let err = open_with_config(with(&[
        ("dim", serde_json::json!(16384)),
        ("n_heads", serde_json::json!(256)),
    ]));
    assert!(
        matches!(&err, Error::ShapeMismatch { name, expected, found, .. }
            if name == "tok_embeddings.weight" && expected == &vec![260, 16384] && found == &vec![260, 128]),
        "{err}"
    );
}

#[test]
fn a_config_changed_after_open_is_checked_again() {
    let mut checkpoint = Checkpoint::open(&tiny()).unwrap();
    checkpoint.config.n_layers = 1 << 40;
    let err = checkpoint.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Config { reason, .. } if reason.contains("n_layers")),
        "{err}"
    );
    let err = checkpoint
        .load::<Cpu>(&Default::default(), None)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}
