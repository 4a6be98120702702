//! Evaluation and threshold calibration on the committed tiny model: bits per byte against a hand
//! computation from the logits (ours and the reference's), calibration's accuracy, monotonicity
//! and errors, and writing the threshold into a copy of the checkpoint.

use std::path::{Path, PathBuf};

use blt_model::backend::Cpu;
use blt_model::{Checkpoint, EntropyEstimator, EstimateOptions};
use blt_patcher::{PatcherConfig, DEFAULT_THRESHOLD};
use blt_pipeline::{
    calibrate_entropies, calibrate_threshold, evaluate, mean_patch_length, write_threshold, Error,
};
use blt_tokenizer::BltTokenizer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../blt-model/tests/fixtures")
}

fn estimator(dir: &Path) -> EntropyEstimator<Cpu> {
    let checkpoint = Checkpoint::open(dir).unwrap();
    let device = Default::default();
    let model = checkpoint.load::<Cpu>(&device, None).unwrap();
    EntropyEstimator::new(model, checkpoint.config.clone(), device)
}

/// One case of the reference's outputs: ids, logits `[S, 260]`, entropies.
struct Case {
    ids: Vec<u32>,
    logits: Vec<f32>,
    entropies: Vec<f32>,
}

fn reference(case: &str) -> Case {
    let bytes = std::fs::read(fixtures().join("expected/tiny_f32.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(&format!("{case}.{name}"))
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let ids = st
        .tensor(&format!("{case}.ids"))
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    Case {
        ids,
        logits: f32s("logits"),
        entropies: f32s("entropies"),
    }
}

/// Σ_p −log_softmax(logits[p])[ids[p+1]] over every p < S−1, in f64, written out longhand.
fn hand_nats(ids: &[u32], logits: &[f32]) -> f64 {
    let mut total = 0.0;
    for p in 0..ids.len() - 1 {
        let row: Vec<f64> = logits[p * 260..(p + 1) * 260]
            .iter()
            .map(|&x| x as f64)
            .collect();
        let z: f64 = row.iter().map(|x| x.exp()).sum();
        total += z.ln() - row[ids[p + 1] as usize];
    }
    total
}

fn bytes_of(ids: &[u32]) -> Vec<u8> {
    BltTokenizer::new().decode(ids).unwrap()
}

fn corpus() -> Vec<Vec<u8>> {
    vec![
        b"The quick brown fox jumps over the lazy dog. ".repeat(9),
        "Grüße aus Köln — ünïcödé, 東京, emoji 🙂🙂 and some more text to patch.".into(),
        b"a".to_vec(),
        (0u8..=255).collect(),
        b"short".to_vec(),
    ]
}

#[test]
fn bits_per_byte_is_the_reference_cross_entropy() {
    let est = estimator(&fixtures().join("tiny"));
    let patcher = PatcherConfig::default().build().unwrap();
    // `short` fits one window; `window` (700 tokens) crosses the 256-token windows twice.
    for name in ["short", "utf8", "window"] {
        let case = reference(name);
        let bytes = bytes_of(&case.ids);
        assert_eq!(BltTokenizer::new().encode(&bytes), case.ids);
        let report = evaluate(
            &est,
            std::slice::from_ref(&bytes),
            BltTokenizer::new(),
            &patcher,
        )
        .unwrap();

        // Every byte and the EOS are scored; bits/byte divides by the bytes only.
        assert_eq!(report.bytes, bytes.len());
        assert_eq!(report.tokens, bytes.len() + 2);
        assert_eq!(report.tokens_scored, bytes.len() + 1);
        let want = hand_nats(&case.ids, &case.logits);
        let want_bpb = want / std::f64::consts::LN_2 / bytes.len() as f64;
        assert!(
            (report.bits_per_byte - want_bpb).abs() < 1e-3,
            "{name}: {} vs reference {want_bpb}",
            report.bits_per_byte
        );
        assert!((report.nats_per_token - want / (bytes.len() + 1) as f64).abs() < 1e-3);

        // Exactly our own logits, computed independently of the evaluator.
        let ours = est
            .estimate(
                &case.ids,
                EstimateOptions {
                    logits: true,
                    ..EstimateOptions::default()
                },
            )
            .unwrap();
        let own = hand_nats(&case.ids, ours.logits.as_ref().unwrap());
        assert!(
            (report.total_nats - own).abs() < 1e-9 * own,
            "{name}: {} vs {own}",
            report.total_nats
        );

        // Mean entropy is over the scored predictions: every position but the last.
        let s = case.ids.len();
        let want_entropy = case.entropies[..s - 1]
            .iter()
            .map(|&e| e as f64)
            .sum::<f64>()
            / (s - 1) as f64;
        assert!((report.mean_entropy - want_entropy).abs() < 1e-4);

        // Patch statistics are the patcher's on these entropies.
        let patches = patcher.patch(&case.ids, Some(&ours.entropies)).unwrap();
        assert_eq!(report.patches, patches.len());
        assert_eq!(report.mean_patch_length, s as f64 / patches.len() as f64);
        assert_eq!(report.threshold, Some(DEFAULT_THRESHOLD));
        assert!(
            (report.patches_per_kb - patches.len() as f64 * 1000.0 / bytes.len() as f64).abs()
                < 1e-9
        );
    }
}

#[test]
fn a_corpus_is_the_sum_of_its_documents() {
    let est = estimator(&fixtures().join("tiny"));
    let patcher = PatcherConfig::default().build().unwrap();
    let docs = corpus();
    let all = evaluate(&est, &docs, BltTokenizer::new(), &patcher).unwrap();
    let mut nats = 0.0;
    let mut patches = 0;
    let mut lengths = Vec::new();
    for doc in &docs {
        let one = evaluate(
            &est,
            std::slice::from_ref(doc),
            BltTokenizer::new(),
            &patcher,
        )
        .unwrap();
        nats += one.total_nats;
        patches += one.patches;
        let ids = BltTokenizer::new().encode(doc);
        let h = est.estimate(&ids, EstimateOptions::default()).unwrap();
        lengths.extend_from_slice(patcher.patch(&ids, Some(&h.entropies)).unwrap().lengths());
    }
    assert!((all.total_nats - nats).abs() < 1e-9 * nats);
    assert_eq!(all.patches, patches);
    assert_eq!(all.documents, docs.len());
    lengths.sort_unstable();
    let mid = lengths.len() / 2;
    let median = if lengths.len() % 2 == 1 {
        lengths[mid] as f64
    } else {
        (lengths[mid - 1] + lengths[mid]) as f64 / 2.0
    };
    assert_eq!(all.median_patch_length, median);
    let json = serde_json::to_value(&all).unwrap();
    assert!(json["bits_per_byte"].as_f64().unwrap() > 0.0);

    assert!(matches!(
        evaluate(&est, &[], BltTokenizer::new(), &patcher),
        Err(Error::EmptyCorpus)
    ));
    assert!(matches!(
        evaluate(&est, &[Vec::new()], BltTokenizer::new(), &patcher),
        Err(Error::EmptyCorpus)
    ));
}

#[test]
fn calibration_reaches_the_target_and_is_monotone() {
    let est = estimator(&fixtures().join("tiny"));
    let docs = corpus();
    let base = PatcherConfig::default();
    let ids: Vec<Vec<u32>> = docs.iter().map(|d| BltTokenizer::new().encode(d)).collect();
    let entropies: Vec<Vec<f32>> = ids
        .iter()
        .map(|d| {
            est.estimate(d, EstimateOptions::default())
                .unwrap()
                .entropies
        })
        .collect();

    // The mean patch length never falls as the threshold rises.
    let mut previous = 0.0;
    for step in 0..=80 {
        let theta = step as f32 * 0.1 - 1.0;
        let patcher = base.clone().with_threshold(Some(theta)).build().unwrap();
        let (mean, _) = mean_patch_length(&ids, &entropies, &patcher).unwrap();
        assert!(mean >= previous, "θ = {theta}: {mean} < {previous}");
        previous = mean;
    }

    let mut last_threshold = f32::NEG_INFINITY;
    for target in [1.5, 2.5, 4.5] {
        let c = calibrate_threshold(&est, &docs, BltTokenizer::new(), target, &base).unwrap();
        assert!(
            (c.mean_patch_length - target).abs() < 0.05,
            "target {target}: got {} at θ {}",
            c.mean_patch_length,
            c.threshold
        );
        assert!(
            c.threshold > last_threshold,
            "thresholds rise with the target"
        );
        last_threshold = c.threshold;
        // The same search on the same entropies, and the threshold really gives that mean.
        assert_eq!(
            calibrate_entropies(&ids, &entropies, target, &base).unwrap(),
            c
        );
        let patcher = base
            .clone()
            .with_threshold(Some(c.threshold))
            .build()
            .unwrap();
        assert_eq!(
            mean_patch_length(&ids, &entropies, &patcher).unwrap().0,
            c.mean_patch_length
        );
        assert!(c.iterations < 40, "{} patcher runs", c.iterations);
    }

    for target in [0.5, 1e6] {
        match calibrate_threshold(&est, &docs, BltTokenizer::new(), target, &base) {
            Err(Error::UnreachableTarget { min, max, .. }) => {
                assert_eq!(min, 1.0);
                assert!(max > 4.5);
            }
            other => panic!("target {target}: {other:?}"),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn write_threshold_round_trips_and_keeps_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    copy_dir(&fixtures().join("tiny"), &dir);
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();

    let checkpoint = Checkpoint::open(&dir).unwrap();
    assert_eq!(checkpoint.config.patching_threshold, None);
    write_threshold(&checkpoint, 2.1).unwrap();
    let reopened = Checkpoint::open(&dir).unwrap();
    assert_eq!(reopened.config.patching_threshold, Some(2.1));
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    // Nested under "args", every other key (Meta's unknown ones included) unchanged.
    let mut expected = before.clone();
    expected["args"]["patching_threshold"] = serde_json::json!(2.1);
    assert_eq!(after, expected);
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("tmp")));

    // Written again: replaced, not duplicated; an odd f32 reads back exactly.
    let odd = 1.234_567_9_f32.next_up();
    write_threshold(&reopened, odd).unwrap();
    assert_eq!(
        Checkpoint::open(&dir).unwrap().config.patching_threshold,
        Some(odd)
    );

    // A flat config stays flat.
    let flat = tmp.path().join("flat");
    copy_dir(&fixtures().join("tiny"), &flat);
    let mut args = before["args"].clone();
    args["a_key_we_do_not_know"] = serde_json::json!({"kept": [1, 2]});
    std::fs::write(flat.join("config.json"), args.to_string()).unwrap();
    write_threshold(&Checkpoint::open(&flat).unwrap(), 0.75).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(flat.join("config.json")).unwrap()).unwrap();
    assert!(v.get("args").is_none());
    assert_eq!(v["patching_threshold"], serde_json::json!(0.75));
    assert_eq!(
        v["a_key_we_do_not_know"],
        serde_json::json!({"kept": [1, 2]})
    );
    assert_eq!(
        Checkpoint::open(&flat).unwrap().config.patching_threshold,
        Some(0.75)
    );

    assert!(matches!(
        write_threshold(&Checkpoint::open(&flat).unwrap(), f32::NAN),
        Err(Error::ThresholdNotWritable { .. })
    ));
}

#[test]
fn meta_and_hf_layouts_refuse_a_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, config) in [("micro-meta", "params.json"), ("micro-hf", "config.json")] {
        let dir = tmp.path().join(name);
        copy_dir(&fixtures().join(name), &dir);
        let before = std::fs::read(dir.join(config)).unwrap();
        let checkpoint = Checkpoint::open(&dir).unwrap();
        match write_threshold(&checkpoint, 2.0) {
            Err(Error::ThresholdNotWritable { path, reason }) => {
                assert_eq!(path, dir.join(config));
                assert!(reason.contains("facebook/blt-entropy layout"), "{reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(std::fs::read(dir.join(config)).unwrap(), before);
    }
}

#[test]
fn documents_longer_than_the_logit_budget_score_the_same() {
    // 20,000 bytes: the evaluator holds the logits of at most 16,384 tokens at once and cuts
    // this document at a window boundary; the result equals one pass over the whole document.
    let est = estimator(&fixtures().join("tiny"));
    let doc: Vec<u8> = (0..20_000u32)
        .map(|i| b"abcdefgh ijklmnop\n"[(i.wrapping_mul(2_654_435_761) >> 28) as usize])
        .collect();
    let ids = BltTokenizer::new().encode(&doc);
    let whole = est
        .estimate(
            &ids,
            EstimateOptions {
                logits: true,
                ..EstimateOptions::default()
            },
        )
        .unwrap();
    let want = hand_nats(&ids, whole.logits.as_ref().unwrap());
    let patcher = PatcherConfig::default().build().unwrap();
    let report = evaluate(&est, &[doc], BltTokenizer::new(), &patcher).unwrap();
    assert!((report.total_nats - want).abs() < 1e-9 * want);
    let patches = patcher.patch(&ids, Some(&whole.entropies)).unwrap();
    assert_eq!(report.patches, patches.len());
}
