#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

mod boundaries;
mod config;
mod error;
mod patcher;
mod rules;

pub use boundaries::{Iter, PatchBoundaries};
pub use config::{PatcherConfig, PatchingMode};
pub use error::{Error, Result};
pub use patcher::Patcher;

/// The reference's default entropy threshold θ, in nats (`PatcherArgs.threshold`, also HF's
/// `BltConfig.patching_threshold`), written as the reference writes it. The value is exactly an
/// `f32` (bits `0x3FAAEFC4`), so nothing is lost by storing it as one.
///
/// In the reference's realtime bf16 path the comparison happens in bf16, where this value
/// behaves as [`DEFAULT_THRESHOLD_BF16`].
// The reference's literal, kept verbatim; it is exact (the shortest f32 form is 1.335_442_1).
#[allow(clippy::excessive_precision)]
pub const DEFAULT_THRESHOLD: f32 = 1.335442066192627;

/// [`DEFAULT_THRESHOLD`] rounded to bf16 (1.3359375): the threshold the reference's realtime
/// path effectively applies, since it compares bf16 entropies with a Python float in bf16.
/// Use it, with entropies that are bf16 values, to reproduce that path's boundaries.
pub const DEFAULT_THRESHOLD_BF16: f32 = 1.3359375;

/// Rounds an `f32` to the nearest bf16 value (ties to even) and returns it as `f32`, as torch
/// does when a Python float meets a bf16 tensor. NaN stays NaN.
///
/// `round_to_bf16(DEFAULT_THRESHOLD) == DEFAULT_THRESHOLD_BF16`.
pub fn round_to_bf16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let bits = x.to_bits();
    let round_bit = (bits >> 16) & 1;
    let rounded = bits.wrapping_add(0x7FFF + round_bit) & 0xFFFF_0000;
    f32::from_bits(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_threshold() {
        assert_eq!(round_to_bf16(DEFAULT_THRESHOLD), DEFAULT_THRESHOLD_BF16);
        assert_eq!(DEFAULT_THRESHOLD.to_bits(), 0x3FAA_EFC4);
        assert_eq!(f64::from(DEFAULT_THRESHOLD), 1.335442066192627_f64);
        // 1.3359375 is a bf16 value already.
        assert_eq!(
            round_to_bf16(DEFAULT_THRESHOLD_BF16),
            DEFAULT_THRESHOLD_BF16
        );
    }

    #[test]
    fn bf16_rounding_ties_to_even_and_keeps_specials() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to even gives 1.
        assert_eq!(round_to_bf16(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties to even gives 1 + 2^-6.
        assert_eq!(round_to_bf16(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(round_to_bf16(-2.5), -2.5);
        assert_eq!(round_to_bf16(0.0), 0.0);
        assert_eq!(round_to_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_to_bf16(f32::MAX), f32::INFINITY);
        assert!(round_to_bf16(f32::NAN).is_nan());
    }

    #[test]
    fn bf16_threshold_changes_a_near_threshold_boundary() {
        // A bf16 entropy of exactly 1.3359375 exceeds the f32 threshold but not its bf16
        // rounding, so the realtime bf16 path would not start a patch where f32 does.
        let h = [0.0, round_to_bf16(1.3357), 0.0];
        assert_eq!(h[1], DEFAULT_THRESHOLD_BF16);
        let config = PatcherConfig::default().with_include_next_token(true);
        let f32_path = Patcher::new(config.clone()).unwrap();
        let bf16_path = Patcher::new(config.with_threshold(Some(DEFAULT_THRESHOLD_BF16))).unwrap();
        assert_eq!(
            f32_path.patch(&[1, 5, 6], Some(&h)).unwrap().lengths(),
            &[1, 1, 2]
        );
        assert_eq!(
            bf16_path.patch(&[1, 5, 6], Some(&h)).unwrap().lengths(),
            &[1, 3]
        );
    }
}
