//! ZIP containers (ZIP, JAR, wheels, DOCX/XLSX/PPTX, OpenDocument, EPUB): members come out as
//! documents of their own, named by their inner path, within limits on count, size and
//! compression ratio. Names that would escape the archive's root are refused, and so are names
//! that repeat an earlier member's after normalisation (`a.txt`, `./a.txt`, `x/../a.txt`), so
//! that every member has its own `inner_path`.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::ops::Range;

use crate::{PretokenizeError, Result};

/// Limits on what one archive may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLimits {
    /// An archive with more entries than this is refused as a whole
    /// ([`PretokenizeError::LimitExceeded`], `option = "container.max_members"`).
    pub max_members: usize,
    /// A member larger than this (decompressed) is skipped.
    pub max_member_bytes: u64,
    /// The archive is refused once its members add up to more than this (decompressed;
    /// [`PretokenizeError::LimitExceeded`], `option = "container.max_total_bytes"`).
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
    /// Its path inside the archive, `/`-separated, never absolute and never above the root, with
    /// `.` and `..` resolved. No two members of one [`ContainerContents`] have the same one
    /// (paths that differ only in case are different).
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
    /// Members that were skipped (escaping path, a name already taken, encrypted, over a limit,
    /// corrupt data).
    pub skipped: Vec<SkippedMember>,
}

/// The [`SkippedMember::name`] of the note that an archive holds entries with exactly the same
/// stored name (see [`extract_zip`]).
pub const REPEATED_NAMES: &str = "(repeated names)";

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
/// Names are normalised (`\` and `/` separate, `.` and empty components dropped, `..` resolved)
/// into `inner_path`. A member whose `inner_path` an earlier extracted member already has
/// (`a.txt`, then `./a.txt`, `/a.txt`, `x\..\a.txt` or `x/../a.txt`) is skipped with the reason
/// `duplicate member name a.txt (after normalisation): the first one is kept`, so that the
/// members' paths can serve as keys. Entries with exactly the same stored name are merged by the
/// `zip` reader itself, which keeps one entry per name (the last one listed); when an archive has
/// such entries, one [`SkippedMember`] named `(repeated names)` says so.
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
            option: "container.max_members",
        });
    }
    let mut contents = ContainerContents::default();
    if archive.has_duplicate_names() {
        contents.skipped.push(SkippedMember {
            name: REPEATED_NAMES.into(),
            reason: "the central directory lists entries under exactly the same name more than \
                     once; the zip reader keeps one entry per name (the last one listed) and the \
                     others are not extracted"
                .into(),
        });
    }
    // inner_path of each extracted member → its stored name
    let mut taken: HashMap<String, String> = HashMap::new();
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
        let inner_path = inner_path.join("/");
        if let Some(first) = taken.get(&inner_path) {
            let first = if *first == inner_path {
                String::new()
            } else {
                format!(" (stored as {first:?})")
            };
            contents.skipped.push(skip(format!(
                "duplicate member name {inner_path} (after normalisation): the first one{first} is kept"
            )));
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
                option: "container.max_total_bytes",
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
        taken.insert(inner_path.clone(), name);
        contents.members.push(ContainerMember {
            inner_path,
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
    fn names_that_normalise_alike_keep_the_first_member() {
        let stored = zip::CompressionMethod::Stored;
        let bytes = build(&[
            ("a.txt", b"first", stored),
            ("x/../a.txt", b"second", stored),
            ("./a.txt", b"third", stored),
            ("/a.txt", b"fourth", stored),
            // a UNC prefix (`//server`) and nothing else: no path at all
            ("//a.txt", b"unc", stored),
            ("x\\..\\a.txt", b"fifth", stored),
            ("A.txt", b"other case", stored),
            ("d/./b.txt", b"b", stored),
            ("d//b.txt", b"b again", stored),
        ]);
        let c = extract_zip(&bytes, &ContainerLimits::default()).unwrap();
        let members: Vec<(&str, &[u8])> = c
            .members
            .iter()
            .map(|m| (m.inner_path.as_str(), m.bytes.as_slice()))
            .collect();
        assert_eq!(
            members,
            [
                ("a.txt", &b"first"[..]),
                ("A.txt", b"other case"),
                ("d/b.txt", b"b")
            ]
        );
        let skipped: Vec<(&str, &str)> = c
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.reason.as_str()))
            .collect();
        let a = "duplicate member name a.txt (after normalisation): the first one is kept";
        let b = "duplicate member name d/b.txt (after normalisation): the first one \
                 (stored as \"d/./b.txt\") is kept";
        assert_eq!(
            skipped,
            [
                ("x/../a.txt", a),
                ("./a.txt", a),
                ("/a.txt", a),
                ("//a.txt", "it has an empty path"),
                ("x\\..\\a.txt", a),
                ("d//b.txt", b),
            ]
        );
        // A first member that is skipped does not take its name: the next one gets it.
        let tight = ContainerLimits {
            max_member_bytes: 5,
            ..Default::default()
        };
        let bytes = build(&[
            ("big.txt", b"too large", stored),
            ("./big.txt", b"small", stored),
        ]);
        let c = extract_zip(&bytes, &tight).unwrap();
        assert_eq!(c.members.len(), 1);
        assert_eq!(c.members[0].bytes, b"small");
        assert!(c.skipped[0].reason.contains("member limit"), "{c:?}");
    }

    #[test]
    fn entries_with_exactly_the_same_name_are_reported() {
        // `ZipWriter` refuses a name twice, so the archive is written with two names of the same
        // length and the second is renamed in place (local header and central directory; names
        // carry no checksum).
        let stored = zip::CompressionMethod::Stored;
        let mut bytes = build(&[
            ("a.txt", b"first", stored),
            ("b.txt", b"second", stored),
            ("c.txt", b"third", stored),
        ]);
        let mut renamed = 0;
        for i in 0..bytes.len() - 5 {
            if &bytes[i..i + 5] == b"b.txt" {
                bytes[i..i + 5].copy_from_slice(b"a.txt");
                renamed += 1;
            }
        }
        assert_eq!(renamed, 2, "one local header, one central directory entry");
        let c = extract_zip(&bytes, &ContainerLimits::default()).unwrap();
        let paths: Vec<&str> = c.members.iter().map(|m| m.inner_path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "c.txt"]);
        assert!(
            [&b"first"[..], b"second"].contains(&c.members[0].bytes.as_slice()),
            "{c:?}"
        );
        assert_eq!(c.skipped.len(), 1, "{c:?}");
        assert_eq!(c.skipped[0].name, REPEATED_NAMES);
        assert!(
            c.skipped[0].reason.contains("exactly the same name"),
            "{c:?}"
        );
    }

    #[test]
    fn limit_errors_name_their_option() {
        let deflated = zip::CompressionMethod::Deflated;
        let bytes = build(&[("a", b"aaaa", deflated), ("b", b"bbbb", deflated)]);
        let few = ContainerLimits {
            max_members: 1,
            ..Default::default()
        };
        assert!(matches!(
            extract_zip(&bytes, &few),
            Err(PretokenizeError::LimitExceeded {
                option: "container.max_members",
                limit: 1,
                actual: 2,
                ..
            })
        ));
        let small = ContainerLimits {
            max_total_bytes: 6,
            ..Default::default()
        };
        assert!(matches!(
            extract_zip(&bytes, &small),
            Err(PretokenizeError::LimitExceeded {
                option: "container.max_total_bytes",
                limit: 6,
                // counted up to one byte past the limit
                actual: 7,
                ..
            })
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
