-- One delivery per recipient: a direct message's to_agent, or every agent but its
-- sender for a broadcast (to_agent NULL). Read when the reference marked the
-- message read (its ack of a broadcast marked it read for everybody) or recorded a
-- read receipt; when is unknown, so the conversion's time (?1).
INSERT INTO message_recipients (message_id, agent_id, delivered_at, read_at, shard)
SELECT m.id, d.agent, hub_iso(m.created_at),
       CASE WHEN m.is_read = 1 THEN COALESCE(hub_iso(mr.read_at), ?1)
            ELSE hub_iso(mr.read_at) END,
       hub_shard(d.agent)
FROM ref.messages m
JOIN (SELECT id AS message_id, to_agent AS agent FROM ref.messages WHERE to_agent IS NOT NULL
      UNION ALL
      SELECT b.id, a.id FROM ref.messages b JOIN temp.convert_agents a ON a.id != b.from_agent
      WHERE b.to_agent IS NULL) d ON d.message_id = m.id
LEFT JOIN ref.message_reads mr ON mr.message_id = m.id AND mr.agent_id = d.agent
ORDER BY m.created_at, m.rowid, d.agent
