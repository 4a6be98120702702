//! What goes into a sidecar: a document ([`Trunk`]), its segments ([`Branch`]) and their
//! patches ([`Leaf`]), plus the content hash that identifies a document's bytes.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A source document: one trunk node per document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trunk {
    /// The document's key, unique within one sidecar (the sample key in a WebDataset shard,
    /// the file stem for a single output). Stored in every node's `document` column.
    pub key: String,
    /// Where the document came from (a file path, an `hf://` URI), if known.
    pub source_path: Option<String>,
    /// SHA-256 of the document's bytes, lowercase hex (see [`content_hash`]).
    pub content_hash: String,
    /// Length of the document in bytes.
    pub byte_len: u64,
    /// Free-form JSON (the source's own fields, provenance).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl Trunk {
    /// A trunk for `bytes`: its hash and length computed, no source path, metadata `{}`.
    pub fn from_bytes(key: impl Into<String>, bytes: &[u8]) -> Self {
        Trunk {
            key: key.into(),
            source_path: None,
            content_hash: content_hash(bytes),
            byte_len: bytes.len() as u64,
            metadata: serde_json::Value::Object(serde_json::Map::new()),
        }
    }
}

/// A segment of a document (a run of text, a code block, an image): one branch node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// The segment's label (the pre-tokenizer's name for it, a heading, a column name).
    pub label: String,
    /// The segment's modality: `"text"`, `"code"`, `"image"`, `"audio"`, ….
    pub modality: String,
    /// Byte range `[start, end)` of the segment in the document.
    pub byte_range: Range<u64>,
    /// Identifies the source this segment is a view of: the branches of one document that
    /// share a `source_id` (an image and its caption, a PDF page's text and its raster) are
    /// joined by one `same_source` hyperedge.
    pub source_id: Option<String>,
    /// Free-form JSON (pre-tokenizer output: language, image size, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// The segment's patches, in order; consecutive leaves are joined by `next` hyperedges.
    #[serde(default)]
    pub leaves: Vec<Leaf>,
}

/// A patch: one leaf node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// Byte range `[start, end)` of the patch in the document.
    pub byte_range: Range<u64>,
    /// Token range `[start, end)` of the patch in the document's token stream.
    pub token_range: Range<u64>,
    /// Mean next-byte entropy over the patch's tokens, in nats.
    pub mean_entropy: f32,
    /// Largest next-byte entropy in the patch, in nats.
    pub max_entropy: f32,
    /// Mean prominence (L2 norm of the pre-norm hidden state) over the patch.
    pub prominence: f32,
    /// Mean coherence (`p² / (H + ε)`) over the patch.
    pub coherence: f32,
    /// Free-form JSON.
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// One document with all its segments and patches: the unit [`write_document`] stores in one
/// transaction.
///
/// [`write_document`]: crate::HypergraphSidecar::write_document
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidecarDocument {
    /// The document itself.
    pub trunk: Trunk,
    /// Its segments, in order; consecutive branches are joined by `next` hyperedges.
    #[serde(default)]
    pub branches: Vec<Branch>,
}

/// SHA-256 of `bytes`, as 64 lowercase hex digits: the [`Trunk::content_hash`] of a document.
///
/// ```
/// assert_eq!(
///     blt_sidecar::content_hash(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn content_hash(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest.iter() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Counts and statistics of a whole sidecar, from [`summary`](crate::HypergraphSidecar::summary).
///
/// Patch statistics are over all leaves of all documents; an entropy stored as NULL (a NaN
/// when written) is left out of the entropy statistics. A statistic over no values is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidecarSummary {
    /// Number of documents (trunk nodes).
    pub documents: u64,
    /// Number of segments (branch nodes).
    pub branches: u64,
    /// Number of patches (leaf nodes).
    pub leaves: u64,
    /// Sum of the documents' byte lengths.
    pub total_bytes: u64,
    /// Number of hyperedges.
    pub hyperedges: u64,
    /// Number of hyperedges per label (`contains`, `next`, `same_source`).
    pub edges_by_label: BTreeMap<String, u64>,
    /// Number of branches per modality.
    pub branches_by_modality: BTreeMap<String, u64>,
    /// Mean patch length in bytes.
    pub mean_patch_bytes: Option<f64>,
    /// Mean patch length in tokens.
    pub mean_patch_tokens: Option<f64>,
    /// Mean over patches of their mean entropy (every patch counts once).
    pub mean_entropy: Option<f64>,
    /// Mean entropy per token: the patches' mean entropies weighted by their token counts.
    pub token_weighted_entropy: Option<f64>,
    /// Smallest mean entropy of a patch.
    pub min_mean_entropy: Option<f64>,
    /// Largest mean entropy of a patch.
    pub max_mean_entropy: Option<f64>,
    /// Largest entropy anywhere (the largest `max_entropy` of a patch).
    pub max_entropy: Option<f64>,
}
