//! [`super::Reads`] on PostgreSQL (cluster mode): the queries of SQLite's
//! [`super::sqlite`] in PostgreSQL's dialect, as plain async functions over a
//! client, returning exactly the values SQLite's return for the same stored rows
//! (`tests/cluster_pg_reads_activation.rs` and `tests/cluster_pg_reads_pages.rs`
//! compare them). Times are selected through `hub_iso(col)` (migration 005), so
//! they come back in the hub's own text format; text ids are ordered
//! `COLLATE "C"`, SQLite's byte order, whatever the database's collation.

pub(crate) mod activation;
pub(crate) mod mail;
pub(crate) mod pages;
pub(crate) mod prune;

use super::{Owned, Prunable, Reads};
use crate::domain::inbox::{SendQuery, Stored};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::shard::Shards;
use crate::domain::task::{Assignment, Round};
use crate::domain::workflow::TaskState;
use crate::store::load::{AgentRow, MailState, Snapshot};
use crate::store::load_tasks::Scope;
use crate::store::pages::{
    AuditEvent, AuditFilter, Decision, Delivery, Page, PageRequest, TaskSummary,
};
use crate::store::pg::{PgError, Pool};
use crate::store::{Store, StoreError};
use deadpool_postgres::Object;
use std::collections::{HashMap, HashSet};

/// [`Reads`] on PostgreSQL, for [`Store`]'s dispatch (`reads.rs`): each read waits
/// for the writes queued before it (as SQLite's do), then runs on a pooled
/// connection of the server's runtime.
pub(super) struct Postgres<'a> {
    store: &'a Store,
    pool: &'a Pool,
}

impl<'a> Postgres<'a> {
    pub(super) fn new(store: &'a Store, pool: &'a Pool) -> Postgres<'a> {
        Postgres { store, pool }
    }

    /// A connection, once every write queued so far is done with.
    async fn client(&self) -> Result<Object, StoreError> {
        self.store.settled().await?;
        Ok(self.pool.get().await.map_err(PgError::from)?)
    }
}

/// PostgreSQL's errors as the store's.
fn store<T>(r: Result<T, PgError>) -> Result<T, StoreError> {
    r.map_err(StoreError::from)
}

