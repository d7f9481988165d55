-- 001_init.sql: agents and the audit trail.
-- Table and column names follow agent-hub-mcp 0.2.1 so that operators' SQL keeps
-- working. Later features add their tables in their own numbered migrations.
-- Timestamps are ISO-8601 UTC strings written by the server (never SQLite's clock).

CREATE TABLE IF NOT EXISTS agents (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    capabilities    TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    token_hash      TEXT NOT NULL DEFAULT '',     -- first 32 hex chars of SHA-256(token)
    is_active       INTEGER NOT NULL DEFAULT 1,   -- 0 once removed from agents.env
    registered_at   TEXT,                         -- last agent_register, NULL if never
    last_heartbeat  TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type   TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    actor        TEXT,                             -- agent id, 'operator' or 'system'
    payload_json TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_audit_entity ON audit_events(entity_type, entity_id);
