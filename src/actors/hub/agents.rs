//! Agents through the façade: registration, heartbeats, presence and counts.

use super::Hub;
use crate::actors::agent::{AgentActor, AgentView, GetView, Heartbeat, Register};
use crate::actors::HubError;
use crate::domain::agent::is_online;
use crate::domain::time::{iso, parse_iso};
use crate::domain::AgentId;
use crate::store::pages::{Page, PageRequest};
use crate::store::{AuditRow, Reads};
use actix::Actor as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// An agent with its presence, for the operator.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct AgentStatus {
    #[serde(flatten)]
    pub view: AgentView,
    pub last_seen: Option<String>,
    pub online: bool,
    /// Unread messages in its inbox.
    pub unread: usize,
    /// Its claimed or in-progress assignments.
    pub active_assignments: u32,
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

    /// Serve exactly the agents of `agents` (id, token hash), after a reload: with
    /// `write`, the table is synced through the writer first (listed rows active,
    /// others inactive; cluster mode's table is the registry and already holds
    /// the list), a new agent gets its actor from its stored row and unread mail,
    /// and a removed one leaves the directory (its actor stops; its stored inbox
    /// stays). Returns the ids added and removed. The caller serializes reloads.
    pub(crate) async fn sync_agents(
        &self,
        agents: Vec<(String, String)>,
        now: DateTime<Utc>,
        write: bool,
    ) -> Result<(Vec<String>, Vec<String>), HubError> {
        self.writable()?;
        let listed: std::collections::HashSet<AgentId> =
            agents.iter().map(|(id, _)| AgentId::new(id)).collect();
        if write {
            let ticket = self.inner.store.enqueue(crate::store::Op::AgentsSync {
                agents,
                at: iso(now),
            });
            // Committed whatever the durability: the rows are read back just below.
            self.inner.store.wait_committed(ticket).await?;
        }
        let dir = &self.inner.dir;
        let mut added = Vec::new();
        // Spread placement: the agents of other nodes' shards are known, not served.
        let mut removed: Vec<String> = Vec::new();
        dir.elsewhere.retain(|id, _| {
            let kept = listed.contains(id);
            if !kept {
                removed.push(id.to_string());
            }
            kept
        });
        for id in &listed {
            if dir.agents.contains_key(id) {
                continue;
            }
            if !self.owns(id.as_str()) {
                if dir.elsewhere.insert(id.clone(), ()).is_none() {
                    added.push(id.to_string());
                }
                continue;
            }
            let Some((row, mail)) = self.inner.store.load_agent(id.as_str()).await? else {
                return Err(HubError::bug(format!("agent {id} not active after sync")));
            };
            let gauge = std::sync::Arc::new(crate::domain::inbox::InboxGauge::default());
            let i = &self.inner;
            let actor = AgentActor::from_row(
                row,
                mail,
                gauge.clone(),
                i.store.clone(),
                i.notifier.clone(),
                i.settings.clone(),
            );
            // On the hub's arbiter: started from an HTTP worker it would die with it.
            let addr = AgentActor::start_in_arbiter(&i.arbiter, move |_| actor);
            dir.agents.insert(
                id.clone(),
                super::agent_handle(addr, gauge, &i.settings.load()),
            );
            added.push(id.to_string());
        }
        let gone: Vec<AgentId> = dir
            .agents
            .iter()
            .map(|e| e.key().clone())
            .filter(|id| !listed.contains(id))
            .collect();
        // Agents of other nodes' shards removed: their locks here go too.
        let gone_elsewhere: Vec<AgentId> = removed.drain(..).map(|id| AgentId::new(&id)).collect();
        for id in gone.into_iter().chain(gone_elsewhere) {
            if let Some((_, h)) = dir.agents.remove(&id) {
                h.addr.do_send(crate::actors::Stop);
            }
            // Its locks go to the next waiters now (audited), not at their TTL.
            let release = crate::actors::lock_manager::ReleaseHolder {
                agent: id.to_string(),
            };
            let (n, ticket) = self.inner.locks.send(release).await?;
            self.inner.store.wait_durable(ticket).await?;
            if n > 0 {
                tracing::info!(agent = %id, locks = n, "locks of a removed agent released");
            }
            removed.push(id.to_string());
        }
        added.sort();
        removed.sort();
        Ok((added, removed))
    }

    pub(crate) fn counts(&self) -> StatusCounts {
        StatusCounts {
            tasks: self.inner.task_count.load(Ordering::Relaxed),
            agents: self.inner.dir.agents.len() + self.inner.dir.elsewhere.len(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
        }
    }

    /// A page of the agents of agents.env with their presence (`hubctl agents`):
    /// the order and the page come from the store, each agent's presence from its actor.
    pub(crate) async fn agent_page(
        &self,
        req: PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<AgentStatus>, HubError> {
        let ids = self.inner.store.agent_page(req).await?;
        let mut items = Vec::with_capacity(ids.items.len());
        let mut elsewhere = Vec::new();
        for (_, id) in &ids.items {
            // An agent stored as active but without an actor is one this server
            // does not serve: another node's (spread placement: asked below;
            // standby placement: a standby has no hub), or a stale row.
            match self.agent_status(id, now).await? {
                Some(status) => items.push(status),
                None if self.inner.dir.elsewhere.contains_key(&AgentId::new(id)) => {
                    elsewhere.push(id.clone())
                }
                None => {}
            }
        }
        if !elsewhere.is_empty() {
            // Each from its node, which knows its presence; in the store's order.
            let mut theirs = self.statuses_elsewhere(elsewhere).await?;
            items.append(&mut theirs);
            let order: std::collections::HashMap<&str, usize> = ids
                .items
                .iter()
                .enumerate()
                .map(|(i, (_, id))| (id.as_str(), i))
                .collect();
            items.sort_by_key(|s| order.get(s.view.agent_id.as_str()).copied());
        }
        Ok(Page {
            items,
            next_cursor: ids.next_cursor,
        })
    }

    /// One agent with its presence by the documented rule; `None` if unknown here.
    pub(crate) async fn agent_status(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AgentStatus>, HubError> {
        let Some((addr, seen_ms, unread)) = self.inner.dir.agents.get(&AgentId::new(id)).map(|e| {
            let seen = e.last_seen_ms.load(Ordering::Relaxed);
            (e.addr.clone(), seen, e.inbox.unread())
        }) else {
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
            online: is_online(latest, now, self.settings().presence_window_secs),
            unread,
            active_assignments: self.inner.dir.active_slots(id),
        }))
    }
}

