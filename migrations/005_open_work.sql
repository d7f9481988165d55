-- 005_open_work.sql: indexes for loading only open work at start-up, reading the
-- rest on demand (a task's rows by task, an agent's assignments newest first) and
-- paging the operator's lists. No table or column changes.

CREATE INDEX IF NOT EXISTS idx_assignments_task ON assignments(root_task_id);
CREATE INDEX IF NOT EXISTS idx_assignments_agent_created ON assignments(agent_id, created_at, id);
CREATE INDEX IF NOT EXISTS idx_handoffs_task ON handoffs(root_task_id);
-- Keyset pages of the operator's lists, newest first, all or open only.
CREATE INDEX IF NOT EXISTS idx_root_tasks_created ON root_tasks(created_at, id);
CREATE INDEX IF NOT EXISTS idx_root_tasks_status_created ON root_tasks(status, created_at, id);
CREATE INDEX IF NOT EXISTS idx_rounds_created ON rounds(created_at, id);
CREATE INDEX IF NOT EXISTS idx_rounds_status_created ON rounds(status, created_at, id);
