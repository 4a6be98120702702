//! The entropy model's hyper-parameters, read from a checkpoint's own config file.
//!
//! Three layouts are understood:
//! - Meta's hub layout (`facebook/blt-entropy/config.json`): `LMTransformerArgs`, either flat or
//!   under `"args"` (what `PyTorchModelHubMixin` writes);
//! - Meta's own `params.json` (`{"entropy_model": {...}}`), whose loader hard-codes the 512-token
//!   sliding window and block-causal (EOS-cut) attention;
//! - a Hugging Face transformers BLT `config.json` with a `patcher_config` (or a bare
//!   `BltPatcherConfig`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest model width, attention width (`n_heads × head_dim`) and head width accepted.
pub const MAX_DIM: usize = 1 << 16;
/// The most transformer blocks accepted.
pub const MAX_LAYERS: usize = 1024;
/// The most attention heads accepted.
pub const MAX_HEADS: usize = 1024;
/// The largest SwiGLU hidden size and `multiple_of` accepted.
pub const MAX_FFN_HIDDEN_DIM: usize = 1 << 20;
/// The largest vocabulary accepted.
pub const MAX_VOCAB_SIZE: usize = 1 << 20;
/// The largest `max_seqlen` and `sliding_window` accepted.
pub const MAX_SEQLEN: usize = 1 << 20;
/// The largest rotary table accepted: `max_seqlen × head_dim` f32 values (cos and sin), made
/// on the device at the first forward pass.
pub const MAX_ROPE_TABLE: usize = 1 << 28;
/// The most parameters accepted (2^36: 256 GiB in f32).
pub const MAX_PARAMS: usize = 1 << 36;
/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// How attention is restricted beyond causality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionBias {
    /// Plain causal attention (optionally with a sliding window).
    Causal,
    /// Causal attention cut into documents after every EOS token.
    BlockCausal,
    /// Block-causal attention restricted to a sliding window (the released entropy model).
    LocalBlockCausal,
}

impl AttentionBias {
    /// Whether attention is cut after every EOS.
    pub fn cuts_at_eos(self) -> bool {
        matches!(self, Self::BlockCausal | Self::LocalBlockCausal)
    }
}

/// Hyper-parameters of Meta's `LMTransformer`, the BLT entropy model.
///
/// Field names and defaults follow Meta's `LMTransformerArgs` so that a config written by us loads
/// in the reference and the other way round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntropyModelConfig {
    /// Model width (768 for the release).
    pub dim: usize,
    /// Number of transformer blocks (14 for the release).
    pub n_layers: usize,
    /// Width of one attention head; `dim / n_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Number of query heads (12 for the release).
    pub n_heads: usize,
    /// Number of key/value heads; equal to `n_heads` (plain multi-head attention) when absent.
    #[serde(default)]
    pub n_kv_heads: Option<usize>,
    /// Multiplier of the SwiGLU hidden size (1.0 for the release).
    #[serde(default)]
    pub ffn_dim_multiplier: Option<f64>,
    /// The SwiGLU hidden size is rounded up to a multiple of this.
    #[serde(default = "default_multiple_of")]
    pub multiple_of: usize,
    /// RMSNorm epsilon, added inside the square root.
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// RoPE base frequency (10000 for the entropy model).
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Longest sequence the model runs on at once; longer documents are cut into independent
    /// windows of this length, as the reference does.
    #[serde(default = "default_max_seqlen")]
    pub max_seqlen: usize,
    /// Id that ends a document; attention is cut after it under block-causal attention.
    #[serde(default = "default_eos_id")]
    pub eos_id: u32,
    /// Vocabulary size (260).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Whether the output head shares the embedding matrix (false for the release).
    #[serde(default)]
    pub weight_tying: bool,
    /// Sliding attention window: a query sees itself and the `sliding_window - 1` keys before it.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// How attention is restricted beyond causality.
    #[serde(default = "default_attn_bias_type")]
    pub attn_bias_type: AttentionBias,
    /// Explicit SwiGLU hidden size. Not one of Meta's fields: set only for checkpoints (such as
    /// Hugging Face ones) that state the size instead of deriving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffn_hidden_dim: Option<usize>,
    /// Default global entropy threshold for this model (nats), written by calibration. Not one of
    /// Meta's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patching_threshold: Option<f32>,
}

