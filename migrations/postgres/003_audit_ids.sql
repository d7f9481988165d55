-- 003_audit_ids.sql (ours): audit ids are chosen by the hub with the row
-- (src/domain/audit_id.rs, cluster.md §3), and a batch applied again inserts
-- nothing twice (ON CONFLICT (id) DO NOTHING). Without the identity, a row
-- inserted without an id is refused instead of taking a number that a hub's id
-- could later collide with.
ALTER TABLE audit_events ALTER COLUMN id DROP IDENTITY;
