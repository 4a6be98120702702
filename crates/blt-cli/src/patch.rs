//! `blt patch`: entropies and patches of one text or file.

use std::io::Write;

use anyhow::Context;
use blt_model::backend::Backend;
use blt_model::DType;
use blt_patcher::{PatchBoundaries, PatcherConfig, PatchingMode, DEFAULT_THRESHOLD};
use blt_pipeline::{DocumentAnalysis, DocumentAnalyzer, LoadedModel, ModelSpec};
use blt_tokenizer::{BltTokenizer, BOS_ID, EOS_ID};

use crate::args::{DTypeArg, ModelArgs, PatchArgs, PatchingArgs};
use crate::device::{dispatch, BackendTask, DeviceSpec};

pub fn run(args: PatchArgs) -> anyhow::Result<()> {
    let bytes = match (&args.text, &args.file) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => anyhow::bail!("give --text or --file"),
    };
    let model = open_model(&args.model)?;
    let threshold = args
        .patching
        .threshold
        .or(model.checkpoint.config.patching_threshold)
        .unwrap_or(DEFAULT_THRESHOLD);
    let patcher = patcher_config(&args.patching, threshold)?
        .build()
        .context("invalid patching options")?;
    let tokenizer = BltTokenizer::new()
        .with_bos(!args.no_bos)
        .with_eos(!args.no_eos);
    let task = PatchTask {
        model,
        dtype: args.model.compute_dtype(),
        quantization: args.model.quantization(),
        patcher,
        tokenizer,
        bytes,
    };
    let analysis = dispatch(args.model.device, task)?;

    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &analysis)?;
    } else {
        print_text(&mut out, &analysis, threshold, &args.patching.mode)?;
    }
    out.flush()?;
    Ok(())
}

/// Finds the checkpoint named by `--model`, or the built-in model when none is named.
pub fn open_model(args: &ModelArgs) -> anyhow::Result<LoadedModel> {
    let Some(spec) = &args.model else {
        let root = blt_default_model::cache_root();
        let dir = blt_default_model::materialize(&root).with_context(|| {
            format!(
                "cannot write the built-in model under {} (set BLT_CACHE_DIR to a writable folder)",
                root.display()
            )
        })?;
        let mut model = LoadedModel::open(&ModelSpec::Path(dir), &blt_hub::HubOptions::from_env())
            .context("cannot open the built-in model")?;
        model.source.id = blt_default_model::MODEL_ID.to_string();
        return Ok(model);
    };
    let hub = blt_hub::HubOptions::from_env().with_revision(args.revision.clone());
    LoadedModel::open(&ModelSpec::parse(spec), &hub)
        .with_context(|| format!("cannot open model {spec}"))
}

impl ModelArgs {
    /// The weight quantization of `--quantize`.
    pub fn quantization(&self) -> Option<blt_model::WeightQuantization> {
        self.quantize.as_deref().map(|q| {
            q.parse()
                .unwrap_or_else(|e| unreachable!("clap allows only int8/int4: {e}"))
        })
    }

    /// The compute dtype: `--dtype`, else f32 on the CPU (bf16 there is computed through f32
    /// anyway) and the stored dtype on GPUs.
    pub fn compute_dtype(&self) -> Option<DType> {
        self.dtype
            .map(dtype)
            .or((self.device == DeviceSpec::Cpu).then_some(DType::F32))
    }
}

/// The patcher configuration the flags describe.
pub fn patcher_config(args: &PatchingArgs, threshold: f32) -> anyhow::Result<PatcherConfig> {
    let mode: PatchingMode = args.mode.parse()?;
    Ok(PatcherConfig::new(mode)
        .with_threshold((!args.top_k).then_some(threshold))
        .with_threshold_add(args.threshold_add)
        .with_monotonic(args.monotonic)
        .with_max_patch_length(args.max_patch_length)
        .with_patch_size(args.patch_size)
        .with_include_next_token(args.include_next_token))
}

pub fn dtype(arg: DTypeArg) -> DType {
    match arg {
        DTypeArg::F32 => DType::F32,
        DTypeArg::Bf16 => DType::BF16,
        DTypeArg::F16 => DType::F16,
    }
}

/// One document through the model and the patcher (also used by `blt viz`).
pub struct PatchTask {
    pub model: LoadedModel,
    pub dtype: Option<DType>,
    pub quantization: Option<blt_model::WeightQuantization>,
    pub patcher: blt_patcher::Patcher,
    pub tokenizer: BltTokenizer,
    pub bytes: Vec<u8>,
}

impl BackendTask for PatchTask {
    type Output = DocumentAnalysis;

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<DocumentAnalysis> {
        let estimator = self
            .model
            .estimator::<B>(device, self.dtype, self.quantization)
            .with_context(|| format!("cannot load model {}", self.model.source.id))?;
        let analyzer = DocumentAnalyzer::new(estimator, self.patcher, self.tokenizer);
        Ok(analyzer.analyze(&self.bytes)?)
    }
}

fn print_json(out: &mut impl Write, a: &DocumentAnalysis) -> anyhow::Result<()> {
    let value = serde_json::json!({
        "ids": a.ids,
        "entropies": a.entropies,
        "patch_starts": a.patches.starts(),
        "patch_lengths": a.patches.lengths(),
    });
    serde_json::to_writer(&mut *out, &value)?;
    writeln!(out)?;
    Ok(())
}

/// The text with `|` between patches; special ids as ⟨BOS⟩/⟨EOS⟩, non-printable bytes escaped.
fn print_text(
    out: &mut impl Write,
    a: &DocumentAnalysis,
    threshold: f32,
    mode: &str,
) -> anyhow::Result<()> {
    writeln!(out, "{}", render_patches(&a.ids, &a.patches))?;
    let n = a.ids.len();
    let mean_entropy = if n == 0 {
        0.0
    } else {
        a.entropies.iter().map(|&e| e as f64).sum::<f64>() / n as f64
    };
    let mean_len = if a.patches.is_empty() {
        0.0
    } else {
        a.patches.covered_len() as f64 / a.patches.len() as f64
    };
    writeln!(
        out,
        "-- {n} tokens, {} patches, mean patch length {mean_len:.2}, mean entropy {mean_entropy:.3} nats (mode {mode}, threshold {threshold})",
        a.patches.len()
    )?;
    Ok(())
}

fn render_patches(ids: &[u32], patches: &PatchBoundaries) -> String {
    let mut s = String::new();
    for (i, range) in patches.iter().enumerate() {
        if i > 0 {
            s.push('|');
        }
        let mut bytes = Vec::new();
        for &id in ids
            .get(range.start..range.end.min(ids.len()))
            .unwrap_or(&[])
        {
            match BltTokenizer::id_to_byte(id) {
                Some(b) => bytes.push(b),
                None => {
                    escape_into(&mut s, &std::mem::take(&mut bytes));
                    s.push_str(match id {
                        BOS_ID => "⟨BOS⟩",
                        EOS_ID => "⟨EOS⟩",
                        0 => "⟨BOE⟩",
                        _ => "⟨BPE⟩",
                    });
                }
            }
        }
        escape_into(&mut s, &bytes);
    }
    s
}

fn escape_into(s: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                '|' => s.push_str("\\|"),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_boundaries_specials_and_escapes() {
        let tok = BltTokenizer::new();
        let ids = tok.encode(b"ab|c\n\xff");
        let patches = PatchBoundaries::from_lengths(vec![1, 2, 3, 2]).unwrap();
        assert_eq!(
            render_patches(&ids, &patches),
            "⟨BOS⟩|ab|\\|c\\n|\\xff⟨EOS⟩"
        );
    }
}
