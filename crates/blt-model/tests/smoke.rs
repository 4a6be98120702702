//! Properties of the model that need no reference: batching and windowing never change a
//! document's results, and the outputs have the documented shapes.

use blt_model::backend::Cpu;
use blt_model::{EntropyEstimator, EntropyModel, EntropyModelConfig, EstimateOptions};

fn estimator(config: EntropyModelConfig) -> EntropyEstimator<Cpu> {
    let device = Default::default();
    let model = EntropyModel::<Cpu>::init(&config, 3, &device);
    EntropyEstimator::new(model, config, device)
}

fn doc(len: usize, seed: u32) -> Vec<u32> {
    let mut ids = vec![1];
    ids.extend(
        (0..len).map(|i| 4 + ((i as u32).wrapping_mul(2654435761u32).wrapping_add(seed) >> 24)),
    );
    ids.push(2);
    ids
}

#[test]
fn batching_does_not_change_results() {
    let est = estimator(EntropyModelConfig::tiny());
    let docs = [
        doc(10, 1),
        doc(300, 2),
        doc(57, 3),
        doc(1, 4),
        doc(20, 5),
        doc(33, 6),
    ];
    let refs: Vec<&[u32]> = docs.iter().map(Vec::as_slice).collect();
    let opts = EstimateOptions {
        hidden: true,
        logits: true,
        max_batch_tokens: 4096,
    };
    let together = est.estimate_many(&refs, opts).unwrap();
    for (d, alone) in refs.iter().zip(&together) {
        let single = est.estimate(d, opts).unwrap();
        assert_eq!(single.entropies.len(), d.len());
        assert_eq!(single.hidden.as_ref().unwrap().len(), d.len() * 64);
        assert_eq!(single.logits.as_ref().unwrap().len(), d.len() * 260);
        // bit-identical, not merely close: outputs must not depend on batch mates
        assert_eq!(single, *alone);
    }
}

#[test]
fn windows_restart_without_context() {
    // max_seqlen 128: position 128 starts a new window, so its outputs equal those of the same
    // tokens run alone.
    let est = estimator(EntropyModelConfig::tiny());
    let d = doc(300, 9);
    let whole = est.estimate(&d, EstimateOptions::default()).unwrap();
    let tail = est
        .estimate(&d[128..256], EstimateOptions::default())
        .unwrap();
    for (a, b) in whole.entropies[128..256].iter().zip(&tail.entropies) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn out_of_vocabulary_ids_are_an_error() {
    let est = estimator(EntropyModelConfig::tiny());
    let err = est
        .estimate(&[1, 300, 2], EstimateOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("300"), "{err}");
}
