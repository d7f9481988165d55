-- Cluster mode keeps its agents in the agents table (the registry every node
-- authenticates against). Every change to the registry moves this counter, which
-- each node polls to know when to read the table again.
INSERT INTO hub_counters (name, value) VALUES ('agents', 0) ON CONFLICT (name) DO NOTHING;
