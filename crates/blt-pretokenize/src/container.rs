//! ZIP containers (ZIP, JAR, wheels, DOCX/XLSX/PPTX, OpenDocument, EPUB): members come out as
//! documents of their own, named by their inner path, within limits on count, size and
//! compression ratio. Names that would escape the archive's root are refused.

use std::io::{Cursor, Read};
use std::ops::Range;

use crate::{PretokenizeError, Result};

/// Limits on what one archive may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLimits {
    /// An archive with more entries than this is refused as a whole.
    pub max_members: usize,
    /// A member larger than this (decompressed) is skipped.
    pub max_member_bytes: u64,
    /// The archive is refused once its members add up to more than this (decompressed).
    pub max_total_bytes: u64,
    /// A member whose decompressed size exceeds its compressed size this many times is skipped
    /// (a decompression bomb). Members under 64 KiB decompressed are exempt.
    pub max_ratio: u64,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        Self {
            max_members: 10_000,
            max_member_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 200,
        }
    }
}

/// One extracted member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMember {
    /// Its path inside the archive, `/`-separated, never absolute and never above the root.
    pub inner_path: String,
    /// The bytes of the archive holding its (compressed) data: the member's content is a
    /// decoded view of this range.
    pub data_range: Range<u64>,
    /// Its decompressed bytes.
    pub bytes: Vec<u8>,
}

/// A member that was not extracted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMember {
    /// Its name as stored in the archive (lossy).
    pub name: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What an archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerContents {
    /// Extracted members, in archive order. Directories are not members.
    pub members: Vec<ContainerMember>,
    /// Members that were skipped (escaping path, encrypted, over a limit, corrupt data).
    pub skipped: Vec<SkippedMember>,
}

fn zip_error(e: impl std::fmt::Display) -> PretokenizeError {
    PretokenizeError::Decode {
        format: "zip",
        reason: e.to_string(),
    }
}

