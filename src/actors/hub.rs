//! The hub façade: a cheap-to-clone handle that finds the actor for an id and turns
//! a call into "send to actor, then wait until its write is durable". The HTTP and
//! MCP layers talk only to this.

use super::agent::{
    Ack, AgentActor, AgentView, CheckDraft, GetView, Heartbeat, Pull, PullReply, Register,
    SendMessage,
};
use super::directory::{AgentHandle, Directory};
use super::lock_manager::{
    Acquire, AcquireReply, ForceRelease, Grant, ListLocks, LockManager, Release,
};
use super::notify::Notifier;
use super::task::{TaskActor, TaskCmd, TaskEnv, TaskReply};
use crate::config::Settings;
use crate::domain::agent::is_online;
use crate::domain::ids::random_hex;
use crate::domain::lease::{Lock, LockTable, Request as LockRequest};
use crate::domain::message::{Draft, Message};
use crate::domain::task::{Assignment, Task};
use crate::domain::workflow::Limits;
use crate::domain::workflow::TaskState;
use crate::domain::{AgentId, DomainError};
use crate::store::{Snapshot, Store, StoreError, Ticket};
use actix::prelude::*;
use chrono::{DateTime, Utc};
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

struct HubInner {
    /// Which actor owns which id; shared with the TaskActors.
    dir: Arc<Directory>,
    /// Shared by every TaskActor.
    task_env: Arc<TaskEnv>,
    /// The one owner of the lock table.
    locks: Addr<LockManager>,
    /// The arbiter (thread) every actor runs on, including tasks created later:
    /// started from an HTTP worker, an actor would die with that worker.
    arbiter: ArbiterHandle,
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
    pub tasks: usize,
    pub uptime_seconds: u64,
}

