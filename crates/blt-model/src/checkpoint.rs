//! Finding, checking and loading entropy-model checkpoints.
//!
//! Three layouts load as they are, with no conversion step:
//!
//! | layout | files | tensor names |
//! | --- | --- | --- |
//! | [`CheckpointFormat::Hub`] (`facebook/blt-entropy`) | `config.json` + `model.safetensors` | the reference's (`layers.0.attention.wq.weight`) |
//! | [`CheckpointFormat::Meta`] (Meta's `entropy_model/`) | `params.json` + `consolidated.pth` (or `consolidated/consolidated.pth`) | the reference's, under the pickle's `"model"` key |
//! | [`CheckpointFormat::HuggingFace`] (transformers' BLT port) | `config.json` with `patcher_config` + `model.safetensors` | `model.patcher.layers.0.self_attn.q_proj.weight`, … |
//!
//! Every layout is loaded through `burn-store` with one declared remap table; before that, the
//! file's tensors are checked against the shapes the config implies, so that a missing tensor, a
//! wrong shape, a wrong dtype, a truncated file or a garbage header is a typed [`Error`] that
//! names the tensor and the file, and no tensor is allocated for a config the file does not
//! match.
//!
//! Damaged data is an error, never zeros:
//! - safetensors: `burn-store` parses the file with the `safetensors` crate, which refuses a
//!   header whose offsets leave gaps, overlap, run past the end of the file or disagree with the
//!   tensor's dtype and shape, and a file whose length is not exactly header + data
//!   ([`Error::InvalidWeights`]);
//! - PyTorch (`consolidated.pth`): `burn-store` 0.21 reads a tensor whose storage entry is absent,
//!   unreadable or short as zeros (zero-padded), and ignores strides. So before it parses the
//!   file, the archive's pickle is read (without running it) and every tensor's storage entry is
//!   read through, checking its CRC and that it holds the tensor's bytes; a tensor that fails is
//!   an [`Error::DamagedTensor`] naming it and the [`crate::TensorDamage`]. Only the zip format of
//!   `torch.save` (PyTorch 1.6 and later) is accepted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_store::{
    KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
    TensorSnapshot,
};

use crate::config::EntropyModelConfig;
use crate::model::EntropyModel;
use crate::{Error, Result};

/// The on-disk layouts of an entropy-model checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `config.json` + `model.safetensors` with the reference's tensor names.
    Hub,
    /// Meta's `params.json` + `consolidated.pth`.
    Meta,
    /// A Hugging Face transformers BLT checkpoint; the entropy model is `model.patcher.*`.
    HuggingFace,
}

impl std::fmt::Display for CheckpointFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hub => "hub (config.json + model.safetensors)",
            Self::Meta => "meta (params.json + consolidated.pth)",
            Self::HuggingFace => "huggingface (model.patcher.* in model.safetensors)",
        })
    }
}

/// Reference name part → Hugging Face name part (REFERENCE.md §2.4), applied after the
/// `model.patcher.` prefix.
const HF_NAMES: [(&str, &str); 11] = [
    ("attention.wq.", "self_attn.q_proj."),
    ("attention.wk.", "self_attn.k_proj."),
    ("attention.wv.", "self_attn.v_proj."),
    ("attention.wo.", "self_attn.o_proj."),
    ("feed_forward.w1.", "mlp.gate_proj."),
    ("feed_forward.w3.", "mlp.up_proj."),
    ("feed_forward.w2.", "mlp.down_proj."),
    ("attention_norm.", "input_layernorm."),
    ("ffn_norm.", "post_attention_layernorm."),
    ("tok_embeddings.", "embed_tokens."),
    ("output.", "lm_head."),
];
const HF_PREFIX: &str = "model.patcher.";

/// One tensor of a checkpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name in the file's own naming.
    pub name: String,
    /// Shape as stored (PyTorch `[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// Stored dtype.
    pub dtype: String,
}

/// How a checkpoint's tensors compare with what its config needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointReport {
    /// Needed tensors that are absent (file naming).
    pub missing: Vec<String>,
    /// Tensors with a shape other than the config implies: (name, expected, found).
    pub wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors stored in a non-float dtype: (name, dtype).
    pub wrong_dtype: Vec<(String, String)>,
    /// Stored tensors the model does not use (reference naming after remapping).
    pub unused: Vec<String>,
    /// Dtype of the (first) usable weight.
    pub dtype: Option<DType>,
    /// Parameters in the usable tensors.
    pub loaded_params: usize,
}

