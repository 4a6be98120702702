//! Source code: top-level units (functions, types, impls, classes…) found by tree-sitter, and
//! the gaps between them (imports, comments, top-level statements) as segments of their own.

use serde_json::json;
use tree_sitter::{Node, Parser};

use crate::coverage::{cover, Part};
use crate::{Language, Modality, PretokenizeError, Segment, Segmenter};

/// Options of [`CodeSegmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeOptions {
    /// Attach the comments and attributes directly above a unit (doc comments, `#[derive]`,
    /// decorators outside the node) to it. Default: on.
    pub attach_leading_comments: bool,
    /// How deep to look into containers (C/C++ namespaces, `extern "C"`, preprocessor
    /// conditionals, Java class bodies) for units.
    pub max_depth: usize,
    /// Files larger than this are not parsed (tree-sitter's tree takes up to about 90 times the
    /// file's size): they are one `code` segment with `metadata.parsed = false` and a `reason`.
    /// Default: [`DEFAULT_MAX_PARSE_BYTES`].
    pub max_parse_bytes: usize,
    /// Files with more units than this are not split (each unit and each gap between units is a
    /// segment with its own bookkeeping, so a file of tiny definitions would cost that per few
    /// bytes): they are one `code` segment with `metadata.parsed = false` and a `reason`.
    /// Default: [`DEFAULT_MAX_CODE_UNITS`].
    pub max_units: usize,
}

/// Default of [`CodeOptions::max_parse_bytes`]: 4 MiB, more than nearly any hand-written source
/// file. Parsing 8 MiB of one-token statements (`a;` lines of C, `fn a(){}` lines of Rust) peaked
/// at 710–750 MB, so 4 MiB keeps one file's tree under about 400 MB.
pub const DEFAULT_MAX_PARSE_BYTES: usize = 4 << 20;

/// Default of [`CodeOptions::max_units`]: 65 536 units in one file.
pub const DEFAULT_MAX_CODE_UNITS: usize = 1 << 16;

impl Default for CodeOptions {
    fn default() -> Self {
        Self {
            attach_leading_comments: true,
            max_depth: 16,
            max_parse_bytes: DEFAULT_MAX_PARSE_BYTES,
            max_units: DEFAULT_MAX_CODE_UNITS,
        }
    }
}

/// Splits source code into units and gaps that tile the file.
///
/// Units are definitions (functions, methods, classes, structs, enums, traits, impls, type
/// aliases, …); what lies between them is a `gap` segment. A file with syntax errors still has a
/// tree (tree-sitter recovers), so it still segments; a language without a grammar here
/// ([`Language::Shell`], [`Language::Other`]), a file over [`CodeOptions::max_parse_bytes`] and
/// one with more than [`CodeOptions::max_units`] units are one `code` segment
/// (`metadata.parsed = false`, with a `reason` for the last two).
///
/// ```
/// use blt_pretokenize::{CodeSegmenter, Language, Segmenter};
///
/// let src = b"use std::fmt;\n\n/// Adds.\nfn add(a: i32) -> i32 { a + 1 }\n\nstruct S;\n";
/// let segs = CodeSegmenter::new(Language::Rust, Default::default()).segment(src).unwrap();
/// let labels: Vec<_> = segs.iter().map(|s| s.label.as_str()).collect();
/// assert_eq!(labels, ["gap", "function_item add", "gap", "struct_item S", "gap"]);
/// assert_eq!(segs[1].bytes(src), b"/// Adds.\nfn add(a: i32) -> i32 { a + 1 }");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CodeSegmenter {
    language: Language,
    options: CodeOptions,
}

impl CodeSegmenter {
    /// A segmenter for `language`.
    pub fn new(language: Language, options: CodeOptions) -> Self {
        Self { language, options }
    }
}

struct Grammar {
    language: tree_sitter::Language,
    units: &'static [&'static str],
    containers: &'static [&'static str],
    leading: &'static [&'static str],
}

