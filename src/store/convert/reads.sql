-- A read receipt per read delivery, as our acks write them.
INSERT INTO message_reads (message_id, agent_id, read_at, shard)
SELECT message_id, agent_id, read_at, shard FROM message_recipients WHERE read_at IS NOT NULL
