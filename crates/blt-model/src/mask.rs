//! Which keys each query may attend to, as the released entropy model's xformers mask
//! (`BlockDiagonalCausalMask.from_seqlens(...).make_local_attention(window)`): query `q` sees key
//! `k` iff `k ≤ q`, `q − k < window`, and both lie in the same document, documents being cut
//! **after** every EOS (an EOS belongs to the document it ends).
//!
//! Long sequences are cut into blocks by [`blt_kernels::LocalAttention`], so memory grows
//! linearly with the sequence, not quadratically.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

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
}

/// What one forward pass over a `[batch, seq]` token tensor needs to know about attention: the
/// window and, where a row holds several documents, the first position of every position's
/// document (`[batch, seq]`, on the device): documents are contiguous, so "same document, not
/// later" is "from that start up to the query". The rule is evaluated inside
/// [`blt_kernels::local_attention`]; no `[batch, q, k]` mask is built.
#[derive(Debug, Clone)]
pub struct AttentionPlan<B: Backend> {
    window: Option<usize>,
    document_starts: Option<Tensor<B, 2, Int>>,
}

impl<B: Backend> AttentionPlan<B> {
    /// The plan for `rows` (each of length `seq`) under `rule`.
    pub fn new(rule: &AttentionRule, rows: &[&[u32]], seq: usize, device: &B::Device) -> Self {
        let docs: Vec<Vec<u32>> = rows.iter().map(|r| rule.documents(r)).collect();
        // Rows without a cutting EOS before their last position are one document each: the
        // window rule alone decides, the same for every row.
        let one_document = docs.iter().all(|d| d.last().is_none_or(|&last| last == 0));
        let document_starts = (!one_document).then(|| {
            let flat: Vec<i64> = docs.iter().flat_map(|d| document_starts(d)).collect();
            crate::model::token_tensor::<B>(flat, rows.len(), seq, device)
        });
        Self {
            window: rule.window,
            document_starts,
        }
    }

    /// The sliding window.
    pub fn window(&self) -> Option<usize> {
        self.window
    }

    /// The first position of every position's document, `None` when every row is one document.
    pub fn document_starts(&self) -> Option<&Tensor<B, 2, Int>> {
        self.document_starts.as_ref()
    }
}

/// The first position of each position's document, given nondecreasing document indices.
fn document_starts(docs: &[u32]) -> Vec<i64> {
    let mut start = 0;
    (0..docs.len())
        .map(|p| {
            if p > 0 && docs[p] != docs[p - 1] {
                start = p;
            }
            start as i64
        })
        .collect()
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
        assert_eq!(document_starts(&docs), vec![0, 0, 0, 3, 3, 5, 6]);
    }

    /// The attention mask the plan leads to (blocks, padding, documents) equals the rule,
    /// position by position, with and without EOS cuts, in one block and in many.
    #[test]
    fn plan_masks_equal_the_rule() {
        type Cpu = burn::backend::Flex;
        let device = Default::default();
        let short_rule = AttentionRule {
            window: Some(6),
            eos_cut: Some(2),
        };
        let with_eos: Vec<u32> = vec![1, 7, 2, 9, 9, 9, 2, 2, 5, 6, 2];
        let without: Vec<u32> = vec![1, 7, 8, 9, 9, 9, 3, 3, 5, 6, 2];
        let long: Vec<u32> = (0..41).map(|i| if i == 17 { 2 } else { 5 }).collect();
        let long_rule = AttentionRule {
            window: Some(4),
            ..short_rule
        };
        let unlimited = AttentionRule {
            window: None,
            ..short_rule
        };
        let cases: [(AttentionRule, Vec<&[u32]>); 4] = [
            (short_rule, vec![&with_eos[..], &without[..]]),
            (short_rule, vec![&without[..], &without[..]]),
            (long_rule, vec![&long[..], &long[..]]),
            (unlimited, vec![&with_eos[..], &without[..]]),
        ];
        for (rule, rows) in cases {
            let seq = rows[0].len();
            let plan = AttentionPlan::<Cpu>::new(&rule, &rows, seq, &device);
            let g = blt_kernels::LocalAttention::new(seq, plan.window());
            let mask = g.mask(plan.document_starts(), &device);
            let [mb, _, n, l, kl] = mask.dims();
            assert_eq!((n, l, kl), (g.blocks, g.block_len, g.key_len));
            let masked: Vec<bool> = mask.into_data().to_vec().unwrap();
            for (r, row) in rows.iter().enumerate() {
                let docs = rule.documents(row);
                let m = if mb == 1 { 0 } else { r };
                let mut seen = vec![0usize; seq];
                for j in 0..n {
                    for (i, q) in (j * l..(j + 1) * l).enumerate() {
                        for c in 0..kl {
                            let at = ((m * n + j) * l + i) * kl + c;
                            let allowed = match (q < seq, g.key(j, c)) {
                                (true, Some(k)) => rule.allows(q, k, docs[q], docs[k.min(seq - 1)]),
                                _ => false,
                            };
                            assert_eq!(masked[at], !allowed, "row {r} block {j} q {q} col {c}");
                            if allowed {
                                seen[q] += 1;
                            }
                        }
                    }
                }
                // every key the rule allows is in the query's block: count them directly
                for q in 0..seq {
                    let direct = (0..seq)
                        .filter(|&k| rule.allows(q, k, docs[q], docs[k]))
                        .count();
                    assert_eq!(seen[q], direct, "row {r} q {q}");
                }
            }
        }
    }
}
