-- A lease belongs to one process, not only to a node id: a new process started
-- with the id of one that hung (systemd restarting it, say) must not renew the
-- hung one's leases at their epoch, or the hung process, resuming, could still
-- commit under that epoch. It takes them only once they lapse, at a new epoch.
ALTER TABLE shard_lease ADD COLUMN owner_incarnation text;
