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
    /// The most bytes one page's content streams may decompress to (a bomb guard); also the
    /// most any one stream (object streams, cross-reference streams) may decompress to while the
    /// file is loaded. A page over it is listed in the raw view's `pages_failed`; a stream over
    /// it at load time is a [`PretokenizeError::Decode`]. Default: 64 MiB.
    pub max_page_content_bytes: usize,
    /// The most bytes of text all pages of one PDF may extract to together. Many pages can share
    /// one content stream, so a small file can hold thousands of pages of the same text; past
    /// this the PDF is refused with [`PretokenizeError::LimitExceeded`]
    /// (`option = "pdf.max_text_bytes"`), not cut short. Default: [`DEFAULT_MAX_PDF_TEXT_BYTES`].
    pub max_text_bytes: usize,
}

/// Default of [`PdfOptions::max_text_bytes`]: 64 MiB of text per PDF (some 30 000 pages of a
/// dense book).
pub const DEFAULT_MAX_PDF_TEXT_BYTES: usize = 64 << 20;

impl Default for PdfOptions {
    fn default() -> Self {
        Self {
            raw_view: true,
            max_pages: 10_000,
            max_page_content_bytes: 64 << 20,
            max_text_bytes: DEFAULT_MAX_PDF_TEXT_BYTES,
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
/// [`PretokenizeError::Decode`]. Every view carries the same `source_id`. Text beyond
/// [`PdfOptions::max_text_bytes`] in all is a [`PretokenizeError::LimitExceeded`]: the check runs
/// after each page, so at most one page's text (bounded by `max_page_content_bytes` of content)
/// is extracted past it.
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
    let load = lopdf::LoadOptions::with_max_decompressed_size(options.max_page_content_bytes);
    let pdf = lopdf::Document::load_mem_with_options(document, load).map_err(|e| {
        PretokenizeError::Decode {
            format: "pdf",
            reason: e.to_string(),
        }
    })?;
    let id = source_id(document);
    let whole = 0..document.len() as u64;
    let pages = pdf.get_pages();
    let mut texts = Vec::new();
    let mut failed = Vec::new();
    let mut empty = 0usize;
    let mut text_bytes = 0usize;
    for &number in pages.keys().take(options.max_pages) {
        let extracted = pdf.extract_text_with_limit(&[number], options.max_page_content_bytes);
        if let Ok(text) = &extracted {
            text_bytes = text_bytes.saturating_add(text.len());
            if text_bytes > options.max_text_bytes {
                return Err(PretokenizeError::LimitExceeded {
                    what: format!("bytes of text extracted from a PDF (by page {number})"),
                    limit: options.max_text_bytes as u64,
                    actual: text_bytes as u64,
                    option: "pdf.max_text_bytes",
                });
            }
        }
        match extracted {
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

    /// A PDF of `pages` pages that all draw one shared content stream showing `text`.
    fn shared_content_pdf(text: &str, pages: usize) -> Vec<u8> {
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
        let kids: Vec<Object> = (0..pages)
            .map(|_| {
                doc.add_object(dictionary! {
                    "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
                })
                .into()
            })
            .collect();
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => pages as i64,
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
    fn pages_sharing_one_content_stream_are_bounded_in_all() {
        let text = "The same words on every page.";
        let pdf = shared_content_pdf(text, 500);
        // Under the default limit: 500 pages of the same text.
        let segs = PdfSegmenter::default().segment(&pdf).unwrap();
        assert_accounts_for_every_byte(&pdf, &segs).unwrap();
        assert_eq!(segs.len(), 501);
        let per_page = segs[1].decoded.as_ref().unwrap().len();
        assert!(per_page >= text.len(), "{per_page}");
        // A total of 20 pages' worth: refused, naming the option, after the 21st page.
        let limit = 20 * per_page;
        let err = PdfSegmenter::new(PdfOptions {
            max_text_bytes: limit,
            ..Default::default()
        })
        .segment(&pdf)
        .unwrap_err();
        match err {
            PretokenizeError::LimitExceeded {
                what,
                limit: l,
                actual,
                option,
            } => {
                assert_eq!(option, "pdf.max_text_bytes");
                assert_eq!(l, limit as u64);
                assert_eq!(actual, 21 * per_page as u64);
                assert!(what.contains("page 21"), "{what}");
            }
            other => panic!("{other:?}"),
        }
        // The same limit leaves an ordinary two-page PDF alone.
        let small = two_page_pdf();
        let segs = PdfSegmenter::new(PdfOptions {
            max_text_bytes: limit,
            ..Default::default()
        })
        .segment(&small)
        .unwrap();
        assert_eq!(segs.len(), 3);
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
