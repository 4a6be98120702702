//! The one error type of this crate, grouped by cause: inputs, records, sinks. Every variant
//! names the path, key or tensor involved.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while enumerating or reading documents and writing records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- file system ---------------------------------------------------------------------
    /// An I/O operation on `path` failed (missing, unreadable, disk full, failed rename …).
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    // ---- inputs --------------------------------------------------------------------------
    /// A folder input (`InputSpec::Dir`) names something that is not a folder.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path given as the folder.
        path: PathBuf,
    },

    /// A file to be read (a file input, a document, a table, a file a table row names) is not a
    /// regular file: a folder, a FIFO, a socket or a device such as `/dev/zero`, which could
    /// block or never end. Nothing is read from it.
    #[error("{path}: not a regular file ({kind}); only regular files are read")]
    NotAFile {
        /// The path (for a symlink, the link as given).
        path: PathBuf,
        /// What it is instead: `a directory`, `a FIFO`, `a socket`, `a character device`,
        /// `a block device` or `not a regular file`.
        kind: &'static str,
    },

    /// A path found in a table (the `path` of a Hugging Face `{bytes, path}` value, or a file
    /// name listed by a Hub dataset) that would be read from outside the folder it must stay in:
    /// the table's folder for a local table, the dataset's cache folder for a Hub dataset.
    #[error("path {value:?} refused: {rule} (paths in tables are read only from inside {base})")]
    PathRefused {
        /// The path as the data gave it.
        value: String,
        /// The folder it must stay in.
        base: PathBuf,
        /// Which rule it broke (`an absolute path`, `a ".." component`, `it resolves to … outside
        /// the folder` …).
        rule: String,
    },

    /// A file named by a table row (`{bytes: null, path}`) is larger than the limit.
    #[error(
        "{path}: over the limit of {limit} bytes for a file a table row names (option {option})"
    )]
    ReferencedFileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
        /// The option field that raises it: `max_referenced_file_bytes` of
        /// [`ReadLimits`](crate::ReadLimits).
        option: &'static str,
    },

    /// One JSONL line or CSV record is longer than the limit; it is skipped (that row's failure)
    /// and reading goes on with the next one.
    #[error("{path}: row {row}: one record is over the limit of {limit} bytes (option {option})")]
    RecordTooLarge {
        /// The table file.
        path: PathBuf,
        /// The row's index in the file (rows count from 0).
        row: u64,
        /// The limit in bytes.
        limit: u64,
        /// The option field that raises it: `max_record_bytes` of
        /// [`ReadLimits`](crate::ReadLimits).
        option: &'static str,
    },

    /// A third-party reader (arrow-ipc, parquet) panicked on a corrupt file. The panic was
    /// caught; the file yields no more rows.
    #[error("{path}: the reader panicked: {message}")]
    ReaderPanicked {
        /// The file.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },

    /// The glob of a folder input does not compile.
    #[error("invalid glob {glob:?}: {source}")]
    InvalidGlob {
        /// The pattern as given.
        glob: String,
        /// Why `globset` rejected it.
        #[source]
        source: globset::Error,
    },

    /// A file is larger than the `max_bytes` passed to `DocumentRef::read`.
    #[error("{path}: {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length in bytes (at least `max + 1` when it grew while being read).
        len: u64,
        /// The limit.
        max: u64,
    },

    /// A `--text` input is larger than the `max_bytes` passed to `DocumentRef::read`.
    #[error("text input {key}: {len} bytes, over the limit of {max} bytes")]
    TextTooLarge {
        /// The document key of the text.
        key: String,
        /// Its length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },

    /// A table row's document is larger than the `max_bytes` passed to `DocumentRef::read`.
    #[error("{origin} ({key}): {len} bytes, over the limit of {max} bytes")]
    RowTooLarge {
        /// The document key.
        key: String,
        /// `file#row`.
        origin: String,
        /// Its length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },

    /// A table or Hub input was given to [`enumerate`](crate::enumerate), which lists files;
    /// such inputs are streamed by [`open_documents`](crate::open_documents).
    #[error("table and Hugging Face inputs are streamed, not listed: use open_documents")]
    StreamedInput,

    /// A table file cannot be read: its format, its schema (no text column), or a corrupt part.
    #[error("{path}: {reason}")]
    Table {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A Hugging Face dataset could not be listed or a file of it fetched.
    #[error(transparent)]
    Hub(#[from] blt_hub::Error),

    /// No file of a Hugging Face dataset holds the config and split asked for.
    #[error("dataset {repo}, config {config}, split {split}: {reason}")]
    SplitNotFound {
        /// Repo id.
        repo: String,
        /// Config name (`default` when none was given).
        config: String,
        /// Split name.
        split: String,
        /// What was found instead.
        reason: String,
    },

    // ---- ranks ---------------------------------------------------------------------------
    /// A rank outside `0..world_size`, or a world size of 0.
    #[error("rank {rank} is not below the world size {world_size} (ranks count from 0)")]
    InvalidRank {
        /// The rank.
        rank: usize,
        /// The world size.
        world_size: usize,
    },

    /// A launcher variable that should hold a number does not.
    #[error("environment variable {name}={value:?} is not a non-negative integer")]
    InvalidRankVariable {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },

    /// A launcher set a rank but no count of ranks.
    #[error("{rank_var} is set but {count_var} is not: pass --world-size (the number of tasks)")]
    MissingWorldSize {
        /// The variable that set the rank.
        rank_var: String,
        /// The variable that would have held the count.
        count_var: String,
    },

    // ---- Arrow / Parquet sinks -----------------------------------------------------------
    /// A document cannot go into the Arrow layout: its bytes are not UTF-8 text.
    #[error("record {key}: not UTF-8 text, which Meta's Arrow layout (text: string) cannot hold without loss; write it with --format parquet (bytes column) or safetensors")]
    NotUtf8Text {
        /// The record's key.
        key: String,
    },

    /// A document cannot go into an Arrow record batch: one of its columns holds more than the
    /// `i32` offsets of Arrow's string and list arrays can address. No option raises this: it
    /// is the format's limit.
    #[error("record {key}: its {column} column holds {len} (bytes, or values of a list), over the {limit} one Arrow record batch can address")]
    ShardRowTooLarge {
        /// The record's key (`sample_id`).
        key: String,
        /// The column (`text`, `bytes`, `entropies`, `patch_lengths`, `metadata`, `sample_id`).
        column: &'static str,
        /// Its length: bytes for strings and binary, elements for lists.
        len: u64,
        /// The most one record batch holds in one column (`i32::MAX`).
        limit: u64,
    },

    /// The Arrow or Parquet writer failed.
    #[error("{path}: {reason}")]
    TableWrite {
        /// The shard being written.
        path: PathBuf,
        /// The writer's error.
        reason: String,
    },

    // ---- records -------------------------------------------------------------------------
    /// A record key is empty, too long or holds a character outside `[A-Za-z0-9_-]`.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor of a record cannot be written: empty or duplicate name, or data whose length
    /// does not match its shape and dtype.
    #[error("record {key}: tensor {name:?}: {reason}")]
    InvalidTensor {
        /// The record's key.
        key: String,
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record's JSON could not be encoded.
    #[error("record {key}: cannot encode JSON: {source}")]
    Json {
        /// The record's key.
        key: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },

    // ---- sinks ---------------------------------------------------------------------------
    /// Shard options that cannot work (zero limits, a prefix with characters outside
    /// `[A-Za-z0-9_-]`).
    #[error("invalid shard options for {dir}: {reason}")]
    InvalidOptions {
        /// The output folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A key written twice into the same shard (WebDataset groups members by key, so the two
    /// samples would merge).
    #[error("key {key} already written to shard {path}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// The shard (its final `.tar` path).
        path: PathBuf,
    },

    /// A complete shard that cannot be read back as a tar archive.
    #[error("{path}: not a readable tar shard: {reason}")]
    InvalidShard {
        /// The shard.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The option field that raises the limit this error hit, for the limits a caller sets
    /// ([`ReadLimits`](crate::ReadLimits)): `max_record_bytes`, `max_referenced_file_bytes`.
    pub fn option(&self) -> Option<&'static str> {
        match self {
            Error::RecordTooLarge { option, .. } | Error::ReferencedFileTooLarge { option, .. } => {
                Some(option)
            }
            _ => None,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `.map_err(io_at(path))`: attaches the path to an `io::Error`.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::io(path, source)
}
