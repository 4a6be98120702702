//! `blt ingest` over a mixed folder (text, code, a system ELF binary, a Debian PDF, a ZIP, and
//! broken copies of each), `--modality-stats`, `--segment-mode`, and `blt detect`.
//! The PDF comes from `ghostscript-doc` (`scripts/setup/20-pretokenize-test-files.sh`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

const PDF: &str = "/usr/share/doc/ghostscript/GS9_Color_Management.pdf";

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../blt-model/tests/fixtures/tiny")
        .display()
        .to_string()
}

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blt"))
        .env_remove("BLT_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The one output file whose name starts with `prefix` and ends with `suffix`.
fn output(out: &Path, prefix: &str, suffix: &str) -> std::path::PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(prefix) && f.ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", out.display()))
}

/// (label, source_id) of each Branch in the sidecar of the output starting with `prefix`.
fn branches(out: &Path, prefix: &str) -> Vec<(String, Option<String>)> {
    let db = rusqlite::Connection::open(output(out, prefix, ".hypergraph.sqlite")).unwrap();
    let mut stmt = db
        .prepare("SELECT label, source_id FROM nodes WHERE kind = 'branch' ORDER BY position")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

fn labels(out: &Path, prefix: &str) -> Vec<String> {
    branches(out, prefix).into_iter().map(|(l, _)| l).collect()
}

#[test]
fn mixed_folder_good_files_written_bad_files_one_error_line_each() {
    assert!(
        Path::new(PDF).is_file(),
        "{PDF} is missing: run scripts/setup/20-pretokenize-test-files.sh"
    );
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let pdf = std::fs::read(PDF).unwrap();
    let elf = std::fs::read("/bin/true").unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "prose.txt",
            b"Entropy patching groups bytes.\n\nA second paragraph.\n".to_vec(),
        ),
        (
            "lib.rs",
            b"use std::fmt;\n\n/// Doc.\nfn one() -> u8 { 1 }\n\nstruct S;\n".to_vec(),
        ),
        (
            "tool",
            b"#!/usr/bin/env python3\nimport sys\n\ndef main():\n    print(sys.argv)\n".to_vec(),
        ),
        ("true.bin", elf.clone()),
        ("manual.pdf", pdf.clone()),
        (
            "bundle.zip",
            zip_of(&[
                ("docs/readme.txt", b"inside the zip"),
                ("src/m.py", b"def f():\n    return 1\n"),
                ("../escape.txt", b"must not be extracted"),
            ]),
        ),
        // broken copies
        ("broken.pdf", pdf[..pdf.len() / 2].to_vec()),
        ("broken-elf", elf[..20].to_vec()),
        (
            "broken.zip",
            b"PK\x03\x04 this is not a zip archive".to_vec(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(input.join(name), bytes).unwrap();
    }
    let o = run(
        &[
            "ingest",
            "--model",
            &model(),
            "--input",
            "in",
            "--output",
            "out",
            "--pdf-max-pages",
            "3",
            // the 6.6 MB raw view is tested in blt-pretokenize; through the tiny CPU model here
            // it would take minutes
            "--pdf-no-raw-view",
            "--modality-stats",
            "--embeddings",
            "none",
        ],
        tmp.path(),
    );
    let err = text(&o.stderr);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{err}");
    // 6 good files, of which the zip expands to 2 members; 3 broken files + 1 escaping member
    assert!(
        err.contains("7 written, 0 skipped, 4 failed of 11 documents"),
        "{err}"
    );
    for bad in ["broken.pdf", "broken-elf", "broken.zip", "../escape.txt"] {
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(bad)).collect();
        assert_eq!(lines.len(), 1, "{bad}: {err}");
        assert!(lines[0].contains("pretokenize failed"), "{}", lines[0]);
    }
    assert!(err.contains("cannot decode pdf"), "{err}");
    assert!(err.contains("path escapes"), "{err}");

    let out = tmp.path().join("out");
    // code units and gaps
    assert_eq!(
        labels(&out, "lib_rs-"),
        ["gap", "function_item one", "gap", "struct_item S", "gap"]
    );
    assert_eq!(labels(&out, "tool-")[1], "function_definition main");
    // ELF sections and gaps
    let bin = labels(&out, "true_bin-");
    assert!(bin.contains(&"section .text".to_owned()), "{bin:?}");
    // PDF: page texts with one same_source hyperedge
    let views = branches(&out, "manual_pdf-");
    assert_eq!(views[0].0, "page 1");
    assert!(views.len() >= 2, "{views:?}");
    let id = views[0].1.clone().unwrap();
    assert!(id.starts_with("sha256:"));
    assert!(views.iter().all(|(_, s)| s.as_deref() == Some(id.as_str())));
    let data = std::fs::read(output(&out, "manual_pdf-", ".safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["detected_format"], "pdf");
    assert_eq!(meta["detected_by"], "magic");
    assert_eq!(st.tensor("segments").unwrap().shape()[0], views.len());
    let sidecar = output(&out, "manual_pdf-", ".hypergraph.sqlite");
    let db = rusqlite::Connection::open(&sidecar).unwrap();
    let same_source: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM hyperedges WHERE label = 'same_source'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(same_source, 1);
    // zip members are documents named by inner path
    let member = output(&out, "bundle_zip_src_m_py-", ".safetensors");
    let data = std::fs::read(&member).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert!(
        meta["source_path"].ends_with("in/bundle.zip!/src/m.py"),
        "{meta:?}"
    );
    assert_eq!(meta["detected_format"], "code:python");
    // nothing escaped the output folder
    assert!(!tmp.path().join("escape.txt").exists());
    // --modality-stats
    assert!(
        stdout.contains("modality\tdocuments\tsegments\tbytes"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("pdf\t1\t0\t")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("code\t3\t")),
        "{stdout}"
    );
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["stats"]["formats"]["elf"], 1);
    assert_eq!(run_json["stats"]["modalities"]["binary"]["documents"], 1);
}

#[test]
fn segment_modes_and_forced_modality() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = "First paragraph here.\n\nSecond one.\n\nThird.";
    std::fs::write(tmp.path().join("a.txt"), doc).unwrap();
    let tokens = |mode: &str| {
        let out = format!("out-{mode}");
        let o = run(
            &[
                "ingest",
                "--model",
                &model(),
                "--file",
                "a.txt",
                "--output",
                &out,
                "--text-split",
                "paragraphs",
                "--segment-mode",
                mode,
                "--embeddings",
                "none",
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        let data = std::fs::read(output(&tmp.path().join(&out), "a_txt-", ".safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&data).unwrap();
        let ids: Vec<i32> = st
            .tensor("token_ids")
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let segments = st.tensor("segments").unwrap().shape()[0];
        (ids, segments)
    };
    let (separate, n) = tokens("separate");
    assert_eq!(n, 3);
    assert_eq!(
        separate.iter().filter(|&&i| i == 1).count(),
        3,
        "a BOS per segment"
    );
    let (concatenated, n) = tokens("concatenated");
    assert_eq!(n, 3);
    assert_eq!(
        concatenated.iter().filter(|&&i| i == 1).count(),
        1,
        "one BOS"
    );
    assert_eq!(
        concatenated.iter().filter(|&&i| i == 2).count(),
        3,
        "an EOS per segment"
    );
    assert_eq!(concatenated.len(), doc.len() + 4);

    // --modality forces the route: an ELF read as text is one text segment
    std::fs::copy("/bin/true", tmp.path().join("t")).unwrap();
    let o = run(&["detect", "t", "--modality", "text"], tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "t\ttext\ttext\toverride");
}

#[test]
fn detect_prints_format_modality_and_how() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/true", tmp.path().join("true")).unwrap();
    std::fs::write(tmp.path().join("s.py"), "def f():\n    pass\n").unwrap();
    std::fs::write(tmp.path().join("notes"), "just words").unwrap();
    let o = run(&["detect", "true", "s.py", "notes"], tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "true\telf\tbinary\tmagic\ns.py\tcode:python\tcode\textension\nnotes\ttext\ttext\tfallback\n"
    );
    let o = run(&["detect", "--segments", "--json", "s.py"], tmp.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["segments"][0]["label"], "function_definition f");
    let o = run(&["detect", "missing-file"], tmp.path());
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("missing-file"));
}

/// A PNG icon from Debian's `adwaita-icon-theme` and a spoken WAV from `alsa-utils`
/// (`scripts/setup/21-media-test-data.sh`).
const ICON_PNG: &str = "/usr/share/icons/Adwaita/512x512/places/folder-pictures.png";
const SPEECH_WAV: &str = "/usr/share/sounds/alsa/Front_Center.wav";

/// `blt detect --segments --json` segments of `file` under `flags`: (count, decoded bytes of
/// the first segment).
fn media_segments(file: &str, flags: &[&str]) -> (usize, u64) {
    assert!(
        Path::new(file).is_file(),
        "{file} is missing: run scripts/setup/21-media-test-data.sh"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["detect", "--segments", "--json", file];
    args.extend_from_slice(flags);
    let o = run(&args, tmp.path());
    assert!(o.status.success(), "{flags:?}: {}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let segs = v["segments"].as_array().unwrap_or_else(|| panic!("{v}"));
    (segs.len(), segs[0]["decoded_bytes"].as_u64().unwrap())
}

#[test]
fn media_flags_change_the_segments() {
    // 512×512 icon, resized to 256 px, 16×16 rgb8 patches: 16 × 16 patches of 768 bytes
    assert_eq!(media_segments(ICON_PNG, &[]), (256, 768));
    assert_eq!(
        media_segments(ICON_PNG, &["--image-patch-size", "8"]),
        (1024, 192)
    );
    assert_eq!(
        media_segments(
            ICON_PNG,
            &["--image-max-side", "64", "--image-color", "luma8"]
        ),
        (16, 256)
    );
    assert_eq!(
        media_segments(
            ICON_PNG,
            &["--image-patch-size", "none", "--image-max-side", "32"]
        ),
        (1, 32 * 32 * 3)
    );
    // the WAV is 1.44 s: two 1 s frames by default, six of 250 ms (4 000 samples at 16 kHz)
    assert_eq!(media_segments(SPEECH_WAV, &[]).0, 2);
    assert_eq!(
        media_segments(SPEECH_WAV, &["--audio-frame-ms", "250"]),
        (6, 8000)
    );
    // options that cannot work are refused before any file is read
    let tmp = tempfile::tempdir().unwrap();
    let o = run(
        &["detect", "--segments", ICON_PNG, "--image-patch-size", "0"],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("patch_size"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn detect_splits_text_by_a_hugging_face_pre_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    // a tokenizer.json as `tokenizers` writes it (only its pre_tokenizer section is used)
    std::fs::write(
        tmp.path().join("tokenizer.json"),
        r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}"#,
    )
    .unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"Hello,  world!\n\xff end").unwrap();
    let segments = |per: &str| {
        let o = run(
            &[
                "detect",
                "--segments",
                "--json",
                "notes.txt",
                "--text-split",
                "pretokenizer",
                "--text-pretokenizer",
                "tokenizer.json",
                "--text-pretokens-per-segment",
                per,
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["label"].as_str().unwrap().to_owned(),
                    s["byte_range"][0].as_u64().unwrap(),
                    s["byte_range"][1].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let l = |s: &str, a, b| (s.to_owned(), a, b);
    assert_eq!(
        segments("1"),
        [
            l("pretokens", 0, 5),
            l("pretokens", 5, 6),
            l("gap", 6, 8),
            l("pretokens", 8, 13),
            l("pretokens", 13, 14),
            l("gap", 14, 15),
            l("invalid_utf8", 15, 16),
            l("gap", 16, 17),
            l("pretokens", 17, 20),
        ]
    );
    assert_eq!(
        segments("64"),
        [
            l("pretokens", 0, 14),
            l("gap", 14, 15),
            l("invalid_utf8", 15, 16),
            l("gap", 16, 17),
            l("pretokens", 17, 20),
        ]
    );
    // a file that is not a pre-tokenizer: a clear error naming it, before any document
    std::fs::write(tmp.path().join("bad.json"), "{ not json").unwrap();
    let o = run(
        &[
            "detect",
            "--segments",
            "notes.txt",
            "--text-split",
            "pretokenizer",
            "--text-pretokenizer",
            "bad.json",
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("bad.json"), "{}", text(&o.stderr));
}
