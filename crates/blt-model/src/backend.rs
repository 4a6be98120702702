//! The concrete Burn backends this crate is built with, one per cargo feature.
//!
//! | feature | backend | device |
//! | --- | --- | --- |
//! | `cpu` (default) | [`burn::backend::Flex`], SIMD + multi-threaded gemm | the host |
//! | `cuda` | CubeCL CUDA with [`blt_kernels`]' fused kernels and autotune | an NVIDIA GPU (`libcuda` and `libnvrtc` are loaded at run time) |
//! | `wgpu` | CubeCL WGPU with [`blt_kernels`]' fused kernels and autotune | Vulkan, Metal or DX12 |
//!
//! The GPU backends are CubeCL's without Burn's fusion layer: the model's hot non-GEMM work
//! (RMSNorm, SwiGLU, entropy, prominence) runs in hand-fused kernels, which the fusion layer would
//! hide from [`blt_kernels`]' dispatch.
//!
//! Everything else in the crate is generic over `B: Backend`; only a binary names one of these.

/// The CPU backend.
#[cfg(feature = "cpu")]
pub type Cpu = burn::backend::Flex;

/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type Cuda = blt_kernels::backends::CudaKernels;

/// The WGPU backend.
#[cfg(feature = "wgpu")]
pub type Wgpu = blt_kernels::backends::WgpuKernels;

pub use burn::tensor::backend::{AutodiffBackend, Backend};

/// Automatic differentiation over a backend, for training.
pub type Autodiff<B> = burn::backend::Autodiff<B>;

/// The device of CUDA GPU `index`.
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> burn::backend::cuda::CudaDevice {
    burn::backend::cuda::CudaDevice::new(index)
}

/// The device of discrete GPU `index` under WGPU.
#[cfg(feature = "wgpu")]
pub fn wgpu_device(index: usize) -> burn::backend::wgpu::WgpuDevice {
    burn::backend::wgpu::WgpuDevice::DiscreteGpu(index)
}
