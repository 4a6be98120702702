//! The pre-tokenizer that the detection and pre-tokenization flags describe: the one place where
//! `PretokenizeArgs` (shared by `blt ingest` and `blt detect`) becomes `PretokenizeOptions`.

use anyhow::Context;
use blt_pretokenize::{
    AudioOptions, BinaryOptions, CodeOptions, ContainerLimits, HfPreTokenizer, ImageColor,
    ImageOptions, PdfOptions, PretokenizeOptions, Pretokenizer, TextOptions, TextSplit,
    VideoOptions,
};

use crate::args::{ImageColorArg, PretokenizeArgs};

/// Every pre-tokenizer option the flags set, checked (a zero patch size or frame length is an
/// error here, before the first document).
pub fn options(args: &PretokenizeArgs) -> anyhow::Result<PretokenizeOptions> {
    let forced_modality = args
        .modality
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("invalid --modality")?;
    let audio = AudioOptions {
        target_sample_rate: args.audio_sample_rate.0,
        mono: !args.audio_keep_channels,
        frame_ms: args.audio_frame_ms,
        max_decoded_samples: args.audio_max_decoded_samples,
        include_file_bytes: args.audio_include_file_bytes,
    };
    let options = PretokenizeOptions {
        forced_modality,
        text: TextOptions {
            split: text_split(args)?,
            max_segment_bytes: args.text_max_segment_bytes,
            pretokens_per_segment: args.text_pretokens_per_segment,
            max_segments: args.text_max_segments,
        },
        code: CodeOptions {
            attach_leading_comments: !args.code_detached_comments,
            ..CodeOptions::default()
        },
        pdf: PdfOptions {
            raw_view: !args.pdf_no_raw_view,
            max_pages: args.pdf_max_pages,
            max_text_bytes: args.pdf_max_text_bytes,
            ..PdfOptions::default()
        },
        binary: BinaryOptions {
            max_sections: args.binary_max_sections,
        },
        container: ContainerLimits {
            max_members: args.zip_max_members,
            max_member_bytes: args.zip_max_member_bytes,
            max_total_bytes: args.zip_max_total_bytes,
            max_ratio: args.zip_max_ratio,
        },
        image: ImageOptions {
            max_side: args.image_max_side.0,
            patch_size: args.image_patch_size.0,
            patch_stride: args.image_patch_stride,
            color: match args.image_color {
                ImageColorArg::Rgb8 => ImageColor::Rgb8,
                ImageColorArg::Rgba8 => ImageColor::Rgba8,
                ImageColorArg::Luma8 => ImageColor::Luma8,
            },
            max_decoded_pixels: args.image_max_decoded_pixels,
            include_file_bytes: args.image_include_file_bytes,
        },
        video: VideoOptions {
            frames_per_second: args.video_fps.0,
            max_side: args.video_max_side.0,
            max_decoded_pixels: args.video_max_decoded_pixels,
            max_frames: args.video_max_frames,
            max_total_pixels: args.video_max_total_pixels,
            audio: audio.clone(),
            include_audio: !args.video_no_audio,
            include_file_bytes: args.video_include_file_bytes,
        },
        audio,
    };
    options
        .validate()
        .context("invalid --image-*, --audio-* or --video-* flags")?;
    Ok(options)
}

/// --text-split, with the pre-tokenizer file of `pretokenizer`.
fn text_split(args: &PretokenizeArgs) -> anyhow::Result<TextSplit> {
    match (args.text_split.as_str(), &args.text_pretokenizer) {
        ("pretokenizer", Some(path)) => {
            Ok(TextSplit::PreTokenizer(HfPreTokenizer::from_file(path)?))
        }
        ("pretokenizer", None) => {
            anyhow::bail!("--text-split pretokenizer needs --text-pretokenizer FILE")
        }
        (split, Some(_)) => anyhow::bail!(
            "--text-pretokenizer is only used with --text-split pretokenizer (not {split})"
        ),
        (split, None) => split
            .parse()
            .map_err(anyhow::Error::msg)
            .context("invalid --text-split"),
    }
}