impl Hub {
    /// Start one actor per stored agent and task, and the LockManager, on the
    /// current arbiter. Must run inside an actix `System`.
    pub fn start(
        store: Store,
        mut snapshot: Snapshot,
        settings: Arc<Settings>,
        notifier: Arc<dyn Notifier>,
    ) -> Hub {
        let dir = Arc::new(Directory::default());
        for row in snapshot.agents {
            let id = AgentId::new(&row.id);
            let mail = snapshot.mail.remove(&row.id).unwrap_or_default();
            let addr = AgentActor::from_row(row, mail, store.clone(), notifier.clone()).start();
            dir.agents.insert(
                id,
                AgentHandle {
                    addr,
                    last_seen_ms: AtomicI64::new(0),
                },
            );
        }
        let task_env = Arc::new(TaskEnv {
            store: store.clone(),
            limits: Limits {
                max_rounds: settings.max_rounds,
                max_assignments_per_round: settings.max_assignments_per_round,
                max_messages_per_task: settings.max_messages_per_task,
                lease: chrono::Duration::milliseconds((settings.lease_minutes * 60_000.0) as i64),
            },
            max_simultaneous_assignments: settings.max_simultaneous_assignments,
            dir: dir.clone(),
        });
        for state in snapshot.tasks {
            for a in state.assignments.iter().filter(|a| a.status.is_active()) {
                // Slots are counted from what was stored; no limit applies to history.
                dir.try_reserve_slot(&a.agent_id, u32::MAX);
            }
            let id = state.task.id.clone();
            let addr = TaskActor::new(state, task_env.clone()).start();
            dir.tasks.insert(id, addr);
        }
        let table = LockTable::restore(snapshot.locks, snapshot.fencing, Utc::now());
        let locks = LockManager::new(table, store.clone()).start();
        Hub {
            inner: Arc::new(HubInner {
                dir,
                task_env,
                locks,
                arbiter: Arbiter::current(),
                store,
                settings,
                started: Instant::now(),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn agent(&self, id: &AgentId) -> Result<Addr<AgentActor>, HubError> {
        self.inner
            .dir
            .agents
            .get(id)
            .map(|h| h.addr.clone())
            .ok_or_else(|| DomainError::UnknownAgent(id.to_string()).into())
    }

    /// Record that `id` just made a request (presence).
    pub fn touch(&self, id: &AgentId, now: DateTime<Utc>) {
        if let Some(h) = self.inner.dir.agents.get(id) {
            h.last_seen_ms
                .store(now.timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// Wait until everything queued so far is committed (a no-op in fast mode).
    /// Answers that wrote nothing themselves (reads, refusals) call this so that
    /// nothing they show can vanish in a crash ("read committed").
    pub async fn settled(&self) -> Result<(), HubError> {
        let store = &self.inner.store;
        store.wait_durable(store.barrier()).await?;
        Ok(())
    }

    /// Wait until the reply's write is on disk; a reply that wrote nothing waits
    /// for everything queued before it.
    async fn durable<T>(&self, (value, ticket): (T, Ticket)) -> Result<T, HubError> {
        if ticket == Ticket::NONE {
            self.settled().await?;
        } else {
            self.inner.store.wait_durable(ticket).await?;
        }
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
        // Counting against the task's budget, sending and giving the count back on a
        // refusal must not stop halfway when the caller goes away (a disconnect,
        // notifications/cancelled): they run as a task of their own.
        let (this, from) = (self.clone(), from.clone());
        let result = actix_rt::spawn(async move { this.send_steps(&from, draft, now).await })
            .await
            .map_err(|_| HubError::Mailbox(MailboxError::Closed))?;
        result
    }

    async fn send_steps(
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
                    .dir
                    .agents
                    .iter()
                    .filter(|e| e.key() != from)
                    .map(|e| (e.key().clone(), e.addr.clone()))
                    .collect();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            }
        };
        // A message about a round counts against its task's max_messages_per_task;
        // the count is given back if the send is then refused (e.g. a duplicate).
        let counted = match &draft.round_id {
            Some(round) => {
                let task = self.task_of_round(round)?;
                self.agent(from)?.send(CheckDraft(draft.clone())).await??;
                self.task_cmd(&task, TaskCmd::CountMessage).await?;
                Some(task)
            }
            None => None,
        };
        let ids: Vec<AgentId> = recipients.iter().map(|(id, _)| id.clone()).collect();
        let sent = match self.agent(from) {
            Ok(addr) => addr
                .send(SendMessage {
                    id: random_hex(8),
                    draft,
                    recipients,
                    at: now,
                })
                .await
                .map_err(HubError::from)
                .and_then(|r| r.map_err(HubError::from)),
            Err(e) => Err(e),
        };
        if let (Err(_), Some(task)) = (&sent, &counted) {
            let _ = self.task_cmd(task, TaskCmd::UncountMessage).await;
        }
        let message = self.durable(sent?).await?;
        Ok((message, ids))
    }

    /// `inbox_pull`: up to `limit` unread messages, waiting up to `wait` for one.
    pub async fn pull(
        &self,
        agent: &AgentId,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Arc<Message>>, HubError> {
        let list = match self.agent(agent)?.send(Pull { limit, wait }).await? {
            PullReply::Ready(v) => v,
            // The actor answers every waiter by its deadline; a dropped sender means
            // the actor stopped, which only happens at shutdown.
            PullReply::Wait(rx) => rx.await.unwrap_or_default(),
        };
        if !list.is_empty() {
            // Show only messages already on disk.
            self.settled().await?;
        }
        Ok(list)
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

    fn task_of(
        map: &dashmap::DashMap<String, String>,
        id: &str,
        code: &'static str,
        what: &str,
    ) -> Result<String, HubError> {
        map.get(id)
            .map(|t| t.clone())
            .ok_or_else(|| DomainError::refused(code, format!("{what} {id} does not exist")).into())
    }

    fn task_of_round(&self, round_id: &str) -> Result<String, HubError> {
        Self::task_of(&self.inner.dir.rounds, round_id, "ROUND_NOT_FOUND", "round")
    }

    /// Send `cmd` to the actor of task `task_id` and wait until what it wrote is durable.
    pub async fn task_cmd(&self, task_id: &str, cmd: TaskCmd) -> Result<TaskReply, HubError> {
        let addr = self
            .inner
            .dir
            .tasks
            .get(task_id)
            .map(|a| a.clone())
            .ok_or_else(|| {
                DomainError::refused("TASK_NOT_FOUND", format!("task {task_id} does not exist"))
            })?;
        let reply = addr.send(cmd).await??;
        self.durable(reply).await
    }

    /// A command on the task owning round `round_id`.
    pub async fn round_cmd(&self, round_id: &str, cmd: TaskCmd) -> Result<TaskReply, HubError> {
        let task = self.task_of_round(round_id)?;
        self.task_cmd(&task, cmd).await
    }

    /// A command on the task owning assignment `id`; unknown ids are refused exactly
    /// like someone else's assignment.
    pub async fn assignment_cmd(&self, id: &str, cmd: TaskCmd) -> Result<TaskReply, HubError> {
        let task = self
            .inner
            .dir
            .assignments
            .get(id)
            .map(|t| t.clone())
            .ok_or_else(|| {
                DomainError::refused(
                    "ASSIGNMENT_NOT_VALID",
                    format!("assignment {id} does not exist or is not assigned to you"),
                )
            })?;
        self.task_cmd(&task, cmd).await
    }

    pub async fn handoff_cmd(&self, id: &str) -> Result<TaskReply, HubError> {
        let task = Self::task_of(&self.inner.dir.handoffs, id, "NOT_FOUND", "handoff")?;
        self.task_cmd(&task, TaskCmd::GetHandoff { id: id.to_string() })
            .await
    }

    /// `task_draft_create`: a new task in draft, owned by a new TaskActor. The
    /// directory's entry API makes two creations of one id race-free.
    pub async fn create_task(
        &self,
        caller: &AgentId,
        id: &str,
        title: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<Task, HubError> {
        let state = TaskState::new(id, title, description, caller.as_str(), now);
        let task = state.task.clone();
        // The entry (and its shard lock) is released before any await.
        let created = match self.inner.dir.tasks.entry(id.to_string()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(v) => {
                // Enqueued before the actor exists, so it precedes all of its writes.
                let ticket = self
                    .inner
                    .store
                    .enqueue(crate::store::Op::TaskUpsert(task.clone()));
                let actor = TaskActor::new(state, self.inner.task_env.clone());
                v.insert(TaskActor::start_in_arbiter(
                    &self.inner.arbiter,
                    move |_| actor,
                ));
                Some(ticket)
            }
        };
        match created {
            Some(ticket) => {
                self.inner.store.wait_durable(ticket).await?;
                Ok(task)
            }
            None => Err(DomainError::refused(
                "TASK_EXISTS",
                format!("task {id} already exists; choose another task_id"),
            )
            .into()),
        }
    }

    /// The caller's assignments: in one round (oldest first) or everywhere (newest first).
    pub async fn assignments_of(
        &self,
        caller: &AgentId,
        round_id: Option<&str>,
    ) -> Result<Vec<Assignment>, HubError> {
        let tasks: Vec<String> = match round_id {
            Some(r) => vec![self.task_of_round(r)?],
            None => self
                .inner
                .dir
                .agent_tasks
                .get(caller.as_str())
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default(),
        };
        let mut out = Vec::new();
        for t in tasks {
            let cmd = TaskCmd::Assignments {
                caller: caller.to_string(),
                round_id: round_id.map(String::from),
            };
            if let TaskReply::Assignments(list) = self.task_cmd(&t, cmd).await? {
                out.extend(list);
            }
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        if round_id.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    /// Every task with everything under it, newest first (operator views).
    pub async fn task_snapshots(&self) -> Result<Vec<TaskState>, HubError> {
        let addrs: Vec<Addr<TaskActor>> = self.inner.dir.tasks.iter().map(|e| e.clone()).collect();
        let mut out = Vec::with_capacity(addrs.len());
        for a in addrs {
            if let (TaskReply::Snapshot(s), _) = a.send(TaskCmd::Snapshot).await?? {
                out.push(*s);
            }
        }
        out.sort_by(|a, b| {
            b.task
                .created_at
                .cmp(&a.task.created_at)
                .then_with(|| a.task.id.cmp(&b.task.id))
        });
        Ok(out)
    }

    pub async fn task_snapshot(&self, task_id: &str) -> Result<TaskState, HubError> {
        match self.task_cmd(task_id, TaskCmd::Snapshot).await? {
            TaskReply::Snapshot(s) => Ok(*s),
            _ => Err(DomainError::refused(
                "TASK_NOT_FOUND",
                format!("task {task_id} does not exist"),
            )
            .into()),
        }
    }

    /// `lock_acquire`: granted, renewed, or (after waiting up to `wait`) refused.
    pub async fn lock_acquire(
        &self,
        req: LockRequest,
        wait: std::time::Duration,
    ) -> Result<(Lock, bool), HubError> {
        let (lock, renewed, ticket): Grant =
            match self.inner.locks.send(Acquire { req, wait }).await? {
                AcquireReply::Ready(r) => r?,
                AcquireReply::Wait(rx) => rx
                    .await
                    .map_err(|_| HubError::Store(StoreError::Closed))??,
            };
        self.inner.store.wait_durable(ticket).await?;
        Ok((lock, renewed))
    }

    pub async fn lock_release(&self, agent: &AgentId, key: &str) -> Result<Lock, HubError> {
        let reply = self
            .inner
            .locks
            .send(Release {
                key: key.to_string(),
                agent: agent.to_string(),
            })
            .await??;
        self.durable(reply).await
    }

    /// Operator: take a lock away from its holder (audited).
    pub async fn lock_force_release(&self, key: &str) -> Result<Lock, HubError> {
        let reply = self
            .inner
            .locks
            .send(ForceRelease {
                key: key.to_string(),
            })
            .await??;
        self.durable(reply).await
    }

    pub async fn locks(&self) -> Result<Vec<Lock>, HubError> {
        Ok(self.inner.locks.send(ListLocks).await?)
    }

    pub fn counts(&self) -> StatusCounts {
        StatusCounts {
            tasks: self.inner.dir.tasks.len(),
            agents: self.inner.dir.agents.len(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
        }
    }

    /// Every agent with presence, sorted by id.
    pub async fn agents(&self, now: DateTime<Utc>) -> Result<Vec<AgentStatus>, HubError> {
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
            let heartbeat = view
                .last_heartbeat
                .as_deref()
                .and_then(crate::domain::time::parse_iso);
            let latest = last_seen.max(heartbeat);
            out.push(AgentStatus {
                view,
                last_seen: last_seen.map(crate::domain::time::iso),
                online: is_online(latest, now, window),
            });
        }
        out.sort_by(|a, b| a.view.agent_id.cmp(&b.view.agent_id));
        Ok(out)
    }
}
