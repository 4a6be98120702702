//! Corpus statistics over an ingest output folder: the entropy histogram JSON of the
//! predecessor (see [`crate::histogram`]), the patch-length distribution, bytes per modality,
//! document-size buckets (the predecessor's `--batch-stats`) and the errors (unreadable files,
//! and the failures `run.json` lists), as JSON and as an HTML page with plots.
//!
//! Memory: every entropy is kept (4 bytes per token position) so the percentiles are exact.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::corpus::{CorpusReader, ReadFailure, RunSummary};
use crate::document::PatchedDocument;
use crate::histogram::{percentile_nearest_rank, EntropyHistogram};
use crate::html::{escape, num, page};
use crate::plot::bar_chart_svg;
use crate::report::patch_length_bars;
use crate::{Error, Result};

/// Options of [`CorpusStats::collect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsOptions {
    /// Bins of the entropy histogram (the predecessor's `--histogram-bins`, default 50).
    pub bins: usize,
    /// Include the document-size buckets (`--batch-stats`).
    pub batch_stats: bool,
}

impl Default for StatsOptions {
    fn default() -> Self {
        Self {
            bins: 50,
            batch_stats: false,
        }
    }
}

/// Distribution of patch lengths (token positions per patch, as stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchLengthStats {
    /// Number of patches.
    pub count: u64,
    /// Mean length.
    pub mean: f64,
    /// Shortest.
    pub min: u64,
    /// Longest.
    pub max: u64,
    /// Nearest-rank percentiles (`p25`, `p50`, `p75`, `p90`, `p95`, `p99`), as for entropies.
    pub percentiles: BTreeMap<String, f64>,
    /// Patches per length (`"1"`, `"2"`, … as JSON keys).
    pub counts: BTreeMap<u64, u64>,
}

/// One document-size bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeBucket {
    /// `<512 B`, `<2 KB`, `<8 KB`, `<32 KB` or `>=32 KB` (the predecessor's buckets).
    pub label: String,
    /// Exclusive upper bound in bytes (`null` for the last bucket).
    pub max_bytes: Option<u64>,
    /// Documents in the bucket.
    pub documents: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The predecessor's size buckets: (label, exclusive upper bound).
pub const SIZE_BUCKETS: [(&str, Option<u64>); 5] = [
    ("<512 B", Some(512)),
    ("<2 KB", Some(2048)),
    ("<8 KB", Some(8192)),
    ("<32 KB", Some(32768)),
    (">=32 KB", None),
];

/// Errors seen: files this reader could not read, and what `run.json` records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorStats {
    /// Files (or shard members) that could not be read now.
    pub unreadable: Vec<ReadFailure>,
    /// Documents the ingest run itself failed on (`run.json` → `stats.failed`; 0 without it).
    pub ingest_failed: u64,
    /// `run.json` → `stats.failures`, as written.
    pub ingest_failures: Vec<serde_json::Value>,
}

/// Everything `blt stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusStats {
    /// The folder (or file) read.
    pub output_dir: String,
    /// Documents read.
    pub documents: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their token positions.
    pub tokens: u64,
    /// Their patches.
    pub patches: u64,
    /// The predecessor's `--entropy-histogram` JSON over every token position.
    pub entropy_histogram: EntropyHistogram,
    /// Patch lengths.
    pub patch_lengths: PatchLengthStats,
    /// Bytes per segment modality.
    pub bytes_per_modality: BTreeMap<String, u64>,
    /// Document-size buckets, with `--batch-stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_stats: Option<Vec<SizeBucket>>,
    /// What `run.json` says about the run, when present.
    pub run: Option<RunSummary>,
    /// Errors.
    pub errors: ErrorStats,
}

/// Accumulates statistics document by document.
#[derive(Debug, Default)]
pub struct StatsCollector {
    documents: u64,
    bytes: u64,
    entropies: Vec<f32>,
    lengths: BTreeMap<u64, u64>,
    modality: BTreeMap<String, u64>,
    sizes: Vec<(u64, u64)>,
}

impl StatsCollector {
    /// Adds one document.
    pub fn add(&mut self, doc: &PatchedDocument) {
        self.documents += 1;
        self.bytes += doc.bytes.len() as u64;
        self.entropies.extend_from_slice(&doc.entropies);
        for &l in &doc.patch_lengths {
            *self.lengths.entry(l as u64).or_insert(0) += 1;
        }
        for (m, b) in doc.bytes_per_modality() {
            *self.modality.entry(m).or_insert(0) += b;
        }
        let size = doc.bytes.len() as u64;
        let idx = SIZE_BUCKETS
            .iter()
            .position(|(_, max)| max.is_none_or(|m| size < m))
            .unwrap_or(SIZE_BUCKETS.len() - 1);
        if self.sizes.is_empty() {
            self.sizes = vec![(0, 0); SIZE_BUCKETS.len()];
        }
        self.sizes[idx].0 += 1;
        self.sizes[idx].1 += size;
    }

