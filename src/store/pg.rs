//! PostgreSQL for cluster mode (shared/spec/cluster.md): connecting through a pool
//! ([`connect`]), the embedded migrations ([`migrate`]), the ownership primitives
//! of §2: node membership and shard leases ([`lease`]) and the epoch fence of a
//! write batch ([`fence`]), the write half of the store: a batch of ops applied
//! in one transaction behind the fence (`apply`) by the writer thread's engine
//! (`writer`), this process as a node holding leases (`node`, `ownership`), and
//! `hubctl serve --store postgres://…` (`open`). The reads are in
//! `store::reads::postgres`. Public (unlike the rest of `store`) so that
//! `tests/cluster_pg*.rs` can drive the primitives against a real server
//! ([`conformance`] compares the writer and the reads with SQLite's).

pub(crate) mod agents;
pub(crate) mod apply;
pub mod conformance;
pub mod connect;
pub mod fence;
pub mod lease;
pub mod migrate;
pub(crate) mod node;
pub(crate) mod open;
pub(crate) mod ownership;
mod passfile;
pub(crate) mod quota;
pub(crate) mod replies;
pub(crate) mod revoked;
pub(crate) mod tls;
pub(crate) mod writer;

pub use crate::domain::lease::next_fencing_token;
pub use crate::domain::shard::{Epoch, ShardId};
pub use connect::{config_from_url, pool, PoolOptions, Target};
pub use deadpool_postgres::{Pool, Transaction};
pub use fence::fence;
pub use lease::Member;

use thiserror::Error;

/// A driver error with the server's own words when it has them: the driver's
/// `Display` of a server error is only "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        // With its causes ("error performing TLS handshake: invalid peer
        // certificate: UnknownIssuer").
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    }
}

/// A pool's failure, with the server's words when connecting was refused (the
/// pool's own `Display` says only "db error").
fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(db) => format!("could not connect: {}", describe(db)),
        other => other.to_string(),
    }
}

/// What the PostgreSQL layer can fail with.
#[derive(Debug, Error)]
pub enum PgError {
    /// The `postgres://` URL does not parse.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The TLS settings cannot be used (a CA file that cannot be read, say).
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
    /// A password in the URL would show in `ps`, shell history and logs.
    #[error("the PostgreSQL URL contains a password: set PGPASSWORD or use a PGPASSFILE instead")]
    PasswordInUrl,
    /// Needed to pick the password file's line and to log in.
    #[error("no PostgreSQL user: name one in the URL (postgres://USER@HOST/DB) or set PGUSER")]
    NoUser,
    /// The password file cannot be used.
    #[error("password file {path}: {reason}")]
    Passfile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server or the connection failed.
    #[error("PostgreSQL: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// No pooled connection could be had (timeout, or connecting failed).
    #[error("PostgreSQL pool: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The pool could not be built.
    #[error("PostgreSQL pool: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    /// The database was migrated by a newer build.
    #[error("the PostgreSQL schema is version {found}, newer than this build knows ({known}); upgrade agent-hub")]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build has.
        known: i64,
    },
    /// The database holds something this build cannot use.
    #[error("the PostgreSQL database cannot be used: {0}")]
    Incompatible(String),
    /// Another live process is registered with this node id.
    #[error("node id {0} is in use by a live node; give each node its own --node-id")]
    NodeIdInUse(String),
    /// A live node of the cluster runs with the other `cluster_placement`.
    #[error("node {node} runs with cluster_placement: {theirs}, this one with {ours}; every node of a cluster must use the same placement: stop them all, change cluster_placement everywhere, and start them again")]
    PlacementMismatch {
        /// The live node running with the other placement.
        node: String,
        /// Its placement.
        theirs: String,
        /// This node's.
        ours: String,
    },
    /// An op holds a value its PostgreSQL column cannot take.
    #[error("cannot store in PostgreSQL: {0}")]
    Value(String),
    /// This process's registration was taken over (it was seen as dead).
    #[error("node {0} was taken over by another process after its heartbeats lapsed")]
    NodeReplaced(String),
}
