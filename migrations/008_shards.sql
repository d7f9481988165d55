-- 008_shards.sql (ours): every row carries the shard of its owner, so that one
-- node can load exactly the shards it owns (shared/spec/cluster.md §2-3).
-- shard = first 8 bytes of SHA-256(owner id) read big-endian, mod 1024: frozen, and
-- recorded in hub_meta. hub_shard() is registered by the server on its connection;
-- in PostgreSQL the same value is
--   ('x' || substr(encode(sha256(owner::bytea), 'hex'), 1, 16))::bit(64)::bigint
-- taken as unsigned, mod 1024.
-- Owners: an agent (agents, message_recipients, message_reads; messages by their
-- sender), a task (root_tasks and everything under it), a lock key (locks,
-- lock_fencing), an audit event's entity (a task id or a lock key).

CREATE TABLE IF NOT EXISTS hub_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR REPLACE INTO hub_meta (name, value) VALUES ('shard_hash', 'sha256-be64-mod1024');
INSERT OR REPLACE INTO hub_meta (name, value) VALUES ('shard_count', '1024');

ALTER TABLE agents ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE agents SET shard = hub_shard(id);
ALTER TABLE messages ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET shard = hub_shard(from_agent);
ALTER TABLE message_recipients ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE message_recipients SET shard = hub_shard(agent_id);
ALTER TABLE message_reads ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE message_reads SET shard = hub_shard(agent_id);
ALTER TABLE root_tasks ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE root_tasks SET shard = hub_shard(id);
ALTER TABLE rounds ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE rounds SET shard = hub_shard(root_task_id);
ALTER TABLE assignments ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE assignments SET shard = hub_shard(root_task_id);
ALTER TABLE handoffs ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE handoffs SET shard = hub_shard(root_task_id);
ALTER TABLE operator_approvals ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE operator_approvals SET shard = COALESCE(
    (SELECT hub_shard(r.root_task_id) FROM rounds r WHERE r.id = operator_approvals.round_id), 0);
ALTER TABLE locks ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE locks SET shard = hub_shard(lock_key);
ALTER TABLE lock_fencing ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE lock_fencing SET shard = hub_shard(lock_key);
ALTER TABLE audit_events ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
UPDATE audit_events SET shard = hub_shard(entity_id);

-- No index on shard: what a node loads is live work (unread deliveries, open tasks,
-- held locks), read through the partial indexes that already exist; an index here
-- would be one more B-tree insert per message recipient, for nothing.
