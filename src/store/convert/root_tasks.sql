-- creator_agent_id is the dispatcher; the message budget counts agent messages
-- about the task's rounds (as migration 006 does).
INSERT INTO root_tasks (id, title, description, status, dispatcher_agent_id, created_at,
                        updated_at, message_count, shard)
SELECT t.id, CAST(t.title AS TEXT), CAST(t.description AS TEXT), t.status, t.creator_agent_id,
       hub_iso(t.created_at), hub_iso(t.updated_at),
       (SELECT COUNT(*) FROM ref.messages m JOIN ref.rounds r ON r.id = m.round_id
        WHERE r.task_id = t.id AND m.from_agent != 'hub'),
       hub_shard(t.id)
FROM ref.root_tasks t ORDER BY t.rowid
