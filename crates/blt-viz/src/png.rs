//! The entropy plot as a PNG image, drawn with `plotters` on an in-memory bitmap and encoded
//! with `png`. Labels use an embedded subset of DejaVu Sans (`fonts/`), so no system font is
//! needed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::document::PatchedDocument;
use crate::plot::entropy_axis_max;
use crate::{write_atomic, Error, Result};

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
static FONT_REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

fn ensure_font() -> std::result::Result<(), String> {
    FONT_REGISTERED
        .get_or_init(|| {
            register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font is invalid".to_string())
        })
        .clone()
}

/// Size and density of the PNG plot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Points of the entropy line at most (longer documents are averaged over buckets).
    pub max_points: usize,
    /// Patch boundaries drawn at most (none are drawn when there are more).
    pub max_boundaries: usize,
}

impl Default for PngOptions {
    fn default() -> Self {
        Self {
            width: 1600,
            height: 480,
            max_points: 3000,
            max_boundaries: 1500,
        }
    }
}

/// Draws the entropy plot of `doc` (line, threshold, patch boundaries) into an RGB buffer of
/// `options.width × options.height`.
pub fn render_entropy_rgb(
    doc: &PatchedDocument,
    options: &PngOptions,
) -> std::result::Result<Vec<u8>, String> {
    ensure_font()?;
    let (w, h) = (options.width.max(200), options.height.max(150));
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = doc.entropies.len().max(1);
        let y_max = entropy_axis_max(&doc.entropies, doc.threshold);
        let bucket = n.div_ceil(options.max_points.max(1));
        let caption = if bucket > 1 {
            format!(
                "Entropy per position of {} (mean of every {bucket} positions)",
                doc.key
            )
        } else {
            format!("Entropy per position of {}", doc.key)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("position")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("entropy (nats)")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(|e| e.to_string())?;
        let starts = doc.patch_starts();
        if starts.len() <= options.max_boundaries {
            let grey = RGBColor(150, 150, 150);
            chart
                .draw_series(starts.iter().filter(|&&s| s < n).map(|&s| {
                    PathElement::new(
                        vec![(s as f64, 0.0), (s as f64, y_max)],
                        grey.stroke_width(1),
                    )
                }))
                .map_err(|e| e.to_string())?;
        }
        if let Some(t) = doc.threshold {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, t as f64), (n as f64, t as f64)],
                    RED.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
        }
        let points: Vec<(f64, f64)> = doc
            .entropies
            .chunks(bucket)
            .enumerate()
            .filter_map(|(c, chunk)| {
                let finite: Vec<f64> = chunk
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(|&v| v as f64)
                    .collect();
                (!finite.is_empty()).then(|| {
                    (
                        (c * bucket) as f64 + chunk.len() as f64 / 2.0,
                        finite.iter().sum::<f64>() / finite.len() as f64,
                    )
                })
            })
            .collect();
        chart
            .draw_series(LineSeries::new(
                points,
                RGBColor(31, 78, 156).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// Encodes an RGB buffer as PNG bytes.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Writes the entropy plot of `doc` as a PNG file (atomically).
pub fn write_entropy_png(doc: &PatchedDocument, path: &Path, options: &PngOptions) -> Result<()> {
    let err = |reason: String| Error::Png {
        path: path.to_path_buf(),
        reason,
    };
    doc.validate()?;
    let (w, h) = (options.width.max(200), options.height.max(150));
    let rgb = render_entropy_rgb(doc, options).map_err(err)?;
    let bytes = encode_png(&rgb, w, h).map_err(err)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_non_blank_plot_with_text() {
        let ids: Vec<i32> = (0..300).map(|i| 4 + (i % 26) + 97).collect();
        let ent: Vec<f32> = (0..300).map(|i| ((i * 13) % 17) as f32 / 4.0).collect();
        let doc = PatchedDocument::from_analysis(
            "png-test",
            vec![b'a'; 300],
            ids,
            ent,
            vec![],
            vec![3; 100],
            Some(2.0),
        )
        .unwrap();
        let opts = PngOptions::default();
        let rgb = render_entropy_rgb(&doc, &opts).unwrap();
        let px = |x: u32, y: u32| {
            let i = ((y * opts.width + x) * 3) as usize;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        let mut blue = 0;
        let mut red = 0;
        let mut dark = 0;
        for y in 0..opts.height {
            for x in 0..opts.width {
                match px(x, y) {
                    [31, 78, 156] => blue += 1,
                    [255, 0, 0] => red += 1,
                    [r, g, b] if (r as u32 + g as u32 + b as u32) < 200 => dark += 1,
                    _ => {}
                }
            }
        }
        assert!(blue > 1000, "entropy line drawn ({blue} px)");
        assert!(red > 1000, "threshold drawn ({red} px)");
        assert!(dark > 500, "axes and labels drawn ({dark} px)");
        let png = encode_png(&rgb, opts.width, opts.height).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
