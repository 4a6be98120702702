//! `blt ingest`: the main job.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use blt_datasets::{
    ColumnSpec, EntropyFileFormat, EntropyShardOptions, HfDatasetSpec, InputSpec, RankSpec,
    Selection, ShardOptions,
};
use blt_model::backend::Backend;
use blt_model::DType;
use blt_patcher::DEFAULT_THRESHOLD;
use blt_pipeline::{
    EmbeddingsMode, IngestConfig, IngestObserver, IngestStats, LoadedModel, OutputFormat,
    SegmentMode,
};
use blt_tokenizer::BltTokenizer;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{EmbeddingsArg, FormatArg, IngestArgs, SegmentModeArg};
use crate::device::{dispatch, BackendTask};
use crate::patch::{open_model, patcher_config};

pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let columns = ColumnSpec {
        text: args.text_column.clone().unwrap_or_else(|| "text".into()),
        id: args.id_column.clone(),
    };
    let records = args.records || args.text_column.is_some() || args.id_column.is_some();
    let input = if let Some(text) = &args.text {
        InputSpec::Text(text.clone())
    } else if let Some(repo) = &args.hf_dataset {
        InputSpec::HfDataset {
            dataset: HfDatasetSpec {
                repo: repo.clone(),
                config: args.hf_config.clone(),
                split: args.split.clone(),
            },
            revision: args.hf_revision.clone(),
            columns,
            hub: blt_hub::HubOptions::from_env()
                .with_progress(!args.no_progress && std::io::stderr().is_terminal()),
        }
    } else if records && (args.file.is_some() || args.input.is_some()) {
        InputSpec::Tables {
            paths: args.file.iter().chain(&args.input).cloned().collect(),
            glob: args.glob.clone(),
            columns,
        }
    } else if let Some(file) = &args.file {
        InputSpec::File(file.clone())
    } else if let Some(root) = &args.input {
        InputSpec::Dir {
            root: root.clone(),
            glob: args.glob.clone(),
        }
    } else {
        let paths = std::io::stdin()
            .lock()
            .lines()
            .map(|l| l.map(|l| l.trim_end_matches(['\r', '\n']).to_string()))
            .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
            .map(|l| l.map(Into::into))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot read the file list from standard input")?;
        if records {
            InputSpec::Tables {
                paths,
                glob: None,
                columns,
            }
        } else {
            InputSpec::List(paths)
        }
    };
    let rank = RankSpec::resolve(args.rank, args.world_size, |k| std::env::var(k).ok())
        .context("cannot tell this process's rank")?;
    let selection = Selection {
        rank: rank.unwrap_or_default(),
        skip: args.skip,
        limit: args.limit,
    };

    let model = open_model(&args.model)?;
    let config = &model.checkpoint.config;
    let threshold = args
        .patching
        .threshold
        .or(config.patching_threshold)
        .unwrap_or(DEFAULT_THRESHOLD);
    let patcher_config = patcher_config(&args.patching, threshold)?;
    let patcher = patcher_config
        .clone()
        .build()
        .context("invalid patching options")?;
    let model_dtype = args.model.compute_dtype();
    let model_hash = model
        .content_hash()
        .context("cannot hash the model weights")?;

    let mut meta = BTreeMap::new();
    meta.insert("producer".to_string(), "blt".to_string());
    meta.insert(
        "producer_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    meta.insert("model_id".into(), model.source.id.clone());
    meta.insert(
        "model_revision".into(),
        model.source.revision.clone().unwrap_or_default(),
    );
    meta.insert(
        "model_commit".into(),
        model.source.commit.clone().unwrap_or_default(),
    );
    meta.insert("model_sha256".into(), model_hash.clone());
    meta.insert(
        "weight_quantization".into(),
        args.model.quantize.clone().unwrap_or_default(),
    );
    meta.insert("patch_mode".into(), patcher_config.mode.as_str().into());
    meta.insert(
        "threshold".into(),
        patcher_config
            .threshold
            .map_or_else(|| "top-k".into(), |t| t.to_string()),
    );
    meta.insert(
        "threshold_add".into(),
        patcher_config
            .threshold_add
            .map_or_else(String::new, |t| t.to_string()),
    );
    meta.insert("monotonic".into(), patcher_config.monotonic.to_string());
    meta.insert(
        "max_patch_length".into(),
        patcher_config
            .max_patch_length
            .map_or_else(String::new, |m| m.to_string()),
    );
    meta.insert(
        "include_next_token".into(),
        patcher_config.include_next_token.to_string(),
    );
    meta.insert("patch_size".into(), patcher_config.patch_size.to_string());
    meta.insert("add_bos".into(), (!args.no_bos).to_string());
    meta.insert("add_eos".into(), (!args.no_eos).to_string());
    meta.insert("embeddings_dtype".into(), "f16".into());
    let segment_mode = match args.segment_mode {
        SegmentModeArg::Separate => SegmentMode::Separate,
        SegmentModeArg::Concatenated => SegmentMode::Concatenated,
    };
    meta.insert("segment_mode".into(), segment_mode.as_str().into());
    let pretokenizer = crate::pretokenize::pretokenizer(&args.pretokenize)?;

    let format = match args.format {
        FormatArg::Safetensors => OutputFormat::Safetensors,
        FormatArg::Webdataset => OutputFormat::WebDataset(ShardOptions {
            max_shard_bytes: args.shard_max_bytes,
            max_shard_count: args.shard_max_count,
            ..ShardOptions::default()
        }),
        FormatArg::Arrow | FormatArg::Parquet => OutputFormat::EntropyShards(EntropyShardOptions {
            format: if args.format == FormatArg::Arrow {
                EntropyFileFormat::Arrow
            } else {
                EntropyFileFormat::Parquet
            },
            max_rows: args.shard_max_count,
            max_bytes: args.shard_max_bytes,
            ..EntropyShardOptions::default()
        }),
    };
    let ingest_config = IngestConfig {
        input,
        output_dir: args.output.clone(),
        format,
        embeddings: match args.embeddings {
            EmbeddingsArg::None => EmbeddingsMode::None,
            EmbeddingsArg::Patch => EmbeddingsMode::Patch,
            EmbeddingsArg::Byte => EmbeddingsMode::Byte,
        },
        patcher,
        tokenizer: BltTokenizer::new()
            .with_bos(!args.no_bos)
            .with_eos(!args.no_eos),
        max_doc_bytes: args.max_doc_bytes,
        max_hidden_bytes: args.max_hidden_bytes,
        read_limits: blt_datasets::ReadLimits {
            max_record_bytes: args.max_record_bytes,
            max_referenced_file_bytes: args.max_referenced_file_bytes,
        },
        resume: args.resume,
        fail_fast: args.fail_fast,
        export_json: args.export_json,
        batch_bytes: args.batch_bytes,
        max_batch_tokens: args.max_batch_tokens,
        channel_capacity: 64,
        write_threads: args.write_threads,
        run_metadata: meta.clone(),
        selection,
        ranked: rank.is_some(),
        pretokenizer,
        segment_mode,
    };
    let progress = Progress::new(!args.no_progress && std::io::stderr().is_terminal());
    let task = IngestTask {
        model,
        dtype: model_dtype,
        quantization: args.model.quantization(),
        config: ingest_config,
        progress,
    };
    let (stats, dtype_used, task) = dispatch(args.model.device, task)?;
    task.progress.finish(&stats);

    let run = serde_json::json!({
        "producer": "blt",
        "producer_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "model": {
            "id": task.model.source.id,
            "revision": task.model.source.revision,
            "commit": task.model.source.commit,
            "sha256": model_hash,
            "layout": format!("{:?}", task.model.checkpoint.format),
            "config": task.model.checkpoint.config,
            "dtype": format!("{dtype_used:?}"),
            "weight_quantization": args.model.quantize,
        },
        "device": format!("{:?}", args.model.device),
        "config": {
            "format": format!("{:?}", args.format).to_lowercase(),
            "embeddings": task.config.embeddings.as_str(),
            "metadata": meta,
            "max_doc_bytes": args.max_doc_bytes,
            "max_hidden_bytes": args.max_hidden_bytes,
            "max_record_bytes": args.max_record_bytes,
            "max_referenced_file_bytes": args.max_referenced_file_bytes,
            "resume": args.resume,
            "fail_fast": args.fail_fast,
            "shard_max_bytes": args.shard_max_bytes,
            "shard_max_count": args.shard_max_count,
            "rank": rank.map(|r| r.rank),
            "world_size": rank.map(|r| r.world_size),
            "skip": args.skip,
            "limit": args.limit,
            "batch_bytes": args.batch_bytes,
            "max_batch_tokens": args.max_batch_tokens,
            "write_threads": args.write_threads,
            "pretokenize": format!("{:?}", task.config.pretokenizer.options()),
        },
        "stats": stats,
    });
    // One run.json per rank: ranks share the output folder.
    let run_json = match rank {
        Some(r) => args.output.join(format!("run-{}.json", r.label())),
        None => args.output.join("run.json"),
    };
    blt_datasets::write_atomic(&run_json, &serde_json::to_vec_pretty(&run)?)
        .with_context(|| format!("cannot write {}", run_json.display()))?;

    eprintln!(
        "{} written, {} skipped, {} failed of {} documents; {} bytes, {} patches in {:.1} s -> {}",
        stats.written,
        stats.skipped,
        stats.failed,
        stats.documents,
        stats.bytes,
        stats.patches,
        stats.seconds,
        args.output.display()
    );
    if args.modality_stats {
        println!("modality\tdocuments\tsegments\tbytes");
        for (modality, m) in &stats.modalities {
            println!("{modality}\t{}\t{}\t{}", m.documents, m.segments, m.bytes);
        }
        println!("format\tdocuments");
        for (format, n) in &stats.formats {
            println!("{format}\t{n}");
        }
    }
    if stats.documents > 0 && stats.failed == stats.documents {
        anyhow::bail!("every document failed (see run.json)");
    }
    if args.fail_fast {
        if let Some(f) = stats.failures.first() {
            anyhow::bail!(
                "stopped at the first failure (--fail-fast): {}: {} failed: {}",
                f.path.as_deref().unwrap_or(&f.key),
                f.stage,
                f.reason
            );
        }
    }
    Ok(())
}

