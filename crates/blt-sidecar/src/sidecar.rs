//! [`HypergraphSidecar`]: the SQLite file, written one document per transaction and read back
//! as documents, as leaves in a byte range, as JSON or as a summary.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, Row};
use serde_json::{Map, Number, Value};

use crate::{Branch, Error, Leaf, Result, SidecarDocument, SidecarSummary, Trunk};

/// The schema version this build writes and reads (`meta.schema_version`, also
/// `PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// The value of `meta.format` that marks a file as a blt hypergraph sidecar.
pub const FORMAT: &str = "blt-hypergraph-sidecar";

/// `PRAGMA application_id` of a sidecar: the ASCII bytes `BLTH`.
pub const APPLICATION_ID: i32 = 0x424C_5448;

/// The SQL that creates a sidecar's tables, indexes and views, verbatim (SQLite also keeps
/// it, in `sqlite_master`).
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// `meta.producer`: this crate and its version.
pub const PRODUCER: &str = concat!("blt-sidecar ", env!("CARGO_PKG_VERSION"));

/// Label of the hyperedges from a container (a trunk, a branch) to its children.
pub const CONTAINS: &str = "contains";
/// Label of the hyperedges between consecutive branches of a trunk and consecutive leaves of
/// a branch.
pub const NEXT: &str = "next";
/// Label of the hyperedges joining the branches of a document that share a `source_id`.
pub const SAME_SOURCE: &str = "same_source";

/// The `meta` keys that this crate owns.
const RESERVED_META: [&str; 3] = ["format", "schema_version", "producer"];

/// The columns of `nodes`, in table order, as [`RawNode::from_row`] reads them.
const NODE_COLUMNS: &str = "id, kind, document, parent, position, label, modality, byte_start, \
     byte_end, token_start, token_end, mean_entropy, max_entropy, prominence, coherence, \
     content_hash, byte_len, source_path, source_id, metadata";

/// How a new sidecar protects its writes ([`HypergraphSidecar::create_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Journal {
    /// SQLite's write-ahead log (`journal_mode=WAL`, `synchronous=NORMAL`): a document whose
    /// transaction has committed survives a crash of the writer. For a file that grows in
    /// place over a long run. [`finish`](HypergraphSidecar::finish) folds the log into the file.
    #[default]
    WriteAhead,
    /// A rollback journal in memory and no syncs while writing (`journal_mode=MEMORY`,
    /// `synchronous=OFF`): a failed [`write_document`](HypergraphSidecar::write_document)
    /// still leaves nothing of its document, but a crash of the process can leave a broken
    /// file. For a file written in one go under a temporary name and renamed into place once
    /// [`finish`](HypergraphSidecar::finish) has fsynced it: each page is written once (a
    /// write-ahead log writes it twice) and the file is synced once.
    InMemory,
}

/// A SQLite hypergraph of documents (trunks), their segments (branches) and patches (leaves),
/// written beside an output file.
///
/// Write with [`create`](Self::create), [`write_document`](Self::write_document) (one
/// transaction each) and [`finish`](Self::finish); read with [`open`](Self::open). A writer
/// can read what it has written so far. Dropping a writer without `finish` finishes it too,
/// but silently drops any error.
#[derive(Debug)]
pub struct HypergraphSidecar {
    path: PathBuf,
    conn: Connection,
    /// How the file is written; `None` when it was opened read-only.
    journal: Option<Journal>,
    finished: bool,
    document_count: i64,
}

impl HypergraphSidecar {
    /// Creates a new sidecar at `path`, which must not exist yet (nor an SQLite journal beside
    /// it). The file is in WAL mode until [`finish`](Self::finish) ([`Journal::WriteAhead`]).
    /// If setting it up fails, the new file is removed again.
    pub fn create(path: &Path) -> Result<Self> {
        Self::create_with(path, Journal::WriteAhead)
    }

