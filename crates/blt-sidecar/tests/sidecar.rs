//! The sidecar through its public API and through plain SQL: round trips, queries, the JSON
//! export, determinism, and the errors a user can meet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use blt_sidecar::{
    content_hash, Branch, Error, HypergraphSidecar, Journal, Leaf, SidecarDocument, Trunk,
    SCHEMA_SQL,
};
use rusqlite::Connection;
use serde_json::json;

// ---- fixtures --------------------------------------------------------------------------------

fn leaf(start: u64, end: u64, token_offset: u64, h: f32) -> Leaf {
    Leaf {
        byte_range: start..end,
        token_range: start + token_offset..end + token_offset,
        mean_entropy: h,
        max_entropy: h * 1.5 + 0.1,
        prominence: 0.25 + h / 7.0,
        coherence: 1.0 / (h + 3.0),
        metadata: json!({}),
    }
}

fn branch(
    label: &str,
    modality: &str,
    range: std::ops::Range<u64>,
    source: Option<&str>,
) -> Branch {
    Branch {
        label: label.into(),
        modality: modality.into(),
        byte_range: range,
        source_id: source.map(Into::into),
        metadata: json!({}),
        leaves: Vec::new(),
    }
}

/// Four documents: unicode keys and labels, nested metadata, awkward floats, two branches with
/// one source id (and three with another), a branch without leaves, a document without branches.
fn documents() -> Vec<SidecarDocument> {
    let text = "Grüße, 世界! fn main() {} <img>".as_bytes().to_vec();
    let mut first = SidecarDocument {
        trunk: Trunk {
            key: "α-doc/ünïcode 🚀".into(),
            source_path: Some("/data/ünï/α.md".into()),
            content_hash: content_hash(&text),
            byte_len: text.len() as u64,
            metadata: json!({
                "origin": {"dataset": "fineweb", "row": 17, "tags": ["a", "b", {"deep": [1, 2.5, null]}]},
                "score": 0.1,
                "tiny": 1e-300,
                "ß": "✓ 🚀",
            }),
        },
        branches: vec![
            branch("Einleitung — 序文", "text", 0..16, Some("page-1")),
            branch("fn main", "code", 16..28, None),
            branch("图像 🖼", "image", 28..text.len() as u64, Some("page-1")),
        ],
    };
    first.branches[0].metadata = json!({"language": "de", "spans": [[0, 6], [7, 16]]});
    first.branches[0].leaves = vec![
        Leaf {
            metadata: json!({"note": "first", "nested": {"x": [true, false]}}),
            ..leaf(0, 3, 1, 0.1)
        },
        leaf(3, 9, 1, 1e-8),
        Leaf {
            mean_entropy: f32::MIN_POSITIVE / 4.0, // subnormal
            max_entropy: f32::MAX,
            ..leaf(9, 16, 1, 0.0)
        },
    ];
    first.branches[1].leaves = vec![leaf(16, 20, 1, 2.7182817), leaf(20, 28, 1, 3.3333333)];
    first.branches[2].leaves = vec![leaf(28, text.len() as u64, 1, 5.55)];

    let mut second = SidecarDocument {
        trunk: Trunk::from_bytes("second", b"0123456789"),
        branches: vec![branch("whole", "text", 0..10, Some("solo"))],
    };
    second.trunk.metadata = json!(null);

    let mut third = SidecarDocument {
        trunk: Trunk::from_bytes("third", &[7u8; 100]),
        branches: vec![
            branch("p1", "text", 0..40, Some("x")),
            branch("p2", "text", 40..70, Some("x")),
            branch("p3", "binary", 70..100, Some("x")),
        ],
    };
    for (b, br) in third.branches.iter_mut().enumerate() {
        let (s, e) = (br.byte_range.start, br.byte_range.end);
        let mut at = s;
        let mut k = 0;
        while at < e {
            let next = (at + 4 + (k % 5)).min(e);
            br.leaves
                .push(leaf(at, next, 1, 0.3 * (b as f32 + 1.0) + k as f32 / 10.0));
            at = next;
            k += 1;
        }
    }
    let fourth = SidecarDocument {
        trunk: Trunk::from_bytes("empty", b""),
        branches: Vec::new(),
    };
    vec![first, second, third, fourth]
}

