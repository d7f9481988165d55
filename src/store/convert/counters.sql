INSERT OR REPLACE INTO hub_counters (name, value) VALUES ('tasks', (SELECT COUNT(*) FROM root_tasks))
