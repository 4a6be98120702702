#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use blt_datasets::{
    ColumnSpec, EntropyFileFormat, EntropyShardSink, PathResolver, ReadLimits, TableFormat,
    TableReader, WebDatasetSink,
};
use blt_model::backend::Cpu;
use blt_model::Checkpoint;
use blt_pipeline::readback::{read_shard, sidecar_documents_from_shard};
use blt_pipeline::StoredDocument;
use blt_pretokenize::{Modality, PretokenizeOptions, Pretokenized, Pretokenizer};
use blt_sidecar::HypergraphSidecar;

/// What one run of a target did with its input: `Ok(n)` when the parser accepted it (`n`
/// counts what it read: rows, tensors, documents, segments), `Err(message)` when it refused it
/// with a typed error (its `Display` text). A panic is the only failure.
pub type Outcome = Result<usize, String>;

/// Rows read from one table at most, so that a tiny input cannot keep a run busy forever.
pub const MAX_TABLE_ROWS: usize = 100_000;

/// The file names of the [`tables`] target; the format is each name's extension (as
/// [`TableFormat::from_name`] reads it). The first input byte modulo the length picks one.
pub const TABLE_FILES: [&str; 8] = [
    "table.jsonl",
    "table.csv",
    "table.parquet",
    "table.arrow",
    "table.jsonl.gz",
    "table.jsonl.zst",
    "table.tsv",
    "table.csv.gz",
];

/// The name a binary column's `{bytes: null, path}` cell resolves to in [`tables`], whatever
/// the path says: a small file written beside the table, so that a hostile path never reads
/// the machine's files (`/dev/zero`, say).
pub const TABLE_BLOB: &str = "blob.bin";

/// The readers of the [`readback`] target; the first input byte modulo the length picks one.
pub const READBACK_KINDS: [&str; 6] = [
    // `StoredDocument::parse` of a per-document safetensors file, then `to_result`.
    "stored_document",
    // `readback::read_shard` and `sidecar_documents_from_shard` of a WebDataset tar.
    "webdataset_samples",
    // `WebDatasetSink::completed_keys` and `tar_index` of a WebDataset tar.
    "webdataset_keys",
    // `HypergraphSidecar::open` read-only, then every query.
    "sidecar",
    // `blt_datasets::read_shard` and `EntropyShardSink::completed_keys`, Arrow.
    "entropy_arrow",
    // The same, Parquet.
    "entropy_parquet",
];

/// The cases of the [`pretokenize`] target: a forced modality (`None`: detection picks) and a
/// file name (its extension picks a code grammar). The first input byte modulo the length
/// picks one.
pub const PRETOKENIZE_CASES: [(Option<Modality>, Option<&str>); 17] = [
    (None, None),
    (Some(Modality::Text), None),
    (Some(Modality::Code), Some("x.rs")),
    (Some(Modality::Code), Some("x.py")),
    (Some(Modality::Code), Some("x.js")),
    (Some(Modality::Code), Some("x.ts")),
    (Some(Modality::Code), Some("x.tsx")),
    (Some(Modality::Code), Some("x.c")),
    (Some(Modality::Code), Some("x.cpp")),
    (Some(Modality::Code), Some("x.go")),
    (Some(Modality::Code), Some("x.java")),
    (Some(Modality::Image), None),
    (Some(Modality::Audio), None),
    (Some(Modality::Video), None),
    (Some(Modality::Pdf), None),
    (Some(Modality::Binary), None),
    (Some(Modality::Container), None),
];

/// The `config.json` written beside the weights of [`checkpoint_safetensors`]: the committed
/// tiny model's config (Meta's hub layout) shrunk to width 8 and one layer, so that a valid
/// weights file is ~20 KB (seeds stay small, runs fast).
pub const MICRO_CONFIG_JSON: &str = r#"{
  "args": {
    "dim": 8,
    "n_layers": 1,
    "head_dim": null,
    "n_heads": 2,
    "n_kv_heads": null,
    "ffn_dim_multiplier": 1.0,
    "multiple_of": 8,
    "norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "rope_use_fp32_in_outer_product": false,
    "init_base_std": null,
    "init_std_factor": "disabled",
    "max_seqlen": 16,
    "attn_impl": "xformers",
    "attn_bias_type": "local_block_causal",
    "eos_id": 2,
    "seed": 42,
    "vocab_size": 260,
    "weight_tying": false,
    "sliding_window": 8
  }
}
"#;