/// Extracts the members of a ZIP archive.
///
/// An archive that cannot be opened (no central directory, truncated), or that has more than
/// `limits.max_members` entries or expands to more than `limits.max_total_bytes`, is an error.
/// A single bad member (a name escaping the root, encryption, an unsupported method, a size or
/// ratio over the limits, corrupt data) is skipped and listed with its reason; the others are
/// still extracted.
///
/// ```
/// use std::io::Write;
/// let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
/// zip.start_file("docs/a.txt", zip::write::SimpleFileOptions::default()).unwrap();
/// zip.write_all(b"hello").unwrap();
/// let bytes = zip.finish().unwrap().into_inner();
///
/// let contents = blt_pretokenize::extract_zip(&bytes, &Default::default()).unwrap();
/// assert_eq!(contents.members[0].inner_path, "docs/a.txt");
/// assert_eq!(contents.members[0].bytes, b"hello");
/// ```
pub fn extract_zip(document: &[u8], limits: &ContainerLimits) -> Result<ContainerContents> {
    let mut archive = zip::ZipArchive::new(Cursor::new(document)).map_err(zip_error)?;
    if archive.len() > limits.max_members {
        return Err(PretokenizeError::LimitExceeded {
            what: "zip members".into(),
            limit: limits.max_members as u64,
            actual: archive.len() as u64,
        });
    }
    let mut contents = ContainerContents::default();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut file = match archive.by_index(index) {
            Ok(file) => file,
            Err(e) => {
                contents.skipped.push(SkippedMember {
                    name: format!("#{index}"),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if file.is_dir() {
            continue;
        }
        let skip = |reason: String| SkippedMember {
            name: name.clone(),
            reason,
        };
        let Some(inner) = file.enclosed_name() else {
            contents
                .skipped
                .push(skip("its path escapes the archive root".into()));
            continue;
        };
        let inner_path: Vec<String> = inner
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if inner_path.is_empty() {
            contents.skipped.push(skip("it has an empty path".into()));
            continue;
        }
        if file.encrypted() {
            contents.skipped.push(skip("it is encrypted".into()));
            continue;
        }
        let compressed = file.compressed_size();
        let declared = file.size();
        if declared > limits.max_member_bytes {
            contents.skipped.push(skip(format!(
                "{declared} bytes exceeds the member limit of {}",
                limits.max_member_bytes
            )));
            continue;
        }
        // Never trust the declared size: read at most one byte past the limits.
        let cap = limits.max_member_bytes.min(limits.max_total_bytes - total);
        let mut bytes = Vec::new();
        if let Err(e) = (&mut file).take(cap + 1).read_to_end(&mut bytes) {
            contents.skipped.push(skip(format!("corrupt data: {e}")));
            continue;
        }
        let size = bytes.len() as u64;
        if size > cap {
            if size > limits.max_member_bytes {
                contents.skipped.push(skip(format!(
                    "it decompresses past the member limit of {} bytes",
                    limits.max_member_bytes
                )));
                continue;
            }
            return Err(PretokenizeError::LimitExceeded {
                what: "zip decompressed bytes".into(),
                limit: limits.max_total_bytes,
                actual: total + size,
            });
        }
        if size >= 64 << 10 && size > compressed.max(1).saturating_mul(limits.max_ratio) {
            contents.skipped.push(skip(format!(
                "compression ratio {} exceeds the limit of {}",
                size / compressed.max(1),
                limits.max_ratio
            )));
            continue;
        }
        total += size;
        let start = file.data_start().unwrap_or(file.header_start());
        let end = start.saturating_add(compressed).min(document.len() as u64);
        contents.members.push(ContainerMember {
            inner_path: inner_path.join("/"),
            data_range: start.min(end)..end,
            bytes,
        });
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn build(files: &[(&str, &[u8], zip::CompressionMethod)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, method) in files {
            let options = SimpleFileOptions::default().compression_method(*method);
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn members_with_paths_and_data_ranges() {
        let stored = zip::CompressionMethod::Stored;
        let deflated = zip::CompressionMethod::Deflated;
        let bytes = build(&[
            ("a.txt", b"alpha", stored),
            ("dir/b.rs", b"fn main() {}\n", deflated),
        ]);
        let c = extract_zip(&bytes, &ContainerLimits::default()).unwrap();
        assert_eq!(c.skipped, vec![]);
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.members[0].inner_path, "a.txt");
        assert_eq!(c.members[1].inner_path, "dir/b.rs");
        assert_eq!(c.members[1].bytes, b"fn main() {}\n");
        // a stored member's data range is its bytes
        let r = &c.members[0].data_range;
        assert_eq!(&bytes[r.start as usize..r.end as usize], b"alpha");
        assert!(c.members[1].data_range.start >= r.end);
    }

    #[test]
    fn escaping_paths_are_skipped_and_the_rest_kept() {
        let stored = zip::CompressionMethod::Stored;
        let bytes = build(&[
            ("../../etc/passwd", b"x", stored),
            ("/abs/path", b"y", stored),
            ("ok/../fine.txt", b"z", stored),
        ]);
        let c = extract_zip(&bytes, &ContainerLimits::default()).unwrap();
        let paths: Vec<_> = c.members.iter().map(|m| m.inner_path.as_str()).collect();
        // `ok/../fine.txt` stays inside; `/abs/path` is made relative by the zip crate or refused
        assert!(paths
            .iter()
            .all(|p| !p.starts_with('/') && !p.split('/').any(|c| c == "..")));
        assert!(
            c.skipped.iter().any(|s| s.name == "../../etc/passwd"),
            "{c:?}"
        );
    }

    #[test]
    fn limits_on_count_size_total_and_ratio() {
        let deflated = zip::CompressionMethod::Deflated;
        let zeros = vec![0u8; 1 << 20];
        let bytes = build(&[
            ("bomb.bin", &zeros, deflated),
            ("small.txt", b"ok", deflated),
        ]);
        let c = extract_zip(&bytes, &ContainerLimits::default()).unwrap();
        assert_eq!(c.members.len(), 1);
        assert!(c.skipped[0].reason.contains("ratio"), "{c:?}");

        let tight = ContainerLimits {
            max_member_bytes: 1000,
            ..Default::default()
        };
        let c = extract_zip(&bytes, &tight).unwrap();
        assert!(c.skipped[0].reason.contains("member limit"), "{c:?}");

        let few = ContainerLimits {
            max_members: 1,
            ..Default::default()
        };
        assert!(matches!(
            extract_zip(&bytes, &few),
            Err(PretokenizeError::LimitExceeded { .. })
        ));
        let total = ContainerLimits {
            max_total_bytes: 1000,
            max_ratio: u64::MAX,
            ..Default::default()
        };
        assert!(matches!(
            extract_zip(&bytes, &total),
            Err(PretokenizeError::LimitExceeded { .. })
        ));
    }

    #[test]
    fn truncated_and_garbage_archives_are_errors() {
        let bytes = build(&[("a.txt", b"alpha", zip::CompressionMethod::Deflated)]);
        for case in [&bytes[..bytes.len() / 2], &bytes[..4], b"PK\x03\x04garbage"] {
            assert!(matches!(
                extract_zip(case, &ContainerLimits::default()),
                Err(PretokenizeError::Decode { .. })
            ));
        }
        let mut corrupt = bytes.clone();
        let r = extract_zip(&bytes, &ContainerLimits::default())
            .unwrap()
            .members[0]
            .data_range
            .clone();
        corrupt[r.start as usize..r.end as usize].fill(0xAB);
        match extract_zip(&corrupt, &ContainerLimits::default()) {
            Ok(c) => assert!(c.members.is_empty() && c.skipped.len() == 1, "{c:?}"),
            Err(e) => assert!(matches!(e, PretokenizeError::Decode { .. })),
        }
    }
}
