//! Tables of documents: JSONL (plain, `.gz`, `.zst`), CSV, Parquet and Arrow IPC files read row by
//! row (one record batch or one line in memory at a time), one document per row.
//!
//! The text column gives the document's bytes exactly: a string's UTF-8 bytes, a binary value's
//! bytes, or for a Hugging Face `Image`/`Audio` struct (`{bytes, path}`) its bytes, else the file
//! its `path` names. Nothing goes through a lossy UTF-8 conversion. The id column (optional) gives
//! the readable part of the key; every other scalar column is carried as metadata.
//!
//! Input is untrusted: a JSONL line or CSV record is read with a cap
//! ([`ReadLimits::max_record_bytes`]), a path in a `{bytes, path}` value is read only from inside
//! the table's folder ([`PathResolver`]) and with a cap, only regular files are opened, and a
//! panic of the Parquet or Arrow reader on a corrupt file becomes [`Error::ReaderPanicked`].

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use serde_json::Value;

use crate::confine::PathResolver;
use crate::error::io_at;
use crate::limits::{guard, open_regular, read_line_bounded, Line, ReadLimits};
use crate::{Error, Result};

/// Rows per record batch read from Parquet, at most.
const PARQUET_BATCH_ROWS: usize = 1024;

/// Parquet record batches are made smaller than [`PARQUET_BATCH_ROWS`] when the file's row
/// groups say their rows average more than this divided by that.
const PARQUET_BATCH_BYTES: u64 = 64 << 20;

/// The option field that raises the limit on one JSONL line or CSV record.
const RECORD_OPTION: &str = "max_record_bytes";

/// The file formats read as tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`), optionally `.gz` or `.zst`.
    Jsonl,
    /// Comma-separated values with a header line (`.csv`, `.tsv` tab-separated), optionally
    /// `.gz` or `.zst`.
    Csv,
    /// Apache Parquet (`.parquet`).
    Parquet,
    /// Arrow IPC, file or stream format (`.arrow`, `.ipc`, `.feather`).
    ArrowIpc,
}

impl TableFormat {
    /// The format of a file name from its extension (`.gz`/`.zst` looked through), if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let base = lower
            .strip_suffix(".gz")
            .or_else(|| lower.strip_suffix(".zst"))
            .unwrap_or(&lower);
        let compressed = base.len() != lower.len();
        let ext = base.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            "csv" | "tsv" => Some(Self::Csv),
            "parquet" if !compressed => Some(Self::Parquet),
            "arrow" | "ipc" | "feather" if !compressed => Some(Self::ArrowIpc),
            _ => None,
        }
    }
}

/// Which columns hold what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The column holding each document (default `text`).
    pub text: String,
    /// The column holding each document's id, if any (it becomes the readable part of the key
    /// and the `id` metadata).
    pub id: Option<String>,
}

impl Default for ColumnSpec {
    fn default() -> Self {
        Self {
            text: "text".into(),
            id: None,
        }
    }
}

/// Why a row holds no document: what is wrong with it, and for a limit it hit, the option field
/// that raises the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RowError {
    /// Why, for messages.
    pub reason: String,
    /// The [`ReadLimits`] field that raises the limit the row hit (`max_record_bytes`,
    /// `max_referenced_file_bytes`), if it hit one.
    pub option: Option<&'static str>,
}

impl From<String> for RowError {
    fn from(reason: String) -> Self {
        Self {
            reason,
            option: None,
        }
    }
}

