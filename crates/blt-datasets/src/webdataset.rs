//! The WebDataset sink: records packed as samples into POSIX tar shards
//! `<prefix>-NNNNNN.tar`, each written as `<prefix>-NNNNNN.tar.tmp` and renamed when whole.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::atomic::sync_parent;
use crate::error::io_at;
use crate::key::validate_key;
use crate::record::{safetensors_bytes, DocumentRecord};
use crate::{Error, Result};

const BLOCK: u64 = 512;
/// The two zero blocks that end a tar archive.
const TRAILER: u64 = 2 * BLOCK;
/// The length of the name field of a ustar header; longer names get a PAX `path` record.
const USTAR_NAME_LEN: usize = 100;
/// The name of PAX extended-header entries (as Python's `tarfile` writes it).
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";

/// How samples are grouped into shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOptions {
    /// A shard's file never grows past this many bytes, unless one sample alone is larger (it
    /// then gets a shard of its own). Default 1 GiB.
    pub max_shard_bytes: u64,
    /// At most this many samples per shard. Default 10 000.
    pub max_shard_count: usize,
    /// Shard files are named `<prefix>-NNNNNN.tar`; `[A-Za-z0-9_-]` only. Default `shard`.
    pub prefix: String,
}

impl Default for ShardOptions {
    fn default() -> Self {
        Self {
            max_shard_bytes: 1 << 30,
            max_shard_count: 10_000,
            prefix: "shard".to_owned(),
        }
    }
}

