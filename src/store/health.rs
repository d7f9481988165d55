//! Whether the writer still saves writes, for the readiness probe (`/readyz`).
//!
//! Kept out of `writer.rs` on purpose and built only on its public API: a ticket
//! that is never committed (`u64::MAX`) resolves [`Store::wait_committed`] only once
//! the writer has failed a commit for good or has exited, so polling that future once
//! reads the writer's state without waiting.

use super::{Store, StoreError, Ticket};
use futures_util::FutureExt;

impl Store {
    /// `Ok` while writes are being saved; the reason once they no longer are (a commit
    /// failed for good: [`StoreError::WriterFailed`], or the writer has stopped:
    /// [`StoreError::Closed`]).
    pub(crate) fn write_health(&self) -> Result<(), StoreError> {
        match self.wait_committed(Ticket(u64::MAX)).now_or_never() {
            // Pending: neither failed nor closed. Ok cannot happen (nothing reaches
            // u64::MAX), and would mean healthy anyway.
            None | Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Durability;
    use crate::store::{Op, Store, StoreError, StoreOptions};
    use std::time::Duration;

    fn open(path: &std::path::Path) -> Store {
        let opts = StoreOptions {
            durability: Durability::Durable,
            max_ops: 10,
            window: Duration::ZERO,
        };
        let agents = [("a".to_string(), "h".to_string())];
        Store::open(path, opts, &agents, "t0").unwrap().0
    }

    fn heartbeat() -> Op {
        Op::AgentHeartbeat {
            id: "a".into(),
            at: "t1".into(),
        }
    }

    #[tokio::test]
    async fn healthy_until_a_commit_fails_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let store = open(&path);
        store
            .wait_durable(store.enqueue(heartbeat()))
            .await
            .unwrap();
        assert!(store.write_health().is_ok());
        // As a full disk would: every update of an agent fails, retries included.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER boom BEFORE UPDATE ON agents \
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .unwrap();
        let bad = store.enqueue(heartbeat());
        assert!(store.wait_durable(bad).await.is_err());
        assert!(matches!(
            store.write_health(),
            Err(StoreError::WriterFailed)
        ));
        store.shutdown();
    }

    #[test]
    fn closed_once_the_writer_has_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("hub.db"));
        assert!(store.write_health().is_ok());
        store.shutdown();
        assert!(matches!(store.write_health(), Err(StoreError::Closed)));
    }
}
