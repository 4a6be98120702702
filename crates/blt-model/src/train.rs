//! Training entropy models: next-byte cross-entropy on `BOS + bytes + EOS` sequences with AdamW,
//! linear warm-up then cosine decay, gradient clipping, held-out evaluation and checkpoints written
//! in the reference layout (`config.json` + `model.safetensors` with Meta's tensor names), so that
//! a trained model loads exactly like Meta's.
//!
//! Documents are concatenated as `BOS d₀ EOS BOS d₁ EOS …`; training windows of `seq_len + 1`
//! tokens are drawn at seeded-random offsets. Attention is cut after every EOS, as at inference, so
//! a window spanning two documents trains on each separately.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{activation, Int, Tensor, TensorData};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::config::EntropyModelConfig;
use crate::mask::{AttentionPlan, AttentionRule};
use crate::model::{EntropyModel, SplitMix};
use crate::rope::RotaryEmbedding;
use crate::{Error, Result};
use blt_tokenizer::BltTokenizer;

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// AdamW β₁.
    pub beta1: f32,
    /// AdamW β₂.
    pub beta2: f32,
    /// Clip each parameter's gradient to this L2 norm (Burn's per-tensor norm clipping).
    pub grad_clip: Option<f32>,
    /// Seed of the weight initialisation and of the data order.
    pub seed: u64,
    /// Evaluate on held-out data every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Held-out windows evaluated each time.
    pub eval_windows: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 16,
            seq_len: 512,
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: Some(1.0),
            seed: 42,
            eval_every: 200,
            eval_windows: 64,
            checkpoint_every: 0,
        }
    }
}

impl TrainingConfig {
    /// Learning rate at `step` (0-based): linear warm-up, then cosine decay to
    /// `lr · min_lr_ratio` at the last step.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }
}

/// Documents as one token stream `BOS d₀ EOS BOS d₁ EOS …`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStream {
    tokens: Vec<u32>,
    bytes: u64,
}

impl TokenStream {
    /// Encodes documents with BOS and EOS.
    pub fn from_documents<D: AsRef<[u8]>>(documents: &[D]) -> Self {
        let tok = BltTokenizer::new();
        let mut tokens = Vec::new();
        let mut bytes = 0;
        for d in documents {
            tok.encode_into(d.as_ref(), &mut tokens);
            bytes += d.as_ref().len() as u64;
        }
        Self { tokens, bytes }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of document bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
}

/// What the trainer reports after each step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepReport {
    /// Steps done (1-based).
    pub step: usize,
    /// Training loss of this step (nats per token).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Held-out loss (nats per token), when evaluated at this step.
    pub eval_loss: Option<f64>,
}

impl StepReport {
    /// Bits per token of the training loss.
    pub fn bits(&self) -> f64 {
        self.loss / std::f64::consts::LN_2
    }
}

/// Receives progress from [`train`].
pub trait TrainingObserver {
    /// After every step.
    fn step(&mut self, _report: &StepReport) {}
    /// After a checkpoint was written.
    fn checkpoint(&mut self, _dir: &Path, _step: usize) {}
}

impl TrainingObserver for () {}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingOutcome {
    /// Every step's report.
    pub history: Vec<StepReport>,
    /// Final held-out loss (nats per token), if there is held-out data.
    pub final_eval_loss: Option<f64>,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
}

/// Inputs `[batch, seq]`, targets `[batch, seq]` and the input rows on the host.
type Batch<B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Vec<Vec<u32>>);

fn batch_tensors<B: Backend>(
    stream: &[u32],
    starts: &[usize],
    seq_len: usize,
    device: &B::Device,
) -> Batch<B> {
    let rows: Vec<Vec<u32>> = starts
        .iter()
        .map(|&s| stream[s..s + seq_len + 1].to_vec())
        .collect();
    let input: Vec<i64> = rows
        .iter()
        .flat_map(|r| r[..seq_len].iter().map(|&t| t as i64))
        .collect();
    let target: Vec<i64> = rows
        .iter()
        .flat_map(|r| r[1..].iter().map(|&t| t as i64))
        .collect();
    let b = starts.len();
    let inputs = rows.iter().map(|r| r[..seq_len].to_vec()).collect();
    (
        Tensor::from_data(TensorData::new(input, [b, seq_len]), device),
        Tensor::from_data(TensorData::new(target, [b, seq_len]), device),
        inputs,
    )
}

