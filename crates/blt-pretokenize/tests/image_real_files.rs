//! `ImageSegmenter` on real images: a PNG icon from `adwaita-icon-theme`, and that icon transcoded
//! by Debian's `ffmpeg` into JPEG, GIF, WebP, BMP and TIFF at test time. Checks decoding against
//! ffmpeg's own decoder, the byte-accounting rule (every pixel in exactly one patch), resizing,
//! the decompression-bomb limit, and damaged files.

mod media_support;

use std::collections::HashSet;

use blt_pretokenize::{
    ImageColor, ImageOptions, ImageSegmenter, Modality, PretokenizeError, Segment, Segmenter,
};
use media_support::{damaged_versions, ffmpeg_decode, system_file, transcode, within, ICON_PNG};

fn segment(options: ImageOptions, bytes: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
    ImageSegmenter::new(options)
        .expect("valid options")
        .segment(bytes)
}

fn meta_u64(seg: &Segment, key: &str) -> u64 {
    seg.metadata[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {}", seg.metadata))
}

/// Reassembles non-overlapping patches into the full image, checking that every pixel is written
/// exactly once.
fn reassemble(segments: &[Segment], channels: usize) -> (u64, u64, Vec<u8>) {
    let width = meta_u64(&segments[0], "image_width");
    let height = meta_u64(&segments[0], "image_height");
    let mut image = vec![0u8; (width * height) as usize * channels];
    let mut written = vec![0u8; (width * height) as usize];
    for seg in segments {
        let (x, y) = (meta_u64(seg, "x"), meta_u64(seg, "y"));
        let (w, h) = (meta_u64(seg, "width"), meta_u64(seg, "height"));
        let data = seg.decoded.as_ref().expect("patches carry decoded pixels");
        assert_eq!(data.len() as u64, w * h * channels as u64, "{}", seg.label);
        for row in 0..h {
            for col in 0..w {
                let pixel = ((y + row) * width + x + col) as usize;
                written[pixel] += 1;
                let src = ((row * w + col) as usize) * channels;
                image[pixel * channels..(pixel + 1) * channels]
                    .copy_from_slice(&data[src..src + channels]);
            }
        }
    }
    assert!(
        written.iter().all(|&n| n == 1),
        "every pixel must be in exactly one patch"
    );
    (width, height, image)
}

#[test]
fn png_pixels_equal_ffmpegs_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let png = system_file(ICON_PNG);
    let reference = ffmpeg_decode(
        dir.path(),
        ICON_PNG,
        &["-f", "rawvideo", "-pix_fmt", "rgba"],
    );
    let whole = segment(
        ImageOptions {
            max_side: None,
            patch_size: None,
            color: ImageColor::Rgba8,
            ..Default::default()
        },
        &png,
    )
    .unwrap();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].metadata["representation"], "rgba8");
    assert_eq!(meta_u64(&whole[0], "image_width"), 512);
    assert_eq!(meta_u64(&whole[0], "image_height"), 512);
    assert!(
        whole[0].decoded.as_deref() == Some(&reference[..]),
        "pixels differ from ffmpeg's"
    );
}

