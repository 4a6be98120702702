//! `blt train`: train an entropy model on a corpus of files.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use blt_model::backend::{Autodiff, Backend};
use blt_model::train::{train, StepReport, TokenStream, TrainingConfig, TrainingObserver};
use blt_model::{Checkpoint, DType, EntropyModel, EntropyModelConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::TrainArgs;
use crate::device::{dispatch, BackendTask};
use crate::eval::read_corpus;

/// Named model shapes.
pub fn preset(name: &str) -> anyhow::Result<EntropyModelConfig> {
    Ok(match name {
        "tiny" => EntropyModelConfig::tiny(),
        // The default model's shape: 5.3 M parameters, window 512.
        "small" => EntropyModelConfig {
            dim: 256,
            n_layers: 6,
            n_heads: 4,
            ..EntropyModelConfig::blt_entropy()
        },
        "blt-entropy" => EntropyModelConfig::blt_entropy(),
        path => EntropyModelConfig::from_json_file(Path::new(path))
            .with_context(|| format!("--config {path}: not a preset (tiny, small, blt-entropy) nor a readable config file"))?,
    })
}

/// The state written beside each checkpoint, read by `--resume`.
#[derive(serde::Serialize, serde::Deserialize)]
struct TrainingState {
    step: usize,
    checkpoint: PathBuf,
    training: TrainingConfig,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let docs = read_corpus(&args.corpus, None)?;
    let (train_docs, eval_docs) = match &args.eval_corpus {
        Some(eval) => (docs, read_corpus(std::slice::from_ref(eval), None)?),
        None => {
            let held = ((docs.len() as f64 * args.eval_fraction).round() as usize)
                .clamp(usize::from(docs.len() > 1), docs.len().saturating_sub(1));
            let mut docs = docs;
            let eval = docs.split_off(docs.len() - held);
            (docs, eval)
        }
    };
    let train_data = TokenStream::from_documents(&train_docs);
    let eval_data = TokenStream::from_documents(&eval_docs);
    eprintln!(
        "corpus: {} training documents ({} bytes), {} held-out documents ({} bytes)",
        train_docs.len(),
        train_data.bytes(),
        eval_docs.len(),
        eval_data.bytes()
    );
    drop((train_docs, eval_docs));

    let training = TrainingConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        seq_len: args.seq_len,
        lr: args.lr,
        min_lr_ratio: args.min_lr_ratio,
        warmup_steps: args.warmup_steps,
        weight_decay: args.weight_decay,
        grad_clip: (args.grad_clip > 0.0).then_some(args.grad_clip),
        seed: args.seed,
        eval_every: args.eval_every,
        eval_windows: args.eval_windows,
        checkpoint_every: args.checkpoint_every,
        ..TrainingConfig::default()
    };

    // Where the weights come from: a resumed run, a checkpoint to fine-tune, or fresh.
    let state_path = args.output.join("training_state.json");
    let (start, config, model_dir) = if args.resume && state_path.is_file() {
        let state: TrainingState = serde_json::from_slice(&std::fs::read(&state_path)?)
            .with_context(|| format!("cannot read {}", state_path.display()))?;
        let ckpt = Checkpoint::open(&state.checkpoint)?;
        eprintln!(
            "resuming at step {} from {}",
            state.step,
            state.checkpoint.display()
        );
        (state.step, ckpt.config, Some(state.checkpoint))
    } else if let Some(init) = &args.init {
        let ckpt = Checkpoint::open(init)?;
        (0, ckpt.config, Some(init.clone()))
    } else {
        let mut config = preset(&args.config)?;
        config.max_seqlen = config.max_seqlen.max(args.seq_len);
        (0, config, None)
    };
    anyhow::ensure!(
        start < training.steps,
        "the run already has {start} of {} steps",
        training.steps
    );
    eprintln!(
        "model: dim {}, {} layers, {} heads, window {:?}, {} parameters",
        config.dim,
        config.n_layers,
        config.n_heads,
        config.sliding_window,
        config.num_params()
    );

    let task = TrainTask {
        args,
        config,
        model_dir,
        start,
        training,
        train_data,
        eval_data,
    };
    dispatch(task.args.device, task)
}

struct TrainTask {
    args: TrainArgs,
    config: EntropyModelConfig,
    model_dir: Option<PathBuf>,
    start: usize,
    training: TrainingConfig,
    train_data: TokenStream,
    eval_data: TokenStream,
}

