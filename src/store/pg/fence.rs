//! The epoch fence of a write batch (shared/spec/cluster.md §2): the writer's
//! batch transaction first reads the epochs of the shards its ops are tagged with,
//! `FOR SHARE`. An epoch that differs from the tag means the node lost that shard:
//! the batch rolls back and is retried without that shard's ops, whose tickets fail
//! as fenced. The share lock makes a takeover of those shards wait until the batch
//! has committed (acquire skips the row until then), so every commit under epoch e
//! happens before epoch e+1 begins and the new owner's load sees it.
//!
//! The lock fencing tokens that encode the epoch are computed by the lock table
//! itself ([`crate::domain::lease::next_fencing_token`]).

use super::lease::{shard_epoch, shard_params};
use super::{Epoch, PgError, ShardId, Transaction};
use std::collections::HashMap;

/// Lock the lease rows of `tags`' shards for the rest of `tx` and return the
/// shards whose epoch is no longer the tagged one (empty: the batch may commit).
/// Must be the batch's first statement: what it wrote before would not be fenced.
pub async fn fence(
    tx: &Transaction<'_>,
    tags: &[(ShardId, Epoch)],
) -> Result<Vec<ShardId>, PgError> {
    let shards: Vec<ShardId> = tags.iter().map(|t| t.0).collect();
    // Shard order: the same order as renew's row locks (see `lease`).
    // Prepared once per connection: one round trip per batch, not two.
    let stmt = tx
        .prepare_cached(
            "SELECT shard, epoch FROM shard_lease WHERE shard = ANY($1)
              ORDER BY shard FOR SHARE",
        )
        .await?;
    let rows = tx.query(&stmt, &[&shard_params(&shards)]).await?;
    let stored: HashMap<ShardId, Epoch> = rows.iter().map(shard_epoch).collect::<Result<_, _>>()?;
    let mut fenced: Vec<ShardId> = tags
        .iter()
        .filter(|(shard, epoch)| stored.get(shard) != Some(epoch))
        .map(|t| t.0)
        .collect();
    fenced.sort();
    fenced.dedup();
    Ok(fenced)
}
