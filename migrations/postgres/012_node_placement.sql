-- 012_node_placement.sql (ours): the cluster_placement each node runs with, so
-- that a node started with the other one is refused instead of fighting over the
-- shards (a standby-placement node takes every shard, spread nodes hand them
-- out). NULL: a node of a build before this column, never judged.
ALTER TABLE nodes ADD COLUMN placement text;
