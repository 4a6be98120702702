//! Hostile and broken input: files that claim more than they hold, files that are not files,
//! paths in tables that point elsewhere, records without end, corrupt and truncated tables, and
//! entropy shards whose batches must stay within Arrow's offsets. Every hostile file is made
//! here, in a temp folder; none of it reads or writes more than a few megabytes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder, StructBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use blt_datasets::{
    enumerate, open_documents_with, read_shard, ColumnSpec, DocumentOrigin, DocumentRef,
    EntropyFileFormat, EntropyRow, EntropyShardOptions, EntropyShardSink, Error, HfDatasetSpec,
    InputSpec, ReadLimits, Selection, SourceFailure, SourceItem, TableFormat, TableReader,
};

fn tables(paths: Vec<PathBuf>) -> InputSpec {
    InputSpec::Tables {
        paths,
        glob: None,
        columns: ColumnSpec::default(),
    }
}

fn items(spec: &InputSpec, limits: &ReadLimits) -> Vec<SourceItem> {
    open_documents_with(spec, &Selection::default(), limits)
        .unwrap()
        .collect()
}

fn text(item: &SourceItem) -> String {
    let doc = item.as_ref().unwrap_or_else(|f| panic!("{f:?}"));
    String::from_utf8(doc.read(None).unwrap()).unwrap()
}

fn failure(item: &SourceItem) -> &SourceFailure {
    item.as_ref()
        .err()
        .unwrap_or_else(|| panic!("expected a failure, got a document"))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

fn doc_at(path: &Path) -> DocumentRef {
    DocumentRef {
        key: "doc-0000000000000000".into(),
        name: path.display().to_string(),
        source: DocumentOrigin::Path(path.to_owned()),
        byte_len: 0,
    }
}

// ---- documents --------------------------------------------------------------------------------

#[test]
fn a_sparse_terabyte_is_refused_without_reading_or_reserving_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huge.txt");
    // A terabyte of holes: no disk used (ext4, tmpfs), and nothing of it is read.
    File::create(&path).unwrap().set_len(1 << 40).unwrap();
    let docs = enumerate(&InputSpec::File(path.clone())).unwrap();
    assert_eq!(docs[0].byte_len, 1 << 40);
    match docs[0].read(Some(1 << 20)).unwrap_err() {
        Error::TooLarge { path: p, len, max } => {
            assert_eq!((p, len, max), (path, 1 << 40, 1 << 20));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn proc_files_that_claim_zero_bytes_are_still_bounded() {
    let status = Path::new("/proc/self/status");
    if !status.is_file() {
        return; // not Linux
    }
    let docs = enumerate(&InputSpec::File(status.to_owned())).unwrap();
    assert_eq!(docs[0].byte_len, 0, "procfs reports no length");
    match docs[0].read(Some(16)).unwrap_err() {
        Error::TooLarge { len, max, .. } => assert_eq!((len, max), (17, 16)),
        other => panic!("{other}"),
    }
    assert!(docs[0].read(Some(1 << 20)).unwrap().len() > 16);
}

#[test]
fn devices_fifos_and_links_to_them_are_never_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.txt")).unwrap();
    std::os::unix::fs::symlink("/dev/null", dir.join("null.txt")).unwrap();
    mkfifo(&dir.join("fifo.txt"));

    // The folder walk skips them (with a warning).
    let docs = enumerate(&InputSpec::Dir {
        root: dir.clone(),
        glob: None,
    })
    .unwrap();
    assert_eq!(
        docs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["a.txt"]
    );

    // Named as a file, they are refused, saying what they are.
    for (name, want) in [
        ("zero.txt", "a character device"),
        ("null.txt", "a character device"),
        ("fifo.txt", "a FIFO"),
    ] {
        let path = dir.join(name);
        match enumerate(&InputSpec::File(path.clone())).unwrap_err() {
            Error::NotAFile { path: p, kind } => assert_eq!((p, kind), (path.clone(), want)),
            other => panic!("{other}"),
        }
        // A document that became one after it was listed: refused, not read (a FIFO would
        // block, /dev/zero never end).
        match doc_at(&path).read(None).unwrap_err() {
            Error::NotAFile { kind, .. } => assert_eq!(kind, want),
            other => panic!("{other}"),
        }
    }

    // A table named explicitly that is a FIFO is that file's failure; the others are read.
    std::fs::write(dir.join("good.jsonl"), "{\"text\": \"kept\"}\n").unwrap();
    mkfifo(&dir.join("pipe.jsonl"));
    let got = items(
        &tables(vec![dir.join("pipe.jsonl"), dir.join("good.jsonl")]),
        &ReadLimits::default(),
    );
    assert_eq!(got.len(), 2);
    let f = failure(&got[0]);
    assert!(f.reason.contains("a FIFO"), "{}", f.reason);
    assert_eq!(text(&got[1]), "kept");
    // In a folder of tables it is skipped like any non-regular file.
    let got = items(&tables(vec![dir.clone()]), &ReadLimits::default());
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), "kept");
}

