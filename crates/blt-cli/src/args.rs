//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::device::DeviceSpec;

/// Entropy patching of raw bytes with Meta's Byte Latent Transformer (BLT) entropy model.
#[derive(Debug, Parser)]
#[command(name = "blt", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); BLT_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Compute per-byte entropies of a text or file and cut it into patches.
    #[command(after_help = "Examples:\n  \
        blt patch --model path/to/model --text 'Hello, world'\n  \
        blt patch --model facebook/blt-entropy --file notes.txt --json\n  \
        blt patch --model path/to/model --file data.bin --mode space")]
    Patch(PatchArgs),
    /// Run the entropy model over files, folders or text and write patched outputs with SQLite
    /// hypergraph sidecars (safetensors per document, or WebDataset shards).
    #[command(after_help = "Examples:\n  \
        blt ingest --model path/to/model --input corpus/ --output out/\n  \
        blt ingest --model path/to/model --input corpus/ --glob '*.txt' --format webdataset --output shards/\n  \
        find data -name '*.md' | blt ingest --model path/to/model --stdin-list --output out/ --resume\n  \
        blt ingest --input corpus/ --records --text-column content --format parquet --output out/\n  \
        blt ingest --hf-dataset HuggingFaceFW/fineweb-edu --hf-config sample-10BT --split train \\\n      \
        --format arrow --rank 3 --world-size 64 --output /scratch/fineweb-edu-entropies")]
    Ingest(IngestArgs),
    /// Merge the per-rank stats of a job array's output folder (stats/<rank>.json,
    /// completions/<rank>) into one summary, printed and written to DIR/stats.json.
    #[command(after_help = "Example:\n  blt merge-stats /scratch/fineweb-edu-entropies --json")]
    MergeStats(MergeStatsArgs),
    /// Detect each file's format and modality (magic bytes, shebang, extension, fallback).
    #[command(after_help = "Examples:\n  \
        blt detect /bin/ls notes.txt photo.jpg\n  \
        blt detect --segments --json src/main.rs")]
    Detect(DetectArgs),
    /// Summarise an output: a safetensors file, a WebDataset shard or a sidecar database.
    #[command(after_help = "Example:\n  blt inspect out/notes_txt-1a2b3c4d5e6f7a8b.safetensors")]
    Inspect(InspectArgs),
    /// Train an entropy model on a corpus (next-byte prediction); writes a checkpoint in the
    /// reference layout that every other command loads.
    #[command(after_help = "Examples:\n  \
        blt train --corpus texts/ --output my-model --config small --steps 2000\n  \
        blt train --corpus code/ --output code-model --init path/to/blt-entropy --steps 500 --lr 1e-4\n  \
        blt train --corpus texts/ --output my-model --steps 2000 --resume")]
    Train(TrainArgs),
    /// Show a checkpoint's config, parameter count, dtype and tensors, and what is missing.
    #[command(after_help = "Example:\n  blt inspect-model path/to/blt-entropy")]
    InspectModel(InspectModelArgs),
    /// Measure a model on a corpus: bits per byte (next-byte cross-entropy), mean entropy and
    /// patch statistics.
    #[command(after_help = "Examples:\n  \
        blt eval --model path/to/model --corpus held-out/\n  \
        blt eval --model path/to/model --corpus docs/ notes.txt --glob '*.md' --json\n  \
        blt eval --model facebook/blt-entropy --corpus held-out/ --threshold 1.7 --max-patch-length 16\n\n\
        Every target the model predicts is scored: each byte and the EOS (documents are BOS + bytes\n\
        + EOS); bits/byte = their loss in bits / input bytes. Mean patch length = sum of patch\n\
        lengths / patches (token positions, BOS and EOS included).")]
    Eval(EvalArgs),
    /// Find the entropy threshold that gives a target mean patch length on a corpus and write it
    /// into the model's config.json as its default threshold.
    #[command(after_help = "Examples:\n  \
        blt calibrate --model path/to/model --corpus sample/ --target-mean-patch 4.5\n  \
        blt calibrate --model path/to/model --corpus sample/ --target-mean-patch 6 --dry-run --json\n\n\
        Mean patch length = sum of patch lengths / patches over the corpus (token positions, BOS\n\
        and EOS included), under the global rule with the preprocessing convention (what `blt\n\
        patch` and `blt ingest` use by default). Only the facebook/blt-entropy layout\n\
        (config.json + model.safetensors) can take the threshold; --dry-run works on any.")]
    Calibrate(CalibrateArgs),
    /// Draw one document's entropies and patches as a self-contained HTML report (and a PNG).
    #[command(after_help = "Examples:\n  \
        blt viz --text 'The Byte Latent Transformer' --output report.html\n  \
        blt viz --file notes.txt --output report.html --png plot.png\n  \
        blt viz out/notes_txt-1a2b3c4d5e6f7a8b.safetensors --output report.html")]
    Viz(crate::viz::VizArgs),
    /// Corpus statistics of an ingest output folder: entropy percentiles and histogram, patch
    /// lengths, bytes per modality, document sizes and errors, as JSON and an HTML page.
    #[command(after_help = "Examples:\n  \
        blt stats out/\n  \
        blt stats out/ --json --batch-stats\n  \
        blt stats out/ --html stats.html --histogram-output entropy_histogram.json --bins 50")]
    Stats(crate::stats::StatsArgs),
    /// Water-fill the patches of an ingest output onto hypersphere shells by prominence
    /// (see `blt_viz::sphere` for the exact definition).
    #[command(after_help = "Examples:\n  \
        blt sphere out/\n  \
        blt sphere out/ --shells 128 --capacity-exponent 1.5 --entropy-weighted --npz")]
    Sphere(crate::sphere::SphereArgs),
}

