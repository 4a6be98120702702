//! What a document is: magic bytes first (through the `infer` crate, plus checks of our own
//! where a magic number alone is ambiguous), then a shebang line, then the file extension, with
//! text as the fallback (valid or invalid UTF-8 alike: bytes are bytes). A `--modality`
//! override wins over all of them.

use std::fmt;
use std::path::Path;

use crate::Modality;

/// How many bytes after `#!` are looked at for the interpreter.
const MAX_SHEBANG_BYTES: usize = 256;

/// A programming language the code segmenter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// Rust (`.rs`).
    Rust,
    /// Python (`.py`, `.pyi`, `python` shebang).
    Python,
    /// JavaScript (`.js`, `.mjs`, `.cjs`, `.jsx`, `node` shebang).
    JavaScript,
    /// TypeScript (`.ts`, `.mts`, `.cts`).
    TypeScript,
    /// TypeScript with JSX (`.tsx`).
    Tsx,
    /// C (`.c`, `.h`).
    C,
    /// C++ (`.cc`, `.cpp`, `.cxx`, `.hpp`, `.hh`, `.hxx`).
    Cpp,
    /// Go (`.go`).
    Go,
    /// Java (`.java`).
    Java,
    /// A shell script (`.sh`, `.bash`, `sh`/`bash` shebang): no grammar, one segment.
    Shell,
    /// Code in a language without a grammar here (forced with `--modality code`).
    Other,
}

impl Language {
    /// The lowercase name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::JavaScript => "javascript",
            Self::TypeScript => "typescript",
            Self::Tsx => "tsx",
            Self::C => "c",
            Self::Cpp => "cpp",
            Self::Go => "go",
            Self::Java => "java",
            Self::Shell => "shell",
            Self::Other => "other",
        }
    }

    /// The language of a file extension (without the dot, any case).
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "rs" => Self::Rust,
            "py" | "pyi" | "pyw" => Self::Python,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "c" | "h" => Self::C,
            "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" => Self::Cpp,
            "go" => Self::Go,
            "java" => Self::Java,
            "sh" | "bash" | "zsh" | "ksh" => Self::Shell,
            _ => return None,
        })
    }

    /// The language a `#!` first line names (`#!/usr/bin/env python3`, `#!/bin/sh`, …).
    pub fn from_shebang(document: &[u8]) -> Option<Self> {
        let line = document.strip_prefix(b"#!")?;
        // Kernels read at most 255 bytes of a `#!` line; a longer "line" is not a shebang worth
        // copying (a document of one huge line would be copied whole, and tripled by the lossy
        // decoding of invalid bytes).
        let line = &line[..line.len().min(MAX_SHEBANG_BYTES)];
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let mut program = words.next()?.rsplit('/').next()?;
        if program == "env" {
            program = words.find(|w| !w.starts_with('-'))?;
        }
        let program = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        Some(match program {
            "python" | "pypy" => Self::Python,
            "node" | "nodejs" | "deno" => Self::JavaScript,
            "sh" | "bash" | "dash" | "zsh" | "ksh" => Self::Shell,
            _ => return None,
        })
    }
}

