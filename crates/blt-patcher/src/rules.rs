//! The boundary rules of `bytelatent/data/patcher.py`, one function per rule, on one sequence.
//!
//! Every `*_starts` function returns the reference's sorted start list for a sequence of length
//! `s >= 1`, always beginning with the forced starts `[0, 1]`. A list may name the position
//! `total` (a start at the very end, which makes a zero-length patch that the reference trims)
//! or repeat a start; [`lengths_from_starts`] drops both.
//!
//! Positions: `h[p]` (or `predicted[p]`) is the model's output after token `p`, i.e. about token
//! `p + 1`; a start at token `t >= 2` is decided from `h[t - 1]`. `h[0]` is never read.

/// The BPE delimiter id (same value as `blt_tokenizer::BPE_ID`).
pub(crate) const BPE_ID: u32 = 3;
/// Offset of byte ids (same value as `blt_tokenizer::OFFSET`); ids below it are special.
pub(crate) const OFFSET: u32 = 4;

/// Which threshold rule of entropy mode applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ThresholdRule {
    /// `H[t−1] > θ`.
    Global { threshold: f32 },
    /// `t = 2` always; `H[t−1] − H[t−2] > θ` for `t >= 3`.
    Monotonic { threshold: f32 },
    /// `t = 2` always, `t = 3` never; `H[t−1] − H[t−2] > add && H[t−1] > θ` for `t >= 4`.
    GlobalAndMonotonic { threshold: f32, add: f32 },
}

/// The last token that may start a patch: `S` with `include_next_token` (the phantom token's
/// patch), `S − 1` without (the reference drops the last candidate).
fn last_candidate(s: usize, include_next_token: bool) -> usize {
    if include_next_token {
        s
    } else {
        s - 1
    }
}

/// Entropy mode with a threshold (§5.3).
pub(crate) fn entropy_threshold_starts(
    h: &[f32],
    rule: ThresholdRule,
    include_next_token: bool,
) -> Vec<usize> {
    let s = h.len();
    let mut starts = vec![0, 1];
    for t in 2..=last_candidate(s, include_next_token) {
        let is_start = match rule {
            ThresholdRule::Global { threshold } => h[t - 1] > threshold,
            ThresholdRule::Monotonic { threshold } => t == 2 || h[t - 1] - h[t - 2] > threshold,
            ThresholdRule::GlobalAndMonotonic { threshold, add } => match t {
                2 => true,
                3 => false,
                _ => h[t - 1] - h[t - 2] > add && h[t - 1] > threshold,
            },
        };
        if is_start {
            starts.push(t);
        }
    }
    starts
}

/// Entropy mode without a threshold: the `k` largest of `H[1..]` start patches (at the next
/// token). `include_next_token` plays no part in choosing them. Ties go to the earlier position
/// (torch leaves the order of equal values unspecified).
pub(crate) fn entropy_top_k_starts(h: &[f32], k: usize) -> Vec<usize> {
    let mut candidates: Vec<usize> = (1..h.len()).collect();
    // Largest first; equal values keep position order (the sort is stable).
    candidates.sort_by(|&a, &b| h[b].total_cmp(&h[a]));
    candidates.truncate(k);
    candidates.sort_unstable();
    let mut starts = Vec::with_capacity(k + 2);
    starts.extend([0, 1]);
    starts.extend(candidates.into_iter().map(|p| p + 1));
    starts
}

/// Whether the `space` rule marks a token before run-collapsing: a special id, or a byte that is
/// neither an ASCII letter or digit nor a UTF-8 continuation byte (0x80..=0xBF).
fn is_space_like(id: u32) -> bool {
    if id < OFFSET {
        // The reference's `id - 4` is negative, hence `< '0'`.
        return true;
    }
    let u = id - OFFSET;
    let alphanumeric = u8::try_from(u).is_ok_and(|b| b.is_ascii_alphanumeric());
    let continuation = (0x80..0xC0).contains(&u);
    !(alphanumeric || continuation)
}

