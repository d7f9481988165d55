//! Spread placement: deliveries another node left in the outbox for agents this
//! hub serves (cluster.md §2, "Requests that touch several shards"). The sender's
//! node stored the message and an outbox row per recipient served elsewhere; this
//! node takes each row: the delivery (`message_recipients`) is written and the row
//! deleted in one op of the recipient's shard, and the message joins the inbox.

use super::Hub;
use crate::actors::agent::{Deliver, Push};
use crate::actors::directory::HUB_SENDER;
use crate::actors::HubError;
use crate::domain::channel::Item;
use crate::domain::shard::ShardId;
use crate::domain::AgentId;
use crate::store::reads::postgres::mail::Outboxed;
use crate::store::{Op, Ticket};
use std::sync::Arc;

impl Hub {
    /// The shards this hub serves, in order (every one but with spread placement).
    pub(crate) fn held_shards(&self) -> Vec<ShardId> {
        (0..crate::domain::shard::SHARD_COUNT)
            .map(ShardId)
            .filter(|s| self.inner.held.contains(*s))
            .collect()
    }

    /// Take the deliveries other nodes left in the outbox for the agents served
    /// here, a page at a time, until none is left (the node's poll). Returns how
    /// many were taken.
    pub(crate) async fn take_outbox(&self) -> Result<usize, HubError> {
        self.take_from_outbox(None).await
    }

    /// Before `agent`'s inbox is read or changed (spread placement): take what
    /// other nodes left for it, so that a message answered as sent elsewhere is
    /// in the inbox for any later call, as on one node.
    pub(super) async fn take_outbox_of(&self, agent: &AgentId) -> Result<(), HubError> {
        if self.inner.dir.spread {
            self.take_from_outbox(Some(agent)).await?;
        }
        Ok(())
    }

    async fn take_from_outbox(&self, agent: Option<&AgentId>) -> Result<usize, HubError> {
        // Inside a logged call's group a wait for the writer would wait for the
        // group itself: the next poll takes them.
        if !self.inner.dir.spread || crate::store::group::in_group() {
            return Ok(0);
        }
        // The poll runs one at a time; an agent's own take does not wait for it
        // (two takers of one row each store its delivery, which is idempotent,
        // and the inbox takes a message once).
        let _one = match agent {
            None => Some(self.inner.outbox.lock().await),
            Some(_) => None,
        };
        let shards = match agent {
            Some(a) => vec![crate::domain::shard::shard_of(a.as_str())],
            None => self.held_shards(),
        };
        let mut taken = 0;
        loop {
            let rows = self
                .inner
                .store
                .outbox(&shards, agent.map(AgentId::as_str))
                .await?;
            let full = rows.len() >= crate::store::reads::postgres::mail::OUTBOX_PAGE;
            if rows.is_empty() {
                return Ok(taken);
            }
            let now = self.take_rows(rows).await?;
            taken += now;
            // The rest belong to shards that moved meanwhile: their owner's.
            if !full || now == 0 {
                return Ok(taken);
            }
        }
    }

    /// Spread placement: the count of stored tasks read again (every node
    /// creates and prunes tasks; `hub_status` shows the cluster's).
    pub(crate) async fn refresh_task_count(&self) -> Result<(), HubError> {
        if let Some(n) = self.inner.store.stored_task_count().await? {
            self.inner
                .task_count
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Take the outbox rows `rows` (recipient, message) of agents served here,
    /// once each, and wait until their deliveries are stored. Rows of agents
    /// served elsewhere (a shard that moved since they were read) are left for
    /// their owner, and so are rows of an agent this hub has no actor for yet
    /// (added at another node a moment ago: taken once the registry is followed
    /// here; rows of removed agents are not read). Returns how many were taken.
    async fn take_rows(&self, rows: Vec<Outboxed>) -> Result<usize, HubError> {
        self.writable()?;
        let mut last = Ticket::NONE;
        let mut taken = 0;
        for Outboxed {
            agent,
            message,
            event,
        } in rows
        {
            let id = AgentId::new(&agent);
            let Some(addr) = self.inner.dir.agents.get(&id).map(|h| h.addr.clone()) else {
                continue;
            };
            let message = Arc::new(message);
            let ticket = self.inner.store.enqueue(Op::OutboxTaken {
                message: message.clone(),
                agent,
            });
            last = last.max(ticket);
            taken += 1;
            // A hub notice's event says what it is about, as where the task is
            // served (a row written before the event was kept: that a notice came).
            let notice = (message.from_agent == HUB_SENDER).then(|| match event {
                Some(e) => Item {
                    message_id: Some(message.id.clone()),
                    ..e
                },
                None => Item {
                    message_id: Some(message.id.clone()),
                    round_id: message.round_id.clone(),
                    ..Item::hub(crate::domain::channel::Kind::Message, None)
                },
            });
            // The room it takes is not promised (as for a notice): its sender's
            // node could not ask.
            addr.do_send(Deliver(message, None, ticket));
            if let Some(item) = notice {
                addr.do_send(Push(item));
            }
        }
        if last != Ticket::NONE {
            self.inner.store.wait_durable(last).await?;
        }
        Ok(taken)
    }
}
