-- Times are INTEGER microseconds since the Unix epoch (UTC): exact, compact,
-- sortable, and the same precision PostgreSQL's timestamptz keeps.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE neurons (
    id         TEXT PRIMARY KEY,
    layer      TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE signals (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL DEFAULT '',
    layer        TEXT NOT NULL,
    neuron_id    TEXT NOT NULL,
    content      TEXT NOT NULL,
    output       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    error        TEXT NOT NULL DEFAULT '',
    tokens_in    INTEGER NOT NULL DEFAULT 0,
    tokens_out   INTEGER NOT NULL DEFAULT 0,
    cost_usd     REAL NOT NULL DEFAULT 0,
    duration_ms  REAL NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE INDEX signals_created ON signals (created_at);

CREATE TABLE signal_hops (
    signal_id   TEXT NOT NULL REFERENCES signals(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    neuron_id   TEXT NOT NULL,
    layer       TEXT NOT NULL,
    cache       TEXT NOT NULL,
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    cost_usd    REAL NOT NULL,
    duration_ms REAL NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (signal_id, seq)
) WITHOUT ROWID;

CREATE TABLE memories (
    id         INTEGER PRIMARY KEY,
    neuron_id  TEXT NOT NULL,
    layer      TEXT NOT NULL,
    signal_id  TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX memories_signal ON memories (signal_id);

-- External-content FTS5 index over memories.content, kept in step by triggers.
-- porter stems English like PostgreSQL's 'english' configuration does;
-- remove_diacritics 2 lets "cafe" find "café".
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content,
    content = 'memories',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER memories_au AFTER UPDATE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content);
END;
