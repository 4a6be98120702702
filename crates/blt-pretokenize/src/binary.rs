//! Executables and libraries: ELF, PE and Mach-O (thin and fat) sections through `goblin`, and
//! `ar` archive members; the bytes between sections (headers, tables, padding) are segments too.

use goblin::mach::{Mach, SingleArch};
use goblin::Object;
use serde_json::json;

use crate::coverage::{cover, Part};
use crate::{Modality, PretokenizeError, Segment, Segmenter};

/// Options of [`BinarySegmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryOptions {
    /// A file with more sections (over all architectures) than this is refused.
    pub max_sections: usize,
}

impl Default for BinaryOptions {
    fn default() -> Self {
        Self {
            max_sections: 65_536,
        }
    }
}

/// Splits an executable, object file or library into its sections (with file bytes) and the
/// stretches between them (`gap`: headers, section tables, padding, data outside sections).
///
/// Sections without file bytes (ELF `NOBITS`, Mach-O zero-fill) are not segments: they hold no
/// bytes of the file. Overlapping sections are clipped so that every byte is in exactly one
/// segment. A file `goblin` cannot parse (truncated headers, garbage) is a
/// [`PretokenizeError::Decode`]; sections that run past the end of a truncated file are cut at
/// the end.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinarySegmenter {
    options: BinaryOptions,
}

impl BinarySegmenter {
    /// A segmenter with these options.
    pub fn new(options: BinaryOptions) -> Self {
        Self { options }
    }
}

fn decode_error(format: &'static str, e: impl std::fmt::Display) -> PretokenizeError {
    PretokenizeError::Decode {
        format,
        reason: e.to_string(),
    }
}

impl Segmenter for BinarySegmenter {
    fn segment(&self, document: &[u8]) -> crate::Result<Vec<Segment>> {
        // `goblin` is fuzzed upstream, but a panic on a hostile file must not take a run down.
        let parsed = std::panic::catch_unwind(|| parts_of(document))
            .map_err(|_| decode_error("executable", "the parser panicked on this input"))?;
        let (format, parts) = parsed?;
        if parts.len() > self.options.max_sections {
            return Err(PretokenizeError::LimitExceeded {
                what: format!("{format} sections"),
                limit: self.options.max_sections as u64,
                actual: parts.len() as u64,
            });
        }
        Ok(cover(
            document.len() as u64,
            parts,
            Modality::Binary,
            "gap",
            &json!({ "format": format, "kind": "between sections" }),
        ))
    }
}

fn parts_of(document: &[u8]) -> crate::Result<(&'static str, Vec<Part>)> {
    match Object::parse(document).map_err(|e| decode_error("executable", e))? {
        Object::Elf(elf) => {
            let mut parts = Vec::new();
            for sh in &elf.section_headers {
                if sh.sh_type == goblin::elf::section_header::SHT_NOBITS || sh.sh_size == 0 {
                    continue;
                }
                let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
                parts.push(Part {
                    range: sh.sh_offset..sh.sh_offset.saturating_add(sh.sh_size),
                    label: format!("section {name}"),
                    metadata: json!({
                        "format": "elf",
                        "section": name,
                        "type": goblin::elf::section_header::sht_to_str(sh.sh_type),
                        "address": sh.sh_addr,
                        "alloc": sh.is_alloc(),
                        "writable": sh.is_writable(),
                        "executable": sh.is_executable(),
                    }),
                });
            }
            Ok(("elf", parts))
        }
        Object::PE(pe) => {
            let mut parts = Vec::new();
            for s in &pe.sections {
                let name = s.name().unwrap_or("").to_owned();
                let start = u64::from(s.pointer_to_raw_data);
                parts.push(Part {
                    range: start..start + u64::from(s.size_of_raw_data),
                    label: format!("section {name}"),
                    metadata: json!({
                        "format": "pe",
                        "section": name,
                        "virtual_address": s.virtual_address,
                        "virtual_size": s.virtual_size,
                        "characteristics": s.characteristics,
                    }),
                });
            }
            Ok(("pe", parts))
        }
        Object::COFF(coff) => {
            let mut parts = Vec::new();
            for s in &coff.sections {
                let name = s.name().unwrap_or("").to_owned();
                let start = u64::from(s.pointer_to_raw_data);
                parts.push(Part {
                    range: start..start + u64::from(s.size_of_raw_data),
                    label: format!("section {name}"),
                    metadata: json!({ "format": "coff", "section": name }),
                });
            }
            Ok(("coff", parts))
        }
        Object::Mach(Mach::Binary(macho)) => Ok(("macho", macho_parts(&macho, 0, None))),
        Object::Mach(Mach::Fat(fat)) => {
            let arches = fat.arches().map_err(|e| decode_error("macho-fat", e))?;
            let mut parts = Vec::new();
            for (i, arch) in arches.iter().enumerate() {
                let base = u64::from(arch.offset);
                match fat.get(i) {
                    Ok(SingleArch::MachO(macho)) => {
                        parts.extend(macho_parts(&macho, base, Some(arch.cputype)));
                    }
                    Ok(SingleArch::Archive(archive)) => {
                        parts.extend(archive_parts(&archive, base));
                    }
                    Err(e) => {
                        // one unreadable architecture: its bytes stay one segment
                        tracing::debug!("fat Mach-O architecture {i}: {e}");
                        parts.push(Part {
                            range: base..base + u64::from(arch.size),
                            label: format!("architecture {i}"),
                            metadata: json!({
                                "format": "macho-fat",
                                "cputype": arch.cputype,
                                "error": e.to_string(),
                            }),
                        });
                    }
                }
            }
            Ok(("macho-fat", parts))
        }
        Object::Archive(archive) => Ok(("ar", archive_parts(&archive, 0))),
        Object::TE(_) => Err(decode_error("te", "TE images are not segmented")),
        Object::Unknown(magic) => Err(decode_error(
            "executable",
            format!("unknown magic {magic:#x}"),
        )),
        _ => Err(decode_error("executable", "unsupported object kind")),
    }
}

