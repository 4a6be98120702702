//! Reading outputs back: a per-document safetensors file, or the samples of a WebDataset shard.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use blt_patcher::PatchBoundaries;
use blt_pretokenize::{Modality, Segment};
use safetensors::{Dtype, SafeTensors};

use crate::document::{DocumentResult, SegmentResult};
use crate::{Error, Result};

/// One document as stored in a `blt-patches` safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    /// The file's `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// The exact input bytes.
    pub bytes: Vec<u8>,
    /// Token ids of all segments, concatenated.
    pub token_ids: Vec<i32>,
    /// Entropy per token position.
    pub entropies: Vec<f32>,
    /// Prominence per token position.
    pub prominence: Vec<f32>,
    /// Coherence per token position.
    pub coherence: Vec<f32>,
    /// Patch starts (token positions in the concatenation).
    pub patch_starts: Vec<i32>,
    /// Patch lengths.
    pub patch_lengths: Vec<i32>,
    /// Per segment: byte start, byte end, token start, token end.
    pub segments: Vec<[i64; 4]>,
    /// Shape of the `embeddings` tensor, if present.
    pub embeddings_shape: Option<Vec<usize>>,
}

fn invalid(path: &Path, reason: impl ToString) -> Error {
    Error::InvalidOutput {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn values<T, const N: usize>(
    st: &SafeTensors<'_>,
    name: &str,
    dtype: Dtype,
    path: &Path,
    from: fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let view = st
        .tensor(name)
        .map_err(|_| invalid(path, format!("tensor `{name}` is missing")))?;
    if view.dtype() != dtype {
        return Err(invalid(
            path,
            format!("tensor `{name}` is {:?}, expected {dtype:?}", view.dtype()),
        ));
    }
    Ok(view
        .data()
        .chunks_exact(N)
        .map(|c| from(c.try_into().unwrap_or([0; N])))
        .collect())
}

impl StoredDocument {
    /// Parses the bytes of a safetensors output; `path` is only used in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<Self> {
        let (_, header) =
            SafeTensors::read_metadata(data).map_err(|e| invalid(path, e.to_string()))?;
        let st = SafeTensors::deserialize(data).map_err(|e| invalid(path, e.to_string()))?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if metadata.get("format").map(String::as_str) != Some(crate::document::FORMAT_NAME) {
            return Err(invalid(path, "not a blt-patches file (metadata `format`)"));
        }
        match metadata.get("format_version").map(String::as_str) {
            Some(crate::document::FORMAT_VERSION) => {}
            other => {
                return Err(invalid(
                    path,
                    format!(
                        "format_version {other:?}; this blt reads version {}",
                        crate::document::FORMAT_VERSION
                    ),
                ))
            }
        }
        let seg = values(&st, "segments", Dtype::I64, path, i64::from_le_bytes)?;
        let doc = Self {
            bytes: values(&st, "bytes", Dtype::U8, path, |b: [u8; 1]| b[0])?,
            token_ids: values(&st, "token_ids", Dtype::I32, path, i32::from_le_bytes)?,
            entropies: values(&st, "entropies", Dtype::F32, path, f32::from_le_bytes)?,
            prominence: values(&st, "prominence", Dtype::F32, path, f32::from_le_bytes)?,
            coherence: values(&st, "coherence", Dtype::F32, path, f32::from_le_bytes)?,
            patch_starts: values(&st, "patch_starts", Dtype::I32, path, i32::from_le_bytes)?,
            patch_lengths: values(&st, "patch_lengths", Dtype::I32, path, i32::from_le_bytes)?,
            segments: seg
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
            embeddings_shape: st.tensor("embeddings").ok().map(|v| v.shape().to_vec()),
            metadata,
        };
        doc.check(path)?;
        Ok(doc)
    }

    /// Refuses a record whose tensors disagree with each other: per-position tensors of other
    /// lengths than `token_ids`, segment rows whose byte or token ranges are reversed or run
    /// past `bytes` or `token_ids`, negative patch lengths. Everything that reads a record
    /// (`to_result`, the sidecar rebuilt from a shard) may then slice by these ranges.
    fn check(&self, path: &Path) -> Result<()> {
        let n = self.token_ids.len();
        for (name, len) in [
            ("entropies", self.entropies.len()),
            ("prominence", self.prominence.len()),
            ("coherence", self.coherence.len()),
        ] {
            if len != n {
                return Err(invalid(
                    path,
                    format!("{name} has {len} values, token_ids {n}"),
                ));
            }
        }
        if self.patch_lengths.iter().any(|&l| l < 0) {
            return Err(invalid(path, "a patch length is negative"));
        }
        let bytes = self.bytes.len() as i64;
        for (i, &[b0, b1, t0, t1]) in self.segments.iter().enumerate() {
            if !(0 <= b0 && b0 <= b1 && b1 <= bytes && 0 <= t0 && t0 <= t1 && t1 <= n as i64) {
                return Err(invalid(
                    path,
                    format!(
                        "segment {i} has bytes {b0}..{b1} of {bytes} and tokens {t0}..{t1} of {n}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads a per-document output file.
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data, path)
    }

    /// The document's results again (without embeddings), with segment descriptions taken from
    /// the sample's JSON when given (`segments[i].modality/label/source_id/metadata`).
    pub fn to_result(&self, json: Option<&serde_json::Value>) -> DocumentResult {
        let described = json
            .and_then(|j| j.get("segments"))
            .and_then(|s| s.as_array());
        // Patches belong to segments in order: each segment's lengths cover its tokens (plus one
        // phantom position under `include_next_token`).
        let extra = usize::from(
            self.metadata.get("include_next_token").map(String::as_str) == Some("true"),
        );
        let mut lengths = self.patch_lengths.iter().map(|&l| l as usize);
        let segments = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, &[b0, b1, t0, t1])| {
                let desc = described.and_then(|d| d.get(i));
                let get = |k: &str| desc.and_then(|d| d.get(k));
                let tokens = t0 as usize..t1 as usize;
                let segment = Segment {
                    modality: get("modality")
                        .and_then(|m| serde_json::from_value::<Modality>(m.clone()).ok())
                        .unwrap_or(Modality::Binary),
                    label: get("label")
                        .and_then(|l| l.as_str())
                        .unwrap_or("document")
                        .to_string(),
                    byte_range: b0 as u64..b1 as u64,
                    source_id: get("source_id").and_then(|s| s.as_str()).map(String::from),
                    metadata: get("metadata")
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({})),
                    decoded: None,
                };
                SegmentResult {
                    segment,
                    ids: self.token_ids[tokens.clone()]
                        .iter()
                        .map(|&i| i as u32)
                        .collect(),
                    entropies: self.entropies[tokens.clone()].to_vec(),
                    prominence: self.prominence[tokens.clone()].to_vec(),
                    patches: {
                        let target = tokens.len() + extra;
                        let mut own = Vec::new();
                        let mut covered = 0;
                        while covered < target {
                            let Some(l) = lengths.next() else { break };
                            covered += l;
                            own.push(l);
                        }
                        PatchBoundaries::from_lengths(own).unwrap_or_default()
                    },
                    embeddings: None,
                }
            })
            .collect();
        DocumentResult {
            key: self
                .metadata
                .get("document_key")
                .cloned()
                .unwrap_or_default(),
            source_path: self
                .metadata
                .get("source_path")
                .filter(|p| !p.is_empty())
                .cloned(),
            bytes: self.bytes.clone(),
            source_modified_ns: self
                .metadata
                .get(crate::document::SOURCE_MODIFIED_KEY)
                .and_then(|v| v.parse().ok()),
            segments,
            dim: self
                .embeddings_shape
                .as_ref()
                .and_then(|s| s.get(1).copied())
                .unwrap_or(0),
            detection: match (
                self.metadata.get("detected_format"),
                self.metadata.get("detected_modality"),
                self.metadata.get("detected_by"),
            ) {
                (Some(format), Some(modality), Some(by)) => {
                    Some(crate::document::DetectionSummary {
                        format: format.clone(),
                        modality: modality.clone(),
                        by: by.clone(),
                    })
                }
                _ => None,
            },
        }
    }
}

/// The samples of a WebDataset shard: (key, sample JSON, stored document), in order.
pub fn read_shard(path: &Path) -> Result<Vec<(String, serde_json::Value, StoredDocument)>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(file);
    let mut json: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut out = Vec::new();
    let entries = archive.entries().map_err(|e| invalid(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(path, e))?;
        let name = entry
            .path()
            .map_err(|e| invalid(path, e))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| invalid(path, e))?;
        let member = PathBuf::from(format!("{}:{name}", path.display()));
        if let Some(key) = name.strip_suffix(".json") {
            let value = serde_json::from_slice(&data).map_err(|e| invalid(&member, e))?;
            json.insert(key.to_string(), value);
        } else if let Some(key) = name.strip_suffix(".safetensors") {
            let doc = StoredDocument::parse(&data, &member)?;
            let j = json.remove(key).unwrap_or(serde_json::Value::Null);
            out.push((key.to_string(), j, doc));
        }
    }
    Ok(out)
}

/// The sidecar documents of a shard, rebuilt from its samples.
pub fn sidecar_documents_from_shard(path: &Path) -> Result<Vec<blt_sidecar::SidecarDocument>> {
    Ok(read_shard(path)?
        .into_iter()
        .map(|(_, json, doc)| doc.to_result(Some(&json)).to_sidecar())
        .collect())
}