impl From<Error> for RowError {
    fn from(error: Error) -> Self {
        Self {
            option: error.option(),
            reason: error.to_string(),
        }
    }
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Its index in the file, from 0 (data lines for JSONL and CSV; blank JSONL lines are not
    /// rows).
    pub row: u64,
    /// The id column's value, as text.
    pub id: Option<String>,
    /// The document's bytes, or why the row holds none.
    pub bytes: std::result::Result<Vec<u8>, RowError>,
    /// The other scalar columns.
    pub metadata: BTreeMap<String, Value>,
}

/// Reads one table file row by row.
pub struct TableReader {
    path: PathBuf,
    columns: ColumnSpec,
    resolve: PathResolver,
    limits: ReadLimits,
    rows: Rows,
    next_row: u64,
    done: bool,
}

type BatchIter = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

enum Rows {
    Jsonl(Box<dyn BufRead + Send>),
    Csv(Box<CsvRows>),
    Batches {
        batches: BatchIter,
        current: Option<(RecordBatch, usize)>,
    },
}

fn decompressed(path: &Path) -> Result<Box<dyn Read + Send>> {
    let (file, _) = open_regular(path)?;
    let lower = path.to_string_lossy().to_ascii_lowercase();
    Ok(if lower.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else if lower.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(io_at(path))?)
    } else {
        Box::new(file)
    })
}

/// CSV read record by record with `csv-core` (the parser of the `csv` crate), so that a record
/// over the limit can be read past without holding it and the next one read as usual.
struct CsvRows {
    core: csv_core::Reader,
    input: BufReader<Box<dyn Read + Send>>,
    /// The fields' bytes, one after the other.
    fields: Vec<u8>,
    /// Where each field ends in `fields`.
    ends: Vec<usize>,
    /// How many of `ends` the last record filled.
    len: usize,
    headers: Vec<String>,
}

/// What [`CsvRows::read_record`] found.
enum CsvRecord {
    End,
    Record,
    TooLong,
}

impl CsvRows {
    fn new(input: Box<dyn Read + Send>, delimiter: u8) -> Self {
        Self {
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            input: BufReader::new(input),
            fields: vec![0; 1024],
            ends: vec![0; 64],
            len: 0,
            headers: Vec::new(),
        }
    }

    /// Reads the next record. A record's size is its fields' bytes plus 8 per field (what it
    /// takes in memory); one over `max` is read past up to its end, and neither buffer grows
    /// past about `max`.
    fn read_record(&mut self, max: u64) -> io::Result<CsvRecord> {
        use csv_core::ReadRecordResult;
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let (mut outlen, mut endlen) = (0usize, 0usize);
        let mut size = 0usize;
        let mut too_long = false;
        loop {
            let input = match self.input.fill_buf() {
                Ok(input) => input,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let (result, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.fields[outlen..], &mut self.ends[endlen..]);
            self.input.consume(nin);
            outlen += nout;
            endlen += nend;
            size = size
                .saturating_add(nout)
                .saturating_add(nend.saturating_mul(8));
            if size > max {
                too_long = true;
            }
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull if too_long => outlen = 0,
                ReadRecordResult::OutputFull => {
                    let grown = (self.fields.len() * 2).min(max.saturating_add(1));
                    self.fields.resize(grown.max(self.fields.len() + 1), 0);
                }
                ReadRecordResult::OutputEndsFull if too_long => endlen = 0,
                ReadRecordResult::OutputEndsFull => {
                    let grown = (self.ends.len() * 2).min(max / 8 + 1);
                    self.ends.resize(grown.max(self.ends.len() + 1), 0);
                }
                ReadRecordResult::Record if too_long => return Ok(CsvRecord::TooLong),
                ReadRecordResult::Record => {
                    self.len = endlen;
                    return Ok(CsvRecord::Record);
                }
                ReadRecordResult::End => return Ok(CsvRecord::End),
            }
        }
    }

    /// The fields of the last record read.
    fn record(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends[..self.len].iter().map(move |&end| {
            let field = &self.fields[start..end];
            start = end;
            field
        })
    }
}

