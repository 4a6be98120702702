//! Local sources: which documents an input names, in a deterministic order, each with a stable
//! key; and reading one document's bytes.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::io_at;
use crate::hf::HfDatasetSpec;
use crate::key::{key_from_parts, text_key};
use crate::limits::{non_regular_kind, open_regular, read_bounded};
use crate::table::ColumnSpec;
use crate::{Error, Result};

/// What the user asked to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// One document given inline (`--text`).
    Text(String),
    /// One file.
    File(PathBuf),
    /// Every regular file under `root`, recursively, optionally filtered by a glob.
    ///
    /// The glob is matched against the root-relative path with `/` separators; `*` does not
    /// cross a `/`, `**` does. A pattern without `/` matches at any depth (`*.txt` is
    /// `**/*.txt`); a leading `/` anchors it at the root and is dropped.
    Dir {
        /// The folder to walk.
        root: PathBuf,
        /// Keep only files whose relative path matches this glob (`globset` syntax).
        glob: Option<String>,
    },
    /// These files, in this order; a file named twice (also through another spelling of its
    /// path or a symlink) is kept at its first place only.
    List(Vec<PathBuf>),
    /// Tables (JSONL, CSV, Parquet, Arrow IPC files, or folders of them), one document per row;
    /// streamed with [`open_documents`](crate::open_documents).
    Tables {
        /// Files and folders (folders walked recursively, table files kept by extension).
        paths: Vec<PathBuf>,
        /// Keep only folder files whose relative path matches this glob.
        glob: Option<String>,
        /// Which columns hold the text and the id.
        columns: ColumnSpec,
    },
    /// One split of a Hugging Face dataset, shard after shard; streamed with
    /// [`open_documents`](crate::open_documents).
    HfDataset {
        /// Repo, config and split.
        dataset: HfDatasetSpec,
        /// Branch, tag or commit.
        revision: String,
        /// Which columns hold the text and the id.
        columns: ColumnSpec,
        /// Cache, token and offline mode.
        hub: blt_hub::HubOptions,
    },
}

/// Where a document's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentOrigin {
    /// The text itself (a `--text` input).
    Text(String),
    /// A file on disk.
    Path(PathBuf),
    /// A row of a table, with its bytes.
    Row(Box<RowDocument>),
}

/// A document read from a row of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDocument {
    /// The table file (local path; for a Hub dataset, in the HF cache).
    pub file: PathBuf,
    /// The row's index in the file.
    pub row: u64,
    /// The document's bytes.
    pub bytes: std::sync::Arc<[u8]>,
    /// The row's other scalar columns (and `id`, when an id column was named).
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// One document of an input: its key, where to read it, and its length when enumerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRef {
    /// The stable key (see [`document_key`](crate::document_key)).
    pub key: String,
    /// The path the key was made from: root-relative with `/` separators for folder inputs,
    /// the path as given (cleaned of `.` parts) for file and list inputs, `<text>` for text.
    pub name: String,
    /// Where the bytes are.
    pub source: DocumentOrigin,
    /// The length in bytes when the input was enumerated.
    pub byte_len: u64,
}

impl DocumentRef {
    /// Reads the document's bytes, refusing more than `max_bytes` (if given) with
    /// [`Error::TooLarge`] (or [`Error::TextTooLarge`], [`Error::RowTooLarge`]). A file that
    /// grew past the limit while being read, or that claims a length of 0 and yields more (as
    /// `/proc` files do), is refused too: at most `max_bytes + 1` bytes are ever read.
    ///
    /// Callers should pass a limit: with `None` a file is read to its end, however long (a
    /// sparse file of a terabyte is a terabyte of zeros). In no case is the file's claimed
    /// length reserved up front. Only regular files are read: a document whose path now names
    /// a FIFO, a socket or a device is [`Error::NotAFile`], and nothing is read from it.
    pub fn read(&self, max_bytes: Option<u64>) -> Result<Vec<u8>> {
        match &self.source {
            DocumentOrigin::Text(text) => {
                let len = text.len() as u64;
                match max_bytes {
                    Some(max) if len > max => Err(Error::TextTooLarge {
                        key: self.key.clone(),
                        len,
                        max,
                    }),
                    _ => Ok(text.as_bytes().to_vec()),
                }
            }
            DocumentOrigin::Path(path) => read_file(path, max_bytes),
            DocumentOrigin::Row(row) => {
                let len = row.bytes.len() as u64;
                match max_bytes {
                    Some(max) if len > max => Err(Error::RowTooLarge {
                        key: self.key.clone(),
                        origin: self.name.clone(),
                        len,
                        max,
                    }),
                    _ => Ok(row.bytes.to_vec()),
                }
            }
        }
    }

