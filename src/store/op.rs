//! Write operations. An op carries every value it writes (ids, timestamps, JSON), as
//! chosen by the actor, so the writer never decides anything and re-applying an op is
//! harmless. Built by the actors, queued with [`super::Store::enqueue`] and written by
//! [`super::apply`] on the writer thread.

use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::shard::{shard_of, ShardId};
use crate::domain::task::{Assignment, Handoff, Round, Task};
use crate::domain::time::{iso, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// `agent_register`: name and capabilities (JSON array text).
    AgentRegister {
        id: String,
        name: String,
        capabilities_json: String,
        at: String,
    },
    /// A reload of the agent list: every listed agent (id, token hash) exists and is
    /// active, the others are inactive (their rows and mail are kept).
    AgentsSync {
        agents: Vec<(String, String)>,
        at: String,
    },
    /// `agent_heartbeat`. A burst from one agent within a batch becomes one UPDATE.
    AgentHeartbeat {
        id: String,
        at: String,
    },
    /// A new message and its recipients, in one op so that a message is never
    /// stored without its deliveries.
    MessageInsert {
        message: Arc<Message>,
        recipients: Vec<String>,
    },
    /// Spread placement: [`Op::MessageInsert`] of a message some of whose
    /// recipients (`elsewhere`) other nodes serve: the message, the deliveries to
    /// `recipients` (served here) and one outbox row per recipient elsewhere, for
    /// its owner to take ([`Op::OutboxTaken`]), in one op so that none is stored
    /// without the others. `fence` made it (the sender, or a notice's task): its
    /// shard fences it.
    MessageElsewhere {
        message: Arc<Message>,
        recipients: Vec<String>,
        elsewhere: Vec<String>,
        fence: String,
        /// A hub notice's channel event, pushed by the recipient's node when it
        /// takes the delivery (`delivery_outbox.event_json`).
        event: Option<crate::domain::channel::Item>,
    },
    /// Spread placement: the delivery of `message` to `agent` (served here) that
    /// another node left in the outbox, taken.
    OutboxTaken {
        message: Arc<Message>,
        agent: String,
    },
    /// Spread placement: the quota unit (`agent_quota`, kind `kind`) of `item`
    /// goes back: the assignment is no longer active, or the task is finished.
    /// `task_id` is the item's task, whose shard fences it.
    QuotaFree {
        kind: &'static str,
        item_id: String,
        task_id: String,
    },
    /// `agent` read `message_ids`.
    MessageAck {
        agent: String,
        message_ids: Vec<String>,
        at: String,
    },
    /// The operator's purge: every stored delivery to `agent` (of messages `from`
    /// sent, if given), read or not, in one statement. The message rows stay (their
    /// dedupe keys with them). How many rows went is left in `deleted`.
    DeliveriesPurge {
        agent: String,
        from: Option<String>,
        deleted: Tally,
    },
    /// Workflow rows, written whole (insert or replace) after each transition.
    TaskUpsert(Task),
    RoundUpsert(Round),
    AssignmentUpsert(Assignment),
    /// A new task: stored, and counted in `hub_counters` in the same statement
    /// group (a task already stored is neither changed nor counted again).
    TaskCreated(Task),
    /// A task's count of agent messages about its rounds (its budget), kept on the
    /// task so that pruning messages does not reset it.
    TaskMessageCount {
        task_id: String,
        count: u32,
    },
    /// A pending assignment replaced by a revised plan (`task_id`: its task, the
    /// owner of the row).
    AssignmentDelete {
        id: String,
        task_id: String,
    },
    HandoffInsert(Handoff),
    /// One row of `operator_approvals` (`task_id`: the round's task, its owner).
    Approval {
        id: String,
        task_id: String,
        round_id: String,
        action: String,
        note: String,
        at: String,
    },
    /// A granted or renewed lock (and its key's fencing counter).
    LockUpsert {
        lock: Lock,
        renewed: bool,
    },
    /// A released or expired lock; `id` guards against deleting a newer holder's row.
    /// `holder` and `why` are for the event stream only.
    LockDelete {
        key: String,
        id: String,
        holder: String,
        why: LockGone,
    },
    /// Writes nothing: its commit means every op before it is done, a vacuum too.
    Mark,
    /// Opens group `0`: every op queued from here to the group's [`Op::End`] is
    /// committed in one transaction (the writer cuts batches only where no group
    /// is open). Writes nothing.
    Begin(u64),
    /// Closes group `group`; with `logged`, stores a forwarded call's answer in
    /// `request_log`, so in the same transaction as the call's writes.
    End {
        group: u64,
        logged: Option<LoggedReply>,
    },
    /// Give free pages back to the file system, after the transaction it is in:
    /// `full` rewrites the file (and turns on incremental vacuum for an older
    /// database), else only the free pages at the end go (`incremental_vacuum`).
    Vacuum {
        full: bool,
    },
    /// Retention: messages (every recipient read them), finished tasks, audit events.
    PruneMessages(Vec<String>),
    PruneTasks(Vec<String>),
    /// Audit rows by id.
    PruneAudit(Vec<i64>),
    /// One row of `audit_events`; one already stored under its id (a batch applied
    /// again) is left as it is.
    Audit(AuditRow),
}

/// The shards whose rows an op writes: in cluster mode, the writer fences the op
/// on their epochs, and refuses it on a node that does not hold them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Writes no row of any shard.
    Nothing,
    /// The rows of one owner (an agent, a task, a lock key).
    One(ShardId),
    /// A message and its deliveries: the sender's shard and each recipient's.
    Many(Vec<ShardId>),
    /// Rows anywhere (the agent list): only a node holding every shard may write
    /// it.
    Every,
}

