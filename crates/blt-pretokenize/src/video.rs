//! Video (feature `video`): decode with FFmpeg (`ffmpeg-next`) → frames sampled at a chosen rate,
//! resized, as `rgb8` images → plus the first audio track as `pcm_s16le` frames.
//!
//! Needs the FFmpeg libraries and headers at build time (Debian: `scripts/setup/20-ffmpeg-dev.sh`).
//! Containers and codecs are whatever the system's FFmpeg decodes (MP4/MOV, MKV/WebM, AVI, …).
//!
//! # Byte accounting
//!
//! - **Every byte of the file is handed to FFmpeg's demuxer**; the decoded pictures and samples
//!   are the file's transformation. Packets cannot be mapped back to the pixels they produce, so
//!   every segment has `byte_range = 0..file_len` and `decoded = Some(..)`.
//! - **Video**: every frame of the best video stream is decoded; the frames kept are the first
//!   frame at or after each multiple of `1 / frames_per_second` seconds of presentation time
//!   (all frames when `frames_per_second` is `None`). The frames in between are decoded and
//!   dropped: that sampling in time is the documented transformation. A kept frame is one segment,
//!   `metadata.representation = "rgb8"`, resized so its longer side is at most
//!   [`VideoOptions::max_side`] (never upscaled), rows top to bottom, `R G B` interleaved, with
//!   `width`, `height`, `time_s`, `frame` (index among kept frames) and `source_frame` (index
//!   among decoded frames).
//! - **Audio**: the best audio stream is decoded and framed exactly as
//!   [`AudioSegmenter`](crate::AudioSegmenter) frames a file (same [`AudioOptions`](crate::AudioOptions): mixdown,
//!   resampling, frames of N ms, partial last frame kept), with modality `audio` and labels
//!   `audio frame N`. Every decoded sample is in exactly one audio frame.
//! - Segments come in that order: all video frames, then all audio frames. Other streams
//!   (subtitles, data, further audio tracks) and container metadata do not reach any segment;
//!   with [`VideoOptions::include_file_bytes`] the whole file is also emitted first as one raw
//!   `video file` segment, so every input byte is literally in exactly one raw segment. All
//!   segments of one file share a `source_id`.
//!
//! # Damaged input and limits
//!
//! Corrupt packets are skipped by FFmpeg's demuxer and decoder; a truncated file gives what was
//! decoded. A file with neither a decodable video frame nor a decodable audio sample is a
//! [`PretokenizeError::Decode`]. Frames larger than [`VideoOptions::max_decoded_pixels`] (from the
//! stream header, before decoding, and again for every decoded frame, since a stream may change
//! size), more than [`VideoOptions::max_frames`] kept frames, kept frames adding up to more than
//! [`VideoOptions::max_total_pixels`] after resizing (checked before each is converted), or more
//! audio than [`AudioOptions::max_decoded_samples`](crate::AudioOptions::max_decoded_samples)
//! (decoded, or after resampling, checked after every decoded audio frame as for
//! [`AudioSegmenter`](crate::AudioSegmenter)) are [`PretokenizeError::LimitExceeded`]; its
//! `option` is `video.max_decoded_pixels`, `video.max_frames`, `video.max_total_pixels` or
//! `video.audio.max_decoded_samples`.
//! FFmpeg's own logging is silenced (this crate never prints); failures come back as errors.

use std::io::Write;
use std::sync::Once;

use ffmpeg::format::sample::Type as SampleLayout;
use ffmpeg::format::{Pixel, Sample};
use ffmpeg::media::Type as MediaType;
use ffmpeg::software::scaling::{context::Context as Scaler, flag::Flags};
use ffmpeg::util::frame::{audio::Audio as AudioFrame, video::Video as VideoFrame};
use ffmpeg_next as ffmpeg;
use serde_json::json;

use crate::audio::{check_sample_budget, frame_segments, DecodedAudio};
use crate::image::{content_source_id, fit_within};
use crate::{Modality, PretokenizeError, Segment, Segmenter, VideoOptions};