fn macho_parts(macho: &goblin::mach::MachO<'_>, base: u64, cputype: Option<u32>) -> Vec<Part> {
    const ZEROFILL: [u32; 3] = [0x01, 0x0C, 0x12]; // S_ZEROFILL, S_GB_ZEROFILL, S_THREAD_LOCAL_ZEROFILL
    let mut parts = Vec::new();
    for segment in macho.segments.iter() {
        let Ok(sections) = segment.sections() else {
            continue;
        };
        for (section, _) in sections {
            if ZEROFILL.contains(&(section.flags & 0xFF)) || section.size == 0 {
                continue;
            }
            let seg = section.segname().unwrap_or("").to_owned();
            let name = section.name().unwrap_or("").to_owned();
            let start = base + u64::from(section.offset);
            parts.push(Part {
                range: start..start.saturating_add(section.size),
                label: format!("section {seg},{name}"),
                metadata: json!({
                    "format": "macho",
                    "segment": seg,
                    "section": name,
                    "address": section.addr,
                    "cputype": cputype,
                }),
            });
        }
    }
    parts
}

fn archive_parts(archive: &goblin::archive::Archive<'_>, base: u64) -> Vec<Part> {
    archive
        .members()
        .into_iter()
        .filter_map(|name| {
            let member = archive.get(name)?;
            let start = base + member.offset;
            Some(Part {
                range: start..start + member.size() as u64,
                label: format!("member {name}"),
                metadata: json!({ "format": "ar", "member": name }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assert_accounts_for_every_byte;

    fn system_elf() -> Option<Vec<u8>> {
        ["/bin/ls", "/usr/bin/ls", "/bin/sh"]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
    }

    #[test]
    fn a_system_elf_binary_is_tiled_by_sections_and_gaps() {
        let Some(elf) = system_elf() else {
            panic!("no /bin/ls on this machine");
        };
        let segs = BinarySegmenter::default().segment(&elf).unwrap();
        assert_accounts_for_every_byte(&elf, &segs).unwrap();
        let labels: Vec<&str> = segs.iter().map(|s| s.label.as_str()).collect();
        assert!(labels.contains(&"section .text"), "{labels:?}");
        assert!(labels.contains(&"section .dynsym"), "{labels:?}");
        assert_eq!(labels[0], "gap", "the ELF header comes first");
        assert!(segs.iter().all(|s| s.modality == Modality::Binary));
        let text = segs.iter().find(|s| s.label == "section .text").unwrap();
        assert_eq!(text.metadata["executable"], true);
    }

    #[test]
    fn truncated_and_corrupted_elf_give_errors_or_a_tiling() {
        let Some(elf) = system_elf() else {
            panic!("no /bin/ls on this machine");
        };
        let mut cases = vec![
            elf[..elf.len() / 2].to_vec(),
            elf[..64].to_vec(),
            elf[..10].to_vec(),
        ];
        let mut garbage = elf.clone();
        garbage[16..64].fill(0xFF);
        cases.push(garbage);
        for case in cases {
            match BinarySegmenter::default().segment(&case) {
                Ok(segs) => assert_accounts_for_every_byte(&case, &segs).unwrap(),
                Err(e) => assert!(matches!(e, PretokenizeError::Decode { .. }), "{e}"),
            }
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let e = BinarySegmenter::default()
            .segment(b"not an executable")
            .unwrap_err();
        assert!(matches!(e, PretokenizeError::Decode { .. }), "{e}");
    }
}
