//! The store's read side as the actors see it: every question they ask of what is
//! committed, as one named, typed method of [`Reads`]. No SQL and no database type
//! crosses this line, so a second backend (PostgreSQL, cluster.md §3) serves the
//! same actors by implementing this trait. SQLite's implementation is in
//! [`sqlite`]. Writes never come through here: they are [`super::Op`]s.
//!
//! Every read first waits until each write queued before it is committed, so it
//! sees every write already answered (as [`super::Store::read`] does for SQLite).

pub(crate) mod postgres;
mod sqlite;

use super::load::{AgentRow, MailState, Snapshot};
use super::pages::{AuditEvent, AuditFilter, Decision, Delivery, Page, PageRequest, TaskSummary};
use super::writer::ReadSide;
use super::{Store, StoreError};
use crate::domain::inbox::{SendQuery, Stored};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::shard::Shards;
use crate::domain::task::{Assignment, Round};
use crate::domain::workflow::TaskState;
use std::collections::{HashMap, HashSet};

pub(crate) use super::load_tasks::Owned;
pub(crate) use super::prune::{Prunable, BATCH as PRUNE_BATCH};

/// Reads of committed state. `async fn`, so the futures need not be `Send`: a read
/// waits for its commit through the relay of the actix thread that started it
/// (`writer/relay.rs`) and runs to its end on that thread.
pub(crate) trait Reads {
    // --- Activation: live state entering memory ---

    /// The live state of `shards`: active agents with their unread deliveries,
    /// tasks with open work, locks (how the hub is rebuilt after a storage fault).
    async fn load(&self, shards: &Shards) -> Result<Snapshot, StoreError>;

    /// One task with everything under it; `None` if no such task is stored.
    async fn load_task(&self, id: &str) -> Result<Option<TaskState>, StoreError>;

    /// One active agent with its unread deliveries; `None` if it is not an active
    /// agent.
    async fn load_agent(&self, id: &str) -> Result<Option<(AgentRow, MailState)>, StoreError>;

    /// The task owning the round, assignment or handoff `id`, if stored.
    async fn owner_of(&self, kind: Owned, id: &str) -> Result<Option<String>, StoreError>;

    /// Whether task `id` is stored (in any state).
    async fn task_exists(&self, id: &str) -> Result<bool, StoreError>;

    /// The last fencing token handed out for lock `key` (0: never locked).
    async fn fencing_counter(&self, key: &str) -> Result<u64, StoreError>;

    // --- Messaging: the history an inbox's recent keys cannot answer ---

    /// Answer a send's [`SendQuery`] for sender `from`: the message it already sent
    /// with the dedupe key, and whether it sent or received the `reply_to` message.
    async fn send_history(&self, from: &str, query: SendQuery) -> Result<Stored, StoreError>;

