//! `blt detect`: what each file is, and optionally its segments.

use std::io::Write;

use blt_pretokenize::Pretokenized;

use crate::args::DetectArgs;
use crate::pretokenize::pretokenizer;

pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    let pre = pretokenizer(&args.pretokenize)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0usize;
    for path in &args.files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                failed += 1;
                tracing::debug!("{}: {e}", path.display());
                writeln!(std::io::stderr(), "{}: cannot read: {e}", path.display())?;
                continue;
            }
        };
        let detection = pre.detect(&bytes, Some(path));
        let segments = if args.segments {
            Some(pre.pretokenize_as(&detection, &bytes))
        } else {
            None
        };
        if args.json {
            let segs = segments.as_ref().map(|r| match r {
                Ok(Pretokenized::Segments(s)) => serde_json::json!(s
                    .iter()
                    .map(|s| serde_json::json!({
                        "modality": s.modality.as_str(),
                        "label": s.label,
                        "byte_range": [s.byte_range.start, s.byte_range.end],
                        "decoded_bytes": s.decoded.as_ref().map(Vec::len),
                        "source_id": s.source_id,
                        "metadata": s.metadata,
                    }))
                    .collect::<Vec<_>>()),
                Ok(Pretokenized::Container(c)) => serde_json::json!({
                    "members": c.members.iter().map(|m| serde_json::json!({
                        "inner_path": m.inner_path,
                        "bytes": m.bytes.len(),
                        "data_range": [m.data_range.start, m.data_range.end],
                    })).collect::<Vec<_>>(),
                    "skipped": c.skipped.iter().map(|s| serde_json::json!({
                        "name": s.name, "reason": s.reason,
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            });
            let v = serde_json::json!({
                "path": path.display().to_string(),
                "bytes": bytes.len(),
                "format": detection.format.name(),
                "modality": detection.modality().as_str(),
                "detected_by": detection.by.as_str(),
                "segments": segs,
            });
            writeln!(out, "{v}")?;
            continue;
        }
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            path.display(),
            detection.format,
            detection.modality(),
            detection.by.as_str()
        )?;
        match segments {
            None => {}
            Some(Ok(Pretokenized::Segments(segs))) => {
                for s in segs {
                    let decoded = s
                        .decoded
                        .as_ref()
                        .map(|d| format!(" (decoded, {} bytes)", d.len()))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "  {}..{}\t{}\t{}{decoded}",
                        s.byte_range.start, s.byte_range.end, s.modality, s.label
                    )?;
                }
            }
            Some(Ok(Pretokenized::Container(c))) => {
                for m in &c.members {
                    writeln!(out, "  member\t{}\t{} bytes", m.inner_path, m.bytes.len())?;
                }
                for s in &c.skipped {
                    writeln!(out, "  skipped\t{}\t{}", s.name, s.reason)?;
                }
            }
            Some(Err(e)) => {
                failed += 1;
                writeln!(out, "  error: {e}")?;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} files could not be read or segmented",
            args.files.len()
        );
    }
    Ok(())
}
