-- Refresh tokens rotate: each refresh retires the token presented (used_at)
-- and adds its successor in the same family (one family per login). A
-- retired token presented again revokes the whole family (revoked_at).
CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Secrets the servers on this database share (the JWT key when no
-- --jwt-secret is given), created once by whichever server comes first.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- The stale-pending sweep reads only pending signals.
CREATE INDEX signals_pending ON signals (created_at) WHERE status = 'pending';

-- Memories are indexed for search once per transaction, by the store, not
-- row by row by a trigger: FTS5 flushes its index at every statement that
-- writes it, and a group commit holds many signals (see writeTx).
DROP TRIGGER memories_ai;
