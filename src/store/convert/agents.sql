-- Agents as the reference registered them: registered_at is its last register
-- (updated_at moves only then); capabilities were never validated.
INSERT INTO agents (id, name, capabilities, token_hash, is_active, registered_at,
                    last_heartbeat, created_at, updated_at, shard)
SELECT id, CAST(name AS TEXT), hub_list(capabilities), CAST(token_hash AS TEXT), is_active,
       hub_iso(updated_at), hub_iso(last_heartbeat), hub_iso(created_at), hub_iso(updated_at),
       hub_shard(id)
FROM ref.agents ORDER BY rowid