fn write(path: &Path, docs: &[SidecarDocument]) -> HypergraphSidecar {
    let mut sidecar = HypergraphSidecar::create(path).expect("create");
    for doc in docs {
        sidecar.write_document(doc).expect("write");
    }
    sidecar
}

fn written(dir: &Path, name: &str, docs: &[SidecarDocument]) -> PathBuf {
    let path = dir.join(name);
    write(&path, docs).finish().expect("finish");
    path
}

fn expected_edges(docs: &[SidecarDocument]) -> (usize, usize, usize) {
    let mut contains = 0;
    let mut next = 0;
    let mut same_source = 0;
    for doc in docs {
        contains += usize::from(!doc.branches.is_empty());
        next += doc.branches.len().saturating_sub(1);
        let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
        for b in &doc.branches {
            contains += usize::from(!b.leaves.is_empty());
            next += b.leaves.len().saturating_sub(1);
            if let Some(id) = &b.source_id {
                *sources.entry(id).or_default() += 1;
            }
        }
        same_source += sources.values().filter(|&&n| n >= 2).count();
    }
    (contains, next, same_source)
}

fn bits(doc: &SidecarDocument) -> Vec<[u32; 4]> {
    doc.branches
        .iter()
        .flat_map(|b| &b.leaves)
        .map(|l| {
            [
                l.mean_entropy.to_bits(),
                l.max_entropy.to_bits(),
                l.prominence.to_bits(),
                l.coherence.to_bits(),
            ]
        })
        .collect()
}

// ---- round trips -----------------------------------------------------------------------------

#[test]
fn documents_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.hypergraph.db");
    let docs = documents();
    let sidecar = write(&path, &docs);
    // A writer reads what it has written so far.
    assert_eq!(sidecar.documents().unwrap(), docs);
    sidecar.finish().unwrap();

    let sidecar = HypergraphSidecar::open(&path).unwrap();
    assert!(!sidecar.is_writable());
    let back = sidecar.documents().unwrap();
    assert_eq!(back, docs);
    for (a, b) in back.iter().zip(&docs) {
        assert_eq!(bits(a), bits(b), "f32 fields bit for bit");
    }
    assert_eq!(
        sidecar.document_keys().unwrap(),
        ["α-doc/ünïcode 🚀", "second", "third", "empty"]
    );
    assert_eq!(sidecar.document("third").unwrap(), docs[2]);
    assert_eq!(sidecar.document("α-doc/ünïcode 🚀").unwrap(), docs[0]);
}

#[test]
fn nan_is_stored_as_null_and_reads_back_as_nan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.db");
    let mut doc = SidecarDocument {
        trunk: Trunk::from_bytes("d", b"abcd"),
        branches: vec![branch("b", "text", 0..4, None)],
    };
    doc.branches[0].leaves = vec![Leaf {
        coherence: f32::NAN,
        max_entropy: f32::INFINITY,
        ..leaf(0, 4, 1, 1.0)
    }];
    written(dir.path(), "nan.db", std::slice::from_ref(&doc));

    let db = Connection::open(&path).unwrap();
    let (coherence, max): (Option<f64>, f64) = db
        .query_row(
            "SELECT coherence, max_entropy FROM nodes WHERE kind = 'leaf'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(coherence, None);
    assert_eq!(max, f64::INFINITY);
    drop(db);

    let back = HypergraphSidecar::open(&path).unwrap().documents().unwrap();
    let got = &back[0].branches[0].leaves[0];
    assert!(got.coherence.is_nan());
    assert_eq!(got.max_entropy, f32::INFINITY);
    assert_eq!(got.mean_entropy, 1.0);
}

// ---- plain SQL -------------------------------------------------------------------------------

