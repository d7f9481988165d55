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
use crate::store::{Reads, Store, StoreError};
use tokio::sync::watch;

/// A cluster node's role (cluster mode): whether it holds every shard, and the
/// slot's reader side, to stand by through.
pub(super) struct Role {
    pub active: watch::Receiver<bool>,
    pub slot: HubSlot,
}

/// Why a node that lost its shards stands by.
const LOST: &str = "this node lost its shard leases; it serves again once it holds them";

/// Watch the store's health and rebuild the hub in `slot` when needed: at each new
/// fault (counted, so that one coalesced with a heal is not missed) and each heal.
/// In cluster mode, also follow the node's role: losing a shard empties the slot
/// (calls get 503: this node's memory may be behind the new owner's writes), and
/// holding every shard again reloads the hub from the store. Returns when the
/// store closes.
pub(super) async fn supervise(
    store: Store,
    slot: watch::Sender<Option<Hub>>,
    mut role: Option<Role>,
) {
    let mut rx = store.progress();
    let (mut faults, mut healed) = {
        let p = rx.borrow();
        (p.faults, p.healed)
    };
    // The hub a demoted node is rebuilt from (settings, pushes, uptime).
    let mut template: Option<Hub> = None;
    loop {
        let role_changed = async {
            match role.as_mut() {
                Some(r) => r.active.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                return;
            },
            true = role_changed => {
                let Some(r) = role.as_mut() else { continue };
                let active = *r.active.borrow_and_update();
                if !active {
                    if let Some(hub) = slot.send_replace(None) {
                        r.slot.set_standby(Some(LOST.into()));
                        hub.stop();
                        template = Some(hub);
                        tracing::warn!("shards lost: standing by");
                    }
                } else if let Some(old) = template.take() {
                    let started = std::time::Instant::now();
                    rebuild_from(&store, &slot, old).await;
                    crate::metrics::get().cluster_takeover(started.elapsed());
                    tracing::warn!(load_ms = started.elapsed().as_millis() as u64, "holding every shard again: serving");
                    r.slot.set_standby(None);
                    // The rebuild covers any fault seen meanwhile.
                    let p = rx.borrow_and_update();
                    (faults, healed) = (p.faults, p.healed);
                }
                continue;
            }
        }
        if slot.borrow().is_none() {
            // Standing by: nothing to rebuild until the shards are back.
            continue;
        }
        let (now_faults, now_healed, fatal, closed) = {
            let p = rx.borrow_and_update();
            (p.faults, p.healed, p.fatal, p.closed)
        };
        if closed {
            return;
        }
        // A heal first: adopting its generation is what resumes writing, and the
        // rebuild it makes also covers a fault seen in the same update.
        if now_healed > healed || (now_faults > faults && !fatal) {
            let event = if now_healed > healed {
                "store_healed"
            } else {
                "store_fault"
            };
            let reason = rx.borrow().refusing.clone().unwrap_or_default();
            healed = now_healed;
            faults = now_faults;
            rebuild(&store, &slot).await;
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
async fn rebuild(store: &Store, slot: &watch::Sender<Option<Hub>>) {
    let Some(old) = slot.borrow().clone() else {
        return;
    };
    rebuild_from(store, slot, old).await
}

/// [`rebuild`] from `old` (in the slot, or stopped when the node stood by).
async fn rebuild_from(store: &Store, slot: &watch::Sender<Option<Hub>>, old: Hub) {
    let next = store.next_generation();
    next.adopt();
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match next.load(&Shards::All).await {
            Ok(snapshot) => {
                let hub = old.rebuild(next, snapshot);
                slot.send_replace(Some(hub));
                old.stop();
                tracing::warn!("live state rebuilt from disk after a storage fault");
                return;
            }
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, retry_in_s = wait.as_secs(), "could not rebuild the live state from disk; writes stay refused");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
