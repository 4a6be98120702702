//! What a sink writes for one document: named tensors, string metadata and a JSON object, and
//! the deterministic safetensors encoding of them.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

pub use safetensors::Dtype;

use crate::key::validate_key;
use crate::{Error, Result};

/// One tensor of a record: its name, dtype, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// The tensor's name in the safetensors file.
    pub name: String,
    /// The element type.
    pub dtype: Dtype,
    /// The shape; `[]` is a scalar.
    pub shape: Vec<usize>,
    /// The elements, little-endian, row-major.
    pub data: Vec<u8>,
}

impl OutputTensor {
    /// A tensor from raw little-endian bytes; [`safetensors_bytes`] checks that they match the
    /// shape and dtype.
    pub fn new(
        name: impl Into<String>,
        dtype: Dtype,
        shape: impl Into<Vec<usize>>,
        data: Vec<u8>,
    ) -> Self {
        Self {
            name: name.into(),
            dtype,
            shape: shape.into(),
            data,
        }
    }

    /// A one-dimensional `U8` tensor of `bytes` (shape `[bytes.len()]`).
    pub fn u8(name: impl Into<String>, bytes: &[u8]) -> Self {
        Self::new(name, Dtype::U8, [bytes.len()], bytes.to_vec())
    }

    /// An `I32` tensor.
    pub fn i32(name: impl Into<String>, shape: impl Into<Vec<usize>>, values: &[i32]) -> Self {
        Self::new(
            name,
            Dtype::I32,
            shape,
            le_bytes(values, |v| v.to_le_bytes()),
        )
    }

    /// A `U32` tensor.
    pub fn u32(name: impl Into<String>, shape: impl Into<Vec<usize>>, values: &[u32]) -> Self {
        Self::new(
            name,
            Dtype::U32,
            shape,
            le_bytes(values, |v| v.to_le_bytes()),
        )
    }

    /// An `I64` tensor.
    pub fn i64(name: impl Into<String>, shape: impl Into<Vec<usize>>, values: &[i64]) -> Self {
        Self::new(
            name,
            Dtype::I64,
            shape,
            le_bytes(values, |v| v.to_le_bytes()),
        )
    }

    /// An `F32` tensor.
    pub fn f32(name: impl Into<String>, shape: impl Into<Vec<usize>>, values: &[f32]) -> Self {
        Self::new(
            name,
            Dtype::F32,
            shape,
            le_bytes(values, |v| v.to_le_bytes()),
        )
    }

    /// An `F16` tensor, rounded from `f32` values (round to nearest even).
    pub fn f16_from_f32(
        name: impl Into<String>,
        shape: impl Into<Vec<usize>>,
        values: &[f32],
    ) -> Self {
        Self::new(
            name,
            Dtype::F16,
            shape,
            le_bytes(values, |v| half::f16::from_f32(*v).to_le_bytes()),
        )
    }

    /// A `BF16` tensor, rounded from `f32` values (round to nearest even).
    pub fn bf16_from_f32(
        name: impl Into<String>,
        shape: impl Into<Vec<usize>>,
        values: &[f32],
    ) -> Self {
        Self::new(
            name,
            Dtype::BF16,
            shape,
            le_bytes(values, |v| half::bf16::from_f32(*v).to_le_bytes()),
        )
    }

    /// The number of elements the shape holds (1 for a scalar), `None` on overflow.
    pub fn element_count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Checks name, shape and data length; `key` is the record's, for the error.
    fn check(&self, key: &str) -> Result<()> {
        let invalid = |reason: String| Error::InvalidTensor {
            key: key.to_owned(),
            name: self.name.clone(),
            reason,
        };
        if self.name.is_empty() {
            return Err(invalid("empty name".to_owned()));
        }
        if self.name == "__metadata__" {
            return Err(invalid("the name is reserved for metadata".to_owned()));
        }
        let bits = self
            .element_count()
            .and_then(|n| n.checked_mul(self.dtype.bitsize()))
            .ok_or_else(|| invalid(format!("shape {:?} overflows", self.shape)))?;
        if bits % 8 != 0 {
            return Err(invalid(format!(
                "shape {:?} of {} does not fill whole bytes",
                self.shape, self.dtype
            )));
        }
        if self.data.len() != bits / 8 {
            return Err(invalid(format!(
                "shape {:?} of {} needs {} bytes, got {}",
                self.shape,
                self.dtype,
                bits / 8,
                self.data.len()
            )));
        }
        Ok(())
    }
}

