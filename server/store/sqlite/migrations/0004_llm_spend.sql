-- The LLM cost ledger's spend (server/llm StoredSpend), for servers without
-- a shared Redis: one row per (scope, bucket), added to in aggregate every
-- few seconds, so a restart and every server on the database see it.
-- scope '' is everyone, else a user id; kind 'minute' (the hour window) or
-- 'hour' (the day window); times in unix microseconds.
CREATE TABLE llm_spend (
    scope      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    start      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    nano_usd   INTEGER NOT NULL,
    PRIMARY KEY (scope, kind, start)
);
CREATE INDEX llm_spend_expires ON llm_spend (expires_at);