    /// The statistics of what was added.
    pub fn finish(
        self,
        output_dir: &Path,
        options: &StatsOptions,
        run: Option<RunSummary>,
        unreadable: Vec<ReadFailure>,
    ) -> CorpusStats {
        let count: u64 = self.lengths.values().sum();
        let total: u64 = self.lengths.iter().map(|(l, c)| l * c).sum();
        let mut expanded: Vec<f64> = Vec::with_capacity(count as usize);
        for (&l, &c) in &self.lengths {
            expanded.extend(std::iter::repeat_n(l as f64, c as usize));
        }
        let percentiles = [
            ("p25", 0.25),
            ("p50", 0.50),
            ("p75", 0.75),
            ("p90", 0.90),
            ("p95", 0.95),
            ("p99", 0.99),
        ]
        .into_iter()
        .map(|(k, p)| (k.to_string(), percentile_nearest_rank(&expanded, p)))
        .collect();
        let sizes = if self.sizes.is_empty() {
            vec![(0, 0); SIZE_BUCKETS.len()]
        } else {
            self.sizes
        };
        CorpusStats {
            output_dir: output_dir.display().to_string(),
            documents: self.documents,
            bytes: self.bytes,
            tokens: self.entropies.len() as u64,
            patches: count,
            entropy_histogram: EntropyHistogram::compute(&self.entropies, options.bins),
            patch_lengths: PatchLengthStats {
                count,
                mean: if count == 0 {
                    0.0
                } else {
                    total as f64 / count as f64
                },
                min: self.lengths.keys().next().copied().unwrap_or(0),
                max: self.lengths.keys().next_back().copied().unwrap_or(0),
                percentiles,
                counts: self.lengths,
            },
            bytes_per_modality: self.modality,
            batch_stats: options.batch_stats.then(|| {
                SIZE_BUCKETS
                    .iter()
                    .zip(sizes)
                    .map(|((label, max), (documents, bytes))| SizeBucket {
                        label: label.to_string(),
                        max_bytes: *max,
                        documents,
                        bytes,
                    })
                    .collect()
            }),
            errors: ErrorStats {
                unreadable,
                ingest_failed: run.as_ref().map(|r| r.failed).unwrap_or(0),
                ingest_failures: run.as_ref().map(|r| r.failures.clone()).unwrap_or_default(),
            },
            run,
        }
    }
}

impl CorpusStats {
    /// Reads every document of an output folder (or one output file) and computes the
    /// statistics. Unreadable files are counted in [`ErrorStats::unreadable`]; the result is
    /// an error only when the folder cannot be listed or holds no readable document at all.
    pub fn collect(path: &Path, options: &StatsOptions) -> Result<Self> {
        if options.bins == 0 {
            return Err(Error::InvalidOptions("--bins must be at least 1".into()));
        }
        let reader = CorpusReader::open(path)?;
        let mut collector = StatsCollector::default();
        let failures = reader.for_each_document(false, |doc| collector.add(&doc));
        if collector.documents == 0 {
            return Err(Error::Empty {
                path: path.to_path_buf(),
                reason: format!(
                    "no readable blt-patches document ({} files found, {} unreadable)",
                    reader.sources().len(),
                    failures.len()
                ),
            });
        }
        Ok(collector.finish(path, options, reader.run().cloned(), failures))
    }