// ---- paths in tables --------------------------------------------------------------------------

/// A Parquet table whose `image` column is a Hugging Face `{bytes, path}` struct with only
/// paths.
fn path_table(paths: &[&str]) -> Vec<u8> {
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let mut column = StructBuilder::from_fields(fields.clone(), paths.len());
    for path in paths {
        column
            .field_builder::<BinaryBuilder>(0)
            .unwrap()
            .append_null();
        column
            .field_builder::<StringBuilder>(1)
            .unwrap()
            .append_value(path);
        column.append(true);
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Struct(fields),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column.finish())]).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn image_columns() -> ColumnSpec {
    ColumnSpec {
        text: "image".into(),
        id: None,
    }
}

#[test]
fn paths_in_tables_stay_inside_the_tables_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "secret").unwrap();
    let folder = tmp.path().join("table");
    std::fs::create_dir(&folder).unwrap();
    std::fs::create_dir(folder.join("img")).unwrap();
    std::fs::write(folder.join("ok.txt"), "beside the table").unwrap();
    std::fs::write(folder.join("img/cat.bin"), [0xffu8, 0x00, 0xfe]).unwrap();
    std::fs::write(folder.join("big.bin"), vec![7u8; 100]).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), folder.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", folder.join("zero.bin")).unwrap();
    std::os::unix::fs::symlink("ok.txt", folder.join("inside-link.txt")).unwrap();
    mkfifo(&folder.join("fifo.bin"));
    let rows = [
        "ok.txt",
        "../secret.txt",
        "/etc/hostname",
        "link.txt",
        "/dev/zero",
        "zero.bin",
        "fifo.bin",
        "img/../../secret.txt",
        "C:\\Windows\\win.ini",
        "",
        "big.bin",
        "./img/cat.bin",
        "inside-link.txt",
        "missing.txt",
    ];
    std::fs::write(folder.join("data.parquet"), path_table(&rows)).unwrap();
    let spec = InputSpec::Tables {
        paths: vec![folder.join("data.parquet")],
        glob: None,
        columns: image_columns(),
    };
    let limits = ReadLimits {
        max_referenced_file_bytes: 64,
        ..ReadLimits::default()
    };
    let got = items(&spec, &limits);
    assert_eq!(got.len(), rows.len());
    assert_eq!(text(&got[0]), "beside the table");
    assert_eq!(
        got[11].as_ref().unwrap().read(None).unwrap(),
        [0xffu8, 0x00, 0xfe]
    );
    assert_eq!(text(&got[12]), "beside the table");
    let expect = |i: usize, parts: &[&str]| {
        let f = failure(&got[i]);
        assert_eq!(f.row, Some(i as u64));
        for part in parts {
            assert!(
                f.reason.contains(part),
                "row {i}: {:?} lacks {part:?}",
                f.reason
            );
        }
        f.clone()
    };
    expect(1, &["\"../secret.txt\"", "a \"..\" component", "refused"]);
    expect(2, &["\"/etc/hostname\"", "an absolute path"]);
    expect(3, &["\"link.txt\"", "outside the folder", "secret.txt"]);
    expect(4, &["\"/dev/zero\"", "an absolute path"]);
    expect(5, &["\"zero.bin\"", "outside the folder", "/dev/zero"]);
    expect(6, &["fifo.bin", "not a regular file (a FIFO)"]);
    expect(7, &["a \"..\" component"]);
    expect(8, &["a backslash"]);
    expect(9, &["an empty path"]);
    let big = expect(
        10,
        &[
            "big.bin",
            "over the limit of 64 bytes",
            "max_referenced_file_bytes",
        ],
    );
    assert_eq!(big.option, Some("max_referenced_file_bytes"));
    expect(13, &["missing.txt"]);
    // None of the secret came through.
    for item in got.iter().flatten() {
        assert_ne!(item.read(None).unwrap(), b"secret");
    }
}

