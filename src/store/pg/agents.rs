//! Cluster mode's agent registry: the `agents` table, which every node
//! authenticates against (by `token_hash`, so no token is ever stored), and the
//! `agents` counter of `hub_counters`, moved by every change so that a node
//! polling it knows when to read the table again.
//!
//! Changes are written by the node where the operator made them (its reload), in
//! one transaction of their own, not through a shard owner's fenced writer: the
//! registry is configuration, like the lease rows, not state of a shard. The node
//! serving the shards only reads it (it writes names, capabilities and heartbeats
//! of these rows, never `token_hash` or `is_active`).

use super::{PgError, Pool};
use crate::config::registry::Change;
use tokio_postgres::IsolationLevel;

/// The registry as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The counter's value: unchanged means the rows are unchanged.
    pub version: i64,
    /// Active agents as `(id, token_hash)`, by id.
    pub rows: Vec<(String, String)>,
}

const VERSION: &str = "SELECT value FROM hub_counters WHERE name = 'agents'";
const BUMP: &str = "UPDATE hub_counters SET value = value + 1 WHERE name = 'agents'";

/// The counter alone (polled every second by each node).
pub(crate) async fn version(pool: &Pool) -> Result<i64, PgError> {
    let client = pool.get().await?;
    Ok(client.query_one(VERSION, &[]).await?.try_get(0)?)
}

/// The active agents and the counter, read in one snapshot.
pub(crate) async fn load(pool: &Pool) -> Result<Listed, PgError> {
    let mut client = pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let version: i64 = tx.query_one(VERSION, &[]).await?.try_get(0)?;
    let rows = tx
        .query(
            "SELECT id, token_hash FROM agents WHERE is_active ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(String, String)>, PgError>>()?;
    tx.commit().await?;
    Ok(Listed { version, rows })
}

/// Add the agents of `rows` that the table has never had (no row, active or
/// not): what a node starting with its `agents.env` brings to the cluster. An
/// agent removed elsewhere stays removed, and one rotated elsewhere keeps its new
/// token. Returns the ids added.
pub(crate) async fn seed(pool: &Pool, rows: &[(String, String)]) -> Result<Vec<String>, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert = tx
        .prepare(
            "INSERT INTO agents (id, name, token_hash, is_active, created_at, updated_at, shard)
             VALUES ($1, $1, $2, true, now(), now(), $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let mut added = Vec::new();
    for (id, hash) in rows {
        if tx
            .execute(&insert, &[id, hash, &super::apply::shard(id)])
            .await?
            == 1
        {
            added.push(id.clone());
        }
    }
    if !added.is_empty() {
        tx.execute(BUMP, &[]).await?;
    }
    tx.commit().await?;
    Ok(added)
}

/// Put `change` in the table, all or nothing: upserted agents are active with
/// their token, removed ones inactive (their rows, messages and history stay).
pub(crate) async fn apply(pool: &Pool, change: &Change) -> Result<(), PgError> {
    if change.is_empty() {
        return Ok(());
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let upsert = tx
        .prepare(
            "INSERT INTO agents (id, name, token_hash, is_active, created_at, updated_at, shard)
             VALUES ($1, $1, $2, true, now(), now(), $3)
             ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash,
                 is_active = true, updated_at = now()",
        )
        .await?;
    for (id, hash) in &change.upserts {
        tx.execute(&upsert, &[id, hash, &super::apply::shard(id)])
            .await?;
    }
    if !change.removals.is_empty() {
        tx.execute(
            "UPDATE agents SET is_active = false, updated_at = now()
              WHERE id = ANY($1) AND is_active",
            &[&change.removals],
        )
        .await?;
    }
    tx.execute(BUMP, &[]).await?;
    tx.commit().await?;
    Ok(())
}
