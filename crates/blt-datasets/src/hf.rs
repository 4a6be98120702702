//! Which files of a Hugging Face dataset repo hold one config's split: the `configs:` of the
//! dataset card's YAML header when it has them (as FineWeb-Edu does), else the Hub's naming
//! conventions (`data/train-*.parquet`, `<config>/<split>/0000.parquet`, …).

use serde::Deserialize;

use crate::table::TableFormat;
use crate::{Error, Result};

/// A dataset split on the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfDatasetSpec {
    /// Repo id, such as `HuggingFaceFW/fineweb-edu`.
    pub repo: String,
    /// Config (subset) name, such as `sample-10BT`; `None` for the default one.
    pub config: Option<String>,
    /// Split name, such as `train`.
    pub split: String,
}

#[derive(Debug, Deserialize)]
struct Card {
    #[serde(default)]
    configs: Vec<CardConfig>,
}

#[derive(Debug, Deserialize)]
struct CardConfig {
    config_name: String,
    #[serde(default)]
    data_files: Option<DataFiles>,
    #[serde(default)]
    default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DataFiles {
    One(String),
    Many(Vec<DataFilesEntry>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DataFilesEntry {
    Pattern(String),
    Split { split: String, path: Patterns },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Patterns {
    One(String),
    Many(Vec<String>),
}

impl Patterns {
    fn list(&self) -> Vec<String> {
        match self {
            Patterns::One(p) => vec![p.clone()],
            Patterns::Many(v) => v.clone(),
        }
    }
}

/// The YAML header of a dataset card (`README.md`), between the first two `---` lines.
fn card_header(readme: &str) -> Option<&str> {
    let rest = readme
        .strip_prefix("---\n")
        .or_else(|| readme.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---")?;
    Some(&rest[..end])
}

fn split_names(split: &str) -> Vec<String> {
    let mut names = vec![split.to_ascii_lowercase()];
    let extra: &[&str] = match split {
        "train" => &["training"],
        "validation" => &["valid", "val", "dev"],
        "test" => &["testing", "eval", "evaluation"],
        _ => &[],
    };
    names.extend(extra.iter().map(|s| s.to_string()));
    names
}

fn is_split_word(word: &str, names: &[String]) -> bool {
    names.iter().any(|n| n == word)
}

/// The words of a path component, split at `-`, `_`, `.`, space and digits.
fn words(component: &str) -> impl Iterator<Item = String> + '_ {
    component
        .split(|c: char| "-_. ".contains(c) || c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

fn mentions_split(path: &str, names: &[String]) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let (dirs, file) = parts.split_at(parts.len().saturating_sub(1));
    dirs.iter()
        .any(|d| is_split_word(&d.to_ascii_lowercase(), names))
        || file.iter().any(|f| {
            let stem = f.split('.').next().unwrap_or(f);
            words(stem).any(|w| is_split_word(&w, names))
        })
}

const KNOWN_SPLITS: &[&str] = &["train", "validation", "test"];

fn glob_set(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    for p in patterns {
        let glob = globset::GlobBuilder::new(p.trim_start_matches("./"))
            .literal_separator(true)
            .build()
            .map_err(|source| Error::InvalidGlob {
                glob: p.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| Error::InvalidGlob {
        glob: patterns.join(", "),
        source,
    })
}

/// The files (repo-relative, sorted) of `spec`'s config and split among `files`, the repo's
/// files; `readme` is the dataset card if the repo has one. Only files this crate reads as
/// tables ([`TableFormat`]) are kept.
///
/// With `configs:` in the card's YAML header, the config named `spec.config` (or the one marked
/// `default`, or the only one) gives the patterns of each split, matched as globs. Without,
/// the Hub's conventions apply: files under `<config>/` when a config is named (the layout of the
/// Hub's Parquet conversion), of which those whose folder is the split's name or whose file name
/// has it as a word (`train-00000-of-00004.parquet`, `data/train/…`; also `training`, `valid`,
/// `dev`, `eval` …). When no file mentions any split, every data file belongs to `train`.
pub fn split_files(
    spec: &HfDatasetSpec,
    files: &[String],
    readme: Option<&str>,
) -> Result<Vec<String>> {
    let data: Vec<&String> = files
        .iter()
        .filter(|f| TableFormat::from_name(f).is_some())
        .collect();
    let not_found = |reason: String| Error::SplitNotFound {
        repo: spec.repo.clone(),
        config: spec.config.clone().unwrap_or_else(|| "default".into()),
        split: spec.split.clone(),
        reason,
    };
    let card: Option<Card> = match readme.and_then(card_header) {
        Some(header) => match serde_norway::from_str::<Card>(header) {
            Ok(card) => Some(card),
            Err(e) => {
                tracing::warn!(repo = %spec.repo, "the dataset card's YAML header does not parse ({e}); using the file naming conventions");
                None
            }
        },
        None => None,
    };
    let mut chosen: Vec<String> = if let Some(card) = card.filter(|c| !c.configs.is_empty()) {
        let config = match &spec.config {
            Some(name) => card.configs.iter().find(|c| &c.config_name == name),
            None => card
                .configs
                .iter()
                .find(|c| c.default)
                .or_else(|| card.configs.iter().find(|c| c.config_name == "default"))
                .or_else(|| (card.configs.len() == 1).then(|| &card.configs[0])),
        };
        let Some(config) = config else {
            let names: Vec<&str> = card
                .configs
                .iter()
                .map(|c| c.config_name.as_str())
                .collect();
            return Err(not_found(format!(
                "the dataset card defines the configs {}; choose one with --hf-config",
                names.join(", ")
            )));
        };
        let patterns: Vec<String> = match &config.data_files {
            None => vec!["**".into()],
            Some(DataFiles::One(p)) if spec.split == "train" => vec![p.clone()],
            Some(DataFiles::One(_)) => Vec::new(),
            Some(DataFiles::Many(entries)) => {
                let mut out = Vec::new();
                let mut plain = Vec::new();
                for entry in entries {
                    match entry {
                        DataFilesEntry::Split { split, path } if split == &spec.split => {
                            out.extend(path.list())
                        }
                        DataFilesEntry::Split { .. } => {}
                        DataFilesEntry::Pattern(p) => plain.push(p.clone()),
                    }
                }
                if out.is_empty() && spec.split == "train" {
                    plain
                } else {
                    out
                }
            }
        };
        if patterns.is_empty() {
            return Err(not_found(format!(
                "config {:?} of the dataset card has no split {:?}",
                config.config_name, spec.split
            )));
        }
        let set = glob_set(&patterns)?;
        data.iter()
            .filter(|f| set.is_match(f.as_str()))
            .map(|f| f.to_string())
            .collect()
    } else {
        let scoped: Vec<&String> = match spec.config.as_deref() {
            Some(config) if config != "default" => data
                .iter()
                .filter(|f| f.starts_with(&format!("{config}/")))
                .copied()
                .collect(),
            _ => data.clone(),
        };
        if scoped.is_empty() {
            return Err(not_found(match &spec.config {
                Some(c) => format!("no data file under {c}/"),
                None => "the repo holds no JSONL, CSV, Parquet or Arrow file".into(),
            }));
        }
        let names = split_names(&spec.split);
        let mine: Vec<String> = scoped
            .iter()
            .filter(|f| mentions_split(f, &names))
            .map(|f| f.to_string())
            .collect();
        let any_split = scoped.iter().any(|f| {
            KNOWN_SPLITS
                .iter()
                .any(|s| mentions_split(f, &split_names(s)))
        });
        if mine.is_empty() && !any_split && spec.split == "train" {
            scoped.iter().map(|f| f.to_string()).collect()
        } else {
            mine
        }
    };
    chosen.sort();
    chosen.dedup();
    if chosen.is_empty() {
        let sample: Vec<&str> = data.iter().take(20).map(|s| s.as_str()).collect();
        return Err(not_found(format!(
            "no data file matches; the data files are: {}{}",
            if sample.is_empty() {
                "(none)".to_string()
            } else {
                sample.join(", ")
            },
            if data.len() > sample.len() {
                ", …"
            } else {
                ""
            }
        )));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(config: Option<&str>, split: &str) -> HfDatasetSpec {
        HfDatasetSpec {
            repo: "org/ds".into(),
            config: config.map(Into::into),
            split: split.into(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn card_configs_pick_the_files() {
        // The shape of FineWeb-Edu's card.
        let readme = "---\nlicense: odc-by\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/*/*\n- config_name: sample-10BT\n  data_files:\n  - split: train\n    path: sample/10BT/*\n---\n# FineWeb-Edu\n";
        let files = names(&[
            "README.md",
            "data/CC-MAIN-2024-10/000_00000.parquet",
            "sample/10BT/001_00000.parquet",
            "sample/10BT/000_00000.parquet",
            "sample/100BT/000_00000.parquet",
        ]);
        assert_eq!(
            split_files(&spec(Some("sample-10BT"), "train"), &files, Some(readme)).unwrap(),
            [
                "sample/10BT/000_00000.parquet",
                "sample/10BT/001_00000.parquet"
            ]
        );
        assert_eq!(
            split_files(&spec(None, "train"), &files, Some(readme)).unwrap(),
            ["data/CC-MAIN-2024-10/000_00000.parquet"]
        );
        let err = split_files(&spec(Some("nope"), "train"), &files, Some(readme)).unwrap_err();
        assert!(err.to_string().contains("sample-10BT"), "{err}");
        let err = split_files(&spec(None, "test"), &files, Some(readme)).unwrap_err();
        assert!(err.to_string().contains("no split"), "{err}");
    }

    #[test]
    fn conventions_without_a_card() {
        let files = names(&[
            "README.md",
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/validation-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet",
        ]);
        assert_eq!(
            split_files(&spec(None, "train"), &files, None).unwrap(),
            [
                "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet"
            ]
        );
        assert_eq!(
            split_files(&spec(None, "validation"), &files, None).unwrap(),
            ["data/validation-00000-of-00001.parquet"]
        );
        // The Hub's Parquet conversion: <config>/<split>/NNNN.parquet.
        let files = names(&[
            "en/train/0000.parquet",
            "en/train/0001.parquet",
            "en/test/0000.parquet",
            "fr/train/0000.parquet",
        ]);
        assert_eq!(
            split_files(&spec(Some("en"), "train"), &files, None).unwrap(),
            ["en/train/0000.parquet", "en/train/0001.parquet"]
        );
        // No split named anywhere: everything is train.
        let files = names(&["a.jsonl.zst", "b.jsonl.zst", "notes.txt"]);
        assert_eq!(
            split_files(&spec(None, "train"), &files, None).unwrap(),
            ["a.jsonl.zst", "b.jsonl.zst"]
        );
        let err = split_files(&spec(None, "test"), &files, None).unwrap_err();
        assert!(err.to_string().contains("a.jsonl.zst"), "{err}");
    }
}
