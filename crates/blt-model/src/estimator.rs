//! Per-position entropies, prominence and hidden states for whole documents of any length.
//!
//! Each document is cut into independent windows of the model's `max_seqlen` (the reference's
//! long-input rule, [`crate::windows`]); windows of many documents are grouped by padded length
//! ([`padded_length`]) and run together in batches bounded by a token budget. Padding sits on the
//! right and never changes a real position (attention is causal), and a window's padded length
//! depends only on its own length, so a document's results do not depend on what it was batched
//! with — bit for bit: the reference's one-document-at-a-time semantics, and reruns that are
//! byte-identical.

use burn::tensor::backend::Backend;
use burn::tensor::DType;

use crate::config::EntropyModelConfig;
use crate::mask::{AttentionPlan, AttentionRule};
use crate::model::{token_tensor, EntropyModel, ForwardOutput};
use crate::rope::RotaryEmbedding;
use crate::windows::windows;
use crate::{Error, Result};

/// What to compute besides entropies and prominence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateOptions {
    /// Keep the pre-norm hidden states (`[seq, dim]` f32 per document).
    pub hidden: bool,
    /// Keep the logits (`[seq, vocab]` f32 per document).
    pub logits: bool,
    /// Most tokens (batch × padded length) run in one forward pass.
    pub max_batch_tokens: usize,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        Self {
            hidden: false,
            logits: false,
            max_batch_tokens: 16 * 1024,
        }
    }
}

/// The model's outputs for one document, one value (or row) per token position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceEstimate {
    /// Entropy (nats) of the prediction made at each position, i.e. about the next token.
    pub entropies: Vec<f32>,
    /// L2 norm of the pre-norm hidden state at each position.
    pub prominence: Vec<f32>,
    /// Pre-norm hidden states, row-major `[seq, dim]`, if asked for.
    pub hidden: Option<Vec<f32>>,
    /// Logits, row-major `[seq, vocab]`, if asked for.
    pub logits: Option<Vec<f32>>,
}

/// An entropy model with its config, ready to estimate documents.
#[derive(Debug)]
pub struct EntropyEstimator<B: Backend> {
    model: EntropyModel<B>,
    config: EntropyModelConfig,
    device: B::Device,
    /// Rotary tables for `max_seqlen` positions, made on first use; each batch takes a prefix
    /// (computing 8192 × 32 sines and cosines on the host cost milliseconds per batch).
    rope: std::sync::OnceLock<RotaryEmbedding<B>>,
}

impl<B: Backend> EntropyEstimator<B> {
    /// Wraps a loaded model.
    pub fn new(model: EntropyModel<B>, config: EntropyModelConfig, device: B::Device) -> Self {
        Self {
            model,
            config,
            device,
            rope: std::sync::OnceLock::new(),
        }
    }

