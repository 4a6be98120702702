//! `cargo xtask`: the project's chores.
//!
//! - `cargo xtask fetch-model [--repo facebook/blt-entropy] [--revision R]`: downloads an
//!   entropy model into the standard Hugging Face cache (`HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN`;
//!   `HF_HUB_OFFLINE=1` resolves from the cache only) and prints its local directory.
//! - `cargo xtask test`: the whole test suite, as CI runs it: every crate's tests on the CPU
//!   backend (with `blt-pretokenize/video`, which links the system FFmpeg), then `cargo check`
//!   of the CUDA and WGPU backends (which CI cannot run). It first
//!   runs `scripts/setup/*.sh`, which install what some tests need and do nothing when it is
//!   already installed.
//! - `cargo xtask bench [--device cuda] [--dtype f32,bf16]`: criterion benches of the kernels
//!   and the whole model, written as a table to `kernels/README.md` (see `bench.rs`).

mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "The blt project's chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download an entropy model from the Hugging Face Hub into the standard cache and print its
    /// local directory. facebook/blt-entropy is gated: accept its licence on its Hub page and set
    /// HF_TOKEN first.
    #[command(after_help = "Example:\n  HF_TOKEN=hf_... cargo xtask fetch-model\n  \
        blt patch --model facebook/blt-entropy --text 'Hello'")]
    FetchModel {
        /// Repo id.
        #[arg(long, default_value = "facebook/blt-entropy")]
        repo: String,
        /// Branch, tag or commit.
        #[arg(long, default_value = "main")]
        revision: String,
    },
    /// Benchmark each fused kernel against its reference and the whole model (bytes/s), beside
    /// the PyTorch baseline when it can run, and write the table into kernels/README.md.
    Bench(bench::BenchArgs),
    /// Run the whole test suite as CI does: `cargo test --workspace`, then `cargo check` with the
    /// `cuda` and `wgpu` features.
    Test {
        /// Skip the GPU-backend `cargo check`.
        #[arg(long)]
        no_gpu_check: bool,
        /// Skip `scripts/setup/*.sh` (which install Debian packages some tests need).
        #[arg(long)]
        no_setup: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        test_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("+ cargo {}", args.join(" "));
    let status = Process::new(cargo)
        .args(args)
        .status()
        .context("cannot run cargo")?;
    anyhow::ensure!(status.success(), "`cargo {}` failed", args.join(" "));
    Ok(())
}

/// Runs every `scripts/setup/*.sh` in name order: each installs what some tests need (Debian
/// packages for optional features, a headless browser) and does nothing when it is already there.
fn run_setup_scripts() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    scripts.sort();
    for script in scripts {
        eprintln!("+ bash {}", script.display());
        let status = Process::new("bash")
            .arg(&script)
            .status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        anyhow::ensure!(status.success(), "{} failed", script.display());
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Test {
            no_gpu_check,
            no_setup,
            test_args,
        } => {
            if !no_setup {
                run_setup_scripts()?;
            }
            // `blt-pretokenize/video` links the system FFmpeg (scripts/setup/20-ffmpeg-dev.sh).
            let mut args = vec![
                "test",
                "--workspace",
                "--exclude",
                "xtask",
                "--features",
                "blt-pretokenize/video",
            ];
            if !test_args.is_empty() {
                args.push("--");
                args.extend(test_args.iter().map(String::as_str));
            }
            cargo(&args)?;
            if !no_gpu_check {
                cargo(&[
                    "check",
                    "--workspace",
                    "--exclude",
                    "xtask",
                    "--all-targets",
                    "--features",
                    "blt-cli/cuda,blt-cli/wgpu,blt-pretokenize/video",
                ])?;
            }
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
        Command::FetchModel { repo, revision } => {
            let options = blt_hub::HubOptions::from_env()
                .with_revision(revision)
                .with_progress(true);
            if options.token.is_none() && !options.offline {
                eprintln!(
                    "note: no HF_TOKEN (or saved token) found; gated repos such as facebook/blt-entropy will refuse the download"
                );
            }
            let model = blt_hub::resolve_model(&repo, &options)
                .with_context(|| format!("cannot fetch {repo}"))?;
            eprintln!(
                "{}@{} (commit {})",
                model.repo,
                model.revision,
                model.commit.as_deref().unwrap_or("unknown")
            );
            println!("{}", model.dir.display());
            Ok(())
        }
    }
}