    /// [`create`](Self::create) with the given [`Journal`].
    pub fn create_with(path: &Path, journal: Journal) -> Result<Self> {
        let exists = |p: &Path| p.symlink_metadata().is_ok();
        if exists(path) {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        for companion in [with_suffix(path, "-wal"), with_suffix(path, "-journal")] {
            if exists(&companion) {
                return Err(Error::AlreadyExists { path: companion });
            }
        }
        // `create_new` claims the path atomically: two writers never share a file.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::AlreadyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    Error::Io {
                        path: path.to_path_buf(),
                        source,
                    }
                }
            })?;
        Self::initialise(path, journal).inspect_err(|_| {
            for leftover in [
                path.to_path_buf(),
                with_suffix(path, "-wal"),
                with_suffix(path, "-shm"),
            ] {
                let _ = std::fs::remove_file(leftover);
            }
        })
    }

    fn initialise(path: &Path, journal: Journal) -> Result<Self> {
        let sql = |e| Error::sqlite(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        let (mode, synchronous) = match journal {
            Journal::WriteAhead => ("WAL", "NORMAL"),
            Journal::InMemory => ("MEMORY", "OFF"),
        };
        // Where the file system cannot do WAL, SQLite keeps its rollback journal; that is fine.
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", mode, |row| row.get(0))
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql)?;
        let tx = conn.unchecked_transaction().map_err(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sql)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sql)?;
        tx.execute_batch(SCHEMA_SQL).map_err(sql)?;
        let version = SCHEMA_VERSION.to_string();
        for (key, value) in [
            ("format", FORMAT),
            ("schema_version", version.as_str()),
            ("producer", PRODUCER),
            ("created_by", PRODUCER),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(HypergraphSidecar {
            path: path.to_path_buf(),
            conn,
            journal: Some(journal),
            finished: false,
            document_count: 0,
        })
    }

    /// Opens an existing sidecar read-only, after checking that it is one: an SQLite file
    /// with a `meta` table whose `format` is [`FORMAT`] and whose `schema_version` is
    /// [`SCHEMA_VERSION`], and with the `nodes`, `hyperedges` and `hyperedge_members` tables.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::sqlite(path, e))?;
        check_is_sidecar(&conn, path)?;
        let document_count = conn
            .query_row("SELECT count(*) FROM nodes WHERE kind = 'trunk'", [], |r| {
                r.get(0)
            })
            .map_err(|e| Error::sqlite(path, e))?;
        Ok(HypergraphSidecar {
            path: path.to_path_buf(),
            conn,
            journal: None,
            finished: false,
            document_count,
        })
    }

    /// The sidecar's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle writes ([`create`](Self::create)) or only reads
    /// ([`open`](Self::open)).
    pub fn is_writable(&self) -> bool {
        self.journal.is_some()
    }

    /// Writes one document, its branches and leaves and all their hyperedges, in one
    /// transaction: either all of it is in the file afterwards, or none of it.
    ///
    /// Checked first, so that nothing is written otherwise: the key is not empty and not yet
    /// in the file; every range is `start <= end`; branch and leaf byte ranges end within the
    /// document's `byte_len`; every offset fits in an `i64`. A NaN entropy, prominence or
    /// coherence is stored as NULL (SQLite has no NaN) and reads back as NaN; `-0.0` reads
    /// back as `0.0` (SQLite keeps no sign on a zero).
    pub fn write_document(&mut self, doc: &SidecarDocument) -> Result<()> {
        if !self.is_writable() {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        let path = self.path.as_path();
        let rows = PreparedDocument::new(doc, self.document_count)
            .map_err(|reason| Error::InvalidDocument {
                path: path.to_path_buf(),
                document: doc.trunk.key.clone(),
                reason,
            })?
            .serialise_metadata(path)?;
        let sql = |e| Error::sqlite(path, e);
        let tx = self.conn.transaction().map_err(sql)?;
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM nodes WHERE kind = 'trunk' AND document = ?1)",
                [&doc.trunk.key],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if taken {
            return Err(Error::DuplicateDocument {
                path: path.to_path_buf(),
                document: doc.trunk.key.clone(),
            });
        }
        let key = doc.trunk.key.as_str();
        let trunk = insert_node(&tx, path, key, None, &rows.trunk)?;
        let mut branch_ids = Vec::with_capacity(rows.branches.len());
        let mut leaf_ids = Vec::with_capacity(rows.branches.len());
        for (branch, leaves) in &rows.branches {
            let id = insert_node(&tx, path, key, Some(trunk), branch)?;
            let ids = leaves
                .iter()
                .map(|leaf| insert_node(&tx, path, key, Some(id), leaf))
                .collect::<Result<Vec<_>>>()?;
            branch_ids.push(id);
            leaf_ids.push(ids);
        }

        insert_contains(&tx, path, trunk, trunk, &branch_ids)?;
        insert_next_chain(&tx, path, trunk, &branch_ids)?;
        for (&branch, leaves) in branch_ids.iter().zip(&leaf_ids) {
            insert_contains(&tx, path, trunk, branch, leaves)?;
            insert_next_chain(&tx, path, trunk, leaves)?;
        }
        for (source_id, members) in same_source_groups(&doc.branches) {
            let metadata = serde_json::to_string(&serde_json::json!({ "source_id": source_id }))
                .map_err(|source| Error::Json {
                    path: path.to_path_buf(),
                    source,
                })?;
            let members: Vec<(i64, &str)> = members
                .into_iter()
                .map(|b| (branch_ids[b], "view"))
                .collect();
            insert_edge(&tx, path, SAME_SOURCE, trunk, &metadata, &members)?;
        }
        tx.commit().map_err(sql)?;
        self.document_count += 1;
        Ok(())
    }

    /// Sets a `meta` key (provenance: `created_by`, the model id, the patching mode, …).
    /// `format`, `schema_version` and `producer` belong to this crate and are refused.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        if !self.is_writable() {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        if RESERVED_META.contains(&key) {
            return Err(Error::ReservedMetaKey {
                path: self.path.clone(),
                key: key.to_owned(),
            });
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(|e| Error::sqlite(&self.path, e))?;
        Ok(())
    }

    /// The `meta` table, by key.
    pub fn meta(&self) -> Result<BTreeMap<String, String>> {
        read_meta(&self.conn, &self.path)
    }

    /// The keys of the documents, in write order.
    pub fn document_keys(&self) -> Result<Vec<String>> {
        let sql = |e| Error::sqlite(&self.path, e);
        let mut stmt = self
            .conn
            .prepare("SELECT document FROM nodes WHERE kind = 'trunk' ORDER BY position, id")
            .map_err(sql)?;
        let keys = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(sql)?;
        Ok(keys)
    }

    /// Every document, in write order, exactly as written (NaN floats come back as NaN).
    pub fn documents(&self) -> Result<Vec<SidecarDocument>> {
        let nodes = self.read_nodes(None)?;
        assemble(&self.path, nodes)
    }

    /// The document with this key.
    pub fn document(&self, key: &str) -> Result<SidecarDocument> {
        let nodes = self.read_nodes(Some(key))?;
        assemble(&self.path, nodes)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::UnknownDocument {
                path: self.path.clone(),
                document: key.to_owned(),
            })
    }

    /// The leaves of `document` whose byte range overlaps `bytes` (both half-open: a leaf
    /// `[s, e)` overlaps when `s < bytes.end && e > bytes.start`), ordered by byte start.
    /// An empty `bytes` overlaps nothing.
    pub fn leaves_in_range(&self, document: &str, bytes: Range<u64>) -> Result<Vec<Leaf>> {
        let sql = |e| Error::sqlite(&self.path, e);
        let known: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM nodes WHERE kind = 'trunk' AND document = ?1)",
                [document],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if !known {
            return Err(Error::UnknownDocument {
                path: self.path.clone(),
                document: document.to_owned(),
            });
        }
        let start = i64::try_from(bytes.start).unwrap_or(i64::MAX);
        let end = i64::try_from(bytes.end).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {NODE_COLUMNS} FROM nodes \
                 WHERE document = ?1 AND kind = 'leaf' AND byte_start < ?3 AND byte_end > ?2 \
                 ORDER BY byte_start, byte_end, id"
            ))
            .map_err(sql)?;
        let raws = stmt
            .query_map(params![document, start, end], RawNode::from_row)
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        raws.iter().map(|raw| raw.leaf(&self.path)).collect()
    }

    /// The whole graph as JSON: `{"meta": {…}, "nodes": […], "hyperedges": […]}`.
    ///
    /// Each node is its `nodes` row as an object keyed by column name, NULL columns left out,
    /// `metadata` as JSON (not text), and the `f32` columns written in their shortest form.
    /// Each hyperedge is `{"id", "label", "weight", "trunk", "document", "metadata", "members"}`
    /// (`document` is the key of the `trunk`) with
    /// `members` an array of `{"node", "role"}` in member order. Node ids are the SQL ids, so
    /// the export and the file agree.
    pub fn export_json(&self) -> Result<Value> {
        let sql = |e| Error::sqlite(&self.path, e);
        let meta: Map<String, Value> = self
            .meta()?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let nodes = self
            .read_nodes(None)?
            .iter()
            .map(|raw| raw.to_json(&self.path))
            .collect::<Result<Vec<_>>>()?;

        let mut members: HashMap<i64, Vec<Value>> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT edge, node, role FROM hyperedge_members ORDER BY edge, position")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (edge, node, role) = row.map_err(sql)?;
            let mut member = Map::new();
            member.insert("node".into(), node.into());
            member.insert("role".into(), role.into());
            members.entry(edge).or_default().push(Value::Object(member));
        }

        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.id, e.label, e.weight, e.trunk, t.document, e.metadata \
                 FROM hyperedges AS e LEFT JOIN nodes AS t ON t.id = e.trunk ORDER BY e.id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(sql)?;
        let mut edges = Vec::new();
        for row in rows {
            let (id, label, weight, trunk, document, metadata) = row.map_err(sql)?;
            let document = document.ok_or_else(|| {
                Error::corrupt(
                    &self.path,
                    format!("hyperedge {id} names trunk {trunk}, which is not a node"),
                )
            })?;
            let mut edge = Map::new();
            edge.insert("id".into(), id.into());
            edge.insert("label".into(), label.into());
            edge.insert(
                "weight".into(),
                Number::from_f64(weight).map_or(Value::Null, Value::Number),
            );
            edge.insert("trunk".into(), trunk.into());
            edge.insert("document".into(), document.into());
            edge.insert("metadata".into(), parse_json(&self.path, &metadata)?);
            edge.insert(
                "members".into(),
                Value::Array(members.remove(&id).unwrap_or_default()),
            );
            edges.push(Value::Object(edge));
        }

        let mut graph = Map::new();
        graph.insert("meta".into(), Value::Object(meta));
        graph.insert("nodes".into(), Value::Array(nodes));
        graph.insert("hyperedges".into(), Value::Array(edges));
        Ok(Value::Object(graph))
    }

    /// Counts and patch statistics of the whole file.
    pub fn summary(&self) -> Result<SidecarSummary> {
        let path = self.path.as_path();
        let sql = |e| Error::sqlite(path, e);
        let count = |query: &str| -> Result<u64> {
            let n: i64 = self.conn.query_row(query, [], |r| r.get(0)).map_err(sql)?;
            unsigned(path, query, n)
        };
        let grouped = |query: &str| -> Result<BTreeMap<String, u64>> {
            let mut stmt = self.conn.prepare(query).map_err(sql)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(k, n)| Ok((k, unsigned(path, query, n)?)))
                .collect()
        };
        let stats = self
            .conn
            .query_row(
                "SELECT avg(byte_end - byte_start), avg(token_end - token_start), \
                        avg(mean_entropy), \
                        sum(mean_entropy * (token_end - token_start)) \
                          / sum(CASE WHEN mean_entropy IS NOT NULL \
                                     THEN token_end - token_start END), \
                        min(mean_entropy), max(mean_entropy), max(max_entropy) \
                 FROM nodes WHERE kind = 'leaf'",
                [],
                |r| {
                    Ok([
                        r.get::<_, Option<f64>>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ])
                },
            )
            .map_err(sql)?;
        let [mean_patch_bytes, mean_patch_tokens, mean_entropy, token_weighted_entropy, min_mean_entropy, max_mean_entropy, max_entropy] =
            stats;
        Ok(SidecarSummary {
            documents: count("SELECT count(*) FROM nodes WHERE kind = 'trunk'")?,
            branches: count("SELECT count(*) FROM nodes WHERE kind = 'branch'")?,
            leaves: count("SELECT count(*) FROM nodes WHERE kind = 'leaf'")?,
            total_bytes: count(
                "SELECT coalesce(sum(byte_len), 0) FROM nodes WHERE kind = 'trunk'",
            )?,
            hyperedges: count("SELECT count(*) FROM hyperedges")?,
            edges_by_label: grouped(
                "SELECT label, count(*) FROM hyperedges GROUP BY label ORDER BY label",
            )?,
            branches_by_modality: grouped(
                "SELECT modality, count(*) FROM nodes WHERE kind = 'branch' \
                 GROUP BY modality ORDER BY modality",
            )?,
            mean_patch_bytes,
            mean_patch_tokens,
            mean_entropy,
            token_weighted_entropy,
            min_mean_entropy,
            max_mean_entropy,
            max_entropy,
        })
    }

    /// Ends writing: checkpoints the write-ahead log into the file and switches it to
    /// `journal_mode=DELETE`, so that one self-contained file remains (no `-wal`, no `-shm`),
    /// readable from read-only media; with [`Journal::InMemory`], the file already is that and
    /// is fsynced. On a sidecar from [`open`](Self::open) it just closes.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        if self.is_writable() {
            self.finalise()?;
        }
        Ok(())
    }

    fn finalise(&self) -> Result<()> {
        let sql = |e| Error::sqlite(&self.path, e);
        if self.journal == Some(Journal::InMemory) {
            // Every committed page is in the file (through the OS); make it durable.
            let io = |source| Error::Io {
                path: self.path.clone(),
                source,
            };
            return OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|f| f.sync_all())
                .map_err(io);
        }
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(sql)?;
        if busy != 0 {
            return Err(Error::Finish {
                path: self.path.clone(),
                reason: "the write-ahead log checkpoint was blocked by another connection".into(),
            });
        }
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(Error::Finish {
                path: self.path.clone(),
                reason: format!("journal_mode stayed {mode:?} (another connection is open?)"),
            });
        }
        Ok(())
    }

    fn read_nodes(&self, document: Option<&str>) -> Result<Vec<RawNode>> {
        let sql = |e| Error::sqlite(&self.path, e);
        let rows = match document {
            None => {
                let mut stmt = self
                    .conn
                    .prepare(&format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY id"))
                    .map_err(sql)?;
                let rows = stmt.query_map([], RawNode::from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            }
            Some(key) => {
                let mut stmt = self
                    .conn
                    .prepare(&format!(
                        "SELECT {NODE_COLUMNS} FROM nodes WHERE document = ?1 ORDER BY id"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([key], RawNode::from_row).map_err(sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            }
        };
        rows.map_err(sql)
    }
}

impl Drop for HypergraphSidecar {
    fn drop(&mut self) {
        if self.is_writable() && !self.finished {
            // Best effort: a dropped writer still leaves one self-contained file.
            let _ = self.finalise();
        }
    }
}

// ---- writing ---------------------------------------------------------------------------------

/// One `nodes` row, checked and converted, before it has an id.
struct NodeRow<'a> {
    kind: &'static str,
    position: i64,
    label: Option<&'a str>,
    modality: Option<&'a str>,
    byte_start: i64,
    byte_end: i64,
    token_start: Option<i64>,
    token_end: Option<i64>,
    mean_entropy: Option<f64>,
    max_entropy: Option<f64>,
    prominence: Option<f64>,
    coherence: Option<f64>,
    content_hash: Option<&'a str>,
    byte_len: Option<i64>,
    source_path: Option<&'a str>,
    source_id: Option<&'a str>,
    metadata: &'a Value,
    metadata_text: String,
}

/// A document's rows: the trunk, then each branch with its leaves.
struct PreparedDocument<'a> {
    trunk: NodeRow<'a>,
    branches: Vec<(NodeRow<'a>, Vec<NodeRow<'a>>)>,
}

impl<'a> PreparedDocument<'a> {
    /// Checks `doc` and converts it to rows; the error is the reason it cannot be stored.
    fn new(doc: &'a SidecarDocument, document_index: i64) -> std::result::Result<Self, String> {
        let trunk = &doc.trunk;
        if trunk.key.is_empty() {
            return Err("the document key is empty".into());
        }
        let byte_len = offset(trunk.byte_len, || "byte_len".into())?;
        let mut branches = Vec::with_capacity(doc.branches.len());
        for (b, branch) in doc.branches.iter().enumerate() {
            let what = || format!("branch {b} ({:?})", branch.label);
            let (byte_start, byte_end) = range(&branch.byte_range, byte_len, || {
                format!("{}: byte range", what())
            })?;
            let mut leaves = Vec::with_capacity(branch.leaves.len());
            for (l, leaf) in branch.leaves.iter().enumerate() {
                let what = || format!("{}, leaf {l}", what());
                let (leaf_start, leaf_end) = range(&leaf.byte_range, byte_len, || {
                    format!("{}: byte range", what())
                })?;
                let (token_start, token_end) = range(&leaf.token_range, i64::MAX, || {
                    format!("{}: token range", what())
                })?;
                leaves.push(NodeRow {
                    kind: "leaf",
                    position: index(l),
                    label: None,
                    modality: None,
                    byte_start: leaf_start,
                    byte_end: leaf_end,
                    token_start: Some(token_start),
                    token_end: Some(token_end),
                    mean_entropy: real(leaf.mean_entropy),
                    max_entropy: real(leaf.max_entropy),
                    prominence: real(leaf.prominence),
                    coherence: real(leaf.coherence),
                    content_hash: None,
                    byte_len: None,
                    source_path: None,
                    source_id: None,
                    metadata: &leaf.metadata,
                    metadata_text: String::new(),
                });
            }
            branches.push((
                NodeRow {
                    kind: "branch",
                    position: index(b),
                    label: Some(&branch.label),
                    modality: Some(&branch.modality),
                    byte_start,
                    byte_end,
                    token_start: None,
                    token_end: None,
                    mean_entropy: None,
                    max_entropy: None,
                    prominence: None,
                    coherence: None,
                    content_hash: None,
                    byte_len: None,
                    source_path: None,
                    source_id: branch.source_id.as_deref(),
                    metadata: &branch.metadata,
                    metadata_text: String::new(),
                },
                leaves,
            ));
        }
        let trunk = NodeRow {
            kind: "trunk",
            position: document_index,
            label: None,
            modality: None,
            byte_start: 0,
            byte_end: byte_len,
            token_start: None,
            token_end: None,
            mean_entropy: None,
            max_entropy: None,
            prominence: None,
            coherence: None,
            content_hash: Some(&trunk.content_hash),
            byte_len: Some(byte_len),
            source_path: trunk.source_path.as_deref(),
            source_id: None,
            metadata: &trunk.metadata,
            metadata_text: String::new(),
        };
        Ok(PreparedDocument { trunk, branches })
    }

    /// Turns every node's metadata into JSON text.
    fn serialise_metadata(mut self, path: &Path) -> Result<Self> {
        let text = |value: &Value| {
            serde_json::to_string(value).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })
        };
        self.trunk.metadata_text = text(self.trunk.metadata)?;
        for (branch, leaves) in &mut self.branches {
            branch.metadata_text = text(branch.metadata)?;
            for leaf in leaves {
                leaf.metadata_text = text(leaf.metadata)?;
            }
        }
        Ok(self)
    }
}