    /// The stored messages of `ids`, by id (missing ones left out).
    async fn messages_by_id(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Message>, StoreError>;

    /// Which of `ids` were delivered to `agent`, read or not.
    async fn received_of(
        &self,
        agent: &str,
        ids: Vec<String>,
    ) -> Result<HashSet<String>, StoreError>;

    /// `agent`'s newest assignments across every task, at most `limit`.
    async fn assignments_of_agent(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError>;

    // --- Pages: the operator's lists, newest first, `req.limit` rows at most ---

    /// Tasks: open ones, or every one with `req.all`.
    async fn task_page(&self, req: PageRequest) -> Result<Page<TaskSummary>, StoreError>;

    /// Rounds: open ones, or every one with `req.all`.
    async fn round_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError>;

    /// Rounds waiting for the operator's approval.
    async fn awaiting_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError>;

    /// Audit events, narrowed by `filter`.
    async fn audit_page(
        &self,
        req: PageRequest,
        filter: AuditFilter,
    ) -> Result<Page<AuditEvent>, StoreError>;

    /// Every message.
    async fn message_page(&self, req: PageRequest) -> Result<Page<Message>, StoreError>;

    /// The messages of task `task_id` (those carrying one of its round ids).
    async fn task_message_page(
        &self,
        task_id: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError>;

    /// The messages `agent` sent.
    async fn sent_message_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError>;

    /// The messages delivered to `agent` with their read state (only unread ones
    /// with `unread`); `None` if `agent` was never stored.
    async fn delivery_page(
        &self,
        agent: &str,
        req: PageRequest,
        unread: bool,
    ) -> Result<Option<Page<Delivery>>, StoreError>;

    /// `agent`'s assignments across every task.
    async fn agent_assignment_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Assignment>, StoreError>;

    /// Active agents as (created_at, id): the order and the page only.
    async fn agent_page(&self, req: PageRequest) -> Result<Page<(String, String)>, StoreError>;

    /// Locks held at `now` (stored format, see `time::iso`).
    async fn lock_page(&self, req: PageRequest, now: &str) -> Result<Page<Lock>, StoreError>;

    /// Every operator decision on `round_id`, oldest first.
    async fn decisions(&self, round_id: &str) -> Result<Vec<Decision>, StoreError>;

    /// Stored tasks per state.
    async fn task_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;

    // --- Retention: candidates, [`PRUNE_BATCH`] at a time, oldest first ---

    /// Messages sent before `cutoff` that every recipient has read, after `after`
    /// (created_at, id).
    async fn acked_messages_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Completed and closed tasks last changed before `cutoff`, after `after`
    /// (updated_at, id).
    async fn finished_tasks_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Ids of audit events written before `cutoff`.
    async fn audit_events_before(&self, cutoff: &str) -> Result<Vec<i64>, StoreError>;

    /// How many rows `policy` names before `cutoff` now (a dry run).
    async fn prune_count(&self, policy: Prunable, cutoff: &str) -> Result<u64, StoreError>;
}

/// Each read goes to the store's backend.
macro_rules! backend {
    ($store:ident, $method:ident($($arg:expr),*)) => {
        match $store.read_side() {
            ReadSide::Sqlite(_) => sqlite::Sqlite($store).$method($($arg),*).await,
            ReadSide::Postgres(pool) => {
                postgres::Postgres::new($store, pool).$method($($arg),*).await
            }
        }
    };
}

impl Reads for Store {
    async fn load(&self, shards: &Shards) -> Result<Snapshot, StoreError> {
        backend!(self, load(shards))
    }

    async fn load_task(&self, id: &str) -> Result<Option<TaskState>, StoreError> {
        backend!(self, load_task(id))
    }

    async fn load_agent(&self, id: &str) -> Result<Option<(AgentRow, MailState)>, StoreError> {
        backend!(self, load_agent(id))
    }

    async fn owner_of(&self, kind: Owned, id: &str) -> Result<Option<String>, StoreError> {
        backend!(self, owner_of(kind, id))
    }

    async fn task_exists(&self, id: &str) -> Result<bool, StoreError> {
        backend!(self, task_exists(id))
    }

    async fn fencing_counter(&self, key: &str) -> Result<u64, StoreError> {
        backend!(self, fencing_counter(key))
    }

    async fn send_history(&self, from: &str, query: SendQuery) -> Result<Stored, StoreError> {
        backend!(self, send_history(from, query))
    }

    async fn messages_by_id(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Message>, StoreError> {
        backend!(self, messages_by_id(ids))
    }

    async fn received_of(
        &self,
        agent: &str,
        ids: Vec<String>,
    ) -> Result<HashSet<String>, StoreError> {
        backend!(self, received_of(agent, ids))
    }

    async fn assignments_of_agent(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        backend!(self, assignments_of_agent(agent, limit))
    }

    async fn task_page(&self, req: PageRequest) -> Result<Page<TaskSummary>, StoreError> {
        backend!(self, task_page(req))
    }

    async fn round_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError> {
        backend!(self, round_page(req))
    }

    async fn awaiting_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError> {
        backend!(self, awaiting_page(req))
    }

    async fn audit_page(
        &self,
        req: PageRequest,
        filter: AuditFilter,
    ) -> Result<Page<AuditEvent>, StoreError> {
        backend!(self, audit_page(req, filter))
    }

    async fn message_page(&self, req: PageRequest) -> Result<Page<Message>, StoreError> {
        backend!(self, message_page(req))
    }

    async fn task_message_page(
        &self,
        task_id: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        backend!(self, task_message_page(task_id, req))
    }

    async fn sent_message_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        backend!(self, sent_message_page(agent, req))
    }

    async fn delivery_page(
        &self,
        agent: &str,
        req: PageRequest,
        unread: bool,
    ) -> Result<Option<Page<Delivery>>, StoreError> {
        backend!(self, delivery_page(agent, req, unread))
    }

    async fn agent_assignment_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Assignment>, StoreError> {
        backend!(self, agent_assignment_page(agent, req))
    }

    async fn agent_page(&self, req: PageRequest) -> Result<Page<(String, String)>, StoreError> {
        backend!(self, agent_page(req))
    }

    async fn lock_page(&self, req: PageRequest, now: &str) -> Result<Page<Lock>, StoreError> {
        backend!(self, lock_page(req, now))
    }

    async fn decisions(&self, round_id: &str) -> Result<Vec<Decision>, StoreError> {
        backend!(self, decisions(round_id))
    }

    async fn task_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        backend!(self, task_counts())
    }

    async fn acked_messages_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        backend!(self, acked_messages_before(cutoff, after))
    }

    async fn finished_tasks_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        backend!(self, finished_tasks_before(cutoff, after))
    }

    async fn audit_events_before(&self, cutoff: &str) -> Result<Vec<i64>, StoreError> {
        backend!(self, audit_events_before(cutoff))
    }

    async fn prune_count(&self, policy: Prunable, cutoff: &str) -> Result<u64, StoreError> {
        backend!(self, prune_count(policy, cutoff))
    }
}

#[cfg(test)]
mod tests;