    /// The model's config.
    pub fn config(&self) -> &EntropyModelConfig {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &EntropyModel<B> {
        &self.model
    }

    /// The device it runs on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The model's float dtype.
    pub fn dtype(&self) -> DType {
        self.model.dtype()
    }

    fn rule(&self) -> AttentionRule {
        AttentionRule {
            window: self.config.sliding_window,
            eos_cut: self
                .config
                .attn_bias_type
                .cuts_at_eos()
                .then_some(self.config.eos_id),
        }
    }

    /// Estimates one document.
    pub fn estimate(&self, tokens: &[u32], options: EstimateOptions) -> Result<SequenceEstimate> {
        let mut out = self.estimate_many(&[tokens], options)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Estimates many documents, batching their windows together.
    pub fn estimate_many(
        &self,
        documents: &[&[u32]],
        options: EstimateOptions,
    ) -> Result<Vec<SequenceEstimate>> {
        for (d, doc) in documents.iter().enumerate() {
            if let Some((pos, id)) = doc
                .iter()
                .enumerate()
                .find(|(_, &id)| id as usize >= self.config.vocab_size)
            {
                return Err(Error::Input(format!(
                    "document {d}: token id {id} at position {pos} is outside the vocabulary of {}",
                    self.config.vocab_size
                )));
            }
        }
        let (dim, vocab) = (self.config.dim, self.config.vocab_size);
        let mut results: Vec<SequenceEstimate> = documents
            .iter()
            .map(|doc| SequenceEstimate {
                entropies: vec![0.0; doc.len()],
                prominence: vec![0.0; doc.len()],
                hidden: options.hidden.then(|| vec![0.0; doc.len() * dim]),
                logits: options.logits.then(|| vec![0.0; doc.len() * vocab]),
            })
            .collect();

        // (document, window) pairs, grouped by padded length (longest first). A window's padded
        // length depends only on its own length, never on its batch mates, so its results do
        // not depend on what else is in the batch: reruns and resumed runs are bit-identical.
        let mut jobs: Vec<(usize, std::ops::Range<usize>)> = documents
            .iter()
            .enumerate()
            .flat_map(|(d, doc)| windows(doc.len(), self.config.max_seqlen).map(move |w| (d, w)))
            .collect();
        let padded = |len: usize| padded_length(len, self.config.max_seqlen);
        jobs.sort_by_key(|(d, w)| (std::cmp::Reverse(padded(w.len())), *d, w.start));

        // One batch in flight: batch n+1 is launched before batch n's results are collected, so
        // the device works on n+1 while the host waits for n's copy and files its rows (the
        // copies are enqueued right behind the work that produces them).
        let budget = options.max_batch_tokens.max(1);
        let total: usize = jobs.iter().map(|(_, w)| w.len()).sum();
        let mut filed = 0;
        let mut in_flight: Option<InFlight<'_>> = None;
        let mut start = 0;
        while start < jobs.len() {
            let seq = padded(jobs[start].1.len());
            // (counting only as far as one batch reaches: a 1 GB document has 131 072 windows
            // of one length, and counting all that remain for every batch was quadratic)
            let rows = jobs[start..]
                .iter()
                .take((budget / seq).max(1))
                .take_while(|(_, w)| padded(w.len()) == seq)
                .count();
            // host time to enqueue this batch, and to wait for and file the previous one: where
            // launching dominates the host is the limit, where waiting does the device is
            let t = std::time::Instant::now();
            let launched = self.launch_batch(documents, &jobs[start..start + rows], seq, options);
            let launch_us = t.elapsed().as_micros() as u64;
            if let Some(previous) = in_flight.replace(launched) {
                let t = std::time::Instant::now();
                filed += self.collect_batch(previous, &mut results)?;
                let collect_us = t.elapsed().as_micros() as u64;
                tracing::debug!(
                    filed,
                    total,
                    rows,
                    seq,
                    launch_us,
                    collect_us,
                    "estimate: positions filed"
                );
            }
            start += rows;
        }
        if let Some(last) = in_flight {
            filed += self.collect_batch(last, &mut results)?;
            tracing::debug!(filed, total, "estimate: positions filed");
        }
        Ok(results)
    }

    /// Runs the model on rows of equal length (each one independent sequence from position 0,
    /// at most `max_seqlen` tokens, ids inside the vocabulary) and returns the outputs on the
    /// device, unread: one batch of [`Self::estimate_many`], for benchmarks and callers that
    /// keep working on the device.
    ///
    /// # Panics
    /// If the rows differ in length (a programming error, not an input error).
    pub fn forward_rows(&self, rows: &[&[u32]]) -> ForwardOutput<B> {
        let seq = rows.first().map_or(0, |r| r.len());
        assert!(rows.iter().all(|r| r.len() == seq), "rows of equal length");
        let ids: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.iter())
            .map(|&t| t as i64)
            .collect();
        let tokens = token_tensor::<B>(ids, rows.len(), seq, &self.device);
        let rotary = |len| {
            RotaryEmbedding::new(
                len,
                self.config.head_dim(),
                self.config.rope_theta,
                &self.device,
            )
        };
        let cached = self.rope.get_or_init(|| rotary(self.config.max_seqlen));
        let rope = if seq <= cached.len() {
            cached.prefix(seq)
        } else {
            rotary(seq)
        };
        let plan = AttentionPlan::new(&self.rule(), rows, seq, &self.device);
        self.model.forward_with_plan(tokens, &rope, &plan)
    }

    /// Uploads one batch, enqueues its forward pass and the copies of its results, and returns
    /// without waiting for the device.
    fn launch_batch<'j>(
        &self,
        documents: &[&[u32]],
        batch: &'j [(usize, std::ops::Range<usize>)],
        seq: usize,
        options: EstimateOptions,
    ) -> InFlight<'j> {
        let _span = tracing::debug_span!("forward", rows = batch.len(), seq).entered();
        let rows: Vec<Vec<u32>> = batch
            .iter()
            .map(|(d, w)| {
                let mut row = documents[*d][w.clone()].to_vec();
                row.resize(seq, blt_tokenizer::BOE_ID);
                row
            })
            .collect();
        let row_refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let out = self.forward_rows(&row_refs);

