//! Text: the whole document, its paragraphs, its lines, or groups of a Hugging Face pre-tokenizer's
//! pre-tokens, on bytes (invalid UTF-8 is kept as it is: bytes are bytes), with an optional cap on
//! a segment's length.

use std::ops::Range;

use crate::hf_pretokenizer::{pieces, PieceKind};
use crate::{HfPreTokenizer, Modality, PretokenizeError, Segment, Segmenter};

/// How text is split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TextSplit {
    /// One segment (the default: the entropy model sees the document's full context).
    #[default]
    Whole,
    /// Paragraphs: a paragraph ends after a run of two or more line breaks, which stay with it.
    Paragraphs,
    /// Lines: each line with its line break.
    Lines,
    /// Groups of [`TextOptions::pretokens_per_segment`] pre-tokens of a Hugging Face
    /// pre-tokenizer (their original byte ranges, with the gaps between them); the bytes between
    /// groups that no pre-token covers are `gap` segments, invalid UTF-8 runs `invalid_utf8`
    /// segments (see [`HfPreTokenizer`]).
    PreTokenizer(HfPreTokenizer),
}

impl std::str::FromStr for TextSplit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "whole" => Ok(Self::Whole),
            "paragraphs" => Ok(Self::Paragraphs),
            "lines" => Ok(Self::Lines),
            "pretokenizer" => {
                Err("pretokenizer needs a pre-tokenizer file (TextSplit::PreTokenizer)".to_string())
            }
            _ => Err(format!(
                "{s:?} is not one of whole, paragraphs, lines, pretokenizer"
            )),
        }
    }
}

/// Pre-tokens per segment with [`TextSplit::PreTokenizer`] by default: about 300 bytes of
/// English (a pre-token is a word, ~5 bytes with its space). Each segment is one sequence for the
/// entropy model (`BOS + bytes + EOS`), so single words would have no context and every segment
/// would pay two special tokens for a handful of bytes; 64 words keep a sentence or a few together
/// while still cutting only at pre-token boundaries.
pub const DEFAULT_PRETOKENS_PER_SEGMENT: usize = 64;

/// Default of [`TextOptions::max_segments`]: 1 048 576 segments. A segment costs some hundreds of
/// bytes of bookkeeping (label, range, metadata) whatever its length, so a document of line breaks
/// split into lines, or any document under a 1-byte cap, would otherwise cost that much per byte.
pub const DEFAULT_MAX_TEXT_SEGMENTS: usize = 1 << 20;

/// Options of [`TextSegmenter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOptions {
    /// How to split.
    pub split: TextSplit,
    /// Longer segments are cut into pieces of at most this many bytes (at a UTF-8 character
    /// boundary when there is one in the last 4 bytes). `None`: no cap.
    pub max_segment_bytes: Option<usize>,
    /// With [`TextSplit::PreTokenizer`]: pre-tokens per segment (1: every pre-token and every
    /// gap is a segment of its own; 0 counts as 1). Default: [`DEFAULT_PRETOKENS_PER_SEGMENT`].
    pub pretokens_per_segment: usize,
    /// The most segments one document may give (after the `max_segment_bytes` cap); past it the
    /// document is refused with [`PretokenizeError::LimitExceeded`]
    /// (`option = "text.max_segments"`, `actual` the exact count, found without building the
    /// segments). 0 counts as 1. Default: [`DEFAULT_MAX_TEXT_SEGMENTS`].
    pub max_segments: usize,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            split: TextSplit::Whole,
            max_segment_bytes: None,
            pretokens_per_segment: DEFAULT_PRETOKENS_PER_SEGMENT,
            max_segments: DEFAULT_MAX_TEXT_SEGMENTS,
        }
    }
}

/// Splits text into segments that tile the document exactly. A [`TextSplit::PreTokenizer`] can
/// fail ([`PretokenizeError::PreTokenizerFailed`]), and a document that would give more than
/// [`TextOptions::max_segments`] segments is a [`PretokenizeError::LimitExceeded`].
///
/// ```
/// use blt_pretokenize::{Segmenter, TextOptions, TextSegmenter, TextSplit};
///
/// let doc = b"Title\n\nFirst paragraph,\nstill first.\n\n\nSecond.";
/// let seg = TextSegmenter::new(TextOptions { split: TextSplit::Paragraphs, ..Default::default() });
/// let parts: Vec<_> = seg.segment(doc).unwrap().iter().map(|s| s.bytes(doc).to_vec()).collect();
/// assert_eq!(parts, [&b"Title\n\n"[..], b"First paragraph,\nstill first.\n\n\n", b"Second."]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TextSegmenter {
    options: TextOptions,
}

