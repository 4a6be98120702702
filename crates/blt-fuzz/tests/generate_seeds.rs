//! Writes the seed inputs under `seeds/<target>/` (not `regressions/`):
//!
//! ```sh
//! cargo test -p blt-fuzz --features video --test generate_seeds -- --ignored
//! ```
//!
//! Every seed is a small valid input, built here with the writers of the workspace (or the
//! crates they use) so that it stays in step with the formats; the audio and video seeds are
//! made by the `ffmpeg` command. Each written seed is checked to be accepted by its target.
//! Without the `video` feature the video seeds are written but not checked.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    StructArray,
};
use arrow_schema::{DataType, Field};
use blt_datasets::{
    EntropyFileFormat, EntropyRow, EntropyShardOptions, EntropyShardSink, ShardOptions,
    WebDatasetSink,
};
use blt_fuzz::{Outcome, PRETOKENIZE_CASES, READBACK_KINDS, TABLE_FILES};
use blt_model::{Checkpoint, EntropyModelConfig};
use blt_patcher::PatchBoundaries;
use blt_pipeline::{DetectionSummary, DocumentResult, EmbeddingsMode, SegmentResult};
use blt_pretokenize::{Modality, Segment};
use blt_sidecar::HypergraphSidecar;
use blt_tokenizer::BltTokenizer;

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

/// Empties `seeds/<target>/` of its seed files (keeping `regressions/`) and returns it.
fn fresh(target: &str) -> PathBuf {
    let dir = seeds().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::remove_file(path).unwrap();
        }
    }
    dir
}

/// Writes `selector` + `body` as `dir/name`, after checking that `target` accepts it.
fn seed(
    dir: &Path,
    name: &str,
    selector: Option<usize>,
    body: &[u8],
    target: fn(&[u8]) -> Outcome,
) {
    let mut data = Vec::new();
    if let Some(s) = selector {
        data.push(u8::try_from(s).unwrap());
    }
    data.extend_from_slice(body);
    let outcome = target(&data);
    assert!(
        matches!(outcome, Ok(n) if n > 0),
        "seed {name}: {outcome:?}"
    );
    std::fs::write(dir.join(name), data).unwrap();
}

fn table_selector(name: &str) -> Option<usize> {
    Some(TABLE_FILES.iter().position(|&f| f == name).unwrap())
}

fn readback_selector(kind: &str) -> Option<usize> {
    Some(READBACK_KINDS.iter().position(|&k| k == kind).unwrap())
}

