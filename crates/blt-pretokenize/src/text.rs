//! Text: the whole document, its paragraphs or its lines, on bytes (invalid UTF-8 is kept as it
//! is: bytes are bytes), with an optional cap on a segment's length.

use crate::{Modality, Segment, Segmenter};

/// How text is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextSplit {
    /// One segment (the default: the entropy model sees the document's full context).
    #[default]
    Whole,
    /// Paragraphs: a paragraph ends after a run of two or more line breaks, which stay with it.
    Paragraphs,
    /// Lines: each line with its line break.
    Lines,
}

impl std::str::FromStr for TextSplit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "whole" => Ok(Self::Whole),
            "paragraphs" => Ok(Self::Paragraphs),
            "lines" => Ok(Self::Lines),
            _ => Err(format!("{s:?} is not one of whole, paragraphs, lines")),
        }
    }
}

/// Options of [`TextSegmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// How to split.
    pub split: TextSplit,
    /// Longer segments are cut into pieces of at most this many bytes (at a UTF-8 character
    /// boundary when there is one in the last 4 bytes). `None`: no cap.
    pub max_segment_bytes: Option<usize>,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            split: TextSplit::Whole,
            max_segment_bytes: None,
        }
    }
}

/// Splits text into segments that tile the document exactly.
///
/// ```
/// use blt_pretokenize::{Segmenter, TextOptions, TextSegmenter, TextSplit};
///
/// let doc = b"Title\n\nFirst paragraph,\nstill first.\n\n\nSecond.";
/// let seg = TextSegmenter::new(TextOptions { split: TextSplit::Paragraphs, ..Default::default() });
/// let parts: Vec<_> = seg.segment(doc).unwrap().iter().map(|s| s.bytes(doc).to_vec()).collect();
/// assert_eq!(parts, [&b"Title\n\n"[..], b"First paragraph,\nstill first.\n\n\n", b"Second."]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TextSegmenter {
    options: TextOptions,
}

impl TextSegmenter {
    /// A segmenter with these options.
    pub fn new(options: TextOptions) -> Self {
        Self { options }
    }
}

impl Segmenter for TextSegmenter {
    fn segment(&self, document: &[u8]) -> crate::Result<Vec<Segment>> {
        let (label, ends) = match self.options.split {
            TextSplit::Whole => ("document", vec![document.len()]),
            TextSplit::Paragraphs => ("paragraph", paragraph_ends(document)),
            TextSplit::Lines => ("line", line_ends(document)),
        };
        let mut segments = Vec::with_capacity(ends.len());
        let mut start = 0usize;
        let mut index = 0usize;
        for end in ends {
            for piece in cap_pieces(document, start..end, self.options.max_segment_bytes) {
                let bytes = &document[piece.clone()];
                segments.push(Segment {
                    modality: Modality::Text,
                    label: label.to_owned(),
                    byte_range: piece.start as u64..piece.end as u64,
                    source_id: None,
                    metadata: serde_json::json!({
                        "index": index,
                        "utf8": std::str::from_utf8(bytes).is_ok(),
                    }),
                    decoded: None,
                });
                index += 1;
            }
            start = end;
        }
        if segments.is_empty() {
            // an empty document is one empty segment, so that it still has a Branch
            segments.push(Segment {
                modality: Modality::Text,
                label: label.to_owned(),
                byte_range: 0..0,
                source_id: None,
                metadata: serde_json::json!({ "index": 0, "utf8": true }),
                decoded: None,
            });
        }
        Ok(segments)
    }
}

/// End offsets of lines (each line keeps its `\n`); the last line may lack one.
fn line_ends(document: &[u8]) -> Vec<usize> {
    let mut ends: Vec<usize> = document
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    if ends.last() != Some(&document.len()) && !document.is_empty() {
        ends.push(document.len());
    }
    ends
}