        let entropies = out.entropies();
        let (prominence, _coherence) = out.prominence_coherence(entropies.clone());
        InFlight {
            batch,
            seq,
            entropies: blt_kernels::read_f32_async(entropies),
            prominence: blt_kernels::read_f32_async(prominence),
            // in the model's dtype: half the bytes over the bus in bf16, widened while filed
            hidden: options
                .hidden
                .then(|| blt_kernels::read_async(out.hidden.clone())),
            logits: options
                .logits
                .then(|| blt_kernels::read_async(out.logits.clone())),
        }
    }

    /// Waits for a launched batch's copies and files its rows into `results`, straight from the
    /// buffers the device copied into (one pass per value, widened to f32 on the way).
    /// Returns the number of real positions filed.
    fn collect_batch(
        &self,
        batch: InFlight<'_>,
        results: &mut [SequenceEstimate],
    ) -> Result<usize> {
        let read = |r: blt_kernels::PendingRead| r.wait_data().map_err(Error::Readback);
        let seq = batch.seq;
        let entropies = read(batch.entropies)?;
        let prominence = read(batch.prominence)?;
        let hidden = batch.hidden.map(read).transpose()?;
        let logits = batch.logits.map(read).transpose()?;

        let (dim, vocab) = (self.config.dim, self.config.vocab_size);
        let entropies = Rows::of(&entropies, 1)?;
        let prominence = Rows::of(&prominence, 1)?;
        let hidden = hidden.as_ref().map(|h| Rows::of(h, dim)).transpose()?;
        let logits = logits.as_ref().map(|l| Rows::of(l, vocab)).transpose()?;
        for (r, (d, w)) in batch.batch.iter().enumerate() {
            // row r of the batch, its first w.len() positions
            let at = r * seq..r * seq + w.len();
            let res = &mut results[*d];
            entropies.copy(at.clone(), &mut res.entropies[w.clone()]);
            prominence.copy(at.clone(), &mut res.prominence[w.clone()]);
            if let (Some(dst), Some(src)) = (res.hidden.as_mut(), hidden.as_ref()) {
                src.copy(at.clone(), &mut dst[w.start * dim..w.end * dim]);
            }
            if let (Some(dst), Some(src)) = (res.logits.as_mut(), logits.as_ref()) {
                src.copy(at, &mut dst[w.start * vocab..w.end * vocab]);
            }
        }
        Ok(batch.batch.iter().map(|(_, w)| w.len()).sum())
    }
}

