//! Uploading host data without waiting for the device.
//!
//! A host-to-device copy from ordinary (pageable) memory may wait for the stream to drain: CUDA
//! stages pageable data through its own pinned buffer and may synchronise with the stream to do
//! so, and CubeCL pins only file-backed data on its own. Measured in `blt ingest` on an H100,
//! enqueuing a batch (whose token ids are such an upload) took as long as the device's work on
//! the batch before it, so the next batch could not be queued behind the running one.
//! [`upload_int`] copies the data into pinned host memory first (one host copy), after which the
//! device copy is enqueued like a kernel.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// An integer tensor of `data` on `device`, in the device's integer dtype (as
/// `Tensor::from_data`), uploaded through pinned host memory on CubeCL backends so that the
/// copy does not wait for work already queued on the device; see the module documentation.
/// Other backends use `Tensor::from_data`, and so do CubeCL backends with
/// `BLT_KERNELS_PINNED_UPLOAD=0` (to compare).
pub fn upload_int<B: Backend, const D: usize>(
    data: TensorData,
    device: &B::Device,
) -> Tensor<B, D, Int> {
    #[cfg(feature = "cube")]
    if pinned_uploads() {
        use crate::dispatch::is_cube;
        let uploaded: Option<Option<B::IntTensorPrimitive>> =
            on_cube!(B, |R| pinned::<B, R>(&data, device));
        if let Some(Some(primitive)) = uploaded {
            return Tensor::from_primitive(primitive);
        }
    }
    Tensor::from_data(data, device)
}

/// Whether uploads go through pinned memory (`BLT_KERNELS_PINNED_UPLOAD=0`: not; read once).
#[cfg(feature = "cube")]
fn pinned_uploads() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BLT_KERNELS_PINNED_UPLOAD").as_deref() != Ok("0"))
}

/// The upload on CubeCL runtime `R`; `None` where `device` is not `R`'s (checked by the caller)
/// or the data has the wrong rank.
#[cfg(feature = "cube")]
fn pinned<B: Backend, R: burn_cubecl::CubeRuntime>(
    data: &TensorData,
    device: &B::Device,
) -> Option<B::IntTensorPrimitive> {
    use std::any::Any;
    let cube_device = (device as &dyn Any).downcast_ref::<R::Device>()?;
    let dtype: burn::tensor::DType = burn::tensor::get_device_settings::<B>(device)
        .int_dtype
        .into();
    let data = data.clone().convert_dtype(dtype);
    let client = R::client(cube_device);
    let mut bytes = data.bytes;
    // into pinned memory (a no-op where the runtime has none)
    client.staging(std::iter::once(&mut bytes), false);
    let handle = client.create(bytes);
    let tensor = burn_cubecl::tensor::CubeTensor::new_contiguous(
        client,
        cube_device.clone(),
        data.shape,
        handle,
        dtype,
    );
    (Box::new(tensor) as Box<dyn Any>)
        .downcast::<B::IntTensorPrimitive>()
        .ok()
        .map(|b| *b)
}
