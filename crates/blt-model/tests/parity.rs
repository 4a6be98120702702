//! Parity with the reference: Hugging Face transformers' `BltPatcher` (5.24, eager attention)
//! produced every expected number in `tests/fixtures/expected/` from the random weights beside
//! them (see `tests/fixtures/README.md` and `gen.py`). Nothing here was computed by this crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blt_model::backend::{Backend, Cpu};
use blt_model::{Checkpoint, CheckpointFormat, DType, EntropyEstimator, EstimateOptions};
use blt_patcher::{Patcher, PatcherConfig, DEFAULT_THRESHOLD};
use safetensors::{Dtype, SafeTensors};

/// The fixtures folder; `BLT_MODEL_FIXTURES` overrides it for a test binary run on another
/// machine (a GPU host without the source tree at the path it was built from).
fn fixtures() -> PathBuf {
    std::env::var_os("BLT_MODEL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// The tensors of an expected-output file, as f32 or i64 vectors.
struct Expected {
    floats: HashMap<String, Vec<f32>>,
    ints: HashMap<String, Vec<i64>>,
}

impl Expected {
    fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (mut floats, mut ints) = (HashMap::new(), HashMap::new());
        for (name, view) in st.tensors() {
            let data = view.data();
            match view.dtype() {
                Dtype::F32 => {
                    let v = data
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    floats.insert(name, v);
                }
                Dtype::I64 => {
                    let v = data
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    ints.insert(name, v);
                }
                other => panic!("unexpected dtype {other:?} for {name}"),
            }
        }
        Self { floats, ints }
    }

    fn f(&self, name: &str) -> &[f32] {
        self.floats
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn ids(&self, case: &str) -> Vec<u32> {
        self.ints[&format!("{case}.ids")]
            .iter()
            .map(|&i| i as u32)
            .collect()
    }

    fn lengths(&self, name: &str) -> Vec<usize> {
        self.ints[name].iter().map(|&i| i as usize).collect()
    }
}

fn estimator<B: Backend>(
    dir: &str,
    dtype: Option<DType>,
    device: &B::Device,
) -> (Checkpoint, EntropyEstimator<B>) {
    let ckpt = Checkpoint::open(&fixtures().join(dir)).unwrap();
    let model = ckpt.load::<B>(device, dtype).unwrap();
    let est = EntropyEstimator::new(model, ckpt.config.clone(), device.clone());
    (ckpt, est)
}

/// How close a backend's f32 run must be to the reference.
#[derive(Clone, Copy)]
struct Tolerance {
    entropies: f32,
    logits: f32,
    hidden: f32,
    /// Relative.
    prominence: f32,
}

/// The CPU backend: f32 arithmetic in a different order from PyTorch's.
const CPU: Tolerance = Tolerance {
    entropies: 1e-4,
    logits: 2e-4,
    hidden: 1e-4,
    prominence: 1e-5,
};

/// GPU backends: f32 GEMMs and attention in other tilings and orders (never TF32); the GPU
/// issue's bound is 1e-3 nats against the CPU path.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
const GPU: Tolerance = Tolerance {
    entropies: 5e-4,
    logits: 1e-3,
    hidden: 5e-4,
    prominence: 1e-4,
};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const ALL: EstimateOptions = EstimateOptions {
    hidden: true,
    logits: true,
    max_batch_tokens: 16 * 1024,
};

/// fp32 logits within 2e-4, entropies within 1e-4, prominence within 1e-5 relative, pre-norm
/// hidden states within 1e-4, and patch lengths identical under Meta's global rule.
fn check_f32(dir: &str, expected: &str, cases: &[&str]) {
    check_f32_on::<Cpu>(dir, expected, cases, CPU, &Default::default());
}

fn check_f32_on<B: Backend>(
    dir: &str,
    expected: &str,
    cases: &[&str],
    tol: Tolerance,
    device: &B::Device,
) {
    let (_, est) = estimator::<B>(dir, None, device);
    let exp = Expected::read(&fixtures().join("expected").join(expected));
    let patcher = Patcher::new(PatcherConfig::default()).unwrap();
    for case in cases {
        let ids = exp.ids(case);
        let out = est.estimate(&ids, ALL).unwrap();
        let d = max_abs_diff(&out.entropies, exp.f(&format!("{case}.entropies")));
        assert!(d <= tol.entropies, "{dir}/{case}: entropies differ by {d}");
        for (i, (a, b)) in out
            .prominence
            .iter()
            .zip(exp.f(&format!("{case}.prominence")))
            .enumerate()
        {
            assert!(
                (a - b).abs() <= tol.prominence * b.abs().max(1.0),
                "{dir}/{case}: prominence[{i}] {a} vs {b}"
            );
        }
        if let Some(logits) = exp.floats.get(&format!("{case}.logits")) {
            let d = max_abs_diff(out.logits.as_ref().unwrap(), logits);
            assert!(d <= tol.logits, "{dir}/{case}: logits differ by {d}");
        }
        if let Some(hidden) = exp.floats.get(&format!("{case}.hidden")) {
            let d = max_abs_diff(out.hidden.as_ref().unwrap(), hidden);
            assert!(d <= tol.hidden, "{dir}/{case}: hidden states differ by {d}");
        }
        if let Some(lengths) = exp.ints.get(&format!("{case}.patch_lengths")) {
            let patches = patcher.patch(&ids, Some(&out.entropies)).unwrap();
            let want: Vec<usize> = lengths.iter().map(|&l| l as usize).collect();
            assert_eq!(patches.lengths(), want.as_slice(), "{dir}/{case}: patches");
        }
    }
}

#[test]
fn tiny_f32_matches_the_reference() {
    check_f32("tiny", "tiny_f32.safetensors", TINY_CASES);
}

// s1..s3: edge lengths; short: 43 tokens; utf8: multi-byte text; window: 700 tokens across
// the 64-token sliding window and two 256-token windows; eos_mid: attention cut at two EOS;
// long: 1500 tokens (entropies and prominence only).
const TINY_CASES: &[&str] = &[
    "s1", "s2", "s3", "short", "utf8", "window", "eos_mid", "long",
];

/// The same checks on the GPU backends: `cargo test -p blt-model --features cuda --test parity`
/// on a machine with an NVIDIA GPU (`--features wgpu` for WGPU).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod gpu {
    use super::*;

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_f32_matches_the_reference() {
        let device = blt_model::backend::cuda_device(0);
        type B = blt_model::backend::Cuda;
        check_f32_on::<B>("tiny", "tiny_f32.safetensors", TINY_CASES, GPU, &device);
        check_f32_on::<B>(
            "micro-meta",
            "micro_f32.safetensors",
            &["short", "utf8"],
            GPU,
            &device,
        );
        assert_eq!(blt_kernels::fallback_count(), 0);
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_bf16_agrees_with_the_reference() {
        check_bf16_on::<blt_model::backend::Cuda>(&blt_model::backend::cuda_device(0));
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_f32_matches_the_reference() {
        // The default adapter: a GPU if there is one, else a software one such as lavapipe.
        type B = blt_model::backend::Wgpu;
        let device = burn::backend::wgpu::WgpuDevice::default();
        check_f32_on::<B>("tiny", "tiny_f32.safetensors", TINY_CASES, GPU, &device);
        assert_eq!(blt_kernels::fallback_count(), 0);
    }
}

#[test]
fn meta_consolidated_pth_matches_the_reference() {
    let ckpt = Checkpoint::open(&fixtures().join("micro-meta")).unwrap();
    assert_eq!(ckpt.format, CheckpointFormat::Meta);
    assert_eq!(ckpt.config.sliding_window, Some(512));
    check_f32("micro-meta", "micro_f32.safetensors", &["short", "utf8"]);
}

#[test]
fn hugging_face_checkpoint_matches_the_reference() {
    let ckpt = Checkpoint::open(&fixtures().join("micro-hf")).unwrap();
    assert_eq!(ckpt.format, CheckpointFormat::HuggingFace);
    let report = ckpt.report().unwrap();
    assert!(report.is_complete(), "{report:?}");
    // the full BLT's other tensors (45, a top-level lm_head among them) are ignored
    assert_eq!(report.unused.len(), 45, "{:?}", report.unused);
    check_f32("micro-hf", "micro_f32.safetensors", &["short", "utf8"]);
}

/// The BF16 checkpoint run in bf16. The reference here is HF's own bf16 forward, which rounds
/// RMSNorm and RoPE differently from Meta's (REFERENCE.md §1.3–1.4), so agreement is statistical:
/// entropies (ours in f32 from bf16 logits) within 0.4 nats at worst and 0.05 on average, and
/// patch-start decisions agreeing on ≥ 98% of positions with HF's bf16 run and with the fp32
/// reference.
#[test]
fn tiny_bf16_agrees_with_the_reference() {
    check_bf16_on::<Cpu>(&Default::default());
}

fn check_bf16_on<B: Backend>(device: &B::Device) {
    let (_, est) = estimator::<B>("tiny-bf16", None, device);
    assert_eq!(est.dtype(), DType::BF16);
    let exp = Expected::read(&fixtures().join("expected/tiny_bf16.safetensors"));
    let exp32 = Expected::read(&fixtures().join("expected/tiny_f32.safetensors"));
    let patcher = Patcher::new(PatcherConfig::default()).unwrap();
    let (mut agree_bf16, mut agree_f32, mut total) = (0usize, 0usize, 0usize);
    let (mut sum, mut n, mut worst) = (0f64, 0usize, 0f32);
    for case in ["s1", "s2", "s3", "short", "utf8", "window", "eos_mid"] {
        let ids = exp.ids(case);
        let out = est.estimate(&ids, EstimateOptions::default()).unwrap();
        for (a, b) in out
            .entropies
            .iter()
            .zip(exp.f(&format!("{case}.entropies_upcast")))
        {
            let d = (a - b).abs();
            worst = worst.max(d);
            sum += d as f64;
            n += 1;
        }
        let ours = starts(patcher.patch(&ids, Some(&out.entropies)).unwrap().lengths());
        let theirs = starts(&exp.lengths(&format!("{case}.patch_lengths")));
        let f32_ref = starts(&exp32.lengths(&format!("{case}.patch_lengths")));
        for p in 0..ids.len() {
            total += 1;
            agree_bf16 += (ours.contains(&p) == theirs.contains(&p)) as usize;
            agree_f32 += (ours.contains(&p) == f32_ref.contains(&p)) as usize;
        }
    }
    let mean = sum / n as f64;
    assert!(
        worst <= 0.4 && mean <= 0.05,
        "bf16 entropies: worst {worst}, mean {mean}"
    );
    let (r1, r2) = (
        agree_bf16 as f64 / total as f64,
        agree_f32 as f64 / total as f64,
    );
    eprintln!(
        "{}: bf16 entropies vs HF bf16: worst {worst:.4}, mean {mean:.5} nats; patch-boundary \
         agreement over {total} positions: {:.2}% vs HF bf16, {:.2}% vs HF f32",
        std::any::type_name::<B>(),
        100.0 * r1,
        100.0 * r2
    );
    assert!(
        r1 >= 0.98 && r2 >= 0.98,
        "boundary agreement: vs HF bf16 {r1}, vs fp32 {r2}"
    );
}

fn starts(lengths: &[usize]) -> Vec<usize> {
    lengths
        .iter()
        .scan(0, |acc, &l| {
            let s = *acc;
            *acc += l;
            Some(s)
        })
        .collect()
}

/// The released shape (dim 768, 14 layers, window 512, 99.5 M parameters) with random weights,
/// against HF: too large to commit (400 MB). Make it with
/// `python crates/blt-model/tests/fixtures/gen.py --full-size DIR` and run
/// `BLT_FULL_FIXTURE_DIR=DIR cargo test --release -p blt-model --test parity -- --ignored`.
#[test]
#[ignore = "needs the 400 MB full-size fixture: see the doc comment"]
fn full_size_matches_the_reference() {
    let dir =
        PathBuf::from(std::env::var("BLT_FULL_FIXTURE_DIR").expect("set BLT_FULL_FIXTURE_DIR"));
    let ckpt = Checkpoint::open(&dir).unwrap();
    assert_eq!(ckpt.config.num_params(), 99_512_064);
    let device = Default::default();
    let est = EntropyEstimator::new(
        ckpt.load::<Cpu>(&device, None).unwrap(),
        ckpt.config.clone(),
        device,
    );
    let exp = Expected::read(&dir.join("expected.safetensors"));
    let patcher =
        Patcher::new(PatcherConfig::default().with_threshold(Some(DEFAULT_THRESHOLD))).unwrap();
    for case in ["short", "window", "s1100"] {
        let ids = exp.ids(case);
        let out = est.estimate(&ids, ALL).unwrap();
        let d = max_abs_diff(&out.entropies, exp.f(&format!("{case}.entropies")));
        assert!(d <= 1e-4, "{case}: entropies differ by {d}");
        let d = max_abs_diff(
            out.logits.as_ref().unwrap(),
            exp.f(&format!("{case}.logits")),
        );
        assert!(d <= 2e-4, "{case}: logits differ by {d}");
        let patches = patcher.patch(&ids, Some(&out.entropies)).unwrap();
        assert_eq!(
            patches.lengths(),
            exp.lengths(&format!("{case}.patch_lengths")).as_slice()
        );
    }
}
