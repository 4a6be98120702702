//! Every kernel against its plain-Burn reference on random inputs, on each compiled backend.
//!
//! The CPU backend runs the references themselves, checked against values computed here in f64.
//! With `--features wgpu` / `--features cuda` the CubeCL kernels run and are compared with the
//! reference on the same backend and with the CPU backend (f32 GEMM and attention must match the
//! CPU within f32 rounding: no TF32).

use blt_kernels::reference;
use burn::tensor::backend::Backend;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

type Cpu = burn::backend::Flex;

/// Deterministic values in about [-scale, scale].
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    scale: f32,
    dtype: DType,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::<B, D>::from_data(TensorData::new(values(n, seed, scale), shape), device).cast(dtype)
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.cast(DType::F32)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let d = max_abs_diff(got, want);
    assert!(
        d <= tol,
        "{what}: max |Δ| = {d:e} > {tol:e} (first values {:?} vs {:?})",
        &got[..got.len().min(4)],
        &want[..want.len().min(4)]
    );
}

/// The same values on the CPU backend, in f32 (half-precision inputs arrive already rounded).
fn on_cpu<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Tensor<Cpu, D> {
    let shape = t.dims();
    Tensor::from_data(TensorData::new(host(t.clone()), shape), &Default::default())
}

/// A kernel's output against the reference computed on the CPU from the same inputs; on failure
/// the message names the worst element and what the backend's own (plain Burn) reference gave
/// there, so a wrong kernel and a wrong backend op can be told apart. A backend reference that
/// strays from the CPU while the kernel does not is reported on stderr.
fn assert_close_to_cpu(what: &str, got: &[f32], backend: &[f32], cpu: &[f32], tol: f32) {
    assert_eq!(got.len(), cpu.len(), "{what}: lengths differ");
    let worst = |v: &[f32]| {
        v.iter()
            .zip(cpu)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold(
                (0, 0.0f32),
                |acc, (i, d)| if d > acc.1 { (i, d) } else { acc },
            )
    };
    let (i, d) = worst(got);
    assert!(
        d <= tol,
        "{what}: kernel vs CPU max |Δ| = {d:e} > {tol:e} at element {i} of {}: kernel {}, \
         this backend's reference {}, CPU reference {}",
        got.len(),
        got[i],
        backend[i],
        cpu[i]
    );
    let (j, e) = worst(backend);
    if e > tol {
        eprintln!(
            "WARNING {what}: this backend's plain-Burn reference differs from the CPU by {e:e} at \
             element {j} ({} vs {}); the kernel agrees with the CPU",
            backend[j], cpu[j]
        );
    }
}

/// Shapes with and without remainders against the kernels' 32-thread rows and 4-row cubes.
const ROW_SHAPES: [[usize; 3]; 3] = [[2, 7, 260], [1, 33, 31], [3, 5, 768]];

fn check_entropy<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    for (i, shape) in ROW_SHAPES.into_iter().enumerate() {
        let logits = tensor::<B, 3>(shape, 10 + i as u64, 8.0, dtype, device);
        let got = host(blt_kernels::entropy(logits.clone()));
        let again = host(blt_kernels::entropy(logits.clone()));
        assert_eq!(got, again, "entropy {shape:?} {dtype:?}: two runs differ");
        let cpu = host(reference::entropy(on_cpu(&logits)));
        let want = host(reference::entropy(logits));
        assert_close_to_cpu(
            &format!("entropy {shape:?} {dtype:?}"),
            &got,
            &want,
            &cpu,
            tol,
        );
        assert_close(&format!("entropy {shape:?} {dtype:?}"), &got, &want, tol);
    }
}

fn check_rms_norm<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    for (i, shape) in ROW_SHAPES.into_iter().enumerate() {
        let x = tensor::<B, 3>(shape, 20 + i as u64, 3.0, dtype, device);
        let w = tensor::<B, 1>([shape[2]], 30 + i as u64, 1.5, dtype, device);
        let got = host(blt_kernels::rms_norm(x.clone(), w.clone(), 1e-5));
        let cpu = host(reference::rms_norm(on_cpu(&x), on_cpu(&w), 1e-5));
        let want = host(reference::rms_norm(x, w, 1e-5));
        assert_close_to_cpu(
            &format!("rms_norm {shape:?} {dtype:?}"),
            &got,
            &want,
            &cpu,
            tol,
        );
        assert_close(&format!("rms_norm {shape:?} {dtype:?}"), &got, &want, tol);
    }
}

