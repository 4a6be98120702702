//! Small HTML helpers shared by the report and the statistics page: escaping, the entropy
//! colour scale, number formatting and the page frame (inline CSS, no scripts, no network).

use std::fmt::Write;

/// Escapes `&`, `<`, `>`, `"` and `'` for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Colour stops of the entropy scale (ColorBrewer YlOrRd, 5 classes), low to high.
const STOPS: [[u8; 3]; 5] = [
    [0xff, 0xff, 0xcc],
    [0xfe, 0xd9, 0x76],
    [0xfd, 0x8d, 0x3c],
    [0xe3, 0x1a, 0x1c],
    [0x80, 0x00, 0x26],
];

/// The colour of `value` on a scale from 0 to `max` (linear interpolation between the YlOrRd
/// stops), as `#rrggbb`. Values outside the scale are clamped; a non-finite value is grey.
pub fn scale_colour(value: f32, max: f32) -> String {
    if !value.is_finite() {
        return "#999999".to_string();
    }
    let t = if max > 0.0 {
        (value / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mut s = String::from("#");
    for (&lo, &hi) in STOPS[i].iter().zip(&STOPS[i + 1]) {
        let v = lo as f32 + (hi as f32 - lo as f32) * f;
        let _ = write!(s, "{:02x}", v.round().clamp(0.0, 255.0) as u8);
    }
    s
}

/// Whether text on the colour of `value` should be white (dark end of the scale).
pub fn needs_light_text(value: f32, max: f32) -> bool {
    max > 0.0 && value / max > 0.7
}

/// A number with up to `digits` decimals, trailing zeros removed.
pub fn num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The inline stylesheet of every page.
pub const CSS: &str = r#"
body { font-family: system-ui, -apple-system, "DejaVu Sans", sans-serif; margin: 1.5rem; color: #222; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem 0; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .4rem 0; }
.muted { color: #666; font-size: .9rem; }
table.summary { border-collapse: collapse; font-size: .9rem; }
table.summary td, table.summary th { border: 1px solid #ddd; padding: .2rem .6rem; text-align: left; }
table.summary td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; max-width: 100%; height: auto; background: #fff; }
svg text { font-family: system-ui, "DejaVu Sans", sans-serif; font-size: 11px; fill: #333; }
svg .axis { stroke: #333; stroke-width: 1; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .entropy { fill: none; stroke: #1f4e9c; stroke-width: 1.5; }
svg .envelope { fill: #1f4e9c; fill-opacity: .18; stroke: none; }
svg .threshold { stroke: #d62728; stroke-width: 2; stroke-dasharray: 6 4; shape-rendering: crispEdges; }
svg .boundary, svg .boundary-overview { stroke: #888; stroke-width: 1; stroke-opacity: .7; }
svg .bar { fill: #4c78a8; }
svg .point { fill: #1f4e9c; }
details.page { border: 1px solid #ddd; border-radius: 4px; margin: .5rem 0; padding: .3rem .6rem; }
details.page > summary { cursor: pointer; font-weight: 600; }
.bytes { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: 14px; line-height: 1.9; word-break: break-all; margin-top: .5rem; }
.bytes .p { border-left: 2px solid #333; padding-left: 1px; margin-left: 1px; }
.bytes i { font-style: normal; padding: 1px 0; }
.bytes i.l { color: #fff; }
.bytes i.c { display: inline-block; width: 3px; }
.bytes i.s { font-size: 10px; color: #555; }
.bytes i.s.l { color: #fff; }
.legend { display: flex; align-items: center; gap: .5rem; font-size: .85rem; }
.legend .ramp { width: 240px; height: 12px; border: 1px solid #ccc; }
"#;

/// A whole page: `<!DOCTYPE html>`, the title, the inline CSS and `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

/// A CSS gradient of the entropy scale, for legends.
pub fn ramp_css() -> String {
    let stops: Vec<String> = (0..=10)
        .map(|i| scale_colour(i as f32 / 10.0, 1.0))
        .collect();
    format!(
        "background: linear-gradient(to right, {});",
        stops.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn scale_ends_and_middle() {
        assert_eq!(scale_colour(0.0, 4.0), "#ffffcc");
        assert_eq!(scale_colour(4.0, 4.0), "#800026");
        assert_eq!(scale_colour(9.0, 4.0), "#800026");
        assert_eq!(scale_colour(2.0, 4.0), "#fd8d3c");
        assert_eq!(scale_colour(f32::NAN, 4.0), "#999999");
    }

    #[test]
    fn numbers() {
        assert_eq!(num(1.5000, 3), "1.5");
        assert_eq!(num(2.0, 3), "2");
        assert_eq!(num(0.12345, 3), "0.123");
    }
}
