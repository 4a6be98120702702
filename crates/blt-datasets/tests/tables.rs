//! Table sources, rank splitting, a Hugging Face dataset read offline from a cache laid out as
//! the Hub client lays it out, and the Arrow / Parquet entropy shards read back with arrow-rs and
//! with pyarrow (the reader Meta's trainer uses) when Python has it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder, StructBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use blt_datasets::{
    open_documents, read_shard, ColumnSpec, DocumentOrigin, DocumentRef, EntropyFileFormat,
    EntropyRow, EntropyShardOptions, EntropyShardSink, HfDatasetSpec, InputSpec, RankSpec,
    Selection,
};

/// Documents with non-ASCII text, an empty one and one with a newline inside.
fn texts(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("{tag} document {i}: plain ASCII."),
            1 => format!("{tag} Dokument {i}: Grüße, naïve café — ✓"),
            2 => String::new(),
            _ => format!("{tag} line one {i}\nline two, \"quoted\""),
        })
        .collect()
}

fn parquet_bytes(ids: &[i64], texts: &[String]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("score", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(texts.to_vec())),
            Arc::new(arrow_array::Float64Array::from(
                ids.iter().map(|&i| i as f64 / 2.0).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(3)) // several row groups per file
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn all_docs(spec: &InputSpec, selection: Selection) -> Vec<DocumentRef> {
    open_documents(spec, &selection)
        .unwrap()
        .map(|item| item.unwrap_or_else(|f| panic!("{f:?}")))
        .collect()
}

fn bytes_of(doc: &DocumentRef) -> Vec<u8> {
    doc.read(None).unwrap()
}

#[test]
fn jsonl_plain_gz_zst_and_csv_read_every_row_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let want = texts(6, "j");
    let mut jsonl = String::new();
    for (i, t) in want.iter().enumerate() {
        jsonl.push_str(
            &serde_json::json!({"text": t, "id": format!("doc-{i}"), "lang": "en", "n": i})
                .to_string(),
        );
        jsonl.push('\n');
        if i == 2 {
            jsonl.push('\n'); // blank lines are not rows
        }
    }
    std::fs::write(tmp.path().join("a.jsonl"), &jsonl).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(jsonl.as_bytes()).unwrap();
    std::fs::write(tmp.path().join("b.jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        tmp.path().join("c.jsonl.zst"),
        zstd::encode_all(jsonl.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["id", "text"]).unwrap();
    for (i, t) in want.iter().enumerate() {
        csv.write_record([format!("doc-{i}").as_str(), t.as_str()])
            .unwrap();
    }
    std::fs::write(tmp.path().join("d.csv"), csv.into_inner().unwrap()).unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "not a table").unwrap();

    let spec = InputSpec::Tables {
        paths: vec![tmp.path().to_path_buf()],
        glob: None,
        columns: ColumnSpec {
            text: "text".into(),
            id: Some("id".into()),
        },
    };
    let docs = all_docs(&spec, Selection::default());
    assert_eq!(
        docs.len(),
        24,
        "four files of six rows; notes.txt is not a table"
    );
    for (file, chunk) in ["a.jsonl", "b.jsonl.gz", "c.jsonl.zst", "d.csv"]
        .iter()
        .zip(docs.chunks(6))
    {
        for (i, doc) in chunk.iter().enumerate() {
            assert_eq!(bytes_of(doc), want[i].as_bytes(), "{file} row {i}");
            assert_eq!(doc.name, format!("{file}#{i}"));
            assert!(doc.key.starts_with(&format!("doc-{i}-")), "{}", doc.key);
            let meta = doc.row_metadata().unwrap();
            assert_eq!(meta["id"], format!("doc-{i}"));
            if !file.ends_with(".csv") {
                assert_eq!(meta["lang"], "en");
                assert_eq!(meta["n"], i);
            }
        }
    }
    // Keys are unique even though the ids repeat across files.
    let keys: std::collections::BTreeSet<_> = docs.iter().map(|d| d.key.clone()).collect();
    assert_eq!(keys.len(), docs.len());
}

#[test]
fn bad_rows_and_bad_files_are_failures_not_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("a.jsonl"),
        "{\"text\": \"good\"}\nnot json\n{\"text\": 5}\n{\"other\": 1}\n{\"text\": \"also good\"}\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("b.parquet"), b"PAR1 but not parquet").unwrap();
    let spec = InputSpec::Tables {
        paths: vec![tmp.path().to_path_buf()],
        glob: None,
        columns: ColumnSpec::default(),
    };
    let items: Vec<_> = open_documents(&spec, &Selection::default())
        .unwrap()
        .collect();
    assert_eq!(items.len(), 6);
    assert_eq!(bytes_of(items[0].as_ref().unwrap()), b"good");
    let failure = |i: usize| items[i].as_ref().unwrap_err().clone();
    assert!(failure(1).reason.contains("not a JSON object"));
    assert!(failure(2).reason.contains("a number"));
    assert!(failure(3).reason.contains("no column"));
    assert_eq!(failure(3).row, Some(3));
    assert_eq!(bytes_of(items[4].as_ref().unwrap()), b"also good");
    let bad_file = failure(5);
    assert_eq!(bad_file.origin, "b.parquet");
    assert_eq!(bad_file.row, None);
}

#[test]
fn binary_columns_keep_their_bytes_and_paths_are_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    // A PNG signature and bytes that are not UTF-8.
    let image: Vec<u8> = vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe, 0x00,
    ];
    std::fs::create_dir_all(tmp.path().join("images")).unwrap();
    std::fs::write(
        tmp.path().join("images/cat.bin"),
        [0xc3u8, 0x28, 0xa0, 0xa1],
    )
    .unwrap();
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let mut image_col = StructBuilder::from_fields(fields.clone(), 2);
    image_col
        .field_builder::<BinaryBuilder>(0)
        .unwrap()
        .append_value(&image);
    image_col
        .field_builder::<StringBuilder>(1)
        .unwrap()
        .append_value("in-memory.png");
    image_col.append(true);
    image_col
        .field_builder::<BinaryBuilder>(0)
        .unwrap()
        .append_null();
    image_col
        .field_builder::<StringBuilder>(1)
        .unwrap()
        .append_value("images/cat.bin");
    image_col.append(true);
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Struct(fields),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(image_col.finish())]).unwrap();
    // Arrow stream format, as the `datasets` library caches its tables.
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    std::fs::write(tmp.path().join("data.arrow"), w.into_inner().unwrap()).unwrap();
    let spec = InputSpec::Tables {
        paths: vec![tmp.path().join("data.arrow")],
        glob: None,
        columns: ColumnSpec {
            text: "image".into(),
            id: None,
        },
    };
    let docs = all_docs(&spec, Selection::default());
    assert_eq!(docs.len(), 2);
    assert_eq!(bytes_of(&docs[0]), image);
    assert_eq!(bytes_of(&docs[1]), [0xc3u8, 0x28, 0xa0, 0xa1]);
    assert!(matches!(docs[0].source, DocumentOrigin::Row(_)));
}

