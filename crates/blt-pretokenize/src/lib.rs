#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod binary;
#[cfg(feature = "code")]
mod code;
mod container;
mod coverage;
mod detect;
mod dispatch;
mod hf_pretokenizer;
mod pdf;
mod text;
mod video_options;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod audio;
pub mod image;
#[cfg(feature = "video")]
pub mod video;

pub use audio::{AudioOptions, AudioSegmenter};
pub use binary::{BinaryOptions, BinarySegmenter};
#[cfg(feature = "code")]
pub use code::{CodeOptions, CodeSegmenter, DEFAULT_MAX_CODE_UNITS, DEFAULT_MAX_PARSE_BYTES};
pub use container::{
    extract_zip, ContainerContents, ContainerLimits, ContainerMember, SkippedMember, REPEATED_NAMES,
};
pub use coverage::{assert_accounts_for_every_byte, source_id};
pub use detect::{detect, DetectedBy, Detection, Format, Language};
pub use dispatch::{PretokenizeOptions, Pretokenized, Pretokenizer};
pub use hf_pretokenizer::HfPreTokenizer;
pub use image::{ImageColor, ImageOptions, ImageSegmenter};
pub use pdf::{PdfOptions, PdfSegmenter, DEFAULT_MAX_PDF_TEXT_BYTES};
pub use text::{
    TextOptions, TextSegmenter, TextSplit, DEFAULT_MAX_TEXT_SEGMENTS, DEFAULT_PRETOKENS_PER_SEGMENT,
};
#[cfg(feature = "video")]
pub use video::VideoSegmenter;
pub use video_options::{VideoOptions, DEFAULT_MAX_TOTAL_VIDEO_PIXELS};

/// What kind of content a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Natural-language text (valid UTF-8 or not).
    Text,
    /// Source code.
    Code,
    /// Image pixels or image file bytes.
    Image,
    /// Audio samples or audio file bytes.
    Audio,
    /// Video frames or container bytes.
    Video,
    /// A PDF page's text or the PDF's bytes.
    Pdf,
    /// Anything else: bytes are bytes (executables, unknown formats).
    Binary,
    /// An archive whose members are documents of their own (ZIP, JAR, DOCX, …).
    Container,
}

impl Modality {
    /// The lowercase name used in outputs (`text`, `code`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Code => "code",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Pdf => "pdf",
            Self::Binary => "binary",
            Self::Container => "container",
        }
    }

    /// Every modality, in a fixed order.
    pub const ALL: [Modality; 8] = [
        Self::Text,
        Self::Code,
        Self::Image,
        Self::Audio,
        Self::Video,
        Self::Pdf,
        Self::Binary,
        Self::Container,
    ];
}

impl FromStr for Modality {
    type Err = PretokenizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| PretokenizeError::UnknownModality(s.to_owned()))
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// What the segment holds.
    pub modality: Modality,
    /// A short human label (`document`, `function foo`, `page 3`, …).
    pub label: String,
    /// The bytes of the original document this segment covers or was decoded from.
    pub byte_range: Range<u64>,
    /// Views of one source (e.g. a PDF's text and its raw bytes) share an id.
    pub source_id: Option<String>,
    /// Free-form metadata (JSON object).
    pub metadata: serde_json::Value,
    /// Decoded content, when the segment is not simply `document[byte_range]`.
    pub decoded: Option<Vec<u8>>,
}

impl Segment {
    /// The bytes the model sees: the decoded content, or the covered range of `document`.
    pub fn bytes<'a>(&'a self, document: &'a [u8]) -> &'a [u8] {
        match &self.decoded {
            Some(d) => d,
            None => {
                let end = (self.byte_range.end as usize).min(document.len());
                let start = (self.byte_range.start as usize).min(end);
                &document[start..end]
            }
        }
    }
}

