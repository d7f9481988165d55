-- 004_order_keys.sql (ours): SQLite's 011, assignments.seq (the order a task
-- created its assignments in, chosen by the task). No default once added: the
-- writer names it, as it does `shard`.
ALTER TABLE assignments ADD COLUMN seq bigint NOT NULL DEFAULT 0;
ALTER TABLE assignments ALTER COLUMN seq DROP DEFAULT;
