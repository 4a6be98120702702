//! `blt stats`: corpus statistics of an ingest output folder.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use blt_viz::{CorpusStats, StatsOptions};
use clap::Args;

/// Arguments of `blt stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// An ingest output folder (or one `.safetensors` output or `.tar` shard).
    pub output_dir: PathBuf,
    /// Print the full statistics as one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write an HTML page with the plots here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the entropy histogram JSON (the predecessor's `--entropy-histogram` fields) here.
    #[arg(long)]
    pub histogram_output: Option<PathBuf>,
    /// Bins of the entropy histogram.
    #[arg(long, default_value_t = 50)]
    pub bins: usize,
    /// Include the document-size buckets (<512 B, <2 KB, <8 KB, <32 KB, >=32 KB).
    #[arg(long)]
    pub batch_stats: bool,
}

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let options = StatsOptions {
        bins: args.bins,
        batch_stats: args.batch_stats,
    };
    let stats = CorpusStats::collect(&args.output_dir, &options)
        .with_context(|| format!("cannot gather statistics of {}", args.output_dir.display()))?;
    if let Some(path) = &args.histogram_output {
        let json = serde_json::to_vec_pretty(&stats.entropy_histogram)?;
        blt_viz::write_atomic(path, &json)?;
    }
    if let Some(path) = &args.html {
        blt_viz::write_atomic(path, stats.to_html().as_bytes())?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &stats)?;
        writeln!(out)?;
    } else {
        let h = &stats.entropy_histogram;
        let p = &h.percentiles;
        writeln!(
            out,
            "{} documents, {} bytes, {} positions, {} patches (mean length {:.3})",
            stats.documents, stats.bytes, stats.tokens, stats.patches, stats.patch_lengths.mean
        )?;
        writeln!(
            out,
            "entropy (nats): mean {:.4} ± {:.4}, min {:.4}, max {:.4}",
            h.statistics.mean, h.statistics.std, h.statistics.min, h.statistics.max
        )?;
        writeln!(
            out,
            "percentiles: p25 {:.4}  p50 {:.4}  p75 {:.4}  p90 {:.4}  p95 {:.4}  p99 {:.4}",
            p.p25, p.p50, p.p75, p.p90, p.p95, p.p99
        )?;
        let modal: Vec<String> = stats
            .bytes_per_modality
            .iter()
            .map(|(m, b)| format!("{m} {b}"))
            .collect();
        writeln!(out, "bytes per modality: {}", modal.join(", "))?;
        if let Some(buckets) = &stats.batch_stats {
            let b: Vec<String> = buckets
                .iter()
                .map(|s| format!("{} {}", s.label, s.documents))
                .collect();
            writeln!(out, "document sizes: {}", b.join(", "))?;
        }
        writeln!(
            out,
            "errors: {} unreadable files, {} documents failed in ingest",
            stats.errors.unreadable.len(),
            stats.errors.ingest_failed
        )?;
        for f in &stats.errors.unreadable {
            writeln!(out, "  {}: {}", f.path, f.reason)?;
        }
    }
    out.flush()?;
    Ok(())
}
