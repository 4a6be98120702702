//! `VideoSegmenter` (feature `video`) on videos that Debian's `ffmpeg` makes at test time from
//! real files: the `adwaita-icon-theme` PNG icon (with its hue turning over time, so frames
//! differ) as the picture and the `alsa-utils` WAV as the sound track, in MP4 (MPEG-4 part 2 +
//! AAC) and WebM (VP8 + Vorbis). Checks frame sampling by time, resizing, the audio track against
//! `AudioSegmenter` on the same WAV, a frame against ffmpeg's own decoding, and damaged files.
#![cfg(feature = "video")]

mod media_support;

use std::path::Path;

use blt_pretokenize::{
    AudioOptions, AudioSegmenter, Modality, PretokenizeError, Segment, Segmenter, VideoOptions,
    VideoSegmenter,
};
use media_support::{damaged_versions, ffmpeg, system_file, within, ICON_PNG, SPEECH_WAV};

/// 2.5 s of 320×240 video at 10 fps with the WAV (about 1.4 s) as its audio track.
fn make_video(dir: &Path, name: &str, codecs: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let mut args = vec![
        "-loop",
        "1",
        "-framerate",
        "10",
        "-i",
        ICON_PNG,
        "-i",
        SPEECH_WAV,
        "-t",
        "2.5",
        "-vf",
        "scale=320:240,hue=h=t*120,format=yuv420p",
    ];
    args.extend_from_slice(codecs);
    args.push(out.to_str().expect("temp paths are UTF-8"));
    ffmpeg(&args);
    std::fs::read(&out).expect("ffmpeg wrote the video")
}

fn mp4(dir: &Path) -> Vec<u8> {
    make_video(
        dir,
        "clip.mp4",
        &["-c:v", "mpeg4", "-q:v", "3", "-c:a", "aac"],
    )
}

fn segment(options: VideoOptions, bytes: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
    VideoSegmenter::new(options)
        .expect("valid options")
        .segment(bytes)
}

fn meta_u64(seg: &Segment, key: &str) -> u64 {
    seg.metadata[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {}", seg.metadata))
}

fn split(segs: &[Segment]) -> (Vec<&Segment>, Vec<&Segment>) {
    let video: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.modality == Modality::Video)
        .collect();
    let audio: Vec<&Segment> = segs
        .iter()
        .filter(|s| s.modality == Modality::Audio)
        .collect();
    // All video frames come first, then the audio frames.
    assert!(segs[..video.len()]
        .iter()
        .all(|s| s.modality == Modality::Video));
    (video, audio)
}

#[test]
fn mp4_gives_one_resized_frame_per_second_then_the_audio_track() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = mp4(dir.path());
    let segs = segment(VideoOptions::default(), &bytes).unwrap();
    let (video, audio) = split(&segs);
    // 2.5 s at one frame per second: t = 0, 1, 2.
    let times: Vec<f64> = video
        .iter()
        .map(|s| s.metadata["time_s"].as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 3, "{times:?}");
    for (i, t) in times.iter().enumerate() {
        assert!((t - i as f64).abs() < 0.06, "{times:?}");
    }
    for (i, seg) in video.iter().enumerate() {
        assert_eq!(seg.metadata["representation"], "rgb8");
        assert_eq!(
            (meta_u64(seg, "width"), meta_u64(seg, "height")),
            (256, 192)
        );
        assert_eq!(
            (
                meta_u64(seg, "source_width"),
                meta_u64(seg, "source_height")
            ),
            (320, 240)
        );
        assert_eq!(meta_u64(seg, "frame"), i as u64);
        assert_eq!(seg.decoded.as_ref().unwrap().len(), 256 * 192 * 3);
        assert_eq!(seg.byte_range, 0..bytes.len() as u64);
    }
    assert_eq!(meta_u64(video[2], "source_frame"), 20);
    // The hue turns, so the frames differ.
    assert_ne!(video[0].decoded, video[1].decoded);

    // The audio track is framed like AudioSegmenter frames the WAV it came from.
    let wav = AudioSegmenter::default()
        .segment(&system_file(SPEECH_WAV))
        .unwrap();
    let wav_total = meta_u64(&wav[0], "total_samples");
    let total = meta_u64(audio[0], "total_samples");
    assert!(total.abs_diff(wav_total) <= 2048, "{total} vs {wav_total}");
    assert_eq!(audio.len(), wav.len());
    assert_eq!(audio[0].metadata["representation"], "pcm_s16le");
    assert_eq!(audio[0].label, "audio frame 0");
    let mut next = 0;
    for seg in &audio {
        assert_eq!(meta_u64(seg, "start_sample"), next);
        next += meta_u64(seg, "num_samples");
        assert_eq!(
            seg.decoded.as_ref().unwrap().len() as u64,
            meta_u64(seg, "num_samples") * 2
        );
    }
    assert_eq!(
        next, total,
        "audio frames tile the samples, last partial frame kept"
    );
    let ids: std::collections::HashSet<_> = segs.iter().map(|s| s.source_id.clone()).collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn frame_rate_option_selects_frames_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = mp4(dir.path());
    let all = segment(
        VideoOptions {
            frames_per_second: None,
            include_audio: false,
            ..Default::default()
        },
        &bytes,
    )
    .unwrap();
    assert_eq!(all.len(), 25);
    assert!(all.iter().all(|s| s.modality == Modality::Video));
    let four = segment(
        VideoOptions {
            frames_per_second: Some(4.0),
            include_audio: false,
            ..Default::default()
        },
        &bytes,
    )
    .unwrap();
    // Kept: the first frame at or after t = 0, 0.25, 0.5, … 2.25 → 10 frames.
    assert_eq!(four.len(), 10);
}