/// `value` as an SQLite integer, or why not.
fn offset(value: u64, what: impl Fn() -> String) -> std::result::Result<i64, String> {
    i64::try_from(value).map_err(|_| format!("{} {value} exceeds i64::MAX", what()))
}

/// A range as two SQLite integers, checked: `start <= end <= limit`.
fn range(
    r: &Range<u64>,
    limit: i64,
    what: impl Fn() -> String,
) -> std::result::Result<(i64, i64), String> {
    if r.start > r.end {
        return Err(format!("{} {}..{} is reversed", what(), r.start, r.end));
    }
    let end = offset(r.end, &what)?;
    if end > limit {
        return Err(format!(
            "{} {}..{} ends past the end of the document ({limit} bytes)",
            what(),
            r.start,
            r.end
        ));
    }
    Ok((offset(r.start, &what)?, end))
}

/// A position in a list; no list in memory is longer than `i64::MAX`.
fn index(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// An `f32` as an SQLite REAL (exactly: every `f32` is an `f64`); NaN becomes NULL.
fn real(x: f32) -> Option<f64> {
    (!x.is_nan()).then_some(f64::from(x))
}

fn insert_node(
    conn: &Connection,
    path: &Path,
    document: &str,
    parent: Option<i64>,
    row: &NodeRow<'_>,
) -> Result<i64> {
    let sql = |e| Error::sqlite(path, e);
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO nodes (kind, document, parent, position, label, modality, byte_start, \
             byte_end, token_start, token_end, mean_entropy, max_entropy, prominence, coherence, \
             content_hash, byte_len, source_path, source_id, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19)",
        )
        .map_err(sql)?;
    stmt.execute(params![
        row.kind,
        document,
        parent,
        row.position,
        row.label,
        row.modality,
        row.byte_start,
        row.byte_end,
        row.token_start,
        row.token_end,
        row.mean_entropy,
        row.max_entropy,
        row.prominence,
        row.coherence,
        row.content_hash,
        row.byte_len,
        row.source_path,
        row.source_id,
        row.metadata_text,
    ])
    .map_err(sql)?;
    Ok(conn.last_insert_rowid())
}

