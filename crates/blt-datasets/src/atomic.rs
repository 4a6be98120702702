//! Atomic file writes: a temp file in the same folder, fsync, rename, fsync the folder. A run
//! killed at any moment leaves either the old file (or none) or the whole new one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::io_at;
use crate::{Error, Result};

/// Writes `bytes` to `path` atomically: to `<file>.tmp-<pid>` in the same folder, fsynced,
/// renamed over `path`, and the folder fsynced (on Unix). On failure the temp file is removed.
///
/// A killed run can leave a `*.tmp-<pid>` file behind, never a partial `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path, &format!("tmp-{}", std::process::id()))?;
    let result =
        write_and_sync(&tmp, bytes).and_then(|()| fs::rename(&tmp, path).map_err(io_at(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_parent(path)
}

/// `<file>.<suffix>` beside `path`.
pub(crate) fn temp_path(path: &Path, suffix: &str) -> Result<PathBuf> {
    let Some(file_name) = path.file_name() else {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let mut name = file_name.to_owned();
    name.push(".");
    name.push(suffix);
    Ok(path.with_file_name(name))
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path).map_err(io_at(path))?;
    file.write_all(bytes).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))
}

/// Fsyncs the folder holding `path`, so that a rename into it survives a crash. A no-op where
/// folders cannot be opened (Windows).
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = fs::File::open(parent).map_err(io_at(parent))?;
        dir.sync_all().map_err(io_at(parent))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.bin"]);
    }

    #[test]
    fn missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("a.bin");
        match write_atomic(&path, b"x").unwrap_err() {
            Error::Io { path: p, .. } => assert!(p.starts_with(dir.path().join("nope"))),
            other => panic!("{other}"),
        }
    }
}
