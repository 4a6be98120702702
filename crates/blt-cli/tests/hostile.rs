//! A corpus of truncated and hostile files of every kind `blt ingest` decodes, made by this test,
//! ingested under a 4 GiB address-space cap (`prlimit --as`): the run ends normally (no abort,
//! no panic, not even a caught one), every bad file is one typed failure naming it, every good
//! file is written, and `--resume` then leaves the folder exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A PNG of `width` × `height` grey pixels.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = (0..width * height).map(|i| (i * 7 % 251) as u8).collect();
        writer.write_image_data(&pixels).unwrap();
    }
    out
}

/// A PNG whose header claims `width` × `height` pixels, with one tiny compressed row: a
/// decompression bomb's shape (a decoder that trusts the header allocates width × height).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut real = png(4, 4);
    // IHDR's width and height sit right after the 8-byte signature, the chunk length and type.
    real[16..20].copy_from_slice(&width.to_be_bytes());
    real[20..24].copy_from_slice(&height.to_be_bytes());
    // Fix the IHDR CRC so that only the limits can refuse it.
    let crc = crc32(&real[12..29]);
    real[29..33].copy_from_slice(&crc.to_be_bytes());
    real
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A 16-bit mono PCM WAV at `rate` Hz with `samples` samples.
fn wav(rate: u32, samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        out.extend_from_slice(&(((i * 97) % 2000) as i16 - 1000).to_le_bytes());
    }
    out
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

fn truncated(bytes: &[u8], keep: usize) -> Vec<u8> {
    bytes[..keep.min(bytes.len())].to_vec()
}

/// What a file of the corpus must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Written.
    Good,
    /// One typed failure (`limit`: the flag the message must name).
    Bad(Option<&'static str>),
}

/// The corpus: name → (bytes, expectation). Files that need more than bytes (a sparse file,
/// links) are made by `make_corpus`.
fn corpus_files() -> Vec<(String, Vec<u8>, Expect)> {
    let text = "The Byte Latent Transformer groups predictable bytes into longer patches.\n"
        .repeat(20)
        .into_bytes();
    let code =
        b"fn main() {\n    println!(\"hello\");\n}\n\nfn other(x: u32) -> u32 {\n    x + 1\n}\n"
            .to_vec();
    let good_png = png(24, 16);
    let good_wav = wav(16_000, 1_600);
    let good_zip = zip_of(&[("a.txt", b"first member"), ("b/c.md", b"# second")]);
    let elf = std::fs::read("/bin/true").expect("/bin/true");
    let mut files = vec![
        ("good.txt".to_owned(), text.clone(), Expect::Good),
        ("good.rs".to_owned(), code.clone(), Expect::Good),
        ("good.png".to_owned(), good_png.clone(), Expect::Good),
        ("good.wav".to_owned(), good_wav.clone(), Expect::Good),
        ("good.zip".to_owned(), good_zip.clone(), Expect::Good),
        ("good-elf".to_owned(), elf.clone(), Expect::Good),
        // Broken copies.
        (
            "cut.png".to_owned(),
            truncated(&good_png, 40),
            Expect::Bad(None),
        ),
        (
            "cut.wav".to_owned(),
            truncated(&good_wav, 30),
            Expect::Bad(None),
        ),
        (
            "cut.zip".to_owned(),
            truncated(&good_zip, good_zip.len() / 2),
            Expect::Bad(None),
        ),
        // Hostile ones: limits refuse them before anything is allocated.
        (
            "bomb.png".to_owned(),
            png_claiming(200_000, 200_000),
            Expect::Bad(Some("--image-max-decoded-pixels")),
        ),
        (
            "slow.wav".to_owned(),
            wav(1, 100_000),
            Expect::Bad(Some("--audio-max-decoded-samples")),
        ),
    ];
    // A ZIP whose two members normalise to one name: the second is a failure of its own.
    files.push((
        "collide.zip".to_owned(),
        zip_of(&[("a.txt", b"one"), ("x/../a.txt", b"two")]),
        Expect::Bad(None),
    ));
    files
}

fn blt() -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", 4u64 << 30))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_blt"))
        .env_remove("BLT_MODEL")
        .env("HF_HUB_OFFLINE", "1");
    cmd
}

fn ingest(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let output = blt()
        .args(["ingest", "--no-progress", "--input"])
        .arg(input)
        .arg("--output")
        .arg(out)
        .args(extra)
        .output()
        .expect("prlimit (util-linux) runs blt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "a panic (even a caught one) while ingesting the corpus:\n{stderr}"
    );
    output
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // run.json holds timings and the command line.
                if rel != "run.json" {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    out
}

fn make_corpus(dir: &Path) -> BTreeMap<String, Expect> {
    std::fs::create_dir_all(dir).unwrap();
    let mut expect = BTreeMap::new();
    for (name, bytes, e) in corpus_files() {
        std::fs::write(dir.join(&name), bytes).unwrap();
        expect.insert(name, e);
    }
    // A terabyte that is not there: refused from its size.
    let sparse = std::fs::File::create(dir.join("sparse.bin")).unwrap();
    sparse.set_len(1 << 40).unwrap();
    expect.insert("sparse.bin".into(), Expect::Bad(Some("--max-doc-bytes")));
    expect
}

#[test]
fn a_hostile_corpus_fails_file_by_file_under_a_memory_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("corpus");
    let expect = make_corpus(&input);
    let out = tmp.path().join("out");
    let o = ingest(&input, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{:?}\n{stderr}", o.status);

    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let failures = run["stats"]["failures"].as_array().unwrap();
    // Which corpus file each failure names (a ZIP member's failure names its archive).
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for f in failures {
        let path = PathBuf::from(f["path"].as_str().expect("a failure names its file"));
        let name = path.to_string_lossy();
        let file = name
            .split("!/")
            .next()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap();
        *failed.entry(file).or_default() += 1;
    }
    let bad: BTreeSet<&String> = expect
        .iter()
        .filter(|(_, e)| matches!(e, Expect::Bad(_)))
        .map(|(n, _)| n)
        .collect();
    for name in &bad {
        assert_eq!(
            failed.get(*name),
            Some(&1),
            "{name}: expected one failure; failures: {failures:#?}"
        );
    }
    for name in failed.keys() {
        assert!(
            bad.contains(name),
            "{name} failed but is good: {failures:#?}"
        );
    }
    // Limits name the flag that raises them.
    for (name, e) in &expect {
        if let Expect::Bad(Some(flag)) = e {
            let line = stderr
                .lines()
                .find(|l| l.contains(name.as_str()))
                .unwrap_or_else(|| panic!("no error line for {name}:\n{stderr}"));
            assert!(line.contains(flag), "{name}: {line}");
        }
    }
    // Every good file (and the good members of archives) was written.
    let outputs = tree(&out);
    for (name, e) in &expect {
        if *e == Expect::Good {
            let stem: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            assert!(
                outputs
                    .keys()
                    .any(|k| k.contains(&stem) && k.ends_with(".safetensors")),
                "{name} was not written: {:?}",
                outputs.keys()
            );
        }
    }
    assert!(outputs.keys().any(|k| k.contains("collide_zip_a_txt")));

    // Resume: nothing changes (the bad files fail again, the rest is skipped).
    let o = ingest(&input, &out, &["--resume"]);
    assert!(o.status.success());
    assert_eq!(tree(&out), outputs);
}
