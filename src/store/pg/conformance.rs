//! The PostgreSQL writer against SQLite's, for `tests/cluster_pg_apply.rs`: the op
//! batches of the replay tests (`store::replay_cases`), applied to SQLite through
//! the single-node writer's own commit and to PostgreSQL through
//! [`super::apply`]. Ops are crate-private (they are not an API), so a test sees a
//! batch only as a named, opaque [`Batch`].

pub mod reads_activation;

use super::apply::{apply_batch, Tagged};
use super::{Epoch, PgError, ShardId, Transaction};
use crate::store::op::Op;
use crate::store::replay_cases;
use std::path::Path;

/// A named batch of ops.
#[derive(Debug, Clone)]
pub struct Batch {
    name: &'static str,
    ops: Vec<Op>,
}

impl Batch {
    /// What the batch is about.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What each of its purges deleted when last applied, in order: set by the
    /// application (SQLite's or PostgreSQL's), as the writer leaves it for the caller.
    pub fn purged(&self) -> Vec<u64> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::DeliveriesPurge { deleted, .. } => Some(deleted.get()),
                _ => None,
            })
            .collect()
    }

    /// The kinds of its ops (`"MessageInsert"`, ...), in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.ops.iter().map(replay_cases::kind).collect()
    }
}

/// Every op kind there is.
pub fn all_kinds() -> &'static [&'static str] {
    replay_cases::KINDS
}

/// What the cases act on: agents, a worked task, messages, a lock, an audit row.
/// Build it once: its audit ids come from the running audit clock.
pub fn base() -> Batch {
    Batch {
        name: "base",
        ops: replay_cases::base(),
    }
}

/// One batch per group of op kinds, every kind in one of them, acting on `base`.
pub fn cases(base: &Batch) -> Vec<Batch> {
    replay_cases::cases(&base.ops)
        .into_iter()
        .map(|(name, ops)| Batch { name, ops })
        .collect()
}

/// Three batches on `base`: a lock grant, a newer grant, then the older grant
/// again (a batch applied late), which must change nothing.
pub fn late_grant() -> [Batch; 3] {
    let [older, newer, late] = replay_cases::late_grant();
    [
        Batch {
            name: "an older grant",
            ops: older,
        },
        Batch {
            name: "a newer grant",
            ops: newer,
        },
        Batch {
            name: "the older grant applied late",
            ops: late,
        },
    ]
}

/// A SQLite database at `path`, migrated, with foreign keys on as on the writer's
/// connection.
pub fn sqlite(path: &Path) -> Result<rusqlite::Connection, crate::store::StoreError> {
    let mut conn = rusqlite::Connection::open(path)?;
    crate::store::migrate::run(&mut conn, "2026-01-01T00:00:00.000000+00:00")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Apply and commit `batch` on SQLite, as the single-node writer does.
pub fn apply_sqlite(conn: &mut rusqlite::Connection, batch: &Batch) -> rusqlite::Result<()> {
    let ops: Vec<&Op> = batch.ops.iter().collect();
    crate::store::writer::commit_batch(conn, &ops).map(|_| ())
}

/// Apply `batches` in `tx`, each as the ops of its shard under its epoch, fence
/// first; returns the fenced shards, whose batches were not applied. The caller
/// commits.
pub async fn apply_pg(
    tx: &Transaction<'_>,
    batches: &[(ShardId, Epoch, &Batch)],
) -> Result<Vec<ShardId>, PgError> {
    let tagged: Vec<Tagged<'_>> = batches
        .iter()
        .map(|(shard, epoch, batch)| Tagged {
            shard: *shard,
            epoch: *epoch,
            ops: &batch.ops,
        })
        .collect();
    apply_batch(tx, &tagged).await
}

pub mod reads_pages;
