//! The documents of any input, one at a time, in a deterministic order, restricted to one
//! rank's share and to `--skip`/`--limit`.
//!
//! Local inputs (text, file, folder, list) are listed up front, split `docs[rank::world_size]`
//! and read one by one. Tables (local files or a Hugging Face split) are split by file,
//! `files[rank::world_size]` in sorted order, when there are at least as many files as ranks,
//! and otherwise by row (`row_index % world_size`, counting rows over all files in order).
//! `skip` and `limit` then apply to this rank's sequence.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use blt_hub::{DatasetSnapshot, HubOptions};

use crate::hf::{split_files, HfDatasetSpec};
use crate::key::key_from_parts;
use crate::ranks::RankSpec;
use crate::source::{clean_path, walk_dir, DocumentOrigin, DocumentRef, RowDocument};
use crate::table::{ColumnSpec, PathResolver, TableFormat, TableReader};
use crate::{enumerate, Error, InputSpec, Result};

/// Which part of the input this process reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    /// This process's share.
    pub rank: RankSpec,
    /// Documents of the share passed over first.
    pub skip: u64,
    /// Most documents read after the skip.
    pub limit: Option<u64>,
}

/// A document, or a part of the input that yields none (an unreadable table file, a row
/// without text), with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFailure {
    /// The key the document would have had (or the file's key).
    pub key: String,
    /// The file, and the row when it is one (`file#row`).
    pub origin: String,
    /// The row of the file, when the failure is one row's.
    pub row: Option<u64>,
    /// Why.
    pub reason: String,
}

/// An item of a [`DocumentStream`].
pub type SourceItem = std::result::Result<DocumentRef, SourceFailure>;

/// The documents of an input, streamed. See the module docs for the order.
pub struct DocumentStream {
    inner: Box<dyn Iterator<Item = SourceItem> + Send>,
    /// The number of documents, when known before reading (local inputs).
    pub documents_hint: Option<usize>,
    /// Their bytes in all, when known (local inputs; table files: their on-disk size).
    pub bytes_hint: u64,
    /// What was read, for provenance: the input files in order, and for a Hub dataset its repo
    /// and commit.
    pub description: BTreeMap<String, String>,
}

impl std::fmt::Debug for DocumentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentStream")
            .field("documents_hint", &self.documents_hint)
            .field("bytes_hint", &self.bytes_hint)
            .finish()
    }
}

impl Iterator for DocumentStream {
    type Item = SourceItem;
    fn next(&mut self) -> Option<SourceItem> {
        self.inner.next()
    }
}

/// Where a table file is.
#[derive(Clone)]
enum Location {
    Local(PathBuf),
    Hub(Arc<DatasetSnapshot>),
}

#[derive(Clone)]
struct TableFile {
    /// The name keys are made from: root-relative, repo-relative, or the path as given.
    name: String,
    format: TableFormat,
    location: Location,
}

impl TableFile {
    fn open(&self, columns: &ColumnSpec) -> Result<TableReader> {
        match &self.location {
            Location::Local(path) => TableReader::open(path, self.format, columns),
            Location::Hub(snapshot) => {
                let path = snapshot.fetch(&self.name)?;
                let folder = self
                    .name
                    .rsplit_once('/')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default();
                let snap = Arc::clone(snapshot);
                let resolve: PathResolver = Arc::new(move |p: &str| {
                    let p = p.trim_start_matches("./");
                    let beside = if folder.is_empty() {
                        p.to_string()
                    } else {
                        format!("{folder}/{p}")
                    };
                    snap.fetch(&beside)
                        .or_else(|_| snap.fetch(p))
                        .map_err(|e| e.to_string())
                });
                TableReader::open_with(&path, self.format, columns, resolve)
            }
        }
    }
}

/// Opens the documents of `spec` for `selection`.
pub fn open_documents(spec: &InputSpec, selection: &Selection) -> Result<DocumentStream> {
    match spec {
        InputSpec::Tables {
            paths,
            glob,
            columns,
        } => {
            let mut files = Vec::new();
            for path in paths {
                if path.is_dir() {
                    for doc in walk_dir(path, glob.as_deref())? {
                        if let (Some(format), Some(p)) =
                            (TableFormat::from_name(&doc.name), doc.path())
                        {
                            files.push(TableFile {
                                name: doc.name.clone(),
                                format,
                                location: Location::Local(p.to_owned()),
                            });
                        }
                    }
                } else {
                    let name = clean_path(path).0;
                    let format = TableFormat::from_name(&name).ok_or_else(|| Error::Table {
                        path: path.clone(),
                        reason: "not a JSONL, CSV, Parquet or Arrow file (by its extension)".into(),
                    })?;
                    files.push(TableFile {
                        name,
                        format,
                        location: Location::Local(path.clone()),
                    });
                }
            }
            let bytes: u64 = files
                .iter()
                .filter_map(|f| match &f.location {
                    Location::Local(p) => std::fs::metadata(p).ok().map(|m| m.len()),
                    Location::Hub(_) => None,
                })
                .sum();
            let mut description = BTreeMap::new();
            description.insert("source".into(), "tables".into());
            Ok(table_stream(files, columns, selection, bytes, description))
        }
        InputSpec::HfDataset {
            dataset,
            revision,
            columns,
            hub,
        } => open_hf(dataset, revision, columns, hub, selection),
        local => {
            let docs = selection.rank.take(enumerate(local)?);
            let docs: Vec<DocumentRef> = docs
                .into_iter()
                .skip(usize::try_from(selection.skip).unwrap_or(usize::MAX))
                .take(
                    selection
                        .limit
                        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)),
                )
                .collect();
            let mut description = BTreeMap::new();
            description.insert("source".into(), "files".into());
            Ok(DocumentStream {
                documents_hint: Some(docs.len()),
                bytes_hint: docs.iter().map(|d| d.byte_len).sum(),
                inner: Box::new(docs.into_iter().map(Ok)),
                description,
            })
        }
    }
}

