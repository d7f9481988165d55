//! The operator event stream (`GET /operator/events`): every audited transition
//! (task, round, assignment, review, operator decision, forced or removed-agent lock
//! release), published by the writer thread once its batch is committed, so that an
//! event is never shown for a write that was lost. Subscribers get a bounded buffer;
//! one that falls behind gets a `resync` event (re-read the state, then go on). The
//! last [`RECENT`] events are kept so that a reconnecting client resumes after its
//! `Last-Event-ID`. Ids are time-ordered text (`<millis>-<sequence>`, hex), not
//! SQLite row ids, so they keep their meaning on another node.

use serde::Serialize;
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

/// Where events are published and subscribed to.
pub(crate) struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
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
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            seq: AtomicU64::new(0),
        }
    }
}

impl EventBus {
    /// Publish one committed audit row.
    pub(crate) fn publish(
        &self,
        event_type: &str,
        entity_type: &str,
        entity_id: &str,
        actor: &str,
        payload_json: &str,
        at: &str,
    ) {
        let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(Event {
            id: format!("{millis:012x}-{seq:08x}"),
            event_type: event_type.to_string(),
            entity_type: entity_type.to_string(),
            entity_id: entity_id.to_string(),
            actor: actor.to_string(),
            payload: serde_json::from_str(payload_json)
                .unwrap_or_else(|_| serde_json::Value::String(payload_json.to_string())),
            at: at.to_string(),
        });
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // No subscriber is fine.
        let _ = self.tx.send(event);
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
            bus.publish("t", "task", &format!("T{i}"), "a", "{}", "now");
        }
    }

    #[test]
    fn resumes_after_the_last_id_or_says_there_is_a_gap() {
        let bus = EventBus::default();
        publish(&bus, 3);
        let all = bus.subscribe(None);
        assert!(all.replay.is_empty() && !all.gap);
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
