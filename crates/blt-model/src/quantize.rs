//! Weight-only quantization of the linear layers, with Burn's quantization: int8 or int4
//! symmetric values with one f32 scale per block of 32 consecutive weights along the output
//! dimension (the last of Burn's `[d_in, d_out]` layout), min-max calibrated. A layer whose
//! output width is not a multiple of 32 (the 260-wide output projection, 0.2% of the weights)
//! stays in the compute dtype.
//! The products still run in the model's compute dtype (the weights are dequantized first), so
//! quantization saves weight memory, not arithmetic.

use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::quantization::{
    Calibration, QTensorPrimitive, QuantLevel, QuantParam, QuantScheme, QuantValue,
};
use burn::tensor::Tensor;

use crate::EntropyModel;

/// How the linear layers' weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightQuantization {
    /// 8-bit symmetric integers, one scale per 32 weights.
    Int8,
    /// 4-bit symmetric integers, one scale per 32 weights.
    Int4,
}

/// Weights per quantization block.
pub const QUANT_BLOCK: u8 = 32;

impl WeightQuantization {
    /// Burn's scheme for these weights on backend `B`.
    pub fn scheme<B: Backend>(self) -> QuantScheme {
        let value = match self {
            Self::Int8 => QuantValue::Q8S,
            Self::Int4 => QuantValue::Q4S,
        };
        <B::QuantizedTensorPrimitive as QTensorPrimitive>::default_scheme()
            .with_value(value)
            .with_level(QuantLevel::block([QUANT_BLOCK]))
            .with_param(QuantParam::F32)
    }
}

impl FromStr for WeightQuantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "int8" => Ok(Self::Int8),
            "int4" => Ok(Self::Int4),
            _ => Err(format!(
                "unknown weight quantization {s:?}: expected int8 or int4"
            )),
        }
    }
}

/// Quantizes the weights of `Linear` modules (not embeddings or norms).
struct QuantizeLinear {
    scheme: QuantScheme,
    /// Container types entered, innermost last.
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for QuantizeLinear {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.path.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D != 2 || self.path.last().map(String::as_str) != Some("Struct:Linear") {
            return param;
        }
        // A layer whose output width is not a multiple of the block (the 260-wide output
        // projection) stays dense.
        if !param.dims()[1].is_multiple_of(QUANT_BLOCK as usize) {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let scheme = self.scheme;
        let range =
            burn::tensor::quantization::compute_range(&scheme, &tensor, &Calibration::MinMax);
        let qparams = burn::tensor::quantization::compute_q_params(&scheme, range);
        let tensor = tensor.quantize(&scheme, qparams);
        Param::from_mapped_value(id, tensor, mapper)
    }
}

impl<B: Backend> EntropyModel<B> {
    /// Stores every linear layer's weight quantized (see the module docs).
    pub fn quantize_weights(self, quantization: WeightQuantization) -> Self {
        self.map(&mut QuantizeLinear {
            scheme: quantization.scheme::<B>(),
            path: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    type Cpu = burn::backend::Flex;

    /// Every dequantized weight is within half a quantization step of the original, the step
    /// being its block's largest magnitude over 127 (int8) or 7 (int4), blocks being 32
    /// consecutive weights of a row.
    #[test]
    fn blocks_of_32_along_the_output_dimension() {
        let device = Default::default();
        let (rows, cols) = (40, 128);
        let w = Tensor::<Cpu, 2>::random([rows, cols], Distribution::Normal(0.0, 1.0), &device);
        let orig: Vec<f32> = w.to_data().to_vec().unwrap();
        for (q, levels) in [
            (WeightQuantization::Int8, 127.0),
            (WeightQuantization::Int4, 7.0),
        ] {
            let scheme = q.scheme::<Cpu>();
            let range =
                burn::tensor::quantization::compute_range(&scheme, &w, &Calibration::MinMax);
            let qparams = burn::tensor::quantization::compute_q_params(&scheme, range);
            let back: Vec<f32> = w
                .clone()
                .quantize(&scheme, qparams)
                .dequantize()
                .into_data()
                .convert::<f32>()
                .to_vec()
                .unwrap();
            let mut exact = 0;
            for (b, (o, d)) in orig.chunks(32).zip(back.chunks(32)).enumerate() {
                let max = o.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (i, (x, y)) in o.iter().zip(d).enumerate() {
                    assert!(
                        (x - y).abs() <= max / levels * 0.5 * (1.0 + 1e-5),
                        "{q:?} block {b} element {i}: {y} vs {x} (block max {max})"
                    );
                    exact += (x == y) as usize;
                }
            }
            assert!(
                exact < rows * cols / 2,
                "{q:?}: the weights were not quantized"
            );
        }
    }
}