/// Mean next-token cross-entropy (nats) of `model` on the windows starting at `starts`.
fn loss<B: Backend>(
    model: &EntropyModel<B>,
    config: &EntropyModelConfig,
    stream: &[u32],
    starts: &[usize],
    seq_len: usize,
    device: &B::Device,
) -> Tensor<B, 1> {
    let (input, target, rows) = batch_tensors::<B>(stream, starts, seq_len, device);
    let rule = AttentionRule {
        window: config.sliding_window,
        eos_cut: config.attn_bias_type.cuts_at_eos().then_some(config.eos_id),
    };
    let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let plan = AttentionPlan::new(&rule, &refs, seq_len, device);
    let rope = RotaryEmbedding::new(seq_len, config.head_dim(), config.rope_theta, device);
    let out = model.forward_with_plan(input, &rope, &plan);
    let logp = activation::log_softmax(out.logits.cast(burn::tensor::DType::F32), 2);
    let picked = logp.gather(2, target.unsqueeze_dim::<3>(2));
    picked.mean().neg()
}

/// Evenly spaced, fixed held-out windows.
fn eval_starts(len: usize, seq_len: usize, count: usize) -> Vec<usize> {
    if len <= seq_len {
        return Vec::new();
    }
    let last = len - seq_len - 1;
    let count = count.clamp(1, last + 1);
    if count == 1 {
        return vec![0];
    }
    (0..count).map(|i| i * last / (count - 1)).collect()
}

/// Mean held-out loss (nats per token) of a model.
pub fn held_out_loss<B: Backend>(
    model: &EntropyModel<B>,
    config: &EntropyModelConfig,
    stream: &TokenStream,
    seq_len: usize,
    windows: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<Option<f64>> {
    let starts = eval_starts(stream.len(), seq_len, windows);
    if starts.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0;
    for chunk in starts.chunks(batch_size.max(1)) {
        let l = loss(model, config, stream.tokens(), chunk, seq_len, device);
        let v = l
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::Readback(format!("{e:?}")))?;
        total += v.first().copied().unwrap_or(f32::NAN) as f64 * chunk.len() as f64;
    }
    Ok(Some(total / starts.len() as f64))
}

