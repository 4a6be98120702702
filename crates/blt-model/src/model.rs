//! Meta's `LMTransformer`, the BLT entropy model (Pagnoni et al., "Byte Latent Transformer:
//! Patches Scale Better Than Tokens", 2024, §4.2 "Entropy Patching"), following
//! `bytelatent/transformer.py` and `bytelatent/base_transformer.py` of facebookresearch/blt.
//!
//! Pre-norm blocks (RMSNorm with eps inside the square root), interleaved rotary embeddings
//! (pairs `2i, 2i+1`), multi-head causal attention limited to a sliding window and cut after every
//! EOS, a SwiGLU feed-forward, a final RMSNorm and an untied output head. Parameter names are the
//! reference's, so Meta's checkpoints load without renaming.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::config::EntropyModelConfig;
use crate::mask::AttentionPlan;
use crate::rope::RotaryEmbedding;

/// Root-mean-square normalisation: `x · (mean(x²) + eps)^-½ · weight`, computed in f32 and
/// rounded once to the activation dtype, as `torch.nn.RMSNorm` does.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Learned scale, `[dim]`.
    pub weight: Param<Tensor<B, 1>>,
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// A norm of width `dim` with unit scale (the reference's initialisation).
    pub fn new(dim: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([dim], device)),
            eps,
        }
    }

    /// Normalises `[batch, seq, dim]` over the last dimension (a fused kernel on CubeCL
    /// backends, see [`blt_kernels::rms_norm`]).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        blt_kernels::rms_norm(x, self.weight.val(), self.eps)
    }

    /// Adds `delta` to the residual stream `x` and normalises the sum: `(x + delta,
    /// norm(x + delta))`, one fused kernel on CubeCL backends (see
    /// [`blt_kernels::add_rms_norm`]).
    pub fn add_forward(
        &self,
        x: Tensor<B, 3>,
        delta: Tensor<B, 3>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        blt_kernels::add_rms_norm(x, delta, self.weight.val(), self.eps)
    }

    /// [`Self::add_forward`] when there is a `delta`, [`Self::forward`] otherwise.
    fn maybe_add_forward(
        &self,
        x: Tensor<B, 3>,
        delta: Option<Tensor<B, 3>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        match delta {
            Some(d) => self.add_forward(x, d),
            None => (x.clone(), self.forward(x)),
        }
    }
}

/// Multi-head attention with rotary embeddings (`wq`, `wk`, `wv`, `wo`, no biases).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection.
    pub wq: Linear<B>,
    /// Key projection.
    pub wk: Linear<B>,
    /// Value projection.
    pub wv: Linear<B>,
    /// Output projection.
    pub wo: Linear<B>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    fn new(config: &EntropyModelConfig, init: &mut Init<'_, B>) -> Self {
        let (dim, hd) = (config.dim, config.head_dim());
        let (h, kv) = (config.n_heads, config.n_kv_heads());
        let mut linear = |i, o| init.linear(i, o);
        Self {
            wq: linear(dim, h * hd),
            wk: linear(dim, kv * hd),
            wv: linear(dim, kv * hd),
            wo: linear(h * hd, dim),
            n_heads: h,
            n_kv_heads: kv,
            head_dim: hd,
        }
    }

    fn heads(&self, x: Tensor<B, 3>, n_heads: usize) -> Tensor<B, 4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, n_heads, self.head_dim]).swap_dims(1, 2)
    }

    fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let rep = self.n_heads / self.n_kv_heads;
        if rep == 1 {
            return x;
        }
        let [b, kv, s, hd] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, kv, rep, s, hd])
            .reshape([b, kv * rep, s, hd])
    }

    /// `x`: `[batch, seq, dim]` → `[batch, seq, dim]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryEmbedding<B>,
        plan: &AttentionPlan<B>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let mut qkv = blt_kernels::linear_many(
            x,
            vec![
                self.wq.weight.val(),
                self.wk.weight.val(),
                self.wv.weight.val(),
            ],
        )
        .into_iter();
        let (Some(q), Some(k), Some(v)) = (qkv.next(), qkv.next(), qkv.next()) else {
            unreachable!("linear_many returns one output per weight")
        };
        let q = rope.apply(self.heads(q, self.n_heads));
        let k = rope.apply(self.heads(k, self.n_kv_heads));
        let v = self.heads(v, self.n_kv_heads);
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let starts = plan.document_starts().cloned();
        let out = blt_kernels::local_attention(q, k, v, starts, plan.window(), scale);
        linear(&self.wo, out.reshape([b, s, self.n_heads * self.head_dim]))
    }
}