/// Where the model comes from and how it runs.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model: a checkpoint directory (or weights file), or a Hugging Face repo id such as
    /// `facebook/blt-entropy` (resolved through the HF cache; HF_TOKEN, HF_HUB_OFFLINE apply).
    /// Default: the small model built into blt (see `blt-default-model`).
    #[arg(long, env = "BLT_MODEL")]
    pub model: Option<String>,
    /// Revision of a Hub repo (branch, tag or commit).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Device: cpu, cuda[:N] or wgpu[:N] (each needs its cargo feature).
    #[arg(long, default_value = "cpu", env = "BLT_DEVICE")]
    pub device: DeviceSpec,
    /// Compute dtype of the model (entropies are always computed in f32). Default: f32 on the
    /// CPU, as stored on GPUs.
    #[arg(long)]
    pub dtype: Option<DTypeArg>,
    /// Store the linear layers' weights quantized (int8 or int4, one scale per 32 weights); the
    /// products still run in the compute dtype. Saves weight memory, not time.
    #[arg(long, value_parser = ["int8", "int4"])]
    pub quantize: Option<String>,
}

/// Model compute dtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    F16,
}

/// Patching rules, as the reference's `PatcherArgs`.
#[derive(Debug, Args)]
pub struct PatchingArgs {
    /// Patching mode.
    #[arg(long, default_value = "entropy", value_parser = ["entropy", "space", "static", "byte", "bpe"])]
    pub mode: String,
    /// Entropy threshold in nats (global rule; with --monotonic a threshold on differences).
    /// Default: the model's calibrated threshold, else 1.335442066192627.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Global + monotonic rule: also require an entropy rise above this.
    #[arg(long)]
    pub threshold_add: Option<f32>,
    /// Monotonic (relative) rule: H[t-1] - H[t-2] > threshold.
    #[arg(long)]
    pub monotonic: bool,
    /// Top-k rule: choose the S/patch-size - 2 highest entropies instead of a threshold.
    #[arg(long, conflicts_with_all = ["threshold", "monotonic", "threshold_add"])]
    pub top_k: bool,
    /// Split patches longer than this.
    #[arg(long)]
    pub max_patch_length: Option<usize>,
    /// Patch size for --mode static and --top-k.
    #[arg(long, default_value_t = 4.5)]
    pub patch_size: f32,
    /// Cover one extra, not yet seen position (lengths sum to S+1), as generation does.
    #[arg(long)]
    pub include_next_token: bool,
}

/// Arguments of `blt patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text to patch (its UTF-8 bytes).
    #[arg(long, group = "input", required = true)]
    pub text: Option<String>,
    /// File to patch (its raw bytes; any content).
    #[arg(long, group = "input", required = true)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub patching: PatchingArgs,
    /// Print one JSON object {"ids", "entropies", "patch_starts", "patch_lengths"}.
    #[arg(long)]
    pub json: bool,
    /// Do not add BOS (id 1) before the bytes.
    #[arg(long)]
    pub no_bos: bool,
    /// Do not add EOS (id 2) after the bytes.
    #[arg(long)]
    pub no_eos: bool,
}

