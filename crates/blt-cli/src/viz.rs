//! `blt viz`: the HTML report (and optionally a PNG plot) of one document, either a text or
//! file run through the model now, or a per-document output read back.

use std::path::PathBuf;

use anyhow::Context;
use blt_patcher::DEFAULT_THRESHOLD;
use blt_tokenizer::BltTokenizer;
use blt_viz::PatchedDocument;
use clap::Args;

use crate::args::{ModelArgs, PatchingArgs};
use crate::device::dispatch;
use crate::patch::{open_model, patcher_config, PatchTask};

/// Arguments of `blt viz`.
#[derive(Debug, Args)]
pub struct VizArgs {
    /// A per-document output (`<key>.safetensors` written by `blt ingest`) to draw.
    #[arg(group = "input", required = true)]
    pub document: Option<PathBuf>,
    /// A text to run through the model and draw.
    #[arg(long, group = "input", required = true)]
    pub text: Option<String>,
    /// A file to run through the model and draw (its raw bytes).
    #[arg(long, group = "input", required = true)]
    pub file: Option<PathBuf>,
    /// The HTML report to write.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also write the entropy plot as a PNG image here.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Token positions per page of the detailed view.
    #[arg(long, default_value_t = 1024)]
    pub page_tokens: usize,
    /// Pages of the detailed view written at most (the overview plot always covers everything).
    #[arg(long, default_value_t = 32)]
    pub max_pages: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub patching: PatchingArgs,
    /// Do not add BOS (id 1) before the bytes (--text/--file).
    #[arg(long)]
    pub no_bos: bool,
    /// Do not add EOS (id 2) after the bytes (--text/--file).
    #[arg(long)]
    pub no_eos: bool,
}

pub fn run(args: VizArgs) -> anyhow::Result<()> {
    let doc = match &args.document {
        Some(path) => PatchedDocument::read(path, false)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => analyze(&args)?,
    };
    let options = blt_viz::ReportOptions {
        page_tokens: args.page_tokens.max(1),
        max_pages: args.max_pages.max(1),
        ..Default::default()
    };
    let html = blt_viz::render_report(&doc, &options)?;
    blt_viz::write_atomic(&args.output, html.as_bytes())?;
    if let Some(png) = &args.png {
        blt_viz::png::write_entropy_png(&doc, png, &blt_viz::png::PngOptions::default())?;
    }
    println!(
        "wrote {} ({} positions, {} patches){}",
        args.output.display(),
        doc.num_tokens(),
        doc.patch_lengths.len(),
        args.png
            .as_ref()
            .map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// Runs --text or --file through the model and the patcher.
fn analyze(args: &VizArgs) -> anyhow::Result<PatchedDocument> {
    let (key, bytes) = match (&args.text, &args.file) {
        (Some(text), _) => ("text".to_string(), text.as_bytes().to_vec()),
        (None, Some(path)) => (
            path.display().to_string(),
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        (None, None) => anyhow::bail!("give a document, --text or --file"),
    };
    let model = open_model(&args.model)?;
    let model_id = model.source.id.clone();
    let threshold = args
        .patching
        .threshold
        .or(model.checkpoint.config.patching_threshold)
        .unwrap_or(DEFAULT_THRESHOLD);
    let patcher = patcher_config(&args.patching, threshold)?
        .build()
        .context("invalid patching options")?;
    let task = PatchTask {
        model,
        dtype: args.model.compute_dtype(),
        quantization: args.model.quantization(),
        patcher,
        tokenizer: BltTokenizer::new()
            .with_bos(!args.no_bos)
            .with_eos(!args.no_eos),
        bytes: bytes.clone(),
    };
    let analysis = dispatch(args.model.device, task)?;
    let global =
        args.patching.mode == "entropy" && !args.patching.monotonic && !args.patching.top_k;
    let mut doc = PatchedDocument::from_analysis(
        key,
        bytes,
        analysis.ids.iter().map(|&i| i as i32).collect(),
        analysis.entropies,
        analysis.prominence,
        analysis.patches.lengths().to_vec(),
        global.then_some(threshold),
    )?;
    doc.metadata.insert("model_id".into(), model_id);
    doc.metadata
        .insert("patch_mode".into(), args.patching.mode.clone());
    doc.metadata.insert(
        "threshold".into(),
        if args.patching.top_k {
            "top-k".into()
        } else {
            threshold.to_string()
        },
    );
    Ok(doc)
}