impl BackendTask for TrainTask {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let model = match &self.model_dir {
            Some(dir) => Checkpoint::open(dir)?.load::<Autodiff<B>>(&device, Some(DType::F32))?,
            None => EntropyModel::<Autodiff<B>>::init(&self.config, self.training.seed, &device),
        };
        std::fs::create_dir_all(&self.args.output)?;
        let log_path = self.args.output.join("train_log.jsonl");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(self.start > 0)
            .write(true)
            .truncate(self.start == 0)
            .open(&log_path)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        let mut observer = Observer {
            bar: (!self.args.no_progress && std::io::stderr().is_terminal()).then(|| {
                let b = ProgressBar::new(self.training.steps as u64);
                b.set_style(
                    ProgressStyle::with_template(
                        "[{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_position(self.start as u64);
                b
            }),
            log,
            started: Instant::now(),
            training: self.training.clone(),
            output: self.args.output.clone(),
            error: None,
        };
        let outcome = train(
            model,
            self.start,
            &self.config,
            &self.train_data,
            &self.eval_data,
            &self.training,
            &self.args.output,
            &device,
            &mut observer,
        )?;
        if let Some(e) = observer.error.take() {
            return Err(e);
        }
        if let Some(bar) = &observer.bar {
            bar.finish();
        }
        if self.args.save_bf16 {
            // Re-write the final weights in BF16: half the size, as Meta ships its weights.
            let ckpt = Checkpoint::open(&outcome.checkpoint)?;
            let model = ckpt.load::<B>(&device, Some(DType::BF16))?;
            blt_model::train::save_checkpoint(
                &model,
                &ckpt.config,
                &outcome.checkpoint,
                DType::BF16,
            )?;
        }
        let seconds = observer.started.elapsed().as_secs_f64();
        let summary = serde_json::json!({
            "steps": self.training.steps,
            "seconds": seconds,
            "final_train_loss": outcome.history.last().map(|r| r.loss),
            "final_eval_loss_nats_per_token": outcome.final_eval_loss,
            "final_eval_bits_per_token": outcome.final_eval_loss.map(|l| l / std::f64::consts::LN_2),
            "train_bytes": self.train_data.bytes(),
            "eval_bytes": self.eval_data.bytes(),
            "model": self.config,
            "training": self.training,
            "device": format!("{:?}", self.args.device),
        });
        blt_datasets::write_atomic(
            &self.args.output.join("train_summary.json"),
            &serde_json::to_vec_pretty(&summary)?,
        )?;
        eprintln!(
            "done in {seconds:.0} s: held-out {} bits/token; checkpoint {}",
            outcome.final_eval_loss.map_or("n/a".into(), |l| format!(
                "{:.4}",
                l / std::f64::consts::LN_2
            )),
            outcome.checkpoint.display()
        );
        Ok(())
    }
}

struct Observer {
    bar: Option<ProgressBar>,
    log: std::fs::File,
    started: Instant,
    training: TrainingConfig,
    output: PathBuf,
    error: Option<anyhow::Error>,
}

impl TrainingObserver for Observer {
    fn step(&mut self, r: &StepReport) {
        let line = serde_json::json!({
            "step": r.step, "loss": r.loss, "bits_per_token": r.bits(), "lr": r.lr,
            "eval_loss": r.eval_loss,
            "eval_bits_per_token": r.eval_loss.map(|l| l / std::f64::consts::LN_2),
            "seconds": self.started.elapsed().as_secs_f64(),
        });
        if let Err(e) = writeln!(self.log, "{line}") {
            self.error.get_or_insert(e.into());
        }
        let msg = format!(
            "loss {:.3} ({:.3} bits/token){}",
            r.loss,
            r.bits(),
            r.eval_loss.map_or(String::new(), |l| format!(
                ", held-out {:.3} bits/token",
                l / std::f64::consts::LN_2
            ))
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.step as u64);
                bar.set_message(msg);
            }
            None if r.eval_loss.is_some() || r.step.is_multiple_of(50) || r.step == 1 => {
                eprintln!("step {}/{}: {msg}", r.step, self.training.steps);
            }
            None => {}
        }
    }

    fn checkpoint(&mut self, dir: &Path, step: usize) {
        let state = TrainingState {
            step,
            checkpoint: dir.to_path_buf(),
            training: self.training.clone(),
        };
        let written = serde_json::to_vec_pretty(&state)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                blt_datasets::write_atomic(&self.output.join("training_state.json"), &bytes)
                    .map_err(anyhow::Error::from)
            });
        if let Err(e) = written {
            self.error.get_or_insert(e);
        }
    }
}
