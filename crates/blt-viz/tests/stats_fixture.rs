//! `CorpusStats` on a small output folder built here with hand-chosen values: one document in
//! safetensors mode (with its sidecar), one in a WebDataset shard, one corrupt file and a
//! `run.json` recording a failure. Every expected number below is computed by hand.

use std::collections::BTreeMap;
use std::path::Path;

use blt_sidecar::{Branch, HypergraphSidecar, SidecarDocument, Trunk};
use blt_viz::{CorpusStats, StatsOptions};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// A `blt-patches` file: BOS + bytes + EOS, one segment.
fn document(key: &str, bytes: &[u8], entropies: &[f32], lengths: &[i32]) -> Vec<u8> {
    let mut ids = vec![1i32];
    ids.extend(bytes.iter().map(|&b| b as i32 + 4));
    ids.push(2);
    assert_eq!(ids.len(), entropies.len());
    let s = ids.len() as i64;
    let prominence = vec![1.0f32; ids.len()];
    let starts: Vec<i32> = lengths
        .iter()
        .scan(0, |acc, &l| {
            let s = *acc;
            *acc += l;
            Some(s)
        })
        .collect();
    let data: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("bytes", Dtype::U8, vec![bytes.len()], bytes.to_vec()),
        (
            "token_ids",
            Dtype::I32,
            vec![ids.len()],
            le(&ids, i32::to_le_bytes),
        ),
        (
            "entropies",
            Dtype::F32,
            vec![ids.len()],
            le(entropies, f32::to_le_bytes),
        ),
        (
            "prominence",
            Dtype::F32,
            vec![ids.len()],
            le(&prominence, f32::to_le_bytes),
        ),
        (
            "coherence",
            Dtype::F32,
            vec![ids.len()],
            le(&prominence, f32::to_le_bytes),
        ),
        (
            "patch_starts",
            Dtype::I32,
            vec![starts.len()],
            le(&starts, i32::to_le_bytes),
        ),
        (
            "patch_lengths",
            Dtype::I32,
            vec![lengths.len()],
            le(lengths, i32::to_le_bytes),
        ),
        (
            "segments",
            Dtype::I64,
            vec![1, 4],
            le(&[0, bytes.len() as i64, 0, s], i64::to_le_bytes),
        ),
    ];
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, d, shape, b)| {
            (
                n.to_string(),
                TensorView::new(*d, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta: std::collections::HashMap<String, String> = [
        ("format", "blt-patches"),
        ("format_version", "1"),
        ("document_key", key),
        ("patch_mode", "entropy"),
        ("threshold", "1.3354421"),
        ("monotonic", "false"),
        ("embeddings", "none"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn sidecar(path: &Path, key: &str, bytes: &[u8], modality: &str) {
    let mut s = HypergraphSidecar::create(path).unwrap();
    s.write_document(&SidecarDocument {
        trunk: Trunk::from_bytes(key, bytes),
        branches: vec![Branch {
            label: "document".into(),
            modality: modality.into(),
            byte_range: 0..bytes.len() as u64,
            source_id: None,
            metadata: serde_json::json!({}),
            leaves: vec![],
        }],
    })
    .unwrap();
    s.finish().unwrap();
}

fn build_run(dir: &Path) {
    // Document a: "abc" → 5 positions.
    std::fs::write(
        dir.join("a.safetensors"),
        document("a", b"abc", &[0.5, 2.0, 1.0, 3.0, 0.25], &[1, 1, 3]),
    )
    .unwrap();
    sidecar(&dir.join("a.hypergraph.sqlite"), "a", b"abc", "text");
    // Document b: two invalid UTF-8 bytes → 4 positions, in a shard.
    let b = document("b", &[0xff, 0xfe], &[4.0, 1.5, 0.75, 2.5], &[1, 1, 2]);
    let json = serde_json::to_vec(&serde_json::json!({
        "key": "b", "source_path": null, "source_bytes": 2, "num_tokens": 4, "num_patches": 3,
        "segments": [{"modality": "binary", "label": "document", "byte_range": [0, 2],
                      "source_id": null, "metadata": {}}],
        "metadata": {}
    }))
    .unwrap();
    let mut tar = tar::Builder::new(std::fs::File::create(dir.join("shard-000000.tar")).unwrap());
    for (name, data) in [("b.json", &json), ("b.safetensors", &b)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    tar.finish().unwrap();
    // A corrupt document and a run.json with one failure.
    std::fs::write(dir.join("broken.safetensors"), b"not a safetensors file").unwrap();
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_vec(&serde_json::json!({
            "stats": {"documents": 3, "written": 2, "skipped": 0, "failed": 1,
                      "failures": [{"key": "c", "path": "c.txt", "stage": "read", "reason": "gone"}]},
            "config": {"patching": {"threshold": "1.3354421"}},
            "model": {"id": "tiny"}
        }))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn reproduces_hand_computed_statistics() {
    let dir = tempfile::tempdir().unwrap();
    build_run(dir.path());
    let stats = CorpusStats::collect(
        dir.path(),
        &StatsOptions {
            bins: 3,
            batch_stats: true,
        },
    )
    .unwrap();

    // All 9 entropies sorted: 0.25 0.5 0.75 1.0 1.5 2.0 2.5 3.0 4.0; index = round(8·p).
    let h = &stats.entropy_histogram;
    assert_eq!(h.statistics.total_tokens, 9);
    assert_eq!(h.statistics.min, 0.25);
    assert_eq!(h.statistics.max, 4.0);
    assert!((h.statistics.mean - 15.5 / 9.0).abs() < 1e-12);
    let var = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
        .iter()
        .map(|v: &f64| (v - 15.5 / 9.0).powi(2))
        .sum::<f64>()
        / 9.0;
    assert!((h.statistics.std - var.sqrt()).abs() < 1e-12);
    assert_eq!(h.percentiles.p25, 0.75); // index 2
    assert_eq!(h.percentiles.p50, 1.5); // index 4
    assert_eq!(h.percentiles.p75, 2.5); // index 6
    assert_eq!(h.percentiles.p90, 3.0); // round(7.2) = 7
    assert_eq!(h.percentiles.p95, 4.0); // round(7.6) = 8
    assert_eq!(h.percentiles.p99, 4.0); // round(7.92) = 8
                                        // 3 bins of width (4 − 0.25)/3 = 1.25: [0.25, 1.5) [1.5, 2.75) [2.75, 4.0].
    assert_eq!(h.histogram.bin_width, 1.25);
    assert_eq!(h.histogram.bin_edges, vec![0.25, 1.5, 2.75, 4.0]);
    assert_eq!(h.histogram.counts, vec![4, 3, 2]);

    // Patch lengths 1 1 3 | 1 1 2.
    assert_eq!(stats.patches, 6);
    assert_eq!(
        stats.patch_lengths.counts,
        BTreeMap::from([(1, 4), (2, 1), (3, 1)])
    );
    assert_eq!(stats.patch_lengths.mean, 1.5);
    assert_eq!(stats.patch_lengths.percentiles["p50"], 1.0); // sorted 1 1 1 1 2 3, index 3
    assert_eq!(stats.patch_lengths.percentiles["p90"], 3.0); // round(4.5) = 5

    // Modalities from the sidecar (a) and the sample JSON (b).
    assert_eq!(
        stats.bytes_per_modality,
        BTreeMap::from([("binary".to_string(), 2), ("text".to_string(), 3)])
    );
    let buckets = stats.batch_stats.as_ref().unwrap();
    assert_eq!(buckets[0].label, "<512 B");
    assert_eq!(buckets[0].documents, 2);
    assert_eq!(buckets[0].bytes, 5);

    // Errors: the corrupt file, and the failure run.json records.
    assert_eq!(stats.documents, 2);
    assert_eq!(stats.errors.unreadable.len(), 1);
    assert!(stats.errors.unreadable[0]
        .path
        .ends_with("broken.safetensors"));
    assert_eq!(stats.errors.ingest_failed, 1);
    assert_eq!(stats.errors.ingest_failures[0]["key"], "c");

    // The JSON carries the predecessor's histogram fields, and the page its plots.
    let v = serde_json::to_value(&stats).unwrap();
    assert_eq!(v["entropy_histogram"]["histogram"]["num_bins"], 3);
    assert_eq!(v["patch_lengths"]["counts"]["1"], 4);
    let html = stats.to_html();
    assert_eq!(html.matches("class=\"bar\"").count(), 3 + 3 + 2 + 5);
    assert!(html.contains("broken.safetensors"));
}

#[test]
fn an_empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(CorpusStats::collect(dir.path(), &StatsOptions::default()).is_err());
}
