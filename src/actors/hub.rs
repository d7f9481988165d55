//! The hub façade: a cheap-to-clone handle that finds the actor for an id and turns
//! a call into "send a typed command to the actor, then wait until its write is
//! durable". The HTTP and MCP layers talk only to this; one method per command,
//! grouped by family: [`agents`], [`messages`], [`inboxes`], [`tasks`], [`operator`],
//! [`locks`], and the dashboard's reads ([`dashboard`]).

mod agents;
mod dashboard;
mod inboxes;
mod locks;
mod messages;
mod operator;
mod outbox;
mod remote;
mod retention;
mod tasks;

pub(crate) use agents::AgentStatus;
pub(crate) use dashboard::Health;
pub(crate) use remote::{push_elsewhere, set_count_at, set_push_at, set_statuses_at};

use super::agent::AgentActor;
use super::directory::{AgentHandle, Directory};
use super::lock_manager::LockManager;
use super::notify::Notifier;
use super::task::commands::Reply;
use super::task::{TaskActor, TaskEnv};
use super::{HubError, Stop};
use crate::config::{LiveSettings, Settings};
use crate::domain::inbox::InboxGauge;
use crate::domain::lease::LockTable;
use crate::domain::rate::TokenBucket;
use crate::domain::shard::{ShardId, ShardSet};
use crate::domain::{AgentId, DomainError, ErrorCode};
use crate::store::reads::Owned;
use crate::store::{group, Reads, Snapshot, Store, Ticket};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct HubInner {
    /// Which actor owns which id; shared with the TaskActors.
    dir: Arc<Directory>,
    /// The shards this hub serves (all but with spread placement).
    held: ShardSet,
    /// Held while a task is read from SQLite into a new actor, so that two callers
    /// never build two actors of one task (single flight).
    activation: tokio::sync::Mutex<()>,
    /// Held by a prune for its whole run (see `retention.rs`).
    prune_lock: tokio::sync::Mutex<()>,
    /// Held while deliveries are taken from the outbox (see `outbox.rs`).
    outbox: tokio::sync::Mutex<()>,
    /// Held while an agent's online flag changes and its event is published, so
    /// the stream's last word on an agent matches its flag.
    presence: std::sync::Mutex<()>,
    /// Stored tasks of every state, kept up to date (for `hub_status`).
    task_count: AtomicUsize,
    /// Shared by every TaskActor.
    task_env: Arc<TaskEnv>,
    /// The one owner of the lock table.
    locks: Addr<LockManager>,
    /// The arbiter (thread) every actor runs on, including tasks created later:
    /// started from an HTTP worker, an actor would die with that worker.
    arbiter: ArbiterHandle,
    store: Store,
    /// The settings in force; a reload swaps in new ones (see `config::live`).
    settings: Arc<LiveSettings>,
    /// Pushes on agents' streams; kept for a rebuild.
    notifier: Arc<dyn Notifier>,
    started: Instant,
}

/// The directory entry of an agent whose actor is `addr`.
fn agent_handle(addr: Addr<AgentActor>, inbox: Arc<InboxGauge>, s: &Settings) -> AgentHandle {
    AgentHandle {
        addr,
        inbox,
        last_seen_ms: AtomicI64::new(0),
        online: AtomicBool::new(false),
        send_bucket: std::sync::Mutex::new(TokenBucket::new(s.send_rate_per_second, s.send_burst)),
    }
}

/// TASK_NOT_FOUND for `task_id`.
fn task_not_found(task_id: &str) -> HubError {
    DomainError::refused(
        ErrorCode::TaskNotFound,
        format!("task {task_id} does not exist"),
    )
    .into()
}

