//! One document's results, and the two shapes they are written in: a tensor record (safetensors /
//! WebDataset sample) and a hypergraph (the SQLite sidecar).

use std::collections::BTreeMap;

use blt_datasets::{DocumentRecord, OutputTensor};
use blt_patcher::PatchBoundaries;
use blt_pretokenize::Segment;
use blt_sidecar::{Branch, Leaf, SidecarDocument, Trunk};
use blt_tokenizer::BltTokenizer;

/// Name and version of the per-document tensor format (see `docs/output-formats.md`).
pub const FORMAT_NAME: &str = "blt-patches";
/// Version of the per-document tensor format.
pub const FORMAT_VERSION: &str = "1";
/// Added to the entropy in the coherence score `prominence² / (entropy + ε)`.
pub const COHERENCE_EPSILON: f32 = 1e-6;

/// Which embeddings an output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddingsMode {
    /// None.
    None,
    /// The mean pre-norm hidden state of each patch, `[P, dim]` in f16 (the default).
    #[default]
    Patch,
    /// The pre-norm hidden state of every token, `[S, dim]` in f16.
    Byte,
}

impl EmbeddingsMode {
    /// The name used on the command line and in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Patch => "patch",
            Self::Byte => "byte",
        }
    }
}

/// One segment's model results.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentResult {
    /// The segment.
    pub segment: Segment,
    /// Its token ids (BOS/EOS as the tokenizer adds them).
    pub ids: Vec<u32>,
    /// Entropy at each token position.
    pub entropies: Vec<f32>,
    /// Prominence at each token position.
    pub prominence: Vec<f32>,
    /// Patches over `ids`.
    pub patches: PatchBoundaries,
    /// Embeddings per the run's [`EmbeddingsMode`], row-major f32 (`[P, dim]` or `[S, dim]`).
    pub embeddings: Option<Vec<f32>>,
}

/// What detection said about a document (strings as written to outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionSummary {
    /// The format (`png`, `code:rust`, `text`, …).
    pub format: String,
    /// The modality it was routed to.
    pub modality: String,
    /// How it was found (`magic`, `shebang`, `extension`, `fallback`, `override`).
    pub by: String,
}

/// The record metadata key of [`DocumentResult::source_modified_ns`].
pub const SOURCE_MODIFIED_KEY: &str = "source_modified_ns";

/// Everything computed for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentResult {
    /// Stable output key.
    pub key: String,
    /// Source path (or `None` for `--text`).
    pub source_path: Option<String>,
    /// The exact input bytes.
    pub bytes: Vec<u8>,
    /// Per-segment results, in order.
    pub segments: Vec<SegmentResult>,
    /// Model width (embedding row length).
    pub dim: usize,
    /// Detection, when the document went through it.
    pub detection: Option<DetectionSummary>,
    /// The source file's modification time (nanoseconds since the Unix epoch) when it was read,
    /// for a document read from a file: `--resume` redoes a document whose file changed.
    pub source_modified_ns: Option<u128>,
}

/// Mean of the rows `range` of a row-major `[n, dim]` matrix.
pub fn mean_rows(matrix: &[f32], dim: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    let mut out = vec![0f32; dim];
    let n = range.len().max(1) as f32;
    for row in range {
        for (o, &v) in out.iter_mut().zip(&matrix[row * dim..(row + 1) * dim]) {
            *o += v;
        }
    }
    out.iter_mut().for_each(|o| *o /= n);
    out
}

/// `prominence² / (entropy + ε)` per position.
pub fn coherence(prominence: &[f32], entropies: &[f32]) -> Vec<f32> {
    prominence
        .iter()
        .zip(entropies)
        .map(|(p, h)| p * p / (h + COHERENCE_EPSILON))
        .collect()
}

impl DocumentResult {
    fn concat<T: Copy>(&self, f: impl Fn(&SegmentResult) -> &[T]) -> Vec<T> {
        self.segments
            .iter()
            .flat_map(|s| f(s).iter().copied())
            .collect()
    }

