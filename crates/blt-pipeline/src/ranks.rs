//! The per-rank files of a job array: `stats/<rank>.json` (what a rank did) and
//! `completions/<rank>` (written last: the rank is done), and merging every rank's stats.

use std::path::Path;

use blt_datasets::{completion_marker, rank_stats_path, RankSpec};
use serde::{Deserialize, Serialize};

use crate::{Error, IngestStats, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `completions/<rank>` records: the world size the input was shared among and the
/// fingerprint of the run's output configuration
/// ([`IngestConfig::output_fingerprint`](crate::IngestConfig::output_fingerprint)). A marker
/// only counts for a run with the same two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionMarker {
    /// The number of ranks.
    pub world_size: usize,
    /// The output configuration's fingerprint.
    pub config: String,
}

impl CompletionMarker {
    /// Reads a marker: the JSON this crate writes, or the bare world size that older versions
    /// wrote (its configuration is then unknown: an empty string).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        if let Ok(marker) = serde_json::from_slice::<Self>(&bytes) {
            return Ok(marker);
        }
        let text = String::from_utf8_lossy(&bytes);
        match text.trim().parse::<usize>() {
            Ok(world_size) => Ok(Self {
                world_size,
                config: String::new(),
            }),
            Err(_) => Err(Error::InvalidOutput {
                path: path.to_path_buf(),
                reason: "not a completion marker (neither its JSON nor a world size)".into(),
            }),
        }
    }
}

/// Writes `stats/<rank>.json`, then (if `complete`) `completions/<rank>` recording the world
/// size and `fingerprint`, both atomically.
pub fn write_rank_stats(
    dir: &Path,
    rank: RankSpec,
    stats: &IngestStats,
    complete: bool,
    fingerprint: &str,
) -> Result<()> {
    let path = rank_stats_path(dir, rank.rank);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let json = serde_json::json!({
        "rank": rank.rank,
        "world_size": rank.world_size,
        "complete": complete,
        "stats": stats,
    });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| Error::Stage(e.to_string()))?;
    blt_datasets::write_atomic(&path, &bytes)?;
    if complete {
        let marker = completion_marker(dir, rank.rank);
        if let Some(parent) = marker.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let record = CompletionMarker {
            world_size: rank.world_size,
            config: fingerprint.to_owned(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Stage(e.to_string()))?;
        blt_datasets::write_atomic(&marker, &bytes)?;
    }
    Ok(())
}

/// For a rank whose `completions/<rank>` marker exists: its recorded counts, with every
/// document counted as skipped. `None` when the rank has not completed. A marker written for
/// another world size or another output configuration is [`Error::RankMismatch`]: the folder
/// holds another run's outputs.
pub fn finished_rank(dir: &Path, rank: RankSpec, fingerprint: &str) -> Result<Option<IngestStats>> {
    let marker_path = completion_marker(dir, rank.rank);
    if !marker_path.is_file() {
        return Ok(None);
    }
    let marker = CompletionMarker::read(&marker_path)?;
    if marker.world_size != rank.world_size {
        return Err(Error::RankMismatch {
            path: marker_path,
            reason: format!(
                "it was written by a run of {} ranks, this run has {}",
                marker.world_size, rank.world_size
            ),
        });
    }
    if !marker.config.is_empty() && marker.config != fingerprint {
        return Err(Error::RankMismatch {
            path: marker_path,
            reason: format!(
                "it was written by a run with another model, patching or output configuration \
                 (fingerprint {}, this run's {fingerprint})",
                marker.config
            ),
        });
    }
    let path = rank_stats_path(dir, rank.rank);
    let recorded = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let documents = recorded
        .as_ref()
        .and_then(|v| v["stats"]["documents"].as_u64())
        .unwrap_or(0) as usize;
    Ok(Some(IngestStats {
        documents,
        skipped: documents,
        ..IngestStats::default()
    }))
}

/// The merged stats of every rank in an output folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MergedStats {
    /// The world size the ranks recorded (the largest, if they disagree).
    pub world_size: usize,
    /// Ranks whose `completions/<rank>` marker exists.
    pub complete_ranks: Vec<usize>,
    /// Ranks below `world_size` without a marker.
    pub missing_ranks: Vec<usize>,
    /// Sums over the ranks' `stats/<rank>.json`.
    pub documents: u64,
    /// Documents written.
    pub written: u64,
    /// Documents skipped (already complete).
    pub skipped: u64,
    /// Documents that failed.
    pub failed: u64,
    /// Input bytes written.
    pub bytes: u64,
    /// Tokens written.
    pub tokens: u64,
    /// Patches written.
    pub patches: u64,
    /// The sum of the ranks' wall times.
    pub rank_seconds: f64,
    /// The longest rank's wall time.
    pub max_rank_seconds: f64,
    /// Every rank's failures, rank by rank.
    pub failures: Vec<serde_json::Value>,
}

/// Reads `stats/*.json` and `completions/*` under `dir` and merges them.
pub fn merge_rank_stats(dir: &Path) -> Result<MergedStats> {
    let stats_dir = dir.join("stats");
    let mut merged = MergedStats::default();
    let mut ranks = Vec::new();
    let entries = std::fs::read_dir(&stats_dir).map_err(io(&stats_dir))?;
    for entry in entries {
        let path = entry.map_err(io(&stats_dir))?.path();
        let Some(rank) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidOutput {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        ranks.push((rank, v));
    }
    ranks.sort_by_key(|(r, _)| *r);
    for (_, v) in &ranks {
        let s = &v["stats"];
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        merged.world_size = merged
            .world_size
            .max(v["world_size"].as_u64().unwrap_or(0) as usize);
        merged.documents += n("documents");
        merged.written += n("written");
        merged.skipped += n("skipped");
        merged.failed += n("failed");
        merged.bytes += n("bytes");
        merged.tokens += n("tokens");
        merged.patches += n("patches");
        let seconds = s["seconds"].as_f64().unwrap_or(0.0);
        merged.rank_seconds += seconds;
        merged.max_rank_seconds = merged.max_rank_seconds.max(seconds);
        if let Some(f) = s["failures"].as_array() {
            merged.failures.extend(f.iter().cloned());
        }
    }
    for rank in 0..merged.world_size.max(ranks.len()) {
        if completion_marker(dir, rank).is_file() {
            merged.complete_ranks.push(rank);
        } else {
            merged.missing_ranks.push(rank);
        }
    }
    Ok(merged)
}
