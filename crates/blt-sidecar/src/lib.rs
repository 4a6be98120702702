//! The hypergraph sidecar: documents, segments and patches in → a queryable SQLite hypergraph
//! out.
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

mod document;
mod error;
mod sidecar;

pub use document::{content_hash, Branch, Leaf, SidecarDocument, SidecarSummary, Trunk};
pub use error::{Error, Result};
pub use sidecar::{
    HypergraphSidecar, Journal, APPLICATION_ID, CONTAINS, FORMAT, NEXT, PRODUCER, SAME_SOURCE,
    SCHEMA_SQL, SCHEMA_VERSION,
};
