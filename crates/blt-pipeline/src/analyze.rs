//! One document through the model and the patcher: bytes → ids → entropies → patches.

use blt_model::backend::Backend;
use blt_model::{EntropyEstimator, EstimateOptions};
use blt_patcher::{PatchBoundaries, Patcher};
use blt_tokenizer::BltTokenizer;

use crate::Result;

/// Everything known about one document after patching.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentAnalysis {
    /// Token ids (BOS and EOS included when the tokenizer adds them).
    pub ids: Vec<u32>,
    /// Entropy (nats) of the prediction made at each position.
    pub entropies: Vec<f32>,
    /// L2 norm of the pre-norm hidden state at each position.
    pub prominence: Vec<f32>,
    /// The patches over `ids`.
    pub patches: PatchBoundaries,
}

/// Tokenizes, estimates and patches documents with one model and one patcher.
#[derive(Debug)]
pub struct DocumentAnalyzer<B: Backend> {
    estimator: EntropyEstimator<B>,
    patcher: Patcher,
    tokenizer: BltTokenizer,
}

impl<B: Backend> DocumentAnalyzer<B> {
    /// Composes the parts.
    pub fn new(estimator: EntropyEstimator<B>, patcher: Patcher, tokenizer: BltTokenizer) -> Self {
        Self {
            estimator,
            patcher,
            tokenizer,
        }
    }

    /// The estimator.
    pub fn estimator(&self) -> &EntropyEstimator<B> {
        &self.estimator
    }

    /// Analyses the bytes of one document.
    pub fn analyze(&self, bytes: &[u8]) -> Result<DocumentAnalysis> {
        let ids = self.tokenizer.encode(bytes);
        let estimate = self.estimator.estimate(&ids, EstimateOptions::default())?;
        let patches = self.patcher.patch(&ids, Some(&estimate.entropies))?;
        Ok(DocumentAnalysis {
            ids,
            entropies: estimate.entropies,
            prominence: estimate.prominence,
            patches,
        })
    }
}
