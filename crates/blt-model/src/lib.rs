#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backend;
pub mod checkpoint;
pub mod config;
mod error;
pub mod estimator;
pub mod mask;
pub mod model;
mod pth;
pub mod quantize;
pub mod rope;
pub mod train;
pub mod windows;

pub use burn::tensor::DType;
pub use checkpoint::{Checkpoint, CheckpointFormat, CheckpointReport, TensorInfo};
pub use config::{AttentionBias, EntropyModelConfig};
pub use error::{Error, Result, TensorDamage};
pub use estimator::{EntropyEstimator, EstimateOptions, SequenceEstimate};
pub use model::{entropy, EntropyModel, ForwardOutput};
pub use quantize::WeightQuantization;
pub use train::{TokenStream, TrainingConfig, TrainingObserver, TrainingOutcome};
