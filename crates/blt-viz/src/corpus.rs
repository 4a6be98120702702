//! Reading an ingest output folder (`docs/output-formats.md` §1): the per-document safetensors
//! files with their sidecars, or the WebDataset shards, plus `run.json`. A file that cannot be
//! read is recorded as a [`ReadFailure`] and the walk goes on.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::document::PatchedDocument;
use crate::{Error, Result};

/// Where documents are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentSource {
    /// A per-document `<key>.safetensors` file (its sidecar `<key>.hypergraph.sqlite` beside
    /// it gives the segments' modalities).
    File(PathBuf),
    /// A WebDataset shard `shard-NNNNNN.tar` (each sample's JSON gives the modalities).
    Shard(PathBuf),
}

impl DocumentSource {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Self::File(p) | Self::Shard(p) => p,
        }
    }
}

/// A file (or shard member) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadFailure {
    /// The file (`shard.tar:member` for a shard member).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What `run.json` says about the run (the fields the statistics report).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// `stats.documents`.
    pub documents: u64,
    /// `stats.written`.
    pub written: u64,
    /// `stats.skipped`.
    pub skipped: u64,
    /// `stats.failed`.
    pub failed: u64,
    /// `stats.failures`, as written (`key`, `path`, `stage`, `reason`).
    pub failures: Vec<serde_json::Value>,
    /// `config.patching.threshold`, as written.
    pub threshold: Option<String>,
    /// `model.id`.
    pub model_id: Option<String>,
}

impl RunSummary {
    /// Reads the fields from a `run.json` value; missing fields stay at their defaults.
    pub fn from_json(v: &serde_json::Value) -> Self {
        let stat = |k: &str| v["stats"][k].as_u64().unwrap_or(0);
        Self {
            documents: stat("documents"),
            written: stat("written"),
            skipped: stat("skipped"),
            failed: stat("failed"),
            failures: v["stats"]["failures"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            threshold: v["config"]["patching"]["threshold"]
                .as_str()
                .map(String::from),
            model_id: v["model"]["id"].as_str().map(String::from),
        }
    }
}

/// The documents of an output folder (or of one output file).
#[derive(Debug, Clone)]
pub struct CorpusReader {
    root: PathBuf,
    sources: Vec<DocumentSource>,
    run: Option<RunSummary>,
    failures: Vec<ReadFailure>,
}

fn is_shard_name(name: &str) -> bool {
    name.starts_with("shard-") && name.ends_with(".tar")
}

impl CorpusReader {
    /// Lists an output folder: every `*.safetensors` (but `*.sphere.safetensors`, the output of
    /// `blt sphere`) and `shard-*.tar` directly in it (sorted by name; temp files are ignored) and its `run.json` when present. `path` may also be a
    /// single `.safetensors` file or shard.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mut failures = Vec::new();
        if meta.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let source = if name.ends_with(".tar") {
                DocumentSource::Shard(path.to_path_buf())
            } else {
                DocumentSource::File(path.to_path_buf())
            };
            return Ok(Self {
                root: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                sources: vec![source],
                run: None,
                failures,
            });
        }
        let mut names: Vec<String> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let sources = names
            .iter()
            .filter_map(|name| {
                let p = path.join(name);
                if name.ends_with(".sphere.safetensors") {
                    None
                } else if name.ends_with(".safetensors") {
                    Some(DocumentSource::File(p))
                } else if is_shard_name(name) {
                    Some(DocumentSource::Shard(p))
                } else {
                    None
                }
            })
            .collect();
        let run_path = path.join("run.json");
        let run = if run_path.is_file() {
            match std::fs::read(&run_path)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    serde_json::from_slice::<serde_json::Value>(&d).map_err(|e| e.to_string())
                }) {
                Ok(v) => Some(RunSummary::from_json(&v)),
                Err(reason) => {
                    tracing::warn!(path = %run_path.display(), %reason, "unreadable run.json");
                    failures.push(ReadFailure {
                        path: run_path.display().to_string(),
                        reason,
                    });
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            root: path.to_path_buf(),
            sources,
            run,
            failures,
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The document files and shards found.
    pub fn sources(&self) -> &[DocumentSource] {
        &self.sources
    }

    /// `run.json`, when present and readable.
    pub fn run(&self) -> Option<&RunSummary> {
        self.run.as_ref()
    }

    /// Calls `visit` with every readable document, in file order (a shard's samples in archive
    /// order), and returns what could not be read (including an unreadable `run.json`).
    pub fn for_each_document(
        &self,
        with_embeddings: bool,
        mut visit: impl FnMut(PatchedDocument),
    ) -> Vec<ReadFailure> {
        let mut failures = self.failures.clone();
        for source in &self.sources {
            match source {
                DocumentSource::File(path) => match read_file_document(path, with_embeddings) {
                    Ok(doc) => visit(doc),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping a document");
                        failures.push(ReadFailure {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        });
                    }
                },
                DocumentSource::Shard(path) => {
                    read_shard_documents(path, with_embeddings, &mut visit, &mut failures)
                }
            }
        }
        failures
    }
}

