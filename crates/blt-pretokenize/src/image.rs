//! Images: decode (JPEG, PNG, GIF, WebP, BMP, TIFF) → optional resize → raster patches of pixels.
//!
//! # Byte accounting
//!
//! An image file is one compressed representation of a grid of pixels, and no pixel can be traced
//! back to a byte range of the file (JPEG blocks, PNG deflate streams and LZW codes all mix bytes).
//! So the rule is:
//!
//! - **Every byte of the file is handed to the decoder**, and the decoded pixels are the file's
//!   transformation. Each patch segment therefore has `byte_range = 0..file_len` (the whole file,
//!   because the pixels are not localisable), `decoded = Some(pixels)` and
//!   `metadata.representation` naming the pixel layout (`rgb8`, `rgba8`, `luma8`).
//! - **Every decoded (and, if asked, resized) pixel is in at least one patch**; with the default
//!   `patch_stride == patch_size` it is in **exactly one**. Patches on the right and bottom edges are
//!   kept even when smaller than `patch_size` (their `width`/`height` in the metadata say so),
//!   never padded and never dropped. A stride larger than the patch size would skip pixels and is
//!   refused with [`PretokenizeError::InvalidOptions`].
//! - Bytes the decoder does not need (data appended after a PNG `IEND`, a JPEG's trailing bytes, the
//!   frames after the first of an animated GIF/WebP, EXIF/ICC chunks) do not reach the pixels. Set
//!   [`ImageOptions::include_file_bytes`] to also emit the whole file as a raw `image file` segment
//!   (`decoded = None`, `byte_range = 0..file_len`): then every input byte is literally in exactly
//!   one raw segment, and the pixel segments are a second view of the same source (all segments of
//!   one file share a `source_id` derived from the SHA-256 of its bytes).
//!
//! Within a patch, `decoded` is row-major: the patch's rows top to bottom, each row's pixels left to
//! right, each pixel's channels interleaved (`R G B` for `rgb8`).
//!
//! # Decompression bombs
//!
//! The image's dimensions are read from its header **before** any pixel buffer is allocated; an
//! image whose `width × height` exceeds [`ImageOptions::max_decoded_pixels`] is refused with
//! [`PretokenizeError::LimitExceeded`] (`what = "decoded pixels"`,
//! `option = "image.max_decoded_pixels"`). The decoder also runs under an allocation limit derived
//! from the same number, so a header that lies about its size cannot make it allocate more. Only
//! the first frame of an animated GIF/WebP or a multi-page TIFF is decoded; resizing only ever
//! shrinks (to [`ImageOptions::max_side`]), so nothing after the decoder is larger than what it
//! was allowed to allocate.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Modality, PretokenizeError, Segment, Segmenter};

/// Pillow's default `Image.MAX_IMAGE_PIXELS` (a 0.25 GiB image at 3 bytes per pixel), the limit
/// most Python image pipelines already live with.
pub const DEFAULT_MAX_DECODED_PIXELS: u64 = 89_478_485;

/// The pixel layout the decoded image is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageColor {
    /// 3 bytes per pixel, `R G B` (any alpha channel is dropped, not composited).
    #[default]
    Rgb8,
    /// 4 bytes per pixel, `R G B A`.
    Rgba8,
    /// 1 byte per pixel, luminance.
    Luma8,
}

impl ImageColor {
    /// The name recorded as `metadata.representation` (`rgb8`, `rgba8`, `luma8`).
    pub fn representation(self) -> &'static str {
        match self {
            Self::Rgb8 => "rgb8",
            Self::Rgba8 => "rgba8",
            Self::Luma8 => "luma8",
        }
    }

    /// Bytes per pixel in this layout.
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb8 => 3,
            Self::Rgba8 => 4,
            Self::Luma8 => 1,
        }
    }
}

/// How [`ImageSegmenter`] decodes and cuts an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// Downscale (keeping the aspect ratio, triangle filter) so that the longer side is at most
    /// this many pixels; `None` keeps the decoded size. Images already small enough are never
    /// upscaled. Default: 256, so one image is at most 192 KiB of `rgb8`.
    pub max_side: Option<u32>,
    /// Side of the square raster patches, in pixels; `None` makes the whole image one segment.
    /// Default: 16 (a 16×16 `rgb8` patch is 768 bytes, one model window or two).
    pub patch_size: Option<u32>,
    /// Distance between the top-left corners of neighbouring patches; `None` means
    /// `patch_size` (non-overlapping patches). Must not exceed `patch_size`.
    pub patch_stride: Option<u32>,
    /// The pixel layout of `decoded`. Default: [`ImageColor::Rgb8`].
    pub color: ImageColor,
    /// Refuse images with more pixels than this (checked from the header, before decoding).
    /// Default: [`DEFAULT_MAX_DECODED_PIXELS`].
    pub max_decoded_pixels: u64,
    /// Also emit the file's own bytes as a first, raw segment. Default: `false`.
    pub include_file_bytes: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            max_side: Some(256),
            patch_size: Some(16),
            patch_stride: None,
            color: ImageColor::Rgb8,
            max_decoded_pixels: DEFAULT_MAX_DECODED_PIXELS,
            include_file_bytes: false,
        }
    }
}

