-- 007_counters.sql: counts the hub reports, kept up to date by the writer so that
-- start-up reads one row instead of counting history ("ours").

CREATE TABLE IF NOT EXISTS hub_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR REPLACE INTO hub_counters (name, value) VALUES ('tasks', (SELECT COUNT(*) FROM root_tasks));