fn insert_edge(
    conn: &Connection,
    path: &Path,
    label: &str,
    trunk: i64,
    metadata: &str,
    members: &[(i64, &str)],
) -> Result<()> {
    let sql = |e| Error::sqlite(path, e);
    conn.prepare_cached(
        "INSERT INTO hyperedges (label, weight, trunk, metadata) VALUES (?1, 1.0, ?2, ?3)",
    )
    .map_err(sql)?
    .execute(params![label, trunk, metadata])
    .map_err(sql)?;
    let edge = conn.last_insert_rowid();
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO hyperedge_members (edge, node, role, position) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql)?;
    for (position, (node, role)) in members.iter().enumerate() {
        stmt.execute(params![edge, node, role, index(position)])
            .map_err(sql)?;
    }
    Ok(())
}

/// One `contains` edge: the parent, then its children; none when there are no children.
fn insert_contains(
    conn: &Connection,
    path: &Path,
    trunk: i64,
    parent: i64,
    children: &[i64],
) -> Result<()> {
    if children.is_empty() {
        return Ok(());
    }
    let members: Vec<(i64, &str)> = std::iter::once((parent, "parent"))
        .chain(children.iter().map(|&c| (c, "child")))
        .collect();
    insert_edge(conn, path, CONTAINS, trunk, "{}", &members)
}

