#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod analyze;
pub mod document;
pub mod ingest;
mod model_source;
pub mod readback;

pub use analyze::{DocumentAnalysis, DocumentAnalyzer};
pub use document::{DocumentResult, EmbeddingsMode, SegmentResult};
pub use ingest::{
    ingest, DocumentFailure, IngestConfig, IngestObserver, IngestStats, OutputFormat, Quiet,
};
pub use model_source::{LoadedModel, ModelSource, ModelSpec};
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
    /// A document failed under `fail_fast`.
    #[error("{}: {} failed: {}", .0.path.as_deref().unwrap_or(&.0.key), .0.stage, .0.reason)]
    DocumentFailed(Box<DocumentFailure>),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