fn pretokenize_selector(forced: Option<Modality>, name: Option<&str>) -> Option<usize> {
    Some(
        PRETOKENIZE_CASES
            .iter()
            .position(|&(m, n)| m == forced && n == name)
            .unwrap(),
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A deterministic sequence in [-0.5, 0.5).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
#[ignore = "rewrites the committed seeds: run by hand after a format change"]
fn write_seeds() {
    tables();
    checkpoints();
    readback();
    pretokenize();
    video();
}

const JSONL: &str = concat!(
    r#"{"id": 1, "text": "Hello, fuzz!", "lang": "en", "score": 0.5}"#,
    "\n",
    r#"{"id": "b", "text": "Grüße 🙂\nzweite Zeile", "tags": ["x"], "ok": true}"#,
    "\n\n",
    r#"{"id": 3, "text": null}"#,
    "\n",
    r#"{"text": 7}"#,
    "\n",
);
const CSV: &str = "id,text,lang\n1,hello,en\n2,\"quoted, \"\"text\"\"\nover lines\",de\n3,short\n";

fn batch_bytes(batch: &RecordBatch, kind: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        "parquet" => {
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
            w.write(batch).unwrap();
            w.close().unwrap();
        }
        "file" => {
            let mut w = arrow_ipc::writer::FileWriter::try_new(&mut out, &batch.schema()).unwrap();
            w.write(batch).unwrap();
            w.finish().unwrap();
        }
        _ => {
            let mut w =
                arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
            w.write(batch).unwrap();
            w.finish().unwrap();
        }
    }
    out
}

fn tables() {
    let dir = fresh("tables");
    let t = blt_fuzz::tables;
    seed(
        &dir,
        "jsonl",
        table_selector("table.jsonl"),
        JSONL.as_bytes(),
        t,
    );
    seed(&dir, "csv", table_selector("table.csv"), CSV.as_bytes(), t);
    let tsv = CSV.replace(',', "\t");
    seed(&dir, "tsv", table_selector("table.tsv"), tsv.as_bytes(), t);
    seed(
        &dir,
        "jsonl-gz",
        table_selector("table.jsonl.gz"),
        &gzip(JSONL.as_bytes()),
        t,
    );
    let zst = zstd::encode_all(JSONL.as_bytes(), 3).unwrap();
    seed(
        &dir,
        "jsonl-zst",
        table_selector("table.jsonl.zst"),
        &zst,
        t,
    );
    seed(
        &dir,
        "csv-gz",
        table_selector("table.csv.gz"),
        &gzip(CSV.as_bytes()),
        t,
    );

    let plain = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
        ),
        (
            "text",
            Arc::new(StringArray::from(vec![
                Some("Hello"),
                Some("Grüße 🙂"),
                None,
            ])),
        ),
        ("score", Arc::new(Float64Array::from(vec![0.5, -1.0, 2.0]))),
        ("ok", Arc::new(BooleanArray::from(vec![true, false, true]))),
    ])
    .unwrap();
    // A Hugging Face `Image` column: {bytes, path}, one row of each kind.
    let image = StructArray::from(vec![
        (
            Arc::new(Field::new("bytes", DataType::Binary, true)),
            Arc::new(BinaryArray::from(vec![Some(&b"\x89PNG\r\n"[..]), None])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("path", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![None, Some("images/cat.png")])) as ArrayRef,
        ),
    ]);
    let binary = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
        ("text", Arc::new(image) as ArrayRef),
    ])
    .unwrap();
    let parquet = table_selector("table.parquet");
    let arrow = table_selector("table.arrow");
    seed(&dir, "parquet", parquet, &batch_bytes(&plain, "parquet"), t);
    seed(
        &dir,
        "parquet-image",
        parquet,
        &batch_bytes(&binary, "parquet"),
        t,
    );
    seed(&dir, "arrow-file", arrow, &batch_bytes(&plain, "file"), t);
    seed(
        &dir,
        "arrow-stream",
        arrow,
        &batch_bytes(&plain, "stream"),
        t,
    );
    seed(&dir, "arrow-image", arrow, &batch_bytes(&binary, "file"), t);
}

/// The micro model's tensors, in the reference's names, with deterministic values.
fn micro_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let value: serde_json::Value = serde_json::from_str(blt_fuzz::MICRO_CONFIG_JSON).unwrap();
    let config = EntropyModelConfig::from_json_value(&value).unwrap();
    Checkpoint::expected_tensors(&config)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            let data = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else {
                values(n, i as u64 + 1).iter().map(|v| v * 0.2).collect()
            };
            (name, shape, data)
        })
        .collect()
}

