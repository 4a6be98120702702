//! Routes each operation to a CubeCL kernel when the backend's tensors are CubeCL tensors of a
//! runtime this crate was built for, and to the plain-Burn reference otherwise.
//!
//! The route is decided by the tensor primitive's type (`TypeId`), so it costs nothing at run
//! time and needs no trait bound beyond `Backend`: `CubeBackend<CudaRuntime, ..>` gets the CUDA
//! kernels, `CubeBackend<WgpuRuntime, ..>` the WGPU ones. Wrappers that hide the CubeCL tensor —
//! Burn's fusion layer, autodiff (training) — and the CPU backend use the reference. A backend
//! that gets the reference although its name says it runs on a GPU is logged once per
//! operation, so a slow path is never silent.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Int, Tensor, TensorPrimitive};

use crate::{reference, LocalAttention};

/// The CubeCL runtime whose kernels backend `B` gets, if any (`Some("cuda")`, `Some("wgpu")`).
pub fn fused_runtime<B: Backend>() -> Option<&'static str> {
    #[cfg(feature = "cuda")]
    if is_cube::<B, cubecl::cuda::CudaRuntime>() {
        return Some("cuda");
    }
    #[cfg(feature = "wgpu")]
    if is_cube::<B, cubecl::wgpu::WgpuRuntime>() {
        return Some("wgpu");
    }
    None
}

#[cfg(feature = "cube")]
pub(crate) fn is_cube<B: Backend, R: burn_cubecl::CubeRuntime>() -> bool {
    use std::any::TypeId;
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<burn_cubecl::tensor::CubeTensor<R>>()
}

static FALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// How many times, in this process, a kernel could not run on a backend that has kernels and the
/// reference ran instead (each is also logged). Zero on a healthy GPU run.
pub fn fallback_count() -> usize {
    FALLBACKS.load(Ordering::Relaxed)
}

/// Counts and logs a kernel that failed on a kernel-capable backend.
fn note_fallback<B: Backend>(op: &'static str, why: &str) {
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
    note_reference::<B>(op, why);
}

/// Logs once per (operation, backend) that the reference runs where a kernel might be expected.
fn note_reference<B: Backend>(op: &'static str, why: &str) {
    static SEEN: Mutex<Option<HashSet<(&'static str, &'static str)>>> = Mutex::new(None);
    let backend = std::any::type_name::<B>();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.get_or_insert_with(HashSet::new).insert((op, backend)) {
        let gpu = ["Cuda", "Wgpu", "Cube", "Fusion"]
            .iter()
            .any(|n| backend.contains(n));
        if gpu {
            tracing::info!(op, backend, "blt-kernels: plain Burn ops ({why})");
        } else {
            tracing::debug!(op, backend, "blt-kernels: plain Burn ops ({why})");
        }
    }
}

/// The kernel's result, or the reference's when the kernel could not run (counted and logged)
/// or the backend has no kernels (logged once).
fn or_reference<B: Backend, T>(
    op: &'static str,
    fused: Option<Result<T, String>>,
    reference: impl FnOnce() -> T,
) -> T {
    match fused {
        Some(Ok(out)) => out,
        Some(Err(why)) => {
            note_fallback::<B>(op, &why);
            reference()
        }
        None => {
            note_reference::<B>(op, "no CubeCL kernels for this backend");
            reference()
        }
    }
}

#[cfg(feature = "cube")]
fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

fn wrap<B: Backend, const D: usize>(p: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Moves a value of type `T` into type `U` when they are the same type.
#[cfg(feature = "cube")]
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let boxed: Box<dyn std::any::Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(u) => Ok(*u),
        Err(b) => Err(*b
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("a box holds the type it was made with"))),
    }
}