/// Reads `<key>.safetensors` and names its segments' modalities from the sidecar beside it
/// (`unknown` when there is none).
fn read_file_document(path: &Path, with_embeddings: bool) -> Result<PatchedDocument> {
    let mut doc = PatchedDocument::read(path, with_embeddings)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".safetensors").unwrap_or(&name);
    let sidecar = path.with_file_name(format!("{stem}.hypergraph.sqlite"));
    if sidecar.is_file() {
        let opened =
            blt_sidecar::HypergraphSidecar::open(&sidecar).and_then(|s| s.document(&doc.key));
        match opened {
            Ok(sd) => {
                for (seg, branch) in doc.segments.iter_mut().zip(&sd.branches) {
                    seg.modality = branch.modality.clone();
                }
            }
            Err(e) => {
                tracing::warn!(path = %sidecar.display(), error = %e, "sidecar unreadable; modality unknown")
            }
        }
    } else {
        tracing::debug!(path = %sidecar.display(), "no sidecar; modality unknown");
    }
    Ok(doc)
}

fn read_shard_documents(
    path: &Path,
    with_embeddings: bool,
    visit: &mut impl FnMut(PatchedDocument),
    failures: &mut Vec<ReadFailure>,
) {
    let mut fail = |p: String, reason: String| {
        tracing::warn!(path = %p, %reason, "skipping a shard member");
        failures.push(ReadFailure { path: p, reason });
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(path.display().to_string(), e.to_string()),
    };
    let mut archive = tar::Archive::new(file);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return fail(path.display().to_string(), e.to_string()),
    };
    let mut json: Option<(String, serde_json::Value)> = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => return fail(path.display().to_string(), e.to_string()),
        };
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => return fail(path.display().to_string(), e.to_string()),
        };
        let member = format!("{}:{name}", path.display());
        let mut data = Vec::new();
        if let Err(e) = entry.read_to_end(&mut data) {
            return fail(member, e.to_string());
        }
        if let Some(key) = name.strip_suffix(".json") {
            match serde_json::from_slice(&data) {
                Ok(v) => json = Some((key.to_string(), v)),
                Err(e) => fail(member, e.to_string()),
            }
        } else if let Some(key) = name.strip_suffix(".safetensors") {
            match PatchedDocument::parse(&data, Path::new(&member), with_embeddings) {
                Ok(mut doc) => {
                    if let Some((_, sample)) = json.take().filter(|(k, _)| k == key) {
                        let described = sample["segments"].as_array().cloned().unwrap_or_default();
                        for (seg, d) in doc.segments.iter_mut().zip(&described) {
                            if let Some(m) = d["modality"].as_str() {
                                seg.modality = m.to_string();
                            }
                        }
                    }
                    visit(doc);
                }
                Err(e) => fail(member, e.to_string()),
            }
        }
    }
}