impl CheckpointReport {
    /// Whether every needed tensor is present and usable.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.wrong_shape.is_empty() && self.wrong_dtype.is_empty()
    }
}

/// A checkpoint on disk: where its files are, its layout and its config.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The layout.
    pub format: CheckpointFormat,
    /// The config file that was read.
    pub config_path: PathBuf,
    /// The weights file.
    pub weights_path: PathBuf,
    /// The model's hyper-parameters.
    pub config: EntropyModelConfig,
}

impl Checkpoint {
    /// Finds the checkpoint in `path`: a directory in one of the three layouts, or a weights file
    /// (`*.safetensors`, `*.pth`) with its config beside it.
    pub fn open(path: &Path) -> Result<Self> {
        let (dir, weights_hint) = if path.is_file() {
            let dir = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            (dir, Some(path.to_path_buf()))
        } else if path.is_dir() {
            (path.to_path_buf(), None)
        } else {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        };
        let is_pth = weights_hint
            .as_ref()
            .and_then(|w| w.extension())
            .is_some_and(|e| e == "pth" || e == "pt");

        let params = dir.join("params.json");
        let config_json = dir.join("config.json");
        if is_pth || (params.is_file() && !config_json.is_file()) {
            let weights = weights_hint.clone().or_else(|| {
                [
                    dir.join("consolidated").join("consolidated.pth"),
                    dir.join("consolidated.pth"),
                ]
                .into_iter()
                .find(|p| p.is_file())
            });
            let Some(weights_path) = weights else {
                return Err(Error::UnknownLayout {
                    path: dir,
                    reason: "params.json has no consolidated.pth beside it".into(),
                });
            };
            let config_path = if params.is_file() {
                params
            } else {
                config_json
            };
            let config = EntropyModelConfig::from_json_file(&config_path)?;
            return Ok(Self {
                dir,
                format: CheckpointFormat::Meta,
                config_path,
                weights_path,
                config,
            });
        }

        if !config_json.is_file() {
            return Err(Error::UnknownLayout {
                path: dir,
                reason: "neither config.json nor params.json is there".into(),
            });
        }
        let weights_path = weights_hint.unwrap_or_else(|| dir.join("model.safetensors"));
        if !weights_path.is_file() {
            return Err(Error::UnknownLayout {
                path: dir,
                reason: format!("{} is missing", weights_path.display()),
            });
        }
        let config = EntropyModelConfig::from_json_file(&config_json)?;
        let raw: serde_json::Value = std::fs::read_to_string(&config_json)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let format = if raw.get("patcher_config").is_some() || raw.get("hidden_size").is_some() {
            CheckpointFormat::HuggingFace
        } else {
            CheckpointFormat::Hub
        };
        Ok(Self {
            dir,
            format,
            config_path: config_json,
            weights_path,
            config,
        })
    }

    /// The tensors the config needs, in the reference's names, with PyTorch shapes.
    pub fn expected_tensors(config: &EntropyModelConfig) -> Vec<(String, Vec<usize>)> {
        let (d, hd, h, kv) = (
            config.dim,
            config.head_dim(),
            config.n_heads,
            config.n_kv_heads(),
        );
        let f = config.ffn_hidden_dim();
        let mut out = vec![(
            "tok_embeddings.weight".to_string(),
            vec![config.vocab_size, d],
        )];
        for i in 0..config.n_layers {
            let p = format!("layers.{i}.");
            out.extend([
                (format!("{p}attention.wq.weight"), vec![h * hd, d]),
                (format!("{p}attention.wk.weight"), vec![kv * hd, d]),
                (format!("{p}attention.wv.weight"), vec![kv * hd, d]),
                (format!("{p}attention.wo.weight"), vec![d, h * hd]),
                (format!("{p}feed_forward.w1.weight"), vec![f, d]),
                (format!("{p}feed_forward.w2.weight"), vec![d, f]),
                (format!("{p}feed_forward.w3.weight"), vec![f, d]),
                (format!("{p}attention_norm.weight"), vec![d]),
                (format!("{p}ffn_norm.weight"), vec![d]),
            ]);
        }
        out.push(("norm.weight".to_string(), vec![d]));
        out.push(("output.weight".to_string(), vec![config.vocab_size, d]));
        out
    }

    /// The name a reference tensor has in this checkpoint's file.
    pub fn file_name_of(&self, reference_name: &str) -> String {
        match self.format {
            CheckpointFormat::Hub | CheckpointFormat::Meta => reference_name.to_string(),
            CheckpointFormat::HuggingFace => {
                let name = HF_NAMES
                    .iter()
                    .find(|(reference, _)| reference_name.contains(reference))
                    .map(|(reference, hf)| reference_name.replacen(reference, hf, 1))
                    .unwrap_or_else(|| reference_name.to_string());
                format!("{HF_PREFIX}{name}")
            }
        }
    }

