-- Cluster mode: session ids ended by DELETE. A signed session id checks itself on
-- every node holding the cluster key, so a node that never saw the DELETE (the next
-- serving node after a failover) would take the ended session back; every node
-- follows this table instead. Rows hold the first 16 bytes of SHA-256 of the id
-- (hex), never the id, and go once the id would have expired anyway.
CREATE TABLE revoked_sessions (
    -- The value of the `revoked_sessions` counter the insert moved: rows are
    -- numbered in commit order, so a node reading past the last number it saw
    -- misses none.
    seq         bigint PRIMARY KEY,
    id_hash     text NOT NULL UNIQUE,
    valid_until timestamptz NOT NULL
);
CREATE INDEX revoked_sessions_valid_until ON revoked_sessions (valid_until);
INSERT INTO hub_counters (name, value) VALUES ('revoked_sessions', 0) ON CONFLICT (name) DO NOTHING;
