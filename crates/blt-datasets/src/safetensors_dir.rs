//! The per-document sink: one `<key>.safetensors` file per record in one folder.

use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::error::io_at;
use crate::key::validate_key;
use crate::record::{safetensors_bytes, safetensors_file_is_whole, DocumentRecord};
use crate::Result;

/// Writes each record to `<dir>/<key>.safetensors`, atomically (see
/// [`write_atomic`](crate::write_atomic)). The record's `json` is not written.
#[derive(Debug, Clone)]
pub struct SafetensorsDirSink {
    dir: PathBuf,
}

impl SafetensorsDirSink {
    /// A sink into `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        Ok(Self { dir })
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the record with this key goes.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.safetensors"))
    }

    /// Whether the record with this key is already written: the file exists, its header parses
    /// and its length matches the header. For resume.
    pub fn is_complete(&self, key: &str) -> bool {
        validate_key(key).is_ok() && safetensors_file_is_whole(&self.path_of(key)).unwrap_or(false)
    }

    /// The metadata of the record with this key if it is complete (as
    /// [`is_complete`](Self::is_complete)); `None` otherwise. For resume checks that compare
    /// what a record says of its source with the source as it is now.
    pub fn complete_metadata(
        &self,
        key: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        if validate_key(key).is_err() {
            return None;
        }
        crate::record::whole_file_metadata(&self.path_of(key))
            .ok()
            .flatten()
    }

    /// Writes one record, replacing any file with the same key; returns its path.
    pub fn write(&mut self, record: &DocumentRecord) -> Result<PathBuf> {
        let bytes = safetensors_bytes(record)?;
        let path = self.path_of(&record.key);
        write_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// Removes the `*.safetensors.tmp-<pid>` files a killed run left behind; returns how many.
    /// Temp files that another process is writing (ranks sharing the folder) are locked and
    /// left alone ([`remove_if_stale`](crate::remove_if_stale)).
    pub fn remove_stale_temps(&self) -> Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let entry = entry.map_err(io_at(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_temp = name
                .rsplit_once(".safetensors.tmp-")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
            if is_temp
                && entry.file_type().is_ok_and(|t| t.is_file())
                && crate::atomic::remove_if_stale(&entry.path())?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
