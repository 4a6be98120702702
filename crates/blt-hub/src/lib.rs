#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

mod dataset;
pub use dataset::{dataset_cache_dir, open_dataset, testing, DatasetSnapshot};

/// The files of each entropy-model layout on the Hub, tried in order.
pub const MODEL_LAYOUTS: &[&[&str]] = &[
    &["config.json", "model.safetensors"],
    &["params.json", "consolidated.pth"],
    &[
        "entropy_model/params.json",
        "entropy_model/consolidated.pth",
    ],
];

/// Errors of Hub resolution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Offline mode and a file is not in the cache.
    #[error("{repo}@{revision}: {missing} is not in the Hugging Face cache at {} and offline mode is on (HF_HUB_OFFLINE=1); download it once with network access (`cargo xtask fetch-model --repo {repo}`) or pass a local directory", cache.display())]
    NotCached {
        /// Repo id.
        repo: String,
        /// Revision asked for.
        revision: String,
        /// The missing file(s).
        missing: String,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// Offline mode and a dataset (or one of its files) is not in the cache.
    #[error("dataset {repo}@{revision}: {missing} is not in the Hugging Face cache at {} and offline mode is on (HF_HUB_OFFLINE=1); fetch it once with network access (unset HF_HUB_OFFLINE) or point HF_HUB_CACHE / HF_HOME at a cache that holds it", cache.display())]
    DatasetNotCached {
        /// Repo id.
        repo: String,
        /// Revision asked for.
        revision: String,
        /// What is missing (the repo's ref, or a file).
        missing: String,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// The Hub refused access: the repo is gated or private.
    #[error("{repo}: access denied by the Hub ({status}). The repo is gated or private: accept its licence on its Hub page, then set HF_TOKEN to a token with read access (or save one in {})", token_path.display())]
    AccessDenied {
        /// Repo id.
        repo: String,
        /// HTTP status.
        status: u16,
        /// Where a saved token is looked for.
        token_path: PathBuf,
    },
    /// The repo or revision does not exist, or holds no known model layout.
    #[error("{repo}@{revision}: not found on the Hub, or it holds none of the known entropy-model layouts (config.json + model.safetensors, params.json + consolidated.pth)")]
    NotFound {
        /// Repo id.
        repo: String,
        /// Revision asked for.
        revision: String,
    },
    /// The Hub could not be reached.
    #[error("{repo}: could not reach the Hugging Face Hub ({reason}). Without network, set HF_HUB_OFFLINE=1 to use the local cache, or pass a local model directory")]
    Network {
        /// Repo id.
        repo: String,
        /// The transport error.
        reason: String,
    },
    /// Any other Hub client error.
    #[error("{repo}: Hugging Face Hub error: {reason}")]
    Hub {
        /// Repo id.
        repo: String,
        /// The client's message.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Where and how to resolve a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// Access token (default: `HF_TOKEN`, else the token saved in the cache's `token` file).
    pub token: Option<String>,
    /// Use the cache only (default: `HF_HUB_OFFLINE` is `1`/`true`/`yes`/`on`).
    pub offline: bool,
    /// The hub cache directory (default: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Show download progress bars.
    pub progress: bool,
}

impl HubOptions {
    /// Options from the standard environment variables (`HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN`,
    /// `HF_HUB_OFFLINE`).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Options from a variable lookup (for tests and embedding).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .unwrap_or_else(|| Cache::default().path().clone());
        let token = var("HF_TOKEN")
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                let home = cache_dir
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                std::fs::read_to_string(home.join("token"))
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        Self {
            revision: "main".into(),
            token,
            offline,
            cache_dir,
            progress: false,
        }
    }

    /// Sets the revision.
    pub fn with_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = revision.into();
        self
    }

    /// Sets offline mode.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Shows progress bars while downloading.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }
}

/// Whether `spec` names a Hub repo (`owner/name`) rather than a local path: it has exactly one
/// `/`, no path-like prefix, and nothing exists at that path.
pub fn is_repo_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        && !Path::new(spec).exists()
}

/// A resolved model snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// Repo id.
    pub repo: String,
    /// Revision asked for.
    pub revision: String,
    /// The commit the revision resolved to, when the cache records it.
    pub commit: Option<String>,
    /// The directory that holds the layout's files (inside the cache's `snapshots/<commit>/`).
    pub dir: PathBuf,
}

/// Resolves an entropy-model repo to a local directory holding one complete layout of
/// [`MODEL_LAYOUTS`], downloading into the standard cache unless offline.
pub fn resolve_model(repo_id: &str, options: &HubOptions) -> Result<ResolvedModel> {
    let repo = Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        options.revision.clone(),
    );
    let cache = Cache::new(options.cache_dir.clone());
    let cached = cache.repo(repo.clone());

    // A complete layout already in the cache needs no network, online or not.
    for layout in MODEL_LAYOUTS {
        let paths: Option<Vec<PathBuf>> = layout.iter().map(|f| cached.get(f)).collect();
        if let Some(paths) = paths {
            tracing::debug!(repo = repo_id, "resolved from the cache");
            return Ok(resolved(repo_id, options, &paths[0], layout[0]));
        }
    }
    if options.offline {
        return Err(Error::NotCached {
            repo: repo_id.into(),
            revision: options.revision.clone(),
            missing: MODEL_LAYOUTS
                .iter()
                .map(|l| l.join(" + "))
                .collect::<Vec<_>>()
                .join(", or "),
            cache: options.cache_dir.clone(),
        });
    }

    let api = ApiBuilder::from_cache(cache)
        .with_token(options.token.clone())
        .with_progress(options.progress)
        .build()
        .map_err(|e| classify(repo_id, &options.cache_dir, e))?;
    let remote = api.repo(repo);
    for layout in MODEL_LAYOUTS {
        match remote.get(layout[0]) {
            Ok(first) => {
                for file in &layout[1..] {
                    remote
                        .get(file)
                        .map_err(|e| classify(repo_id, &options.cache_dir, e))?;
                }
                return Ok(resolved(repo_id, options, &first, layout[0]));
            }
            Err(e) => match classify(repo_id, &options.cache_dir, e) {
                Error::NotFound { .. } => continue,
                other => return Err(other),
            },
        }
    }
    Err(Error::NotFound {
        repo: repo_id.into(),
        revision: options.revision.clone(),
    })
}

