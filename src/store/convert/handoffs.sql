-- List fields were stored as the text an agent sent (its documented form is a
-- JSON-encoded list); the round and task come from the assignment.
INSERT INTO handoffs (id, assignment_id, round_id, root_task_id, from_agent, branch,
                      commit_hash, changed_files, tests_run, risks, next_steps, notes,
                      created_at, shard)
SELECT h.id, h.assignment_id, a.round_id, a.task_id, h.from_agent,
       COALESCE(CAST(h.branch AS TEXT), ''), COALESCE(CAST(h.commit_hash AS TEXT), ''),
       hub_list(h.changed_files), hub_list(h.tests_run), hub_list(h.risks),
       hub_list(h.next_steps), COALESCE(CAST(h.notes AS TEXT), ''),
       hub_iso(h.created_at), hub_shard(a.task_id)
FROM ref.handoffs h JOIN ref.assignments a ON a.id = h.assignment_id ORDER BY h.rowid