/// SwiGLU feed-forward: `w2(silu(w1 x) ⊙ w3 x)`, no biases.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// Gate projection (through SiLU).
    pub w1: Linear<B>,
    /// Down projection.
    pub w2: Linear<B>,
    /// Up projection.
    pub w3: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    fn new(config: &EntropyModelConfig, init: &mut Init<'_, B>) -> Self {
        let (dim, hidden) = (config.dim, config.ffn_hidden_dim());
        let mut linear = |i, o| init.linear(i, o);
        Self {
            w1: linear(dim, hidden),
            w2: linear(hidden, dim),
            w3: linear(dim, hidden),
        }
    }

    /// `[.., dim]` → `[.., dim]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mut gu = blt_kernels::linear_many(x, vec![self.w1.weight.val(), self.w3.weight.val()])
            .into_iter();
        let (Some(gate), Some(up)) = (gu.next(), gu.next()) else {
            unreachable!("linear_many returns one output per weight")
        };
        let gate = blt_kernels::swiglu(gate, up);
        linear(&self.w2, gate)
    }
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct TransformerBlock<B: Backend> {
    /// Self-attention.
    pub attention: Attention<B>,
    /// Feed-forward.
    pub feed_forward: FeedForward<B>,
    /// Norm before attention.
    pub attention_norm: RmsNorm<B>,
    /// Norm before the feed-forward.
    pub ffn_norm: RmsNorm<B>,
}

impl<B: Backend> TransformerBlock<B> {
    fn new(config: &EntropyModelConfig, init: &mut Init<'_, B>) -> Self {
        Self {
            attention: Attention::new(config, init),
            feed_forward: FeedForward::new(config, init),
            attention_norm: RmsNorm::new(config.dim, config.norm_eps, init.device),
            ffn_norm: RmsNorm::new(config.dim, config.norm_eps, init.device),
        }
    }

    /// `x + pending` is the block's input (`pending`: the previous block's feed-forward output,
    /// not yet added, so that the add is fused with this block's first norm). Returns
    /// `(h, f)`: the block's output is `h + f`, left for the next norm to add.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        pending: Option<Tensor<B, 3>>,
        rope: &RotaryEmbedding<B>,
        plan: &AttentionPlan<B>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let (x, normed) = self.attention_norm.maybe_add_forward(x, pending);
        let attended = self.attention.forward(normed, rope, plan);
        let (h, normed) = self.ffn_norm.add_forward(x, attended);
        let f = self.feed_forward.forward(normed);
        (h, f)
    }
}

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct ForwardOutput<B: Backend> {
    /// Next-token logits, `[batch, seq, vocab]`, in the model's dtype.
    pub logits: Tensor<B, 3>,
    /// Hidden states after the last block and before the final norm ("pre-norm embeddings"),
    /// `[batch, seq, dim]`, in the model's dtype.
    pub hidden: Tensor<B, 3>,
}

impl<B: Backend> ForwardOutput<B> {
    /// Per-position entropy of the next-token distribution in nats, computed in f32 whatever the
    /// model dtype: `-Σ p log p` over the whole vocabulary. `[batch, seq]`.
    pub fn entropies(&self) -> Tensor<B, 2> {
        entropy(self.logits.clone())
    }

    /// Per-position L2 norm of the pre-norm hidden state ("prominence"), in f32. `[batch, seq]`.
    pub fn prominence(&self) -> Tensor<B, 2> {
        self.prominence_coherence(self.entropies()).0
    }

    /// Prominence and the coherence score `prominence² / (entropy + ε)` for the given
    /// entropies, both f32 `[batch, seq]` (one fused kernel on CubeCL backends).
    pub fn prominence_coherence(&self, entropies: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        blt_kernels::prominence_coherence(self.hidden.clone(), entropies)
    }
}

/// Entropy in nats of softmax(logits) over the last dimension, computed in f32 (one fused
/// kernel on CubeCL backends, see [`blt_kernels::entropy`]).
pub fn entropy<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2> {
    blt_kernels::entropy(logits)
}

/// A bias-free linear layer through [`blt_kernels::linear`] (full f32 precision on GPUs).
fn linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    blt_kernels::linear(x, layer.weight.val())
}

