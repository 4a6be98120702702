//! PDF: the raw file as one view, and each page's extracted text (pure Rust, `lopdf`) as
//! another; all views share one `source_id` derived from the file's content hash.

use serde_json::json;

use crate::coverage::source_id;
use crate::{Modality, PretokenizeError, Segment, Segmenter};

/// Options of [`PdfSegmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdfOptions {
    /// Keep the raw file as a view (the default). Without it, only page texts are segments.
    pub raw_view: bool,
    /// Extract the text of at most this many pages (the rest are counted in the raw view's
    /// metadata as `pages_without_text`).
    pub max_pages: usize,
    /// The most bytes one page's content streams may decompress to (a bomb guard).
    pub max_page_content_bytes: usize,
}

impl Default for PdfOptions {
    fn default() -> Self {
        Self {
            raw_view: true,
            max_pages: 10_000,
            max_page_content_bytes: 64 << 20,
        }
    }
}

/// Splits a PDF into views of one source.
///
/// - `raw`: the whole file's bytes (modality `pdf`), so every byte is in exactly one raw segment;
/// - `page N`: the text extracted from page `N` (modality `text`, decoded content, `byte_range` the
///   whole file since a page's text cannot be localised to one range of it;
///   `metadata.representation = "utf8_text"`). Pages without text give no segment; a page whose
///   text cannot be extracted is listed in the raw view's `pages_failed`.
///
/// A file `lopdf` cannot load (truncated before its cross-reference data, garbage) is a
/// [`PretokenizeError::Decode`]. Every view carries the same `source_id`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PdfSegmenter {
    options: PdfOptions,
}

impl PdfSegmenter {
    /// A segmenter with these options.
    pub fn new(options: PdfOptions) -> Self {
        Self { options }
    }
}

impl Segmenter for PdfSegmenter {
    fn segment(&self, document: &[u8]) -> crate::Result<Vec<Segment>> {
        let options = self.options;
        // A panic in the PDF parser on a hostile file must not take a run down.
        std::panic::catch_unwind(|| segment_pdf(document, options)).map_err(|_| {
            PretokenizeError::Decode {
                format: "pdf",
                reason: "the PDF parser panicked on this input".into(),
            }
        })?
    }
}

fn segment_pdf(document: &[u8], options: PdfOptions) -> crate::Result<Vec<Segment>> {
    let pdf = lopdf::Document::load_mem(document).map_err(|e| PretokenizeError::Decode {
        format: "pdf",
        reason: e.to_string(),
    })?;
    let id = source_id(document);
    let whole = 0..document.len() as u64;
    let pages = pdf.get_pages();
    let mut texts = Vec::new();
    let mut failed = Vec::new();
    let mut empty = 0usize;
    for &number in pages.keys().take(options.max_pages) {
        match pdf.extract_text_with_limit(&[number], options.max_page_content_bytes) {
            Ok(text) if text.trim().is_empty() => empty += 1,
            Ok(text) => texts.push(Segment {
                modality: Modality::Text,
                label: format!("page {number}"),
                byte_range: whole.clone(),
                source_id: Some(id.clone()),
                metadata: json!({
                    "view": "text",
                    "page": number,
                    "representation": "utf8_text",
                    "chars": text.chars().count(),
                }),
                decoded: Some(text.into_bytes()),
            }),
            Err(e) => {
                tracing::debug!("pdf page {number}: {e}");
                failed.push(json!({ "page": number, "reason": e.to_string() }));
            }
        }
    }
    let mut segments = Vec::with_capacity(texts.len() + 1);
    if options.raw_view {
        segments.push(Segment {
            modality: Modality::Pdf,
            label: "raw".into(),
            byte_range: whole,
            source_id: Some(id),
            metadata: json!({
                "view": "raw",
                "page_count": pages.len(),
                "pages_with_text": texts.len(),
                "pages_without_text": empty + pages.len().saturating_sub(options.max_pages),
                "pages_failed": failed,
                "encrypted": pdf.is_encrypted(),
            }),
            decoded: None,
        });
    }
    segments.extend(texts);
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assert_accounts_for_every_byte;

    /// A two-page PDF written with `lopdf`'s own object model (the content streams are ours;
    /// the structure is what `lopdf` writes).
    fn two_page_pdf() -> Vec<u8> {
        use lopdf::content::{Content, Operation};
        use lopdf::{dictionary, Document, Object, Stream};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
        });
        let resources_id = doc.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let mut kids = Vec::new();
        for text in ["Hello page one", "Second page here"] {
            let content = Content {
                operations: vec![
                    Operation::new("BT", vec![]),
                    Operation::new("Tf", vec!["F1".into(), 24.into()]),
                    Operation::new("Td", vec![100.into(), 600.into()]),
                    Operation::new("Tj", vec![Object::string_literal(text)]),
                    Operation::new("ET", vec![]),
                ],
            };
            let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
            kids.push(Object::from(doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            })));
        }
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => 2,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn raw_view_plus_page_texts_share_a_source_id() {
        let pdf = two_page_pdf();
        let segs = PdfSegmenter::default().segment(&pdf).unwrap();
        assert_accounts_for_every_byte(&pdf, &segs).unwrap();
        assert_eq!(segs.len(), 3, "{segs:?}");
        assert_eq!(segs[0].label, "raw");
        assert_eq!(segs[0].bytes(&pdf), &pdf[..]);
        let page1 = String::from_utf8(segs[1].decoded.clone().unwrap()).unwrap();
        assert!(page1.contains("Hello page one"), "{page1:?}");
        assert_eq!(segs[2].label, "page 2");
        let id = segs[0].source_id.clone().unwrap();
        assert!(segs
            .iter()
            .all(|s| s.source_id.as_deref() == Some(id.as_str())));
        assert_eq!(id, source_id(&pdf));
    }

    #[test]
    fn truncated_and_corrupted_pdfs_give_errors_or_views() {
        let pdf = two_page_pdf();
        let mut garbage = pdf.clone();
        let mid = garbage.len() / 3;
        garbage[mid..mid + 40].fill(b'#');
        for case in [
            &pdf[..pdf.len() / 2],
            &pdf[..9],
            &garbage[..],
            b"%PDF-1.4\n%%EOF",
        ] {
            match PdfSegmenter::default().segment(case) {
                Ok(segs) => assert_accounts_for_every_byte(case, &segs).unwrap(),
                Err(e) => assert!(matches!(e, PretokenizeError::Decode { .. }), "{e}"),
            }
        }
    }
}
