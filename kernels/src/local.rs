//! Causal sliding-window attention cut at document boundaries, computed block by block so that
//! memory grows linearly with the sequence, with every block of one call folded into the batch
//! dimension: one score product, one softmax and one weighted sum per layer, whatever the
//! sequence length.

use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

/// How a sequence is cut into query blocks for local attention.
///
/// A query `q` sees key `k` iff `start(q) ≤ k ≤ q` and `q − k < window` (when there is a
/// window), `start(q)` being the first position of `q`'s document (0 when a row is one
/// document): the keys a query sees are one contiguous range. With a window `w`, queries go in
/// blocks of `L = min(w, MAX_BLOCK)` and block `j` sees the `L + w − 1` keys from
/// `j·L − (w − 1)` (those before 0 are padding; the count is rounded up to a multiple of
/// [`KEY_ALIGN`] with keys no query of the block sees), when that is fewer keys than the whole
/// sequence; otherwise one block holds every query and sees every key. Smaller blocks compute
/// fewer scores that the window hides (`L + w − 1` per query instead of `2w − 1`).
///
/// One value covers the queries from `query_start` on; [`LocalAttention::parts`] cuts a
/// sequence into the calls that cover all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAttention {
    /// Positions in the sequence.
    pub seq: usize,
    /// The first query position of this call (0 unless the call is one of several parts).
    pub query_start: usize,
    /// The sliding window (a query sees itself and `window − 1` earlier keys); `None` = causal
    /// attention over the whole sequence.
    pub window: Option<usize>,
    /// Queries per block.
    pub block_len: usize,
    /// Number of blocks (`blocks · block_len ≥ seq`; queries past `seq` are padding).
    pub blocks: usize,
    /// Keys each block sees.
    pub key_len: usize,
    /// Block `j`'s first key is position `j · block_len − key_offset`.
    pub key_offset: usize,
}

impl LocalAttention {
    /// The blocks of a sequence of `seq` positions under `window`.
    pub fn new(seq: usize, window: Option<usize>) -> Self {
        match window {
            Some(w) if w > 0 && seq > MAX_BLOCK.min(w) + w - 1 => {
                let block_len = MAX_BLOCK.min(w);
                Self {
                    seq,
                    query_start: 0,
                    window,
                    block_len,
                    blocks: seq.div_ceil(block_len),
                    // Rounded up so that score rows start 16-byte aligned (GEMM libraries fall
                    // back to slow unaligned kernels otherwise); the extra keys lie after every
                    // query of the block, so the causal rule hides them.
                    key_len: (block_len + w - 1).next_multiple_of(KEY_ALIGN),
                    key_offset: w - 1,
                }
            }
            _ => Self {
                seq,
                query_start: 0,
                window,
                block_len: seq,
                blocks: 1,
                key_len: seq,
                key_offset: 0,
            },
        }
    }

    /// The calls that together cover a sequence of `seq` positions under `window`, in query
    /// order. A sequence that [`LocalAttention::new`] leaves in one block (every query against
    /// every key, half of the scores above the diagonal) and that holds at least two
    /// [`MAX_BLOCK`]s is cut into parts of `MAX_BLOCK` queries, part `c` seeing only the keys
    /// from the first one its first query may see (rounded down to a multiple of
    /// [`KEY_ALIGN`]) to its last query: about half the scores of the single block. Otherwise
    /// the one call of [`LocalAttention::new`].
    pub fn parts(seq: usize, window: Option<usize>) -> Vec<Self> {
        let whole = Self::new(seq, window);
        if whole.blocks > 1 || seq < 2 * MAX_BLOCK {
            return vec![whole];
        }
        (0..seq.div_ceil(MAX_BLOCK))
            .map(|c| {
                let first_query = c * MAX_BLOCK;
                let end = (first_query + MAX_BLOCK).min(seq);
                // the first key the first query sees, rounded down to keep score rows aligned
                let first_key = window.map_or(0, |w| (first_query + 1).saturating_sub(w))
                    / KEY_ALIGN
                    * KEY_ALIGN;
                Self {
                    seq,
                    query_start: first_query,
                    window,
                    block_len: end - first_query,
                    blocks: 1,
                    key_len: end - first_key,
                    key_offset: first_query - first_key,
                }
            })
            .collect()
    }

