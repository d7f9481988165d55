//! Locks through the façade: acquire (with waiting), release, and the operator's
//! list and forced release.

use super::Hub;
use crate::actors::lock_manager::{Acquire, AcquireReply, ForceRelease, Grant, Release};
use crate::actors::HubError;
use crate::domain::channel::{Item, Kind};
use crate::domain::lease::{Lock, Request as LockRequest};
use crate::domain::time::iso;
use crate::domain::AgentId;
use crate::store::pages::{Page, PageRequest};
use crate::store::{Reads, StoreError};
use chrono::{DateTime, Utc};

impl Hub {
    /// `lock_acquire`: granted, renewed, or (after waiting up to `wait`) refused.
    pub(crate) async fn lock_acquire(
        &self,
        req: LockRequest,
        wait: std::time::Duration,
    ) -> Result<(Lock, bool), HubError> {
        self.writable()?;
        self.must_own("lock", &req.key)?;
        let agent = req.agent.clone();
        let mut waited = false;
        let mut req = req;
        if !self.inner.held.is_all() {
            // Spread placement: the agent's locks at other nodes count too.
            let held = self.held_shards();
            req.held_elsewhere = self.inner.store.locks_elsewhere(&agent, &held).await?;
        }
        let mut acquire = Acquire {
            req,
            wait,
            stored_counter: None,
        };
        let (lock, renewed, ticket): Grant = loop {
            match self.inner.locks.send(acquire).await? {
                AcquireReply::Ready(r) => break r?,
                AcquireReply::Wait(rx) => {
                    waited = true;
                    break rx
                        .await
                        .map_err(|_| HubError::Store(StoreError::Closed))??;
                }
                // A key not used since start-up: its last fencing token is on disk.
                AcquireReply::NeedCounter(req, trims) => {
                    let n = self.inner.store.fencing_counter(&req.key).await?;
                    acquire = Acquire {
                        req,
                        wait,
                        stored_counter: Some((n, trims)),
                    };
                }
            }
        };
        self.inner.store.wait_durable(ticket).await?;
        if waited && !renewed && !self.inner.held.is_all() {
            // Spread placement: the count of the agent's locks elsewhere was read
            // before the wait; it may have taken more there meanwhile.
            let max = self.settings().max_locks_per_agent;
            // Unread (the database is down): the grant stands, as if counted.
            let all = self
                .inner
                .store
                .locks_elsewhere(&agent, &[])
                .await
                .unwrap_or(0);
            if all > max {
                // This grant only: a second try of the call (a gateway's) may
                // have renewed it and answered it held, and then it stays.
                let taken_back = Release {
                    key: lock.lock_key.clone(),
                    agent: agent.clone(),
                    only: Some((lock.id.clone(), lock.expires_at)),
                };
                if let Ok(Ok(reply)) = self.inner.locks.send(taken_back).await {
                    self.durable(reply).await?;
                    return Err(crate::domain::lease::too_many(format!(
                        "you hold {max} locks (max_locks_per_agent) at the nodes of the cluster; release one before acquiring {}",
                        lock.lock_key
                    ))
                    .into());
                }
            }
        }
        if waited {
            // Granted after a wait: a channel event too, so that a Claude Code
            // session sees it as an event of its own, like the other hub news.
            let item = Item {
                lock_key: Some(lock.lock_key.clone()),
                fencing_token: Some(lock.fencing_token.to_string()),
                ..Item::hub(Kind::LockGranted, None)
            };
            self.inner.dir.push(&agent, item);
        }
        Ok((lock, renewed))
    }

    /// `lock_release` of a lock `agent` holds.
    pub(crate) async fn lock_release(&self, agent: &AgentId, key: &str) -> Result<Lock, HubError> {
        self.writable()?;
        self.must_own("lock", key)?;
        crate::store::group::before_write(&self.inner.store).await;
        let reply = self
            .inner
            .locks
            .send(Release {
                key: key.to_string(),
                agent: agent.to_string(),
                only: None,
            })
            .await??;
        self.durable(reply).await
    }

    /// Operator: take a lock away from its holder (audited).
    pub(crate) async fn lock_force_release(&self, key: &str) -> Result<Lock, HubError> {
        self.writable()?;
        self.must_own("lock", key)?;
        let reply = self
            .inner
            .locks
            .send(ForceRelease {
                key: key.to_string(),
            })
            .await??;
        self.durable(reply).await
    }

    /// A page of the locks held at `now`, newest grant first (`hubctl locks`), read
    /// from the store once every answered grant and release is committed.
    pub(crate) async fn lock_page(
        &self,
        req: PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<Lock>, HubError> {
        Ok(self.inner.store.lock_page(req, &iso(now)).await?)
    }
}