fn default_multiple_of() -> usize {
    256
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f64 {
    10000.0
}
fn default_max_seqlen() -> usize {
    1024
}
fn default_eos_id() -> u32 {
    2
}
fn default_vocab_size() -> usize {
    260
}
fn default_attn_bias_type() -> AttentionBias {
    AttentionBias::LocalBlockCausal
}

impl EntropyModelConfig {
    /// The configuration of Meta's released `facebook/blt-entropy` (99.5 M parameters).
    pub fn blt_entropy() -> Self {
        Self {
            dim: 768,
            n_layers: 14,
            head_dim: None,
            n_heads: 12,
            n_kv_heads: None,
            ffn_dim_multiplier: Some(1.0),
            multiple_of: 256,
            norm_eps: 1e-5,
            rope_theta: 10000.0,
            max_seqlen: 8192,
            eos_id: 2,
            vocab_size: 260,
            weight_tying: false,
            sliding_window: Some(512),
            attn_bias_type: AttentionBias::LocalBlockCausal,
            ffn_hidden_dim: None,
            patching_threshold: None,
        }
    }

    /// A tiny configuration for tests: width 64, 2 layers, 2 heads, window 32, windows of 128.
    pub fn tiny() -> Self {
        Self {
            dim: 64,
            n_layers: 2,
            n_heads: 2,
            multiple_of: 32,
            max_seqlen: 128,
            sliding_window: Some(32),
            ..Self::blt_entropy()
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.dim / self.n_heads.max(1))
    }

    /// Number of key/value heads.
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    /// The SwiGLU hidden size, derived exactly as the reference does: `4·dim`, then `⌊2h/3⌋`,
    /// then `⌊multiplier·h⌋`, then rounded up to `multiple_of` (2048 for the release).
    /// `usize::MAX` when that overflows (a config [`Self::validate`] refuses).
    pub fn ffn_hidden_dim(&self) -> usize {
        self.checked_ffn_hidden_dim().unwrap_or(usize::MAX)
    }

    fn checked_ffn_hidden_dim(&self) -> Option<usize> {
        if let Some(hidden) = self.ffn_hidden_dim {
            return Some(hidden);
        }
        let mut hidden = self.dim.checked_mul(8)? / 3;
        if let Some(mult) = self.ffn_dim_multiplier {
            let scaled = mult * hidden as f64;
            // beyond 2^53 an f64 → usize conversion is no longer exact; far beyond any bound
            if !(scaled.is_finite() && (0.0..9.0e15).contains(&scaled)) {
                return None;
            }
            hidden = scaled as usize;
        }
        let m = self.multiple_of.max(1);
        hidden.div_ceil(m).checked_mul(m)
    }

    /// Number of parameters of a model of this shape (`usize::MAX` when that overflows, for a
    /// config [`Self::validate`] refuses).
    pub fn num_params(&self) -> usize {
        self.checked_num_params().unwrap_or(usize::MAX)
    }

    fn checked_num_params(&self) -> Option<usize> {
        let (d, hd, h, kv) = (self.dim, self.head_dim(), self.n_heads, self.n_kv_heads());
        let q = d.checked_mul(h)?.checked_mul(hd)?;
        let k = d.checked_mul(kv)?.checked_mul(hd)?;
        let attn = q.checked_add(k)?.checked_mul(2)?;
        let ffn = d
            .checked_mul(self.checked_ffn_hidden_dim()?)?
            .checked_mul(3)?;
        let per_layer = attn.checked_add(ffn)?.checked_add(d.checked_mul(2)?)?;
        let embed = self.vocab_size.checked_mul(d)?;
        let head = if self.weight_tying { 0 } else { embed };
        embed
            .checked_add(self.n_layers.checked_mul(per_layer)?)?
            .checked_add(d)?
            .checked_add(head)
    }

    /// Checks that the numbers describe a model that can be built, within the bounds of this
    /// module's `MAX_*` constants, so that a hostile or mistaken config is refused before any
    /// tensor is allocated for it. Returns what is wrong, naming the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads()),
            ("head_dim", self.head_dim.unwrap_or(1)),
            ("max_seqlen", self.max_seqlen),
            ("vocab_size", self.vocab_size),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("`{name}` must be positive"));
            }
        }
        let at_most = [
            ("dim", self.dim, MAX_DIM),
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("n_heads", self.n_heads, MAX_HEADS),
            ("n_kv_heads", self.n_kv_heads(), MAX_HEADS),
            ("head_dim", self.head_dim.unwrap_or(0), MAX_DIM),
            ("multiple_of", self.multiple_of, MAX_FFN_HIDDEN_DIM),
            (
                "ffn_hidden_dim",
                self.ffn_hidden_dim.unwrap_or(0),
                MAX_FFN_HIDDEN_DIM,
            ),
            ("vocab_size", self.vocab_size, MAX_VOCAB_SIZE),
            ("max_seqlen", self.max_seqlen, MAX_SEQLEN),
            (
                "sliding_window",
                self.sliding_window.unwrap_or(0),
                MAX_SEQLEN,
            ),
        ];
        for (name, value, max) in at_most {
            if value > max {
                return Err(format!("`{name}` is {value}; at most {max} is accepted"));
            }
        }
        // without an explicit `head_dim`, `dim / n_heads`: exact and so at least 1
        if self.head_dim.is_none() && !self.dim.is_multiple_of(self.n_heads) {
            return Err(format!(
                "`dim` ({}) is not a multiple of `n_heads` ({})",
                self.dim, self.n_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim {} is odd: rotary embeddings need pairs",
                self.head_dim()
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads()) {
            return Err(format!(
                "`n_heads` ({}) is not a multiple of `n_kv_heads` ({})",
                self.n_heads,
                self.n_kv_heads()
            ));
        }
        if self.n_heads * self.head_dim() > MAX_DIM {
            return Err(format!(
                "`n_heads` × `head_dim` is {}; at most {MAX_DIM} is accepted",
                self.n_heads * self.head_dim()
            ));
        }
        if self.sliding_window == Some(0) {
            return Err("`sliding_window` must be positive".into());
        }
        for (name, value) in [("norm_eps", self.norm_eps), ("rope_theta", self.rope_theta)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!(
                    "`{name}` must be a positive finite number, not {value}"
                ));
            }
        }
        if let Some(mult) = self
            .ffn_dim_multiplier
            .filter(|m| !(m.is_finite() && *m > 0.0))
        {
            return Err(format!(
                "`ffn_dim_multiplier` must be a positive finite number, not {mult}"
            ));
        }
        if let Some(t) = self.patching_threshold.filter(|t| !t.is_finite()) {
            return Err(format!("`patching_threshold` must be finite, not {t}"));
        }
        match self.checked_ffn_hidden_dim() {
            Some(h) if (1..=MAX_FFN_HIDDEN_DIM).contains(&h) => {}
            _ => {
                return Err(format!(
                    "the SwiGLU hidden size ({} × `dim` {}, rounded up to `multiple_of` {}) \
                     must be between 1 and {MAX_FFN_HIDDEN_DIM}",
                    self.ffn_dim_multiplier.unwrap_or(1.0),
                    self.dim,
                    self.multiple_of
                ));
            }
        }
        let rope = self.max_seqlen * self.head_dim();
        if rope > MAX_ROPE_TABLE {
            return Err(format!(
                "`max_seqlen` × `head_dim` is {rope}: a rotary table larger than \
                 {MAX_ROPE_TABLE} values"
            ));
        }
        match self.checked_num_params() {
            Some(n) if n <= MAX_PARAMS => {}
            n => {
                return Err(format!(
                    "the config describes {} parameters; at most {MAX_PARAMS} are accepted",
                    n.map_or("more than 2^64".to_string(), |n| n.to_string())
                ));
            }
        }
        if self.weight_tying {
            return Err("`weight_tying` is not supported (the reference crashes on it too)".into());
        }
        Ok(())
    }

    /// Parses a config file in any of the three layouts described in the module docs.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
            &mut text,
        )
        .map_err(io)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(Error::Config {
                path: path.to_path_buf(),
                reason: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: format!("not valid JSON: {e}"),
        })?;
        Self::from_json_value(&value).map_err(|reason| Error::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a config value in any of the three layouts described in the module docs.
    pub fn from_json_value(value: &serde_json::Value) -> std::result::Result<Self, String> {
        let config = if let Some(args) = value.get("args") {
            Self::from_meta_args(args)?
        } else if let Some(entropy) = value.get("entropy_model") {
            Self::from_meta_params(entropy)?
        } else if let Some(patcher) = value.get("patcher_config") {
            Self::from_hf_patcher(patcher)?
        } else if value.get("hidden_size").is_some() {
            Self::from_hf_patcher(value)?
        } else {
            Self::from_meta_args(value)?
        };
        config.validate()?;
        Ok(config)
    }

    fn from_meta_args(value: &serde_json::Value) -> std::result::Result<Self, String> {
        serde_json::from_value(value.clone())
            .map_err(|e| format!("not an LMTransformer config: {e}"))
    }

    /// Meta's `params.json["entropy_model"]`: the loader there hard-codes a 512-token window and
    /// block-causal attention, so those are the defaults here.
    fn from_meta_params(value: &serde_json::Value) -> std::result::Result<Self, String> {
        let mut obj = value
            .as_object()
            .cloned()
            .ok_or("`entropy_model` is not an object")?;
        obj.entry("sliding_window").or_insert(512.into());
        obj.entry("attn_bias_type")
            .or_insert("local_block_causal".into());
        obj.entry("max_seqlen").or_insert(8192.into());
        Self::from_meta_args(&serde_json::Value::Object(obj))
    }

    /// A Hugging Face `BltPatcherConfig` (`patcher_config` of a `BltConfig`).
    fn from_hf_patcher(value: &serde_json::Value) -> std::result::Result<Self, String> {
        let get_usize = |key: &str| {
            value
                .get(key)
                .and_then(|v| v.as_u64())
                .and_then(|v| usize::try_from(v).ok())
        };
        let require = |key: &str| {
            get_usize(key).ok_or(format!(
                "patcher config lacks `{key}` (a non-negative integer)"
            ))
        };
        let rope_theta = value
            .get("rope_theta")
            .and_then(|v| v.as_f64())
            .or_else(|| {
                value
                    .get("rope_parameters")
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|v| v.as_f64())
            })
            .unwrap_or(10000.0);
        let n_heads = require("num_attention_heads")?;
        let dim = require("hidden_size")?;
        Ok(Self {
            dim,
            n_layers: require("num_hidden_layers")?,
            head_dim: get_usize("head_dim").filter(|&h| h != dim / n_heads.max(1)),
            n_heads,
            n_kv_heads: get_usize("num_key_value_heads").filter(|&kv| kv != n_heads),
            ffn_dim_multiplier: None,
            multiple_of: 1,
            norm_eps: value
                .get("rms_norm_eps")
                .and_then(|v| v.as_f64())
                .unwrap_or(1e-5),
            rope_theta,
            max_seqlen: get_usize("max_position_embeddings").unwrap_or(8192),
            eos_id: match value.get("eos_token_id") {
                None | Some(serde_json::Value::Null) => 2,
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(format!("`eos_token_id` {v} is not a token id"))?,
            },
            vocab_size: get_usize("vocab_size").unwrap_or(260),
            weight_tying: false,
            sliding_window: get_usize("sliding_window"),
            attn_bias_type: AttentionBias::LocalBlockCausal,
            ffn_hidden_dim: Some(require("intermediate_size")?),
            patching_threshold: None,
        })
    }

    /// The config as Meta's hub layout (`{"args": {...}}`), for writing next to trained weights.
    pub fn to_meta_json(&self) -> serde_json::Value {
        let mut config = self.clone();
        if config.ffn_hidden_dim.is_some() {
            let explicit = config.ffn_hidden_dim.take();
            if Some(config.ffn_hidden_dim()) != explicit {
                config.ffn_hidden_dim = explicit;
            }
        }
        serde_json::json!({ "args": config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_shape() {
        let c = EntropyModelConfig::blt_entropy();
        assert_eq!(c.ffn_hidden_dim(), 2048);
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.num_params(), 99_512_064);
    }

    #[test]
    fn parses_the_hub_layout_flat_and_nested() {
        let args = serde_json::json!({"dim": 768, "n_layers": 14, "head_dim": null, "n_heads": 12,
            "n_kv_heads": null, "ffn_dim_multiplier": 1.0, "multiple_of": 256, "norm_eps": 1e-05,
            "rope_theta": 10000.0, "rope_use_fp32_in_outer_product": false, "init_base_std": null,
            "init_std_factor": "disabled", "max_seqlen": 8192, "attn_impl": "xformers",
            "attn_bias_type": "local_block_causal", "eos_id": 2, "seed": 42, "vocab_size": 260,
            "weight_tying": false, "sliding_window": 512});
        let nested =
            EntropyModelConfig::from_json_value(&serde_json::json!({ "args": args })).unwrap();
        let flat = EntropyModelConfig::from_json_value(&args).unwrap();
        assert_eq!(nested, EntropyModelConfig::blt_entropy());
        assert_eq!(flat, nested);
    }

    #[test]
    fn meta_params_default_to_the_hard_coded_window() {
        let v = serde_json::json!({"entropy_model": {"dim": 768, "n_layers": 14, "n_heads": 12,
            "max_seqlen": 8192, "ffn_dim_multiplier": 1.0, "vocab_size": 260}});
        let c = EntropyModelConfig::from_json_value(&v).unwrap();
        assert_eq!(c, EntropyModelConfig::blt_entropy());
    }

    #[test]
    fn round_trips_through_meta_json() {
        let c = EntropyModelConfig::tiny();
        let back = EntropyModelConfig::from_json_value(&c.to_meta_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn non_finite_and_non_positive_numbers_are_refused() {
        let base = EntropyModelConfig::tiny();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1e-5] {
            for (field, config) in [
                (
                    "norm_eps",
                    EntropyModelConfig {
                        norm_eps: bad,
                        ..base.clone()
                    },
                ),
                (
                    "rope_theta",
                    EntropyModelConfig {
                        rope_theta: bad,
                        ..base.clone()
                    },
                ),
                (
                    "ffn_dim_multiplier",
                    EntropyModelConfig {
                        ffn_dim_multiplier: Some(bad),
                        ..base.clone()
                    },
                ),
            ] {
                let err = config.validate().unwrap_err();
                assert!(err.contains(field), "{field} = {bad}: {err}");
            }
        }
        for bad in [f32::NAN, f32::INFINITY] {
            let config = EntropyModelConfig {
                patching_threshold: Some(bad),
                ..base.clone()
            };
            assert!(config
                .validate()
                .unwrap_err()
                .contains("patching_threshold"));
        }
        assert_eq!(base.validate(), Ok(()));
        assert_eq!(EntropyModelConfig::blt_entropy().validate(), Ok(()));
    }

    #[test]
    fn derived_sizes_never_overflow() {
        let absurd = EntropyModelConfig {
            dim: usize::MAX,
            n_layers: usize::MAX,
            n_heads: 1,
            head_dim: Some(usize::MAX),
            vocab_size: usize::MAX,
            multiple_of: usize::MAX,
            ffn_dim_multiplier: Some(f64::MAX),
            ..EntropyModelConfig::tiny()
        };
        assert_eq!(absurd.ffn_hidden_dim(), usize::MAX);
        assert_eq!(absurd.num_params(), usize::MAX);
        assert!(absurd.validate().is_err());
        let zero_heads = EntropyModelConfig {
            n_heads: 0,
            ..EntropyModelConfig::tiny()
        };
        assert!(zero_heads.validate().unwrap_err().contains("n_heads"));
        // the largest accepted sizes still compute
        let big = EntropyModelConfig {
            dim: MAX_DIM,
            n_heads: 1024,
            n_layers: 1,
            ..EntropyModelConfig::tiny()
        };
        assert_eq!(big.head_dim(), 64);
        assert!(big.num_params() < MAX_PARAMS);
        assert_eq!(big.validate(), Ok(()));
    }

    #[test]
    fn rejects_nonsense() {
        let v = serde_json::json!({"dim": 10, "n_layers": 1, "n_heads": 3});
        assert!(EntropyModelConfig::from_json_value(&v).is_err());
        let v = serde_json::json!({"n_layers": 1, "n_heads": 3});
        assert!(EntropyModelConfig::from_json_value(&v).is_err());
    }
}
