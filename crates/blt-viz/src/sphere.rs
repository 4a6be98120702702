//! The water-filling sphere stage: every patch becomes a point on a hypersphere shell, in the
//! direction of its pooled pre-norm embedding, at a radius set by its prominence.
//!
//! This replaces the predecessor's broken Python and Langevin versions (PREDECESSOR.md §7) with
//! an exact, deterministic rule.
//!
//! # Definition
//!
//! Input: `N` patches, each with a direction `eᵢ ∈ ℝᴰ` (the patch mean of the pre-norm hidden
//! states, the `embeddings` of `blt ingest`), a prominence `pᵢ` (the mean over the patch's
//! positions of the L2 norm of the pre-norm hidden state, as the sidecar's leaves store it) and
//! an entropy `hᵢ` (the mean entropy over the patch's positions, nats). Parameters
//! ([`SphereConfig`]): `S` shells, capacity exponent `α`, radii `0 < r_min ≤ r_max`, and
//! whether the fill is entropy-weighted.
//!
//! 1. **Weight.** `wᵢ = pᵢ`, or `wᵢ = pᵢ · (1 + max(hᵢ, 0))` when entropy-weighted. A
//!    non-finite weight counts as the smallest possible.
//! 2. **Shells.** Shell `k ∈ 0..S` has radius `R_k = r_min + (r_max − r_min) · k / (S − 1)`
//!    (`R_0 = r_min` when `S = 1`).
//! 3. **Capacities** grow as `R_k^α`: the ideal share is `c_k = N · R_k^α / Σⱼ R_j^α`; shell
//!    `k` holds `C_k = ⌊c_k⌋` points, plus one for each of the `N − Σ⌊c_k⌋` shells with the
//!    largest remainders `c_k − ⌊c_k⌋` (ties: the outer shell first). So `Σ C_k = N` exactly.
//! 4. **Water-filling.** Points are ordered by weight (ascending; ties by input order) and
//!    poured into the shells from the inside out: the first `C_0` points go to shell 0, the
//!    next `C_1` to shell 1, and so on. Every shell ends exactly full, and a point of larger
//!    weight is never on an inner shell than a point of smaller weight (monotone).
//! 5. **Placement.** `radiusᵢ = R_{shellᵢ}` and `sphere_coordsᵢ = radiusᵢ · eᵢ / ‖eᵢ‖₂`
//!    (computed in f64, stored in f32). A zero or non-finite direction is replaced by the
//!    all-ones direction `1/√D` and counted in [`SpherePlacement::degenerate_directions`].
//!
//! The result depends only on the inputs and the parameters (no randomness, no iteration).
//!
//! # Output (`blt sphere`)
//!
//! A safetensors file (metadata `format` = `blt-sphere`, `format_version` = `1`, plus the
//! parameters and the document keys as a JSON array in `documents`) with:
//!
//! | name | dtype | shape | meaning |
//! | --- | --- | --- | --- |
//! | `sphere_coords` | F32 | `[N, D]` | the placed points |
//! | `radii` | F32 | `[N]` | `‖sphere_coordsᵢ‖` = the shell's radius |
//! | `shells` | I32 | `[N]` | shell index `0..S` |
//! | `original_prominence` | F32 | `[N]` | `pᵢ` |
//! | `original_entropies` | F32 | `[N]` | `hᵢ` |
//! | `document_index` | I32 | `[N]` | index of the patch's document in `documents` |
//! | `patch_index` | I32 | `[N]` | index of the patch within its document |
//! | `shell_radii` | F32 | `[S]` | `R_k` |
//! | `shell_capacities` | I64 | `[S]` | `C_k` |
//!
//! With `--npz` the same arrays are written as a NumPy `.npz` (see [`crate::npz`]).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{serialize, Dtype, View};

use crate::corpus::{CorpusReader, ReadFailure};
use crate::document::PatchedDocument;
use crate::npz::{NpyArray, NpyData};
use crate::{write_atomic, Error, Result};

/// File name `blt sphere` writes into the output folder by default. Files ending in
/// `.sphere.safetensors` are not documents: [`CorpusReader`] skips them.
pub const DEFAULT_OUTPUT_NAME: &str = "corpus.sphere.safetensors";

