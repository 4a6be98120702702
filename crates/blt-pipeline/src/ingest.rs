//! `ingest`: many documents → per-document outputs (or WebDataset shards) with SQLite sidecars.
//!
//! Four stages overlap through bounded channels: a reader thread (enumerate, skip what is
//! complete, read, pre-tokenize), the model on the calling thread (tokenize, estimate in batches:
//! nothing else, so the device is fed as fast as the host can launch), a post-processing thread
//! (patch, pool embeddings, assemble results) and a writer thread (records, sidecars, atomic
//! renames, counts). Any stage that stops early drops its end of a channel, and the others notice
//! and stop: no deadlock. A bad document is counted and logged and the run goes on, unless
//! `fail_fast`. Each stage's busy time is in the run's counts, so a slow run says which stage set
//! its pace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use blt_datasets::{
    DocumentRef, EntropyRow, EntropyShardOptions, EntropyShardSink, InputSpec, ReadLimits,
    SafetensorsDirSink, Selection, ShardOptions, SourceItem, WebDatasetSink,
};
use blt_model::backend::Backend;
use blt_model::{EntropyEstimator, EstimateOptions};
use blt_patcher::Patcher;
use blt_pretokenize::{Detection, Modality, Pretokenized, Pretokenizer, Segment};
use blt_sidecar::{HypergraphSidecar, Journal};
use blt_tokenizer::BltTokenizer;
use serde::Serialize;

use crate::document::{mean_rows, DetectionSummary, DocumentResult, EmbeddingsMode, SegmentResult};
use crate::stage::{guarded, Stage};
use crate::{Error, Result};

/// How outputs are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// `<key>.safetensors` + `<key>.hypergraph.sqlite` per document.
    Safetensors,
    /// `shard-NNNNNN.tar` (`<key>.json` + `<key>.safetensors` per sample) +
    /// `shard-NNNNNN.hypergraph.sqlite` per shard.
    WebDataset(ShardOptions),
    /// `<prefix>.shard_NNNNNN.arrow` (Meta's precomputed-entropies layout) or `.parquet` (with
    /// patch lengths and provenance), each followed by a `.complete` marker. No sidecars.
    EntropyShards(EntropyShardOptions),
}

/// How a document's segments are fed to the entropy model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentMode {
    /// Each segment is its own sequence (`BOS + bytes + EOS`). The default: a segment's
    /// entropies do not depend on the segments before it (a PDF page's text is not conditioned
    /// on the compressed file bytes, a code unit not on the unit before it), so outputs are
    /// stable when a segmenter's options change, and short segments batch well.
    #[default]
    Separate,
    /// The document's segments concatenated into one sequence, each ended by EOS
    /// (`BOS + s1 + EOS + s2 + EOS …`): the model keeps the context across segments (paragraphs
    /// or lines of one text). Per-segment results are the slices of that one sequence.
    Concatenated,
}

impl SegmentMode {
    /// The name used on the command line and in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Separate => "separate",
            Self::Concatenated => "concatenated",
        }
    }
}

/// Everything an ingest run needs besides the model.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// What to read.
    pub input: InputSpec,
    /// Where outputs go (created if missing).
    pub output_dir: PathBuf,
    /// Output layout.
    pub format: OutputFormat,
    /// Embeddings to store.
    pub embeddings: EmbeddingsMode,
    /// Patching rules.
    pub patcher: Patcher,
    /// BOS/EOS handling.
    pub tokenizer: BltTokenizer,
    /// Documents larger than this are refused (counted as failed); no document's buffer is
    /// sized from what a file or row claims beyond it. [`DEFAULT_MAX_DOC_BYTES`] is a safe
    /// default.
    pub max_doc_bytes: u64,
    /// Most bytes of hidden states one model sequence may ask for when embeddings are stored
    /// (tokens × model dim × 4: 1 KiB per byte on the built-in model, 3 KiB on Meta's); a
    /// longer segment's document fails alone. [`DEFAULT_MAX_HIDDEN_BYTES`] is the default.
    pub max_hidden_bytes: u64,
    /// Limits on table rows and the files they name (`max_record_bytes`,
    /// `max_referenced_file_bytes`).
    pub read_limits: ReadLimits,
    /// Skip documents whose outputs are already complete.
    pub resume: bool,
    /// Stop at the first bad document.
    pub fail_fast: bool,
    /// Also write each sidecar as JSON.
    pub export_json: bool,
    /// Most document bytes gathered for one model batch.
    pub batch_bytes: usize,
    /// Most tokens in one forward pass.
    pub max_batch_tokens: usize,
    /// Documents buffered between stages.
    pub channel_capacity: usize,
    /// Threads writing per-document outputs (safetensors + sidecar) at once; 0 = one per core,
    /// at most 8. Each document's files are synced to disk, so several writers hide each
    /// other's sync latency. Shards (WebDataset, Arrow, Parquet) are written by one thread.
    pub write_threads: usize,
    /// Metadata copied into every output (model id, hash, dtype, patching rules…).
    pub run_metadata: BTreeMap<String, String>,
    /// This process's share of the input (rank of a job array, `--skip`, `--limit`).
    pub selection: Selection,
    /// Run as one rank of a job array: shard names carry the rank, a rank whose
    /// `completions/<rank>` marker exists is skipped, outputs resume (as `resume`), and
    /// `stats/<rank>.json` then `completions/<rank>` are written when the rank is done.
    pub ranked: bool,
    /// Detection and the per-modality pre-tokenizers (containers are expanded into their
    /// members, each a document of its own).
    pub pretokenizer: Pretokenizer,
    /// How segments are fed to the model.
    pub segment_mode: SegmentMode,
}

/// The default of [`IngestConfig::max_doc_bytes`]: 2 GiB.
pub const DEFAULT_MAX_DOC_BYTES: u64 = 2 << 30;

/// The default of [`IngestConfig::max_hidden_bytes`]: 4 GiB.
pub const DEFAULT_MAX_HIDDEN_BYTES: u64 = 4 << 30;

/// A document that could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentFailure {
    /// Its key.
    pub key: String,
    /// Its path, if any.
    pub path: Option<String>,
    /// `read`, `pretokenize`, `model`, `postprocess` or `write` ([`Stage::as_str`]).
    pub stage: &'static str,
    /// Why.
    pub reason: String,
    /// When the document exceeded a limit: the option that sets it (`max_doc_bytes`,
    /// `max_hidden_bytes`, `audio.max_decoded_samples`, …), so that a caller can say how to
    /// raise it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<&'static str>,
}

/// Counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestStats {
    /// Documents found.
    pub documents: usize,
    /// Documents written by this run.
    pub written: usize,
    /// Documents skipped because their outputs were complete (`resume`).
    pub skipped: usize,
    /// Documents that failed.
    pub failed: usize,
    /// Input bytes of written documents.
    pub bytes: u64,
    /// Tokens of written documents.
    pub tokens: u64,
    /// Patches of written documents.
    pub patches: u64,
    /// Output files completed by this run.
    pub files: Vec<String>,
    /// The failures.
    pub failures: Vec<DocumentFailure>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Seconds the model stage waited for the reader (an idle model means slow input).
    pub model_wait_seconds: f64,
    /// Seconds the model stage spent tokenizing and estimating (launching forward passes and
    /// waiting for their results).
    pub model_seconds: f64,
    /// Seconds the model stage waited for the post-processing stage to take a batch (a model
    /// held up by the stages after it).
    pub model_blocked_seconds: f64,
    /// Seconds the post-processing stage spent patching, pooling embeddings and assembling
    /// results.
    pub postprocess_seconds: f64,
    /// Seconds the writer spent writing outputs and sidecars.
    pub write_seconds: f64,
    /// Written documents and their segments per modality (`--modality-stats`).
    pub modalities: BTreeMap<String, ModalityStats>,
    /// Written documents per detected format (`png`, `code:rust`, `text`, …).
    pub formats: BTreeMap<String, usize>,
}

/// Counts for one modality.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModalityStats {
    /// Written documents detected as this modality.
    pub documents: usize,
    /// Segments of this modality (in documents of any modality).
    pub segments: usize,
    /// Bytes the model saw in those segments (decoded content counts as its decoded length).
    pub bytes: u64,
}

/// Told about progress. `started`, `document_done` and `document_failed` are called from the
/// writer thread; `stage_started` from the thread of the stage it names.
pub trait IngestObserver: Sync {
    /// A document (its key) enters `stage`. Called inside the stage's panic boundary: a panic
    /// here is handled as a panic of that stage's work on that document (which is how tests
    /// inject faults).
    fn stage_started(&self, _stage: Stage, _key: &str) {}
    /// The run found `documents` documents of `bytes` bytes in all.
    fn started(&self, _documents: usize, _bytes: u64) {}
    /// One document is done (written, skipped or failed); `stats` are the counts so far.
    fn document_done(&self, _stats: &IngestStats, _bytes: u64) {}
    /// A document failed.
    fn document_failed(&self, _failure: &DocumentFailure) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl IngestObserver for Quiet {}

/// A document read and pre-tokenized, ready for the model.
struct Prepared {
    doc: DocumentRef,
    /// The path to report (`archive.zip!/inner/path` for a container member).
    source_path: Option<String>,
    bytes: Vec<u8>,
    detection: Detection,
    segments: Vec<Segment>,
    /// The file's modification time when it was read (documents read from files).
    modified_ns: Option<u128>,
}

enum Loaded {
    Doc(Box<Prepared>),
    Skipped(DocumentRef),
    Failed(DocumentFailure, u64),
}

enum ToWriter {
    /// A result, and the metadata of its table row.
    Done(Box<DocumentResult>, Option<serde_json::Value>),
    Skipped(u64),
    Failed(DocumentFailure, u64),
}

/// From the model stage to the post-processing stage, in input order.
enum ToPost {
    /// A batch and its model outputs.
    Estimated(Box<Estimated>),
    /// Passed on unchanged.
    Pass(ToWriter),
}

/// A batch of documents, their model sequences and the estimates of those sequences.
struct Estimated {
    batch: Vec<Prepared>,
    sequences: Vec<Vec<u32>>,
    /// Per document, per segment: its sequence and its token range in that sequence.
    spans: Vec<Vec<(usize, std::ops::Range<usize>)>>,
    estimates: Vec<blt_model::SequenceEstimate>,
}

/// Busy and waiting times of the model stage.
#[derive(Debug, Default, Clone, Copy)]
struct ModelTimes {
    waited: Duration,
    busy: Duration,
    blocked: Duration,
}

/// Suffix of sidecar files.
pub const SIDECAR_SUFFIX: &str = ".hypergraph.sqlite";

fn failure(doc: &DocumentRef, stage: Stage, e: &Error) -> DocumentFailure {
    DocumentFailure {
        key: doc.key.clone(),
        path: doc.origin_label(),
        stage: stage.as_str(),
        reason: e.to_string(),
        limit: limit_option(e),
    }
}

/// The option whose limit `e` reports, if it reports one.
fn limit_option(e: &Error) -> Option<&'static str> {
    use blt_datasets::Error as D;
    match e {
        Error::LimitExceeded { option, .. } => Some(option),
        Error::Dataset(D::TooLarge { .. } | D::TextTooLarge { .. } | D::RowTooLarge { .. }) => {
            Some("max_doc_bytes")
        }
        Error::Dataset(e) => e.option(),
        Error::Pretokenize(blt_pretokenize::PretokenizeError::LimitExceeded { option, .. }) => {
            Some(option)
        }
        _ => None,
    }
}

/// Runs an ingest.
///
/// Returns the counts; the caller decides what a failed document means for its exit status
/// (under `fail_fast` the run stops after the first failure and the counts say so). Errors are
/// reserved for what stops the whole run: an unreadable input spec, an unwritable output folder,
/// or an I/O error on a WebDataset shard (its open shard is lost; `resume` continues after the
/// last complete one).
pub fn ingest<B: Backend>(
    estimator: &EntropyEstimator<B>,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
) -> Result<IngestStats> {
    let start = Instant::now();
    std::fs::create_dir_all(&config.output_dir).map_err(|source| Error::Io {
        path: config.output_dir.clone(),
        source,
    })?;
    let rank = config.selection.rank;
    let stream =
        blt_datasets::open_documents_with(&config.input, &config.selection, &config.read_limits)?;
    let fingerprint = config.output_fingerprint(&stream.description);
    record_output_config(config, &fingerprint, &stream.description)?;
    if config.ranked {
        if let Some(stats) = crate::ranks::finished_rank(&config.output_dir, rank, &fingerprint)? {
            tracing::info!(
                rank = rank.rank,
                "this rank is complete (its completions/ marker exists): skipped"
            );
            return Ok(stats);
        }
    }
    let config = &ranked_config(config, &stream.description);
    observer.started(stream.documents_hint.unwrap_or(0), stream.bytes_hint);

    let complete: BTreeSet<String> = if config.resume {
        completed_keys(config)?
    } else {
        BTreeSet::new()
    };
    let cap = config.channel_capacity.max(1);
    let (load_tx, load_rx) = sync_channel::<Loaded>(cap);
    // Two batches between the model and post-processing: the model never waits for one
    // batch's patching before it starts the next.
    let (post_tx, post_rx) = sync_channel::<ToPost>(2);
    let (write_tx, write_rx) = sync_channel::<ToWriter>(cap);

    let (mut stats, times, post_busy) =
        std::thread::scope(|scope| -> Result<(IngestStats, ModelTimes, Duration)> {
            let reader =
                scope.spawn(|| read_documents(stream, &complete, config, observer, load_tx));
            let post = scope.spawn(|| {
                post_process(estimator.config().dim, config, observer, post_rx, write_tx)
            });
            let writer = scope.spawn(|| write_outputs(config, write_rx, observer));
            let times = run_model(estimator, config, observer, load_rx, post_tx);
            // Every stage is joined before any error is returned: a stage that failed closed
            // its channels, so the others have stopped. The writer's error comes first (it
            // says what was lost), then the reader's (input that was never read).
            let read = crate::stage::join(Stage::Read, reader).and_then(|r| r);
            let post_busy = crate::stage::join(Stage::Postprocess, post);
            let stats = crate::stage::join(Stage::Write, writer).and_then(|r| r)?;
            read?;
            Ok((stats, times, post_busy?))
        })?;
    stats.seconds = start.elapsed().as_secs_f64();
    stats.model_wait_seconds = times.waited.as_secs_f64();
    stats.model_seconds = times.busy.as_secs_f64();
    stats.model_blocked_seconds = times.blocked.as_secs_f64();
    stats.postprocess_seconds = post_busy.as_secs_f64();
    if config.ranked {
        // The marker says "nothing of this rank's share is left to do": not after a failure
        // (a resumed run retries the failed documents) nor after a partial share.
        let selection = &config.selection;
        let complete = stats.failed == 0 && selection.skip == 0 && selection.limit.is_none();
        crate::ranks::write_rank_stats(&config.output_dir, rank, &stats, complete, &fingerprint)?;
    }
    Ok(stats)
}

