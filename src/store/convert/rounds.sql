-- The reference keeps no plan text: rebuilt from the round's assignments. Its one
-- operator decision per round gives the note, and a reject of a round still
-- awaiting approval marks it rejected; only an approving review completes a round.
-- The reference never moves a round to in_progress: ours are from their first claim.
INSERT INTO rounds (id, root_task_id, round_number, status, plan_json, operator_note,
                    rejected, review_verdict, review_note, created_at, updated_at, shard)
SELECT r.id, r.task_id, r.round_number,
       CASE WHEN r.status = 'dispatched' AND EXISTS (
                SELECT 1 FROM ref.assignments a WHERE a.round_id = r.id AND a.status != 'pending')
            THEN 'in_progress' ELSE r.status END,
       json_object('assignments', json((
           SELECT json_group_array(json_object('agent_id', a.agent_id, 'goal', a.goal))
           FROM (SELECT agent_id, goal FROM ref.assignments
                 WHERE round_id = r.id ORDER BY rowid) a))),
       (SELECT NULLIF(CAST(o.operator_note AS TEXT), '') FROM ref.operator_approvals o
        WHERE o.round_id = r.id ORDER BY o.rowid DESC LIMIT 1),
       r.status = 'awaiting_operator_approval' AND EXISTS (
           SELECT 1 FROM ref.operator_approvals o
           WHERE o.round_id = r.id AND o.operator_action = 'reject'),
       CASE WHEN r.status = 'completed' THEN 'approved' END,
       NULL, hub_iso(r.created_at), hub_iso(r.updated_at), hub_shard(r.task_id)
FROM ref.rounds r ORDER BY r.rowid
