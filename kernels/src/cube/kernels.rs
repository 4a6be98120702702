//! The `#[cube]` kernels. Each row kernel maps row `(CUBE_POS · CUBE_DIM_Y + UNIT_POS_Y)` to
//! the `CUBE_DIM_X` threads of one cube row; every thread takes part in every barrier, so rows
//! past the end compute on nothing and write nothing.

// `CUBE_POS as usize` and friends: the position builtins are `u32` in the kernel IR that
// `#[cube]` builds, although the expanded host-side code clippy reads sees `usize`.
#![allow(clippy::unnecessary_cast)]

use cubecl::prelude::*;

/// Sum over the threads of one cube row, through shared memory. Every thread gets the total.
#[cube]
fn row_sum(value: f32, smem: &mut SharedMemory<f32>, #[comptime] threads: usize) -> f32 {
    let lane = UNIT_POS_X as usize;
    let base = UNIT_POS_Y as usize * threads;
    smem[base + lane] = value;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if lane < stride {
            let other = smem[base + lane + stride];
            smem[base + lane] += other;
        }
        sync_cube();
        stride /= 2;
    }
    let total = smem[base];
    sync_cube();
    total
}

/// Maximum over the threads of one cube row. Every thread gets the maximum.
#[cube]
fn row_max(value: f32, smem: &mut SharedMemory<f32>, #[comptime] threads: usize) -> f32 {
    let lane = UNIT_POS_X as usize;
    let base = UNIT_POS_Y as usize * threads;
    smem[base + lane] = value;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if lane < stride {
            let other = smem[base + lane + stride];
            let mine = smem[base + lane];
            smem[base + lane] = f32::max(mine, other);
        }
        sync_cube();
        stride /= 2;
    }
    let total = smem[base];
    sync_cube();
    total
}

/// `Σ x[start + i]²` over `i < width` for the calling cube row, in f32; every thread gets it.
#[cube]
fn row_sum_of_squares<F: Float>(
    x: &Tensor<F>,
    start: usize,
    width: usize,
    valid: bool,
    smem: &mut SharedMemory<f32>,
    #[comptime] threads: usize,
) -> f32 {
    let mut ss = f32::new(0.0);
    if valid {
        let mut i = UNIT_POS_X as usize;
        while i < width {
            let v = f32::cast_from(x[start + i]);
            ss += v * v;
            i += threads;
        }
    }
    row_sum(ss, smem, threads)
}

/// `max x[start + i] · scale` over `i < width` for the calling cube row, in f32; every thread
/// gets it (rows past the end get a very negative number).
#[cube]
fn row_scaled_max<F: Float>(
    x: &Tensor<F>,
    start: usize,
    width: usize,
    valid: bool,
    scale: f32,
    smem: &mut SharedMemory<f32>,
    #[comptime] threads: usize,
) -> f32 {
    let mut m = f32::new(-3.0e38);
    if valid {
        let mut i = UNIT_POS_X as usize;
        while i < width {
            m = f32::max(m, f32::cast_from(x[start + i]) * scale);
            i += threads;
        }
    }
    row_max(m, smem, threads)
}

#[cube]
fn row_index() -> usize {
    (CUBE_POS as usize) * (CUBE_DIM_Y as usize) + UNIT_POS_Y as usize
}

/// `H = ln S − T / S` with `S = Σ e^(x−m)`, `T = Σ (x−m)·e^(x−m)`, `m = max x`.
#[cube(launch_unchecked)]
pub(super) fn entropy_kernel<F: Float>(
    logits: &Tensor<F>,
    out: &mut Tensor<f32>,
    rows: usize,
    vocab: usize,
    #[comptime] threads: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
) {
    let mut smem = SharedMemory::<f32>::new(threads * rows_per_cube);
    let row = row_index();
    let lane = UNIT_POS_X as usize;
    let valid = row < rows;
    let start = row * vocab;

    let m = row_scaled_max(
        logits,
        start,
        vocab,
        valid,
        f32::new(1.0),
        &mut smem,
        threads,
    );

    let mut s = f32::new(0.0);
    let mut t = f32::new(0.0);
    if valid {
        let mut i = lane;
        while i < vocab {
            let d = f32::cast_from(logits[start + i]) - m;
            let e = f32::exp(d);
            s += e;
            t += d * e;
            i += threads;
        }
    }
    let s = row_sum(s, &mut smem, threads);
    let t = row_sum(t, &mut smem, threads);
    if valid && lane == 0 {
        out[row] = f32::ln(s) - t / s;
    }
}

