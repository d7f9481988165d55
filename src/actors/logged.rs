//! A call whose answer is logged with its writes (cluster mode: a call a gateway
//! forwarded, see `mcp::replay`). While one runs, in its own task, the hub opens a
//! group of ops before the first command it sends to an actor ([`before_write`]),
//! so that everything the call writes is committed in one transaction with the
//! answer that closes the group; and the hub does not wait for durability itself
//! ([`defer`]): the call waits once, for the group's end. Waiting inside the group
//! could never end: the writer holds the group's ops until it is closed.

use crate::store::{Store, Ticket};
use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static CALL: Call;
}

#[derive(Default)]
struct Call {
    /// The group opened for this call, once something may have been written.
    group: Cell<Option<u64>>,
    /// The highest ticket the hub would have waited for.
    ticket: Cell<Option<Ticket>>,
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
            group: c.group.get(),
            ticket: c.ticket.get(),
        });
        (out, ended)
    })
    .await
}

/// Before a command that may write: open the call's group (once). Nothing
/// outside a logged call.
pub(crate) fn before_write(store: &Store) {
    let _ = CALL.try_with(|c| {
        if c.group.get().is_none() {
            c.group.set(Some(store.begin_group()));
        }
    });
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
