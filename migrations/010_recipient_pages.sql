-- 010_recipient_pages.sql (ours): one agent's deliveries, newest first, a page at a
-- time (`hubctl messages --agent A [--unread]`, GET /operator/messages?agent=A), and
-- the operator's purge of them. Keyset order is (delivered_at, message_id), which
-- are the message's (created_at, id), so the cursors are those of every other list.
-- A page reads only its own rows: through idx_recipients_agent for every delivery
-- (and the purge), and through idx_recipients_unread, widened to the same columns,
-- for unread ones (older unread rows may lie behind any number of read ones).
-- Widening the unread index costs nothing per write (it had an entry per unread
-- delivery already); start-up now loads unread rows in that order (oldest first by
-- created_at, no sort). The new full index is one more B-tree entry per delivery:
-- see the README's "Purging an agent's messages" for what that costs a send.

CREATE INDEX IF NOT EXISTS idx_recipients_agent
    ON message_recipients(agent_id, delivered_at, message_id);
DROP INDEX IF EXISTS idx_recipients_unread;
CREATE INDEX idx_recipients_unread
    ON message_recipients(agent_id, delivered_at, message_id) WHERE read_at IS NULL;
