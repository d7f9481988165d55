-- started_at, completed_at and result_summary have no column of ours. The
-- reference's rowid is the order its tasks created their assignments in: our seq.
INSERT INTO assignments (id, round_id, root_task_id, agent_id, goal, status, progress_note,
                         claimed_at, lease_expires_at, handoff_id, created_at, updated_at, shard,
                         seq)
SELECT id, round_id, task_id, agent_id, CAST(goal AS TEXT), status,
       NULLIF(CAST(progress_note AS TEXT), ''), hub_iso(claimed_at), hub_iso(lease_expires_at),
       handoff_id, hub_iso(created_at), hub_iso(updated_at), hub_shard(task_id), rowid
FROM ref.assignments ORDER BY rowid
