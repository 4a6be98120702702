//! Which keys each query may attend to, as the released entropy model's xformers mask
//! (`BlockDiagonalCausalMask.from_seqlens(...).make_local_attention(window)`): query `q` sees key
//! `k` iff `k ≤ q`, `q − k < window`, and both lie in the same document, documents being cut
//! **after** every EOS (an EOS belongs to the document it ends).
//!
//! Long sequences are cut into blocks of `window` queries, each attending to the at most
//! `2·window − 1` keys it can see, so memory grows linearly with the sequence, not quadratically.

use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

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
    /// `[batch, 1, queries, keys]` (`[1, 1, queries, keys]` when every row is one document),
    /// `true` where attention is forbidden.
    pub masked: Tensor<B, 4, Bool>,
}

/// `true` where query `q ∈ queries` may not see key `k ∈ keys`: `[1, 1, q, k]` for one document
/// per row, `[batch, 1, q, k]` with document indices `[batch, seq]`.
fn block_mask<B: Backend>(
    rule: &AttentionRule,
    queries: &Range<usize>,
    keys: &Range<usize>,
    doc_ids: Option<&Tensor<B, 2, Int>>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let (ql, kl) = (queries.len(), keys.len());
    let q = Tensor::<B, 1, Int>::arange(queries.start as i64..queries.end as i64, device)
        .reshape([ql, 1])
        .expand([ql, kl]);
    let k = Tensor::<B, 1, Int>::arange(keys.start as i64..keys.end as i64, device)
        .reshape([1, kl])
        .expand([ql, kl]);
    // distance = q − k: visible when 0 ≤ distance (< window)
    let distance = q - k;
    let mut allowed = distance.clone().greater_equal_elem(0);
    if let Some(w) = rule.window {
        allowed = allowed.bool_and(distance.lower_elem(w as i64));
    }
    let allowed = allowed.reshape([1, 1, ql, kl]);
    match doc_ids {
        None => allowed.bool_not(),
        Some(ids) => {
            let b = ids.dims()[0];
            let dq = ids
                .clone()
                .slice([0..b, queries.clone()])
                .reshape([b, 1, ql, 1])
                .expand([b, 1, ql, kl]);
            let dk = ids
                .clone()
                .slice([0..b, keys.clone()])
                .reshape([b, 1, 1, kl])
                .expand([b, 1, ql, kl]);
            dq.equal(dk)
                .bool_and(allowed.expand([b, 1, ql, kl]))
                .bool_not()
        }
    }
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
        // Rows without a cutting EOS before their last position are one document each: the
        // mask is then the window rule alone, the same for every row.
        let one_document = docs.iter().all(|d| d.last().is_none_or(|&last| last == 0));
        // The masks are built on the device from positions and document indices (a few
        // elementwise kernels), not uploaded: `[batch, 1, q, k]` booleans would be tens of MB
        // per forward pass at 8 × 4096.
        let doc_ids = (!one_document).then(|| {
            let flat: Vec<i64> = docs.iter().flatten().map(|&d| d as i64).collect();
            crate::model::token_tensor::<B>(flat, rows.len(), seq, device)
        });
        let blocks = rule
            .blocks(seq)
            .into_iter()
            .map(|(queries, keys)| {
                let masked = block_mask(rule, &queries, &keys, doc_ids.as_ref(), device);
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

    /// The device-built masks equal the rule, position by position, with and without EOS cuts.
    #[test]
    fn plan_masks_equal_the_rule() {
        type Cpu = burn::backend::Flex;
        let device = Default::default();
        let rule = AttentionRule {
            window: Some(6),
            eos_cut: Some(2),
        };
        let seq = 11;
        let with_eos: Vec<u32> = vec![1, 7, 2, 9, 9, 9, 2, 2, 5, 6, 2];
        let without: Vec<u32> = vec![1, 7, 8, 9, 9, 9, 3, 3, 5, 6, 2];
        for rows in [
            vec![&with_eos[..], &without[..]],
            vec![&without[..], &without[..]],
        ] {
            let plan = AttentionPlan::<Cpu>::new(&rule, &rows, seq, &device);
            let block = &plan.blocks()[0];
            let [mb, _, ql, kl] = block.masked.dims();
            assert_eq!((ql, kl), (seq, seq));
            let masked: Vec<bool> = block.masked.clone().into_data().to_vec().unwrap();
            for (r, row) in rows.iter().enumerate() {
                let docs = rule.documents(row);
                let m = if mb == 1 { 0 } else { r };
                for q in 0..seq {
                    for k in 0..seq {
                        assert_eq!(
                            masked[(m * ql + q) * kl + k],
                            !rule.allows(q, k, docs[q], docs[k]),
                            "row {r} q {q} k {k}"
                        );
                    }
                }
            }
        }
        // blocks of a long sequence: offsets of queries and keys
        let rule = AttentionRule {
            window: Some(4),
            ..rule
        };
        let long: Vec<u32> = (0..40).map(|i| if i == 17 { 2 } else { 5 }).collect();
        let plan = AttentionPlan::<Cpu>::new(&rule, &[&long[..]], 40, &device);
        let docs = rule.documents(&long);
        assert!(plan.blocks().len() > 1);
        for block in plan.blocks() {
            let [_, _, ql, kl] = block.masked.dims();
            let masked: Vec<bool> = block.masked.clone().into_data().to_vec().unwrap();
            for (i, q) in block.queries.clone().enumerate() {
                for (j, k) in block.keys.clone().enumerate() {
                    assert_eq!(masked[i * kl + j], !rule.allows(q, k, docs[q], docs[k]));
                }
            }
            assert_eq!(ql, block.queries.len());
        }
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