    /// Where the document comes from, for messages and provenance: the file path, `file#row`
    /// for a table row, `None` for a text input.
    pub fn origin_label(&self) -> Option<String> {
        match &self.source {
            DocumentOrigin::Path(p) => Some(p.display().to_string()),
            DocumentOrigin::Row(_) => Some(self.name.clone()),
            DocumentOrigin::Text(_) => None,
        }
    }

    /// The row's metadata, for a table row.
    pub fn row_metadata(&self) -> Option<&BTreeMap<String, serde_json::Value>> {
        match &self.source {
            DocumentOrigin::Row(row) => Some(&row.metadata),
            _ => None,
        }
    }

    /// The file this document is read from, if it is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            DocumentOrigin::Path(path) => Some(path),
            DocumentOrigin::Text(_) | DocumentOrigin::Row(_) => None,
        }
    }
}

/// Reads a regular file, at most `max_bytes` of it (a file that claims less but yields more, as
/// `/proc` files do, is cut at `max_bytes + 1` and refused). Never reserves more than
/// [`MAX_PREALLOC_BYTES`](crate::limits::MAX_PREALLOC_BYTES) up front.
fn read_file(path: &Path, max_bytes: Option<u64>) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if let Some(max) = max_bytes {
        if len > max {
            return Err(Error::TooLarge {
                path: path.to_owned(),
                len,
                max,
            });
        }
    }
    let (bytes, over) = read_bounded(file, len, max_bytes).map_err(io_at(path))?;
    match max_bytes {
        Some(max) if over => Err(Error::TooLarge {
            path: path.to_owned(),
            len: bytes.len() as u64,
            max,
        }),
        _ => Ok(bytes),
    }
}

/// The documents `spec` names, in a deterministic order: folder inputs sorted by the bytes of
/// their relative path, lists in the given order (duplicates dropped), text and file inputs as
/// one document. Empty and hidden files are documents like any other. Table and Hub inputs are
/// not listed ([`Error::StreamedInput`]): open them with [`open_documents`](crate::open_documents).
///
/// A folder walk follows symlinks but skips symlink loops and broken links (with a `tracing`
/// warning) and anything that is not a regular file or a folder: a FIFO, a socket, a device, or
/// a symlink to one (such as a link to `/dev/zero`) is skipped with a `tracing` warning, never
/// listed as a document. (Should an entry become one after it was listed, reading it is
/// [`Error::NotAFile`].) A missing or unreadable input path, or an
/// unreadable folder inside the walk, is an [`Error::Io`] naming it.
pub fn enumerate(spec: &InputSpec) -> Result<Vec<DocumentRef>> {
    match spec {
        InputSpec::Text(text) => Ok(vec![DocumentRef {
            key: text_key(text),
            name: "<text>".to_owned(),
            source: DocumentOrigin::Text(text.clone()),
            byte_len: text.len() as u64,
        }]),
        InputSpec::File(path) => Ok(vec![file_document(path)?]),
        InputSpec::List(paths) => {
            let mut seen = HashSet::new();
            let mut docs = Vec::with_capacity(paths.len());
            for path in paths {
                let doc = file_document(path)?;
                let identity = fs::canonicalize(path).map_err(io_at(path))?;
                if seen.insert(identity) {
                    docs.push(doc);
                }
            }
            Ok(docs)
        }
        InputSpec::Dir { root, glob } => walk_dir(root, glob.as_deref()),
        InputSpec::Tables { .. } | InputSpec::HfDataset { .. } => Err(Error::StreamedInput),
    }
}

