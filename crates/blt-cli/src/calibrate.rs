//! `blt calibrate`: the entropy threshold that gives a target mean patch length on a corpus,
//! written into the model's config as its default threshold.

use std::io::Write;

use anyhow::Context;
use blt_model::backend::Backend;
use blt_model::DType;
use blt_patcher::{PatcherConfig, DEFAULT_THRESHOLD};
use blt_pipeline::{Calibration, LoadedModel, ModelSpec};
use blt_tokenizer::BltTokenizer;

use crate::args::CalibrateArgs;
use crate::device::{dispatch, BackendTask};
use crate::eval::read_corpus;
use crate::patch::open_model;

pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    if !args.dry_run {
        match args.model.model.as_deref().map(ModelSpec::parse) {
            None => anyhow::bail!(
                "the built-in model is read-only: give --model DIR (a copy of a checkpoint), or use --dry-run"
            ),
            Some(ModelSpec::Repo(repo)) => anyhow::bail!(
                "{repo} is a Hub repo id: calibrate writes into the model's config.json, so give a \
                 local checkpoint directory (a copy of the snapshot), or use --dry-run"
            ),
            Some(ModelSpec::Path(_)) => {}
        }
    }
    let documents = read_corpus(&args.corpus.paths, args.corpus.glob.as_deref())?;
    let bytes: usize = documents.iter().map(Vec::len).sum();
    let model = open_model(&args.model)?;
    if !args.dry_run {
        if let Err(err) = blt_pipeline::check_threshold_writable(&model.checkpoint) {
            anyhow::bail!("{err} (--dry-run finds the threshold without writing it)");
        }
    }
    let old = model.checkpoint.config.patching_threshold;
    let task = CalibrateTask {
        model,
        dtype: args.model.compute_dtype(),
        quantization: args.model.quantization(),
        documents,
        target: args.target_mean_patch,
    };
    let documents_len = task.documents.len();
    let (calibration, model) = dispatch(args.model.device, task)?;
    let config_path = &model.checkpoint.config_path;
    if !args.dry_run {
        blt_pipeline::write_threshold(&model.checkpoint, calibration.threshold)
            .context("cannot write the threshold")?;
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "model": model.source.id,
            "config_path": config_path,
            "old_threshold": old,
            "threshold": calibration.threshold,
            "mean_patch_length": calibration.mean_patch_length,
            "target_mean_patch": calibration.target_mean_patch,
            "min_mean_patch_length": calibration.min_mean_patch_length,
            "max_mean_patch_length": calibration.max_mean_patch_length,
            "patches": calibration.patches,
            "iterations": calibration.iterations,
            "documents": documents_len,
            "bytes": bytes,
            "written": !args.dry_run,
        });
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)?;
    } else {
        let old_text = match old {
            Some(t) => format!("{t} (the model's config)"),
            None => format!("{DEFAULT_THRESHOLD} (the reference default; the config has none)"),
        };
        let c = &calibration;
        writeln!(out, "old threshold      {old_text}")?;
        writeln!(out, "new threshold      {}", c.threshold)?;
        writeln!(
            out,
            "mean patch length  {:.4} tokens (target {}; thresholds give {:.4} to {:.4} on this corpus)",
            c.mean_patch_length, c.target_mean_patch, c.min_mean_patch_length, c.max_mean_patch_length
        )?;
        writeln!(
            out,
            "corpus             {documents_len} documents, {bytes} bytes, {} patches ({} patcher runs)",
            c.patches, c.iterations
        )?;
        if args.dry_run {
            writeln!(out, "dry run: {} not changed", config_path.display())?;
        } else {
            writeln!(out, "wrote patching_threshold to {}", config_path.display())?;
        }
    }
    out.flush()?;
    Ok(())
}

struct CalibrateTask {
    model: LoadedModel,
    dtype: Option<DType>,
    quantization: Option<blt_model::WeightQuantization>,
    documents: Vec<Vec<u8>>,
    target: f64,
}

impl BackendTask for CalibrateTask {
    type Output = (Calibration, LoadedModel);

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<Self::Output> {
        let estimator = self
            .model
            .estimator::<B>(device, self.dtype, self.quantization)
            .with_context(|| format!("cannot load model {}", self.model.source.id))?;
        // The global rule with the preprocessing convention: what `blt patch` and `blt ingest`
        // use the model's threshold for by default.
        let calibration = blt_pipeline::calibrate_threshold(
            &estimator,
            &self.documents,
            BltTokenizer::new(),
            self.target,
            &PatcherConfig::default(),
        )
        .context("calibration failed")?;
        Ok((calibration, self.model))
    }
}
