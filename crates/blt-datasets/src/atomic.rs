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
/// The temp file is held under an exclusive advisory lock until it is renamed, so that
/// [`remove_if_stale`] run by another process (a rank starting late in a shared output folder)
/// never deletes it. A killed run can leave a `*.tmp-<pid>` file behind (its lock dies with the
/// process), never a partial `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path, &format!("tmp-{}", std::process::id()))?;
    let result = write_and_sync(&tmp, bytes)
        .and_then(|file| fs::rename(&tmp, path).map_err(io_at(path)).map(|()| file));
    match result {
        Ok(file) => {
            drop(file); // the lock is released once the name is gone
            sync_parent(path)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Locks a temp file that this process is writing (see [`write_atomic`]): until the returned
/// handle is dropped, [`remove_if_stale`] in any process leaves `path` alone.
pub fn lock_temp(path: &Path) -> Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    file.lock().map_err(io_at(path))?;
    Ok(file)
}

/// Removes the temp file at `path` if no process holds it (see [`write_atomic`] and
/// [`lock_temp`]): a file a killed run left behind. Returns whether it was removed; a file that
/// is being written, that vanished meanwhile, or whose lock state cannot be known (a file system
/// without locks) is left alone.
pub fn remove_if_stale(path: &Path) -> Result<bool> {
    let file = match fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    match file.try_lock() {
        Ok(()) => match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        },
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => {
            tracing::warn!(path = %path.display(), "cannot tell whether a temp file is in use ({e}): left in place");
            Ok(false)
        }
    }
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

/// Creates `path`, locks it, writes and fsyncs `bytes`; returns the locked handle.
fn write_and_sync(path: &Path, bytes: &[u8]) -> Result<fs::File> {
    let mut file = fs::File::create(path).map_err(io_at(path))?;
    file.lock().map_err(io_at(path))?;
    file.write_all(bytes).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))?;
    Ok(file)
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
    fn a_locked_temp_is_not_stale_and_an_unlocked_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("a.bin.tmp-1");
        fs::write(&tmp, b"partial").unwrap();
        let held = lock_temp(&tmp).unwrap();
        // Another open file description (as another process would have) sees the lock.
        assert!(!remove_if_stale(&tmp).unwrap());
        assert!(tmp.exists());
        drop(held);
        assert!(remove_if_stale(&tmp).unwrap());
        assert!(!tmp.exists());
        assert!(!remove_if_stale(&tmp).unwrap());
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
