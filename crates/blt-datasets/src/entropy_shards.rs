//! Entropy shards: documents with their per-token entropies written as Arrow IPC files in the
//! layout Meta's BLT trainer reads for precomputed entropies (`sample_id: string, text: string,
//! entropies: list<float16>`), or as Parquet files that also carry patch lengths, the raw bytes
//! of non-text documents, row metadata, and the run's provenance in the file's key-value
//! metadata.
//!
//! Each shard is written as `<name>.tmp`, fsynced and renamed to `<name>`, and only then is the
//! empty marker `<name>.complete` written: a shard without its marker is not complete, and a new
//! sink removes it (its documents are done again).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Float16Builder, Int32Builder, ListBuilder, StringBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::atomic::sync_parent;
use crate::error::io_at;
use crate::limits::{guard, open_regular};
use crate::{Error, Result};

/// The file format of entropy shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyFileFormat {
    /// Arrow IPC file format, `.arrow`, Meta's three columns.
    Arrow,
    /// Parquet, `.parquet` (zstd), with patch lengths, bytes, metadata and provenance.
    Parquet,
}

impl EntropyFileFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Arrow => "arrow",
            Self::Parquet => "parquet",
        }
    }

    /// The schema of this format's files.
    pub fn schema(self) -> Schema {
        let entropies = Field::new(
            "entropies",
            DataType::List(Arc::new(Field::new_list_field(DataType::Float16, true))),
            true,
        );
        match self {
            Self::Arrow => Schema::new(vec![
                Field::new("sample_id", DataType::Utf8, true),
                Field::new("text", DataType::Utf8, true),
                entropies,
            ]),
            Self::Parquet => Schema::new(vec![
                Field::new("sample_id", DataType::Utf8, false),
                Field::new("text", DataType::Utf8, true),
                Field::new("bytes", DataType::Binary, true),
                entropies,
                Field::new(
                    "patch_lengths",
                    DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                    true,
                ),
                Field::new("metadata", DataType::Utf8, true),
            ]),
        }
    }
}

/// How documents are grouped into entropy shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntropyShardOptions {
    /// Arrow or Parquet.
    pub format: EntropyFileFormat,
    /// Files are named `<prefix>.shard_NNNNNN.<ext>`; `[A-Za-z0-9_.-]` only. Default `shard`.
    pub prefix: String,
    /// At most this many documents per shard. Default 10 000.
    pub max_rows: usize,
    /// A shard is closed once its documents' bytes and entropies (uncompressed) reach this.
    /// Default 1 GiB.
    pub max_bytes: u64,
    /// Parquet row groups are closed at this encoded size. Default 100 MiB, as the Hugging Face
    /// Hub recommends for its dataset viewer and for streaming.
    pub row_group_bytes: usize,
    /// Buffered documents are written as a record batch before any column of the batch would
    /// hold more than this: bytes for `sample_id`, `text`, `bytes` and `metadata`, values for
    /// `entropies` and `patch_lengths`. A document larger than this gets a batch of its own.
    /// Default 64 MiB ([`DEFAULT_BATCH_BYTES`]); at most `i32::MAX`, what the `i32` offsets of
    /// Arrow's string and list arrays address (a document with a column past that is
    /// [`Error::ShardRowTooLarge`]).
    pub batch_bytes: usize,
    /// Provenance (model, patching rules, source, tool version): the Parquet file's key-value
    /// metadata, the Arrow schema's metadata.
    pub metadata: BTreeMap<String, String>,
}

impl Default for EntropyShardOptions {
    fn default() -> Self {
        Self {
            format: EntropyFileFormat::Arrow,
            prefix: "shard".into(),
            max_rows: 10_000,
            max_bytes: 1 << 30,
            row_group_bytes: 100 << 20,
            batch_bytes: DEFAULT_BATCH_BYTES,
            metadata: BTreeMap::new(),
        }
    }
}