    /// Real queries of this call (those before the end of the sequence).
    pub fn query_count(&self) -> usize {
        (self.blocks * self.block_len).min(self.seq - self.query_start)
    }

    /// The query positions of block `j` (within the sequence).
    pub fn queries(&self, j: usize) -> Range<usize> {
        let at = |i: usize| (self.query_start + i * self.block_len).min(self.seq);
        at(j)..at(j + 1)
    }

    /// The key position at column `i` of block `j`, `None` for padding before the sequence.
    pub fn key(&self, j: usize, i: usize) -> Option<usize> {
        (self.query_start + j * self.block_len + i).checked_sub(self.key_offset)
    }

    /// Whether query `q` may see key `k`, given the first position of `q`'s document.
    #[inline]
    pub fn allows(&self, q: usize, k: usize, start: usize) -> bool {
        start <= k && k <= q && q < self.seq && self.window.is_none_or(|w| q - k < w)
    }

    /// Queries and keys of one call folded by block: `[b, h, seq, d]` →
    /// `([b, h, blocks, block_len, d], [b, h, blocks, key_len, d], [b, h, blocks, key_len, d])`,
    /// padding with zeros where blocks reach past the sequence.
    pub fn fold<B: Backend>(
        &self,
        query: Tensor<B, 4>,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
    ) -> (Tensor<B, 5>, Tensor<B, 5>, Tensor<B, 5>) {
        let [b, h, s, d] = query.dims();
        if self.blocks == 1 {
            // One block inside the sequence: views of the queries and keys it covers.
            let first_key = self.query_start - self.key_offset;
            let part = |t: Tensor<B, 4>, start: usize, len: usize| {
                t.narrow(2, start, len).reshape([b, h, 1, len, d])
            };
            return (
                part(query, self.query_start, self.block_len),
                part(key, first_key, self.key_len),
                part(value, first_key, self.key_len),
            );
        }
        debug_assert_eq!(self.query_start, 0, "banded calls cover the whole sequence");
        let tail = self.blocks * self.block_len - s;
        let query = pad_seq(query, 0, tail).reshape([b, h, self.blocks, self.block_len, d]);
        // Keys padded to `(blocks − 1) · block_len + key_len` positions (`key_offset` of them
        // before the sequence); block j's keys are the window of `key_len` from `j · block_len`.
        let key_tail = (self.blocks - 1) * self.block_len + self.key_len - self.key_offset - s;
        let windows = |t: Tensor<B, 4>| {
            pad_seq(t, self.key_offset, key_tail)
                .unfold::<5, usize>(2, self.key_len, self.block_len)
                .swap_dims(3, 4)
        };
        (query, windows(key), windows(value))
    }

    /// `[b, h, blocks, block_len, d]` → `[b, queries, h, d]` (heads last, as the output projection
    /// reads them): free when the product was written in that order.
    pub fn unfold_output<B: Backend>(&self, out: Tensor<B, 5>) -> Tensor<B, 4> {
        let [b, h, n, l, d] = out.dims();
        let out = out.permute([0, 2, 3, 1, 4]).reshape([b, n * l, h, d]);
        let count = self.query_count();
        if n * l == count {
            out
        } else {
            out.narrow(1, 0, count)
        }
    }

