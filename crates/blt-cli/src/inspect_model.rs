//! `blt inspect-model`: what a checkpoint holds and whether it is complete.

use std::io::Write;

use anyhow::Context;
use blt_model::{Checkpoint, CheckpointReport, TensorInfo};
use blt_pipeline::{LoadedModel, ModelSpec};

use crate::args::InspectModelArgs;

pub fn run(args: InspectModelArgs) -> anyhow::Result<()> {
    let hub = blt_hub::HubOptions::from_env().with_revision(args.revision.clone());
    let model = LoadedModel::open(&ModelSpec::parse(&args.model), &hub)
        .with_context(|| format!("cannot open model {}", args.model))?;
    let ckpt = &model.checkpoint;
    let report = ckpt.report()?;
    let tensors = ckpt.tensors()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "path": ckpt.dir,
            "format": format!("{:?}", ckpt.format),
            "config_file": ckpt.config_path,
            "weights_file": ckpt.weights_path,
            "config": ckpt.config,
            "ffn_hidden_dim": ckpt.config.ffn_hidden_dim(),
            "parameters": ckpt.config.num_params(),
            "dtype": report.dtype.map(|d| format!("{d:?}")),
            "complete": report.is_complete(),
            "missing": report.missing,
            "wrong_shape": report.wrong_shape,
            "wrong_dtype": report.wrong_dtype,
            "unused": report.unused,
            "tensors": tensors.iter().map(|t| serde_json::json!({
                "name": t.name, "shape": t.shape, "dtype": t.dtype})).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, ckpt, &report, &tensors)?;
    }
    out.flush()?;
    if !report.is_complete() {
        anyhow::bail!("{} is incomplete (see above)", ckpt.weights_path.display());
    }
    Ok(())
}

fn print_text(
    out: &mut impl Write,
    ckpt: &Checkpoint,
    report: &CheckpointReport,
    tensors: &[TensorInfo],
) -> anyhow::Result<()> {
    let c = &ckpt.config;
    writeln!(out, "checkpoint  {}", ckpt.dir.display())?;
    writeln!(out, "layout      {}", ckpt.format)?;
    writeln!(out, "config      {}", ckpt.config_path.display())?;
    writeln!(out, "weights     {}", ckpt.weights_path.display())?;
    writeln!(
        out,
        "shape       dim {}, {} layers, {} heads of {} ({} kv), FFN {}, vocab {}",
        c.dim,
        c.n_layers,
        c.n_heads,
        c.head_dim(),
        c.n_kv_heads(),
        c.ffn_hidden_dim(),
        c.vocab_size
    )?;
    writeln!(
        out,
        "attention   {:?}, window {}, EOS id {}, RoPE θ {}, windows of {} tokens",
        c.attn_bias_type,
        c.sliding_window
            .map_or_else(|| "none".to_string(), |w| w.to_string()),
        c.eos_id,
        c.rope_theta,
        c.max_seqlen
    )?;
    writeln!(
        out,
        "parameters  {} (config), {} in usable tensors",
        c.num_params(),
        report.loaded_params
    )?;
    if let Some(t) = c.patching_threshold {
        writeln!(out, "threshold   {t} (calibrated default)")?;
    }
    writeln!(
        out,
        "dtype       {}",
        report
            .dtype
            .map_or_else(|| "-".to_string(), |d| format!("{d:?}"))
    )?;
    writeln!(out)?;
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(4);
    writeln!(out, "{:width$}  {:>16}  dtype", "tensor", "shape")?;
    for t in tensors {
        writeln!(
            out,
            "{:width$}  {:>16}  {}",
            t.name,
            format!("{:?}", t.shape),
            t.dtype
        )?;
    }
    writeln!(out)?;
    if report.is_complete() {
        writeln!(
            out,
            "complete: every tensor the config needs is present ({} unused)",
            report.unused.len()
        )?;
    }
    for name in &report.missing {
        writeln!(out, "missing      {name}")?;
    }
    for (name, expected, found) in &report.wrong_shape {
        writeln!(
            out,
            "wrong shape  {name}: {found:?}, config needs {expected:?}"
        )?;
    }
    for (name, dtype) in &report.wrong_dtype {
        writeln!(out, "wrong dtype  {name}: {dtype}")?;
    }
    Ok(())
}
