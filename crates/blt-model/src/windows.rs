//! How a document longer than the model's `max_seqlen` is cut, as the reference's
//! `calculate_entropies` does (REFERENCE.md §5.6): consecutive, non-overlapping windows of
//! `max_seqlen` tokens, each an independent sequence that restarts at position 0 with no context
//! carried over. The last window is shorter; the reference pads it with id 0 on the right, which
//! never changes a real position under causal attention, so no padding is needed here.

use std::ops::Range;

/// The windows of a sequence of `len` tokens, each at most `max_len` long (`max_len > 0`).
///
/// ```
/// use blt_model::windows::windows;
/// let w: Vec<_> = windows(20, 8).collect();
/// assert_eq!(w, vec![0..8, 8..16, 16..20]);
/// ```
pub fn windows(len: usize, max_len: usize) -> impl Iterator<Item = Range<usize>> {
    let max_len = max_len.max(1);
    (0..len)
        .step_by(max_len)
        .map(move |start| start..(start + max_len).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_chunks_of_8192() {
        let w: Vec<_> = windows(9000, 8192).collect();
        assert_eq!(w, vec![0..8192, 8192..9000]);
        assert_eq!(windows(0, 8192).count(), 0);
        assert_eq!(windows(8192, 8192).collect::<Vec<_>>(), vec![0..8192]);
    }

    proptest! {
        #[test]
        fn windows_tile_the_sequence(len in 0usize..5000, max_len in 1usize..600) {
            let mut next = 0;
            for w in windows(len, max_len) {
                prop_assert_eq!(w.start, next);
                prop_assert!(!w.is_empty() && w.len() <= max_len);
                // every window but the last is full
                prop_assert!(w.end == len || w.len() == max_len);
                next = w.end;
            }
            prop_assert_eq!(next, len);
        }
    }
}
