//! `BinarySegmenter` on real PE and Mach-O files that nobody on the project wrote, read at test
//! time from Debian packages (`scripts/setup/20-pretokenize-test-files.sh` installs them):
//!
//! - `golang-src` (`golang-1.19-src` on Debian 12; BSD-3-Clause, the Go authors): the executables and objects of Go's own
//!   `debug/pe` and `debug/macho` tests, built by MinGW GCC, Apple GCC and clang from `hello.c`
//!   beside them: PE32 (i386) and PE32+ (x86-64) executables, COFF objects, thin i386 and x86-64
//!   Mach-O executables, a Mach-O object and a fat (universal) i386 + x86-64 executable. Go keeps
//!   the Mach-O files base64-encoded; the test decodes them.
//! - `python3-setuptools-whl` (MIT, the setuptools authors): the Windows launchers inside the
//!   setuptools wheel, `cli-64.exe` (x86-64) and `cli-arm64.exe` (ARM64), taken out with
//!   [`extract_zip`].
//!
//! For each file: the format is detected, the sections we know it has are segments, every byte is
//! in exactly one segment, and damaged copies give a typed error or a valid segmentation.

use std::path::Path;

use blt_pretokenize::{
    assert_accounts_for_every_byte, extract_zip, BinarySegmenter, ContainerLimits, Format,
    PretokenizeError, Pretokenized, Pretokenizer, Segment, Segmenter,
};

const SETUP: &str = "run scripts/setup/20-pretokenize-test-files.sh";

/// `/usr/share/go-<version>/src/debug` of the installed `golang-src` (1.19 on Debian 12).
fn go_testdata() -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir("/usr/share")
        .unwrap()
        .map(|e| e.unwrap().path().join("src/debug"))
        .filter(|p| {
            let go = p.parent().and_then(Path::parent).and_then(Path::file_name);
            go.is_some_and(|n| n.to_string_lossy().starts_with("go-")) && p.is_dir()
        })
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no /usr/share/go-*/src/debug (golang-src): {SETUP}"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}: {SETUP}", path.display()))
}

/// Standard base64 (RFC 4648, `=` padding), whitespace ignored: how Go stores its Mach-O files.
fn base64_decode(text: &[u8]) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:#x}"),
    };
    let digits: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The file's segments through the dispatcher (detection by content and name), checked.
fn segments(name: &str, bytes: &[u8], format: Format) -> Vec<Segment> {
    let pre = Pretokenizer::default();
    let (d, out) = pre.pretokenize(bytes, Some(Path::new(name))).unwrap();
    assert_eq!(d.format, format, "{name}");
    let Pretokenized::Segments(segs) = out else {
        panic!("{name}: not segments")
    };
    assert_accounts_for_every_byte(bytes, &segs).unwrap();
    for case in damaged(bytes) {
        match BinarySegmenter::default().segment(&case) {
            Ok(segs) => assert_accounts_for_every_byte(&case, &segs).unwrap(),
            Err(PretokenizeError::Decode { .. } | PretokenizeError::LimitExceeded { .. }) => {}
            Err(e) => panic!("{name}: unexpected error kind: {e}"),
        }
    }
    segs
}

/// Cut in half, cut to 100 bytes, header garbage, garbage in the middle.
fn damaged(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut header = bytes.to_vec();
    for b in header.iter_mut().skip(4).take(60) {
        *b ^= 0x5A;
    }
    let mut middle = bytes.to_vec();
    let mid = middle.len() / 2;
    let end = (mid + 512).min(middle.len());
    middle[mid..end].fill(0xEE);
    vec![
        bytes[..bytes.len() / 2].to_vec(),
        bytes[..bytes.len().min(100)].to_vec(),
        header,
        middle,
    ]
}

fn labels(segs: &[Segment]) -> Vec<&str> {
    segs.iter().map(|s| s.label.as_str()).collect()
}

