//! Turning the parts a parser recognises (code units, executable sections) into segments that
//! cover every byte of the document exactly once, and checking that a segmentation does so.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::{Modality, Segment};

/// A recognised part of a document: a byte range with a label and metadata.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub range: Range<u64>,
    pub label: String,
    pub metadata: serde_json::Value,
}

/// Segments covering `0..len` exactly once: each part (clipped to the document, and to what no
/// earlier part already covers) becomes a segment, and every stretch no part covers becomes a
/// `gap` segment labelled `gap_label`. Parts are taken in order of their start; a part wholly
/// inside earlier ones is dropped (its range is covered) and counted in the gap metadata of
/// nothing: the caller records overlaps if it cares.
pub(crate) fn cover(
    len: u64,
    mut parts: Vec<Part>,
    modality: Modality,
    gap_label: &str,
    gap_metadata: &serde_json::Value,
) -> Vec<Segment> {
    parts.sort_by_key(|p| (p.range.start, p.range.end));
    let mut segments = Vec::with_capacity(parts.len() * 2 + 1);
    let mut pos = 0u64;
    let gap = |range: Range<u64>| Segment {
        modality,
        label: gap_label.to_owned(),
        byte_range: range,
        source_id: None,
        metadata: gap_metadata.clone(),
        decoded: None,
    };
    for part in parts {
        let end = part.range.end.min(len);
        let start = part.range.start.max(pos);
        if start >= end {
            continue;
        }
        if start > pos {
            segments.push(gap(pos..start));
        }
        segments.push(Segment {
            modality,
            label: part.label,
            byte_range: start..end,
            source_id: None,
            metadata: part.metadata,
            decoded: None,
        });
        pos = end;
    }
    if pos < len {
        segments.push(gap(pos..len));
    }
    segments
}

/// The id shared by every view of one source: `sha256:` and the first 16 hex digits of the
/// SHA-256 of its bytes (deterministic: the same bytes always give the same id).
pub fn source_id(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Checks the byte-accounting rule of this crate and says what breaks it.
///
/// Every byte of `document` is either in exactly one segment without decoded content (raw
/// segments appear in document order and never overlap), or inside the range of a segment with
/// decoded content: a documented transformation (pixels, samples, extracted text) of that range.
/// Every range must lie inside the document. Returns `Err` describing the first violation; the
/// tests of every segmenter call this.
pub fn assert_accounts_for_every_byte(
    document: &[u8],
    segments: &[Segment],
) -> std::result::Result<(), String> {
    let len = document.len() as u64;
    let mut decoded: Vec<Range<u64>> = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let r = &s.byte_range;
        if r.start > r.end || r.end > len {
            return Err(format!(
                "segment {i} ({}) range {r:?} is outside 0..{len}",
                s.label
            ));
        }
        if s.decoded.is_some() {
            decoded.push(r.clone());
        }
    }
    decoded.sort_by_key(|r| r.start);
    let covered_by_views = |hole: Range<u64>| {
        let mut pos = hole.start;
        for r in &decoded {
            if r.start <= pos && r.end > pos {
                pos = r.end;
            }
            if pos >= hole.end {
                return true;
            }
        }
        pos >= hole.end
    };
    let mut pos = 0u64;
    for (i, s) in segments.iter().enumerate() {
        let r = &s.byte_range;
        if s.decoded.is_some() {
            continue;
        }
        if r.start < pos {
            return Err(format!(
                "segment {i} ({}) starts at {} inside the previous raw segment (which ends at {pos})",
                s.label, r.start
            ));
        }
        if r.start == r.end && len > 0 {
            return Err(format!("segment {i} ({}) is empty", s.label));
        }
        if r.start > pos && !covered_by_views(pos..r.start) {
            return Err(format!("bytes {pos}..{} are in no segment", r.start));
        }
        pos = r.end;
    }
    if pos < len && !covered_by_views(pos..len) {
        return Err(format!("bytes {pos}..{len} are in no segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(range: Range<u64>) -> Part {
        Part {
            range,
            label: "part".into(),
            metadata: serde_json::json!({}),
        }
    }

    #[test]
    fn cover_fills_gaps_clips_overlaps_and_out_of_range_parts() {
        let doc = [0u8; 20];
        let segs = cover(
            20,
            vec![
                part(12..30),
                part(2..5),
                part(3..8),
                part(4..6),
                part(25..40),
            ],
            Modality::Binary,
            "gap",
            &serde_json::json!({}),
        );
        let ranges: Vec<_> = segs.iter().map(|s| s.byte_range.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..5, 5..8, 8..12, 12..20]);
        let labels: Vec<_> = segs.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["gap", "part", "part", "gap", "part"]);
        assert_accounts_for_every_byte(&doc, &segs).unwrap();
    }

    #[test]
    fn accounting_check_catches_holes_overlaps_and_bad_ranges() {
        let doc = [0u8; 10];
        let raw = |r: Range<u64>| Segment {
            modality: Modality::Binary,
            label: "x".into(),
            byte_range: r,
            source_id: None,
            metadata: serde_json::json!({}),
            decoded: None,
        };
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..4), raw(5..10)]).is_err());
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..6), raw(5..10)]).is_err());
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..4)]).is_err());
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..11)]).is_err());
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..4), raw(4..10)]).is_ok());
        let mut view = raw(0..10);
        view.decoded = Some(b"text".to_vec());
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..10), view.clone()]).is_ok());
        // bytes decoded into a view are accounted for by it
        assert!(assert_accounts_for_every_byte(&doc, &[view.clone()]).is_ok());
        assert!(assert_accounts_for_every_byte(&doc, &[raw(0..2), view]).is_ok());
        assert!(assert_accounts_for_every_byte(&[], &[raw(0..0)]).is_ok());
        assert_eq!(source_id(b"abc"), source_id(b"abc"));
        assert_ne!(source_id(b"abc"), source_id(b"abd"));
    }
}
