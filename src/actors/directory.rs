//! Directories shared by the hub façade and the actors: which actor owns an id, and
//! the few counters that span tasks. DashMaps, so that lookups from every HTTP worker
//! never wait on an actor, and creating an entry for a new id is atomic (entry API).

use super::agent::{AgentActor, Deliver, Push};
use crate::domain::channel::{Item, HUB};
use crate::domain::ids::message_id;
use crate::domain::inbox::InboxGauge;
use crate::domain::message::Message;
use crate::domain::rate::TokenBucket;
use crate::domain::time::iso;
use crate::domain::workflow::Notice;
use crate::domain::AgentId;
use crate::store::{Op, Store, Ticket};
use actix::Addr;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex};

/// Directory entry of one agent.
pub(crate) struct AgentHandle {
    pub addr: Addr<AgentActor>,
    /// Unix millis of the agent's last authenticated request (0 = never). An atomic
    /// rather than an actor message: it is written on every request and only read
    /// by the operator's presence view.
    pub last_seen_ms: AtomicI64,
    /// Whether the event stream was last told that the agent is online (set by its
    /// first request, cleared by the presence sweep).
    pub online: AtomicBool,
    /// The agent's `message_send` allowance; a lock rather than an actor message
    /// because it is checked before anything else of a send and held for nanoseconds.
    pub send_bucket: Mutex<TokenBucket>,
    /// Unread plus promised messages of the agent's inbox (shared with its actor).
    pub inbox: Arc<InboxGauge>,
}

/// The sender id of the hub's own notices.
pub(crate) const HUB_SENDER: &str = HUB;

#[derive(Default)]
pub(crate) struct Directory {
    /// Spread placement: this hub serves some shards; the quotas that span tasks
    /// are counted cluster-wide too (`pg::quota`).
    pub spread: bool,
    /// Every agent of `agents.env` (spread placement: of this node's shards), with
    /// its actor; filled at start-up, changed by a reload.
    pub agents: DashMap<AgentId, AgentHandle>,
    /// Spread placement: the agents of the registry whose shards other nodes
    /// serve (known to exist; their inboxes are elsewhere).
    pub elsewhere: DashMap<AgentId, ()>,
    /// Round / assignment / handoff id → task id, kept by the TaskActors.
    pub rounds: DashMap<String, String>,
    pub assignments: DashMap<String, String>,
    pub handoffs: DashMap<String, String>,
    /// Agent id → its claimed or in-progress assignments, across all tasks.
    active: DashMap<String, u32>,
    /// Agent id → the tasks it created that are neither completed nor closed.
    /// Kept beside the actors (an open task is always in memory), so counting needs
    /// no scan of the stored tasks.
    open_tasks: DashMap<String, u32>,
}

/// Take one of `key`'s units in `map` if fewer than `max` are taken. Atomic: the
/// entry holds its shard lock while checking.
fn try_take(map: &DashMap<String, u32>, key: &str, max: u32) -> bool {
    let mut n = map.entry(key.to_string()).or_insert(0);
    if *n >= max {
        return false;
    }
    *n += 1;
    true
}

fn give_back(map: &DashMap<String, u32>, key: &str) {
    if let Some(mut n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
    }
}

impl Directory {
    /// An empty directory; `spread`: see [`Directory::spread`].
    pub(crate) fn new(spread: bool) -> Directory {
        Directory {
            spread,
            ..Directory::default()
        }
    }

    /// Whether `id` is an agent of the registry, served here or elsewhere.
    pub(crate) fn exists(&self, id: &AgentId) -> bool {
        self.agents.contains_key(id) || self.elsewhere.contains_key(id)
    }

    /// Take one of `agent`'s active-assignment slots if fewer than `max` are taken.
    /// Atomic across tasks: the entry holds its shard lock while checking.
    pub(crate) fn try_reserve_slot(&self, agent: &str, max: u32) -> bool {
        try_take(&self.active, agent, max)
    }

    pub(crate) fn release_slot(&self, agent: &str) {
        give_back(&self.active, agent)
    }

    /// `agent`'s claimed or in-progress assignments now.
    pub(crate) fn active_slots(&self, agent: &str) -> u32 {
        self.active.get(agent).map_or(0, |n| *n)
    }

    /// Count one more open task of `dispatcher` if it has fewer than `max`.
    pub(crate) fn try_reserve_open_task(&self, dispatcher: &str, max: u32) -> bool {
        try_take(&self.open_tasks, dispatcher, max)
    }

    /// One of `dispatcher`'s tasks was completed or closed (or never created).
    pub(crate) fn release_open_task(&self, dispatcher: &str) {
        give_back(&self.open_tasks, dispatcher)
    }

    /// Store a hub notice of task `task` and put it in the recipient's inbox (or,
    /// spread placement, in the outbox for the node serving the recipient).
    /// Returns its ticket.
    pub(crate) fn deliver_notice(
        &self,
        store: &Store,
        task: &str,
        notice: Notice,
        now: DateTime<Utc>,
    ) -> Ticket {
        let to = AgentId::new(&notice.to);
        let here = self.agents.get(&to).map(|h| h.addr.clone());
        if here.is_none() && !self.elsewhere.contains_key(&to) {
            // The agent was removed from agents.env: nobody to tell.
            return Ticket::NONE;
        }
        let message = Arc::new(Message {
            id: message_id(now.timestamp_millis()),
            dedupe_key: None,
            reply_to: None,
            from_agent: HUB_SENDER.to_string(),
            to_agent: Some(notice.to.clone()),
            round_id: notice.round_id,
            msg_type: notice.msg_type.to_string(),
            subject: notice.subject,
            body: notice.body,
            context_json: "{}".into(),
            hop_count: 0,
            created_at: iso(now),
        });
        let Some(addr) = here else {
            // Its owner takes it from the outbox, and pushes its event then.
            return store.enqueue(Op::MessageElsewhere {
                message,
                recipients: Vec::new(),
                elsewhere: vec![notice.to],
                fence: task.to_string(),
                event: Some(notice.push),
            });
        };
        let ticket = store.enqueue(Op::MessageInsert {
            message: message.clone(),
            recipients: vec![notice.to],
        });
        // Hub notices bypass the inbox quota: the workflow must reach its agents.
        let push = Item {
            message_id: Some(message.id.clone()),
            ..notice.push
        };
        addr.do_send(Deliver(message, None, ticket));
        // After the delivery, in the same mailbox: the event follows its message.
        addr.do_send(Push(push));
        ticket
    }

    /// Tell agent `to` something on its channel only (no inbox message). An agent
    /// removed from agents.env has nobody to tell.
    pub(crate) fn push(&self, to: &str, item: Item) {
        let id = AgentId::new(to);
        if let Some(h) = self.agents.get(&id) {
            h.addr.do_send(Push(item));
        } else if self.elsewhere.contains_key(&id) {
            // Spread placement: its streams are at the node serving it.
            super::hub::push_elsewhere(id, item);
        }
    }

    /// [`Directory::push`] to an agent served here only (what another node sent
    /// on): never sent on again.
    pub(crate) fn push_here(&self, to: &AgentId, item: Item) {
        if let Some(h) = self.agents.get(to) {
            h.addr.do_send(Push(item));
        }
    }
}