fn grammar(language: Language) -> Option<Grammar> {
    const COMMENTS: &[&str] = &["comment", "line_comment", "block_comment"];
    const C_CONTAINERS: &[&str] = &[
        "preproc_if",
        "preproc_ifdef",
        "preproc_else",
        "preproc_elif",
        "preproc_elifdef",
        "linkage_specification",
        "declaration_list",
        "namespace_definition",
    ];
    let c_units: &'static [&'static str] = &[
        "function_definition",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "type_definition",
        "class_specifier",
        "template_declaration",
        "concept_definition",
        "preproc_function_def",
    ];
    let js_units: &'static [&'static str] = &[
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "abstract_class_declaration",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "module",
        "internal_module",
        "function_signature",
    ];
    let js_containers: &'static [&'static str] = &["export_statement"];
    Some(match language {
        Language::Rust => Grammar {
            language: tree_sitter_rust::LANGUAGE.into(),
            units: &[
                "function_item",
                "function_signature_item",
                "struct_item",
                "enum_item",
                "union_item",
                "impl_item",
                "trait_item",
                "mod_item",
                "macro_definition",
                "macro_invocation",
                "const_item",
                "static_item",
                "type_item",
            ],
            containers: &[],
            leading: &["line_comment", "block_comment", "attribute_item"],
        },
        Language::Python => Grammar {
            language: tree_sitter_python::LANGUAGE.into(),
            units: &[
                "function_definition",
                "class_definition",
                "decorated_definition",
            ],
            containers: &[],
            leading: COMMENTS,
        },
        Language::JavaScript => Grammar {
            language: tree_sitter_javascript::LANGUAGE.into(),
            units: js_units,
            containers: js_containers,
            leading: COMMENTS,
        },
        Language::TypeScript => Grammar {
            language: tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            units: js_units,
            containers: js_containers,
            leading: COMMENTS,
        },
        Language::Tsx => Grammar {
            language: tree_sitter_typescript::LANGUAGE_TSX.into(),
            units: js_units,
            containers: js_containers,
            leading: COMMENTS,
        },
        Language::C => Grammar {
            language: tree_sitter_c::LANGUAGE.into(),
            units: c_units,
            containers: C_CONTAINERS,
            leading: COMMENTS,
        },
        Language::Cpp => Grammar {
            language: tree_sitter_cpp::LANGUAGE.into(),
            units: c_units,
            containers: C_CONTAINERS,
            leading: COMMENTS,
        },
        Language::Go => Grammar {
            language: tree_sitter_go::LANGUAGE.into(),
            units: &[
                "function_declaration",
                "method_declaration",
                "type_declaration",
            ],
            containers: &[],
            leading: COMMENTS,
        },
        Language::Java => Grammar {
            language: tree_sitter_java::LANGUAGE.into(),
            units: &[
                "method_declaration",
                "constructor_declaration",
                "compact_constructor_declaration",
                "annotation_type_declaration",
            ],
            // A Java file is one class: its members are the units.
            containers: &[
                "class_declaration",
                "class_body",
                "interface_declaration",
                "interface_body",
                "enum_declaration",
                "enum_body",
                "enum_body_declarations",
                "record_declaration",
            ],
            leading: &[
                "line_comment",
                "block_comment",
                "marker_annotation",
                "annotation",
            ],
        },
        Language::Shell | Language::Other => return None,
    })
}

impl Segmenter for CodeSegmenter {
    fn segment(&self, document: &[u8]) -> crate::Result<Vec<Segment>> {
        let language = self.language.as_str();
        let whole = |metadata: serde_json::Value| {
            Ok(vec![Segment {
                modality: Modality::Code,
                label: "code".into(),
                byte_range: 0..document.len() as u64,
                source_id: None,
                metadata,
                decoded: None,
            }])
        };
        let Some(grammar) = grammar(self.language) else {
            return whole(json!({ "language": language, "parsed": false }));
        };
        if document.len() > self.options.max_parse_bytes {
            return whole(json!({
                "language": language,
                "parsed": false,
                "reason": format!(
                    "{} bytes exceeds code.max_parse_bytes = {}",
                    document.len(),
                    self.options.max_parse_bytes
                ),
            }));
        }
        let mut parser = Parser::new();
        parser
            .set_language(&grammar.language)
            .map_err(|e| PretokenizeError::Parse {
                language,
                reason: e.to_string(),
            })?;
        let tree = parser
            .parse(document, None)
            .ok_or_else(|| PretokenizeError::Parse {
                language,
                reason: "the parser gave no tree".into(),
            })?;
        let root = tree.root_node();
        let mut parts = Vec::new();
        if !collect_units(
            root,
            document,
            &grammar,
            language,
            &self.options,
            0,
            &mut parts,
        ) {
            return whole(json!({
                "language": language,
                "parsed": false,
                "reason": format!(
                    "more than code.max_units = {} units",
                    self.options.max_units
                ),
            }));
        }
        Ok(cover(
            document.len() as u64,
            parts,
            Modality::Code,
            "gap",
            &json!({
                "language": language,
                "unit": false,
                "syntax_errors": root.has_error(),
            }),
        ))
    }
}

