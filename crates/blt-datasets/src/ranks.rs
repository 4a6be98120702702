//! Ranks: which share of the input one process of a job array reads, and the files that say a
//! rank is done (`completions/<rank>`, written last) and what it did (`stats/<rank>.json`).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// This process's place among `world_size` processes that share one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankSpec {
    /// From 0.
    pub rank: usize,
    /// At least 1.
    pub world_size: usize,
}

impl Default for RankSpec {
    fn default() -> Self {
        Self {
            rank: 0,
            world_size: 1,
        }
    }
}

/// The variables each launcher sets, in the order they are looked at: the rank variable and
/// the one that holds the count.
pub const RANK_VARIABLES: &[(&str, &str)] = &[
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
    ("JOB_COMPLETION_INDEX", "BLT_WORLD_SIZE"),
    ("RANK", "WORLD_SIZE"),
];

impl RankSpec {
    /// A checked rank: `rank < world_size`, `world_size ≥ 1`.
    pub fn new(rank: usize, world_size: usize) -> Result<Self> {
        if world_size == 0 || rank >= world_size {
            return Err(Error::InvalidRank { rank, world_size });
        }
        Ok(Self { rank, world_size })
    }

    /// The rank from explicit values, completed from the launcher's environment:
    /// `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT` (Slurm job arrays),
    /// `JOB_COMPLETION_INDEX` / `BLT_WORLD_SIZE` (Kubernetes Indexed Jobs, which set no count:
    /// pass the Job's `completions` as `BLT_WORLD_SIZE` or `--world-size`), or `RANK` /
    /// `WORLD_SIZE` (torchrun, Ray, GNU parallel). `None` when neither explicit values nor a
    /// launcher say anything: the process is the only one.
    ///
    /// Slurm array ids need not start at 0 (`--array=1-8`): `SLURM_ARRAY_TASK_MIN` is
    /// subtracted when set.
    pub fn resolve(
        rank: Option<usize>,
        world_size: Option<usize>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>> {
        let parse = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::InvalidRankVariable {
                        name: name.into(),
                        value: v,
                    }),
            }
        };
        let mut env = None;
        for (rank_var, count_var) in RANK_VARIABLES {
            if let Some(r) = parse(rank_var)? {
                let mut r = r;
                if *rank_var == "SLURM_ARRAY_TASK_ID" {
                    if let Some(min) = parse("SLURM_ARRAY_TASK_MIN")? {
                        r = r.saturating_sub(min);
                    }
                }
                env = Some((r, parse(count_var)?, *rank_var, *count_var));
                break;
            }
        }
        let (rank, world_size) = match (rank, world_size, env) {
            (None, None, None) => return Ok(None),
            (r, w, Some((er, ew, rank_var, count_var))) => {
                let world = w.or(ew).ok_or_else(|| Error::MissingWorldSize {
                    rank_var: rank_var.into(),
                    count_var: count_var.into(),
                })?;
                (r.unwrap_or(er), world)
            }
            (r, w, None) => (r.unwrap_or(0), w.unwrap_or(1)),
        };
        Self::new(rank, world_size).map(Some)
    }

    /// Whether the item at `index` of a sequence belongs to this rank (`index % world_size`).
    pub fn owns(&self, index: usize) -> bool {
        index % self.world_size == self.rank
    }

    /// This rank's share of `items`: `items[rank::world_size]`.
    pub fn take<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.owns(*i))
            .map(|(_, t)| t)
            .collect()
    }

    /// The rank as it appears in file names: five digits (`rank-00003`).
    pub fn label(&self) -> String {
        format!("rank-{:05}", self.rank)
    }
}

/// `<dir>/completions/<rank>`: written last by a rank that finished; its presence means the
/// rank is skipped when started again.
pub fn completion_marker(dir: &Path, rank: usize) -> PathBuf {
    dir.join("completions").join(rank.to_string())
}

/// `<dir>/stats/<rank>.json`: the counts of a rank's run.
pub fn rank_stats_path(dir: &Path, rank: usize) -> PathBuf {
    dir.join("stats").join(format!("{rank}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn launchers_are_read() {
        assert_eq!(RankSpec::resolve(None, None, vars(&[])).unwrap(), None);
        let r = RankSpec::resolve(
            None,
            None,
            vars(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(r, Some(RankSpec::new(3, 8).unwrap()));
        let r = RankSpec::resolve(
            None,
            None,
            vars(&[
                ("SLURM_ARRAY_TASK_ID", "8"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(r, Some(RankSpec::new(7, 8).unwrap()));
        // Kubernetes sets only the index: the count comes from --world-size.
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert!(matches!(
            RankSpec::resolve(None, None, vars(&k8s)).unwrap_err(),
            Error::MissingWorldSize { .. }
        ));
        assert_eq!(
            RankSpec::resolve(None, Some(4), vars(&k8s)).unwrap(),
            Some(RankSpec::new(2, 4).unwrap())
        );
        let torch = [("RANK", "1"), ("WORLD_SIZE", "2")];
        assert_eq!(
            RankSpec::resolve(None, None, vars(&torch)).unwrap(),
            Some(RankSpec::new(1, 2).unwrap())
        );
        // Explicit values win.
        assert_eq!(
            RankSpec::resolve(Some(0), Some(3), vars(&torch)).unwrap(),
            Some(RankSpec::new(0, 3).unwrap())
        );
        assert!(matches!(
            RankSpec::resolve(Some(3), Some(3), vars(&[])).unwrap_err(),
            Error::InvalidRank { .. }
        ));
        assert!(matches!(
            RankSpec::resolve(None, None, vars(&[("RANK", "x"), ("WORLD_SIZE", "2")])).unwrap_err(),
            Error::InvalidRankVariable { .. }
        ));
    }

    #[test]
    fn shares_are_strided() {
        let r = RankSpec::new(1, 3).unwrap();
        assert_eq!(r.take((0..8).collect()), vec![1, 4, 7]);
        assert_eq!(r.label(), "rank-00001");
        assert_eq!(
            completion_marker(Path::new("out"), 1),
            Path::new("out/completions/1")
        );
    }
}
