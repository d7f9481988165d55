-- 002_cluster.sql (ours): what several nodes on one database coordinate through
-- (shared/spec/cluster.md §2-3). Every time here is PostgreSQL's now(), never a
-- node's clock.

-- Members. A node heartbeats seen_at; a row whose seen_at is older than the node
-- TTL belongs to a dead node, and only then may another process take the same
-- node_id. incarnation (random, per process) tells the process that registered
-- from a later one with the same id, so a stalled old process cannot heartbeat,
-- acquire or renew in the new one's name.
CREATE TABLE nodes (
    node_id     text PRIMARY KEY,
    addr        text NOT NULL,
    incarnation text NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL
);

-- One row per shard, fixed forever. epoch grows by one on every change of owner
-- (acquire), never on renew or release; every write batch checks its shards'
-- epochs under FOR SHARE, so a batch of a node that lost a shard cannot commit.
-- A free shard has owner_node NULL; a lapsed one has expires_at < now().
CREATE TABLE shard_lease (
    shard      integer PRIMARY KEY CHECK (shard >= 0 AND shard < 1024),
    owner_node text,
    epoch      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz
);
INSERT INTO shard_lease (shard) SELECT s FROM generate_series(0, 1023) AS s;
-- Renewing a node's shards (every few seconds) finds them without a full scan.
CREATE INDEX idx_shard_lease_owner ON shard_lease(owner_node) WHERE owner_node IS NOT NULL;

-- Forwarding idempotency (§2, exactly-once across failover): the owner stores a
-- forwarded write's reply in the same batch as the write, keyed by the caller's
-- request id, so a retry after a failover gets the original answer. Kept 10 min.
CREATE TABLE request_log (
    request_id text PRIMARY KEY,
    shard      integer NOT NULL,
    reply      text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX idx_request_log_created ON request_log(created_at);

-- Commit outcomes lost with the connection (§3, `Unknown`): each batch inserts its
-- row, and a writer that lost the connection during COMMIT looks it up on
-- reconnect. batch_seq restarts with the process, so the incarnation is part of
-- the key.
CREATE TABLE batch_log (
    node_id      text NOT NULL,
    incarnation  text NOT NULL,
    batch_seq    bigint NOT NULL,
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (incarnation, batch_seq)
);
CREATE INDEX idx_batch_log_committed ON batch_log(committed_at);
