//! PostgreSQL schema migrations, embedded like SQLite's (`migrations/postgres/`),
//! applied at start-up by whichever node gets there first. One transaction holds
//! `pg_advisory_xact_lock`: a second node starting at the same moment waits for the
//! first to commit, then finds every version recorded and applies nothing. The
//! transaction-scoped lock (rather than a session lock) is released by COMMIT or by
//! a lost connection whatever happens, never outlives its use on a pooled
//! connection, and works behind PgBouncer in transaction mode.

use super::{PgError, Pool};
use crate::domain::shard::{SHARD_COUNT, SHARD_HASH};

/// (version, name, SQL). Append only; never edit an applied migration.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "001_schema",
        include_str!("../../../migrations/postgres/001_schema.sql"),
    ),
    (
        2,
        "002_cluster",
        include_str!("../../../migrations/postgres/002_cluster.sql"),
    ),
    (
        3,
        "003_audit_ids",
        include_str!("../../../migrations/postgres/003_audit_ids.sql"),
    ),
    (
        4,
        "004_order_keys",
        include_str!("../../../migrations/postgres/004_order_keys.sql"),
    ),
    (
        5,
        "005_read_times",
        include_str!("../../../migrations/postgres/005_read_times.sql"),
    ),
    (
        6,
        "006_lease_incarnation",
        include_str!("../../../migrations/postgres/006_lease_incarnation.sql"),
    ),
    (
        7,
        "007_agent_registry",
        include_str!("../../../migrations/postgres/007_agent_registry.sql"),
    ),
    (
        8,
        "008_revoked_sessions",
        include_str!("../../../migrations/postgres/008_revoked_sessions.sql"),
    ),
    (
        9,
        "009_node_draining",
        include_str!("../../../migrations/postgres/009_node_draining.sql"),
    ),
    (
        10,
        "010_delivery_outbox",
        include_str!("../../../migrations/postgres/010_delivery_outbox.sql"),
    ),
    (
        11,
        "011_agent_quota",
        include_str!("../../../migrations/postgres/011_agent_quota.sql"),
    ),
    (
        12,
        "012_node_placement",
        include_str!("../../../migrations/postgres/012_node_placement.sql"),
    ),
    (
        13,
        "013_outbox_event",
        include_str!("../../../migrations/postgres/013_outbox_event.sql"),
    ),
    (
        14,
        "014_locks_holder",
        include_str!("../../../migrations/postgres/014_locks_holder.sql"),
    ),
    (
        15,
        "015_shard_pins",
        include_str!("../../../migrations/postgres/015_shard_pins.sql"),
    ),
];

/// The newest schema version this build has.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The advisory lock's key: "agenthub" in ASCII, so that it is recognisable in
/// `pg_locks` and unlikely to collide with another application's.
const LOCK_KEY: i64 = 0x6167_656e_7468_7562;

const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
     version    bigint PRIMARY KEY,
     name       text NOT NULL,
     applied_at timestamptz NOT NULL
 )";

/// Apply what is missing and check what is there; returns the schema version.
pub async fn run(pool: &Pool) -> Result<i64, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    // hub_shard() hashes the owner id's UTF-8 bytes; ids in another encoding
    // would hash differently from the Rust side.
    let encoding: String = tx
        .query_one("SELECT current_setting('server_encoding')", &[])
        .await?
        .get(0);
    if encoding != "UTF8" {
        return Err(PgError::Incompatible(format!(
            "the database's encoding is {encoding}; create it with ENCODING 'UTF8'"
        )));
    }
    tx.batch_execute(SCHEMA_MIGRATIONS).await?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(&found) = applied.iter().max().filter(|&&v| v > known) {
        return Err(PgError::SchemaTooNew { found, known });
    }
    // Each version not yet recorded, in order (robust to a gap left by a build
    // that lacked one migration).
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "applied PostgreSQL migration");
    }
    check_shards(&tx).await?;
    tx.commit().await?;
    Ok(known)
}

/// Refuse a database whose rows were sharded with another hash or shard count:
/// every `shard` column would name the wrong owner's shard.
async fn check_shards(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), PgError> {
    let meta = |name: &'static str| async move {
        let row = tx
            .query_opt("SELECT value FROM hub_meta WHERE name = $1", &[&name])
            .await?;
        Ok::<_, PgError>(row.map(|r| r.get::<_, String>(0)).unwrap_or_default())
    };
    let hash = meta("shard_hash").await?;
    let count = meta("shard_count").await?;
    if hash != SHARD_HASH || count != SHARD_COUNT.to_string() {
        return Err(PgError::Incompatible(format!(
            "rows are sharded with {hash} over {count} shards, this build uses {SHARD_HASH} over {SHARD_COUNT}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        crate::store::migrate::assert_listed_in_order(
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"),
            MIGRATIONS,
        );
    }
}