    /// The statistics page: summary table and one plot per distribution.
    pub fn to_html(&self) -> String {
        let h = &self.entropy_histogram;
        let mut b = String::new();
        let _ = write!(
            b,
            "<h1>Corpus statistics</h1><p class=\"muted\"><code>{}</code></p>",
            escape(&self.output_dir)
        );
        b.push_str("<table class=\"summary\" id=\"summary\">");
        let mut row = |k: &str, v: String| {
            let _ = write!(
                b,
                "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
                escape(k),
                escape(&v)
            );
        };
        row("documents", self.documents.to_string());
        row("bytes", self.bytes.to_string());
        row("token positions", self.tokens.to_string());
        row("patches", self.patches.to_string());
        row("mean patch length", num(self.patch_lengths.mean, 3));
        row(
            "entropy mean ± std (nats)",
            format!(
                "{} ± {}",
                num(h.statistics.mean, 4),
                num(h.statistics.std, 4)
            ),
        );
        let p = &h.percentiles;
        row(
            "entropy p25 / p50 / p75 / p90 / p95 / p99",
            [p.p25, p.p50, p.p75, p.p90, p.p95, p.p99]
                .iter()
                .map(|v| num(*v, 3))
                .collect::<Vec<_>>()
                .join(" / "),
        );
        row(
            "unreadable files / failed in ingest",
            format!(
                "{} / {}",
                self.errors.unreadable.len(),
                self.errors.ingest_failed
            ),
        );
        b.push_str("</table>");

        let bars: Vec<(String, u64)> = h
            .histogram
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (num(h.histogram.bin_edges[i], 2), c))
            .collect();
        let _ = write!(
            b,
            "<h2>Entropy histogram</h2><div id=\"entropy-histogram\">{}</div>",
            bar_chart_svg(&bars, "entropy (nats), bin lower edge", "positions")
        );
        let lengths: Vec<usize> = self
            .patch_lengths
            .counts
            .iter()
            .flat_map(|(&l, &c)| std::iter::repeat_n(l as usize, c as usize))
            .collect();
        let _ = write!(
            b,
            "<h2>Patch lengths</h2><div id=\"patch-lengths\">{}</div>",
            bar_chart_svg(
                &patch_length_bars(&lengths),
                "patch length (positions)",
                "patches"
            )
        );
        let modal: Vec<(String, u64)> = self
            .bytes_per_modality
            .iter()
            .map(|(m, b)| (m.clone(), *b))
            .collect();
        let _ = write!(
            b,
            "<h2>Bytes per modality</h2><div id=\"modalities\">{}</div>",
            bar_chart_svg(&modal, "modality", "bytes")
        );
        if let Some(buckets) = &self.batch_stats {
            let bars: Vec<(String, u64)> = buckets
                .iter()
                .map(|s| (s.label.clone(), s.documents))
                .collect();
            let _ = write!(
                b,
                "<h2>Document sizes</h2><div id=\"batch-stats\">{}</div>",
                bar_chart_svg(&bars, "document size", "documents")
            );
        }
        if !self.errors.unreadable.is_empty() || !self.errors.ingest_failures.is_empty() {
            b.push_str("<h2>Errors</h2><ul id=\"errors\">");
            for f in &self.errors.unreadable {
                let _ = write!(
                    b,
                    "<li>unreadable <code>{}</code>: {}</li>",
                    escape(&f.path),
                    escape(&f.reason)
                );
            }
            for f in &self.errors.ingest_failures {
                let _ = write!(
                    b,
                    "<li>ingest: <code>{}</code></li>",
                    escape(&f.to_string())
                );
            }
            b.push_str("</ul>");
        }
        page("Corpus statistics", &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n_bytes: usize, entropies: Vec<f32>, lengths: Vec<usize>) -> PatchedDocument {
        let ids = vec![5; entropies.len()];
        PatchedDocument::from_analysis(
            "d",
            vec![b'a'; n_bytes],
            ids,
            entropies,
            vec![],
            lengths,
            None,
        )
        .unwrap()
    }

    #[test]
    fn collects_lengths_buckets_and_modalities() {
        let mut c = StatsCollector::default();
        c.add(&doc(3, vec![1.0, 2.0, 3.0], vec![1, 2]));
        c.add(&doc(600, vec![4.0; 4], vec![2, 2]));
        let s = c.finish(
            Path::new("x"),
            &StatsOptions {
                bins: 3,
                batch_stats: true,
            },
            None,
            vec![],
        );
        assert_eq!(s.documents, 2);
        assert_eq!(s.tokens, 7);
        assert_eq!(s.patch_lengths.counts, BTreeMap::from([(1, 1), (2, 3)]));
        assert_eq!(s.patch_lengths.mean, 7.0 / 4.0);
        // Sorted lengths 1, 2, 2, 2: p25 → round(0.75) = index 1 → 2.
        assert_eq!(s.patch_lengths.percentiles["p25"], 2.0);
        assert_eq!(s.bytes_per_modality["text"], 603);
        let buckets = s.batch_stats.unwrap();
        assert_eq!(buckets[0].documents, 1);
        assert_eq!(buckets[1].documents, 1);
        assert_eq!(buckets[1].bytes, 600);
    }
}
