//! Every worked example and edge case of REFERENCE.md §5.3–§5.4 (Meta's `bytelatent/data/patcher.py`,
//! checked there by running the reference), through the public API.

use blt_patcher::{
    Error, PatchBoundaries, Patcher, PatcherConfig, PatchingMode, DEFAULT_THRESHOLD,
};

/// The worked example's entropies (S = 10).
const H: [f32; 10] = [0.5, 2.0, 0.1, 0.2, 3.0, 0.3, 0.4, 1.5, 0.2, 0.1];

/// BOS followed by arbitrary bytes: the entropy rules only look at the length.
fn bos_tokens(s: usize) -> Vec<u32> {
    (0..s)
        .map(|i| if i == 0 { 1 } else { 4 + i as u32 })
        .collect()
}

fn text_tokens(text: &str) -> Vec<u32> {
    std::iter::once(1)
        .chain(text.bytes().map(|b| u32::from(b) + 4))
        .collect()
}

fn entropy(threshold: f32, include_next_token: bool) -> PatcherConfig {
    PatcherConfig::default()
        .with_threshold(Some(threshold))
        .with_include_next_token(include_next_token)
}

fn lengths(config: PatcherConfig, h: &[f32]) -> Vec<usize> {
    let patcher = Patcher::new(config).unwrap();
    patcher
        .patch(&bos_tokens(h.len()), Some(h))
        .unwrap()
        .into_lengths()
}

fn mode(mode: PatchingMode, include_next_token: bool) -> Patcher {
    Patcher::new(
        PatcherConfig::new(mode)
            .with_patch_size(4.0)
            .with_include_next_token(include_next_token),
    )
    .unwrap()
}

// ---- §5.3 worked examples ---------------------------------------------------------------

