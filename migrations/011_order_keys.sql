-- 011_order_keys.sql (ours): the order of a task's assignments as a stored value
-- instead of SQLite's rowid, which PostgreSQL has no equivalent of (cluster.md §3).
-- seq is an assignment's place among its task's, in the order the task created
-- them: chosen by the task for a new one (after all it holds), and for existing
-- rows their rowid, which is that order. Handoffs and operator decisions need no
-- column: each is made by its own call at its own time, so (created_at, id) is
-- their order. No index: a task's few assignments are found through
-- idx_assignments_task and sorted.
ALTER TABLE assignments ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE assignments SET seq = rowid;
