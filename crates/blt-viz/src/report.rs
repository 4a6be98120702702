//! The HTML report of one document: summary numbers, the entropy plot with threshold and patch
//! boundaries, the patch-length histogram, and the bytes coloured by entropy with patch
//! boundaries, in pages. One self-contained file: inline CSS and SVG, no scripts, no network.
//!
//! Long documents stay responsive: the overview plot is downsampled to at most
//! [`ReportOptions::overview_points`] columns, and the detailed view is cut into pages of
//! [`ReportOptions::page_tokens`] positions, each a collapsed `<details>` (only the first is
//! open), of which at most [`ReportOptions::max_pages`] are written.

use std::fmt::Write;

use crate::document::{PatchedDocument, BOS_ID, EOS_ID};
use crate::histogram::{percentile_nearest_rank, EntropyHistogram};
use crate::html::{escape, needs_light_text, num, page, ramp_css, scale_colour};
use crate::plot::{bar_chart_svg, entropy_axis_max, entropy_plot_svg, overview_plot_svg};
use crate::Result;

/// Options of [`render_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Positions per page of the detailed view.
    pub page_tokens: usize,
    /// Pages written at most; later positions appear only in the overview.
    pub max_pages: usize,
    /// Columns of the overview plot at most.
    pub overview_points: usize,
    /// Patch boundaries drawn in the overview plot at most.
    pub overview_boundaries: usize,
    /// Page title (default: the document key).
    pub title: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            page_tokens: 1024,
            max_pages: 32,
            overview_points: 1500,
            overview_boundaries: 400,
            title: None,
        }
    }
}

