//! Reading results back to the host without stalling the device.
//!
//! Burn's `Tensor::into_data` waits for the copy it asks for, and its `into_data_async` asks for
//! the copy only when first polled, so a caller that reads one batch's results and then launches
//! the next batch leaves the device idle in between. [`read_f32_async`] enqueues the copy at once
//! (on CubeCL backends, in stream order right behind the work that produces the tensor, into
//! pinned host memory) and hands back a [`PendingRead`]: launch the next batch, then
//! [`PendingRead::wait_data`] for this one while the device works on the next.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

#[cfg(feature = "cube")]
type Queued =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<TensorData, String>> + Send>>;

/// A device-to-host copy that has been asked for and not yet collected.
pub struct PendingRead {
    state: State,
}

enum State {
    /// Enqueued on the device; the future waits for the copy.
    #[cfg(feature = "cube")]
    Queued(Queued),
    /// Read synchronously (backends without an asynchronous copy, e.g. the CPU).
    Ready(Result<TensorData, String>),
}

impl std::fmt::Debug for PendingRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            #[cfg(feature = "cube")]
            State::Queued(_) => "queued",
            State::Ready(_) => "ready",
        };
        f.debug_struct("PendingRead")
            .field("state", &state)
            .finish()
    }
}

impl PendingRead {
    /// Waits for the copy and returns the data as read, in the tensor's dtype (on CubeCL
    /// backends its bytes are the pinned buffer the device copied into: view them with
    /// `TensorData::as_slice` instead of copying them out).
    pub fn wait_data(self) -> Result<TensorData, String> {
        match self.state {
            State::Ready(data) => data,
            #[cfg(feature = "cube")]
            State::Queued(fut) => cubecl::future::block_on(fut),
        }
    }
}

/// Starts reading a float tensor back to the host as f32 (cast on the device); see the module
/// documentation.
///
/// On CubeCL backends the copy is enqueued now and the returned value waits for it; elsewhere
/// the tensor is read before this returns.
pub fn read_f32_async<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> PendingRead {
    let tensor = if tensor.dtype() == DType::F32 {
        tensor
    } else {
        tensor.cast(DType::F32)
    };
    read_async(tensor)
}

/// Starts reading a tensor back to the host in its own dtype (a half-precision tensor crosses
/// the bus at half the bytes; [`PendingRead::wait_data`] returns it as it is, for the caller to
/// widen while it copies the values where they go).
pub fn read_async<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> PendingRead {
    #[cfg(feature = "cube")]
    if let Some(fut) = on_cube_read::<B, D>(&tensor) {
        return PendingRead {
            state: State::Queued(fut),
        };
    }
    PendingRead {
        state: State::Ready(Ok(tensor.into_data())),
    }
}

#[cfg(feature = "cube")]
fn on_cube_read<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Option<Queued> {
    use crate::dispatch::is_cube;
    on_cube!(B, |R| enqueue::<B, R, D>(tensor.clone()))
}

/// Enqueues the copy of a CubeCL tensor (made readable first: compact or row-pitched).
#[cfg(feature = "cube")]
fn enqueue<B: Backend, R: burn_cubecl::CubeRuntime, const D: usize>(
    tensor: Tensor<B, D>,
) -> Queued {
    use cubecl::server::CopyDescriptor;
    let t = crate::dispatch::to_cube::<_, R>(tensor.into_primitive().tensor());
    let t = burn_cubecl::kernel::into_contiguous_aligned(t);
    let (shape, strides, dtype) = (t.meta.shape().clone(), t.meta.strides().clone(), t.dtype);
    let client = static_client(&t.client, &t.device);
    let elem_size = t.elem_size();
    let descriptor = CopyDescriptor::new(t.handle.binding(), shape.clone(), strides, elem_size);
    // `read_one_tensor_async` submits the copy before it returns; only the wait is deferred.
    let copy = client.read_one_tensor_async(descriptor);
    Box::pin(async move {
        let bytes = copy.await.map_err(|e| e.to_string())?;
        Ok(TensorData::from_bytes(bytes, shape, dtype))
    })
}

/// A client of `device` that lives as long as the process (one per runtime and device, made
/// on first use): the future of `ComputeClient::read_one_tensor_async` borrows its client, and
/// a pending read must outlive the tensor it was made from. Which stream a read runs on depends
/// on the calling thread, not on the client value.
#[cfg(feature = "cube")]
fn static_client<R: burn_cubecl::CubeRuntime>(
    client: &cubecl::client::ComputeClient<R>,
    device: &R::Device,
) -> &'static cubecl::client::ComputeClient<R> {
    use std::any::{Any, TypeId};
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Clients = HashMap<(TypeId, String), &'static (dyn Any + Send + Sync)>;
    static CLIENTS: OnceLock<Mutex<Clients>> = OnceLock::new();
    let key = (TypeId::of::<R>(), format!("{device:?}"));
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let entry = clients
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(client.clone())));
    entry
        .downcast_ref::<cubecl::client::ComputeClient<R>>()
        .unwrap_or_else(|| unreachable!("keyed by the runtime's type"))
}