fn safetensors_file(bf16: bool) -> Vec<u8> {
    let tensors = micro_tensors();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, data)| {
            if bf16 {
                data.iter()
                    .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
                    .collect()
            } else {
                data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if bf16 {
        safetensors::Dtype::BF16
    } else {
        safetensors::Dtype::F32
    };
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), b).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// A pickle (protocol 2) of the state dict PyTorch's `torch.save` writes: an `OrderedDict` of
/// name → `torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, False,
/// OrderedDict())`, optionally under a top-level `{"model": …}`.
fn state_dict_pickle(tensors: &[(String, Vec<usize>, Vec<f32>)], under_model: bool) -> Vec<u8> {
    fn global(p: &mut Vec<u8>, module: &str, name: &str) {
        p.push(b'c');
        p.extend_from_slice(module.as_bytes());
        p.push(b'\n');
        p.extend_from_slice(name.as_bytes());
        p.push(b'\n');
    }
    fn unicode(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: usize) {
        p.push(b'J');
        p.extend_from_slice(&i32::try_from(v).unwrap().to_le_bytes());
    }
    fn ints(p: &mut Vec<u8>, vs: &[usize]) {
        p.push(b'(');
        for &v in vs {
            int(p, v);
        }
        p.push(b't');
    }
    fn ordered_dict(p: &mut Vec<u8>) {
        global(p, "collections", "OrderedDict");
        p.push(b')');
        p.push(b'R');
    }
    let mut p = vec![0x80, 2];
    if under_model {
        p.push(b'}');
        unicode(&mut p, "model");
    }
    ordered_dict(&mut p);
    p.push(b'(');
    for (i, (name, shape, _)) in tensors.iter().enumerate() {
        unicode(&mut p, name);
        global(&mut p, "torch._utils", "_rebuild_tensor_v2");
        p.push(b'(');
        p.push(b'(');
        unicode(&mut p, "storage");
        global(&mut p, "torch", "FloatStorage");
        unicode(&mut p, &i.to_string());
        unicode(&mut p, "cpu");
        int(&mut p, shape.iter().product());
        p.push(b't');
        p.push(b'Q');
        int(&mut p, 0);
        ints(&mut p, shape);
        let stride: Vec<usize> = (0..shape.len())
            .map(|d| shape[d + 1..].iter().product())
            .collect();
        ints(&mut p, &stride);
        p.push(0x89);
        ordered_dict(&mut p);
        p.push(b't');
        p.push(b'R');
    }
    p.push(b'u');
    if under_model {
        p.push(b's');
    }
    p.push(b'.');
    p
}

/// `torch.save`'s zip layout: `archive/data.pkl`, `archive/data/<key>`, `archive/version`.
fn pth_file(under_model: bool) -> Vec<u8> {
    let tensors = micro_tensors();
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&state_dict_pickle(&tensors, under_model))
        .unwrap();
    zip.start_file("archive/byteorder", stored).unwrap();
    zip.write_all(b"little").unwrap();
    for (i, (_, _, data)) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored).unwrap();
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        zip.write_all(&bytes).unwrap();
    }
    zip.start_file("archive/version", stored).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap().into_inner()
}

fn checkpoints() {
    let dir = fresh("checkpoint_safetensors");
    let t = blt_fuzz::checkpoint_safetensors;
    seed(
        &dir,
        "micro-f32.safetensors",
        None,
        &safetensors_file(false),
        t,
    );
    seed(
        &dir,
        "micro-bf16.safetensors",
        None,
        &safetensors_file(true),
        t,
    );
    let dir = fresh("checkpoint_pth");
    let t = blt_fuzz::checkpoint_pth;
    seed(&dir, "micro-flat.pth", None, &pth_file(false), t);
    seed(&dir, "micro-model-key.pth", None, &pth_file(true), t);
}

/// A document of two segments (text, then a code view with decoded bytes), with patches and
/// patch embeddings, as the pipeline would compute it.
fn document(key: &str) -> DocumentResult {
    let bytes = "Hello, fuzz! Grüße 🙂\nfn main() {}\n".as_bytes().to_vec();
    let tokenizer = BltTokenizer::new();
    let split = 22;
    let dim = 4;
    let segment = |modality, label: &str, range: std::ops::Range<usize>, decoded: Option<&[u8]>| {
        let content = decoded.unwrap_or(&bytes[range.clone()]);
        let ids = tokenizer.encode(content);
        let n = ids.len();
        let lengths = vec![3, n - 3];
        SegmentResult {
            segment: Segment {
                modality,
                label: label.into(),
                byte_range: range.start as u64..range.end as u64,
                source_id: decoded.map(|_| "view-1".to_string()),
                metadata: serde_json::json!({ "lang": "en" }),
                decoded: decoded.map(<[u8]>::to_vec),
            },
            ids,
            entropies: values(n, 7).iter().map(|v| v + 1.0).collect(),
            prominence: values(n, 8).iter().map(|v| v.abs()).collect(),
            embeddings: Some(values(lengths.len() * dim, 9)),
            patches: PatchBoundaries::from_lengths(lengths).unwrap(),
        }
    };
    DocumentResult {
        key: key.into(),
        source_path: Some(format!("docs/{key}.txt")),
        source_modified_ns: None,
        segments: vec![
            segment(Modality::Text, "document", 0..split, None),
            segment(
                Modality::Code,
                "function_item main",
                split..bytes.len(),
                Some(b"fn main() {}"),
            ),
        ],
        bytes,
        dim,
        detection: Some(DetectionSummary {
            format: "text".into(),
            modality: "text".into(),
            by: "fallback".into(),
        }),
    }
}

