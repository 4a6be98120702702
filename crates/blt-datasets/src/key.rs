//! Document keys: stable, unique names made only of `[A-Za-z0-9_-]`, usable as file names and as
//! WebDataset keys (which end at the first dot).

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// At most this many characters of the sanitized path go into a key. With the `-` and the 16
/// hex digits a key is at most 81 characters, so `<key>.safetensors` fits the 100-byte name
/// field of a plain ustar header.
pub const MAX_READABLE_LEN: usize = 64;

/// The longest key a sink accepts: `<key>.safetensors.tmp-<pid>` must stay a legal file name.
pub const MAX_KEY_LEN: usize = 200;

/// The stable key of the document at `relative_path` (folder inputs: relative to the folder,
/// with `/` separators; file inputs: the path as given).
///
/// The key is a readable part, `-`, and the first 16 hex digits of the SHA-256 of the path's
/// bytes. The readable part is the path with every character outside `[A-Za-z0-9_-]` replaced
/// by `_`, runs of `_` collapsed, `_` trimmed at both ends, and cut to its last
/// [`MAX_READABLE_LEN`] characters (the end of a path, the file name, says most); `doc` if
/// nothing is left. Two paths that sanitize alike (`a.b`, `a_b`) still get different keys.
///
/// ```
/// let key = blt_datasets::document_key("docs/intro.md");
/// assert!(key.starts_with("docs_intro_md-"));
/// assert_eq!(key.len(), "docs_intro_md-".len() + 16);
/// assert_ne!(blt_datasets::document_key("a.b"), blt_datasets::document_key("a_b"));
/// ```
pub fn document_key(relative_path: &str) -> String {
    key_from_parts(relative_path, relative_path.as_bytes())
}

/// The key of a `--text` input: `text-` and the first 16 hex digits of the SHA-256 of the text.
///
/// ```
/// let key = blt_datasets::text_key("hello");
/// assert_eq!(key, "text-2cf24dba5fb0a30e");
/// ```
pub fn text_key(text: &str) -> String {
    format!("text-{}", hash16(text.as_bytes()))
}

/// Checks that `key` can name a record: 1 to [`MAX_KEY_LEN`] characters, all in
/// `[A-Za-z0-9_-]`. Every key made by [`document_key`] and [`text_key`] passes.
pub fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("empty".to_owned())
    } else if key.len() > MAX_KEY_LEN {
        Some(format!("{} bytes, longer than {MAX_KEY_LEN}", key.len()))
    } else {
        key.chars()
            .find(|&c| !is_key_char(c))
            .map(|c| format!("character {c:?} is not in [A-Za-z0-9_-]"))
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidKey {
            key: key.to_owned(),
            reason,
        }),
    }
}

/// A key from a readable form of a path and the bytes that identify it (the same string's
/// bytes for UTF-8 paths, the raw encoded bytes otherwise).
pub(crate) fn key_from_parts(readable: &str, identity: &[u8]) -> String {
    format!("{}-{}", readable_part(readable), hash16(identity))
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn readable_part(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(4 * MAX_READABLE_LEN));
    for c in path.chars() {
        let c = if is_key_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    // All characters are ASCII now, so byte offsets are character offsets.
    let start = out.len().saturating_sub(MAX_READABLE_LEN);
    let trimmed = out[start..].trim_matches('_');
    if trimmed.is_empty() {
        "doc".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn hash16(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_are_stable() {
        // sha256("a/b.txt") = 5550000d…, computed with `printf 'a/b.txt' | sha256sum`.
        assert_eq!(document_key("a/b.txt"), "a_b_txt-5550000d3b1cf1ff");
        assert_eq!(text_key(""), "text-e3b0c44298fc1c14");
    }

    #[test]
    fn only_key_characters_and_no_dots() {
        for path in [
            "a.b",
            "../x y/ü.tar.gz",
            ".hidden",
            "日本語",
            "",
            "-x-",
            "a//b",
        ] {
            let key = document_key(path);
            validate_key(&key).unwrap();
            assert!(!key.contains('.'), "{key}");
        }
        assert!(document_key("日本語").starts_with("doc-"));
        assert!(document_key(".hidden").starts_with("hidden-"));
        assert!(document_key("-x-").starts_with("-x--"));
    }

    #[test]
    fn long_paths_keep_their_end() {
        let path = format!("{}/final_name.txt", "dir/".repeat(40));
        let key = document_key(&path);
        assert!(key.len() <= MAX_READABLE_LEN + 17, "{key}");
        assert!(key.contains("final_name_txt-"), "{key}");
    }

    #[test]
    fn validate_key_rejects() {
        assert!(validate_key("").is_err());
        assert!(validate_key("a.b").is_err());
        assert!(validate_key("a/b").is_err());
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate_key("ok_key-1").is_ok());
    }
}
