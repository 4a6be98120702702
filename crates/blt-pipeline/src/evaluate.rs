//! Measuring an entropy model on a corpus, and calibrating its patching threshold: documents in →
//! bits per byte, entropy and patch statistics out ([`evaluate`]), or the global entropy threshold
//! that gives a target mean patch length ([`calibrate_threshold`]), written into the checkpoint's
//! config ([`write_threshold`]).
//!
//! # Definitions
//!
//! - **Targets.** A document is encoded by the tokenizer given (BOS + bytes + EOS for the default
//!   [`BltTokenizer`]). The model's logits at position `p` predict token `p + 1`, for every
//!   `p < S − 1`; nothing predicts position 0 (BOS), and the prediction made at the last position
//!   (after EOS) has no target. A target is **scored** when it is a byte or EOS: with BOS and EOS
//!   that is every target, the `n` bytes and the EOS, `n + 1` per document — the reference's
//!   training loss, which is over all targets. (Without BOS the first byte is not predicted and
//!   so not scored; other special ids are never scored.)
//! - **Long documents** follow the model's rule ([`blt_model::windows`]): independent windows of
//!   `max_seqlen` tokens. The first token of a later window is still a target: it is predicted by
//!   the last position of the window before, from that window's context only.
//! - **Bits per byte** = (sum over scored targets of `−ln p(target)`) / ln 2 / (number of input
//!   bytes). EOS's loss is counted in the numerator but EOS is not a byte: it adds to the cost of
//!   the document, not to its length (the usual convention). The log-softmax is computed on the
//!   host in f64 from the model's f32 logits, with the maximum subtracted first.
//! - **Nats per token** = the same sum / number of scored targets.
//! - **Mean entropy** = mean of the entropies (nats) of the predictions whose targets are scored,
//!   the same positions as the loss, so that a well-calibrated model has mean entropy ≈ nats per
//!   token.
//! - **Mean patch length** = (sum of the patcher's patch lengths) / (number of patches), over the
//!   whole corpus (a ratio of sums, not a mean of per-document means). Patch lengths count token
//!   positions as the patcher does, BOS and EOS included (BOS is always a patch of its own), so
//!   the lengths of a document sum to its token count (`S + 1` with `include_next_token`). The
//!   same definition is what `blt patch` prints and what [`calibrate_threshold`] matches.
//! - **Bytes per patch** = input bytes / patches; **patches per kB** = patches per 1,000 input
//!   bytes.

use std::path::Path;

use blt_model::backend::Backend;
use blt_model::{
    Checkpoint, CheckpointFormat, EntropyEstimator, EntropyModelConfig, EstimateOptions,
};
use blt_patcher::{Patcher, PatcherConfig, PatchingMode};
use blt_tokenizer::{BltTokenizer, EOS_ID};
use serde::Serialize;

use crate::{Error, Result};

/// Most tokens whose logits are held on the host at once (× vocabulary × 4 bytes: 17 MB for the
/// 260-id vocabulary). Documents longer than this are cut at window boundaries, which changes no
/// result (windows are independent).
const LOGIT_BUDGET_TOKENS: usize = 16 * 1024;

/// A model measured on a corpus (see the [module docs](self) for every definition).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Documents evaluated.
    pub documents: usize,
    /// Input bytes, over all documents.
    pub bytes: usize,
    /// Token ids, over all documents (BOS and EOS included when the tokenizer adds them).
    pub tokens: usize,
    /// Targets scored: bytes and EOS predicted by the model.
    pub tokens_scored: usize,
    /// Sum of `−ln p(target)` over the scored targets (nats).
    pub total_nats: f64,
    /// `total_nats / ln 2 / bytes`.
    pub bits_per_byte: f64,
    /// `total_nats / tokens_scored`.
    pub nats_per_token: f64,
    /// Mean entropy (nats) of the predictions whose targets are scored.
    pub mean_entropy: f64,
    /// The patching mode.
    pub mode: String,
    /// The patcher's threshold (nats), `None` for top-k.
    pub threshold: Option<f32>,
    /// Patches, over all documents.
    pub patches: usize,
    /// Sum of the patch lengths / number of patches (token positions, BOS and EOS included).
    pub mean_patch_length: f64,
    /// Median of all patch lengths of all documents (mean of the two middle ones when even).
    pub median_patch_length: f64,
    /// Input bytes / patches.
    pub bytes_per_patch: f64,
    /// Patches per 1,000 input bytes.
    pub patches_per_kb: f64,
}

