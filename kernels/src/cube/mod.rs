//! The CubeCL kernels and their launchers, generic over the CubeCL runtime.
//!
//! Row kernels (entropy, RMSNorm, prominence/coherence) give each row `ROW_THREADS` threads that
//! stride over its columns and combine their partial results with a shared-memory tree
//! reduction; a cube holds `ROWS_PER_CUBE` rows. They use no plane (warp) intrinsics, so they
//! run unchanged on every runtime, including software Vulkan. All arithmetic is f32; outputs
//! are rounded once to their dtype.

use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::reshape;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::zspace::Shape;
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
use cubek::matmul::launch::Strategy;
use cubek::matmul::routines::double_unit::DoubleUnitSelectionArgs;
use cubek::matmul::routines::simple_unit::SimpleUnitSelectionArgs;
use cubek::matmul::routines::{BlueprintStrategy, TileSizeSelection};
use cubek::std::InputBinding;

use crate::layout::row_stride;

#[cfg(feature = "cuda")]
pub(crate) mod cublas;
mod kernels;

/// Threads per row in the row kernels (a power of two).
const ROW_THREADS: usize = 32;
/// Rows per cube in the row kernels.
const ROWS_PER_CUBE: usize = 4;
/// Cubes per grid row, within every runtime's per-dimension limit (WebGPU: 65,535).
const GRID_X: usize = 32_768;

