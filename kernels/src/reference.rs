//! Plain-Burn implementations of every fused operation: the definition the kernels are tested
//! against, and what runs on backends without CubeCL kernels (the CPU backend, autodiff for
//! training, the fusion backends).

use burn::tensor::backend::Backend;
use burn::tensor::module;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{activation, Bool, DType, Int, Tensor};

use crate::{LocalAttention, COHERENCE_EPS};

/// See [`crate::entropy`].
pub fn entropy<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2> {
    let logp = activation::log_softmax(logits.cast(DType::F32), 2);
    (logp.clone().exp() * logp)
        .sum_dim(2)
        .neg()
        .squeeze_dim::<2>(2)
}

/// See [`crate::softmax`].
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, scale: f64) -> Tensor<B, D> {
    let dtype = x.dtype();
    activation::softmax(x.cast(DType::F32) * scale, D - 1).cast(dtype)
}

/// See [`crate::rms_norm`].
pub fn rms_norm<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 1>, eps: f64) -> Tensor<B, 3> {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let rms = (x.clone().square().mean_dim(2) + eps).sqrt();
    let weight = weight.cast(DType::F32).unsqueeze::<3>();
    (x / rms * weight).cast(dtype)
}

/// See [`crate::add_rms_norm`].
pub fn add_rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let sum = x + delta;
    (sum.clone(), rms_norm(sum, weight, eps))
}

/// See [`crate::swiglu`].
pub fn swiglu<B: Backend>(gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
    let dtype = gate.dtype();
    (activation::silu(gate.cast(DType::F32)) * up.cast(DType::F32)).cast(dtype)
}

/// See [`crate::prominence_coherence`].
pub fn prominence_coherence<B: Backend>(
    hidden: Tensor<B, 3>,
    entropies: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let squared = hidden
        .cast(DType::F32)
        .square()
        .sum_dim(2)
        .squeeze_dim::<2>(2);
    let coherence = squared.clone() / (entropies.cast(DType::F32) + COHERENCE_EPS);
    (squared.sqrt(), coherence)
}

/// See [`crate::rope`].
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    let dtype = x.dtype();
    let [b, h, s, d] = x.dims();
    let pairs = x.cast(DType::F32).reshape([b, h, s, d / 2, 2]);
    let even = pairs.clone().narrow(4, 0, 1).reshape([b, h, s, d / 2]);
    let odd = pairs.narrow(4, 1, 1).reshape([b, h, s, d / 2]);
    let rotated_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
    let rotated_odd = even * sin + odd * cos;
    Tensor::stack::<5>(vec![rotated_even, rotated_odd], 4)
        .reshape([b, h, s, d])
        .cast(dtype)
}

/// See [`crate::linear`].
pub fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    x.matmul(weight.unsqueeze())
}

/// See [`crate::attention`].
pub fn attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    module::attention(query, key, value, Some(mask), None, options)
}

/// The softmax of [`crate::local_attention`]: `softmax(scores · scale)` over the visible keys,
/// exactly 0 elsewhere. `scores`: `[batch, heads, blocks, block_len, key_len]`.
pub fn local_softmax<B: Backend>(
    scores: Tensor<B, 5>,
    document_starts: Option<&Tensor<B, 2, Int>>,
    geometry: &LocalAttention,
    scale: f64,
) -> Tensor<B, 5> {
    let dims = scores.dims();
    let masked = geometry.mask(document_starts, &scores.device());
    let [mb, _, n, l, kl] = masked.dims();
    let masked = masked.expand([dims[0].max(mb), dims[1], n, l, kl]);
    // Masked scores get a large finite value (WGSL has no infinity literals), and the
    // probabilities are zeroed there, so that a query that sees nothing (padding) gets zeros.
    let probs = softmax(scores.mask_fill(masked.clone(), -1.0e30), scale);
    probs.mask_fill(masked, 0.0)
}

/// See [`crate::local_attention`]: the same blocks and products, the mask as a tensor.
pub fn local_attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    document_starts: Option<Tensor<B, 2, Int>>,
    window: Option<usize>,
    scale: f64,
) -> Tensor<B, 4> {
    let geometry = LocalAttention::new(query.dims()[2], window);
    let (q, k, v) = geometry.fold(query, key, value);
    let scores = q.matmul(k.swap_dims(3, 4));
    let probs = local_softmax(scores, document_starts.as_ref(), &geometry, scale);
    geometry.unfold_output(probs.matmul(v))
}