impl Reads for Postgres<'_> {
    async fn load(&self, shards: &Shards) -> Result<Snapshot, StoreError> {
        let mut c = self.client().await?;
        // A hub serving some shards counts the quotas that span tasks in
        // `agent_quota` (see `pg::quota`); one serving them all counted in memory
        // until now: the live items get their units first (idempotent).
        if matches!(shards, Shards::Some(list) if list.len() < usize::from(crate::domain::shard::SHARD_COUNT))
        {
            store(crate::store::pg::quota::backfill(&c).await)?;
        }
        store(activation::load_open_work(&mut c, shards).await)
    }

    async fn load_task(&self, id: &str) -> Result<Option<TaskState>, StoreError> {
        let c = self.client().await?;
        Ok(store(activation::load_tasks(&c, Scope::Task(id)).await)?.pop())
    }

    async fn load_agent(&self, id: &str) -> Result<Option<(AgentRow, MailState)>, StoreError> {
        let c = self.client().await?;
        store(activation::load_agent(&c, id).await)
    }

    async fn owner_of(&self, kind: Owned, id: &str) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        store(activation::owner_of(&c, kind, id).await)
    }

    async fn task_exists(&self, id: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        store(activation::task_exists(&c, id).await)
    }

    async fn fencing_counter(&self, key: &str) -> Result<u64, StoreError> {
        let c = self.client().await?;
        store(activation::fencing_counter(&c, key).await)
    }

    async fn send_history(&self, from: &str, query: SendQuery) -> Result<Stored, StoreError> {
        let c = self.client().await?;
        let dedupe_original = match &query.dedupe_key {
            Some(k) => store(mail::dedupe_original(&c, from, k).await)?,
            None => None,
        };
        let reply_seen = match &query.reply_to {
            Some(r) => store(mail::sent_or_received(&c, from, r).await)?,
            None => false,
        };
        Ok(Stored {
            query,
            dedupe_original,
            reply_seen,
        })
    }

    async fn messages_by_id(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Message>, StoreError> {
        let c = self.client().await?;
        store(mail::messages_by_id(&c, &ids).await)
    }

    async fn received_of(
        &self,
        agent: &str,
        ids: Vec<String>,
    ) -> Result<HashSet<String>, StoreError> {
        let c = self.client().await?;
        store(mail::received_of(&c, agent, &ids).await)
    }

    async fn assignments_of_agent(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        let c = self.client().await?;
        store(activation::assignments_of_agent(&c, agent, limit).await)
    }

    async fn task_page(&self, req: PageRequest) -> Result<Page<TaskSummary>, StoreError> {
        let c = self.client().await?;
        store(pages::tasks(&c, &req).await)
    }

    async fn round_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError> {
        let c = self.client().await?;
        store(pages::rounds(&c, &req).await)
    }

    async fn awaiting_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError> {
        let c = self.client().await?;
        store(pages::awaiting_rounds(&c, &req).await)
    }

    async fn audit_page(
        &self,
        req: PageRequest,
        filter: AuditFilter,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let c = self.client().await?;
        store(pages::audit(&c, &req, &filter).await)
    }

    async fn message_page(&self, req: PageRequest) -> Result<Page<Message>, StoreError> {
        let c = self.client().await?;
        store(pages::messages(&c, &req).await)
    }

    async fn task_message_page(
        &self,
        task_id: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let c = self.client().await?;
        store(pages::task_messages(&c, task_id, &req).await)
    }

    async fn sent_message_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let c = self.client().await?;
        store(pages::sent_messages(&c, agent, &req).await)
    }

    async fn delivery_page(
        &self,
        agent: &str,
        req: PageRequest,
        unread: bool,
    ) -> Result<Option<Page<Delivery>>, StoreError> {
        let mut c = self.client().await?;
        // The existence check and the page in one snapshot, as one read.
        let tx = store(
            c.build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(PgError::from),
        )?;
        let page = match store(pages::agent_known(&tx, agent).await)? {
            true => Some(store(pages::deliveries(&tx, &req, agent, unread).await)?),
            false => None,
        };
        store(tx.commit().await.map_err(PgError::from))?;
        Ok(page)
    }

    async fn agent_assignment_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Assignment>, StoreError> {
        let c = self.client().await?;
        store(pages::agent_assignments(&c, agent, &req).await)
    }

    async fn agent_page(&self, req: PageRequest) -> Result<Page<(String, String)>, StoreError> {
        let c = self.client().await?;
        store(pages::agents(&c, &req).await)
    }

    async fn lock_page(&self, req: PageRequest, now: &str) -> Result<Page<Lock>, StoreError> {
        let c = self.client().await?;
        store(pages::locks(&c, &req, now).await)
    }

    async fn decisions(&self, round_id: &str) -> Result<Vec<Decision>, StoreError> {
        let c = self.client().await?;
        store(pages::decisions(&c, round_id).await)
    }

    async fn task_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let c = self.client().await?;
        store(pages::task_counts(&c).await)
    }

    async fn acked_messages_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client().await?;
        store(prune::acked_messages(&c, cutoff, &after).await)
    }

    async fn finished_tasks_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client().await?;
        store(prune::finished_tasks(&c, cutoff, &after).await)
    }

    async fn audit_events_before(&self, cutoff: &str) -> Result<Vec<i64>, StoreError> {
        let c = self.client().await?;
        store(prune::audit_events(&c, cutoff).await)
    }

    async fn prune_count(&self, policy: Prunable, cutoff: &str) -> Result<u64, StoreError> {
        let c = self.client().await?;
        store(prune::count(&c, policy, cutoff).await)
    }
}