#[test]
fn plain_sql_sees_the_structure() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents();
    let path = written(dir.path(), "sql.db", &docs);
    let db =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();

    // Leaves by byte range, as the README writes the query.
    let mut stmt = db
        .prepare(
            "SELECT byte_start, byte_end FROM nodes \
             WHERE document = ?1 AND kind = 'leaf' AND byte_start < ?3 AND byte_end > ?2 \
             ORDER BY byte_start",
        )
        .unwrap();
    let hits: Vec<(i64, i64)> = stmt
        .query_map(rusqlite::params!["α-doc/ünïcode 🚀", 5, 17], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(hits, [(3, 9), (9, 16), (16, 20)]);

    // Node counts.
    let count =
        |q: &str| -> usize { db.query_row(q, [], |r| r.get::<_, i64>(0)).unwrap() as usize };
    let branches: usize = docs.iter().map(|d| d.branches.len()).sum();
    let leaves: usize = docs
        .iter()
        .flat_map(|d| &d.branches)
        .map(|b| b.leaves.len())
        .sum();
    assert_eq!(count("SELECT count(*) FROM trunks"), docs.len());
    assert_eq!(count("SELECT count(*) FROM branches"), branches);
    assert_eq!(count("SELECT count(*) FROM leaves"), leaves);

    // Edge counts equal what the structure implies.
    let (contains, next, same_source) = expected_edges(&docs);
    // By hand: contains 4 + 1 + 4 + 0; next (2 + 2 + 1) + 0 + (2 + 7 + 4 + 4); page-1 and x.
    assert_eq!((contains, next, same_source), (9, 22, 2));
    assert_eq!(
        count("SELECT count(*) FROM hyperedges WHERE label = 'contains'"),
        contains
    );
    assert_eq!(
        count("SELECT count(*) FROM hyperedges WHERE label = 'next'"),
        next
    );
    assert_eq!(
        count("SELECT count(*) FROM hyperedges WHERE label = 'same_source'"),
        same_source
    );
    assert_eq!(
        count("SELECT count(*) FROM hyperedges WHERE weight <> 1.0"),
        0
    );
    // Members: contains = parent + children; next = 2; all roles as documented.
    assert_eq!(
        count("SELECT count(*) FROM hyperedge_members m JOIN hyperedges e ON e.id = m.edge WHERE e.label = 'contains'"),
        contains + branches + leaves
    );
    assert_eq!(
        count("SELECT count(*) FROM hyperedge_members m JOIN hyperedges e ON e.id = m.edge WHERE e.label = 'next'"),
        2 * next
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM hyperedge_members m JOIN hyperedges e ON e.id = m.edge \
             WHERE NOT ((e.label = 'contains' AND m.role = CASE m.position WHEN 0 THEN 'parent' ELSE 'child' END) \
                     OR (e.label = 'next' AND m.role = CASE m.position WHEN 0 THEN 'from' ELSE 'to' END) \
                     OR (e.label = 'same_source' AND m.role = 'view'))"
        ),
        0
    );
    // Every contains edge's children have the parent as their `parent`.
    assert_eq!(
        count(
            "SELECT count(*) FROM hyperedges e \
             JOIN hyperedge_members p ON p.edge = e.id AND p.role = 'parent' \
             JOIN hyperedge_members c ON c.edge = e.id AND c.role = 'child' \
             JOIN nodes n ON n.id = c.node \
             WHERE e.label = 'contains' AND n.parent IS NOT p.node"
        ),
        0
    );

    // same_source: the two page-1 views of the first document, and the three x views.
    let mut stmt = db
        .prepare(
            "SELECT e.metadata ->> '$.source_id', group_concat(n.label, '|') \
             FROM hyperedges e JOIN hyperedge_members m ON m.edge = e.id \
             JOIN nodes n ON n.id = m.node WHERE e.label = 'same_source' \
             GROUP BY e.id ORDER BY e.id",
        )
        .unwrap();
    let groups: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        groups,
        [
            ("page-1".to_string(), "Einleitung — 序文|图像 🖼".to_string()),
            ("x".to_string(), "p1|p2|p3".to_string()),
        ]
    );

    // Metadata is JSON text that SQL can reach into.
    let lang: String = db
        .query_row(
            "SELECT json_extract(metadata, '$.language') FROM branches WHERE label = 'Einleitung — 序文'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lang, "de");
    let row: i64 = db
        .query_row(
            "SELECT metadata -> '$.origin' ->> '$.row' FROM trunks WHERE document_index = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(row, 17);

    // Identified as a sidecar in three ways.
    let app: i32 = db
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    let user: i32 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!((app, user), (blt_sidecar::APPLICATION_ID, 1));
    let format: String = db
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(format, blt_sidecar::FORMAT);
}

#[test]
fn readme_schema_is_the_schema_and_its_queries_run() {
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("```sql\n{SCHEMA_SQL}```")),
        "README's schema block differs from src/schema.sql"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut docs = documents();
    docs[0].trunk.key = "doc".into();
    let path = written(dir.path(), "readme.db", &docs);
    let db = Connection::open(&path).unwrap();
    // SQLite's own copy of the schema is the same statements.
    let stored: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE sql IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored as usize, SCHEMA_SQL.matches("CREATE ").count());

    let start = readme.find("## Example queries").unwrap();
    let block = &readme[start..];
    let block = &block[block.find("```sql\n").unwrap() + 7..];
    let block = &block[..block.find("```").unwrap()];
    let mut ran = 0;
    for statement in block.split(";\n").filter(|s| {
        s.lines()
            .any(|l| !l.starts_with("--") && !l.trim().is_empty())
    }) {
        let mut stmt = db
            .prepare(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        let mut rows = stmt.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
        ran += 1;
    }
    assert!(ran >= 10, "ran {ran} example queries");
}

