//! What the operator dashboard reads through the façade beyond the operator API's
//! lists: rounds awaiting approval, tasks counted by state, a task's messages, an
//! agent's assignments and sent messages, one agent's presence, and the hub's
//! health. Every list is a page of the store's keyset reads.

use super::agents::AgentStatus;
use super::Hub;
use crate::actors::HubError;
use crate::domain::message::Message;
use crate::domain::task::{Assignment, Round};
use crate::domain::AgentId;
use crate::store::pages::{Page, PageRequest};
use crate::store::Reads;
use chrono::{DateTime, Utc};

/// The server's health as the dashboard and `hubctl hub` show it.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    /// `Err(reason)` while writes are refused (a storage fault).
    pub writes: Result<(), String>,
    pub durability: &'static str,
    pub uptime_seconds: u64,
    pub agents: usize,
    pub tasks: usize,
    pub tasks_in_memory: u64,
    /// `None` when the lock manager did not answer in time.
    pub locks_held: Option<u64>,
    pub inbox_unread: u64,
    pub writer_queue: u64,
    pub store_faults: u64,
}

impl Hub {
    /// Rounds waiting for approval, newest first.
    pub(crate) async fn awaiting_page(&self, req: PageRequest) -> Result<Page<Round>, HubError> {
        Ok(self.inner.store.awaiting_page(req).await?)
    }

    /// Stored tasks per state.
    pub(crate) async fn task_counts(&self) -> Result<Vec<(String, u64)>, HubError> {
        Ok(self.inner.store.task_counts().await?)
    }

    /// The messages of task `task_id` (those carrying one of its round ids).
    pub(crate) async fn task_messages_page(
        &self,
        task_id: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, HubError> {
        Ok(self.inner.store.task_message_page(task_id, req).await?)
    }

    /// The messages `agent` sent.
    pub(crate) async fn sent_messages_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, HubError> {
        Ok(self.inner.store.sent_message_page(agent, req).await?)
    }

    /// `agent`'s assignments across every task.
    pub(crate) async fn agent_assignments_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Assignment>, HubError> {
        Ok(self.inner.store.agent_assignment_page(agent, req).await?)
    }

    /// Spread placement: the deliveries to agents of other nodes not made yet
    /// (unread, but in no node's memory); 0 elsewhere.
    pub(crate) async fn outbox_len(&self) -> Result<u64, HubError> {
        Ok(self.inner.store.outbox_len().await?)
    }

    /// One agent of agents.env with its presence (spread placement: from the node
    /// serving it, for one another node serves); `None` if it is not an agent.
    pub(crate) async fn agent_presence(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AgentStatus>, HubError> {
        let here = self.agent_status(id, now).await?;
        if here.is_some() || !self.inner.dir.elsewhere.contains_key(&AgentId::new(id)) {
            return Ok(here);
        }
        // Its node did not answer: not "no such agent", but "not now".
        let mut there = self.statuses_elsewhere(vec![id.to_string()]).await?;
        there
            .pop()
            .map(Some)
            .ok_or_else(|| HubError::NotOwner(format!("agent {id} (its node did not answer)")))
    }

    /// Writes, the writer's queue and the counts, waiting at most `wait` for the
    /// lock manager's count.
    pub(crate) async fn health(&self, wait: std::time::Duration) -> Health {
        let counts = self.counts();
        let g = self.gauges(wait).await;
        Health {
            writes: self.write_health().map_err(|e| e.to_string()),
            durability: self.settings().durability.as_str(),
            uptime_seconds: counts.uptime_seconds,
            agents: counts.agents,
            tasks: counts.tasks,
            tasks_in_memory: g.task_actors,
            locks_held: g.locks.map(|(held, _)| held),
            inbox_unread: g.inbox_unread_sum,
            writer_queue: g.writer_queue,
            store_faults: g.store_faults,
        }
    }
}
