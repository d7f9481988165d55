UPDATE rounds SET status = 'cancelled', updated_at = ?1
WHERE status NOT IN ('completed', 'changes_requested', 'cancelled')
  AND root_task_id IN (SELECT id FROM root_tasks WHERE status IN ('completed', 'closed'))
