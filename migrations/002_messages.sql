-- 002_messages.sql: messages with per-recipient delivery and read state.
-- `messages` keeps agent-hub-mcp's columns. `message_recipients` is new: one row per
-- recipient (a broadcast has one per agent it reached), `read_at` set on that
-- recipient's ack, so one agent's ack never hides a broadcast from the others.
-- `message_reads` keeps the reference's name and gets a row per ack, for audit.

CREATE TABLE IF NOT EXISTS messages (
    id           TEXT PRIMARY KEY,
    dedupe_key   TEXT,                  -- unique per sender, not globally
    reply_to     TEXT,
    from_agent   TEXT NOT NULL,         -- an agent id, or 'hub' for the hub's own notices
    to_agent     TEXT,                  -- NULL for a broadcast
    round_id     TEXT,
    msg_type     TEXT NOT NULL DEFAULT 'info',
    subject      TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    context_json TEXT NOT NULL DEFAULT '{}',
    hop_count    INTEGER NOT NULL DEFAULT 0,
    is_read      INTEGER NOT NULL DEFAULT 0,   -- direct messages: 1 once the recipient acked
    created_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_messages_sender_dedupe
    ON messages(from_agent, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_messages_round ON messages(round_id) WHERE round_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS message_recipients (
    message_id   TEXT NOT NULL REFERENCES messages(id),
    agent_id     TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    read_at      TEXT,
    PRIMARY KEY (message_id, agent_id)
);
CREATE INDEX IF NOT EXISTS idx_recipients_unread
    ON message_recipients(agent_id) WHERE read_at IS NULL;

CREATE TABLE IF NOT EXISTS message_reads (
    message_id TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    read_at    TEXT NOT NULL,
    PRIMARY KEY (message_id, agent_id)
);