#[derive(Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    /// Start one actor per stored agent and task, and the LockManager, on the
    /// current arbiter. Must run inside an actix `System`.
    pub(crate) fn start(
        store: Store,
        snapshot: Snapshot,
        settings: Arc<LiveSettings>,
        notifier: Arc<dyn Notifier>,
    ) -> Hub {
        Hub::build(store, snapshot, settings, notifier, Instant::now())
    }

    /// A new hub built from `snapshot` (read from disk) writing through `store` (a
    /// newer generation), with this one's settings, pushes and uptime: how the live
    /// state is rebuilt after a storage fault, so that memory holds only what is
    /// saved. Stop this one with [`Hub::stop`] once the new one is in use.
    pub(crate) fn rebuild(&self, store: Store, snapshot: Snapshot) -> Hub {
        let i = &self.inner;
        Hub::build(
            store,
            snapshot,
            i.settings.clone(),
            i.notifier.clone(),
            i.started,
        )
    }

    /// Stop every actor of this hub (after a rebuild). Calls still in flight on it
    /// end with an error; their writes are dropped by the store (older generation).
    pub(crate) fn stop(&self) {
        for a in self.inner.dir.agents.iter() {
            a.addr.do_send(Stop);
        }
        for t in self.inner.task_env.tasks.iter() {
            t.value().do_send(Stop);
        }
        self.inner.locks.do_send(Stop);
    }

    fn build(
        store: Store,
        mut snapshot: Snapshot,
        live: Arc<LiveSettings>,
        notifier: Arc<dyn Notifier>,
        started: Instant,
    ) -> Hub {
        // Before any actor can audit: its ids must sort after every stored one.
        crate::domain::audit_id::audit_ids_after(snapshot.last_audit_id);
        let settings = live.load_full();
        let held = ShardSet::of(&snapshot.shards);
        let dir = Arc::new(Directory::new(!held.is_all()));
        // Task id → its actor, for the tasks in memory: every task with open work,
        // and finished ones used recently (they remove themselves when idle).
        let tasks = Arc::new(DashMap::new());
        for row in snapshot.agents {
            let id = AgentId::new(&row.id);
            let mail = snapshot.mail.remove(&row.id).unwrap_or_default();
            let gauge = Arc::new(InboxGauge::default());
            let addr = AgentActor::from_row(
                row,
                mail,
                gauge.clone(),
                store.clone(),
                notifier.clone(),
                live.clone(),
            )
            .start();
            dir.agents.insert(id, agent_handle(addr, gauge, &settings));
        }
        let task_env = Arc::new(TaskEnv {
            store: store.clone(),
            settings: live.clone(),
            dir: dir.clone(),
            tasks: tasks.clone(),
        });
        for state in snapshot.tasks {
            for a in state.assignments.iter().filter(|a| a.status.is_active()) {
                // Slots are counted from what was stored; no limit applies to history.
                dir.try_reserve_slot(&a.agent_id, u32::MAX);
            }
            let id = state.task.id.clone();
            let open = state.task.status.is_open();
            if open {
                // Counted from what was stored; no limit applies to history.
                dir.try_reserve_open_task(&state.task.dispatcher_agent_id, u32::MAX);
            }
            let mut actor = TaskActor::new(state, task_env.clone());
            if open {
                actor = actor.counting_open();
            }
            let addr = actor.start();
            tasks.insert(id, addr);
        }
        let task_count = AtomicUsize::new(snapshot.task_count);
        let table =
            LockTable::restore(snapshot.locks, Vec::new(), store.shard_epochs(), Utc::now());
        let locks = LockManager::new(table, live.clone(), store.clone()).start();
        Hub {
            inner: Arc::new(HubInner {
                dir,
                held,
                activation: tokio::sync::Mutex::new(()),
                prune_lock: tokio::sync::Mutex::new(()),
                outbox: tokio::sync::Mutex::new(()),
                presence: std::sync::Mutex::new(()),
                task_count,
                task_env,
                locks,
                arbiter: Arbiter::current(),
                store,
                settings: live,
                notifier,
                started,
            }),
        }
    }

    /// The settings in force (a reload may swap them: read per call, not kept).
    /// The ownership term its store handle writes under (cluster mode; else 0).
    pub(crate) fn store_term(&self) -> u64 {
        self.inner.store.term()
    }

    pub(crate) fn settings(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.inner.settings.load()
    }

    /// The stream of committed audit events (`/operator/events`).
    pub(crate) fn events(&self) -> &std::sync::Arc<crate::events::EventBus> {
        self.inner.store.events()
    }

    /// Whether writes are still being saved (for `/readyz`); the reason if not.
    pub(crate) fn write_health(&self) -> Result<(), crate::store::StoreError> {
        self.inner.store.write_health()
    }

    /// Refuse a write before it touches any actor while the store refuses writes
    /// (a storage fault): an actor would otherwise change its memory for a write that
    /// is then not saved, and show it to readers.
    fn writable(&self) -> Result<(), HubError> {
        Ok(self.inner.store.write_health()?)
    }

    /// What `/metrics` shows of the hub: read from counters that already exist, and
    /// one message to the lock manager (answered within `wait`, else left out).
    pub(crate) async fn gauges(&self, wait: std::time::Duration) -> crate::metrics::HubGauges {
        let inner = &self.inner;
        let (mut sum, mut max) = (0u64, 0u64);
        for h in inner.dir.agents.iter() {
            let n = h.inbox.unread() as u64;
            sum += n;
            max = max.max(n);
        }
        let (writer_queue, store_faults) = inner.store.queue_and_faults();
        let locks = tokio::time::timeout(wait, inner.locks.send(super::lock_manager::Count))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|(held, waiting)| (held as u64, waiting as u64));
        crate::metrics::HubGauges {
            agent_actors: inner.dir.agents.len() as u64,
            task_actors: inner.task_env.tasks.len() as u64,
            inbox_unread_sum: sum,
            inbox_unread_max: max,
            locks,
            writer_queue,
            store_faults,
        }
    }

    /// Put new settings in force (a reload). Everything reads them per call, so a
    /// hub rebuilt meanwhile (storage fault) cannot keep an older copy.
    pub(crate) fn put_settings(&self, s: Settings) {
        self.inner.settings.store(Arc::new(s));
    }

    /// Record that `id` just made a request (presence); the first one after being
    /// offline goes to the event stream.
    pub(crate) fn touch(&self, id: &AgentId, now: DateTime<Utc>) {
        if let Some(h) = self.inner.dir.agents.get(id) {
            // SeqCst with the sweep's: either it sees this time, or this sees its
            // cleared flag (see `sweep_presence`).
            h.last_seen_ms
                .store(now.timestamp_millis(), Ordering::SeqCst);
            if !h.online.load(Ordering::SeqCst) {
                let _one = self
                    .inner
                    .presence
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if !h.online.swap(true, Ordering::SeqCst) {
                    self.presence_event(id.as_str(), true, now);
                }
            }
        }
    }

    /// Wait until the writer is done with everything queued so far (a no-op in fast
    /// mode). Answers that wrote nothing themselves (reads, refusals) call this so
    /// that nothing they show can vanish in a crash ("read committed"); during a
    /// storage fault reads go on, and the rebuild from disk drops what was not saved.
    pub(crate) async fn settled(&self) -> Result<(), HubError> {
        // Inside a logged call's group: its end waits for everything queued before
        // it (waiting here could wait for another call's group, which may wait for
        // this one's: see `store::group`).
        if group::defer(None) {
            return Ok(());
        }
        let store = &self.inner.store;
        if self.inner.settings.load().durability == crate::config::Durability::Fast {
            return Ok(());
        }
        store.settled().await?;
        Ok(())
    }

    /// The answer logged under `key` for a call a gateway repeats (`mcp::replay`).
    pub(crate) async fn logged_reply(&self, key: &str) -> Result<Option<String>, HubError> {
        Ok(self.inner.store.logged_reply(key).await?)
    }

    /// The end of a logged call ([`group::run`], left before this): close
    /// its group, with its answer if it is to be logged, and wait once for all it
    /// wrote (or, if it wrote nothing, for all queued before it).
    pub(crate) async fn end_logged(
        &self,
        ended: group::Ended,
        logged: Option<crate::store::op::LoggedReply>,
    ) -> Result<(), HubError> {
        let store = &self.inner.store;
        // The End is queued after everything the call wrote: waiting for it
        // covers all of it.
        let ticket = match ended.group {
            Some(g) => Some(store.end_group(g, logged)),
            None => ended.ticket,
        };
        match ticket {
            Some(t) => store.wait_durable(t).await?,
            None => self.settled().await?,
        }
        Ok(())
    }

    /// Wait until the reply's write is on disk; a reply that wrote nothing waits
    /// for everything queued before it.
    async fn durable<T>(&self, (value, ticket): (T, Ticket)) -> Result<T, HubError> {
        if group::defer((ticket != Ticket::NONE).then_some(ticket)) {
            return Ok(value);
        }
        if ticket == Ticket::NONE {
            self.settled().await?;
        } else {
            self.inner.store.wait_durable(ticket).await?;
        }
        Ok(value)
    }

    /// Whether this hub serves the shard of `owner` (a task id, an agent id, a
    /// lock key): always, but with spread placement.
    pub(crate) fn owns(&self, owner: &str) -> bool {
        self.inner.held.owns(owner)
    }

    /// Whether this hub serves the home of a call of tool `name` (see
    /// `domain::route`): always, but with spread placement. A call naming an id
    /// that does not exist is served (and refused) wherever it arrives.
    pub(crate) async fn serves_home(
        &self,
        name: &str,
        args: &serde_json::Map<String, serde_json::Value>,
        caller: &AgentId,
    ) -> Result<bool, HubError> {
        if self.inner.held.is_all() {
            return Ok(true);
        }
        Ok(self
            .home_owner(name, args, caller)
            .await?
            .is_none_or(|owner| self.owns(&owner)))
    }

    /// The owner whose shard is the home of a call of tool `name`: the caller, a
    /// task or a lock key; `None` for an id that does not exist.
    pub(crate) async fn home_owner(
        &self,
        name: &str,
        args: &serde_json::Map<String, serde_json::Value>,
        caller: &AgentId,
    ) -> Result<Option<String>, HubError> {
        use crate::domain::route::{home, Home};
        if self.inner.held.is_all() {
            // Every shard is here: no look-up is worth making.
            return Ok(Some(caller.to_string()));
        }
        let task = match home(name, args, caller.as_str()) {
            Home::Agent(id) | Home::Task(id) | Home::Lock(id) => return Ok(Some(id.to_string())),
            Home::Round(id) => self.task_of_round(id).await,
            Home::Assignment(id) => self.task_of_assignment(id).await,
            Home::Handoff(id) => self.task_of_handoff(id).await,
        };
        match task {
            Ok(task) => Ok(Some(task)),
            Err(HubError::Domain(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether this hub is a node of a cluster with spread placement.
    pub(crate) fn spread(&self) -> bool {
        self.inner.dir.spread
    }

    /// [`HubError::NotOwner`] unless this hub serves `shard`.
    pub(crate) fn must_serve_shard(&self, shard: ShardId) -> Result<(), HubError> {
        if self.inner.held.contains(shard) {
            Ok(())
        } else {
            Err(HubError::NotOwner(format!("shard {}", shard.0)))
        }
    }

    /// [`HubError::NotOwner`] unless this hub serves the shard of `owner`.
    pub(crate) fn must_own(&self, what: &str, owner: &str) -> Result<(), HubError> {
        if self.owns(owner) {
            Ok(())
        } else {
            Err(HubError::NotOwner(format!("{what} {owner}")))
        }
    }

    /// The actor of agent `id`, served here: an agent of another node's shard is
    /// [`HubError::NotOwner`], an unknown one UNKNOWN_AGENT.
    fn agent(&self, id: &AgentId) -> Result<Addr<AgentActor>, HubError> {
        if self.inner.dir.elsewhere.contains_key(id) {
            return Err(HubError::NotOwner(format!("agent {id}")));
        }
        self.inner
            .dir
            .agents
            .get(id)
            .map(|h| h.addr.clone())
            .ok_or_else(|| DomainError::UnknownAgent(id.to_string()).into())
    }

    /// The actor of task `task_id`: in memory, or activated from SQLite (a task
    /// that finished before this start). Unknown tasks are TASK_NOT_FOUND.
    async fn task_addr(&self, task_id: &str) -> Result<Addr<TaskActor>, HubError> {
        if let Some(a) = self.inner.task_env.tasks.get(task_id) {
            return Ok(a.clone());
        }
        // Never activated here from the store: another node writes it.
        self.must_own("task", task_id)?;
        let _single = self.inner.activation.lock().await;
        if let Some(a) = self.inner.task_env.tasks.get(task_id) {
            return Ok(a.clone());
        }
        let Some(state) = self.inner.store.load_task(task_id).await? else {
            return Err(task_not_found(task_id));
        };
        // A task created meanwhile (task_draft_create does not take the activation
        // lock) already has its actor: use it, and build none.
        match self.inner.task_env.tasks.entry(task_id.to_string()) {
            dashmap::Entry::Occupied(e) => Ok(e.get().clone()),
            dashmap::Entry::Vacant(v) => {
                tracing::debug!(task = task_id, "task activated from storage");
                let actor = TaskActor::new(state, self.inner.task_env.clone());
                let addr = TaskActor::start_in_arbiter(&self.inner.arbiter, move |_| actor);
                v.insert(addr.clone());
                Ok(addr)
            }
        }
    }

    /// The task owning an id of `map` (rounds, assignments, handoffs): from the
    /// directory when the task is in memory, else from the store.
    async fn owner(
        &self,
        map: &DashMap<String, String>,
        kind: Owned,
        id: &str,
        missing: impl FnOnce() -> DomainError,
    ) -> Result<String, HubError> {
        if let Some(t) = map.get(id) {
            return Ok(t.clone());
        }
        let stored = self.inner.store.owner_of(kind, id).await?;
        stored.ok_or_else(|| missing().into())
    }

    async fn task_of_round(&self, round_id: &str) -> Result<String, HubError> {
        let map = &self.inner.dir.rounds;
        self.owner(map, Owned::Round, round_id, || {
            DomainError::refused(
                ErrorCode::RoundNotFound,
                format!("round {round_id} does not exist"),
            )
        })
        .await
    }

    /// Unknown assignment ids are refused exactly like someone else's assignment.
    async fn task_of_assignment(&self, id: &str) -> Result<String, HubError> {
        let map = &self.inner.dir.assignments;
        self.owner(map, Owned::Assignment, id, || {
            DomainError::refused(
                ErrorCode::AssignmentNotValid,
                format!("assignment {id} does not exist or is not assigned to you"),
            )
        })
        .await
    }

    async fn task_of_handoff(&self, id: &str) -> Result<String, HubError> {
        let map = &self.inner.dir.handoffs;
        self.owner(map, Owned::Handoff, id, || {
            DomainError::refused(ErrorCode::NotFound, format!("handoff {id} does not exist"))
        })
        .await
    }

    /// Send a command to the actor of task `task_id` and wait until what it wrote
    /// is durable. The one way a command reaches a TaskActor.
    async fn on_task<M, T>(&self, task_id: &str, msg: M) -> Result<T, HubError>
    where
        M: Message<Result = Reply<T>> + Clone + Send + 'static,
        T: Send + 'static,
        TaskActor: Handler<M>,
    {
        let reply = self.to_task(task_id, msg).await?;
        self.durable(reply).await
    }

    /// Send a command to the actor of task `task_id`; its reply and the ticket of
    /// what it wrote, without waiting for that (for a caller whose own later write
    /// covers it).
    async fn to_task<M, T>(&self, task_id: &str, msg: M) -> Result<(T, Ticket), HubError>
    where
        M: Message<Result = Reply<T>> + Clone + Send + 'static,
        T: Send + 'static,
        TaskActor: Handler<M>,
    {
        // A finished task may passivate between the look-up and the send: its actor
        // stops without handling the command, and the next try activates it again.
        let mut tries = 0;
        loop {
            tries += 1;
            let addr = self.task_addr(task_id).await?;
            let opened = group::before_write(&self.inner.store).await;
            match addr.send(msg.clone()).await {
                Err(MailboxError::Closed) if tries < 3 => {
                    if opened {
                        group::undelivered();
                    }
                    continue;
                }
                other => return other?,
            }
        }
    }
}
