//! The hub façade: a cheap-to-clone handle that finds the actor for an id and turns
//! a call into "send to actor, then wait until its write is durable". The HTTP and
//! MCP layers talk only to this.

use super::agent::{
    Ack, AgentActor, AgentView, GetView, Heartbeat, Pull, PullReply, Register, SendMessage,
};
use super::notify::Notifier;
use crate::config::Settings;
use crate::domain::agent::is_online;
use crate::domain::ids::random_hex;
use crate::domain::message::{Draft, Message};
use crate::domain::{AgentId, DomainError};
use crate::store::{Snapshot, Store, StoreError, Ticket};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HubError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("actor mailbox: {0}")]
    Mailbox(#[from] MailboxError),
}

/// Directory entry of one agent.
struct AgentHandle {
    addr: Addr<AgentActor>,
    /// Unix millis of the agent's last authenticated request (0 = never). An atomic
    /// rather than an actor message: it is written on every request and only read
    /// by the operator's presence view.
    last_seen_ms: AtomicI64,
}

struct HubInner {
    /// Every agent of `agents.env`; filled at start-up. A DashMap so that a later
    /// reload of `agents.env` can add entries while requests are being served.
    agents: DashMap<AgentId, AgentHandle>,
    store: Store,
    settings: Arc<Settings>,
    started: Instant,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// An agent with its presence, for the operator.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    #[serde(flatten)]
    pub view: AgentView,
    pub last_seen: Option<String>,
    pub online: bool,
}

/// Counts for `hub_status`.
#[derive(Debug, Clone, Copy)]
pub struct StatusCounts {
    pub agents: usize,
    pub uptime_seconds: u64,
}

impl Hub {
    /// Start one actor per stored agent. Must run inside an actix `System`.
    pub fn start(
        store: Store,
        mut snapshot: Snapshot,
        settings: Arc<Settings>,
        notifier: Arc<dyn Notifier>,
    ) -> Hub {
        let agents = DashMap::new();
        for row in snapshot.agents {
            let id = AgentId::new(&row.id);
            let mail = snapshot.mail.remove(&row.id).unwrap_or_default();
            let addr = AgentActor::from_row(row, mail, store.clone(), notifier.clone()).start();
            agents.insert(
                id,
                AgentHandle {
                    addr,
                    last_seen_ms: AtomicI64::new(0),
                },
            );
        }
        Hub {
            inner: Arc::new(HubInner {
                agents,
                store,
                settings,
                started: Instant::now(),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn agent(&self, id: &AgentId) -> Result<Addr<AgentActor>, HubError> {
        self.inner
            .agents
            .get(id)
            .map(|h| h.addr.clone())
            .ok_or_else(|| DomainError::UnknownAgent(id.to_string()).into())
    }

    /// Record that `id` just made a request (presence).
    pub fn touch(&self, id: &AgentId, now: DateTime<Utc>) {
        if let Some(h) = self.inner.agents.get(id) {
            h.last_seen_ms
                .store(now.timestamp_millis(), Ordering::Relaxed);
        }
    }

    async fn durable<T>(&self, (value, ticket): (T, Ticket)) -> Result<T, HubError> {
        self.inner.store.wait_durable(ticket).await?;
        Ok(value)
    }

    pub async fn register(
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

    pub async fn heartbeat(&self, id: &AgentId, now: DateTime<Utc>) -> Result<String, HubError> {
        let reply = self.agent(id)?.send(Heartbeat { at: now }).await?;
        self.durable(reply).await
    }

    /// `message_send` from `from`: resolve recipients (one agent, or every other agent
    /// for a broadcast), then let the sender's actor check, store and forward it.
    pub async fn send_message(
        &self,
        from: &AgentId,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<(Arc<Message>, Vec<AgentId>), HubError> {
        let recipients: Vec<(AgentId, Addr<AgentActor>)> = match &draft.to_agent {
            Some(to) => {
                let id = AgentId::new(to);
                let addr = self.agent(&id)?;
                vec![(id, addr)]
            }
            None => {
                let mut all: Vec<(AgentId, Addr<AgentActor>)> = self
                    .inner
                    .agents
                    .iter()
                    .filter(|e| e.key() != from)
                    .map(|e| (e.key().clone(), e.addr.clone()))
                    .collect();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            }
        };
        if let Some(round) = &draft.round_id {
            // Rounds arrive with the task workflow; until then no round id is known.
            return Err(DomainError::RoundNotFound(round.clone()).into());
        }
        let ids: Vec<AgentId> = recipients.iter().map(|(id, _)| id.clone()).collect();
        let reply = self
            .agent(from)?
            .send(SendMessage {
                id: random_hex(8),
                draft,
                recipients,
                at: now,
            })
            .await??;
        let message = self.durable(reply).await?;
        Ok((message, ids))
    }

    /// `inbox_pull`: up to `limit` unread messages, waiting up to `wait` for one.
    pub async fn pull(
        &self,
        agent: &AgentId,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Arc<Message>>, HubError> {
        match self.agent(agent)?.send(Pull { limit, wait }).await? {
            PullReply::Ready(v) => Ok(v),
            // The actor answers every waiter by its deadline; a dropped sender means
            // the actor stopped, which only happens at shutdown.
            PullReply::Wait(rx) => Ok(rx.await.unwrap_or_default()),
        }
    }

    /// `message_ack`: returns the ids that were unread until now.
    pub async fn ack(
        &self,
        agent: &AgentId,
        ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, HubError> {
        let reply = self.agent(agent)?.send(Ack { ids, at: now }).await??;
        self.durable(reply).await
    }

    pub fn counts(&self) -> StatusCounts {
        StatusCounts {
            agents: self.inner.agents.len(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
        }
    }

    /// Every agent with presence, sorted by id.
    pub async fn agents(&self, now: DateTime<Utc>) -> Result<Vec<AgentStatus>, HubError> {
        let entries: Vec<(Addr<AgentActor>, i64)> = self
            .inner
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
            out.push(AgentStatus {
                view,
                last_seen: last_seen.map(crate::domain::time::iso),
                online: is_online(last_seen, now, window),
            });
        }
        out.sort_by(|a, b| a.view.agent_id.cmp(&b.view.agent_id));
        Ok(out)
    }
}
