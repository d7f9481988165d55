-- 009_node_draining.sql (ours): a node that hands its shards over (a graceful stop)
-- stays registered while its gateway forwards what still reaches it, but must no
-- longer be given shards: with the shards spread over the live nodes (rendezvous,
-- cluster.md §2), the others would keep handing it the shards it wins. A draining
-- node counts as gone for placement and as the target of a move.
ALTER TABLE nodes ADD COLUMN draining boolean NOT NULL DEFAULT false;
