//! `blt merge-stats`: one summary of every rank of a job array.

use anyhow::Context;

use crate::args::MergeStatsArgs;

pub fn run(args: MergeStatsArgs) -> anyhow::Result<()> {
    let merged = blt_pipeline::merge_rank_stats(&args.dir)
        .with_context(|| format!("cannot merge the rank stats of {}", args.dir.display()))?;
    let json = serde_json::to_vec_pretty(&merged)?;
    let out = args.dir.join("stats.json");
    blt_datasets::write_atomic(&out, &json)
        .with_context(|| format!("cannot write {}", out.display()))?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&json));
    } else {
        println!(
            "{} of {} ranks complete{}; {} documents: {} written, {} skipped, {} failed; {} bytes, {} tokens, {} patches; longest rank {:.1} s",
            merged.complete_ranks.len(),
            merged.world_size,
            if merged.missing_ranks.is_empty() {
                String::new()
            } else {
                format!(" (missing: {:?})", merged.missing_ranks)
            },
            merged.documents,
            merged.written,
            merged.skipped,
            merged.failed,
            merged.bytes,
            merged.tokens,
            merged.patches,
            merged.max_rank_seconds,
        );
    }
    Ok(())
}
