-- 015_shard_pins.sql (ours): with spread placement each shard goes to the node
-- rendezvous hashing picks among the live members. `hubctl cluster move --shard
-- N --to NODE` pins a shard to a node instead (to take load off a machine, or
-- before its maintenance): while that node is a live member it is the shard's
-- desired owner; `hubctl cluster unpin` gives the shard back to rendezvous.
CREATE TABLE shard_pins (
    shard     integer PRIMARY KEY,
    node_id   text NOT NULL,
    pinned_at timestamptz NOT NULL DEFAULT now()
);