#[test]
fn every_format_decodes_and_patches_account_for_every_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let png = system_file(ICON_PNG);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("png", png.clone()),
        (
            "jpeg",
            transcode(dir.path(), ICON_PNG, "icon.jpg", &["-q:v", "3"]),
        ),
        ("gif", transcode(dir.path(), ICON_PNG, "icon.gif", &[])),
        (
            "webp",
            transcode(dir.path(), ICON_PNG, "icon.webp", &["-c:v", "libwebp"]),
        ),
        ("bmp", transcode(dir.path(), ICON_PNG, "icon.bmp", &[])),
        ("tiff", transcode(dir.path(), ICON_PNG, "icon.tiff", &[])),
    ];
    for (format, bytes) in &files {
        let options = ImageOptions::default(); // 256 max side, 16×16 patches, rgb8
        let patches = segment(options.clone(), bytes).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(patches.len(), 16 * 16, "{format}: 256/16 squared patches");
        let source_ids: HashSet<_> = patches.iter().map(|s| s.source_id.clone()).collect();
        assert_eq!(source_ids.len(), 1, "{format}: one source id");
        for seg in &patches {
            assert_eq!(seg.modality, Modality::Image);
            assert_eq!(
                seg.byte_range,
                0..bytes.len() as u64,
                "{format}: whole file"
            );
            assert_eq!(seg.metadata["representation"], "rgb8");
            assert_eq!(seg.metadata["format"], *format);
            assert_eq!(seg.metadata["resized"], true);
            assert_eq!(meta_u64(seg, "source_width"), 512);
        }
        let (w, h, pixels) = reassemble(&patches, 3);
        assert_eq!((w, h), (256, 256));
        // The same options without patches give the same pixels as one segment.
        let whole = segment(
            ImageOptions {
                patch_size: None,
                ..options
            },
            bytes,
        )
        .unwrap();
        assert_eq!(whole.len(), 1);
        assert!(
            whole[0].decoded.as_deref() == Some(&pixels[..]),
            "{format}: whole ≠ patches"
        );
        // Not a blank image: the icon has many colours.
        let colours: HashSet<&[u8]> = pixels.chunks(3).collect();
        assert!(colours.len() > 100, "{format}: {} colours", colours.len());
    }
}

#[test]
fn lossless_formats_agree_with_png_pixel_for_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let png = system_file(ICON_PNG);
    let options = ImageOptions {
        max_side: None,
        patch_size: None,
        color: ImageColor::Rgba8,
        ..Default::default()
    };
    let reference = segment(options.clone(), &png).unwrap()[0]
        .decoded
        .clone()
        .unwrap();
    for (name, args) in [
        ("icon.tiff", &[][..]),
        (
            "icon-lossless.webp",
            &["-c:v", "libwebp", "-lossless", "1"][..],
        ),
    ] {
        let bytes = transcode(dir.path(), ICON_PNG, name, args);
        let got = segment(options.clone(), &bytes).unwrap()[0]
            .decoded
            .clone()
            .unwrap();
        assert_eq!(got.len(), reference.len(), "{name}");
        // Lossless WebP may rewrite the colour of fully transparent pixels; every visible pixel
        // must be identical.
        let differing = got
            .chunks(4)
            .zip(reference.chunks(4))
            .filter(|(a, b)| b[3] != 0 && a != b)
            .count();
        assert_eq!(differing, 0, "{name}: {differing} visible pixels differ");
        let visible = reference.chunks(4).filter(|p| p[3] != 0).count();
        assert!(visible > 10_000, "{visible} visible pixels");
    }
}

#[test]
fn edge_patches_are_kept_and_resize_keeps_the_aspect_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = transcode(dir.path(), ICON_PNG, "wide.png", &["-vf", "scale=300:200"]);
    let patches = segment(
        ImageOptions {
            max_side: Some(150),
            patch_size: Some(32),
            ..Default::default()
        },
        &bytes,
    )
    .unwrap();
    // 150×100 in 32-pixel patches: 5 columns (the last 22 wide) × 4 rows (the last 4 high).
    assert_eq!(patches.len(), 5 * 4);
    let (w, h, _) = reassemble(&patches, 3);
    assert_eq!((w, h), (150, 100));
    let last = patches.last().unwrap();
    assert_eq!((meta_u64(last, "width"), meta_u64(last, "height")), (22, 4));
    assert_eq!(last.label, "patch 3,4");
}

#[test]
fn overlapping_patches_cover_every_pixel_at_least_once() {
    let png = system_file(ICON_PNG);
    let patches = segment(
        ImageOptions {
            max_side: Some(100),
            patch_size: Some(16),
            patch_stride: Some(12),
            color: ImageColor::Luma8,
            ..Default::default()
        },
        &png,
    )
    .unwrap();
    let mut covered = vec![0u32; 100 * 100];
    for seg in &patches {
        let (x, y) = (meta_u64(seg, "x"), meta_u64(seg, "y"));
        let (w, h) = (meta_u64(seg, "width"), meta_u64(seg, "height"));
        assert_eq!(seg.decoded.as_ref().unwrap().len() as u64, w * h);
        for row in y..y + h {
            for col in x..x + w {
                covered[(row * 100 + col) as usize] += 1;
            }
        }
    }
    assert!(covered.iter().all(|&n| n >= 1));
}

