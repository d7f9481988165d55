-- 010_delivery_outbox.sql (ours): deliveries to agents whose shards another node
-- serves (spread placement; cluster.md §2, "Requests that touch several shards").
-- The sender's node writes the message (its shard, under its fence) and one row
-- here per recipient served elsewhere. The recipient's owner takes the row: it
-- writes the delivery (message_recipients, the recipient's shard, under its own
-- fence) and deletes the row in one batch, so each recipient ends with exactly
-- one delivery, whichever node fails between the two steps. shard is the
-- recipient's: each node reads the rows of the shards it serves.
CREATE TABLE delivery_outbox (
    message_id text NOT NULL,
    agent_id   text NOT NULL,
    shard      integer NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (message_id, agent_id)
);
CREATE INDEX idx_delivery_outbox_shard ON delivery_outbox(shard, created_at);