#[test]
fn paths_in_hub_tables_stay_inside_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("token"), "hf_secret").unwrap();
    let table = path_table(&[
        "cat.bin",
        "images/dog.bin",
        "../../../../token",
        "/etc/hostname",
        "not-listed.bin",
    ]);
    let files: Vec<(&str, &[u8])> = vec![
        ("data/train-00000-of-00001.parquet", &table),
        ("data/cat.bin", b"meow"),
        ("images/dog.bin", b"woof"),
    ];
    blt_hub::testing::lay_out_dataset_cache(
        &cache,
        "org/pictures",
        "main",
        "0123456789abcdef0123456789abcdef01234567",
        &files,
    )
    .unwrap();
    let cache_var = cache.display().to_string();
    let spec = InputSpec::HfDataset {
        dataset: HfDatasetSpec {
            repo: "org/pictures".into(),
            config: None,
            split: "train".into(),
        },
        revision: "main".into(),
        columns: image_columns(),
        hub: blt_hub::HubOptions::from_vars(|k| match k {
            "HF_HUB_CACHE" => Some(cache_var.clone()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        }),
    };
    let got = items(&spec, &ReadLimits::default());
    assert_eq!(got.len(), 5);
    assert_eq!(text(&got[0]), "meow"); // beside the table
    assert_eq!(text(&got[1]), "woof"); // from the repo's root
    for (i, part) in [
        (2, "a \"..\" component"),
        (3, "an absolute path"),
        (4, "the dataset lists no file"),
    ] {
        let f = failure(&got[i]);
        assert!(f.reason.contains(part), "row {i}: {}", f.reason);
    }
}

// ---- records without end ----------------------------------------------------------------------

#[test]
fn an_overlong_jsonl_line_is_that_rows_failure_and_reading_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let long = format!("{{\"text\": \"{}\"}}", "x".repeat(500));
    let content = format!("{{\"text\": \"first\"}}\n{long}\n\n{{\"text\": \"third\"}}\n{long}");
    std::fs::write(tmp.path().join("a.jsonl"), &content).unwrap();
    let zst = zstd::encode_all(content.as_bytes(), 3).unwrap();
    std::fs::write(tmp.path().join("b.jsonl.zst"), zst).unwrap();
    let limits = ReadLimits {
        max_record_bytes: 100,
        ..ReadLimits::default()
    };
    for name in ["a.jsonl", "b.jsonl.zst"] {
        let got = items(&tables(vec![tmp.path().join(name)]), &limits);
        assert_eq!(got.len(), 4, "{name}");
        assert_eq!(text(&got[0]), "first");
        assert_eq!(text(&got[2]), "third");
        for (i, row) in [(1, 1), (3, 3)] {
            let f = failure(&got[i]);
            assert_eq!(f.row, Some(row));
            assert_eq!(f.option, Some("max_record_bytes"));
            assert!(
                f.reason.contains(name)
                    && f.reason.contains(&format!("row {row}"))
                    && f.reason.contains("limit of 100 bytes"),
                "{}",
                f.reason
            );
        }
    }
    // The default limit reads the long lines.
    let got = items(
        &tables(vec![tmp.path().join("a.jsonl")]),
        &ReadLimits::default(),
    );
    assert!(got.iter().all(Result::is_ok));
}

#[test]
fn an_overlong_csv_record_is_skipped_to_its_real_end() {
    let tmp = tempfile::tempdir().unwrap();
    // The long record has quoted newlines and commas: skipping it must follow the quotes.
    let long = format!(
        "\"{}\n,still the same field\n{}\"",
        "y".repeat(300),
        "z".repeat(300)
    );
    let csv =
        format!("id,text\n1,short one\n2,{long}\n3,\"quoted, \"\"fine\"\"\"\n4,{long}\n5,last\n");
    std::fs::write(tmp.path().join("t.csv"), &csv).unwrap();
    let limits = ReadLimits {
        max_record_bytes: 128,
        ..ReadLimits::default()
    };
    let got = items(&tables(vec![tmp.path().join("t.csv")]), &limits);
    assert_eq!(got.len(), 5);
    assert_eq!(text(&got[0]), "short one");
    assert_eq!(text(&got[2]), "quoted, \"fine\"");
    assert_eq!(text(&got[4]), "last");
    assert_eq!(got[4].as_ref().unwrap().row_metadata().unwrap()["id"], "5");
    for i in [1, 3] {
        let f = failure(&got[i]);
        assert_eq!(
            (f.row, f.option),
            (Some(i as u64), Some("max_record_bytes"))
        );
        assert!(f.reason.contains("t.csv"), "{}", f.reason);
    }
    // With the default limit the same file reads whole, as the csv crate reads it.
    let got = items(
        &tables(vec![tmp.path().join("t.csv")]),
        &ReadLimits::default(),
    );
    assert_eq!(got.len(), 5);
    assert_eq!(text(&got[1]), long.trim_matches('"'));
    // A header over the limit is the file's failure.
    std::fs::write(
        tmp.path().join("h.csv"),
        format!("{},text\n1,a\n", "h".repeat(300)),
    )
    .unwrap();
    let got = items(&tables(vec![tmp.path().join("h.csv")]), &limits);
    assert_eq!(got.len(), 1);
    let f = failure(&got[0]);
    assert_eq!(f.row, None);
    assert!(f.reason.contains("header line") && f.reason.contains("max_record_bytes"));
}

