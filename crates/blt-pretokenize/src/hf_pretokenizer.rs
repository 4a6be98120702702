//! A Hugging Face `tokenizers` pre-tokenizer (from a `tokenizer.json` or a bare pre-tokenizer
//! JSON) as a text splitter: its pre-tokens' byte ranges in the original document, and every
//! byte no pre-token covers as a gap of its own.
//!
//! # Byte accounting
//!
//! Pre-tokenizers may rewrite what they split (`ByteLevel` maps bytes to printable characters,
//! `Metaspace` turns spaces into `▁` and may prepend one) and may drop bytes (`Whitespace` drops
//! the whitespace). Only their **offsets into the original text** are used here, so segments are
//! always byte ranges of the document itself (`decoded = None`), and they tile it:
//!
//! - pre-token ranges are sorted and clipped so that no byte is in two of them (a prepended `▁`
//!   has an empty range and disappears);
//! - every run of bytes between pre-tokens (dropped whitespace, a gap before the first or after the
//!   last) is a `gap` segment;
//! - **invalid UTF-8**: pre-tokenizers work on `str`, so the document is cut into maximal valid
//!   UTF-8 runs, each pre-tokenized on its own, and each maximal run of invalid bytes is an
//!   `invalid_utf8` segment. A pre-token never spans invalid bytes.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};

use crate::{PretokenizeError, Result};

/// A loaded Hugging Face pre-tokenizer (any `PreTokenizerWrapper` that `tokenizers` 0.22 reads:
/// `Whitespace`, `WhitespaceSplit`, `ByteLevel`, `Metaspace`, `BertPreTokenizer`, `Split`,
/// `Punctuation`, `Digits`, `Sequence`, …).
///
/// ```
/// use blt_pretokenize::HfPreTokenizer;
///
/// let pre = HfPreTokenizer::from_json(r#"{"type": "Whitespace"}"#, "inline.json").unwrap();
/// assert_eq!(pre.pre_token_ranges("Hi  there!").unwrap(), [0..2, 4..9, 9..10]);
/// ```
#[derive(Clone)]
pub struct HfPreTokenizer {
    path: PathBuf,
    json: String,
    inner: Arc<tokenizers::PreTokenizerWrapper>,
}

impl fmt::Debug for HfPreTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfPreTokenizer")
            .field("path", &self.path)
            .field("json", &self.json)
            .finish()
    }
}

/// Two pre-tokenizers are equal when they come from the same path with the same JSON.
impl PartialEq for HfPreTokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.json == other.json
    }
}

impl Eq for HfPreTokenizer {}

impl HfPreTokenizer {
    /// Reads `path`: a `tokenizer.json` (its `pre_tokenizer` section is used) or a bare
    /// pre-tokenizer JSON (an object with a `type`). A missing file, invalid JSON, a tokenizer
    /// without a pre-tokenizer (`"pre_tokenizer": null`) or an unknown pre-tokenizer is a
    /// [`PretokenizeError::PreTokenizerFile`] naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| PretokenizeError::PreTokenizerFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Self::from_json(&text, path)
    }

    /// Parses `json` (a `tokenizer.json` or a bare pre-tokenizer), naming it `path` in errors.
    pub fn from_json(json: &str, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let error = |reason: String| PretokenizeError::PreTokenizerFile {
            path: path.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| error(format!("not JSON: {e}")))?;
        let section = match value.get("pre_tokenizer") {
            Some(serde_json::Value::Null) => {
                return Err(error(
                    "its `pre_tokenizer` is null (this tokenizer does not pre-tokenize)".into(),
                ))
            }
            Some(section) => section.clone(),
            None if value.get("type").is_some() => value,
            None => {
                return Err(error(
                    "neither a tokenizer.json (no `pre_tokenizer` key) nor a pre-tokenizer \
                     (no `type` key)"
                        .into(),
                ))
            }
        };
        let json = section.to_string();
        let inner: tokenizers::PreTokenizerWrapper = serde_json::from_value(section)
            .map_err(|e| error(format!("not a pre-tokenizer `tokenizers` understands: {e}")))?;
        Ok(Self {
            path,
            json,
            inner: Arc::new(inner),
        })
    }

    /// The file it was read from (or the name given to [`from_json`](Self::from_json)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pre-tokenizer's JSON (the `pre_tokenizer` section of a `tokenizer.json`).
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The byte ranges of `text`'s pre-tokens in `text` itself, in order, not overlapping, none
    /// empty (bytes a pre-tokenizer drops are in none of them). A failure inside the
    /// pre-tokenizer (e.g. a `Split` regex hitting its backtracking limit) is a
    /// [`PretokenizeError::PreTokenizerFailed`].
    pub fn pre_token_ranges(&self, text: &str) -> Result<Vec<Range<usize>>> {
        let mut pre_tokenized = PreTokenizedString::from(text);
        self.inner.pre_tokenize(&mut pre_tokenized).map_err(|e| {
            PretokenizeError::PreTokenizerFailed {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        })?;
        let mut ranges: Vec<Range<usize>> = pre_tokenized
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(_, (start, end), _)| start..end)
            .collect();
        ranges.sort_by_key(|r| r.start);
        let mut out = Vec::with_capacity(ranges.len());
        let mut covered = 0usize;
        for r in ranges {
            let start = r.start.max(covered);
            let end = r.end.min(text.len());
            if end > start {
                out.push(start..end);
                covered = end;
            }
        }
        Ok(out)
    }
}