/// Decodes a video file into sampled `rgb8` frames and `pcm_s16le` audio frames (see the
/// [module docs](self) for the byte-accounting rule).
#[derive(Debug, Clone, Default)]
pub struct VideoSegmenter {
    options: VideoOptions,
}

impl VideoSegmenter {
    /// A segmenter with these options, or [`PretokenizeError::InvalidOptions`] for a
    /// non-positive frame rate, a zero `max_side` or invalid audio options.
    pub fn new(options: VideoOptions) -> Result<Self, PretokenizeError> {
        options.validate()?;
        Ok(Self { options })
    }

    /// The options in use.
    pub fn options(&self) -> &VideoOptions {
        &self.options
    }
}

fn decode_error(reason: impl std::fmt::Display) -> PretokenizeError {
    PretokenizeError::Decode {
        format: "video",
        reason: reason.to_string(),
    }
}

/// Initialises FFmpeg once and silences its logging (a library never prints).
fn init_ffmpeg() -> Result<(), PretokenizeError> {
    static INIT: Once = Once::new();
    let mut result = Ok(());
    INIT.call_once(|| {
        result = ffmpeg::init().map_err(|e| decode_error(format!("initialising FFmpeg: {e}")));
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    });
    result
}

/// One kept video frame.
struct KeptFrame {
    width: u32,
    height: u32,
    source_width: u32,
    source_height: u32,
    time_s: f64,
    source_frame: u64,
    rgb: Vec<u8>,
}

/// Picks frames at a fixed rate of presentation time and converts them to resized RGB.
struct FrameSampler {
    interval_s: Option<f64>,
    next_time_s: Option<f64>,
    time_base: f64,
    frame_rate: f64,
    max_side: Option<u32>,
    max_pixels: u64,
    max_frames: u64,
    max_total_pixels: u64,
    /// Pixels of the kept frames so far (after resizing).
    kept_pixels: u64,
    decoded: u64,
    scaler: Option<(Scaler, (Pixel, u32, u32))>,
    kept: Vec<KeptFrame>,
}

impl FrameSampler {
    fn take(&mut self, frame: &VideoFrame) -> Result<(), PretokenizeError> {
        let index = self.decoded;
        self.decoded += 1;
        let time_s = match frame.timestamp().or(frame.pts()) {
            Some(ts) => ts as f64 * self.time_base,
            None if self.frame_rate > 0.0 => index as f64 / self.frame_rate,
            None => index as f64,
        };
        if let Some(interval) = self.interval_s {
            // Keep the first frame, then the first frame at or after each later multiple of the
            // interval (measured from the first frame). Jumps are computed, not looped over, so a
            // hostile timestamp cannot make this spin.
            let now = if time_s.is_finite() {
                time_s
            } else {
                index as f64
            };
            match self.next_time_s {
                Some(next) if now + 1e-9 < next => return Ok(()),
                Some(next) => {
                    let steps = ((now + 1e-9 - next) / interval).floor() + 1.0;
                    self.next_time_s = Some(next + steps.max(1.0) * interval);
                }
                None => self.next_time_s = Some(now + interval),
            }
        }
        if self.kept.len() as u64 >= self.max_frames {
            return Err(PretokenizeError::LimitExceeded {
                what: "kept video frames".into(),
                limit: self.max_frames,
                actual: self.kept.len() as u64 + 1,
                option: "video.max_frames",
            });
        }
        let (w, h, format) = (frame.width(), frame.height(), frame.format());
        if w == 0 || h == 0 {
            return Ok(());
        }
        // The stream header was checked before decoding; a frame may still change size.
        let pixels = u64::from(w) * u64::from(h);
        if pixels > self.max_pixels {
            return Err(PretokenizeError::LimitExceeded {
                what: format!("decoded pixels of a {w}x{h} video frame"),
                limit: self.max_pixels,
                actual: pixels,
                option: "video.max_decoded_pixels",
            });
        }
        let (out_w, out_h) = fit_within(w, h, self.max_side);
        let kept_pixels = self.kept_pixels + u64::from(out_w) * u64::from(out_h);
        if kept_pixels > self.max_total_pixels {
            return Err(PretokenizeError::LimitExceeded {
                what: format!(
                    "pixels of the kept video frames ({} frames so far, this one {out_w}x{out_h})",
                    self.kept.len()
                ),
                limit: self.max_total_pixels,
                actual: kept_pixels,
                option: "video.max_total_pixels",
            });
        }
        let key = (format, w, h);
        if self.scaler.as_ref().map(|(_, k)| *k) != Some(key) {
            let scaler = Scaler::get(format, w, h, Pixel::RGB24, out_w, out_h, Flags::BILINEAR)
                .map_err(|e| decode_error(format!("scaler for {w}x{h} {format:?}: {e}")))?;
            self.scaler = Some((scaler, key));
        }
        let Some((scaler, _)) = self.scaler.as_mut() else {
            return Ok(());
        };
        let mut rgb = VideoFrame::empty();
        scaler
            .run(frame, &mut rgb)
            .map_err(|e| decode_error(format!("scaling frame {index}: {e}")))?;
        let stride = rgb.stride(0);
        let row_len = out_w as usize * 3;
        let data = rgb.data(0);
        let mut pixels = Vec::with_capacity(row_len * out_h as usize);
        for row in 0..out_h as usize {
            let start = row * stride;
            let line = data
                .get(start..start + row_len)
                .ok_or_else(|| decode_error(format!("frame {index}: short scaled plane")))?;
            pixels.extend_from_slice(line);
        }
        self.kept.push(KeptFrame {
            width: out_w,
            height: out_h,
            source_width: w,
            source_height: h,
            time_s,
            source_frame: index,
            rgb: pixels,
        });
        self.kept_pixels = kept_pixels;
        Ok(())
    }
}