// ---- queries through the API -----------------------------------------------------------------

#[test]
fn leaves_in_range_is_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents();
    let path = written(dir.path(), "range.db", &docs);
    let sidecar = HypergraphSidecar::open(&path).unwrap();
    for doc in &docs {
        let n = doc.trunk.byte_len;
        for (a, b) in [
            (0, n),
            (0, 1),
            (5, 17),
            (39, 41),
            (n, n + 10),
            (3, 3),
            (7, 2),
            (0, u64::MAX),
        ] {
            let mut expected: Vec<Leaf> = doc
                .branches
                .iter()
                .flat_map(|br| br.leaves.clone())
                .filter(|l| l.byte_range.start < b && l.byte_range.end > a)
                .collect();
            expected.sort_by_key(|l| (l.byte_range.start, l.byte_range.end));
            assert_eq!(
                sidecar.leaves_in_range(&doc.trunk.key, a..b).unwrap(),
                expected,
                "{a}..{b}"
            );
        }
    }
    match sidecar.leaves_in_range("nope", 0..10) {
        Err(Error::UnknownDocument { path: p, document }) => {
            assert_eq!((p, document.as_str()), (path.clone(), "nope"));
        }
        other => panic!("expected UnknownDocument, got {other:?}"),
    }
    assert!(matches!(
        sidecar.document("nope"),
        Err(Error::UnknownDocument { .. })
    ));
}

