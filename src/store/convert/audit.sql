-- The reference's events name an agent, round, assignment or task; ours name one
-- entity: the task (found through the round or assignment), else the lock, else the
-- agent. Its ids and details are kept in the payload. Ours are numbered from 1 in
-- time order; the hub's own ids sort after them (src/domain/audit_id.rs).
INSERT INTO audit_events (id, event_type, entity_type, entity_id, actor, payload_json,
                          created_at, shard)
SELECT ROW_NUMBER() OVER (ORDER BY e.created_at, e.rid),
       e.event_type,
       CASE WHEN e.tid IS NOT NULL THEN 'task' WHEN e.lock_key IS NOT NULL THEN 'lock'
            WHEN e.agent_id IS NOT NULL THEN 'agent' ELSE 'hub' END,
       COALESCE(e.tid, e.lock_key, e.agent_id, 'hub'),
       CASE WHEN e.event_type = 'operator_approval' THEN 'operator' ELSE e.agent_id END,
       json_object('reference_id', e.id, 'round_id', e.round_id,
                   'assignment_id', e.assignment_id, 'details', json(e.details)),
       hub_iso(e.created_at), hub_shard(COALESCE(e.tid, e.lock_key, e.agent_id, 'hub'))
FROM (SELECT x.rowid AS rid, x.id, x.event_type, x.agent_id, x.round_id, x.assignment_id,
             x.created_at,
             COALESCE(x.task_id,
                      (SELECT r.task_id FROM ref.rounds r WHERE r.id = x.round_id),
                      (SELECT a.task_id FROM ref.assignments a WHERE a.id = x.assignment_id)) AS tid,
             CASE WHEN json_valid(x.details_json)
                  THEN CAST(json_extract(x.details_json, '$.lock_key') AS TEXT) END AS lock_key,
             CASE WHEN json_valid(x.details_json) THEN x.details_json
                  ELSE json_quote(x.details_json) END AS details
      FROM ref.audit_events x) e
ORDER BY e.created_at, e.rid
