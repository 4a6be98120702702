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
use burn_cubecl::ops::reshape;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cubecl::zspace::Shape;
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{result as drv, sys as drv_sys};

use super::{empty, Product};

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

/// `lhs · rhs` over the last two dimensions (equal leading dimensions, any strides), in the
/// inputs' dtype with f32 accumulation; the output is contiguous.
pub(crate) fn matmul(
    lhs: CubeTensor<CudaRuntime>,
    rhs: CubeTensor<CudaRuntime>,
) -> Result<CubeTensor<CudaRuntime>, String> {
    if !available() {
        return Err("libcublas could not be loaded".into());
    }
    let ty = data_type(lhs.dtype)
        .filter(|_| rhs.dtype == lhs.dtype)
        .ok_or_else(|| format!("dtypes {:?} × {:?}", lhs.dtype, rhs.dtype))?;
    let Product {
        lhs,
        rhs,
        batch,
        m,
        k,
        n,
        out_dims: od,
    } = Product::new(lhs, rhs)?;
    if [batch, m, k, n].into_iter().any(|v| v > i32::MAX as usize) {
        return Err(format!(
            "dimensions too large for cuBLAS: {batch} × {m} × {k} × {n}"
        ));
    }
    let out = empty(&lhs, &[batch, m, n], lhs.dtype);
    if batch * m * n == 0 {
        return Ok(reshape(out, Shape::new_raw(od.iter().copied().collect())));
    }
    let client = lhs.client.clone();
    let ordinal = lhs.device.index;
    // The resources stay guarded until the product is enqueued; CubeCL reuses freed memory
    // only in its stream's order, which the product is part of.
    let a = client
        .get_resource(lhs.handle.clone())
        .map_err(|e| format!("lhs buffer: {e:?}"))?;
    let b = client
        .get_resource(rhs.handle.clone())
        .map_err(|e| format!("rhs buffer: {e:?}"))?;
    let c = client
        .get_resource(out.handle.clone())
        .map_err(|e| format!("out buffer: {e:?}"))?;
    let (pa, pb, pc) = (a.resource().ptr, b.resource().ptr, c.resource().ptr);
    let stream = c.resource().stream;
    if stream.is_null() {
        return Err("cubecl-cuda did not name the buffer's stream (unpatched cubecl-cuda?)".into());
    }

    let mut map = handles().lock().unwrap_or_else(|e| e.into_inner());
    let blas = match map.entry((ordinal, stream as usize)) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(setup(ordinal, stream)?),
    };
    let (alpha, beta) = (1.0f32, 0.0f32);
    // Row-major C[m,n] = A[m,k]·B[k,n] is column-major Cᵀ[n,m] = Bᵀ[n,k]·Aᵀ[k,m].
    // SAFETY: the pointers are live CubeCL buffers of the sizes computed above (held by the
    // `get_resource` guards until the product is enqueued on their stream); the context is
    // current.
    unsafe {
        drv::ctx::set_current(blas.context).map_err(|e| format!("context: {e:?}"))?;
        blas::gemm_strided_batched_ex(
            blas.handle,
            blas_sys::cublasOperation_t::CUBLAS_OP_N,
            blas_sys::cublasOperation_t::CUBLAS_OP_N,
            n as i32,
            m as i32,
            k as i32,
            (&alpha as *const f32).cast::<c_void>(),
            pb as *const c_void,
            ty,
            n as i32,
            (k * n) as i64,
            pa as *const c_void,
            ty,
            k as i32,
            (m * k) as i64,
            (&beta as *const f32).cast::<c_void>(),
            pc as *mut c_void,
            ty,
            n as i32,
            (m * n) as i64,
            batch as i32,
            blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
        .map_err(|e| format!("cublasGemmStridedBatchedEx: {e:?}"))?;
    }
    drop((a, b, c));
    Ok(reshape(out, Shape::new_raw(od.iter().copied().collect())))
}
