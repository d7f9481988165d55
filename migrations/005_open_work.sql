-- 005_open_work.sql: indexes for loading only open work at start-up and reading the
-- rest on demand (a task's rows by task, the open tasks by status, an agent's
-- assignments newest first). No table or column changes.

CREATE INDEX IF NOT EXISTS idx_root_tasks_status ON root_tasks(status);
CREATE INDEX IF NOT EXISTS idx_assignments_task ON assignments(root_task_id);
CREATE INDEX IF NOT EXISTS idx_assignments_agent_created ON assignments(agent_id, created_at, id);
CREATE INDEX IF NOT EXISTS idx_handoffs_task ON handoffs(root_task_id);