/// End offsets of paragraphs: after every run of line breaks (`\n` with optional `\r` and
/// other horizontal whitespace between them) holding at least two `\n`.
fn paragraph_ends(document: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut i = 0usize;
    while i < document.len() {
        if document[i] == b'\n' {
            let mut j = i;
            let mut newlines = 0;
            let mut last_newline = i;
            while j < document.len() && matches!(document[j], b'\n' | b'\r' | b' ' | b'\t') {
                if document[j] == b'\n' {
                    newlines += 1;
                    last_newline = j;
                }
                j += 1;
            }
            if newlines >= 2 {
                // the blank run ends with its last newline; indentation after it starts the next
                ends.push(last_newline + 1);
                i = last_newline + 1;
                continue;
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    if ends.last() != Some(&document.len()) && !document.is_empty() {
        ends.push(document.len());
    }
    ends
}

/// `range` cut into pieces of at most `cap` bytes, ending at a UTF-8 character boundary when
/// one is within the last 4 bytes of a piece.
fn cap_pieces(
    document: &[u8],
    range: std::ops::Range<usize>,
    cap: Option<usize>,
) -> Vec<std::ops::Range<usize>> {
    let Some(cap) = cap.filter(|&c| c > 0) else {
        return vec![range];
    };
    let mut pieces = Vec::new();
    let mut start = range.start;
    while range.end - start > cap {
        let mut end = start + cap;
        // back off over UTF-8 continuation bytes so a character is not cut (at most 3)
        let mut back = 0;
        while back < 3 && end - back > start + 1 && (document[end - back] & 0xC0) == 0x80 {
            back += 1;
        }
        if (document[end - back] & 0xC0) != 0x80 {
            end -= back;
        }
        pieces.push(start..end);
        start = end;
    }
    if start < range.end || pieces.is_empty() {
        pieces.push(start..range.end);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assert_accounts_for_every_byte;

    fn split(doc: &[u8], split: TextSplit, cap: Option<usize>) -> Vec<Vec<u8>> {
        let segs = TextSegmenter::new(TextOptions {
            split,
            max_segment_bytes: cap,
        })
        .segment(doc)
        .unwrap();
        assert_accounts_for_every_byte(doc, &segs).unwrap();
        segs.iter().map(|s| s.bytes(doc).to_vec()).collect()
    }

    #[test]
    fn every_mode_tiles_every_document() {
        let docs: [&[u8]; 7] = [
            b"",
            b"\n",
            b"\n\n\n",
            b"one line",
            b"a\r\n\r\nb\r\n",
            "héllo\n\n  wörld 😀\n\nend\n".as_bytes(),
            b"\xff\xfe\n\n\x80\x81 invalid utf-8\n",
        ];
        for doc in docs {
            for mode in [TextSplit::Whole, TextSplit::Paragraphs, TextSplit::Lines] {
                for cap in [None, Some(1), Some(3), Some(5)] {
                    let parts = split(doc, mode, cap);
                    assert_eq!(parts.concat(), doc, "{mode:?} {cap:?}");
                    if let Some(cap) = cap {
                        assert!(parts.iter().all(|p| p.len() <= cap), "{mode:?} {cap:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn lines_and_paragraphs() {
        assert_eq!(
            split(b"a\nb\n\nc", TextSplit::Lines, None),
            [&b"a\n"[..], b"b\n", b"\n", b"c"]
        );
        assert_eq!(
            split(b"a\nb\n \n  c\n\n", TextSplit::Paragraphs, None),
            [&b"a\nb\n \n"[..], b"  c\n\n"]
        );
        assert_eq!(split(b"", TextSplit::Lines, None), [b""]);
    }

    #[test]
    fn a_cap_does_not_cut_a_character_when_it_can_help_it() {
        let doc = "aé😀b".as_bytes(); // 1 + 2 + 4 + 1 bytes
        let parts = split(doc, TextSplit::Whole, Some(4));
        assert!(
            parts.iter().all(|p| std::str::from_utf8(p).is_ok()),
            "{parts:?}"
        );
        assert_eq!(parts.concat(), doc);
    }
}
