//! [`PatchBoundaries`]: the patches of one sequence, as starts and lengths.

use std::ops::Range;

use crate::{Error, Result};

/// The patches of one sequence: contiguous, non-empty, in order, starting at position 0.
///
/// `starts()[i]` is the first position of patch `i` and `lengths()[i]` its length; patch `i + 1`
/// starts where patch `i` ends. The patches cover [`covered_len`](Self::covered_len) positions:
/// `S`, or `S + 1` when the patcher was configured with `include_next_token` (the last patch then
/// holds the not-yet-seen next token). A sequence of length 0 has no patches.
///
/// With the `serde` feature it (de)serialises as its list of lengths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(into = "Vec<usize>", try_from = "Vec<usize>")
)]
pub struct PatchBoundaries {
    starts: Vec<usize>,
    lengths: Vec<usize>,
}

impl PatchBoundaries {
    /// Builds boundaries from patch lengths, e.g. the rows of [`Patcher::patch_batch`] with their
    /// zero padding removed.
    ///
    /// # Errors
    /// [`Error::ZeroLengthPatch`] if a length is 0.
    ///
    /// [`Patcher::patch_batch`]: crate::Patcher::patch_batch
    pub fn from_lengths(lengths: Vec<usize>) -> Result<Self> {
        if let Some(index) = lengths.iter().position(|&l| l == 0) {
            return Err(Error::ZeroLengthPatch { index });
        }
        Ok(Self::from_nonzero_lengths(lengths))
    }

    /// Lengths known to be non-zero (checked in debug builds).
    pub(crate) fn from_nonzero_lengths(lengths: Vec<usize>) -> Self {
        debug_assert!(lengths.iter().all(|&l| l > 0));
        let mut starts = Vec::with_capacity(lengths.len());
        let mut next = 0;
        for &l in &lengths {
            starts.push(next);
            next += l;
        }
        PatchBoundaries { starts, lengths }
    }

    /// First position of each patch: `0`, then strictly increasing.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// Length of each patch; never 0.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Number of patches.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether there are no patches (only for an empty sequence).
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Number of positions covered: the sum of the lengths (`S`, or `S + 1` with
    /// `include_next_token`).
    pub fn covered_len(&self) -> usize {
        match (self.starts.last(), self.lengths.last()) {
            (Some(s), Some(l)) => s + l,
            _ => 0,
        }
    }

    /// The patches as position ranges, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.starts.iter().zip(self.lengths.iter()),
        }
    }

    /// The patch index of every covered position (length [`covered_len`](Self::covered_len)).
    ///
    /// This is the BLT's `patch_ids`: computed from boundaries made with `include_next_token`,
    /// it has `S + 1` entries and the first `S` are the patch of each real token.
    pub fn patch_ids(&self) -> Vec<usize> {
        let mut ids = Vec::with_capacity(self.covered_len());
        for (patch, &len) in self.lengths.iter().enumerate() {
            ids.extend(std::iter::repeat_n(patch, len));
        }
        ids
    }

    /// The patch that holds `position`, or `None` past the covered positions.
    pub fn patch_of(&self, position: usize) -> Option<usize> {
        if position >= self.covered_len() {
            return None;
        }
        // `starts[0] == 0 <= position`, so the partition point is at least 1.
        Some(self.starts.partition_point(|&s| s <= position) - 1)
    }

    /// The lengths, consuming the boundaries.
    pub fn into_lengths(self) -> Vec<usize> {
        self.lengths
    }
}

impl From<PatchBoundaries> for Vec<usize> {
    fn from(b: PatchBoundaries) -> Self {
        b.lengths
    }
}

impl TryFrom<Vec<usize>> for PatchBoundaries {
    type Error = Error;

    fn try_from(lengths: Vec<usize>) -> Result<Self> {
        PatchBoundaries::from_lengths(lengths)
    }
}

impl<'a> IntoIterator for &'a PatchBoundaries {
    type Item = Range<usize>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the patches of a [`PatchBoundaries`] as position ranges.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: std::iter::Zip<std::slice::Iter<'a, usize>, std::slice::Iter<'a, usize>>,
}

impl Iterator for Iter<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        self.inner.next().map(|(&s, &l)| s..s + l)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Range<usize>> {
        self.inner.next_back().map(|(&s, &l)| s..s + l)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::iter::FusedIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_agree() {
        let b = PatchBoundaries::from_lengths(vec![1, 1, 3, 3, 3]).unwrap();
        assert_eq!(b.starts(), &[0, 1, 2, 5, 8]);
        assert_eq!(b.lengths(), &[1, 1, 3, 3, 3]);
        assert_eq!(b.len(), 5);
        assert!(!b.is_empty());
        assert_eq!(b.covered_len(), 11);
        assert_eq!(b.patch_ids(), vec![0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
        let ranges: Vec<_> = b.iter().collect();
        assert_eq!(ranges, vec![0..1, 1..2, 2..5, 5..8, 8..11]);
        assert_eq!(b.iter().len(), 5);
        assert_eq!(b.iter().next_back(), Some(8..11));
        assert_eq!((&b).into_iter().count(), 5);
        for (p, &id) in b.patch_ids().iter().enumerate() {
            assert_eq!(b.patch_of(p), Some(id));
        }
        assert_eq!(b.patch_of(11), None);
        assert_eq!(Vec::from(b.clone()), vec![1, 1, 3, 3, 3]);
        assert_eq!(b.into_lengths(), vec![1, 1, 3, 3, 3]);
    }

    #[test]
    fn empty_boundaries() {
        let b = PatchBoundaries::default();
        assert!(b.is_empty());
        assert_eq!(b.covered_len(), 0);
        assert!(b.patch_ids().is_empty());
        assert_eq!(b.patch_of(0), None);
        assert_eq!(b.iter().next(), None);
        assert_eq!(PatchBoundaries::from_lengths(vec![]), Ok(b));
    }

    #[test]
    fn zero_length_is_rejected() {
        assert_eq!(
            PatchBoundaries::from_lengths(vec![1, 5, 0, 0]),
            Err(Error::ZeroLengthPatch { index: 2 })
        );
        assert_eq!(
            PatchBoundaries::try_from(vec![0]),
            Err(Error::ZeroLengthPatch { index: 0 })
        );
    }
}