/// A detected file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG image.
    Jpeg,
    /// PNG image.
    Png,
    /// GIF image.
    Gif,
    /// WebP image.
    Webp,
    /// BMP image.
    Bmp,
    /// TIFF image.
    Tiff,
    /// Another image format, named.
    OtherImage(&'static str),
    /// RIFF WAVE audio.
    Wav,
    /// MPEG audio layer III.
    Mp3,
    /// FLAC audio.
    Flac,
    /// Ogg (Vorbis, Opus) audio.
    Ogg,
    /// ADTS AAC audio.
    Aac,
    /// MPEG-4 audio (`ftyp M4A`).
    M4a,
    /// Another audio format, named.
    OtherAudio(&'static str),
    /// MPEG-4 video.
    Mp4,
    /// QuickTime video.
    Mov,
    /// Matroska video.
    Mkv,
    /// WebM video.
    Webm,
    /// Another video format, named.
    OtherVideo(&'static str),
    /// PDF document.
    Pdf,
    /// ELF executable, object or shared library.
    Elf,
    /// PE (Windows) executable or DLL.
    Pe,
    /// Thin Mach-O binary.
    MachO,
    /// Fat (universal) Mach-O binary.
    MachOFat,
    /// Unix `ar` archive (static libraries).
    Ar,
    /// A ZIP container, named by its flavour (`zip`, `docx`, `epub`, `jar`, …).
    Zip(&'static str),
    /// Source code.
    Code(Language),
    /// Text (the fallback for anything else).
    Text,
    /// No known format: the modality was forced by `--modality` and the content matched none
    /// of its formats.
    Unknown(Modality),
}

impl Format {
    /// The modality this format is routed to.
    pub fn modality(self) -> Modality {
        match self {
            Self::Jpeg | Self::Png | Self::Gif | Self::Webp | Self::Bmp | Self::Tiff => {
                Modality::Image
            }
            Self::OtherImage(_) => Modality::Image,
            Self::Wav | Self::Mp3 | Self::Flac | Self::Ogg | Self::Aac | Self::M4a => {
                Modality::Audio
            }
            Self::OtherAudio(_) => Modality::Audio,
            Self::Mp4 | Self::Mov | Self::Mkv | Self::Webm | Self::OtherVideo(_) => Modality::Video,
            Self::Pdf => Modality::Pdf,
            Self::Elf | Self::Pe | Self::MachO | Self::MachOFat | Self::Ar => Modality::Binary,
            Self::Zip(_) => Modality::Container,
            Self::Code(_) => Modality::Code,
            Self::Text => Modality::Text,
            Self::Unknown(m) => m,
        }
    }

    /// The lowercase name used in outputs (`png`, `elf`, `code:rust`, …).
    pub fn name(self) -> String {
        match self {
            Self::Code(lang) => format!("code:{}", lang.as_str()),
            Self::Unknown(m) => format!("unknown {m}"),
            other => other.simple_name().to_owned(),
        }
    }

    fn simple_name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
            Self::Wav => "wav",
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
            Self::Ogg => "ogg",
            Self::Aac => "aac",
            Self::M4a => "m4a",
            Self::Mp4 => "mp4",
            Self::Mov => "mov",
            Self::Mkv => "mkv",
            Self::Webm => "webm",
            Self::Pdf => "pdf",
            Self::Elf => "elf",
            Self::Pe => "pe",
            Self::MachO => "macho",
            Self::MachOFat => "macho-fat",
            Self::Ar => "ar",
            Self::Text => "text",
            Self::OtherImage(n) | Self::OtherAudio(n) | Self::OtherVideo(n) | Self::Zip(n) => n,
            Self::Code(_) => "code",
            Self::Unknown(_) => "unknown",
        }
    }

    /// The format named by a file extension (without the dot, any case).
    pub fn from_extension(ext: &str) -> Option<Self> {
        if let Some(lang) = Language::from_extension(ext) {
            return Some(Self::Code(lang));
        }
        Some(match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" => Self::Jpeg,
            "png" => Self::Png,
            "gif" => Self::Gif,
            "webp" => Self::Webp,
            "bmp" => Self::Bmp,
            "tif" | "tiff" => Self::Tiff,
            "wav" | "wave" => Self::Wav,
            "mp3" => Self::Mp3,
            "flac" => Self::Flac,
            "ogg" | "oga" | "opus" => Self::Ogg,
            "aac" => Self::Aac,
            "m4a" => Self::M4a,
            "mp4" | "m4v" => Self::Mp4,
            "mov" | "qt" => Self::Mov,
            "mkv" => Self::Mkv,
            "webm" => Self::Webm,
            "pdf" => Self::Pdf,
            "exe" | "dll" | "sys" | "efi" => Self::Pe,
            "so" | "o" | "elf" => Self::Elf,
            "dylib" => Self::MachO,
            "a" => Self::Ar,
            "zip" => Self::Zip("zip"),
            "jar" | "war" => Self::Zip("jar"),
            "whl" => Self::Zip("wheel"),
            "docx" => Self::Zip("docx"),
            "xlsx" => Self::Zip("xlsx"),
            "pptx" => Self::Zip("pptx"),
            "odt" | "ods" | "odp" => Self::Zip("opendocument"),
            "epub" => Self::Zip("epub"),
            "txt" | "md" | "markdown" | "rst" | "text" | "csv" | "tsv" | "json" | "jsonl"
            | "html" | "htm" | "xml" | "yaml" | "yml" | "toml" => Self::Text,
            _ => return None,
        })
    }

    /// The format of a document's leading bytes, if its magic number is known.
    pub fn from_magic(document: &[u8]) -> Option<Self> {
        // Checks `infer` does not make, or makes too loosely.
        if document.starts_with(b"\xCA\xFE\xBA\xBE") && document.len() >= 8 {
            // Fat Mach-O and Java class files share a magic number; a fat header's next word
            // is its (small) architecture count, a class file's is its version (≥ 45).
            let n = u32::from_be_bytes([document[4], document[5], document[6], document[7]]);
            return (n > 0 && n < 45).then_some(Self::MachOFat);
        }
        if document.starts_with(b"MZ") {
            return is_pe(document).then_some(Self::Pe);
        }
        if document.starts_with(b"\x7FELF") {
            return Some(Self::Elf); // `infer` wants more than 52 bytes; a truncated ELF is ELF
        }
        if document.starts_with(b"\x1A\x45\xDF\xA3") {
            // EBML: Matroska unless the DocType says WebM (`infer` wants 256 bytes)
            let head = &document[..document.len().min(256)];
            let webm = head.windows(7).any(|w| w == b"\x42\x82\x84webm");
            return Some(if webm { Self::Webm } else { Self::Mkv });
        }
        if document.starts_with(b"%PDF-") {
            return Some(Self::Pdf);
        }
        if document.len() >= 12 && &document[4..8] == b"ftyp" {
            return Some(match &document[8..12] {
                b"M4A " | b"M4B " | b"M4P " | b"F4A " => Self::M4a,
                b"qt  " => Self::Mov,
                b"heic" | b"heix" | b"mif1" | b"msf1" => Self::OtherImage("heif"),
                b"avif" | b"avis" => Self::OtherImage("avif"),
                _ => Self::Mp4,
            });
        }
        let kind = infer::get(document)?;
        Some(match kind.extension() {
            "jpg" => Self::Jpeg,
            "png" => Self::Png,
            "gif" => Self::Gif,
            "webp" => Self::Webp,
            "bmp" => Self::Bmp,
            "tif" => Self::Tiff,
            "wav" => Self::Wav,
            "mp3" => Self::Mp3,
            "flac" => Self::Flac,
            "ogg" | "opus" => Self::Ogg,
            "aac" => Self::Aac,
            "m4a" => Self::M4a,
            "mp4" | "m4v" => Self::Mp4,
            "mov" => Self::Mov,
            "mkv" => Self::Mkv,
            "webm" => Self::Webm,
            "pdf" => Self::Pdf,
            "elf" | "obj" => Self::Elf,
            "mach" => Self::MachO,
            "ar" | "deb" => Self::Ar,
            "zip" => Self::Zip("zip"),
            "docx" => Self::Zip("docx"),
            "xlsx" => Self::Zip("xlsx"),
            "pptx" => Self::Zip("pptx"),
            "odt" | "ods" | "odp" => Self::Zip("opendocument"),
            "epub" => Self::Zip("epub"),
            "crx" => return None,
            ext => match kind.matcher_type() {
                infer::MatcherType::Image => Self::OtherImage(ext),
                infer::MatcherType::Audio => Self::OtherAudio(ext),
                infer::MatcherType::Video => Self::OtherVideo(ext),
                // Formats we have no segmenter for (compressed streams, fonts, databases…)
                // are bytes like any other; `text` handles them as one segment.
                _ => return None,
            },
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A PE file: `MZ`, then at offset 0x3C the offset of a `PE\0\0` signature inside the file.
fn is_pe(document: &[u8]) -> bool {
    let Some(field) = document.get(0x3C..0x40) else {
        return false;
    };
    let at = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
    at.checked_add(4)
        .and_then(|end| document.get(at..end))
        .is_some_and(|sig| sig == b"PE\0\0")
}

/// How a format was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectedBy {
    /// The leading bytes.
    Magic,
    /// A `#!` first line.
    Shebang,
    /// The file extension.
    Extension,
    /// Nothing matched: text.
    Fallback,
    /// The caller forced the modality.
    Override,
}

impl DetectedBy {
    /// The lowercase name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Magic => "magic",
            Self::Shebang => "shebang",
            Self::Extension => "extension",
            Self::Fallback => "fallback",
            Self::Override => "override",
        }
    }
}

/// The result of [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Detection {
    /// The format.
    pub format: Format,
    /// How it was found.
    pub by: DetectedBy,
}

