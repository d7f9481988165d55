//! Cluster mode: ended sessions that every node remembers. A signed session id
//! checks itself on every node holding the cluster key, so ending one in the
//! memory of the node that served the DELETE is not enough: after a failover the
//! next serving node would take it back. The node that ends a session stores its
//! [`Revocation`] in `revoked_sessions` before it answers, and every node follows
//! the table (with the agent registry: every second, and before a hub is put in
//! the slot). On SQLite nothing is stored: one process holds every session.

use super::error::ApiError;
use crate::log_limit::LogLimit;
use crate::mcp::session::{Revocation, Sessions};
use crate::store::pg::{revoked as table, PgError, Pool};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

/// Rows read per query while following.
const PAGE: i64 = 10_000;

pub(crate) struct Revoked {
    sessions: Arc<Sessions>,
    /// Set once the cluster's store is open.
    pool: OnceLock<Pool>,
    /// The number of the last row learned.
    seen: AtomicI64,
}

fn unavailable(e: PgError) -> ApiError {
    // Polled every second: one line per minute at most while it fails.
    static FAILING: LogLimit = LogLimit::new(60_000);
    if let Some(n) = FAILING.hit() {
        tracing::error!(error = %e, failures = n, "revoked_sessions could not be read or written (one line a minute at most)");
    }
    ApiError::unavailable(format!(
        "the list of ended sessions (revoked_sessions) is unavailable: {e}"
    ))
}

impl Revoked {
    pub(crate) fn new(sessions: Arc<Sessions>) -> Self {
        Revoked {
            sessions,
            pool: OnceLock::new(),
            seen: AtomicI64::new(0),
        }
    }

    /// Cluster mode: store and follow ended sessions in `pool`'s database.
    pub(crate) fn use_table(&self, pool: Pool) {
        let _ = self.pool.set(pool);
    }

    /// Make `r` known to every node (before the DELETE is answered: "ended" must
    /// outlive this node). A no-op outside cluster mode.
    pub(crate) async fn store(&self, r: &Revocation) -> Result<(), ApiError> {
        let Some(pool) = self.pool.get() else {
            return Ok(());
        };
        let until = i64::try_from(r.until).unwrap_or(i64::MAX);
        table::insert(pool, &r.id_hash, until)
            .await
            .map_err(unavailable)
    }

    /// Learn the sessions ended since the last call (at any node); returns how
    /// many. Callers run one at a time (the reloader's lock).
    pub(crate) async fn follow(&self) -> Result<usize, ApiError> {
        let Some(pool) = self.pool.get() else {
            return Ok(0);
        };
        let mut learned = 0;
        loop {
            let after = self.seen.load(Ordering::Acquire);
            let rows = table::since(pool, after, PAGE).await.map_err(unavailable)?;
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                self.seen.fetch_max(row.seq, Ordering::AcqRel);
                self.sessions.learn_revoked(Revocation {
                    id_hash: row.id_hash,
                    until: u64::try_from(row.valid_until).unwrap_or(0),
                });
                learned += 1;
            }
            if !full {
                return Ok(learned);
            }
        }
    }

    /// Delete the rows of ids that have expired anyway (the serving node, every
    /// minute); returns how many went.
    pub(crate) async fn prune(&self) -> Result<u64, ApiError> {
        match self.pool.get() {
            None => Ok(0),
            Some(pool) => table::prune(pool).await.map_err(unavailable),
        }
    }
}