/// Runs `$body` with `$R` bound to the CubeCL runtime of backend `$B`, if it has one; evaluates
/// to `Some(result)` or `None`.
macro_rules! on_cube {
    ($B:ty, |$R:ident| $body:expr) => {{
        #[allow(unused_mut)]
        let mut out = None;
        #[cfg(feature = "cuda")]
        if out.is_none() && is_cube::<$B, cubecl::cuda::CudaRuntime>() {
            type $R = cubecl::cuda::CudaRuntime;
            out = Some($body);
        }
        #[cfg(feature = "wgpu")]
        if out.is_none() && is_cube::<$B, cubecl::wgpu::WgpuRuntime>() {
            type $R = cubecl::wgpu::WgpuRuntime;
            out = Some($body);
        }
        out
    }};
}

/// Converts a backend primitive into runtime `R`'s CubeCL tensor (the caller checked the type).
#[cfg(feature = "cube")]
pub(crate) fn to_cube<P: 'static, R: burn_cubecl::CubeRuntime>(
    p: P,
) -> burn_cubecl::tensor::CubeTensor<R> {
    cast(p).unwrap_or_else(|_| unreachable!("checked by is_cube"))
}

#[cfg(feature = "cube")]
fn from_cube<P: 'static, R: burn_cubecl::CubeRuntime>(t: burn_cubecl::tensor::CubeTensor<R>) -> P {
    cast(t).unwrap_or_else(|_| unreachable!("checked by is_cube"))
}

pub(crate) fn entropy<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2> {
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let t = to_cube::<_, R>(float(logits.clone()));
        crate::cube::entropy::<R>(t).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    or_reference::<B, _>("entropy", fused.map(|r| r.map(wrap)), || {
        reference::entropy(logits)
    })
}

pub(crate) fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, scale: f64) -> Tensor<B, D> {
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let t = to_cube::<_, R>(float(x.clone()));
        crate::cube::softmax::<R>(t, scale).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    or_reference::<B, _>("softmax", fused.map(|r| r.map(wrap)), || {
        reference::softmax(x, scale)
    })
}

pub(crate) fn rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, 3> {
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let t = to_cube::<_, R>(float(x.clone()));
        let w = to_cube::<_, R>(float(weight.clone()));
        crate::cube::rms_norm::<R>(t, w, eps).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    or_reference::<B, _>("rms_norm", fused.map(|r| r.map(wrap)), || {
        reference::rms_norm(x, weight, eps)
    })
}

/// Whether `add_rms_norm` runs its fused kernel (`BLT_KERNELS_FUSED_ADD_NORM=0`: the backend's
/// add, then the RMSNorm kernel, to compare).
fn fused_add_norm() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BLT_KERNELS_FUSED_ADD_NORM").as_deref() != Ok("0"))
}

pub(crate) fn add_rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    if !fused_add_norm() {
        let sum = x + delta;
        return (sum.clone(), rms_norm(sum, weight, eps));
    }
    type Pair<P> = (P, P);
    let fused: Option<Result<Pair<B::FloatTensorPrimitive>, String>> = on_cube!(B, |R| {
        let t = to_cube::<_, R>(float(x.clone()));
        let d = to_cube::<_, R>(float(delta.clone()));
        let w = to_cube::<_, R>(float(weight.clone()));
        crate::cube::add_rms_norm::<R>(t, d, w, eps).map(|(s, y)| {
            (
                from_cube::<B::FloatTensorPrimitive, R>(s),
                from_cube::<B::FloatTensorPrimitive, R>(y),
            )
        })
    });
    or_reference::<B, _>(
        "add_rms_norm",
        fused.map(|r| r.map(|(s, y)| (wrap(s), wrap(y)))),
        || reference::add_rms_norm(x, delta, weight, eps),
    )
}

pub(crate) fn swiglu<B: Backend>(gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let g = to_cube::<_, R>(float(gate.clone()));
        let u = to_cube::<_, R>(float(up.clone()));
        crate::cube::swiglu::<R>(g, u).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    or_reference::<B, _>("swiglu", fused.map(|r| r.map(wrap)), || {
        reference::swiglu(gate, up)
    })
}

