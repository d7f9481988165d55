//! [`Reads`] on SQLite: each method runs the existing query of [`load`],
//! [`load_tasks`], [`mail`], [`pages`] or [`prune`] through [`Store::read`], on a
//! read-only connection of the pool and tokio's blocking pool (never the writer
//! thread). Also the SQLite-only file operations (size, backup), which are not
//! reads of state and so not part of the trait.

use super::{Owned, Prunable, Reads};
use crate::domain::inbox::{SendQuery, Stored};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::shard::Shards;
use crate::domain::task::{Assignment, Round};
use crate::domain::workflow::TaskState;
use crate::store::load::{self, AgentRow, MailState, Snapshot};
use crate::store::load_tasks::{self, Scope};
use crate::store::pages::{
    self, AuditEvent, AuditFilter, Decision, Delivery, Page, PageRequest, TaskSummary,
};
use crate::store::{mail, prune, Store, StoreError};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

/// [`Reads`] on SQLite, for [`Store`]'s dispatch (`reads.rs`).
pub(super) struct Sqlite<'a>(pub &'a Store);

impl Reads for Sqlite<'_> {
    async fn load(&self, shards: &Shards) -> Result<Snapshot, StoreError> {
        let shards = shards.clone();
        self.0.read(move |c| load::load_open_work(c, &shards)).await
    }

    async fn load_task(&self, id: &str) -> Result<Option<TaskState>, StoreError> {
        let id = id.to_string();
        let mut found = self
            .0
            .read(move |c| load_tasks::load_tasks(c, Scope::Task(&id)))
            .await?;
        Ok(found.pop())
    }

    async fn load_agent(&self, id: &str) -> Result<Option<(AgentRow, MailState)>, StoreError> {
        by_key(self.0, id, load::load_agent).await
    }

    async fn owner_of(&self, kind: Owned, id: &str) -> Result<Option<String>, StoreError> {
        let id = id.to_string();
        self.0
            .read(move |c| load_tasks::owner_of(c, kind, &id))
            .await
    }

    async fn task_exists(&self, id: &str) -> Result<bool, StoreError> {
        by_key(self.0, id, load_tasks::task_exists).await
    }

    async fn fencing_counter(&self, key: &str) -> Result<u64, StoreError> {
        by_key(self.0, key, load::fencing_counter).await
    }

    async fn send_history(&self, from: &str, query: SendQuery) -> Result<Stored, StoreError> {
        let from = from.to_string();
        // Both look-ups on one connection, as one read.
        self.0
            .read(move |c| {
                let dedupe_original = match &query.dedupe_key {
                    Some(k) => mail::dedupe_original(c, &from, k)?,
                    None => None,
                };
                let reply_seen = match &query.reply_to {
                    Some(r) => mail::sent_or_received(c, &from, r)?,
                    None => false,
                };
                Ok(Stored {
                    query,
                    dedupe_original,
                    reply_seen,
                })
            })
            .await
    }

    async fn messages_by_id(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Message>, StoreError> {
        self.0.read(move |c| mail::messages_by_id(c, &ids)).await
    }

    async fn received_of(
        &self,
        agent: &str,
        ids: Vec<String>,
    ) -> Result<HashSet<String>, StoreError> {
        let agent = agent.to_string();
        self.0
            .read(move |c| mail::received_of(c, &agent, &ids))
            .await
    }

    async fn assignments_of_agent(
        &self,
        agent: &str,
        limit: usize,
    ) -> Result<Vec<Assignment>, StoreError> {
        let agent = agent.to_string();
        self.0
            .read(move |c| load_tasks::assignments_of_agent(c, &agent, limit))
            .await
    }

    async fn task_page(&self, req: PageRequest) -> Result<Page<TaskSummary>, StoreError> {
        page(self.0, req, pages::tasks).await
    }

    async fn round_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError> {
        page(self.0, req, pages::rounds).await
    }

    async fn awaiting_page(&self, req: PageRequest) -> Result<Page<Round>, StoreError> {
        page(self.0, req, pages::awaiting_rounds).await
    }

    async fn audit_page(
        &self,
        req: PageRequest,
        filter: AuditFilter,
    ) -> Result<Page<AuditEvent>, StoreError> {
        self.0.read(move |c| pages::audit(c, &req, &filter)).await
    }

    async fn message_page(&self, req: PageRequest) -> Result<Page<Message>, StoreError> {
        page(self.0, req, pages::messages).await
    }

    async fn task_message_page(
        &self,
        task_id: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        keyed_page(self.0, task_id, req, pages::task_messages).await
    }

    async fn sent_message_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        keyed_page(self.0, agent, req, pages::sent_messages).await
    }

    async fn delivery_page(
        &self,
        agent: &str,
        req: PageRequest,
        unread: bool,
    ) -> Result<Option<Page<Delivery>>, StoreError> {
        let id = agent.to_string();
        // The existence check and the page on one connection, as one read.
        self.0
            .read(move |c| match pages::agent_known(c, &id)? {
                true => pages::deliveries(c, &req, &id, unread).map(Some),
                false => Ok(None),
            })
            .await
    }

    async fn agent_assignment_page(
        &self,
        agent: &str,
        req: PageRequest,
    ) -> Result<Page<Assignment>, StoreError> {
        keyed_page(self.0, agent, req, pages::agent_assignments).await
    }

    async fn agent_page(&self, req: PageRequest) -> Result<Page<(String, String)>, StoreError> {
        page(self.0, req, pages::agents).await
    }

    async fn lock_page(&self, req: PageRequest, now: &str) -> Result<Page<Lock>, StoreError> {
        let now = now.to_string();
        self.0.read(move |c| pages::locks(c, &req, &now)).await
    }

    async fn decisions(&self, round_id: &str) -> Result<Vec<Decision>, StoreError> {
        by_key(self.0, round_id, pages::decisions).await
    }

    async fn task_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.0.read(pages::task_counts).await
    }

    async fn acked_messages_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        let cutoff = cutoff.to_string();
        self.0
            .read(move |c| prune::acked_messages(c, &cutoff, &after))
            .await
    }

    async fn finished_tasks_before(
        &self,
        cutoff: &str,
        after: (String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        let cutoff = cutoff.to_string();
        self.0
            .read(move |c| prune::finished_tasks(c, &cutoff, &after))
            .await
    }

    async fn audit_events_before(&self, cutoff: &str) -> Result<Vec<i64>, StoreError> {
        by_key(self.0, cutoff, prune::audit_events).await
    }

    async fn prune_count(&self, policy: Prunable, cutoff: &str) -> Result<u64, StoreError> {
        let cutoff = cutoff.to_string();
        self.0.read(move |c| prune::count(c, policy, &cutoff)).await
    }
}