fn le_bytes<T, const N: usize>(values: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * N);
    for v in values {
        out.extend_from_slice(&f(v));
    }
    out
}

/// Everything a sink writes for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    /// The document key (see [`validate_key`](crate::validate_key)): the file stem in a
    /// safetensors folder, the sample key in a WebDataset shard.
    pub key: String,
    /// String metadata, stored as the safetensors `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
    /// The tensors.
    pub tensors: Vec<OutputTensor>,
    /// The sample's JSON, written as `<key>.json` in WebDataset shards (`null` if not set);
    /// the safetensors folder sink does not write it.
    pub json: serde_json::Value,
}

impl DocumentRecord {
    /// An empty record with this key.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            metadata: BTreeMap::new(),
            tensors: Vec::new(),
            json: serde_json::Value::Null,
        }
    }

    /// Adds one metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds one tensor.
    #[must_use]
    pub fn with_tensor(mut self, tensor: OutputTensor) -> Self {
        self.tensors.push(tensor);
        self
    }

    /// Sets the sample JSON.
    #[must_use]
    pub fn with_json(mut self, json: serde_json::Value) -> Self {
        self.json = json;
        self
    }

    /// The JSON member's bytes (compact).
    pub(crate) fn json_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.json).map_err(|source| Error::Json {
            key: self.key.clone(),
            source,
        })
    }
}

/// The safetensors header may be at most this large (the `safetensors` crate's limit).
const MAX_HEADER_LEN: usize = 100_000_000;