fn readback() {
    let dir = fresh("readback");
    let t = blt_fuzz::readback;
    let docs = [document("doc-a"), document("doc-b")];
    let records: Vec<_> = docs
        .iter()
        .map(|d| d.to_record(&BTreeMap::new(), EmbeddingsMode::Patch))
        .collect();
    let stored = blt_datasets::safetensors_bytes(&records[0]).unwrap();
    seed(
        &dir,
        "stored-document",
        readback_selector("stored_document"),
        &stored,
        t,
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut sink = WebDatasetSink::new(
        tmp.path().join("wds"),
        ShardOptions {
            prefix: "shard".into(),
            ..ShardOptions::default()
        },
    )
    .unwrap();
    for record in &records {
        sink.write(record).unwrap();
    }
    let shard = std::fs::read(sink.finish().unwrap().unwrap().path).unwrap();
    seed(
        &dir,
        "webdataset-samples",
        readback_selector("webdataset_samples"),
        &shard,
        t,
    );
    seed(
        &dir,
        "webdataset-keys",
        readback_selector("webdataset_keys"),
        &shard,
        t,
    );

    let path = tmp.path().join("sidecar.sqlite");
    let mut sidecar = HypergraphSidecar::create(&path).unwrap();
    for doc in &docs {
        sidecar.write_document(&doc.to_sidecar()).unwrap();
    }
    sidecar.set_meta("created_by", "blt-fuzz seeds").unwrap();
    sidecar.finish().unwrap();
    // Smaller pages: the same database in a few KB.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA page_size = 512; VACUUM;")
        .unwrap();
    drop(conn);
    let db = std::fs::read(&path).unwrap();
    seed(&dir, "sidecar", readback_selector("sidecar"), &db, t);

    for (format, kind) in [
        (EntropyFileFormat::Arrow, "entropy_arrow"),
        (EntropyFileFormat::Parquet, "entropy_parquet"),
    ] {
        let out = tmp.path().join(kind);
        let mut sink = EntropyShardSink::new(
            &out,
            EntropyShardOptions {
                format,
                ..EntropyShardOptions::default()
            },
        )
        .unwrap();
        for (i, doc) in docs.iter().enumerate() {
            sink.write(EntropyRow {
                sample_id: doc.key.clone(),
                bytes: doc.bytes.clone(),
                entropies: values(doc.token_count(), i as u64 + 11),
                patch_lengths: vec![4, 5],
                metadata: Some(r#"{"source": "seed"}"#.into()),
            })
            .unwrap();
        }
        let shard = std::fs::read(sink.finish().unwrap().unwrap().path).unwrap();
        seed(
            &dir,
            &kind.replace('_', "-"),
            readback_selector(kind),
            &shard,
            t,
        );
    }
}

/// Runs `ffmpeg -y -loglevel error ARGS out` in `dir` and returns the output's bytes.
fn ffmpeg(dir: &Path, args: &[&str], out: &str) -> Vec<u8> {
    let path = dir.join(out);
    let status = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-nostdin"])
        .args(args)
        .arg(&path)
        .status()
        .expect("the ffmpeg command (Debian package ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?} {out}");
    std::fs::read(path).unwrap()
}

const SINE: [&str; 4] = [
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=8000:duration=0.1",
];

fn wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..400)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

/// A one-page PDF with one line of text, its cross-reference table computed.
fn pdf() -> Vec<u8> {
    let stream = "BT /F1 12 Tf 20 50 Td (Hello from a PDF) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A 64-bit little-endian x86-64 ELF executable: one program header, `.text` (an exit system
/// call) and `.shstrtab`.
fn elf() -> Vec<u8> {
    let text: &[u8] = &[0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05];
    let shstrtab: &[u8] = b"\0.text\0.shstrtab\0";
    let text_off = 64 + 56;
    let str_off = text_off + text.len();
    let sh_off = (str_off + shstrtab.len()).div_ceil(8) * 8;
    let total = sh_off + 3 * 64;
    let base = 0x40_0000u64;
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(base + text_off as u64).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&(sh_off as u64).to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 3, 2] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    // PT_LOAD, R+X, the whole file.
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&5u32.to_le_bytes());
    for v in [0, base, base, total as u64, total as u64, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(text);
    e.extend_from_slice(shstrtab);
    e.resize(sh_off, 0);
    let section =
        |e: &mut Vec<u8>, name: u32, kind: u32, flags: u64, addr: u64, off: usize, size: usize| {
            e.extend_from_slice(&name.to_le_bytes());
            e.extend_from_slice(&kind.to_le_bytes());
            for v in [flags, addr, off as u64, size as u64] {
                e.extend_from_slice(&v.to_le_bytes());
            }
            e.extend_from_slice(&0u32.to_le_bytes());
            e.extend_from_slice(&0u32.to_le_bytes());
            e.extend_from_slice(&1u64.to_le_bytes());
            e.extend_from_slice(&0u64.to_le_bytes());
        };
    e.extend_from_slice(&[0; 64]);
    section(
        &mut e,
        1,
        1,
        6,
        base + text_off as u64,
        text_off,
        text.len(),
    );
    section(&mut e, 7, 3, 0, 0, str_off, shstrtab.len());
    assert_eq!(e.len(), total);
    e
}

/// A Unix `ar` archive of one member.
fn ar() -> Vec<u8> {
    let data = b"hello\n";
    let mut a = b"!<arch>\n".to_vec();
    a.extend_from_slice(
        format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            "hello.txt/",
            0,
            0,
            0,
            644,
            data.len()
        )
        .as_bytes(),
    );
    a.extend_from_slice(data);
    a
}

