//! [`Patcher`]: a validated [`PatcherConfig`] applied to one sequence or a batch of them.

use crate::rules::{self, ThresholdRule};
use crate::{Error, PatchBoundaries, PatcherConfig, PatchingMode, Result, DEFAULT_THRESHOLD};

/// The rule a validated configuration resolves to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Byte,
    Static { patch_size: usize },
    Space,
    Bpe,
    BpePredicted,
    Threshold(ThresholdRule),
    TopK { patch_size: usize },
}

/// Finds patch boundaries, exactly as Meta's reference `Patcher.patch` (`bytelatent/data/patcher.py`).
///
/// Build one with [`Patcher::new`] (which validates the configuration), then call
/// [`patch`](Self::patch) per sequence, [`patch_predicted`](Self::patch_predicted) for the
/// model-predicted delimiter mode, or [`patch_batch`](Self::patch_batch) for the reference's
/// padded batch output.
///
/// Every sequence is assumed to start with BOS (id 1), as the reference assumes: tokens 0 and 1
/// always start patches. An empty sequence has no patches.
#[derive(Debug, Clone, PartialEq)]
pub struct Patcher {
    config: PatcherConfig,
    plan: Plan,
}

impl Default for Patcher {
    /// The reference defaults: global entropy rule with θ = [`DEFAULT_THRESHOLD`].
    fn default() -> Self {
        Patcher {
            config: PatcherConfig::default(),
            plan: Plan::Threshold(ThresholdRule::Global {
                threshold: DEFAULT_THRESHOLD,
            }),
        }
    }
}

/// Checks a patch size that is actually used (static, top-k) and returns it as an integer.
fn whole_patch_size(patch_size: f32) -> Result<usize> {
    if !patch_size.is_finite() || patch_size.fract() != 0.0 {
        return Err(Error::NonIntegerPatchSize(patch_size));
    }
    if patch_size < 1.0 {
        return Err(Error::InvalidConfig(format!(
            "patch_size must be >= 1, got {patch_size}"
        )));
    }
    // Whole and finite: the conversion is exact up to usize::MAX and saturates beyond.
    Ok(patch_size as usize)
}

fn finite_or_invalid(name: &str, value: Option<f32>) -> Result<()> {
    match value {
        Some(v) if !v.is_finite() => Err(Error::InvalidConfig(format!(
            "{name} must be finite, got {v}"
        ))),
        _ => Ok(()),
    }
}

impl Patcher {
    /// Validates `config` and builds the patcher.
    ///
    /// # Errors
    /// - [`Error::InvalidConfig`]: a non-finite `threshold` or `threshold_add`,
    ///   `max_patch_length = Some(0)`, or a `patch_size` below 1 where it is used.
    /// - [`Error::NonIntegerPatchSize`]: `static` mode, or entropy mode with `threshold: None`
    ///   (top-k), with a `patch_size` that is not a whole number (such as the default 4.5).
    pub fn new(config: PatcherConfig) -> Result<Self> {
        finite_or_invalid("threshold", config.threshold)?;
        finite_or_invalid("threshold_add", config.threshold_add)?;
        if config.max_patch_length == Some(0) {
            return Err(Error::InvalidConfig(
                "max_patch_length must be at least 1".to_owned(),
            ));
        }
        let plan = match config.mode {
            PatchingMode::Byte => Plan::Byte,
            PatchingMode::Static => Plan::Static {
                patch_size: whole_patch_size(config.patch_size)?,
            },
            PatchingMode::Space => Plan::Space,
            PatchingMode::Bpe => Plan::Bpe,
            PatchingMode::BpePredicted => Plan::BpePredicted,
            PatchingMode::Entropy => match config.threshold {
                None => Plan::TopK {
                    patch_size: whole_patch_size(config.patch_size)?,
                },
                Some(threshold) if config.monotonic => {
                    Plan::Threshold(ThresholdRule::Monotonic { threshold })
                }
                Some(threshold) => match config.threshold_add {
                    Some(add) => {
                        Plan::Threshold(ThresholdRule::GlobalAndMonotonic { threshold, add })
                    }
                    None => Plan::Threshold(ThresholdRule::Global { threshold }),
                },
            },
        };
        Ok(Patcher { config, plan })
    }

    /// The configuration this patcher was built from.
    pub fn config(&self) -> &PatcherConfig {
        &self.config
    }