    /// Total number of tokens over all segments.
    pub fn token_count(&self) -> usize {
        self.segments.iter().map(|s| s.ids.len()).sum()
    }

    /// Total number of patches over all segments.
    pub fn patch_count(&self) -> usize {
        self.segments.iter().map(|s| s.patches.len()).sum()
    }

    /// The tensor record: see `docs/output-formats.md` for every tensor and metadata key.
    pub fn to_record(
        &self,
        run_metadata: &BTreeMap<String, String>,
        embeddings: EmbeddingsMode,
    ) -> DocumentRecord {
        let ids: Vec<i32> = self.concat(|s| &s.ids).iter().map(|&i| i as i32).collect();
        let entropies = self.concat(|s| &s.entropies);
        let prominence = self.concat(|s| &s.prominence);
        let mut starts = Vec::new();
        let mut lengths = Vec::new();
        let mut segment_table = Vec::new();
        let mut offset = 0usize;
        for s in &self.segments {
            starts.extend(s.patches.starts().iter().map(|&p| (p + offset) as i32));
            lengths.extend(s.patches.lengths().iter().map(|&l| l as i32));
            segment_table.extend([
                s.segment.byte_range.start as i64,
                s.segment.byte_range.end as i64,
                offset as i64,
                (offset + s.ids.len()) as i64,
            ]);
            offset += s.ids.len();
        }
        let n = ids.len();
        let mut tensors = vec![
            OutputTensor::u8("bytes", &self.bytes),
            OutputTensor::i32("token_ids", vec![n], &ids),
            OutputTensor::f32("entropies", vec![n], &entropies),
            OutputTensor::i32("patch_starts", vec![starts.len()], &starts),
            OutputTensor::i32("patch_lengths", vec![lengths.len()], &lengths),
            OutputTensor::f32("prominence", vec![n], &prominence),
            OutputTensor::f32("coherence", vec![n], &coherence(&prominence, &entropies)),
            OutputTensor::i64("segments", vec![self.segments.len(), 4], &segment_table),
        ];
        if embeddings != EmbeddingsMode::None {
            let rows: Vec<f32> = self
                .segments
                .iter()
                .flat_map(|s| s.embeddings.iter().flatten().copied())
                .collect();
            let count = rows.len() / self.dim.max(1);
            tensors.push(OutputTensor::f16_from_f32(
                "embeddings",
                vec![count, self.dim],
                &rows,
            ));
        }
        let mut metadata = run_metadata.clone();
        metadata.insert("format".into(), FORMAT_NAME.into());
        metadata.insert("format_version".into(), FORMAT_VERSION.into());
        metadata.insert("document_key".into(), self.key.clone());
        metadata.insert(
            "source_path".into(),
            self.source_path.clone().unwrap_or_default(),
        );
        metadata.insert("source_bytes".into(), self.bytes.len().to_string());
        metadata.insert("num_tokens".into(), n.to_string());
        metadata.insert("num_patches".into(), lengths.len().to_string());
        metadata.insert("num_segments".into(), self.segments.len().to_string());
        metadata.insert("embeddings".into(), embeddings.as_str().into());
        if let Some(d) = &self.detection {
            metadata.insert("detected_format".into(), d.format.clone());
            metadata.insert("detected_modality".into(), d.modality.clone());
            metadata.insert("detected_by".into(), d.by.clone());
        }
        if let Some(ns) = self.source_modified_ns {
            metadata.insert(SOURCE_MODIFIED_KEY.into(), ns.to_string());
        }
        if embeddings == EmbeddingsMode::None {
            metadata.remove("embeddings_dtype");
        }
        let json = serde_json::json!({
            "key": self.key,
            "source_path": self.source_path,
            "source_bytes": self.bytes.len(),
            "num_tokens": n,
            "num_patches": lengths.len(),
            "segments": self.segments.iter().map(|s| serde_json::json!({
                "modality": s.segment.modality.as_str(),
                "label": s.segment.label,
                "byte_range": [s.segment.byte_range.start, s.segment.byte_range.end],
                "source_id": s.segment.source_id,
                "metadata": s.segment.metadata,
            })).collect::<Vec<_>>(),
            "metadata": metadata,
        });
        DocumentRecord {
            key: self.key.clone(),
            metadata,
            tensors,
            json,
        }
    }