/// Output layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// `<key>.safetensors` + `<key>.hypergraph.sqlite` per document.
    Safetensors,
    /// `shard-NNNNNN.tar` WebDataset shards + `shard-NNNNNN.hypergraph.sqlite` per shard.
    Webdataset,
    /// `shard.shard_NNNNNN.arrow` + `.complete`: Meta's precomputed-entropies layout
    /// (sample_id, text, entropies: list<float16>).
    Arrow,
    /// `shard.shard_NNNNNN.parquet` + `.complete`: sample_id, text, bytes, entropies,
    /// patch_lengths, metadata; provenance in the file's key-value metadata.
    Parquet,
}

/// Which embeddings to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbeddingsArg {
    /// None.
    None,
    /// Mean pre-norm hidden state per patch, `[P, dim]` f16.
    Patch,
    /// Pre-norm hidden state per byte, `[S, dim]` f16 (large: 2·dim bytes per input byte).
    Byte,
}

/// Arguments of `blt ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A text to ingest as one document.
    #[arg(long, group = "source", required = true)]
    pub text: Option<String>,
    /// One file.
    #[arg(long, group = "source", required = true)]
    pub file: Option<PathBuf>,
    /// A folder, walked recursively in sorted order.
    #[arg(long, group = "source", required = true)]
    pub input: Option<PathBuf>,
    /// Only files whose path relative to --input matches (e.g. '*.txt', 'docs/**/*.md').
    #[arg(long, requires = "input")]
    pub glob: Option<String>,
    /// Read file paths from standard input, one per line.
    #[arg(long, group = "source", required = true)]
    pub stdin_list: bool,
    /// A Hugging Face dataset repo id (e.g. HuggingFaceFW/fineweb-edu): every shard of the
    /// split, downloaded one at a time into the HF cache (HF_HOME, HF_HUB_CACHE, HF_TOKEN,
    /// HF_HUB_OFFLINE apply).
    #[arg(long, group = "source", required = true)]
    pub hf_dataset: Option<String>,
    /// Config (subset) of --hf-dataset, e.g. sample-10BT.
    #[arg(long, requires = "hf_dataset")]
    pub hf_config: Option<String>,
    /// Split of --hf-dataset.
    #[arg(long, default_value = "train", requires = "hf_dataset")]
    pub split: String,
    /// Revision (branch, tag or commit) of --hf-dataset.
    #[arg(long, default_value = "main", requires = "hf_dataset")]
    pub hf_revision: String,
    /// Read --file / --input / --stdin-list files as tables (JSONL[.gz|.zst], CSV, Parquet,
    /// Arrow), one document per row. Implied by --text-column and --id-column.
    #[arg(long)]
    pub records: bool,
    /// The column holding each document (string, binary, or an Image/Audio {bytes, path}
    /// struct). Default: text.
    #[arg(long)]
    pub text_column: Option<String>,
    /// The column holding each document's id (the readable part of its key).
    #[arg(long)]
    pub id_column: Option<String>,
    /// Pass over this many documents of this rank's share first.
    #[arg(long, default_value_t = 0)]
    pub skip: u64,
    /// Process at most this many documents (after --skip) of this rank's share.
    #[arg(long)]
    pub limit: Option<u64>,
    /// This process's rank in a job array (default: SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX
    /// or RANK). With ranks, --resume is implied and a rank whose completions/<rank> exists is
    /// skipped.
    #[arg(long)]
    pub rank: Option<usize>,
    /// Number of ranks (default: SLURM_ARRAY_TASK_COUNT, BLT_WORLD_SIZE or WORLD_SIZE).
    #[arg(long)]
    pub world_size: Option<usize>,
    /// Output folder (created if missing).
    #[arg(long)]
    pub output: PathBuf,
    /// Output layout.
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: FormatArg,
    /// Embeddings to store.
    #[arg(long, value_enum, default_value = "patch")]
    pub embeddings: EmbeddingsArg,
    #[command(flatten)]
    pub patching: PatchingArgs,
    /// Skip documents whose outputs are already complete.
    #[arg(long)]
    pub resume: bool,
    /// Refuse documents larger than this many bytes (counted as failed). Never more than this
    /// is read from a file, a row or a stream, whatever size it claims.
    #[arg(long, default_value_t = blt_pipeline::DEFAULT_MAX_DOC_BYTES)]
    pub max_doc_bytes: u64,
    /// Refuse documents whose hidden states (tokens × model dim × 4 bytes per sequence) would
    /// pass this many bytes when embeddings are stored (counted as failed).
    #[arg(long, default_value_t = blt_pipeline::DEFAULT_MAX_HIDDEN_BYTES)]
    pub max_hidden_bytes: u64,
    /// Tables: refuse one JSONL line or CSV record longer than this many bytes (that row is
    /// counted as failed; reading goes on with the next).
    #[arg(long, default_value_t = blt_datasets::DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: u64,
    /// Tables: refuse a file that a row names by path (`{bytes: null, path}`) when it is larger
    /// than this many bytes. Such paths are read only inside the table's folder (or the Hub
    /// dataset's snapshot).
    #[arg(long, default_value_t = blt_datasets::DEFAULT_MAX_REFERENCED_FILE_BYTES)]
    pub max_referenced_file_bytes: u64,
    /// Stop at the first bad document (default: log it, count it, go on).
    #[arg(long)]
    pub fail_fast: bool,
    /// Also write each sidecar as JSON next to it.
    #[arg(long)]
    pub export_json: bool,
    /// Roll WebDataset shards at this many bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub shard_max_bytes: u64,
    /// Roll WebDataset shards at this many samples.
    #[arg(long, default_value_t = 10_000)]
    pub shard_max_count: usize,
    /// Document bytes gathered into one model batch.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// Most tokens (rows × padded length) in one forward pass.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_batch_tokens: usize,
    /// Threads writing per-document outputs at once (0: one per core, at most 8).
    #[arg(long, default_value_t = 0)]
    pub write_threads: usize,
    /// Do not add BOS (id 1) before each segment.
    #[arg(long)]
    pub no_bos: bool,
    /// Do not add EOS (id 2) after each segment.
    #[arg(long)]
    pub no_eos: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub pretokenize: PretokenizeArgs,
    /// How segments reach the model: each its own sequence, or the document's segments
    /// concatenated with EOS between them.
    #[arg(long, value_enum, default_value = "separate")]
    pub segment_mode: SegmentModeArg,
    /// Print the written documents and segments per modality (also in run.json).
    #[arg(long)]
    pub modality_stats: bool,
}