    /// Patches one sequence.
    ///
    /// `tokens` are the ids of one sequence with BOS at position 0. `entropies` holds one value
    /// per position (`entropies[p]` is the entropy of the prediction made after token `p`, in
    /// nats); entropy mode needs them, the other modes ignore them. `entropies[0]` is never used
    /// by any rule, and with `include_next_token = false` neither is the last one, but all must
    /// be finite.
    ///
    /// The result covers `S` positions, or `S + 1` with `include_next_token`; `S = 0` gives no
    /// patches.
    ///
    /// # Errors
    /// - [`Error::MissingEntropies`], [`Error::LengthMismatch`], [`Error::NonFiniteEntropy`]
    ///   (entropy mode);
    /// - [`Error::TooShortForTopK`] (top-k with `S < 2 * patch_size`, where the reference's
    ///   `topk` fails);
    /// - [`Error::MissingPredictions`] in [`PatchingMode::BpePredicted`], which needs
    ///   [`patch_predicted`](Self::patch_predicted).
    pub fn patch(&self, tokens: &[u32], entropies: Option<&[f32]>) -> Result<PatchBoundaries> {
        let s = tokens.len();
        let total = s + usize::from(self.config.include_next_token);
        let lengths = match self.plan {
            Plan::BpePredicted => return Err(Error::MissingPredictions),
            Plan::Threshold(rule) => {
                let h = checked_entropies(s, entropies)?;
                if s == 0 {
                    return Ok(PatchBoundaries::default());
                }
                let starts =
                    rules::entropy_threshold_starts(h, rule, self.config.include_next_token);
                rules::lengths_from_starts(&starts, total)
            }
            Plan::TopK { patch_size } => {
                let h = checked_entropies(s, entropies)?;
                if s == 0 {
                    return Ok(PatchBoundaries::default());
                }
                let k = (s / patch_size)
                    .checked_sub(2)
                    .ok_or(Error::TooShortForTopK { len: s, patch_size })?;
                rules::lengths_from_starts(&rules::entropy_top_k_starts(h, k), total)
            }
            _ if s == 0 => return Ok(PatchBoundaries::default()),
            Plan::Byte => vec![1; total],
            Plan::Static { patch_size } => rules::static_lengths(total, patch_size),
            Plan::Space => rules::lengths_from_starts(&rules::space_starts(tokens), total),
            Plan::Bpe => rules::lengths_from_starts(&rules::bpe_starts(tokens), total),
        };
        Ok(self.finish(lengths))
    }

    /// Patches one sequence in [`PatchingMode::BpePredicted`] (the reference's `bpe_patcher`).
    ///
    /// `predicted[p]` is the argmax id of the delimiter model's output at token position `p`
    /// (the reference runs that model on `tokens[1..]`, so its first output belongs to position
    /// 1); one value per token. A patch starts at `p + 1` for every `p >= 1` with
    /// `predicted[p] == 3`; the last position only counts with `include_next_token`.
    /// `predicted[0]` is never used.
    ///
    /// # Errors
    /// [`Error::ModeMismatch`] in any other mode; [`Error::PredictedLengthMismatch`].
    pub fn patch_predicted(&self, tokens: &[u32], predicted: &[u32]) -> Result<PatchBoundaries> {
        if self.plan != Plan::BpePredicted {
            return Err(Error::ModeMismatch {
                mode: self.config.mode,
                method: "patch_predicted",
            });
        }
        if predicted.len() != tokens.len() {
            return Err(Error::PredictedLengthMismatch {
                tokens: tokens.len(),
                predicted: predicted.len(),
            });
        }
        if tokens.is_empty() {
            return Ok(PatchBoundaries::default());
        }
        let total = tokens.len() + usize::from(self.config.include_next_token);
        let starts = rules::predicted_starts(predicted, self.config.include_next_token);
        Ok(self.finish(rules::lengths_from_starts(&starts, total)))
    }

