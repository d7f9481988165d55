-- The reference has no fencing tokens: each held lock gets 1. Lapsed locks are
-- kept; the lock manager drops them as it would its own.
INSERT INTO locks (id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token,
                   expires_at, created_at, shard)
SELECT id, lock_key, holder_agent_id, CAST(resource_type AS TEXT),
       COALESCE(CAST(resource_id AS TEXT), ''), 1, hub_iso(expires_at), hub_iso(created_at),
       hub_shard(lock_key)
FROM ref.locks ORDER BY rowid