/// What each token position shows in the bytes view and under the plot.
fn position_labels(doc: &PatchedDocument) -> Vec<Label> {
    let ids = &doc.token_ids;
    let mut out = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        let id = ids[i];
        match PatchedDocument::token_byte(id) {
            None => {
                out.push(Label::Special(match id {
                    BOS_ID => "⟨BOS⟩",
                    EOS_ID => "⟨EOS⟩",
                    0 => "⟨BOE⟩",
                    _ => "⟨?⟩",
                }));
                i += 1;
            }
            Some(b) => {
                // A UTF-8 character spread over consecutive byte tokens: the character on its
                // first token, the others shown as continuation slivers.
                let len = match b {
                    0x00..=0x7f => 1,
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => 0,
                };
                let bytes: Option<Vec<u8>> = (len > 0)
                    .then(|| {
                        ids.get(i..i + len).map(|w| {
                            w.iter()
                                .filter_map(|&t| PatchedDocument::token_byte(t))
                                .collect()
                        })
                    })
                    .flatten();
                match bytes
                    .filter(|v: &Vec<u8>| v.len() == len)
                    .and_then(|v| String::from_utf8(v).ok())
                {
                    Some(ch) => {
                        out.push(Label::Char(ch));
                        for _ in 1..len {
                            out.push(Label::Continuation);
                        }
                        i += len;
                    }
                    None => {
                        out.push(Label::Hex(b));
                        i += 1;
                    }
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Label {
    Char(String),
    Continuation,
    Hex(u8),
    Special(&'static str),
}

impl Label {
    /// Text for the bytes view (HTML-escaped).
    fn html(&self) -> String {
        match self {
            Label::Char(c) => match c.as_str() {
                "\n" => "↵<br>".to_string(),
                "\t" => "⇥".to_string(),
                "\r" => "␍".to_string(),
                " " => "&nbsp;".to_string(),
                c if c.chars().all(char::is_control) => {
                    format!(
                        "\\x{:02x}",
                        c.chars().next().map(|ch| ch as u32).unwrap_or(0)
                    )
                }
                c => escape(c),
            },
            Label::Continuation => String::new(),
            Label::Hex(b) => format!("\\x{b:02x}"),
            Label::Special(s) => s.to_string(),
        }
    }

    /// Short text under the plot's axis.
    fn axis(&self) -> String {
        match self {
            Label::Char(c) => match c.as_str() {
                "\n" => "↵".to_string(),
                "\t" => "⇥".to_string(),
                " " => "␣".to_string(),
                c if c.chars().all(char::is_control) => "·".to_string(),
                c => c.to_string(),
            },
            Label::Continuation => "·".to_string(),
            Label::Hex(_) => "¤".to_string(),
            Label::Special(s) => s.trim_matches(|c| c == '⟨' || c == '⟩')[..1].to_string(),
        }
    }
}

/// Renders the report of one document as a complete HTML page.
pub fn render_report(doc: &PatchedDocument, options: &ReportOptions) -> Result<String> {
    doc.validate()?;
    let n = doc.num_tokens();
    let starts = doc.patch_starts();
    let labels = position_labels(doc);
    let y_max = entropy_axis_max(&doc.entropies, doc.threshold);
    let colour_max = y_max as f32;
    let title = options
        .title
        .clone()
        .unwrap_or_else(|| format!("Entropy patches of {}", doc.key));

    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", escape(&title));
    let source = doc
        .metadata
        .get("source_path")
        .filter(|s| !s.is_empty())
        .map(|s| format!(" · source <code>{}</code>", escape(s)))
        .unwrap_or_default();
    let model = doc
        .metadata
        .get("model_id")
        .map(|m| format!(" · model <code>{}</code>", escape(m)))
        .unwrap_or_default();
    let _ = write!(
        body,
        "<p class=\"muted\">document <code>{}</code>{source}{model}</p>",
        escape(&doc.key)
    );

    // Summary numbers.
    let mut lengths: Vec<f64> = doc.patch_lengths.iter().map(|&l| l as f64).collect();
    lengths.sort_by(f64::total_cmp);
    let h = EntropyHistogram::compute(&doc.entropies, 1);
    let mean_len = if lengths.is_empty() {
        0.0
    } else {
        lengths.iter().sum::<f64>() / lengths.len() as f64
    };
    let modalities: Vec<String> = doc
        .bytes_per_modality()
        .into_iter()
        .map(|(m, b)| format!("{m} {b}"))
        .collect();
    let rows: Vec<(&str, String)> = vec![
        ("bytes", doc.bytes.len().to_string()),
        ("token positions", n.to_string()),
        ("patches", doc.patch_lengths.len().to_string()),
        ("mean patch length (positions)", num(mean_len, 3)),
        (
            "median / max patch length",
            format!(
                "{} / {}",
                num(percentile_nearest_rank(&lengths, 0.5), 1),
                num(lengths.last().copied().unwrap_or(0.0), 0)
            ),
        ),
        ("mean entropy (nats)", num(h.statistics.mean, 4)),
        (
            "entropy p50 / p90 / p99 / max",
            format!(
                "{} / {} / {} / {}",
                num(h.percentiles.p50, 3),
                num(h.percentiles.p90, 3),
                num(h.percentiles.p99, 3),
                num(h.statistics.max, 3)
            ),
        ),
        (
            "threshold (nats)",
            doc.threshold
                .map(|t| num(t as f64, 6))
                .or_else(|| doc.metadata.get("threshold").cloned())
                .unwrap_or_else(|| "—".to_string()),
        ),
        (
            "patch mode",
            doc.metadata
                .get("patch_mode")
                .cloned()
                .unwrap_or_else(|| "entropy".to_string()),
        ),
        (
            "segments (bytes per modality)",
            format!("{} ({})", doc.segments.len(), modalities.join(", ")),
        ),
    ];
    body.push_str("<h2>Summary</h2><table class=\"summary\" id=\"summary\">");
    for (k, v) in rows {
        let _ = write!(
            body,
            "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
    body.push_str("</table>");

    // Overview plot.
    let _ = write!(
        body,
        "<h2>Entropy per position</h2><p class=\"muted\">Entropy (nats) of the prediction made at \
         each position; dashed red: the threshold; grey verticals: patch boundaries \
         (a patch starts at position t ≥ 2 when the entropy at t − 1 is above the threshold).</p>\
         <div id=\"overview\">{}</div>",
        overview_plot_svg(
            &doc.entropies,
            &starts,
            doc.threshold,
            options.overview_points,
            options.overview_boundaries,
            y_max
        )
    );

    // Patch-length histogram: one bar per length up to 64, then buckets.
    body.push_str("<h2>Patch lengths</h2><div id=\"patch-lengths\">");
    body.push_str(&bar_chart_svg(
        &patch_length_bars(&doc.patch_lengths),
        "patch length (positions)",
        "patches",
    ));
    body.push_str("</div>");

    // Pages.
    let page_tokens = options.page_tokens.max(1);
    let pages = n.div_ceil(page_tokens).max(1);
    let shown = pages.min(options.max_pages.max(1));
    let _ = write!(
        body,
        "<h2>Bytes and patches</h2><div class=\"legend\">entropy 0 <span class=\"ramp\" \
         style=\"{}\"></span> {} nats · a bar marks the start of each patch · hover for values</div>",
        ramp_css(),
        num(y_max, 2)
    );
    if shown < pages {
        let _ = write!(
            body,
            "<p class=\"muted\" id=\"truncated\">Showing the first {shown} of {pages} pages \
             (positions 0–{}); the overview above covers all {n} positions.</p>",
            shown * page_tokens
        );
    }
    let patch_of: Vec<usize> = {
        let mut v = vec![0usize; n];
        for (j, r) in doc.patch_token_ranges().into_iter().enumerate() {
            for slot in &mut v[r] {
                *slot = j;
            }
        }
        v
    };
    let starts_set: std::collections::BTreeSet<usize> = starts.iter().copied().collect();
    for p in 0..shown {
        let a = p * page_tokens;
        let b = ((p + 1) * page_tokens).min(n);
        let axis_labels: Vec<String> = labels[a..b].iter().map(Label::axis).collect();
        let _ = write!(
            body,
            "<details class=\"page\" data-start=\"{a}\" data-end=\"{b}\"{}><summary>positions {a}–{}</summary>",
            if p == 0 { " open" } else { "" },
            b.saturating_sub(1)
        );
        body.push_str(&entropy_plot_svg(
            &doc.entropies,
            a..b,
            &starts,
            doc.threshold,
            Some(&axis_labels),
            y_max,
        ));
        body.push_str("<div class=\"bytes\">");
        let mut open = false;
        for i in a..b {
            if starts_set.contains(&i) || !open {
                if open {
                    body.push_str("</span>");
                }
                let j = patch_of[i];
                let _ = write!(body, "<span class=\"p\" title=\"patch {j}\">");
                open = true;
            }
            let e = doc.entropies[i];
            let class = match (&labels[i], needs_light_text(e, colour_max)) {
                (Label::Continuation, _) => " class=\"c\"",
                (Label::Special(_), false) => " class=\"s\"",
                (Label::Special(_), true) => " class=\"s l\"",
                (_, true) => " class=\"l\"",
                _ => "",
            };
            let _ = write!(
                body,
                "<i{class} style=\"background:{}\" title=\"{i}: {}\">{}</i>",
                scale_colour(e, colour_max),
                num(e as f64, 3),
                labels[i].html()
            );
        }
        if open {
            body.push_str("</span>");
        }
        body.push_str("</div></details>");
    }
    Ok(page(&title, &body))
}

/// Bars of a patch-length histogram: one per length `1..=max` when the longest patch is at
/// most 64, else 32 equal-width buckets labelled by their lower bound.
pub fn patch_length_bars(lengths: &[usize]) -> Vec<(String, u64)> {
    let max = lengths.iter().copied().max().unwrap_or(0);
    if max <= 64 {
        let mut counts = vec![0u64; max];
        for &l in lengths {
            if l >= 1 {
                counts[l - 1] += 1;
            }
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| ((i + 1).to_string(), c))
            .collect()
    } else {
        let width = max.div_ceil(32);
        let mut counts = vec![0u64; 32];
        for &l in lengths {
            counts[((l.max(1) - 1) / width).min(31)] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("{}–{}", i * width + 1, (i + 1) * width), c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> PatchedDocument {
        let mut ids = vec![BOS_ID];
        ids.extend(text.bytes().map(|b| b as i32 + 4));
        ids.push(EOS_ID);
        let n = ids.len();
        let entropies: Vec<f32> = (0..n).map(|i| ((i * 7) % 5) as f32 * 0.8).collect();
        let mut lengths = vec![1];
        let mut left = n - 1;
        while left > 0 {
            let l = left.min(3);
            lengths.push(l);
            left -= l;
        }
        PatchedDocument::from_analysis(
            "doc",
            text.as_bytes().to_vec(),
            ids,
            entropies,
            vec![],
            lengths,
            Some(1.3),
        )
        .unwrap()
    }

    #[test]
    fn report_has_one_boundary_per_patch_and_no_scripts() {
        let d = doc("héllo <world> & more\nline two");
        let html = render_report(&d, &ReportOptions::default()).unwrap();
        assert_eq!(
            html.matches("class=\"boundary\"").count(),
            d.patch_lengths.len()
        );
        assert_eq!(
            html.matches("<span class=\"p\"").count(),
            d.patch_lengths.len()
        );
        assert!(!html.contains("<script"));
        // Self-contained: nothing is loaded from anywhere.
        assert!(!html.contains(" src=") && !html.contains(" href=") && !html.contains("url("));
        assert!(html.contains(">&lt;</i>") && html.contains(">&amp;</i>"));
        assert!(html.contains(">é<"));
    }

    #[test]
    fn long_documents_are_paginated_and_capped() {
        let text = "abcdefghij".repeat(500); // 5002 positions
        let d = doc(&text);
        let opts = ReportOptions {
            page_tokens: 1000,
            max_pages: 3,
            ..ReportOptions::default()
        };
        let html = render_report(&d, &opts).unwrap();
        assert_eq!(html.matches("<details class=\"page\"").count(), 3);
        assert!(html.contains("id=\"truncated\""));
        // Marks only for the patch starts on the shown pages.
        let shown = d.patch_starts().iter().filter(|&&s| s < 3000).count();
        assert_eq!(html.matches("class=\"boundary\"").count(), shown);
    }

    #[test]
    fn labels_for_utf8_specials_and_invalid_bytes() {
        let ids = vec![
            BOS_ID,
            0xc3 + 4,
            0xa9 + 4,
            0xff + 4,
            b'a' as i32 + 4,
            EOS_ID,
        ];
        let d = PatchedDocument::from_analysis(
            "x",
            vec![0xc3, 0xa9, 0xff, b'a'],
            ids,
            vec![0.0; 6],
            vec![],
            vec![1, 5],
            None,
        )
        .unwrap();
        let l = position_labels(&d);
        assert_eq!(
            l,
            vec![
                Label::Special("⟨BOS⟩"),
                Label::Char("é".into()),
                Label::Continuation,
                Label::Hex(0xff),
                Label::Char("a".into()),
                Label::Special("⟨EOS⟩"),
            ]
        );
    }

    #[test]
    fn length_bars() {
        assert_eq!(
            patch_length_bars(&[1, 3, 3]),
            vec![("1".into(), 1), ("2".into(), 0), ("3".into(), 2)]
        );
        let bars = patch_length_bars(&[1, 100]);
        assert_eq!(bars.len(), 32);
        assert_eq!(bars.iter().map(|b| b.1).sum::<u64>(), 2);
    }
}