/// The threshold [`calibrate_threshold`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The threshold (nats) for the base config's rule.
    pub threshold: f32,
    /// The mean patch length it gives on the corpus (sum of lengths / number of patches).
    pub mean_patch_length: f64,
    /// The mean patch length asked for.
    pub target_mean_patch: f64,
    /// Patches it gives on the corpus.
    pub patches: usize,
    /// Times the patcher was run over the whole corpus (the search's iterations).
    pub iterations: usize,
    /// Smallest mean patch length any threshold gives on this corpus (every candidate a start).
    pub min_mean_patch_length: f64,
    /// Largest mean patch length any threshold gives on this corpus (only forced starts).
    pub max_mean_patch_length: f64,
}

/// Next-byte cross-entropy, entropy and patch statistics of `estimator` on `documents`.
///
/// Each document is encoded by `tokenizer` (BOS + bytes + EOS for the default), run through the
/// model once with logits kept, scored, and patched by `patcher` on its entropies. Definitions
/// (which targets are scored, bits per byte, mean patch length) are in the [module docs](self):
/// in short, every byte target and the EOS target are scored, and bits per byte is the sum of
/// their losses in bits divided by the number of input bytes.
///
/// # Errors
/// [`Error::EmptyCorpus`] when there are no documents or no bytes; model and patcher errors.
pub fn evaluate<B: Backend>(
    estimator: &EntropyEstimator<B>,
    documents: &[Vec<u8>],
    tokenizer: BltTokenizer,
    patcher: &Patcher,
) -> Result<EvalReport> {
    let bytes: usize = documents.iter().map(Vec::len).sum();
    if documents.is_empty() || bytes == 0 {
        return Err(Error::EmptyCorpus);
    }
    let ids: Vec<Vec<u32>> = documents.iter().map(|d| tokenizer.encode(d)).collect();
    let vocab = estimator.config().vocab_size;
    let max_seqlen = estimator.config().max_seqlen.max(1);
    let mut entropies: Vec<Vec<f32>> = ids.iter().map(|d| vec![0.0; d.len()]).collect();
    let (mut total_nats, mut entropy_sum, mut scored) = (0.0f64, 0.0f64, 0usize);

    let options = EstimateOptions {
        logits: true,
        max_batch_tokens: LOGIT_BUDGET_TOKENS,
        ..EstimateOptions::default()
    };
    for group in piece_groups(&ids, max_seqlen, LOGIT_BUDGET_TOKENS) {
        let _span = tracing::debug_span!("evaluate", pieces = group.len()).entered();
        let inputs: Vec<&[u32]> = group
            .iter()
            .map(|(d, range)| &ids[*d][range.clone()])
            .collect();
        let estimates = estimator.estimate_many(&inputs, options)?;
        for ((d, range), estimate) in group.iter().zip(estimates) {
            let logits = estimate
                .logits
                .ok_or_else(|| Error::Stage("the estimator returned no logits".into()))?;
            entropies[*d][range.clone()].copy_from_slice(&estimate.entropies);
            for (i, p) in range.clone().enumerate() {
                let Some(&target) = ids[*d].get(p + 1) else {
                    continue;
                };
                if !is_scored(target) {
                    continue;
                }
                let row = logits
                    .get(i * vocab..(i + 1) * vocab)
                    .ok_or_else(|| Error::Stage(format!("logits of position {p} are missing")))?;
                total_nats += negative_log_prob(row, target as usize);
                entropy_sum += f64::from(estimate.entropies[i]);
                scored += 1;
            }
        }
    }

    let mut lengths = Vec::new();
    let (mut covered, mut patches) = (0usize, 0usize);
    for (doc_ids, doc_entropies) in ids.iter().zip(&entropies) {
        let boundaries = patcher.patch(doc_ids, Some(doc_entropies))?;
        covered += boundaries.covered_len();
        patches += boundaries.len();
        lengths.extend_from_slice(boundaries.lengths());
    }
    let config = patcher.config();
    Ok(EvalReport {
        documents: documents.len(),
        bytes,
        tokens: ids.iter().map(Vec::len).sum(),
        tokens_scored: scored,
        total_nats,
        bits_per_byte: total_nats / std::f64::consts::LN_2 / bytes as f64,
        nats_per_token: ratio(total_nats, scored),
        mean_entropy: ratio(entropy_sum, scored),
        mode: config.mode.as_str().to_string(),
        threshold: (config.mode == PatchingMode::Entropy)
            .then_some(config.threshold)
            .flatten(),
        patches,
        mean_patch_length: ratio(covered as f64, patches),
        median_patch_length: median(&mut lengths),
        bytes_per_patch: ratio(bytes as f64, patches),
        patches_per_kb: patches as f64 * 1000.0 / bytes as f64,
    })
}