pub(crate) fn prominence_coherence<B: Backend>(
    hidden: Tensor<B, 3>,
    entropies: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    #[allow(clippy::type_complexity)]
    let fused: Option<Result<(B::FloatTensorPrimitive, B::FloatTensorPrimitive), String>> =
        on_cube!(B, |R| {
            let h = to_cube::<_, R>(float(hidden.clone()));
            let e = to_cube::<_, R>(float(entropies.clone()));
            crate::cube::prominence_coherence::<R>(h, e).map(|(p, c)| {
                (
                    from_cube::<B::FloatTensorPrimitive, R>(p),
                    from_cube::<B::FloatTensorPrimitive, R>(c),
                )
            })
        });
    or_reference::<B, _>(
        "prominence_coherence",
        fused.map(|r| r.map(|(p, c)| (wrap(p), wrap(c)))),
        || reference::prominence_coherence(hidden, entropies),
    )
}

pub(crate) fn rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let t = to_cube::<_, R>(float(x.clone()));
        let c = to_cube::<_, R>(float(cos.clone()));
        let s = to_cube::<_, R>(float(sin.clone()));
        crate::cube::rope::<R>(t, c, s).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    or_reference::<B, _>("rope", fused.map(|r| r.map(wrap)), || {
        reference::rope(x, cos, sin)
    })
}

/// Whether cuBLAS may run the products on CUDA (`BLT_KERNELS_CUBLAS=0` turns it off, to compare
/// with CubeCL's GEMMs).
#[cfg(feature = "cuda")]
fn cublas_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("BLT_KERNELS_CUBLAS").as_deref() != Ok("0")
            && crate::cube::cublas::available()
    })
}

/// Whether products on backend `B` run on cuBLAS.
#[cfg_attr(not(feature = "cuda"), allow(clippy::extra_unused_type_parameters))]
fn cublas_ready<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    if is_cube::<B, cubecl::cuda::CudaRuntime>() {
        return cublas_enabled();
    }
    false
}

/// `lhs · rhs` on cuBLAS, when `B` is the CUDA CubeCL backend and libcublas loads; `None`
/// otherwise (logged once).
fn cublas_matmul<B: Backend, const D: usize>(
    lhs: &Tensor<B, D>,
    rhs: &Tensor<B, D>,
) -> Option<Result<Tensor<B, D>, String>> {
    cublas_matmul_ordered(lhs, rhs, std::array::from_fn(|i| i))
}

/// [`cublas_matmul`] with the output laid out in memory in dimension `order` (see
/// `cube::cublas::matmul_ordered`).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
fn cublas_matmul_ordered<B: Backend, const D: usize>(
    lhs: &Tensor<B, D>,
    rhs: &Tensor<B, D>,
    order: [usize; D],
) -> Option<Result<Tensor<B, D>, String>> {
    #[cfg(feature = "cuda")]
    if is_cube::<B, cubecl::cuda::CudaRuntime>() {
        if !cublas_enabled() {
            note_reference::<B>(
                "cublas",
                "libcublas not loadable or BLT_KERNELS_CUBLAS=0: CubeCL GEMMs",
            );
            return None;
        }
        type R = cubecl::cuda::CudaRuntime;
        let l = to_cube::<_, R>(float(lhs.clone()));
        let r = to_cube::<_, R>(float(rhs.clone()));
        return Some(
            crate::cube::cublas::matmul_ordered(l, r, &order)
                .map(|out| wrap(from_cube::<B::FloatTensorPrimitive, R>(out))),
        );
    }
    None
}

/// A quantized weight dequantized to `dtype` (weight-only quantization: the product runs in the
/// activations' dtype); any other weight as it is.
fn dense<B: Backend>(weight: Tensor<B, 2>, dtype: DType) -> Tensor<B, 2> {
    match weight.dtype() {
        DType::QFloat(_) => weight.dequantize().cast(dtype),
        _ => weight,
    }
}

