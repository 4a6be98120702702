//! Pre-tokenizers on real files that nobody on the project wrote, copied at test time from what
//! a Debian machine ships (`scripts/setup/20-pretokenize-test-files.sh` installs the packages):
//! `/bin/ls` (coreutils), a PDF from `ghostscript-doc`, the pip wheel from `python3-pip-whl`,
//! Python's standard library and the C library headers. For each file: every byte is accounted
//! for, and truncated and corrupted copies give a typed error or a valid segmentation.

use std::path::{Path, PathBuf};

use blt_pretokenize::{
    assert_accounts_for_every_byte, extract_zip, DetectedBy, Format, Language, Modality,
    PretokenizeError, Pretokenized, Pretokenizer, Segmenter,
};

const PDF: &str = "/usr/share/doc/ghostscript/GS9_Color_Management.pdf";
const SETUP: &str = "run scripts/setup/20-pretokenize-test-files.sh";

/// Copies a system file into a temp dir (so the test reads a file it owns) and returns its bytes.
fn copy_of(path: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let src = Path::new(path);
    assert!(src.is_file(), "{path} is missing: {SETUP}");
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join(src.file_name().unwrap());
    std::fs::copy(src, &dst).unwrap();
    let bytes = std::fs::read(&dst).unwrap();
    (dir, dst, bytes)
}

fn pip_wheel() -> String {
    let dir = Path::new("/usr/share/python-wheels");
    let wheel = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}: {SETUP}", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("pip-") && name.ends_with(".whl")
        })
        .unwrap_or_else(|| panic!("no pip wheel in {}: {SETUP}", dir.display()));
    wheel.display().to_string()
}

