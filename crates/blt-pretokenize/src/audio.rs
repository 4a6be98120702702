//! Audio: decode (WAV, MP3, AAC/ADTS, M4A/MP4, FLAC, OGG/Vorbis) → optional mixdown and resample →
//! frames of N milliseconds of 16-bit PCM.
//!
//! Decoding is [`symphonia`]'s (pure Rust, MP3 and AAC enabled); resampling is [`rubato`]'s
//! synchronous FFT resampler (fixed ratio, anti-aliased, its start-up delay trimmed).
//!
//! # Byte accounting
//!
//! - **Every byte of the file is handed to the demuxer/decoder**; the decoded samples of the first
//!   audio track are the file's transformation. Compressed packets cannot be mapped back to byte
//!   ranges, so each frame segment has `byte_range = 0..file_len` (the whole file),
//!   `decoded = Some(pcm)` and `metadata.representation = "pcm_s16le"`.
//! - **Every decoded sample (after the optional mixdown and resampling) is in exactly one frame**:
//!   frames are consecutive, `frame_len = round(sample_rate × frame_ms / 1000)` samples per
//!   channel, and **the last, partial frame is kept** (its `num_samples` says how short it is).
//!   `start_sample`/`num_samples` in the metadata locate each frame; they tile `0..total_samples`.
//! - Within a frame, `decoded` is little-endian signed 16-bit PCM, channels interleaved
//!   (`L R L R …` for stereo); decoded floats are scaled by 32768 and clamped to `[-32768, 32767]`,
//!   the inverse of symphonia's `i16 → f32` conversion, so 16-bit sources come back bit-exact.
//! - Bytes that carry no samples (container headers, ID3/Vorbis tags, cover art, other tracks) do
//!   not reach the PCM. With [`AudioOptions::include_file_bytes`] the whole file is also emitted
//!   as one raw `audio file` segment (`decoded = None`), so that every input byte is literally in
//!   exactly one raw segment; all segments of one file share a `source_id`.
//!
//! # Damaged input
//!
//! A packet that fails to decode is skipped and counted (`metadata.skipped_packets`); a stream that
//! ends early (truncated file) or whose demuxer fails after some audio was decoded gives the audio
//! decoded so far, with `metadata.partial = true`. A file from which no sample at all can be
//! decoded is a [`PretokenizeError::Decode`]. The loop is bounded: at most one packet per input byte
//! (plus a small constant) is read.
//!
//! # Limits
//!
//! [`AudioOptions::max_decoded_samples`] bounds both the decoded samples and the samples after
//! mixdown and resampling, and it is checked **before** either is allocated: after every decoded
//! packet, the samples decoded so far and the count they will resample to
//! (`ceil(frames × target_rate / source_rate) × channels`) are compared with it, so a header that
//! lies about its length, or a 1 Hz file that would resample to 16 000 times its size, stops at
//! the limit with a [`PretokenizeError::LimitExceeded`] (`option = "audio.max_decoded_samples"`).
//! The resampler's own FFT block grows with the ratio of the two rates (rubato's block for 1 Hz →
//! 16 kHz is 4 million frames, however short the file); it is kept to at most 262 144 frames per
//! channel, or the target rate where that is higher, by giving such ratios a smaller chunk.

use std::io::{Cursor, ErrorKind};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use serde_json::{json, Value};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::image::content_source_id;
use crate::{Modality, PretokenizeError, Segment, Segmenter};

/// One hour of 48 kHz stereo, in samples (all channels counted).
pub const DEFAULT_MAX_DECODED_SAMPLES: u64 = 48_000 * 2 * 3600;

/// The highest sample rate accepted (768 kHz, the top "DXD" studio rate). A damaged or hostile
/// header can claim billions of Hz, which would make the resampler allocate gigabytes.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// The most frames per channel of the resampler's FFT block on the output side (when the target
/// rate itself is smaller than this). `rubato` sizes its block from the reduced ratio of the two
/// rates: about 256 × target / source frames, 4 million for a 1 Hz file resampled to 16 kHz,
/// however short the file. For such ratios the resampler's chunk is made smaller instead.
const MAX_RESAMPLER_BLOCK: usize = 1 << 18;