    /// The hypergraph: this document as a Trunk, its segments as Branches, its patches as Leaves.
    pub fn to_sidecar(&self) -> SidecarDocument {
        let mut token_offset = 0u64;
        let branches = self
            .segments
            .iter()
            .map(|s| {
                let offset = token_offset;
                token_offset += s.ids.len() as u64;
                let coherence = coherence(&s.prominence, &s.entropies);
                // Offset of each token position's byte (specials take the offset of the next
                // byte), so a patch maps to the bytes it covers: document offsets for a raw
                // segment, offsets in the decoded content for a view (decoded pixels, samples,
                // text), whose leaves then carry the segment's whole document range and their
                // decoded range in metadata. A view is a segment whose byte tokens are not
                // exactly its document range.
                let byte_tokens = s
                    .ids
                    .iter()
                    .filter(|&&id| BltTokenizer::id_to_byte(id).is_some())
                    .count() as u64;
                let range = &s.segment.byte_range;
                let is_view = s.segment.decoded.is_some() || byte_tokens != range.end - range.start;
                let base = if is_view { 0 } else { range.start };
                let mut byte_at = Vec::with_capacity(s.ids.len() + 1);
                let mut next = base;
                for &id in &s.ids {
                    byte_at.push(next);
                    if BltTokenizer::id_to_byte(id).is_some() {
                        next += 1;
                    }
                }
                byte_at.push(next);
                let n = s.ids.len();
                let leaves = s
                    .patches
                    .iter()
                    .map(|r| {
                        let tokens = r.start.min(n)..r.end.min(n);
                        let stat = |v: &[f32]| {
                            let slice = &v[tokens.clone()];
                            let mean = if slice.is_empty() {
                                0.0
                            } else {
                                slice.iter().sum::<f32>() / slice.len() as f32
                            };
                            let max = slice.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                            (mean, if slice.is_empty() { 0.0 } else { max })
                        };
                        let (mean_entropy, max_entropy) = stat(&s.entropies);
                        let own = byte_at[tokens.start]..byte_at[tokens.end];
                        let (byte_range, metadata) = if is_view {
                            (
                                range.clone(),
                                serde_json::json!({ "decoded_range": [own.start, own.end] }),
                            )
                        } else {
                            (own, serde_json::json!({}))
                        };
                        Leaf {
                            byte_range,
                            // document token positions (the concatenation of all segments)
                            token_range: offset + r.start as u64..offset + r.end as u64,
                            mean_entropy,
                            max_entropy,
                            prominence: stat(&s.prominence).0,
                            coherence: stat(&coherence).0,
                            metadata,
                        }
                    })
                    .collect();
                Branch {
                    label: s.segment.label.clone(),
                    modality: s.segment.modality.as_str().into(),
                    byte_range: s.segment.byte_range.clone(),
                    source_id: s.segment.source_id.clone(),
                    metadata: s.segment.metadata.clone(),
                    leaves,
                }
            })
            .collect();
        SidecarDocument {
            trunk: Trunk {
                key: self.key.clone(),
                source_path: self.source_path.clone(),
                content_hash: blt_sidecar::content_hash(&self.bytes),
                byte_len: self.bytes.len() as u64,
                metadata: serde_json::json!({}),
            },
            branches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_and_coherence() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(mean_rows(&m, 2, 0..3), vec![3.0, 4.0]);
        assert_eq!(mean_rows(&m, 2, 1..2), vec![3.0, 4.0]);
        let c = coherence(&[2.0], &[1.0]);
        assert!((c[0] - 4.0 / (1.0 + 1e-6)).abs() < 1e-6);
    }
}
