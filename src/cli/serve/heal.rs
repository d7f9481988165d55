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
use crate::store::{load, Store};
use tokio::sync::watch;

/// Watch the store's health and rebuild the hub in `slot` when needed. Returns when
/// the store closes.
pub(super) async fn supervise(store: Store, slot: watch::Sender<Option<Hub>>) {
    let mut rx = store.progress();
    let mut healed = rx.borrow().healed;
    let mut in_fault = false;
    while rx.changed().await.is_ok() {
        let (refusing, fatal, now_healed, closed) = {
            let p = rx.borrow_and_update();
            (p.refusing.is_some(), p.fatal, p.healed, p.closed)
        };
        if closed {
            return;
        }
        if now_healed > healed {
            // Adopting the new generation is what resumes writing.
            healed = now_healed;
            rebuild(&store, &slot).await;
        } else if refusing && !fatal && !in_fault {
            rebuild(&store, &slot).await;
        }
        in_fault = refusing;
    }
}

/// Replace the hub in `slot` by one loaded from disk, writing as a new generation.
async fn rebuild(store: &Store, slot: &watch::Sender<Option<Hub>>) {
    let Some(old) = slot.borrow().clone() else {
        return;
    };
    let next = store.next_generation();
    next.adopt();
    match next.read(|c| load::load_open_work(c, &Shards::All)).await {
        Ok(snapshot) => {
            let hub = old.rebuild(next, snapshot);
            slot.send_replace(Some(hub));
            old.stop();
            tracing::warn!("live state rebuilt from disk after a storage fault");
        }
        Err(e) => {
            tracing::error!(error = %e, "could not rebuild the live state from disk; writes stay refused")
        }
    }
}
