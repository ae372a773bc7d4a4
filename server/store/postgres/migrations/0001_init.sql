CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,
    hash         text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE neurons (
    id         text PRIMARY KEY,
    layer      text NOT NULL,
    state      text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Range-partitioned by month on created_at. The primary key must contain
-- the partition key, hence (id, created_at). Partitions are named
-- signals_yYYYYmMM and created ahead of time by the store (at start and by
-- RunMaintenance), never by hand. There is deliberately no DEFAULT
-- partition: rows in it would block creating the matching monthly partition
-- later; a missing partition is created on demand instead.
CREATE TABLE signals (
    id           text NOT NULL,
    user_id      text NOT NULL DEFAULT '',
    layer        text NOT NULL,
    neuron_id    text NOT NULL,
    content      text NOT NULL,
    output       text NOT NULL DEFAULT '',
    status       text NOT NULL,
    error        text NOT NULL DEFAULT '',
    tokens_in    integer NOT NULL DEFAULT 0,
    tokens_out   integer NOT NULL DEFAULT 0,
    cost_usd     double precision NOT NULL DEFAULT 0,
    duration_ms  double precision NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE signal_hops (
    signal_id   text NOT NULL,
    seq         integer NOT NULL,
    neuron_id   text NOT NULL,
    layer       text NOT NULL,
    cache       text NOT NULL,
    tokens_in   integer NOT NULL,
    tokens_out  integer NOT NULL,
    cost_usd    double precision NOT NULL,
    duration_ms double precision NOT NULL,
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (signal_id, seq)
);

CREATE TABLE memories (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    neuron_id  text NOT NULL,
    layer      text NOT NULL,
    signal_id  text NOT NULL,
    content    text NOT NULL,
    created_at timestamptz NOT NULL,
    tsv        tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX memories_signal ON memories (signal_id);
CREATE INDEX memories_tsv ON memories USING gin (tsv);
