//! `cargo xtask bench`: runs the criterion benches of `blt-kernels` (each kernel against its
//! reference) and `blt-model` (whole-model bytes/s), and writes their table into
//! `kernels/README.md` with the device named.
//!
//! Three ways to run it:
//! - `cargo xtask bench --device cuda --dtype f32,bf16`: build and run here, then write the table.
//! - `cargo xtask bench --device cuda --bundle DIR`: build the bench executables into `DIR` with a
//!   `run.sh`, for a GPU machine without a Rust toolchain. `DIR/run.sh OUT` runs them there, the
//!   PyTorch baseline (`bench/torch_entropy_baseline.py`) beside them when `python3` has torch,
//!   and `nvidia-smi` for the device name, all into `OUT`.
//! - `cargo xtask bench --report OUT`: write the table from such an `OUT`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{bail, Context};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Backend: cpu, cuda or wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Model dtypes, comma-separated (f32, bf16, f16).
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    dtype: Vec<String>,
    /// Whole-model shapes, batch x length, comma-separated.
    #[arg(long, default_value = "32x512,8x4096")]
    shapes: String,
    /// Model shape: `full` (the released 99.5 M-parameter shape) or `tiny`.
    #[arg(long, default_value = "full")]
    model: String,
    /// Build the bench executables and a run.sh into this folder instead of running them.
    #[arg(long, conflicts_with = "report")]
    bundle: Option<PathBuf>,
    /// Write the table from a folder that `run.sh` filled, without building anything.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn features(device: &str) -> anyhow::Result<String> {
    Ok(match device {
        "cpu" => "blt-model/cpu".into(),
        "cuda" | "wgpu" => format!("blt-kernels/{device},blt-model/{device}"),
        other => bail!("--device {other}: expected cpu, cuda or wgpu"),
    })
}

const BENCH_ARGS: [&str; 8] = [
    "-p",
    "blt-kernels",
    "-p",
    "blt-model",
    "--bench",
    "kernels",
    "--bench",
    "forward",
];

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.report {
        return write_report(out, &args);
    }
    let features = features(&args.device)?;
    if let Some(dir) = &args.bundle {
        return bundle(dir, &features, &args);
    }
    let out = root().join("target/bench-results");
    std::fs::create_dir_all(&out)?;
    for dtype in &args.dtype {
        let mut cmd = Process::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root())
            .arg("bench")
            .args(BENCH_ARGS)
            .args(["--features", &features])
            .env("CRITERION_HOME", out.join("criterion"))
            .env("BLT_BENCH_DEVICE", &args.device)
            .env("BLT_BENCH_DTYPE", dtype)
            .env("BLT_BENCH_SHAPES", &args.shapes)
            .env("BLT_BENCH_MODEL", &args.model);
        eprintln!("+ BLT_BENCH_DTYPE={dtype} {cmd:?}");
        let status = cmd.status().context("cannot run cargo bench")?;
        anyhow::ensure!(status.success(), "cargo bench failed");
    }
    if args.device == "cuda" {
        describe_device(&out)?;
    }
    write_report(&out, &args)
}

/// Writes `device.txt` from `nvidia-smi` (when there is one).
fn describe_device(out: &Path) -> anyhow::Result<()> {
    if let Ok(o) = Process::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .output()
    {
        std::fs::write(out.join("device.txt"), o.stdout)?;
    }
    Ok(())
}