impl Detection {
    /// The modality the document is routed to.
    pub fn modality(&self) -> Modality {
        self.format.modality()
    }
}

/// Detects the format of `document`, whose name (for its extension) is `path`.
///
/// Magic bytes first, then a shebang, then the extension; text when nothing matches.
/// With `forced`, the result has that modality: the format found by content or name when it
/// has that modality, else a generic one ([`Format::Text`], code in the language of the
/// extension or shebang, [`Format::Zip`] for containers, [`Format::Unknown`] otherwise).
///
/// ```
/// use blt_pretokenize::{detect, DetectedBy, Format, Language, Modality};
/// use std::path::Path;
///
/// let png = detect(b"\x89PNG\r\n\x1a\n....", None, None);
/// assert_eq!((png.format, png.by), (Format::Png, DetectedBy::Magic));
/// let py = detect(b"#!/usr/bin/env python3\nprint(1)\n", None, None);
/// assert_eq!(py.format, Format::Code(Language::Python));
/// let rs = detect(b"fn main() {}", Some(Path::new("src/main.rs")), None);
/// assert_eq!((rs.format, rs.by), (Format::Code(Language::Rust), DetectedBy::Extension));
/// let forced = detect(b"fn main() {}", Some(Path::new("main.rs")), Some(Modality::Text));
/// assert_eq!((forced.format, forced.by), (Format::Text, DetectedBy::Override));
/// ```
pub fn detect(document: &[u8], path: Option<&Path>, forced: Option<Modality>) -> Detection {
    let found = detect_unforced(document, path);
    let Some(modality) = forced else {
        return found;
    };
    if found.modality() == modality {
        return Detection {
            format: found.format,
            by: DetectedBy::Override,
        };
    }
    let by_name = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .and_then(Format::from_extension)
        .filter(|f| f.modality() == modality);
    let format = match (modality, by_name) {
        (_, Some(format)) => format,
        (Modality::Text, None) => Format::Text,
        (Modality::Code, None) => {
            Format::Code(Language::from_shebang(document).unwrap_or(Language::Other))
        }
        (Modality::Container, None) => Format::Zip("zip"),
        (m, None) => Format::Unknown(m),
    };
    Detection {
        format,
        by: DetectedBy::Override,
    }
}

