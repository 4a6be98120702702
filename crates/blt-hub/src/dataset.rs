//! Dataset repos: list a revision's files (from the Hub, or from the cache's snapshot when
//! offline) and fetch one file at a time into the standard cache.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::{classify, Error, HubOptions, Result};

/// A dataset repo at one revision: the files it holds, fetched lazily into the HF cache.
pub struct DatasetSnapshot {
    /// Repo id (`owner/name`).
    pub repo: String,
    /// Revision asked for.
    pub revision: String,
    /// The commit the revision resolved to (from the Hub, or the cache's `refs/` file).
    pub commit: Option<String>,
    /// Every file of the revision, repo-relative with `/` separators, sorted.
    pub files: Vec<String>,
    /// `snapshots/<commit>` in the cache (where fetched files appear).
    pub snapshot_dir: PathBuf,
    options: HubOptions,
    remote: Option<ApiRepo>,
}

impl std::fmt::Debug for DatasetSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetSnapshot")
            .field("repo", &self.repo)
            .field("revision", &self.revision)
            .field("commit", &self.commit)
            .field("files", &self.files.len())
            .field("snapshot_dir", &self.snapshot_dir)
            .field("offline", &self.options.offline)
            .finish()
    }
}

/// The cache folder of a dataset repo: `<cache>/datasets--<owner>--<name>`.
pub fn dataset_cache_dir(cache_dir: &Path, repo_id: &str) -> PathBuf {
    cache_dir.join(format!("datasets--{}", repo_id.replace('/', "--")))
}

/// Opens a dataset repo at `options.revision`.
///
/// Online, the file list and commit come from the Hub (`/api/datasets/<repo>/revision/<rev>`);
/// nothing is downloaded yet. Offline (`HF_HUB_OFFLINE=1`), they come from the cache: the
/// commit in `refs/<revision>` (or the revision itself when it is a cached commit), and the
/// files under `snapshots/<commit>/`. Offline, a repo or revision missing from the cache is
/// [`Error::DatasetNotCached`], naming what is missing and where it was looked for.
pub fn open_dataset(repo_id: &str, options: &HubOptions) -> Result<DatasetSnapshot> {
    let repo = Repo::with_revision(
        repo_id.to_string(),
        RepoType::Dataset,
        options.revision.clone(),
    );
    let repo_dir = dataset_cache_dir(&options.cache_dir, repo_id);
    if options.offline {
        let commit =
            cached_commit(&repo_dir, &options.revision).ok_or_else(|| Error::DatasetNotCached {
                repo: repo_id.into(),
                revision: options.revision.clone(),
                missing: format!(
                    "the dataset (no {} and no snapshot of that commit)",
                    repo_dir.join("refs").join(&options.revision).display()
                ),
                cache: options.cache_dir.clone(),
            })?;
        let snapshot_dir = repo_dir.join("snapshots").join(&commit);
        let files = snapshot_files(&snapshot_dir);
        tracing::debug!(
            repo = repo_id,
            commit,
            files = files.len(),
            "dataset listed from the cache"
        );
        return Ok(DatasetSnapshot {
            repo: repo_id.into(),
            revision: options.revision.clone(),
            commit: Some(commit),
            files,
            snapshot_dir,
            options: options.clone(),
            remote: None,
        });
    }
    let api = ApiBuilder::from_cache(Cache::new(options.cache_dir.clone()))
        .with_token(options.token.clone())
        .with_progress(options.progress)
        .build()
        .map_err(|e| classify(repo_id, &options.cache_dir, e))?;
    let remote = api.repo(repo);
    let info = remote
        .info()
        .map_err(|e| match classify(repo_id, &options.cache_dir, e) {
            Error::NotFound { repo, .. } => Error::NotFound {
                repo,
                revision: options.revision.clone(),
            },
            other => other,
        })?;
    let mut files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    files.sort();
    let snapshot_dir = repo_dir.join("snapshots").join(&info.sha);
    Ok(DatasetSnapshot {
        repo: repo_id.into(),
        revision: options.revision.clone(),
        commit: Some(info.sha),
        files,
        snapshot_dir,
        options: options.clone(),
        remote: Some(remote),
    })
}

impl DatasetSnapshot {
    /// Whether the file list came from the cache (offline) rather than the Hub.
    pub fn is_offline(&self) -> bool {
        self.remote.is_none()
    }

