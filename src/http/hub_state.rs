//! The hub's state as `hubctl hub` (`GET /operator/hub`) and the dashboard's
//! health section show it. With spread placement each node holds only its share
//! of what is live (sessions, streams, tasks in memory, locks, unread inboxes,
//! its writer's queue): the node asked adds up every other live node's own
//! numbers (`POST /internal/hub`, proven with the cluster key) and lists each
//! node's, so the view is the cluster's wherever it is asked. A node that does
//! not answer within 5 s is named in `nodes_unreachable` and left out of the sums.
//! Unread messages also count the deliveries still in `delivery_outbox`
//! (answered as sent, taken by the recipient's node within about 100 ms), shown
//! apart as `delivery_outbox`.

use super::state::AppState;
use crate::actors::hub::Health;
use crate::actors::Hub;
use serde_json::{json, Value};
use std::time::Duration;

/// The numbers of one node that add up across nodes (top level, then the
/// writer's).
const SUMMED: [&str; 7] = [
    "tasks_in_memory",
    "sessions",
    "get_streams",
    "listen_streams",
    "requests_in_flight",
    "locks_held",
    "inbox_unread",
];
const SUMMED_WRITER: [&str; 2] = ["queued_ops", "storage_faults"];

/// This node's own state.
pub(crate) async fn local(st: &AppState, hub: &Hub) -> Value {
    state_of(st, &hub.health(Duration::from_millis(500)).await)
}

/// This node's state around its health `h`.
fn state_of(st: &AppState, h: &Health) -> Value {
    let writes = match &h.writes {
        Ok(()) => "saved".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "instance": st.instance,
        "pid": std::process::id(),
        "url": st.url,
        "database": st.database,
        "durability": h.durability,
        "uptime_seconds": h.uptime_seconds,
        "agents": h.agents,
        "tasks": h.tasks,
        "tasks_in_memory": h.tasks_in_memory,
        "sessions": st.sessions.len(),
        "get_streams": st.sessions.streams(),
        "listen_streams": st.sessions.listeners.len(),
        "requests_in_flight": st.admission.in_flight(),
        "locks_held": h.locks_held,
        "inbox_unread": h.inbox_unread,
        "writer": {"queued_ops": h.writer_queue, "storage_faults": h.store_faults, "writes": writes},
    })
}

/// The state of the hub: this node's, or with spread placement the cluster's
/// (each node's under `nodes`).
pub(crate) async fn whole(st: &AppState, hub: &Hub) -> Value {
    let h = hub.health(Duration::from_millis(500)).await;
    whole_from(st, hub, &h).await
}

/// [`whole`] from this node's health `h`.
async fn whole_from(st: &AppState, hub: &Hub, h: &Health) -> Value {
    let mut v = state_of(st, h);
    if !hub.spread() {
        return v;
    }
    let others = super::gateway::ask_every_other_node(
        st,
        "/internal/hub",
        None,
        Duration::from_secs(5),
        "reported its state",
    )
    .await;
    let me = st.cluster.get().map(|n| n.id().to_string());
    let mut nodes = vec![with_id(v.clone(), me.as_deref().unwrap_or(""))];
    let mut unreachable = Vec::new();
    for (id, answer) in others {
        match answer {
            Ok(theirs) => {
                add(&mut v, &theirs, &id);
                nodes.push(with_id(theirs, &id));
            }
            Err(()) => unreachable.push(id),
        }
    }
    // Unread too: the deliveries still on their way between nodes.
    let waiting = hub.outbox_len().await.unwrap_or(0);
    v["inbox_unread"] = json!(v["inbox_unread"].as_u64().unwrap_or(0) + waiting);
    v["delivery_outbox"] = json!(waiting);
    v["nodes"] = json!(nodes);
    v["nodes_unreachable"] = json!(unreachable);
    v
}

/// `v` with `node_id` first.
fn with_id(mut v: Value, id: &str) -> Value {
    v["node_id"] = json!(id);
    v
}

/// `theirs` (node `id`'s own state) added to `v`: the live numbers summed, its
/// writes named if refused.
fn add(v: &mut Value, theirs: &Value, id: &str) {
    for key in SUMMED {
        v[key] = json!(v[key].as_u64().unwrap_or(0) + theirs[key].as_u64().unwrap_or(0));
    }
    for key in SUMMED_WRITER {
        let sum =
            v["writer"][key].as_u64().unwrap_or(0) + theirs["writer"][key].as_u64().unwrap_or(0);
        v["writer"][key] = json!(sum);
    }
    if let Some(w) = theirs["writer"]["writes"]
        .as_str()
        .filter(|w| *w != "saved")
    {
        v["writer"]["writes"] = json!(format!("{w} (node {id})"));
    }
}

/// The health the dashboard shows: this node's, with spread placement the
/// cluster's.
pub(crate) async fn health(st: &AppState, hub: &Hub) -> Health {
    let mut h = hub.health(Duration::from_millis(500)).await;
    if !hub.spread() {
        return h;
    }
    let v = whole_from(st, hub, &h).await;
    let n = |key: &str| v[key].as_u64().unwrap_or(0);
    h.tasks_in_memory = n("tasks_in_memory");
    h.locks_held = v["locks_held"].as_u64();
    h.inbox_unread = n("inbox_unread");
    h.writer_queue = v["writer"]["queued_ops"].as_u64().unwrap_or(0);
    h.store_faults = v["writer"]["storage_faults"].as_u64().unwrap_or(0);
    if let Some(w) = v["writer"]["writes"].as_str().filter(|w| *w != "saved") {
        h.writes = Err(w.trim_start_matches("refused: ").to_string());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_node_adds_its_live_numbers_and_names_its_refusal() {
        let mut v = json!({"sessions": 2, "inbox_unread": 5, "locks_held": 1, "agents": 6,
            "writer": {"queued_ops": 1, "storage_faults": 0, "writes": "saved"}});
        let theirs = json!({"sessions": 3, "inbox_unread": 1, "locks_held": 4, "agents": 6,
            "writer": {"queued_ops": 2, "storage_faults": 1, "writes": "refused: disk full"}});
        add(&mut v, &theirs, "n2");
        assert_eq!(v["sessions"], 5);
        assert_eq!(v["inbox_unread"], 6);
        assert_eq!(v["locks_held"], 5);
        assert_eq!(v["agents"], 6, "stored counts are the cluster's already");
        assert_eq!(v["writer"]["queued_ops"], 3);
        assert_eq!(v["writer"]["storage_faults"], 1);
        assert_eq!(v["writer"]["writes"], "refused: disk full (node n2)");
    }
}
