//! Commit wake-ups relayed per thread. The writer publishes its progress on one
//! `watch` channel; a request waiting on it directly is woken from the writer's
//! thread, and tokio writes the waiting worker's eventfd once per woken request
//! (2.5-3% of the server's CPU under load, docs/benchmarks.md). Instead, each actix
//! thread runs one relay task per store: the writer wakes that task (one eventfd
//! write per thread per commit) and the task wakes the thread's waiters locally.
//! Off an actix thread (plain tokio tests, tools) waiters use the channel directly.

use super::Progress;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tokio::sync::{watch, Notify};

thread_local! {
    /// This thread's relays, one per store (by [`Relay::store`]).
    static RELAYS: RefCell<Vec<Rc<Relay>>> = const { RefCell::new(Vec::new()) };
}

pub(super) struct Relay {
    /// The store's id (unique per process: an address could be reused).
    store: u64,
    /// Woken on every change of the store's progress, and once when it ends.
    pub(super) changed: Notify,
    /// The writer is gone (its channel closed): nothing will change any more.
    pub(super) ended: Cell<bool>,
}

/// This thread's relay for store `store` (started on first use), or `None` off an
/// actix thread: there is no local task set to run it on.
pub(super) fn local(store: u64, progress: &watch::Receiver<Progress>) -> Option<Rc<Relay>> {
    actix_rt::Arbiter::try_current()?;
    RELAYS.with(|relays| {
        let mut relays = relays.borrow_mut();
        relays.retain(|r| !r.ended.get());
        if let Some(r) = relays.iter().find(|r| r.store == store) {
            return Some(r.clone());
        }
        let relay = Rc::new(Relay {
            store,
            changed: Notify::new(),
            ended: Cell::new(false),
        });
        let mut rx = progress.clone();
        let task = relay.clone();
        actix_rt::spawn(async move {
            while rx.changed().await.is_ok() {
                task.changed.notify_waiters();
            }
            task.ended.set(true);
            task.changed.notify_waiters();
        });
        relays.push(relay.clone());
        Some(relay)
    })
}