struct IngestTask {
    model: LoadedModel,
    dtype: Option<DType>,
    quantization: Option<blt_model::WeightQuantization>,
    config: IngestConfig,
    progress: Progress,
}

impl BackendTask for IngestTask {
    type Output = (IngestStats, DType, IngestTask);

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<Self::Output> {
        let estimator = self
            .model
            .estimator::<B>(device, self.dtype, self.quantization)
            .with_context(|| format!("cannot load model {}", self.model.source.id))?;
        let dtype = estimator.dtype();
        let stats = blt_pipeline::ingest(&estimator, &self.config, &self.progress)?;
        Ok((stats, dtype, self))
    }
}

/// A progress bar on a terminal; otherwise a log line every ten seconds.
struct Progress {
    bar: Option<ProgressBar>,
    last_log: Mutex<Instant>,
}

impl Progress {
    fn new(bar: bool) -> Self {
        let bar = bar.then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Self {
            bar,
            last_log: Mutex::new(Instant::now()),
        }
    }

    fn finish(&self, stats: &IngestStats) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(message(stats));
        }
    }
}

fn message(s: &IngestStats) -> String {
    format!(
        "{} docs, {} patches, {} skipped, {} errors",
        s.written, s.patches, s.skipped, s.failed
    )
}

impl IngestObserver for Progress {
    fn started(&self, documents: usize, bytes: u64) {
        match &self.bar {
            Some(bar) => bar.set_length(bytes),
            None => tracing::info!(documents, bytes, "ingest started"),
        }
    }