/// Appends the units under `node` to `parts`; `false` (and stops) once there would be more than
/// `options.max_units`.
fn collect_units(
    node: Node<'_>,
    source: &[u8],
    grammar: &Grammar,
    language: &'static str,
    options: &CodeOptions,
    depth: usize,
    parts: &mut Vec<Part>,
) -> bool {
    let mut cursor = node.walk();
    let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
    // Start of the run of leading comments/attributes right above the current child.
    let mut leading_start: Option<usize> = None;
    let mut previous_end = node.start_byte();
    for child in children {
        let kind = child.kind();
        let between = &source[previous_end.min(child.start_byte())..child.start_byte()];
        let blank_line_above = between.iter().filter(|&&b| b == b'\n').count() > 1;
        if grammar.units.contains(&kind) {
            if parts.len() >= options.max_units {
                return false;
            }
            let start = match leading_start {
                Some(s) if options.attach_leading_comments && !blank_line_above => s,
                _ => child.start_byte(),
            };
            let name = child
                .child_by_field_name("name")
                .or_else(|| child.child_by_field_name("declarator"))
                .or_else(|| child.child_by_field_name("type"))
                .or_else(|| child.child_by_field_name("definition"))
                .map(|n| label_text(&source[n.start_byte()..n.end_byte()]));
            parts.push(Part {
                range: start as u64..child.end_byte() as u64,
                label: match &name {
                    Some(name) => format!("{kind} {name}"),
                    None => kind.to_owned(),
                },
                metadata: json!({
                    "language": language,
                    "unit": true,
                    "node_kind": kind,
                    "name": name,
                    "start_row": child.start_position().row,
                    "end_row": child.end_position().row,
                    "syntax_errors": child.has_error(),
                }),
            });
            leading_start = None;
        } else if grammar.containers.contains(&kind) && depth < options.max_depth {
            if !collect_units(child, source, grammar, language, options, depth + 1, parts) {
                return false;
            }
            leading_start = None;
        } else if grammar.leading.contains(&kind) {
            // a comment right below the previous one (no blank line) continues the run
            if leading_start.is_none() || blank_line_above {
                leading_start = Some(child.start_byte());
            }
        } else {
            leading_start = None;
        }
        previous_end = child.end_byte();
    }
    true
}