/// `space` mode (§5.4): a marked token is the last of its patch.
pub(crate) fn space_starts(tokens: &[u32]) -> Vec<usize> {
    let mut starts = vec![0, 1];
    // Token 0's mark would only restate the forced start 1, so the scan starts at 1.
    for i in 1..tokens.len() {
        let first_of_run = is_space_like(tokens[i]) && !is_space_like(tokens[i - 1]);
        if first_of_run || tokens[i] < OFFSET {
            starts.push(i + 1);
        }
    }
    starts
}

/// `bpe` mode (§5.4): every delimiter before the last position ends a patch. A delimiter at
/// position 0 (where the reference expects BOS) repeats the forced start 1.
pub(crate) fn bpe_starts(tokens: &[u32]) -> Vec<usize> {
    let mut starts = vec![0, 1];
    let body = &tokens[..tokens.len() - 1];
    starts.extend(
        body.iter()
            .enumerate()
            .filter(|&(_, &id)| id == BPE_ID)
            .map(|(i, _)| i + 1),
    );
    starts
}

/// `bpe_patcher` mode (§5.4): a patch starts after every position `p >= 1` whose predicted id is
/// the delimiter; the last position only counts with `include_next_token` (the reference runs
/// the model on `tokens[1:]` or `tokens[1:-1]`).
pub(crate) fn predicted_starts(predicted: &[u32], include_next_token: bool) -> Vec<usize> {
    let s = predicted.len();
    let mut starts = vec![0, 1];
    for t in 2..=last_candidate(s, include_next_token) {
        if predicted[t - 1] == BPE_ID {
            starts.push(t);
        }
    }
    starts
}

/// `static` mode: `ceil(total / size)` patches of `size`, the last one `total % size` if that is
/// not 0.
pub(crate) fn static_lengths(total: usize, size: usize) -> Vec<usize> {
    let mut lengths = vec![size; total / size];
    if !total.is_multiple_of(size) {
        lengths.push(total % size);
    }
    lengths
}

/// The reference's `patch_lengths_from_start_ids` on one row, followed by its trimming: each
/// patch runs to the next start, the last one to `total`; zero-length patches (a repeated start,
/// or a start at `total`) are dropped.
pub(crate) fn lengths_from_starts(starts: &[usize], total: usize) -> Vec<usize> {
    let mut lengths = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(total);
        let len = end.saturating_sub(start);
        if len > 0 {
            lengths.push(len);
        }
    }
    lengths
}