/// One document of an entropy shard.
#[derive(Debug, Clone, PartialEq)]
pub struct EntropyRow {
    /// Its key (`sample_id`).
    pub sample_id: String,
    /// Its bytes: stored as `text` when UTF-8; otherwise in `bytes` (Parquet), or refused
    /// (Arrow, [`Error::NotUtf8Text`]).
    pub bytes: Vec<u8>,
    /// Entropy at each token position (stored as float16).
    pub entropies: Vec<f32>,
    /// Patch lengths (Parquet only).
    pub patch_lengths: Vec<i32>,
    /// The row's metadata as JSON (Parquet only).
    pub metadata: Option<String>,
}

/// A shard that was completed (renamed, marker written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedShard {
    /// Its final path.
    pub path: PathBuf,
    /// The keys of its documents, in order.
    pub keys: Vec<String>,
    /// The record batches it was written as.
    pub batches: usize,
}

/// Rows buffered before a record batch is written.
const BATCH_ROWS: usize = 256;

/// Default of [`EntropyShardOptions::batch_bytes`]: 64 MiB.
pub const DEFAULT_BATCH_BYTES: usize = 64 << 20;

/// The most one column of a record batch holds: bytes of a string or binary column, values of
/// a list column (their offsets are `i32`).
const MAX_BATCH_COLUMN: u64 = i32::MAX as u64;

/// The columns of a record batch whose size is bounded, in [`ColumnSizes`] order.
const COLUMNS: [&str; 6] = [
    "sample_id",
    "text",
    "bytes",
    "entropies",
    "patch_lengths",
    "metadata",
];

/// What one row, or a batch of rows, adds to each of [`COLUMNS`]: bytes for strings and binary,
/// values for lists.
type ColumnSizes = [u64; 6];

/// A row's [`ColumnSizes`] in `format` (Arrow has no `bytes`, `patch_lengths`, `metadata`).
fn row_sizes(row: &EntropyRow, format: EntropyFileFormat) -> ColumnSizes {
    let len = |n: usize| n as u64;
    let text = std::str::from_utf8(&row.bytes).is_ok();
    let parquet = format == EntropyFileFormat::Parquet;
    [
        len(row.sample_id.len()),
        if text { len(row.bytes.len()) } else { 0 },
        if text || !parquet {
            0
        } else {
            len(row.bytes.len())
        },
        len(row.entropies.len()),
        if parquet {
            len(row.patch_lengths.len())
        } else {
            0
        },
        if parquet {
            len(row.metadata.as_ref().map_or(0, String::len))
        } else {
            0
        },
    ]
}

/// Refuses a row with a column over `limit`: it cannot go into any record batch.
fn check_row_fits(key: &str, sizes: &ColumnSizes, limit: u64) -> Result<()> {
    for (column, &len) in COLUMNS.iter().zip(sizes) {
        if len > limit {
            return Err(Error::ShardRowTooLarge {
                key: key.to_owned(),
                column,
                len,
                limit,
            });
        }
    }
    Ok(())
}

enum Writer {
    Arrow(arrow_ipc::writer::FileWriter<BufWriter<File>>),
    Parquet(parquet::arrow::ArrowWriter<File>),
}

struct OpenShard {
    path: PathBuf,
    tmp: PathBuf,
    writer: Writer,
    keys: Vec<String>,
    pending: Vec<EntropyRow>,
    /// What `pending` holds in each column.
    pending_sizes: ColumnSizes,
    /// Record batches written so far.
    batches: usize,
    bytes: u64,
}

/// Writes entropy shards into a folder. See the module docs for the layout.
pub struct EntropyShardSink {
    dir: PathBuf,
    options: EntropyShardOptions,
    schema: SchemaRef,
    next_index: u64,
    open: Option<OpenShard>,
}