/// Consecutive undecodable packets after which a stream is given up as garbage.
const MAX_CONSECUTIVE_DECODE_ERRORS: u32 = 64;

/// How [`AudioSegmenter`] decodes and cuts audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOptions {
    /// Resample to this rate in Hz; `None` keeps the file's rate. Default: 16 000 (speech-model
    /// rate: one second is 32 000 bytes of mono `pcm_s16le`).
    pub target_sample_rate: Option<u32>,
    /// Mix all channels down to one (their mean). Default: `true`.
    pub mono: bool,
    /// Length of one frame segment in milliseconds. Default: 1000.
    pub frame_ms: u32,
    /// Refuse files that decode to more samples than this, or whose samples after the mixdown and
    /// resampling would be more than this (all channels counted, either way). Checked while
    /// decoding, before the samples are allocated. Default: [`DEFAULT_MAX_DECODED_SAMPLES`].
    pub max_decoded_samples: u64,
    /// Also emit the file's own bytes as a first, raw segment. Default: `false`.
    pub include_file_bytes: bool,
}

impl Default for AudioOptions {
    fn default() -> Self {
        Self {
            target_sample_rate: Some(16_000),
            mono: true,
            frame_ms: 1000,
            max_decoded_samples: DEFAULT_MAX_DECODED_SAMPLES,
            include_file_bytes: false,
        }
    }
}

impl AudioOptions {
    pub(crate) fn validate(&self, segmenter: &'static str) -> Result<(), PretokenizeError> {
        let invalid = |reason: &str| PretokenizeError::InvalidOptions {
            segmenter,
            reason: reason.to_string(),
        };
        if self.frame_ms == 0 {
            return Err(invalid("frame_ms must be at least 1"));
        }
        if matches!(self.target_sample_rate, Some(rate) if rate == 0 || rate > MAX_SAMPLE_RATE) {
            return Err(invalid("target_sample_rate must be from 1 Hz to 768 kHz"));
        }
        Ok(())
    }
}

/// Decodes an audio file and cuts its samples into fixed-length frames (see the
/// [module docs](self) for the byte-accounting rule).
#[derive(Debug, Clone, Default)]
pub struct AudioSegmenter {
    options: AudioOptions,
}

impl AudioSegmenter {
    /// A segmenter with these options, or [`PretokenizeError::InvalidOptions`] for a zero frame
    /// length or target rate.
    pub fn new(options: AudioOptions) -> Result<Self, PretokenizeError> {
        options.validate("audio")?;
        Ok(Self { options })
    }

    /// The options in use.
    pub fn options(&self) -> &AudioOptions {
        &self.options
    }
}

/// Interleaved `f32` samples of one track, with what is known of how they were obtained.
pub(crate) struct DecodedAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: usize,
    /// Facts for the metadata: container, codec, skipped packets, partial, …
    pub provenance: serde_json::Map<String, Value>,
}

fn decode_error(format: &'static str, reason: impl std::fmt::Display) -> PretokenizeError {
    PretokenizeError::Decode {
        format,
        reason: reason.to_string(),
    }
}