fn open_hf(
    dataset: &HfDatasetSpec,
    revision: &str,
    columns: &ColumnSpec,
    hub: &HubOptions,
    selection: &Selection,
) -> Result<DocumentStream> {
    let options = hub.clone().with_revision(revision);
    let snapshot = Arc::new(blt_hub::open_dataset(&dataset.repo, &options)?);
    let readme = if snapshot.files.iter().any(|f| f == "README.md") {
        match snapshot.fetch("README.md") {
            Ok(path) => std::fs::read_to_string(&path).ok(),
            Err(e) => {
                tracing::warn!("cannot read the dataset card: {e}");
                None
            }
        }
    } else {
        None
    };
    let names = split_files(dataset, &snapshot.files, readme.as_deref())?;
    tracing::info!(
        repo = %dataset.repo,
        commit = ?snapshot.commit,
        files = names.len(),
        offline = snapshot.is_offline(),
        "dataset split listed"
    );
    let mut description = BTreeMap::new();
    description.insert("source".into(), "huggingface".into());
    description.insert("hf_dataset".into(), dataset.repo.clone());
    description.insert(
        "hf_config".into(),
        dataset.config.clone().unwrap_or_else(|| "default".into()),
    );
    description.insert("hf_split".into(), dataset.split.clone());
    description.insert("hf_revision".into(), revision.to_string());
    description.insert(
        "hf_commit".into(),
        snapshot.commit.clone().unwrap_or_default(),
    );
    description.insert("hf_files".into(), names.len().to_string());
    let files = names
        .into_iter()
        .filter_map(|name| {
            TableFormat::from_name(&name).map(|format| TableFile {
                name,
                format,
                location: Location::Hub(Arc::clone(&snapshot)),
            })
        })
        .collect();
    Ok(table_stream(files, columns, selection, 0, description))
}

fn table_stream(
    files: Vec<TableFile>,
    columns: &ColumnSpec,
    selection: &Selection,
    bytes_hint: u64,
    mut description: BTreeMap<String, String>,
) -> DocumentStream {
    let rank = selection.rank;
    let by_file = files.len() >= rank.world_size;
    let mine = if by_file { rank.take(files) } else { files };
    description.insert(
        "rank_split".into(),
        if by_file { "files" } else { "rows" }.into(),
    );
    let columns = columns.clone();
    let rows = mine
        .into_iter()
        .flat_map(move |file| file_rows(file, &columns));
    let rows: Box<dyn Iterator<Item = SourceItem> + Send> = if by_file {
        Box::new(rows)
    } else {
        // Split rows: a file-level failure (no rows) is reported by rank 0 only.
        let mut index = 0usize;
        Box::new(rows.filter(move |item| match item {
            Err(f) if f.row.is_some() => {
                let own = rank.owns(index);
                index += 1;
                own
            }
            Err(_) => rank.rank == 0,
            Ok(_) => {
                let own = rank.owns(index);
                index += 1;
                own
            }
        }))
    };
    let skip = usize::try_from(selection.skip).unwrap_or(usize::MAX);
    let limit = selection
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    DocumentStream {
        inner: Box::new(rows.skip(skip).take(limit)),
        documents_hint: None,
        bytes_hint,
        description,
    }
}

/// The rows of one file as documents; a file that cannot be opened, or that breaks while being
/// read, yields one failure (named by the file) and ends.
fn file_rows(file: TableFile, columns: &ColumnSpec) -> Box<dyn Iterator<Item = SourceItem> + Send> {
    let file_failure = |name: &str, e: Error| SourceFailure {
        key: key_from_parts(name, name.as_bytes()),
        origin: name.to_string(),
        row: None,
        reason: e.to_string(),
    };
    let reader = match file.open(columns) {
        Ok(reader) => reader,
        Err(e) => return Box::new(std::iter::once(Err(file_failure(&file.name, e)))),
    };
    let name = file.name.clone();
    let path = reader.path().to_owned();
    Box::new(reader.map(move |row| {
        let row = row.map_err(|e| file_failure(&name, e))?;
        let origin = format!("{name}#{}", row.row);
        let readable = row.id.clone().unwrap_or_else(|| origin.clone());
        let key = key_from_parts(&readable, origin.as_bytes());
        match row.bytes {
            Ok(bytes) => {
                let mut metadata = row.metadata;
                if let Some(id) = &row.id {
                    metadata
                        .entry("id".into())
                        .or_insert_with(|| serde_json::Value::String(id.clone()));
                }
                Ok(DocumentRef {
                    byte_len: bytes.len() as u64,
                    key,
                    name: origin,
                    source: DocumentOrigin::Row(Box::new(RowDocument {
                        file: path.clone(),
                        row: row.row,
                        bytes: bytes.into(),
                        metadata,
                    })),
                })
            }
            Err(reason) => Err(SourceFailure {
                key,
                origin,
                row: Some(row.row),
                reason,
            }),
        }
    }))
}
