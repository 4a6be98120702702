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
mod error;
mod key;
mod record;
mod safetensors_dir;
mod source;
mod webdataset;

pub use atomic::write_atomic;
pub use error::{Error, Result};
pub use key::{document_key, text_key, validate_key, MAX_KEY_LEN, MAX_READABLE_LEN};
pub use record::{safetensors_bytes, DocumentRecord, Dtype, OutputTensor};
pub use safetensors_dir::SafetensorsDirSink;
pub use source::{enumerate, DocumentOrigin, DocumentRef, InputSpec};
pub use webdataset::{
    complete_shards, tar_index, ClosedShard, ShardEvent, ShardOptions, WebDatasetSink,
};