fn table_error(path: &Path, reason: impl ToString) -> Error {
    Error::Table {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl TableReader {
    /// Opens `path` as a table of `format` with the default [`ReadLimits`]. Paths in
    /// `{bytes, path}` columns are read only from inside the file's folder
    /// ([`PathResolver::in_folder`]).
    pub fn open(path: &Path, format: TableFormat, columns: &ColumnSpec) -> Result<Self> {
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::open_with(
            path,
            format,
            columns,
            PathResolver::in_folder(folder),
            &ReadLimits::default(),
        )
    }

    /// Opens `path` as a table of `format`, reading paths in `{bytes, path}` columns with
    /// `resolve`, within `limits`. Only a regular file is opened ([`Error::NotAFile`]); a
    /// corrupt Parquet or Arrow file is [`Error::Table`], or [`Error::ReaderPanicked`] when the
    /// reader panics on it.
    pub fn open_with(
        path: &Path,
        format: TableFormat,
        columns: &ColumnSpec,
        resolve: PathResolver,
        limits: &ReadLimits,
    ) -> Result<Self> {
        let rows = match format {
            TableFormat::Jsonl => Rows::Jsonl(Box::new(BufReader::new(decompressed(path)?))),
            TableFormat::Csv => {
                let tab = path.to_string_lossy().to_ascii_lowercase().contains(".tsv");
                let mut csv = CsvRows::new(decompressed(path)?, if tab { b'\t' } else { b',' });
                match csv
                    .read_record(limits.max_record_bytes)
                    .map_err(io_at(path))?
                {
                    CsvRecord::Record => {
                        csv.headers = csv
                            .record()
                            .map(|h| String::from_utf8_lossy(h).into_owned())
                            .collect();
                    }
                    CsvRecord::End => {}
                    CsvRecord::TooLong => {
                        return Err(table_error(
                            path,
                            format!(
                                "the header line is over the limit of {} bytes (option {RECORD_OPTION})",
                                limits.max_record_bytes
                            ),
                        ))
                    }
                }
                if !csv.headers.iter().any(|h| h == &columns.text) {
                    return Err(missing_column(path, &columns.text, &csv.headers));
                }
                Rows::Csv(Box::new(csv))
            }
            TableFormat::Parquet => {
                let (file, _) = open_regular(path)?;
                let reader = guard(path, || {
                    let builder =
                        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                            file,
                        )
                        .map_err(|e| table_error(path, e))?;
                    check_schema(path, builder.schema(), columns)?;
                    let batch_rows = parquet_batch_rows(builder.metadata());
                    builder
                        .with_batch_size(batch_rows)
                        .build()
                        .map_err(|e| table_error(path, e))
                })?;
                Rows::Batches {
                    batches: Box::new(reader),
                    current: None,
                }
            }
            TableFormat::ArrowIpc => {
                let (mut file, _) = open_regular(path)?;
                let mut magic = [0u8; 6];
                let n = read_up_to(&mut file, &mut magic).map_err(io_at(path))?;
                file.seek(SeekFrom::Start(0)).map_err(io_at(path))?;
                let batches: BatchIter = guard(path, || {
                    if n == magic.len() && &magic == b"ARROW1" {
                        let reader =
                            arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
                                .map_err(|e| table_error(path, e))?;
                        check_schema(path, &reader.schema(), columns)?;
                        Ok(Box::new(reader) as BatchIter)
                    } else {
                        let reader =
                            arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                                .map_err(|e| table_error(path, e))?;
                        check_schema(path, &reader.schema(), columns)?;
                        Ok(Box::new(reader) as BatchIter)
                    }
                })?;
                Rows::Batches {
                    batches,
                    current: None,
                }
            }
        };
        Ok(Self {
            path: path.to_owned(),
            columns: columns.clone(),
            resolve,
            limits: *limits,
            rows,
            next_row: 0,
            done: false,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_jsonl(&mut self) -> Option<Result<TableRow>> {
        let Rows::Jsonl(reader) = &mut self.rows else {
            return None;
        };
        let mut line = Vec::new();
        loop {
            match read_line_bounded(reader.as_mut(), &mut line, self.limits.max_record_bytes) {
                Ok(Line::End) => return None,
                Ok(Line::Read) => {}
                Ok(Line::TooLong) => return Some(Ok(self.too_long_row())),
                Err(e) => return Some(Err(Error::io(&self.path, e))),
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let row = self.next_row;
            self.next_row += 1;
            let parsed: std::result::Result<serde_json::Map<String, Value>, _> =
                serde_json::from_slice(&line);
            let mut object = match parsed {
                Ok(object) => object,
                Err(e) => {
                    return Some(Ok(TableRow {
                        row,
                        id: None,
                        bytes: Err(format!("line is not a JSON object: {e}").into()),
                        metadata: BTreeMap::new(),
                    }))
                }
            };
            let bytes = match object.remove(&self.columns.text) {
                Some(Value::String(s)) => Ok(s.into_bytes()),
                Some(Value::Null) => Err(format!("column {:?} is null", self.columns.text)),
                Some(other) => Err(format!(
                    "column {:?} holds {} instead of a string",
                    self.columns.text,
                    json_kind(&other)
                )),
                None => Err(format!("no column {:?}", self.columns.text)),
            }
            .map_err(RowError::from);
            let id = self.columns.id.as_ref().and_then(|c| match object.get(c) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
            return Some(Ok(TableRow {
                row,
                id,
                bytes,
                metadata: object.into_iter().collect(),
            }));
        }
    }

    /// The next row, counted, as a failure: its record is over `max_record_bytes`.
    fn too_long_row(&mut self) -> TableRow {
        let row = self.next_row;
        self.next_row += 1;
        TableRow {
            row,
            id: None,
            bytes: Err(RowError::from(Error::RecordTooLarge {
                path: self.path.clone(),
                row,
                limit: self.limits.max_record_bytes,
                option: RECORD_OPTION,
            })),
            metadata: BTreeMap::new(),
        }
    }

    fn next_csv(&mut self) -> Option<Result<TableRow>> {
        let Rows::Csv(csv) = &mut self.rows else {
            return None;
        };
        match csv.read_record(self.limits.max_record_bytes) {
            Ok(CsvRecord::End) => None,
            Ok(CsvRecord::TooLong) => Some(Ok(self.too_long_row())),
            Err(e) => Some(Err(Error::io(&self.path, e))),
            Ok(CsvRecord::Record) => {
                let row = self.next_row;
                self.next_row += 1;
                let mut bytes = Err(RowError::from(format!(
                    "no column {:?} in this line",
                    self.columns.text
                )));
                let mut id = None;
                let mut metadata = BTreeMap::new();
                for (name, field) in csv.headers.iter().zip(csv.record()) {
                    if name == &self.columns.text {
                        bytes = Ok(field.to_vec());
                        continue;
                    }
                    let value = match std::str::from_utf8(field) {
                        Ok(s) => Value::String(s.to_owned()),
                        Err(_) => Value::Array(field.iter().map(|&b| Value::from(b)).collect()),
                    };
                    if self.columns.id.as_deref() == Some(name.as_str()) {
                        id = value.as_str().map(str::to_owned);
                    }
                    metadata.insert(name.clone(), value);
                }
                Some(Ok(TableRow {
                    row,
                    id,
                    bytes,
                    metadata,
                }))
            }
        }
    }

    fn next_batch_row(&mut self) -> Option<Result<TableRow>> {
        loop {
            let Rows::Batches { batches, current } = &mut self.rows else {
                return None;
            };
            if let Some((batch, index)) = current {
                if *index < batch.num_rows() {
                    let i = *index;
                    *index += 1;
                    let row = self.next_row;
                    self.next_row += 1;
                    let (columns, resolve, limits) = (&self.columns, &self.resolve, &self.limits);
                    return Some(guard(&self.path, || {
                        Ok(batch_row(batch, i, row, columns, resolve, limits))
                    }));
                }
            }
            match guard(&self.path, || Ok(batches.next())) {
                Ok(None) => return None,
                Ok(Some(Ok(batch))) => *current = Some((batch, 0)),
                Ok(Some(Err(e))) => return Some(Err(table_error(&self.path, e))),
                Err(panicked) => return Some(Err(panicked)),
            }
        }
    }
}

/// Reads into `buf` until it is full or the input ends; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Rows per Parquet record batch: [`PARQUET_BATCH_ROWS`], fewer when the row groups' rows are
/// large on average (by the row groups' uncompressed sizes), so that a batch holds about
/// [`PARQUET_BATCH_BYTES`]. The sizes are the file's claims; they only ever make batches
/// smaller.
fn parquet_batch_rows(metadata: &parquet::file::metadata::ParquetMetaData) -> usize {
    let mut rows = PARQUET_BATCH_ROWS as u64;
    for group in metadata.row_groups() {
        let count = u64::try_from(group.num_rows()).unwrap_or(0).max(1);
        let bytes = u64::try_from(group.total_byte_size()).unwrap_or(0);
        if let Some(fit) = PARQUET_BATCH_BYTES.checked_div(bytes / count) {
            rows = rows.min(fit.max(1));
        }
    }
    usize::try_from(rows).unwrap_or(1).max(1)
}

impl Iterator for TableReader {
    type Item = Result<TableRow>;

    /// The next row; an `Err` (a corrupt file, a failed read, a panic of the reader) ends the
    /// file. A row that is bad by itself (not JSON, no text, a record over
    /// `max_record_bytes`, a path refused) is an `Ok` row whose `bytes` is the [`RowError`];
    /// the rows after it are read as usual.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.rows {
            Rows::Jsonl(_) => self.next_jsonl(),
            Rows::Csv(_) => self.next_csv(),
            Rows::Batches { .. } => self.next_batch_row(),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn missing_column(path: &Path, column: &str, have: &[String]) -> Error {
    table_error(
        path,
        format!(
            "no text column {column:?} (columns: {}); choose one with --text-column",
            have.join(", ")
        ),
    )
}

fn check_schema(path: &Path, schema: &arrow_schema::Schema, columns: &ColumnSpec) -> Result<()> {
    let Ok(field) = schema.field_with_name(&columns.text) else {
        let have: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        return Err(missing_column(path, &columns.text, &have));
    };
    if bytes_kind(field.data_type()).is_none() {
        return Err(table_error(
            path,
            format!(
                "text column {:?} has type {}; a string, binary or {{bytes, path}} column is needed",
                columns.text,
                field.data_type()
            ),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum BytesKind {
    Utf8,
    LargeUtf8,
    Utf8View,
    Binary,
    LargeBinary,
    BinaryView,
    FixedBinary,
    /// A struct with a `bytes` and/or a `path` field (Hugging Face `Image`, `Audio`).
    BytesOrPath,
}

fn bytes_kind(t: &DataType) -> Option<BytesKind> {
    Some(match t {
        DataType::Utf8 => BytesKind::Utf8,
        DataType::LargeUtf8 => BytesKind::LargeUtf8,
        DataType::Utf8View => BytesKind::Utf8View,
        DataType::Binary => BytesKind::Binary,
        DataType::LargeBinary => BytesKind::LargeBinary,
        DataType::BinaryView => BytesKind::BinaryView,
        DataType::FixedSizeBinary(_) => BytesKind::FixedBinary,
        DataType::Struct(fields)
            if fields
                .iter()
                .any(|f| f.name() == "bytes" || f.name() == "path") =>
        {
            BytesKind::BytesOrPath
        }
        _ => return None,
    })
}

/// The bytes of `array[i]`, `None` if it is null (or of a type that holds none).
fn cell_bytes(array: &dyn Array, i: usize) -> Option<Vec<u8>> {
    if array.is_null(i) {
        return None;
    }
    Some(match bytes_kind(array.data_type())? {
        BytesKind::Utf8 => array.as_string::<i32>().value(i).as_bytes().to_vec(),
        BytesKind::LargeUtf8 => array.as_string::<i64>().value(i).as_bytes().to_vec(),
        BytesKind::Utf8View => array.as_string_view().value(i).as_bytes().to_vec(),
        BytesKind::Binary => array.as_binary::<i32>().value(i).to_vec(),
        BytesKind::LargeBinary => array.as_binary::<i64>().value(i).to_vec(),
        BytesKind::BinaryView => array.as_binary_view().value(i).to_vec(),
        BytesKind::FixedBinary => array.as_fixed_size_binary().value(i).to_vec(),
        BytesKind::BytesOrPath => return None,
    })
}

fn struct_bytes(
    array: &dyn Array,
    i: usize,
    resolve: &PathResolver,
    limits: &ReadLimits,
) -> std::result::Result<Vec<u8>, RowError> {
    let s = array.as_struct();
    if let Some(bytes) = s.column_by_name("bytes").and_then(|b| cell_bytes(b, i)) {
        return Ok(bytes);
    }
    let Some(path) = s.column_by_name("path").and_then(|p| cell_bytes(p, i)) else {
        return Err("both bytes and path are null".to_string().into());
    };
    let path = String::from_utf8(path).map_err(|_| "the path is not UTF-8".to_string())?;
    Ok(resolve.read(&path, limits.max_referenced_file_bytes)?)
}

fn batch_row(
    batch: &RecordBatch,
    i: usize,
    row: u64,
    columns: &ColumnSpec,
    resolve: &PathResolver,
    limits: &ReadLimits,
) -> TableRow {
    let schema = batch.schema();
    let mut bytes = Err(format!("no column {:?}", columns.text).into());
    let mut id = None;
    let mut metadata = BTreeMap::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        if name == &columns.text {
            bytes = match bytes_kind(field.data_type()) {
                Some(BytesKind::BytesOrPath) if !array.is_null(i) => {
                    struct_bytes(array.as_ref(), i, resolve, limits)
                }
                _ => cell_bytes(array.as_ref(), i)
                    .ok_or_else(|| format!("column {name:?} is null").into()),
            };
            continue;
        }
        let Some(value) = scalar_json(array.as_ref(), i) else {
            continue;
        };
        if columns.id.as_deref() == Some(name.as_str()) {
            id = match &value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
        }
        metadata.insert(name.clone(), value);
    }
    TableRow {
        row,
        id,
        bytes,
        metadata,
    }
}

/// A scalar cell as JSON: booleans, integers, floats and strings; `None` for other types
/// (binary, nested), which are not carried as metadata.
fn scalar_json(array: &dyn Array, i: usize) -> Option<Value> {
    if array.is_null(i) {
        return Some(Value::Null);
    }
    Some(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => Value::from(array.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(i)),
        DataType::Utf8View => Value::from(array.as_string_view().value(i)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        assert_eq!(TableFormat::from_name("a.jsonl"), Some(TableFormat::Jsonl));
        assert_eq!(
            TableFormat::from_name("a.jsonl.zst"),
            Some(TableFormat::Jsonl)
        );
        assert_eq!(
            TableFormat::from_name("x/a.JSON.gz"),
            Some(TableFormat::Jsonl)
        );
        assert_eq!(TableFormat::from_name("a.csv.gz"), Some(TableFormat::Csv));
        assert_eq!(
            TableFormat::from_name("0000.parquet"),
            Some(TableFormat::Parquet)
        );
        assert_eq!(
            TableFormat::from_name("data-00000-of-00002.arrow"),
            Some(TableFormat::ArrowIpc)
        );
        assert_eq!(TableFormat::from_name("a.parquet.gz"), None);
        assert_eq!(TableFormat::from_name("README.md"), None);
        assert_eq!(TableFormat::from_name("noext"), None);
    }

    #[test]
    fn parquet_batches_shrink_for_large_rows() {
        use arrow_array::{ArrayRef, StringArray};
        use arrow_schema::{Field, Schema};
        use std::fs::File;
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, texts: Vec<String>| {
            let schema =
                std::sync::Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
            let column: ArrayRef = std::sync::Arc::new(StringArray::from(texts));
            let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
            let path = tmp.path().join(name);
            let file = File::create(&path).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            let file = File::open(&path).unwrap();
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap();
            parquet_batch_rows(builder.metadata())
        };
        let small = (0..50).map(|i| format!("short text {i}")).collect();
        assert_eq!(write("small.parquet", small), PARQUET_BATCH_ROWS);
        // Three distinct rows of 1 MiB: a batch of 64 MiB holds 64 of them.
        let big = (0..3)
            .map(|i| format!("{i:x}").repeat(1 << 20))
            .collect::<Vec<_>>();
        let rows = write("big.parquet", big);
        assert!((32..=64).contains(&rows), "{rows}");
    }
}