/// One `next` edge per consecutive pair.
fn insert_next_chain(conn: &Connection, path: &Path, trunk: i64, nodes: &[i64]) -> Result<()> {
    for pair in nodes.windows(2) {
        insert_edge(
            conn,
            path,
            NEXT,
            trunk,
            "{}",
            &[(pair[0], "from"), (pair[1], "to")],
        )?;
    }
    Ok(())
}

/// The `source_id`s shared by two or more branches, in order of first appearance, each with
/// the indices of its branches.
fn same_source_groups(branches: &[Branch]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (b, branch) in branches.iter().enumerate() {
        if let Some(id) = branch.source_id.as_deref() {
            let g = *by_id.entry(id).or_insert_with(|| {
                groups.push((id, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(b);
        }
    }
    groups.retain(|(_, members)| members.len() >= 2);
    groups
}

// ---- reading ---------------------------------------------------------------------------------

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_meta(conn: &Connection, path: &Path) -> Result<BTreeMap<String, String>> {
    let sql = |e| Error::sqlite(path, e);
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta ORDER BY key")
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql)?
        .collect::<rusqlite::Result<BTreeMap<String, String>>>()
        .map_err(sql)?;
    Ok(rows)
}

fn check_is_sidecar(conn: &Connection, path: &Path) -> Result<()> {
    let sql = |e| Error::sqlite(path, e);
    let not = |reason: String| Error::NotASidecar {
        path: path.to_path_buf(),
        reason,
    };
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .map_err(sql)?;
    let tables = stmt
        .query_map([], |r| r.get(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(sql)?;
    if !tables.iter().any(|t| t == "meta") {
        return Err(not("it has no `meta` table".into()));
    }
    let meta = read_meta(conn, path)?;
    let version = meta.get("schema_version");
    match (meta.get("format"), version) {
        (Some(format), _) if format == FORMAT => {}
        (Some(format), _) => return Err(not(format!("meta format is {format:?}, not {FORMAT:?}"))),
        (None, Some(v)) => {
            return Err(not(format!(
                "meta has schema_version {v:?} but no format key (BLT-Burn's bincode \
                 sidecars look like this; they are not readable here)"
            )))
        }
        (None, None) => return Err(not("meta has no format key".into())),
    }
    match version {
        Some(v) if *v == SCHEMA_VERSION.to_string() => {}
        Some(v) => {
            return Err(Error::UnsupportedSchema {
                path: path.to_path_buf(),
                found: v.clone(),
                expected: SCHEMA_VERSION,
            })
        }
        None => return Err(not("meta has no schema_version".into())),
    }
    for table in ["nodes", "hyperedges", "hyperedge_members"] {
        if !tables.iter().any(|t| t == table) {
            return Err(not(format!("it has no `{table}` table")));
        }
    }
    Ok(())
}

/// One `nodes` row as stored.
struct RawNode {
    id: i64,
    kind: String,
    document: String,
    parent: Option<i64>,
    position: i64,
    label: Option<String>,
    modality: Option<String>,
    byte_start: i64,
    byte_end: i64,
    token_start: Option<i64>,
    token_end: Option<i64>,
    mean_entropy: Option<f64>,
    max_entropy: Option<f64>,
    prominence: Option<f64>,
    coherence: Option<f64>,
    content_hash: Option<String>,
    byte_len: Option<i64>,
    source_path: Option<String>,
    source_id: Option<String>,
    metadata: String,
}

impl RawNode {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawNode {
            id: r.get(0)?,
            kind: r.get(1)?,
            document: r.get(2)?,
            parent: r.get(3)?,
            position: r.get(4)?,
            label: r.get(5)?,
            modality: r.get(6)?,
            byte_start: r.get(7)?,
            byte_end: r.get(8)?,
            token_start: r.get(9)?,
            token_end: r.get(10)?,
            mean_entropy: r.get(11)?,
            max_entropy: r.get(12)?,
            prominence: r.get(13)?,
            coherence: r.get(14)?,
            content_hash: r.get(15)?,
            byte_len: r.get(16)?,
            source_path: r.get(17)?,
            source_id: r.get(18)?,
            metadata: r.get(19)?,
        })
    }

    fn required<'v, T>(&self, path: &Path, column: &str, value: &'v Option<T>) -> Result<&'v T> {
        value.as_ref().ok_or_else(|| {
            Error::corrupt(
                path,
                format!("{} node {}: {column} is NULL", self.kind, self.id),
            )
        })
    }

    fn unsigned(&self, path: &Path, column: &str, value: i64) -> Result<u64> {
        unsigned(
            path,
            &format!("{} node {}: {column}", self.kind, self.id),
            value,
        )
    }

    fn bytes(&self, path: &Path) -> Result<Range<u64>> {
        Ok(self.unsigned(path, "byte_start", self.byte_start)?
            ..self.unsigned(path, "byte_end", self.byte_end)?)
    }

    fn trunk(&self, path: &Path) -> Result<Trunk> {
        let byte_len = *self.required(path, "byte_len", &self.byte_len)?;
        Ok(Trunk {
            key: self.document.clone(),
            source_path: self.source_path.clone(),
            content_hash: self
                .required(path, "content_hash", &self.content_hash)?
                .clone(),
            byte_len: self.unsigned(path, "byte_len", byte_len)?,
            metadata: parse_json(path, &self.metadata)?,
        })
    }

    fn branch(&self, path: &Path) -> Result<Branch> {
        Ok(Branch {
            label: self.required(path, "label", &self.label)?.clone(),
            modality: self.required(path, "modality", &self.modality)?.clone(),
            byte_range: self.bytes(path)?,
            source_id: self.source_id.clone(),
            metadata: parse_json(path, &self.metadata)?,
            leaves: Vec::new(),
        })
    }

    fn leaf(&self, path: &Path) -> Result<Leaf> {
        let token_start = *self.required(path, "token_start", &self.token_start)?;
        let token_end = *self.required(path, "token_end", &self.token_end)?;
        Ok(Leaf {
            byte_range: self.bytes(path)?,
            token_range: self.unsigned(path, "token_start", token_start)?
                ..self.unsigned(path, "token_end", token_end)?,
            mean_entropy: single(self.mean_entropy),
            max_entropy: single(self.max_entropy),
            prominence: single(self.prominence),
            coherence: single(self.coherence),
            metadata: parse_json(path, &self.metadata)?,
        })
    }

    /// The row as a JSON object keyed by column name, NULLs left out.
    fn to_json(&self, path: &Path) -> Result<Value> {
        let mut o = Map::new();
        o.insert("id".into(), self.id.into());
        o.insert("kind".into(), self.kind.clone().into());
        o.insert("document".into(), self.document.clone().into());
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                o.insert(key.into(), value);
            }
        };
        put("parent", self.parent.map(Value::from));
        put("position", Some(self.position.into()));
        put("label", self.label.clone().map(Value::from));
        put("modality", self.modality.clone().map(Value::from));
        put("byte_start", Some(self.byte_start.into()));
        put("byte_end", Some(self.byte_end.into()));
        put("token_start", self.token_start.map(Value::from));
        put("token_end", self.token_end.map(Value::from));
        put("mean_entropy", self.mean_entropy.map(shortest));
        put("max_entropy", self.max_entropy.map(shortest));
        put("prominence", self.prominence.map(shortest));
        put("coherence", self.coherence.map(shortest));
        put("content_hash", self.content_hash.clone().map(Value::from));
        put("byte_len", self.byte_len.map(Value::from));
        put("source_path", self.source_path.clone().map(Value::from));
        put("source_id", self.source_id.clone().map(Value::from));
        put("metadata", Some(parse_json(path, &self.metadata)?));
        Ok(Value::Object(o))
    }
}