impl TextSegmenter {
    /// A segmenter with these options.
    pub fn new(options: TextOptions) -> Self {
        Self { options }
    }
}

/// A piece of the document before the length cap: its label, range and pre-token count.
type Piece = (&'static str, Range<usize>, Option<usize>);

impl Segmenter for TextSegmenter {
    fn segment(&self, document: &[u8]) -> crate::Result<Vec<Segment>> {
        // Pieces are produced lazily, so that a document asking for too many segments is
        // refused without a range, let alone a segment, being held for each.
        let (empty_label, pieces) = match &self.options.split {
            TextSplit::Whole => (
                "document",
                ranged("document", std::iter::once(document.len())),
            ),
            TextSplit::Paragraphs => ("paragraph", ranged("paragraph", paragraph_ends(document))),
            TextSplit::Lines => ("line", ranged("line", line_ends(document))),
            TextSplit::PreTokenizer(pre) => (
                "pretokens",
                Box::new(
                    pieces(pre, document, self.options.pretokens_per_segment)?
                        .into_iter()
                        .map(|(kind, range)| match kind {
                            PieceKind::PreTokens(n) => ("pretokens", range, Some(n)),
                            PieceKind::Gap => ("gap", range, None),
                            PieceKind::InvalidUtf8 => ("invalid_utf8", range, None),
                        }),
                ) as Box<dyn Iterator<Item = Piece> + '_>,
            ),
        };
        let cap = self.options.max_segment_bytes;
        let max = self.options.max_segments.max(1);
        let mut capped = pieces.flat_map(|(label, range, pretokens)| {
            cap_pieces(document, range, cap).map(move |piece| (label, piece, pretokens))
        });
        let mut segments = Vec::new();
        while let Some((label, piece, pretokens)) = capped.next() {
            if segments.len() == max {
                return Err(PretokenizeError::LimitExceeded {
                    what: format!("text segments ({label} split)"),
                    limit: max as u64,
                    actual: (max as u64) + 1 + capped.count() as u64,
                    option: "text.max_segments",
                });
            }
            let bytes = &document[piece.clone()];
            let mut metadata = serde_json::json!({
                "index": segments.len(),
                "utf8": std::str::from_utf8(bytes).is_ok(),
            });
            if let Some(n) = pretokens {
                metadata["pretokens"] = n.into();
            }
            segments.push(Segment {
                modality: Modality::Text,
                label: label.to_owned(),
                byte_range: piece.start as u64..piece.end as u64,
                source_id: None,
                metadata,
                decoded: None,
            });
        }
        if segments.is_empty() {
            // an empty document is one empty segment, so that it still has a Branch
            segments.push(Segment {
                modality: Modality::Text,
                label: empty_label.to_owned(),
                byte_range: 0..0,
                source_id: None,
                metadata: serde_json::json!({ "index": 0, "utf8": true }),
                decoded: None,
            });
        }
        Ok(segments)
    }
}

/// Consecutive pieces labelled `label` ending at each of `ends`, the first starting at 0.
fn ranged<'a>(
    label: &'static str,
    ends: impl Iterator<Item = usize> + 'a,
) -> Box<dyn Iterator<Item = Piece> + 'a> {
    let mut start = 0;
    Box::new(ends.map(move |end| {
        let piece = (label, start..end, None);
        start = end;
        piece
    }))
}

/// End offsets of lines (each line keeps its `\n`); the last line may lack one.
fn line_ends(document: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let unterminated = document.last().is_some_and(|&b| b != b'\n');
    document
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .chain(unterminated.then_some(document.len()))
}

/// End offsets of paragraphs: after every run of line breaks (`\n` with optional `\r` and
/// other horizontal whitespace between them) holding at least two `\n`.
fn paragraph_ends(document: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut i = 0usize;
    let mut last_end: Option<usize> = None;
    let mut finished = false;
    std::iter::from_fn(move || {
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
                    // the blank run ends with its last newline; indentation after it starts the
                    // next paragraph
                    i = last_newline + 1;
                    last_end = Some(i);
                    return Some(i);
                }
                i = j.max(i + 1);
            } else {
                i += 1;
            }
        }
        if finished {
            return None;
        }
        finished = true;
        (!document.is_empty() && last_end != Some(document.len())).then_some(document.len())
    })
}