/// `softmax(x · scale)` along each row: max, `Σ e^(x·scale − m)`, then the normalised values,
/// in f32, rounded once to `F`.
#[cube(launch_unchecked)]
pub(super) fn softmax_kernel<F: Float>(
    x: &Tensor<F>,
    out: &mut Tensor<F>,
    rows: usize,
    width: usize,
    scale: f32,
    #[comptime] threads: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
) {
    let mut smem = SharedMemory::<f32>::new(threads * rows_per_cube);
    let row = row_index();
    let lane = UNIT_POS_X as usize;
    let valid = row < rows;
    let start = row * width;

    let m = row_scaled_max(x, start, width, valid, scale, &mut smem, threads);

    let mut s = f32::new(0.0);
    if valid {
        let mut i = lane;
        while i < width {
            s += f32::exp(f32::cast_from(x[start + i]) * scale - m);
            i += threads;
        }
    }
    let s = row_sum(s, &mut smem, threads);
    let inv = f32::new(1.0) / s;
    if valid {
        let mut i = lane;
        while i < width {
            let e = f32::exp(f32::cast_from(x[start + i]) * scale - m);
            out[start + i] = F::cast_from(e * inv);
            i += threads;
        }
    }
}

/// `y = x · (mean(x²) + eps)^-½ · w`, in f32, rounded once to `F`.
#[cube(launch_unchecked)]
pub(super) fn rms_norm_kernel<F: Float>(
    x: &Tensor<F>,
    weight: &Tensor<F>,
    out: &mut Tensor<F>,
    rows: usize,
    width: usize,
    eps: f32,
    #[comptime] threads: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
) {
    let mut smem = SharedMemory::<f32>::new(threads * rows_per_cube);
    let row = row_index();
    let lane = UNIT_POS_X as usize;
    let valid = row < rows;
    let start = row * width;

    let ss = row_sum_of_squares(x, start, width, valid, &mut smem, threads);
    let inv = f32::new(1.0) / f32::sqrt(ss / f32::cast_from(width) + eps);
    if valid {
        let mut i = lane;
        while i < width {
            let v = f32::cast_from(x[start + i]) * inv * f32::cast_from(weight[i]);
            out[start + i] = F::cast_from(v);
            i += threads;
        }
    }
}

/// The residual add and the norm after it in one pass over the row: `s = x + d` in `F` (the
/// residual stream, written to `sum`), then `y = s · (mean(s²) + eps)^-½ · w` in f32, rounded
/// once to `F`. Each thread reads back only the elements of `sum` it wrote itself.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(super) fn add_rms_norm_kernel<F: Float>(
    x: &Tensor<F>,
    delta: &Tensor<F>,
    weight: &Tensor<F>,
    sum: &mut Tensor<F>,
    out: &mut Tensor<F>,
    rows: usize,
    width: usize,
    eps: f32,
    #[comptime] threads: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
) {
    let mut smem = SharedMemory::<f32>::new(threads * rows_per_cube);
    let row = row_index();
    let lane = UNIT_POS_X as usize;
    let valid = row < rows;
    let start = row * width;

    let mut acc = f32::new(0.0);
    if valid {
        let mut i = lane;
        while i < width {
            let s = x[start + i] + delta[start + i];
            sum[start + i] = s;
            let v = f32::cast_from(s);
            acc += v * v;
            i += threads;
        }
    }
    let ss = row_sum(acc, &mut smem, threads);
    let inv = f32::new(1.0) / f32::sqrt(ss / f32::cast_from(width) + eps);
    if valid {
        let mut i = lane;
        while i < width {
            let v = f32::cast_from(sum[start + i]) * inv * f32::cast_from(weight[i]);
            out[start + i] = F::cast_from(v);
            i += threads;
        }
    }
}

/// `silu(g) · u = g / (1 + e^-g) · u`, in f32, rounded once to `F`, on vectors of `N` elements
/// (16 bytes where the widths allow). The output is compact rows of `width` vectors; the inputs'
/// rows start every `gate_stride` / `up_stride` vectors. Each thread takes `per_thread` vectors,
/// `stride` apart (independent loads in flight).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(super) fn swiglu_kernel<F: Float, N: Size>(
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    out: &mut Tensor<Vector<F, N>>,
    vectors: usize,
    width: usize,
    gate_stride: usize,
    up_stride: usize,
    stride: usize,
    #[comptime] per_thread: usize,
    #[define(F)] _dtype: StorageType,
) {
    let first = (CUBE_POS as usize) * (CUBE_DIM as usize) + UNIT_POS as usize;
    #[unroll]
    for k in 0..per_thread {
        let i = first + k * stride;
        if i < vectors {
            let row = i / width;
            let col = i % width;
            let g = Vector::<f32, N>::cast_from(gate[row * gate_stride + col]);
            let u = Vector::<f32, N>::cast_from(up[row * up_stride + col]);
            let one = Vector::<f32, N>::new(1.0);
            let silu = g / (one + Vector::exp(Vector::<f32, N>::new(0.0) - g));
            out[i] = Vector::cast_from(silu * u);
        }
    }
}