fn resolved(repo: &str, options: &HubOptions, first: &Path, first_name: &str) -> ResolvedModel {
    // `first` is `.../snapshots/<commit>/<first_name>`; the layout's dir is its parent.
    let dir = first
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let depth = first_name.matches('/').count();
    let snapshot = dir.ancestors().nth(depth).map(Path::to_path_buf);
    let commit = snapshot
        .as_deref()
        .and_then(Path::file_name)
        .map(|c| c.to_string_lossy().into_owned());
    ResolvedModel {
        repo: repo.into(),
        revision: options.revision.clone(),
        commit,
        dir,
    }
}

fn classify(repo: &str, cache_dir: &Path, e: ApiError) -> Error {
    if let ApiError::RequestError(req) = &e {
        match req.as_ref() {
            ureq::Error::Status(code @ (401 | 403), _) => {
                return Error::AccessDenied {
                    repo: repo.into(),
                    status: *code,
                    token_path: cache_dir
                        .parent()
                        .map(|h| h.join("token"))
                        .unwrap_or_else(|| PathBuf::from("token")),
                }
            }
            ureq::Error::Status(404, _) => {
                return Error::NotFound {
                    repo: repo.into(),
                    revision: String::new(),
                }
            }
            ureq::Error::Transport(t) => {
                return Error::Network {
                    repo: repo.into(),
                    reason: t.to_string(),
                }
            }
            _ => {}
        }
    }
    Error::Hub {
        repo: repo.into(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out `files` as the Hub's cache does: `models--o--n/refs/<rev>` holding the commit,
    /// and `snapshots/<commit>/<file>`.
    fn hub_layout_cache(root: &Path, repo: &str, revision: &str, files: &[&str]) -> PathBuf {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo_dir = root.join(format!("models--{}", repo.replace('/', "--")));
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs").join(revision), commit).unwrap();
        let snap = repo_dir.join("snapshots").join(commit);
        for f in files {
            let p = snap.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"{}").unwrap();
        }
        snap
    }

    fn offline(cache: &Path) -> HubOptions {
        HubOptions::from_vars(|k| match k {
            "HF_HUB_CACHE" => Some(cache.display().to_string()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        })
    }

    #[test]
    fn resolves_a_cached_snapshot_offline() {
        let tmp = tempfile::tempdir().unwrap();
        let snap = hub_layout_cache(
            tmp.path(),
            "facebook/blt-entropy",
            "main",
            &["config.json", "model.safetensors"],
        );
        let opts = offline(tmp.path());
        assert!(opts.offline);
        let r = resolve_model("facebook/blt-entropy", &opts).unwrap();
        assert_eq!(r.dir, snap);
        assert_eq!(
            r.commit.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
    }

    #[test]
    fn resolves_meta_layout_in_a_subfolder() {
        let tmp = tempfile::tempdir().unwrap();
        let snap = hub_layout_cache(
            tmp.path(),
            "facebook/blt",
            "v1",
            &[
                "entropy_model/params.json",
                "entropy_model/consolidated.pth",
            ],
        );
        let r = resolve_model("facebook/blt", &offline(tmp.path()).with_revision("v1")).unwrap();
        assert_eq!(r.dir, snap.join("entropy_model"));
        assert_eq!(
            r.commit.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
    }

    #[test]
    fn offline_says_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        hub_layout_cache(tmp.path(), "facebook/blt-entropy", "main", &["config.json"]);
        let err = resolve_model("facebook/blt-entropy", &offline(tmp.path())).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::NotCached { .. }), "{msg}");
        assert!(
            msg.contains("model.safetensors") && msg.contains("HF_HUB_OFFLINE"),
            "{msg}"
        );
    }

    #[test]
    fn environment_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("token"), "hf_saved\n").unwrap();
        let home = tmp.path().display().to_string();
        let o = HubOptions::from_vars(|k| (k == "HF_HOME").then(|| home.clone()));
        assert_eq!(o.cache_dir, tmp.path().join("hub"));
        assert_eq!(o.token.as_deref(), Some("hf_saved"));
        assert!(!o.offline);
        let o = HubOptions::from_vars(|k| match k {
            "HF_HOME" => Some(home.clone()),
            "HF_TOKEN" => Some("hf_env".into()),
            "HF_HUB_OFFLINE" => Some("true".into()),
            _ => None,
        });
        assert_eq!(o.token.as_deref(), Some("hf_env"));
        assert!(o.offline);
    }

    #[test]
    fn repo_ids_and_paths() {
        assert!(is_repo_id("facebook/blt-entropy"));
        assert!(!is_repo_id("./model"));
        assert!(!is_repo_id("/abs/path"));
        assert!(!is_repo_id("a/b/c"));
        assert!(!is_repo_id("model"));
    }
}