/// The file in an output folder that records the output configuration its outputs were made
/// with ([`IngestConfig::output_fingerprint`] and what it hashes).
pub const OUTPUT_CONFIG_FILE: &str = "ingest-config.json";

/// Records the output configuration in the output folder; a resumed run (or a rank) whose
/// configuration differs from the recorded one is refused before it writes anything.
fn record_output_config(
    config: &IngestConfig,
    fingerprint: &str,
    input: &BTreeMap<String, String>,
) -> Result<()> {
    let path = config.output_dir.join(OUTPUT_CONFIG_FILE);
    let resuming = config.resume || config.ranked;
    match std::fs::read(&path) {
        Ok(bytes) => {
            let recorded = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["fingerprint"].as_str().map(str::to_owned));
            match recorded {
                Some(recorded) if recorded == fingerprint => return Ok(()),
                Some(recorded) if resuming => {
                    return Err(Error::RankMismatch {
                        path,
                        reason: format!(
                            "the outputs there were made with another model, patching or output \
                             configuration, or from another revision of the input (fingerprint \
                             {recorded}, this run's {fingerprint}), so they cannot be resumed"
                        ),
                    })
                }
                None if resuming => {
                    return Err(Error::InvalidOutput {
                        path,
                        reason: "no output fingerprint in it".into(),
                    })
                }
                _ => {}
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Io { path, source }),
    }
    let record = serde_json::json!({
        "fingerprint": fingerprint,
        "hashed": config.fingerprint_fields(input),
    });
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| Error::Stage(e.to_string()))?;
    blt_datasets::write_atomic(&path, &bytes)?;
    Ok(())
}

impl IngestConfig {
    /// What every document's outputs depend on besides its bytes: the run metadata (model id
    /// and weights hash, patching rules; the producer's version left out), the output layout,
    /// the embeddings, the segment mode, the tokenizer and the patcher, and the input's
    /// description (`input`, from [`blt_datasets::DocumentStream`]: for a Hub dataset its
    /// resolved commit, so a moved revision is not resumed as if it were the same data).
    /// Limits, thread counts and shard sizes are not in it: they decide which documents are
    /// written and how outputs are grouped, not what a written document holds.
    pub fn fingerprint_fields(&self, input: &BTreeMap<String, String>) -> serde_json::Value {
        let input: BTreeMap<&String, &String> = input
            .iter()
            .filter(|(k, _)| k.as_str() != "rank_split")
            .collect();
        let metadata: BTreeMap<&String, &String> = self
            .run_metadata
            .iter()
            .filter(|(k, _)| k.as_str() != "producer_version")
            .collect();
        let layout = match &self.format {
            OutputFormat::Safetensors => "safetensors".to_owned(),
            OutputFormat::WebDataset(_) => "webdataset".to_owned(),
            OutputFormat::EntropyShards(opts) => format!("entropy-shards:{:?}", opts.format),
        };
        serde_json::json!({
            "metadata": metadata,
            "layout": layout,
            "embeddings": self.embeddings.as_str(),
            "segment_mode": self.segment_mode.as_str(),
            "tokenizer": format!("{:?}", self.tokenizer),
            "patcher": format!("{:?}", self.patcher),
            "input": input,
        })
    }