#[test]
fn export_json_has_nodes_and_hyperedges_with_members() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents();
    let path = written(dir.path(), "export.db", &docs);
    let graph = HypergraphSidecar::open(&path)
        .unwrap()
        .export_json()
        .unwrap();

    assert_eq!(graph["meta"]["format"], "blt-hypergraph-sidecar");
    assert_eq!(graph["meta"]["schema_version"], "1");
    let nodes = graph["nodes"].as_array().unwrap();
    let edges = graph["hyperedges"].as_array().unwrap();
    let leaves: usize = docs
        .iter()
        .flat_map(|d| &d.branches)
        .map(|b| b.leaves.len())
        .sum();
    let branches: usize = docs.iter().map(|d| d.branches.len()).sum();
    assert_eq!(nodes.len(), docs.len() + branches + leaves);
    let (contains, next, same_source) = expected_edges(&docs);
    assert_eq!(edges.len(), contains + next + same_source);

    // The first node is the first trunk, in full; metadata is JSON, not text.
    let trunk = &nodes[0];
    assert_eq!(trunk["id"], 1);
    assert_eq!(trunk["kind"], "trunk");
    assert_eq!(trunk["document"], "α-doc/ünïcode 🚀");
    assert_eq!(trunk["content_hash"], docs[0].trunk.content_hash.as_str());
    assert_eq!(trunk["byte_len"], docs[0].trunk.byte_len);
    assert_eq!(trunk["metadata"], docs[0].trunk.metadata);
    assert!(trunk.get("parent").is_none(), "NULL columns are left out");
    // Then its first branch, then that branch's first leaf, with f32s in shortest form.
    assert_eq!(nodes[1]["kind"], "branch");
    assert_eq!(nodes[1]["parent"], 1);
    assert_eq!(nodes[1]["label"], "Einleitung — 序文");
    assert_eq!(nodes[2]["kind"], "leaf");
    assert_eq!(nodes[2]["parent"], 2);
    assert_eq!(nodes[2]["mean_entropy"], json!(0.1));
    assert_eq!(nodes[2]["metadata"]["nested"]["x"], json!([true, false]));

    // Edges: contains trunk → 3 branches first; members reference node ids.
    let first = &edges[0];
    assert_eq!(first["label"], "contains");
    assert_eq!(first["weight"], 1.0);
    assert_eq!(first["document"], "α-doc/ünïcode 🚀");
    assert_eq!(first["trunk"], 1);
    let members = first["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    assert_eq!(members[0], json!({"node": 1, "role": "parent"}));
    assert!(members[1..].iter().all(|m| m["role"] == "child"));
    let ids: std::collections::HashSet<i64> =
        nodes.iter().map(|n| n["id"].as_i64().unwrap()).collect();
    for edge in edges {
        for m in edge["members"].as_array().unwrap() {
            assert!(ids.contains(&m["node"].as_i64().unwrap()));
        }
    }
    let same: Vec<_> = edges
        .iter()
        .filter(|e| e["label"] == "same_source")
        .collect();
    assert_eq!(same[0]["metadata"], json!({"source_id": "page-1"}));
    assert_eq!(same[1]["members"].as_array().unwrap().len(), 3);
    // The export is plain JSON text.
    let text = serde_json::to_string(&graph).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        graph
    );
}

