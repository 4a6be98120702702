#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod analyze;
mod model_source;

pub use analyze::{DocumentAnalysis, DocumentAnalyzer};
pub use model_source::{LoadedModel, ModelSource, ModelSpec};

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
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
