//! `blt ingest --hf-dataset` from a Hugging Face cache laid out as the Hub client lays it out
//! (offline), the Arrow output read back, and the scale-out contract: four ranks started as
//! separate processes, one of them killed mid-run and restarted, give the same documents as
//! one process, and `blt merge-stats` adds them up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use blt_datasets::{EntropyFileFormat, EntropyShardSink};

const REPO: &str = "HuggingFaceFW/fineweb-edu";
const COMMIT: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
const SHARDS: usize = 6;

/// Paragraphs of a text nobody on the project wrote (Debian's copy of the GPL), or generated
/// prose where that file is absent.
fn paragraphs() -> Vec<String> {
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap_or_else(|_| {
        (0..200)
            .map(|i| format!("Paragraph {i}: entropy patching groups predictable bytes.\n\n"))
            .collect()
    });
    text.split("\n\n")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .take(SHARDS * 10)
        .collect()
}

fn parquet_shard(ids: &[i64], texts: &[String]) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        (
            "text",
            Arc::new(StringArray::from(texts.to_vec())) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// The Hub cache of a FineWeb-Edu look-alike: README with configs, `sample/10BT/*.parquet`.
fn hub_cache(root: &Path) -> (PathBuf, Vec<String>) {
    let cache = root.join("hf/hub");
    let readme = "---\nconfigs:\n- config_name: sample-10BT\n  data_files:\n  - split: train\n    path: sample/10BT/*\n---\n";
    let paras = paragraphs();
    let mut files: Vec<(String, Vec<u8>)> = vec![("README.md".into(), readme.into())];
    for (s, chunk) in paras.chunks(paras.len().div_ceil(SHARDS)).enumerate() {
        let ids: Vec<i64> = (0..chunk.len() as i64)
            .map(|i| ((s as i64) << 20) | i)
            .collect();
        files.push((
            format!("sample/10BT/{s:03}_00000.parquet"),
            parquet_shard(&ids, chunk),
        ));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    blt_hub::testing::lay_out_dataset_cache(&cache, REPO, "main", COMMIT, &refs).unwrap();
    (cache, paras)
}

fn blt(cache: &Path, tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blt"));
    c.env_remove("BLT_MODEL")
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1")
        .env("BLT_CACHE_DIR", tmp.join("blt-cache"))
        .current_dir(tmp);
    for (rank, count) in blt_datasets::RANK_VARIABLES {
        c.env_remove(rank).env_remove(count);
    }
    c.env_remove("SLURM_ARRAY_TASK_MIN");
    c
}

fn ingest_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "ingest",
        "--hf-dataset",
        REPO,
        "--hf-config",
        "sample-10BT",
        "--split",
        "train",
        "--id-column",
        "id",
        "--format",
        "arrow",
        "--shard-max-count",
        "3",
        "--batch-bytes",
        "1",
        "--no-progress",
        "--output",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every document of every complete Arrow shard in `dir`: sample_id → (text, entropy bits).
fn read_outputs(dir: &Path) -> BTreeMap<String, (String, Vec<u16>)> {
    let mut out = BTreeMap::new();
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".arrow") {
            assert!(
                blt_datasets::complete_marker(&p).is_file(),
                "{name} has no .complete marker"
            );
            shards.push(p);
        }
    }
    for shard in shards {
        for batch in blt_datasets::read_shard(&shard, EntropyFileFormat::Arrow, None).unwrap() {
            let ids = batch.column(0).as_string::<i32>();
            let text = batch.column(1).as_string::<i32>();
            let ent = batch.column(2).as_list::<i32>();
            for r in 0..batch.num_rows() {
                let h = ent.value(r);
                let bits = h
                    .as_primitive::<arrow_array::types::Float16Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let previous =
                    out.insert(ids.value(r).to_string(), (text.value(r).to_string(), bits));
                assert!(previous.is_none(), "{} written twice", ids.value(r));
            }
        }
    }
    out
}

#[test]
fn hub_dataset_offline_single_process_and_four_ranks_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, paras) = hub_cache(tmp.path());

    // One process: every shard, every row.
    let o = blt(&cache, tmp.path())
        .args(ingest_args("single", &[]))
        .output()
        .unwrap();
    ok(&o);
    let single = read_outputs(&tmp.path().join("single"));
    assert_eq!(single.len(), paras.len());
    let mut texts: Vec<&String> = single.values().map(|(t, _)| t).collect();
    let mut want: Vec<&String> = paras.iter().collect();
    texts.sort();
    want.sort();
    assert_eq!(texts, want);
    for (text, bits) in single.values() {
        assert_eq!(bits.len(), text.len() + 2, "BOS + bytes + EOS");
    }
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("single/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["stats"]["written"], paras.len());

    // Four ranks as separate processes; rank 2 is killed after its first shard and restarted.
    let ranks = tmp.path().join("ranks");
    let rank_cmd = |r: usize| {
        let mut c = blt(&cache, tmp.path());
        c.args(ingest_args("ranks", &["--world-size", "4"]))
            .env("RANK", r.to_string());
        c
    };
    let mut victim = rank_cmd(2).spawn().unwrap();
    let start = Instant::now();
    let first_shard = ranks.join("rank-00002.shard.shard_000000.arrow.complete");
    while !first_shard.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "rank 2 wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert!(
        !blt_datasets::completion_marker(&ranks, 2).exists(),
        "rank 2 finished before it could be killed: the test needs more documents"
    );
    let others: Vec<_> = [0, 1, 3]
        .into_iter()
        .map(|r| rank_cmd(r).spawn().unwrap())
        .collect();
    for child in others {
        ok(&child.wait_with_output().unwrap());
    }
    let o = rank_cmd(2).output().unwrap();
    ok(&o);
    let restarted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ranks.join("stats/2.json")).unwrap()).unwrap();
    assert!(
        restarted["stats"]["skipped"].as_u64().unwrap() >= 3,
        "the restarted rank resumes after its complete shards: {restarted}"
    );
    for r in 0..4 {
        assert!(blt_datasets::completion_marker(&ranks, r).is_file());
    }
    let union = read_outputs(&ranks);
    assert_eq!(
        union, single,
        "four ranks == one process, document for document"
    );

    // A completed rank is skipped and changes nothing.
    let before = std::fs::read_dir(&ranks).unwrap().count();
    let o = rank_cmd(0).output().unwrap();
    ok(&o);
    assert_eq!(std::fs::read_dir(&ranks).unwrap().count(), before);
    assert_eq!(read_outputs(&ranks), single);

    // merge-stats adds the ranks up.
    let o = blt(&cache, tmp.path())
        .args(["merge-stats", "ranks", "--json"])
        .output()
        .unwrap();
    ok(&o);
    let merged: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(merged["world_size"], 4);
    assert_eq!(merged["complete_ranks"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(merged["failed"], 0);
    assert_eq!(merged["documents"], paras.len());
    assert!(ranks.join("stats.json").is_file());
    // Each rank's shards carry its rank in their names.
    for r in 0..4 {
        let prefix = format!("rank-{r:05}.shard");
        let shards =
            EntropyShardSink::complete_shards(&ranks, &prefix, EntropyFileFormat::Arrow).unwrap();
        assert!(!shards.is_empty(), "rank {r} wrote no shard");
    }
}

#[test]
fn offline_without_the_dataset_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    let o = blt(&empty, tmp.path())
        .args(ingest_args("out", &[]))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(REPO) && err.contains("HF_HUB_OFFLINE") && err.contains("refs"),
        "{err}"
    );
}