/// Encodes a record as a safetensors file, deterministically: the header's keys are sorted
/// (`__metadata__` first, holding `record.metadata`, left out when empty; then the tensors by
/// name), the header is padded with spaces to a multiple of 8 bytes, and the data is laid out
/// by decreasing dtype alignment then name, as the `safetensors` crate does, so every tensor
/// starts aligned to its element size.
///
/// Fails on an invalid key, an empty, reserved or repeated tensor name, or data whose length
/// does not match its shape and dtype.
pub fn safetensors_bytes(record: &DocumentRecord) -> Result<Vec<u8>> {
    validate_key(&record.key)?;
    let mut names = HashSet::with_capacity(record.tensors.len());
    for tensor in &record.tensors {
        tensor.check(&record.key)?;
        if !names.insert(tensor.name.as_str()) {
            return Err(Error::InvalidTensor {
                key: record.key.clone(),
                name: tensor.name.clone(),
                reason: "the name is used twice".to_owned(),
            });
        }
    }

    // Data order: decreasing alignment (Dtype's order is increasing alignment), then name.
    let mut by_layout: Vec<&OutputTensor> = record.tensors.iter().collect();
    by_layout.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
    let mut offsets = BTreeMap::new();
    let mut end = 0usize;
    for tensor in &by_layout {
        let start = end;
        end += tensor.data.len();
        offsets.insert(tensor.name.as_str(), (*tensor, start, end));
    }

    let json = |s: &str| {
        serde_json::to_string(s).map_err(|source| Error::Json {
            key: record.key.clone(),
            source,
        })
    };
    let mut header = String::from("{");
    let mut first = true;
    if !record.metadata.is_empty() {
        header.push_str("\"__metadata__\":{");
        for (i, (k, v)) in record.metadata.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&json(k)?);
            header.push(':');
            header.push_str(&json(v)?);
        }
        header.push('}');
        first = false;
    }
    for (name, (tensor, start, end)) in &offsets {
        if !first {
            header.push(',');
        }
        first = false;
        let shape: Vec<String> = tensor.shape.iter().map(usize::to_string).collect();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{start},{end}]}}",
            json(name)?,
            tensor.dtype,
            shape.join(",")
        ));
    }
    header.push('}');
    let padded = header.len().next_multiple_of(8);
    if padded > MAX_HEADER_LEN {
        return Err(Error::InvalidTensor {
            key: record.key.clone(),
            name: "__metadata__".to_owned(),
            reason: format!("the header would be {padded} bytes, over {MAX_HEADER_LEN}"),
        });
    }

    let mut out = Vec::with_capacity(8 + padded + end);
    out.extend_from_slice(&(padded as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.resize(8 + padded, b' ');
    for tensor in by_layout {
        out.extend_from_slice(&tensor.data);
    }
    Ok(out)
}

/// Whether `path` is a whole safetensors file: its header parses and the file is exactly as
/// long as the header says. Reads the header only.
pub(crate) fn safetensors_file_is_whole(path: &Path) -> Result<bool> {
    Ok(whole_file_metadata(path)?.is_some())
}

/// The `__metadata__` of a safetensors file whose header parses and whose length matches it;
/// `None` for a file that is not whole.
pub(crate) fn whole_file_metadata(
    path: &Path,
) -> Result<Option<std::collections::BTreeMap<String, String>>> {
    let (mut file, file_len) = match crate::limits::open_regular(path) {
        Ok(opened) => opened,
        // A folder, a FIFO, a device: not a whole file (and never opened, which could block).
        Err(Error::NotAFile { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut len_bytes = [0u8; 8];
    if file.read_exact(&mut len_bytes).is_err() {
        return Ok(None);
    }
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_LEN as u64 || 8 + header_len > file_len {
        return Ok(None);
    }
    let mut header = vec![0u8; header_len as usize];
    if file.read_exact(&mut header).is_err() {
        return Ok(None);
    }
    let Ok(metadata) = serde_json::from_slice::<safetensors::tensor::Metadata>(&header) else {
        return Ok(None);
    };
    let data_end = metadata
        .tensors()
        .values()
        .map(|info| info.data_offsets.1)
        .max()
        .unwrap_or(0) as u64;
    // The offsets come from the file: a hostile one could overflow the sum.
    if (8 + header_len).checked_add(data_end) != Some(file_len) {
        return Ok(None);
    }
    Ok(Some(
        metadata
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_encode_little_endian() {
        assert_eq!(
            OutputTensor::i32("a", [2], &[1, -1]).data,
            [1, 0, 0, 0, 255, 255, 255, 255]
        );
        assert_eq!(
            OutputTensor::f16_from_f32("h", [1], &[1.0]).data,
            [0x00, 0x3c]
        );
        assert_eq!(
            OutputTensor::bf16_from_f32("b", [1], &[1.0]).data,
            [0x80, 0x3f]
        );
        assert_eq!(OutputTensor::u8("u", b"ab").shape, [2]);
        assert_eq!(OutputTensor::i64("l", [], &[7]).element_count(), Some(1));
    }

    #[test]
    fn header_is_sorted_and_padded() {
        let rec = DocumentRecord::new("k")
            .with_metadata("z", "1")
            .with_metadata("a", "\"q\"")
            .with_tensor(OutputTensor::u8("bytes", b"xyz"))
            .with_tensor(OutputTensor::f32("ent", [1], &[0.5]));
        let bytes = safetensors_bytes(&rec).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().trim_end();
        assert_eq!(
            header,
            r#"{"__metadata__":{"a":"\"q\"","z":"1"},"bytes":{"dtype":"U8","shape":[3],"data_offsets":[4,7]},"ent":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        );
        assert_eq!(&bytes[8 + n..], &[0, 0, 0, 0x3f, b'x', b'y', b'z']);
    }

    #[test]
    fn bad_tensors_are_named() {
        let rec = DocumentRecord::new("k").with_tensor(OutputTensor::new(
            "t",
            Dtype::F32,
            [2],
            vec![0; 7],
        ));
        let err = safetensors_bytes(&rec).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidTensor { key, name, .. } if key == "k" && name == "t")
        );
        let rec = DocumentRecord::new("k")
            .with_tensor(OutputTensor::u8("t", b""))
            .with_tensor(OutputTensor::u8("t", b""));
        assert!(matches!(
            safetensors_bytes(&rec),
            Err(Error::InvalidTensor { .. })
        ));
        let rec = DocumentRecord::new("bad.key");
        assert!(matches!(
            safetensors_bytes(&rec),
            Err(Error::InvalidKey { .. })
        ));
    }
}
