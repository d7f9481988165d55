//! The operator event stream (`GET /operator/events`): every audited transition
//! (task, round, assignment, review, operator decision, forced or removed-agent lock
//! release), every message delivered and lock granted, renewed or released, published
//! by the writer thread once its batch is committed, so that an event is never shown
//! for a write that was lost; and agents going online or offline, which are not
//! stored. Subscribers get a bounded buffer;
//! one that falls behind gets a `resync` event (re-read the state, then go on). The
//! last [`RECENT`] events are kept so that a reconnecting client resumes after its
//! `Last-Event-ID`. Ids are time-ordered text (`<millis>-<sequence>`, hex), not
//! SQLite row ids, so they keep their meaning on another node.

use crate::store::Op;
use serde::Serialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events kept for resuming, and each subscriber's buffer.
pub(crate) const RECENT: usize = 1024;

/// One event as the stream sends it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub actor: String,
    pub payload: serde_json::Value,
    pub at: String,
    /// Published by another node of the cluster and relayed here (spread
    /// placement, `http::gateway::relay_events`): shown to watchers, never sent
    /// on to another node nor to this node's webhooks (its own node sends those).
    #[serde(skip)]
    pub relayed: bool,
}

/// An event before it gets its id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    pub event_type: Cow<'static, str>,
    pub entity_type: Cow<'static, str>,
    pub entity_id: String,
    pub actor: String,
    pub payload: Value,
    pub at: String,
}

/// Recipients named in a `message_delivered` event; a broadcast to more says how
/// many there were instead, so that an event's size stays bounded.
const NAMED_RECIPIENTS: usize = 64;

/// The `message_delivered` event of a message to `here` and `elsewhere`.
fn delivered(
    message: &crate::domain::message::Message,
    here: &[String],
    elsewhere: &[String],
) -> Draft {
    let named: Vec<&String> = here
        .iter()
        .chain(elsewhere)
        .take(NAMED_RECIPIENTS)
        .collect();
    Draft {
        event_type: "message_delivered".into(),
        entity_type: "message".into(),
        entity_id: message.id.clone(),
        actor: message.from_agent.clone(),
        payload: json!({
            "to_agent": message.to_agent,
            "recipients": named,
            "recipient_count": here.len() + elsewhere.len(),
            "round_id": message.round_id,
            "msg_type": message.msg_type,
            "subject": message.subject,
        }),
        at: message.created_at.clone(),
    }
}

/// What a committed op shows on the stream, if anything.
pub(crate) fn of_op(op: &Op) -> Option<Draft> {
    let now = || crate::domain::time::iso(chrono::Utc::now());
    match op {
        Op::Audit(row) => Some(Draft {
            event_type: Cow::Owned(row.event_type.clone()),
            entity_type: Cow::Owned(row.entity_type.clone()),
            entity_id: row.entity_id.clone(),
            actor: row.actor.clone(),
            payload: serde_json::from_str(&row.payload_json)
                .unwrap_or_else(|_| Value::String(row.payload_json.clone())),
            at: row.at.clone(),
        }),
        Op::MessageInsert {
            message,
            recipients,
        } => Some(delivered(message, recipients, &[])),
        // Spread placement: the recipients served elsewhere get it through the
        // outbox, as surely as the others.
        Op::MessageElsewhere {
            message,
            recipients,
            elsewhere,
            ..
        } => Some(delivered(message, recipients, elsewhere)),
        // A draft is no audited transition, but the operator's views list it.
        Op::TaskCreated(task) => Some(Draft {
            event_type: "task_created".into(),
            entity_type: "task".into(),
            entity_id: task.id.clone(),
            actor: task.dispatcher_agent_id.clone(),
            payload: json!({"task_status": task.status.as_str(), "title": task.title}),
            at: crate::domain::time::iso(task.created_at),
        }),
        Op::LockUpsert { lock, renewed } => Some(Draft {
            event_type: if *renewed {
                "lock_renewed".into()
            } else {
                "lock_granted".into()
            },
            entity_type: "lock".into(),
            entity_id: lock.lock_key.clone(),
            actor: lock.holder_agent_id.clone(),
            payload: json!({
                "fencing_token": lock.fencing_token,
                "expires_at": crate::domain::time::iso(lock.expires_at),
                "resource_type": lock.resource_type,
                "resource_id": lock.resource_id,
            }),
            at: now(),
        }),
        Op::LockDelete {
            key, holder, why, ..
        } => Some(Draft {
            event_type: "lock_released".into(),
            entity_type: "lock".into(),
            entity_id: key.clone(),
            actor: holder.clone(),
            payload: json!({ "reason": why.as_str() }),
            at: now(),
        }),
        _ => None,
    }
}

