//! One patched document as the viewers need it: bytes, token ids, per-position entropies and
//! prominence, patches, segments and (optionally) embeddings. Read from a `blt-patches`
//! safetensors file (`docs/output-formats.md` §3) or built from a fresh analysis.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// The metadata `format` of a per-document output.
pub const FORMAT_NAME: &str = "blt-patches";
/// The metadata `format_version` this crate reads.
pub const FORMAT_VERSION: &str = "1";

/// Token id of BOS.
pub const BOS_ID: i32 = 1;
/// Token id of EOS.
pub const EOS_ID: i32 = 2;
/// Token id of the first byte (`byte b` ↔ id `b + 4`).
pub const BYTE_OFFSET: i32 = 4;

/// One segment of a document: its byte range, its token range and its modality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// `[start, end)` in the document's bytes.
    pub byte_range: Range<usize>,
    /// `[start, end)` in the concatenated token ids.
    pub token_range: Range<usize>,
    /// `text`, `code`, `image`, `audio`, `video`, `pdf`, `binary`, … (`unknown` when no
    /// description was found).
    pub modality: String,
}

/// Which positions the rows of an [`EmbeddingMatrix`] belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingRows {
    /// One row per patch (`--embeddings patch`): the patch mean of pre-norm hidden states.
    Patch,
    /// One row per token position (`--embeddings byte`).
    Token,
}

/// A row-major `[rows, dim]` matrix of embeddings, widened to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingMatrix {
    /// What the rows are.
    pub rows_are: EmbeddingRows,
    /// Number of columns (the model width `D`).
    pub dim: usize,
    /// `rows × dim` values, row-major.
    pub values: Vec<f32>,
}

