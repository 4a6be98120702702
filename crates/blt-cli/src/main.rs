//! `blt`: entropy patching of raw bytes with Meta's Byte Latent Transformer entropy model.
//!
//! This binary parses arguments, picks the backend and prints; the work is done by the library
//! crates (`blt-pipeline`, `blt-model`, `blt-patcher`, `blt-tokenizer`, `blt-hub`, `blt-viz`).

mod args;
mod calibrate;
mod detect;
mod device;
mod eval;
mod ingest;
mod inspect;
mod inspect_model;
mod merge_stats;
mod patch;
mod pretokenize;
mod sphere;
mod stats;
mod train;
mod viz;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Patch(args) => patch::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Detect(args) => detect::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::InspectModel(args) => inspect_model::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::MergeStats(args) => merge_stats::run(args),
        Command::Viz(args) => viz::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Sphere(args) => sphere::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BLT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
