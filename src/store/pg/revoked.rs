//! `revoked_sessions`: the signed session ids ended by DELETE (their hash), which
//! every node follows so that no node takes an ended session back (see
//! `mcp::session`). Written by the node that ends the session, in a transaction of
//! its own (like the agent registry, it is not a shard's state); each row takes
//! the next value of the `revoked_sessions` counter, whose row lock orders the
//! inserts, so a reader that asks for the rows past the last number it saw misses
//! none.

use super::{PgError, Pool};

/// One ended session: its id's hash, when it would have expired (Unix seconds),
/// and its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub seq: i64,
    pub id_hash: String,
    pub valid_until: i64,
}

/// Record that the session whose id hashes to `id_hash` was ended. Ending it again
/// changes nothing.
pub(crate) async fn insert(pool: &Pool, id_hash: &str, valid_until: i64) -> Result<(), PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let seq: i64 = tx
        .query_one(
            "UPDATE hub_counters SET value = value + 1 WHERE name = 'revoked_sessions'
             RETURNING value",
            &[],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "INSERT INTO revoked_sessions (seq, id_hash, valid_until)
         VALUES ($1, $2, to_timestamp($3::bigint))
         ON CONFLICT (id_hash) DO NOTHING",
        &[&seq, &id_hash, &valid_until],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Up to `limit` rows numbered after `after`, in order.
pub(crate) async fn since(pool: &Pool, after: i64, limit: i64) -> Result<Vec<Row>, PgError> {
    let client = pool.get().await?;
    client
        .query(
            "SELECT seq, id_hash, extract(epoch FROM valid_until)::bigint
               FROM revoked_sessions WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &limit],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Row {
                seq: r.try_get(0)?,
                id_hash: r.try_get(1)?,
                valid_until: r.try_get(2)?,
            })
        })
        .collect()
}

/// Delete the rows of ids that have expired anyway; returns how many went.
pub(crate) async fn prune(pool: &Pool) -> Result<u64, PgError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM revoked_sessions WHERE valid_until < now()",
            &[],
        )
        .await?)
}