/// `range` cut into pieces of at most `cap` bytes, ending at a UTF-8 character boundary when
/// one is within the last 4 bytes of a piece. An empty range is one empty piece.
fn cap_pieces(
    document: &[u8],
    range: Range<usize>,
    cap: Option<usize>,
) -> impl Iterator<Item = Range<usize>> + '_ {
    // no cap (or 0): the range itself
    let cap = cap.filter(|&c| c > 0).unwrap_or(usize::MAX);
    let mut start = range.start;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if range.end - start > cap {
            let mut end = start + cap;
            // back off over UTF-8 continuation bytes so a character is not cut (at most 3)
            let mut back = 0;
            while back < 3 && end - back > start + 1 && (document[end - back] & 0xC0) == 0x80 {
                back += 1;
            }
            if (document[end - back] & 0xC0) != 0x80 {
                end -= back;
            }
            let piece = start..end;
            start = end;
            return Some(piece);
        }
        done = true;
        // the rest (or the empty range) is the last piece
        Some(start..range.end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{assert_accounts_for_every_byte, PretokenizeError};

    fn split(doc: &[u8], split: TextSplit, cap: Option<usize>) -> Vec<Vec<u8>> {
        let segs = TextSegmenter::new(TextOptions {
            split,
            max_segment_bytes: cap,
            ..Default::default()
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
                    let parts = split(doc, mode.clone(), cap);
                    assert_eq!(parts.concat(), doc, "{mode:?} {cap:?}");
                    if let Some(cap) = cap {
                        assert!(parts.iter().all(|p| p.len() <= cap), "{mode:?} {cap:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn too_many_segments_are_refused_with_the_exact_count() {
        let count = |doc: &[u8], split: TextSplit, cap: Option<usize>, max: usize| {
            TextSegmenter::new(TextOptions {
                split,
                max_segment_bytes: cap,
                max_segments: max,
                ..Default::default()
            })
            .segment(doc)
        };
        let newlines = vec![b'\n'; 10_000];
        let words = "w ".repeat(3000);
        let short_lines = b"ab\n".repeat(2000);
        let paragraphs = b"p\n\n".repeat(3000);
        let cases: [(&[u8], TextSplit, Option<usize>, u64); 5] = [
            // one segment per byte
            (&newlines, TextSplit::Lines, None, 10_000),
            (&newlines, TextSplit::Whole, Some(1), 10_000),
            // a 1-byte cap applies after the split: 2 pieces per line
            (&short_lines, TextSplit::Lines, Some(2), 4000),
            (&paragraphs, TextSplit::Paragraphs, None, 3000),
            (
                words.as_bytes(),
                pre_tokenizer(WHITESPACE),
                None,
                // 3000 words in groups of 64: 47 groups, the 46 gaps between them and the
                // trailing space
                94,
            ),
        ];
        for (doc, split, cap, segments) in cases {
            let max = segments as usize - 1;
            match count(doc, split.clone(), cap, max) {
                Err(PretokenizeError::LimitExceeded {
                    limit,
                    actual,
                    option,
                    ..
                }) => {
                    assert_eq!(option, "text.max_segments");
                    assert_eq!((limit, actual), (max as u64, segments), "{split:?} {cap:?}");
                }
                other => panic!("{split:?} {cap:?}: {other:?}"),
            }
            // exactly at the limit: fine, and the same segments as without a limit
            let at = count(doc, split.clone(), cap, max + 1).unwrap();
            assert_eq!(at.len() as u64, segments);
            assert_accounts_for_every_byte(doc, &at).unwrap();
            assert_eq!(at, count(doc, split, cap, usize::MAX).unwrap());
        }
        // An empty document still gives its one empty segment, even with a limit of 0.
        assert_eq!(count(b"", TextSplit::Lines, None, 0).unwrap().len(), 1);
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

    fn pre_tokenizer(json: &str) -> TextSplit {
        TextSplit::PreTokenizer(HfPreTokenizer::from_json(json, "test.json").unwrap())
    }

    fn pretokenized(doc: &[u8], json: &str, per_segment: usize) -> Vec<(String, Vec<u8>)> {
        let segs = TextSegmenter::new(TextOptions {
            split: pre_tokenizer(json),
            pretokens_per_segment: per_segment,
            ..Default::default()
        })
        .segment(doc)
        .unwrap();
        assert_accounts_for_every_byte(doc, &segs).unwrap();
        segs.iter()
            .map(|s| (s.label.clone(), s.bytes(doc).to_vec()))
            .collect()
    }

    const WHITESPACE: &str = r#"{"type": "Whitespace"}"#;
    const BYTE_LEVEL: &str = r#"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#;
    const METASPACE: &str =
        r#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"#;
    const SEQUENCE: &str = r#"{"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\n+"}, "behavior": "Isolated", "invert": false},
        {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Digits", "individual_digits": true}]}"#;

    #[test]
    fn every_hf_pre_tokenizer_tiles_every_document() {
        let docs: [&[u8]; 8] = [
            b"",
            b" ",
            b"one",
            b"  Hello,  world!\n\n 2024 \t",
            "héllo wörld 😀 — end.\r\n".as_bytes(),
            b"\xff\xfe\x80 invalid \xc3 utf-8 \xe2\x82",
            b"\n\n\n",
            b"fn main() { println!(\"{}\", 1+2); }",
        ];
        for json in [WHITESPACE, BYTE_LEVEL, METASPACE, SEQUENCE] {
            for doc in docs {
                for per in [0, 1, 2, 64] {
                    for cap in [None, Some(3)] {
                        let segs = TextSegmenter::new(TextOptions {
                            split: pre_tokenizer(json),
                            pretokens_per_segment: per,
                            max_segment_bytes: cap,
                            ..Default::default()
                        })
                        .segment(doc)
                        .unwrap();
                        assert_accounts_for_every_byte(doc, &segs).unwrap();
                        let parts: Vec<_> = segs.iter().map(|s| s.bytes(doc)).collect();
                        assert_eq!(parts.concat(), doc, "{json} {per} {cap:?}");
                        assert!(segs.iter().all(|s| s.decoded.is_none()));
                    }
                }
            }
        }
    }

    #[test]
    fn whitespace_drops_become_gap_segments() {
        let got = pretokenized(b"  Hello,  world!\n", WHITESPACE, 1);
        let want = [
            ("gap", &b"  "[..]),
            ("pretokens", b"Hello"),
            ("pretokens", b","),
            ("gap", b"  "),
            ("pretokens", b"world"),
            ("pretokens", b"!"),
            ("gap", b"\n"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(l, b)| (l.to_string(), b.to_vec()))
            .collect();
        assert_eq!(got, want);
        // groups of 2: the gap inside a group stays in it, the one between groups does not
        let got = pretokenized(b"a b c d e", WHITESPACE, 2);
        let labels: Vec<_> = got
            .iter()
            .map(|(l, b)| (l.as_str(), b.as_slice()))
            .collect();
        assert_eq!(
            labels,
            [
                ("pretokens", &b"a b"[..]),
                ("gap", b" "),
                ("pretokens", b"c d"),
                ("gap", b" "),
                ("pretokens", b"e"),
            ]
        );
    }

    #[test]
    fn byte_level_and_metaspace_keep_the_original_bytes() {
        // ByteLevel's pre-tokens carry their leading space: no gaps at all
        let got = pretokenized("héllo wörld".as_bytes(), BYTE_LEVEL, 1);
        let parts: Vec<_> = got
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b))
            .collect();
        assert_eq!(parts, ["héllo", " wörld"]);
        assert!(got.iter().all(|(l, _)| l == "pretokens"));
        // Metaspace sees ▁ where the text has a space; the segments hold the space
        let got = pretokenized(b"a bc", METASPACE, 1);
        let parts: Vec<_> = got
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b))
            .collect();
        assert_eq!(parts, ["a", " bc"]);
    }

    #[test]
    fn invalid_utf8_runs_are_segments_of_their_own() {
        let doc = b"ab \xff\xfe\x80cd";
        let segs = TextSegmenter::new(TextOptions {
            split: pre_tokenizer(WHITESPACE),
            ..Default::default()
        })
        .segment(doc)
        .unwrap();
        assert_accounts_for_every_byte(doc, &segs).unwrap();
        let got: Vec<_> = segs
            .iter()
            .map(|s| (s.label.as_str(), s.bytes(doc), s.metadata["utf8"].as_bool()))
            .collect();
        assert_eq!(
            got,
            [
                ("pretokens", &b"ab"[..], Some(true)),
                ("gap", b" ", Some(true)),
                ("invalid_utf8", b"\xff\xfe\x80", Some(false)),
                ("pretokens", b"cd", Some(true)),
            ]
        );
        assert_eq!(segs[0].metadata["pretokens"], 1);
    }
}