    /// `true` where a score is masked: `[b, 1, blocks, block_len, key_len]` given the first
    /// position of every position's document (`[b, seq]`), or `[1, 1, blocks, block_len, key_len]`
    /// without (every row one document). Queries past the sequence see nothing.
    pub fn mask<B: Backend>(
        &self,
        document_starts: Option<&Tensor<B, 2, Int>>,
        device: &B::Device,
    ) -> Tensor<B, 5, Bool> {
        let (n, l, kl) = (self.blocks, self.block_len, self.key_len);
        let q0 = self.query_start as i64;
        let block_start =
            Tensor::<B, 1, Int>::arange_step(q0..q0 + (n * l) as i64, l, device).reshape([n, 1, 1]);
        let q = block_start.clone()
            + Tensor::<B, 1, Int>::arange(0..l as i64, device).reshape([1, l, 1]);
        let off = self.key_offset as i64;
        // Key positions (padding before the sequence is negative).
        let k = block_start
            + Tensor::<B, 1, Int>::arange(-off..kl as i64 - off, device).reshape([1, 1, kl]);
        let q = q.expand([n, l, kl]);
        let k = k.expand([n, l, kl]);
        let distance = q.clone() - k.clone();
        let mut allowed = k
            .clone()
            .greater_equal_elem(0)
            .bool_and(distance.clone().greater_equal_elem(0))
            .bool_and(q.lower_elem(self.seq as i64));
        if let Some(w) = self.window {
            allowed = allowed.bool_and(distance.lower_elem(w as i64));
        }
        let allowed = allowed.reshape([1, 1, n, l, kl]);
        let Some(starts) = document_starts else {
            return allowed.bool_not();
        };
        let b = starts.dims()[0];
        let count = self.query_count();
        let starts = starts.clone().narrow(1, self.query_start, count);
        let tail = n * l - count;
        // Queries past the sequence get a start no key reaches.
        let starts = if tail > 0 {
            let pad = Tensor::full([b, tail], (self.seq + n * l) as i64, device);
            Tensor::cat(vec![starts, pad], 1)
        } else {
            starts
        };
        let starts = starts.reshape([b, 1, n, l, 1]).expand([b, 1, n, l, kl]);
        k.reshape([1, 1, n, l, kl])
            .expand([b, 1, n, l, kl])
            .greater_equal(starts)
            .bool_and(allowed.expand([b, 1, n, l, kl]))
            .bool_not()
    }
}

/// The most queries in one block of a long sequence.
pub const MAX_BLOCK: usize = 128;

/// A block's key count is a multiple of this (8 keys: 16 bytes of bf16 scores).
pub const KEY_ALIGN: usize = 8;

/// Zero padding along the sequence dimension (2) of `[b, h, s, d]`.
fn pad_seq<B: Backend>(t: Tensor<B, 4>, front: usize, back: usize) -> Tensor<B, 4> {
    if front == 0 && back == 0 {
        return t;
    }
    let [b, h, _, d] = t.dims();
    let device = t.device();
    let dtype = t.dtype();
    let zeros = |n: usize| Tensor::<B, 4>::zeros([b, h, n, d], (&device, dtype));
    let mut parts = Vec::with_capacity(3);
    if front > 0 {
        parts.push(zeros(front));
    }
    parts.push(t);
    if back > 0 {
        parts.push(zeros(back));
    }
    Tensor::cat(parts, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts cover every query once, in order; every key a query may see is among its part's
    /// keys; keys rows stay aligned; the parts compute fewer scores than the one block.
    #[test]
    fn parts_cover_the_sequence() {
        for (seq, window) in [
            (256, Some(512)),
            (512, Some(512)),
            (300, Some(512)),
            (600, Some(512)),
            (400, Some(300)),
            (264, None),
            (1000, None),
            (255, Some(512)),
            (2000, Some(512)),
        ] {
            let parts = LocalAttention::parts(seq, window);
            let whole = LocalAttention::new(seq, window);
            if whole.blocks > 1 || seq < 2 * MAX_BLOCK {
                assert_eq!(parts, vec![whole]);
                continue;
            }
            let mut next = 0;
            let mut scores = 0;
            for p in &parts {
                assert_eq!((p.query_start, p.blocks), (next, 1));
                next += p.query_count();
                scores += p.block_len * p.key_len;
                let first_key = p.query_start - p.key_offset;
                assert!(first_key + p.key_len <= seq);
                if seq % KEY_ALIGN == 0 {
                    assert_eq!(p.key_len % KEY_ALIGN, 0, "{seq} {window:?} {p:?}");
                }
                for q in p.queries(0) {
                    for k in 0..seq {
                        if p.allows(q, k, 0) {
                            let col = (k + p.key_offset).checked_sub(p.query_start);
                            assert!(col.is_some_and(|c| c < p.key_len), "q {q} k {k} {p:?}");
                            assert_eq!(p.key(0, col.unwrap_or(0)), Some(k));
                        }
                    }
                }
            }
            assert_eq!(next, seq);
            assert!(
                scores * 4 <= seq * seq * 3,
                "{seq} {window:?}: {scores} scores"
            );
        }
    }
}
