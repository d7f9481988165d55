//! Spread placement: the operator's event stream shows the whole cluster. Each
//! node publishes the events of its own writes (after their commit) and of its
//! agents' presence, and relays the events of every other node serving shards
//! into its own bus (`GET /internal/events`, proven with the cluster key), so a
//! watcher at any node (`/operator/events`, `hubctl watch`, the dashboard's live
//! stream) sees them all, and can resume at any node. Relayed events keep their
//! ids (each ends with its node's id: unique in the cluster), go to watchers and
//! into the ring a reconnecting watcher resumes from, and never to this node's
//! webhooks (the publishing node sends those) nor on to a third node.
//!
//! Why always, not only while someone watches here: a watcher resuming at
//! another node (a balancer sends its reconnection anywhere) finds the events it
//! saw in that node's ring only if they were relayed there already. The cost is
//! each node reading the other nodes' events (one small JSON object per message
//! delivered or lock event; measured in docs/cluster.md).
//!
//! A relay whose stream ends or goes silent opens it again from the last event it
//! passed on (ids compare as text in time order), while the node still serves
//! shards. A node that could not keep up says `resync`, which is passed on.
//! Across nodes the ring is in arrival order: a watcher resuming at another node
//! may miss an event that was still on its way between nodes when it left.

use super::follow::{event_json, events_end};
use super::node_auth::{self, NodeKey};
use super::CLIENT;
use crate::events::{millis_of, Event, EventBus};
use crate::store::pg::node::{Leader, Node};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most bytes of one event held while waiting for its end (an event is far
/// smaller: see `events::NAMED_RECIPIENTS`).
const MAX_EVENT_BYTES: usize = 1 << 20;

/// What a relay needs.
#[derive(Clone)]
pub(crate) struct Relays {
    pub node: Arc<Node>,
    pub key: Option<Arc<NodeKey>>,
    pub bus: Arc<EventBus>,
    /// The other nodes ping their streams this often.
    pub keepalive: Duration,
}

/// Relay the other nodes' events here (spawned by `serve` with spread
/// placement): a relay per node serving shards, from the time this node started.
pub(crate) async fn relay_events(r: Relays) {
    // Per node: its relay, and the last of its events passed on (kept when a
    // relay ends, so that one started again skips what was passed on already).
    let mut running: HashMap<String, (tokio::task::JoinHandle<()>, Last)> = HashMap::new();
    let since_ms = now_ms();
    let mut maps = r.node.shard_maps();
    loop {
        // The nodes serving shards now (this node's lease loop reads them every
        // half second).
        let others: Vec<Leader> = maps
            .borrow_and_update()
            .nodes()
            .iter()
            .filter(|n| n.node_id != r.node.id())
            .cloned()
            .collect();
        for other in others {
            let entry = running.entry(other.node_id.clone());
            let last = match &entry {
                std::collections::hash_map::Entry::Occupied(e) if !e.get().0.is_finished() => {
                    continue
                }
                std::collections::hash_map::Entry::Occupied(e) => e.get().1.clone(),
                std::collections::hash_map::Entry::Vacant(_) => Last::default(),
            };
            let relay = actix_rt::spawn(relay(r.clone(), other.node_id, since_ms, last.clone()));
            entry.insert_entry((relay, last));
        }
        // A relay that ended is started again at the next change, or within a
        // second.
        let _ = tokio::time::timeout(Duration::from_secs(1), maps.changed()).await;
    }
}

/// The id of the last event of a node passed on here.
type Last = Arc<std::sync::Mutex<Option<String>>>;

/// Relay the events of node `from` (at the address the shard map has now) after
/// `last`, or from `since_ms` on, for as long as it serves shards.
async fn relay(r: Relays, from: String, since_ms: u64, last: Last) {
    loop {
        let Some(at) = serving(&r, &from) else {
            return;
        };
        let opened = Instant::now();
        let mut seen = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let since = seen.as_deref().and_then(millis_of).unwrap_or(since_ms);
        let passed = pass_on(&r, &at, since, &mut seen).await;
        *last.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        match passed {
            Ok(()) => tracing::debug!(node = %from, "a relayed event stream ended"),
            Err(e) => tracing::debug!(node = %from, error = %e, "a relayed event stream broke"),
        }
        // At most one new stream a second per node.
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(opened.elapsed())).await;
    }
}

/// Node `id` as the shard map has it, if it serves shards.
fn serving(r: &Relays, id: &str) -> Option<Leader> {
    r.node
        .shard_maps()
        .borrow()
        .nodes()
        .iter()
        .find(|n| n.node_id == id)
        .cloned()
}

/// One stream of `from`'s events from `since`: each event after `last` is
/// published here (and `last` moves on), until the stream ends, breaks or goes
/// silent for three keep-alives.
async fn pass_on(
    r: &Relays,
    from: &Leader,
    since: u64,
    last: &mut Option<String>,
) -> Result<(), String> {
    let url = format!(
        "{}/internal/events?since_ms={since}",
        from.url.trim_end_matches("/mcp")
    );
    let out = CLIENT.with(|c| c.get(url)).timeout(Duration::from_secs(10));
    let out = node_auth::mark(
        r.key.as_deref(),
        out,
        (r.node.id(), &from.node_id),
        None,
        false,
        Some(b"{}"),
    );
    let resp = out.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("answered {}", resp.status()));
    }
    let mut body = resp;
    let silent_after = (r.keepalive * 3).max(Duration::from_secs(5));
    let mut buf = bytes::BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout(silent_after, body.next()).await {
            Err(_) => return Err("silent".into()),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(chunk))) => chunk,
        };
        buf.extend_from_slice(&chunk);
        let Some(end) = events_end(&buf) else {
            if buf.len() > MAX_EVENT_BYTES {
                return Err("an event beyond 1 MiB".into());
            }
            continue;
        };
        let whole = buf.split_to(end);
        for event in super::follow::events(&whole) {
            publish(r, from, event, last);
        }
    }
}

/// One SSE event of another node's stream, published here if it is new.
fn publish(r: &Relays, from: &Leader, event: &[u8], last: &mut Option<String>) {
    let Some(v) = event_json(event) else {
        return; // a keep-alive comment
    };
    if event.starts_with(b"event: resync") || event.windows(14).any(|w| w == b"\nevent: resync") {
        // The other node's stream fell behind: its watchers' and ours alike.
        r.bus.import(Event {
            id: format!("{:012x}-00000000-{}", now_ms(), from.node_id),
            event_type: "resync".into(),
            entity_type: "hub".into(),
            entity_id: from.node_id.clone(),
            actor: "system".into(),
            payload: v,
            at: crate::domain::time::iso(chrono::Utc::now()),
            relayed: true,
        });
        return;
    }
    let Ok(e) = serde_json::from_value::<Event>(v) else {
        return;
    };
    if last.as_deref().is_some_and(|l| e.id.as_str() <= l) {
        return; // passed on before the stream was opened again
    }
    *last = Some(e.id.clone());
    r.bus.import(e);
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}