fn assert_has(segs: &[Segment], wanted: &[&str], name: &str) {
    let labels = labels(segs);
    for w in wanted {
        assert!(labels.contains(w), "{name}: no {w:?} in {labels:?}");
    }
    assert!(
        labels.contains(&"gap"),
        "{name}: headers are a gap: {labels:?}"
    );
}

#[test]
fn mingw_pe_executables_and_coff_objects() {
    let dir = go_testdata().join("pe/testdata");
    for (file, wanted) in [
        (
            "gcc-386-mingw-exec",
            &["section .text", "section .data", "section .idata"][..],
        ),
        (
            "gcc-amd64-mingw-exec",
            &["section .text", "section .data", "section .idata"],
        ),
    ] {
        let bytes = read(&dir.join(file));
        let segs = segments(&format!("{file}.exe"), &bytes, Format::Pe);
        assert_has(&segs, wanted, file);
    }
    // COFF objects have no MZ header: not detected as PE, but the binary segmenter reads them
    for file in ["gcc-386-mingw-obj", "gcc-amd64-mingw-obj"] {
        let bytes = read(&dir.join(file));
        let segs = BinarySegmenter::default().segment(&bytes).unwrap();
        assert_accounts_for_every_byte(&bytes, &segs).unwrap();
        assert_has(&segs, &["section .text"], file);
    }
}

#[test]
fn setuptools_windows_launchers_x86_64_and_arm64() {
    let wheels = Path::new("/usr/share/python-wheels");
    let wheel = std::fs::read_dir(wheels)
        .unwrap_or_else(|e| panic!("{}: {e}: {SETUP}", wheels.display()))
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("setuptools-") && name.ends_with(".whl")
        })
        .unwrap_or_else(|| panic!("no setuptools wheel in {}: {SETUP}", wheels.display()));
    let contents = extract_zip(&read(&wheel), &ContainerLimits::default()).unwrap();
    for (inner, machine) in [
        ("setuptools/cli-64.exe", 0x8664),
        ("setuptools/cli-arm64.exe", 0xAA64),
    ] {
        let member = contents
            .members
            .iter()
            .find(|m| m.inner_path == inner)
            .unwrap_or_else(|| panic!("no {inner} in {}", wheel.display()));
        let bytes = &member.bytes;
        // the COFF header's machine field, right after the PE signature
        let pe = u32::from_le_bytes(bytes[0x3C..0x40].try_into().unwrap()) as usize;
        assert_eq!(&bytes[pe..pe + 4], b"PE\0\0", "{inner}");
        assert_eq!(
            u16::from_le_bytes([bytes[pe + 4], bytes[pe + 5]]),
            machine,
            "{inner}"
        );
        let segs = segments(inner, bytes, Format::Pe);
        assert_has(&segs, &["section .text", "section .rdata"], inner);
    }
}

#[test]
fn darwin_mach_o_thin_fat_and_object() {
    let dir = go_testdata().join("macho/testdata");
    let macho = |file: &str| base64_decode(&read(&dir.join(format!("{file}.base64"))));
    for file in [
        "gcc-amd64-darwin-exec",
        "gcc-386-darwin-exec",
        "clang-amd64-darwin.obj",
    ] {
        let bytes = macho(file);
        let segs = segments(file, &bytes, Format::MachO);
        assert_has(&segs, &["section __TEXT,__text"], file);
    }
    let file = "fat-gcc-386-amd64-darwin-exec";
    let bytes = macho(file);
    let segs = segments(file, &bytes, Format::MachOFat);
    assert_has(&segs, &["section __TEXT,__text"], file);
    // one __text per architecture: i386 (7) and x86-64 (0x01000007)
    let mut cputypes: Vec<u64> = segs
        .iter()
        .filter(|s| s.label == "section __TEXT,__text")
        .map(|s| s.metadata["cputype"].as_u64().unwrap())
        .collect();
    cputypes.sort_unstable();
    assert_eq!(cputypes, [7, 0x0100_0007], "{file}");
}

#[test]
fn base64_decoder_round_trips_known_vectors() {
    // RFC 4648 section 10
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_decode(encoded.as_bytes()), plain.as_bytes());
    }
}
