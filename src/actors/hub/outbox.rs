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
use crate::domain::message::Message;
use crate::domain::shard::ShardId;
use crate::domain::AgentId;
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

    /// Take the outbox rows `rows` (recipient, message) of agents served here,
    /// once each, and wait until their deliveries are stored. Rows of agents not
    /// served here (a shard that moved since they were read) are left for their
    /// owner. Returns how many were taken.
    pub(crate) async fn take_outbox(
        &self,
        rows: Vec<(String, Message)>,
    ) -> Result<usize, HubError> {
        self.writable()?;
        let mut last = Ticket::NONE;
        let mut taken = 0;
        for (agent, message) in rows {
            let id = AgentId::new(&agent);
            let Some(addr) = self.inner.dir.agents.get(&id).map(|h| h.addr.clone()) else {
                continue;
            };
            let message = Arc::new(message);
            let ticket = self.inner.store.enqueue(Op::OutboxTaken {
                message: message.clone(),
                agent,
            });
            // A hub notice's event said what it is about; here it says a notice came.
            let notice = (message.from_agent == HUB_SENDER).then(|| Item {
                message_id: Some(message.id.clone()),
                round_id: message.round_id.clone(),
                ..Item::hub(crate::domain::channel::Kind::Message, None)
            });
            // The room it takes is not promised (as for a notice): its sender's
            // node could not ask.
            addr.do_send(Deliver(message, None, ticket));
            if let Some(item) = notice {
                addr.do_send(Push(item));
            }
            last = last.max(ticket);
            taken += 1;
        }
        if last != Ticket::NONE {
            self.inner.store.wait_durable(last).await?;
        }
        Ok(taken)
    }
}