pub(crate) fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    let weight = dense(weight, x.dtype());
    let [b, s, k] = x.dims();
    let n = weight.dims()[1];
    match cublas_matmul(&x.clone().reshape([b * s, k]), &weight) {
        Some(Ok(out)) => return out.reshape([b, s, n]),
        Some(Err(why)) => note_fallback::<B>("linear (cuBLAS)", &why),
        None => {}
    }
    // Half precision: the autotuned tensor-core GEMM is the right one.
    if x.dtype() != DType::F32 {
        return reference::linear(x, weight);
    }
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let t = to_cube::<_, R>(float(x.clone()));
        let w = to_cube::<_, R>(float(weight.clone()));
        crate::cube::linear::<R>(t, w).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    match fused {
        Some(Ok(p)) => wrap(p),
        Some(Err(why)) => {
            note_fallback::<B>("linear", &why);
            reference::linear(x, weight)
        }
        None => reference::linear(x, weight),
    }
}

/// Whether `linear_many` concatenates the weights into one product on cuBLAS
/// (`BLT_KERNELS_FUSED_PROJECTIONS=0` multiplies them one by one, to compare: the concatenation
/// is copied every call).
fn fused_projections() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BLT_KERNELS_FUSED_PROJECTIONS").as_deref() != Ok("0"))
}

pub(crate) fn linear_many<B: Backend>(
    x: Tensor<B, 3>,
    weights: Vec<Tensor<B, 2>>,
) -> Vec<Tensor<B, 3>> {
    let weights: Vec<_> = weights.into_iter().map(|w| dense(w, x.dtype())).collect();
    if weights.len() > 1 && cublas_ready::<B>() && fused_projections() {
        let widths: Vec<usize> = weights.iter().map(|w| w.dims()[1]).collect();
        let out = linear(x, Tensor::cat(weights, 1));
        let mut start = 0;
        return widths
            .into_iter()
            .map(|width| {
                let part = out.clone().narrow(2, start, width);
                start += width;
                part
            })
            .collect();
    }
    weights.into_iter().map(|w| linear(x.clone(), w)).collect()
}

/// `lhs · rhs` on the full-precision f32 GEMM, when backend `B` has the CubeCL kernels.
#[cfg_attr(not(feature = "cube"), allow(unused_variables))]
fn matmul_f32<B: Backend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
) -> Option<Result<Tensor<B, D>, String>> {
    match cublas_matmul(&lhs, &rhs) {
        Some(Ok(out)) => return Some(Ok(out)),
        Some(Err(why)) => note_fallback::<B>("matmul (cuBLAS)", &why),
        None => {}
    }
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let l = to_cube::<_, R>(float(lhs.clone()));
        let r = to_cube::<_, R>(float(rhs.clone()));
        crate::cube::matmul_f32::<R>(l, r).map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    fused.map(|r| r.map(wrap))
}

pub(crate) fn attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    // Half precision without cuBLAS: Burn's autotuned attention (flash kernels, f32
    // accumulation). Burn takes its naive path whenever a scale is given, even the default one,
    // so the default is passed as `None`.
    if query.dtype() != DType::F32 && !cublas_ready::<B>() {
        let head_dim = query.dims()[3] as f64;
        let options = match options.scale {
            Some(s) if (s * head_dim.sqrt() - 1.0).abs() < 1e-9 => AttentionModuleOptions {
                scale: None,
                ..options
            },
            _ => options,
        };
        return reference::attention(query, key, value, mask, options);
    }
    // f32: CubeCL's flash kernels stage f32 inputs as f16 (unit) or TF32 (tensor cores), which
    // moves BLT entropies by up to 1e-2 nats; compute scores and the weighted sum on an exact
    // GEMM (cuBLAS on CUDA, CubeCL's unit GEMMs elsewhere) and the masked softmax in f32 in
    // this crate's kernel. Half precision on CUDA takes the same path on cuBLAS's tensor-core
    // GEMMs: on an H100, Burn's flash kernels were not valid for these shapes and its
    // fallback materialises the scores several times.
    let head_dim = query.dims()[3];
    let scale = options.scale.unwrap_or(1.0 / (head_dim as f64).sqrt());
    let scores = match matmul_f32(query.clone(), key.clone().swap_dims(2, 3)) {
        None => return reference::attention(query, key, value, mask, options),
        Some(Err(why)) => {
            note_fallback::<B>("attention", &why);
            return reference::attention(query, key, value, mask, options);
        }
        Some(Ok(scores)) => scores,
    };
    // Masked scores get a large finite value, not -inf (WGSL has no infinity literals); the
    // row softmax is this crate's kernel, so no reduction of the backend's is on this path.
    let probs = softmax(scores.mask_fill(mask.clone(), -1.0e30), scale);
    match matmul_f32(probs, value.clone()) {
        Some(Ok(out)) => out,
        Some(Err(why)) => {
            note_fallback::<B>("attention", &why);
            reference::attention(query, key, value, mask, options)
        }
        None => reference::attention(query, key, value, mask, options),
    }
}