/// Segments `bytes` (a damaged copy of a real file): an error must be typed, a result must
/// account for every byte.
fn damaged_ok(pre: &Pretokenizer, bytes: &[u8], name: &Path) {
    match pre.pretokenize(bytes, Some(name)) {
        Ok((_, Pretokenized::Segments(segs))) => {
            assert_accounts_for_every_byte(bytes, &segs).unwrap();
        }
        Ok((_, Pretokenized::Container(_))) => {}
        Err(
            PretokenizeError::Decode { .. }
            | PretokenizeError::LimitExceeded { .. }
            | PretokenizeError::Parse { .. },
        ) => {}
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// The damaged versions of a file: cut in half, cut to its first 100 bytes, header garbage,
/// and garbage in the middle.
fn damaged(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut header = bytes.to_vec();
    for b in header.iter_mut().skip(4).take(60) {
        *b ^= 0x5A;
    }
    let mut middle = bytes.to_vec();
    let mid = middle.len() / 2;
    let end = (mid + 4096).min(middle.len());
    middle[mid..end].fill(0xEE);
    vec![
        bytes[..bytes.len() / 2].to_vec(),
        bytes[..bytes.len().min(100)].to_vec(),
        header,
        middle,
    ]
}

#[test]
fn system_elf_binary() {
    let (_dir, path, bytes) = copy_of("/bin/ls");
    let pre = Pretokenizer::default();
    let (d, out) = pre.pretokenize(&bytes, Some(&path)).unwrap();
    assert_eq!((d.format, d.by), (Format::Elf, DetectedBy::Magic));
    let Pretokenized::Segments(segs) = out else {
        panic!("not segments")
    };
    assert_accounts_for_every_byte(&bytes, &segs).unwrap();
    assert!(segs.iter().any(|s| s.label == "section .text"));
    assert!(segs.iter().any(|s| s.label == "gap"));
    for case in damaged(&bytes) {
        damaged_ok(&pre, &case, &path);
    }
}

#[test]
fn debian_documentation_pdf() {
    let (_dir, path, bytes) = copy_of(PDF);
    let pre = Pretokenizer::default();
    let (d, out) = pre.pretokenize(&bytes, Some(&path)).unwrap();
    assert_eq!(d.format, Format::Pdf);
    let Pretokenized::Segments(segs) = out else {
        panic!("not segments")
    };
    assert_accounts_for_every_byte(&bytes, &segs).unwrap();
    assert_eq!(segs[0].label, "raw");
    assert_eq!(segs[0].bytes(&bytes), &bytes[..]);
    let pages = segs[0].metadata["page_count"].as_u64().unwrap();
    assert!(pages > 5, "{pages} pages");
    let texts: Vec<_> = segs
        .iter()
        .filter(|s| s.label.starts_with("page "))
        .collect();
    assert!(
        texts.len() as u64 > pages / 2,
        "{} of {pages} pages have text",
        texts.len()
    );
    let all: String = texts
        .iter()
        .map(|s| String::from_utf8_lossy(s.decoded.as_deref().unwrap()).into_owned())
        .collect();
    assert!(all.contains("Color"), "no 'Color' in the extracted text");
    let id = segs[0].source_id.as_deref().unwrap();
    assert!(segs.iter().all(|s| s.source_id.as_deref() == Some(id)));
    for case in damaged(&bytes) {
        damaged_ok(&pre, &case, &path);
    }
}

#[test]
fn python_wheel_container() {
    let (_dir, path, bytes) = copy_of(&pip_wheel());
    let pre = Pretokenizer::default();
    let d = pre.detect(&bytes, Some(&path));
    assert_eq!(d.modality(), Modality::Container);
    let contents = extract_zip(&bytes, &Default::default()).unwrap();
    assert!(
        contents.members.len() > 100,
        "{} members",
        contents.members.len()
    );
    assert!(contents
        .members
        .iter()
        .any(|m| m.inner_path == "pip/__init__.py"));
    let mut python_files = 0;
    for m in &contents.members {
        assert!(m.data_range.end <= bytes.len() as u64);
        let (d, out) = pre
            .pretokenize(&m.bytes, Some(Path::new(&m.inner_path)))
            .unwrap();
        let Pretokenized::Segments(segs) = out else {
            panic!("nested container in the pip wheel")
        };
        assert_accounts_for_every_byte(&m.bytes, &segs).unwrap();
        if d.format == Format::Code(Language::Python) {
            python_files += 1;
        }
    }
    assert!(python_files > 100, "{python_files} Python files");
    for case in damaged(&bytes) {
        damaged_ok(&pre, &case, &path);
    }
}

/// Every file of a few system folders (Python's standard library, the C headers, some
/// executables): detection and the pre-tokenizer of its modality account for every byte.
#[test]
fn system_folders_are_tiled() {
    let pre = Pretokenizer::default();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut folders: Vec<PathBuf> = vec!["/usr/include".into(), "/bin".into()];
    if let Some(py) = std::fs::read_dir("/usr/lib")
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python3.")
        })
    {
        folders.push(py.join("json"));
        folders.push(py.join("email"));
    }
    for folder in folders {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files.into_iter().take(40) {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            match pre.pretokenize(&bytes, Some(&file)) {
                Ok((d, Pretokenized::Segments(segs))) => {
                    assert_accounts_for_every_byte(&bytes, &segs)
                        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                    *seen.entry(d.format.name()).or_default() += 1;
                }
                Ok((_, Pretokenized::Container(_))) => {}
                Err(e) => panic!("{}: {e}", file.display()),
            }
        }
    }
    assert!(
        seen.get("code:python").copied().unwrap_or(0) > 10,
        "{seen:?}"
    );
    assert!(seen.get("code:c").copied().unwrap_or(0) > 10, "{seen:?}");
    assert!(seen.get("elf").copied().unwrap_or(0) > 10, "{seen:?}");
}

#[test]
fn whole_document_segmenter_still_works_through_the_trait() {
    let doc = b"plain words\n\nmore words";
    let segs = Pretokenizer::default().segment(doc).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].modality, Modality::Text);
}