    /// The SHA-256 (first 16 hex digits) of [`fingerprint_fields`](Self::fingerprint_fields):
    /// recorded in the output folder and in completion markers, so that a resumed run never
    /// mixes outputs of two configurations.
    pub fn output_fingerprint(&self, input: &BTreeMap<String, String>) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.fingerprint_fields(input).to_string().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The configuration with the rank in shard names (when `ranked`, which also implies
/// `resume`) and the input's provenance in the entropy shards' metadata.
fn ranked_config(config: &IngestConfig, source: &BTreeMap<String, String>) -> IngestConfig {
    let mut config = config.clone();
    let label = config.selection.rank.label();
    if config.ranked {
        config.resume = true;
    }
    match &mut config.format {
        OutputFormat::WebDataset(opts) if config.ranked => {
            opts.prefix = format!("{label}-{}", opts.prefix);
        }
        OutputFormat::EntropyShards(opts) => {
            if config.ranked {
                opts.prefix = format!("{label}.{}", opts.prefix);
            }
            let mut metadata = config.run_metadata.clone();
            metadata.extend(source.iter().map(|(k, v)| (k.clone(), v.clone())));
            if config.ranked {
                metadata.insert("rank".into(), config.selection.rank.rank.to_string());
                metadata.insert(
                    "world_size".into(),
                    config.selection.rank.world_size.to_string(),
                );
            }
            metadata.extend(std::mem::take(&mut opts.metadata));
            opts.metadata = metadata;
        }
        _ => {}
    }
    config
}

fn completed_keys(config: &IngestConfig) -> Result<BTreeSet<String>> {
    match &config.format {
        OutputFormat::WebDataset(opts) => Ok(WebDatasetSink::completed_keys(
            &config.output_dir,
            &opts.prefix,
        )?),
        OutputFormat::EntropyShards(opts) => Ok(EntropyShardSink::completed_keys(
            &config.output_dir,
            &opts.prefix,
            opts.format,
        )?),
        OutputFormat::Safetensors
            if matches!(
                config.input,
                InputSpec::Tables { .. } | InputSpec::HfDataset { .. }
            ) =>
        {
            // Streamed inputs are not listed up front: look at what the folder holds.
            let sink = SafetensorsDirSink::new(&config.output_dir)?;
            let mut keys = BTreeSet::new();
            let entries = std::fs::read_dir(&config.output_dir).map_err(|source| Error::Io {
                path: config.output_dir.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(key) = name.strip_suffix(".safetensors") {
                    if sink.is_complete(key) && sidecar_path(&config.output_dir, key).is_file() {
                        keys.insert(key.to_string());
                    }
                }
            }
            Ok(keys)
        }
        OutputFormat::Safetensors => {
            let sink = SafetensorsDirSink::new(&config.output_dir)?;
            let mut keys = BTreeSet::new();
            for doc in blt_datasets::enumerate(&config.input)? {
                let sidecar = sidecar_path(&config.output_dir, &doc.key);
                let Some(recorded) = sink.complete_metadata(&doc.key) else {
                    continue;
                };
                if sidecar.is_file() && same_source(&doc, &recorded) {
                    keys.insert(doc.key);
                }
            }
            Ok(keys)
        }
    }
}

/// The reader stage. A panic while reading or pre-tokenizing one document is that document's
/// failure; a panic of the input itself (the iterator over files and rows) ends the stage with
/// an error, since what it would have yielded next is unknown.
/// A file's modification time in nanoseconds since the Unix epoch.
fn modified_ns(path: &Path) -> Option<u128> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos(),
    )
}

/// Whether a complete record (its metadata `recorded`) was made from `doc` as it is now: the
/// same length and, for a file, the same modification time. Records from before modification
/// times were kept are judged by length alone.
fn same_source(doc: &DocumentRef, recorded: &BTreeMap<String, String>) -> bool {
    let same_len = recorded
        .get("source_bytes")
        .is_none_or(|len| len.parse::<u64>().ok() == Some(doc.byte_len));
    let same_time = match (
        recorded.get(crate::document::SOURCE_MODIFIED_KEY),
        doc.path().and_then(modified_ns),
    ) {
        (Some(then), Some(now)) => then.parse::<u128>().ok() == Some(now),
        _ => true,
    };
    same_len && same_time
}

fn read_documents(
    mut docs: impl Iterator<Item = SourceItem>,
    complete: &BTreeSet<String>,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
    tx: SyncSender<Loaded>,
) -> Result<()> {
    // Container members are not in the enumeration: in the per-document layout their
    // completeness is checked on disk.
    let dir_sink = match config.format {
        OutputFormat::Safetensors => SafetensorsDirSink::new(&config.output_dir).ok(),
        OutputFormat::WebDataset(_) | OutputFormat::EntropyShards(_) => None,
    };
    let member_complete = |key: &str| {
        complete.contains(key)
            || (config.resume
                && dir_sink.as_ref().is_some_and(|sink| {
                    sink.is_complete(key) && sidecar_path(&config.output_dir, key).is_file()
                }))
    };
    while let Some(item) = guarded(Stage::Read, || Ok(docs.next()))? {
        let doc = match item {
            Ok(doc) => doc,
            Err(f) => {
                let failed = DocumentFailure {
                    key: f.key,
                    path: Some(f.origin),
                    stage: Stage::Read.as_str(),
                    reason: f.reason,
                    limit: f.option,
                };
                if tx.send(Loaded::Failed(failed, 0)).is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        let msgs = if complete.contains(&doc.key) {
            vec![Loaded::Skipped(doc)]
        } else {
            load(doc, config, observer, &member_complete)
        };
        for msg in msgs {
            if tx.send(msg).is_err() {
                return Ok(()); // the model stage stopped
            }
        }
    }
    Ok(())
}

/// Reads and pre-tokenizes one document; a panic in either is the document's failure.
fn load(
    doc: DocumentRef,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
    member_complete: &dyn Fn(&str) -> bool,
) -> Vec<Loaded> {
    let read = guarded(Stage::Read, || {
        observer.stage_started(Stage::Read, &doc.key);
        // Taken before the bytes: a file changed while being read looks changed to a resume.
        let modified = doc.path().and_then(modified_ns);
        Ok((doc.read(Some(config.max_doc_bytes))?, modified))
    });
    let (bytes, modified) = match read {
        Ok(bytes) => bytes,
        Err(e) => {
            let len = doc.byte_len;
            return vec![Loaded::Failed(failure(&doc, Stage::Read, &e), len)];
        }
    };
    let len = bytes.len() as u64;
    let (key, fallback) = (doc.key.clone(), doc.clone());
    let prepared = guarded(Stage::Pretokenize, || {
        observer.stage_started(Stage::Pretokenize, &key);
        let mut msgs = prepare(doc, bytes, config, member_complete);
        for msg in &mut msgs {
            if let Loaded::Doc(p) = msg {
                p.modified_ns = modified;
            }
        }
        Ok(msgs)
    });
    prepared.unwrap_or_else(|e| {
        vec![Loaded::Failed(
            failure(&fallback, Stage::Pretokenize, &e),
            len,
        )]
    })
}

/// Detects and pre-tokenizes one document; a container gives one message per member (and one
/// failure per skipped member). Members that are containers themselves are not opened: they
/// are one `binary` segment each (no recursion, so no nested bombs).
fn prepare(
    doc: DocumentRef,
    bytes: Vec<u8>,
    config: &IngestConfig,
    member_complete: &dyn Fn(&str) -> bool,
) -> Vec<Loaded> {
    let name = std::path::Path::new(&doc.name);
    let pre = &config.pretokenizer;
    let detection = pre.detect(&bytes, Some(name));
    // The Arrow/Parquet entropy layout holds one entropy per position of the sample's own
    // byte sequence (`text`), as Meta's trainer reads it: the document is one segment, never
    // split, decoded or expanded.
    if matches!(config.format, OutputFormat::EntropyShards(_)) {
        let segment = Segment {
            modality: detection.modality(),
            label: "document".into(),
            byte_range: 0..bytes.len() as u64,
            source_id: None,
            metadata: serde_json::json!({}),
            decoded: None,
        };
        return vec![Loaded::Doc(Box::new(Prepared {
            source_path: doc.origin_label(),
            doc,
            bytes,
            detection,
            segments: vec![segment],
            modified_ns: None,
        }))];
    }
    let out = match pre.pretokenize_as(&detection, &bytes) {
        Ok(out) => out,
        Err(e) => {
            let len = bytes.len() as u64;
            let e = Error::from(e);
            return vec![Loaded::Failed(failure(&doc, Stage::Pretokenize, &e), len)];
        }
    };
    let contents = match out {
        Pretokenized::Segments(segments) => {
            return vec![Loaded::Doc(Box::new(Prepared {
                source_path: doc.origin_label(),
                doc,
                bytes,
                detection,
                segments,
                modified_ns: None,
            }))];
        }
        Pretokenized::Container(contents) => contents,
    };
    let member_ref = |inner: &str, len: u64| {
        let member_name = format!("{}!/{inner}", doc.name);
        DocumentRef {
            key: blt_datasets::document_key(&member_name),
            name: member_name,
            source: doc.source.clone(),
            byte_len: len,
        }
    };
    let mut msgs = Vec::with_capacity(contents.members.len() + contents.skipped.len());
    for skipped in contents.skipped {
        let f = DocumentFailure {
            key: member_ref(&skipped.name, 0).key,
            path: doc.origin_label().map(|p| format!("{p}!/{}", skipped.name)),
            stage: Stage::Pretokenize.as_str(),
            reason: format!("zip member skipped: {}", skipped.reason),
            limit: None,
        };
        msgs.push(Loaded::Failed(f, 0));
    }
    for member in contents.members {
        let mdoc = member_ref(&member.inner_path, member.bytes.len() as u64);
        if member_complete(&mdoc.key) {
            msgs.push(Loaded::Skipped(mdoc));
            continue;
        }
        let source_path = doc
            .origin_label()
            .map(|p| format!("{p}!/{}", member.inner_path));
        let mut detection = pre.detect(
            &member.bytes,
            Some(std::path::Path::new(&member.inner_path)),
        );
        let out = if detection.modality() == Modality::Container {
            detection.format = blt_pretokenize::Format::Unknown(Modality::Binary);
            Ok(Pretokenized::Segments(vec![Segment {
                modality: Modality::Binary,
                label: "document".into(),
                byte_range: 0..member.bytes.len() as u64,
                source_id: None,
                metadata: serde_json::json!({ "nested_container": true }),
                decoded: None,
            }]))
        } else {
            pre.pretokenize_as(&detection, &member.bytes)
        };
        match out {
            Ok(Pretokenized::Segments(segments)) => msgs.push(Loaded::Doc(Box::new(Prepared {
                doc: mdoc,
                source_path,
                bytes: member.bytes,
                detection,
                segments,
                modified_ns: None,
            }))),
            Ok(Pretokenized::Container(_)) => {} // ruled out above
            Err(e) => {
                let len = member.bytes.len() as u64;
                let mut f = failure(&mdoc, Stage::Pretokenize, &Error::from(e));
                f.path = source_path;
                msgs.push(Loaded::Failed(f, len));
            }
        }
    }
    msgs
}

/// Pulls documents, batches them by size, runs the model and sends each batch with its
/// estimates on. Returns how long it waited for input, worked, and waited to hand batches on.
fn run_model<B: Backend>(
    estimator: &EntropyEstimator<B>,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
    rx: Receiver<Loaded>,
    tx: SyncSender<ToPost>,
) -> ModelTimes {
    let mut times = ModelTimes::default();
    let send = |msg: ToPost, times: &mut ModelTimes| {
        let t = Instant::now();
        let sent = tx.send(msg).is_ok();
        times.blocked += t.elapsed();
        sent
    };
    loop {
        let t = Instant::now();
        let Ok(first) = rx.recv() else { break };
        times.waited += t.elapsed();
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        let mut pending = Some(first);
        while let Some(msg) = pending.take() {
            let passed = match msg {
                Loaded::Doc(prepared) => {
                    batch_bytes += prepared.bytes.len();
                    batch.push(*prepared);
                    None
                }
                Loaded::Skipped(doc) => Some(ToWriter::Skipped(doc.byte_len)),
                Loaded::Failed(f, len) => Some(ToWriter::Failed(f, len)),
            };
            if let Some(msg) = passed {
                if !send(ToPost::Pass(msg), &mut times) {
                    return times;
                }
            }
            if batch_bytes < config.batch_bytes {
                match rx.try_recv() {
                    Ok(next) => pending = Some(next),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let t = Instant::now();
        let outs = estimate_batch(estimator, config, observer, batch);
        times.busy += t.elapsed();
        for out in outs {
            if !send(out, &mut times) {
                return times;
            }
        }
    }
    times
}

/// Runs one batch; if the batch fails (or panics) as a whole, retries document by document so
/// that one bad document does not take the others down.
fn estimate_batch<B: Backend>(
    estimator: &EntropyEstimator<B>,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
    batch: Vec<Prepared>,
) -> Vec<ToPost> {
    let (batch, mut over) = refuse_large_hidden_states(estimator.config().dim, config, batch);
    if batch.is_empty() {
        return over;
    }
    let (sequences, spans) = model_sequences(config, &batch);
    let estimated = guarded(Stage::Model, || {
        for p in &batch {
            observer.stage_started(Stage::Model, &p.doc.key);
        }
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let options = EstimateOptions {
            hidden: wants_hidden(config),
            logits: false,
            max_batch_tokens: config.max_batch_tokens,
        };
        let estimates = estimator.estimate_many(&refs, options)?;
        if estimates.len() == sequences.len() {
            Ok(estimates)
        } else {
            Err(Error::Stage("estimate count mismatch".into()))
        }
    });
    let outs: Vec<ToPost> = match estimated {
        Ok(estimates) => vec![ToPost::Estimated(Box::new(Estimated {
            batch,
            sequences,
            spans,
            estimates,
        }))],
        Err(_) if batch.len() > 1 => batch
            .into_iter()
            .flat_map(|item| estimate_batch(estimator, config, observer, vec![item]))
            .collect(),
        Err(e) => batch
            .into_iter()
            .map(|p| {
                let mut f = failure(&p.doc, Stage::Model, &e);
                f.path = p.source_path.clone();
                ToPost::Pass(ToWriter::Failed(f, p.bytes.len() as u64))
            })
            .collect(),
    };
    over.extend(outs);
    over
}

/// Whether the model is asked for hidden states (embeddings are stored).
fn wants_hidden(config: &IngestConfig) -> bool {
    // Arrow/Parquet entropy shards hold no embeddings: never read hidden states back for them
    // (for a 1 GB document that would be 1 GB × dim floats on the host).
    config.embeddings != EmbeddingsMode::None
        && !matches!(config.format, OutputFormat::EntropyShards(_))
}

/// Takes out of `batch` the documents whose hidden states would pass
/// [`IngestConfig::max_hidden_bytes`] (each fails alone), before anything is allocated for
/// them. A sequence's token count is bounded by its bytes plus BOS and EOS per segment.
fn refuse_large_hidden_states(
    dim: usize,
    config: &IngestConfig,
    batch: Vec<Prepared>,
) -> (Vec<Prepared>, Vec<ToPost>) {
    if !wants_hidden(config) {
        return (batch, Vec::new());
    }
    let row_bytes = dim as u64 * 4;
    let mut kept = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for p in batch {
        let lengths = p
            .segments
            .iter()
            .map(|s| s.bytes(&p.bytes).len() as u64 + 2);
        let tokens = match config.segment_mode {
            SegmentMode::Separate => lengths.max().unwrap_or(0),
            SegmentMode::Concatenated => lengths.sum(),
        };
        let hidden = tokens.saturating_mul(row_bytes);
        if hidden > config.max_hidden_bytes {
            let e = Error::LimitExceeded {
                what: format!("hidden states of a {tokens}-token sequence (bytes)"),
                actual: hidden,
                limit: config.max_hidden_bytes,
                option: "max_hidden_bytes",
            };
            let mut f = failure(&p.doc, Stage::Model, &e);
            f.path = p.source_path.clone();
            refused.push(ToPost::Pass(ToWriter::Failed(f, p.bytes.len() as u64)));
        } else {
            kept.push(p);
        }
    }
    (kept, refused)
}

/// The model sequences of a batch: one per segment (separate) or per document (concatenated),
/// and, per document and segment, its sequence and its token range in that sequence.
#[allow(clippy::type_complexity)]
fn model_sequences(
    config: &IngestConfig,
    batch: &[Prepared],
) -> (Vec<Vec<u32>>, Vec<Vec<(usize, std::ops::Range<usize>)>>) {
    let mut sequences: Vec<Vec<u32>> = Vec::new();
    let mut spans = Vec::with_capacity(batch.len());
    for p in batch {
        let mut doc_spans = Vec::with_capacity(p.segments.len());
        match config.segment_mode {
            SegmentMode::Separate => {
                for s in &p.segments {
                    let ids = config.tokenizer.encode(s.bytes(&p.bytes));
                    doc_spans.push((sequences.len(), 0..ids.len()));
                    sequences.push(ids);
                }
            }
            SegmentMode::Concatenated => {
                let mut ids = Vec::new();
                for (i, s) in p.segments.iter().enumerate() {
                    let start = ids.len();
                    let tokenizer = config
                        .tokenizer
                        .with_bos(i == 0 && config.tokenizer.adds_bos());
                    tokenizer.encode_into(s.bytes(&p.bytes), &mut ids);
                    doc_spans.push((sequences.len(), start..ids.len()));
                }
                sequences.push(ids);
            }
        }
        spans.push(doc_spans);
    }
    (sequences, spans)
}

/// Turns estimated batches into document results (patches, embeddings) for the writer, in
/// order. Returns the time it spent working.
fn post_process(
    dim: usize,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
    rx: Receiver<ToPost>,
    tx: SyncSender<ToWriter>,
) -> Duration {
    let mut busy = Duration::ZERO;
    for msg in rx {
        let outs = match msg {
            ToPost::Pass(msg) => vec![msg],
            ToPost::Estimated(estimated) => {
                let t = Instant::now();
                let outs = assemble(dim, config, observer, *estimated);
                busy += t.elapsed();
                outs
            }
        };
        for out in outs {
            if tx.send(out).is_err() {
                return busy; // the writer stopped
            }
        }
    }
    busy
}

/// Patches and embeddings of each document of an estimated batch. A document whose patching
/// fails (or panics) is that document's failure alone.
fn assemble(
    dim: usize,
    config: &IngestConfig,
    observer: &dyn IngestObserver,
    estimated: Estimated,
) -> Vec<ToWriter> {
    let Estimated {
        batch,
        mut sequences,
        spans,
        mut estimates,
    } = estimated;
    batch
        .into_iter()
        .zip(spans)
        .map(|(p, doc_spans)| {
            let metadata = p
                .doc
                .row_metadata()
                .map(|m| serde_json::Value::Object(m.clone().into_iter().collect()));
            let result = guarded(Stage::Postprocess, || {
                observer.stage_started(Stage::Postprocess, &p.doc.key);
                document_result(dim, config, &mut sequences, &mut estimates, &p, doc_spans)
            });
            match result {
                Ok(segments) => ToWriter::Done(
                    Box::new(DocumentResult {
                        key: p.doc.key.clone(),
                        detection: Some(DetectionSummary {
                            format: p.detection.format.name(),
                            modality: p.detection.modality().as_str().to_owned(),
                            by: p.detection.by.as_str().to_owned(),
                        }),
                        source_path: p.source_path,
                        source_modified_ns: p.modified_ns,
                        bytes: p.bytes,
                        segments,
                        dim,
                    }),
                    metadata,
                ),
                Err(e) => {
                    let stage = match e {
                        Error::Panicked { stage, .. } => stage,
                        _ => Stage::Model,
                    };
                    let mut f = failure(&p.doc, stage, &e);
                    f.path = p.source_path.clone();
                    ToWriter::Failed(f, p.bytes.len() as u64)
                }
            }
        })
        .collect()
}

/// The per-segment results of one document. A segment that is its whole model sequence takes
/// that sequence's ids, entropies and prominence instead of copying them (a 1 GB document's are
/// 4 GB each).
fn document_result(
    dim: usize,
    config: &IngestConfig,
    sequences: &mut [Vec<u32>],
    estimates: &mut [blt_model::SequenceEstimate],
    p: &Prepared,
    doc_spans: Vec<(usize, std::ops::Range<usize>)>,
) -> Result<Vec<SegmentResult>> {
    let mut seg_results = Vec::with_capacity(p.segments.len());
    for (segment, (seq, range)) in p.segments.iter().zip(doc_spans) {
        let est = &mut estimates[seq];
        let ids = take_range(&mut sequences[seq], range.clone());
        let entropies = take_range(&mut est.entropies, range.clone());
        let prominence = take_range(&mut est.prominence, range.clone());
        let patches = config.patcher.patch(&ids, Some(&entropies))?;
        let hidden = est
            .hidden
            .as_ref()
            .map(|h| &h[range.start * dim..range.end * dim]);
        let embeddings = match (config.embeddings, hidden) {
            (EmbeddingsMode::Byte, Some(h)) => Some(h.to_vec()),
            (EmbeddingsMode::Patch, Some(h)) => Some(
                patches
                    .iter()
                    .flat_map(|r| mean_rows(h, dim, r.start..r.end.min(ids.len())))
                    .collect(),
            ),
            _ => None,
        };
        let mut segment = segment.clone();
        // the decoded content is in the token ids; the record does not need it twice
        segment.decoded = None;
        seg_results.push(SegmentResult {
            segment,
            ids,
            entropies,
            prominence,
            patches,
            embeddings,
        });
    }
    Ok(seg_results)
}

/// `v[range]`, taken out of `v` when it is all of it (no segment reads a sequence after the one
/// that covers it whole), copied otherwise.
fn take_range<T: Clone>(v: &mut Vec<T>, range: std::ops::Range<usize>) -> Vec<T> {
    if range == (0..v.len()) {
        std::mem::take(v)
    } else {
        v[range].to_vec()
    }
}

/// Path of a per-document (or per-shard) sidecar.
pub fn sidecar_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}{SIDECAR_SUFFIX}"))
}

/// Writes a sidecar for `docs` at `path` atomically (temp file, then rename).
fn write_sidecar(
    path: &Path,
    docs: &[blt_sidecar::SidecarDocument],
    config: &IngestConfig,
) -> Result<()> {
    let tmp = path.with_extension(format!("sqlite.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = fill_sidecar(&tmp, path, docs, config).and_then(|lock| {
        let renamed = std::fs::rename(&tmp, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        });
        drop(lock);
        renamed
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes the sidecar to `tmp` (renamed to `path` by the caller), and returns the lock that keeps
/// other processes' clean-up away from it until then. The file is private until the
/// rename, so it is written with an in-memory rollback journal: one file, each page written once,
/// fsynced by `finish` — a write-ahead log would write every page twice and create two more files
/// per document (17% slower in `cargo bench -p blt-sidecar --bench write`; on an H100 host the
/// writers of 2–8 KB documents stay the bottleneck either way, CPU-bound: docs/backends.md).
fn fill_sidecar(
    tmp: &Path,
    path: &Path,
    docs: &[blt_sidecar::SidecarDocument],
    config: &IngestConfig,
) -> Result<std::fs::File> {
    let mut sidecar = HypergraphSidecar::create_with(tmp, Journal::InMemory)?;
    let lock = blt_datasets::lock_temp(tmp)?;
    sidecar.set_meta(
        "created_by",
        concat!("blt-pipeline ", env!("CARGO_PKG_VERSION")),
    )?;
    for (key, value) in &config.run_metadata {
        if !matches!(
            key.as_str(),
            "format" | "schema_version" | "producer" | "created_by"
        ) {
            sidecar.set_meta(key, value)?;
        }
    }
    for d in docs {
        sidecar.write_document(d)?;
    }
    if config.export_json {
        let json = sidecar.export_json()?;
        let bytes = serde_json::to_vec_pretty(&json).map_err(|e| Error::Stage(e.to_string()))?;
        blt_datasets::write_atomic(&path.with_extension("json"), &bytes)?;
    }
    sidecar.finish()?;
    Ok(lock)
}

#[allow(clippy::large_enum_variant)] // one per run
enum Sink {
    Dir(SafetensorsDirSink),
    Shards {
        sink: WebDatasetSink,
        // sidecar documents of the open shard
        open: Vec<blt_sidecar::SidecarDocument>,
    },
    Entropy(EntropyShardSink),
}

fn write_outputs(
    config: &IngestConfig,
    rx: Receiver<ToWriter>,
    observer: &dyn IngestObserver,
) -> Result<IngestStats> {
    let stats = IngestStats::default();
    remove_stale_sidecar_temps(&config.output_dir)?;
    let mut sink = match &config.format {
        OutputFormat::Safetensors => {
            let sink = SafetensorsDirSink::new(&config.output_dir)?;
            sink.remove_stale_temps()?;
            Sink::Dir(sink)
        }
        OutputFormat::WebDataset(opts) => {
            rebuild_missing_shard_sidecars(config, opts)?;
            Sink::Shards {
                sink: WebDatasetSink::new(&config.output_dir, opts.clone())?,
                open: Vec::new(),
            }
        }
        OutputFormat::EntropyShards(opts) => {
            Sink::Entropy(EntropyShardSink::new(&config.output_dir, opts.clone())?)
        }
    };
    if let Sink::Dir(_) = sink {
        let threads = match config.write_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            n => n,
        };
        if threads > 1 {
            return write_documents_parallel(config, rx, observer, stats, threads);
        }
    }
    let mut state = SharedStats {
        stats,
        stop: false,
        in_flight: BTreeSet::new(),
    };
    for msg in rx {
        let (bytes_done, failed) = match msg {
            ToWriter::Skipped(len) => {
                state.stats.skipped += 1;
                (len, None)
            }
            ToWriter::Failed(f, len) => (len, Some(f)),
            ToWriter::Done(doc, row_metadata) => {
                let len = doc.bytes.len() as u64;
                let t = Instant::now();
                let written = guarded(Stage::Write, || {
                    observer.stage_started(Stage::Write, &doc.key);
                    write_document(
                        config,
                        &mut sink,
                        &doc,
                        row_metadata,
                        &mut state.stats.files,
                    )
                });
                state.stats.write_seconds += t.elapsed().as_secs_f64();
                match written {
                    Ok(()) => {
                        count_written(&mut state.stats, &doc);
                        (len, None)
                    }
                    // Out of room: every later document would fail the same way.
                    Err(e) if e.is_storage_exhausted() => return Err(e),
                    // A shard that failed to write has lost its open samples: stop, and let a
                    // resumed run continue after the last complete shard.
                    Err(e) if matches!(sink, Sink::Shards { .. }) => return Err(e),
                    // Likewise an entropy shard; a document that does not fit the layout
                    // (not UTF-8 for Arrow) is only that document's failure.
                    Err(e)
                        if matches!(sink, Sink::Entropy(_))
                            && !matches!(
                                e,
                                Error::Dataset(blt_datasets::Error::NotUtf8Text { .. })
                            ) =>
                    {
                        return Err(e)
                    }
                    Err(e) => (len, Some(write_failure(&doc, e))),
                }
            }
        };
        if !state.finish(config, observer, bytes_done, failed) {
            return Ok(state.stats); // dropping `rx` stops the other stages
        }
    }
    let mut stats = state.stats;
    match sink {
        Sink::Shards { sink, open } => {
            if let Some(closed) = sink.finish()? {
                let sidecar = sidecar_path(&config.output_dir, &shard_stem(&closed.path));
                write_sidecar(&sidecar, &open, config)?;
                stats.files.push(closed.path.display().to_string());
                stats.files.push(sidecar.display().to_string());
            }
        }
        Sink::Entropy(sink) => {
            if let Some(done) = sink.finish()? {
                stats.files.push(done.path.display().to_string());
            }
        }
        Sink::Dir(_) => {}
    }
    Ok(stats)
}

/// The counts of a run and whether it must stop, shared by parallel writers.
struct SharedStats {
    stats: IngestStats,
    stop: bool,
    /// Keys being written (a key listed twice is written once at a time, never into the same
    /// temporary file from two threads).
    in_flight: BTreeSet<String>,
}

impl SharedStats {
    /// Counts one finished document (written, skipped or failed) and tells the observer;
    /// returns whether the run goes on.
    fn finish(
        &mut self,
        config: &IngestConfig,
        observer: &dyn IngestObserver,
        bytes_done: u64,
        failed: Option<DocumentFailure>,
    ) -> bool {
        let stats = &mut self.stats;
        stats.documents += 1;
        if let Some(f) = failed {
            tracing::debug!(key = %f.key, path = ?f.path, stage = f.stage, "document failed: {}", f.reason);
            observer.document_failed(&f);
            stats.failed += 1;
            stats.failures.push(f);
            if config.fail_fast {
                self.stop = true;
            }
        }
        observer.document_done(stats, bytes_done);
        !self.stop
    }
}

/// The per-document layout written by `threads` writers at once (each document's two files are
/// independent of every other document's). Counts are kept under one lock; `files` and
/// `failures` are in completion order.
fn write_documents_parallel(
    config: &IngestConfig,
    rx: Receiver<ToWriter>,
    observer: &dyn IngestObserver,
    stats: IngestStats,
    threads: usize,
) -> Result<IngestStats> {
    let shared = std::sync::Mutex::new(SharedStats {
        stats,
        stop: false,
        in_flight: BTreeSet::new(),
    });
    // The first error that stops the run (the storage is full): no document after it is
    // counted as failed for it.
    let fatal = std::sync::Mutex::new(None::<Error>);
    let done = std::sync::Condvar::new();
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let (job_tx, job_rx) =
        sync_channel::<(Box<DocumentResult>, Option<serde_json::Value>)>(threads);
    let job_rx = std::sync::Mutex::new(job_rx);
    std::thread::scope(|scope| -> Result<()> {
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let sink = SafetensorsDirSink::new(&config.output_dir)?;
            let (job_rx, lock, done, fatal) = (&job_rx, &lock, &done, &fatal);
            // Each worker drains the queue until it closes; once the run must stop, what is
            // left is dropped unwritten.
            workers.push(scope.spawn(move || {
                let mut sink = Sink::Dir(sink);
                loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((doc, row_metadata)) = job else { break };
                    if !lock().stop {
                        let t = Instant::now();
                        let mut files = Vec::with_capacity(2);
                        // A panic is this document's failure: the worker goes on, and the key
                        // leaves `in_flight` below whatever happened (no writer waits forever).
                        let written = guarded(Stage::Write, || {
                            observer.stage_started(Stage::Write, &doc.key);
                            write_document(config, &mut sink, &doc, row_metadata, &mut files)
                        });
                        let busy = t.elapsed().as_secs_f64();
                        let mut guard = lock();
                        guard.stats.write_seconds += busy;
                        // `None`: not counted (the run stops on this error).
                        let outcome = match written {
                            Ok(()) => {
                                guard.stats.files.extend(files);
                                count_written(&mut guard.stats, &doc);
                                Some(None)
                            }
                            Err(e) if e.is_storage_exhausted() => {
                                guard.stop = true;
                                fatal
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                                None
                            }
                            Err(e) => Some(Some(write_failure(&doc, e))),
                        };
                        if let Some(failed) = outcome {
                            let len = doc.bytes.len() as u64;
                            guard.finish(config, observer, len, failed);
                        }
                    }
                    lock().in_flight.remove(&doc.key);
                    done.notify_all();
                }
            }));
        }
        for msg in rx {
            if lock().stop {
                break; // dropping `rx` stops the other stages
            }
            match msg {
                ToWriter::Done(doc, row_metadata) => {
                    let mut guard = lock();
                    while guard.in_flight.contains(&doc.key) {
                        guard = done.wait(guard).unwrap_or_else(|e| e.into_inner());
                    }
                    guard.in_flight.insert(doc.key.clone());
                    drop(guard);
                    if job_tx.send((doc, row_metadata)).is_err() {
                        break;
                    }
                }
                ToWriter::Skipped(len) => {
                    let mut guard = lock();
                    guard.stats.skipped += 1;
                    guard.finish(config, observer, len, None);
                }
                ToWriter::Failed(f, len) => {
                    lock().finish(config, observer, len, Some(f));
                }
            }
        }
        drop(job_tx);
        for worker in workers {
            crate::stage::join(Stage::Write, worker)?;
        }
        Ok(())
    })?;
    if let Some(e) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(shared.into_inner().unwrap_or_else(|e| e.into_inner()).stats)
}

/// Removes temporary files a killed run left behind.
fn remove_stale_sidecar_temps(dir: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        // Everything written atomically here is named `<final name>.tmp-<pid>` until it is
        // renamed, and locked while it is written: what another process (a rank sharing the
        // folder) is writing is left alone.
        if name.is_some_and(|n| n.contains(".tmp-") && !n.ends_with(".tar.tmp")) {
            blt_datasets::remove_if_stale(&path)?;
        }
    }
    Ok(())
}

fn shard_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_document(
    config: &IngestConfig,
    sink: &mut Sink,
    doc: &DocumentResult,
    row_metadata: Option<serde_json::Value>,
    files: &mut Vec<String>,
) -> Result<()> {
    if let Sink::Entropy(sink) = sink {
        let row = EntropyRow {
            sample_id: doc.key.clone(),
            bytes: doc.bytes.clone(),
            entropies: doc
                .segments
                .iter()
                .flat_map(|s| s.entropies.iter().copied())
                .collect(),
            patch_lengths: doc
                .segments
                .iter()
                .flat_map(|s| s.patches.lengths().iter().map(|&l| l as i32))
                .collect(),
            metadata: row_metadata.map(|m| m.to_string()),
        };
        if let Some(done) = sink.write(row)? {
            files.push(done.path.display().to_string());
        }
        return Ok(());
    }
    let mut record = doc.to_record(&config.run_metadata, config.embeddings);
    if let (Some(m), Some(json)) = (row_metadata, record.json.as_object_mut()) {
        json.insert("row_metadata".into(), m);
    }
    match sink {
        Sink::Dir(dir) => {
            // The sidecar first: the safetensors file is what marks a document complete.
            let sidecar = sidecar_path(&config.output_dir, &doc.key);
            write_sidecar(&sidecar, &[doc.to_sidecar()], config)?;
            let path = match dir.write(&record) {
                Ok(path) => path,
                Err(e) => {
                    // No half-written document: a sidecar without its record goes too.
                    let _ = std::fs::remove_file(&sidecar);
                    return Err(e.into());
                }
            };
            files.push(path.display().to_string());
            files.push(sidecar.display().to_string());
        }
        Sink::Shards { sink, open } => {
            let event = sink.write(&record)?;
            open.push(doc.to_sidecar());
            for closed in event.closed {
                let sidecar = sidecar_path(&config.output_dir, &shard_stem(&closed.path));
                let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(open)
                    .into_iter()
                    .partition(|d| closed.keys.contains(&d.trunk.key));
                *open = rest;
                write_sidecar(&sidecar, &done, config)?;
                files.push(closed.path.display().to_string());
                files.push(sidecar.display().to_string());
            }
        }
        Sink::Entropy(_) => {}
    }
    Ok(())
}

/// A run killed between closing a shard and writing its sidecar leaves a complete shard without
/// one: rebuild it from the shard's own samples, which carry everything the sidecar holds.
fn rebuild_missing_shard_sidecars(config: &IngestConfig, opts: &ShardOptions) -> Result<()> {
    for shard in blt_datasets::complete_shards(&config.output_dir, &opts.prefix)? {
        let sidecar = sidecar_path(&config.output_dir, &shard_stem(&shard));
        if sidecar.is_file() {
            continue;
        }
        let docs = crate::readback::sidecar_documents_from_shard(&shard)?;
        write_sidecar(&sidecar, &docs, config)?;
    }
    Ok(())
}

/// Counts a written document.
fn count_written(stats: &mut IngestStats, doc: &DocumentResult) {
    stats.written += 1;
    stats.bytes += doc.bytes.len() as u64;
    stats.tokens += doc.token_count() as u64;
    stats.patches += doc.patch_count() as u64;
    count_modalities(stats, doc);
}

/// A document whose outputs could not be written.
fn write_failure(doc: &DocumentResult, e: Error) -> DocumentFailure {
    DocumentFailure {
        key: doc.key.clone(),
        path: doc.source_path.clone(),
        stage: Stage::Write.as_str(),
        reason: e.to_string(),
        limit: limit_option(&e),
    }
}

fn count_modalities(stats: &mut IngestStats, doc: &DocumentResult) {
    if let Some(d) = &doc.detection {
        stats
            .modalities
            .entry(d.modality.clone())
            .or_default()
            .documents += 1;
        *stats.formats.entry(d.format.clone()).or_default() += 1;
    }
    for s in &doc.segments {
        let entry = stats
            .modalities
            .entry(s.segment.modality.as_str().to_owned())
            .or_default();
        entry.segments += 1;
        entry.bytes += s
            .ids
            .iter()
            .filter(|&&id| BltTokenizer::id_to_byte(id).is_some())
            .count() as u64;
    }
}