// The shapes most reads share, so that each method above names only its query.
// Plain `fn` pointers: the queries are free functions and need nothing captured.

/// `f(conn, key)`: a look-up by one key.
async fn by_key<T: Send + 'static>(
    store: &Store,
    key: &str,
    f: fn(&Connection, &str) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let key = key.to_string();
    store.read(move |c| f(c, &key)).await
}

/// `f(conn, req)`: one page of a list.
async fn page<T: Send + 'static>(
    store: &Store,
    req: PageRequest,
    f: fn(&Connection, &PageRequest) -> Result<Page<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    store.read(move |c| f(c, &req)).await
}

/// `f(conn, key, req)`: one page of a list narrowed to one task or agent.
async fn keyed_page<T: Send + 'static>(
    store: &Store,
    key: &str,
    req: PageRequest,
    f: fn(&Connection, &str, &PageRequest) -> Result<Page<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    let key = key.to_string();
    store.read(move |c| f(c, &key, &req)).await
}

/// The database file itself: SQLite only (a PostgreSQL backend has no file to
/// size, and its backups are the database's own tools).
impl Store {
    /// The file's size in bytes, from its page count (`hubctl vacuum`).
    pub(crate) async fn file_size(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            Ok((pages * size) as u64)
        })
        .await
    }

    /// A compact, consistent copy of the database at `to` (`VACUUM INTO`), made on
    /// a read-only connection so that serving goes on meanwhile.
    pub(crate) async fn backup_into(&self, to: std::path::PathBuf) -> Result<(), StoreError> {
        self.read(move |c| {
            let path = to.to_string_lossy().to_string();
            c.execute("VACUUM INTO ?1", [&path])?;
            Ok(())
        })
        .await
    }
}