fn zip_container() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("a.txt", deflated).unwrap();
    zip.write_all(b"The first member, deflated. The first member, deflated.\n")
        .unwrap();
    zip.add_directory("src/", deflated).unwrap();
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("src/b.py", stored).unwrap();
    zip.write_all(b"def f():\n    return 1\n").unwrap();
    zip.finish().unwrap().into_inner()
}

fn image(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 6, |x, y| {
        image::Rgb([(x * 30) as u8, (y * 40) as u8, ((x + y) * 15) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

const CODE: [(&str, &str); 9] = [
    ("x.rs", "use std::fmt;\n\n/// Doc.\npub struct P { x: i32 }\n\nimpl P {\n    fn get(&self) -> i32 { self.x }\n}\n\nfn main() { println!(\"{}\", 1); }\n"),
    ("x.py", "import os\n\nclass A:\n    def f(self):\n        return os.sep\n\ndef g(x):\n    return x * 2\n"),
    ("x.js", "const a = 1;\nfunction f(x) { return x + a; }\nclass C { m() { return f(2); } }\n"),
    ("x.ts", "interface I { x: number }\nexport function f(i: I): number { return i.x; }\n"),
    ("x.tsx", "export function App(): JSX.Element { return <div>hi</div>; }\n"),
    ("x.c", "#include <stdio.h>\nstatic int sq(int x) { return x * x; }\nint main(void) { return sq(2); }\n"),
    ("x.cpp", "#include <vector>\nnamespace n { class K { public: int f() const { return 1; } }; }\nint main() { return n::K().f(); }\n"),
    ("x.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(1) }\n\ntype T struct{ X int }\n"),
    ("x.java", "package p;\npublic class A {\n  int f() { return 1; }\n  public static void main(String[] a) {}\n}\n"),
];

fn pretokenize() {
    let dir = fresh("pretokenize");
    let t = blt_fuzz::pretokenize;
    let detect = pretokenize_selector(None, None);
    let text =
        "A paragraph of text. It has two sentences.\n\nAnd a second paragraph, with ünïcödé.\n";
    seed(&dir, "text", detect, text.as_bytes(), t);
    seed(
        &dir,
        "text-forced",
        pretokenize_selector(Some(Modality::Text), None),
        b"plain \xff\xfe bytes\n",
        t,
    );
    for (name, src) in CODE {
        let stem = name.replace('.', "-");
        seed(
            &dir,
            &format!("code-{stem}"),
            pretokenize_selector(Some(Modality::Code), Some(name)),
            src.as_bytes(),
            t,
        );
    }
    seed(
        &dir,
        "python-shebang",
        detect,
        b"#!/usr/bin/env python3\nprint(1)\n",
        t,
    );
    for (name, format) in [
        ("png", image::ImageFormat::Png),
        ("jpeg", image::ImageFormat::Jpeg),
        ("gif", image::ImageFormat::Gif),
        ("bmp", image::ImageFormat::Bmp),
        ("tiff", image::ImageFormat::Tiff),
        ("webp", image::ImageFormat::WebP),
    ] {
        seed(&dir, &format!("image-{name}"), detect, &image(format), t);
    }
    seed(&dir, "audio-wav", detect, &wav(), t);
    let tmp = tempfile::tempdir().unwrap();
    for (name, codec) in [
        ("flac", "flac"),
        ("mp3", "libmp3lame"),
        ("ogg", "vorbis"),
        ("m4a", "aac"),
    ] {
        let mut args = SINE.to_vec();
        args.extend(["-c:a", codec]);
        if name == "ogg" {
            // FFmpeg's own Vorbis encoder: experimental, stereo only.
            args.extend(["-strict", "-2", "-ac", "2"]);
        }
        let bytes = ffmpeg(tmp.path(), &args, &format!("a.{name}"));
        seed(&dir, &format!("audio-{name}"), detect, &bytes, t);
    }
    seed(&dir, "pdf", detect, &pdf(), t);
    seed(&dir, "elf", detect, &elf(), t);
    seed(&dir, "ar", detect, &ar(), t);
    seed(&dir, "zip", detect, &zip_container(), t);
    seed(
        &dir,
        "binary-forced",
        pretokenize_selector(Some(Modality::Binary), None),
        &elf(),
        t,
    );
    seed(
        &dir,
        "pdf-forced",
        pretokenize_selector(Some(Modality::Pdf), None),
        &pdf(),
        t,
    );
}

fn video() {
    let dir = fresh("video");
    let tmp = tempfile::tempdir().unwrap();
    let picture = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=16x16:rate=5:duration=0.6",
    ];
    let sound = [
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=8000:duration=0.6",
    ];
    for (name, codecs) in [
        (
            "mp4",
            &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"][..],
        ),
        (
            "webm",
            &["-c:v", "libvpx", "-c:a", "libopus", "-ar", "48000"][..],
        ),
        ("mkv", &["-c:v", "mpeg4", "-c:a", "flac"][..]),
        ("avi", &["-c:v", "mjpeg", "-c:a", "pcm_u8"][..]),
    ] {
        let mut args = picture.to_vec();
        args.extend(sound);
        args.extend(codecs);
        args.push("-shortest");
        let bytes = ffmpeg(tmp.path(), &args, &format!("v.{name}"));
        #[cfg(feature = "video")]
        seed(&dir, name, None, &bytes, blt_fuzz::video);
        #[cfg(not(feature = "video"))]
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
