//! Tables of documents: JSONL (plain, `.gz`, `.zst`), CSV, Parquet and Arrow IPC files read row by
//! row (one record batch or one line in memory at a time), one document per row.
//!
//! The text column gives the document's bytes exactly: a string's UTF-8 bytes, a binary value's
//! bytes, or for a Hugging Face `Image`/`Audio` struct (`{bytes, path}`) its bytes, else the file
//! its `path` names. Nothing goes through a lossy UTF-8 conversion. The id column (optional) gives
//! the readable part of the key; every other scalar column is carried as metadata.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use serde_json::Value;

use crate::error::io_at;
use crate::{Error, Result};

/// Rows per record batch read from Parquet.
const PARQUET_BATCH_ROWS: usize = 1024;

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

/// Turns a path found in a binary column (`{"bytes": null, "path": "..."}`) into a local file.
pub type PathResolver = Arc<dyn Fn(&str) -> std::result::Result<PathBuf, String> + Send + Sync>;

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Its index in the file, from 0 (data lines for JSONL and CSV; blank JSONL lines are not
    /// rows).
    pub row: u64,
    /// The id column's value, as text.
    pub id: Option<String>,
    /// The document's bytes, or why the row holds none.
    pub bytes: std::result::Result<Vec<u8>, String>,
    /// The other scalar columns.
    pub metadata: BTreeMap<String, Value>,
}

/// Reads one table file row by row.
pub struct TableReader {
    path: PathBuf,
    columns: ColumnSpec,
    resolve: PathResolver,
    rows: Rows,
    next_row: u64,
    done: bool,
}

type BatchIter = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

enum Rows {
    Jsonl(Box<dyn BufRead + Send>),
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        headers: Vec<String>,
    },
    Batches {
        batches: BatchIter,
        current: Option<(RecordBatch, usize)>,
    },
}

fn decompressed(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).map_err(io_at(path))?;
    let lower = path.to_string_lossy().to_ascii_lowercase();
    Ok(if lower.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else if lower.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(io_at(path))?)
    } else {
        Box::new(file)
    })
}

fn table_error(path: &Path, reason: impl ToString) -> Error {
    Error::Table {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl TableReader {
    /// Opens `path` as a table of `format`. Paths in binary columns are resolved against the
    /// file's folder.
    pub fn open(path: &Path, format: TableFormat, columns: &ColumnSpec) -> Result<Self> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve: PathResolver = Arc::new(move |p: &str| Ok(base.join(p)));
        Self::open_with(path, format, columns, resolve)
    }

    /// Opens `path` as a table of `format`, resolving paths in binary columns with `resolve`.
    pub fn open_with(
        path: &Path,
        format: TableFormat,
        columns: &ColumnSpec,
        resolve: PathResolver,
    ) -> Result<Self> {
        let rows = match format {
            TableFormat::Jsonl => Rows::Jsonl(Box::new(BufReader::new(decompressed(path)?))),
            TableFormat::Csv => {
                let tab = path.to_string_lossy().to_ascii_lowercase().contains(".tsv");
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(if tab { b'\t' } else { b',' })
                    .flexible(true)
                    .from_reader(decompressed(path)?);
                let headers = reader
                    .byte_headers()
                    .map_err(|e| table_error(path, e))?
                    .iter()
                    .map(|h| String::from_utf8_lossy(h).into_owned())
                    .collect::<Vec<_>>();
                if !headers.iter().any(|h| h == &columns.text) {
                    return Err(missing_column(path, &columns.text, &headers));
                }
                Rows::Csv { reader, headers }
            }
            TableFormat::Parquet => {
                let file = File::open(path).map_err(io_at(path))?;
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| table_error(path, e))?;
                check_schema(path, builder.schema(), columns)?;
                let reader = builder
                    .with_batch_size(PARQUET_BATCH_ROWS)
                    .build()
                    .map_err(|e| table_error(path, e))?;
                Rows::Batches {
                    batches: Box::new(reader),
                    current: None,
                }
            }
            TableFormat::ArrowIpc => {
                let mut magic = [0u8; 6];
                let n = File::open(path)
                    .and_then(|mut f| f.read(&mut magic))
                    .map_err(io_at(path))?;
                let file = File::open(path).map_err(io_at(path))?;
                let batches: BatchIter = if n == 6 && &magic == b"ARROW1" {
                    let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
                        .map_err(|e| table_error(path, e))?;
                    check_schema(path, &reader.schema(), columns)?;
                    Box::new(reader)
                } else {
                    let reader =
                        arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                            .map_err(|e| table_error(path, e))?;
                    check_schema(path, &reader.schema(), columns)?;
                    Box::new(reader)
                };
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
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(_) => {}
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
                        bytes: Err(format!("line is not a JSON object: {e}")),
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
            };
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

    fn next_csv(&mut self) -> Option<Result<TableRow>> {
        let Rows::Csv { reader, headers } = &mut self.rows else {
            return None;
        };
        let mut record = csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(false) => None,
            Err(e) => Some(Err(table_error(&self.path, e))),
            Ok(true) => {
                let row = self.next_row;
                self.next_row += 1;
                let mut bytes = Err(format!("no column {:?} in this line", self.columns.text));
                let mut id = None;
                let mut metadata = BTreeMap::new();
                for (name, field) in headers.iter().zip(record.iter()) {
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
                    return Some(Ok(batch_row(batch, i, row, &self.columns, &self.resolve)));
                }
            }
            match batches.next()? {
                Ok(batch) => *current = Some((batch, 0)),
                Err(e) => return Some(Err(table_error(&self.path, e))),
            }
        }
    }
}

impl Iterator for TableReader {
    type Item = Result<TableRow>;

    /// The next row; an `Err` (a corrupt file, a failed read) ends the file.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.rows {
            Rows::Jsonl(_) => self.next_jsonl(),
            Rows::Csv { .. } => self.next_csv(),
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
) -> std::result::Result<Vec<u8>, String> {
    let s = array.as_struct();
    if let Some(bytes) = s.column_by_name("bytes").and_then(|b| cell_bytes(b, i)) {
        return Ok(bytes);
    }
    let Some(path) = s.column_by_name("path").and_then(|p| cell_bytes(p, i)) else {
        return Err("both bytes and path are null".into());
    };
    let path = String::from_utf8(path).map_err(|_| "the path is not UTF-8".to_string())?;
    let local = resolve(&path)?;
    std::fs::read(&local).map_err(|e| format!("{}: {e}", local.display()))
}

fn batch_row(
    batch: &RecordBatch,
    i: usize,
    row: u64,
    columns: &ColumnSpec,
    resolve: &PathResolver,
) -> TableRow {
    let schema = batch.schema();
    let mut bytes = Err(format!("no column {:?}", columns.text));
    let mut id = None;
    let mut metadata = BTreeMap::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        if name == &columns.text {
            bytes = match bytes_kind(field.data_type()) {
                Some(BytesKind::BytesOrPath) if !array.is_null(i) => {
                    struct_bytes(array.as_ref(), i, resolve)
                }
                _ => {
                    cell_bytes(array.as_ref(), i).ok_or_else(|| format!("column {name:?} is null"))
                }
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
}