impl Hub {
    /// Tell the event stream that `agent` went online or offline (not stored).
    pub(super) fn presence_event(&self, agent: &str, online: bool, now: DateTime<Utc>) {
        self.inner.store.events().publish(crate::events::Draft {
            event_type: if online {
                "agent_online".into()
            } else {
                "agent_offline".into()
            },
            entity_type: "agent".into(),
            entity_id: agent.to_string(),
            actor: agent.to_string(),
            payload: serde_json::json!({}),
            at: iso(now),
        });
    }

    /// Agents announced online whose last request is older than the presence
    /// window are announced offline; returns how many. Run every few seconds.
    pub(crate) fn sweep_presence(&self, now: DateTime<Utc>) -> usize {
        let window_ms = (self.settings().presence_window_secs as i64).saturating_mul(1000);
        let cutoff = now.timestamp_millis().saturating_sub(window_ms);
        let quiet = |e: &crate::actors::directory::AgentHandle| {
            e.last_seen_ms.load(Ordering::SeqCst) < cutoff
        };
        let candidates: Vec<AgentId> = self
            .inner
            .dir
            .agents
            .iter()
            .filter(|e| e.online.load(Ordering::Relaxed) && quiet(e.value()))
            .map(|e| e.key().clone())
            .collect();
        let _one = self
            .inner
            .presence
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut gone = 0;
        for id in candidates {
            let Some(e) = self.inner.dir.agents.get(&id) else {
                continue;
            };
            if !e.online.swap(false, Ordering::SeqCst) {
                continue;
            }
            // A request that came meanwhile keeps it online: its touch stored its
            // time before reading the flag, so it is seen here or it saw `false`
            // (and then waits for this lock to announce it online again).
            if !quiet(e.value()) {
                e.online.store(true, Ordering::SeqCst);
                continue;
            }
            drop(e);
            self.presence_event(id.as_str(), false, now);
            gone += 1;
        }
        gone
    }
}

impl Hub {
    /// Audit what a reload changed: agents added, removed or given a new token, and
    /// a new operator token (ids only, never tokens).
    pub(crate) async fn audit_token_changes(
        &self,
        changes: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<(), HubError> {
        let mut ticket = crate::store::Ticket::NONE;
        for (event, agent) in changes {
            let (entity_type, entity_id) = if *event == "operator_token_rotated" {
                ("operator", "operator")
            } else {
                ("agent", *agent)
            };
            // Spread placement: every node follows the change; the owner of the
            // row's shard records it.
            if !self.owns(entity_id) {
                continue;
            }
            let row = AuditRow::new(
                event,
                (entity_type, entity_id),
                "operator",
                "{}".into(),
                now,
            );
            ticket = ticket.max(self.inner.store.enqueue(crate::store::Op::Audit(row)));
        }
        self.durable(((), ticket)).await
    }
}
