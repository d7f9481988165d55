//! Agents through the façade: registration, heartbeats, presence and counts.

use super::Hub;
use crate::actors::agent::{AgentView, GetView, Heartbeat, Register};
use crate::actors::HubError;
use crate::domain::agent::is_online;
use crate::domain::time::{iso, parse_iso};
use crate::domain::AgentId;
use crate::store::pages::{self, Page, PageRequest};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// An agent with its presence, for the operator.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AgentStatus {
    #[serde(flatten)]
    pub view: AgentView,
    pub last_seen: Option<String>,
    pub online: bool,
}

/// Counts for `hub_status`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusCounts {
    pub agents: usize,
    pub tasks: usize,
    pub uptime_seconds: u64,
}

impl Hub {
    /// `agent_register`: name and capabilities of the caller.
    pub(crate) async fn register(
        &self,
        id: &AgentId,
        name: String,
        capabilities: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<AgentView, HubError> {
        self.writable()?;
        let reply = self
            .agent(id)?
            .send(Register {
                name,
                capabilities,
                at: now,
            })
            .await?;
        self.durable(reply).await
    }

    /// `agent_heartbeat`: returns the stored time.
    pub(crate) async fn heartbeat(
        &self,
        id: &AgentId,
        now: DateTime<Utc>,
    ) -> Result<String, HubError> {
        self.writable()?;
        let reply = self.agent(id)?.send(Heartbeat { at: now }).await?;
        self.durable(reply).await
    }

    pub(crate) fn counts(&self) -> StatusCounts {
        StatusCounts {
            tasks: self.inner.task_count.load(Ordering::Relaxed),
            agents: self.inner.dir.agents.len(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
        }
    }

    /// A page of the agents of agents.env with their presence (`hubctl agents`):
    /// the order and the page come from SQLite, each agent's presence from its actor.
    pub(crate) async fn agent_page(
        &self,
        req: PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<AgentStatus>, HubError> {
        let ids = self
            .inner
            .store
            .read(move |c| pages::agents(c, &req))
            .await?;
        let mut items = Vec::with_capacity(ids.items.len());
        for (_, id) in &ids.items {
            // An agent stored as active but without an actor is one this server
            // does not serve (cluster mode: another node's); it is left out.
            if let Some(status) = self.agent_status(id, now).await? {
                items.push(status);
            }
        }
        Ok(Page {
            items,
            next_cursor: ids.next_cursor,
        })
    }

    /// One agent with its presence by the documented rule; `None` if unknown here.
    async fn agent_status(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AgentStatus>, HubError> {
        let Some((addr, seen_ms)) = self
            .inner
            .dir
            .agents
            .get(&AgentId::new(id))
            .map(|e| (e.addr.clone(), e.last_seen_ms.load(Ordering::Relaxed)))
        else {
            return Ok(None);
        };
        let view = addr.send(GetView).await?;
        let last_seen = (seen_ms > 0)
            .then(|| DateTime::<Utc>::from_timestamp_millis(seen_ms))
            .flatten();
        // A stored heartbeat counts too, so presence survives a restart.
        let heartbeat = view.last_heartbeat.as_deref().and_then(parse_iso);
        let latest = last_seen.max(heartbeat);
        Ok(Some(AgentStatus {
            view,
            last_seen: last_seen.map(iso),
            online: is_online(latest, now, self.inner.settings.presence_window_secs),
        }))
    }
}