/// Decodes an image file and cuts its pixels into raster patches (see the [module docs](self) for
/// the byte-accounting rule).
#[derive(Debug, Clone, Default)]
pub struct ImageSegmenter {
    options: ImageOptions,
}

impl ImageSegmenter {
    /// A segmenter with these options, or [`PretokenizeError::InvalidOptions`] when they cannot
    /// work (a zero size or stride, a stride larger than the patch, a zero `max_side`).
    pub fn new(options: ImageOptions) -> Result<Self, PretokenizeError> {
        let invalid = |reason: String| PretokenizeError::InvalidOptions {
            segmenter: "image",
            reason,
        };
        if options.max_side == Some(0) {
            return Err(invalid("max_side must be at least 1".into()));
        }
        match (options.patch_size, options.patch_stride) {
            (Some(0), _) => return Err(invalid("patch_size must be at least 1".into())),
            (_, Some(0)) => return Err(invalid("patch_stride must be at least 1".into())),
            (Some(size), Some(stride)) if stride > size => {
                return Err(invalid(format!(
                    "patch_stride {stride} exceeds patch_size {size}: pixels between patches would be lost"
                )))
            }
            (None, Some(_)) => {
                return Err(invalid("patch_stride needs a patch_size".into()));
            }
            _ => {}
        }
        Ok(Self { options })
    }

    /// The options in use.
    pub fn options(&self) -> &ImageOptions {
        &self.options
    }
}

/// The `source_id` shared by every segment decoded from one file: `sha256:` and the first 16 bytes
/// of the SHA-256 of its bytes, in hex. Deterministic.
pub(crate) fn content_source_id(document: &[u8]) -> String {
    let digest = Sha256::digest(document);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The name of a decoded format for errors and metadata.
fn format_name(format: Option<ImageFormat>) -> &'static str {
    match format {
        Some(ImageFormat::Jpeg) => "jpeg",
        Some(ImageFormat::Png) => "png",
        Some(ImageFormat::Gif) => "gif",
        Some(ImageFormat::WebP) => "webp",
        Some(ImageFormat::Bmp) => "bmp",
        Some(ImageFormat::Tiff) => "tiff",
        Some(_) => "image (unsupported format)",
        None => "image",
    }
}

fn decode_error(format: Option<ImageFormat>, err: impl std::fmt::Display) -> PretokenizeError {
    PretokenizeError::Decode {
        format: format_name(format),
        reason: err.to_string(),
    }
}

/// One decoded image in the chosen layout.
pub(crate) struct Raster {
    pub width: u32,
    pub height: u32,
    pub color: ImageColor,
    pub pixels: Vec<u8>,
}

impl Raster {
    fn from_dynamic(image: DynamicImage, color: ImageColor) -> Self {
        let (width, height) = (image.width(), image.height());
        let pixels = match color {
            ImageColor::Rgb8 => image.into_rgb8().into_raw(),
            ImageColor::Rgba8 => image.into_rgba8().into_raw(),
            ImageColor::Luma8 => image.into_luma8().into_raw(),
        };
        Self {
            width,
            height,
            color,
            pixels,
        }
    }

    /// Row-major bytes of the `w × h` rectangle at (`x`, `y`); the caller keeps it inside.
    fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Vec<u8> {
        let bpp = self.color.channels();
        let row_len = self.width as usize * bpp;
        let mut out = Vec::with_capacity(w as usize * h as usize * bpp);
        for row in y..y + h {
            let start = row as usize * row_len + x as usize * bpp;
            out.extend_from_slice(&self.pixels[start..start + w as usize * bpp]);
        }
        out
    }
}

/// The size after fitting `width × height` into a `max_side` square (never upscaling).
pub(crate) fn fit_within(width: u32, height: u32, max_side: Option<u32>) -> (u32, u32) {
    let Some(max_side) = max_side else {
        return (width, height);
    };
    let longer = width.max(height);
    if longer <= max_side || longer == 0 {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longer) / 2) / u64::from(longer);
        (scaled as u32).max(1)
    };
    (scale(width), scale(height))
}

/// Start offsets of patches along one axis of length `len`: every `stride`, plus a last one
/// so that the final `size` pixels are covered (edge patches may be smaller).
fn patch_starts(len: u32, size: u32, stride: u32) -> Vec<u32> {
    let mut starts = Vec::new();
    let mut start = 0u32;
    loop {
        starts.push(start);
        if start.saturating_add(size) >= len {
            break;
        }
        start += stride;
    }
    starts
}