    /// The remap table from this layout's names to the reference's.
    fn remapper(&self) -> KeyRemapper {
        match self.format {
            CheckpointFormat::Hub | CheckpointFormat::Meta => KeyRemapper::new(),
            CheckpointFormat::HuggingFace => {
                let mut patterns: Vec<(String, String)> = HF_NAMES
                    .iter()
                    .map(|(reference, hf)| {
                        (
                            format!(r"^{}(.*?){}", regex_escape(HF_PREFIX), regex_escape(hf)),
                            format!("{HF_PREFIX}${{1}}{reference}"),
                        )
                    })
                    .collect();
                patterns.push((format!("^{}", regex_escape(HF_PREFIX)), String::new()));
                KeyRemapper::from_patterns(patterns)
                    .unwrap_or_else(|_| unreachable!("the remap patterns are constant and valid"))
            }
        }
    }

    fn safetensors_store(&self) -> SafetensorsStore {
        SafetensorsStore::from_file(&self.weights_path)
            .remap(self.remapper())
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(false)
            .validate(true)
    }

    fn pytorch_store(&self, top_level_key: Option<&str>) -> PytorchStore {
        let store = PytorchStore::from_file(&self.weights_path)
            .remap(self.remapper())
            .allow_partial(false)
            .validate(true);
        match top_level_key {
            Some(key) => store.with_top_level_key(key),
            None => store,
        }
    }

    fn invalid(&self, reason: impl std::fmt::Display) -> Error {
        Error::InvalidWeights {
            path: self.weights_path.clone(),
            format: match self.format {
                CheckpointFormat::Meta => "PyTorch",
                _ => "safetensors",
            },
            reason: reason.to_string(),
        }
    }

    /// Every tensor stored in the weights file (after remapping to the reference's names), with
    /// shapes and dtypes as stored.
    fn stored_tensors(&self) -> Result<BTreeMap<String, (Vec<usize>, DType)>> {
        fn collect(
            map: &BTreeMap<String, TensorSnapshot>,
        ) -> BTreeMap<String, (Vec<usize>, DType)> {
            map.iter()
                .map(|(k, s)| (k.clone(), (s.shape.to_vec(), s.dtype)))
                .collect()
        }
        // `config` is a public field: it may have been set by hand since `open` checked it
        self.config.validate().map_err(|reason| Error::Config {
            path: self.config_path.clone(),
            reason,
        })?;
        match self.format {
            CheckpointFormat::Meta => {
                // before burn-store parses the file: it reads a missing or short storage as zeros
                crate::pth::check_storages(&self.weights_path, "model")?;
                let mut with_key = self.pytorch_store(Some("model"));
                match with_key.get_all_snapshots() {
                    Ok(map) if !map.is_empty() => Ok(collect(map)),
                    _ => {
                        let mut flat = self.pytorch_store(None);
                        let map = flat.get_all_snapshots().map_err(|e| self.invalid(e))?;
                        Ok(collect(map))
                    }
                }
            }
            _ => {
                let mut store = self.safetensors_store();
                let map = store.get_all_snapshots().map_err(|e| self.invalid(e))?;
                Ok(collect(map))
            }
        }
    }

    /// The tensor table of the file, in the file's own naming, as stored.
    pub fn tensors(&self) -> Result<Vec<TensorInfo>> {
        let stored = self.stored_tensors()?;
        let expected: BTreeMap<String, Vec<usize>> =
            Self::expected_tensors(&self.config).into_iter().collect();
        Ok(stored
            .into_iter()
            .filter(|(name, _)| {
                expected.contains_key(name) || self.format != CheckpointFormat::HuggingFace
            })
            .map(|(name, (shape, dtype))| TensorInfo {
                name: self.file_name_of(&name),
                shape,
                dtype: format!("{dtype:?}"),
            })
            .collect())
    }

