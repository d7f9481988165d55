INSERT INTO operator_approvals (id, round_id, action, note, created_at, shard)
SELECT o.id, o.round_id, CAST(o.operator_action AS TEXT),
       COALESCE(CAST(o.operator_note AS TEXT), ''), hub_iso(o.created_at),
       COALESCE((SELECT hub_shard(r.task_id) FROM ref.rounds r WHERE r.id = o.round_id), 0)
FROM ref.operator_approvals o ORDER BY o.rowid
