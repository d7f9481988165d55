-- 006_retention.sql: what retention needs. A task's message budget is kept on the
-- task ("ours"), so that pruning old messages never gives a task its budget back;
-- the indexes find what a retention policy names without scanning history.

ALTER TABLE root_tasks ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;  -- ours
UPDATE root_tasks SET message_count = (
    SELECT COUNT(*) FROM rounds r JOIN messages m ON m.round_id = r.id
    WHERE r.root_task_id = root_tasks.id AND m.from_agent != 'hub'
);
CREATE INDEX IF NOT EXISTS idx_messages_created ON messages(created_at);
CREATE INDEX IF NOT EXISTS idx_root_tasks_status_updated ON root_tasks(status, updated_at);
CREATE INDEX IF NOT EXISTS idx_audit_created ON audit_events(created_at);
-- Deleting a task's rows checks and finds its children through these.
CREATE INDEX IF NOT EXISTS idx_approvals_round ON operator_approvals(round_id);
CREATE INDEX IF NOT EXISTS idx_handoffs_assignment ON handoffs(assignment_id);