/// The `params.json` written beside the weights of [`checkpoint_pth`]: the same model in
/// Meta's `params.json` layout.
pub const MICRO_PARAMS_JSON: &str = r#"{
  "name": "blt-fuzz-micro",
  "entropy_model": {
    "dim": 8,
    "n_layers": 1,
    "n_heads": 2,
    "max_seqlen": 16,
    "sliding_window": 8,
    "ffn_dim_multiplier": 1.0,
    "vocab_size": 260,
    "multiple_of": 8
  }
}
"#;

/// A fresh temporary folder for one run (on `$TMPDIR`: point it at a tmpfs for speed).
fn scratch() -> tempfile::TempDir {
    // A harness failure, not a finding: the run cannot go on without a folder.
    tempfile::tempdir().expect("blt-fuzz: creating a temporary folder")
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).expect("blt-fuzz: writing a temporary file");
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The first byte (the selector) and the rest; an empty input selects 0 with no body.
fn split(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (usize::from(first), rest),
        None => (0, &[]),
    }
}

/// Reads a table: the first byte picks a file name of [`TABLE_FILES`], the rest is written
/// to that file and read through [`TableReader`] (text column `text`, id column `id`), every
/// row (at most [`MAX_TABLE_ROWS`]). Paths in binary columns resolve to [`TABLE_BLOB`].
///
/// `Ok(rows)` when the file opened and every row read came back as a row (a row whose bytes
/// are missing still counts), `Err` at the first error.
pub fn tables(data: &[u8]) -> Outcome {
    let (selector, body) = split(data);
    let name = TABLE_FILES[selector % TABLE_FILES.len()];
    let Some(format) = TableFormat::from_name(name) else {
        unreachable!("every name of TABLE_FILES has a table extension")
    };
    let dir = scratch();
    let path = dir.path().join(name);
    write(&path, body);
    let blob = dir.path().join(TABLE_BLOB);
    write(&blob, b"the bytes of a binary column's path");
    // Production's confinement (the scratch folder is the root), with every path value sent to
    // the blob: the fuzzer reaches the read path whatever name it writes.
    let resolve = PathResolver::new(dir.path(), move |_: &str| Ok(blob.clone()));
    let columns = ColumnSpec {
        text: "text".into(),
        id: Some("id".into()),
    };
    let reader = TableReader::open_with(&path, format, &columns, resolve, &ReadLimits::default())
        .map_err(text)?;
    let mut rows = 0;
    for row in reader.take(MAX_TABLE_ROWS) {
        let row = row.map_err(text)?;
        // Touch what the row carries, as a consumer would.
        let _ = (
            row.id.as_deref(),
            row.bytes.as_ref().map(Vec::len),
            row.metadata.len(),
        );
        rows += 1;
    }
    Ok(rows)
}

/// Loads a checkpoint folder whose `weights` file is `data` beside `config` (file names given),
/// onto the CPU backend as stored; `Ok(parameters)` of the config.
fn load_checkpoint(data: &[u8], weights: &str, config: (&str, &str)) -> Outcome {
    let dir = scratch();
    write(&dir.path().join(config.0), config.1.as_bytes());
    write(&dir.path().join(weights), data);
    let checkpoint = Checkpoint::open(dir.path()).map_err(text)?;
    // The tensor table and the report parse the file as well, on their own paths.
    if let Ok(tensors) = checkpoint.tensors() {
        let _ = tensors.len();
    }
    let device = Default::default();
    let model = checkpoint.load::<Cpu>(&device, None).map_err(text)?;
    drop(model);
    Ok(checkpoint.config.num_params())
}

/// Loads `data` as a Hugging Face hub checkpoint's `model.safetensors`, with
/// [`MICRO_CONFIG_JSON`] as its `config.json`: [`Checkpoint::open`] then
/// [`Checkpoint::load`] on the CPU backend.
pub fn checkpoint_safetensors(data: &[u8]) -> Outcome {
    load_checkpoint(
        data,
        "model.safetensors",
        ("config.json", MICRO_CONFIG_JSON),
    )
}

/// Loads `data` as Meta's `consolidated.pth` (a PyTorch pickle archive), with
/// [`MICRO_PARAMS_JSON`] as its `params.json`: [`Checkpoint::open`] then
/// [`Checkpoint::load`] on the CPU backend.
pub fn checkpoint_pth(data: &[u8]) -> Outcome {
    load_checkpoint(data, "consolidated.pth", ("params.json", MICRO_PARAMS_JSON))
}

/// The prefix of the WebDataset and entropy shards of [`readback`].
const SHARD_PREFIX: &str = "shard";

