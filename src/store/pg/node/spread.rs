//! Spread placement (shared/spec/cluster.md §2, "Desired owner"): every live node
//! holds the shards rendezvous hashing gives it among the live members
//! (`domain::placement`), and serves them.
//!
//! Each round (every [`STANDBY_POLL`](super::STANDBY_POLL)) a node reads the live
//! members, takes the free or lapsed shards it is desired for, and publishes the
//! shard map ([`ShardMap`]) its gateway routes calls by. Shards it holds that
//! another live node is now desired for (a node joined) are handed to that node
//! directly ([`lease::transfer`]: nobody else can take them between), after the
//! calls in flight are answered. Any change of what a node holds loads its hub
//! again (the ownership term moves), so that its memory always holds exactly its
//! shards: a gain is loaded from the store, a loss is dropped.
//!
//! A node that stops gracefully marks itself draining (it no longer counts as a
//! member) and hands each shard to its next desired owner; one that dies loses
//! its shards when their leases lapse, and each is taken by its desired owner
//! among the nodes still live.

use super::{Leader, MoveError, Node, HAND_OVER_WAIT};
use crate::domain::placement::{self, Pins};
use crate::domain::shard::{ShardId, SHARD_COUNT};
use crate::store::pg::{lease, Epoch, PgError};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Each shard's owner under a lease that has not lapsed, as last read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ShardMap {
    /// Per shard, the index of its owner in `nodes` (none: free or lapsed).
    owner: Vec<Option<u16>>,
    nodes: Vec<Leader>,
}

impl ShardMap {
    /// From `lease::owners` rows.
    pub(crate) fn from_rows(rows: Vec<(ShardId, String, String)>) -> ShardMap {
        let mut map = ShardMap {
            owner: vec![None; usize::from(SHARD_COUNT)],
            nodes: Vec::new(),
        };
        for (shard, node_id, url) in rows {
            let at = match map.nodes.iter().position(|n| n.node_id == node_id) {
                Some(i) => i,
                None => {
                    map.nodes.push(Leader { node_id, url });
                    map.nodes.len() - 1
                }
            };
            if let Some(slot) = map.owner.get_mut(usize::from(shard.0)) {
                *slot = u16::try_from(at).ok();
            }
        }
        map
    }

    /// The owner of `shard`, if one holds it.
    pub(crate) fn owner(&self, shard: ShardId) -> Option<&Leader> {
        let at = (*self.owner.get(usize::from(shard.0))?)?;
        self.nodes.get(usize::from(at))
    }

    /// The nodes holding shards.
    pub(crate) fn nodes(&self) -> &[Leader] {
        &self.nodes
    }
}