#[test]
fn global_rule_worked_example() {
    let p = Patcher::new(entropy(1.0, false)).unwrap();
    let b = p.patch(&bos_tokens(10), Some(&H)).unwrap();
    assert_eq!(b.starts(), &[0, 1, 2, 5, 8]);
    assert_eq!(b.lengths(), &[1, 1, 3, 3, 2]);

    let p = Patcher::new(entropy(1.0, true)).unwrap();
    let b = p.patch(&bos_tokens(10), Some(&H)).unwrap();
    assert_eq!(b.starts(), &[0, 1, 2, 5, 8]);
    assert_eq!(b.lengths(), &[1, 1, 3, 3, 3]);
    assert_eq!(b.covered_len(), 11);
    assert_eq!(b.patch_ids(), vec![0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
}

#[test]
fn monotonic_rule_worked_example() {
    let c = |inc| entropy(1.0, inc).with_monotonic(true);
    assert_eq!(lengths(c(false), &H), vec![1, 1, 3, 3, 2]);
    assert_eq!(lengths(c(true), &H), vec![1, 1, 3, 3, 3]);
}

#[test]
fn global_and_monotonic_worked_example() {
    let c = |inc| entropy(1.0, inc).with_threshold_add(Some(0.0));
    assert_eq!(lengths(c(false), &H), vec![1, 1, 3, 3, 2]);
    assert_eq!(lengths(c(true), &H), vec![1, 1, 3, 3, 3]);
}

#[test]
fn max_patch_length_2_worked_example() {
    let c = entropy(1.0, false).with_max_patch_length(Some(2));
    let b = Patcher::new(c)
        .unwrap()
        .patch(&bos_tokens(10), Some(&H))
        .unwrap();
    assert_eq!(b.lengths(), &[1, 1, 2, 1, 2, 1, 2]);
    assert_eq!(b.starts(), &[0, 1, 2, 4, 5, 7, 8]);
}

#[test]
fn max_patch_length_3() {
    // No exceedance → [1, 9] → 9 splits into 3, 3, 3; with the next token [1, 10] → 3, 3, 3, 1.
    let flat = [0.0f32; 10];
    let c = |inc| entropy(1.0, inc).with_max_patch_length(Some(3));
    assert_eq!(lengths(c(false), &flat), vec![1, 3, 3, 3]);
    assert_eq!(lengths(c(true), &flat), vec![1, 3, 3, 3, 1]);
    // 7 with m = 3 → 3, 3, 1.
    let mut h = [0.0f32; 9];
    h[1] = 5.0; // start at 2, then one patch 2..9 of length 7
    assert_eq!(lengths(c(false), &h), vec![1, 1, 3, 3, 1]);
}

#[test]
fn batch_of_two_rows_with_one_row_without_exceedance() {
    let p = Patcher::new(entropy(1.0, false)).unwrap();
    let tokens = bos_tokens(6);
    let row_1: &[f32] = &H[..6];
    let row_2: &[f32] = &[0.1; 6];
    let out = p
        .patch_batch(&[&tokens, &tokens], Some(&[row_1, row_2]))
        .unwrap();
    assert_eq!(out, vec![vec![1, 1, 3, 1], vec![1, 5, 0, 0]]);
}

#[test]
fn batch_rows_equal_single_rows() {
    let p = Patcher::new(entropy(1.0, true).with_max_patch_length(Some(2))).unwrap();
    let tokens = bos_tokens(10);
    let flat = [0.0f32; 10];
    let out = p
        .patch_batch(&[&tokens, &tokens], Some(&[&H[..], &flat[..]]))
        .unwrap();
    let single = p.patch(&tokens, Some(&H)).unwrap().into_lengths();
    assert_eq!(out[0], single);
    // [1, 10] → 1, 2, 2, 2, 2, 2 padded to the first row's 8 patches.
    assert_eq!(out[1], vec![1, 2, 2, 2, 2, 2, 0, 0]);
}

// ---- §5.3 edge cases -------------------------------------------------------------------------

#[test]
fn s_equals_1() {
    assert_eq!(lengths(entropy(1.0, false), &[9.0]), vec![1]);
    assert_eq!(lengths(entropy(1.0, true), &[9.0]), vec![1, 1]);
}

#[test]
fn s_equals_2() {
    // include_next_token = false: the only candidate (t = 2) is the dropped last one.
    assert_eq!(lengths(entropy(1.0, false), &[0.0, 0.5]), vec![1, 1]);
    assert_eq!(lengths(entropy(1.0, false), &[0.0, 5.0]), vec![1, 1]);
    // include_next_token = true: [1, 2] if H[1] <= θ, else [1, 1, 1].
    assert_eq!(lengths(entropy(1.0, true), &[0.0, 0.5]), vec![1, 2]);
    assert_eq!(lengths(entropy(1.0, true), &[0.0, 1.0]), vec![1, 2]);
    assert_eq!(lengths(entropy(1.0, true), &[0.0, 5.0]), vec![1, 1, 1]);
}

#[test]
fn s_equals_3() {
    // false: only t = 2 (from H[1]) can start a patch.
    assert_eq!(lengths(entropy(1.0, false), &[0.0, 0.5, 5.0]), vec![1, 2]);
    assert_eq!(
        lengths(entropy(1.0, false), &[0.0, 5.0, 5.0]),
        vec![1, 1, 1]
    );
    // true: t = 2 (H[1]) and t = 3 (H[2]).
    assert_eq!(lengths(entropy(1.0, true), &[0.0, 0.5, 0.5]), vec![1, 3]);
    assert_eq!(lengths(entropy(1.0, true), &[0.0, 5.0, 0.5]), vec![1, 1, 2]);
    assert_eq!(lengths(entropy(1.0, true), &[0.0, 0.5, 5.0]), vec![1, 2, 1]);
    assert_eq!(
        lengths(entropy(1.0, true), &[0.0, 5.0, 5.0]),
        vec![1, 1, 1, 1]
    );
}

#[test]
fn monotonic_short_sequences() {
    let c = |inc| entropy(1.0, inc).with_monotonic(true);
    assert_eq!(lengths(c(false), &[0.0]), vec![1]);
    assert_eq!(lengths(c(true), &[0.0]), vec![1, 1]);
    assert_eq!(lengths(c(false), &[0.0, 0.0]), vec![1, 1]);
    // t = 2 is forced, and with the next token it is a candidate.
    assert_eq!(lengths(c(true), &[0.0, 0.0]), vec![1, 1, 1]);
    assert_eq!(lengths(c(false), &[0.0, 0.0, 0.0]), vec![1, 1, 1]);
}

#[test]
fn global_and_monotonic_short_sequences() {
    let c = |inc| entropy(1.0, inc).with_threshold_add(Some(0.0));
    assert_eq!(lengths(c(true), &[0.0, 0.0]), vec![1, 1, 1]);
    // t = 3 never starts a patch, even far above θ and rising.
    assert_eq!(lengths(c(true), &[0.0, 0.0, 9.0]), vec![1, 1, 2]);
    assert_eq!(lengths(c(true), &[0.0, 0.0, 0.0, 9.0]), vec![1, 1, 2, 1]);
}

#[test]
fn no_exceedance() {
    for s in 2..20 {
        let h = vec![0.1f32; s];
        assert_eq!(lengths(entropy(1.0, false), &h), vec![1, s - 1]);
        assert_eq!(lengths(entropy(1.0, true), &h), vec![1, s]);
    }
}

#[test]
fn empty_sequence_has_no_patches() {
    for inc in [false, true] {
        let p = Patcher::new(entropy(1.0, inc)).unwrap();
        assert_eq!(p.patch(&[], Some(&[])), Ok(PatchBoundaries::default()));
        for m in [
            PatchingMode::Space,
            PatchingMode::Static,
            PatchingMode::Byte,
            PatchingMode::Bpe,
        ] {
            assert!(mode(m, inc).patch(&[], None).unwrap().is_empty());
        }
        let pred = mode(PatchingMode::BpePredicted, inc);
        assert!(pred.patch_predicted(&[], &[]).unwrap().is_empty());
        let topk = PatcherConfig::default()
            .with_threshold(None)
            .with_patch_size(2.0);
        assert!(Patcher::new(topk)
            .unwrap()
            .patch(&[], Some(&[]))
            .unwrap()
            .is_empty());
    }
    let p = Patcher::default();
    assert_eq!(
        p.patch_batch(&[&[], &[1, 5]], Some(&[&[], &[0.0, 0.0]])),
        Ok(vec![vec![0, 0], vec![1, 1]])
    );
}

#[test]
fn last_entropy_exceeding_differs_from_hf() {
    // HF would give [1, 1, 3, 3, 2, 0]; the reference never emits a zero-length patch.
    let mut h = H;
    h[9] = 1.9;
    assert_eq!(lengths(entropy(1.0, false), &h), vec![1, 1, 3, 3, 2]);
    assert_eq!(lengths(entropy(1.0, true), &h), vec![1, 1, 3, 3, 2, 1]);
}

#[test]
fn default_threshold_is_compared_in_f32() {
    let t = DEFAULT_THRESHOLD;
    let above = f32::from_bits(t.to_bits() + 1);
    let c = PatcherConfig::default().with_include_next_token(true);
    assert_eq!(lengths(c.clone(), &[0.0, t, 0.0]), vec![1, 3]);
    assert_eq!(lengths(c, &[0.0, above, 0.0]), vec![1, 1, 2]);
}

// ---- top-k -----------------------------------------------------------------------------------

fn top_k(patch_size: f32, include_next_token: bool) -> Patcher {
    Patcher::new(
        PatcherConfig::default()
            .with_threshold(None)
            .with_patch_size(patch_size)
            .with_include_next_token(include_next_token),
    )
    .unwrap()
}

#[test]
fn top_k_worked_example() {
    // S // 2 - 2 = 3 largest of H[1..]: 3.0 (p 4), 2.0 (p 1), 1.5 (p 7) → starts 2, 5, 8.
    let b = top_k(2.0, false).patch(&bos_tokens(10), Some(&H)).unwrap();
    assert_eq!(b.starts(), &[0, 1, 2, 5, 8]);
    assert_eq!(b.lengths(), &[1, 1, 3, 3, 2]);
    let b = top_k(2.0, true).patch(&bos_tokens(10), Some(&H)).unwrap();
    assert_eq!(b.lengths(), &[1, 1, 3, 3, 3]);
    // S // 5 - 2 = 0: only the forced starts.
    let b = top_k(5.0, false).patch(&bos_tokens(10), Some(&H)).unwrap();
    assert_eq!(b.lengths(), &[1, 9]);
    // S // 3 - 2 = 1
    let b = top_k(3.0, false).patch(&bos_tokens(10), Some(&H)).unwrap();
    assert_eq!(b.lengths(), &[1, 4, 5]);
}

#[test]
fn top_k_ignores_include_next_token_when_choosing() {
    // The largest entropy is the last one: it names a start at t = S, which without the next
    // token is a zero-length patch that the reference trims.
    // S // 2 - 2 = 1 start.
    let h = [0.0, 0.5, 0.2, 0.1, 0.3, 9.0];
    let b = top_k(2.0, false).patch(&bos_tokens(6), Some(&h)).unwrap();
    assert_eq!(b.starts(), &[0, 1]);
    assert_eq!(b.lengths(), &[1, 5]);
    let b = top_k(2.0, true).patch(&bos_tokens(6), Some(&h)).unwrap();
    assert_eq!(b.starts(), &[0, 1, 6]);
    assert_eq!(b.lengths(), &[1, 5, 1]);
}

#[test]
fn top_k_too_short_is_an_error() {
    let e = top_k(4.0, false).patch(&bos_tokens(7), Some(&[0.0; 7]));
    assert_eq!(
        e,
        Err(Error::TooShortForTopK {
            len: 7,
            patch_size: 4
        })
    );
    assert!(top_k(4.0, false)
        .patch(&bos_tokens(8), Some(&[0.0; 8]))
        .is_ok());
    assert_eq!(
        Patcher::new(PatcherConfig::default().with_threshold(None)),
        Err(Error::NonIntegerPatchSize(4.5))
    );
}

// ---- §5.4 other modes ------------------------------------------------------------------------

#[test]
fn byte_mode() {
    let t = bos_tokens(7);
    assert_eq!(
        mode(PatchingMode::Byte, false)
            .patch(&t, None)
            .unwrap()
            .lengths(),
        &[1; 7]
    );
    assert_eq!(
        mode(PatchingMode::Byte, true)
            .patch(&t, None)
            .unwrap()
            .lengths(),
        &[1; 8]
    );
}

#[test]
fn static_mode() {
    let t = bos_tokens(10);
    let b = mode(PatchingMode::Static, false).patch(&t, None).unwrap();
    assert_eq!(b.lengths(), &[4, 4, 2]);
    assert_eq!(b.starts(), &[0, 4, 8]);
    let b = mode(PatchingMode::Static, true).patch(&t, None).unwrap();
    assert_eq!(b.lengths(), &[4, 4, 3]);
    let b = mode(PatchingMode::Static, true)
        .patch(&bos_tokens(7), None)
        .unwrap();
    assert_eq!(b.lengths(), &[4, 4]);
    assert_eq!(
        Patcher::new(PatcherConfig::new(PatchingMode::Static)),
        Err(Error::NonIntegerPatchSize(4.5))
    );
}

#[test]
fn space_mode_worked_example() {
    let t = text_tokens("Hi there, you!");
    assert_eq!(t.len(), 15);
    let b = mode(PatchingMode::Space, false).patch(&t, None).unwrap();
    assert_eq!(b.starts(), &[0, 1, 4, 10]);
    assert_eq!(b.lengths(), &[1, 3, 6, 5]);
    let pieces: Vec<String> = b
        .iter()
        .skip(1)
        .map(|r| t[r].iter().map(|&id| char::from((id - 4) as u8)).collect())
        .collect();
    assert_eq!(pieces, ["Hi ", "there,", " you!"]);
    // With the next token, the reference's start at 15 begins the phantom token's patch.
    let b = mode(PatchingMode::Space, true).patch(&t, None).unwrap();
    assert_eq!(b.starts(), &[0, 1, 4, 10, 15]);
    assert_eq!(b.lengths(), &[1, 3, 6, 5, 1]);
}

#[test]
fn space_mode_specials_and_utf8() {
    // BOS "a, b" EOS: EOS always ends its patch, even right after a space-like byte.
    let mut t = text_tokens("a, b");
    t.push(2);
    let b = mode(PatchingMode::Space, true).patch(&t, None).unwrap();
    // marks: ',' (first of run ", ") and EOS
    assert_eq!(b.starts(), &[0, 1, 3, 6]);
    assert_eq!(b.lengths(), &[1, 2, 3, 1]);
    // "aé b": the UTF-8 lead byte 0xC3 is marked and ends its patch; 0xA9 is not.
    let t = text_tokens("aé b");
    let b = mode(PatchingMode::Space, false).patch(&t, None).unwrap();
    assert_eq!(b.starts(), &[0, 1, 3, 5]);
    assert_eq!(b.lengths(), &[1, 2, 2, 1]);
}

#[test]
fn space_mode_batch() {
    let a = text_tokens("Hi there, you!");
    let b = text_tokens("Hi, all friend");
    let c = text_tokens("Hi, allfriends");
    assert_eq!((a.len(), b.len(), c.len()), (15, 15, 15));
    let p = mode(PatchingMode::Space, true);
    let out = p.patch_batch(&[&a, &b, &c], None).unwrap();
    assert_eq!(
        out,
        vec![
            vec![1, 3, 6, 5, 1],
            vec![1, 3, 5, 7, 0],
            vec![1, 3, 12, 0, 0]
        ]
    );
    // Where the reference's batch fails its assertions (false, different patch counts), rows
    // are still patched on their own.
    let p = mode(PatchingMode::Space, false);
    let out = p.patch_batch(&[&a, &b, &c], None).unwrap();
    assert_eq!(
        out,
        vec![vec![1, 3, 6, 5], vec![1, 3, 5, 6], vec![1, 3, 11, 0]]
    );
}

#[test]
fn bpe_mode_worked_example() {
    let t = [1, 3, 10, 11, 3, 12, 13, 14, 3, 15];
    let b = mode(PatchingMode::Bpe, false).patch(&t, None).unwrap();
    assert_eq!(b.starts(), &[0, 1, 2, 5, 9]);
    assert_eq!(b.lengths(), &[1, 1, 3, 4, 1]);
    let b = mode(PatchingMode::Bpe, true).patch(&t, None).unwrap();
    assert_eq!(b.lengths(), &[1, 1, 3, 4, 2]);
    // A delimiter in the last position does not start a patch, with or without the next token.
    let t = [1, 3, 10, 3];
    assert_eq!(
        mode(PatchingMode::Bpe, true)
            .patch(&t, None)
            .unwrap()
            .lengths(),
        &[1, 1, 3]
    );
    assert_eq!(
        mode(PatchingMode::Bpe, false)
            .patch(&t, None)
            .unwrap()
            .lengths(),
        &[1, 1, 2]
    );
}

#[test]
fn bpe_batch_rows_do_not_depend_on_each_other() {
    // The reference pads bpe start ids with S; with the next token S is a real start, so in its
    // batch the second row would read [1, 2, 1] instead of its own [1, 3]. Rows stay independent.
    let a = [1, 3, 10];
    let b = [1, 10, 11];
    let p = mode(PatchingMode::Bpe, true);
    assert_eq!(p.patch(&b, None).unwrap().lengths(), &[1, 3]);
    let out = p.patch_batch(&[&a, &b], None).unwrap();
    assert_eq!(out, vec![vec![1, 1, 2], vec![1, 3, 0]]);
}

#[test]
fn bpe_predicted_mode() {
    let t = bos_tokens(6);
    // predicted[p] == 3 at p = 2 and p = 5 (the last position).
    let pred = [3, 0, 3, 7, 0, 3];
    let b = mode(PatchingMode::BpePredicted, false)
        .patch_predicted(&t, &pred)
        .unwrap();
    assert_eq!(b.starts(), &[0, 1, 3]);
    assert_eq!(b.lengths(), &[1, 2, 3]);
    let b = mode(PatchingMode::BpePredicted, true)
        .patch_predicted(&t, &pred)
        .unwrap();
    assert_eq!(b.starts(), &[0, 1, 3, 6]);
    assert_eq!(b.lengths(), &[1, 2, 3, 1]);
    // S = 1 and S = 2.
    let p = mode(PatchingMode::BpePredicted, true);
    assert_eq!(p.patch_predicted(&[1], &[3]).unwrap().lengths(), &[1, 1]);
    assert_eq!(
        p.patch_predicted(&[1, 5], &[3, 3]).unwrap().lengths(),
        &[1, 1, 1]
    );
    let p = mode(PatchingMode::BpePredicted, false);
    assert_eq!(
        p.patch_predicted(&[1, 5], &[3, 3]).unwrap().lengths(),
        &[1, 1]
    );
    let out = p
        .patch_batch_predicted(&[&t, &t[..2]], &[&pred, &pred[..2]])
        .unwrap();
    assert_eq!(out, vec![vec![1, 2, 3], vec![1, 1, 0]]);
}

#[test]
fn mode_short_sequences() {
    for inc in [false, true] {
        let expect_1: &[usize] = if inc { &[1, 1] } else { &[1] };
        for m in [PatchingMode::Space, PatchingMode::Bpe, PatchingMode::Byte] {
            assert_eq!(
                mode(m, inc).patch(&[1], None).unwrap().lengths(),
                expect_1,
                "{m}"
            );
        }
        let b = mode(PatchingMode::Static, inc).patch(&[1], None).unwrap();
        assert_eq!(b.lengths(), &[1 + usize::from(inc)]);
    }
}