/// Meta's `LMTransformer`: the BLT entropy model.
#[derive(Module, Debug)]
pub struct EntropyModel<B: Backend> {
    /// Byte embeddings, `[vocab, dim]`.
    pub tok_embeddings: Embedding<B>,
    /// The transformer blocks.
    pub layers: Vec<TransformerBlock<B>>,
    /// The final norm.
    pub norm: RmsNorm<B>,
    /// The output head, `dim → vocab`.
    pub output: Linear<B>,
}

impl<B: Backend> EntropyModel<B> {
    /// A model of this shape with zero weights, to be filled by loading a checkpoint.
    pub fn new(config: &EntropyModelConfig, device: &B::Device) -> Self {
        Self::build(config, &mut Init { device, rng: None })
    }

    /// A model of this shape with random weights drawn on the host from `seed`, as the reference
    /// initialises them (truncated normal at ±3σ with σ = fan_in^-½, unit norms), so that the
    /// same seed gives the same weights on every backend.
    pub fn init(config: &EntropyModelConfig, seed: u64, device: &B::Device) -> Self {
        Self::build(
            config,
            &mut Init {
                device,
                rng: Some(SplitMix(seed)),
            },
        )
    }

    fn build(config: &EntropyModelConfig, init: &mut Init<'_, B>) -> Self {
        let tok_embeddings = Embedding {
            weight: init.param([config.vocab_size, config.dim], config.dim),
        };
        Self {
            tok_embeddings,
            layers: (0..config.n_layers)
                .map(|_| TransformerBlock::new(config, init))
                .collect(),
            norm: RmsNorm::new(config.dim, config.norm_eps, init.device),
            output: init.linear(config.dim, config.vocab_size),
        }
    }

    /// Runs the model on `tokens` (`[batch, seq]`, each row one independent sequence starting at
    /// position 0) under an attention plan built from the same tokens.
    pub fn forward_with_plan(
        &self,
        tokens: Tensor<B, 2, Int>,
        rope: &RotaryEmbedding<B>,
        plan: &AttentionPlan<B>,
    ) -> ForwardOutput<B> {
        let mut h = self.tok_embeddings.forward(tokens);
        // Each block's last residual add is done by the next norm (fused with it).
        let mut pending = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let _span = tracing::trace_span!("block", layer = i).entered();
            let (x, f) = layer.forward(h, pending, rope, plan);
            h = x;
            pending = Some(f);
        }
        let (h, normed) = self.norm.maybe_add_forward(h, pending);
        let logits = linear(&self.output, normed);
        ForwardOutput { logits, hidden: h }
    }

    /// The model's float dtype (that of its embedding matrix).
    pub fn dtype(&self) -> DType {
        self.tok_embeddings.weight.val().dtype()
    }
}

/// A small, seedable generator (SplitMix64), so that initial weights and data order never
/// depend on a crate version or a backend.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal, truncated at ±3 (redrawn outside).
    fn truncated_normal(&mut self) -> f64 {
        loop {
            let (u, v) = (self.unit(), self.unit());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            if z.abs() <= 3.0 {
                return z;
            }
        }
    }
}

/// Where weights come from while a model is built: zeros (to be loaded over) or seeded random.
struct Init<'a, B: Backend> {
    device: &'a B::Device,
    rng: Option<SplitMix>,
}

impl<B: Backend> Init<'_, B> {
    fn param<const D: usize>(&mut self, shape: [usize; D], fan_in: usize) -> Param<Tensor<B, D>> {
        let tensor = match &mut self.rng {
            None => Tensor::zeros(shape, self.device),
            Some(rng) => {
                let std = (fan_in.max(1) as f64).powf(-0.5);
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n)
                    .map(|_| (rng.truncated_normal() * std) as f32)
                    .collect();
                Tensor::from_data(TensorData::new(values, shape), self.device)
            }
        };
        Param::from_tensor(tensor)
    }

    /// A bias-free linear layer `d_in → d_out` (Burn's `[d_in, d_out]` layout).
    fn linear(&mut self, d_in: usize, d_out: usize) -> Linear<B> {
        Linear {
            weight: self.param([d_in, d_out], d_in),
            bias: None,
        }
    }
}

/// Uploads token ids as a `[batch, seq]` int tensor.
pub(crate) fn token_tensor<B: Backend>(
    ids: Vec<i64>,
    batch: usize,
    seq: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    // through pinned memory on GPU backends: an upload from pageable memory may wait for the
    // batch already running on the device
    blt_kernels::upload_int(TensorData::new(ids, [batch, seq]), device)
}