fn row_grid(rows: usize) -> (CubeCount, CubeDim) {
    let cubes = rows.div_ceil(ROWS_PER_CUBE).max(1);
    let x = cubes.min(GRID_X);
    let y = cubes.div_ceil(GRID_X);
    (
        CubeCount::Static(x as u32, y as u32, 1),
        CubeDim::new_2d(ROW_THREADS as u32, ROWS_PER_CUBE as u32),
    )
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// A row kernel's view of a shape: the rows (all but the last dimension) and the row width.
fn rows_and_width(dims: &[usize]) -> (usize, usize) {
    let (lead, last) = dims.split_at(dims.len() - 1);
    (lead.iter().product(), last[0])
}

fn shape_of<R: CubeRuntime>(t: &CubeTensor<R>) -> Vec<usize> {
    let shape = t.meta.shape();
    (0..shape.num_dims()).map(|i| shape[i]).collect()
}

/// An output buffer with compact row-major strides, as every kernel here indexes it. (CubeCL's
/// CUDA runtime otherwise pads rows to an alignment — a `[2, 7]` f32 tensor gets a row pitch
/// of 8 — which a kernel writing `out[row * width + i]` would silently get wrong.)
fn empty<R: CubeRuntime>(like: &CubeTensor<R>, dims: &[usize], dtype: DType) -> CubeTensor<R> {
    let shape = Shape::new_raw(dims.iter().copied().collect());
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// `[.., vocab]` logits → `[..]` f32 entropies.
pub(crate) fn entropy<R: CubeRuntime>(logits: CubeTensor<R>) -> Result<CubeTensor<R>, String> {
    if !is_float(logits.dtype) {
        return Err(format!("unsupported dtype {:?}", logits.dtype));
    }
    let logits = into_contiguous(logits);
    let dims = shape_of(&logits);
    let (lead, vocab) = dims.split_at(dims.len() - 1);
    let rows: usize = lead.iter().product();
    let out = empty(&logits, lead, DType::F32);
    let (count, dim) = row_grid(rows);
    let dtype = logits.dtype;
    unsafe {
        kernels::entropy_kernel::launch_unchecked(
            &logits.client.clone(),
            count,
            dim,
            logits.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            vocab[0],
            ROW_THREADS,
            ROWS_PER_CUBE,
            dtype.into(),
        );
    }
    Ok(out)
}

/// `softmax(x · scale)` over the last dimension; the output has `x`'s shape and dtype.
pub(crate) fn softmax<R: CubeRuntime>(
    x: CubeTensor<R>,
    scale: f64,
) -> Result<CubeTensor<R>, String> {
    if !is_float(x.dtype) {
        return Err(format!("unsupported dtype {:?}", x.dtype));
    }
    let x = into_contiguous(x);
    let dims = shape_of(&x);
    let (rows, width) = rows_and_width(&dims);
    let out = empty(&x, &dims, x.dtype);
    let (count, dim) = row_grid(rows);
    let dtype = x.dtype;
    unsafe {
        kernels::softmax_kernel::launch_unchecked(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            width,
            scale as f32,
            ROW_THREADS,
            ROWS_PER_CUBE,
            dtype.into(),
        );
    }
    Ok(out)
}

/// The softmax of local-attention scores `[batch, heads, blocks, block_len, key_len]` under
/// `geometry`, with the first position of every position's document (`[batch, seq]`, i32)
/// when rows hold several documents.
pub(crate) fn local_softmax<R: CubeRuntime>(
    scores: CubeTensor<R>,
    document_starts: Option<CubeTensor<R>>,
    geometry: &crate::LocalAttention,
    scale: f64,
) -> Result<CubeTensor<R>, String> {
    if !is_float(scores.dtype) {
        return Err(format!("unsupported dtype {:?}", scores.dtype));
    }
    let dims = shape_of(&scores);
    let g = geometry;
    if dims.len() != 5 || dims[2..] != [g.blocks, g.block_len, g.key_len] {
        return Err(format!("scores {dims:?} do not match {g:?}"));
    }
    let starts = match document_starts {
        Some(d) if d.dtype != DType::I32 => {
            return Err(format!("document starts are {:?}, not i32", d.dtype))
        }
        Some(d) if shape_of(&d) != [dims[0], g.seq] => {
            return Err(format!("document starts {:?} for {dims:?}", shape_of(&d)))
        }
        Some(d) => Some(into_contiguous(d)),
        None => None,
    };
    let has_starts = starts.is_some();
    // Without document starts the kernel never reads them; any i32 buffer stands in.
    let starts = starts.unwrap_or_else(|| empty(&scores, &[1], DType::I32));
    let x = into_contiguous(scores);
    let (rows, width) = rows_and_width(&dims);
    let out = empty(&x, &dims, x.dtype);
    let (count, dim) = row_grid(rows);
    let dtype = x.dtype;
    unsafe {
        kernels::local_softmax_kernel::launch_unchecked(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            starts.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            width,
            g.seq,
            g.block_len,
            g.blocks,
            dims[1],
            g.query_start,
            g.key_offset,
            g.window.unwrap_or(0),
            scale as f32,
            has_starts,
            ROW_THREADS,
            ROWS_PER_CUBE,
            dtype.into(),
        );
    }
    Ok(out)
}

/// RMSNorm over the last dimension; the output has `x`'s shape and dtype.
pub(crate) fn rms_norm<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    eps: f64,
) -> Result<CubeTensor<R>, String> {
    if !is_float(x.dtype) || weight.dtype != x.dtype {
        return Err(format!(
            "unsupported dtypes {:?} (input), {:?} (weight)",
            x.dtype, weight.dtype
        ));
    }
    let x = into_contiguous(x);
    let weight = into_contiguous(weight);
    let dims = shape_of(&x);
    let (rows, width) = rows_and_width(&dims);
    let out = empty(&x, &dims, x.dtype);
    let (count, dim) = row_grid(rows);
    let dtype = x.dtype;
    unsafe {
        kernels::rms_norm_kernel::launch_unchecked(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            width,
            eps as f32,
            ROW_THREADS,
            ROWS_PER_CUBE,
            dtype.into(),
        );
    }
    Ok(out)
}

/// `(x + delta, rms_norm(x + delta))`: the residual add and the norm after it in one pass.
pub(crate) fn add_rms_norm<R: CubeRuntime>(
    x: CubeTensor<R>,
    delta: CubeTensor<R>,
    weight: CubeTensor<R>,
    eps: f64,
) -> Result<(CubeTensor<R>, CubeTensor<R>), String> {
    if !is_float(x.dtype) || delta.dtype != x.dtype || weight.dtype != x.dtype {
        return Err(format!(
            "unsupported dtypes {:?} (input), {:?} (delta), {:?} (weight)",
            x.dtype, delta.dtype, weight.dtype
        ));
    }
    let dims = shape_of(&x);
    if shape_of(&delta) != dims {
        return Err(format!("delta {:?} for input {dims:?}", shape_of(&delta)));
    }
    let x = into_contiguous(x);
    let delta = into_contiguous(delta);
    let weight = into_contiguous(weight);
    let (rows, width) = rows_and_width(&dims);
    let sum = empty(&x, &dims, x.dtype);
    let out = empty(&x, &dims, x.dtype);
    let (count, dim) = row_grid(rows);
    let dtype = x.dtype;
    unsafe {
        kernels::add_rms_norm_kernel::launch_unchecked(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            delta.into_tensor_arg(),
            weight.into_tensor_arg(),
            sum.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows,
            width,
            eps as f32,
            ROW_THREADS,
            ROWS_PER_CUBE,
            dtype.into(),
        );
    }
    Ok((sum, out))
}

/// `silu(gate) ⊙ up`, elementwise.
pub(crate) fn swiglu<R: CubeRuntime>(
    gate: CubeTensor<R>,
    up: CubeTensor<R>,
) -> Result<CubeTensor<R>, String> {
    if !is_float(gate.dtype) || up.dtype != gate.dtype || shape_of(&gate) != shape_of(&up) {
        return Err("inputs of different dtypes or shapes".into());
    }
    // Gate and up are usually the two halves of one product (`linear_many`): read them in
    // place, row by row, instead of copying each half out.
    let (gate, gate_stride) = rows_in_place(gate);
    let (up, up_stride) = rows_in_place(up);
    let dims = shape_of(&gate);
    let (_, width) = rows_and_width(&dims);
    let n: usize = dims.iter().product();
    let out = empty(&gate, &dims, gate.dtype);
    // 16-byte vectors where the row width and both row strides allow (views start aligned:
    // Burn makes a slice a view only at the allocator's alignment, and copies it otherwise)
    let vector = [16 / gate.dtype.size(), 4, 2]
        .into_iter()
        .find(|&v| {
            v <= 16 / gate.dtype.size()
                && width.is_multiple_of(v)
                && gate_stride.is_multiple_of(v)
                && up_stride.is_multiple_of(v)
                && aligned_to(&gate, v)
                && aligned_to(&up, v)
        })
        .unwrap_or(1);
    let threads = 256usize;
    let per_thread = 4usize;
    let vectors = n / vector;
    let cubes = vectors.div_ceil(threads * per_thread).max(1);
    // Every thread of the grid handles vectors `first + k · stride`, k < per_thread.
    let (x, y) = (cubes.min(GRID_X), cubes.div_ceil(GRID_X));
    let stride = x * y * threads;
    let count = CubeCount::Static(x as u32, y as u32, 1);
    let dtype = gate.dtype;
    unsafe {
        kernels::swiglu_kernel::launch_unchecked(
            &gate.client.clone(),
            count,
            CubeDim::new_1d(threads as u32),
            vector,
            gate.into_tensor_arg(),
            up.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            vectors,
            width / vector,
            gate_stride / vector,
            up_stride / vector,
            stride,
            per_thread,
            dtype.into(),
        );
    }
    Ok(out)
}

/// Whether `t`'s first element lies on a boundary of `elements` elements (its handle's offset).
fn aligned_to<R: CubeRuntime>(t: &CubeTensor<R>, elements: usize) -> bool {
    let bytes = (elements * t.dtype.size()) as u64;
    t.handle.offset_start.unwrap_or(0).is_multiple_of(bytes)
}

/// A tensor whose rows (all but the last dimension) lie at one constant distance with unit
/// stride inside each row, and that distance; any other tensor is made contiguous first.
fn rows_in_place<R: CubeRuntime>(t: CubeTensor<R>) -> (CubeTensor<R>, usize) {
    if let Some(stride) = row_stride(&shape_of(&t), t.meta.strides()) {
        return (t, stride);
    }
    let t = into_contiguous(t);
    let stride = row_stride(&shape_of(&t), t.meta.strides())
        .unwrap_or_else(|| unreachable!("contiguous rows are evenly spaced"));
    (t, stride)
}

/// `[.., dim]` hidden states and `[..]` f32 entropies → `(prominence, coherence)`, f32 `[..]`.
pub(crate) fn prominence_coherence<R: CubeRuntime>(
    hidden: CubeTensor<R>,
    entropies: CubeTensor<R>,
) -> Result<(CubeTensor<R>, CubeTensor<R>), String> {
    if !is_float(hidden.dtype) || entropies.dtype != DType::F32 {
        return Err(format!(
            "unsupported dtypes {:?} (hidden), {:?} (entropies)",
            hidden.dtype, entropies.dtype
        ));
    }
    let hidden = into_contiguous(hidden);
    let entropies = into_contiguous(entropies);
    let dims = shape_of(&hidden);
    let (lead, width) = dims.split_at(dims.len() - 1);
    let rows: usize = lead.iter().product();
    let prominence = empty(&hidden, lead, DType::F32);
    let coherence = empty(&hidden, lead, DType::F32);
    let (count, dim) = row_grid(rows);
    let dtype = hidden.dtype;
    unsafe {
        kernels::prominence_coherence_kernel::launch_unchecked(
            &hidden.client.clone(),
            count,
            dim,
            hidden.into_tensor_arg(),
            entropies.into_tensor_arg(),
            prominence.clone().into_tensor_arg(),
            coherence.clone().into_tensor_arg(),
            rows,
            width[0],
            crate::COHERENCE_EPS,
            ROW_THREADS,
            ROWS_PER_CUBE,
            dtype.into(),
        );
    }
    Ok((prominence, coherence))
}

/// Interleaved RoPE of `x` (`[b, h, s, d]`, any strides) with f32 tables `[.., s, d/2]`;
/// returns a contiguous tensor of `x`'s dtype.
pub(crate) fn rope<R: CubeRuntime>(
    x: CubeTensor<R>,
    cos: CubeTensor<R>,
    sin: CubeTensor<R>,
) -> Result<CubeTensor<R>, String> {
    if !is_float(x.dtype) || cos.dtype != DType::F32 || sin.dtype != DType::F32 {
        return Err(format!(
            "unsupported dtypes {:?} (input), {:?} (tables)",
            x.dtype, cos.dtype
        ));
    }
    let dims = shape_of(&x);
    if dims.len() != 4 || !dims[3].is_multiple_of(2) {
        return Err(format!("expected [b, h, s, even d], got {dims:?}"));
    }
    let cos = into_contiguous(cos);
    let sin = into_contiguous(sin);
    let out = empty(&x, &dims, x.dtype);
    let pairs: usize = dims.iter().product::<usize>() / 2;
    let threads = 256usize;
    let cubes = pairs.div_ceil(threads).max(1);
    let count = CubeCount::Static(cubes.min(GRID_X) as u32, cubes.div_ceil(GRID_X) as u32, 1);
    let dtype = x.dtype;
    unsafe {
        kernels::rope_kernel::launch_unchecked(
            &x.client.clone(),
            count,
            CubeDim::new_1d(threads as u32),
            x.into_tensor_arg(),
            cos.into_tensor_arg(),
            sin.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            pairs,
            dtype.into(),
        );
    }
    Ok(out)
}

/// `[b, s, k] · [k, n]` in full f32 precision (register-tiled GEMM, no tensor cores).
pub(crate) fn linear<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
) -> Result<CubeTensor<R>, String> {
    let dims = shape_of(&x);
    let n = shape_of(&weight)[1];
    let (b, s, k) = (dims[0], dims[1], dims[2]);
    let x = reshape(into_contiguous(x), Shape::new([b * s, k]));
    let out = matmul_f32(x, weight)?;
    Ok(reshape(out, Shape::new([b, s, n])))
}