/// Why a document could not be segmented.
///
/// Segmenters never panic on bad input: a truncated, corrupted or hostile file gives one of these
/// (or a graceful partial result documented by the segmenter).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PretokenizeError {
    /// The content claims to be `format` but could not be decoded.
    #[error("cannot decode {format}: {reason}")]
    Decode {
        /// The format being decoded (`png`, `mp3`, `elf`, …).
        format: &'static str,
        /// What went wrong, from the decoder.
        reason: String,
    },
    /// A safety limit was exceeded (decompression bombs, too many archive members, …).
    ///
    /// Limits are checked before what they bound is allocated: from a header where the header
    /// gives the size, and while decoding otherwise (a header can lie).
    #[error("{what}: {actual} exceeds the limit of {limit} (option `{option}`)")]
    LimitExceeded {
        /// What was limited (`decoded pixels`, `zip members`, …).
        what: String,
        /// The configured limit.
        limit: u64,
        /// The value the input asked for. Where counting stopped as soon as it passed the limit
        /// (while decoding, say), it is a lower bound.
        actual: u64,
        /// The option that sets this limit, as its path in [`PretokenizeOptions`]
        /// (`audio.max_decoded_samples`, `image.max_decoded_pixels`, `pdf.max_text_bytes`,
        /// `container.max_members`, …), so that a caller can say which knob raises it.
        option: &'static str,
    },
    /// A segmenter was configured with options that cannot work (a zero patch size, …).
    #[error("invalid {segmenter} options: {reason}")]
    InvalidOptions {
        /// The segmenter (`image`, `audio`, `video`).
        segmenter: &'static str,
        /// Which option is wrong and why.
        reason: String,
    },
    /// A `--modality` name that is not one of [`Modality::ALL`].
    #[error("unknown modality {0:?} (expected one of text, code, image, audio, video, pdf, binary, container)")]
    UnknownModality(String),
    /// A Hugging Face pre-tokenizer file could not be read, is not JSON, or holds no
    /// pre-tokenizer that `tokenizers` understands.
    #[error("cannot load the pre-tokenizer {}: {reason}", path.display())]
    PreTokenizerFile {
        /// The `tokenizer.json` or pre-tokenizer JSON file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A Hugging Face pre-tokenizer failed on a document (e.g. a `Split` regex hit its
    /// backtracking limit).
    #[error("the pre-tokenizer {} failed: {reason}", path.display())]
    PreTokenizerFailed {
        /// The file the pre-tokenizer was loaded from.
        path: std::path::PathBuf,
        /// The error `tokenizers` gave.
        reason: String,
    },
    /// A code parser could not be set up or gave no tree.
    #[error("cannot parse {language} code: {reason}")]
    Parse {
        /// The language.
        language: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result of this crate's fallible functions.
pub type Result<T, E = PretokenizeError> = std::result::Result<T, E>;

/// Splits a document into segments.
pub trait Segmenter {
    /// The segments of `document`, in order.
    fn segment(&self, document: &[u8]) -> Result<Vec<Segment>, PretokenizeError>;
}

/// The whole document as one segment: `text` if it is valid UTF-8, else `binary`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WholeDocument;

impl Segmenter for WholeDocument {
    fn segment(&self, document: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
        let modality = if std::str::from_utf8(document).is_ok() {
            Modality::Text
        } else {
            Modality::Binary
        };
        Ok(vec![Segment {
            modality,
            label: "document".into(),
            byte_range: 0..document.len() as u64,
            source_id: None,
            metadata: serde_json::json!({}),
            decoded: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_in_exactly_one_segment() {
        for doc in [&b""[..], b"abc", b"\xff\xfe binary", "é😀".as_bytes()] {
            let segs = WholeDocument.segment(doc).unwrap();
            let covered: u64 = segs
                .iter()
                .map(|s| s.byte_range.end - s.byte_range.start)
                .sum();
            assert_eq!(covered, doc.len() as u64);
            assert_eq!(segs[0].bytes(doc), doc);
        }
        assert_eq!(
            WholeDocument.segment(b"\xff").unwrap()[0].modality,
            Modality::Binary
        );
        assert_eq!(
            WholeDocument.segment("é".as_bytes()).unwrap()[0].modality,
            Modality::Text
        );
    }
}