/// Reassembles documents from their rows (any order): trunks by id, branches and leaves by
/// position under their parent.
fn assemble(path: &Path, nodes: Vec<RawNode>) -> Result<Vec<SidecarDocument>> {
    let mut docs = Vec::new();
    let mut trunk_index: HashMap<i64, usize> = HashMap::new();
    let mut branches: Vec<(i64, i64, i64, Branch)> = Vec::new();
    let mut leaves: HashMap<i64, Vec<(i64, Leaf)>> = HashMap::new();
    let orphan = |raw: &RawNode| {
        Error::corrupt(
            path,
            format!(
                "{} node {} has parent {:?}, which is not a {}",
                raw.kind,
                raw.id,
                raw.parent,
                if raw.kind == "leaf" {
                    "branch"
                } else {
                    "trunk"
                }
            ),
        )
    };
    let mut trunks: Vec<&RawNode> = nodes.iter().filter(|n| n.kind == "trunk").collect();
    trunks.sort_by_key(|n| (n.position, n.id));
    for raw in trunks {
        trunk_index.insert(raw.id, docs.len());
        docs.push(SidecarDocument {
            trunk: raw.trunk(path)?,
            branches: Vec::new(),
        });
    }
    for raw in &nodes {
        match raw.kind.as_str() {
            "trunk" => {}
            "branch" => {
                let parent = raw.parent.ok_or_else(|| orphan(raw))?;
                branches.push((parent, raw.position, raw.id, raw.branch(path)?));
            }
            "leaf" => {
                let parent = raw.parent.ok_or_else(|| orphan(raw))?;
                leaves
                    .entry(parent)
                    .or_default()
                    .push((raw.position, raw.leaf(path)?));
            }
            other => {
                return Err(Error::corrupt(
                    path,
                    format!("node {} has unknown kind {other:?}", raw.id),
                ))
            }
        }
    }
    branches.sort_by_key(|(parent, position, id, _)| (*parent, *position, *id));
    for (parent, _, id, mut branch) in branches {
        let doc = trunk_index.get(&parent).copied().ok_or_else(|| {
            Error::corrupt(
                path,
                format!("branch node {id} has parent {parent}, which is not a trunk"),
            )
        })?;
        if let Some(mut own) = leaves.remove(&id) {
            own.sort_by_key(|(position, _)| *position);
            branch.leaves = own.into_iter().map(|(_, leaf)| leaf).collect();
        }
        docs[doc].branches.push(branch);
    }
    if let Some(parent) = leaves.keys().min() {
        return Err(Error::corrupt(
            path,
            format!("leaf nodes have parent {parent}, which is not a branch"),
        ));
    }
    Ok(docs)
}