#[test]
fn summary_counts_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents();
    let path = written(dir.path(), "summary.db", &docs);
    let summary = HypergraphSidecar::open(&path).unwrap().summary().unwrap();
    let all: Vec<&Leaf> = docs
        .iter()
        .flat_map(|d| &d.branches)
        .flat_map(|b| &b.leaves)
        .collect();
    let (contains, next, same_source) = expected_edges(&docs);
    assert_eq!(summary.documents, 4);
    assert_eq!(summary.branches, 7);
    assert_eq!(summary.leaves, all.len() as u64);
    assert_eq!(
        summary.total_bytes,
        docs.iter().map(|d| d.trunk.byte_len).sum::<u64>()
    );
    assert_eq!(summary.hyperedges, (contains + next + same_source) as u64);
    assert_eq!(summary.edges_by_label["contains"], contains as u64);
    assert_eq!(summary.edges_by_label["next"], next as u64);
    assert_eq!(summary.edges_by_label["same_source"], same_source as u64);
    assert_eq!(summary.branches_by_modality["text"], 4);
    assert_eq!(summary.branches_by_modality["binary"], 1);

    let n = all.len() as f64;
    let mean_bytes = all
        .iter()
        .map(|l| (l.byte_range.end - l.byte_range.start) as f64)
        .sum::<f64>()
        / n;
    let close = |a: Option<f64>, b: f64| {
        let a = a.unwrap();
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    };
    close(summary.mean_patch_bytes, mean_bytes);
    close(summary.mean_patch_tokens, mean_bytes);
    close(
        summary.mean_entropy,
        all.iter().map(|l| f64::from(l.mean_entropy)).sum::<f64>() / n,
    );
    let tokens: f64 = all
        .iter()
        .map(|l| (l.token_range.end - l.token_range.start) as f64)
        .sum();
    close(
        summary.token_weighted_entropy,
        all.iter()
            .map(|l| f64::from(l.mean_entropy) * (l.token_range.end - l.token_range.start) as f64)
            .sum::<f64>()
            / tokens,
    );
    close(summary.max_entropy, f64::from(f32::MAX));
    close(summary.max_mean_entropy, f64::from(5.55f32));
    assert_eq!(
        summary.min_mean_entropy,
        Some(f64::from(f32::MIN_POSITIVE / 4.0))
    );

    // An empty sidecar has counts of zero and no statistics.
    let empty = written(dir.path(), "empty.db", &[]);
    let summary = HypergraphSidecar::open(&empty).unwrap().summary().unwrap();
    assert_eq!(
        (summary.documents, summary.leaves, summary.hyperedges),
        (0, 0, 0)
    );
    assert!(summary.edges_by_label.is_empty());
    assert_eq!(summary.mean_patch_bytes, None);
    assert_eq!(summary.mean_entropy, None);
}

// ---- the file --------------------------------------------------------------------------------

#[test]
fn same_documents_give_byte_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents();
    let write_with_meta = |name: &str, docs: &[SidecarDocument]| {
        let path = dir.path().join(name);
        let mut sidecar = write(&path, docs);
        sidecar.set_meta("created_by", "test").unwrap();
        sidecar.finish().unwrap();
        std::fs::read(path).unwrap()
    };
    let a = write_with_meta("a.db", &docs);
    let b = write_with_meta("b.db", &docs);
    assert!(a.len() >= 4096);
    assert!(a == b, "two sidecars of the same documents differ");

    let mut other = docs.clone();
    other[1].branches[0].label = "different".into();
    assert!(write_with_meta("c.db", &other) != a);
}

#[test]
fn finish_leaves_one_self_contained_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let sidecar = write(&path, &documents());
    assert!(dir.path().join("one.db-wal").exists(), "WAL while writing");
    sidecar.finish().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["one.db"]);
    // File format bytes 18 and 19 are 1 in rollback-journal mode, 2 in WAL mode.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..16], b"SQLite format 3\0");
    assert_eq!((bytes[18], bytes[19]), (1, 1));
}

#[test]
fn an_in_memory_journal_writes_one_file_with_the_same_documents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch.db");
    let docs = documents();
    let mut sidecar = HypergraphSidecar::create_with(&path, Journal::InMemory).unwrap();
    for doc in &docs {
        sidecar.write_document(doc).unwrap();
    }
    // A refused document leaves the file as it was.
    assert!(matches!(
        sidecar.write_document(&docs[1]),
        Err(Error::DuplicateDocument { .. })
    ));
    let names = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    assert_eq!(names(), ["scratch.db"], "no journal file while writing");
    assert_eq!(sidecar.documents().unwrap(), docs);
    sidecar.finish().unwrap();
    assert_eq!(names(), ["scratch.db"]);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((bytes[18], bytes[19]), (1, 1), "a rollback-journal file");
    let back = HypergraphSidecar::open(&path).unwrap();
    assert_eq!(back.documents().unwrap(), docs);
    assert_eq!(
        back.summary().unwrap(),
        write(&dir.path().join("wal.db"), &docs).summary().unwrap()
    );
}

#[test]
fn dropping_a_writer_also_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.db");
    drop(write(&path, &documents()));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((bytes[18], bytes[19]), (1, 1));
    assert!(!dir.path().join("dropped.db-wal").exists());
    assert_eq!(
        HypergraphSidecar::open(&path).unwrap().documents().unwrap(),
        documents()
    );
}

