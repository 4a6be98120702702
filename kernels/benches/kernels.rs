//! Each fused kernel against its plain-Burn reference at the released model's shapes
//! (32 × 512 positions; dim 768, FFN 2048, vocab 260). Throughput is the bytes each operation must
//! read and write at least, so criterion's GB/s is achieved memory bandwidth.
//!
//! `BLT_BENCH_DEVICE=cpu|cuda|wgpu` (default cpu) and `BLT_BENCH_DTYPE=f32|bf16` (default f32)
//! choose the backend; `cargo xtask bench` sets them and collects the table.

use std::time::Duration;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: [usize; 2] = [32, 512];

fn dtype() -> DType {
    match std::env::var("BLT_BENCH_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        _ => DType::F32,
    }
}

fn random<B: Backend, const D: usize>(
    shape: [usize; D],
    dtype: DType,
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::<B, D>::random(shape, Distribution::Normal(0.0, 1.0), device).cast(dtype)
}

fn bench_backend<B: Backend>(c: &mut Criterion, device: B::Device, label: &str) {
    let dtype = dtype();
    let esize = dtype.size() as u64;
    let [b, s] = ROWS;
    let n = (b * s) as u64;
    let sync = || B::sync(&device).expect("device sync");
    let mut group = c.benchmark_group(format!("kernels/{label}/{dtype:?}").to_lowercase());
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);

    let logits = random::<B, 3>([b, s, 260], dtype, &device);
    group.throughput(Throughput::Bytes(n * 260 * esize + n * 4));
    group.bench_function("entropy/fused", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::entropy(logits.clone());
            sync()
        })
    });
    group.bench_function("entropy/reference", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::reference::entropy(logits.clone());
            sync()
        })
    });

    let x = random::<B, 3>([b, s, 768], dtype, &device);
    let w = random::<B, 1>([768], dtype, &device);
    group.throughput(Throughput::Bytes(2 * n * 768 * esize));
    group.bench_function("rms_norm/fused", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::rms_norm(x.clone(), w.clone(), 1e-5);
            sync()
        })
    });
    group.bench_function("rms_norm/reference", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::reference::rms_norm(x.clone(), w.clone(), 1e-5);
            sync()
        })
    });

    // The residual add and the norm after it: two inputs read, the sum and its norm written.
    let d = random::<B, 3>([b, s, 768], dtype, &device);
    group.throughput(Throughput::Bytes(4 * n * 768 * esize));
    group.bench_function("add_rms_norm/fused", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::add_rms_norm(x.clone(), d.clone(), w.clone(), 1e-5);
            sync()
        })
    });
    group.bench_function("add_rms_norm/reference", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::reference::add_rms_norm(x.clone(), d.clone(), w.clone(), 1e-5);
            sync()
        })
    });

    let g = random::<B, 3>([b, s, 2048], dtype, &device);
    let u = random::<B, 3>([b, s, 2048], dtype, &device);
    group.throughput(Throughput::Bytes(3 * n * 2048 * esize));
    group.bench_function("swiglu/fused", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::swiglu(g.clone(), u.clone());
            sync()
        })
    });
    group.bench_function("swiglu/reference", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::reference::swiglu(g.clone(), u.clone());
            sync()
        })
    });

    let e = random::<B, 2>([b, s], DType::F32, &device).abs();
    group.throughput(Throughput::Bytes(n * 768 * esize + 3 * n * 4));
    group.bench_function("prominence_coherence/fused", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::prominence_coherence(x.clone(), e.clone());
            sync()
        })
    });
    group.bench_function("prominence_coherence/reference", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::reference::prominence_coherence(x.clone(), e.clone());
            sync()
        })
    });

    // The FFN up-projection GEMM: 2·M·K·N flops; criterion's "elements" are flops here.
    let wf = random::<B, 2>([768, 2048], dtype, &device);
    group.throughput(Throughput::Elements(2 * n * 768 * 2048));
    group.bench_function("linear_768x2048/fused", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::linear(x.clone(), wf.clone());
            sync()
        })
    });
    group.bench_function("linear_768x2048/reference", |bench| {
        bench.iter(|| {
            let _ = blt_kernels::reference::linear(x.clone(), wf.clone());
            sync()
        })
    });
    group.finish();
}

fn kernels(c: &mut Criterion) {
    match std::env::var("BLT_BENCH_DEVICE")
        .as_deref()
        .unwrap_or("cpu")
    {
        #[cfg(feature = "cuda")]
        "cuda" => bench_backend::<blt_kernels::backends::CudaKernels>(
            c,
            burn::backend::cuda::CudaDevice::new(0),
            "cuda",
        ),
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            bench_backend::<blt_kernels::backends::WgpuKernels>(c, Default::default(), "wgpu")
        }
        "cpu" => bench_backend::<burn::backend::Flex>(c, Default::default(), "cpu"),
        other => panic!("BLT_BENCH_DEVICE={other}: not compiled in (features cuda / wgpu)"),
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
