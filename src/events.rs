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
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub actor: String,
    pub payload: serde_json::Value,
    pub at: String,
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
        }
    }
}

impl EventBus {
    /// Publish one event (of a committed write, or of presence).
    pub(crate) fn publish(&self, d: Draft) {
        let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(Event {
            id: format!("{millis:012x}-{seq:08x}"),
            event_type: d.event_type.into_owned(),
            entity_type: d.entity_type.into_owned(),
            entity_id: d.entity_id,
            actor: d.actor,
            payload: d.payload,
            at: d.at,
        });
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // No subscriber is fine.
        if !is_frequent(&event.event_type) {
            let _ = self.notable.send(event.clone());
        }
        let _ = self.tx.send(event);
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
}