    /// The local path of `file` (repo-relative): from the cache if it is there, else downloaded
    /// into it (online). Offline, a file missing from the snapshot is [`Error::DatasetNotCached`].
    pub fn fetch(&self, file: &str) -> Result<PathBuf> {
        let cached = self.snapshot_dir.join(file);
        if cached.is_file() {
            return Ok(cached);
        }
        match &self.remote {
            None => Err(Error::DatasetNotCached {
                repo: self.repo.clone(),
                revision: self.revision.clone(),
                missing: file.into(),
                cache: self.options.cache_dir.clone(),
            }),
            Some(remote) => {
                tracing::info!(repo = %self.repo, file, "downloading");
                remote
                    .get(file)
                    .map_err(|e| classify(&self.repo, &self.options.cache_dir, e))
            }
        }
    }
}

/// The commit `revision` names in a cached repo folder: the content of `refs/<revision>`, or
/// `revision` itself when a snapshot of that name exists.
fn cached_commit(repo_dir: &Path, revision: &str) -> Option<String> {
    if let Ok(commit) = std::fs::read_to_string(repo_dir.join("refs").join(revision)) {
        let commit = commit.trim().to_string();
        if repo_dir.join("snapshots").join(&commit).is_dir() {
            return Some(commit);
        }
    }
    repo_dir
        .join("snapshots")
        .join(revision)
        .is_dir()
        .then(|| revision.to_string())
}

/// Every file under a snapshot folder (symlinks to blobs followed), repo-relative, sorted.
fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                if let Ok(rel) = path.strip_prefix(dir) {
                    let parts: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    files.push(parts.join("/"));
                }
            }
        }
    }
    files.sort();
    files
}

/// Test support: lays out files exactly as the Hub client caches a dataset repo.
pub mod testing {
    use std::path::{Path, PathBuf};

    /// Writes `files` (repo-relative name, bytes) into `cache_dir` as the Hub client does for a
    /// dataset at `revision` → `commit`: each file's bytes in `blobs/<sha256>`, a symlink (a
    /// copy where symlinks are not available) at `snapshots/<commit>/<name>`, and
    /// `refs/<revision>` holding the commit. Returns the snapshot folder.
    pub fn lay_out_dataset_cache(
        cache_dir: &Path,
        repo_id: &str,
        revision: &str,
        commit: &str,
        files: &[(&str, &[u8])],
    ) -> std::io::Result<PathBuf> {
        use sha2::Digest;
        let repo_dir = super::dataset_cache_dir(cache_dir, repo_id);
        let refs = repo_dir.join("refs").join(revision);
        if let Some(parent) = refs.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&refs, commit)?;
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs)?;
        let snapshot = repo_dir.join("snapshots").join(commit);
        for (name, bytes) in files {
            let hash: String = sha2::Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let blob = blobs.join(&hash);
            std::fs::write(&blob, bytes)?;
            let pointer = snapshot.join(name);
            if let Some(parent) = pointer.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let _ = std::fs::remove_file(&pointer);
            link_or_copy(&blob, &pointer)?;
        }
        Ok(snapshot)
    }

    #[cfg(unix)]
    fn link_or_copy(blob: &Path, pointer: &Path) -> std::io::Result<()> {
        std::os::unix::fs::symlink(blob, pointer)
    }

    #[cfg(not(unix))]
    fn link_or_copy(blob: &Path, pointer: &Path) -> std::io::Result<()> {
        std::fs::copy(blob, pointer).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline(cache: &Path) -> HubOptions {
        HubOptions::from_vars(|k| match k {
            "HF_HUB_CACHE" => Some(cache.display().to_string()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        })
    }

    #[test]
    fn lists_and_fetches_a_cached_dataset_offline() {
        let tmp = tempfile::tempdir().unwrap();
        let commit = "89abcdef0123456789abcdef0123456789abcdef";
        let snap = testing::lay_out_dataset_cache(
            tmp.path(),
            "org/data",
            "main",
            commit,
            &[("README.md", b"# data"), ("data/train-0.parquet", b"x")],
        )
        .unwrap();
        let ds = open_dataset("org/data", &offline(tmp.path())).unwrap();
        assert!(ds.is_offline());
        assert_eq!(ds.commit.as_deref(), Some(commit));
        assert_eq!(ds.files, ["README.md", "data/train-0.parquet"]);
        assert_eq!(
            ds.fetch("data/train-0.parquet").unwrap(),
            snap.join("data/train-0.parquet")
        );
        let err = ds.fetch("data/train-1.parquet").unwrap_err().to_string();
        assert!(
            err.contains("data/train-1.parquet") && err.contains("HF_HUB_OFFLINE"),
            "{err}"
        );
        // A commit can be asked for by name.
        let ds = open_dataset("org/data", &offline(tmp.path()).with_revision(commit)).unwrap();
        assert_eq!(ds.files.len(), 2);
    }

    #[test]
    fn offline_names_a_missing_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let err = open_dataset("org/absent", &offline(tmp.path())).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::DatasetNotCached { .. }), "{msg}");
        assert!(msg.contains("org/absent") && msg.contains("refs"), "{msg}");
    }
}