/// How segments reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SegmentModeArg {
    /// `BOS + segment + EOS` per segment: a segment's entropies do not depend on its neighbours.
    Separate,
    /// `BOS + s1 + EOS + s2 + EOS …` per document: context across segments.
    Concatenated,
}

/// Detection and pre-tokenization knobs (shared by `blt ingest` and `blt detect`).
#[derive(Debug, Args)]
pub struct PretokenizeArgs {
    /// Route every document to this modality instead of the detected one: text, code, image,
    /// audio, video, pdf, binary, container.
    #[arg(long)]
    pub modality: Option<String>,
    /// How text is split into segments (`pretokenizer`: by a Hugging Face pre-tokenizer, see
    /// --text-pretokenizer).
    #[arg(long, default_value = "whole", value_parser = ["whole", "paragraphs", "lines", "pretokenizer"])]
    pub text_split: String,
    /// With --text-split pretokenizer: a Hugging Face `tokenizer.json` (its `pre_tokenizer`
    /// section is used) or a bare pre-tokenizer JSON such as {"type": "Whitespace"}. Segments are
    /// groups of pre-tokens (their original byte ranges); the bytes between groups that no
    /// pre-token covers, and invalid UTF-8 runs, are segments of their own.
    #[arg(long, value_name = "FILE")]
    pub text_pretokenizer: Option<PathBuf>,
    /// With --text-split pretokenizer: pre-tokens per segment (1: every pre-token and every gap
    /// is a segment). The default, about 300 bytes of English, keeps a few sentences of context
    /// per model sequence.
    #[arg(long, default_value_t = 64)]
    pub text_pretokens_per_segment: usize,
    /// Cut text segments longer than this many bytes.
    #[arg(long)]
    pub text_max_segment_bytes: Option<usize>,
    /// Refuse text documents that would split into more segments than this.
    #[arg(long, default_value_t = blt_pretokenize::DEFAULT_MAX_TEXT_SEGMENTS)]
    pub text_max_segments: usize,
    /// Do not attach the comments and attributes right above a code unit to it.
    #[arg(long)]
    pub code_detached_comments: bool,
    /// Only page texts for PDFs (no raw-file view).
    #[arg(long)]
    pub pdf_no_raw_view: bool,
    /// Extract the text of at most this many PDF pages.
    #[arg(long, default_value_t = 10_000)]
    pub pdf_max_pages: usize,
    /// Refuse PDFs whose page texts add up to more than this many bytes (pages that share one
    /// content stream count once per page).
    #[arg(long, default_value_t = blt_pretokenize::DEFAULT_MAX_PDF_TEXT_BYTES)]
    pub pdf_max_text_bytes: usize,
    /// Refuse executables with more sections than this.
    #[arg(long, default_value_t = 65_536)]
    pub binary_max_sections: usize,
    /// Refuse ZIP archives with more entries than this.
    #[arg(long, default_value_t = 10_000)]
    pub zip_max_members: usize,
    /// Skip ZIP members larger than this many bytes (decompressed).
    #[arg(long, default_value_t = 256 << 20)]
    pub zip_max_member_bytes: u64,
    /// Refuse ZIP archives that expand to more than this many bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub zip_max_total_bytes: u64,
    /// Skip ZIP members compressed more than this many times (decompression bombs).
    #[arg(long, default_value_t = 200)]
    pub zip_max_ratio: u64,
    /// Downscale images so their longer side is at most this many pixels (never upscaled);
    /// `none` keeps the decoded size.
    #[arg(long, value_name = "PX|none", default_value_t = OrNone(Some(256)))]
    pub image_max_side: OrNone<u32>,
    /// Side of the square image patches in pixels; `none` makes each image one segment.
    #[arg(long, value_name = "PX|none", default_value_t = OrNone(Some(16)))]
    pub image_patch_size: OrNone<u32>,
    /// Distance between neighbouring image patches (at most the patch size; default: the
    /// patch size, i.e. no overlap).
    #[arg(long, value_name = "PX")]
    pub image_patch_stride: Option<u32>,
    /// Pixel layout of image patches.
    #[arg(long, value_enum, default_value = "rgb8")]
    pub image_color: ImageColorArg,
    /// Refuse images with more pixels than this (read from the header, before decoding;
    /// default: Pillow's limit).
    #[arg(long, default_value_t = 89_478_485)]
    pub image_max_decoded_pixels: u64,
    /// Also emit each image file's own bytes as a first, raw segment.
    #[arg(long)]
    pub image_include_file_bytes: bool,
    /// Resample audio (files and video sound tracks) to this rate in Hz; `none` keeps the
    /// file's rate.
    #[arg(long, value_name = "HZ|none", default_value_t = OrNone(Some(16_000)))]
    pub audio_sample_rate: OrNone<u32>,
    /// Keep every audio channel (interleaved) instead of mixing down to mono.
    #[arg(long)]
    pub audio_keep_channels: bool,
    /// Length of one audio frame segment in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub audio_frame_ms: u32,
    /// Refuse audio that decodes to more samples than this (all channels, before resampling;
    /// default: one hour of 48 kHz stereo).
    #[arg(long, default_value_t = 345_600_000)]
    pub audio_max_decoded_samples: u64,
    /// Also emit each audio file's own bytes as a first, raw segment.
    #[arg(long)]
    pub audio_include_file_bytes: bool,
    /// Keep this many video frames per second of presentation time; `none` keeps every frame.
    /// (Video is decoded only when blt is built with the `video` feature; without it these
    /// flags are checked and a video stays one raw segment.)
    #[arg(long, value_name = "FPS|none", default_value_t = OrNone(Some(1.0)))]
    pub video_fps: OrNone<f64>,
    /// Downscale video frames so their longer side is at most this many pixels; `none` keeps
    /// the decoded size.
    #[arg(long, value_name = "PX|none", default_value_t = OrNone(Some(256)))]
    pub video_max_side: OrNone<u32>,
    /// Refuse videos whose frames have more pixels than this.
    #[arg(long, default_value_t = 89_478_485)]
    pub video_max_decoded_pixels: u64,
    /// Refuse videos that would give more kept frames than this.
    #[arg(long, default_value_t = 7200)]
    pub video_max_frames: u64,
    /// Refuse videos whose kept frames add up to more pixels than this.
    #[arg(long, default_value_t = blt_pretokenize::DEFAULT_MAX_TOTAL_VIDEO_PIXELS)]
    pub video_max_total_pixels: u64,
    /// Do not decode video sound tracks (their audio is framed by the --audio-* flags).
    #[arg(long)]
    pub video_no_audio: bool,
    /// Also emit each video file's own bytes as a first, raw segment.
    #[arg(long)]
    pub video_include_file_bytes: bool,
}