/// [`PretokenizeError::LimitExceeded`] when `decoded` samples (all `channels`, at `source_rate`
/// Hz) exceed `options.max_decoded_samples`, or would after the mixdown and resampling that
/// [`frame_segments`] applies. `option` names the limit's option (the video segmenter's audio
/// track has its own); `context` says whose samples these are (`wav/pcm_s16le`, …).
pub(crate) fn check_sample_budget(
    decoded: u64,
    channels: usize,
    source_rate: u32,
    options: &AudioOptions,
    option: &'static str,
    context: &str,
) -> Result<(), PretokenizeError> {
    let limit = options.max_decoded_samples;
    if decoded > limit {
        return Err(PretokenizeError::LimitExceeded {
            what: format!("decoded audio samples ({context})"),
            limit,
            actual: decoded,
            option,
        });
    }
    // A rate of zero or above the maximum is refused as undecodable later on.
    if channels == 0 || source_rate == 0 || source_rate > MAX_SAMPLE_RATE {
        return Ok(());
    }
    let out_channels = if options.mono && channels > 1 {
        1
    } else {
        channels
    };
    let target = options.target_sample_rate.unwrap_or(source_rate);
    let frames = u128::from(decoded) / channels as u128;
    let out_frames = (frames * u128::from(target)).div_ceil(u128::from(source_rate));
    let out = out_frames * out_channels as u128;
    if out > u128::from(limit) {
        return Err(PretokenizeError::LimitExceeded {
            what: format!(
                "audio samples after resampling {source_rate} Hz to {target} Hz ({context})"
            ),
            limit,
            actual: u64::try_from(out).unwrap_or(u64::MAX),
            option,
        });
    }
    Ok(())
}

/// Decodes the first audio track of `document` with symphonia; a panic in symphonia on a
/// hostile header (an overflowing block-size product in its WAV reader, found by fuzzing) is a
/// decode error, not a crash.
fn decode_audio(document: &[u8], options: &AudioOptions) -> Result<DecodedAudio, PretokenizeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_audio_unguarded(document, options)
    }))
    .unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(decode_error(
            "audio",
            format!("the decoder panicked: {message}"),
        ))
    })
}

/// Decodes the first audio track of `document` with symphonia, stopping as soon as the samples
/// decoded so far break the sample budget (see [`check_sample_budget`]).
fn decode_audio_unguarded(
    document: &[u8],
    options: &AudioOptions,
) -> Result<DecodedAudio, PretokenizeError> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(document)), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| decode_error("audio", e))?;
    let container = format.format_info().short_name;
    let track = format.default_track(TrackType::Audio).ok_or_else(|| {
        decode_error(
            "audio",
            format!("no audio track in the {container} container"),
        )
    })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| decode_error("audio", "the audio track has no codec parameters"))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| decode_error("audio", format!("{container}: {e}")))?;
    let codec = decoder.codec_info().short_name;

    let mut samples: Vec<f32> = Vec::new();
    let mut chunk: Vec<f32> = Vec::new();
    let mut spec: Option<(u32, usize)> = None;
    let mut skipped_packets = 0u64;
    let mut consecutive_errors = 0u32;
    let mut stopped_early: Option<String> = None;
    let max_packets = document.len() as u64 + 1024;
    let mut packets = 0u64;
    loop {
        packets += 1;
        if packets > max_packets {
            stopped_early = Some("more packets than input bytes".into());
            break;
        }
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                stopped_early = Some("unexpected end of file".into());
                break;
            }
            Err(e) => {
                stopped_early = Some(format!("demuxer: {e}"));
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buffer) => {
                consecutive_errors = 0;
                let this_spec = (buffer.spec().rate(), buffer.spec().channels().count());
                match spec {
                    None => spec = Some(this_spec),
                    Some(first) if first != this_spec => {
                        stopped_early = Some(format!(
                            "stream changed from {} Hz × {} to {} Hz × {} channels",
                            first.0, first.1, this_spec.0, this_spec.1
                        ));
                        break;
                    }
                    Some(_) => {}
                }
                buffer.copy_to_vec_interleaved(&mut chunk);
                check_sample_budget(
                    (samples.len() + chunk.len()) as u64,
                    this_spec.1,
                    this_spec.0,
                    options,
                    "audio.max_decoded_samples",
                    &format!("{container}/{codec}"),
                )?;
                samples.extend_from_slice(&chunk);
            }
            Err(SymphoniaError::DecodeError(reason)) => {
                skipped_packets += 1;
                consecutive_errors += 1;
                tracing::debug!(container, codec, reason, "skipped an undecodable packet");
                if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS {
                    stopped_early = Some(format!(
                        "{consecutive_errors} consecutive undecodable packets (last: {reason})"
                    ));
                    break;
                }
            }
            Err(e) => {
                stopped_early = Some(format!("decoder: {e}"));
                break;
            }
        }
    }
    let (sample_rate, channels) = match spec {
        Some(spec) if !samples.is_empty() => spec,
        _ => {
            let why = stopped_early.unwrap_or_else(|| "the stream holds no samples".into());
            return Err(decode_error(
                "audio",
                format!("{container}/{codec}: no audio decoded: {why}"),
            ));
        }
    };
    if channels == 0 || sample_rate == 0 {
        return Err(decode_error(
            "audio",
            format!("{container}/{codec}: {channels} channels at {sample_rate} Hz"),
        ));
    }
    if let Some(reason) = &stopped_early {
        tracing::warn!(container, codec, reason, "audio decoded only in part");
    }
    let mut provenance = serde_json::Map::new();
    provenance.insert("container".into(), json!(container));
    provenance.insert("codec".into(), json!(codec));
    provenance.insert("skipped_packets".into(), json!(skipped_packets));
    provenance.insert("partial".into(), json!(stopped_early.is_some()));
    if let Some(reason) = stopped_early {
        provenance.insert("partial_reason".into(), json!(reason));
    }
    Ok(DecodedAudio {
        samples,
        sample_rate,
        channels,
        provenance,
    })
}