fn unsigned(path: &Path, what: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::corrupt(path, format!("{what} is negative ({value})")))
}

/// A stored REAL back as the `f32` it was written from; NULL (a NaN when written) is NaN.
fn single(x: Option<f64>) -> f32 {
    x.map_or(f32::NAN, |x| x as f32)
}

/// An `f32` column for JSON, in the shortest decimal form that reads back as the same `f32`
/// (`0.1`, not `0.10000000149011612`); infinities become null.
fn shortest(x: f64) -> Value {
    (x as f32)
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn parse_json(path: &Path, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(source: Option<&str>) -> Branch {
        Branch {
            label: String::new(),
            modality: "text".into(),
            byte_range: 0..0,
            source_id: source.map(Into::into),
            metadata: Value::Null,
            leaves: Vec::new(),
        }
    }

    #[test]
    fn same_source_groups_need_two_views_and_keep_first_appearance_order() {
        let branches: Vec<Branch> = [
            Some("b"),
            None,
            Some("a"),
            Some("b"),
            Some("c"),
            Some("a"),
            Some("b"),
        ]
        .into_iter()
        .map(branch)
        .collect();
        assert_eq!(
            same_source_groups(&branches),
            [("b", vec![0, 3, 6]), ("a", vec![2, 5])]
        );
        assert!(same_source_groups(&branches[..3]).is_empty());
    }

    #[test]
    fn f32_columns_export_in_shortest_form() {
        assert_eq!(shortest(f64::from(0.1f32)), serde_json::json!(0.1));
        assert_eq!(
            shortest(f64::from(f32::MAX)).as_f64().map(|x| x as f32),
            Some(f32::MAX)
        );
        assert_eq!(
            shortest(f64::from(1e-45f32)).as_f64().map(|x| x as f32),
            Some(1e-45)
        );
        assert_eq!(shortest(f64::INFINITY), Value::Null);
    }

    #[test]
    fn ranges_are_checked() {
        let what = || "r".to_string();
        assert_eq!(range(&(2..5), 5, what), Ok((2, 5)));
        assert_eq!(range(&(5..5), 5, what), Ok((5, 5)));
        assert!(range(&Range { start: 3, end: 2 }, 5, what)
            .unwrap_err()
            .contains("reversed"));
        assert!(range(&(0..6), 5, what)
            .unwrap_err()
            .contains("past the end"));
        assert!(range(&(0..u64::MAX), i64::MAX, what)
            .unwrap_err()
            .contains("i64::MAX"));
        assert_eq!(real(f32::NAN), None);
        assert_eq!(real(1.5), Some(1.5));
        assert!(single(None).is_nan());
    }
}