/// Reads an output back: the first byte picks a reader of [`READBACK_KINDS`], the rest is the
/// file it reads. `Ok(items)`: documents, samples, keys or batches read.
pub fn readback(data: &[u8]) -> Outcome {
    let (selector, body) = split(data);
    let dir = scratch();
    match READBACK_KINDS[selector % READBACK_KINDS.len()] {
        "stored_document" => {
            let doc = StoredDocument::parse(body, Path::new("fuzz.safetensors")).map_err(text)?;
            let result = doc.to_result(None);
            Ok(result.segments.len())
        }
        "webdataset_samples" => {
            let path = dir.path().join(format!("{SHARD_PREFIX}-000000.tar"));
            write(&path, body);
            let samples = read_shard(&path).map_err(text)?;
            for (_, json, doc) in &samples {
                let _ = doc.to_result(Some(json));
            }
            let documents = sidecar_documents_from_shard(&path).map_err(text)?;
            Ok(samples.len() + documents.len())
        }
        "webdataset_keys" => {
            let path = dir.path().join(format!("{SHARD_PREFIX}-000000.tar"));
            write(&path, body);
            let members = blt_datasets::tar_index(&path).map_err(text)?;
            let keys = WebDatasetSink::completed_keys(dir.path(), SHARD_PREFIX).map_err(text)?;
            Ok(members.len() + keys.len())
        }
        "sidecar" => {
            let path = dir.path().join("fuzz.sidecar.sqlite");
            write(&path, body);
            sidecar(&path).map_err(text)
        }
        "entropy_arrow" => entropy_shard(dir.path(), body, EntropyFileFormat::Arrow),
        "entropy_parquet" => entropy_shard(dir.path(), body, EntropyFileFormat::Parquet),
        other => unreachable!("no reader {other}"),
    }
}

/// Every read-only query of a sidecar; `Ok(documents)`.
fn sidecar(path: &Path) -> blt_sidecar::Result<usize> {
    let sidecar = HypergraphSidecar::open(path)?;
    let _ = sidecar.meta()?;
    let keys = sidecar.document_keys()?;
    let documents = sidecar.documents()?;
    for key in keys.iter().take(8) {
        let _ = sidecar.document(key)?;
        let _ = sidecar.leaves_in_range(key, 0..u64::MAX)?;
        let _ = sidecar.leaves_in_range(key, 1..3)?;
    }
    let _ = sidecar.export_json()?;
    let _ = sidecar.summary()?;
    Ok(documents.len())
}

/// An entropy shard with its `.complete` marker: read whole, then its keys for resume.
fn entropy_shard(dir: &Path, body: &[u8], format: EntropyFileFormat) -> Outcome {
    let path: PathBuf = dir.join(format!(
        "{SHARD_PREFIX}.shard_000000.{}",
        format.extension()
    ));
    write(&path, body);
    write(&blt_datasets::complete_marker(&path), b"");
    let batches = blt_datasets::read_shard(&path, format, None).map_err(text)?;
    let keys = EntropyShardSink::completed_keys(dir, SHARD_PREFIX, format).map_err(text)?;
    Ok(batches.iter().map(|b| b.num_rows()).sum::<usize>() + keys.len())
}

/// Runs blt-pretokenize's video segmenter (FFmpeg) with default options on `data`;
/// `Ok(segments)`.
#[cfg(feature = "video")]
pub fn video(data: &[u8]) -> Outcome {
    use blt_pretokenize::{Segmenter, VideoSegmenter};
    let segments = VideoSegmenter::default().segment(data).map_err(text)?;
    Ok(segments.len())
}

/// Pre-tokenizes a document with default options: the first byte picks a case of
/// [`PRETOKENIZE_CASES`] (detection, or a forced modality, with a file name for the code
/// grammars), the rest is the document. `Ok(segments)` (or container members).
pub fn pretokenize(data: &[u8]) -> Outcome {
    let (selector, body) = split(data);
    let (forced_modality, name) = PRETOKENIZE_CASES[selector % PRETOKENIZE_CASES.len()];
    let pretokenizer = Pretokenizer::new(PretokenizeOptions {
        forced_modality,
        ..PretokenizeOptions::default()
    });
    let (_, out) = pretokenizer
        .pretokenize(body, name.map(Path::new))
        .map_err(text)?;
    Ok(match out {
        Pretokenized::Segments(segments) => segments.len(),
        Pretokenized::Container(contents) => contents.members.len(),
    })
}