/// The mean of each frame's channels.
fn mix_to_mono(samples: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return samples.to_vec();
    }
    samples
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// Greatest common divisor (Euclid).
fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The chunk size handed to rubato's `Fft::new` for `from` → `to` Hz: 1024 frames (rubato then
/// works in sub-chunks of 256), unless that would make the FFT block on the output side larger
/// than [`MAX_RESAMPLER_BLOCK`] frames. rubato's block is `ceil(sub_chunk / f) × t` output frames
/// for the reduced rates `f = from / gcd`, `t = to / gcd`; a smaller chunk (under 256, so one
/// sub-chunk) gives a smaller block and a shorter anti-aliasing filter, which only such extreme
/// ratios (a source of a few Hz) need.
fn resampler_chunk(from: u32, to: u32) -> usize {
    let (from, to) = (from as usize, to as usize);
    let divisor = gcd(from, to).max(1);
    let (f, t) = (from / divisor, to / divisor);
    let default_blocks = 256usize.div_ceil(f).max(1);
    if default_blocks.saturating_mul(t) <= MAX_RESAMPLER_BLOCK {
        return 1024;
    }
    (MAX_RESAMPLER_BLOCK / t).clamp(1, default_blocks) * f
}

/// Resamples interleaved audio with rubato's FFT resampler; the output has
/// `ceil(frames × to / from)` frames.
pub(crate) fn resample(
    samples: &[f32],
    channels: usize,
    from: u32,
    to: u32,
) -> Result<Vec<f32>, PretokenizeError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let failed = |e: String| PretokenizeError::Decode {
        format: "audio",
        reason: format!("resampling {from} Hz to {to} Hz: {e}"),
    };
    let frames = samples.len() / channels;
    let input =
        InterleavedSlice::new(samples, channels, frames).map_err(|e| failed(e.to_string()))?;
    let mut resampler = Fft::<f32>::new(
        from as usize,
        to as usize,
        resampler_chunk(from, to),
        channels,
        FixedSync::Input,
    )
    .map_err(|e| failed(e.to_string()))?;
    let output = resampler
        .process_all(&input, frames, None)
        .map_err(|e| failed(e.to_string()))?;
    Ok(output.take_data())
}

/// One float sample as signed 16-bit PCM.
fn to_s16(sample: f32) -> i16 {
    let scaled = (sample * 32768.0).round();
    if scaled.is_nan() {
        0
    } else {
        scaled.clamp(-32768.0, 32767.0) as i16
    }
}