/// A shard that was completed: renamed from `.tar.tmp` to `.tar`, fsynced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedShard {
    /// Its number (`NNNNNN` in the name).
    pub index: u64,
    /// Its final path.
    pub path: PathBuf,
    /// The keys of its samples, in order.
    pub keys: Vec<String>,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What one [`WebDatasetSink::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardEvent {
    /// The number of the shard the sample went into.
    pub shard_index: u64,
    /// The final path of that shard (it exists once the shard is closed).
    pub shard_path: PathBuf,
    /// Shards closed by this write, in order: the previous shard when this sample did not fit
    /// into it, and this sample's shard when it reached `max_shard_count`. Finalise a
    /// per-shard sidecar for each.
    pub closed: Vec<ClosedShard>,
}

/// The shard being written.
struct OpenShard {
    index: u64,
    tmp_path: PathBuf,
    path: PathBuf,
    builder: tar::Builder<BufWriter<fs::File>>,
    /// Bytes written so far, without the trailer.
    bytes: u64,
    keys: Vec<String>,
    key_set: HashSet<String>,
}

/// Writes records as WebDataset samples into tar shards in one folder: `<key>.json`, then
/// `<key>.safetensors` for each record. Shards are ustar archives with fixed headers (mtime 0,
/// uid/gid 0, mode 0644, empty user and group names), so identical records give byte-identical
/// shards. Names longer than a ustar header holds get a POSIX PAX `path` record.
///
/// Call [`finish`](Self::finish) at the end; a sink dropped without it leaves its open shard
/// as `.tar.tmp`, which the next sink on the folder deletes. A record refused as invalid
/// changes nothing; after an I/O error in `write` the open shard is discarded (its samples are
/// lost), so take [`drain_closed`](Self::drain_closed), stop, and resume later from
/// [`completed_keys`](Self::completed_keys). One sink per folder and prefix at a time.
pub struct WebDatasetSink {
    dir: PathBuf,
    options: ShardOptions,
    next_index: u64,
    open: Option<OpenShard>,
    /// Shards closed by a `write` that then failed, not yet handed to the caller.
    unreported: Vec<ClosedShard>,
}

impl std::fmt::Debug for WebDatasetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebDatasetSink")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .field("next_index", &self.next_index)
            .field("open_shard", &self.open.as_ref().map(|s| &s.tmp_path))
            .finish()
    }
}

impl WebDatasetSink {
    /// A sink into `dir` (created if missing). Deletes stale `<prefix>-NNNNNN.tar.tmp` files
    /// and numbers new shards after the highest complete one.
    pub fn new(dir: impl Into<PathBuf>, options: ShardOptions) -> Result<Self> {
        let dir = dir.into();
        let invalid = |reason: &str| Error::InvalidOptions {
            dir: dir.clone(),
            reason: reason.to_owned(),
        };
        if options.max_shard_bytes == 0 {
            return Err(invalid("max_shard_bytes must be at least 1"));
        }
        if options.max_shard_count == 0 {
            return Err(invalid("max_shard_count must be at least 1"));
        }
        if validate_key(&options.prefix).is_err() {
            return Err(invalid(
                "prefix must be non-empty and only hold [A-Za-z0-9_-]",
            ));
        }
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let mut next_index = 0;
        for (name, path) in list_dir(&dir)? {
            match parse_shard_name(&name, &options.prefix) {
                Some((index, false)) => next_index = next_index.max(index + 1),
                Some((_, true)) => fs::remove_file(&path).map_err(io_at(&path))?,
                None => {}
            }
        }
        Ok(Self {
            dir,
            options,
            next_index,
            open: None,
            unreported: Vec::new(),
        })
    }

    /// The keys of all samples in the complete shards `<prefix>-NNNNNN.tar` of `dir`, read from
    /// their tar listings (a key is a member's name up to its first dot). An absent folder has
    /// none. For resume: skip these documents.
    pub fn completed_keys(dir: impl AsRef<Path>, prefix: &str) -> Result<BTreeSet<String>> {
        let mut keys = BTreeSet::new();
        for path in complete_shards(dir.as_ref(), prefix)? {
            for (name, _) in tar_index(&path)? {
                let base = name.rsplit('/').next().unwrap_or(&name);
                let key = base.split('.').next().unwrap_or(base);
                let dir_part = &name[..name.len() - base.len()];
                keys.insert(format!("{dir_part}{key}"));
            }
        }
        Ok(keys)
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options in use.
    pub fn options(&self) -> &ShardOptions {
        &self.options
    }

    /// Appends one record as a sample, first closing the open shard if the sample would take
    /// it past `max_shard_bytes`, and closing the sample's shard once it holds
    /// `max_shard_count` samples.
    pub fn write(&mut self, record: &DocumentRecord) -> Result<ShardEvent> {
        validate_key(&record.key)?;
        let json = record.json_bytes()?;
        let tensors = safetensors_bytes(record)?;
        let json_name = format!("{}.json", record.key);
        let tensors_name = format!("{}.safetensors", record.key);
        let sample_bytes = member_len(&json_name, json.len() as u64)
            + member_len(&tensors_name, tensors.len() as u64);

        if let Some(open) = &self.open {
            let full = open.keys.len() >= self.options.max_shard_count
                || open.bytes + sample_bytes + TRAILER > self.options.max_shard_bytes;
            if full {
                if let Some(shard) = self.close_open()? {
                    self.unreported.push(shard);
                }
            }
        }
        if let Some(open) = &self.open {
            if open.key_set.contains(&record.key) {
                return Err(Error::DuplicateKey {
                    key: record.key.clone(),
                    path: open.path.clone(),
                });
            }
        }
        if self.open.is_none() {
            let shard = self.start_shard()?;
            self.open = Some(shard);
        }
        let Some(open) = self.open.as_mut() else {
            return Err(Error::io(
                &self.dir,
                io::Error::other("no open shard after starting one"),
            ));
        };
        let appended = append_member(&mut open.builder, &json_name, &json)
            .and_then(|()| append_member(&mut open.builder, &tensors_name, &tensors));
        if let Err(source) = appended {
            let tmp = open.tmp_path.clone();
            self.discard_open();
            return Err(Error::io(tmp, source));
        }
        open.bytes += sample_bytes;
        open.keys.push(record.key.clone());
        open.key_set.insert(record.key.clone());
        let shard_index = open.index;
        let shard_path = open.path.clone();
        if open.keys.len() >= self.options.max_shard_count {
            if let Some(shard) = self.close_open()? {
                self.unreported.push(shard);
            }
        }
        let closed = std::mem::take(&mut self.unreported);
        Ok(ShardEvent {
            shard_index,
            shard_path,
            closed,
        })
    }

    /// Closes the open shard, if it holds any sample, and returns it.
    pub fn finish(mut self) -> Result<Option<ClosedShard>> {
        self.close_open()
    }

    /// Shards that a failed [`write`](Self::write) closed before failing (the previous shard,
    /// rolled before the failing sample). They are complete on disk; a later successful
    /// `write` reports them too. Call this after an error before giving up on the sink, so
    /// that no closed shard goes without its sidecar.
    pub fn drain_closed(&mut self) -> Vec<ClosedShard> {
        std::mem::take(&mut self.unreported)
    }

    fn shard_paths(&self, index: u64) -> (PathBuf, PathBuf) {
        let name = format!("{}-{index:06}.tar", self.options.prefix);
        let path = self.dir.join(&name);
        (self.dir.join(format!("{name}.tmp")), path)
    }

    fn start_shard(&mut self) -> Result<OpenShard> {
        let index = self.next_index;
        let (tmp_path, path) = self.shard_paths(index);
        let file = fs::File::create(&tmp_path).map_err(io_at(&tmp_path))?;
        self.next_index += 1;
        Ok(OpenShard {
            index,
            tmp_path,
            path,
            builder: tar::Builder::new(BufWriter::new(file)),
            bytes: 0,
            keys: Vec::new(),
            key_set: HashSet::new(),
        })
    }

    /// Drops the open shard and its temp file (best effort); its number is reused.
    fn discard_open(&mut self) {
        if let Some(open) = self.open.take() {
            self.next_index = open.index;
            let tmp = open.tmp_path.clone();
            drop(open);
            let _ = fs::remove_file(tmp);
        }
    }

    fn close_open(&mut self) -> Result<Option<ClosedShard>> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let OpenShard {
            index,
            tmp_path,
            path,
            builder,
            bytes,
            keys,
            ..
        } = open;
        let finished = builder
            .into_inner()
            .and_then(|writer| writer.into_inner().map_err(|e| e.into_error()))
            .and_then(|mut file| {
                file.flush()?;
                file.sync_all()
            });
        if let Err(source) = finished {
            let _ = fs::remove_file(&tmp_path);
            self.next_index = index;
            return Err(Error::io(tmp_path, source));
        }
        fs::rename(&tmp_path, &path).map_err(io_at(&path))?;
        sync_parent(&path)?;
        Ok(Some(ClosedShard {
            index,
            path,
            keys,
            bytes: bytes + TRAILER,
        }))
    }
}

/// The complete shards `<prefix>-NNNNNN.tar` in `dir`, by number. An absent folder has none.
pub fn complete_shards(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut shards: Vec<(u64, PathBuf)> = list_dir(dir)?
        .into_iter()
        .filter_map(|(name, path)| match parse_shard_name(&name, prefix) {
            Some((index, false)) => Some((index, path)),
            _ => None,
        })
        .collect();
    shards.sort();
    Ok(shards.into_iter().map(|(_, path)| path).collect())
}

/// The members of a tar archive: each name (PAX and GNU long names resolved) and size, in
/// order.
pub fn tar_index(path: &Path) -> Result<Vec<(String, u64)>> {
    let (file, _) = crate::limits::open_regular(path)?;
    let invalid = |err: io::Error| Error::InvalidShard {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut members = Vec::new();
    for entry in archive.entries().map_err(invalid)? {
        let entry = entry.map_err(invalid)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        members.push((name, entry.size()));
    }
    Ok(members)
}

/// The names of the plain files in `dir`, with their paths.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

/// `<prefix>-<digits>.tar` → (number, false); `<prefix>-<digits>.tar.tmp` → (number, true).
fn parse_shard_name(name: &str, prefix: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (digits, tmp) = match rest.strip_suffix(".tar.tmp") {
        Some(digits) => (digits, true),
        None => (rest.strip_suffix(".tar")?, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, tmp))
}

fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// `<len> path=<name>\n`, where `<len>` counts the whole record, its own digits included.
fn pax_path_record(name: &str) -> String {
    let body = format!(" path={name}\n");
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    format!("{len}{body}")
}

/// The bytes one member takes in the archive: header, data padded to a block, and a PAX
/// header with its record when the name is too long for the ustar header.
fn member_len(name: &str, size: u64) -> u64 {
    let pax = if name.len() > USTAR_NAME_LEN {
        BLOCK + padded(pax_path_record(name).len() as u64)
    } else {
        0
    };
    pax + BLOCK + padded(size)
}

/// A ustar header with every field fixed but the type, name and size.
fn fixed_header(kind: tar::EntryType, name: &[u8], size: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_username("")?;
    header.set_groupname("")?;
    header.set_device_major(0)?;
    header.set_device_minor(0)?;
    let ustar = header
        .as_ustar_mut()
        .ok_or_else(|| io::Error::other("not a ustar header"))?;
    let n = name.len().min(USTAR_NAME_LEN);
    ustar.name = [0; USTAR_NAME_LEN];
    ustar.name[..n].copy_from_slice(&name[..n]);
    header.set_cksum();
    Ok(header)
}

fn append_member<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    if name.len() > USTAR_NAME_LEN {
        let record = pax_path_record(name);
        let header = fixed_header(
            tar::EntryType::XHeader,
            PAX_HEADER_NAME,
            record.len() as u64,
        )?;
        builder.append(&header, record.as_bytes())?;
    }
    let header = fixed_header(tar::EntryType::Regular, name.as_bytes(), data.len() as u64)?;
    builder.append(&header, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_counts_itself() {
        for n in [1, 80, 91, 92, 93, 200, 990, 995] {
            let name = "k".repeat(n);
            let record = pax_path_record(&name);
            let (len, _) = record.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), record.len(), "{record}");
        }
    }

    #[test]
    fn shard_names_parse() {
        assert_eq!(
            parse_shard_name("shard-000003.tar", "shard"),
            Some((3, false))
        );
        assert_eq!(
            parse_shard_name("shard-1234567.tar.tmp", "shard"),
            Some((1_234_567, true))
        );
        assert_eq!(parse_shard_name("shard-x-000001.tar", "shard"), None);
        assert_eq!(parse_shard_name("shard-.tar", "shard"), None);
        assert_eq!(parse_shard_name("other-000001.tar", "shard"), None);
        assert_eq!(parse_shard_name("shard-000001.tar.gz", "shard"), None);
    }

    #[test]
    fn member_len_matches_what_is_written() {
        for name_len in [10, 100, 101, 150] {
            let name = "n".repeat(name_len);
            let mut builder = tar::Builder::new(Vec::new());
            append_member(&mut builder, &name, b"hello").unwrap();
            let written = builder.into_inner().unwrap().len() as u64;
            assert_eq!(
                written,
                member_len(&name, 5) + TRAILER,
                "name of {name_len}"
            );
        }
    }
}