// ---- corrupt and truncated tables -------------------------------------------------------------

fn text_batch(texts: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(texts.to_vec())) as ArrayRef],
    )
    .unwrap()
}

fn arrow_file(texts: &[&str]) -> Vec<u8> {
    let batch = text_batch(texts);
    let mut w = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    w.into_inner().unwrap()
}

/// An Arrow IPC file whose footer says its first record batch's body is `body_length` bytes.
fn arrow_file_with_body_length(texts: &[&str], body_length: i64) -> Vec<u8> {
    let mut bytes = arrow_file(texts);
    let n = bytes.len();
    // The file ends with the footer, its length (i32) and the magic `ARROW1`.
    assert_eq!(&bytes[n - 6..], b"ARROW1");
    let footer_len = i32::from_le_bytes(bytes[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer_start = n - 10 - footer_len;
    let position = {
        let footer_bytes = &bytes[footer_start..n - 10];
        let footer = arrow_ipc::root_as_footer(footer_bytes).unwrap();
        let block = footer.recordBatches().unwrap().get(0);
        assert!(block.bodyLength() > 0);
        // A `Block` is a fixed 24-byte struct inside the footer's buffer: offset (i64),
        // metaDataLength (i32, padded), bodyLength (i64).
        let at = (block as *const arrow_ipc::Block as usize) - (footer_bytes.as_ptr() as usize);
        let body_at = footer_start + at + 16;
        assert_eq!(
            i64::from_le_bytes(bytes[body_at..body_at + 8].try_into().unwrap()),
            block.bodyLength()
        );
        body_at
    };
    bytes[position..position + 8].copy_from_slice(&body_length.to_le_bytes());
    bytes
}

#[test]
fn a_panicking_arrow_reader_is_a_typed_error_and_the_next_table_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("a-bad.arrow");
    std::fs::write(&bad, arrow_file_with_body_length(&["lost"], -1)).unwrap();
    std::fs::write(tmp.path().join("b-good.arrow"), arrow_file(&["one", "two"])).unwrap();

    let mut reader =
        TableReader::open(&bad, TableFormat::ArrowIpc, &ColumnSpec::default()).unwrap();
    match reader.next() {
        Some(Err(Error::ReaderPanicked { path, message })) => {
            assert_eq!(path, bad);
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(reader.next().is_none(), "no rows after a panic");

    let got = items(
        &tables(vec![tmp.path().to_path_buf()]),
        &ReadLimits::default(),
    );
    assert_eq!(got.len(), 3);
    let f = failure(&got[0]);
    assert_eq!((f.origin.as_str(), f.row), ("a-bad.arrow", None));
    assert!(f.reason.contains("the reader panicked"), "{}", f.reason);
    assert_eq!(text(&got[1]), "one");
    assert_eq!(text(&got[2]), "two");
}

#[test]
fn an_arrow_block_claiming_a_terabyte_is_an_error_not_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.arrow");
    std::fs::write(&bad, arrow_file_with_body_length(&["lost"], 1 << 40)).unwrap();
    let mut reader =
        TableReader::open(&bad, TableFormat::ArrowIpc, &ColumnSpec::default()).unwrap();
    let err = match reader.next() {
        Some(Err(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(err, Error::Table { .. } | Error::ReaderPanicked { .. }),
        "{err}"
    );
}

fn parquet_file(texts: &[&str]) -> Vec<u8> {
    let batch = text_batch(texts);
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn truncated_tables_are_failures_and_the_next_file_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let many: Vec<String> = (0..2000).map(|i| format!("document number {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let jsonl: String = many
        .iter()
        .map(|t| format!("{{\"text\": \"{t}\"}}\n"))
        .collect();
    let cut = |bytes: Vec<u8>| bytes[..bytes.len() / 2].to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(jsonl.as_bytes()).unwrap();
    let broken: Vec<(&str, Vec<u8>)> = vec![
        ("a.parquet", cut(parquet_file(&many))),
        ("b.arrow", cut(arrow_file(&many))),
        ("c.jsonl.gz", cut(gz.finish().unwrap())),
        (
            "d.jsonl.zst",
            cut(zstd::encode_all(jsonl.as_bytes(), 3).unwrap()),
        ),
        ("e.parquet", b"PAR1".to_vec()),
        ("f.arrow", b"ARROW1\0\0".to_vec()),
    ];
    for (name, bytes) in &broken {
        let dir = tmp.path().join(name.replace('.', "-"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        std::fs::write(dir.join("z-good.jsonl"), "{\"text\": \"after\"}\n").unwrap();
        let got = items(&tables(vec![dir.clone()]), &ReadLimits::default());
        let failures: Vec<&SourceFailure> = got.iter().filter_map(|i| i.as_ref().err()).collect();
        assert_eq!(failures.len(), 1, "{name}: {failures:?}");
        assert_eq!(failures[0].origin, *name);
        assert_eq!(failures[0].row, None, "{name}");
        // Rows before the cut may come through; each is a whole document of the input.
        let docs: Vec<String> = got.iter().filter(|i| i.is_ok()).map(text).collect();
        assert_eq!(docs.last().map(String::as_str), Some("after"), "{name}");
        for doc in &docs[..docs.len() - 1] {
            assert!(many.contains(&doc.as_str()), "{name}: {doc:?}");
        }
    }
}

// ---- entropy shards ---------------------------------------------------------------------------

fn entropy_rows(n: usize) -> Vec<EntropyRow> {
    (0..n)
        .map(|i| {
            let text = format!("document {i}: {}", "abc".repeat(i % 7));
            EntropyRow {
                sample_id: format!("doc-{i:04}"),
                entropies: (0..text.len()).map(|j| (j % 5) as f32 * 0.5).collect(),
                patch_lengths: vec![text.len() as i32],
                bytes: if i % 5 == 4 {
                    vec![0xff, 0xfe, i as u8]
                } else {
                    text.into_bytes()
                },
                metadata: Some(format!("{{\"i\":{i}}}")),
            }
        })
        .collect()
}

#[test]
fn entropy_shards_write_batches_within_the_budget_and_read_back_whole() {
    for format in [EntropyFileFormat::Arrow, EntropyFileFormat::Parquet] {
        let tmp = tempfile::tempdir().unwrap();
        let mut rows = entropy_rows(40);
        if format == EntropyFileFormat::Arrow {
            rows.retain(|r| std::str::from_utf8(&r.bytes).is_ok());
        }
        let mut sink = EntropyShardSink::new(
            tmp.path(),
            EntropyShardOptions {
                format,
                batch_bytes: 100,
                ..EntropyShardOptions::default()
            },
        )
        .unwrap();
        for row in &rows {
            assert!(sink.write(row.clone()).unwrap().is_none());
        }
        let shard = sink.finish().unwrap().unwrap();
        assert!(shard.batches > 3, "{format:?}: {} batches", shard.batches);
        let batches = read_shard(&shard.path, format, None).unwrap();
        if format == EntropyFileFormat::Arrow {
            assert_eq!(batches.len(), shard.batches);
        }
        let mut back = Vec::new();
        for batch in &batches {
            let ids = batch
                .column_by_name("sample_id")
                .unwrap()
                .as_string::<i32>();
            let texts = batch.column_by_name("text").unwrap().as_string::<i32>();
            let entropies = batch.column_by_name("entropies").unwrap().as_list::<i32>();
            for i in 0..batch.num_rows() {
                let bytes = if texts.is_null(i) {
                    let binary = batch.column_by_name("bytes").unwrap().as_binary::<i32>();
                    binary.value(i).to_vec()
                } else {
                    texts.value(i).as_bytes().to_vec()
                };
                let values = entropies.value(i);
                let values = values.as_primitive::<arrow_array::types::Float16Type>();
                back.push((
                    ids.value(i).to_string(),
                    bytes,
                    values
                        .values()
                        .iter()
                        .map(|h| h.to_f32())
                        .collect::<Vec<_>>(),
                ));
            }
        }
        let want: Vec<_> = rows
            .iter()
            .map(|r| (r.sample_id.clone(), r.bytes.clone(), r.entropies.clone()))
            .collect();
        assert_eq!(back, want, "{format:?}");
    }
}

#[test]
fn entropy_batch_budgets_outside_arrows_offsets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for batch_bytes in [0, i32::MAX as usize + 1] {
        let err = EntropyShardSink::new(
            tmp.path(),
            EntropyShardOptions {
                batch_bytes,
                ..EntropyShardOptions::default()
            },
        )
        .err()
        .unwrap();
        assert!(matches!(err, Error::InvalidOptions { .. }), "{err}");
    }
}
