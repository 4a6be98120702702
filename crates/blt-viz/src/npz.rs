//! NumPy `.npy` / `.npz` writing for the sphere outputs: `.npy` format version 1.0
//! (little-endian, C order), and an `.npz` as NumPy writes with `np.savez`: a zip archive of
//! `<name>.npy` members, stored uncompressed.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// The values of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`.
    F32(Vec<f32>),
    /// `<i4`.
    I32(Vec<i32>),
    /// `<i8`.
    I64(Vec<i64>),
}

/// An n-dimensional array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values (`shape.iter().product()` of them).
    pub data: NpyData,
}

impl NpyArray {
    /// An array of `shape`.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Self {
        Self { shape, data }
    }

    /// The bytes of a `.npy` file (format 1.0; header padded so the data starts at a multiple
    /// of 64 bytes).
    pub fn to_npy(&self) -> Vec<u8> {
        let descr = match self.data {
            NpyData::F32(_) => "<f4",
            NpyData::I32(_) => "<i4",
            NpyData::I64(_) => "<i8",
        };
        let shape = match self.shape.as_slice() {
            [one] => format!("({one},)"),
            dims => format!(
                "({})",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // magic (6) + version (2) + header length (2) + header, ending in '\n'.
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len());
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        match &self.data {
            NpyData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
        out
    }
}

/// The bytes of an `.npz` holding `arrays` as `<name>.npy` members, in order, uncompressed.
/// `path` is used in errors only.
pub fn to_npz(arrays: &[(&str, NpyArray)], path: &Path) -> Result<Vec<u8>> {
    let err = |e: &dyn std::fmt::Display| Error::Serialize {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, array) in arrays {
        let npy = array.to_npy();
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .large_file(npy.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| err(&e))?;
        zip.write_all(&npy).map_err(|e| err(&e))?;
    }
    Ok(zip.finish().map_err(|e| err(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_exact() {
        let a = NpyArray::new(vec![2, 3], NpyData::F32(vec![0.0; 6]));
        let b = a.to_npy();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
        let one = NpyArray::new(vec![4], NpyData::I64(vec![1, 2, 3, 4])).to_npy();
        assert!(std::str::from_utf8(&one[10..74])
            .unwrap()
            .contains("'shape': (4,)"));
    }

    #[test]
    fn npz_lists_members() {
        let data = to_npz(
            &[
                ("a", NpyArray::new(vec![1], NpyData::I32(vec![7]))),
                ("b", NpyArray::new(vec![2], NpyData::F32(vec![1.0, 2.0]))),
            ],
            Path::new("x.npz"),
        )
        .unwrap();
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
        let names: Vec<String> = (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["a.npy", "b.npy"]);
    }
}
