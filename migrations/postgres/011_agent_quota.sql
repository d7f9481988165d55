-- 011_agent_quota.sql (ours): the per-agent quotas that span tasks, with the
-- shards spread over several nodes (cluster.md §2, "Requests that touch several
-- shards"): max_simultaneous_assignments (kind 'active': a claimed or
-- in-progress assignment) and max_open_tasks_per_agent (kind 'open': a task the
-- agent created that is neither completed nor closed). An agent's items may be
-- at several nodes, so the node about to write one first takes a unit here,
-- counting the agent's units under a lock on its agents row; the item's owner
-- gives it back (in the batch that ends the item, under the item's fence).
-- A unit whose item was never written (its node died between the two steps)
-- stops counting after 30 s: a leaked unit tightens the quota for that long at
-- most, and never lets it be exceeded.
CREATE TABLE agent_quota (
    kind       text NOT NULL,
    item_id    text NOT NULL,
    agent_id   text NOT NULL,
    -- The item's task's shard: whose owner gives the unit back.
    shard      integer NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (kind, item_id)
);
CREATE INDEX idx_agent_quota_agent ON agent_quota(agent_id, kind);