#[test]
fn meta_holds_provenance_and_refuses_reserved_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let mut sidecar = HypergraphSidecar::create(&path).unwrap();
    let meta = sidecar.meta().unwrap();
    assert_eq!(meta["created_by"], meta["producer"]);
    assert!(meta["producer"].starts_with("blt-sidecar "));
    sidecar.set_meta("created_by", "blt ingest 0.1.0").unwrap();
    sidecar
        .set_meta("model", r#"{"id": "facebook/blt-entropy"}"#)
        .unwrap();
    for key in ["format", "schema_version", "producer"] {
        match sidecar.set_meta(key, "x") {
            Err(Error::ReservedMetaKey { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
    sidecar.finish().unwrap();
    let meta = HypergraphSidecar::open(&path).unwrap().meta().unwrap();
    assert_eq!(
        meta.keys().collect::<Vec<_>>(),
        [
            "created_by",
            "format",
            "model",
            "producer",
            "schema_version"
        ]
    );
    assert_eq!(meta["created_by"], "blt ingest 0.1.0");
    assert_eq!(meta["schema_version"], "1");
}

// ---- errors ----------------------------------------------------------------------------------

fn assert_names(err: &Error, path: &Path) {
    assert_eq!(err.path(), path);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err} does not name {}",
        path.display()
    );
}

#[test]
fn create_refuses_an_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exists.db");
    std::fs::write(&path, b"precious").unwrap();
    let err = HypergraphSidecar::create(&path).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_names(&err, &path);
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");

    // A finished sidecar is not overwritten either, nor is a stale journal reused.
    let done = written(dir.path(), "done.db", &documents());
    assert!(matches!(
        HypergraphSidecar::create(&done),
        Err(Error::AlreadyExists { .. })
    ));
    let fresh = dir.path().join("fresh.db");
    let wal = dir.path().join("fresh.db-wal");
    std::fs::write(&wal, b"stale").unwrap();
    let err = HypergraphSidecar::create(&fresh).unwrap_err();
    assert_names(&err, &wal);
    assert!(!fresh.exists());

    // A path that cannot be created is an I/O error naming it.
    let nowhere = dir.path().join("no/such/dir/x.db");
    let err = HypergraphSidecar::create(&nowhere).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &nowhere);
}

#[test]
fn open_refuses_what_is_not_a_sidecar() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not an SQLite database, just some bytes that go on ".repeat(40),
    )
    .unwrap();
    let err = HypergraphSidecar::open(&garbage).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert_names(&err, &garbage);

    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items (name) VALUES ('x');")
        .unwrap();
    let err = HypergraphSidecar::open(&other).unwrap_err();
    assert!(matches!(err, Error::NotASidecar { .. }), "{err:?}");
    assert_names(&err, &other);

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        HypergraphSidecar::open(&empty),
        Err(Error::NotASidecar { .. })
    ));

    // BLT-Burn's sidecar: meta with schema_version 2, bincode blobs.
    let old = dir.path().join("old.hypergraph.db");
    Connection::open(&old)
        .unwrap()
        .execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); \
             INSERT INTO meta VALUES ('schema_version', '2'); \
             CREATE TABLE nodes (id INTEGER PRIMARY KEY, data BLOB); \
             CREATE TABLE hyperedges (id INTEGER PRIMARY KEY, vertices BLOB, data BLOB);",
        )
        .unwrap();
    let err = HypergraphSidecar::open(&old).unwrap_err();
    assert!(
        matches!(err, Error::NotASidecar { ref reason, .. } if reason.contains("schema_version \"2\"")),
        "{err:?}"
    );
    assert_names(&err, &old);

    // A sidecar from a future version.
    let future = written(dir.path(), "future.db", &documents());
    Connection::open(&future)
        .unwrap()
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let err = HypergraphSidecar::open(&future).unwrap_err();
    match &err {
        Error::UnsupportedSchema {
            found, expected, ..
        } => assert_eq!((found.as_str(), *expected), ("99", 1)),
        other => panic!("{other:?}"),
    }
    assert_names(&err, &future);

    let missing = dir.path().join("missing.db");
    let err = HypergraphSidecar::open(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &missing);
    assert!(!missing.exists(), "open never creates a file");
}

