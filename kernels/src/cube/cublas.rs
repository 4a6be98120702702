//! cuBLAS GEMMs on CubeCL CUDA tensors: what PyTorch runs for its matrix products.
//!
//! CubeCL's own GEMMs reach 140–180 TFLOP/s in bf16 on an H100 where cuBLAS reaches ~600, and
//! its f32 GEMMs either run on tensor cores in TF32 (inexact) or on plain units far below
//! cuBLAS's SGEMM. cuBLAS is loaded at run time (`libcublas.so`, through `cudarc`, the library
//! CubeCL's CUDA runtime itself uses), so nothing is needed at build time; where it cannot be
//! loaded, callers use the CubeCL kernels.
//!
//! Ordering: CubeCL runs kernels on a non-blocking stream per thread. The buffers' resources
//! name that stream (`GpuResource::stream`, a field of the patched `cubecl-cuda` in
//! `vendor/cubecl-cuda`), and the product is enqueued on it: ordered after the kernels that
//! wrote its inputs and before those that read its output, with no host round trip. One cuBLAS
//! handle per stream, created on first use.

//! Precision: f32 products use `CUBLAS_COMPUTE_32F` in the default math mode (never TF32, unless
//! `NVIDIA_TF32_OVERRIDE=1` is set in the environment); bf16/f16 products use tensor cores with
//! f32 accumulation, as PyTorch does.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use burn::tensor::DType;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{result as drv, sys as drv_sys};

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::permute;

use super::{check_product, empty, shape_of};
use crate::layout::Layout;

/// One cuBLAS handle per CubeCL stream, in the device's primary context (CubeCL's).
struct Blas {
    handle: blas_sys::cublasHandle_t,
    context: drv_sys::CUcontext,
}

// SAFETY: the raw handles are used only while the mutex below is held.
unsafe impl Send for Blas {}

/// Handles by (device ordinal, stream address).
fn handles() -> &'static Mutex<HashMap<(usize, usize), Blas>> {
    static HANDLES: OnceLock<Mutex<HashMap<(usize, usize), Blas>>> = OnceLock::new();
    HANDLES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether `libcublas` can be loaded on this machine (checked once).
pub(crate) fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only probes the dynamic loader.
    *PRESENT.get_or_init(|| unsafe { blas_sys::is_culib_present() && drv_sys::is_culib_present() })
}

fn setup(ordinal: usize, stream: drv_sys::CUstream) -> Result<Blas, String> {
    // SAFETY: plain driver/cuBLAS calls on a device index and a stream CubeCL already created.
    unsafe {
        let device = drv::device::get(ordinal as i32).map_err(|e| format!("device: {e:?}"))?;
        let context =
            drv::primary_ctx::retain(device).map_err(|e| format!("primary context: {e:?}"))?;
        drv::ctx::set_current(context).map_err(|e| format!("context: {e:?}"))?;
        let handle = blas::create_handle().map_err(|e| format!("cublasCreate: {e:?}"))?;
        blas::set_stream(handle, stream as _).map_err(|e| format!("cublasSetStream: {e:?}"))?;
        Ok(Blas { handle, context })
    }
}

fn data_type(dtype: DType) -> Option<blas_sys::cudaDataType> {
    match dtype {
        DType::F32 => Some(blas_sys::cudaDataType::CUDA_R_32F),
        DType::BF16 => Some(blas_sys::cudaDataType::CUDA_R_16BF),
        DType::F16 => Some(blas_sys::cudaDataType::CUDA_R_16F),
        _ => None,
    }
}

/// cuBLAS's operation for an operand: none for row-major (see `matmul_ordered`), transpose for
/// column-major.
fn op(layout: &Layout) -> blas_sys::cublasOperation_t {
    if layout.col_major {
        blas_sys::cublasOperation_t::CUBLAS_OP_T
    } else {
        blas_sys::cublasOperation_t::CUBLAS_OP_N
    }
}