#[test]
fn an_unresized_frame_matches_ffmpegs_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = mp4(dir.path());
    let clip = dir.path().join("clip.mp4");
    let segs = segment(
        VideoOptions {
            max_side: None,
            include_audio: false,
            ..Default::default()
        },
        &bytes,
    )
    .unwrap();
    let ours = segs[0].decoded.as_ref().unwrap();
    let reference_path = dir.path().join("frame0.rgb");
    ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        reference_path.to_str().unwrap(),
    ]);
    let reference = std::fs::read(&reference_path).unwrap();
    assert_eq!(ours.len(), reference.len());
    let mean_abs: f64 = ours
        .iter()
        .zip(&reference)
        .map(|(&a, &b)| f64::from(a.abs_diff(b)))
        .sum::<f64>()
        / ours.len() as f64;
    assert!(mean_abs < 2.0, "mean |difference| {mean_abs}");
}

#[test]
fn webm_vp8_vorbis_decodes_and_include_file_bytes_adds_the_raw_view() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = make_video(
        dir.path(),
        "clip.webm",
        &["-c:v", "libvpx", "-b:v", "300k", "-c:a", "libvorbis"],
    );
    let segs = segment(
        VideoOptions {
            include_file_bytes: true,
            audio: AudioOptions {
                frame_ms: 500,
                ..Default::default()
            },
            ..Default::default()
        },
        &bytes,
    )
    .unwrap();
    assert_eq!(segs[0].label, "video file");
    assert_eq!(segs[0].bytes(&bytes), &bytes[..]);
    let (video, audio) = split(&segs);
    assert_eq!(video.len(), 4, "raw view + 3 frames");
    assert_eq!(video[1].metadata["codec"], "vp8");
    assert_eq!(audio[0].metadata["codec"], "vorbis");
    assert!(audio.len() >= 3, "1.4 s in 500 ms frames");
}

#[test]
fn damaged_videos_give_a_typed_error_or_a_partial_result_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = mp4(dir.path());
    for (damage, bytes) in damaged_versions(&good) {
        let what = format!("mp4 {damage}");
        let result = within(60, &what, move || segment(VideoOptions::default(), &bytes));
        match result {
            Ok(segs) => assert!(!segs.is_empty(), "{what}"),
            Err(PretokenizeError::Decode { reason, .. }) => assert!(!reason.is_empty()),
            Err(PretokenizeError::LimitExceeded { .. }) => {}
            Err(other) => panic!("{what}: unexpected {other}"),
        }
    }
    let err = segment(VideoOptions::default(), b"definitely not a video").unwrap_err();
    assert!(
        matches!(
            err,
            PretokenizeError::Decode {
                format: "video",
                ..
            }
        ),
        "{err}"
    );
    let err = segment(
        VideoOptions {
            max_decoded_pixels: 1000,
            ..Default::default()
        },
        &good,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PretokenizeError::LimitExceeded {
                actual: 76_800,
                option: "video.max_decoded_pixels",
                ..
            }
        ),
        "{err}"
    );
    let err = segment(
        VideoOptions {
            max_frames: 2,
            ..Default::default()
        },
        &good,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PretokenizeError::LimitExceeded {
                limit: 2,
                actual: 3,
                option: "video.max_frames",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn kept_pixels_in_all_and_the_sound_track_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let good = mp4(dir.path());
    // Frames kept unresized (320 × 240 = 76 800 pixels): two fit in 160 000, the third does not,
    // although each frame is within max_decoded_pixels and 3 frames within max_frames.
    let unresized = VideoOptions {
        max_side: None,
        max_total_pixels: 160_000,
        ..Default::default()
    };
    let err = segment(unresized.clone(), &good).unwrap_err();
    assert!(
        matches!(
            err,
            PretokenizeError::LimitExceeded {
                limit: 160_000,
                actual: 230_400,
                option: "video.max_total_pixels",
                ..
            }
        ),
        "{err}"
    );
    // Resized to 256 × 192 (49 152 pixels) the same three frames fit.
    let resized = VideoOptions {
        max_total_pixels: 160_000,
        ..Default::default()
    };
    let segs = segment(resized, &good).unwrap();
    assert_eq!(split(&segs).0.len(), 3);
    // The sound track (about 1.4 s) resampled to 16 kHz is over 20 000 samples: its own option.
    let err = segment(
        VideoOptions {
            audio: AudioOptions {
                max_decoded_samples: 20_000,
                ..Default::default()
            },
            ..Default::default()
        },
        &good,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PretokenizeError::LimitExceeded {
                limit: 20_000,
                option: "video.audio.max_decoded_samples",
                ..
            }
        ),
        "{err}"
    );
}
