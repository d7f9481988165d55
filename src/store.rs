//! Persistence: SQLite behind one writer thread.
//!
//! Actors never touch the database. They [`Store::enqueue`] an [`Op`] that carries every
//! value it writes and get a [`Ticket`] (its sequence number) back at once. The writer
//! thread applies ops in batched transactions (group commit) and publishes the highest
//! committed sequence; in `durable` mode the `Hub` façade answers a write only once
//! [`Store::wait_durable`] says its ticket is committed, so an answered write survives
//! `kill -9`. Live state is read at start-up ([`load`]); everything read later (a
//! task or agent entering memory, history, the operator's pages) goes through the
//! named methods of [`reads::Reads`], so no SQL reaches the actors. `hubctl serve`
//! opens the store; the actors write through it.

pub(crate) mod apply;
pub(crate) mod columns;
pub(crate) mod convert;
pub(crate) mod group;
pub(crate) mod load;
pub(crate) mod load_tasks;
pub(crate) mod mail;
pub(crate) mod migrate;
pub(crate) mod op;
pub(crate) mod pages;
pub mod pg;
pub(crate) mod prune;
pub(crate) mod reads;
pub(crate) mod replay_cases;
pub(crate) mod writer;

#[cfg(test)]
mod deliveries_tests;
#[cfg(test)]
mod replay_tests;

pub(crate) use load::{AgentRow, MailState, Snapshot};
pub(crate) use op::{AuditRow, LockGone, Op};
pub(crate) use reads::Reads;
pub(crate) use writer::{Store, StoreOptions, Ticket};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Postgres(#[from] pg::PgError),
    #[error("not available with PostgreSQL: {0}")]
    NotOnPostgres(&'static str),
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the database schema is version {found}, newer than this build knows ({known}); upgrade agent-hub")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("storage is unavailable: this write was not saved; retry later")]
    WriterFailed,
    #[error("writes are refused: {0}")]
    Refusing(String),
    #[error("storage is being recovered: this write was not saved; retry")]
    Replaced,
    #[error("the storage writer has shut down")]
    Closed,
    #[error("the database holds data this build cannot read: {0}")]
    Corrupt(String),
    #[error("this is a database of agent-hub-mcp 0.2.1; `hubctl serve --db FILE` converts it (after a backup beside it) before anything else may open it")]
    UnconvertedReference,
    #[error("cannot convert the agent-hub-mcp 0.2.1 database, which is left as it was (a copy is at {backup}): {reason}")]
    Conversion { backup: String, reason: String },
}
