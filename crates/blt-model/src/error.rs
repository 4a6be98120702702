//! The errors of this crate: every variant names the file, tensor or input involved.

use std::path::PathBuf;

use burn::tensor::DType;

/// Errors of model loading and inference.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The model config is missing, malformed or describes an impossible model.
    #[error("invalid model config {}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The path holds no checkpoint layout this crate knows.
    #[error("{}: no entropy-model checkpoint found ({reason}); expected config.json + model.safetensors (facebook/blt-entropy layout), params.json + consolidated.pth (Meta's layout) or a Hugging Face BLT checkpoint with `model.patcher.*` tensors", path.display())]
    UnknownLayout {
        /// The directory or file.
        path: PathBuf,
        /// What was looked for and not found.
        reason: String,
    },
    /// The weights file is not a valid safetensors / PyTorch file (truncated, bad header, ...).
    #[error("{}: not a valid {format} file: {reason}", path.display())]
    InvalidWeights {
        /// The weights file.
        path: PathBuf,
        /// `safetensors` or `PyTorch`.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is not in the weights file.
    #[error("{}: tensor `{name}` is missing", path.display())]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name in the file's own naming.
        name: String,
    },
    /// A tensor has the wrong shape for the config.
    #[error("{}: tensor `{name}` has shape {found:?}, but the config needs {expected:?}", path.display())]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name in the file's own naming.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor is not stored as a floating-point type.
    #[error("{}: tensor `{name}` is stored as {found}; expected F32, BF16 or F16", path.display())]
    UnsupportedDType {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name in the file's own naming.
        name: String,
        /// The dtype found.
        found: String,
    },
    /// A tensor's stored bytes are absent, short, unreadable or laid out in a way the loader
    /// would misread: the file is damaged, and loading it would give wrong weights (for a
    /// PyTorch file, `burn-store` would silently read zeros).
    #[error("{}: tensor `{name}` is damaged: {problem}", path.display())]
    DamagedTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name in the file's own naming.
        name: String,
        /// What is wrong with it.
        problem: TensorDamage,
    },
    /// Burn refused to apply the weights (should not happen after validation).
    #[error("{}: loading the weights failed: {reason}", path.display())]
    Load {
        /// The weights file.
        path: PathBuf,
        /// Burn's message.
        reason: String,
    },
    /// The backend cannot compute in the requested dtype on this device (bf16 under WGPU, whose
    /// shading language has no bf16, or f16 on an adapter without `shader-f16`).
    #[error("the {backend} backend cannot run the model in {dtype:?} on this device; use dtype F32{alt}")]
    DTypeUnavailable {
        /// The backend's name.
        backend: String,
        /// The dtype asked for.
        dtype: DType,
        /// A suggestion, or empty.
        alt: &'static str,
    },
    /// An input the model cannot take (a token id outside the vocabulary, ...).
    #[error("invalid model input: {0}")]
    Input(String),
    /// A tensor could not be read back from the device.
    #[error("reading a tensor back from the device failed: {0}")]
    Readback(String),
}

/// What is wrong with one tensor's stored bytes ([`Error::DamagedTensor`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorDamage {
    /// The archive entry holding the tensor's storage is not there.
    #[error("its storage `{entry}` is not in the archive")]
    MissingStorage {
        /// The archive entry looked for (`data/<key>`, under the archive's folder).
        entry: String,
    },
    /// The storage holds fewer bytes than the tensor (or the storage's declared size) needs.
    #[error("its storage `{entry}` holds {found} bytes, but {needed} are needed")]
    ShortStorage {
        /// The archive entry.
        entry: String,
        /// Bytes needed: (storage offset + elements) × element size, or the declared storage
        /// size if larger.
        needed: u64,
        /// Bytes the entry holds.
        found: u64,
    },
    /// The storage's archive entry cannot be read to its end (CRC mismatch, bad compression,
    /// truncated archive).
    #[error("its storage `{entry}` cannot be read: {reason}")]
    UnreadableStorage {
        /// The archive entry.
        entry: String,
        /// The zip reader's message.
        reason: String,
    },
    /// The tensor is not stored row-major contiguous (the loader ignores strides).
    #[error("it is stored with strides {stride:?} for shape {shape:?}, not row-major contiguous")]
    NonContiguous {
        /// Its shape.
        shape: Vec<usize>,
        /// Its strides, in elements.
        stride: Vec<usize>,
    },
    /// The tensor's description in the file is impossible (negative sizes, an offset or size
    /// that overflows, shape and strides of different ranks).
    #[error("{reason}")]
    Malformed {
        /// What is impossible.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