/// The fused residual add + norm: the sum (the residual stream) and the norm of that sum.
fn check_add_rms_norm<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    for (i, shape) in ROW_SHAPES.into_iter().enumerate() {
        let x = tensor::<B, 3>(shape, 60 + i as u64, 3.0, dtype, device);
        let d = tensor::<B, 3>(shape, 70 + i as u64, 1.0, dtype, device);
        let w = tensor::<B, 1>([shape[2]], 80 + i as u64, 1.5, dtype, device);
        let (sum, normed) = blt_kernels::add_rms_norm(x.clone(), d.clone(), w.clone(), 1e-5);
        let (cpu_sum, cpu_normed) =
            reference::add_rms_norm(on_cpu(&x), on_cpu(&d), on_cpu(&w), 1e-5);
        let (want_sum, want_normed) = reference::add_rms_norm(x, d, w, 1e-5);
        let want_sum_again = want_sum.clone();
        let what = format!("add_rms_norm {shape:?} {dtype:?}");
        let (sum, normed) = (host(sum), host(normed));
        // The sum is the backend's own add: exact in f32; in half precision the CPU backend and
        // a GPU may round a sum one unit in the last place apart.
        let sum_tol = if dtype == DType::F32 { 0.0 } else { tol };
        assert_close_to_cpu(&what, &sum, &host(want_sum), &host(cpu_sum), sum_tol);
        assert_close(&what, &sum, &host(want_sum_again), 0.0);
        let (want_normed, cpu_normed) = (host(want_normed), host(cpu_normed));
        assert_close_to_cpu(&what, &normed, &want_normed, &cpu_normed, tol);
        assert_close(&what, &normed, &want_normed, tol);
    }
}

fn check_swiglu<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    for (i, shape) in ROW_SHAPES.into_iter().enumerate() {
        let g = tensor::<B, 3>(shape, 40 + i as u64, 6.0, dtype, device);
        let u = tensor::<B, 3>(shape, 50 + i as u64, 2.0, dtype, device);
        let got = host(blt_kernels::swiglu(g.clone(), u.clone()));
        let cpu = host(reference::swiglu(on_cpu(&g), on_cpu(&u)));
        let want = host(reference::swiglu(g, u));
        assert_close_to_cpu(
            &format!("swiglu {shape:?} {dtype:?}"),
            &got,
            &want,
            &cpu,
            tol,
        );
        assert_close(&format!("swiglu {shape:?} {dtype:?}"), &got, &want, tol);
    }
}

/// `upload_int` gives what `Tensor::from_data` gives: same values, shape and dtype, from i64
/// and i32 data, also while earlier work is still queued.
fn check_upload_int<B: Backend>(device: &B::Device) {
    let busy = tensor::<B, 3>([4, 64, 256], 99, 1.0, DType::F32, device);
    let _queued = blt_kernels::swiglu(busy.clone(), busy);
    for (rows, cols) in [(1, 1), (3, 5), (2, 4096)] {
        let values: Vec<i64> = (0..rows * cols)
            .map(|i| (i as i64 * 7919) % 300 - 20)
            .collect();
        let narrow: Vec<i32> = values.iter().map(|&v| v as i32).collect();
        for data in [
            TensorData::new(values.clone(), [rows, cols]),
            TensorData::new(narrow, [rows, cols]),
        ] {
            let want = Tensor::<B, 2, Int>::from_data(data.clone(), device);
            let got = blt_kernels::upload_int::<B, 2>(data, device);
            assert_eq!(got.dims(), [rows, cols]);
            assert_eq!(got.dtype(), want.dtype(), "upload_int dtype");
            let (got, want) = (got.into_data(), want.into_data());
            assert_eq!(
                got.convert::<i64>().to_vec::<i64>().unwrap(),
                want.convert::<i64>().to_vec::<i64>().unwrap(),
                "upload_int {rows}x{cols}"
            );
        }
    }
}

