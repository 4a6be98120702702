//! `AudioSegmenter` on real audio: a WAV from `alsa-utils`, an OGG/Vorbis chime from
//! `sound-theme-freedesktop`, and the WAV transcoded by Debian's `ffmpeg` into MP3, AAC (ADTS),
//! M4A and FLAC at test time. Checks samples against ffmpeg's own decoder, the framing rule
//! (frames tile the samples, partial last frame kept), resampling, and damaged files.

mod media_support;

use blt_pretokenize::{
    AudioOptions, AudioSegmenter, Modality, PretokenizeError, Segment, Segmenter,
};
use media_support::{
    damaged_versions, ffmpeg_decode, system_file, transcode, within, CHIME_OGA, SPEECH_WAV,
};

/// No mixdown, no resampling: the file's own samples.
fn native() -> AudioOptions {
    AudioOptions {
        target_sample_rate: None,
        mono: false,
        ..Default::default()
    }
}

fn segment(options: AudioOptions, bytes: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
    AudioSegmenter::new(options)
        .expect("valid options")
        .segment(bytes)
}

fn meta_u64(seg: &Segment, key: &str) -> u64 {
    seg.metadata[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {}", seg.metadata))
}

/// All frames' PCM concatenated, after checking that the frames tile the samples in order.
fn concatenated_pcm(segs: &[Segment]) -> Vec<u8> {
    let channels = meta_u64(&segs[0], "channels");
    let total = meta_u64(&segs[0], "total_samples");
    let mut next = 0;
    let mut pcm = Vec::new();
    for seg in segs {
        assert_eq!(seg.modality, Modality::Audio);
        assert_eq!(seg.metadata["representation"], "pcm_s16le");
        assert_eq!(meta_u64(seg, "start_sample"), next, "{}", seg.label);
        let n = meta_u64(seg, "num_samples");
        let data = seg.decoded.as_ref().expect("frames carry decoded samples");
        assert_eq!(data.len() as u64, n * channels * 2);
        pcm.extend_from_slice(data);
        next += n;
    }
    assert_eq!(next, total, "frames tile 0..total_samples");
    pcm
}

fn as_i16(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

#[test]
fn wav_and_flac_samples_equal_ffmpegs_decoding_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let wav = system_file(SPEECH_WAV);
    let flac = transcode(dir.path(), SPEECH_WAV, "speech.flac", &[]);
    let reference = ffmpeg_decode(
        dir.path(),
        SPEECH_WAV,
        &["-f", "s16le", "-c:a", "pcm_s16le"],
    );
    for (name, bytes) in [("wav", &wav), ("flac", &flac)] {
        let segs = segment(native(), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(segs[0].metadata["partial"], false, "{name}");
        assert_eq!(meta_u64(&segs[0], "sample_rate"), 48_000, "{name}");
        let pcm = concatenated_pcm(&segs);
        assert_eq!(pcm.len(), reference.len(), "{name}: sample count");
        assert!(pcm == reference, "{name}: samples differ from ffmpeg's");
        assert!(segs.iter().all(|s| s.byte_range == (0..bytes.len() as u64)));
    }
}

#[test]
fn lossy_formats_decode_to_the_same_sound() {
    let dir = tempfile::tempdir().unwrap();
    let reference = as_i16(&ffmpeg_decode(
        dir.path(),
        SPEECH_WAV,
        &["-f", "s16le", "-c:a", "pcm_s16le", "-ac", "1"],
    ));
    let files = [
        (
            "mp3",
            transcode(
                dir.path(),
                SPEECH_WAV,
                "speech.mp3",
                &["-c:a", "libmp3lame", "-b:a", "128k"],
            ),
        ),
        (
            "aac",
            transcode(
                dir.path(),
                SPEECH_WAV,
                "speech.aac",
                &["-c:a", "aac", "-b:a", "128k"],
            ),
        ),
        (
            "m4a",
            transcode(
                dir.path(),
                SPEECH_WAV,
                "speech.m4a",
                &["-c:a", "aac", "-b:a", "128k"],
            ),
        ),
        (
            "ogg",
            transcode(dir.path(), SPEECH_WAV, "speech.ogg", &["-c:a", "libvorbis"]),
        ),
    ];
    for (name, bytes) in &files {
        let options = AudioOptions {
            target_sample_rate: None,
            ..Default::default()
        };
        let segs = segment(options, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let samples = as_i16(&concatenated_pcm(&segs));
        // Encoder delay and padding differ by at most a few codec frames.
        let diff = samples.len().abs_diff(reference.len());
        assert!(
            diff <= 4096,
            "{name}: {} samples vs {}",
            samples.len(),
            reference.len()
        );
        let (a, b) = (rms(&samples), rms(&reference));
        assert!((a - b).abs() / b < 0.1, "{name}: rms {a} vs {b}");
        assert!(b > 100.0, "the reference is not silence");
    }
}

#[test]
fn real_ogg_vorbis_chime_defaults_to_16k_mono_one_second_frames() {
    let dir = tempfile::tempdir().unwrap();
    let oga = system_file(CHIME_OGA);
    let segs = segment(AudioOptions::default(), &oga).unwrap();
    let first = &segs[0];
    assert_eq!(first.metadata["container"], "ogg");
    assert_eq!(first.metadata["codec"], "vorbis");
    assert_eq!(meta_u64(first, "sample_rate"), 16_000);
    assert_eq!(meta_u64(first, "channels"), 1);
    let source_rate = meta_u64(first, "source_sample_rate");
    let total = meta_u64(first, "total_samples");
    // ffmpeg's count of the file's samples at its own rate, rescaled to 16 kHz.
    let native = ffmpeg_decode(
        dir.path(),
        CHIME_OGA,
        &["-f", "s16le", "-c:a", "pcm_s16le", "-ac", "1"],
    );
    let expected = (native.len() as u64 / 2 * 16_000).div_ceil(source_rate);
    assert!(total.abs_diff(expected) <= 2, "{total} vs {expected}");
    // Frames of 16 000 samples, the last one partial and kept.
    let frames = total.div_ceil(16_000);
    assert_eq!(segs.len() as u64, frames);
    for seg in &segs[..segs.len() - 1] {
        assert_eq!(meta_u64(seg, "num_samples"), 16_000);
    }
    assert_eq!(
        meta_u64(segs.last().unwrap(), "num_samples"),
        total - (frames - 1) * 16_000
    );
    concatenated_pcm(&segs);
}

#[test]
fn partial_last_frame_is_kept_at_any_frame_length() {
    let wav = system_file(SPEECH_WAV);
    for frame_ms in [7, 100, 333, 10_000] {
        let segs = segment(
            AudioOptions {
                frame_ms,
                ..Default::default()
            },
            &wav,
        )
        .unwrap();
        let total = meta_u64(&segs[0], "total_samples");
        let frame_len = (16 * u64::from(frame_ms)).max(1);
        assert_eq!(
            segs.len() as u64,
            total.div_ceil(frame_len),
            "frame_ms {frame_ms}"
        );
        concatenated_pcm(&segs);
    }
}

#[test]
fn include_file_bytes_puts_every_input_byte_in_one_raw_segment() {
    let wav = system_file(SPEECH_WAV);
    let segs = segment(
        AudioOptions {
            include_file_bytes: true,
            ..Default::default()
        },
        &wav,
    )
    .unwrap();
    assert!(segs[0].decoded.is_none());
    assert_eq!(segs[0].bytes(&wav), &wav[..]);
    assert_eq!(segs[0].label, "audio file");
    assert!(segs[1..].iter().all(|s| s.decoded.is_some()));
    assert!(segs.iter().all(|s| s.source_id == segs[0].source_id));
}

#[test]
fn the_decoded_sample_limit_is_a_typed_error() {
    let wav = system_file(SPEECH_WAV);
    let err = segment(
        AudioOptions {
            max_decoded_samples: 10_000,
            ..Default::default()
        },
        &wav,
    )
    .unwrap_err();
    assert!(
        matches!(err, PretokenizeError::LimitExceeded { limit: 10_000, .. }),
        "{err}"
    );
}

#[test]
fn a_wav_cut_in_half_gives_the_first_half() {
    let wav = system_file(SPEECH_WAV);
    let full = concatenated_pcm(&segment(native(), &wav).unwrap());
    let half = &wav[..wav.len() / 2];
    let segs = segment(native(), half).unwrap();
    let pcm = concatenated_pcm(&segs);
    assert!(pcm.len() > full.len() / 3 && pcm.len() < full.len());
    assert!(
        full.starts_with(&pcm),
        "the decoded half is a prefix of the whole"
    );
}

#[test]
fn damaged_audio_gives_a_typed_error_or_a_partial_result_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("wav", system_file(SPEECH_WAV)),
        ("ogg", system_file(CHIME_OGA)),
        (
            "mp3",
            transcode(dir.path(), SPEECH_WAV, "s.mp3", &["-c:a", "libmp3lame"]),
        ),
        (
            "aac",
            transcode(dir.path(), SPEECH_WAV, "s.aac", &["-c:a", "aac"]),
        ),
        (
            "m4a",
            transcode(dir.path(), SPEECH_WAV, "s.m4a", &["-c:a", "aac"]),
        ),
        ("flac", transcode(dir.path(), SPEECH_WAV, "s.flac", &[])),
    ];
    let mut partial = 0;
    for (format, good) in files {
        for (damage, bytes) in damaged_versions(&good) {
            let what = format!("{format} {damage}");
            let result = within(60, &what, move || segment(AudioOptions::default(), &bytes));
            match result {
                Ok(segs) => {
                    assert!(!segs.is_empty(), "{what}: Ok must carry samples");
                    concatenated_pcm(&segs);
                    partial += 1;
                }
                Err(PretokenizeError::Decode { reason, .. }) => assert!(!reason.is_empty()),
                Err(PretokenizeError::LimitExceeded { .. }) => {}
                Err(other) => panic!("{what}: unexpected {other}"),
            }
        }
    }
    // Cut-in-half files of every format still give their first half.
    assert!(
        partial >= 6,
        "{partial} damaged files gave a partial result"
    );
    let err = segment(AudioOptions::default(), b"not audio at all, just text").unwrap_err();
    assert!(matches!(err, PretokenizeError::Decode { .. }), "{err}");
}
