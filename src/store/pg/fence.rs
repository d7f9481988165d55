//! The epoch fence of a write batch (shared/spec/cluster.md §2): the writer's
//! batch transaction first reads the epochs of the shards its ops are tagged with,
//! `FOR SHARE`. An epoch that differs from the tag means the node lost that shard:
//! the batch rolls back and is retried without that shard's ops, whose tickets fail
//! as fenced. The share lock makes a takeover of those shards wait until the batch
//! has committed (acquire skips the row until then), so every commit under epoch e
//! happens before epoch e+1 begins and the new owner's load sees it.
//!
//! Also the lock fencing tokens of cluster mode, which encode the shard's epoch.

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
    let rows = tx
        .query(
            "SELECT shard, epoch FROM shard_lease WHERE shard = ANY($1)
              ORDER BY shard FOR SHARE",
            &[&shard_params(&shards)],
        )
        .await?;
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

/// The fencing token of a lock grant by the owner of the key's shard under
/// `epoch`, after `last` (the key's last stored token, 0 if none):
/// `(epoch << 32) | counter`. Within one epoch the counter goes on from `last`; a
/// newer epoch starts above every token of older ones, even ones its new owner
/// never saw. Single-node mode has epoch 0, where this is `last + 1` as today.
pub fn next_fencing_token(last: u64, epoch: Epoch) -> u64 {
    let floor = u64::try_from(epoch.0).unwrap_or(0).saturating_mul(1 << 32);
    last.max(floor).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_grow_within_and_across_epochs() {
        assert_eq!(next_fencing_token(0, Epoch(0)), 1);
        assert_eq!(next_fencing_token(41, Epoch(0)), 42);
        let first = next_fencing_token(41, Epoch(1));
        assert_eq!(first, (1 << 32) | 1);
        assert_eq!(next_fencing_token(first, Epoch(1)), (1 << 32) | 2);
        // A newer epoch's first token exceeds anything the older one could have
        // granted, stored or not.
        let old_last = (1u64 << 32) | 0xffff_fffe;
        let next = next_fencing_token(first, Epoch(2));
        assert!(next > old_last && next == (2 << 32) | 1);
        // Stored tokens above the floor (a counter that overflowed) still grow.
        assert_eq!(next_fencing_token(5 << 32, Epoch(3)), (5 << 32) + 1);
    }
}