/// `p = ‖h‖₂` and `c = p² / (H + ε)`, in f32.
#[cube(launch_unchecked)]
pub(super) fn prominence_coherence_kernel<F: Float>(
    hidden: &Tensor<F>,
    entropies: &Tensor<f32>,
    prominence: &mut Tensor<f32>,
    coherence: &mut Tensor<f32>,
    rows: usize,
    width: usize,
    eps: f32,
    #[comptime] threads: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
) {
    let mut smem = SharedMemory::<f32>::new(threads * rows_per_cube);
    let row = row_index();
    let lane = UNIT_POS_X as usize;
    let valid = row < rows;
    let start = row * width;

    let ss = row_sum_of_squares(hidden, start, width, valid, &mut smem, threads);
    if valid && lane == 0 {
        prominence[row] = f32::sqrt(ss);
        coherence[row] = ss / (entropies[row] + eps);
    }
}

/// Interleaved rotary embedding of pair `(2i, 2i+1)` at position `s`:
/// `(e·cos − o·sin, e·sin + o·cos)`, in f32, rounded once to `F`. `x` may be strided (a head
/// view of a projection); `out` is contiguous `[b, h, s, d]`.
#[cube(launch_unchecked)]
pub(super) fn rope_kernel<F: Float>(
    x: &Tensor<F>,
    cos: &Tensor<f32>,
    sin: &Tensor<f32>,
    out: &mut Tensor<F>,
    pairs: usize,
    #[define(F)] _dtype: StorageType,
) {
    let p = (CUBE_POS as usize) * (CUBE_DIM as usize) + UNIT_POS as usize;
    if p < pairs {
        let half = out.shape(3) / 2;
        let i = p % half;
        let rest = p / half;
        let s = rest % out.shape(2);
        let rest = rest / out.shape(2);
        let h = rest % out.shape(1);
        let b = rest / out.shape(1);
        let src = b * x.stride(0) + h * x.stride(1) + s * x.stride(2) + 2 * i * x.stride(3);
        let e = f32::cast_from(x[src]);
        let o = f32::cast_from(x[src + x.stride(3)]);
        let c = cos[s * half + i];
        let n = sin[s * half + i];
        out[2 * p] = F::cast_from(e * c - o * n);
        out[2 * p + 1] = F::cast_from(e * n + o * c);
    }
}

/// Softmax of local-attention scores `[batch · heads · blocks · block_len, key_len]` (rows in
/// that order): `softmax(x · scale)` over the keys each query sees and exactly 0 elsewhere, in
/// f32, rounded once to `F`. The keys a query `q` sees are one range, from
/// `max(start(q), q + 1 − window)` to `q` (`starts`: `[batch, seq]` first position of each
/// position's document, read only when `has_starts`; `window` 0 means no window), so each row
/// reads only its visible columns and no mask is built or read. The call's first query is
/// position `query_start` ([`crate::LocalAttention::parts`]).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(super) fn local_softmax_kernel<F: Float>(
    x: &Tensor<F>,
    starts: &Tensor<i32>,
    out: &mut Tensor<F>,
    rows: usize,
    key_len: usize,
    seq: usize,
    block_len: usize,
    blocks: usize,
    heads: usize,
    query_start: usize,
    key_offset: usize,
    window: usize,
    scale: f32,
    #[comptime] has_starts: bool,
    #[comptime] threads: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
) {
    let mut smem = SharedMemory::<f32>::new(threads * rows_per_cube);
    let row = row_index();
    let lane = UNIT_POS_X as usize;
    let start = row * key_len;
    // position of the block's first query
    let block_start = query_start + ((row / block_len) % blocks) * block_len;
    let q = block_start + row % block_len;
    // Visible columns `lo..hi`: key position `k` is column `k + key_offset − block_start`.
    let mut lo = key_len;
    let mut hi = key_len;
    if row < rows && q < seq {
        // first visible key, shifted by key_offset so that it stays unsigned
        let mut first = key_offset;
        if window > 0 && q + 1 > window {
            let w = q + 1 - window + key_offset;
            if w > first {
                first = w;
            }
        }
        if has_starts {
            let batch = row / (block_len * blocks * heads);
            let d = starts[batch * seq + q] as usize + key_offset;
            if d > first {
                first = d;
            }
        }
        lo = first - block_start;
        hi = q + key_offset + 1 - block_start;
    }

    // One pass for the maximum and the sum (online softmax: the running sum is rescaled when
    // the running maximum grows), then the threads' partial results are combined.
    let mut m = f32::new(-3.0e38);
    let mut s = f32::new(0.0);
    let mut i = lo + lane;
    while i < hi {
        let v = f32::cast_from(x[start + i]) * scale;
        if v > m {
            s = s * f32::exp(m - v) + f32::new(1.0);
            m = v;
        } else {
            s += f32::exp(v - m);
        }
        i += threads;
    }
    let row_m = row_max(m, &mut smem, threads);
    let s = row_sum(s * f32::exp(m - row_m), &mut smem, threads);
    let m = row_m;
    let inv = f32::new(1.0) / f32::max(s, f32::new(1.0e-30));
    if row < rows {
        let mut i = lane;
        while i < key_len {
            let mut p = f32::new(0.0);
            if i >= lo && i < hi {
                p = f32::exp(f32::cast_from(x[start + i]) * scale - m) * inv;
            }
            out[start + i] = F::cast_from(p);
            i += threads;
        }
    }
}