    /// Compares the file's tensors with what the config needs, listing every problem. An invalid
    /// config, or a PyTorch file with a damaged tensor ([`Error::DamagedTensor`]), is an error.
    pub fn report(&self) -> Result<CheckpointReport> {
        let stored = self.stored_tensors()?;
        let expected = Self::expected_tensors(&self.config);
        let mut report = CheckpointReport::default();
        for (name, shape) in &expected {
            match stored.get(name) {
                None => report.missing.push(self.file_name_of(name)),
                Some((found, dtype)) => {
                    if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16 | DType::F64) {
                        report
                            .wrong_dtype
                            .push((self.file_name_of(name), format!("{dtype:?}")));
                    } else if found != shape {
                        report.wrong_shape.push((
                            self.file_name_of(name),
                            shape.clone(),
                            found.clone(),
                        ));
                    } else {
                        report.dtype.get_or_insert(*dtype);
                        report.loaded_params += shape.iter().product::<usize>();
                    }
                }
            }
        }
        let expected_names: std::collections::BTreeSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        report.unused = stored
            .keys()
            .filter(|k| !expected_names.contains(k.as_str()))
            .cloned()
            .collect();
        Ok(report)
    }

    /// Checks that the file holds every tensor the config needs, with the right shape and a
    /// floating-point dtype, and (for a PyTorch file) that every tensor's stored bytes are there
    /// and readable. Reads tensor metadata only and allocates no tensor. Returns the stored dtype
    /// of the weights.
    pub fn validate(&self) -> Result<DType> {
        let report = self.report()?;
        let path = self.weights_path.clone();
        if let Some(name) = report.missing.into_iter().next() {
            return Err(Error::MissingTensor { path, name });
        }
        if let Some((name, found)) = report.wrong_dtype.into_iter().next() {
            return Err(Error::UnsupportedDType { path, name, found });
        }
        if let Some((name, expected, found)) = report.wrong_shape.into_iter().next() {
            return Err(Error::ShapeMismatch {
                path,
                name,
                expected,
                found,
            });
        }
        Ok(report.dtype.unwrap_or(DType::F32))
    }

    /// Loads the weights into a model on `device`, converted to `dtype` (`None`: as stored).
    ///
    /// The config and the file are checked first ([`Self::validate`]); the model is allocated
    /// only once they agree.
    pub fn load<B: Backend>(
        &self,
        device: &B::Device,
        dtype: Option<DType>,
    ) -> Result<EntropyModel<B>> {
        let stored_dtype = self.validate()?;
        let target = self.compute_dtype::<B>(device, dtype, stored_dtype)?;
        let mut model = EntropyModel::<B>::new(&self.config, device);
        let result = match self.format {
            CheckpointFormat::Meta => {
                let mut store = self.pytorch_store(Some("model"));
                let keyed = store
                    .get_all_snapshots()
                    .map(|m| !m.is_empty())
                    .unwrap_or(false);
                let mut store = if keyed {
                    store
                } else {
                    self.pytorch_store(None)
                };
                model.load_from(&mut store).map_err(|e| Error::Load {
                    path: self.weights_path.clone(),
                    reason: e.to_string(),
                })
            }
            _ => model
                .load_from(&mut self.safetensors_store())
                .map_err(|e| Error::Load {
                    path: self.weights_path.clone(),
                    reason: e.to_string(),
                }),
        }?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(Error::Load {
                path: self.weights_path.clone(),
                reason: result.to_string(),
            });
        }
        Ok(model.map(&mut CastFloats { dtype: target }))
    }

    /// The dtype [`Self::load`] will compute in: `requested`, or the stored one when the device
    /// supports it and f32 otherwise (bf16 weights under WGPU, say: logged). A requested dtype
    /// the device lacks is an error.
    fn compute_dtype<B: Backend>(
        &self,
        device: &B::Device,
        requested: Option<DType>,
        stored: DType,
    ) -> Result<DType> {
        let target = requested.unwrap_or(match stored {
            DType::F64 => DType::F32,
            other => other,
        });
        if B::supports_dtype(device, target) {
            return Ok(target);
        }
        if requested.is_none() {
            tracing::info!(
                "{}: the {} backend has no {target:?} on this device; computing in f32",
                self.weights_path.display(),
                B::name(device)
            );
            return Ok(DType::F32);
        }
        Err(Error::DTypeUnavailable {
            backend: B::name(device),
            dtype: target,
            alt: if target == DType::BF16 && B::supports_dtype(device, DType::F16) {
                " or F16"
            } else {
                ""
            },
        })
    }
}

/// Casts every float parameter of a module to one dtype.
struct CastFloats {
    dtype: DType,
}

impl<B: Backend> ModuleMapper<B> for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = if tensor.dtype() == self.dtype {
            tensor
        } else {
            tensor.cast(self.dtype)
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

fn regex_escape(s: &str) -> String {
    s.replace('.', r"\.")
}

impl<B: Backend> EntropyModel<B> {
    /// Casts every weight to `dtype`.
    pub fn into_dtype(self, dtype: DType) -> Self {
        self.map(&mut CastFloats { dtype })
    }
}