fn write_error(path: &Path, e: impl ToString) -> Error {
    Error::TableWrite {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// `<name>.complete` beside a shard.
pub fn complete_marker(shard: &Path) -> PathBuf {
    let mut name = shard.as_os_str().to_owned();
    name.push(".complete");
    PathBuf::from(name)
}

impl EntropyShardSink {
    /// A sink writing into `dir` (created if missing). Removes `<prefix>.shard_*` temp files
    /// and shards without their `.complete` marker, and numbers on after the highest complete
    /// shard.
    pub fn new(dir: impl Into<PathBuf>, options: EntropyShardOptions) -> Result<Self> {
        let dir = dir.into();
        if options.prefix.is_empty()
            || !options
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            || options.max_rows == 0
            || options.max_bytes == 0
            || options.row_group_bytes == 0
            || options.batch_bytes == 0
            || options.batch_bytes as u64 > MAX_BATCH_COLUMN
        {
            return Err(Error::InvalidOptions {
                dir,
                reason: format!(
                    "the prefix must be [A-Za-z0-9_.-], the limits above 0 and batch_bytes at most {MAX_BATCH_COLUMN}"
                ),
            });
        }
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let ext = options.format.extension();
        let stem = format!("{}.shard_", options.prefix);
        let mut next_index = 0;
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let path = entry.map_err(io_at(&dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(rest) = name.strip_prefix(&stem) else {
                continue;
            };
            if rest.ends_with(".tmp") {
                fs::remove_file(&path).map_err(io_at(&path))?;
                continue;
            }
            let Some(number) = rest.strip_suffix(&format!(".{ext}")) else {
                continue;
            };
            let Ok(index) = number.parse::<u64>() else {
                continue;
            };
            if complete_marker(&path).is_file() {
                next_index = next_index.max(index + 1);
            } else {
                tracing::info!(path = %path.display(), "removing a shard without its .complete marker");
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        let mut schema = options.format.schema();
        schema = schema.with_metadata(options.metadata.clone());
        Ok(Self {
            dir,
            schema: Arc::new(schema),
            options,
            next_index,
            open: None,
        })
    }

    /// The complete shards of `prefix` and `format` in `dir`, sorted by name.
    pub fn complete_shards(
        dir: &Path,
        prefix: &str,
        format: EntropyFileFormat,
    ) -> Result<Vec<PathBuf>> {
        let mut shards = Vec::new();
        let stem = format!("{prefix}.shard_");
        let suffix = format!(".{}", format.extension());
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(shards),
            Err(e) => return Err(Error::io(dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(io_at(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(&stem)
                && name.ends_with(&suffix)
                && complete_marker(&path).is_file()
            {
                shards.push(path);
            }
        }
        shards.sort();
        Ok(shards)
    }

    /// The `sample_id`s in the complete shards of `prefix` in `dir` (for resume).
    pub fn completed_keys(
        dir: &Path,
        prefix: &str,
        format: EntropyFileFormat,
    ) -> Result<BTreeSet<String>> {
        let mut keys = BTreeSet::new();
        for shard in Self::complete_shards(dir, prefix, format)? {
            for batch in read_shard(&shard, format, Some("sample_id"))? {
                let ids = batch.column(0).as_string::<i32>();
                keys.extend(ids.iter().flatten().map(str::to_owned));
            }
        }
        Ok(keys)
    }

    /// Adds a document; returns the shard it completed, if adding it closed one.
    ///
    /// A document with a column past what one record batch can hold (`i32::MAX` bytes or
    /// values) is [`Error::ShardRowTooLarge`], and nothing is written.
    pub fn write(&mut self, row: EntropyRow) -> Result<Option<CompletedShard>> {
        if self.options.format == EntropyFileFormat::Arrow
            && std::str::from_utf8(&row.bytes).is_err()
        {
            return Err(Error::NotUtf8Text { key: row.sample_id });
        }
        let sizes = row_sizes(&row, self.options.format);
        check_row_fits(&row.sample_id, &sizes, MAX_BATCH_COLUMN)?;
        if self.open.is_none() {
            self.open = Some(self.open_shard()?);
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(None);
        };
        let budget = self.options.batch_bytes as u64;
        let over_budget = open
            .pending_sizes
            .iter()
            .zip(&sizes)
            .any(|(&held, &add)| held.saturating_add(add) > budget);
        if over_budget {
            flush_pending(open, &self.schema, self.options.format)?;
        }
        open.bytes += row.bytes.len() as u64 + 2 * row.entropies.len() as u64;
        open.keys.push(row.sample_id.clone());
        for (held, add) in open.pending_sizes.iter_mut().zip(sizes) {
            *held += add;
        }
        open.pending.push(row);
        if open.pending.len() >= BATCH_ROWS {
            flush_pending(open, &self.schema, self.options.format)?;
        }
        if open.keys.len() >= self.options.max_rows || open.bytes >= self.options.max_bytes {
            return self.close().map(Some);
        }
        Ok(None)
    }

    /// Completes the open shard, if it holds documents.
    pub fn finish(mut self) -> Result<Option<CompletedShard>> {
        if self.open.is_some() {
            return self.close().map(Some);
        }
        Ok(None)
    }

    fn open_shard(&mut self) -> Result<OpenShard> {
        let name = format!(
            "{}.shard_{:06}.{}",
            self.options.prefix,
            self.next_index,
            self.options.format.extension()
        );
        self.next_index += 1;
        let path = self.dir.join(name);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(io_at(&tmp))?;
        let writer = match self.options.format {
            EntropyFileFormat::Arrow => Writer::Arrow(
                arrow_ipc::writer::FileWriter::try_new_buffered(file, &self.schema)
                    .map_err(|e| write_error(&tmp, e))?,
            ),
            EntropyFileFormat::Parquet => {
                use parquet::basic::{Compression, ZstdLevel};
                use parquet::file::metadata::KeyValue;
                use parquet::file::properties::WriterProperties;
                let kv = self
                    .options
                    .metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect();
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_bytes(Some(self.options.row_group_bytes))
                    .set_key_value_metadata(Some(kv))
                    .build();
                Writer::Parquet(
                    parquet::arrow::ArrowWriter::try_new(
                        file,
                        Arc::clone(&self.schema),
                        Some(props),
                    )
                    .map_err(|e| write_error(&tmp, e))?,
                )
            }
        };
        Ok(OpenShard {
            path,
            tmp,
            writer,
            keys: Vec::new(),
            pending: Vec::new(),
            pending_sizes: [0; 6],
            batches: 0,
            bytes: 0,
        })
    }

    fn close(&mut self) -> Result<CompletedShard> {
        let Some(mut open) = self.open.take() else {
            return Err(Error::InvalidOptions {
                dir: self.dir.clone(),
                reason: "no open shard to close".into(),
            });
        };
        flush_pending(&mut open, &self.schema, self.options.format)?;
        let tmp = open.tmp.clone();
        let file = match open.writer {
            Writer::Arrow(mut w) => {
                w.finish().map_err(|e| write_error(&tmp, e))?;
                w.into_inner()
                    .map_err(|e| write_error(&tmp, e))?
                    .into_inner()
                    .map_err(|e| write_error(&tmp, e.error()))?
            }
            Writer::Parquet(w) => w.into_inner().map_err(|e| write_error(&tmp, e))?,
        };
        file.sync_all().map_err(io_at(&tmp))?;
        drop(file);
        fs::rename(&tmp, &open.path).map_err(io_at(&open.path))?;
        sync_parent(&open.path)?;
        crate::write_atomic(&complete_marker(&open.path), b"")?;
        Ok(CompletedShard {
            path: open.path,
            keys: open.keys,
            batches: open.batches,
        })
    }
}

fn flush_pending(
    open: &mut OpenShard,
    schema: &SchemaRef,
    format: EntropyFileFormat,
) -> Result<()> {
    if open.pending.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(&mut open.pending);
    open.pending_sizes = [0; 6];
    let batch = build_batch(&rows, schema, format).map_err(|e| write_error(&open.tmp, e))?;
    open.batches += 1;
    match &mut open.writer {
        Writer::Arrow(w) => w.write(&batch).map_err(|e| write_error(&open.tmp, e)),
        Writer::Parquet(w) => w.write(&batch).map_err(|e| write_error(&open.tmp, e)),
    }
}

fn build_batch(
    rows: &[EntropyRow],
    schema: &SchemaRef,
    format: EntropyFileFormat,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let mut ids = StringBuilder::new();
    let mut text = StringBuilder::new();
    let mut bytes = BinaryBuilder::new();
    let mut entropies = ListBuilder::new(Float16Builder::new());
    let mut lengths = ListBuilder::new(Int32Builder::new());
    let mut metadata = StringBuilder::new();
    for row in rows {
        ids.append_value(&row.sample_id);
        match std::str::from_utf8(&row.bytes) {
            Ok(s) => {
                text.append_value(s);
                bytes.append_null();
            }
            Err(_) => {
                text.append_null();
                bytes.append_value(&row.bytes);
            }
        }
        for &h in &row.entropies {
            entropies.values().append_value(half::f16::from_f32(h));
        }
        entropies.append(true);
        for &l in &row.patch_lengths {
            lengths.values().append_value(l);
        }
        lengths.append(true);
        metadata.append_option(row.metadata.as_deref());
    }
    let entropies: ArrayRef = Arc::new(entropies.finish());
    let columns: Vec<ArrayRef> = match format {
        EntropyFileFormat::Arrow => {
            vec![Arc::new(ids.finish()), Arc::new(text.finish()), entropies]
        }
        EntropyFileFormat::Parquet => vec![
            Arc::new(ids.finish()),
            Arc::new(text.finish()),
            Arc::new(bytes.finish()),
            entropies,
            Arc::new(lengths.finish()),
            Arc::new(metadata.finish()),
        ],
    };
    // The builders' list fields are nullable "item", as the schema's.
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// Reads a shard's record batches, all columns or only `column`. A panic of the reader on a
/// corrupt shard is [`Error::ReaderPanicked`].
pub fn read_shard(
    path: &Path,
    format: EntropyFileFormat,
    column: Option<&str>,
) -> Result<Vec<RecordBatch>> {
    let (file, _) = open_regular(path)?;
    let bad = |e: &dyn std::fmt::Display| Error::Table {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    guard(path, || {
        let mut out = Vec::new();
        match format {
            EntropyFileFormat::Arrow => {
                let reader =
                    arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
                        .map_err(|e| bad(&e))?;
                let projection = column
                    .map(|c| reader.schema().index_of(c).map_err(|e| bad(&e)))
                    .transpose()?;
                for batch in reader {
                    let batch = batch.map_err(|e| bad(&e))?;
                    out.push(match projection {
                        Some(i) => batch.project(&[i]).map_err(|e| bad(&e))?,
                        None => batch,
                    });
                }
            }
            EntropyFileFormat::Parquet => {
                use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
                use parquet::arrow::ProjectionMask;
                let builder =
                    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
                let builder = match column {
                    Some(c) => {
                        let index = builder.schema().index_of(c).map_err(|e| bad(&e))?;
                        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
                        builder.with_projection(mask)
                    }
                    None => builder,
                };
                for batch in builder.build().map_err(|e| bad(&e))? {
                    out.push(batch.map_err(|e| bad(&e))?);
                }
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_past_what_a_batch_holds_is_refused() {
        let row = EntropyRow {
            sample_id: "doc-1".into(),
            bytes: b"0123456789".to_vec(),
            entropies: vec![0.5; 4],
            patch_lengths: vec![10],
            metadata: Some("{}".into()),
        };
        let sizes = row_sizes(&row, EntropyFileFormat::Parquet);
        assert_eq!(sizes, [5, 10, 0, 4, 1, 2]);
        check_row_fits("doc-1", &sizes, 10).unwrap();
        let err = check_row_fits("doc-1", &sizes, 9).unwrap_err();
        assert!(
            matches!(&err, Error::ShardRowTooLarge { key, column: "text", len: 10, limit: 9 } if key == "doc-1"),
            "{err}"
        );
        // Bytes that are not UTF-8 go into the `bytes` column (Parquet).
        let binary = EntropyRow {
            bytes: vec![0xff; 3],
            ..row
        };
        assert_eq!(
            row_sizes(&binary, EntropyFileFormat::Parquet),
            [5, 0, 3, 4, 1, 2]
        );
        assert_eq!(
            row_sizes(&binary, EntropyFileFormat::Arrow),
            [5, 0, 0, 4, 0, 0]
        );
    }
}
