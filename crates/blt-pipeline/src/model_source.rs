//! Where an entropy model comes from: a local checkpoint directory (or weights file) or a Hugging
//! Face Hub repo id resolved through the standard cache.

use std::path::PathBuf;

use blt_hub::HubOptions;
use blt_model::backend::Backend;
use blt_model::{Checkpoint, DType, EntropyEstimator, WeightQuantization};

use crate::Result;

/// A model as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A local directory or weights file.
    Path(PathBuf),
    /// A Hub repo id (`owner/name`).
    Repo(String),
}

impl ModelSpec {
    /// A path if one exists (or it does not look like `owner/name`), else a repo id.
    pub fn parse(spec: &str) -> Self {
        if blt_hub::is_repo_id(spec) {
            Self::Repo(spec.to_string())
        } else {
            Self::Path(PathBuf::from(spec))
        }
    }
}

/// Where a loaded model came from, for provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// The name the user gave (path or repo id).
    pub id: String,
    /// Revision asked for (repos only).
    pub revision: Option<String>,
    /// Commit the revision resolved to (repos only, when the cache records it).
    pub commit: Option<String>,
}

/// A checkpoint found on disk together with its provenance.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Where it came from.
    pub source: ModelSource,
}

impl LoadedModel {
    /// Finds the checkpoint for `spec`, resolving repo ids through the Hub cache.
    pub fn open(spec: &ModelSpec, hub: &HubOptions) -> Result<Self> {
        match spec {
            ModelSpec::Path(path) => Ok(Self {
                checkpoint: Checkpoint::open(path)?,
                source: ModelSource {
                    id: path.display().to_string(),
                    revision: None,
                    commit: None,
                },
            }),
            ModelSpec::Repo(repo) => {
                let resolved = blt_hub::resolve_model(repo, hub)?;
                Ok(Self {
                    checkpoint: Checkpoint::open(&resolved.dir)?,
                    source: ModelSource {
                        id: repo.clone(),
                        revision: Some(resolved.revision),
                        commit: resolved.commit,
                    },
                })
            }
        }
    }

    /// Loads the weights onto `device` in `dtype` (`None`: as stored), with the linear layers'
    /// weights stored quantized when `quantization` is given, and wraps them for estimation.
    pub fn estimator<B: Backend>(
        &self,
        device: B::Device,
        dtype: Option<DType>,
        quantization: Option<WeightQuantization>,
    ) -> Result<EntropyEstimator<B>> {
        let mut model = self.checkpoint.load::<B>(&device, dtype)?;
        if let Some(q) = quantization {
            model = model.quantize_weights(q);
        }
        Ok(EntropyEstimator::new(
            model,
            self.checkpoint.config.clone(),
            device,
        ))
    }
}

impl LoadedModel {
    /// SHA-256 (hex) of the weights file, for provenance.
    pub fn content_hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let path = &self.checkpoint.weights_path;
        let io = |source| crate::Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}
