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
    /// A file with more sections (over all architectures; `ar` members count as sections) than
    /// this is refused with [`PretokenizeError::LimitExceeded`]
    /// (`option = "binary.max_sections"`), counted before their segments are built.
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
        let max = self.options.max_sections;
        let parsed = std::panic::catch_unwind(|| parts_of(document, max))
            .map_err(|_| decode_error("executable", "the parser panicked on this input"))?;
        let (format, parts) = parsed?;
        Ok(cover(
            document.len() as u64,
            parts,
            Modality::Binary,
            "gap",
            &json!({ "format": format, "kind": "between sections" }),
        ))
    }
}

/// The sections found so far, refusing one past `max` before its label and metadata are built.
struct Parts {
    parts: Vec<Part>,
    max: usize,
    format: &'static str,
}

impl Parts {
    fn new(format: &'static str, max: usize) -> Self {
        Self {
            parts: Vec::new(),
            max,
            format,
        }
    }

    /// Room for `more` sections, or [`PretokenizeError::LimitExceeded`] (`actual` is the count
    /// reached, a lower bound when the file is not counted to its end).
    fn reserve(&self, more: usize) -> crate::Result<()> {
        let wanted = self.parts.len().saturating_add(more);
        if wanted > self.max {
            return Err(PretokenizeError::LimitExceeded {
                what: format!("{} sections", self.format),
                limit: self.max as u64,
                actual: wanted as u64,
                option: "binary.max_sections",
            });
        }
        Ok(())
    }

    fn push(&mut self, part: impl FnOnce() -> Part) -> crate::Result<()> {
        self.reserve(1)?;
        self.parts.push(part());
        Ok(())
    }
}

fn parts_of(document: &[u8], max: usize) -> crate::Result<(&'static str, Vec<Part>)> {
    match Object::parse(document).map_err(|e| decode_error("executable", e))? {
        Object::Elf(elf) => {
            let with_bytes = |sh: &&goblin::elf::SectionHeader| {
                sh.sh_type != goblin::elf::section_header::SHT_NOBITS && sh.sh_size != 0
            };
            let mut parts = Parts::new("elf", max);
            parts.reserve(elf.section_headers.iter().filter(with_bytes).count())?;
            for sh in elf.section_headers.iter().filter(with_bytes) {
                let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
                parts.push(|| Part {
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
                })?;
            }
            Ok(("elf", parts.parts))
        }
        Object::PE(pe) => {
            let mut parts = Parts::new("pe", max);
            parts.reserve(pe.sections.len())?;
            for s in &pe.sections {
                let name = s.name().unwrap_or("").to_owned();
                let start = u64::from(s.pointer_to_raw_data);
                parts.push(|| Part {
                    range: start..start + u64::from(s.size_of_raw_data),
                    label: format!("section {name}"),
                    metadata: json!({
                        "format": "pe",
                        "section": name,
                        "virtual_address": s.virtual_address,
                        "virtual_size": s.virtual_size,
                        "characteristics": s.characteristics,
                    }),
                })?;
            }
            Ok(("pe", parts.parts))
        }
        Object::COFF(coff) => {
            let mut parts = Parts::new("coff", max);
            parts.reserve(coff.sections.len())?;
            for s in &coff.sections {
                let name = s.name().unwrap_or("").to_owned();
                let start = u64::from(s.pointer_to_raw_data);
                parts.push(|| Part {
                    range: start..start + u64::from(s.size_of_raw_data),
                    label: format!("section {name}"),
                    metadata: json!({ "format": "coff", "section": name }),
                })?;
            }
            Ok(("coff", parts.parts))
        }
        Object::Mach(Mach::Binary(macho)) => {
            let mut parts = Parts::new("macho", max);
            macho_parts(&macho, 0, None, &mut parts)?;
            Ok(("macho", parts.parts))
        }
        Object::Mach(Mach::Fat(fat)) => {
            let arches = fat.arches().map_err(|e| decode_error("macho-fat", e))?;
            let mut parts = Parts::new("macho-fat", max);
            for (i, arch) in arches.iter().enumerate() {
                let base = u64::from(arch.offset);
                match fat.get(i) {
                    Ok(SingleArch::MachO(macho)) => {
                        macho_parts(&macho, base, Some(arch.cputype), &mut parts)?;
                    }
                    Ok(SingleArch::Archive(archive)) => {
                        archive_parts(&archive, base, &mut parts)?;
                    }
                    Err(e) => {
                        // one unreadable architecture: its bytes stay one segment
                        tracing::debug!("fat Mach-O architecture {i}: {e}");
                        parts.push(|| Part {
                            range: base..base + u64::from(arch.size),
                            label: format!("architecture {i}"),
                            metadata: json!({
                                "format": "macho-fat",
                                "cputype": arch.cputype,
                                "error": e.to_string(),
                            }),
                        })?;
                    }
                }
            }
            Ok(("macho-fat", parts.parts))
        }
        Object::Archive(archive) => {
            let mut parts = Parts::new("ar", max);
            archive_parts(&archive, 0, &mut parts)?;
            Ok(("ar", parts.parts))
        }
        Object::TE(_) => Err(decode_error("te", "TE images are not segmented")),
        Object::Unknown(magic) => Err(decode_error(
            "executable",
            format!("unknown magic {magic:#x}"),
        )),
        _ => Err(decode_error("executable", "unsupported object kind")),
    }
}

