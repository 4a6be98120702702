//! Hand-built SVG plots: entropy per position with the threshold line and patch boundaries
//! (the figure of the BLT paper), a downsampled overview for long documents, and bar charts
//! for histograms. Plain SVG elements with CSS classes (`entropy`, `threshold`, `boundary`,
//! `bar`), so a browser test can count what was drawn.

use std::fmt::Write;
use std::ops::Range;

use crate::html::{escape, num};

const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

/// "Nice" tick values covering `[lo, hi]`: multiples of 1, 2 or 5 × 10ᵏ, about `target` of
/// them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut v = first;
    while v <= hi + step * 1e-9 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

/// The top of the y axis for entropies: the largest of the values and the threshold, plus 5 %,
/// rounded up to a multiple of 0.5 (at least 0.5).
pub fn entropy_axis_max(entropies: &[f32], threshold: Option<f32>) -> f64 {
    let m = entropies
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(threshold.unwrap_or(0.0), f32::max) as f64;
    ((m * 1.05) / 0.5).ceil().max(1.0) * 0.5
}

struct Frame {
    width: f64,
    height: f64,
    y_max: f64,
}

impl Frame {
    fn plot_w(&self) -> f64 {
        self.width - LEFT - RIGHT
    }
    fn plot_h(&self) -> f64 {
        self.height - TOP - BOTTOM
    }
    fn y(&self, v: f64) -> f64 {
        TOP + self.plot_h() * (1.0 - (v / self.y_max).clamp(0.0, 1.0))
    }
    /// Opens the SVG and draws the y axis (entropy, nats) with grid lines.
    fn open(&self, s: &mut String, label: &str, y_title: &str) {
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\">",
            w = num(self.width, 1),
            h = num(self.height, 1),
            label = escape(label),
        );
        for t in nice_ticks(0.0, self.y_max, 5) {
            let y = self.y(t);
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{y}\" y2=\"{y}\"/>\
                 <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{t}</text>",
                x2 = num(LEFT + self.plot_w(), 1),
                y = num(y, 1),
                tx = LEFT - 6.0,
                ty = num(y + 4.0, 1),
                t = num(t, 2),
            );
        }
        let _ = write!(
            s,
            "<text transform=\"translate(12 {cy}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            escape(y_title),
            cy = num(TOP + self.plot_h() / 2.0, 1),
        );
    }
    fn axes(&self, s: &mut String, x_title: &str) {
        let bottom = TOP + self.plot_h();
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{b}\"/>\
             <line class=\"axis\" x1=\"{LEFT}\" x2=\"{r}\" y1=\"{b}\" y2=\"{b}\"/>\
             <text x=\"{cx}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>",
            escape(x_title),
            b = num(bottom, 1),
            r = num(LEFT + self.plot_w(), 1),
            cx = num(LEFT + self.plot_w() / 2.0, 1),
            ty = num(self.height - 4.0, 1),
        );
    }
    fn threshold(&self, s: &mut String, threshold: Option<f32>) {
        if let Some(t) = threshold {
            let y = num(self.y(t as f64), 1);
            let _ = write!(
                s,
                "<line class=\"threshold\" x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{y}\" y2=\"{y}\">\
                 <title>threshold {t}</title></line>",
                x2 = num(LEFT + self.plot_w(), 1),
            );
        }
    }
}