fn check_prominence_coherence<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    for (i, shape) in ROW_SHAPES.into_iter().enumerate() {
        let h = tensor::<B, 3>(shape, 60 + i as u64, 2.0, dtype, device);
        let e = tensor::<B, 2>([shape[0], shape[1]], 70 + i as u64, 1.0, DType::F32, device).abs();
        let (p, c) = blt_kernels::prominence_coherence(h.clone(), e.clone());
        let (cp, _) = reference::prominence_coherence(on_cpu(&h), on_cpu(&e));
        let (wp, wc) = reference::prominence_coherence(h, e);
        let what = format!("prominence {shape:?} {dtype:?}");
        let (p, wp) = (host(p), host(wp));
        assert_close_to_cpu(&what, &p, &wp, &host(cp), tol);
        assert_close(&what, &p, &wp, tol);
        // Coherence divides by entropies near zero: compare relatively.
        let (c, wc) = (host(c), host(wc));
        let rel: Vec<f32> = c
            .iter()
            .zip(&wc)
            .map(|(a, b)| (a - b) / b.abs().max(1.0))
            .collect();
        assert_close(
            &format!("coherence {shape:?} {dtype:?}"),
            &rel,
            &vec![0.0; rel.len()],
            tol,
        );
    }
}

fn check_softmax<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    for (i, shape) in ROW_SHAPES.into_iter().enumerate() {
        let x = tensor::<B, 3>(shape, 90 + i as u64, 30.0, dtype, device);
        let got = host(blt_kernels::softmax(x.clone(), 0.125));
        let cpu = host(reference::softmax(on_cpu(&x), 0.125));
        let want = host(reference::softmax(x, 0.125));
        let what = format!("softmax {shape:?} {dtype:?}");
        assert_close_to_cpu(&what, &got, &want, &cpu, tol);
        assert_close(&what, &got, &want, tol);
    }
}

/// RoPE on a strided head view (`[b, s, h, d]` with heads swapped in), as the model calls it.
fn check_rope<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    let (b, s, h, d) = (2, 37, 3, 64);
    let x = tensor::<B, 4>([b, s, h, d], 80, 2.0, dtype, device).swap_dims(1, 2);
    let angles: Vec<f32> = values(s * d / 2, 81, 3.0);
    let table = |f: fn(f32) -> f32| {
        let v: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
        Tensor::<B, 4>::from_data(TensorData::new(v, [1, 1, s, d / 2]), device)
    };
    let (cos, sin) = (table(f32::cos), table(f32::sin));
    let got = host(blt_kernels::rope(x.clone(), cos.clone(), sin.clone()));
    let want = host(reference::rope(x, cos, sin));
    assert_close(&format!("rope {dtype:?}"), &got, &want, tol);
}

/// f32 products must equal the CPU's within f32 rounding (a TF32 GEMM misses this by ~1e-3).
fn check_linear_against_cpu<B: Backend>(device: &B::Device) {
    let cpu = Default::default();
    for (shape, n, seed) in [([2usize, 64, 768], 2048usize, 1u64), ([1, 37, 96], 260, 2)] {
        let x = tensor::<B, 3>(shape, seed, 1.0, DType::F32, device);
        let w = tensor::<B, 2>([shape[2], n], seed + 100, 0.05, DType::F32, device);
        let xc = tensor::<Cpu, 3>(shape, seed, 1.0, DType::F32, &cpu);
        let wc = tensor::<Cpu, 2>([shape[2], n], seed + 100, 0.05, DType::F32, &cpu);
        let got = host(blt_kernels::linear(x, w));
        let want = host(reference::linear(xc, wc));
        assert_close(&format!("linear {shape:?}x{n}"), &got, &want, 2e-5);
    }
}

/// Several projections of one input equal the products one by one (on CUDA with cuBLAS they
/// are one product of the concatenated weights).
fn check_linear_many_against_cpu<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    let x = tensor::<B, 3>([2, 37, 96], 3, 1.0, dtype, device);
    let ws: Vec<Tensor<B, 2>> = [(96, 64), (96, 32), (96, 32)]
        .into_iter()
        .enumerate()
        .map(|(i, (k, n))| tensor::<B, 2>([k, n], 200 + i as u64, 0.1, dtype, device))
        .collect();
    let outs = blt_kernels::linear_many(x.clone(), ws.clone());
    assert_eq!(outs.len(), 3);
    for (i, (out, w)) in outs.into_iter().zip(&ws).enumerate() {
        let want = host(reference::linear(on_cpu(&x), on_cpu(w)));
        assert_close(
            &format!("linear_many[{i}] {dtype:?}"),
            &host(out),
            &want,
            tol,
        );
    }
}

