-- 009_audit_filters.sql: `hubctl audit --agent A` and `--kind K` (and the
-- dashboard's audit filters) page newest first through these instead of walking
-- the whole log. The rowid (the id) is part of each index, so the page order
-- (created_at DESC, id DESC) comes straight from it.
CREATE INDEX IF NOT EXISTS idx_audit_actor ON audit_events(actor, created_at);
CREATE INDEX IF NOT EXISTS idx_audit_type ON audit_events(event_type, created_at);
