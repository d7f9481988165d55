//! Retention through the façade: `hubctl prune` and the hourly run apply the
//! `retention:` policy, reading candidates from the store and deleting them through
//! the writer a batch at a time (each batch committed before the next is read).
//! Never an unread message, an open task or a lock. Finished tasks that are in
//! memory right now are left for a later run. With spread placement each node
//! prunes the tasks of its shards, and the node serving shard 0 the messages and
//! audit rows (which span shards); `hubctl prune` runs at that node, which asks
//! every other to prune its tasks (`http::operator`).

use super::Hub;
use crate::actors::HubError;
use crate::domain::shard::ShardId;
use crate::domain::time::iso;
use crate::domain::DomainError;
use crate::store::reads::{Prunable, PRUNE_BATCH};
use crate::store::{Op, Reads};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// What a prune removed (or, dry, would remove), per policy; `None`: no policy.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Pruned {
    pub messages: Option<u64>,
    pub tasks: Option<u64>,
    pub audit_events: Option<u64>,
}

/// The two policies read in keyset order.
#[derive(Clone, Copy)]
enum Keyed {
    Messages,
    Tasks,
}

fn cutoff(now: DateTime<Utc>, days: f64) -> String {
    iso(now - Duration::milliseconds((days * 86_400_000.0) as i64))
}