#[test]
fn include_file_bytes_puts_every_input_byte_in_one_raw_segment() {
    let png = system_file(ICON_PNG);
    let segs = segment(
        ImageOptions {
            include_file_bytes: true,
            ..Default::default()
        },
        &png,
    )
    .unwrap();
    let raw: Vec<&Segment> = segs.iter().filter(|s| s.decoded.is_none()).collect();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].byte_range, 0..png.len() as u64);
    assert_eq!(raw[0].bytes(&png), &png[..]);
    assert_eq!(raw[0].metadata["representation"], "file");
    assert!(segs.iter().all(|s| s.source_id == raw[0].source_id));
}

/// A PNG whose IHDR claims `width × height` (valid CRC), followed by a tiny IDAT and IEND.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    // 100 000 × 100 000 pixels (30 GB of RGB) claimed by a 60-byte PNG.
    let bomb = png_claiming(100_000, 100_000);
    let err = within(10, "png bomb", move || {
        segment(ImageOptions::default(), &bomb)
    })
    .unwrap_err();
    match err {
        PretokenizeError::LimitExceeded {
            limit,
            actual,
            what,
            option,
        } => {
            assert_eq!(option, "image.max_decoded_pixels");
            assert_eq!(actual, 10_000_000_000);
            assert_eq!(limit, blt_pretokenize::image::DEFAULT_MAX_DECODED_PIXELS);
            assert!(what.contains("100000x100000 png"), "{what}");
        }
        other => panic!("expected LimitExceeded, got {other}"),
    }
    // A GIF whose logical screen is 65535 × 65535.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00]);
    gif.extend_from_slice(&[
        0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]);
    let err = within(10, "gif bomb", move || {
        segment(ImageOptions::default(), &gif)
    })
    .unwrap_err();
    assert!(
        matches!(err, PretokenizeError::LimitExceeded { .. }),
        "{err}"
    );
    // A small limit refuses the real icon too, naming its size.
    let png = system_file(ICON_PNG);
    let err = segment(
        ImageOptions {
            max_decoded_pixels: 1000,
            ..Default::default()
        },
        &png,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "decoded pixels of a 512x512 png: 262144 exceeds the limit of 1000 \
         (option `image.max_decoded_pixels`)"
    );
}

#[test]
fn damaged_images_give_a_typed_error_or_a_partial_image_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("png", system_file(ICON_PNG)),
        ("jpeg", transcode(dir.path(), ICON_PNG, "icon.jpg", &[])),
        ("gif", transcode(dir.path(), ICON_PNG, "icon.gif", &[])),
        (
            "webp",
            transcode(dir.path(), ICON_PNG, "icon.webp", &["-c:v", "libwebp"]),
        ),
        ("bmp", transcode(dir.path(), ICON_PNG, "icon.bmp", &[])),
        ("tiff", transcode(dir.path(), ICON_PNG, "icon.tiff", &[])),
    ];
    for (format, good) in files {
        for (damage, bytes) in damaged_versions(&good) {
            let what = format!("{format} {damage}");
            let result = within(30, &what, move || segment(ImageOptions::default(), &bytes));
            match result {
                Ok(segs) => assert!(!segs.is_empty(), "{what}: Ok must carry pixels"),
                Err(PretokenizeError::Decode { reason, .. }) => assert!(!reason.is_empty()),
                Err(PretokenizeError::LimitExceeded { .. }) => {}
                Err(other) => panic!("{what}: unexpected {other}"),
            }
        }
    }
    let err = segment(ImageOptions::default(), b"not an image at all").unwrap_err();
    assert!(
        matches!(
            err,
            PretokenizeError::Decode {
                format: "image",
                ..
            }
        ),
        "{err}"
    );
}
