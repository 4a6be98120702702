#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod analyze;
pub mod document;
pub mod evaluate;
pub mod ingest;
mod model_source;
pub mod ranks;
pub mod readback;
pub mod stage;

pub use analyze::{DocumentAnalysis, DocumentAnalyzer};
pub use document::{DetectionSummary, DocumentResult, EmbeddingsMode, SegmentResult};
pub use evaluate::{
    calibrate_entropies, calibrate_threshold, check_threshold_writable, evaluate,
    mean_patch_length, write_threshold, Calibration, EvalReport,
};
pub use ingest::{
    ingest, DocumentFailure, IngestConfig, IngestObserver, IngestStats, ModalityStats,
    OutputFormat, Quiet, SegmentMode, DEFAULT_MAX_DOC_BYTES, DEFAULT_MAX_HIDDEN_BYTES,
    OUTPUT_CONFIG_FILE,
};
pub use model_source::{LoadedModel, ModelSource, ModelSpec};
pub use ranks::{merge_rank_stats, MergedStats};
pub use readback::StoredDocument;
pub use stage::Stage;

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
    /// An output folder holds another run's work: a completion marker or resume record made
    /// with another world size or output configuration.
    #[error("{}: {reason}; write to a new output folder, or remove the old outputs", path.display())]
    RankMismatch {
        /// The marker or record.
        path: std::path::PathBuf,
        /// What differs.
        reason: String,
    },
    /// A document asks for more than a limit allows (the limit is an [`IngestConfig`] field).
    #[error("{what}: {actual} exceeds the limit of {limit} ({option})")]
    LimitExceeded {
        /// What was limited.
        what: String,
        /// The value the document asked for.
        actual: u64,
        /// The configured limit.
        limit: u64,
        /// The [`IngestConfig`] field that sets the limit.
        option: &'static str,
    },
    /// A stage panicked where no single document could take the failure (its input iterator,
    /// a shard writer holding other documents' samples, the stage's thread itself).
    #[error("pipeline: the {stage} stage panicked: {message}")]
    Panicked {
        /// The stage.
        stage: stage::Stage,
        /// The panic's message.
        message: String,
    },
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

impl Error {
    /// Whether this error says the output storage is full, over quota or read-only: no later
    /// write to the same folder can succeed, so a run stops on it (non-zero) instead of
    /// counting every later document as failed.
    pub fn is_storage_exhausted(&self) -> bool {
        if let Error::Sidecar(e) = self {
            if e.is_storage_full() {
                return true;
            }
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                if matches!(
                    io.kind(),
                    StorageFull | QuotaExceeded | ReadOnlyFilesystem | FileTooLarge
                ) {
                    return true;
                }
            }
            cause = e.source();
        }
        false
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
