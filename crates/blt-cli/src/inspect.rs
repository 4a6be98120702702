//! `blt inspect`: what an output holds, with a summary.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use blt_pipeline::readback::{read_shard, StoredDocument};
use blt_sidecar::HypergraphSidecar;

use crate::args::InspectArgs;

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let path = &args.path;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let value = if name.ends_with(".safetensors") {
        let doc = StoredDocument::read(path)?;
        document_summary(&doc)
    } else if name.ends_with(".tar") {
        let samples = read_shard(path)?;
        let docs: Vec<serde_json::Value> = samples
            .iter()
            .map(|(_, _, d)| document_summary(d))
            .collect();
        let all: Vec<f32> = samples
            .iter()
            .flat_map(|(_, _, d)| d.entropies.iter().copied())
            .collect();
        let patches: usize = samples.iter().map(|(_, _, d)| d.patch_lengths.len()).sum();
        let tokens: usize = samples.iter().map(|(_, _, d)| d.token_ids.len()).sum();
        serde_json::json!({
            "kind": "webdataset-shard",
            "path": path,
            "samples": samples.len(),
            "tokens": tokens,
            "patches": patches,
            "mean_patch_length": ratio(tokens, patches),
            "entropy_percentiles": percentiles(&all),
            "documents": docs,
        })
    } else if name.ends_with(".sqlite") {
        let sidecar = HypergraphSidecar::open(path)?;
        serde_json::json!({
            "kind": "hypergraph-sidecar",
            "path": path,
            "meta": sidecar.meta()?,
            "documents": sidecar.document_keys()?,
            "summary": sidecar.summary()?,
        })
    } else {
        anyhow::bail!(
            "{}: expected a .safetensors output, a .tar shard or a .hypergraph.sqlite sidecar",
            path.display()
        );
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, path, &value)?;
    }
    out.flush().context("cannot write to stdout")?;
    Ok(())
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// p10, p50, p90, p99 and max of `values` (nearest rank).
fn percentiles(values: &[f32]) -> serde_json::Value {
    if values.is_empty() {
        return serde_json::Value::Null;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    serde_json::json!({
        "p10": at(0.10), "p50": at(0.50), "p90": at(0.90), "p99": at(0.99),
        "max": v[v.len() - 1],
        "mean": v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
    })
}

fn document_summary(d: &StoredDocument) -> serde_json::Value {
    let lengths: Vec<usize> = d.patch_lengths.iter().map(|&l| l as usize).collect();
    let mut sorted = lengths.clone();
    sorted.sort_unstable();
    serde_json::json!({
        "kind": "document",
        "key": d.metadata.get("document_key"),
        "source_path": d.metadata.get("source_path"),
        "bytes": d.bytes.len(),
        "tokens": d.token_ids.len(),
        "segments": d.segments.len(),
        "patches": lengths.len(),
        "mean_patch_length": ratio(lengths.iter().sum(), lengths.len()),
        "median_patch_length": sorted.get(sorted.len() / 2),
        "max_patch_length": sorted.last(),
        "entropy_percentiles": percentiles(&d.entropies),
        "embeddings_shape": d.embeddings_shape,
        "metadata": d.metadata,
    })
}

fn print_text(out: &mut impl Write, path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    writeln!(out, "{}", path.display())?;
    let skip = ["documents", "metadata", "path"];
    if let Some(obj) = v.as_object() {
        for (k, val) in obj.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            writeln!(out, "  {k:<22} {}", compact(val))?;
        }
        if let Some(meta) = obj.get("metadata").and_then(|m| m.as_object()) {
            writeln!(out, "  metadata")?;
            for (k, val) in meta {
                writeln!(out, "    {k:<24} {}", compact(val))?;
            }
        }
        if let Some(docs) = obj.get("documents").and_then(|d| d.as_array()) {
            writeln!(out, "  documents ({})", docs.len())?;
            for d in docs {
                match d.as_object() {
                    Some(d) => writeln!(
                        out,
                        "    {}  {} bytes, {} patches, mean patch {}",
                        compact(&d["key"]),
                        compact(&d["bytes"]),
                        compact(&d["patches"]),
                        compact(&d["mean_patch_length"])
                    )?,
                    None => writeln!(out, "    {}", compact(d))?,
                }
            }
        }
    }
    Ok(())
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}
