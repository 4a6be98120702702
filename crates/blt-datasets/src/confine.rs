//! Paths that come from data (the `path` of a Hugging Face `{bytes, path}` value, the file names a
//! Hub dataset lists) are read only from inside the folder they belong to.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::io_at;
use crate::limits::{open_regular, read_bounded};
use crate::{Error, Result};

/// The option field that raises the limit on files a table row names.
const OPTION: &str = "max_referenced_file_bytes";

/// Finds the local file of a checked relative path (see [`PathResolver::new`]).
type Locate = dyn Fn(&str) -> Result<PathBuf> + Send + Sync;

/// Turns a path found in a table's `{bytes, path}` column into a file's bytes, reading only
/// from inside one folder.
///
/// A path value is refused ([`Error::PathRefused`]) when it is empty, absolute, has a Windows
/// drive or UNC prefix or a backslash, holds a NUL byte, or has a `..` component. What is left
/// (a `/`-separated relative path without `.` parts) is located, canonicalized (symlinks
/// resolved), and refused unless it is still inside the canonical folder. Only a regular file
/// is read ([`Error::NotAFile`] otherwise: no FIFO, socket or device), and at most the limit
/// given to [`read`](Self::read) ([`Error::ReferencedFileTooLarge`] past it).
#[derive(Clone)]
pub struct PathResolver {
    root: PathBuf,
    locate: Arc<Locate>,
}

impl fmt::Debug for PathResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathResolver")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl PathResolver {
    /// Paths relative to `folder` (a local table's folder), read only from inside it.
    pub fn in_folder(folder: impl Into<PathBuf>) -> Self {
        let mut folder: PathBuf = folder.into();
        if folder.as_os_str().is_empty() {
            folder = PathBuf::from(".");
        }
        let base = folder.clone();
        Self {
            root: folder,
            locate: Arc::new(move |relative: &str| Ok(base.join(relative))),
        }
    }

    /// A resolver whose files must all lie inside `root` once canonicalized; `locate` turns a
    /// checked relative path (`/`-separated, no `.`, `..`, empty or absolute parts) into a
    /// local file (for a Hub dataset: fetches it into the cache).
    pub fn new(
        root: impl Into<PathBuf>,
        locate: impl Fn(&str) -> Result<PathBuf> + Send + Sync + 'static,
    ) -> Self {
        Self {
            root: root.into(),
            locate: Arc::new(locate),
        }
    }

    /// The folder every file must lie in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bytes of the file `value` names, at most `max_bytes` of them.
    pub fn read(&self, value: &str, max_bytes: u64) -> Result<Vec<u8>> {
        let relative = checked_relative(value).map_err(|rule| self.refused(value, rule))?;
        let local = (self.locate)(&relative)?;
        let path = self.confined(value, &local)?;
        let (file, len) = open_regular(&path)?;
        if len > max_bytes {
            return Err(too_large(&path, max_bytes));
        }
        let (bytes, over) = read_bounded(file, len, Some(max_bytes)).map_err(io_at(&path))?;
        if over {
            return Err(too_large(&path, max_bytes));
        }
        Ok(bytes)
    }

    /// `local` canonicalized, if it lies inside the canonical root.
    pub(crate) fn confined(&self, value: &str, local: &Path) -> Result<PathBuf> {
        let root = fs::canonicalize(&self.root).map_err(io_at(&self.root))?;
        let real = fs::canonicalize(local).map_err(io_at(local))?;
        if !real.starts_with(&root) {
            return Err(self.refused(
                value,
                format!("it resolves to {}, outside the folder", real.display()),
            ));
        }
        Ok(real)
    }

    fn refused(&self, value: &str, rule: impl Into<String>) -> Error {
        Error::PathRefused {
            value: value.to_owned(),
            base: self.root.clone(),
            rule: rule.into(),
        }
    }
}

fn too_large(path: &Path, limit: u64) -> Error {
    Error::ReferencedFileTooLarge {
        path: path.to_owned(),
        limit,
        option: OPTION,
    }
}

/// `value` as a `/`-separated relative path without `.` parts, or the rule it breaks.
pub(crate) fn checked_relative(value: &str) -> std::result::Result<String, &'static str> {
    if value.is_empty() {
        return Err("an empty path");
    }
    if value.contains('\0') {
        return Err("a NUL byte");
    }
    if value.contains('\\') {
        return Err("a backslash (a Windows separator or prefix)");
    }
    if value.starts_with('/') {
        return Err("an absolute path");
    }
    let mut parts = Vec::new();
    for part in value.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("a \"..\" component"),
            _ => parts.push(part),
        }
    }
    if parts
        .first()
        .is_some_and(|first| first.len() >= 2 && first.as_bytes()[1] == b':')
    {
        return Err("a Windows drive prefix");
    }
    if parts.is_empty() {
        return Err("an empty path");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_checked_and_cleaned() {
        assert_eq!(checked_relative("a/./b.png").unwrap(), "a/b.png");
        assert_eq!(checked_relative("./x").unwrap(), "x");
        assert_eq!(checked_relative("a//b").unwrap(), "a/b");
        assert_eq!(checked_relative("~/.cache").unwrap(), "~/.cache");
        for (bad, rule) in [
            ("", "an empty path"),
            ("./", "an empty path"),
            ("/etc/hostname", "an absolute path"),
            ("../secret.txt", "a \"..\" component"),
            ("a/../../b", "a \"..\" component"),
            ("C:/Windows/win.ini", "a Windows drive prefix"),
            ("c:win.ini", "a Windows drive prefix"),
            ("C:\\Windows", "a backslash (a Windows separator or prefix)"),
            (
                "\\\\server\\share",
                "a backslash (a Windows separator or prefix)",
            ),
            ("a\0b", "a NUL byte"),
        ] {
            assert_eq!(checked_relative(bad), Err(rule), "{bad:?}");
        }
    }
}