fn window_mask<B: Backend>(
    q: usize,
    k: usize,
    window: usize,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    // Queries are the last `q` of `k` positions; a key is visible when 0 <= qpos - kpos < window.
    let offset = k - q;
    let values: Vec<bool> = (0..q)
        .flat_map(|i| {
            (0..k).map(move |j| {
                let qpos = i + offset;
                !(j <= qpos && qpos - j < window)
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, q, k]), device)
}

fn check_attention_against_cpu<B: Backend>(device: &B::Device) {
    let cpu = Default::default();
    let (b, h, q, k, hd) = (2, 3, 40, 72, 64);
    let options = AttentionModuleOptions {
        scale: Some(1.0 / (hd as f64).sqrt()),
        softcap: None,
        is_causal: false,
    };
    let run = |seed: u64| {
        let t = |s: u64, len: usize| tensor::<B, 4>([b, h, len, hd], s, 1.0, DType::F32, device);
        let mask = window_mask::<B>(q, k, 48, device).expand([b, h, q, k]);
        host(blt_kernels::attention(
            t(seed, q),
            t(seed + 1, k),
            t(seed + 2, k),
            mask,
            options,
        ))
    };
    let t = |s: u64, len: usize| tensor::<Cpu, 4>([b, h, len, hd], s, 1.0, DType::F32, &cpu);
    let mask = window_mask::<Cpu>(q, k, 48, &cpu).expand([b, h, q, k]);
    let want = host(reference::attention(
        t(5, q),
        t(6, k),
        t(7, k),
        mask,
        options,
    ));
    assert_close("attention", &run(5), &want, 2e-5);
}

/// Half-precision attention (the backend's flash kernel) against the CPU in f32 on the same
/// rounded inputs, with the window mask the model uses.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn check_half_attention_against_cpu<B: Backend>(device: &B::Device, half: DType) {
    let (b, h, q, k, hd) = (2, 3, 40, 72, 64);
    let options = AttentionModuleOptions {
        scale: Some(1.0 / (hd as f64).sqrt()),
        softcap: None,
        is_causal: false,
    };
    let t = |s: u64, len: usize| tensor::<B, 4>([b, h, len, hd], s, 1.0, half, device);
    let (qt, kt, vt) = (t(5, q), t(6, k), t(7, k));
    let mask = window_mask::<B>(q, k, 48, device).expand([b, h, q, k]);
    let cpu_mask = window_mask::<Cpu>(q, k, 48, &Default::default()).expand([b, h, q, k]);
    let want = host(reference::attention(
        on_cpu(&qt),
        on_cpu(&kt),
        on_cpu(&vt),
        cpu_mask,
        options,
    ));
    let got = host(blt_kernels::attention(qt, kt, vt, mask, options));
    assert_close(&format!("attention {half:?}"), &got, &want, 2e-2);
}

