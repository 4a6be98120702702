//! The options of the video segmenter. They exist with or without the `video` feature, so that
//! a command line can take and pass them on either way; only `VideoSegmenter` needs FFmpeg.

use crate::audio::AudioOptions;
use crate::image::DEFAULT_MAX_DECODED_PIXELS;
use crate::PretokenizeError;

/// Default of [`VideoOptions::max_total_pixels`]: 7200 frames of 256 × 256 pixels (1.3 GiB of
/// `rgb8`).
pub const DEFAULT_MAX_TOTAL_VIDEO_PIXELS: u64 = 7200 * 256 * 256;

/// How `VideoSegmenter` (feature `video`) samples, resizes and frames a video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOptions {
    /// Keep this many frames per second of presentation time; `None` keeps every frame.
    /// Default: 1.0.
    pub frames_per_second: Option<f64>,
    /// Downscale each kept frame so its longer side is at most this many pixels (aspect kept,
    /// never upscaled); `None` keeps the decoded size. Default: 256.
    pub max_side: Option<u32>,
    /// Refuse streams whose frames have more pixels than this. Default: Pillow's limit, as for
    /// images ([`DEFAULT_MAX_DECODED_PIXELS`]).
    pub max_decoded_pixels: u64,
    /// Refuse videos that would give more kept frames than this. Default: 7200 (two hours at
    /// one frame per second).
    pub max_frames: u64,
    /// Refuse videos whose kept frames, after resizing, add up to more pixels than this
    /// (checked before each kept frame is converted, so at most this many `rgb8` pixels are
    /// held). Default: [`DEFAULT_MAX_TOTAL_VIDEO_PIXELS`], what the default `max_frames` frames
    /// of the default `max_side` hold; it bounds a video whose frames are kept unresized
    /// (`max_side: None`), which `max_frames × max_decoded_pixels` alone would not.
    pub max_total_pixels: u64,
    /// How the audio track is framed (the same options as [`AudioSegmenter`](crate::AudioSegmenter)).
    pub audio: AudioOptions,
    /// Decode the audio track at all. Default: `true`.
    pub include_audio: bool,
    /// Also emit the file's own bytes as a first, raw segment. Default: `false`.
    pub include_file_bytes: bool,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            frames_per_second: Some(1.0),
            max_side: Some(256),
            max_decoded_pixels: DEFAULT_MAX_DECODED_PIXELS,
            max_frames: 7200,
            max_total_pixels: DEFAULT_MAX_TOTAL_VIDEO_PIXELS,
            audio: AudioOptions::default(),
            include_audio: true,
            include_file_bytes: false,
        }
    }
}

impl VideoOptions {
    /// [`PretokenizeError::InvalidOptions`] for a non-positive frame rate, a zero `max_side` or
    /// invalid audio options.
    pub fn validate(&self) -> Result<(), PretokenizeError> {
        let invalid = |reason: &str| PretokenizeError::InvalidOptions {
            segmenter: "video",
            reason: reason.to_string(),
        };
        if let Some(fps) = self.frames_per_second {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(invalid("frames_per_second must be a positive number"));
            }
        }
        if self.max_side == Some(0) {
            return Err(invalid("max_side must be at least 1"));
        }
        self.audio.validate("video")
    }
}
