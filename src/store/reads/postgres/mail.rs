//! Messaging history on PostgreSQL: the twins of SQLite's [`crate::store::mail`],
//! the look-ups an inbox's recent keys cannot answer. Same answers for the same
//! stored rows (`pg::conformance::reads_activation` compares them). A list of ids
//! is one statement (`= ANY($n)`) where SQLite asks once per id: one round trip,
//! the same rows.

use super::activation::{query_all, Arg};
use crate::domain::message::Message;
use crate::store::columns::{self, Columns};
use crate::store::pg::PgError;
use deadpool_postgres::GenericClient;
use std::collections::{HashMap, HashSet};

/// SQLite's `dedupe_original`: the message `from` sent with `key`, if any
/// (`idx_messages_sender_dedupe`, unique).
pub(crate) async fn dedupe_original(
    c: &impl GenericClient,
    from: &str,
    key: &str,
) -> Result<Option<String>, PgError> {
    let stmt = c
        .prepare_cached("SELECT id FROM messages WHERE from_agent = $1 AND dedupe_key = $2")
        .await?;
    match c.query_opt(&stmt, &[&from, &key]).await? {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

/// SQLite's `sent_or_received`: whether `agent` sent or received message `id`.
pub(crate) async fn sent_or_received(
    c: &impl GenericClient,
    agent: &str,
    id: &str,
) -> Result<bool, PgError> {
    let stmt = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND from_agent = $2)
                 OR EXISTS (SELECT 1 FROM message_recipients
                             WHERE message_id = $1 AND agent_id = $2)",
        )
        .await?;
    Ok(c.query_one(&stmt, &[&id, &agent]).await?.try_get(0)?)
}

/// SQLite's `received_of`: which of `ids` were delivered to `agent` (read or not).
pub(crate) async fn received_of(
    c: &impl GenericClient,
    agent: &str,
    ids: &[String],
) -> Result<HashSet<String>, PgError> {
    let stmt = c
        .prepare_cached(
            "SELECT message_id FROM message_recipients
              WHERE agent_id = $1 AND message_id = ANY($2)",
        )
        .await?;
    c.query(&stmt, &[&agent, &ids])
        .await?
        .iter()
        .map(|r| r.text("message_id"))
        .collect()
}

/// Every column of `messages`, the time as the hub's text.
const MESSAGE_COLUMNS: &str = "id, dedupe_key, reply_to, from_agent, to_agent, round_id, msg_type,
     subject, body, context_json, hop_count, hub_iso(created_at) AS created_at";

/// SQLite's `messages_by_id`: the stored rows of messages `ids`, by id (missing
/// ones left out).
pub(crate) async fn messages_by_id(
    c: &impl GenericClient,
    ids: &[String],
) -> Result<HashMap<String, Message>, PgError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1)");
    let args = [Arg::Texts(ids.to_vec())];
    let found = query_all(c, &sql, &args, columns::message).await?;
    Ok(found.into_iter().map(|m| (m.id.clone(), m)).collect())
}

/// Spread placement: the deliveries other nodes left in the outbox for agents of
/// `shards` (served here), or for `agent` alone, oldest first, at most
/// [`OUTBOX_PAGE`]: (recipient, message). Rows of agents removed from the
/// registry wait (delivered if the agent comes back), never blocking the others.
pub(crate) async fn outbox(
    c: &impl GenericClient,
    shards: &[crate::domain::shard::ShardId],
    agent: Option<&str>,
) -> Result<Vec<Outboxed>, PgError> {
    let only = if agent.is_some() {
        "AND o.agent_id = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT o.agent_id AS outbox_agent, o.event_json AS outbox_event,
                m.id, m.dedupe_key, m.reply_to, m.from_agent,
                m.to_agent, m.round_id, m.msg_type, m.subject, m.body, m.context_json,
                m.hop_count, hub_iso(m.created_at) AS created_at
           FROM delivery_outbox o JOIN messages m ON m.id = o.message_id
           JOIN agents a ON a.id = o.agent_id AND a.is_active
          WHERE o.shard = ANY($1) {only}
          ORDER BY o.created_at, o.message_id COLLATE \"C\", o.agent_id COLLATE \"C\"
          LIMIT {OUTBOX_PAGE}"
    );
    let mut args = vec![Arg::Shards(shards.iter().map(|s| i32::from(s.0)).collect())];
    if let Some(a) = agent {
        args.push(Arg::Text(a.to_string()));
    }
    query_all(c, &sql, &args, |r| {
        let event = r
            .text_opt("outbox_event")?
            .and_then(|e| serde_json::from_str(&e).ok());
        Ok(Outboxed {
            agent: r.text("outbox_agent")?,
            message: columns::message(r)?,
            event,
        })
    })
    .await
}