impl EmbeddingMatrix {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i`, if it exists.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.values.get(i * self.dim..(i + 1) * self.dim)
    }
}

/// One patched document.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchedDocument {
    /// The document key (metadata `document_key`, or a name given by the caller).
    pub key: String,
    /// The input bytes.
    pub bytes: Vec<u8>,
    /// Token ids of all segments, concatenated (`1` BOS, `2` EOS, byte `b` = `b + 4`).
    pub token_ids: Vec<i32>,
    /// Entropy (nats) of the prediction made at each position.
    pub entropies: Vec<f32>,
    /// L2 norm of the pre-norm hidden state at each position (empty when unknown).
    pub prominence: Vec<f32>,
    /// Length of each patch, in token positions, in order. Patches are contiguous from
    /// position 0 (per segment; segments are consecutive), so starts follow from lengths.
    pub patch_lengths: Vec<usize>,
    /// The segments, in order.
    pub segments: Vec<SegmentInfo>,
    /// The global entropy threshold the patches were cut with, when the global rule was used
    /// (entropy mode, not monotonic); `None` otherwise.
    pub threshold: Option<f32>,
    /// The safetensors `__metadata__` (empty for a fresh analysis).
    pub metadata: BTreeMap<String, String>,
    /// Embeddings, when read with them and present.
    pub embeddings: Option<EmbeddingMatrix>,
}

fn invalid(path: &Path, reason: impl ToString) -> Error {
    Error::InvalidOutput {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn tensor_values<T, const N: usize>(
    st: &SafeTensors<'_>,
    name: &str,
    dtype: Dtype,
    path: &Path,
    from: fn([u8; N]) -> T,
) -> Result<(Vec<T>, Vec<usize>)> {
    let view = st
        .tensor(name)
        .map_err(|_| invalid(path, format!("tensor `{name}` is missing")))?;
    if view.dtype() != dtype {
        return Err(invalid(
            path,
            format!("tensor `{name}` is {:?}, expected {dtype:?}", view.dtype()),
        ));
    }
    let values = view
        .data()
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            from(a)
        })
        .collect();
    Ok((values, view.shape().to_vec()))
}

/// The global threshold recorded in a run's metadata, when the global rule applies.
pub fn threshold_from_metadata(metadata: &BTreeMap<String, String>) -> Option<f32> {
    if metadata.get("patch_mode").map(String::as_str) != Some("entropy")
        || metadata.get("monotonic").map(String::as_str) == Some("true")
    {
        return None;
    }
    metadata
        .get("threshold")
        .and_then(|t| t.parse::<f32>().ok())
        .filter(|t| t.is_finite())
}

impl PatchedDocument {
    /// A document from a fresh analysis: one segment covering everything, modality `text` for
    /// valid UTF-8 and `binary` otherwise (what `blt ingest` writes today). Checked with
    /// [`validate`](Self::validate).
    pub fn from_analysis(
        key: impl Into<String>,
        bytes: Vec<u8>,
        token_ids: Vec<i32>,
        entropies: Vec<f32>,
        prominence: Vec<f32>,
        patch_lengths: Vec<usize>,
        threshold: Option<f32>,
    ) -> Result<Self> {
        let modality = if std::str::from_utf8(&bytes).is_ok() {
            "text"
        } else {
            "binary"
        };
        let doc = Self {
            key: key.into(),
            segments: vec![SegmentInfo {
                byte_range: 0..bytes.len(),
                token_range: 0..token_ids.len(),
                modality: modality.to_string(),
            }],
            bytes,
            token_ids,
            entropies,
            prominence,
            patch_lengths,
            threshold,
            metadata: BTreeMap::new(),
            embeddings: None,
        };
        doc.validate()?;
        Ok(doc)
    }

    /// Parses the bytes of a per-document safetensors file; `path` is used in errors only.
    /// Embeddings are decoded only when `with_embeddings` is set (they are the bulk of a file).
    pub fn parse(data: &[u8], path: &Path, with_embeddings: bool) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(data).map_err(|e| invalid(path, e))?;
        let st = SafeTensors::deserialize(data).map_err(|e| invalid(path, e))?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if metadata.get("format").map(String::as_str) != Some(FORMAT_NAME) {
            return Err(invalid(path, "not a blt-patches file (metadata `format`)"));
        }
        if metadata.get("format_version").map(String::as_str) != Some(FORMAT_VERSION) {
            return Err(invalid(
                path,
                format!(
                    "format_version {:?}; this blt reads version {FORMAT_VERSION}",
                    metadata.get("format_version")
                ),
            ));
        }
        let (bytes, _) = tensor_values(&st, "bytes", Dtype::U8, path, |b: [u8; 1]| b[0])?;
        let (token_ids, _) = tensor_values(&st, "token_ids", Dtype::I32, path, i32::from_le_bytes)?;
        let (entropies, _) = tensor_values(&st, "entropies", Dtype::F32, path, f32::from_le_bytes)?;
        let (prominence, _) =
            tensor_values(&st, "prominence", Dtype::F32, path, f32::from_le_bytes)?;
        let (lengths, _) =
            tensor_values(&st, "patch_lengths", Dtype::I32, path, i32::from_le_bytes)?;
        let (seg, seg_shape) =
            tensor_values(&st, "segments", Dtype::I64, path, i64::from_le_bytes)?;
        if seg_shape.len() != 2 || seg_shape[1] != 4 {
            return Err(invalid(path, format!("`segments` has shape {seg_shape:?}")));
        }
        let to_usize = |v: i64, what: &str| {
            usize::try_from(v).map_err(|_| invalid(path, format!("negative {what}: {v}")))
        };
        let mut segments = Vec::with_capacity(seg_shape[0]);
        for row in seg.chunks_exact(4) {
            segments.push(SegmentInfo {
                byte_range: to_usize(row[0], "byte start")?..to_usize(row[1], "byte end")?,
                token_range: to_usize(row[2], "token start")?..to_usize(row[3], "token end")?,
                modality: "unknown".to_string(),
            });
        }
        let patch_lengths = lengths
            .iter()
            .map(|&l| usize::try_from(l).map_err(|_| invalid(path, format!("patch length {l}"))))
            .collect::<Result<Vec<_>>>()?;
        let embeddings = if with_embeddings {
            match st.tensor("embeddings") {
                Err(_) => None,
                Ok(view) => {
                    let shape = view.shape().to_vec();
                    if shape.len() != 2 {
                        return Err(invalid(path, format!("`embeddings` has shape {shape:?}")));
                    }
                    let values: Vec<f32> = match view.dtype() {
                        Dtype::F16 => view
                            .data()
                            .chunks_exact(2)
                            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                            .collect(),
                        Dtype::BF16 => view
                            .data()
                            .chunks_exact(2)
                            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                            .collect(),
                        Dtype::F32 => view
                            .data()
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect(),
                        other => {
                            return Err(invalid(path, format!("`embeddings` is {other:?}")));
                        }
                    };
                    let rows_are = if metadata.get("embeddings").map(String::as_str) == Some("byte")
                    {
                        EmbeddingRows::Token
                    } else {
                        EmbeddingRows::Patch
                    };
                    Some(EmbeddingMatrix {
                        rows_are,
                        dim: shape[1],
                        values,
                    })
                }
            }
        } else {
            None
        };
        let doc = Self {
            key: metadata
                .get("document_key")
                .cloned()
                .unwrap_or_else(|| path.display().to_string()),
            threshold: threshold_from_metadata(&metadata),
            bytes,
            token_ids,
            entropies,
            prominence,
            patch_lengths,
            segments,
            metadata,
            embeddings,
        };
        doc.validate().map_err(|e| match e {
            Error::InvalidDocument { reason, .. } => invalid(path, reason),
            other => other,
        })?;
        Ok(doc)
    }

    /// Reads a per-document safetensors file.
    pub fn read(path: &Path, with_embeddings: bool) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data, path, with_embeddings)
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::InvalidDocument {
            key: self.key.clone(),
            reason: reason.into(),
        }
    }

    /// Checks that the parts agree: one entropy (and prominence, when given) per token, patch
    /// lengths that are never 0 and cover at most the tokens plus one position per segment
    /// (`--include-next-token`), segments inside the bytes and tokens, embeddings of the right
    /// row count.
    pub fn validate(&self) -> Result<()> {
        let s = self.token_ids.len();
        if self.entropies.len() != s {
            return Err(self.bad(format!("{} entropies for {s} tokens", self.entropies.len())));
        }
        if !self.prominence.is_empty() && self.prominence.len() != s {
            return Err(self.bad(format!(
                "{} prominence values for {s} tokens",
                self.prominence.len()
            )));
        }
        if self.patch_lengths.contains(&0) {
            return Err(self.bad("a patch of length 0"));
        }
        let covered: usize = self.patch_lengths.iter().sum();
        if covered > s + self.segments.len().max(1) {
            return Err(self.bad(format!("patches cover {covered} positions of {s}")));
        }
        for seg in &self.segments {
            if seg.byte_range.start > seg.byte_range.end
                || seg.byte_range.end > self.bytes.len()
                || seg.token_range.start > seg.token_range.end
                || seg.token_range.end > s
            {
                return Err(self.bad(format!(
                    "segment bytes {:?} tokens {:?} outside {} bytes, {s} tokens",
                    seg.byte_range,
                    seg.token_range,
                    self.bytes.len()
                )));
            }
        }
        if let Some(e) = &self.embeddings {
            let want = match e.rows_are {
                EmbeddingRows::Patch => self.patch_lengths.len(),
                EmbeddingRows::Token => s,
            };
            if e.dim == 0 || e.values.len() != want * e.dim {
                return Err(self.bad(format!(
                    "embeddings hold {} values, expected {want} rows of {}",
                    e.values.len(),
                    e.dim
                )));
            }
        }
        Ok(())
    }

    /// Number of token positions.
    pub fn num_tokens(&self) -> usize {
        self.token_ids.len()
    }

    /// First position of each patch.
    pub fn patch_starts(&self) -> Vec<usize> {
        let mut start = 0;
        self.patch_lengths
            .iter()
            .map(|&l| {
                let s = start;
                start += l;
                s
            })
            .collect()
    }

    /// Positions of each patch that exist in `token_ids` (the extra position of
    /// `--include-next-token` is left out, so a range may be empty).
    pub fn patch_token_ranges(&self) -> Vec<Range<usize>> {
        let s = self.num_tokens();
        let mut start = 0;
        self.patch_lengths
            .iter()
            .map(|&l| {
                let r = start.min(s)..(start + l).min(s);
                start += l;
                r
            })
            .collect()
    }

    /// Mean of `values` over each patch's existing positions (0 for a patch without any).
    pub fn patch_means(&self, values: &[f32]) -> Vec<f32> {
        self.patch_token_ranges()
            .into_iter()
            .map(|r| {
                let v = values.get(r).unwrap_or(&[]);
                if v.is_empty() {
                    0.0
                } else {
                    (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32
                }
            })
            .collect()
    }

    /// The byte a token stands for, if it is a byte token.
    pub fn token_byte(id: i32) -> Option<u8> {
        u8::try_from(id - BYTE_OFFSET).ok()
    }

    /// Bytes covered by each segment's modality, summed per modality.
    pub fn bytes_per_modality(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for seg in &self.segments {
            *out.entry(seg.modality.clone()).or_insert(0) += seg.byte_range.len() as u64;
        }
        out
    }

    /// The patch embeddings `[P, dim]`: the stored rows in `patch` mode; in `byte` mode, the
    /// mean of the token rows over each patch's existing positions (zeros for a patch without
    /// any). `None` without embeddings.
    pub fn patch_embeddings(&self) -> Option<EmbeddingMatrix> {
        let e = self.embeddings.as_ref()?;
        match e.rows_are {
            EmbeddingRows::Patch => Some(e.clone()),
            EmbeddingRows::Token => {
                let mut values = Vec::with_capacity(self.patch_lengths.len() * e.dim);
                for r in self.patch_token_ranges() {
                    let mut sum = vec![0f64; e.dim];
                    for t in r.clone() {
                        if let Some(row) = e.row(t) {
                            for (s, &v) in sum.iter_mut().zip(row) {
                                *s += v as f64;
                            }
                        }
                    }
                    let n = r.len().max(1) as f64;
                    values.extend(sum.into_iter().map(|s| (s / n) as f32));
                }
                Some(EmbeddingMatrix {
                    rows_are: EmbeddingRows::Patch,
                    dim: e.dim,
                    values,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> PatchedDocument {
        PatchedDocument::from_analysis(
            "t",
            b"abc".to_vec(),
            vec![1, 101, 102, 103, 2],
            vec![0.5, 2.0, 0.1, 3.0, 1.0],
            vec![1.0, 2.0, 3.0, 4.0, 5.0],
            vec![1, 2, 2],
            Some(1.0),
        )
        .unwrap()
    }

    #[test]
    fn starts_ranges_and_means() {
        let d = doc();
        assert_eq!(d.patch_starts(), vec![0, 1, 3]);
        assert_eq!(d.patch_token_ranges(), vec![0..1, 1..3, 3..5]);
        assert_eq!(d.patch_means(&d.prominence), vec![1.0, 2.5, 4.5]);
        assert_eq!(d.bytes_per_modality().get("text"), Some(&3));
    }

    #[test]
    fn rejects_inconsistent_documents() {
        let mut d = doc();
        d.entropies.pop();
        assert!(d.validate().is_err());
        let mut d = doc();
        d.patch_lengths = vec![1, 0, 4];
        assert!(d.validate().is_err());
        let mut d = doc();
        d.patch_lengths = vec![10];
        assert!(d.validate().is_err());
    }

    #[test]
    fn token_mode_embeddings_pool_per_patch() {
        let mut d = doc();
        d.embeddings = Some(EmbeddingMatrix {
            rows_are: EmbeddingRows::Token,
            dim: 2,
            values: vec![0., 0., 1., 2., 3., 4., 5., 6., 7., 8.],
        });
        d.validate().unwrap();
        let p = d.patch_embeddings().unwrap();
        assert_eq!(p.values, vec![0., 0., 2., 3., 6., 7.]);
    }
}