/// `lhs · rhs` for attention: cuBLAS on CUDA (with the output's dimensions laid out in memory
/// in `order`), the exact f32 GEMM of this crate for f32 on other CubeCL runtimes, Burn's
/// matmul otherwise (half precision off CUDA: its autotuned tensor-core GEMM; the CPU backend).
fn attention_product<B: Backend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
    order: [usize; D],
) -> Tensor<B, D> {
    match cublas_matmul_ordered(&lhs, &rhs, order) {
        Some(Ok(out)) => return out,
        Some(Err(why)) => note_fallback::<B>("attention product (cuBLAS)", &why),
        None => {}
    }
    if lhs.dtype() == DType::F32 {
        match matmul_f32(lhs.clone(), rhs.clone()) {
            Some(Ok(out)) => return out,
            Some(Err(why)) => note_fallback::<B>("attention product", &why),
            None => {}
        }
    }
    lhs.matmul(rhs)
}

pub(crate) fn local_attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    document_starts: Option<Tensor<B, 2, Int>>,
    window: Option<usize>,
    scale: f64,
) -> Tensor<B, 4> {
    let parts = LocalAttention::parts(query.dims()[2], window);
    let mut outputs: Vec<Tensor<B, 4>> = parts
        .iter()
        .map(|geometry| {
            local_attention_part(
                query.clone(),
                key.clone(),
                value.clone(),
                document_starts.as_ref(),
                geometry,
                scale,
            )
        })
        .collect();
    if outputs.len() == 1 {
        outputs.remove(0)
    } else {
        Tensor::cat(outputs, 1)
    }
}

/// One call of [`local_attention`]: `[b, queries, h, d]` for the queries of `geometry`.
fn local_attention_part<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    document_starts: Option<&Tensor<B, 2, Int>>,
    geometry: &LocalAttention,
    scale: f64,
) -> Tensor<B, 4> {
    let (q, k, v) = geometry.fold(query, key, value);
    // Keys enter as a transposed view and values as windows of their buffer: cuBLAS reads both
    // in place.
    let scores = attention_product(q, k.swap_dims(3, 4), [0, 1, 2, 3, 4]);
    let fused: Option<Result<B::FloatTensorPrimitive, String>> = on_cube!(B, |R| {
        let s = to_cube::<_, R>(float(scores.clone()));
        let d = document_starts.map(|d| to_cube::<_, R>(d.clone().into_primitive()));
        crate::cube::local_softmax::<R>(s, d, geometry, scale)
            .map(from_cube::<B::FloatTensorPrimitive, R>)
    });
    let probs = or_reference::<B, _>("local_softmax", fused.map(|r| r.map(wrap)), || {
        reference::local_softmax(scores, document_starts, geometry, scale)
    });
    // `[b, h, blocks, block_len, d]` written as `[b, blocks, block_len, h, d]` memory: the
    // caller's `[b, seq, h·d]` view of the result is then free.
    geometry.unfold_output(attention_product(probs, v, [0, 2, 3, 1, 4]))
}
