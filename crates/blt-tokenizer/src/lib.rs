#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// "Beginning of example" id; also the padding id of windowed entropy computation.
pub const BOE_ID: u32 = 0;
/// Beginning-of-sequence id.
pub const BOS_ID: u32 = 1;
/// End-of-sequence id. The entropy model's attention is cut after every EOS.
pub const EOS_ID: u32 = 2;
/// The BPE delimiter id used by the `bpe` patching mode.
pub const BPE_ID: u32 = 3;
/// Byte `b` is encoded as `b + OFFSET`.
pub const OFFSET: u32 = 4;
/// Number of byte values.
pub const BYTE_UNITS: u32 = 256;
/// Size of the vocabulary: 256 bytes and 4 special ids.
pub const VOCAB_SIZE: usize = (BYTE_UNITS + OFFSET) as usize;

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A token id outside the vocabulary.
    #[error(
        "token id {id} at position {position} is outside the BLT vocabulary (0..{VOCAB_SIZE})"
    )]
    IdOutOfRange {
        /// The offending id.
        id: u32,
        /// Its position in the input.
        position: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Bytes ⇄ BLT token ids.
///
/// The default adds BOS and EOS, as Meta's preprocessing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BltTokenizer {
    add_bos: bool,
    add_eos: bool,
}

impl Default for BltTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl BltTokenizer {
    /// A tokenizer that adds both BOS and EOS.
    pub const fn new() -> Self {
        Self {
            add_bos: true,
            add_eos: true,
        }
    }

    /// Whether BOS is prepended.
    pub const fn with_bos(mut self, add_bos: bool) -> Self {
        self.add_bos = add_bos;
        self
    }

    /// Whether EOS is appended.
    pub const fn with_eos(mut self, add_eos: bool) -> Self {
        self.add_eos = add_eos;
        self
    }

    /// Whether BOS is prepended.
    pub const fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether EOS is appended.
    pub const fn adds_eos(&self) -> bool {
        self.add_eos
    }

    /// The id of one byte.
    #[inline]
    pub const fn byte_to_id(byte: u8) -> u32 {
        byte as u32 + OFFSET
    }

    /// The byte of an id, or `None` for special ids and ids outside the vocabulary.
    #[inline]
    pub const fn id_to_byte(id: u32) -> Option<u8> {
        if id >= OFFSET && id < OFFSET + BYTE_UNITS {
            Some((id - OFFSET) as u8)
        } else {
            None
        }
    }

    /// Number of ids `encode` produces for `n_bytes` bytes.
    pub const fn encoded_len(&self, n_bytes: usize) -> usize {
        n_bytes + self.add_bos as usize + self.add_eos as usize
    }

    /// Encodes raw bytes to ids.
    pub fn encode(&self, bytes: &[u8]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.encoded_len(bytes.len()));
        self.encode_into(bytes, &mut ids);
        ids
    }

    /// Encodes raw bytes, appending the ids to `out`.
    pub fn encode_into(&self, bytes: &[u8], out: &mut Vec<u32>) {
        out.reserve(self.encoded_len(bytes.len()));
        if self.add_bos {
            out.push(BOS_ID);
        }
        out.extend(bytes.iter().map(|&b| Self::byte_to_id(b)));
        if self.add_eos {
            out.push(EOS_ID);
        }
    }

    /// Decodes ids to bytes, dropping special ids (< 4).
    ///
    /// # Errors
    /// [`Error::IdOutOfRange`] for an id ≥ 260.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len());
        for (position, &id) in ids.iter().enumerate() {
            if id as usize >= VOCAB_SIZE {
                return Err(Error::IdOutOfRange { id, position });
            }
            if let Some(b) = Self::id_to_byte(id) {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Decodes ids to text; invalid UTF-8 becomes U+FFFD.
    ///
    /// # Errors
    /// [`Error::IdOutOfRange`] for an id ≥ 260.
    pub fn decode_utf8_lossy(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode(ids)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_of_the_reference() {
        let tok = BltTokenizer::new();
        assert_eq!(tok.encode(b""), vec![BOS_ID, EOS_ID]);
        assert_eq!(tok.encode(&[0, 255]), vec![1, 4, 259, 2]);
        assert_eq!(
            tok.with_bos(false).with_eos(false).encode("é".as_bytes()),
            vec![0xC3 + 4, 0xA9 + 4]
        );
        assert_eq!(VOCAB_SIZE, 260);
    }

    #[test]
    fn decode_drops_specials_and_rejects_out_of_range() {
        let tok = BltTokenizer::new();
        assert_eq!(tok.decode(&[0, 1, 2, 3, 4 + 65]).unwrap(), b"A".to_vec());
        assert_eq!(
            tok.decode(&[1, 260]),
            Err(Error::IdOutOfRange {
                id: 260,
                position: 1
            })
        );
        assert_eq!(
            tok.decode_utf8_lossy(&[1, 0xFF + 4, 2]).unwrap(),
            "\u{FFFD}"
        );
    }

    proptest! {
        #[test]
        fn round_trip_over_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                           bos in any::<bool>(), eos in any::<bool>()) {
            let tok = BltTokenizer::new().with_bos(bos).with_eos(eos);
            let ids = tok.encode(&bytes);
            prop_assert_eq!(ids.len(), tok.encoded_len(bytes.len()));
            prop_assert!(ids.iter().all(|&id| (id as usize) < VOCAB_SIZE));
            prop_assert_eq!(tok.decode(&ids).unwrap(), bytes);
        }
    }
}
