//! Reading untrusted input within bounds: what a caller may hold in memory at once, opening only
//! regular files, reads that never pre-allocate what a file or a header claims, lines read with
//! a cap, and panics of third-party readers turned into errors.

use std::fs::{self, File};
use std::io::{self, BufRead, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::error::io_at;
use crate::{Error, Result};

/// Default of [`ReadLimits::max_record_bytes`]: 256 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 256 << 20;

/// Default of [`ReadLimits::max_referenced_file_bytes`]: 1 GiB.
pub const DEFAULT_MAX_REFERENCED_FILE_BYTES: u64 = 1 << 30;

/// The most a read reserves up front, whatever a file's length or a header claims; past it the
/// buffer grows as the bytes arrive.
pub(crate) const MAX_PREALLOC_BYTES: u64 = 64 << 20;

/// Limits on what reading a table holds in memory at once. Each limit hit is that row's
/// failure (or that file's), naming the option field that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The most bytes one JSONL line or one CSV record may take (as stored, after
    /// decompression). A longer one is skipped up to the next line or record and becomes that
    /// row's failure ([`Error::RecordTooLarge`]); reading goes on. Default 256 MiB
    /// ([`DEFAULT_MAX_RECORD_BYTES`]). Parquet and Arrow rows are bounded by their record
    /// batches instead.
    pub max_record_bytes: u64,
    /// The most bytes read from a file that a table row names by path (a Hugging Face
    /// `Image`/`Audio` value `{bytes: null, path}`). A larger file is that row's failure
    /// ([`Error::ReferencedFileTooLarge`]). Default 1 GiB
    /// ([`DEFAULT_MAX_REFERENCED_FILE_BYTES`]).
    pub max_referenced_file_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_referenced_file_bytes: DEFAULT_MAX_REFERENCED_FILE_BYTES,
        }
    }
}

/// What a file is when it is not a regular file; `None` for a regular file.
pub(crate) fn non_regular_kind(file_type: fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
    }
    Some("not a regular file")
}

/// Opens `path` (symlinks followed) only if it is a regular file, checked before opening (so a
/// FIFO is never opened, which would block) and again on the open file. Returns the file and
/// its length.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    if let Some(kind) = non_regular_kind(meta.file_type()) {
        return Err(Error::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    let file = File::open(path).map_err(io_at(path))?;
    let meta = file.metadata().map_err(io_at(path))?;
    if let Some(kind) = non_regular_kind(meta.file_type()) {
        return Err(Error::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    Ok((file, meta.len()))
}

/// How much a read of a file claiming `claimed` bytes reserves up front, under `max`.
pub(crate) fn initial_capacity(claimed: u64, max: Option<u64>) -> usize {
    let cap = claimed
        .min(max.map_or(u64::MAX, |m| m.saturating_add(1)))
        .min(MAX_PREALLOC_BYTES);
    usize::try_from(cap).unwrap_or(0)
}

/// Reads `reader` to its end, or to `max + 1` bytes. Returns the bytes and whether there were
/// more than `max`. Reserves at most [`MAX_PREALLOC_BYTES`] up front, whatever `claimed` says
/// (a file's length: 0 for `/proc` files, a terabyte for a sparse file).
pub(crate) fn read_bounded(
    reader: impl Read,
    claimed: u64,
    max: Option<u64>,
) -> io::Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::with_capacity(initial_capacity(claimed, max));
    match max {
        Some(max) => {
            reader.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
            let over = bytes.len() as u64 > max;
            Ok((bytes, over))
        }
        None => {
            let mut reader = reader;
            reader.read_to_end(&mut bytes)?;
            Ok((bytes, false))
        }
    }
}

/// What [`read_line_bounded`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// The end of the input, nothing read.
    End,
    /// A line (with its `\n`, if it had one) is in the buffer.
    Read,
    /// A line longer than the limit was read past up to and including its `\n`; the buffer is
    /// left empty.
    TooLong,
}

/// Reads one line (up to and including `\n`) into `buf` (cleared first) if it holds at most
/// `max` bytes besides its `\n`; a longer line is read past (not kept) up to its end.
pub(crate) fn read_line_bounded(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: u64,
) -> io::Result<Line> {
    buf.clear();
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut seen = 0usize;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (seen, too_long) {
                (0, _) => Line::End,
                (_, true) => Line::TooLong,
                (_, false) => Line::Read,
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let used = chunk.len();
        seen = seen.saturating_add(used - usize::from(done));
        if !too_long {
            if seen > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Read });
        }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic into [`Error::ReaderPanicked`] naming `path`. For calls into
/// third-party readers of untrusted files (arrow-ipc, parquet), which may panic on corrupt
/// input; the reader is not used again after a panic.
pub(crate) fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Error::ReaderPanicked {
            path: path.to_owned(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_limit_are_skipped_to_their_end() {
        let input = b"short\nthis one is far too long\n\nlast";
        // A tiny internal buffer, so lines span several fill_buf calls.
        let mut reader = io::BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            let line = read_line_bounded(&mut reader, &mut buf, 8).unwrap();
            if line == Line::End {
                break;
            }
            got.push((line, String::from_utf8(buf.clone()).unwrap()));
        }
        assert_eq!(
            got,
            [
                (Line::Read, "short\n".to_owned()),
                (Line::TooLong, String::new()),
                (Line::Read, "\n".to_owned()),
                (Line::Read, "last".to_owned()),
            ]
        );
        // Exactly at the limit (its newline not counted) is fine; one more byte is not.
        let mut reader = io::BufReader::new(&b"12345678\n123456789\n"[..]);
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 8).unwrap(),
            Line::Read
        );
        assert_eq!(buf, b"12345678\n");
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 8).unwrap(),
            Line::TooLong
        );
        // A last line without a newline that is too long.
        let mut reader = io::BufReader::new(&b"0123456789"[..]);
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 4).unwrap(),
            Line::TooLong
        );
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 4).unwrap(),
            Line::End
        );
    }

    #[test]
    fn reads_never_reserve_what_a_file_claims() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sparse");
        let file = File::create(&path).unwrap();
        // 64 GiB of holes: no disk used, and nothing of it is read below.
        file.set_len(64 << 30).unwrap();
        drop(file);
        assert_eq!(
            initial_capacity(64 << 30, None),
            MAX_PREALLOC_BYTES as usize
        );
        assert_eq!(initial_capacity(64 << 30, Some(10)), 11);
        assert_eq!(initial_capacity(0, None), 0);
        let (file, len) = open_regular(&path).unwrap();
        assert_eq!(len, 64 << 30);
        let (bytes, over) = read_bounded(file, len, Some(1 << 20)).unwrap();
        assert!(over);
        assert_eq!(bytes.len(), (1 << 20) + 1);
        assert!(bytes.capacity() < 4 << 20, "{}", bytes.capacity());
    }

    #[test]
    fn panics_become_typed_errors() {
        let err = guard::<()>(Path::new("x.arrow"), || panic!("boom {}", 1)).unwrap_err();
        assert!(
            matches!(&err, Error::ReaderPanicked { path, message } if path == Path::new("x.arrow") && message == "boom 1"),
            "{err}"
        );
        assert_eq!(guard(Path::new("x"), || Ok(5)).unwrap(), 5);
    }
}