/// Whether a target token is scored: a byte or EOS.
fn is_scored(id: u32) -> bool {
    id == EOS_ID || BltTokenizer::id_to_byte(id).is_some()
}

/// `−log_softmax(row)[target]` in f64, computed stably: `logsumexp(row) − row[target]` with the
/// maximum subtracted before exponentiating.
fn negative_log_prob(row: &[f32], target: usize) -> f64 {
    let max = row
        .iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    max + sum.ln() - f64::from(row[target])
}

fn ratio(num: f64, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num / den as f64
    }
}

fn median(values: &mut [usize]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid] as f64
    } else {
        (values[mid - 1] + values[mid]) as f64 / 2.0
    }
}

/// Cuts documents into pieces that start at multiples of `max_seqlen` (so the model's
/// independent windows are unchanged) and groups consecutive pieces into runs of at most
/// `budget` tokens (a single piece may reach `budget` rounded up to a whole window).
fn piece_groups(
    ids: &[Vec<u32>],
    max_seqlen: usize,
    budget: usize,
) -> Vec<Vec<(usize, std::ops::Range<usize>)>> {
    let piece_len = (budget / max_seqlen).max(1) * max_seqlen;
    let mut groups = Vec::new();
    let mut group = Vec::new();
    let mut tokens = 0;
    for (d, doc) in ids.iter().enumerate() {
        for start in (0..doc.len()).step_by(piece_len) {
            let range = start..(start + piece_len).min(doc.len());
            if !group.is_empty() && tokens + range.len() > budget {
                groups.push(std::mem::take(&mut group));
                tokens = 0;
            }
            tokens += range.len();
            group.push((d, range));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// Mean patch length of a corpus under `patcher`: the sum of the patch lengths of every document
/// divided by the number of patches (token positions, BOS and EOS included; see the
/// [module docs](self)). Returns `(mean, patches)`; a corpus with no patches has mean 0.
///
/// `entropies[d]` holds one entropy per token of `ids[d]`.
///
/// # Errors
/// The patcher's (a length mismatch, a non-finite entropy, ...).
pub fn mean_patch_length(
    ids: &[Vec<u32>],
    entropies: &[Vec<f32>],
    patcher: &Patcher,
) -> Result<(f64, usize)> {
    let (mut covered, mut patches) = (0usize, 0usize);
    for (doc_ids, doc_entropies) in ids.iter().zip(entropies) {
        let boundaries = patcher.patch(doc_ids, Some(doc_entropies))?;
        covered += boundaries.covered_len();
        patches += boundaries.len();
    }
    Ok((ratio(covered as f64, patches), patches))
}

/// Finds the threshold θ of `base`'s entropy rule for which the corpus's mean patch length (sum
/// of patch lengths / number of patches, as [`mean_patch_length`]) is closest to
/// `target_mean_patch`.
///
/// Entropies are computed once (documents encoded by `tokenizer`); then
/// [`calibrate_entropies`] searches the threshold. `base` gives every other patching option
/// (`max_patch_length`, `include_next_token`, the monotonic rules); its own threshold is ignored.
///
/// # Errors
/// As [`calibrate_entropies`], and model errors.
pub fn calibrate_threshold<B: Backend>(
    estimator: &EntropyEstimator<B>,
    documents: &[Vec<u8>],
    tokenizer: BltTokenizer,
    target_mean_patch: f64,
    base: &PatcherConfig,
) -> Result<Calibration> {
    check_calibratable(base)?;
    let ids: Vec<Vec<u32>> = documents.iter().map(|d| tokenizer.encode(d)).collect();
    let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let entropies: Vec<Vec<f32>> = estimator
        .estimate_many(&refs, EstimateOptions::default())?
        .into_iter()
        .map(|e| e.entropies)
        .collect();
    calibrate_entropies(&ids, &entropies, target_mean_patch, base)
}

fn check_calibratable(base: &PatcherConfig) -> Result<()> {
    if base.mode != PatchingMode::Entropy {
        return Err(Error::Calibration(format!(
            "only entropy patching has a threshold to calibrate, not `{}` mode",
            base.mode
        )));
    }
    Ok(())
}

/// The threshold search of [`calibrate_threshold`] on entropies already computed.
///
/// The mean patch length is a non-decreasing step function of θ (a position starts a patch when
/// the value the rule compares is `> θ`, so raising θ only removes starts, and merging patches
/// never lowers the mean, with `max_patch_length` too). It changes only at the values the rule
/// compares with θ: the entropies (global rules) or the differences of consecutive entropies
/// (monotonic rule). The search is exact: a bisection over those sorted distinct values, then
/// the closer of the two steps around the target (the lower threshold on a tie). The threshold
/// returned is the middle of its step (so that small numeric differences between runs do not
/// move a boundary), or 1 nat beyond the extreme value for the two unbounded steps.
///
/// # Errors
/// [`Error::Calibration`] for a mode without a threshold or a non-finite target;
/// [`Error::EmptyCorpus`] when the corpus has no patches; [`Error::UnreachableTarget`] when the
/// target lies outside the range of mean patch lengths any threshold gives on this corpus (below
/// the smallest, reached when every candidate position starts a patch, which is at least 1; or
/// above the largest, when only the forced starts remain).
pub fn calibrate_entropies(
    ids: &[Vec<u32>],
    entropies: &[Vec<f32>],
    target_mean_patch: f64,
    base: &PatcherConfig,
) -> Result<Calibration> {
    check_calibratable(base)?;
    if !target_mean_patch.is_finite() {
        return Err(Error::Calibration(format!(
            "the target mean patch length must be finite, got {target_mean_patch}"
        )));
    }
    let mut candidates: Vec<f32> = if base.monotonic {
        entropies
            .iter()
            .flat_map(|h| h.windows(2).map(|w| w[1] - w[0]))
            .collect()
    } else {
        entropies.iter().flatten().copied().collect()
    };
    candidates.retain(|v| v.is_finite());
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let (Some(&lowest), Some(&highest)) = (candidates.first(), candidates.last()) else {
        return Err(Error::EmptyCorpus);
    };

    // Step k (0..=n) is θ ∈ [thresholds[k], next): step 0 lies below every candidate.
    let mut thresholds = Vec::with_capacity(candidates.len() + 1);
    thresholds.push(beyond(lowest, -1.0));
    thresholds.extend_from_slice(&candidates);

    let mut iterations = 0;
    let mut measure = |theta: f32| -> Result<(f64, usize)> {
        iterations += 1;
        let patcher = base.clone().with_threshold(Some(theta)).build()?;
        mean_patch_length(ids, entropies, &patcher)
    };
    let n = thresholds.len() - 1;
    let (min_mean, patches) = measure(thresholds[0])?;
    if patches == 0 {
        return Err(Error::EmptyCorpus);
    }
    let (max_mean, _) = measure(thresholds[n])?;
    let slack = 1e-9 * target_mean_patch.abs().max(1.0);
    if target_mean_patch < min_mean - slack || target_mean_patch > max_mean + slack {
        return Err(Error::UnreachableTarget {
            target: target_mean_patch,
            min: min_mean,
            max: max_mean,
        });
    }

    // Smallest step whose mean reaches the target: means[lo] < target <= means[hi].
    let (mut lo, mut hi) = (0usize, n);
    let (mut lo_mean, mut hi_mean) = (min_mean, max_mean);
    if min_mean >= target_mean_patch {
        hi = 0;
        hi_mean = min_mean;
    } else {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let (mean, _) = measure(thresholds[mid])?;
            if mean >= target_mean_patch {
                (hi, hi_mean) = (mid, mean);
            } else {
                (lo, lo_mean) = (mid, mean);
            }
        }
    }
    let step = if hi > 0 && (target_mean_patch - lo_mean) <= (hi_mean - target_mean_patch) {
        lo
    } else {
        hi
    };
    let threshold = if step == 0 {
        thresholds[0]
    } else if step == n {
        beyond(highest, 1.0)
    } else {
        middle(thresholds[step], thresholds[step + 1])
    };
    let (mean, patches) = measure(threshold)?;
    Ok(Calibration {
        threshold,
        mean_patch_length: mean,
        target_mean_patch,
        patches,
        iterations,
        min_mean_patch_length: min_mean,
        max_mean_patch_length: max_mean,
    })
}

/// `value + delta`, or the next float away from `value` when `delta` is lost to rounding.
fn beyond(value: f32, delta: f32) -> f32 {
    let moved = value + delta;
    match (moved != value, delta > 0.0) {
        (true, _) => moved,
        (false, true) => value.next_up(),
        (false, false) => value.next_down(),
    }
}

/// A float in `[low, high)`, in the middle when there is room.
fn middle(low: f32, high: f32) -> f32 {
    let mid = ((f64::from(low) + f64::from(high)) / 2.0) as f32;
    if low <= mid && mid < high {
        mid
    } else {
        low
    }
}

/// Checks that [`write_threshold`] can write into this checkpoint's config.
///
/// Only the Hub layout (`config.json` holding `LMTransformerArgs`) takes a threshold:
/// - Meta's layout is refused: `params.json` is the training record Meta's own code reads back
///   (`LMTransformerArgs(**params["entropy_model"])`, a pydantic model that forbids unknown
///   fields), so a key added there would break the reference's loader.
/// - The Hugging Face layout is refused: its `config.json` is a whole `BltConfig`, whose own
///   `patching_threshold` belongs to transformers' BLT model and is not what this crate reads
///   as the model's default, so writing it would not change `blt patch`.
///
/// Copy the weights into the Hub layout (or pass the threshold explicitly) instead.
///
/// # Errors
/// [`Error::ThresholdNotWritable`] for the two layouts above.
pub fn check_threshold_writable(checkpoint: &Checkpoint) -> Result<()> {
    let reason = match checkpoint.format {
        CheckpointFormat::Hub => return Ok(()),
        CheckpointFormat::Meta => {
            "Meta's params.json is read back by Meta's own loader, which forbids unknown fields \
             in `entropy_model`; put the weights in the facebook/blt-entropy layout \
             (config.json + model.safetensors) or pass --threshold when patching"
        }
        CheckpointFormat::HuggingFace => {
            "a Hugging Face BltConfig's `patching_threshold` belongs to transformers' BLT model \
             and is not read as this model's default; put the weights in the \
             facebook/blt-entropy layout (config.json + model.safetensors) or pass --threshold \
             when patching"
        }
    };
    Err(Error::ThresholdNotWritable {
        path: checkpoint.config_path.clone(),
        reason: reason.into(),
    })
}

/// Writes `threshold` as `patching_threshold` into the checkpoint's `config.json` (Hub layout),
/// atomically (a temp file beside it, then a rename), so that `blt patch` and `blt ingest` use it
/// as the default threshold.
///
/// The file keeps its structure: the key goes under `"args"` when the config is nested there,
/// else at the top level, and every other key and value is kept (keys are written back sorted,
/// pretty-printed with two spaces). The number is written as the shortest decimal that reads
/// back as the same f32. A `config.json` that is a symlink (as in the Hugging Face cache) is
/// replaced by a file; what it pointed to is not changed.
///
/// # Errors
/// [`Error::ThresholdNotWritable`] for Meta's and the Hugging Face layouts (see
/// [`check_threshold_writable`]), a non-finite threshold, or a config that is not a JSON object;
/// I/O errors.
pub fn write_threshold(checkpoint: &Checkpoint, threshold: f32) -> Result<()> {
    check_threshold_writable(checkpoint)?;
    let path = &checkpoint.config_path;
    let refuse = |reason: String| Error::ThresholdNotWritable {
        path: path.clone(),
        reason,
    };
    if !threshold.is_finite() {
        return Err(refuse(format!(
            "the threshold must be finite, got {threshold}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| refuse(format!("not valid JSON: {e}")))?;
    let nested = value.get("args").is_some_and(serde_json::Value::is_object);
    let target = if nested {
        value.get_mut("args")
    } else {
        Some(&mut value)
    };
    let Some(serde_json::Value::Object(object)) = target else {
        return Err(refuse("the config is not a JSON object".into()));
    };
    object.insert("patching_threshold".into(), json_f32(threshold));

    let config = EntropyModelConfig::from_json_value(&value).map_err(refuse)?;
    if config.patching_threshold != Some(threshold) {
        return Err(refuse(format!(
            "the threshold {threshold} would read back as {:?}",
            config.patching_threshold
        )));
    }
    let mut bytes = serde_json::to_vec_pretty(&value)
        .map_err(|e| refuse(format!("cannot serialise the config: {e}")))?;
    bytes.push(b'\n');
    write_config(path, &bytes)
}

fn write_config(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(blt_datasets::write_atomic(path, bytes)?)
}

/// `value` as a JSON number: the shortest decimal that reads back (as f64, then f32) as `value`.
fn json_f32(value: f32) -> serde_json::Value {
    let short: Option<f64> = value.to_string().parse().ok();
    let wide = match short {
        Some(v) if v as f32 == value => v,
        _ => f64::from(value),
    };
    serde_json::Number::from_f64(wide).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
        let tok = BltTokenizer::new();
        let ids = vec![
            tok.encode(b"hello world, hello"),
            tok.encode(b"ab"),
            tok.encode(b""),
        ];
        let entropies = ids
            .iter()
            .enumerate()
            .map(|(d, doc)| {
                (0..doc.len())
                    .map(|p| ((p * 7 + d * 3) % 11) as f32 * 0.37)
                    .collect()
            })
            .collect();
        (ids, entropies)
    }

    #[test]
    fn negative_log_prob_is_stable_and_exact() {
        let row = [1000.0f32, 1000.0, 1000.0, 1000.0];
        assert!((negative_log_prob(&row, 2) - 4f64.ln()).abs() < 1e-12);
        let row = [0.0f32, 1.0, 2.0];
        let z: f64 = [0.0f64, 1.0, 2.0].iter().map(|x| x.exp()).sum();
        assert!((negative_log_prob(&row, 1) - (z.ln() - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3, 1, 2]), 2.0);
        assert_eq!(median(&mut [4, 1, 2, 3]), 2.5);
    }

    #[test]
    fn pieces_keep_window_boundaries_and_the_budget() {
        let ids = vec![vec![0u32; 10], vec![0; 3], vec![], vec![0; 7]];
        let groups = piece_groups(&ids, 4, 8);
        let flat: Vec<_> = groups.iter().flatten().cloned().collect();
        assert_eq!(flat, vec![(0, 0..8), (0, 8..10), (1, 0..3), (3, 0..7)]);
        for group in &groups {
            assert!(group.iter().map(|(_, r)| r.len()).sum::<usize>() <= 8);
            assert!(group.iter().all(|(_, r)| r.start % 4 == 0));
        }
    }

    #[test]
    fn calibration_is_exact_on_a_known_corpus() {
        let (ids, entropies) = corpus();
        let base = PatcherConfig::default();
        let tokens: usize = ids.iter().map(Vec::len).sum();
        // Extremes: one patch per token; only the forced starts (2, 2 and 2 patches).
        let low = calibrate_entropies(&ids, &entropies, 1.0, &base).unwrap();
        assert_eq!(low.mean_patch_length, 1.0);
        assert_eq!(low.min_mean_patch_length, 1.0);
        assert_eq!(low.max_mean_patch_length, tokens as f64 / 6.0);
        let high = calibrate_entropies(&ids, &entropies, tokens as f64 / 6.0, &base).unwrap();
        assert_eq!(high.patches, 6);
        for target in [1.5, 2.0, 3.0, 4.0] {
            let c = calibrate_entropies(&ids, &entropies, target, &base).unwrap();
            let patcher = base
                .clone()
                .with_threshold(Some(c.threshold))
                .build()
                .unwrap();
            let (mean, _) = mean_patch_length(&ids, &entropies, &patcher).unwrap();
            assert_eq!(mean, c.mean_patch_length);
            // No threshold does better: try every candidate step.
            let mut values: Vec<f32> = entropies.iter().flatten().copied().collect();
            values.push(-1.0);
            for theta in values {
                let p = base.clone().with_threshold(Some(theta)).build().unwrap();
                let (m, _) = mean_patch_length(&ids, &entropies, &p).unwrap();
                assert!((m - target).abs() >= (c.mean_patch_length - target).abs() - 1e-12);
            }
        }
    }

    #[test]
    fn unreachable_targets_and_other_modes_are_errors() {
        let (ids, entropies) = corpus();
        let base = PatcherConfig::default();
        for target in [0.5, 100.0, f64::NAN] {
            let err = calibrate_entropies(&ids, &entropies, target, &base).unwrap_err();
            assert!(
                matches!(err, Error::UnreachableTarget { .. } | Error::Calibration(_)),
                "{err}"
            );
        }
        let space = PatcherConfig::new(PatchingMode::Space);
        assert!(matches!(
            calibrate_entropies(&ids, &entropies, 2.0, &space),
            Err(Error::Calibration(_))
        ));
        assert!(matches!(
            calibrate_entropies(&[], &[], 2.0, &base),
            Err(Error::EmptyCorpus)
        ));
    }

    #[test]
    fn monotonic_rules_calibrate_too() {
        let (ids, entropies) = corpus();
        let base = PatcherConfig::default().with_monotonic(true);
        let c = calibrate_entropies(&ids, &entropies, 2.0, &base).unwrap();
        assert!(c.min_mean_patch_length <= c.mean_patch_length);
        assert!(c.mean_patch_length <= c.max_mean_patch_length);
        let capped = PatcherConfig::default().with_max_patch_length(Some(3));
        let c = calibrate_entropies(&ids, &entropies, 2.0, &capped).unwrap();
        assert!(c.max_mean_patch_length <= 3.0);
        assert!((c.mean_patch_length - 2.0).abs() < 0.2);
    }

    #[test]
    fn thresholds_are_written_as_short_decimals() {
        assert_eq!(json_f32(2.1).to_string(), "2.1");
        assert_eq!(
            json_f32(1.335_442_1).as_f64().map(|v| v as f32),
            Some(1.335_442_1)
        );
        assert_eq!(beyond(1.0, 1.0), 2.0);
        assert!(beyond(1e30, 1.0) > 1e30);
        assert_eq!(middle(1.0, 2.0), 1.5);
        let next = 1.0f32.next_up();
        assert_eq!(middle(1.0, next), 1.0);
    }
}
