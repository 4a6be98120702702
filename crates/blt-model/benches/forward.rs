//! Whole-model throughput: bytes (positions) per second through the entropy model's forward pass,
//! the f32 entropies and the prominence, at several batch × length shapes, with random weights
//! of the released shape (dim 768, 14 layers, window 512, 99.5 M parameters; `BLT_BENCH_MODEL=tiny`
//! for the small test shape). Inputs are uploaded and outputs left on the device, as in the PyTorch
//! baseline (`../shared/bench/torch_entropy_baseline.py`), so the numbers compare.
//!
//! `BLT_BENCH_DEVICE=cpu|cuda|wgpu`, `BLT_BENCH_DTYPE=f32|bf16|f16`,
//! `BLT_BENCH_SHAPES=32x512,8x4096` (defaults: cpu, f32, `32x512,8x4096`),
//! `BLT_BENCH_QUANT=int8|int4` (weight-only quantization of the linear layers; default none),
//! `BLT_BENCH_ESTIMATE=1` (also each shape through `estimate_many`, results read back to the
//! host).

use std::time::Duration;

use blt_model::backend::Backend;
use blt_model::{DType, EntropyEstimator, EntropyModel, EntropyModelConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn dtype() -> DType {
    match std::env::var("BLT_BENCH_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        _ => DType::F32,
    }
}

fn shapes() -> Vec<(usize, usize)> {
    let spec = std::env::var("BLT_BENCH_SHAPES").unwrap_or_else(|_| "32x512,8x4096".into());
    spec.split(',')
        .map(|s| {
            let (b, l) = s
                .split_once('x')
                .expect("BLT_BENCH_SHAPES like 32x512,8x4096");
            (
                b.trim().parse().expect("batch"),
                l.trim().parse().expect("length"),
            )
        })
        .collect()
}

fn bench_backend<B: Backend>(c: &mut Criterion, device: B::Device, label: &str) {
    let config = match std::env::var("BLT_BENCH_MODEL").as_deref() {
        Ok("tiny") => EntropyModelConfig::tiny(),
        _ => EntropyModelConfig::blt_entropy(),
    };
    let dtype = dtype();
    let mut model = EntropyModel::<B>::init(&config, 0, &device).into_dtype(dtype);
    let quant = std::env::var("BLT_BENCH_QUANT").ok().map(|q| {
        q.parse::<blt_model::WeightQuantization>()
            .expect("BLT_BENCH_QUANT=int8|int4")
    });
    if let Some(q) = quant {
        model = model.quantize_weights(q);
    }
    let est = EntropyEstimator::new(model, config.clone(), device.clone());
    let quant = quant.map(|q| format!("/{q:?}")).unwrap_or_default();
    let mut group = c.benchmark_group(format!("model/{label}/{dtype:?}{quant}").to_lowercase());
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    for (batch, len) in shapes() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let rows: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        // bytes 0..=255 → ids 4..=259, never EOS: full windows everywhere
                        4 + (state % 256) as u32
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        group.throughput(Throughput::Elements((batch * len) as u64));
        group.bench_function(format!("{batch}x{len}"), |bench| {
            bench.iter(|| {
                let out = est.forward_rows(&refs);
                let entropies = out.entropies();
                let _ = out.prominence_coherence(entropies);
                B::sync(&device).expect("device sync");
            })
        });
        // The same shape through `estimate_many` with the results read back to the host, as the
        // pipeline runs it: 8 batches of this shape, each launched before the previous one's
        // copies are collected.
        if std::env::var_os("BLT_BENCH_ESTIMATE").is_some() {
            let docs: Vec<&[u32]> = (0..8).flat_map(|_| refs.iter().copied()).collect();
            let options = blt_model::EstimateOptions {
                max_batch_tokens: batch * len,
                ..Default::default()
            };
            group.throughput(Throughput::Elements((docs.len() * len) as u64));
            group.bench_function(format!("{batch}x{len}/estimate"), |bench| {
                bench.iter(|| est.estimate_many(&docs, options).expect("estimate"))
            });
        }
    }
    group.finish();
}

fn forward(c: &mut Criterion) {
    match std::env::var("BLT_BENCH_DEVICE")
        .as_deref()
        .unwrap_or("cpu")
    {
        #[cfg(feature = "cuda")]
        "cuda" => {
            bench_backend::<blt_model::backend::Cuda>(c, blt_model::backend::cuda_device(0), "cuda")
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => bench_backend::<blt_model::backend::Wgpu>(c, Default::default(), "wgpu"),
        #[cfg(feature = "cpu")]
        "cpu" => bench_backend::<blt_model::backend::Cpu>(c, Default::default(), "cpu"),
        other => panic!("BLT_BENCH_DEVICE={other}: not compiled in"),
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