/// Writes `model` with `config` as a checkpoint directory in the reference layout
/// (`config.json` in Meta's `{"args": …}` form + `model.safetensors` with Meta's names, in
/// `dtype`), atomically: files are written under temporary names and renamed.
pub fn save_checkpoint<B: Backend>(
    model: &EntropyModel<B>,
    config: &EntropyModelConfig,
    dir: &Path,
    dtype: burn::tensor::DType,
) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let weights = dir.join("model.safetensors");
    let tmp_weights = dir.join(format!(".model.safetensors.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_weights);
    let mut store = SafetensorsStore::from_file(&tmp_weights)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("format", "pt");
    model
        .clone()
        .into_dtype(dtype)
        .save_into(&mut store)
        .map_err(|e| Error::Load {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
    let config_path = dir.join("config.json");
    let tmp_config = dir.join(format!(".config.json.tmp-{}", std::process::id()));
    let text = serde_json::to_string_pretty(&config.to_meta_json()).map_err(|e| Error::Config {
        path: config_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp_config, text).map_err(io(&tmp_config))?;
    std::fs::rename(&tmp_weights, &weights).map_err(io(&weights))?;
    std::fs::rename(&tmp_config, &config_path).map_err(io(&config_path))?;
    Ok(())
}

/// Trains `model` (fresh or loaded) on `train_data`, evaluating on `eval_data`, writing
/// checkpoints into `output` (`step-N/` every `checkpoint_every` steps, and `output` itself at the
/// end).
///
/// `start_step > 0` resumes a run: the learning-rate schedule and the data order continue where
/// they were; AdamW's moment estimates start afresh.
#[allow(clippy::too_many_arguments)]
pub fn train<B: AutodiffBackend>(
    mut model: EntropyModel<B>,
    start_step: usize,
    model_config: &EntropyModelConfig,
    train_data: &TokenStream,
    eval_data: &TokenStream,
    config: &TrainingConfig,
    output: &Path,
    device: &B::Device,
    observer: &mut dyn TrainingObserver,
) -> Result<TrainingOutcome> {
    let seq_len = config.seq_len;
    if train_data.len() <= seq_len + 1 {
        return Err(Error::Input(format!(
            "the training corpus has {} tokens, fewer than one window of {} + 1",
            train_data.len(),
            seq_len
        )));
    }
    if seq_len > model_config.max_seqlen {
        return Err(Error::Input(format!(
            "seq_len {seq_len} exceeds the model's max_seqlen {}",
            model_config.max_seqlen
        )));
    }
    let mut optim_config = AdamWConfig::new()
        .with_beta_1(config.beta1)
        .with_beta_2(config.beta2)
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay);
    if let Some(clip) = config.grad_clip {
        optim_config = optim_config.with_grad_clipping(Some(
            burn::grad_clipping::GradientClippingConfig::Norm(clip),
        ));
    }
    let mut optim = optim_config.init::<B, EntropyModel<B>>();
    let mut rng = SplitMix(config.seed ^ 0xB17_DA7A);
    let max_start = train_data.len() - seq_len - 1;
    let mut history = Vec::with_capacity(config.steps);
    // Resuming: replay the data order of the steps already done.
    for _ in 0..start_step * config.batch_size {
        rng.below(max_start + 1);
    }

    for step in start_step..config.steps {
        let starts: Vec<usize> = (0..config.batch_size)
            .map(|_| rng.below(max_start + 1))
            .collect();
        let l = loss(
            &model,
            model_config,
            train_data.tokens(),
            &starts,
            seq_len,
            device,
        );
        let value = l
            .clone()
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::Readback(format!("{e:?}")))?
            .first()
            .copied()
            .unwrap_or(f32::NAN) as f64;
        if !value.is_finite() {
            return Err(Error::Input(format!(
                "the training loss became {value} at step {}; lower --lr",
                step + 1
            )));
        }
        let grads = GradientsParams::from_grads(l.backward(), &model);
        let lr = config.lr_at(step);
        model = optim.step(lr, model, grads);

        let done = step + 1;
        let evaluate =
            (config.eval_every > 0 && done % config.eval_every == 0) || done == config.steps;
        let eval_loss = if evaluate {
            held_out_loss(
                &model.valid(),
                model_config,
                eval_data,
                seq_len,
                config.eval_windows,
                config.batch_size,
                device,
            )?
        } else {
            None
        };
        let report = StepReport {
            step: done,
            loss: value,
            lr,
            eval_loss,
        };
        observer.step(&report);
        history.push(report);
        if config.checkpoint_every > 0 && done % config.checkpoint_every == 0 && done < config.steps
        {
            let dir = output.join(format!("step-{done}"));
            save_checkpoint(&model.valid(), model_config, &dir, burn::tensor::DType::F32)?;
            observer.checkpoint(&dir, done);
        }
    }
    save_checkpoint(
        &model.valid(),
        model_config,
        output,
        burn::tensor::DType::F32,
    )?;
    observer.checkpoint(output, config.steps);
    let final_eval_loss = history.last().and_then(|r| r.eval_loss);
    Ok(TrainingOutcome {
        history,
        final_eval_loss,
        checkpoint: output.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let c = TrainingConfig {
            steps: 100,
            warmup_steps: 10,
            lr: 1.0,
            min_lr_ratio: 0.1,
            ..TrainingConfig::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(10) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(99) - 0.1).abs() < 0.01);
        assert!(c.lr_at(50) < c.lr_at(20));
    }

    #[test]
    fn eval_windows_are_fixed_and_in_range() {
        let s = eval_starts(1000, 100, 5);
        assert_eq!(s.len(), 5);
        assert!(s.iter().all(|&x| x + 101 <= 1000));
        assert_eq!(s, eval_starts(1000, 100, 5));
        assert!(eval_starts(50, 100, 5).is_empty());
    }
}