fn bundle(dir: &Path, features: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Process::new(&cargo)
        .current_dir(root())
        .args(["bench", "--no-run", "--message-format=json"])
        .args(BENCH_ARGS)
        .args(["--features", features])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo bench --no-run")?;
    anyhow::ensure!(output.status.success(), "cargo bench --no-run failed");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let mut names = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_bench = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bench"));
        if let (true, Some(exe)) = (is_bench, msg["executable"].as_str()) {
            let name = msg["target"]["name"]
                .as_str()
                .unwrap_or("bench")
                .to_string();
            std::fs::copy(exe, bin.join(&name)).with_context(|| format!("copying {exe}"))?;
            names.push(name);
        }
    }
    anyhow::ensure!(
        names.len() == 2,
        "expected the kernels and forward benches, got {names:?}"
    );
    std::fs::copy(
        root().join("bench/torch_entropy_baseline.py"),
        dir.join("torch_entropy_baseline.py"),
    )?;
    let script = format!(
        r#"#!/usr/bin/env bash
# Runs blt's benches and the PyTorch baseline on this machine: run.sh OUT [dtype...]
# Made by `cargo xtask bench --device {device} --bundle`; `cargo xtask bench --report OUT` makes the table.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${{1:?usage: run.sh OUT [dtype...]}}; shift
dtypes=${{*:-{dtypes}}}
mkdir -p "$out"
# cuBLAS for blt-kernels (loaded at run time): the CUDA toolkit's, or the one PyTorch's wheels ship.
export LD_LIBRARY_PATH=${{LD_LIBRARY_PATH:-}}:/usr/local/cuda/lib64:$(python3 -c "import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], 'lib'))" 2>/dev/null)
export TORCH_SHAPES=${{TORCH_SHAPES:-{shapes}}}
export CRITERION_HOME="$out/criterion" BLT_BENCH_DEVICE={device} BLT_BENCH_SHAPES={shapes} BLT_BENCH_MODEL={model}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/device.txt" 2>/dev/null
for dt in $dtypes; do
  for b in {benches}; do
    echo "== $b $dt"
    BLT_BENCH_DTYPE=$dt timeout ${{BLT_BENCH_TIMEOUT:-240}} "$here/bin/$b" --bench 2>&1 | tee -a "$out/bench.log" | grep -E "time:|thrpt:|Benchmarking .*: Analyzing|error|panic" || true
  done
done
if [ -z "${{SKIP_TORCH:-}}" ] && python3 -c "import torch" 2>/dev/null; then
  OUT="$out" TORCH_BUDGET_S=${{TORCH_BUDGET_S:-150}} timeout ${{TORCH_TIMEOUT:-240}} python3 "$here/torch_entropy_baseline.py" model ${{TORCH_COMPILE:-compile}} > "$out/torch.log" 2>&1
  grep RESULT "$out/torch.log" || tail -5 "$out/torch.log"
fi
"#,
        device = args.device,
        dtypes = args.dtype.join(" "),
        shapes = args.shapes,
        model = args.model,
        benches = names.join(" "),
    );
    let run = dir.join("run.sh");
    std::fs::write(&run, script)?;
    let status = Process::new("chmod").arg("+x").arg(&run).status()?;
    anyhow::ensure!(status.success(), "chmod failed");
    eprintln!("bundle in {}: {}", dir.display(), names.join(", "));
    Ok(())
}

/// One criterion result.
struct Measurement {
    group: String,
    function: String,
    /// Median time per iteration, seconds.
    seconds: f64,
    /// Bytes or elements per iteration.
    throughput: Option<(String, f64)>,
}