/// A number, or `none` (no limit, keep as is).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrNone<T>(pub Option<T>);

impl<T: std::str::FromStr> std::str::FromStr for OrNone<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Self(None));
        }
        s.parse()
            .map(|v| Self(Some(v)))
            .map_err(|e| format!("{s:?} is neither a number nor `none`: {e}"))
    }
}

impl<T: std::fmt::Display> std::fmt::Display for OrNone<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// Pixel layouts of image patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageColorArg {
    /// 3 bytes per pixel, R G B (alpha dropped).
    Rgb8,
    /// 4 bytes per pixel, R G B A.
    Rgba8,
    /// 1 byte per pixel, luminance.
    Luma8,
}

/// Arguments of `blt detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Files to look at.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also list each file's segments (label, modality, byte range).
    #[arg(long)]
    pub segments: bool,
    /// Print one JSON object per file.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pretokenize: PretokenizeArgs,
}

/// Arguments of `blt merge-stats`.
#[derive(Debug, Args)]
pub struct MergeStatsArgs {
    /// The output folder of the ranks (holding stats/ and completions/).
    pub dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `blt inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A `.safetensors` output, a `.tar` shard or a `.hypergraph.sqlite` sidecar.
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `blt train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training files or folders (every file is one document).
    #[arg(long, required = true, num_args = 1..)]
    pub corpus: Vec<PathBuf>,
    /// Held-out files or folder (default: the last --eval-fraction of the corpus documents).
    #[arg(long)]
    pub eval_corpus: Option<PathBuf>,
    /// Fraction of the corpus documents held out when no --eval-corpus is given.
    #[arg(long, default_value_t = 0.01)]
    pub eval_fraction: f64,
    /// Output checkpoint directory (config.json + model.safetensors).
    #[arg(long)]
    pub output: PathBuf,
    /// Model shape: tiny, small (dim 256, 6 layers, 5.3 M parameters), blt-entropy (768, 14
    /// layers, 99.5 M) or a config.json.
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Fine-tune this checkpoint instead of starting from random weights.
    #[arg(long, conflicts_with = "config")]
    pub init: Option<PathBuf>,
    /// Continue the run recorded in OUTPUT/training_state.json.
    #[arg(long)]
    pub resume: bool,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup_steps: usize,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f32,
    /// Clip each parameter's gradient to this L2 norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// Seed of the initial weights and the data order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluate on held-out data every this many steps.
    #[arg(long, default_value_t = 200)]
    pub eval_every: usize,
    /// Held-out windows per evaluation.
    #[arg(long, default_value_t = 128)]
    pub eval_windows: usize,
    /// Write a checkpoint (OUTPUT/step-N) every this many steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Store the final weights in BF16 (half the size) instead of F32.
    #[arg(long)]
    pub save_bf16: bool,
    /// Device: cpu, cuda[:N] or wgpu[:N].
    #[arg(long, default_value = "cpu", env = "BLT_DEVICE")]
    pub device: DeviceSpec,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// Arguments of `blt inspect-model`.
#[derive(Debug, Args)]
pub struct InspectModelArgs {
    /// Checkpoint directory or weights file, or a Hub repo id.
    pub model: String,
    /// Revision of a Hub repo.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A corpus of files to evaluate or calibrate on.
#[derive(Debug, Args)]
pub struct CorpusArgs {
    /// Corpus files or folders (folders walked recursively; every file is one document).
    #[arg(long = "corpus", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Only files whose path relative to a --corpus folder matches (e.g. '*.txt').
    #[arg(long)]
    pub glob: Option<String>,
}

/// Arguments of `blt eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    #[command(flatten)]
    pub patching: PatchingArgs,
    /// Print one JSON object (the report's fields).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `blt calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// The mean patch length to reach (token positions per patch, BOS and EOS included).
    #[arg(long)]
    pub target_mean_patch: f64,
    /// Find and print the threshold, but do not write it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
