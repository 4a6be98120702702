#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod corpus;
pub mod document;
pub mod histogram;
pub mod html;
pub mod npz;
pub mod plot;
pub mod png;

pub mod report;
pub mod sphere;
pub mod stats;

pub use corpus::{CorpusReader, DocumentSource, ReadFailure, RunSummary};
pub use document::{EmbeddingMatrix, PatchedDocument};
pub use histogram::{percentile_nearest_rank, EntropyHistogram};
pub use report::{render_report, ReportOptions};
pub use sphere::{water_fill, SphereConfig, SpherePlacement};
pub use stats::{CorpusStats, StatsOptions};

use std::path::PathBuf;

/// Errors of this crate. Each names the file it is about, where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a `blt-patches` output this crate can read (bad header, missing or
    /// mistyped tensor, inconsistent shapes).
    #[error("{}: not a valid blt output: {reason}", path.display())]
    InvalidOutput {
        /// The file (a shard member is named `shard.tar:member`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A document handed to a function is inconsistent (lengths that disagree, patches past
    /// the end).
    #[error("document `{key}`: {reason}")]
    InvalidDocument {
        /// The document key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A sidecar could not be read.
    #[error(transparent)]
    Sidecar(#[from] blt_sidecar::Error),
    /// Options out of range (no shells, `r_min > r_max`, zero bins).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Nothing to work on: an output folder without readable documents, or no patches with
    /// embeddings.
    #[error("{}: {reason}", path.display())]
    Empty {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Drawing the PNG plot failed.
    #[error("{}: cannot draw the PNG plot: {reason}", path.display())]
    Png {
        /// The PNG file.
        path: PathBuf,
        /// What the drawing backend said.
        reason: String,
    },
    /// A safetensors file could not be serialised.
    #[error("{}: cannot serialise tensors: {reason}", path.display())]
    Serialize {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Writes `data` to `path` atomically: a temp file beside it, fsynced, then renamed.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    let tmp = path.with_file_name(format!("{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(source));
    }
    Ok(())
}
