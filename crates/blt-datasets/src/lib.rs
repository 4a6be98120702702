#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

mod atomic;
mod confine;
mod entropy_shards;
mod error;
mod hf;
mod key;
mod limits;
mod ranks;
mod record;
mod safetensors_dir;
mod source;
mod stream;
mod table;
mod webdataset;

pub use atomic::{lock_temp, remove_if_stale, write_atomic};
pub use confine::PathResolver;
pub use entropy_shards::{
    complete_marker, read_shard, CompletedShard, EntropyFileFormat, EntropyRow,
    EntropyShardOptions, EntropyShardSink, DEFAULT_BATCH_BYTES,
};
pub use error::{Error, Result};
pub use hf::{split_files, HfDatasetSpec};
pub use key::{document_key, text_key, validate_key, MAX_KEY_LEN, MAX_READABLE_LEN};
pub use limits::{ReadLimits, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_REFERENCED_FILE_BYTES};
pub use ranks::{completion_marker, rank_stats_path, RankSpec, RANK_VARIABLES};
pub use record::{safetensors_bytes, DocumentRecord, Dtype, OutputTensor};
pub use safetensors_dir::SafetensorsDirSink;
pub use source::{enumerate, DocumentOrigin, DocumentRef, InputSpec, RowDocument};
pub use stream::{
    open_documents, open_documents_with, DocumentStream, Selection, SourceFailure, SourceItem,
};
pub use table::{ColumnSpec, RowError, TableFormat, TableReader, TableRow};
pub use webdataset::{
    complete_shards, tar_index, ClosedShard, ShardEvent, ShardOptions, WebDatasetSink,
};