    /// Patches a batch and returns the reference's output: one row of lengths per sequence,
    /// right-padded with zeros to the longest row (e.g. `[[1, 1, 3, 1], [1, 5, 0, 0]]`).
    ///
    /// Each row is patched on its own, as by [`patch`](Self::patch), so a row's patches never
    /// depend on the other rows; rows may also differ in length. For rows of equal length (the
    /// only kind a reference tensor holds) this is the reference's batched output, except where
    /// the reference pads its start ids with a value that does not match the covered length:
    /// - `space` with `include_next_token = false`, rows with different patch counts: the
    ///   reference fails its own assertion;
    /// - `bpe` with `include_next_token = true`: a row one patch short of the longest gets an
    ///   extra one-position patch at `S` in the reference's batch, and two or more short makes
    ///   the reference fail.
    ///
    /// There, every row is what the reference gives for that row alone.
    ///
    /// # Errors
    /// [`Error::BatchSizeMismatch`], or the first row's error wrapped in [`Error::InRow`].
    pub fn patch_batch(
        &self,
        tokens: &[&[u32]],
        entropies: Option<&[&[f32]]>,
    ) -> Result<Vec<Vec<usize>>> {
        if let Some(e) = entropies {
            if e.len() != tokens.len() {
                return Err(Error::BatchSizeMismatch {
                    tokens: tokens.len(),
                    other: e.len(),
                });
            }
        }
        let rows = tokens
            .iter()
            .enumerate()
            .map(|(row, t)| {
                let h = entropies.and_then(|e| e.get(row).copied());
                self.patch(t, h).map_err(|e| in_row(row, e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(right_pad(rows))
    }

    /// [`patch_batch`](Self::patch_batch) for [`PatchingMode::BpePredicted`]: one row of
    /// predicted ids per sequence, as in [`patch_predicted`](Self::patch_predicted).
    ///
    /// # Errors
    /// [`Error::ModeMismatch`], [`Error::BatchSizeMismatch`], or the first row's error wrapped
    /// in [`Error::InRow`].
    pub fn patch_batch_predicted(
        &self,
        tokens: &[&[u32]],
        predicted: &[&[u32]],
    ) -> Result<Vec<Vec<usize>>> {
        if self.plan != Plan::BpePredicted {
            return Err(Error::ModeMismatch {
                mode: self.config.mode,
                method: "patch_batch_predicted",
            });
        }
        if predicted.len() != tokens.len() {
            return Err(Error::BatchSizeMismatch {
                tokens: tokens.len(),
                other: predicted.len(),
            });
        }
        let rows = tokens
            .iter()
            .zip(predicted)
            .enumerate()
            .map(|(row, (t, p))| self.patch_predicted(t, p).map_err(|e| in_row(row, e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(right_pad(rows))
    }

    /// Applies `max_patch_length` to non-zero lengths.
    fn finish(&self, lengths: Vec<usize>) -> PatchBoundaries {
        let lengths = match self.config.max_patch_length {
            Some(max) => rules::split_long_patches(&lengths, max),
            None => lengths,
        };
        PatchBoundaries::from_nonzero_lengths(lengths)
    }
}

/// Entropy-mode input checks: present, one per token, all finite.
fn checked_entropies(tokens: usize, entropies: Option<&[f32]>) -> Result<&[f32]> {
    let h = entropies.ok_or(Error::MissingEntropies)?;
    if h.len() != tokens {
        return Err(Error::LengthMismatch {
            tokens,
            entropies: h.len(),
        });
    }
    if let Some(position) = h.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteEntropy {
            position,
            value: h[position],
        });
    }
    Ok(h)
}

fn in_row(row: usize, source: Error) -> Error {
    Error::InRow {
        row,
        source: Box::new(source),
    }
}

/// Rows of lengths right-padded with zeros to the longest row.
fn right_pad(rows: Vec<PatchBoundaries>) -> Vec<Vec<usize>> {
    let width = rows.iter().map(PatchBoundaries::len).max().unwrap_or(0);
    rows.into_iter()
        .map(|b| {
            let mut lengths = b.into_lengths();
            lengths.resize(width, 0);
            lengths
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PatcherConfig {
        PatcherConfig::default()
    }

    #[test]
    fn default_patcher_equals_built_default() {
        assert_eq!(Patcher::default(), Patcher::new(cfg()).unwrap());
    }

    #[test]
    fn rule_precedence_follows_the_reference() {
        let plan = |c: PatcherConfig| Patcher::new(c).unwrap().plan;
        assert_eq!(
            plan(cfg().with_threshold(Some(1.0))),
            Plan::Threshold(ThresholdRule::Global { threshold: 1.0 })
        );
        // monotonic wins over threshold_add
        assert_eq!(
            plan(
                cfg()
                    .with_threshold(Some(1.0))
                    .with_monotonic(true)
                    .with_threshold_add(Some(0.5))
            ),
            Plan::Threshold(ThresholdRule::Monotonic { threshold: 1.0 })
        );
        assert_eq!(
            plan(
                cfg()
                    .with_threshold(Some(1.0))
                    .with_threshold_add(Some(0.5))
            ),
            Plan::Threshold(ThresholdRule::GlobalAndMonotonic {
                threshold: 1.0,
                add: 0.5
            })
        );
        // threshold None wins over everything
        assert_eq!(
            plan(
                cfg()
                    .with_threshold(None)
                    .with_monotonic(true)
                    .with_patch_size(4.0)
            ),
            Plan::TopK { patch_size: 4 }
        );
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let err = |c: PatcherConfig| Patcher::new(c).unwrap_err();
        assert!(matches!(
            err(cfg().with_max_patch_length(Some(0))),
            Error::InvalidConfig(_)
        ));
        assert!(matches!(
            err(cfg().with_threshold(Some(f32::NAN))),
            Error::InvalidConfig(_)
        ));
        assert!(matches!(
            err(cfg().with_threshold(Some(f32::INFINITY))),
            Error::InvalidConfig(_)
        ));
        assert!(matches!(
            err(cfg().with_threshold_add(Some(f32::NEG_INFINITY))),
            Error::InvalidConfig(_)
        ));
        // The default patch_size 4.5 is fine for the threshold rules but not for static/top-k.
        assert_eq!(
            err(cfg().with_mode(PatchingMode::Static)),
            Error::NonIntegerPatchSize(4.5)
        );
        assert_eq!(
            err(cfg().with_threshold(None)),
            Error::NonIntegerPatchSize(4.5)
        );
        assert!(matches!(
            err(cfg()
                .with_mode(PatchingMode::Static)
                .with_patch_size(f32::NAN)),
            Error::NonIntegerPatchSize(_)
        ));
        assert!(matches!(
            err(cfg().with_mode(PatchingMode::Static).with_patch_size(0.0)),
            Error::InvalidConfig(_)
        ));
        assert!(matches!(
            err(cfg().with_mode(PatchingMode::Static).with_patch_size(-4.0)),
            Error::InvalidConfig(_)
        ));
        // patch_size is not looked at where it is not used.
        assert!(Patcher::new(
            cfg()
                .with_mode(PatchingMode::Space)
                .with_patch_size(f32::NAN)
        )
        .is_ok());
    }

    #[test]
    fn entropy_input_errors() {
        let p = Patcher::default();
        assert_eq!(p.patch(&[1, 5, 6], None), Err(Error::MissingEntropies));
        assert_eq!(
            p.patch(&[1, 5, 6], Some(&[0.0, 1.0])),
            Err(Error::LengthMismatch {
                tokens: 3,
                entropies: 2
            })
        );
        let e = p
            .patch(&[1, 5, 6], Some(&[0.0, 1.0, f32::NAN]))
            .unwrap_err();
        assert!(matches!(e, Error::NonFiniteEntropy { position: 2, value } if value.is_nan()));
        // Position 0 is checked too, even though no rule reads it.
        assert_eq!(
            p.patch(&[1, 5], Some(&[f32::INFINITY, 1.0])),
            Err(Error::NonFiniteEntropy {
                position: 0,
                value: f32::INFINITY
            })
        );
        assert_eq!(p.patch(&[], None), Err(Error::MissingEntropies));
    }

    #[test]
    fn mode_errors() {
        let predicted = Patcher::new(cfg().with_mode(PatchingMode::BpePredicted)).unwrap();
        assert_eq!(
            predicted.patch(&[1, 5], None),
            Err(Error::MissingPredictions)
        );
        assert_eq!(
            predicted.patch_predicted(&[1, 5], &[0]),
            Err(Error::PredictedLengthMismatch {
                tokens: 2,
                predicted: 1
            })
        );
        let entropy = Patcher::default();
        assert_eq!(
            entropy.patch_predicted(&[1, 5], &[0, 3]),
            Err(Error::ModeMismatch {
                mode: PatchingMode::Entropy,
                method: "patch_predicted"
            })
        );
        assert!(matches!(
            entropy.patch_batch_predicted(&[], &[]),
            Err(Error::ModeMismatch { .. })
        ));
    }

    #[test]
    fn batch_errors_name_the_row() {
        let p = Patcher::default();
        let rows: [&[u32]; 2] = [&[1, 5], &[1, 5, 6]];
        let ents: [&[f32]; 2] = [&[0.0, 0.0], &[0.0, 0.0]];
        assert_eq!(
            p.patch_batch(&rows, Some(&ents)),
            Err(Error::InRow {
                row: 1,
                source: Box::new(Error::LengthMismatch {
                    tokens: 3,
                    entropies: 2
                })
            })
        );
        assert_eq!(
            p.patch_batch(&rows, Some(&ents[..1])),
            Err(Error::BatchSizeMismatch {
                tokens: 2,
                other: 1
            })
        );
        assert_eq!(p.patch_batch(&[], Some(&[])), Ok(vec![]));
        let e = p.patch_batch(&rows, None).unwrap_err();
        assert_eq!(e.to_string(), format!("row 0: {}", Error::MissingEntropies));
    }

    #[test]
    fn entropies_are_ignored_outside_entropy_mode() {
        let p = Patcher::new(cfg().with_mode(PatchingMode::Byte)).unwrap();
        let b = p.patch(&[1, 5, 6], Some(&[f32::NAN])).unwrap();
        assert_eq!(b.lengths(), &[1, 1, 1]);
    }
}
