-- 014_locks_holder.sql (ours): with spread placement an agent's locks are held
-- at their keys' nodes; max_locks_per_agent counts the agent's locks held at the
-- other nodes from here before a new grant.
CREATE INDEX idx_locks_holder ON locks(holder_agent_id);