/// Parameters of the water-filling.
#[derive(Debug, Clone, PartialEq)]
pub struct SphereConfig {
    /// Number of shells `S` (the predecessor's `target_shells`).
    pub shells: usize,
    /// Capacity exponent `α`: shell capacity ∝ `R^α`.
    pub capacity_exponent: f64,
    /// Radius of the innermost shell.
    pub r_min: f64,
    /// Radius of the outermost shell.
    pub r_max: f64,
    /// Weight prominence by `1 + entropy`.
    pub entropy_weighted: bool,
}

impl Default for SphereConfig {
    /// `S = 256`, `α = 1.5`, radii 32–512 (the predecessor's defaults), not entropy-weighted.
    fn default() -> Self {
        Self {
            shells: 256,
            capacity_exponent: 1.5,
            r_min: 32.0,
            r_max: 512.0,
            entropy_weighted: false,
        }
    }
}

impl SphereConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidOptions(m.to_string()));
        if self.shells == 0 {
            return bad("shells must be at least 1");
        }
        if !(self.capacity_exponent.is_finite() && self.capacity_exponent >= 0.0) {
            return bad("capacity exponent must be finite and ≥ 0");
        }
        if !(self.r_min.is_finite() && self.r_max.is_finite() && self.r_min > 0.0)
            || self.r_min > self.r_max
        {
            return bad("radii must satisfy 0 < r_min ≤ r_max (finite)");
        }
        Ok(())
    }

    /// `R_k` for every shell.
    pub fn shell_radii(&self) -> Vec<f64> {
        let s = self.shells;
        (0..s)
            .map(|k| {
                if s == 1 {
                    self.r_min
                } else {
                    self.r_min + (self.r_max - self.r_min) * k as f64 / (s - 1) as f64
                }
            })
            .collect()
    }

    /// `C_k` for `n` points (largest-remainder apportionment of `n · R_k^α / Σ R_j^α`).
    pub fn shell_capacities(&self, n: usize) -> Vec<usize> {
        let weights: Vec<f64> = self
            .shell_radii()
            .iter()
            .map(|r| r.powf(self.capacity_exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let ideal: Vec<f64> = weights
            .iter()
            .map(|w| {
                if total > 0.0 {
                    n as f64 * w / total
                } else {
                    n as f64 / weights.len() as f64
                }
            })
            .collect();
        let mut caps: Vec<usize> = ideal.iter().map(|c| c.floor() as usize).collect();
        let assigned: usize = caps.iter().sum();
        let mut order: Vec<usize> = (0..caps.len()).collect();
        // Largest remainder first; ties: the outer shell first.
        order.sort_by(|&a, &b| {
            let ra = ideal[a] - ideal[a].floor();
            let rb = ideal[b] - ideal[b].floor();
            rb.total_cmp(&ra).then(b.cmp(&a))
        });
        for &k in order.iter().cycle().take(n.saturating_sub(assigned)) {
            caps[k] += 1;
        }
        caps
    }
}

/// The placement of `N` points.
#[derive(Debug, Clone, PartialEq)]
pub struct SpherePlacement {
    /// Width `D`.
    pub dim: usize,
    /// `[N, D]` row-major.
    pub sphere_coords: Vec<f32>,
    /// Radius per point.
    pub radii: Vec<f32>,
    /// Shell per point.
    pub shells: Vec<u32>,
    /// `R_k`.
    pub shell_radii: Vec<f64>,
    /// `C_k`.
    pub shell_capacities: Vec<usize>,
    /// Points whose direction was zero or non-finite (placed along `1/√D`).
    pub degenerate_directions: usize,
}

/// Water-fills `n = prominence.len()` points: `directions` is `[n, dim]` row-major; `entropies`
/// is used only when entropy-weighted (and must then have `n` values).
pub fn water_fill(
    directions: &[f32],
    dim: usize,
    prominence: &[f32],
    entropies: &[f32],
    config: &SphereConfig,
) -> Result<SpherePlacement> {
    config.validate()?;
    let n = prominence.len();
    if dim == 0 || directions.len() != n * dim {
        return Err(Error::InvalidOptions(format!(
            "{} direction values for {n} points of width {dim}",
            directions.len()
        )));
    }
    if config.entropy_weighted && entropies.len() != n {
        return Err(Error::InvalidOptions(format!(
            "{} entropies for {n} points",
            entropies.len()
        )));
    }
    let weight = |i: usize| {
        let p = prominence[i] as f64;
        let w = if config.entropy_weighted {
            p * (1.0 + (entropies[i] as f64).max(0.0))
        } else {
            p
        };
        if w.is_finite() {
            w
        } else {
            f64::NEG_INFINITY
        }
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| weight(a).total_cmp(&weight(b)).then(a.cmp(&b)));
    let radii_k = config.shell_radii();
    let caps = config.shell_capacities(n);
    let mut shells = vec![0u32; n];
    let mut next = order.iter();
    for (k, &c) in caps.iter().enumerate() {
        for &i in next.by_ref().take(c) {
            shells[i] = k as u32;
        }
    }
    let mut coords = Vec::with_capacity(n * dim);
    let mut radii = Vec::with_capacity(n);
    let mut degenerate = 0;
    let fallback = 1.0 / (dim as f64).sqrt();
    for i in 0..n {
        let r = radii_k[shells[i] as usize];
        radii.push(r as f32);
        let row = &directions[i * dim..(i + 1) * dim];
        let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            coords.extend(row.iter().map(|&v| (r * v as f64 / norm) as f32));
        } else {
            degenerate += 1;
            coords.extend(std::iter::repeat_n((r * fallback) as f32, dim));
        }
    }
    Ok(SpherePlacement {
        dim,
        sphere_coords: coords,
        radii,
        shells,
        shell_radii: radii_k,
        shell_capacities: caps,
        degenerate_directions: degenerate,
    })
}