fn macho_parts(
    macho: &goblin::mach::MachO<'_>,
    base: u64,
    cputype: Option<u32>,
    parts: &mut Parts,
) -> crate::Result<()> {
    const ZEROFILL: [u32; 3] = [0x01, 0x0C, 0x12]; // S_ZEROFILL, S_GB_ZEROFILL, S_THREAD_LOCAL_ZEROFILL
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
            parts.push(|| Part {
                range: start..start.saturating_add(section.size),
                label: format!("section {seg},{name}"),
                metadata: json!({
                    "format": "macho",
                    "segment": seg,
                    "section": name,
                    "address": section.addr,
                    "cputype": cputype,
                }),
            })?;
        }
    }
    Ok(())
}

fn archive_parts(
    archive: &goblin::archive::Archive<'_>,
    base: u64,
    parts: &mut Parts,
) -> crate::Result<()> {
    parts.reserve(archive.len())?;
    for name in archive.members() {
        let Some(member) = archive.get(name) else {
            continue;
        };
        let start = base + member.offset;
        parts.push(|| Part {
            range: start..start + member.size() as u64,
            label: format!("member {name}"),
            metadata: json!({ "format": "ar", "member": name }),
        })?;
    }
    Ok(())
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
    fn too_many_sections_are_refused_before_their_segments_are_built() {
        let Some(elf) = system_elf() else {
            panic!("no /bin/ls on this machine");
        };
        let all = BinarySegmenter::default().segment(&elf).unwrap();
        let sections = all
            .iter()
            .filter(|s| s.label.starts_with("section "))
            .count();
        assert!(sections > 3, "{sections}");
        let err = BinarySegmenter::new(BinaryOptions { max_sections: 3 })
            .segment(&elf)
            .unwrap_err();
        match err {
            PretokenizeError::LimitExceeded {
                limit,
                actual,
                option,
                ..
            } => {
                assert_eq!((limit, option), (3, "binary.max_sections"));
                assert_eq!(actual, sections as u64);
            }
            other => panic!("{other:?}"),
        }
        let at_the_limit = BinarySegmenter::new(BinaryOptions {
            max_sections: sections,
        })
        .segment(&elf)
        .unwrap();
        assert_eq!(at_the_limit, all);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let e = BinarySegmenter::default()
            .segment(b"not an executable")
            .unwrap_err();
        assert!(matches!(e, PretokenizeError::Decode { .. }), "{e}");
    }
}
