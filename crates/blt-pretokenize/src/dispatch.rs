//! The dispatcher: detect a document's format, then run the pre-tokenizer of its modality.

use std::path::Path;

use serde_json::json;

use crate::VideoOptions;
#[cfg(feature = "video")]
use crate::VideoSegmenter;
use crate::{
    detect, extract_zip, BinaryOptions, BinarySegmenter, ContainerContents, ContainerLimits,
    Detection, Format, Modality, PdfOptions, PdfSegmenter, Result, Segment, Segmenter, TextOptions,
    TextSegmenter,
};
use crate::{AudioOptions, AudioSegmenter, ImageOptions, ImageSegmenter};
#[cfg(feature = "code")]
use crate::{CodeOptions, CodeSegmenter};

/// Every knob of every pre-tokenizer, plus the modality override.
#[derive(Debug, Clone, Default)]
pub struct PretokenizeOptions {
    /// Route every document to this modality instead of the detected one (`--modality`).
    pub forced_modality: Option<Modality>,
    /// Text splitting.
    pub text: TextOptions,
    /// Code units.
    #[cfg(feature = "code")]
    pub code: CodeOptions,
    /// PDF views.
    pub pdf: PdfOptions,
    /// Executables.
    pub binary: BinaryOptions,
    /// ZIP containers.
    pub container: ContainerLimits,
    /// Images: decoding, resizing, raster patches.
    pub image: ImageOptions,
    /// Audio: decoding, resampling, frames.
    pub audio: AudioOptions,
    /// Video frames and audio tracks. Without the feature `video` these are validated but
    /// unused (a video is kept whole).
    pub video: VideoOptions,
}

impl PretokenizeOptions {
    /// [`PretokenizeError::InvalidOptions`](crate::PretokenizeError::InvalidOptions) when the
    /// image, audio or video options cannot work (a zero patch size, a zero frame length, …),
    /// so that a caller can refuse them before the first document instead of at every media file.
    pub fn validate(&self) -> Result<()> {
        ImageSegmenter::new(self.image.clone())?;
        AudioSegmenter::new(self.audio.clone())?;
        self.video.validate()
    }
}

/// What pre-tokenizing one document gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Pretokenized {
    /// The document's segments.
    Segments(Vec<Segment>),
    /// The document is a container: its members are documents of their own.
    Container(ContainerContents),
}

/// Detection plus the pre-tokenizer of each modality.
///
/// ```
/// use blt_pretokenize::{Format, Language, Pretokenized, Pretokenizer};
/// use std::path::Path;
///
/// let pre = Pretokenizer::default();
/// let src = b"def f():\n    return 1\n";
/// let (detection, out) = pre.pretokenize(src, Some(Path::new("f.py"))).unwrap();
/// assert_eq!(detection.format, Format::Code(Language::Python));
/// let Pretokenized::Segments(segments) = out else { unreachable!() };
/// assert_eq!(segments[0].label, "function_definition f");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pretokenizer {
    options: PretokenizeOptions,
}

impl Pretokenizer {
    /// A pre-tokenizer with these options.
    pub fn new(options: PretokenizeOptions) -> Self {
        Self { options }
    }

    /// Its options.
    pub fn options(&self) -> &PretokenizeOptions {
        &self.options
    }

    /// Detects `document`'s format (`path` gives the extension), honouring the override.
    pub fn detect(&self, document: &[u8], path: Option<&Path>) -> Detection {
        detect(document, path, self.options.forced_modality)
    }

    /// Detects and pre-tokenizes `document`.
    pub fn pretokenize(
        &self,
        document: &[u8],
        path: Option<&Path>,
    ) -> Result<(Detection, Pretokenized)> {
        let detection = self.detect(document, path);
        let out = self.pretokenize_as(&detection, document)?;
        Ok((detection, out))
    }

