//! Rotary position embeddings in the reference's interleaved layout: within each head, dims
//! `(2i, 2i+1)` form a pair rotated by `p · θ^(-2i/d)` (Meta's complex form, not rotate-half).
//!
//! The cos/sin tables are computed in f32 exactly as the reference does (`1/θ^(2i/d)` in f32, one
//! f32 product with the position) and the rotation runs in f32 before rounding back to the
//! activation dtype.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Inverse frequencies `1 / θ^(2i/d)` for `i < d/2`, in f32.
pub fn inverse_frequencies(head_dim: usize, theta: f64) -> Vec<f32> {
    let theta = theta as f32;
    (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

/// cos and sin tables `[seq, head_dim/2]` for positions `0..seq`, row-major.
pub fn tables(seq: usize, head_dim: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
    let inv = inverse_frequencies(head_dim, theta);
    let mut cos = Vec::with_capacity(seq * inv.len());
    let mut sin = Vec::with_capacity(seq * inv.len());
    for p in 0..seq {
        for &f in &inv {
            let angle = p as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

/// The rotary tables for one sequence length, on a device.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
}

impl<B: Backend> RotaryEmbedding<B> {
    /// Tables for positions `0..seq`.
    pub fn new(seq: usize, head_dim: usize, theta: f64, device: &B::Device) -> Self {
        let (cos, sin) = tables(seq, head_dim, theta);
        let shape = [1, 1, seq, head_dim / 2];
        let upload = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, shape), device);
        Self {
            cos: upload(cos),
            sin: upload(sin),
        }
    }

    /// Positions covered.
    pub fn len(&self) -> usize {
        self.cos.dims()[2]
    }

    /// Whether it covers no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tables for positions `0..seq` (a view of these: the same values as
    /// [`RotaryEmbedding::new`] computes for `seq`).
    ///
    /// # Panics
    /// If `seq` is more than [`Self::len`].
    pub fn prefix(&self, seq: usize) -> Self {
        Self {
            cos: self.cos.clone().narrow(2, 0, seq),
            sin: self.sin.clone().narrow(2, 0, seq),
        }
    }

    /// Rotates `x` (`[batch, heads, seq, head_dim]`, any strides) in f32, rounding once to its
    /// dtype (one fused kernel on CubeCL backends, see [`blt_kernels::rope`]).
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        blt_kernels::rope(x, self.cos.clone(), self.sin.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_the_shorter_table() {
        type B = crate::backend::Cpu;
        let device = Default::default();
        let long = RotaryEmbedding::<B>::new(100, 16, 10000.0, &device);
        let short = RotaryEmbedding::<B>::new(37, 16, 10000.0, &device);
        let prefix = long.prefix(37);
        assert_eq!((long.len(), prefix.len()), (100, 37));
        for (a, b) in [(&prefix.cos, &short.cos), (&prefix.sin, &short.sin)] {
            let a = a.clone().into_data().into_vec::<f32>().unwrap();
            let b = b.clone().into_data().into_vec::<f32>().unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn frequencies_of_the_release() {
        let inv = inverse_frequencies(64, 10000.0);
        assert_eq!(inv.len(), 32);
        assert_eq!(inv[0], 1.0);
        assert!((inv[1] - 10000f32.powf(-2.0 / 64.0)).abs() < 1e-7);
    }
}
