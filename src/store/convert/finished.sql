-- The reference's close (and an approving review beside another round) left work
-- claimable; a finished task's unfinished assignments are cancelled, as our close
-- does.
UPDATE assignments SET status = 'cancelled', lease_expires_at = NULL, updated_at = ?1
WHERE status NOT IN ('completed', 'cancelled')
  AND root_task_id IN (SELECT id FROM root_tasks WHERE status IN ('completed', 'closed'))