/// A tensor's layout for cuBLAS, made contiguous first if cuBLAS cannot read it as it is.
fn readable(t: CubeTensor<CudaRuntime>) -> (CubeTensor<CudaRuntime>, Layout) {
    let dims = shape_of(&t);
    if let Some(layout) = Layout::of(&dims, t.meta.strides()) {
        return (t, layout);
    }
    let t = into_contiguous(t);
    let layout = Layout::of(&dims, t.meta.strides())
        .unwrap_or_else(|| unreachable!("a contiguous tensor is row-major"));
    (t, layout)
}

/// `lhs · rhs` over the last two dimensions (equal leading dimensions, any strides), in the
/// inputs' dtype with f32 accumulation, with the output's dimensions laid out in memory in `order` (a
/// permutation whose last entry is the last dimension): e.g. `[0, 2, 1, 3]` writes a
/// `[b, h, s, d]` product as `[b, s, h, d]` memory, so that merging the heads needs no copy.
pub(crate) fn matmul_ordered(
    lhs: CubeTensor<CudaRuntime>,
    rhs: CubeTensor<CudaRuntime>,
    order: &[usize],
) -> Result<CubeTensor<CudaRuntime>, String> {
    if !available() {
        return Err("libcublas could not be loaded".into());
    }
    let ty = data_type(lhs.dtype)
        .filter(|_| rhs.dtype == lhs.dtype)
        .ok_or_else(|| format!("dtypes {:?} × {:?}", lhs.dtype, rhs.dtype))?;
    let (ld, rd) = (shape_of(&lhs), shape_of(&rhs));
    check_product(&ld, &rd)?;
    let rank = ld.len();
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    if order.len() != rank || sorted != (0..rank).collect::<Vec<_>>() || order[rank - 1] != rank - 1
    {
        return Err(format!("output order {order:?} for rank {rank}"));
    }
    let batch: usize = ld[..rank - 2].iter().product();
    let (m, k, n) = (ld[rank - 2], ld[rank - 1], rd[rank - 1]);
    if [batch, m, k, n].into_iter().any(|v| v > i32::MAX as usize) {
        return Err(format!(
            "dimensions too large for cuBLAS: {batch} × {m} × {k} × {n}"
        ));
    }
    let mut out_dims = ld.clone();
    out_dims[rank - 1] = n;
    // Allocated in `order`, then viewed back in the product's dimension order.
    let memory_dims: Vec<usize> = order.iter().map(|&d| out_dims[d]).collect();
    let mut inverse = vec![0; rank];
    for (i, &d) in order.iter().enumerate() {
        inverse[d] = i;
    }
    let out = permute(empty(&lhs, &memory_dims, lhs.dtype), &inverse);
    if batch * m * n == 0 {
        return Ok(out);
    }
    let (lhs, a) = readable(lhs);
    let (rhs, b) = readable(rhs);
    let c = Layout::of(&out_dims, out.meta.strides())
        .filter(|c| !c.col_major)
        .ok_or_else(|| format!("output order {order:?} is not row-major per matrix"))?;
    let client = lhs.client.clone();
    let ordinal = lhs.device.index;
    // Matrices of the batch at uneven distances (heads of a projection, windows) are passed to
    // cuBLAS as arrays of pointers, uploaded on the same stream as the product.
    let uniform = match (a.uniform_stride(), b.uniform_stride(), c.uniform_stride()) {
        (Some(sa), Some(sb), Some(sc)) => Some((sa, sb, sc)),
        _ => None,
    };
    // The resources stay guarded until the product is enqueued; CubeCL reuses freed memory
    // only in its stream's order, which the product is part of.
    let ra = client
        .get_resource(lhs.handle.clone())
        .map_err(|e| format!("lhs buffer: {e:?}"))?;
    let rb = client
        .get_resource(rhs.handle.clone())
        .map_err(|e| format!("rhs buffer: {e:?}"))?;
    let rc = client
        .get_resource(out.handle.clone())
        .map_err(|e| format!("out buffer: {e:?}"))?;
    let (pa, pb, pc) = (ra.resource().ptr, rb.resource().ptr, rc.resource().ptr);
    let stream = rc.resource().stream;
    if stream.is_null() {
        return Err("cubecl-cuda did not name the buffer's stream (unpatched cubecl-cuda?)".into());
    }
    let size = lhs.dtype.size() as u64;
    let pointers = match uniform {
        Some(_) => None,
        None => {
            let at = |base: u64, layout: &Layout| {
                layout
                    .offsets
                    .iter()
                    .map(move |&o| base + o as u64 * size)
                    .collect::<Vec<u64>>()
            };
            // cuBLAS's A is our rhs, its B our lhs (see below).
            let mut all = at(pb, &b);
            all.extend(at(pa, &a));
            all.extend(at(pc, &c));
            let bytes: Vec<u8> = all.iter().flat_map(|p| p.to_ne_bytes()).collect();
            let handle = client.create_from_slice(&bytes);
            let resource = client
                .get_resource(handle.clone())
                .map_err(|e| format!("pointer array: {e:?}"))?;
            Some((handle, resource))
        }
    };

    let mut map = handles().lock().unwrap_or_else(|e| e.into_inner());
    let blas = match map.entry((ordinal, stream as usize)) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(setup(ordinal, stream)?),
    };
    let (alpha, beta) = (1.0f32, 0.0f32);
    // Row-major C[m,n] = A[m,k]·B[k,n] is column-major Cᵀ[n,m] = Bᵀ[n,k]·Aᵀ[k,m]: a row-major
    // operand is its own transpose in column-major terms (no op), a column-major one needs op T.
    // SAFETY: the pointers are live CubeCL buffers holding every matrix the layouts describe
    // (held by the `get_resource` guards until the product is enqueued on their stream); the
    // context is current.
    unsafe {
        drv::ctx::set_current(blas.context).map_err(|e| format!("context: {e:?}"))?;
        let first = |base: u64, l: &Layout| base + l.offsets[0] as u64 * size;
        match (uniform, &pointers) {
            (Some((sa, sb, sc)), _) => blas::gemm_strided_batched_ex(
                blas.handle,
                op(&b),
                op(&a),
                n as i32,
                m as i32,
                k as i32,
                (&alpha as *const f32).cast::<c_void>(),
                first(pb, &b) as *const c_void,
                ty,
                b.ld as i32,
                sb as i64,
                first(pa, &a) as *const c_void,
                ty,
                a.ld as i32,
                sa as i64,
                (&beta as *const f32).cast::<c_void>(),
                first(pc, &c) as *mut c_void,
                ty,
                c.ld as i32,
                sc as i64,
                batch as i32,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
            .map_err(|e| format!("cublasGemmStridedBatchedEx: {e:?}"))?,
            (None, Some((_, resource))) => {
                let arrays = resource.resource().ptr;
                let stride = (batch * 8) as u64;
                let status = blas_sys::cublasGemmBatchedEx(
                    blas.handle,
                    op(&b),
                    op(&a),
                    n as i32,
                    m as i32,
                    k as i32,
                    (&alpha as *const f32).cast::<c_void>(),
                    arrays as *const *const c_void,
                    ty,
                    b.ld as i32,
                    (arrays + stride) as *const *const c_void,
                    ty,
                    a.ld as i32,
                    (&beta as *const f32).cast::<c_void>(),
                    (arrays + 2 * stride) as *const *mut c_void,
                    ty,
                    c.ld as i32,
                    batch as i32,
                    blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                );
                if status != blas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                    return Err(format!("cublasGemmBatchedEx: {status:?}"));
                }
            }
            (None, None) => unreachable!("pointer arrays are built whenever a stride is uneven"),
        }
    }
    drop((ra, rb, rc, pointers));
    Ok(out)
}
