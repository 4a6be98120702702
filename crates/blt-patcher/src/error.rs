//! The one error type of this crate, grouped by cause: configuration, inputs, batches.

use crate::PatchingMode;

/// Everything that can go wrong while configuring a [`Patcher`](crate::Patcher) or patching.
///
/// Where Meta's reference raises (a failed assertion or a torch error), this crate returns one of
/// these instead; everywhere else it returns exactly what the reference returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- configuration -------------------------------------------------------------------
    /// A configuration value outside its domain (the message names the field).
    #[error("invalid patcher configuration: {0}")]
    InvalidConfig(String),

    /// `static` mode and top-k entropy mode (threshold `None`) need a whole, positive patch size;
    /// the reference would truncate a float into its integer tensors and then fail its own
    /// length assertion.
    #[error(
        "patch_size {0} must be a whole number >= 1 for static patching and top-k entropy patching"
    )]
    NonIntegerPatchSize(f32),

    /// A mode name that is not one of the reference's names.
    #[error(
        "unknown patching mode {0:?} (expected entropy, space, static, byte, bpe or bpe_patcher)"
    )]
    UnknownMode(String),

    // ---- inputs --------------------------------------------------------------------------
    /// Entropy mode needs per-position entropies.
    #[error("entropy patching needs per-position entropies, but none were given")]
    MissingEntropies,

    /// Model-predicted delimiter mode (`bpe_patcher`) needs the model's predicted ids; call
    /// [`Patcher::patch_predicted`](crate::Patcher::patch_predicted).
    #[error("mode bpe_patcher needs the model's predicted ids: call `patch_predicted`")]
    MissingPredictions,

    /// A method was called that does not apply to the configured mode.
    #[error("`{method}` does not apply to patching mode {mode}")]
    ModeMismatch {
        /// The configured mode.
        mode: PatchingMode,
        /// The method that was called.
        method: &'static str,
    },

    /// The entropies do not have one value per token.
    #[error(
        "{tokens} tokens but {entropies} entropies (one entropy per token position is needed)"
    )]
    LengthMismatch {
        /// Number of tokens.
        tokens: usize,
        /// Number of entropies.
        entropies: usize,
    },

    /// The predicted ids do not have one value per token.
    #[error(
        "{tokens} tokens but {predicted} predicted ids (one prediction per token position is needed)"
    )]
    PredictedLengthMismatch {
        /// Number of tokens.
        tokens: usize,
        /// Number of predicted ids.
        predicted: usize,
    },

    /// An entropy is NaN or infinite. Every position is checked, position 0 included.
    #[error("entropy at position {position} is not finite ({value})")]
    NonFiniteEntropy {
        /// Position of the offending value.
        position: usize,
        /// The value itself.
        value: f32,
    },

    /// Top-k entropy patching picks `len / patch_size - 2` starts; a sequence shorter than
    /// `2 * patch_size` makes that negative, which the reference's `topk` rejects.
    #[error(
        "top-k entropy patching needs at least 2 * patch_size = {} tokens, got {len}",
        2 * patch_size
    )]
    TooShortForTopK {
        /// Length of the sequence.
        len: usize,
        /// The configured patch size.
        patch_size: usize,
    },

    /// Patch lengths given to [`PatchBoundaries::from_lengths`](crate::PatchBoundaries::from_lengths)
    /// contain a zero.
    #[error("patch {index} has length 0")]
    ZeroLengthPatch {
        /// Index of the zero-length patch.
        index: usize,
    },

    // ---- batches -------------------------------------------------------------------------
    /// The batch of entropies (or predictions) has a different number of rows than the tokens.
    #[error("{tokens} token rows but {other} rows of entropies or predictions")]
    BatchSizeMismatch {
        /// Number of token rows.
        tokens: usize,
        /// Number of entropy or prediction rows.
        other: usize,
    },

    /// An error in one row of a batch.
    #[error("row {row}: {source}")]
    InRow {
        /// Index of the row.
        row: usize,
        /// What went wrong in it.
        source: Box<Error>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
