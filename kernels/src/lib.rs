#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use burn::tensor::backend::Backend;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor};

#[cfg(feature = "cube")]
mod cube;
#[macro_use]
mod dispatch;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod layout;
mod local;
mod readback;
pub mod reference;
mod upload;

pub use dispatch::{fallback_count, fused_runtime};
pub use local::LocalAttention;
pub use readback::{read_async, read_f32_async, PendingRead};
pub use upload::upload_int;

/// The CubeCL backends on which the kernels run (no fusion layer: the kernels replace it).
pub mod backends {
    /// CUDA, f32 default float, with this crate's kernels.
    #[cfg(feature = "cuda")]
    pub type CudaKernels = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
    /// WGPU, f32 default float, with this crate's kernels.
    #[cfg(feature = "wgpu")]
    pub type WgpuKernels = burn_cubecl::CubeBackend<cubecl::wgpu::WgpuRuntime, f32, i32, u32>;
}

/// The quantity added to the entropy in the coherence score `prominence² / (entropy + ε)`.
pub const COHERENCE_EPS: f32 = 1e-6;

/// Entropy in nats of `softmax(logits)` over the last dimension, `-Σ p log p`, computed in f32
/// whatever the logits' dtype. `[batch, seq, vocab]` → `[batch, seq]` (f32).
///
/// Fused kernel: one pass per row (max, then `Σ e^(x-m)` and `Σ (x-m)·e^(x-m)` together), f32
/// accumulation, `H = ln S − T / S`.
pub fn entropy<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2> {
    dispatch::entropy(logits)
}

/// `softmax(x · scale)` over the last dimension, computed in f32 and rounded once to `x`'s
/// dtype (fused kernel: row max, sum of exponentials and the normalised values, three passes
/// over one row held by one group of threads).
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, scale: f64) -> Tensor<B, D> {
    dispatch::softmax(x, scale)
}

/// RMSNorm over the last dimension, `x · (mean(x²) + eps)^-½ · weight`, computed in f32 and
/// rounded once to `x`'s dtype. `x`: `[batch, seq, dim]`, `weight`: `[dim]`.
pub fn rms_norm<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 1>, eps: f64) -> Tensor<B, 3> {
    dispatch::rms_norm(x, weight, eps)
}

/// A residual add and the RMSNorm after it: returns `(x + delta, rms_norm(x + delta))`, the
/// sum in `x`'s dtype (the residual stream) and its norm as [`rms_norm`] computes it. One pass
/// over each row on CubeCL backends (the sum is not read back from memory by a second kernel).
pub fn add_rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    dispatch::add_rms_norm(x, delta, weight, eps)
}

/// The SwiGLU gate `silu(gate) ⊙ up`, computed in f32 and rounded once to the inputs' dtype.
pub fn swiglu<B: Backend>(gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
    dispatch::swiglu(gate, up)
}

/// Per-position L2 norm of `hidden` (`[batch, seq, dim]`, any float dtype) in f32 ("prominence"),
/// and the coherence score `prominence² / (entropy + COHERENCE_EPS)` given the entropies
/// (`[batch, seq]`, f32). Returns `(prominence, coherence)`, both `[batch, seq]` f32.
pub fn prominence_coherence<B: Backend>(
    hidden: Tensor<B, 3>,
    entropies: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    dispatch::prominence_coherence(hidden, entropies)
}

/// Interleaved rotary embedding (pairs `2i, 2i+1`), as Meta's reference: `x` is
/// `[batch, heads, seq, head_dim]` (any strides, e.g. a head view of a projection), `cos` and
/// `sin` are f32 `[1, 1, seq, head_dim / 2]`. Computed in f32, rounded once to `x`'s dtype;
/// the result is contiguous.
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    dispatch::rope(x, cos, sin)
}

/// A bias-free linear layer, `x · weight` with `weight` in Burn's `[d_in, d_out]` layout. A
/// quantized weight (Burn's `QFloat`) is dequantized to `x`'s dtype first.
///
/// On CubeCL backends an f32 product runs on a full-precision (non-tensor-core) GEMM: CubeCL's
/// autotuned GEMM otherwise computes f32 products in TF32, which moves BLT entropies by 1e-2 nats.
/// Half-precision products use the autotuned tensor-core GEMM.
pub fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    dispatch::linear(x, weight)
}

/// Several bias-free linear layers of the same input, `[x · W₁, x · W₂, …]` (each weight in
/// Burn's `[d_in, d_out]` layout), e.g. the query/key/value projections.
///
/// On CUDA with cuBLAS the weights are concatenated and multiplied once, and the outputs are
/// views of that one product (`BLT_KERNELS_FUSED_PROJECTIONS=0`: one product each; on an H100
/// the two measured the same); elsewhere each is multiplied on its own.
pub fn linear_many<B: Backend>(x: Tensor<B, 3>, weights: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 3>> {
    dispatch::linear_many(x, weights)
}

/// Scaled dot-product attention with a boolean mask (`true` = masked out), as
/// [`burn::tensor::module::attention`]. On CubeCL backends an f32 attention runs on the
/// full-precision flash kernel (the autotuned one may use TF32); half precision uses autotune.
pub fn attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    dispatch::attention(query, key, value, mask, options)
}

/// Causal attention limited to a sliding `window` (`None`: the whole sequence) and cut at
/// document boundaries: query `q` sees key `k` iff `document_starts[b, q] ≤ k ≤ q` and
/// `q − k < window` (`document_starts`: `[batch, seq]`, the first position of each position's
/// document; `None` when every row is one document). `query`, `key`, `value`:
/// `[batch, heads, seq, head_dim]` (any strides); scores are scaled by `scale`. The result is
/// `[batch, seq, heads, head_dim]`, heads last, as the output projection reads it.
///
/// Long sequences are cut into blocks of queries, each seeing only the keys it can reach
/// ([`LocalAttention`]); the blocks of one call are folded into the batch, so a long sequence
/// costs one score product, one softmax and one weighted sum per layer whatever its length. A
/// sequence short enough for one block (every query against every key) is cut into parts of 128
/// queries that compute only the scores up to their last query ([`LocalAttention::parts`]:
/// about half the scores of the one block). On CubeCL backends the softmax is a kernel that evaluates the visibility rule itself (no mask tensor); the products
/// are exact f32 GEMMs for f32 (cuBLAS on CUDA, reading the views in place and writing the
/// result heads-last) and tensor-core GEMMs with f32 accumulation for half precision.
pub fn local_attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    document_starts: Option<Tensor<B, 2, Int>>,
    window: Option<usize>,
    scale: f64,
) -> Tensor<B, 4> {
    dispatch::local_attention(query, key, value, document_starts, window, scale)
}
