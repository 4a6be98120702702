//! Weight-only int8/int4 quantization of the linear layers against f32, on the trained default
//! model and its held-out text: how far entropies move and how many patch boundaries (at the
//! model's calibrated threshold) stay where they were.

use blt_model::{Checkpoint, DType, EntropyEstimator, EstimateOptions, WeightQuantization};
use blt_patcher::{Patcher, PatcherConfig};

type Cpu = burn::backend::Flex;

/// The first bytes of the held-out sample, as model ids (byte + 4, the reference's offset).
fn sample_ids() -> Vec<u32> {
    let text = include_str!("../../blt-default-model/heldout-sample.txt");
    text.as_bytes()[..6000]
        .iter()
        .map(|&b| b as u32 + 4)
        .collect()
}

fn starts(lengths: &[usize]) -> Vec<bool> {
    let total: usize = lengths.iter().sum();
    let mut at = vec![false; total];
    let mut p = 0;
    for &l in lengths {
        at[p] = true;
        p += l;
    }
    at
}

#[test]
fn quantized_weights_stay_close_to_f32() {
    let root = tempfile::tempdir().unwrap();
    let dir = blt_default_model::materialize(root.path()).unwrap();
    let ckpt = Checkpoint::open(&dir).unwrap();
    let device = Default::default();
    let threshold = ckpt.config.patching_threshold;
    let patcher = Patcher::new(PatcherConfig::default().with_threshold(threshold)).unwrap();
    let ids = sample_ids();
    let run = |quant: Option<WeightQuantization>| {
        let mut model = ckpt.load::<Cpu>(&device, Some(DType::F32)).unwrap();
        if let Some(q) = quant {
            model = model.quantize_weights(q);
        }
        let est = EntropyEstimator::new(model, ckpt.config.clone(), device);
        est.estimate(&ids, EstimateOptions::default())
            .unwrap()
            .entropies
    };
    let reference = run(None);
    let reference_starts = starts(patcher.patch(&ids, Some(&reference)).unwrap().lengths());
    for (quant, max_mean, min_agreement) in [
        (WeightQuantization::Int8, 0.01, 0.99),
        (WeightQuantization::Int4, 0.10, 0.96),
    ] {
        let got = run(Some(quant));
        let mean = got
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / ids.len() as f64;
        let ours = starts(patcher.patch(&ids, Some(&got)).unwrap().lengths());
        let agree = ours
            .iter()
            .zip(&reference_starts)
            .filter(|(a, b)| a == b)
            .count() as f64
            / ids.len() as f64;
        eprintln!(
            "{quant:?}: mean |Δentropy| {mean:.5} nats, patch-boundary agreement {:.2}% over {} \
             bytes",
            100.0 * agree,
            ids.len()
        );
        assert!(mean <= max_mean, "{quant:?}: mean |Δentropy| {mean}");
        assert!(agree >= min_agreement, "{quant:?}: agreement {agree}");
    }
}