#[test]
fn ranks_split_files_or_rows_and_cover_the_input_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for f in 0..5 {
        let t = texts(7, &format!("f{f}"));
        let ids: Vec<i64> = (0..7).map(|i| f * 100 + i).collect();
        std::fs::write(
            tmp.path().join(format!("part-{f}.parquet")),
            parquet_bytes(&ids, &t),
        )
        .unwrap();
        want.extend(t);
    }
    let spec = InputSpec::Tables {
        paths: vec![tmp.path().to_path_buf()],
        glob: Some("*.parquet".into()),
        columns: ColumnSpec {
            text: "text".into(),
            id: Some("id".into()),
        },
    };
    let single = all_docs(&spec, Selection::default());
    assert_eq!(
        single.iter().map(bytes_of).collect::<Vec<_>>(),
        want.iter()
            .map(|t| t.as_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    assert_eq!(single[8].row_metadata().unwrap()["score"], 50.5);
    for world in [2usize, 4, 5, 8] {
        let mut union = Vec::new();
        for rank in 0..world {
            let selection = Selection {
                rank: RankSpec::new(rank, world).unwrap(),
                ..Selection::default()
            };
            let mine = all_docs(&spec, selection);
            if world <= 5 {
                // By file: each rank holds whole files.
                let files: std::collections::BTreeSet<_> = mine
                    .iter()
                    .map(|d| d.name.split('#').next().unwrap().to_string())
                    .collect();
                let expected: std::collections::BTreeSet<_> = (0..5)
                    .filter(|f| f % world == rank)
                    .map(|f| format!("part-{f}.parquet"))
                    .collect();
                assert_eq!(files, expected, "world {world} rank {rank}");
            }
            union.extend(mine.into_iter().map(|d| d.key));
        }
        let mut all: Vec<String> = single.iter().map(|d| d.key.clone()).collect();
        all.sort();
        union.sort();
        assert_eq!(union, all, "world {world}");
    }
    // skip and limit apply to the rank's share.
    let some = all_docs(
        &spec,
        Selection {
            skip: 3,
            limit: Some(4),
            ..Selection::default()
        },
    );
    assert_eq!(
        some.iter().map(|d| d.key.clone()).collect::<Vec<_>>(),
        single[3..7]
            .iter()
            .map(|d| d.key.clone())
            .collect::<Vec<_>>()
    );
}

const COMMIT: &str = "5a1b2c3d4e5f60718293a4b5c6d7e8f901234567";

/// A dataset repo as FineWeb-Edu lays out its sample configs, cached as the Hub client
/// caches it. Returns the cache folder and every document's text in order.
fn hub_fixture(root: &Path) -> (PathBuf, Vec<String>) {
    let cache = root.join("hub");
    let readme = "---\nlicense: odc-by\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/*/*\n- config_name: sample-10BT\n  data_files:\n  - split: train\n    path: sample/10BT/*\n---\n# A tiny FineWeb-Edu look-alike\n";
    let mut files: Vec<(String, Vec<u8>)> = vec![("README.md".into(), readme.as_bytes().to_vec())];
    let mut want = Vec::new();
    for shard in 0..3 {
        let t = texts(5 + shard, &format!("shard{shard}"));
        let ids: Vec<i64> = (0..t.len() as i64)
            .map(|i| shard as i64 * 1000 + i)
            .collect();
        files.push((
            format!("sample/10BT/{shard:03}_00000.parquet"),
            parquet_bytes(&ids, &t),
        ));
        want.extend(t);
    }
    // Another config's files must not be read.
    files.push((
        "data/CC-MAIN-2024-10/000_00000.parquet".into(),
        parquet_bytes(&[1], &["other config".into()]),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    blt_hub::testing::lay_out_dataset_cache(
        &cache,
        "HuggingFaceFW/fineweb-edu",
        "main",
        COMMIT,
        &refs,
    )
    .unwrap();
    (cache, want)
}

fn hf_spec(cache: &Path, config: &str) -> InputSpec {
    let cache = cache.display().to_string();
    InputSpec::HfDataset {
        dataset: HfDatasetSpec {
            repo: "HuggingFaceFW/fineweb-edu".into(),
            config: Some(config.into()),
            split: "train".into(),
        },
        revision: "main".into(),
        columns: ColumnSpec {
            text: "text".into(),
            id: Some("id".into()),
        },
        hub: blt_hub::HubOptions::from_vars(|k| match k {
            "HF_HUB_CACHE" => Some(cache.clone()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        }),
    }
}

#[test]
fn hub_dataset_offline_reads_every_shard_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, want) = hub_fixture(tmp.path());
    let stream = open_documents(&hf_spec(&cache, "sample-10BT"), &Selection::default()).unwrap();
    assert_eq!(stream.description["hf_commit"], COMMIT);
    assert_eq!(stream.description["hf_files"], "3");
    let docs: Vec<DocumentRef> = stream.map(|d| d.unwrap()).collect();
    assert_eq!(docs.len(), 18);
    assert_eq!(
        docs.iter().map(bytes_of).collect::<Vec<_>>(),
        want.iter()
            .map(|t| t.as_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    assert_eq!(docs[5].name, "sample/10BT/001_00000.parquet#0");
    assert!(docs[5].key.starts_with("1000-"), "{}", docs[5].key);

    // A config the card does not define, and a dataset the cache does not hold, say so.
    let err = open_documents(&hf_spec(&cache, "sample-350BT"), &Selection::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sample-10BT") && err.contains("--hf-config"),
        "{err}"
    );
    let empty = tmp.path().join("empty-cache");
    let err = open_documents(&hf_spec(&empty, "sample-10BT"), &Selection::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HuggingFaceFW/fineweb-edu") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
}

fn entropy_rows(n: usize) -> Vec<EntropyRow> {
    texts(n, "e")
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let len = t.len() + 2;
            EntropyRow {
                sample_id: format!("doc-{i:03}"),
                bytes: t.into_bytes(),
                entropies: (0..len).map(|j| (i * 7 + j) as f32 * 0.125).collect(),
                patch_lengths: vec![1, len as i32 - 1],
                metadata: Some(format!("{{\"i\":{i}}}")),
            }
        })
        .collect()
}

#[test]
fn arrow_shards_in_metas_layout_roll_complete_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut provenance = BTreeMap::new();
    provenance.insert("model_id".to_string(), "blt-default".to_string());
    let options = EntropyShardOptions {
        format: EntropyFileFormat::Arrow,
        max_rows: 4,
        metadata: provenance,
        ..EntropyShardOptions::default()
    };
    let rows = entropy_rows(10);
    let mut sink = EntropyShardSink::new(&dir, options.clone()).unwrap();
    let mut done = Vec::new();
    for row in rows.iter().take(9) {
        done.extend(sink.write(row.clone()).unwrap());
    }
    assert_eq!(done.len(), 2);
    // Killed here: the third shard is only a temp file.
    drop(sink);
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(names(&dir).contains(&"shard.shard_000002.arrow.tmp".to_string()));
    let keys = EntropyShardSink::completed_keys(&dir, "shard", EntropyFileFormat::Arrow).unwrap();
    assert_eq!(keys.len(), 8);
    // A shard renamed but killed before its marker is not complete.
    std::fs::write(dir.join("shard.shard_000002.arrow"), b"partial").unwrap();
    let mut sink = EntropyShardSink::new(&dir, options).unwrap();
    for row in rows.iter().filter(|r| !keys.contains(&r.sample_id)) {
        sink.write(row.clone()).unwrap();
    }
    let last = sink.finish().unwrap().unwrap();
    assert_eq!(last.keys, ["doc-008", "doc-009"]);
    assert_eq!(
        names(&dir),
        [
            "shard.shard_000000.arrow",
            "shard.shard_000000.arrow.complete",
            "shard.shard_000001.arrow",
            "shard.shard_000001.arrow.complete",
            "shard.shard_000002.arrow",
            "shard.shard_000002.arrow.complete",
        ]
    );

    // Read back with arrow-rs: Meta's schema, every row once, entropies as float16.
    let mut got = Vec::new();
    for shard in EntropyShardSink::complete_shards(&dir, "shard", EntropyFileFormat::Arrow).unwrap()
    {
        for batch in read_shard(&shard, EntropyFileFormat::Arrow, None).unwrap() {
            let schema = batch.schema();
            assert_eq!(
                schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().as_str(), f.data_type().to_string()))
                    .collect::<Vec<_>>(),
                [
                    ("sample_id", "Utf8".to_string()),
                    ("text", "Utf8".to_string()),
                    ("entropies", "List(Float16)".to_string()),
                ]
            );
            assert_eq!(schema.metadata()["model_id"], "blt-default");
            let ids = batch.column(0).as_string::<i32>();
            let text = batch.column(1).as_string::<i32>();
            let ent = batch.column(2).as_list::<i32>();
            for r in 0..batch.num_rows() {
                let h = ent.value(r);
                let h: Vec<f32> = h
                    .as_primitive::<arrow_array::types::Float16Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_f32())
                    .collect();
                got.push((ids.value(r).to_string(), text.value(r).to_string(), h));
            }
        }
    }
    assert_eq!(got.len(), 10);
    for (row, (id, text, h)) in rows.iter().zip(&got) {
        assert_eq!(&row.sample_id, id);
        assert_eq!(row.bytes, text.as_bytes());
        assert_eq!(
            &row.entropies, h,
            "multiples of 1/8 below 2048 are exact in f16"
        );
    }

    pyarrow_check(&dir);
}

