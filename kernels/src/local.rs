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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAttention {
    /// Positions in the sequence.
    pub seq: usize,
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
                window,
                block_len: seq,
                blocks: 1,
                key_len: seq,
                key_offset: 0,
            },
        }
    }

    /// The query positions of block `j` (within the sequence).
    pub fn queries(&self, j: usize) -> Range<usize> {
        (j * self.block_len).min(self.seq)..((j + 1) * self.block_len).min(self.seq)
    }

    /// The key position at column `i` of block `j`, `None` for padding before the sequence.
    pub fn key(&self, j: usize, i: usize) -> Option<usize> {
        (j * self.block_len + i).checked_sub(self.key_offset)
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
            return (
                query.reshape([b, h, 1, s, d]),
                key.reshape([b, h, 1, s, d]),
                value.reshape([b, h, 1, s, d]),
            );
        }
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

    /// `[b, h, blocks, block_len, d]` → `[b, seq, h, d]` (heads last, as the output projection
    /// reads them): free when the product was written in that order.
    pub fn unfold_output<B: Backend>(&self, out: Tensor<B, 5>) -> Tensor<B, 4> {
        let [b, h, n, l, d] = out.dims();
        let out = out.permute([0, 2, 3, 1, 4]).reshape([b, n * l, h, d]);
        if n * l == self.seq {
            out
        } else {
            out.narrow(1, 0, self.seq)
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
        let block_start =
            Tensor::<B, 1, Int>::arange_step(0..(n * l) as i64, l, device).reshape([n, 1, 1]);
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
        let tail = n * l - self.seq;
        // Queries past the sequence get a start no key reaches.
        let starts = if tail > 0 {
            let pad = Tensor::full([b, tail], (n * l) as i64, device);
            Tensor::cat(vec![starts.clone(), pad], 1)
        } else {
            starts.clone()
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
