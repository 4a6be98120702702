CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE nodes (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('trunk', 'branch', 'leaf')),
    document     TEXT NOT NULL,
    parent       INTEGER REFERENCES nodes (id),
    position     INTEGER NOT NULL CHECK (position >= 0),
    label        TEXT,
    modality     TEXT,
    byte_start   INTEGER NOT NULL,
    byte_end     INTEGER NOT NULL,
    token_start  INTEGER,
    token_end    INTEGER,
    mean_entropy REAL,
    max_entropy  REAL,
    prominence   REAL,
    coherence    REAL,
    content_hash TEXT,
    byte_len     INTEGER,
    source_path  TEXT,
    source_id    TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    CHECK ((kind = 'trunk') = (parent IS NULL)),
    CHECK (0 <= byte_start AND byte_start <= byte_end),
    CHECK (token_start IS NULL OR (0 <= token_start AND token_start <= token_end))
);
CREATE UNIQUE INDEX nodes_trunk_document ON nodes (document) WHERE kind = 'trunk';
CREATE UNIQUE INDEX nodes_parent_position ON nodes (parent, position);
CREATE INDEX nodes_document_range ON nodes (document, kind, byte_start, byte_end);
CREATE INDEX nodes_kind_entropy ON nodes (kind, mean_entropy);
CREATE INDEX nodes_source_id ON nodes (source_id) WHERE source_id IS NOT NULL;

CREATE TABLE hyperedges (
    id       INTEGER PRIMARY KEY,
    label    TEXT NOT NULL,
    weight   REAL NOT NULL,
    trunk    INTEGER NOT NULL REFERENCES nodes (id),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);
CREATE INDEX hyperedges_label ON hyperedges (label, trunk);

CREATE TABLE hyperedge_members (
    edge     INTEGER NOT NULL REFERENCES hyperedges (id),
    node     INTEGER NOT NULL REFERENCES nodes (id),
    role     TEXT NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (edge, position)
) WITHOUT ROWID;
CREATE INDEX hyperedge_members_node ON hyperedge_members (node);

CREATE VIEW trunks AS
SELECT id, position AS document_index, document, source_path, content_hash, byte_len, metadata
FROM nodes
WHERE kind = 'trunk';

CREATE VIEW branches AS
SELECT id, document, parent AS trunk, position, label, modality, byte_start, byte_end,
       source_id, metadata
FROM nodes
WHERE kind = 'branch';

CREATE VIEW leaves AS
SELECT l.id, l.document, l.parent AS branch, l.position, b.label AS branch_label, b.modality,
       l.byte_start, l.byte_end, l.token_start, l.token_end,
       l.mean_entropy, l.max_entropy, l.prominence, l.coherence, l.metadata
FROM nodes AS l
JOIN nodes AS b ON b.id = l.parent
WHERE l.kind = 'leaf';