/// Mixdown, resampling and framing of decoded audio into `pcm_s16le` segments (shared with the
/// video segmenter's audio track, whose sample limit is the option `samples_option`). The sample
/// budget is checked once more, on the exact count, before anything is resampled.
pub(crate) fn frame_segments(
    decoded: DecodedAudio,
    options: &AudioOptions,
    samples_option: &'static str,
    byte_range: std::ops::Range<u64>,
    source_id: &str,
    modality: Modality,
    label_prefix: &str,
) -> Result<Vec<Segment>, PretokenizeError> {
    let DecodedAudio {
        samples,
        sample_rate: source_rate,
        channels: source_channels,
        provenance,
    } = decoded;
    if source_rate == 0 || source_rate > MAX_SAMPLE_RATE {
        return Err(PretokenizeError::Decode {
            format: "audio",
            reason: format!(
                "implausible sample rate {source_rate} Hz (accepted: 1 to {MAX_SAMPLE_RATE} Hz)"
            ),
        });
    }
    let context = match (provenance.get("container"), provenance.get("codec")) {
        (Some(Value::String(container)), Some(Value::String(codec))) => {
            format!("{container}/{codec}")
        }
        _ => "audio".to_string(),
    };
    check_sample_budget(
        samples.len() as u64,
        source_channels,
        source_rate,
        options,
        samples_option,
        &context,
    )?;
    let (samples, channels) = if options.mono && source_channels > 1 {
        (mix_to_mono(&samples, source_channels), 1)
    } else {
        (samples, source_channels)
    };
    let rate = options.target_sample_rate.unwrap_or(source_rate);
    let samples = resample(&samples, channels, source_rate, rate)?;
    let total_frames = samples.len() / channels;
    let frame_len = ((u64::from(rate) * u64::from(options.frame_ms) + 500) / 1000).max(1) as usize;

    let mut common = provenance;
    common.insert("representation".into(), json!("pcm_s16le"));
    common.insert("sample_rate".into(), json!(rate));
    common.insert("channels".into(), json!(channels));
    common.insert("source_sample_rate".into(), json!(source_rate));
    common.insert("source_channels".into(), json!(source_channels));
    common.insert("total_samples".into(), json!(total_frames));

    let mut segments = Vec::with_capacity(total_frames.div_ceil(frame_len));
    let mut start = 0usize;
    let mut index = 0usize;
    while start < total_frames {
        let len = frame_len.min(total_frames - start);
        let pcm: Vec<u8> = samples[start * channels..(start + len) * channels]
            .iter()
            .flat_map(|&s| to_s16(s).to_le_bytes())
            .collect();
        let mut metadata = common.clone();
        metadata.insert("frame".into(), json!(index));
        metadata.insert("start_sample".into(), json!(start));
        metadata.insert("num_samples".into(), json!(len));
        metadata.insert(
            "start_ms".into(),
            json!(start as f64 * 1000.0 / f64::from(rate)),
        );
        metadata.insert(
            "duration_ms".into(),
            json!(len as f64 * 1000.0 / f64::from(rate)),
        );
        segments.push(Segment {
            modality,
            label: format!("{label_prefix}frame {index}"),
            byte_range: byte_range.clone(),
            source_id: Some(source_id.to_string()),
            metadata: Value::Object(metadata),
            decoded: Some(pcm),
        });
        start += len;
        index += 1;
    }
    Ok(segments)
}

