//! This process as a node of a PostgreSQL-backed hub (cluster.md §2): its
//! registration, the shard leases it holds, and the loop that keeps them.
//!
//! What is built: one node serving every shard. At start it registers (a live
//! node with the same id is refused; the registration of a previous process of
//! this id that died without leaving is waited out) and acquires all 1024 shards
//! (waiting out the leases of such a process). Then every [`RENEW_EVERY`] it
//! heartbeats and renews them. A node that has not renewed for
//! [`SELF_FENCE_AFTER`] (two thirds of the lease) stops writing before its
//! leases can lapse in the database's clock; when it holds every shard again, the
//! writer's probe passes and the hub reloads from the store. On a graceful stop
//! it leaves, freeing the shards at once. Several nodes sharing the shards need
//! forwarding (§2), which is not built: a second node with another id finds the
//! shards held and refuses to start.

use super::lease::{self, Member};
use super::ownership::Ownership;
use super::{PgError, Pool, ShardId};
use crate::domain::shard::SHARD_COUNT;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a lease lasts without renewal (in the database's clock).
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long a node's registration lasts without a heartbeat.
pub(crate) const NODE_TTL: Duration = Duration::from_secs(10);
/// How often leases are renewed and the node heartbeats.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(2);
/// Without a successful renewal for this long, the node stops writing: a third of
/// the lease is left as margin for a renewal in flight and for clock drift.
pub(crate) const SELF_FENCE_AFTER: Duration = Duration::from_millis(6_600);

/// This node: its registration and the shards it holds.
pub(crate) struct Node {
    pool: Pool,
    member: Member,
    owned: Arc<Ownership>,
}

fn all_shards() -> Vec<ShardId> {
    (0..SHARD_COUNT).map(ShardId).collect()
}

impl Node {
    /// Register as `node_id` (reachable at `addr`) and acquire every shard,
    /// waiting out what a dead previous process of this id left behind.
    pub(crate) async fn join(pool: Pool, node_id: &str, addr: &str) -> Result<Node, PgError> {
        let started = Instant::now();
        let patience = NODE_TTL.max(LEASE_TTL) + Duration::from_secs(2);
        let mut told = false;
        let member = loop {
            let client = pool.get().await?;
            match lease::register(&client, node_id, addr, NODE_TTL).await {
                Ok(m) => break m,
                Err(PgError::NodeIdInUse(_)) if started.elapsed() < patience => {
                    if !told {
                        tracing::warn!(node_id, wait_s = patience.as_secs(), "node id registered by a live or recently stopped process; waiting for its registration to lapse");
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let node = Node {
            pool,
            member,
            owned: Arc::new(Ownership::default()),
        };
        loop {
            node.acquire_missing().await?;
            let held = node.owned.count();
            if held == usize::from(SHARD_COUNT) {
                break;
            }
            if started.elapsed() >= patience {
                let _ = node.leave().await;
                return Err(PgError::Incompatible(format!(
                    "other live nodes hold {} of the {SHARD_COUNT} shards; running several nodes needs forwarding, which this build does not have (docs/cluster.md)",
                    usize::from(SHARD_COUNT) - held
                )));
            }
            if !told {
                tracing::warn!(
                    held,
                    "shards still leased by a previous process; waiting for the leases to lapse"
                );
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::info!(node_id, shards = node.owned.count(), "holding every shard");
        Ok(node)
    }

    /// The registration, for the writer's `batch_log` and probe.
    pub(crate) fn member(&self) -> &Member {
        &self.member
    }

    /// The shards held, shared with the writer.
    pub(crate) fn ownership(&self) -> Arc<Ownership> {
        self.owned.clone()
    }

    /// Take every free or lapsed shard not held.
    async fn acquire_missing(&self) -> Result<(), PgError> {
        let missing: Vec<ShardId> = all_shards()
            .into_iter()
            .filter(|s| self.owned.epoch(*s).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        for (shard, epoch) in lease::acquire(&client, &self.member, &missing, LEASE_TTL).await? {
            self.owned.hold(shard, epoch);
        }
        Ok(())
    }

    /// One round: heartbeat, renew what is held (a shard not renewed is lost),
    /// take what is missing.
    async fn renew_once(&self) -> Result<(), PgError> {
        let client = self.pool.get().await?;
        lease::heartbeat(&client, &self.member).await?;
        let renewed = lease::renew(&client, &self.member, LEASE_TTL).await?;
        drop(client);
        let kept: std::collections::HashMap<ShardId, super::Epoch> =
            renewed.iter().copied().collect();
        for (shard, epoch) in self.owned.held() {
            if kept.get(&shard) != Some(&epoch) {
                tracing::error!(
                    shard = shard.0,
                    "lease lost; writes stop until it is held again"
                );
                self.owned.lose(shard);
            }
        }
        // Renewed at an unchanged epoch: nobody else held it meanwhile, so it is
        // held again after a self-fence (whose writes failed; the hub reloads).
        for (shard, epoch) in renewed {
            self.owned.hold(shard, epoch);
        }
        self.acquire_missing().await
    }

    /// Keep the leases until the process ends (spawned by `serve`).
    pub(crate) async fn keep(self: Arc<Node>) {
        let mut last_ok = Instant::now();
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Measured from before the request: the database's expiry is later.
            let attempt = Instant::now();
            match tokio::time::timeout(RENEW_EVERY * 2, self.renew_once()).await {
                Ok(Ok(())) => last_ok = attempt,
                Ok(Err(PgError::NodeReplaced(id))) => {
                    tracing::error!(node_id = %id, "another process took this node id over; this one stops writing for good: restart it");
                    self.owned.lose_all();
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
                Err(_) => tracing::warn!("lease renewal timed out"),
            }
            if last_ok.elapsed() >= SELF_FENCE_AFTER && self.owned.count() > 0 {
                tracing::error!(
                    since_ms = last_ok.elapsed().as_millis() as u64,
                    "leases not renewed in time: this node stops writing until it holds its shards again"
                );
                self.owned.lose_all();
            }
        }
    }

    /// Leave the cluster: the registration is deleted and every shard freed, so
    /// that a restart (or another node) takes them at once.
    pub(crate) async fn leave(&self) -> Result<(), PgError> {
        self.owned.lose_all();
        let client = self.pool.get().await?;
        lease::leave(&client, &self.member).await?;
        Ok(())
    }
}