/// The patches of a corpus with everything the sphere needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SphereInput {
    /// Document keys, in reading order.
    pub documents: Vec<String>,
    /// Width `D`.
    pub dim: usize,
    /// `[N, D]` patch embeddings.
    pub directions: Vec<f32>,
    /// Mean prominence per patch.
    pub prominence: Vec<f32>,
    /// Mean entropy per patch.
    pub entropies: Vec<f32>,
    /// Document index per patch.
    pub document_index: Vec<i32>,
    /// Patch index within its document.
    pub patch_index: Vec<i32>,
    /// Documents skipped (unreadable, no embeddings, another width).
    pub skipped: Vec<ReadFailure>,
}

impl SphereInput {
    /// Gathers the patches of every readable document of an output folder (or file) that has
    /// embeddings. Documents without embeddings or of another width than the first are
    /// skipped and listed.
    pub fn collect(path: &Path) -> Result<Self> {
        let reader = CorpusReader::open(path)?;
        let mut input = SphereInput::default();
        let mut skipped = Vec::new();
        let failures = reader.for_each_document(true, |doc| {
            if let Err(reason) = input.add(&doc) {
                tracing::warn!(key = %doc.key, %reason, "skipping a document");
                skipped.push(ReadFailure {
                    path: doc.key.clone(),
                    reason,
                });
            }
        });
        input.skipped = failures;
        input.skipped.extend(skipped);
        if input.prominence.is_empty() {
            return Err(Error::Empty {
                path: path.to_path_buf(),
                reason: format!(
                    "no patches with embeddings ({} documents skipped; ingest with --embeddings patch or byte)",
                    input.skipped.len()
                ),
            });
        }
        Ok(input)
    }

    /// Adds the patches of one document; `Err` says why it was skipped.
    pub fn add(&mut self, doc: &PatchedDocument) -> std::result::Result<(), String> {
        let Some(emb) = doc.patch_embeddings() else {
            return Err("no embeddings".to_string());
        };
        if self.dim == 0 {
            self.dim = emb.dim;
        } else if emb.dim != self.dim {
            return Err(format!(
                "embedding width {} differs from {}",
                emb.dim, self.dim
            ));
        }
        let prominence = if doc.prominence.is_empty() {
            vec![0.0; doc.patch_lengths.len()]
        } else {
            doc.patch_means(&doc.prominence)
        };
        let index = self.documents.len() as i32;
        self.documents.push(doc.key.clone());
        self.directions.extend_from_slice(&emb.values);
        self.entropies.extend(doc.patch_means(&doc.entropies));
        for (j, p) in prominence.into_iter().enumerate() {
            self.prominence.push(p);
            self.document_index.push(index);
            self.patch_index.push(j as i32);
        }
        Ok(())
    }
}

struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn le_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The arrays of the output, by name, as (dtype, shape, values).
fn arrays(input: &SphereInput, p: &SpherePlacement) -> Vec<(&'static str, NpyArray)> {
    let n = p.radii.len();
    let shells: Vec<i32> = p.shells.iter().map(|&s| s as i32).collect();
    let radii: Vec<f32> = p.shell_radii.iter().map(|&r| r as f32).collect();
    let caps: Vec<i64> = p.shell_capacities.iter().map(|&c| c as i64).collect();
    vec![
        (
            "sphere_coords",
            NpyArray::new(vec![n, p.dim], NpyData::F32(p.sphere_coords.clone())),
        ),
        (
            "radii",
            NpyArray::new(vec![n], NpyData::F32(p.radii.clone())),
        ),
        ("shells", NpyArray::new(vec![n], NpyData::I32(shells))),
        (
            "original_prominence",
            NpyArray::new(vec![n], NpyData::F32(input.prominence.clone())),
        ),
        (
            "original_entropies",
            NpyArray::new(vec![n], NpyData::F32(input.entropies.clone())),
        ),
        (
            "document_index",
            NpyArray::new(vec![n], NpyData::I32(input.document_index.clone())),
        ),
        (
            "patch_index",
            NpyArray::new(vec![n], NpyData::I32(input.patch_index.clone())),
        ),
        (
            "shell_radii",
            NpyArray::new(vec![radii.len()], NpyData::F32(radii)),
        ),
        (
            "shell_capacities",
            NpyArray::new(vec![caps.len()], NpyData::I64(caps)),
        ),
    ]
}