/// Appends one decoded audio frame to interleaved `f32` samples (any FFmpeg sample format).
fn append_audio(frame: &AudioFrame, out: &mut Vec<f32>) -> Result<(), PretokenizeError> {
    let channels = usize::from(frame.channels());
    let samples = frame.samples();
    if channels == 0 || samples == 0 {
        return Ok(());
    }
    let format = frame.format();
    let (bytes, planar) = match format {
        Sample::U8(t) => (1, t == SampleLayout::Planar),
        Sample::I16(t) => (2, t == SampleLayout::Planar),
        Sample::I32(t) | Sample::F32(t) => (4, t == SampleLayout::Planar),
        Sample::I64(t) | Sample::F64(t) => (8, t == SampleLayout::Planar),
        Sample::None => return Err(decode_error("audio frame without a sample format")),
    };
    let to_f32 = |b: &[u8]| -> f32 {
        match (format, b.len()) {
            (Sample::U8(_), 1) => (f32::from(b[0]) - 128.0) / 128.0,
            (Sample::I16(_), 2) => f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32_768.0,
            (Sample::I32(_), 4) => {
                i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            (Sample::F32(_), 4) => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            (Sample::I64(_), 8) => {
                i64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                    / 9_223_372_036_854_775_808.0
            }
            (Sample::F64(_), 8) => {
                f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            _ => 0.0,
        }
    };
    let planes = frame.planes();
    if planar {
        if planes < channels {
            return Err(decode_error("planar audio frame with missing planes"));
        }
        let plane_data: Vec<&[u8]> = (0..channels)
            .map(|ch| frame.data(ch).get(..samples * bytes))
            .collect::<Option<_>>()
            .ok_or_else(|| decode_error("short planar audio frame"))?;
        for i in 0..samples {
            for plane in &plane_data {
                out.push(to_f32(&plane[i * bytes..(i + 1) * bytes]));
            }
        }
    } else {
        if planes == 0 {
            return Err(decode_error("packed audio frame without data"));
        }
        let data = frame
            .data(0)
            .get(..samples * channels * bytes)
            .ok_or_else(|| decode_error("short packed audio frame"))?;
        out.extend(data.chunks_exact(bytes).map(to_f32));
    }
    Ok(())
}

impl Segmenter for VideoSegmenter {
    fn segment(&self, document: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
        let opts = &self.options;
        init_ffmpeg()?;
        // FFmpeg's demuxers read from a path; the bytes go to a private temp file first.
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|e| decode_error(format!("creating a temp file: {e}")))?;
        file.write_all(document)
            .and_then(|()| file.flush())
            .map_err(|e| decode_error(format!("writing a temp file: {e}")))?;
        let mut input = ffmpeg::format::input(file.path())
            .map_err(|e| decode_error(format!("opening the container: {e}")))?;
        let container = input.format().name().to_string();

        let video_stream = input.streams().best(MediaType::Video).map(|s| {
            let rate = s.avg_frame_rate();
            let frame_rate = if rate.denominator() != 0 {
                f64::from(rate)
            } else {
                0.0
            };
            (
                s.index(),
                f64::from(s.time_base()),
                frame_rate,
                s.parameters(),
            )
        });
        let audio_stream = if opts.include_audio {
            input
                .streams()
                .best(MediaType::Audio)
                .map(|s| (s.index(), s.parameters()))
        } else {
            None
        };
        if video_stream.is_none() && audio_stream.is_none() {
            return Err(decode_error(format!(
                "no video or audio stream in the {container} container"
            )));
        }

        let mut video = match video_stream {
            Some((index, time_base, frame_rate, params)) => {
                let decoder = ffmpeg::codec::context::Context::from_parameters(params)
                    .and_then(|c| c.decoder().video())
                    .map_err(|e| decode_error(format!("video decoder: {e}")))?;
                let pixels = u64::from(decoder.width()) * u64::from(decoder.height());
                if pixels > opts.max_decoded_pixels {
                    return Err(PretokenizeError::LimitExceeded {
                        what: format!(
                            "decoded pixels of a {}x{} video frame",
                            decoder.width(),
                            decoder.height()
                        ),
                        limit: opts.max_decoded_pixels,
                        actual: pixels,
                        option: "video.max_decoded_pixels",
                    });
                }
                let codec = decoder.id().name().to_string();
                let sampler = FrameSampler {
                    interval_s: opts.frames_per_second.map(|fps| 1.0 / fps),
                    next_time_s: None,
                    time_base,
                    frame_rate,
                    max_side: opts.max_side,
                    max_pixels: opts.max_decoded_pixels,
                    max_frames: opts.max_frames,
                    max_total_pixels: opts.max_total_pixels,
                    kept_pixels: 0,
                    decoded: 0,
                    scaler: None,
                    kept: Vec::new(),
                };
                Some((index, decoder, sampler, codec))
            }
            None => None,
        };
        let mut audio = match audio_stream {
            Some((index, params)) => {
                match ffmpeg::codec::context::Context::from_parameters(params)
                    .and_then(|c| c.decoder().audio())
                {
                    Ok(decoder) => {
                        let codec = decoder.id().name().to_string();
                        Some((
                            index,
                            decoder,
                            Vec::<f32>::new(),
                            None::<(u32, usize)>,
                            codec,
                        ))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no decoder for the audio track; video frames only");
                        None
                    }
                }
            }
            None => None,
        };

        let mut skipped_packets = 0u64;
        let mut video_frame = VideoFrame::empty();
        let mut audio_frame = AudioFrame::empty();
        let audio_options = &opts.audio;
        // Drains decoded frames; `flush` after the end of the stream.
        let drain_video =
            |v: &mut Option<(usize, ffmpeg::decoder::Video, FrameSampler, String)>,
             frame: &mut VideoFrame|
             -> Result<(), PretokenizeError> {
                if let Some((_, decoder, sampler, _)) = v.as_mut() {
                    while decoder.receive_frame(frame).is_ok() {
                        sampler.take(frame)?;
                    }
                }
                Ok(())
            };
        #[allow(clippy::type_complexity)]
        let drain_audio = |a: &mut Option<(
            usize,
            ffmpeg::decoder::Audio,
            Vec<f32>,
            Option<(u32, usize)>,
            String,
        )>,
                           frame: &mut AudioFrame|
         -> Result<(), PretokenizeError> {
            if let Some((_, decoder, samples, spec, _)) = a.as_mut() {
                while decoder.receive_frame(frame).is_ok() {
                    let this = (frame.rate(), usize::from(frame.channels()));
                    match spec {
                        None => *spec = Some(this),
                        Some(first) if *first != this => {
                            tracing::warn!(
                                ?first,
                                ?this,
                                "audio format changed mid-stream; frame dropped"
                            );
                            continue;
                        }
                        Some(_) => {}
                    }
                    // Checked before the frame's samples are appended (and, with the
                    // resampling ratio, before anything is resampled).
                    let (rate, channels) = this;
                    check_sample_budget(
                        (samples.len() + frame.samples() * channels) as u64,
                        channels,
                        rate,
                        audio_options,
                        "video.audio.max_decoded_samples",
                        "the video's audio track",
                    )?;
                    append_audio(frame, samples)?;
                }
            }
            Ok(())
        };

        for (stream, packet) in input.packets() {
            let index = stream.index();
            if let Some((_, decoder, _, _)) = video.as_mut().filter(|v| v.0 == index) {
                if decoder.send_packet(&packet).is_err() {
                    skipped_packets += 1;
                }
                drain_video(&mut video, &mut video_frame)?;
            } else if let Some((_, decoder, _, _, _)) = audio.as_mut().filter(|a| a.0 == index) {
                if decoder.send_packet(&packet).is_err() {
                    skipped_packets += 1;
                }
                drain_audio(&mut audio, &mut audio_frame)?;
            }
        }
        if let Some((_, decoder, _, _)) = video.as_mut() {
            let _ = decoder.send_eof();
        }
        drain_video(&mut video, &mut video_frame)?;
        if let Some((_, decoder, _, _, _)) = audio.as_mut() {
            let _ = decoder.send_eof();
        }
        drain_audio(&mut audio, &mut audio_frame)?;

        let source_id = content_source_id(document);
        let file_range = 0..document.len() as u64;
        let mut segments = Vec::new();
        if opts.include_file_bytes {
            segments.push(Segment {
                modality: Modality::Video,
                label: "video file".into(),
                byte_range: file_range.clone(),
                source_id: Some(source_id.clone()),
                metadata: json!({ "representation": "file", "container": container }),
                decoded: None,
            });
        }
        let raw_segments = segments.len();
        if let Some((_, _, sampler, codec)) = video {
            let decoded_frames = sampler.decoded;
            for (i, frame) in sampler.kept.into_iter().enumerate() {
                segments.push(Segment {
                    modality: Modality::Video,
                    label: format!("video frame {i}"),
                    byte_range: file_range.clone(),
                    source_id: Some(source_id.clone()),
                    metadata: json!({
                        "representation": "rgb8",
                        "container": container,
                        "codec": codec,
                        "width": frame.width,
                        "height": frame.height,
                        "source_width": frame.source_width,
                        "source_height": frame.source_height,
                        "time_s": frame.time_s,
                        "frame": i,
                        "source_frame": frame.source_frame,
                        "decoded_frames": decoded_frames,
                        "skipped_packets": skipped_packets,
                    }),
                    decoded: Some(frame.rgb),
                });
            }
        }
        if let Some((_, _, samples, Some((rate, channels)), codec)) = audio {
            if !samples.is_empty() && rate > 0 && channels > 0 {
                let mut provenance = serde_json::Map::new();
                provenance.insert("container".into(), json!(container));
                provenance.insert("codec".into(), json!(codec));
                provenance.insert("skipped_packets".into(), json!(skipped_packets));
                let decoded = DecodedAudio {
                    samples,
                    sample_rate: rate,
                    channels,
                    provenance,
                };
                segments.extend(frame_segments(
                    decoded,
                    &opts.audio,
                    "video.audio.max_decoded_samples",
                    file_range,
                    &source_id,
                    Modality::Audio,
                    "audio ",
                )?);
            }
        }
        if segments.len() == raw_segments {
            return Err(decode_error(format!(
                "{container}: no video frame or audio sample could be decoded"
            )));
        }
        Ok(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_options_are_refused() {
        for fps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let options = VideoOptions {
                frames_per_second: Some(fps),
                ..Default::default()
            };
            assert!(VideoSegmenter::new(options).is_err(), "{fps}");
        }
        assert!(VideoSegmenter::new(VideoOptions {
            max_side: Some(0),
            ..Default::default()
        })
        .is_err());
    }
}
