//! Look-ups of an agent's message history, for the checks its inbox's recent keys
//! cannot answer (see [`crate::domain::inbox`]): a dedupe key used long ago, a
//! `reply_to` or an ack of an old message. Each is one indexed query. Called by
//! [`super::reads::Reads`], which first waits for every queued write to commit.

use super::StoreError;
use crate::domain::message::Message;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashSet;

/// The message `from` sent with `key`, if any (`idx_messages_sender_dedupe`).
pub(crate) fn dedupe_original(
    conn: &Connection,
    from: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM messages WHERE from_agent = ?1 AND dedupe_key = ?2")?
        .query_row([from, key], |r| r.get(0))
        .optional()?)
}

/// Whether `agent` sent or received message `id` (primary keys).
pub(crate) fn sent_or_received(
    conn: &Connection,
    agent: &str,
    id: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1 AND from_agent = ?2)
                 OR EXISTS(SELECT 1 FROM message_recipients WHERE message_id = ?1 AND agent_id = ?2)",
        )?
        .query_row([id, agent], |r| r.get(0))?)
}

/// Which of `ids` were delivered to `agent` (read or not).
pub(crate) fn received_of(
    conn: &Connection,
    agent: &str,
    ids: &[String],
) -> Result<HashSet<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM message_recipients WHERE message_id = ?1 AND agent_id = ?2",
    )?;
    let mut out = HashSet::new();
    for id in ids {
        if stmt.exists([id.as_str(), agent])? {
            out.insert(id.clone());
        }
    }
    Ok(out)
}

/// The stored rows of messages `ids` (unread ones pulled from an inbox whose bodies
/// are on disk), by id.
pub(crate) fn messages_by_id(
    conn: &Connection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Message>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT * FROM messages WHERE id = ?1")?;
    let mut out = std::collections::HashMap::new();
    for id in ids {
        let mut rows = stmt.query([id])?;
        if let Some(r) = rows.next()? {
            out.insert(id.clone(), super::load::message_from_row(r)?);
        }
    }
    Ok(out)
}