/// A read-back `[positions, width]` buffer viewed in place, in its dtype.
enum Rows<'a> {
    F32(&'a [f32], usize),
    Bf16(&'a [burn::tensor::bf16], usize),
    F16(&'a [burn::tensor::f16], usize),
}

impl<'a> Rows<'a> {
    fn of(data: &'a burn::tensor::TensorData, width: usize) -> Result<Self> {
        let bad = |e| Error::Readback(format!("{e:?}"));
        Ok(match data.dtype {
            DType::F32 => Self::F32(data.as_slice().map_err(bad)?, width),
            DType::BF16 => Self::Bf16(data.as_slice().map_err(bad)?, width),
            DType::F16 => Self::F16(data.as_slice().map_err(bad)?, width),
            other => return Err(Error::Readback(format!("unexpected dtype {other:?}"))),
        })
    }

    /// Copies positions `at` (each `width` values) into `dst`, as f32.
    fn copy(&self, at: std::ops::Range<usize>, dst: &mut [f32]) {
        match self {
            Self::F32(v, w) => dst.copy_from_slice(&v[at.start * w..at.end * w]),
            Self::Bf16(v, w) => widen(&v[at.start * w..at.end * w], dst, |x| x.to_f32()),
            Self::F16(v, w) => widen(&v[at.start * w..at.end * w], dst, |x| x.to_f32()),
        }
    }
}

/// `dst[i] = f(src[i])`.
fn widen<T: Copy>(src: &[T], dst: &mut [f32], f: impl Fn(T) -> f32) {
    for (o, &x) in dst.iter_mut().zip(src) {
        *o = f(x);
    }
}

/// A batch whose forward pass and result copies are enqueued on the device.
struct InFlight<'j> {
    /// Its (document, window) rows.
    batch: &'j [(usize, std::ops::Range<usize>)],
    /// Padded row length.
    seq: usize,
    entropies: blt_kernels::PendingRead,
    prominence: blt_kernels::PendingRead,
    hidden: Option<blt_kernels::PendingRead>,
    logits: Option<blt_kernels::PendingRead>,
}

/// The finest padding step, for windows of up to 512 tokens.
pub const PAD_MIN_STEP: usize = 64;
/// The coarsest padding step, for windows of more than 2048 tokens.
pub const PAD_MAX_STEP: usize = 512;

/// The length a window of `len` tokens is padded to: the next multiple of a step that grows
/// with the length (an eighth of the next power of two, from [`PAD_MIN_STEP`] to
/// [`PAD_MAX_STEP`]: less than a quarter of the length added, ~6% on average), capped at
/// `max_seqlen`. Documents of a few KB thus fall into a dozen lengths rather than a hundred;
/// each distinct length is its own, often part-filled, forward pass, and on a GPU every pass
/// costs the same host time however few rows it holds. Right padding never changes a real
/// position (attention is causal), and the padded length depends on `len` alone.
pub fn padded_length(len: usize, max_seqlen: usize) -> usize {
    let step = (len.next_power_of_two() / 8).clamp(PAD_MIN_STEP, PAD_MAX_STEP);
    len.div_ceil(step)
        .max(1)
        .saturating_mul(step)
        .min(max_seqlen.max(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_depends_only_on_the_length() {
        assert_eq!(padded_length(1, 8192), 64);
        assert_eq!(padded_length(64, 8192), 64);
        assert_eq!(padded_length(65, 8192), 128);
        assert_eq!(padded_length(8192, 8192), 8192);
        assert_eq!(padded_length(100, 100), 100);
        assert_eq!(padded_length(130, 256), 192);
        assert_eq!(padded_length(512, 8192), 512);
        assert_eq!(padded_length(513, 8192), 640);
        assert_eq!(padded_length(1025, 8192), 1280);
        assert_eq!(padded_length(2048, 8192), 2048);
        assert_eq!(padded_length(2049, 8192), 2560);
        assert_eq!(padded_length(8000, 8192), 8192);
        assert_eq!(padded_length(8000, 8100), 8100);
    }

    #[test]
    fn padding_is_monotone_and_bounded() {
        let mut last = 0;
        for len in 1..=9000 {
            let p = padded_length(len, 8192);
            assert!(p >= len && p >= last, "{len} -> {p}");
            // less than one step is added: 64 up to 512, under a quarter of the length beyond
            assert!(p - len < 64.max(len / 4), "{len} -> {p}");
            last = p;
        }
    }
}