#[test]
fn an_opened_sidecar_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path(), "ro.db", &documents()[..1]);
    let before = std::fs::read(&path).unwrap();
    let mut sidecar = HypergraphSidecar::open(&path).unwrap();
    let err = sidecar.write_document(&documents()[1]).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(matches!(
        sidecar.set_meta("k", "v"),
        Err(Error::ReadOnly { .. })
    ));
    sidecar.finish().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn invalid_and_duplicate_documents_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invalid.db");
    let docs = documents();
    let mut sidecar = write(&path, &docs[..1]);

    let mut reversed = docs[2].clone();
    reversed.branches[1].leaves[2].byte_range = std::ops::Range { start: 50, end: 48 };
    let mut past_end = docs[2].clone();
    past_end.branches[2].byte_range = 70..101;
    let mut tokens = docs[2].clone();
    tokens.branches[0].leaves[0].token_range = std::ops::Range { start: 3, end: 2 };
    let mut empty_key = docs[2].clone();
    empty_key.trunk.key.clear();
    let mut huge = docs[3].clone();
    huge.trunk.byte_len = u64::MAX;
    for (bad, needle) in [
        (
            &reversed,
            "branch 1 (\"p2\"), leaf 2: byte range 50..48 is reversed",
        ),
        (
            &past_end,
            "branch 2 (\"p3\"): byte range 70..101 ends past the end of the document (100 bytes)",
        ),
        (&tokens, "token range 3..2 is reversed"),
        (&empty_key, "the document key is empty"),
        (&huge, "exceeds i64::MAX"),
    ] {
        let err = sidecar.write_document(bad).unwrap_err();
        match &err {
            Error::InvalidDocument {
                reason, document, ..
            } => {
                assert!(reason.contains(needle), "{reason}");
                assert_eq!(document, &bad.trunk.key);
            }
            other => panic!("{other:?}"),
        }
        assert_names(&err, &path);
    }

    let err = sidecar.write_document(&docs[0]).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateDocument { ref document, .. } if document == &docs[0].trunk.key),
        "{err:?}"
    );
    assert_names(&err, &path);

    // None of it reached the file, and writing goes on.
    sidecar.write_document(&docs[2]).unwrap();
    assert_eq!(
        sidecar.documents().unwrap(),
        [docs[0].clone(), docs[2].clone()]
    );
    let summary = sidecar.summary().unwrap();
    assert_eq!(summary.hyperedges, {
        let (c, n, s) = expected_edges(&[docs[0].clone(), docs[2].clone()]);
        (c + n + s) as u64
    });
    sidecar.finish().unwrap();
    // Document positions stay dense: the failed writes took none.
    let db = Connection::open(&path).unwrap();
    let positions: Vec<i64> = db
        .prepare("SELECT document_index FROM trunks ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(positions, [0, 1]);
}

#[test]
fn negative_zero_reads_back_as_positive_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = SidecarDocument {
        trunk: Trunk::from_bytes("z", b"ab"),
        branches: vec![branch("b", "text", 0..2, None)],
    };
    doc.branches[0].leaves = vec![Leaf {
        mean_entropy: -0.0,
        ..leaf(0, 2, 1, 1.0)
    }];
    let path = written(dir.path(), "zero.db", std::slice::from_ref(&doc));
    let back = HypergraphSidecar::open(&path).unwrap().documents().unwrap();
    let h = back[0].branches[0].leaves[0].mean_entropy;
    // SQLite stores a whole REAL as an integer, and 0 has no sign: as the README says.
    assert_eq!(h.to_bits(), 0.0f32.to_bits());
}
