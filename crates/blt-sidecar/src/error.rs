//! The one error type of this crate, grouped by cause: the file, the caller's input, the
//! stored data. Every variant names the sidecar file it is about.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while creating, writing, opening or reading a sidecar.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the file ------------------------------------------------------------------------
    /// [`create`](crate::HypergraphSidecar::create) never overwrites: the path (or an SQLite
    /// journal beside it, whose path is the one named) already exists.
    #[error("{}: already exists (a sidecar is only ever written to a new file)", path.display())]
    AlreadyExists {
        /// The path that exists.
        path: PathBuf,
    },

    /// The file could not be created, found or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The sidecar file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The file is not an SQLite database at all.
    #[error("{}: not an SQLite database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },

    /// The file is an SQLite database, but not a blt hypergraph sidecar.
    #[error("{}: not a blt hypergraph sidecar: {reason}", path.display())]
    NotASidecar {
        /// The file.
        path: PathBuf,
        /// What is missing or different.
        reason: String,
    },

    /// The file is a blt hypergraph sidecar of a schema version this build does not read.
    #[error(
        "{}: hypergraph sidecar schema_version {found:?}, but this build reads version {expected}",
        path.display()
    )]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The `schema_version` stored in its `meta` table.
        found: String,
        /// [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
        expected: u32,
    },

    // ---- the caller's input --------------------------------------------------------------
    /// A write was attempted on a sidecar opened with [`open`](crate::HypergraphSidecar::open).
    #[error("{}: opened read-only; write a new sidecar with `create`", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },

    /// [`set_meta`](crate::HypergraphSidecar::set_meta) was asked to change a key that this
    /// crate owns (`format`, `schema_version`, `producer`).
    #[error("{}: meta key {key:?} is owned by blt-sidecar and cannot be set", path.display())]
    ReservedMetaKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },

    /// A document that cannot be stored as given (a reversed range, a range past the end of the
    /// document, an offset beyond `i64::MAX`, an empty key). Nothing of it was written.
    #[error("{}: document {document:?}: {reason}", path.display())]
    InvalidDocument {
        /// The file.
        path: PathBuf,
        /// The document's key.
        document: String,
        /// What is wrong, naming the branch and leaf.
        reason: String,
    },

    /// A document with this key is already in the sidecar; keys are unique per file.
    #[error("{}: document {document:?} is already in the sidecar", path.display())]
    DuplicateDocument {
        /// The file.
        path: PathBuf,
        /// The document's key.
        document: String,
    },

    /// No document with this key is in the sidecar.
    #[error("{}: no document {document:?} in the sidecar", path.display())]
    UnknownDocument {
        /// The file.
        path: PathBuf,
        /// The key that was asked for.
        document: String,
    },

    // ---- the stored data -----------------------------------------------------------------
    /// SQLite reported an error.
    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// Metadata could not be turned into JSON text, or stored metadata is not valid JSON.
    #[error("{}: metadata JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error.
        source: serde_json::Error,
    },

    /// The stored rows break the schema's contract (a NULL where a value is required, a
    /// negative offset, a leaf whose parent is not a branch, an unknown node kind).
    #[error("{}: corrupt sidecar: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },

    /// [`finish`](crate::HypergraphSidecar::finish) could not turn the file back into a single
    /// self-contained file (another connection holds it open, typically).
    #[error("{}: could not finish the sidecar: {reason}", path.display())]
    Finish {
        /// The file.
        path: PathBuf,
        /// What SQLite answered.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The sidecar file (or, for [`Error::AlreadyExists`], the existing path) this error is
    /// about.
    pub fn path(&self) -> &Path {
        match self {
            Error::AlreadyExists { path }
            | Error::Io { path, .. }
            | Error::NotADatabase { path }
            | Error::NotASidecar { path, .. }
            | Error::UnsupportedSchema { path, .. }
            | Error::ReadOnly { path }
            | Error::ReservedMetaKey { path, .. }
            | Error::InvalidDocument { path, .. }
            | Error::DuplicateDocument { path, .. }
            | Error::UnknownDocument { path, .. }
            | Error::Sqlite { path, .. }
            | Error::Json { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Finish { path, .. } => path,
        }
    }

    /// Whether the storage under the sidecar is out of room (SQLite's "database or disk is
    /// full", or an I/O error saying the disk or quota is full): a condition no later write to
    /// the same folder will escape, as opposed to a problem with one document.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Sqlite { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// Wraps an SQLite error, recognising "file is not a database".
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> Self {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
            Error::NotADatabase {
                path: path.to_path_buf(),
            }
        } else {
            Error::Sqlite {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
