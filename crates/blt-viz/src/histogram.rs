//! The entropy histogram JSON of the predecessor's `--entropy-histogram` (PREDECESSOR.md §3.9),
//! with the same fields and the same definitions:
//!
//! ```text
//! statistics:  {min, max, mean, std (population), total_tokens}
//! percentiles: {p25, p50, p75, p90, p95, p99}
//!              nearest rank on the sorted values: index = round((n − 1)·p)
//! histogram:   {num_bins, bin_width = (max − min)/num_bins (1.0 when max == min),
//!               bin_edges = [min + i·bin_width for i in 0..=num_bins],
//!               counts[num_bins]}   (a value goes to bin ⌊(x − min)/bin_width⌋, the last bin
//!                                    also takes the maximum)
//! ```
//!
//! Non-finite values are left out. With no values every number is 0 and `bin_width` is 1.

use serde::{Deserialize, Serialize};

/// `statistics` of the histogram JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Number of values (token positions).
    pub total_tokens: u64,
}

/// `percentiles` of the histogram JSON (nearest rank, index `round((n − 1)·p)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// `histogram` of the histogram JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Number of bins.
    pub num_bins: usize,
    /// Width of each bin.
    pub bin_width: f64,
    /// `num_bins + 1` edges, `min + i·bin_width`.
    pub bin_edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

/// The whole histogram JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntropyHistogram {
    /// Summary statistics.
    pub statistics: Statistics,
    /// Nearest-rank percentiles.
    pub percentiles: Percentiles,
    /// The binned distribution.
    pub histogram: Bins,
}

/// The nearest-rank percentile of **sorted** values: `sorted[round((n − 1)·p)]`, `p` in
/// `[0, 1]`; 0 for no values.
pub fn percentile_nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

impl EntropyHistogram {
    /// Computes the histogram of `values` with `num_bins` bins (at least 1). Sorts a copy.
    pub fn compute(values: &[f32], num_bins: usize) -> Self {
        let num_bins = num_bins.max(1);
        let mut sorted: Vec<f64> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| v as f64)
            .collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (min, max) = match (sorted.first(), sorted.last()) {
            (Some(&a), Some(&b)) => (a, b),
            _ => (0.0, 0.0),
        };
        let mean = if n == 0 {
            0.0
        } else {
            sorted.iter().sum::<f64>() / n as f64
        };
        let std = if n == 0 {
            0.0
        } else {
            (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
        };
        let bin_width = if max > min {
            (max - min) / num_bins as f64
        } else {
            1.0
        };
        let mut counts = vec![0u64; num_bins];
        for &v in &sorted {
            let idx = ((v - min) / bin_width).floor() as usize;
            counts[idx.min(num_bins - 1)] += 1;
        }
        let p = |q| percentile_nearest_rank(&sorted, q);
        Self {
            statistics: Statistics {
                min,
                max,
                mean,
                std,
                total_tokens: n as u64,
            },
            percentiles: Percentiles {
                p25: p(0.25),
                p50: p(0.50),
                p75: p(0.75),
                p90: p(0.90),
                p95: p(0.95),
                p99: p(0.99),
            },
            histogram: Bins {
                num_bins,
                bin_width,
                bin_edges: (0..=num_bins).map(|i| min + i as f64 * bin_width).collect(),
                counts,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_small_case() {
        // Sorted: 0, 1, 2, 3, 4 (n = 5). p25 → round(1.0) = 1; p50 → 2; p75 → 3;
        // p90 → round(3.6) = 4; p95 → round(3.8) = 4; p99 → 4.
        let h = EntropyHistogram::compute(&[4.0, 0.0, 3.0, 1.0, 2.0], 4);
        assert_eq!(h.percentiles.p25, 1.0);
        assert_eq!(h.percentiles.p50, 2.0);
        assert_eq!(h.percentiles.p75, 3.0);
        assert_eq!(h.percentiles.p90, 4.0);
        assert_eq!(h.statistics.mean, 2.0);
        assert!((h.statistics.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(h.histogram.bin_width, 1.0);
        assert_eq!(h.histogram.bin_edges, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        // 4.0 clamps into the last bin.
        assert_eq!(h.histogram.counts, vec![1, 1, 1, 2]);
    }

    #[test]
    fn constant_and_empty_inputs() {
        let h = EntropyHistogram::compute(&[2.5; 3], 5);
        assert_eq!(h.histogram.bin_width, 1.0);
        assert_eq!(h.histogram.counts, vec![3, 0, 0, 0, 0]);
        let e = EntropyHistogram::compute(&[], 5);
        assert_eq!(e.statistics.total_tokens, 0);
        assert_eq!(e.histogram.counts.iter().sum::<u64>(), 0);
    }

    #[test]
    fn json_has_the_predecessor_fields() {
        let v = serde_json::to_value(EntropyHistogram::compute(&[1.0, 2.0], 2)).unwrap();
        for k in ["min", "max", "mean", "std", "total_tokens"] {
            assert!(v["statistics"].get(k).is_some(), "{k}");
        }
        for k in ["p25", "p50", "p75", "p90", "p95", "p99"] {
            assert!(v["percentiles"].get(k).is_some(), "{k}");
        }
        for k in ["num_bins", "bin_width", "bin_edges", "counts"] {
            assert!(v["histogram"].get(k).is_some(), "{k}");
        }
    }
}