/// Kinds that come with every message or lock call; the rest are rare.
pub(crate) fn is_frequent(event_type: &str) -> bool {
    matches!(
        event_type,
        "message_delivered" | "lock_granted" | "lock_renewed" | "lock_released"
    )
}

/// Where events are published and subscribed to.
pub(crate) struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    /// The same without the frequent kinds (messages, lock grants and releases): for
    /// readers that must not lose a rare event in a flood of those (webhooks).
    notable: broadcast::Sender<Arc<Event>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
    seq: AtomicU64,
    /// The time of the last id given (under the lock of `recent`).
    last_ms: AtomicU64,
    /// In cluster mode, `-<node id>` after each id: the ids of events relayed from
    /// other nodes stay unique.
    tag: std::sync::OnceLock<String>,
}

/// What a new subscriber gets: the events after its `Last-Event-ID` (or a note that
/// they are no longer kept), and the live stream.
pub(crate) struct Subscription {
    pub replay: Vec<Arc<Event>>,
    /// The id asked for is older than what is kept: the client must resync.
    pub gap: bool,
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(RECENT).0,
            notable: broadcast::channel(RECENT).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            seq: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            tag: std::sync::OnceLock::new(),
        }
    }
}

impl EventBus {
    /// Publish one event (of a committed write, or of presence).
    pub(crate) fn publish(&self, d: Draft) {
        // Numbered, kept and sent under one lock (the writer, presence and the
        // supervisor publish from different threads): events go out in the
        // order of their ids, which another node's relay relies on to skip what
        // it passed on already. The time never goes back within a process.
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let millis = now.max(self.last_ms.load(Ordering::Relaxed));
        self.last_ms.store(millis, Ordering::Relaxed);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let tag = self.tag.get().map_or("", String::as_str);
        let event = Arc::new(Event {
            id: format!("{millis:012x}-{seq:08x}{tag}"),
            event_type: d.event_type.into_owned(),
            entity_type: d.entity_type.into_owned(),
            entity_id: d.entity_id,
            actor: d.actor,
            payload: d.payload,
            at: d.at,
            relayed: false,
        });
        keep(&mut recent, &event);
        // No subscriber is fine.
        if !is_frequent(&event.event_type) {
            let _ = self.notable.send(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// Publish an event another node published (spread placement): to watchers
    /// and for their resuming, not to webhooks.
    pub(crate) fn import(&self, mut e: Event) {
        e.relayed = true;
        let event = Arc::new(e);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        keep(&mut recent, &event);
        let _ = self.tx.send(event);
    }

    /// Whether `id` is one of the events kept.
    pub(crate) fn holds(&self, id: &str) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().rev().any(|e| e.id == id)
    }

    /// Whether `id` names an event another node published (cluster mode).
    pub(crate) fn is_foreign(&self, id: &str) -> bool {
        let own = self.tag.get().map(|t| &t[1..]);
        match id.splitn(3, '-').nth(2) {
            Some(node) => own.is_some_and(|own| own != node),
            None => false,
        }
    }

    /// Cluster mode: suffix this node's id to the ids of its events.
    pub(crate) fn set_node(&self, node_id: &str) {
        let _ = self.tag.set(format!("-{node_id}"));
    }

    /// This node's own events kept, published at `since_ms` or later, and the
    /// live stream (whose relayed events the reader skips): what another node's
    /// relay starts from.
    pub(crate) fn subscribe_local(&self, since_ms: u64) -> Subscription {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.tx.subscribe();
        let replay = recent
            .iter()
            .filter(|e| !e.relayed && millis_of(&e.id).is_some_and(|m| m >= since_ms))
            .cloned()
            .collect();
        Subscription {
            replay,
            gap: false,
            live,
        }
    }

    /// The id of the newest event published (a page rendered now shows everything
    /// up to it; its live stream resumes after it).
    pub(crate) fn last_id(&self) -> Option<String> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.back().map(|e| e.id.clone())
    }

    /// Every event but the frequent kinds (see [`is_frequent`]), from now on.
    pub(crate) fn subscribe_notable(&self) -> broadcast::Receiver<Arc<Event>> {
        self.notable.subscribe()
    }

    /// Subscribe, resuming after `last_id` if given.
    pub(crate) fn subscribe(&self, last_id: Option<&str>) -> Subscription {
        // Subscribed under the lock of `recent`: an event published meanwhile is
        // either in the replay or on the live receiver, never in both or neither.
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.tx.subscribe();
        let (replay, gap) = match last_id {
            None => (Vec::new(), false),
            Some(id) => match recent.iter().position(|e| e.id == id) {
                Some(i) => (recent.iter().skip(i + 1).cloned().collect(), false),
                None => (Vec::new(), true),
            },
        };
        Subscription { replay, gap, live }
    }
}

/// `event` kept for resuming, the oldest dropped past [`RECENT`].
fn keep(recent: &mut VecDeque<Arc<Event>>, event: &Arc<Event>) {
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(event.clone());
}

/// When the event of `id` was published (its leading hex milliseconds).
pub(crate) fn millis_of(id: &str) -> Option<u64> {
    u64::from_str_radix(id.split('-').next()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(bus: &EventBus, n: usize) {
        for i in 0..n {
            bus.publish(Draft {
                event_type: "t".into(),
                entity_type: "task".into(),
                entity_id: format!("T{i}"),
                actor: "a".into(),
                payload: json!({}),
                at: "now".into(),
            });
        }
    }

    #[test]
    fn resumes_after_the_last_id_or_says_there_is_a_gap() {
        let bus = EventBus::default();
        publish(&bus, 3);
        let all = bus.subscribe(None);
        assert!(all.replay.is_empty() && !all.gap);
        let newest = bus.last_id().unwrap();
        assert!(bus.subscribe(Some(&newest)).replay.is_empty());
        assert_eq!(EventBus::default().last_id(), None);
        let first = bus.recent.lock().unwrap()[0].id.clone();
        let after = bus.subscribe(Some(&first));
        let ids: Vec<&str> = after.replay.iter().map(|e| e.entity_id.as_str()).collect();
        assert_eq!(ids, ["T1", "T2"]);
        assert!(bus.subscribe(Some("0-0")).gap);
        publish(&bus, RECENT);
        assert!(bus.subscribe(Some(&first)).gap, "no longer kept");
    }

    #[test]
    fn live_subscribers_get_new_events_in_order() {
        let bus = EventBus::default();
        let mut sub = bus.subscribe(None);
        publish(&bus, 2);
        assert_eq!(sub.live.try_recv().unwrap().entity_id, "T0");
        assert_eq!(sub.live.try_recv().unwrap().entity_id, "T1");
        let a = bus.recent.lock().unwrap()[0].id.clone();
        let b = bus.recent.lock().unwrap()[1].id.clone();
        assert!(a < b, "ids are ordered as text");
    }

    #[test]
    fn relayed_events_reach_watchers_but_not_webhooks_nor_other_nodes() {
        let bus = EventBus::default();
        bus.set_node("n1");
        let mut notable = bus.subscribe_notable();
        let mut all = bus.subscribe(None);
        publish(&bus, 1);
        let own = bus.last_id().unwrap();
        assert!(own.ends_with("-n1"), "{own}");
        let mut from_n2 = all.live.try_recv().unwrap().as_ref().clone();
        from_n2.id = format!("{}-n2", own.trim_end_matches("-n1"));
        from_n2.entity_id = "T-n2".into();
        bus.import(from_n2.clone());
        assert_eq!(all.live.try_recv().unwrap().entity_id, "T-n2");
        assert_eq!(notable.try_recv().unwrap().entity_id, "T0");
        assert!(notable.try_recv().is_err(), "webhooks are the other node's");
        // Resumable after a relayed id; another node's relay gets only our own.
        let after = bus.subscribe(Some(&own));
        assert_eq!(after.replay.len(), 1);
        assert!(after.replay[0].relayed);
        let local = bus.subscribe_local(0);
        let ids: Vec<&str> = local.replay.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, [own.as_str()]);
        assert!(bus
            .subscribe_local(millis_of(&own).unwrap() + 1)
            .replay
            .is_empty());
        assert!(bus.holds(&own) && bus.holds(&from_n2.id) && !bus.holds("0-0"));
        assert!(bus.is_foreign(&from_n2.id) && !bus.is_foreign(&own));
        assert!(!bus.is_foreign("0-0"));
    }
}
