-- The reference filled a missing dedupe_key with the message's own id: that is no
-- key. is_read is kept for direct messages only (a broadcast's read state is per
-- recipient).
INSERT INTO messages (id, dedupe_key, reply_to, from_agent, to_agent, round_id, msg_type,
                      subject, body, context_json, hop_count, is_read, created_at, shard)
SELECT id, NULLIF(dedupe_key, id), reply_to, from_agent, to_agent, round_id,
       CAST(msg_type AS TEXT), CAST(subject AS TEXT), CAST(body AS TEXT),
       CAST(context_json AS TEXT), hop_count,
       CASE WHEN to_agent IS NULL THEN 0 ELSE is_read END,
       hub_iso(created_at), hub_shard(from_agent)
FROM ref.messages ORDER BY created_at, rowid