/// Local attention computed here in f64, query by query, from the rule: `[b, h, s, d]` values,
/// document indices `[b, s]` (or none); the result is `[b, s, h, d]`.
#[allow(clippy::too_many_arguments)]
fn naive_local_attention(
    (q, k, v): (&[f32], &[f32], &[f32]),
    [b, h, s, d]: [usize; 4],
    docs: Option<&[i64]>,
    window: Option<usize>,
    scale: f64,
) -> Vec<f32> {
    let mut out = vec![0.0f32; b * h * s * d];
    for bi in 0..b {
        let doc = |p: usize| docs.map_or(0, |ds| ds[bi * s + p]);
        for hi in 0..h {
            let base = (bi * h + hi) * s * d;
            for qi in 0..s {
                let keys: Vec<usize> = (0..=qi)
                    .filter(|&ki| window.is_none_or(|w| qi - ki < w) && doc(qi) == doc(ki))
                    .collect();
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&ki| {
                        (0..d)
                            .map(|x| q[base + qi * d + x] as f64 * k[base + ki * d + x] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|x| (x - m).exp()).sum();
                for x in 0..d {
                    let acc: f64 = keys
                        .iter()
                        .zip(&scores)
                        .map(|(&ki, sc)| (sc - m).exp() / z * v[base + ki * d + x] as f64)
                        .sum();
                    out[((bi * s + qi) * h + hi) * d + x] = acc as f32;
                }
            }
        }
    }
    out
}

/// `local_attention` against the rule computed in f64: one block, many (with padding at both
/// ends) and one block cut into causal parts, with and without document cuts, no window; inputs
/// in `dtype`.
fn check_local_attention<B: Backend>(device: &B::Device, dtype: DType, tol: f32) {
    let (b, h, d) = (2, 3, 16);
    // document indices: row 0 cut after positions 4 and 20, row 1 one document
    let cases: [(usize, Option<usize>, bool); 9] = [
        (300, Some(150), true),
        // one block cut into causal parts: window past the sequence, inside it, none
        (300, Some(512), true),
        (400, Some(300), false),
        (264, None, true),
        (40, Some(16), false),
        (40, Some(16), true),
        (37, Some(48), true),
        (23, None, true),
        (33, Some(8), false),
    ];
    for (seq, window, with_docs) in cases {
        let shape = [b, h, seq, d];
        let t = |seed: u64| tensor::<B, 4>(shape, seed, 1.0, dtype, device);
        let (qt, kt, vt) = (t(11), t(12), t(13));
        let docs: Vec<i64> = (0..b * seq)
            .map(|i| {
                let (row, p) = (i / seq, i % seq);
                if row == 0 {
                    (p > 4) as i64 + (p > 20) as i64
                } else {
                    0
                }
            })
            .collect();
        // first position of each position's document
        let starts: Vec<i64> = (0..b * seq)
            .map(|i| {
                let row = i / seq;
                let first = (row * seq..=i).find(|&j| docs[j] == docs[i]).unwrap_or(i);
                (first - row * seq) as i64
            })
            .collect();
        let start_tensor = with_docs.then(|| {
            Tensor::<B, 2, burn::tensor::Int>::from_data(TensorData::new(starts, [b, seq]), device)
        });
        let scale = 1.0 / (d as f64).sqrt();
        let want = naive_local_attention(
            (&host(qt.clone()), &host(kt.clone()), &host(vt.clone())),
            shape,
            with_docs.then_some(&docs[..]),
            window,
            scale,
        );
        let got = host(blt_kernels::local_attention(
            qt,
            kt,
            vt,
            start_tensor,
            window,
            scale,
        ));
        assert_close(
            &format!("local attention {dtype:?} seq {seq} window {window:?} documents {with_docs}"),
            &got,
            &want,
            tol,
        );
    }
}

/// The CPU backend runs the references; check them against f64 arithmetic done here.
#[test]
fn references_match_f64_arithmetic() {
    let device = Default::default();
    let rows = [[0.5f32, -1.0, 2.0, 0.0], [10.0, 10.0, 10.0, 10.0]];
    let logits = Tensor::<Cpu, 3>::from_data(TensorData::new(rows.concat(), [1, 2, 4]), &device);
    let got = host(blt_kernels::entropy(logits.clone()));
    for (row, g) in rows.iter().zip(&got) {
        let m = row.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
        let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
        let h: f64 = row
            .iter()
            .map(|&x| {
                let p = (x as f64 - m).exp() / z;
                -p * p.ln()
            })
            .sum();
        assert!((*g as f64 - h).abs() < 1e-5, "entropy {g} vs {h}");
    }
    assert!((got[1] - 4f32.ln()).abs() < 1e-6);

    let probs = host(blt_kernels::softmax(logits.clone(), 0.5));
    for (row, p) in rows.iter().zip(probs.chunks(4)) {
        let z: f64 = row.iter().map(|&x| (0.5 * x as f64).exp()).sum();
        for (&x, &q) in row.iter().zip(p) {
            assert!(
                (q as f64 - (0.5 * x as f64).exp() / z).abs() < 1e-6,
                "softmax {q}"
            );
        }
    }

    let w = Tensor::<Cpu, 1>::from_data(TensorData::new(vec![1.0f32, 2.0, 0.5, 1.0], [4]), &device);
    let normed = host(blt_kernels::rms_norm(logits.clone(), w, 1e-6));
    let rms = ((0.25 + 1.0 + 4.0) / 4.0f64 + 1e-6).sqrt();
    for (g, (x, w)) in normed[..4]
        .iter()
        .zip(rows[0].iter().zip([1.0, 2.0, 0.5, 1.0]))
    {
        assert!((*g as f64 - *x as f64 / rms * w).abs() < 1e-6);
    }

    let gate = host(blt_kernels::swiglu(logits.clone(), logits.clone()));
    for (g, x) in gate.iter().zip(rows.concat()) {
        let x = x as f64;
        assert!((*g as f64 - x / (1.0 + (-x).exp()) * x).abs() < 1e-4);
    }

    let e = Tensor::<Cpu, 2>::from_data(TensorData::new(vec![0.5f32, 0.0], [1, 2]), &device);
    let (p, c) = blt_kernels::prominence_coherence(logits, e);
    let (p, c) = (host(p), host(c));
    assert!((p[0] - 5.25f32.sqrt()).abs() < 1e-6 && (p[1] - 20.0).abs() < 1e-5);
    assert!((c[0] - 5.25 / (0.5 + 1e-6)).abs() < 1e-4);
    assert_eq!(blt_kernels::fused_runtime::<Cpu>(), None);
}

#[test]
fn cpu_backend_kernels_equal_references() {
    let device = Default::default();
    check_entropy::<Cpu>(&device, DType::F32, 0.0);
    check_softmax::<Cpu>(&device, DType::F32, 0.0);
    check_rms_norm::<Cpu>(&device, DType::F32, 0.0);
    check_add_rms_norm::<Cpu>(&device, DType::F32, 0.0);
    check_swiglu::<Cpu>(&device, DType::F32, 0.0);
    check_prominence_coherence::<Cpu>(&device, DType::F32, 0.0);
    check_rope::<Cpu>(&device, DType::F32, 0.0);
    check_linear_against_cpu::<Cpu>(&device);
    check_linear_many_against_cpu::<Cpu>(&device, DType::F32, 0.0);
    check_attention_against_cpu::<Cpu>(&device);
    check_local_attention::<Cpu>(&device, DType::F32, 2e-5);
    check_upload_int::<Cpu>(&device);
}

/// The same checks on a CubeCL backend in f32 and in `half` (bf16 on CUDA; f16 where WGPU has it,
/// since WGSL has no bf16); asserts the kernels really ran.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn check_cube_backend<B: Backend>(device: &B::Device, runtime: &str, half: Option<DType>) {
    assert_eq!(blt_kernels::fused_runtime::<B>(), Some(runtime));
    let before = blt_kernels::fallback_count();
    check_entropy::<B>(device, DType::F32, 2e-5);
    check_softmax::<B>(device, DType::F32, 2e-6);
    check_rms_norm::<B>(device, DType::F32, 2e-5);
    check_add_rms_norm::<B>(device, DType::F32, 2e-5);
    check_swiglu::<B>(device, DType::F32, 2e-5);
    check_prominence_coherence::<B>(device, DType::F32, 2e-5);
    check_rope::<B>(device, DType::F32, 2e-5);
    check_linear_against_cpu::<B>(device);
    check_linear_many_against_cpu::<B>(device, DType::F32, 2e-5);
    check_attention_against_cpu::<B>(device);
    check_local_attention::<B>(device, DType::F32, 2e-5);
    check_upload_int::<B>(device);
    match half {
        // Half-precision inputs: the kernel rounds once, the reference once too, from f32 math
        // in another order: at most an ulp or so apart.
        Some(half) => {
            check_entropy::<B>(device, half, 2e-4);
            check_softmax::<B>(device, half, 1e-2);
            check_rms_norm::<B>(device, half, 0.05);
            check_add_rms_norm::<B>(device, half, 0.05);
            check_swiglu::<B>(device, half, 0.1);
            check_prominence_coherence::<B>(device, half, 2e-4);
            check_rope::<B>(device, half, 0.05);
            check_half_attention_against_cpu::<B>(device, half);
            check_local_attention::<B>(device, half, 2e-2);
            check_linear_many_against_cpu::<B>(device, half, 2e-2);
        }
        None => eprintln!("{runtime}: this device has no half-precision float; checked f32 only"),
    }
    assert_eq!(
        blt_kernels::fallback_count(),
        before,
        "a kernel fell back to the reference"
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_kernels_match_references() {
    type B = blt_kernels::backends::WgpuKernels;
    let device = burn::backend::wgpu::WgpuDevice::default();
    let half = B::supports_dtype(&device, DType::F16).then_some(DType::F16);
    check_cube_backend::<B>(&device, "wgpu", half);
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_kernels_match_references() {
    let device = burn::backend::cuda::CudaDevice::new(0);
    check_cube_backend::<blt_kernels::backends::CudaKernels>(&device, "cuda", Some(DType::BF16));
}
