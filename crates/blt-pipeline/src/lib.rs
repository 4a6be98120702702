#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod analyze;
pub mod document;
pub mod evaluate;
pub mod ingest;
mod model_source;
pub mod ranks;
pub mod readback;

pub use analyze::{DocumentAnalysis, DocumentAnalyzer};
pub use document::{DetectionSummary, DocumentResult, EmbeddingsMode, SegmentResult};
pub use evaluate::{
    calibrate_entropies, calibrate_threshold, check_threshold_writable, evaluate,
    mean_patch_length, write_threshold, Calibration, EvalReport,
};
pub use ingest::{
    ingest, DocumentFailure, IngestConfig, IngestObserver, IngestStats, ModalityStats,
    OutputFormat, Quiet, SegmentMode,
};
pub use model_source::{LoadedModel, ModelSource, ModelSpec};
pub use ranks::{merge_rank_stats, MergedStats};
pub use readback::StoredDocument;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be found, resolved or loaded.
    #[error(transparent)]
    Model(#[from] blt_model::Error),
    /// A Hub repo could not be resolved.
    #[error(transparent)]
    Hub(#[from] blt_hub::Error),
    /// The patcher refused its configuration or input.
    #[error("patching: {0}")]
    Patch(#[from] blt_patcher::Error),
    /// Reading inputs or writing outputs failed.
    #[error(transparent)]
    Dataset(#[from] blt_datasets::Error),
    /// A document could not be split into segments.
    #[error("pre-tokenization: {0}")]
    Pretokenize(#[from] blt_pretokenize::PretokenizeError),
    /// The sidecar could not be written or read.
    #[error(transparent)]
    Sidecar(#[from] blt_sidecar::Error),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output file is not what this crate writes.
    #[error("{}: not a valid blt output: {reason}", path.display())]
    InvalidOutput {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A pipeline stage failed as a whole.
    #[error("pipeline: {0}")]
    Stage(String),
    /// An evaluation or calibration corpus holds no documents, no bytes or no patches.
    #[error("the corpus is empty: no documents, bytes or patches to measure")]
    EmptyCorpus,
    /// Threshold calibration cannot run as configured (a mode without a threshold, a
    /// non-finite target).
    #[error("calibration: {0}")]
    Calibration(String),
    /// No threshold gives the target mean patch length on this corpus.
    #[error("a mean patch length of {target} is unreachable on this corpus: thresholds give {min:.4} to {max:.4}")]
    UnreachableTarget {
        /// The mean patch length asked for.
        target: f64,
        /// The smallest mean patch length any threshold gives.
        min: f64,
        /// The largest mean patch length any threshold gives.
        max: f64,
    },
    /// A patching threshold cannot be written into this checkpoint's config.
    #[error("{}: cannot write a patching threshold: {reason}", path.display())]
    ThresholdNotWritable {
        /// The config file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
