-- Refresh tokens rotate: each refresh retires the token presented (used_at)
-- and adds its successor in the same family (one family per login). A
-- retired token presented again revokes the whole family (revoked_at).
CREATE TABLE refresh_tokens (
    id         text PRIMARY KEY,
    family_id  text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Secrets the servers on this database share (the JWT key when no
-- --jwt-secret is given), created once by whichever server comes first.
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The stale-pending sweep reads only pending signals (a partitioned index:
-- every monthly partition gets its own).
CREATE INDEX signals_pending ON signals (created_at) WHERE status = 'pending';