/// The shards of `held` that another of `members` is desired for, grouped by that
/// node (in id order).
pub(crate) fn gives(
    me: &str,
    held: &[(ShardId, Epoch)],
    members: &[String],
    pins: &Pins,
) -> Vec<(String, Vec<(ShardId, Epoch)>)> {
    let mut out: BTreeMap<&str, Vec<(ShardId, Epoch)>> = BTreeMap::new();
    for (shard, epoch) in held {
        match placement::desired(*shard, members, pins) {
            Some(to) if to != me => out.entry(to).or_default().push((*shard, *epoch)),
            _ => {}
        }
    }
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Node {
    /// The live members, as PostgreSQL has them now (draining ones left out).
    pub(crate) async fn members(&self) -> Result<Vec<Leader>, PgError> {
        let client = self.reads.get().await?;
        let live = lease::live_nodes(&client, self.timing.node_ttl()).await?;
        Ok(live
            .into_iter()
            .map(|(node_id, url)| Leader { node_id, url })
            .collect())
    }

    /// The shards pinned to a node, as the last round read them.
    pub(crate) fn pins(&self) -> Pins {
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Pin `shards` to live member `to` (`hubctl cluster move --shard`), then
    /// wait up to `within` for `to` to hold them all: whether it does.
    pub(crate) async fn pin_to(
        &self,
        shards: &[ShardId],
        to: &str,
        within: std::time::Duration,
    ) -> Result<bool, MoveError> {
        let live = self.members().await.map_err(MoveError::Refused)?;
        if !live.iter().any(|n| n.node_id == to) {
            let ids: Vec<String> = live.into_iter().map(|n| n.node_id).collect();
            return Err(MoveError::NotLive {
                to: to.to_string(),
                live: ids.join(", "),
            });
        }
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| MoveError::Refused(e.into()))?;
        lease::pin(&client, shards, to).await?;
        let mut maps = self.shard_maps();
        let held = |map: &ShardMap| {
            shards
                .iter()
                .all(|s| map.owner(*s).is_some_and(|o| o.node_id == to))
        };
        let waited = tokio::time::timeout(within, async {
            loop {
                if held(&maps.borrow_and_update()) {
                    return;
                }
                if maps.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        Ok(waited.is_ok() && held(&maps.borrow()))
    }

    /// Unpin `shards` (all with `None`): how many were pinned. Rendezvous places
    /// them again at the next round.
    pub(crate) async fn unpin(&self, shards: Option<&[ShardId]>) -> Result<u64, PgError> {
        let client = self.pool.get().await?;
        lease::unpin(&client, shards).await
    }

    /// The shard map and its changes.
    pub(crate) fn shard_maps(&self) -> tokio::sync::watch::Receiver<Arc<ShardMap>> {
        self.owners.subscribe()
    }

    /// Read the live members and take the free or lapsed shards this node is their
    /// desired owner for (none while it stops or moves shards).
    pub(super) async fn acquire_desired(&self) -> Result<(), PgError> {
        if self.retiring.load(Ordering::Acquire) {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let live = lease::live_nodes(&client, self.timing.node_ttl()).await?;
        let pins = lease::pins(&client).await?;
        let mut members: Vec<String> = live.into_iter().map(|(id, _)| id).collect();
        if !members.iter().any(|m| m == self.id()) {
            // It heartbeated in this round: only a clock jump hides it.
            members.push(self.id().to_string());
        }
        let missing: Vec<ShardId> = placement::shards_of(self.id(), &members, &pins)
            .into_iter()
            .filter(|s| self.owned.epoch(*s).is_none())
            .collect();
        *self.members.lock().unwrap_or_else(|p| p.into_inner()) = members;
        *self.pins.lock().unwrap_or_else(|p| p.into_inner()) = pins;
        if missing.is_empty() || self.moving.load(Ordering::Acquire) {
            return Ok(());
        }
        let ttl = self.timing.lease_ttl;
        for (shard, epoch) in lease::acquire(&client, &self.member, &missing, ttl).await? {
            self.owned.hold(shard, epoch);
        }
        Ok(())
    }

    /// Read and publish the shard map.
    pub(super) async fn find_owners(&self) -> Result<(), PgError> {
        let client = self.pool.get().await?;
        let map = Arc::new(ShardMap::from_rows(lease::owners(&client).await?));
        self.owners.send_if_modified(|m| {
            let changed = **m != *map;
            if changed {
                *m = map.clone();
            }
            changed
        });
        Ok(())
    }

    /// After a round: hand the shards another member is desired for to it, and
    /// load the hub again if what this node holds is not what it was loaded with.
    /// Both wait for the calls in flight first (new calls are refused meanwhile,
    /// and gateways send them again), so that none is cut by the reload.
    pub(super) async fn rebalance(&self) {
        if self.retiring.load(Ordering::Acquire) || self.left.load(Ordering::Acquire) {
            return;
        }
        let members = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let pins = self.pins();
        let gives = gives(self.id(), &self.owned.held(), &members, &pins);
        // A hub not loaded yet is loaded with what is held when it is: no reload.
        let serving = self.served.load(Ordering::Acquire) != u64::MAX;
        let gained = serving && {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            self.owned
                .held()
                .iter()
                .any(|(s, _)| loaded.binary_search(s).is_err())
        };
        if gives.is_empty() && !gained {
            return;
        }
        // An operator's move is under way: the next round looks again.
        let Ok(_one) = self.moves.try_lock() else {
            return;
        };
        self.moving.store(true, Ordering::Release);
        if let Some(drain) = self.drain.get() {
            let _ = tokio::time::timeout(HAND_OVER_WAIT, drain()).await;
        }
        // A new term before anything moves: what the hub still queues (a timer's
        // write, say) is dropped by the writer as of an older term, never sent
        // under an epoch the transfer is about to end (its batch would be fenced,
        // and fail with every other op in it). The hub is loaded again anyway:
        // with the shards moved here, without those moved away.
        self.owned.bump();
        let mut moved = 0;
        for (to, shards) in gives {
            let only: Vec<ShardId> = shards.iter().map(|(s, _)| *s).collect();
            match self.transfer_to(&to, Some(&only)).await {
                Ok((n, _)) => moved += n,
                Err(e @ (MoveError::Db(_) | MoveError::TimedOut)) => {
                    // It may have committed: nothing is answered from memory until
                    // the next round says what is held.
                    tracing::warn!(to, error = %e, "handing shards over failed; reloading");
                    self.owned.lose_all();
                    break;
                }
                Err(e) => tracing::warn!(to, error = %e, "handing shards over failed"),
            }
        }
        self.moving.store(false, Ordering::Release);
        self.publish();
        // Gateways here route by the new map at once, not at the next round.
        if let Err(e) = self.find_owners().await {
            tracing::warn!(error = %e, "could not read the shard map; the next round does");
        }
        if moved > 0 {
            crate::metrics::get().cluster_moved();
        }
        tracing::info!(
            moved,
            gained,
            held = self.owned.count(),
            "shards rebalanced over the live nodes"
        );
    }

    /// A graceful stop: no longer a member for the others' placement.
    pub(super) async fn mark_draining(&self) {
        let marked = async {
            let client = self.pool.get().await?;
            lease::drain(&client, &self.member).await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), marked).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not mark this node draining"),
            Err(_) => tracing::warn!("marking this node draining timed out"),
        }
    }

    /// A graceful stop, once the calls are answered: each shard to its desired
    /// owner among the other live members (what does not move is released by the
    /// caller).
    pub(super) async fn give_to_successors(&self) {
        let members: Vec<String> = match self.members().await {
            Ok(live) => live
                .into_iter()
                .map(|n| n.node_id)
                .filter(|id| id != self.id())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the members; releasing the shards");
                return;
            }
        };
        for (to, shards) in gives(self.id(), &self.owned.held(), &members, &self.pins()) {
            let only: Vec<ShardId> = shards.iter().map(|(s, _)| *s).collect();
            match self.transfer_to(&to, Some(&only)).await {
                Ok((n, _)) => tracing::info!(to, shards = n, "shards handed to their next owner"),
                Err(e) => {
                    tracing::warn!(to, error = %e, "could not hand shards over; releasing them")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_what_others_are_desired_for() {
        let members: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let all: Vec<(ShardId, Epoch)> = (0..SHARD_COUNT).map(|s| (ShardId(s), Epoch(1))).collect();
        let none = Pins::new();
        let out = gives("n1", &all, &members, &none);
        assert_eq!(
            out.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>(),
            ["n2", "n3"]
        );
        let given: usize = out.iter().map(|(_, s)| s.len()).sum();
        let kept = placement::shards_of("n1", &members, &none).len();
        assert_eq!(given + kept, usize::from(SHARD_COUNT));
        for (to, shards) in &out {
            for (s, _) in shards {
                assert_eq!(placement::owner(*s, &members), Some(to.as_str()));
            }
        }
        // Alone, or holding only its own: nothing to give.
        assert!(gives("n1", &all, &["n1".to_string()], &none).is_empty());
        let mine: Vec<(ShardId, Epoch)> = placement::shards_of("n1", &members, &none)
            .into_iter()
            .map(|s| (s, Epoch(1)))
            .collect();
        assert!(gives("n1", &mine, &members, &none).is_empty());
        // A shard of n1's pinned to n3 goes there.
        let (pinned, _) = mine[0];
        let pins: Pins = [(pinned, "n3".to_string())].into();
        let moved = gives("n1", &mine, &members, &pins);
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].0, "n3");
        assert_eq!(
            moved[0].1.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [pinned]
        );
    }

    #[test]
    fn the_map_names_each_owner() {
        let rows = vec![
            (ShardId(0), "n1".to_string(), "http://a/mcp".to_string()),
            (ShardId(5), "n2".to_string(), "http://b/mcp".to_string()),
            (ShardId(9), "n1".to_string(), "http://a/mcp".to_string()),
        ];
        let map = ShardMap::from_rows(rows);
        assert_eq!(
            map.owner(ShardId(9)).map(|l| l.url.as_str()),
            Some("http://a/mcp")
        );
        assert_eq!(
            map.owner(ShardId(5)).map(|l| l.node_id.as_str()),
            Some("n2")
        );
        assert_eq!(map.owner(ShardId(1)), None);
        assert_eq!(map.owner(ShardId(SHARD_COUNT)), None);
        assert_eq!(map.nodes().len(), 2);
        assert_eq!(ShardMap::default().owner(ShardId(0)), None);
    }
}