impl Hub {
    /// Apply the retention policy as of `now`; with `dry_run`, only count.
    pub(crate) async fn prune(
        &self,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<Pruned, HubError> {
        if !dry_run {
            self.writable()?;
        }
        // Spread placement: each node prunes the tasks it serves, and the node
        // serving the first shard the history no node serves (messages every
        // recipient read, audit rows). A dry run counts everything, anywhere.
        let spans = dry_run || self.inner.held.contains(ShardId(0));
        // One prune at a time (hourly and hubctl): two would count the same rows.
        // A dry run only counts, and does not wait for one.
        let _one = match dry_run {
            true => None,
            false => Some(self.inner.prune_lock.lock().await),
        };
        let policy = self.settings().retention;
        let mut out = Pruned::default();
        if let Some(days) = policy.acked_messages_days.filter(|_| spans) {
            let c = cutoff(now, days);
            out.messages = Some(match dry_run {
                true => self.count(Prunable::AckedMessages, c).await?,
                false => self.prune_keyed(Keyed::Messages, c).await?,
            });
        }
        if let Some(days) = policy.terminal_tasks_days {
            let c = cutoff(now, days);
            out.tasks = Some(match dry_run {
                true => self.count(Prunable::FinishedTasks, c).await?,
                false => self.prune_keyed(Keyed::Tasks, c).await?,
            });
        }
        if let Some(days) = policy.audit_days.filter(|_| spans) {
            let c = cutoff(now, days);
            out.audit_events = Some(match dry_run {
                true => self.count(Prunable::AuditEvents, c).await?,
                false => self.prune_audit(c).await?,
            });
        }
        if !dry_run && policy.is_set() {
            // Free pages at the end of the file go back (databases made by this
            // version; an older one needs `hubctl vacuum` once).
            self.delete(Op::Vacuum { full: false }).await?;
        }
        Ok(out)
    }

    /// Refuse `what`, an operation on the SQLite file, on PostgreSQL (`instead`:
    /// what does its job there).
    fn sqlite_only(&self, what: &str, instead: &str) -> Result<(), HubError> {
        if self.inner.store.is_postgres() {
            return Err(DomainError::invalid(
                "store",
                format!(
                    "{what} works on the SQLite file; this hub stores in PostgreSQL: {instead}"
                ),
            )
            .into());
        }
        Ok(())
    }

    /// `hubctl vacuum`: rewrite the file without its free pages, and turn on
    /// incremental vacuum for a database made before it existed. Writes wait while
    /// it runs. Returns the file's size in bytes before and after.
    pub(crate) async fn vacuum(&self) -> Result<(u64, u64), HubError> {
        self.sqlite_only("hubctl vacuum", "autovacuum gives space back by itself")?;
        self.writable()?;
        let before = self.inner.store.file_size().await?;
        // The vacuum runs once its batch is published; an op queued after that
        // commits only when the writer is back, so its commit says it is over.
        self.delete(Op::Vacuum { full: true }).await?;
        self.delete(Op::Mark).await?;
        Ok((before, self.inner.store.file_size().await?))
    }

    /// A consistent copy of the database at `to` (`hubctl backup`), made with
    /// `VACUUM INTO` on a read-only connection once every answered write is
    /// committed: serving goes on meanwhile (WAL), and the copy is compact and
    /// needs no -wal file. Returns its size. `to` must not exist.
    pub(crate) async fn backup(&self, to: std::path::PathBuf) -> Result<u64, HubError> {
        self.sqlite_only("hubctl backup", "use pg_dump or the server's own backups")?;
        if to.exists() {
            return Err(DomainError::invalid(
                "path",
                format!("{} exists already; a backup never overwrites", to.display()),
            )
            .into());
        }
        self.inner.store.backup_into(to.clone()).await?;
        let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
        tracing::info!(to = %to.display(), bytes, "backup written");
        Ok(bytes)
    }

    async fn count(&self, policy: Prunable, cutoff: String) -> Result<u64, HubError> {
        Ok(self.inner.store.prune_count(policy, &cutoff).await?)
    }

    /// Enqueue one batch and wait until it is committed.
    async fn delete(&self, op: Op) -> Result<(), HubError> {
        let ticket = self.inner.store.enqueue(op);
        self.inner.store.wait_committed(ticket).await?;
        Ok(())
    }

    /// Messages or tasks past `cutoff`, a keyset batch at a time.
    async fn prune_keyed(&self, kind: Keyed, cutoff: String) -> Result<u64, HubError> {
        let mut total = 0;
        let mut after = (String::new(), String::new());
        loop {
            let store = &self.inner.store;
            let batch = match kind {
                Keyed::Messages => store.acked_messages_before(&cutoff, after.clone()).await?,
                Keyed::Tasks => store.finished_tasks_before(&cutoff, after.clone()).await?,
            };
            let Some(last) = batch.last().cloned() else {
                return Ok(total);
            };
            let full = batch.len() == PRUNE_BATCH;
            let ids: Vec<String> = batch.into_iter().map(|(_, id)| id).collect();
            total += match kind {
                Keyed::Messages => {
                    let n = ids.len();
                    self.delete(Op::PruneMessages(ids)).await?;
                    n
                }
                Keyed::Tasks => self.delete_tasks(ids).await?,
            } as u64;
            if !full {
                return Ok(total);
            }
            after = last;
        }
    }

    /// Delete the tasks of `ids` that this hub serves and are not in memory;
    /// returns how many.
    async fn delete_tasks(&self, ids: Vec<String>) -> Result<usize, HubError> {
        // No activation while this batch is checked and deleted: a task read into
        // an actor now would be deleted under it.
        let _no_activation = self.inner.activation.lock().await;
        let live = &self.inner.task_env.tasks;
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| self.owns(id) && !live.contains_key(id))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let gone = ids.len();
        let _ = self
            .inner
            .task_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(gone))
            });
        self.delete(Op::PruneTasks(ids)).await?;
        Ok(gone)
    }

    async fn prune_audit(&self, cutoff: String) -> Result<u64, HubError> {
        let mut total = 0;
        loop {
            let ids = self.inner.store.audit_events_before(&cutoff).await?;
            if ids.is_empty() {
                return Ok(total);
            }
            let full = ids.len() == PRUNE_BATCH;
            total += ids.len() as u64;
            self.delete(Op::PruneAudit(ids)).await?;
            if !full {
                return Ok(total);
            }
        }
    }
}