/// Entropy per position over `range` of a document: the line (and a dot per position when
/// there are at most 200), the threshold as a dashed line, and one `line.boundary` per patch
/// start in `range` (each with `data-pos`). When `labels` is given (one per position of
/// `range`, at most 160 positions) each position is labelled with its character under the
/// axis, as in the paper's figure.
pub fn entropy_plot_svg(
    entropies: &[f32],
    range: Range<usize>,
    patch_starts: &[usize],
    threshold: Option<f32>,
    labels: Option<&[String]>,
    y_max: f64,
) -> String {
    let range = range.start.min(entropies.len())..range.end.min(entropies.len());
    let n = range.len().max(1);
    let labelled = labels.filter(|l| l.len() == range.len() && n <= 160);
    let per = if labelled.is_some() { 11.0 } else { 2.0 };
    let frame = Frame {
        width: (n as f64 * per).clamp(560.0, 1400.0) + LEFT + RIGHT,
        height: 240.0 + if labelled.is_some() { 16.0 } else { 0.0 },
        y_max,
    };
    let step = frame.plot_w() / n as f64;
    let x = |i: usize| LEFT + (i - range.start) as f64 * step + step / 2.0;
    let mut s = String::new();
    frame.open(
        &mut s,
        &format!("entropy of positions {}–{}", range.start, range.end),
        "entropy (nats)",
    );
    // Patch boundaries: a line just before each patch start (the left edge for the first).
    for &p in patch_starts
        .iter()
        .filter(|&&p| p >= range.start && p < range.end)
    {
        let bx = num(x(p) - step / 2.0, 2);
        let _ = write!(
            s,
            "<line class=\"boundary\" data-pos=\"{p}\" x1=\"{bx}\" x2=\"{bx}\" y1=\"{TOP}\" y2=\"{b}\"/>",
            b = num(TOP + frame.plot_h(), 1),
        );
    }
    frame.threshold(&mut s, threshold);
    let mut points = String::new();
    for i in range.clone() {
        let v = entropies[i];
        if v.is_finite() {
            let _ = write!(points, "{},{} ", num(x(i), 2), num(frame.y(v as f64), 2));
        }
    }
    let _ = write!(
        s,
        "<polyline class=\"entropy\" points=\"{}\"/>",
        points.trim_end()
    );
    if range.len() <= 200 {
        for i in range.clone() {
            let v = entropies[i];
            if v.is_finite() {
                let _ = write!(
                    s,
                    "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2\"><title>{i}: {}</title></circle>",
                    num(x(i), 2),
                    num(frame.y(v as f64), 2),
                    num(v as f64, 3)
                );
            }
        }
    }
    let bottom = TOP + frame.plot_h();
    if let Some(labels) = labelled {
        for (k, label) in labels.iter().enumerate() {
            let _ = write!(
                s,
                "<text class=\"char\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                num(x(range.start + k), 2),
                num(bottom + 14.0, 1),
                escape(label)
            );
        }
    }
    let tick_y = bottom + if labelled.is_some() { 28.0 } else { 14.0 };
    for t in nice_ticks(range.start as f64, (range.end.max(1) - 1) as f64, 8) {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            num(x(t as usize), 2),
            num(tick_y, 1),
            t as usize
        );
    }
    frame.axes(&mut s, "");
    s.push_str("</svg>");
    s
}

/// Entropy over a whole document in at most `max_points` columns: when the document is longer,
/// each column is a bucket of consecutive positions drawn as its min–max band (`envelope`)
/// and its mean (`entropy` line). Patch boundaries are drawn (`line.boundary-overview`) only
/// when there are at most `max_boundaries` of them.
pub fn overview_plot_svg(
    entropies: &[f32],
    patch_starts: &[usize],
    threshold: Option<f32>,
    max_points: usize,
    max_boundaries: usize,
    y_max: f64,
) -> String {
    let n = entropies.len().max(1);
    let bucket = n.div_ceil(max_points.max(1));
    let columns = n.div_ceil(bucket);
    let frame = Frame {
        width: 1200.0,
        height: 240.0,
        y_max,
    };
    let scale = frame.plot_w() / n as f64;
    let x = |pos: f64| LEFT + pos * scale;
    let mut s = String::new();
    frame.open(
        &mut s,
        &format!("entropy of all {} positions", entropies.len()),
        "entropy (nats)",
    );
    if patch_starts.len() <= max_boundaries {
        for &p in patch_starts.iter().filter(|&&p| p < entropies.len()) {
            let bx = num(x(p as f64), 2);
            let _ = write!(
                s,
                "<line class=\"boundary-overview\" x1=\"{bx}\" x2=\"{bx}\" y1=\"{TOP}\" y2=\"{b}\"/>",
                b = num(TOP + frame.plot_h(), 1),
            );
        }
    }
    frame.threshold(&mut s, threshold);
    let mut upper = String::new();
    let mut lower = Vec::new();
    let mut mean_line = String::new();
    for c in 0..columns {
        let chunk = &entropies[c * bucket..((c + 1) * bucket).min(entropies.len())];
        let finite: Vec<f64> = chunk
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| v as f64)
            .collect();
        if finite.is_empty() {
            continue;
        }
        let cx = x(c as f64 * bucket as f64 + chunk.len() as f64 / 2.0);
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = write!(mean_line, "{},{} ", num(cx, 2), num(frame.y(mean), 2));
        let _ = write!(upper, "{},{} ", num(cx, 2), num(frame.y(hi), 2));
        lower.push(format!("{},{}", num(cx, 2), num(frame.y(lo), 2)));
    }
    if bucket > 1 {
        lower.reverse();
        let _ = write!(
            s,
            "<polygon class=\"envelope\" points=\"{}{}\"/>",
            upper,
            lower.join(" ")
        );
    }
    let _ = write!(
        s,
        "<polyline class=\"entropy\" points=\"{}\"/>",
        mean_line.trim_end()
    );
    for t in nice_ticks(0.0, (n - 1) as f64, 10) {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            num(x(t + 0.5), 2),
            num(TOP + frame.plot_h() + 14.0, 1),
            t as usize
        );
    }
    frame.axes(
        &mut s,
        &if bucket > 1 {
            format!("position (each column: {bucket} positions, min–max band and mean)")
        } else {
            "position".to_string()
        },
    );
    s.push_str("</svg>");
    s
}

