//! Where the matrices and rows of a strided tensor lie, for kernels and libraries that read
//! views in place (no copy): pure index arithmetic, tested without a GPU.

/// How cuBLAS reads one operand of a batched product: every matrix row-major or column-major
/// with leading dimension `ld`, matrix `i` of the batch starting `offsets[i]` elements after the
/// buffer's start. Views (transposes, head slices of a projection, overlapping windows) need no
/// copy as long as each matrix has a unit stride along one of its two dimensions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub col_major: bool,
    pub ld: usize,
    pub offsets: Vec<usize>,
}

impl Layout {
    /// The layout of a `[.., rows, cols]` tensor with `strides`, if cuBLAS can read it as is.
    pub fn of(dims: &[usize], strides: &[usize]) -> Option<Self> {
        let r = dims.len();
        let (rows, cols) = (dims[r - 2], dims[r - 1]);
        let (rs, cs) = (strides[r - 2], strides[r - 1]);
        let (col_major, ld) = if (cols == 1 || cs == 1) && (rows == 1 || rs >= cols) {
            (false, if rows == 1 { cols } else { rs })
        } else if (rows == 1 || rs == 1) && (cols == 1 || cs >= rows) {
            (true, if cols == 1 { rows } else { cs })
        } else {
            return None;
        };
        let batch = &dims[..r - 2];
        let mut offsets = vec![0usize];
        for (&n, &stride) in batch.iter().zip(&strides[..r - 2]) {
            offsets = offsets
                .iter()
                .flat_map(|&o| (0..n).map(move |i| o + i * stride))
                .collect();
        }
        Some(Self {
            col_major,
            ld: ld.max(1),
            offsets,
        })
    }

    /// The constant distance between consecutive matrices, if there is one.
    pub fn uniform_stride(&self) -> Option<usize> {
        let first = self.offsets.first().copied().unwrap_or(0);
        let step = self.offsets.get(1).map_or(0, |&o| o.wrapping_sub(first));
        self.offsets
            .iter()
            .enumerate()
            .all(|(i, &o)| o == first + i * step)
            .then_some(step)
    }
}

/// The distance between consecutive rows of a `[.., width]` tensor, if it is one constant with
/// unit stride along each row.
pub(crate) fn row_stride(dims: &[usize], strides: &[usize]) -> Option<usize> {
    let r = dims.len();
    if r == 0 || (dims[r - 1] > 1 && strides[r - 1] != 1) {
        return None;
    }
    let lead: Vec<(usize, usize)> = dims[..r - 1]
        .iter()
        .copied()
        .zip(strides[..r - 1].iter().copied())
        .filter(|&(n, _)| n > 1)
        .collect();
    let Some(&(_, row)) = lead.last() else {
        return Some(dims[r - 1]);
    };
    if row < dims[r - 1] {
        return None;
    }
    lead.windows(2)
        .all(|w| w[0].1 == w[1].1 * w[1].0)
        .then_some(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_of_views() {
        // contiguous [2, 3, 4]
        let l = Layout::of(&[2, 3, 4], &[12, 4, 1]).unwrap();
        assert_eq!(
            (l.col_major, l.ld, l.offsets.clone()),
            (false, 4, vec![0, 12])
        );
        assert_eq!(l.uniform_stride(), Some(12));
        // its transpose [2, 4, 3]
        let t = Layout::of(&[2, 4, 3], &[12, 1, 4]).unwrap();
        assert_eq!((t.col_major, t.ld), (true, 4));
        // heads of a [b=2, s=5, 3·h·d] projection viewed as [b, h=2, s, d=4]
        let h = Layout::of(&[2, 2, 5, 4], &[120, 4, 24, 1]).unwrap();
        assert_eq!((h.col_major, h.ld), (false, 24));
        assert_eq!(h.offsets, vec![0, 4, 120, 124]);
        assert_eq!(h.uniform_stride(), None);
        // overlapping windows: 3 windows of 5 rows, step 2, of a [9, 4] matrix
        let w = Layout::of(&[3, 5, 4], &[8, 4, 1]).unwrap();
        assert_eq!(w.uniform_stride(), Some(8));
        // a [3, 4] view with no unit stride is not readable
        assert!(Layout::of(&[3, 4], &[8, 2]).is_none());
        // one row / one column
        assert_eq!(
            Layout::of(&[1, 4], &[7, 1]).map(|l| (l.col_major, l.ld)),
            Some((false, 4))
        );
        assert_eq!(
            Layout::of(&[4, 1], &[3, 9]).map(|l| l.col_major),
            Some(false)
        );
    }

    #[test]
    fn row_strides_of_views() {
        assert_eq!(row_stride(&[2, 3, 4], &[12, 4, 1]), Some(4));
        // the second half of a [2, 3, 8] product
        assert_eq!(row_stride(&[2, 3, 4], &[24, 8, 1]), Some(8));
        // a pitched [2, 7] buffer (rows padded to 8)
        assert_eq!(row_stride(&[2, 7], &[8, 1]), Some(8));
        // rows not evenly spaced across the batch
        assert_eq!(row_stride(&[2, 3, 4], &[100, 8, 1]), None);
        // a transpose
        assert_eq!(row_stride(&[4, 3], &[1, 4]), None);
        // size-1 dimensions do not count
        assert_eq!(row_stride(&[1, 3, 1, 4], &[0, 4, 99, 1]), Some(4));
    }
}
