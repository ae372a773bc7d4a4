-- The LLM cost ledger's spend (server/llm StoredSpend), for servers without
-- a shared Redis: one row per (scope, bucket), added to in aggregate every
-- few seconds, so a restart and every server on the database see it.
-- scope '' is everyone, else a user id; kind 'minute' (the hour window) or
-- 'hour' (the day window).
CREATE TABLE llm_spend (
    scope      text NOT NULL,
    kind       text NOT NULL,
    start      timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    nano_usd   bigint NOT NULL,
    PRIMARY KEY (scope, kind, start)
);
CREATE INDEX llm_spend_expires ON llm_spend (expires_at);