    fn document_done(&self, stats: &IngestStats, bytes: u64) {
        match &self.bar {
            Some(bar) => {
                bar.inc(bytes);
                bar.set_message(message(stats));
            }
            None => {
                let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(10) {
                    *last = Instant::now();
                    tracing::info!(
                        written = stats.written,
                        skipped = stats.skipped,
                        failed = stats.failed,
                        patches = stats.patches,
                        "progress"
                    );
                }
            }
        }
    }

    fn document_failed(&self, f: &blt_pipeline::DocumentFailure) {
        let mut line = format!(
            "skipped {}: {} failed: {}",
            f.path.as_deref().unwrap_or(&f.key),
            f.stage,
            f.reason
        );
        if let Some(option) = f.limit {
            line.push_str(&format!(" (raise the limit with {})", limit_flag(option)));
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

/// The flag that sets the limit a library names by its option (`max_doc_bytes`,
/// `audio.max_decoded_samples`, `container.max_members`): options map onto flags by their
/// path, with `-` for `.` and `_`, and the container limits are the `--zip-*` flags.
pub(crate) fn limit_flag(option: &str) -> String {
    let option = if let Some(rest) = option.strip_prefix("container.") {
        format!("zip.{rest}")
    } else if let Some(rest) = option.strip_prefix("video.audio.") {
        // A video's sound track is framed by the audio flags.
        format!("audio.{rest}")
    } else {
        option.to_owned()
    };
    format!("--{}", option.replace(['.', '_'], "-"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option a library names in a limit error is a flag of `blt ingest`.
    #[test]
    fn every_limit_names_an_ingest_flag() {
        let cli = crate::args::Cli::command();
        let ingest = cli.find_subcommand("ingest").expect("an ingest subcommand");
        let flags: Vec<String> = ingest
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        for option in LIMIT_OPTIONS {
            let flag = super::limit_flag(option);
            assert!(
                flags.contains(&flag),
                "{option} maps to {flag}, which `blt ingest` lacks"
            );
        }
    }

    /// The options the libraries name in limit errors (`DocumentFailure::limit`).
    const LIMIT_OPTIONS: &[&str] = &[
        "max_doc_bytes",
        "max_hidden_bytes",
        "max_record_bytes",
        "max_referenced_file_bytes",
        "audio.max_decoded_samples",
        "video.audio.max_decoded_samples",
        "image.max_decoded_pixels",
        "video.max_decoded_pixels",
        "video.max_frames",
        "video.max_total_pixels",
        "binary.max_sections",
        "container.max_members",
        "container.max_total_bytes",
        "container.max_member_bytes",
        "pdf.max_text_bytes",
        "text.max_segments",
    ];
}