/// The Python that has pyarrow: `BLT_PYARROW_PYTHON`, the venv `scripts/setup/20-pyarrow.sh`
/// makes, or `python3`.
fn pyarrow_python() -> PathBuf {
    if let Ok(p) = std::env::var("BLT_PYARROW_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/blt/pyarrow-venv/bin/python"))
        .filter(|p| p.is_file());
    venv.unwrap_or_else(|| PathBuf::from("python3"))
}

/// Reads the Arrow shards with pyarrow, and with Polars (the Python package of the Rust engine)
/// when it is installed, when Python has them; logs and skips otherwise.
fn pyarrow_check(dir: &Path) {
    let script = r#"
import glob, sys, pyarrow as pa
n = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.arrow")):
    with pa.memory_map(path) as src:
        table = pa.ipc.open_file(src).read_all()
    assert table.schema.field("sample_id").type == pa.string(), table.schema
    assert table.schema.field("text").type == pa.string(), table.schema
    assert table.schema.field("entropies").type == pa.list_(pa.float16()), table.schema
    assert table.schema.metadata[b"model_id"] == b"blt-default", table.schema.metadata
    first = table.column("entropies")[0].as_py()
    assert all(isinstance(h, float) for h in first)
    n += table.num_rows
    try:
        import polars as pl
    except ImportError:
        continue
    # Polars (its Rust engine) reads the same file: same schema, same rows, same entropies.
    df = pl.read_ipc(path)
    assert df.schema == pl.Schema({"sample_id": pl.String, "text": pl.String,
                                   "entropies": pl.List(pl.Float16)}), df.schema
    assert df["sample_id"].to_list() == table.column("sample_id").to_pylist()
    assert df["text"].to_list() == table.column("text").to_pylist()
    assert df["entropies"].to_list() == table.column("entropies").to_pylist()
    print("polars", df.height, file=sys.stderr)
print(n)
"#;
    let python = pyarrow_python();
    let out = std::process::Command::new(&python)
        .args(["-c", script, &dir.display().to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "10");
            let polars_rows: usize = String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter_map(|l| l.strip_prefix("polars "))
                .map(|n| n.trim().parse::<usize>().unwrap())
                .sum();
            if polars_rows == 0 {
                eprintln!(
                    "polars check skipped: {} has no polars module (scripts/setup/20-pyarrow.sh installs it)",
                    python.display()
                );
            } else {
                assert_eq!(polars_rows, 10, "polars read every row");
            }
        }
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named 'pyarrow'") => {
            eprintln!(
                "pyarrow check skipped: {} has no pyarrow module (scripts/setup/20-pyarrow.sh installs it)",
                python.display()
            );
        }
        Ok(o) => panic!("pyarrow failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => eprintln!(
            "pyarrow check skipped: cannot run {} ({e})",
            python.display()
        ),
    }
}