/// The shards of `owners`, once each.
fn many<'a>(owners: impl Iterator<Item = &'a str>) -> Scope {
    let mut shards: Vec<ShardId> = owners.map(shard_of).collect();
    shards.sort();
    shards.dedup();
    Scope::Many(shards)
}

impl Op {
    /// What [`Scope`] this op writes in. Each row's shard is its owner's, as the
    /// PostgreSQL writer stores it in the row's `shard` column.
    pub(crate) fn scope(&self) -> Scope {
        let of = |owner: &str| Scope::One(shard_of(owner));
        match self {
            Op::AgentRegister { id, .. } | Op::AgentHeartbeat { id, .. } => of(id),
            Op::MessageAck { agent, .. } | Op::DeliveriesPurge { agent, .. } => of(agent),
            Op::MessageElsewhere {
                recipients, fence, ..
            } => many(std::iter::once(fence.as_str()).chain(recipients.iter().map(String::as_str))),
            Op::OutboxTaken { agent, .. } => of(agent),
            Op::QuotaFree { task_id, .. } => of(task_id),
            Op::MessageInsert {
                message,
                recipients,
            } => {
                // A hub notice's sender is no owner: its recipients' shards fence it.
                let sender =
                    Some(message.from_agent.as_str()).filter(|s| *s != crate::domain::channel::HUB);
                many(
                    sender
                        .into_iter()
                        .chain(recipients.iter().map(String::as_str)),
                )
            }
            Op::TaskUpsert(t) | Op::TaskCreated(t) => of(&t.id),
            Op::RoundUpsert(r) => of(&r.task_id),
            Op::AssignmentUpsert(a) => of(&a.task_id),
            Op::HandoffInsert(h) => of(&h.task_id),
            Op::TaskMessageCount { task_id, .. }
            | Op::AssignmentDelete { task_id, .. }
            | Op::Approval { task_id, .. } => of(task_id),
            Op::LockUpsert { lock, .. } => of(&lock.lock_key),
            Op::LockDelete { key, .. } => of(key),
            Op::Audit(row) => of(&row.entity_id),
            Op::Mark | Op::Vacuum { .. } | Op::Begin(_) | Op::End { logged: None, .. } => {
                Scope::Nothing
            }
            Op::End {
                logged: Some(l), ..
            } => of(&l.owner),
            Op::PruneTasks(ids) => many(ids.iter().map(String::as_str)),
            // History no owner writes any more (messages every recipient read,
            // past audit rows), in every shard: pruned by the node serving the
            // first shard alone, fenced by its epoch there.
            Op::PruneMessages(_) | Op::PruneAudit(_) => Scope::One(ShardId(0)),
            Op::AgentsSync { .. } => Scope::Every,
        }
    }
}

/// A forwarded call's answer, kept in `request_log` for [`LOGGED_FOR`] so that a
/// gateway repeating the call (its connection to the serving node was lost after
/// the call was sent) gets this answer instead of running it again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoggedReply {
    /// `request_log.request_id`: the agent, the gateway's request id and the
    /// call's JSON-RPC id (see `mcp::replay`).
    pub key: String,
    /// The caller.
    pub agent: String,
    /// Whose shard the row is in: the call's home (its task, lock key or caller;
    /// see `domain::route`), which the node answering it holds.
    pub owner: String,
    /// The tool result, as answered.
    pub reply: String,
    pub at: String,
}

/// How long `request_log` keeps an answer: far beyond a gateway's 20 s of retries.
pub(crate) const LOGGED_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// One row of `audit_events`: an audited transition, written by [`Op::Audit`] and
/// shown on the operator event stream once committed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditRow {
    /// Chosen with the row ([`crate::domain::audit_id`]), never by the database.
    pub id: i64,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    /// An agent id, `operator` or `system`.
    pub actor: String,
    pub payload_json: String,
    pub at: String,
}

impl AuditRow {
    /// `event_type` of the entity (`entity_type`, `entity_id`), done by `actor` at
    /// `now`; its id is the next of the entity's shard.
    pub(crate) fn new(
        event_type: &str,
        (entity_type, entity_id): (&str, &str),
        actor: &str,
        payload_json: String,
        now: Timestamp,
    ) -> AuditRow {
        let shard = crate::domain::shard::shard_of(entity_id);
        AuditRow {
            id: crate::domain::audit_id::audit_id(shard, now),
            event_type: event_type.to_string(),
            entity_type: entity_type.to_string(),
            entity_id: entity_id.to_string(),
            actor: actor.to_string(),
            payload_json,
            at: iso(now),
        }
    }
}

/// Why a lock's row is deleted (shown on the operator event stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockGone {
    /// `lock_release` by its holder.
    Released,
    /// Its lease ran out (also: while the server was down).
    Expired,
    /// `hubctl unlock`.
    Forced,
    /// Its holder was removed from `agents.env`.
    AgentRemoved,
    /// Granted to a waiter that hung up before it could learn of it.
    Withdrawn,
}

impl LockGone {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LockGone::Released => "released",
            LockGone::Expired => "expired",
            LockGone::Forced => "forced",
            LockGone::AgentRemoved => "agent_removed",
            LockGone::Withdrawn => "withdrawn",
        }
    }
}

/// A count the writer leaves for the op's caller: the rows a purge deleted, which
/// only the statement itself can know exactly (a delivery may be stored between any
/// count taken before and the purge). Set while the op's transaction is applied, so
/// it is final once the op's ticket is committed. An op applied again (a batch
/// retried) sets it again to what that application deleted. Equal only to itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally(Arc<AtomicU64>);

impl Tally {
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Release);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl PartialEq for Tally {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
