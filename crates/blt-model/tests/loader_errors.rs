//! A broken checkpoint is a typed error naming the tensor and the file, never a panic: a missing
//! tensor, a wrong shape, a wrong dtype, a truncated file, a garbage header, a bad config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blt_model::backend::Cpu;
use blt_model::{Checkpoint, Error};
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