#[test]
fn parquet_shards_carry_patch_lengths_bytes_and_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut provenance = BTreeMap::new();
    provenance.insert("model_sha256".to_string(), "abc123".to_string());
    let mut sink = EntropyShardSink::new(
        &dir,
        EntropyShardOptions {
            format: EntropyFileFormat::Parquet,
            prefix: "rank-00001".into(),
            metadata: provenance,
            ..EntropyShardOptions::default()
        },
    )
    .unwrap();
    let mut rows = entropy_rows(3);
    rows[1].bytes = vec![0xff, 0xfe, 0x00, 0x80]; // not UTF-8: goes to `bytes`
    for row in &rows {
        assert!(sink.write(row.clone()).unwrap().is_none());
    }
    let shard = sink.finish().unwrap().unwrap();
    assert_eq!(
        shard.path.file_name().unwrap(),
        "rank-00001.shard_000000.parquet"
    );
    assert!(blt_datasets::complete_marker(&shard.path).is_file());
    let file = std::fs::File::open(&shard.path).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .clone();
    assert!(kv
        .iter()
        .any(|k| k.key == "model_sha256" && k.value.as_deref() == Some("abc123")));
    let batches = read_shard(&shard.path, EntropyFileFormat::Parquet, None).unwrap();
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 3);
    let text = batch.column_by_name("text").unwrap().as_string::<i32>();
    let bytes = batch.column_by_name("bytes").unwrap().as_binary::<i32>();
    assert!(text.is_valid(0) && bytes.is_null(0));
    assert!(text.is_null(1));
    assert_eq!(bytes.value(1), [0xff, 0xfe, 0x00, 0x80]);
    let lengths = batch
        .column_by_name("patch_lengths")
        .unwrap()
        .as_list::<i32>();
    let first = lengths.value(2);
    assert_eq!(
        first
            .as_primitive::<arrow_array::types::Int32Type>()
            .values(),
        &rows[2].patch_lengths[..]
    );
    let meta = batch.column_by_name("metadata").unwrap().as_string::<i32>();
    assert_eq!(meta.value(2), "{\"i\":2}");

    // Arrow refuses what it cannot hold without loss.
    let mut arrow =
        EntropyShardSink::new(tmp.path().join("arrow"), EntropyShardOptions::default()).unwrap();
    let err = arrow.write(rows[1].clone()).unwrap_err();
    assert!(
        matches!(err, blt_datasets::Error::NotUtf8Text { .. }),
        "{err}"
    );
}
