//! Healing after a storage fault (a full disk, say). When a commit fails, the store
//! refuses writes and probes with backoff until a write succeeds again; meanwhile
//! the actors may hold changes that were never saved. So the hub is rebuilt from
//! disk, through the same loading path as start-up, twice: when the fault starts
//! (so that reads, which go on, never show what was lost) and when it clears (so
//! that writes resume from exactly what is on disk). Each rebuild adopts a new store
//! generation first: ops still coming from the old actors are then dropped, never
//! written behind their callers' backs.

use crate::actors::Hub;
use crate::domain::shard::Shards;
use crate::http::state::HubSlot;
use crate::store::pg::node::{Node, Role};
use crate::store::{Reads, Store, StoreError};
use std::sync::Arc;
use tokio::sync::watch;

/// Cluster mode: the node, and the slot's reader side to stand by through.
pub(super) struct Cluster {
    pub node: Arc<Node>,
    pub slot: HubSlot,
    /// The agent registry: the hub follows it when it serves again.
    pub reloader: Arc<crate::http::reload::Reloader>,
    /// Their GET and listen streams end when the node stops serving.
    pub sessions: Arc<crate::mcp::session::Sessions>,
}

/// Why a node that lost its shards stands by.
const LOST: &str = "this node's shards changed; it serves again once its state is loaded";

/// Watch the store's health and rebuild the hub in `slot` when needed: at each new
/// fault (counted, so that one coalesced with a heal is not missed) and each heal.
/// In cluster mode, also follow the node's role: a hub loaded before the node lost
/// a shard is taken out of the slot (calls get 503: another node may have written
/// since), and once every shard is held the hub is loaded again from the store.
/// Returns when the store closes.
pub(super) async fn supervise(
    store: Store,
    slot: watch::Sender<Option<Hub>>,
    cluster: Option<Cluster>,
) {
    let mut rx = store.progress();
    let (mut faults, mut healed) = {
        let p = rx.borrow();
        (p.faults, p.healed)
    };
    let mut roles = cluster.as_ref().map(|c| c.node.role());
    // The term the hub in the slot was loaded under (that of its store handle).
    let mut hub_term = slot.borrow().as_ref().map_or(0, |h| h.store_term());
    // The hub a demoted node is rebuilt from (settings, pushes, uptime).
    let mut template: Option<Hub> = None;
    // The first round looks at the role at once: a loss between the hub's load and
    // this subscription would otherwise wait for the next change.
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            let role_changed = async {
                match roles.as_mut() {
                    Some(r) => r.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    return;
                },
                true = role_changed => {}
            }
        }
        let (now_faults, now_healed, fatal, closed) = {
            let p = rx.borrow_and_update();
            (p.faults, p.healed, p.fatal, p.closed)
        };
        if closed {
            return;
        }
        let role = roles
            .as_mut()
            .map(|r| *r.borrow_and_update())
            .unwrap_or(Role {
                active: true,
                term: hub_term,
            });
        // Demote: the shards are not all held, or one was lost since the hub was
        // loaded. Its actors stop; their queued ops fail (their term is old).
        if let Some(c) = &cluster {
            let stale = slot.borrow().is_some() && (!role.active || role.term != hub_term);
            if stale {
                if let Some(hub) = slot.send_replace(None) {
                    c.slot.set_standby(Some(LOST.into()));
                    hub.stop();
                    template = Some(hub);
                    let streams = c.sessions.end_streams();
                    tracing::warn!(
                        term = role.term,
                        streams,
                        "shards lost: standing by; open streams ended"
                    );
                }
            }
        }
        let heal = now_healed > healed;
        let fault = now_faults > faults && !fatal;
        (faults, healed) = (now_faults, now_healed);
        if slot.borrow().is_none() {
            // Standing by: load again once every shard is held. A writer refusing
            // writes since the loss is asked to probe now (it would wait up to its
            // backoff); its heal then rebuilds once more, and writes resume.
            let (Some(c), true) = (&cluster, role.active) else {
                continue;
            };
            let Some(old) = template.take() else {
                continue;
            };
            store.nudge();
            let started = std::time::Instant::now();
            // The agents may have changed while another node served: the hub
            // follows the table before it is put in the slot.
            let shards = c.node.shards_to_load();
            let loaded = shards.to_vec();
            let loaded_count = loaded.len();
            if let Some(term) = rebuild_from(&store, &slot, old, &shards, Some(&c.reloader)).await {
                hub_term = term;
                c.node.serving(term, loaded);
                c.slot.set_standby(None);
                crate::metrics::get().cluster_takeover(started.elapsed());
                tracing::warn!(
                    load_ms = started.elapsed().as_millis() as u64,
                    shards = loaded_count,
                    "shards loaded: serving"
                );
            }
            continue;
        }
        // A heal first: adopting its generation is what resumes writing, and the
        // rebuild it makes also covers a fault seen in the same update.
        if heal || fault {
            let event = if heal { "store_healed" } else { "store_fault" };
            let reason = rx.borrow().refusing.clone().unwrap_or_default();
            let registry = cluster.as_ref().map(|c| &*c.reloader);
            let shards = cluster
                .as_ref()
                .map_or(Shards::All, |c| c.node.shards_to_load());
            if let Some(term) = rebuild(&store, &slot, &shards, registry).await {
                hub_term = term;
                if let Some(c) = &cluster {
                    c.node.serving(term, shards.to_vec());
                }
            }
            // For the operator's event stream (and the dashboard).
            store.events().publish(crate::events::Draft {
                event_type: event.into(),
                entity_type: "store".into(),
                entity_id: "database".into(),
                actor: "system".into(),
                payload: serde_json::json!({ "reason": reason }),
                at: crate::domain::time::iso(chrono::Utc::now()),
            });
        }
    }
}

/// Replace the hub in `slot` by one loaded from disk, writing as a new generation.
/// Reading the snapshot is retried (1 s, doubling to 30 s) until it succeeds or the
/// store closes: until then the old hub's writes are refused, never lost.
/// Returns the new hub's ownership term (`None`: the store closed first).
async fn rebuild(
    store: &Store,
    slot: &watch::Sender<Option<Hub>>,
    shards: &Shards,
    registry: Option<&crate::http::reload::Reloader>,
) -> Option<u64> {
    let old = slot.borrow().clone()?;
    rebuild_from(store, slot, old, shards, registry).await
}

/// [`rebuild`] from `old` (in the slot, or stopped when the node stood by).
async fn rebuild_from(
    store: &Store,
    slot: &watch::Sender<Option<Hub>>,
    old: Hub,
    shards: &Shards,
    registry: Option<&crate::http::reload::Reloader>,
) -> Option<u64> {
    let next = store.next_generation();
    next.adopt();
    let term = next.term();
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match next.load(shards).await {
            Ok(snapshot) => {
                let hub = old.rebuild(next, snapshot);
                let held = match registry {
                    Some(r) => Some(r.ready_to_fill(&hub).await),
                    None => None,
                };
                slot.send_replace(Some(hub));
                drop(held);
                old.stop();
                tracing::warn!("live state rebuilt from the store");
                return Some(term);
            }
            Err(StoreError::Closed) => return None,
            Err(e) => {
                tracing::error!(error = %e, retry_in_s = wait.as_secs(), "could not rebuild the live state from disk; writes stay refused");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