fn detect_unforced(document: &[u8], path: Option<&Path>) -> Detection {
    if let Some(format) = Format::from_magic(document) {
        return Detection {
            format,
            by: DetectedBy::Magic,
        };
    }
    if let Some(lang) = Language::from_shebang(document) {
        return Detection {
            format: Format::Code(lang),
            by: DetectedBy::Shebang,
        };
    }
    let by_name = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .and_then(Format::from_extension);
    match by_name {
        Some(format) => Detection {
            format,
            by: DetectedBy::Extension,
        },
        None => Detection {
            format: Format::Text,
            by: DetectedBy::Fallback,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn magic(bytes: &[u8]) -> Option<Format> {
        Format::from_magic(bytes)
    }

    #[test]
    fn magic_numbers_of_every_listed_format() {
        let mut pe = vec![0u8; 0x90];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        let mut riff_wave = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
        riff_wave.extend([0u8; 24]);
        let cases: Vec<(Vec<u8>, Format)> = vec![
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec(), Format::Jpeg),
            (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec(), Format::Png),
            (b"GIF89a\x01\0\x01\0".to_vec(), Format::Gif),
            (b"RIFF\x1a\0\0\0WEBPVP8 ".to_vec(), Format::Webp),
            (b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0".to_vec(), Format::Bmp),
            (b"II*\0\x08\0\0\0\x0e\0".to_vec(), Format::Tiff),
            (b"MM\0*\0\0\0\x08\0\x0e".to_vec(), Format::Tiff),
            (riff_wave, Format::Wav),
            (b"ID3\x04\0\0\0\0\0\0".to_vec(), Format::Mp3),
            (b"fLaC\0\0\0\x22".to_vec(), Format::Flac),
            (b"OggS\0\x02\0\0\0\0\0\0\0\0".to_vec(), Format::Ogg),
            (b"\xFF\xF1\x50\x80\x02\x1F\xFC".to_vec(), Format::Aac),
            (b"\0\0\0\x20ftypM4A \0\0\0\0".to_vec(), Format::M4a),
            (b"\0\0\0\x20ftypisom\0\0\x02\0".to_vec(), Format::Mp4),
            (b"\0\0\0\x14ftypqt  \0\0\0\0".to_vec(), Format::Mov),
            (b"%PDF-1.7\n".to_vec(), Format::Pdf),
            (b"\x7FELF\x02\x01\x01".to_vec(), Format::Elf),
            (pe, Format::Pe),
            (b"\xCF\xFA\xED\xFE\x07\0\0\x01".to_vec(), Format::MachO),
            (b"\xCA\xFE\xBA\xBE\0\0\0\x02".to_vec(), Format::MachOFat),
            (b"!<arch>\nfoo.o/".to_vec(), Format::Ar),
            (b"PK\x03\x04\x14\0\0\0\x08\0".to_vec(), Format::Zip("zip")),
        ];
        for (bytes, want) in cases {
            assert_eq!(magic(&bytes), Some(want), "{want:?}");
            assert_eq!(detect(&bytes, None, None).by, DetectedBy::Magic);
        }
    }

    #[test]
    fn matroska_and_webm_by_doctype() {
        let ebml = |doctype: &[u8], pad: usize| {
            let mut v = b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\xF7\x81\x01\x42\xF2\x81\x04\x42\xF3\x81\x08\x42\x82".to_vec();
            v.push(0x80 | doctype.len() as u8);
            v.extend_from_slice(doctype);
            v.extend(vec![0u8; pad]);
            v
        };
        for pad in [4, 300] {
            assert_eq!(magic(&ebml(b"matroska", pad)), Some(Format::Mkv));
            assert_eq!(magic(&ebml(b"webm", pad)), Some(Format::Webm));
        }
    }

    #[test]
    fn ambiguous_magic_is_checked() {
        // a Java class file (version 52) is not a fat Mach-O
        assert_eq!(magic(b"\xCA\xFE\xBA\xBE\0\0\0\x34"), None);
        // text that starts with "MZ" is not a PE file
        assert_eq!(magic(b"MZ is a postcode area in Germany."), None);
        let d = detect(b"MZ is a postcode area", Some(Path::new("notes.txt")), None);
        assert_eq!((d.format, d.by), (Format::Text, DetectedBy::Extension));
    }

    #[test]
    fn only_the_head_of_a_shebang_line_is_read() {
        let mut long = b"#!/usr/bin/python3 ".to_vec();
        long.extend(std::iter::repeat_n(0xFF, 1 << 20));
        assert_eq!(Language::from_shebang(&long), Some(Language::Python));
        // an interpreter past the first 256 bytes is not looked for
        let mut far = b"#!".to_vec();
        far.extend([b' '; 300]);
        far.extend_from_slice(b"python3\n");
        assert_eq!(Language::from_shebang(&far), None);
    }

    #[test]
    fn shebang_extension_and_fallback() {
        let cases: [(&[u8], Option<&str>, Format, DetectedBy); 8] = [
            (
                b"#!/bin/sh\necho hi\n",
                None,
                Format::Code(Language::Shell),
                DetectedBy::Shebang,
            ),
            (
                b"#!/usr/bin/env -S node --flag\n",
                None,
                Format::Code(Language::JavaScript),
                DetectedBy::Shebang,
            ),
            (
                b"#!/usr/bin/python3.12\n",
                Some("tool"),
                Format::Code(Language::Python),
                DetectedBy::Shebang,
            ),
            (
                b"int main(){}",
                Some("a/b/main.CPP"),
                Format::Code(Language::Cpp),
                DetectedBy::Extension,
            ),
            (
                b"package x",
                Some("X.java"),
                Format::Code(Language::Java),
                DetectedBy::Extension,
            ),
            (
                b"<svg/>",
                Some("x.tsx"),
                Format::Code(Language::Tsx),
                DetectedBy::Extension,
            ),
            (
                b"\xff\xfe\x00garbage",
                None,
                Format::Text,
                DetectedBy::Fallback,
            ),
            (b"", Some("empty"), Format::Text, DetectedBy::Fallback),
        ];
        for (bytes, name, format, by) in cases {
            let d = detect(bytes, name.map(Path::new), None);
            assert_eq!((d.format, d.by), (format, by), "{name:?}");
        }
        // content wins over the name
        let d = detect(b"%PDF-1.4\n", Some(Path::new("paper.txt")), None);
        assert_eq!(d.format, Format::Pdf);
    }

    #[test]
    fn override_keeps_a_matching_format_or_picks_a_generic_one() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR";
        let d = detect(png, None, Some(Modality::Image));
        assert_eq!((d.format, d.by), (Format::Png, DetectedBy::Override));
        assert_eq!(detect(png, None, Some(Modality::Text)).format, Format::Text);
        assert_eq!(
            detect(png, None, Some(Modality::Binary)).format,
            Format::Unknown(Modality::Binary)
        );
        let d = detect(b"x = 1", Some(Path::new("a.py")), Some(Modality::Code));
        assert_eq!(d.format, Format::Code(Language::Python));
        let d = detect(b"x = 1", Some(Path::new("a.txt")), Some(Modality::Code));
        assert_eq!(d.format, Format::Code(Language::Other));
        assert_eq!("PDF".parse::<Modality>().unwrap(), Modality::Pdf);
        assert!("pictures".parse::<Modality>().is_err());
    }
}
