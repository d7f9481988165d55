//! A call whose answer is logged with its writes (cluster mode: a call a gateway
//! forwarded, see `mcp::replay`). While one runs, in its own task, the hub opens a
//! group of ops before the first command it sends to an actor ([`before_write`]),
//! so that everything the call writes is committed in one transaction with the
//! answer that closes the group ([`Op::End`](super::Op::End)); and the hub does not
//! wait for its writes itself ([`defer`]): the call waits once, for the group's
//! end. Waiting for them inside the group could never end: the writer holds the
//! group's ops until it is closed. Nor does anything inside a group wait for the
//! queue ([`in_group`], `Store::settled`, `Hub::settled`): what was queued before
//! it may be another call's open group, held until that call ends, which may be
//! waiting for this one's. The call's end waits for all of it at once.

use super::{Store, Ticket};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where new groups wait while the writer drains the open ones. The writer commits
/// only where no group is open; logged calls arriving steadily could keep one open
/// at every point, so once it has held ops back for a moment it closes the gate:
/// no new group opens, the open ones end (nothing inside a group waits for the
/// writer), it commits, and it opens the gate again.
#[derive(Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
    reopened: tokio::sync::Notify,
}

impl Gate {
    /// Wait until the gate is open.
    pub(crate) async fn pass(&self) {
        loop {
            let reopened = self.reopened.notified();
            tokio::pin!(reopened);
            // Registered before the flag is read: an `open` in between wakes it.
            reopened.as_mut().enable();
            if !self.closed.load(Ordering::Acquire) {
                return;
            }
            reopened.await;
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn open(&self) {
        if self.closed.swap(false, Ordering::AcqRel) {
            self.reopened.notify_waiters();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

tokio::task_local! {
    static CALL: Call;
}

#[derive(Default)]
struct Call {
    /// The group opened for this call, once something may have been written, and
    /// the store it was opened in.
    group: RefCell<Option<(u64, Store)>>,
    /// The highest ticket the hub would have waited for.
    ticket: Cell<Option<Ticket>>,
}

impl Drop for Call {
    /// A call that ended without handing its group on (it panicked): the group is
    /// closed, with no answer, so that the writer does not hold it.
    fn drop(&mut self) {
        if let Some((g, store)) = self.group.get_mut().take() {
            store.end_group(g, None);
        }
    }
}

/// What a logged call left to its end: the group to close (if one was opened) and
/// the highest ticket to wait for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    pub group: Option<u64>,
    pub ticket: Option<Ticket>,
}

/// Run `work` as a logged call.
pub(crate) async fn run<F: Future>(work: F) -> (F::Output, Ended) {
    CALL.scope(Call::default(), async {
        let out = work.await;
        let ended = CALL.with(|c| Ended {
            group: c.group.borrow_mut().take().map(|(g, _)| g),
            ticket: c.ticket.get(),
        });
        (out, ended)
    })
    .await
}

/// Before a command that may write: open the call's group (once), when the
/// writer's [`Gate`] lets it. Nothing outside a logged call. True if this opened it.
pub(crate) async fn before_write(store: &Store) -> bool {
    let needed = CALL
        .try_with(|c| c.group.borrow().is_none())
        .unwrap_or(false);
    if !needed {
        return false;
    }
    store.group_gate().pass().await;
    CALL.with(|c| *c.group.borrow_mut() = Some((store.begin_group(), store.clone())));
    true
}

/// The command [`before_write`] opened the group for was not delivered (its actor
/// had stopped): nothing was written in the group, which is closed, so that what
/// the caller does next (load the actor again) waits for nothing held.
pub(crate) fn undelivered() {
    let _ = CALL.try_with(|c| {
        if let Some((g, store)) = c.group.borrow_mut().take() {
            store.end_group(g, None);
        }
    });
}

/// Whether this runs inside a logged call (its group open or not yet).
pub(crate) fn in_call() -> bool {
    CALL.try_with(|_| ()).is_ok()
}

/// Whether this runs inside a logged call's open group.
pub(crate) fn in_group() -> bool {
    CALL.try_with(|c| c.group.borrow().is_some())
        .unwrap_or(false)
}

/// Inside a logged call: record `ticket` (none: "everything queued so far") as one
/// the call waits for at its end, and say so (true). Outside one: false, and the
/// caller waits itself.
pub(crate) fn defer(ticket: Option<Ticket>) -> bool {
    CALL.try_with(|c| {
        let t = match (c.ticket.get(), ticket) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        c.ticket.set(t);
    })
    .is_ok()
}
