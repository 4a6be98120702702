//! Writing one document's sidecar, as `blt ingest` does for every document it writes on its own:
//! create, one document, finish. A 4 KB text document cut by the built-in model into ~2-byte
//! patches has ~2,000 leaves; the two journals are compared on the same document.
//!
//! `cargo bench -p blt-sidecar --bench write`

use std::hint::black_box;

use blt_sidecar::{Branch, HypergraphSidecar, Journal, Leaf, SidecarDocument, Trunk};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn document(len: u64, mean_patch: u64) -> SidecarDocument {
    let text: Vec<u8> = (0..len).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let mut branch = Branch {
        label: "text".into(),
        modality: "text".into(),
        byte_range: 0..len,
        source_id: None,
        metadata: serde_json::json!({}),
        leaves: Vec::new(),
    };
    let mut at = 0;
    let mut k = 0u64;
    while at < len {
        let end = (at + 1 + k % (2 * mean_patch - 1)).min(len);
        let h = (k % 13) as f32 / 4.0;
        branch.leaves.push(Leaf {
            byte_range: at..end,
            token_range: at + 1..end + 1,
            mean_entropy: h,
            max_entropy: h + 0.5,
            prominence: 1.0 + h / 10.0,
            coherence: 1.0 / (h + 1.0),
            metadata: serde_json::json!({}),
        });
        at = end;
        k += 1;
    }
    SidecarDocument {
        trunk: Trunk::from_bytes("doc", &text),
        branches: vec![branch],
    }
}

fn write(c: &mut Criterion) {
    let doc = document(4096, 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("sidecar/one-document");
    group.throughput(Throughput::Elements(doc.branches[0].leaves.len() as u64));
    for (name, journal) in [
        ("write-ahead", Journal::WriteAhead),
        ("in-memory", Journal::InMemory),
    ] {
        let path = dir.path().join(format!("{name}.sqlite"));
        group.bench_function(name, |b| {
            b.iter(|| {
                let _ = std::fs::remove_file(&path);
                let mut sidecar = HypergraphSidecar::create_with(&path, journal).expect("create");
                sidecar.write_document(black_box(&doc)).expect("write");
                sidecar.finish().expect("finish");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