impl Segmenter for ImageSegmenter {
    fn segment(&self, document: &[u8]) -> Result<Vec<Segment>, PretokenizeError> {
        let opts = &self.options;
        let reader = || {
            ImageReader::new(Cursor::new(document))
                .with_guessed_format()
                .map_err(|e| decode_error(None, e))
        };
        let format = reader()?.format();
        if format.is_none() {
            return Err(decode_error(None, "not a recognised image format"));
        }
        // Dimensions from the header only: nothing the size of the image is allocated yet.
        let (width, height) = reader()?
            .into_dimensions()
            .map_err(|e| decode_error(format, e))?;
        let pixels = u64::from(width) * u64::from(height);
        if pixels > opts.max_decoded_pixels {
            return Err(PretokenizeError::LimitExceeded {
                what: format!(
                    "decoded pixels of a {width}x{height} {}",
                    format_name(format)
                ),
                limit: opts.max_decoded_pixels,
                actual: pixels,
                option: "image.max_decoded_pixels",
            });
        }
        let mut decoder = reader()?;
        let mut limits = Limits::default();
        // Room for the largest layout the decoder may produce (16-bit RGBA) plus the conversion.
        limits.max_alloc = Some(opts.max_decoded_pixels.saturating_mul(8 + 4));
        decoder.limits(limits);
        let decoded = decoder.decode().map_err(|e| decode_error(format, e))?;

        let (new_w, new_h) = fit_within(width, height, opts.max_side);
        let resized = (new_w, new_h) != (width, height);
        let decoded = if resized {
            decoded.resize_exact(new_w, new_h, FilterType::Triangle)
        } else {
            decoded
        };
        let raster = Raster::from_dynamic(decoded, opts.color);
        tracing::debug!(
            format = format_name(format),
            width,
            height,
            new_w,
            new_h,
            "decoded image"
        );

        let source_id = content_source_id(document);
        let file_range = 0..document.len() as u64;
        let mut segments = Vec::new();
        if opts.include_file_bytes {
            segments.push(Segment {
                modality: Modality::Image,
                label: "image file".into(),
                byte_range: file_range.clone(),
                source_id: Some(source_id.clone()),
                metadata: json!({ "representation": "file", "format": format_name(format) }),
                decoded: None,
            });
        }
        let common = json!({
            "representation": opts.color.representation(),
            "format": format_name(format),
            "source_width": width,
            "source_height": height,
            "image_width": raster.width,
            "image_height": raster.height,
            "resized": resized,
        });
        let (size_w, size_h, stride) = match opts.patch_size {
            Some(size) => (size, size, opts.patch_stride.unwrap_or(size)),
            None => (raster.width, raster.height, raster.width.max(1)),
        };
        let xs = patch_starts(raster.width, size_w, stride);
        let ys = patch_starts(raster.height, size_h, stride);
        for (row, &y) in ys.iter().enumerate() {
            for (col, &x) in xs.iter().enumerate() {
                let w = size_w.min(raster.width - x);
                let h = size_h.min(raster.height - y);
                let mut metadata = common.clone();
                if let Some(map) = metadata.as_object_mut() {
                    map.insert("x".into(), json!(x));
                    map.insert("y".into(), json!(y));
                    map.insert("width".into(), json!(w));
                    map.insert("height".into(), json!(h));
                    map.insert("patch_row".into(), json!(row));
                    map.insert("patch_col".into(), json!(col));
                }
                let label = if opts.patch_size.is_some() {
                    format!("patch {row},{col}")
                } else {
                    "image".to_string()
                };
                segments.push(Segment {
                    modality: Modality::Image,
                    label,
                    byte_range: file_range.clone(),
                    source_id: Some(source_id.clone()),
                    metadata,
                    decoded: Some(raster.crop(x, y, w, h)),
                });
            }
        }
        Ok(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_starts_cover_the_axis() {
        assert_eq!(patch_starts(10, 4, 4), vec![0, 4, 8]);
        assert_eq!(patch_starts(8, 4, 4), vec![0, 4]);
        assert_eq!(patch_starts(3, 4, 4), vec![0]);
        assert_eq!(patch_starts(10, 4, 2), vec![0, 2, 4, 6]);
        assert_eq!(patch_starts(0, 4, 4), vec![0]);
    }

    #[test]
    fn fit_within_keeps_the_aspect_and_never_upscales() {
        assert_eq!(fit_within(1000, 500, Some(256)), (256, 128));
        assert_eq!(fit_within(500, 1000, Some(256)), (128, 256));
        assert_eq!(fit_within(100, 50, Some(256)), (100, 50));
        assert_eq!(fit_within(10_000, 1, Some(256)), (256, 1));
        assert_eq!(fit_within(1000, 500, None), (1000, 500));
    }

    #[test]
    fn invalid_options_are_refused() {
        for options in [
            ImageOptions {
                patch_size: Some(0),
                ..Default::default()
            },
            ImageOptions {
                patch_stride: Some(17),
                ..Default::default()
            },
            ImageOptions {
                max_side: Some(0),
                ..Default::default()
            },
            ImageOptions {
                patch_size: None,
                patch_stride: Some(4),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                ImageSegmenter::new(options),
                Err(PretokenizeError::InvalidOptions {
                    segmenter: "image",
                    ..
                })
            ));
        }
    }
}
