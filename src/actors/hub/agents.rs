//! Agents through the façade: registration, heartbeats, presence and counts.

use super::Hub;
use crate::actors::agent::{AgentActor, AgentView, GetView, Heartbeat, Register};
use crate::actors::HubError;
use crate::domain::agent::is_online;
use crate::domain::time::{iso, parse_iso};
use crate::domain::AgentId;
use actix::Addr;
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

    /// Every agent with presence, sorted by id.
    pub(crate) async fn agents(&self, now: DateTime<Utc>) -> Result<Vec<AgentStatus>, HubError> {
        let entries: Vec<(Addr<AgentActor>, i64)> = self
            .inner
            .dir
            .agents
            .iter()
            .map(|e| (e.addr.clone(), e.last_seen_ms.load(Ordering::Relaxed)))
            .collect();
        let window = self.inner.settings.presence_window_secs;
        let mut out = Vec::with_capacity(entries.len());
        for (addr, seen_ms) in entries {
            let view = addr.send(GetView).await?;
            let last_seen = (seen_ms > 0)
                .then(|| DateTime::<Utc>::from_timestamp_millis(seen_ms))
                .flatten();
            // A stored heartbeat counts too, so presence survives a restart.
            let heartbeat = view.last_heartbeat.as_deref().and_then(parse_iso);
            let latest = last_seen.max(heartbeat);
            out.push(AgentStatus {
                view,
                last_seen: last_seen.map(iso),
                online: is_online(latest, now, window),
            });
        }
        out.sort_by(|a, b| a.view.agent_id.cmp(&b.view.agent_id));
        Ok(out)
    }
}