/// The pre-tokenizer the flags describe.
pub fn pretokenizer(args: &PretokenizeArgs) -> anyhow::Result<Pretokenizer> {
    Ok(Pretokenizer::new(options(args)?))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn parse(flags: &[&str]) -> PretokenizeOptions {
        let argv = ["blt", "detect", "x"].iter().chain(flags);
        let Command::Detect(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        options(&args.pretokenize).unwrap()
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let cli = parse(&[]);
        let lib = PretokenizeOptions::default();
        assert_eq!(cli.image, lib.image);
        assert_eq!(cli.audio, lib.audio);
        assert_eq!(cli.video, lib.video);
        assert_eq!(cli.text, lib.text);
        assert_eq!(cli.pdf, lib.pdf);
        assert_eq!(cli.binary, lib.binary);
        assert_eq!(cli.container, lib.container);
        assert_eq!(cli.code, lib.code);
        assert_eq!(cli.forced_modality, None);
    }

    #[test]
    fn every_media_flag_reaches_its_option() {
        let o = parse(&[
            "--image-max-side=none",
            "--image-patch-size=8",
            "--image-patch-stride=4",
            "--image-color=luma8",
            "--image-max-decoded-pixels=1000",
            "--image-include-file-bytes",
            "--audio-sample-rate=none",
            "--audio-keep-channels",
            "--audio-frame-ms=20",
            "--audio-max-decoded-samples=99",
            "--audio-include-file-bytes",
            "--video-fps=2.5",
            "--video-max-side=64",
            "--video-max-decoded-pixels=77",
            "--video-max-frames=5",
            "--video-no-audio",
            "--video-include-file-bytes",
        ]);
        assert_eq!(
            o.image,
            ImageOptions {
                max_side: None,
                patch_size: Some(8),
                patch_stride: Some(4),
                color: ImageColor::Luma8,
                max_decoded_pixels: 1000,
                include_file_bytes: true,
            }
        );
        let audio = AudioOptions {
            target_sample_rate: None,
            mono: false,
            frame_ms: 20,
            max_decoded_samples: 99,
            include_file_bytes: true,
        };
        assert_eq!(o.audio, audio);
        assert_eq!(
            o.video,
            VideoOptions {
                frames_per_second: Some(2.5),
                max_side: Some(64),
                max_decoded_pixels: 77,
                max_frames: 5,
                max_total_pixels: blt_pretokenize::DEFAULT_MAX_TOTAL_VIDEO_PIXELS,
                audio,
                include_audio: false,
                include_file_bytes: true,
            }
        );
        assert_eq!(parse(&["--image-patch-size=none"]).image.patch_size, None);
    }

    fn try_parse(flags: &[&str]) -> anyhow::Result<PretokenizeOptions> {
        let argv = ["blt", "detect", "x"].iter().chain(flags);
        let Command::Detect(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        options(&args.pretokenize)
    }

    #[test]
    fn the_pre_tokenizer_flags_need_each_other_and_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pre.json");
        std::fs::write(&file, r#"{"type": "Whitespace"}"#).unwrap();
        let file = file.to_str().unwrap();
        let o = try_parse(&[
            "--text-split=pretokenizer",
            "--text-pretokenizer",
            file,
            "--text-pretokens-per-segment=3",
        ])
        .unwrap();
        assert!(matches!(o.text.split, TextSplit::PreTokenizer(_)));
        assert_eq!(o.text.pretokens_per_segment, 3);
        let e = try_parse(&["--text-split=pretokenizer"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("--text-pretokenizer FILE"),
            "{e:#}"
        );
        let e = try_parse(&["--text-split=lines", "--text-pretokenizer", file]).unwrap_err();
        assert!(format!("{e:#}").contains("only used with"), "{e:#}");
        let missing = dir.path().join("missing.json");
        let missing = missing.to_str().unwrap();
        let e =
            try_parse(&["--text-split=pretokenizer", "--text-pretokenizer", missing]).unwrap_err();
        assert!(format!("{e:#}").contains(missing), "{e:#}");
    }

    #[test]
    fn media_options_that_cannot_work_are_refused_before_any_document() {
        for flags in [
            &["--image-patch-size=0"][..],
            &["--image-patch-size=4", "--image-patch-stride=8"],
            &["--audio-frame-ms=0"],
            &["--audio-sample-rate=0"],
            &["--video-fps=0"],
            &["--video-max-side=0"],
        ] {
            let argv = ["blt", "detect", "x"].iter().chain(flags);
            let Command::Detect(args) = Cli::try_parse_from(argv).unwrap().command else {
                unreachable!()
            };
            let e = options(&args.pretokenize).unwrap_err();
            assert!(format!("{e:#}").contains("invalid"), "{flags:?}: {e:#}");
        }
        assert!(Cli::try_parse_from(["blt", "detect", "x", "--image-max-side=big"]).is_err());
    }
}
