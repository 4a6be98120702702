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

use crate::confine::{checked_relative, PathResolver};
use crate::hf::{split_files, HfDatasetSpec};
use crate::key::key_from_parts;
use crate::limits::{open_regular, read_bounded, ReadLimits};
use crate::ranks::RankSpec;
use crate::source::{clean_path, walk_dir, DocumentOrigin, DocumentRef, RowDocument};
use crate::table::{ColumnSpec, TableFormat, TableReader};
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
    /// When the failure is a limit that was hit, the [`ReadLimits`] field that raises it
    /// (`max_record_bytes`, `max_referenced_file_bytes`).
    pub option: Option<&'static str>,
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
    fn open(&self, columns: &ColumnSpec, limits: &ReadLimits) -> Result<TableReader> {
        match &self.location {
            Location::Local(path) => {
                let folder = path.parent().map(PathBuf::from).unwrap_or_default();
                TableReader::open_with(
                    path,
                    self.format,
                    columns,
                    PathResolver::in_folder(folder),
                    limits,
                )
            }
            Location::Hub(snapshot) => {
                let resolver = hub_resolver(snapshot, &self.name);
                // The file list comes from the Hub (or the cache): its names are data too.
                let path = resolver.read_path(&self.name)?;
                TableReader::open_with(&path, self.format, columns, resolver.paths, limits)
            }
        }
    }
}

/// Reads the files of a Hub dataset from inside its cache folder only
/// (`datasets--<owner>--<name>`, where the snapshot's links and the blobs they point to are).
struct HubResolver {
    /// For paths found in the table `table`: its folder first, then the repo's root.
    paths: PathResolver,
    snapshot: Arc<DatasetSnapshot>,
}

/// The cache folder of a snapshot (`<repo>/snapshots/<commit>` → `<repo>`).
fn repo_cache_dir(snapshot: &DatasetSnapshot) -> PathBuf {
    snapshot
        .snapshot_dir
        .parent()
        .and_then(std::path::Path::parent)
        .map_or_else(|| snapshot.snapshot_dir.clone(), PathBuf::from)
}

fn hub_resolver(snapshot: &Arc<DatasetSnapshot>, table: &str) -> HubResolver {
    let root = repo_cache_dir(snapshot);
    let folder = table
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    let snap = Arc::clone(snapshot);
    let base = root.clone();
    let paths = PathResolver::new(root, move |relative: &str| {
        // `relative` is checked: no `..`, not absolute. Only files the dataset lists are
        // fetched.
        let beside = if folder.is_empty() {
            relative.to_string()
        } else {
            format!("{folder}/{relative}")
        };
        let listed = |name: &str| {
            snap.files
                .binary_search_by(|f| f.as_str().cmp(name))
                .is_ok()
        };
        let name = if listed(&beside) {
            beside
        } else if listed(relative) {
            relative.to_string()
        } else {
            return Err(Error::PathRefused {
                value: relative.to_string(),
                base: base.clone(),
                rule: format!(
                    "the dataset lists no file {beside:?}{}",
                    if beside == relative {
                        String::new()
                    } else {
                        format!(" or {relative:?}")
                    }
                ),
            });
        };
        Ok(snap.fetch(&name)?)
    });
    HubResolver {
        paths,
        snapshot: Arc::clone(snapshot),
    }
}

impl HubResolver {
    /// The local path of the dataset's file `name` (repo-relative): checked, fetched, and
    /// refused unless it lies inside the repo's cache folder.
    fn read_path(&self, name: &str) -> Result<PathBuf> {
        let relative = checked_relative(name).map_err(|rule| Error::PathRefused {
            value: name.to_string(),
            base: self.paths.root().to_owned(),
            rule: rule.to_string(),
        })?;
        let local = self.snapshot.fetch(&relative)?;
        self.paths.confined(name, &local)
    }
}

/// The most bytes of a dataset card (`README.md`) read; a larger card is ignored (with a
/// warning) and the naming conventions pick the files.
const MAX_CARD_BYTES: u64 = 16 << 20;

/// Opens the documents of `spec` for `selection`, with the default [`ReadLimits`].
pub fn open_documents(spec: &InputSpec, selection: &Selection) -> Result<DocumentStream> {
    open_documents_with(spec, selection, &ReadLimits::default())
}

/// Opens the documents of `spec` for `selection`; tables are read within `limits` (a limit
/// hit is that row's failure, [`SourceFailure::option`] naming the field that raises it).
pub fn open_documents_with(
    spec: &InputSpec,
    selection: &Selection,
    limits: &ReadLimits,
) -> Result<DocumentStream> {
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
            Ok(table_stream(
                files,
                columns,
                selection,
                limits,
                bytes,
                description,
            ))
        }
        InputSpec::HfDataset {
            dataset,
            revision,
            columns,
            hub,
        } => open_hf(dataset, revision, columns, hub, selection, limits),
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
    limits: &ReadLimits,
) -> Result<DocumentStream> {
    let options = hub.clone().with_revision(revision);
    let snapshot = Arc::new(blt_hub::open_dataset(&dataset.repo, &options)?);
    let readme = if snapshot.files.iter().any(|f| f == "README.md") {
        match read_card(&snapshot) {
            Ok(card) => card,
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
    Ok(table_stream(
        files,
        columns,
        selection,
        limits,
        0,
        description,
    ))
}

/// The dataset card's text, if it is UTF-8 and at most [`MAX_CARD_BYTES`]; read only from
/// inside the repo's cache folder.
fn read_card(snapshot: &Arc<DatasetSnapshot>) -> Result<Option<String>> {
    let path = hub_resolver(snapshot, "README.md").read_path("README.md")?;
    let (file, len) = open_regular(&path)?;
    let (bytes, over) =
        read_bounded(file, len, Some(MAX_CARD_BYTES)).map_err(|e| Error::io(&path, e))?;
    if over {
        tracing::warn!(
            path = %path.display(),
            limit = MAX_CARD_BYTES,
            "the dataset card is too large; ignoring it"
        );
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
}

fn table_stream(
    files: Vec<TableFile>,
    columns: &ColumnSpec,
    selection: &Selection,
    limits: &ReadLimits,
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
    let limits = *limits;
    let rows = mine
        .into_iter()
        .flat_map(move |file| file_rows(file, &columns, &limits));
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
fn file_rows(
    file: TableFile,
    columns: &ColumnSpec,
    limits: &ReadLimits,
) -> Box<dyn Iterator<Item = SourceItem> + Send> {
    let file_failure = |name: &str, e: Error| SourceFailure {
        key: key_from_parts(name, name.as_bytes()),
        origin: name.to_string(),
        row: None,
        option: e.option(),
        reason: e.to_string(),
    };
    let reader = match file.open(columns, limits) {
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
            Err(failure) => Err(SourceFailure {
                key,
                origin,
                row: Some(row.row),
                reason: failure.reason,
                option: failure.option,
            }),
        }
    }))
}
