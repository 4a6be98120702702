//! Meta's `LMTransformer`, the BLT entropy model (Pagnoni et al., "Byte Latent Transformer:
//! Patches Scale Better Than Tokens", 2024, §4.2 "Entropy Patching"), following
//! `bytelatent/transformer.py` and `bytelatent/base_transformer.py` of facebookresearch/blt.
//!
//! Pre-norm blocks (RMSNorm with eps inside the square root), interleaved rotary embeddings
//! (pairs `2i, 2i+1`), multi-head causal attention limited to a sliding window and cut after every
//! EOS, a SwiGLU feed-forward, a final RMSNorm and an untied output head. Parameter names are the
//! reference's, so Meta's checkpoints load without renaming.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{activation, Bool, DType, Int, Tensor, TensorData};

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
    /// A norm of width `dim` with unit scale.
    pub fn new(dim: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([dim], device)),
            eps,
        }
    }

    /// Normalises over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt();
        let weight = self.weight.val().cast(DType::F32).unsqueeze::<D>();
        (x / rms * weight).cast(dtype)
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
    fn new(config: &EntropyModelConfig, device: &B::Device) -> Self {
        let (dim, hd) = (config.dim, config.head_dim());
        let (h, kv) = (config.n_heads, config.n_kv_heads());
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
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
        let q = rope.apply(self.heads(self.wq.forward(x.clone()), self.n_heads));
        let k = rope.apply(self.heads(self.wk.forward(x.clone()), self.n_kv_heads));
        let v = self.heads(self.wv.forward(x), self.n_kv_heads);
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
        let options = AttentionModuleOptions {
            scale: Some(1.0 / (self.head_dim as f64).sqrt()),
            softcap: None,
            is_causal: false,
        };
        let mut outputs = Vec::with_capacity(plan.blocks().len());
        for block in plan.blocks() {
            let q = q
                .clone()
                .slice([0..b, 0..self.n_heads, block.queries.clone()]);
            let k = k.clone().slice([0..b, 0..self.n_heads, block.keys.clone()]);
            let v = v.clone().slice([0..b, 0..self.n_heads, block.keys.clone()]);
            let [_, _, ql, kl] = block.masked.dims();
            let mask = block.masked.clone().expand([b, self.n_heads, ql, kl]);
            outputs.push(attention(q, k, v, Some(mask), None, options));
        }
        let out = if outputs.len() == 1 {
            outputs.pop().expect("one block")
        } else {
            Tensor::cat(outputs, 2)
        };
        let out = out
            .swap_dims(1, 2)
            .reshape([b, s, self.n_heads * self.head_dim]);
        self.wo.forward(out)
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
    fn new(config: &EntropyModelConfig, device: &B::Device) -> Self {
        let (dim, hidden) = (config.dim, config.ffn_hidden_dim());
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            w1: linear(dim, hidden),
            w2: linear(hidden, dim),
            w3: linear(dim, hidden),
        }
    }

    /// `[.., dim]` → `[.., dim]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = activation::silu(self.w1.forward(x.clone()));
        self.w2.forward(gate * self.w3.forward(x))
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
    fn new(config: &EntropyModelConfig, device: &B::Device) -> Self {
        Self {
            attention: Attention::new(config, device),
            feed_forward: FeedForward::new(config, device),
            attention_norm: RmsNorm::new(config.dim, config.norm_eps, device),
            ffn_norm: RmsNorm::new(config.dim, config.norm_eps, device),
        }
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryEmbedding<B>,
        plan: &AttentionPlan<B>,
    ) -> Tensor<B, 3> {
        let h = x.clone()
            + self
                .attention
                .forward(self.attention_norm.forward(x), rope, plan);
        h.clone() + self.feed_forward.forward(self.ffn_norm.forward(h))
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
        self.hidden
            .clone()
            .cast(DType::F32)
            .square()
            .sum_dim(2)
            .sqrt()
            .squeeze_dim::<2>(2)
    }
}

/// Entropy in nats of softmax(logits) over the last dimension, computed in f32.
pub fn entropy<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2> {
    let logp = activation::log_softmax(logits.cast(DType::F32), 2);
    (logp.clone().exp() * logp)
        .sum_dim(2)
        .neg()
        .squeeze_dim::<2>(2)
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
    /// A model of this shape with freshly initialised weights (for training or tests).
    pub fn new(config: &EntropyModelConfig, device: &B::Device) -> Self {
        Self {
            tok_embeddings: EmbeddingConfig::new(config.vocab_size, config.dim).init(device),
            layers: (0..config.n_layers)
                .map(|_| TransformerBlock::new(config, device))
                .collect(),
            norm: RmsNorm::new(config.dim, config.norm_eps, device),
            output: LinearConfig::new(config.dim, config.vocab_size)
                .with_bias(false)
                .init(device),
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
        for (i, layer) in self.layers.iter().enumerate() {
            let _span = tracing::trace_span!("block", layer = i).entered();
            h = layer.forward(h, rope, plan);
        }
        let logits = self.output.forward(self.norm.forward(h.clone()));
        ForwardOutput { logits, hidden: h }
    }

    /// The model's float dtype (that of its embedding matrix).
    pub fn dtype(&self) -> DType {
        self.tok_embeddings.weight.val().dtype()
    }
}

/// Uploads token ids as a `[batch, seq]` int tensor.
pub(crate) fn token_tensor<B: Backend>(
    ids: Vec<i64>,
    batch: usize,
    seq: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(ids, [batch, seq]), device)
}

/// Uploads a boolean mask.
pub(crate) fn bool_tensor<B: Backend, const D: usize>(
    values: Vec<bool>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Bool> {
    Tensor::from_data(TensorData::new(values, shape), device)
}