fn file_document(path: &Path) -> Result<DocumentRef> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    if let Some(kind) = non_regular_kind(meta.file_type()) {
        return Err(Error::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    let (name, identity) = clean_path(path);
    Ok(DocumentRef {
        key: key_from_parts(&name, &identity),
        name,
        source: DocumentOrigin::Path(path.to_owned()),
        byte_len: meta.len(),
    })
}

/// The path joined with `/`, without `.` components: a readable string and the raw bytes.
pub(crate) fn clean_path(path: &Path) -> (String, Vec<u8>) {
    let mut name = String::new();
    let mut identity = Vec::new();
    let mut first = true;
    for component in path.components() {
        let part = match component {
            Component::CurDir => continue,
            Component::RootDir => {
                name.push('/');
                identity.push(b'/');
                continue;
            }
            Component::Prefix(prefix) => prefix.as_os_str(),
            Component::ParentDir | Component::Normal(_) => component.as_os_str(),
        };
        if !first && !name.ends_with('/') {
            name.push('/');
            identity.push(b'/');
        }
        first = false;
        name.push_str(&part.to_string_lossy());
        identity.extend_from_slice(part.as_encoded_bytes());
    }
    (name, identity)
}

fn glob_matcher(glob: &str) -> Result<globset::GlobMatcher> {
    let invalid = |source| Error::InvalidGlob {
        glob: glob.to_owned(),
        source,
    };
    let pattern = if let Some(anchored) = glob.strip_prefix('/') {
        anchored.to_owned()
    } else if glob.contains('/') {
        glob.to_owned()
    } else {
        format!("**/{glob}")
    };
    let compiled = globset::GlobBuilder::new(&pattern)
        .literal_separator(true)
        .build()
        .map_err(invalid)?;
    Ok(compiled.compile_matcher())
}

pub(crate) fn walk_dir(root: &Path, glob: Option<&str>) -> Result<Vec<DocumentRef>> {
    let matcher = glob.map(glob_matcher).transpose()?;
    let meta = fs::metadata(root).map_err(io_at(root))?;
    if !meta.is_dir() {
        return Err(Error::NotADirectory {
            path: root.to_owned(),
        });
    }
    let mut found: Vec<(Vec<u8>, DocumentRef)> = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true).min_depth(1) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                if let Some(ancestor) = err.loop_ancestor() {
                    tracing::warn!(
                        path = %err.path().unwrap_or(root).display(),
                        ancestor = %ancestor.display(),
                        "skipping a symlink loop"
                    );
                    continue;
                }
                let path = err.path().unwrap_or(root).to_owned();
                let broken_link = err
                    .io_error()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                    && fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
                if broken_link {
                    tracing::warn!(path = %path.display(), "skipping a broken symlink");
                    continue;
                }
                return Err(Error::io(path, std::io::Error::from(err)));
            }
        };
        if let Some(kind) = non_regular_kind(entry.file_type()) {
            if !entry.file_type().is_dir() {
                tracing::warn!(path = %entry.path().display(), kind, "skipping: not a regular file");
            }
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if let Some(matcher) = &matcher {
            if !matcher.is_match(relative) {
                continue;
            }
        }
        let (name, identity) = clean_path(relative);
        let byte_len = entry
            .metadata()
            .map_err(|err| Error::io(entry.path(), std::io::Error::from(err)))?
            .len();
        found.push((
            identity.clone(),
            DocumentRef {
                key: key_from_parts(&name, &identity),
                name,
                source: DocumentOrigin::Path(entry.into_path()),
                byte_len,
            },
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, doc)| doc).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_drops_dots_and_joins_with_slash() {
        assert_eq!(clean_path(Path::new("./a/./b.txt")).0, "a/b.txt");
        assert_eq!(clean_path(Path::new("/x/../y")).0, "/x/../y");
        assert_eq!(clean_path(Path::new("a.txt")).1, b"a.txt");
    }

    #[test]
    fn glob_without_slash_matches_at_any_depth() {
        let m = glob_matcher("*.txt").unwrap();
        assert!(m.is_match("a.txt"));
        assert!(m.is_match("x/y/a.txt"));
        let m = glob_matcher("x/*.txt").unwrap();
        assert!(m.is_match("x/a.txt"));
        assert!(!m.is_match("x/y/a.txt"));
        let m = glob_matcher("/a.txt").unwrap();
        assert!(m.is_match("a.txt"));
        assert!(!m.is_match("x/a.txt"));
        assert!(matches!(
            glob_matcher("a[").unwrap_err(),
            Error::InvalidGlob { .. }
        ));
    }

    #[test]
    fn text_reads_and_limits() {
        let docs = enumerate(&InputSpec::Text("hello".into())).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].key, "text-2cf24dba5fb0a30e");
        assert_eq!(docs[0].read(None).unwrap(), b"hello");
        assert!(matches!(
            docs[0].read(Some(4)).unwrap_err(),
            Error::TextTooLarge { len: 5, max: 4, .. }
        ));
    }
}
