//! `blt eval`: bits per byte, mean entropy and patch statistics of a model on a corpus.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use blt_datasets::InputSpec;
use blt_model::backend::Backend;
use blt_model::DType;
use blt_patcher::{Patcher, PatchingMode, DEFAULT_THRESHOLD};
use blt_pipeline::{EvalReport, LoadedModel};
use blt_tokenizer::BltTokenizer;

use crate::args::EvalArgs;
use crate::device::{dispatch, BackendTask};
use crate::patch::{open_model, patcher_config};

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let documents = read_corpus(&args.corpus.paths, args.corpus.glob.as_deref())?;
    let model = open_model(&args.model)?;
    let (threshold, source) = match (
        args.patching.threshold,
        model.checkpoint.config.patching_threshold,
    ) {
        (Some(t), _) => (t, "--threshold"),
        (None, Some(t)) => (t, "the model's config"),
        (None, None) => (DEFAULT_THRESHOLD, "the reference default"),
    };
    let patcher = patcher_config(&args.patching, threshold)?
        .build()
        .context("invalid patching options")?;
    let task = EvalTask {
        model,
        dtype: args.model.compute_dtype(),
        quantization: args.model.quantization(),
        patcher,
        documents,
    };
    let (report, model) = dispatch(args.model.device, task)?;

    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("model".into(), model.source.id.clone().into());
            if report.threshold.is_some() {
                object.insert("threshold_source".into(), source.into());
            }
        }
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report, &model.source.id, source)?;
    }
    out.flush()?;
    Ok(())
}

/// Reads every document of the corpus: files as they are, folders walked recursively in sorted
/// order (filtered by `glob`); a file named twice is read once.
pub fn read_corpus(paths: &[PathBuf], glob: Option<&str>) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut seen = HashSet::new();
    let mut documents = Vec::new();
    for path in paths {
        let spec = if path.is_dir() {
            InputSpec::Dir {
                root: path.clone(),
                glob: glob.map(str::to_string),
            }
        } else {
            InputSpec::File(path.clone())
        };
        let refs = blt_datasets::enumerate(&spec)
            .with_context(|| format!("cannot list the corpus {}", path.display()))?;
        for doc in refs {
            if let Some(file) = doc.path() {
                let identity = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
                if !seen.insert(identity) {
                    continue;
                }
            }
            let bytes = doc
                .read(Some(blt_pipeline::DEFAULT_MAX_DOC_BYTES))
                .with_context(|| format!("cannot read {}", doc.name))?;
            documents.push(bytes);
        }
    }
    anyhow::ensure!(
        !documents.is_empty(),
        "the corpus holds no documents (files under {})",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(documents)
}

struct EvalTask {
    model: LoadedModel,
    dtype: Option<DType>,
    quantization: Option<blt_model::WeightQuantization>,
    patcher: Patcher,
    documents: Vec<Vec<u8>>,
}

impl BackendTask for EvalTask {
    type Output = (EvalReport, LoadedModel);

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<Self::Output> {
        let estimator = self
            .model
            .estimator::<B>(device, self.dtype, self.quantization)
            .with_context(|| format!("cannot load model {}", self.model.source.id))?;
        let report = blt_pipeline::evaluate(
            &estimator,
            &self.documents,
            BltTokenizer::new(),
            &self.patcher,
        )
        .context("evaluation failed")?;
        Ok((report, self.model))
    }
}

fn print_text(
    out: &mut impl Write,
    r: &EvalReport,
    model: &str,
    threshold_source: &str,
) -> anyhow::Result<()> {
    writeln!(out, "model         {model}")?;
    writeln!(
        out,
        "corpus        {} documents, {} bytes, {} tokens ({} scored: every byte and EOS)",
        r.documents, r.bytes, r.tokens, r.tokens_scored
    )?;
    writeln!(
        out,
        "bits/byte     {:.4} ({:.4} nats/token)",
        r.bits_per_byte, r.nats_per_token
    )?;
    writeln!(out, "mean entropy  {:.4} nats", r.mean_entropy)?;
    let rule = match r.threshold {
        Some(t) => format!("{}, threshold {t} ({threshold_source})", r.mode),
        None if r.mode == PatchingMode::Entropy.as_str() => format!("{} (top-k)", r.mode),
        None => r.mode.clone(),
    };
    writeln!(out, "patching      {rule}")?;
    writeln!(
        out,
        "patches       {}: mean length {:.3} tokens, median {}, {:.3} bytes/patch, {:.1} per kB",
        r.patches, r.mean_patch_length, r.median_patch_length, r.bytes_per_patch, r.patches_per_kb
    )?;
    Ok(())
}
