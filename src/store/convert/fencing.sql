-- Tokens only grow from the one each held lock got.
INSERT INTO lock_fencing (lock_key, last_token, shard)
SELECT lock_key, 1, hub_shard(lock_key) FROM ref.locks
