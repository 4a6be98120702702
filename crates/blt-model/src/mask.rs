//! Which keys each query may attend to, as the released entropy model's xformers mask
//! (`BlockDiagonalCausalMask.from_seqlens(...).make_local_attention(window)`): query `q` sees key
//! `k` iff `k ≤ q`, `q − k < window`, and both lie in the same document, documents being cut
//! **after** every EOS (an EOS belongs to the document it ends).
//!
//! Long sequences are cut into blocks of `window` queries, each attending to the at most
//! `2·window − 1` keys it can see, so memory grows linearly with the sequence, not quadratically.

use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

/// The attention rule of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionRule {
    /// Sliding window (a query sees itself and `window − 1` earlier keys); `None` = unlimited.
    pub window: Option<usize>,
    /// Cut attention after this id (EOS), if set.
    pub eos_cut: Option<u32>,
}

impl AttentionRule {
    /// Whether query `q` may see key `k`, given each position's document index.
    #[inline]
    pub fn allows(&self, q: usize, k: usize, doc_q: u32, doc_k: u32) -> bool {
        k <= q && self.window.is_none_or(|w| q - k < w) && doc_q == doc_k
    }

    /// Document index of every position: the number of cutting EOS tokens strictly before it.
    pub fn documents(&self, tokens: &[u32]) -> Vec<u32> {
        let mut doc = 0u32;
        tokens
            .iter()
            .map(|&t| {
                let here = doc;
                if Some(t) == self.eos_cut {
                    doc += 1;
                }
                here
            })
            .collect()
    }

    /// Query blocks and the key range each can see, for a sequence of `seq` positions.
    pub fn blocks(&self, seq: usize) -> Vec<(Range<usize>, Range<usize>)> {
        match self.window {
            Some(w) if seq > 2 * w => (0..seq)
                .step_by(w)
                .map(|start| {
                    let end = (start + w).min(seq);
                    (start..end, start.saturating_sub(w - 1)..end)
                })
                .collect(),
            _ => vec![(0..seq, 0..seq)],
        }
    }
}

/// One block of queries with its keys and the mask between them.
#[derive(Debug, Clone)]
pub struct AttentionBlock<B: Backend> {
    /// Query positions.
    pub queries: Range<usize>,
    /// Key positions.
    pub keys: Range<usize>,
    /// `[batch, 1, queries, keys]`, `true` where attention is forbidden.
    pub masked: Tensor<B, 4, Bool>,
}

/// The attention blocks of one forward pass over a `[batch, seq]` token tensor.
#[derive(Debug, Clone)]
pub struct AttentionPlan<B: Backend> {
    blocks: Vec<AttentionBlock<B>>,
}

impl<B: Backend> AttentionPlan<B> {
    /// Builds the masks for `rows` (each of length `seq`) under `rule`.
    pub fn new(rule: &AttentionRule, rows: &[&[u32]], seq: usize, device: &B::Device) -> Self {
        let docs: Vec<Vec<u32>> = rows.iter().map(|r| rule.documents(r)).collect();
        let blocks = rule
            .blocks(seq)
            .into_iter()
            .map(|(queries, keys)| {
                let (ql, kl) = (queries.len(), keys.len());
                let mut masked = Vec::with_capacity(rows.len() * ql * kl);
                for doc in &docs {
                    for q in queries.clone() {
                        for k in keys.clone() {
                            masked.push(!rule.allows(q, k, doc[q], doc[k]));
                        }
                    }
                }
                let masked = crate::model::bool_tensor(masked, [rows.len(), 1, ql, kl], device);
                AttentionBlock {
                    queries,
                    keys,
                    masked,
                }
            })
            .collect();
        Self { blocks }
    }

    /// The blocks, in query order.
    pub fn blocks(&self) -> &[AttentionBlock<B>] {
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: AttentionRule = AttentionRule {
        window: Some(512),
        eos_cut: Some(2),
    };

    #[test]
    fn window_is_self_plus_511() {
        assert!(RELEASE.allows(600, 89, 0, 0));
        assert!(!RELEASE.allows(600, 88, 0, 0));
        assert!(RELEASE.allows(5, 5, 0, 0));
        assert!(!RELEASE.allows(5, 6, 0, 0));
    }

    #[test]
    fn eos_belongs_to_the_document_it_ends() {
        let docs = RELEASE.documents(&[1, 10, 2, 11, 2, 2, 12]);
        assert_eq!(docs, vec![0, 0, 0, 1, 1, 2, 3]);
    }

    #[test]
    fn blocks_cover_every_query_once_with_every_visible_key() {
        for seq in [1, 7, 1024, 1025, 3000] {
            let blocks = RELEASE.blocks(seq);
            let mut next = 0;
            for (q, k) in &blocks {
                assert_eq!(q.start, next);
                next = q.end;
                for query in q.clone() {
                    // every key the rule could allow is inside the block's key range
                    let lo = query.saturating_sub(511);
                    assert!(k.start <= lo && query < k.end);
                }
            }
            assert_eq!(next, seq);
        }
    }
}