/// Serialises the placement as the `blt-sphere` safetensors file described in the module docs.
pub fn to_safetensors(
    input: &SphereInput,
    placement: &SpherePlacement,
    config: &SphereConfig,
    path: &Path,
) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Tensor)> = arrays(input, placement)
        .into_iter()
        .map(|(name, a)| {
            let (dtype, data) = match a.data {
                NpyData::F32(v) => (Dtype::F32, le_f32(&v)),
                NpyData::I32(v) => (Dtype::I32, le_i32(&v)),
                NpyData::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (
                name.to_string(),
                Tensor {
                    dtype,
                    shape: a.shape,
                    data,
                },
            )
        })
        .collect();
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    meta.insert("format".into(), "blt-sphere".into());
    meta.insert("format_version".into(), "1".into());
    meta.insert("shells".into(), config.shells.to_string());
    meta.insert(
        "capacity_exponent".into(),
        config.capacity_exponent.to_string(),
    );
    meta.insert("r_min".into(), config.r_min.to_string());
    meta.insert("r_max".into(), config.r_max.to_string());
    meta.insert(
        "entropy_weighted".into(),
        config.entropy_weighted.to_string(),
    );
    meta.insert("num_points".into(), placement.radii.len().to_string());
    meta.insert("dim".into(), placement.dim.to_string());
    meta.insert(
        "degenerate_directions".into(),
        placement.degenerate_directions.to_string(),
    );
    meta.insert(
        "documents".into(),
        serde_json::to_string(&input.documents).unwrap_or_else(|_| "[]".into()),
    );
    let views: Vec<(String, &Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    serialize(views, Some(meta.into_iter().collect())).map_err(|e| Error::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes the safetensors output (and the `.npz` beside it, when `npz` is given), atomically.
pub fn write_outputs(
    input: &SphereInput,
    placement: &SpherePlacement,
    config: &SphereConfig,
    safetensors_path: &Path,
    npz_path: Option<&Path>,
) -> Result<()> {
    let bytes = to_safetensors(input, placement, config, safetensors_path)?;
    write_atomic(safetensors_path, &bytes)?;
    if let Some(npz) = npz_path {
        let data = crate::npz::to_npz(&arrays(input, placement), npz)?;
        write_atomic(npz, &data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(shells: usize, alpha: f64) -> SphereConfig {
        SphereConfig {
            shells,
            capacity_exponent: alpha,
            r_min: 1.0,
            r_max: 10.0,
            entropy_weighted: false,
        }
    }

    #[test]
    fn capacities_by_hand() {
        // S = 2, α = 1: radii 1 and 10, ideal 11·1/11 = 1 and 11·10/11 = 10.
        assert_eq!(cfg(2, 1.0).shell_capacities(11), vec![1, 10]);
        // α = 0: equal shares; 5 over 2 shells: 2.5 each, the tie goes to the outer shell.
        assert_eq!(cfg(2, 0.0).shell_capacities(5), vec![2, 3]);
        assert_eq!(cfg(3, 1.0).shell_radii(), vec![1.0, 5.5, 10.0]);
    }

    #[test]
    fn fills_inside_out_by_prominence() {
        let p = [5.0f32, 1.0, 3.0, 2.0, 4.0];
        let dirs = [1.0f32, 0.0].repeat(5);
        let c = cfg(2, 0.0); // capacities [2, 3]
        let out = water_fill(&dirs, 2, &p, &[], &c).unwrap();
        assert_eq!(out.shells, vec![1, 0, 1, 0, 1]);
        assert_eq!(out.radii, vec![10.0, 1.0, 10.0, 1.0, 10.0]);
        assert_eq!(&out.sphere_coords[..2], &[10.0, 0.0]);
    }

    #[test]
    fn entropy_weighting_changes_the_order() {
        let p = [1.0f32, 1.5];
        let h = [3.0f32, 0.0]; // weights 4.0 and 1.5
        let dirs = [0.0f32, 1.0].repeat(2);
        let mut c = cfg(2, 0.0);
        c.entropy_weighted = true;
        let out = water_fill(&dirs, 2, &p, &h, &c).unwrap();
        assert_eq!(out.shells, vec![1, 0]);
    }

    #[test]
    fn degenerate_directions_are_counted() {
        let out = water_fill(
            &[0.0, 0.0, f32::NAN, 1.0],
            2,
            &[1.0, 2.0],
            &[],
            &cfg(1, 1.5),
        )
        .unwrap();
        assert_eq!(out.degenerate_directions, 2);
        let r = (out.sphere_coords[0].powi(2) + out.sphere_coords[1].powi(2)).sqrt();
        assert!((r - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_options() {
        assert!(cfg(0, 1.0).validate().is_err());
        let mut c = cfg(2, 1.0);
        c.r_min = 20.0;
        assert!(c.validate().is_err());
        assert!(water_fill(&[1.0], 2, &[1.0], &[], &cfg(2, 1.0)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn capacities_respected_and_monotone(
            prom in proptest::collection::vec(0.0f32..100.0, 1..300),
            shells in 1usize..40,
            alpha in 0.0f64..3.0,
            weighted in any::<bool>(),
        ) {
            let n = prom.len();
            let dim = 3;
            let dirs: Vec<f32> = (0..n * dim).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
            let ent: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.5).collect();
            let c = SphereConfig { shells, capacity_exponent: alpha, r_min: 2.0, r_max: 50.0, entropy_weighted: weighted };
            let out = water_fill(&dirs, dim, &prom, &ent, &c).unwrap();
            // Capacities sum to N and each shell holds exactly its capacity.
            prop_assert_eq!(out.shell_capacities.iter().sum::<usize>(), n);
            let mut counts = vec![0usize; shells];
            for &s in &out.shells { counts[s as usize] += 1; }
            prop_assert_eq!(&counts, &out.shell_capacities);
            // Monotone: a larger weight is never on an inner shell.
            let w = |i: usize| if weighted { prom[i] as f64 * (1.0 + ent[i] as f64) } else { prom[i] as f64 };
            for i in 0..n { for j in 0..n {
                if w(i) < w(j) { prop_assert!(out.shells[i] <= out.shells[j]); }
            }}
            // Points lie on their shell.
            for i in 0..n {
                let r: f64 = out.sphere_coords[i*dim..(i+1)*dim].iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                prop_assert!((r - out.radii[i] as f64).abs() < 1e-3 * out.radii[i] as f64);
                prop_assert_eq!(out.radii[i] as f64, out.shell_radii[out.shells[i] as usize] as f32 as f64);
            }
            // Deterministic.
            let again = water_fill(&dirs, dim, &prom, &ent, &c).unwrap();
            prop_assert_eq!(again, out);
        }

        #[test]
        fn capacities_grow_with_radius(n in 0usize..5000, shells in 2usize..64, alpha in 0.5f64..3.0) {
            let caps = cfg(shells, alpha).shell_capacities(n);
            prop_assert_eq!(caps.iter().sum::<usize>(), n);
            // Rounding moves a capacity by at most one from its ideal, so capacities are
            // non-decreasing up to one.
            for k in 1..shells { prop_assert!(caps[k] + 1 >= caps[k - 1]); }
        }
    }
}