/// The operands of `lhs · rhs` over the last two dimensions (equal leading dimensions, any
/// strides), made contiguous as `[batch, m, k]` and `[batch, k, n]`.
pub(crate) struct Product<R: CubeRuntime> {
    pub lhs: CubeTensor<R>,
    pub rhs: CubeTensor<R>,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    /// The shape of the product: `lhs`'s with the last dimension `n`.
    pub out_dims: Vec<usize>,
}

/// Checks that `[.., m, k] · [.., k, n]` with equal leading dimensions is a product.
pub(crate) fn check_product(ld: &[usize], rd: &[usize]) -> Result<(), String> {
    let rank = ld.len();
    if rank < 2
        || rd.len() != rank
        || ld[..rank - 2] != rd[..rank - 2]
        || ld[rank - 1] != rd[rank - 2]
    {
        return Err(format!("cannot multiply {ld:?} by {rd:?}"));
    }
    Ok(())
}

impl<R: CubeRuntime> Product<R> {
    pub fn new(lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> Result<Self, String> {
        let (ld, rd) = (shape_of(&lhs), shape_of(&rhs));
        check_product(&ld, &rd)?;
        let rank = ld.len();
        let batch: usize = ld[..rank - 2].iter().product();
        let (m, k, n) = (ld[rank - 2], ld[rank - 1], rd[rank - 1]);
        let mut out_dims = ld;
        out_dims[rank - 1] = n;
        Ok(Self {
            lhs: reshape(into_contiguous(lhs), Shape::new([batch, m, k])),
            rhs: reshape(into_contiguous(rhs), Shape::new([batch, k, n])),
            batch,
            m,
            n,
            out_dims,
        })
    }
}

/// Whether batched f32 products may use the register-tiled unit GEMMs
/// (`BLT_KERNELS_BATCHED_GEMM=unit`), an experiment switch for runtimes on which they were not
/// seen wrong; the default is the exact naive kernel.
fn batched_unit_gemm() -> bool {
    static UNIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNIT.get_or_init(|| std::env::var("BLT_KERNELS_BATCHED_GEMM").as_deref() == Ok("unit"))
}

/// `lhs · rhs` over the last two dimensions, equal leading (batch) dimensions, any strides, in
/// full f32 precision: CubeCL's register-tiled unit GEMMs, never the tensor-core (TF32) ones.
pub(crate) fn matmul_f32<R: CubeRuntime>(
    lhs: CubeTensor<R>,
    rhs: CubeTensor<R>,
) -> Result<CubeTensor<R>, String> {
    if lhs.dtype != DType::F32 || rhs.dtype != DType::F32 {
        return Err("half precision uses the autotuned tensor-core GEMM".into());
    }
    // One contiguous batch dimension: the unit GEMMs' batch and transposed layouts are not
    // reliable on every runtime (seen wrong on WGPU); the copies are cheap next to the product.
    let Product {
        lhs,
        rhs,
        batch,
        m,
        n,
        out_dims: od,
    } = Product::new(lhs, rhs)?;
    let out = empty(&lhs, &[batch, m, n], DType::F32);
    let client = lhs.client.clone();
    // The unit GEMMs gave wrong results with a batch dimension (seen on WGPU), so batched
    // products take the naive kernel: exact, slower; single products the register-tiled one.
    let strategies: &[Strategy] = if batch == 1 || batched_unit_gemm() {
        &[
            Strategy::DoubleUnit(BlueprintStrategy::Inferred(DoubleUnitSelectionArgs {
                tile_size: TileSizeSelection::MaxTileSize,
            })),
            Strategy::SimpleUnit(BlueprintStrategy::Inferred(SimpleUnitSelectionArgs {
                tile_size: TileSizeSelection::MaxTileSize,
            })),
            Strategy::Naive,
        ]
    } else {
        &[Strategy::Naive]
    };
    let mut errors = Vec::new();
    for strategy in strategies {
        let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
            lhs: DType::F32.into(),
            rhs: DType::F32.into(),
            out: DType::F32.into(),
        });
        let result = cubek::matmul::launch::launch_ref(
            strategy,
            &client,
            InputBinding::new(lhs.clone().binding(), DType::F32.into()),
            InputBinding::new(rhs.clone().binding(), DType::F32.into()),
            out.clone().binding(),
            &mut dtypes,
        );
        match result {
            Ok(()) => return Ok(reshape(out, Shape::new_raw(od.iter().copied().collect()))),
            Err(e) => errors.push(format!("{strategy}: {e:?}")),
        }
    }
    Err(format!("no f32 GEMM could launch: {}", errors.join("; ")))
}