impl Segmenter for AudioSegmenter {
    fn segment(&self, document: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
        let decoded = decode_audio(document, &self.options)?;
        let source_id = content_source_id(document);
        let file_range = 0..document.len() as u64;
        let mut segments = Vec::new();
        if self.options.include_file_bytes {
            segments.push(Segment {
                modality: Modality::Audio,
                label: "audio file".into(),
                byte_range: file_range.clone(),
                source_id: Some(source_id.clone()),
                metadata: json!({
                    "representation": "file",
                    "container": decoded.provenance.get("container").cloned().unwrap_or(Value::Null),
                }),
                decoded: None,
            });
        }
        segments.extend(frame_segments(
            decoded,
            &self.options,
            "audio.max_decoded_samples",
            file_range,
            &source_id,
            Modality::Audio,
            "",
        )?);
        Ok(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(samples: Vec<f32>, rate: u32, channels: usize) -> DecodedAudio {
        DecodedAudio {
            samples,
            sample_rate: rate,
            channels,
            provenance: serde_json::Map::new(),
        }
    }

    #[test]
    fn frames_tile_the_samples_and_keep_the_partial_last_frame() {
        let options = AudioOptions {
            target_sample_rate: None,
            mono: false,
            frame_ms: 10,
            ..Default::default()
        };
        // 8 kHz stereo, 25 ms: frames of 80 samples → 80, 80, 40.
        let samples: Vec<f32> = (0..200 * 2).map(|i| (i as f32 / 400.0) - 0.5).collect();
        let segs = frame_segments(
            decoded(samples.clone(), 8000, 2),
            &options,
            "audio.max_decoded_samples",
            0..7,
            "id",
            Modality::Audio,
            "",
        )
        .unwrap();
        let lens: Vec<u64> = segs
            .iter()
            .map(|s| s.metadata["num_samples"].as_u64().unwrap())
            .collect();
        assert_eq!(lens, vec![80, 80, 40]);
        let pcm: Vec<u8> = segs
            .iter()
            .flat_map(|s| s.decoded.clone().unwrap())
            .collect();
        let expected: Vec<u8> = samples
            .iter()
            .flat_map(|&s| to_s16(s).to_le_bytes())
            .collect();
        assert_eq!(pcm, expected);
        assert!(segs.iter().all(|s| s.byte_range == (0..7)));
    }

    #[test]
    fn mono_is_the_channel_mean_and_s16_clamps() {
        assert_eq!(mix_to_mono(&[1.0, 0.0, -0.5, -0.5], 2), vec![0.5, -0.5]);
        assert_eq!(to_s16(2.0), 32767);
        assert_eq!(to_s16(-2.0), -32768);
        assert_eq!(to_s16(f32::NAN), 0);
    }

    #[test]
    fn resampling_keeps_duration_and_a_tone() {
        // 1 s of a 440 Hz tone at 44.1 kHz → 16 kHz: 16 000 samples, same frequency.
        let tone: Vec<f32> = (0..44_100)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 44_100.0).sin() * 0.5)
            .collect();
        let out = resample(&tone, 1, 44_100, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        // Compare the middle against the ideal tone at the new rate.
        let err: f32 = (4000..12_000)
            .map(|i| {
                let ideal = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.5;
                (out[i] - ideal).abs()
            })
            .fold(0.0, f32::max);
        // A wrong rate or a whole-sample shift would give errors near the amplitude (0.5); the
        // anti-aliasing filter's ripple and sub-sample delay stay well under a tenth of it.
        assert!(err < 0.05, "max error {err}");
        let rms = (out[4000..12_000].iter().map(|s| s * s).sum::<f32>() / 8000.0).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "rms {rms}");
    }

    /// A 16-bit mono PCM WAV with `samples` samples of a ramp, claiming `rate` Hz.
    fn wav(rate: u32, samples: u32) -> Vec<u8> {
        let data_len = samples * 2;
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&1u16.to_le_bytes()); // mono
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&rate.wrapping_mul(2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for i in 0..samples {
            out.extend_from_slice(&((i as i16).wrapping_mul(97)).to_le_bytes());
        }
        out
    }

    #[test]
    fn a_wav_claiming_billions_of_hz_is_refused_before_resampling() {
        // Found by the `audio` fuzz target: 4 294 964 544 Hz made the resampler allocate > 3 GB.
        let err = AudioSegmenter::default()
            .segment(&wav(0xFFFF_F540, 1000))
            .unwrap_err();
        assert!(err.to_string().contains("implausible sample rate"), "{err}");
        // The same file at 8 kHz decodes: 1000 samples → 2000 at 16 kHz.
        let segs = AudioSegmenter::default().segment(&wav(8000, 1000)).unwrap();
        assert_eq!(segs[0].metadata["total_samples"], 2000);
    }