/// A node's text for a label: lossy UTF-8, one line, at most 60 characters.
fn label_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assert_accounts_for_every_byte;

    fn labels(language: Language, src: &str) -> Vec<String> {
        let segs = CodeSegmenter::new(language, CodeOptions::default())
            .segment(src.as_bytes())
            .unwrap();
        assert_accounts_for_every_byte(src.as_bytes(), &segs).unwrap();
        segs.into_iter().map(|s| s.label).collect()
    }

    #[test]
    fn units_and_gaps_in_every_language() {
        let cases: &[(Language, &str, &[&str])] = &[
            (
                Language::Python,
                "import os\n\n# helper\ndef f(x):\n    return x\n\nprint(f(1))\n\n@dataclass\nclass A:\n    pass\n",
                &["gap", "function_definition f", "gap", "decorated_definition class A:", "gap"],
            ),
            (
                Language::JavaScript,
                "import x from 'y';\nexport function f() {}\nclass C {}\nconst z = 1;\n",
                &["gap", "function_declaration f", "gap", "class_declaration C", "gap"],
            ),
            (
                Language::TypeScript,
                "interface I { a: number }\ntype T = string;\nexport default class K {}\n",
                &["interface_declaration I", "gap", "type_alias_declaration T", "gap", "class_declaration K", "gap"],
            ),
            (
                Language::C,
                "#include <stdio.h>\n#ifndef X\nstruct p { int a; };\nint main(void) { return 0; }\n#endif\n",
                &["gap", "struct_specifier p", "gap", "function_definition main(void)", "gap"],
            ),
            (
                Language::Cpp,
                "namespace n {\nclass K {};\nint f() { return 1; }\n}\n",
                &["gap", "class_specifier K", "gap", "function_definition f()", "gap"],
            ),
            (
                Language::Go,
                "package main\n\nimport \"fmt\"\n\ntype T struct{}\n\nfunc (t T) M() {}\n\nfunc main() { fmt.Println() }\n",
                &["gap", "type_declaration", "gap", "method_declaration M", "gap", "function_declaration main", "gap"],
            ),
            (
                Language::Java,
                "package p;\nimport java.util.*;\n/** Doc. */\npublic class A {\n  int x;\n  A() {}\n  @Override\n  public String toString() { return \"\"; }\n}\n",
                &["gap", "constructor_declaration A", "gap", "method_declaration toString", "gap"],
            ),
        ];
        for (language, src, want) in cases {
            assert_eq!(labels(*language, src), *want, "{language:?}");
        }
    }

    #[test]
    fn broken_code_and_bytes_still_tile() {
        let cases: [&[u8]; 5] = [
            b"fn broken( { struct",
            b"",
            b"\xff\xfe fn main() {}",
            b"fn a() {}\n\n\n// trailing",
            b"////\n#[x]\n",
        ];
        for src in cases {
            for lang in [
                Language::Rust,
                Language::Python,
                Language::Cpp,
                Language::Java,
            ] {
                let segs = CodeSegmenter::new(lang, CodeOptions::default())
                    .segment(src)
                    .unwrap();
                assert_accounts_for_every_byte(src, &segs).unwrap();
            }
        }
        let deep = "#if A\n".repeat(2000) + &"#endif\n".repeat(2000);
        let segs = CodeSegmenter::new(Language::C, CodeOptions::default())
            .segment(deep.as_bytes())
            .unwrap();
        assert_accounts_for_every_byte(deep.as_bytes(), &segs).unwrap();
    }

    #[test]
    fn files_too_large_or_with_too_many_units_are_one_unparsed_segment() {
        let src = "fn a() {}\n".repeat(100);
        let options = |max_parse_bytes, max_units| CodeOptions {
            max_parse_bytes,
            max_units,
            ..Default::default()
        };
        let split = CodeSegmenter::new(Language::Rust, options(src.len(), 100))
            .segment(src.as_bytes())
            .unwrap();
        assert_eq!(
            split.iter().filter(|s| s.metadata["unit"] == true).count(),
            100
        );
        for (o, reason) in [
            (options(src.len() - 1, 100), "code.max_parse_bytes"),
            (options(src.len(), 99), "code.max_units"),
        ] {
            let segs = CodeSegmenter::new(Language::Rust, o)
                .segment(src.as_bytes())
                .unwrap();
            assert_accounts_for_every_byte(src.as_bytes(), &segs).unwrap();
            assert_eq!(segs.len(), 1, "{reason}");
            assert_eq!(segs[0].metadata["parsed"], false);
            let why = segs[0].metadata["reason"].as_str().unwrap();
            assert!(why.contains(reason), "{why}");
        }
        // units inside containers count too (C++ namespace)
        let nested = "namespace n {\n".to_string() + &"int f() { return 1; }\n".repeat(10) + "}\n";
        let segs = CodeSegmenter::new(Language::Cpp, options(usize::MAX, 9))
            .segment(nested.as_bytes())
            .unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].metadata["parsed"], false);
    }

    #[test]
    fn languages_without_a_grammar_are_one_segment() {
        let segs = CodeSegmenter::new(Language::Shell, CodeOptions::default())
            .segment(b"echo hi\n")
            .unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].metadata["parsed"], false);
    }
}