/// How many live locks `agent` holds outside the shards `held` (spread
/// placement: at other nodes).
pub(crate) async fn locks_elsewhere(
    c: &impl GenericClient,
    agent: &str,
    held: &[crate::domain::shard::ShardId],
) -> Result<usize, PgError> {
    let held: Vec<i32> = held.iter().map(|s| i32::from(s.0)).collect();
    let row = c
        .query_one(
            "SELECT count(*) FROM locks
              WHERE holder_agent_id = $1 AND expires_at > now() AND NOT (shard = ANY($2))",
            &[&agent, &held],
        )
        .await?;
    Ok(row.try_get::<_, i64>(0)?.max(0) as usize)
}

/// How many deliveries wait in `delivery_outbox` (for the recipient's node to
/// make them), of agents still active.
pub(crate) async fn outbox_len(c: &impl GenericClient) -> Result<u64, PgError> {
    let row = c
        .query_one(
            "SELECT count(*) FROM delivery_outbox o
               JOIN agents a ON a.id = o.agent_id AND a.is_active",
            &[],
        )
        .await?;
    Ok(row.try_get::<_, i64>(0)?.max(0) as u64)
}

/// A delivery another node left in `delivery_outbox` for an agent served here.
#[derive(Debug, Clone)]
pub(crate) struct Outboxed {
    pub agent: String,
    pub message: Message,
    /// A hub notice's channel event, to push once the delivery is taken.
    pub event: Option<crate::domain::channel::Item>,
}

/// The most outbox rows read at once.
pub(crate) const OUTBOX_PAGE: usize = 256;

/// Spread placement: the unread messages of `agent` (served by another node) as
/// stored, delivered or still in the outbox, and their bytes as the inbox quota
/// counts them (`Message::pull_size`): what a sender's node checks against it.
pub(crate) async fn inbox_size(c: &impl GenericClient, agent: &str) -> Result<(u64, u64), PgError> {
    let shard = i32::from(crate::domain::shard::shard_of(agent).0);
    let row = c
        .query_one(
            "SELECT count(*),
                    coalesce(sum(octet_length(m.id) + coalesce(octet_length(m.dedupe_key), 0)
                                 + coalesce(octet_length(m.reply_to), 0)
                                 + octet_length(m.from_agent)
                                 + coalesce(octet_length(m.to_agent), 0)
                                 + coalesce(octet_length(m.round_id), 0)
                                 + octet_length(m.msg_type) + octet_length(m.subject)
                                 + octet_length(m.body) + octet_length(m.context_json)
                                 + octet_length(hub_iso(m.created_at)) + $3), 0)::bigint
               FROM (SELECT message_id FROM message_recipients
                      WHERE shard = $2 AND agent_id = $1 AND read_at IS NULL
                     UNION ALL
                     SELECT message_id FROM delivery_outbox
                      WHERE shard = $2 AND agent_id = $1) d
               JOIN messages m ON m.id = d.message_id",
            &[
                &agent,
                &shard,
                &(crate::domain::message::PULL_OVERHEAD_BYTES as i32),
            ],
        )
        .await?;
    let (n, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((n.max(0) as u64, bytes.max(0) as u64))
}
