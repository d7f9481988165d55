-- 003_locks.sql: TTL locks with fencing tokens.
-- `locks` keeps agent-hub-mcp's columns (plus fencing_token); one row per held key,
-- deleted on release or expiry. `lock_fencing` remembers the last token of every key
-- so that tokens only grow, across holders and restarts.

CREATE TABLE IF NOT EXISTS locks (
    id              TEXT PRIMARY KEY,
    lock_key        TEXT NOT NULL UNIQUE,
    holder_agent_id TEXT NOT NULL,
    resource_type   TEXT NOT NULL DEFAULT 'assignment',   -- assignment|branch|file_group
    resource_id     TEXT NOT NULL DEFAULT '',
    fencing_token   INTEGER NOT NULL,
    expires_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS lock_fencing (
    lock_key   TEXT PRIMARY KEY,
    last_token INTEGER NOT NULL
);