    /// Pre-tokenizes `document` as the given detection says.
    pub fn pretokenize_as(&self, detection: &Detection, document: &[u8]) -> Result<Pretokenized> {
        let o = &self.options;
        let segments = match (detection.modality(), detection.format) {
            (Modality::Container, _) => {
                return Ok(Pretokenized::Container(extract_zip(
                    document,
                    &o.container,
                )?));
            }
            (Modality::Text, _) => TextSegmenter::new(o.text.clone()).segment(document)?,
            #[cfg(feature = "code")]
            (Modality::Code, Format::Code(language)) => {
                CodeSegmenter::new(language, o.code).segment(document)?
            }
            (Modality::Code, format) => raw_whole(
                document,
                Modality::Code,
                json!({ "format": format.name(), "parsed": false }),
            ),
            (Modality::Pdf, _) => PdfSegmenter::new(o.pdf).segment(document)?,
            (
                Modality::Binary,
                Format::Elf | Format::Pe | Format::MachO | Format::MachOFat | Format::Ar,
            ) => BinarySegmenter::new(o.binary).segment(document)?,
            (Modality::Binary, format) => raw_whole(
                document,
                Modality::Binary,
                json!({ "format": format.name() }),
            ),
            (Modality::Image, _) => ImageSegmenter::new(o.image.clone())?.segment(document)?,
            (Modality::Audio, _) => AudioSegmenter::new(o.audio.clone())?.segment(document)?,
            #[cfg(feature = "video")]
            (Modality::Video, _) => VideoSegmenter::new(o.video.clone())?.segment(document)?,
            // Without FFmpeg the container is kept whole, and says why.
            #[cfg(not(feature = "video"))]
            (Modality::Video, format) => {
                o.video.validate()?;
                raw_whole(
                    document,
                    Modality::Video,
                    json!({
                        "format": format.name(),
                        "decoded": false,
                        "reason": "built without the `video` feature",
                    }),
                )
            }
        };
        Ok(Pretokenized::Segments(segments))
    }
}

fn raw_whole(document: &[u8], modality: Modality, metadata: serde_json::Value) -> Vec<Segment> {
    vec![Segment {
        modality,
        label: "document".into(),
        byte_range: 0..document.len() as u64,
        source_id: None,
        metadata,
        decoded: None,
    }]
}

/// Detects by content only (no name) and returns segments; a container's members come out as
/// segments with decoded content (their bytes), `byte_range` the member's data in the archive
/// and `metadata.inner_path` its path.
impl Segmenter for Pretokenizer {
    fn segment(&self, document: &[u8]) -> Result<Vec<Segment>> {
        match self.pretokenize(document, None)?.1 {
            Pretokenized::Segments(segments) => Ok(segments),
            Pretokenized::Container(contents) => Ok(contents
                .members
                .into_iter()
                .map(|m| Segment {
                    modality: Modality::Container,
                    label: m.inner_path.clone(),
                    byte_range: m.data_range,
                    source_id: None,
                    metadata: json!({
                        "inner_path": m.inner_path,
                        "representation": "zip_member",
                    }),
                    decoded: Some(m.bytes),
                })
                .collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_formats_are_decoded_and_broken_ones_refused() {
        // A PNG signature with a cut header: detected as an image, refused with a typed error.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR rest";
        let pre = Pretokenizer::default();
        assert_eq!(pre.detect(png, None).format, Format::Png);
        assert!(matches!(
            pre.pretokenize(png, None),
            Err(crate::PretokenizeError::Decode { .. })
        ));
    }

    #[test]
    fn media_options_that_cannot_work_are_refused_up_front() {
        assert!(PretokenizeOptions::default().validate().is_ok());
        let mut bad_image = PretokenizeOptions::default();
        bad_image.image.patch_size = Some(0);
        let mut bad_audio = PretokenizeOptions::default();
        bad_audio.audio.frame_ms = 0;
        let mut bad_video = PretokenizeOptions::default();
        bad_video.video.frames_per_second = Some(-1.0);
        for (options, segmenter) in [
            (bad_image, "image"),
            (bad_audio, "audio"),
            (bad_video, "video"),
        ] {
            match options.validate() {
                Err(crate::PretokenizeError::InvalidOptions { segmenter: s, .. }) => {
                    assert_eq!(s, segmenter)
                }
                other => panic!("{segmenter}: {other:?}"),
            }
        }
    }

    #[test]
    fn forced_modality_routes_everything() {
        let pre = Pretokenizer::new(PretokenizeOptions {
            forced_modality: Some(Modality::Text),
            ..Default::default()
        });
        let elf = b"\x7FELF\x02\x01\x01\0\0\0";
        let segs = pre.segment(elf).unwrap();
        assert_eq!(segs[0].modality, Modality::Text);
        assert_eq!(segs[0].byte_range, 0..elf.len() as u64);
    }

    #[test]
    fn a_broken_executable_is_a_typed_error_not_a_panic() {
        let e = Pretokenizer::default().segment(b"\x7FELF\x02").unwrap_err();
        assert!(matches!(e, crate::PretokenizeError::Decode { .. }), "{e}");
    }
}
