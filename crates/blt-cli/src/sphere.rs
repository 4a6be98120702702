//! `blt sphere`: the water-filling sphere stage over an ingest output folder.

use std::path::PathBuf;

use anyhow::Context;
use blt_viz::sphere::{write_outputs, SphereInput};
use blt_viz::{water_fill, SphereConfig};
use clap::Args;

/// Arguments of `blt sphere`.
#[derive(Debug, Args)]
pub struct SphereArgs {
    /// An ingest output folder with embeddings (`--embeddings patch` or `byte`), or one file.
    pub output_dir: PathBuf,
    /// The safetensors file to write. Default: `<OUTPUT_DIR>/corpus.sphere.safetensors`.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Also write the arrays as a NumPy `.npz` beside it (same name, `.npz`).
    #[arg(long)]
    pub npz: bool,
    /// Number of shells.
    #[arg(long, default_value_t = 256)]
    pub shells: usize,
    /// Shell capacity grows as radius^this.
    #[arg(long, default_value_t = 1.5)]
    pub capacity_exponent: f64,
    /// Radius of the innermost shell.
    #[arg(long, default_value_t = 32.0)]
    pub r_min: f64,
    /// Radius of the outermost shell.
    #[arg(long, default_value_t = 512.0)]
    pub r_max: f64,
    /// Order patches by prominence × (1 + mean entropy) instead of prominence.
    #[arg(long)]
    pub entropy_weighted: bool,
}

pub fn run(args: SphereArgs) -> anyhow::Result<()> {
    let config = SphereConfig {
        shells: args.shells,
        capacity_exponent: args.capacity_exponent,
        r_min: args.r_min,
        r_max: args.r_max,
        entropy_weighted: args.entropy_weighted,
    };
    config.validate()?;
    let input = SphereInput::collect(&args.output_dir)
        .with_context(|| format!("cannot read patches of {}", args.output_dir.display()))?;
    let placement = water_fill(
        &input.directions,
        input.dim,
        &input.prominence,
        &input.entropies,
        &config,
    )?;
    let output = args.output.clone().unwrap_or_else(|| {
        let dir = if args.output_dir.is_dir() {
            args.output_dir.clone()
        } else {
            args.output_dir
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default()
        };
        dir.join(blt_viz::sphere::DEFAULT_OUTPUT_NAME)
    });
    let npz = args.npz.then(|| {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".safetensors").unwrap_or(&name);
        output.with_file_name(format!("{stem}.npz"))
    });
    write_outputs(&input, &placement, &config, &output, npz.as_deref())?;
    let occupied = placement
        .shell_capacities
        .iter()
        .filter(|&&c| c > 0)
        .count();
    println!(
        "wrote {}{}: {} patches of {} documents (width {}) on {occupied} of {} shells, radii {}–{}",
        output.display(),
        npz.as_ref()
            .map(|p| format!(" and {}", p.display()))
            .unwrap_or_default(),
        placement.radii.len(),
        input.documents.len(),
        input.dim,
        config.shells,
        config.r_min,
        config.r_max
    );
    if placement.degenerate_directions > 0 {
        println!(
            "{} patches had a zero or non-finite embedding (placed along 1/sqrt(D))",
            placement.degenerate_directions
        );
    }
    if !input.skipped.is_empty() {
        println!("skipped {} documents:", input.skipped.len());
        for s in &input.skipped {
            println!("  {}: {}", s.path, s.reason);
        }
    }
    Ok(())
}