fn read_measurements(dir: &Path) -> anyhow::Result<Vec<Measurement>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "benchmark.json")
                && p.parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "new")
            {
                let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)?;
                let est: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p.with_file_name("estimates.json"))?)?;
                let ns = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                let throughput = meta["throughput"].as_object().and_then(|t| {
                    t.iter()
                        .next()
                        .and_then(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                });
                found.push(Measurement {
                    group: meta["group_id"].as_str().unwrap_or_default().to_string(),
                    function: meta["function_id"].as_str().unwrap_or_default().to_string(),
                    seconds: ns * 1e-9,
                    throughput,
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
    Ok(found)
}

fn human(rate: f64) -> String {
    if rate >= 1e9 {
        format!("{:.2} G", rate / 1e9)
    } else if rate >= 1e6 {
        format!("{:.3} M", rate / 1e6)
    } else {
        format!("{:.1} K", rate / 1e3)
    }
}

fn write_report(out: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    let found = read_measurements(&out.join("criterion"))?;
    anyhow::ensure!(
        !found.is_empty(),
        "no criterion results under {}",
        out.display()
    );
    let device = std::fs::read_to_string(out.join("device.txt"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{} (no nvidia-smi)", args.device));
    let mut md = String::new();
    writeln!(md, "Device: **{device}**. Reproduce: `cargo xtask bench --device {} --dtype {} --shapes {}` (or `--bundle DIR` to build for a machine without Rust, then `DIR/run.sh OUT` there and `cargo xtask bench --report OUT`).\n", args.device, args.dtype.join(","), args.shapes)?;
    // Kernels: fused vs reference per (group, op).
    type FusedAndReference<'a> = (Option<&'a Measurement>, Option<&'a Measurement>);
    let mut kernels: BTreeMap<(String, String), FusedAndReference> = BTreeMap::new();
    for m in found.iter().filter(|m| m.group.starts_with("kernels/")) {
        if let Some((op, which)) = m.function.rsplit_once('/') {
            let slot = kernels
                .entry((m.group.clone(), op.to_string()))
                .or_default();
            match which {
                "fused" => slot.0 = Some(m),
                _ => slot.1 = Some(m),
            }
        }
    }
    if !kernels.is_empty() {
        md.push_str("| backend / dtype | op | fused (median) | reference (median) | speed-up | fused throughput |\n| --- | --- | --- | --- | --- | --- |\n");
        for ((group, op), (f, r)) in &kernels {
            let (Some(f), Some(r)) = (f, r) else { continue };
            let rate = f.throughput.as_ref().map_or(String::new(), |(kind, n)| {
                let per_s = n / f.seconds;
                if kind == "Bytes" {
                    format!("{}B/s", human(per_s))
                } else {
                    format!("{:.1} TFLOP/s", per_s / 1e12)
                }
            });
            writeln!(
                md,
                "| {} | {op} | {:.1} µs | {:.1} µs | {:.2}× | {rate} |",
                group.trim_start_matches("kernels/"),
                f.seconds * 1e6,
                r.seconds * 1e6,
                r.seconds / f.seconds
            )?;
        }
        md.push('\n');
    }
    let models: Vec<&Measurement> = found
        .iter()
        .filter(|m| m.group.starts_with("model/"))
        .collect();
    let torch: Vec<serde_json::Value> = std::fs::read(out.join("torch_results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if !models.is_empty() || !torch.is_empty() {
        md.push_str("| implementation | dtype | batch × length | median | bytes/s |\n| --- | --- | --- | --- | --- |\n");
        for m in &models {
            let per_s = m
                .throughput
                .as_ref()
                .map_or(f64::NAN, |(_, n)| n / m.seconds);
            let mut parts = m.group.trim_start_matches("model/").splitn(2, '/');
            let (backend, dtype) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            writeln!(
                md,
                "| blt (Burn {backend}) | {dtype} | {} | {:.1} ms | **{}** |",
                m.function.replace('x', " × "),
                m.seconds * 1e3,
                human(per_s)
            )?;
        }
        for t in torch.iter().filter(|t| t["kind"] == "fwd") {
            writeln!(
                md,
                "| PyTorch {} ({}) | {} | {} × {} | {} ms | {} |",
                t["backend"].as_str().unwrap_or(""),
                t["attn"].as_str().unwrap_or(""),
                t["backend"]
                    .as_str()
                    .unwrap_or("")
                    .split('-')
                    .nth(1)
                    .unwrap_or(""),
                t["B"],
                t["S"],
                t["median_ms"],
                t["bytes_per_s"].as_f64().map(human).unwrap_or_default()
            )?;
        }
    }
    let readme = root().join("kernels/README.md");
    let text = std::fs::read_to_string(&readme)?;
    let (start, end) = ("<!-- bench:start -->", "<!-- bench:end -->");
    let new = match (text.find(start), text.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{start}\n{md}{}", &text[..a], &text[b..]),
        _ => format!("{text}\n## Benchmarks\n\n{start}\n{md}{end}\n"),
    };
    std::fs::write(&readme, new)?;
    println!("{md}");
    eprintln!("table written to {}", readme.display());
    Ok(())
}