/// What a piece of a pre-tokenized document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceKind {
    /// This many pre-tokens and the gaps between them.
    PreTokens(usize),
    /// Bytes between pre-tokens that no pre-token covers.
    Gap,
    /// A maximal run of bytes that are not valid UTF-8.
    InvalidUtf8,
}

/// `document` cut into pieces that tile it: groups of `per_group` pre-tokens (the gaps inside a
/// group stay in it), the gaps between groups, and the invalid UTF-8 runs (see the module docs).
pub(crate) fn pieces(
    pre: &HfPreTokenizer,
    document: &[u8],
    per_group: usize,
) -> Result<Vec<(PieceKind, Range<usize>)>> {
    let per_group = per_group.max(1);
    let mut pieces: Vec<(PieceKind, Range<usize>)> = Vec::new();
    let mut pos = 0usize;
    for chunk in document.utf8_chunks() {
        let valid = chunk.valid();
        if !valid.is_empty() {
            let base = pos;
            let mut cursor = 0usize;
            for group in pre.pre_token_ranges(valid)?.chunks(per_group) {
                let (start, end) = (group[0].start, group[group.len() - 1].end);
                if start > cursor {
                    pieces.push((PieceKind::Gap, base + cursor..base + start));
                }
                pieces.push((PieceKind::PreTokens(group.len()), base + start..base + end));
                cursor = end;
            }
            if cursor < valid.len() {
                pieces.push((PieceKind::Gap, base + cursor..base + valid.len()));
            }
            pos += valid.len();
        }
        let invalid = chunk.invalid();
        if !invalid.is_empty() {
            match pieces.last_mut() {
                // `utf8_chunks` gives one invalid sequence at a time: merge a run
                Some((PieceKind::InvalidUtf8, run)) if run.end == pos => run.end += invalid.len(),
                _ => pieces.push((PieceKind::InvalidUtf8, pos..pos + invalid.len())),
            }
            pos += invalid.len();
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> HfPreTokenizer {
        HfPreTokenizer::from_json(json, "test.json").unwrap()
    }

    fn texts<'a>(doc: &'a str, ranges: &[Range<usize>]) -> Vec<&'a str> {
        ranges.iter().map(|r| &doc[r.clone()]).collect()
    }

    #[test]
    fn offsets_are_into_the_original_bytes() {
        let doc = "Héllo  wörld, 42!";
        let ws = load(r#"{"type": "Whitespace"}"#);
        assert_eq!(
            texts(doc, &ws.pre_token_ranges(doc).unwrap()),
            ["Héllo", "wörld", ",", "42", "!"]
        );
        // ByteLevel rewrites " wörld" as "Ġw├Ĥrld"; the offsets still point at the original
        let bl = load(
            r#"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#,
        );
        assert_eq!(
            texts(doc, &bl.pre_token_ranges(doc).unwrap()),
            ["Héllo", " ", " wörld", ",", " 42", "!"]
        );
        // Metaspace prepends a ▁ that has no original bytes: it is dropped, nothing overlaps
        let ms = load(
            r#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}"#,
        );
        assert_eq!(
            texts(doc, &ms.pre_token_ranges(doc).unwrap()),
            ["Héllo", " ", " wörld,", " 42!"]
        );
    }

    #[test]
    fn gaps_and_invalid_utf8_are_pieces_of_their_own() {
        let ws = load(r#"{"type": "WhitespaceSplit"}"#);
        let doc = b"  ab cd\xff\xfe\x80 ef  ";
        let p = pieces(&ws, doc, 1).unwrap();
        let kinds: Vec<_> = p.iter().map(|(k, r)| (*k, &doc[r.clone()])).collect();
        assert_eq!(
            kinds,
            [
                (PieceKind::Gap, &b"  "[..]),
                (PieceKind::PreTokens(1), b"ab"),
                (PieceKind::Gap, b" "),
                (PieceKind::PreTokens(1), b"cd"),
                (PieceKind::InvalidUtf8, b"\xff\xfe\x80"),
                (PieceKind::Gap, b" "),
                (PieceKind::PreTokens(1), b"ef"),
                (PieceKind::Gap, b"  "),
            ]
        );
        // groups of two keep the gap between their pre-tokens
        let p = pieces(&ws, b"a b c d e", 2).unwrap();
        let ranges: Vec<_> = p.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(ranges, [0..3, 3..4, 4..7, 7..8, 8..9]);
    }

    #[test]
    fn bad_files_are_typed_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let cases = [
            ("not-json.json", "{ nope"),
            ("null.json", r#"{"version": "1.0", "pre_tokenizer": null}"#),
            ("no-type.json", r#"{"hello": 1}"#),
            ("unknown.json", r#"{"type": "NoSuchPreTokenizer"}"#),
        ];
        let mut paths = vec![missing];
        for (name, json) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, json).unwrap();
            paths.push(p);
        }
        for p in paths {
            match HfPreTokenizer::from_file(&p) {
                Err(e @ PretokenizeError::PreTokenizerFile { .. }) => {
                    assert!(e.to_string().contains(&p.display().to_string()), "{e}")
                }
                other => panic!("{}: {other:?}", p.display()),
            }
        }
    }

    #[test]
    fn a_tokenizer_json_gives_its_pre_tokenizer_section() {
        let json = r#"{"version": "1.0", "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": true}]},
            "model": {"type": "WordLevel", "vocab": {}, "unk_token": "?"}}"#;
        let pre = load(json);
        assert!(pre.json().contains("Digits"), "{}", pre.json());
        let doc = "ab 123";
        assert_eq!(
            texts(doc, &pre.pre_token_ranges(doc).unwrap()),
            ["ab", "1", "2", "3"]
        );
    }
}