/// The reference's `split_large_numbers`: every length above `max` becomes chunks of `max`
/// followed by the remainder (7 with max 3 → 3, 3, 1).
pub(crate) fn split_long_patches(lengths: &[usize], max: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(lengths.len());
    for &len in lengths {
        let mut rest = len;
        while rest > max {
            out.push(max);
            rest -= max;
        }
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: [f32; 10] = [0.5, 2.0, 0.1, 0.2, 3.0, 0.3, 0.4, 1.5, 0.2, 0.1];

    #[test]
    fn global_rule_starts_after_the_exceeding_position() {
        let rule = ThresholdRule::Global { threshold: 1.0 };
        assert_eq!(
            entropy_threshold_starts(&H, rule, false),
            vec![0, 1, 2, 5, 8]
        );
        assert_eq!(
            entropy_threshold_starts(&H, rule, true),
            vec![0, 1, 2, 5, 8]
        );
    }

    #[test]
    fn global_rule_never_reads_h0() {
        let mut h = H;
        h[0] = 100.0;
        let rule = ThresholdRule::Global { threshold: 1.0 };
        assert_eq!(
            entropy_threshold_starts(&h, rule, true),
            vec![0, 1, 2, 5, 8]
        );
    }

    #[test]
    fn last_candidate_only_with_next_token() {
        let mut h = H;
        h[9] = 1.9;
        let rule = ThresholdRule::Global { threshold: 1.0 };
        assert_eq!(
            entropy_threshold_starts(&h, rule, false),
            vec![0, 1, 2, 5, 8]
        );
        assert_eq!(
            entropy_threshold_starts(&h, rule, true),
            vec![0, 1, 2, 5, 8, 10]
        );
    }

    #[test]
    fn comparisons_are_strict() {
        let h = [0.0, 1.0, 1.0, 2.0];
        let global = ThresholdRule::Global { threshold: 1.0 };
        assert_eq!(entropy_threshold_starts(&h, global, true), vec![0, 1, 4]);
        // Differences 0.0 and 1.0: neither exceeds 1.0; t = 2 is forced.
        let mono = ThresholdRule::Monotonic { threshold: 1.0 };
        assert_eq!(entropy_threshold_starts(&h, mono, true), vec![0, 1, 2]);
    }

    #[test]
    fn monotonic_rule_uses_differences_and_forces_token_2() {
        // Differences H[t-1] - H[t-2] for t = 3..: 0.5, 1.5, -2.0, 0.1
        let h = [9.0, 0.0, 0.5, 2.0, 0.0, 0.1];
        let rule = ThresholdRule::Monotonic { threshold: 1.0 };
        assert_eq!(entropy_threshold_starts(&h, rule, true), vec![0, 1, 2, 4]);
        // A high but flat entropy does not start patches under the relative rule.
        let flat = [0.0, 5.0, 5.0, 5.0];
        assert_eq!(entropy_threshold_starts(&flat, rule, true), vec![0, 1, 2]);
        // Worked example: same starts as the global rule.
        assert_eq!(
            entropy_threshold_starts(&H, rule, false),
            vec![0, 1, 2, 5, 8]
        );
    }

    #[test]
    fn global_and_monotonic_blocks_token_3() {
        // H[2] = 3.0 rises by 2.0 and exceeds θ, yet t = 3 never starts a patch.
        let h = [0.0, 1.0, 3.0, 0.0, 2.0];
        let rule = ThresholdRule::GlobalAndMonotonic {
            threshold: 1.0,
            add: 0.0,
        };
        assert_eq!(entropy_threshold_starts(&h, rule, true), vec![0, 1, 2, 5]);
        // Both conditions are needed: high but falling (t = 4: 2.5 after 3.0) does not start.
        let h = [0.0, 0.0, 3.0, 2.5, 2.6];
        assert_eq!(entropy_threshold_starts(&h, rule, true), vec![0, 1, 2, 5]);
        // Rising but below θ does not start.
        let h = [0.0, 0.0, 0.1, 0.5, 0.9];
        assert_eq!(entropy_threshold_starts(&h, rule, true), vec![0, 1, 2]);
        // Worked example with threshold_add 0.0: same starts as the global rule.
        assert_eq!(
            entropy_threshold_starts(&H, rule, false),
            vec![0, 1, 2, 5, 8]
        );
    }

    #[test]
    fn top_k_picks_the_largest_and_sorts_them() {
        // k = 10 // 4 - 2 = 0 in the reference; here k = 2 directly.
        assert_eq!(entropy_top_k_starts(&H, 2), vec![0, 1, 2, 5]);
        assert_eq!(entropy_top_k_starts(&H, 3), vec![0, 1, 2, 5, 8]);
        assert_eq!(entropy_top_k_starts(&H, 0), vec![0, 1]);
        // H[0] is never a candidate; ties go to the earlier position.
        let h = [9.0, 1.0, 1.0, 1.0];
        assert_eq!(entropy_top_k_starts(&h, 2), vec![0, 1, 2, 3]);
        // The last position is a candidate whatever include_next_token says.
        let h = [0.0, 0.0, 0.0, 5.0];
        assert_eq!(entropy_top_k_starts(&h, 1), vec![0, 1, 4]);
    }

    #[test]
    fn space_marks() {
        for c in b'0'..=b'9' {
            assert!(!is_space_like(u32::from(c) + OFFSET));
        }
        for c in (b'a'..=b'z').chain(b'A'..=b'Z') {
            assert!(!is_space_like(u32::from(c) + OFFSET));
        }
        for c in [b' ', b',', b'!', b'/', b':', b'@', b'[', b'`', b'{', 0x7F] {
            assert!(is_space_like(u32::from(c) + OFFSET), "{c}");
        }
        // UTF-8: continuation bytes are not marked, lead bytes (and 0xF8..) are.
        assert!(!is_space_like(0x80 + OFFSET));
        assert!(!is_space_like(0xBF + OFFSET));
        assert!(is_space_like(0xC0 + OFFSET));
        assert!(is_space_like(0xFF + OFFSET));
        for special in 0..OFFSET {
            assert!(is_space_like(special));
        }
        // Ids past the vocabulary follow the same formula (u >= 0xC0).
        assert!(is_space_like(1000));
    }

    #[test]
    fn space_runs_collapse_but_specials_always_end_patches() {
        // BOS "a" "," " " EOS EOS "b"
        let t = |c: u8| u32::from(c) + OFFSET;
        let tokens = [1, t(b'a'), t(b','), t(b' '), 2, 2, t(b'b')];
        // ',' ends a patch (first of its run); ' ' does not; both EOS do.
        assert_eq!(space_starts(&tokens), vec![0, 1, 3, 5, 6]);
    }

    #[test]
    fn space_utf8_lead_byte_ends_its_patch() {
        // BOS "x" "é" ("\xC3\xA9") "y": the lead byte is marked, so (as in the reference) it is
        // the last byte of its patch: "x\xC3" | "\xA9y".
        let x = u32::from(b'x') + OFFSET;
        let y = u32::from(b'y') + OFFSET;
        let tokens = [1, x, 0xC3 + OFFSET, 0xA9 + OFFSET, y];
        assert_eq!(space_starts(&tokens), vec![0, 1, 3]);
        // Right after BOS (itself marked) the lead byte's mark is collapsed away.
        let tokens = [1, 0xC3 + OFFSET, 0xA9 + OFFSET, y];
        assert_eq!(space_starts(&tokens), vec![0, 1]);
    }

    #[test]
    fn bpe_ignores_a_delimiter_in_last_position() {
        assert_eq!(bpe_starts(&[1, 10, 3]), vec![0, 1]);
        assert_eq!(bpe_starts(&[1, 3, 10]), vec![0, 1, 2]);
        assert_eq!(bpe_starts(&[3, 10]), vec![0, 1, 1]);
    }

    #[test]
    fn predicted_alignment() {
        // predicted[p] is about token p + 1: position 2 predicts a delimiter → start at 3.
        let pred = [3, 3, 3, 10, 3];
        assert_eq!(predicted_starts(&pred, false), vec![0, 1, 2, 3]);
        assert_eq!(predicted_starts(&pred, true), vec![0, 1, 2, 3, 5]);
    }

    #[test]
    fn lengths_drop_zero_length_patches() {
        assert_eq!(
            lengths_from_starts(&[0, 1, 2, 5, 8], 10),
            vec![1, 1, 3, 3, 2]
        );
        assert_eq!(
            lengths_from_starts(&[0, 1, 2, 5, 8], 11),
            vec![1, 1, 3, 3, 3]
        );
        assert_eq!(lengths_from_starts(&[0, 1], 1), vec![1]);
        assert_eq!(lengths_from_starts(&[0, 1, 1, 3], 4), vec![1, 2, 1]);
        assert_eq!(lengths_from_starts(&[0, 1, 4], 4), vec![1, 3]);
    }

    #[test]
    fn static_and_split() {
        assert_eq!(static_lengths(10, 4), vec![4, 4, 2]);
        assert_eq!(static_lengths(11, 4), vec![4, 4, 3]);
        assert_eq!(static_lengths(8, 4), vec![4, 4]);
        assert_eq!(static_lengths(3, 4), vec![3]);
        assert_eq!(split_long_patches(&[7], 3), vec![3, 3, 1]);
        assert_eq!(split_long_patches(&[6, 1, 3], 3), vec![3, 3, 1, 3]);
        assert_eq!(
            split_long_patches(&[1, 1, 3, 3, 2], 2),
            vec![1, 1, 2, 1, 2, 1, 2]
        );
    }
}