    #[test]
    fn a_1_hz_wav_is_refused_before_it_is_resampled() {
        // 4 000 samples claiming 1 Hz would resample to 64 million at 16 kHz. The limit of
        // 100 000 is met after the first packet that crosses 100 000 / 16 000 samples, long
        // before the file is decoded, and nothing of the resampled size is allocated.
        let options = AudioOptions {
            max_decoded_samples: 100_000,
            ..Default::default()
        };
        let err = AudioSegmenter::new(options.clone())
            .unwrap()
            .segment(&wav(1, 4000))
            .unwrap_err();
        match err {
            PretokenizeError::LimitExceeded {
                what,
                limit,
                actual,
                option,
            } => {
                assert_eq!(option, "audio.max_decoded_samples");
                assert_eq!(limit, 100_000);
                assert!(what.contains("resampling 1 Hz to 16000 Hz"), "{what}");
                assert!(actual > 100_000, "{actual}");
                // stopped while decoding: not all 4 000 samples (64 M resampled) were counted
                assert!(actual < 4000 * 16_000, "{actual}");
            }
            other => panic!("{other:?}"),
        }
        // The same samples at the target rate are well within the limit.
        let segs = AudioSegmenter::new(options.clone())
            .unwrap()
            .segment(&wav(16_000, 4000))
            .unwrap();
        assert_eq!(segs[0].metadata["total_samples"], 4000);
        // A few samples at 1 Hz resample within the limit (5 → 80 000) and come through.
        let segs = AudioSegmenter::new(options)
            .unwrap()
            .segment(&wav(1, 5))
            .unwrap();
        assert_eq!(
            segs.iter()
                .map(|s| s.decoded.as_ref().unwrap().len())
                .sum::<usize>(),
            80_000 * 2
        );
    }

    #[test]
    fn the_decoded_count_is_limited_too_and_names_its_option() {
        // Downsampling: 48 kHz → 16 kHz makes fewer samples, the decoded count is what breaks.
        let options = AudioOptions {
            max_decoded_samples: 1000,
            ..Default::default()
        };
        let err = AudioSegmenter::new(options)
            .unwrap()
            .segment(&wav(48_000, 3000))
            .unwrap_err();
        assert!(
            matches!(
                &err,
                PretokenizeError::LimitExceeded { what, limit: 1000, option: "audio.max_decoded_samples", .. }
                    if what.starts_with("decoded audio samples")
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("audio.max_decoded_samples"), "{text}");
        assert!(!text.contains("--"), "no command-line flag in {text}");
    }

    #[test]
    fn the_resampler_block_stays_bounded_for_extreme_ratios() {
        for (from, to) in [
            (1, 16_000),
            (3, 16_000),
            (1, 768_000),
            (7, 44_100),
            (255, 768_000),
        ] {
            let resampler = Fft::<f32>::new(
                from,
                to,
                resampler_chunk(from as u32, to as u32),
                1,
                FixedSync::Input,
            )
            .unwrap();
            assert!(
                resampler.fft_size_out() <= MAX_RESAMPLER_BLOCK.max(to),
                "{from} → {to}: {}",
                resampler.fft_size_out()
            );
        }
        // Ordinary rates keep rubato's default chunk (and so its filter).
        for (from, to) in [
            (44_100, 16_000),
            (8000, 16_000),
            (48_000, 16_000),
            (11_025, 48_000),
        ] {
            assert_eq!(resampler_chunk(from, to), 1024, "{from} → {to}");
        }
        // The output length is still ceil(frames × to / from) with the smaller chunk.
        let out = resample(&[0.25, -0.25, 0.5], 1, 1, 16_000).unwrap();
        assert_eq!(out.len(), 48_000);
    }

    #[test]
    fn invalid_options_are_refused() {
        assert!(AudioSegmenter::new(AudioOptions {
            frame_ms: 0,
            ..Default::default()
        })
        .is_err());
        assert!(AudioSegmenter::new(AudioOptions {
            target_sample_rate: Some(0),
            ..Default::default()
        })
        .is_err());
    }
}