/// A bar chart: one `rect.bar` per `(label, count)`, with its count in a tooltip. Labels are
/// drawn under the bars (thinned out when there are many).
pub fn bar_chart_svg(bars: &[(String, u64)], x_title: &str, y_title: &str) -> String {
    let n = bars.len().max(1);
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let frame = Frame {
        width: (n as f64 * 18.0).clamp(420.0, 1000.0) + LEFT + RIGHT,
        height: 220.0,
        y_max: max * 1.05,
    };
    let step = frame.plot_w() / n as f64;
    let mut s = String::new();
    frame.open(&mut s, x_title, y_title);
    let bottom = TOP + frame.plot_h();
    let every = n.div_ceil(24).max(1);
    for (i, (label, count)) in bars.iter().enumerate() {
        let x0 = LEFT + i as f64 * step;
        let y = frame.y(*count as f64);
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}: {count}</title></rect>",
            num(x0 + step * 0.1, 2),
            num(y, 2),
            num(step * 0.8, 2),
            num(bottom - y, 2),
            escape(label)
        );
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                num(x0 + step / 2.0, 2),
                num(bottom + 14.0, 1),
                escape(label)
            );
        }
    }
    frame.axes(&mut s, x_title);
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(nice_ticks(0.0, 4.0, 4), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
    }

    #[test]
    fn one_boundary_mark_per_patch_start_in_range() {
        let h = [0.5f32, 2.0, 0.3, 0.2, 3.0, 0.1];
        let svg = entropy_plot_svg(&h, 0..6, &[0, 1, 2, 5], Some(1.0), None, 3.5);
        assert_eq!(svg.matches("class=\"boundary\"").count(), 4);
        assert_eq!(svg.matches("class=\"threshold\"").count(), 1);
        let svg = entropy_plot_svg(&h, 2..6, &[0, 1, 2, 5], None, None, 3.5);
        assert_eq!(svg.matches("class=\"boundary\"").count(), 2);
        assert_eq!(svg.matches("class=\"threshold\"").count(), 0);
    }

    #[test]
    fn overview_downsamples() {
        let h: Vec<f32> = (0..10_000).map(|i| (i % 7) as f32).collect();
        let svg = overview_plot_svg(&h, &[0, 5000], Some(3.0), 500, 100, 7.0);
        let pts = svg
            .split("class=\"entropy\" points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .count();
        assert_eq!(pts, 500);
        assert!(svg.contains("class=\"envelope\""));
        assert_eq!(svg.matches("boundary-overview").count(), 2);
    }

    #[test]
    fn axis_max_covers_values_and_threshold() {
        assert_eq!(entropy_axis_max(&[1.0, 2.2], None), 2.5);
        assert_eq!(entropy_axis_max(&[0.1], Some(3.0)), 3.5);
        assert_eq!(entropy_axis_max(&[], None), 0.5);
    }
}
