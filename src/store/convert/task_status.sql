-- An open task's status by our rule: awaiting the operator while any round awaits
-- approval, else dispatched while any round is open.
UPDATE root_tasks SET status = CASE
    WHEN EXISTS (SELECT 1 FROM rounds r WHERE r.root_task_id = root_tasks.id
                 AND r.status = 'awaiting_operator_approval')
        THEN 'awaiting_operator_approval'
    WHEN EXISTS (SELECT 1 FROM rounds r WHERE r.root_task_id = root_tasks.id
                 AND r.status IN ('dispatched', 'in_progress', 'awaiting_review'))
        THEN 'dispatched'
    ELSE status END
WHERE status IN ('awaiting_operator_approval', 'dispatched')
