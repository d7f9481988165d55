//! Schema migrations, embedded in the binary and applied in order at start-up.
//! `schema_migrations` records which versions are applied. Run by
//! [`super::Store::open`] before anything is loaded, after [`super::convert`] has
//! rebuilt a database of the reference (which has no `schema_migrations`).

use super::StoreError;
use rusqlite::Connection;

/// (version, name, SQL). Append only; never edit an applied migration.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "001_init", include_str!("../../migrations/001_init.sql")),
    (
        2,
        "002_messages",
        include_str!("../../migrations/002_messages.sql"),
    ),
    (
        3,
        "003_locks",
        include_str!("../../migrations/003_locks.sql"),
    ),
    (
        4,
        "004_workflow",
        include_str!("../../migrations/004_workflow.sql"),
    ),
    (
        5,
        "005_open_work",
        include_str!("../../migrations/005_open_work.sql"),
    ),
    (
        6,
        "006_retention",
        include_str!("../../migrations/006_retention.sql"),
    ),
    (
        7,
        "007_counters",
        include_str!("../../migrations/007_counters.sql"),
    ),
    (
        8,
        "008_shards",
        include_str!("../../migrations/008_shards.sql"),
    ),
    (
        9,
        "009_audit_filters",
        include_str!("../../migrations/009_audit_filters.sql"),
    ),
    (
        10,
        "010_recipient_pages",
        include_str!("../../migrations/010_recipient_pages.sql"),
    ),
    (
        11,
        "011_order_keys",
        include_str!("../../migrations/011_order_keys.sql"),
    ),
];

/// `hub_shard(owner)`: the frozen shard hash, for migrations that fill `shard`
/// columns from existing rows (008) and for the reference's conversion.
pub(super) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "hub_shard",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let owner: String = ctx.get(0)?;
            Ok(i64::from(crate::domain::shard::shard_of(&owner).0))
        },
    )
}

/// Refuse a database whose rows were sharded with another hash: every `shard`
/// column would name the wrong owner's shard.
fn check_shard_hash(conn: &Connection) -> Result<(), StoreError> {
    use crate::domain::shard::SHARD_HASH;
    let stored: String = conn.query_row(
        "SELECT value FROM hub_meta WHERE name = 'shard_hash'",
        [],
        |r| r.get(0),
    )?;
    if stored != SHARD_HASH {
        return Err(StoreError::Corrupt(format!(
            "rows are sharded with {stored}, this build uses {SHARD_HASH}"
        )));
    }
    Ok(())
}

const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
     version    INTEGER PRIMARY KEY,
     name       TEXT NOT NULL,
     applied_at TEXT NOT NULL
 );";

/// Apply one migration and record it, inside the caller's transaction.
fn apply(
    conn: &Connection,
    version: i64,
    name: &str,
    sql: &str,
    now: &str,
) -> rusqlite::Result<()> {
    conn.execute_batch(sql)?;
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![version, name, now],
    )?;
    Ok(())
}

/// Every migration on an empty schema, inside the caller's transaction: the
/// reference's conversion builds our schema and fills it in one transaction.
pub(super) fn apply_all_in(conn: &Connection, now: &str) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA_MIGRATIONS)?;
    for (version, name, sql) in MIGRATIONS {
        apply(conn, *version, name, sql, now)?;
    }
    Ok(())
}

pub(crate) fn run(conn: &mut Connection, now: &str) -> Result<(), StoreError> {
    register_functions(conn)?;
    // Our CREATE TABLE IF NOT EXISTS would skip the reference's tables of the same
    // names and leave its rows unreadable: such a database is converted first.
    if super::convert::detect(conn)? == super::convert::Kind::Reference {
        return Err(StoreError::UnconvertedReference);
    }
    conn.execute_batch(SCHEMA_MIGRATIONS)?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    let applied: std::collections::HashSet<i64> = conn
        .prepare("SELECT version FROM schema_migrations")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // Each version not yet recorded, in order (robust to a gap left by a build that
    // lacked one migration).
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
        let tx = conn.transaction()?;
        apply(&tx, *version, name, sql, now)?;
        tx.commit()?;
        tracing::info!(version, name, "applied migration");
    }
    check_shard_hash(conn)
}

/// The `.sql` files of `dir` (not its subdirectories, such as `postgres/`) are
/// exactly `list`'s names, in order of strictly growing version.
#[cfg(test)]
pub(crate) fn assert_listed_in_order(dir: &str, list: &[(i64, &str, &str)]) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".sql").map(str::to_string))
        .collect();
    files.sort();
    let listed: Vec<String> = list.iter().map(|m| m.1.to_string()).collect();
    assert_eq!(listed, files);
    assert!(list.windows(2).all(|w| w[0].0 < w[1].0));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database with the first `n` migrations applied, as an older
    /// build left it.
    fn migrated_up_to(n: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        // 008 fills shard columns with it.
        register_functions(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);",
        )
        .unwrap();
        for (version, name, sql) in &MIGRATIONS[..n] {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 't')",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        conn
    }

    /// 006 moves each task's message budget onto the task, counted from what an
    /// older schema stored (agent messages about its rounds, not the hub's notices).
    #[test]
    fn the_message_budget_is_carried_over() {
        let mut conn = migrated_up_to(5);
        conn.execute_batch(
            "INSERT INTO root_tasks VALUES ('T', 't', '', 'completed', 'd', 't', 't');
             INSERT INTO rounds (id, root_task_id, round_number, status, created_at, updated_at)
                 VALUES ('R', 'T', 1, 'completed', 't', 't');
             INSERT INTO messages (id, from_agent, round_id, created_at) VALUES
                 ('m1', 'a', 'R', 't'), ('m2', 'b', 'R', 't'), ('m3', 'hub', 'R', 't'),
                 ('m4', 'a', NULL, 't');",
        )
        .unwrap();
        run(&mut conn, "now").unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT message_count FROM root_tasks WHERE id = 'T'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2);
    }

    /// Task T with its round R, in the columns every schema since 004 has.
    const TASK_T_ROUND_R: &str =
        "INSERT INTO root_tasks (id, title, status, dispatcher_agent_id, created_at, updated_at)
             VALUES ('T', 't', 'completed', 'd', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
         INSERT INTO rounds (id, root_task_id, round_number, status, created_at, updated_at)
             VALUES ('R', 'T', 1, 'completed', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');";

    /// 008 gives existing rows their owner's shard, and new databases record the hash.
    #[test]
    fn shards_are_filled_in() {
        use crate::domain::shard::shard_of;
        let mut conn = migrated_up_to(7);
        conn.execute_batch(TASK_T_ROUND_R).unwrap();
        conn.execute_batch(
            "INSERT INTO operator_approvals (id, round_id, action, created_at) VALUES ('A', 'R', 'approve', 't');
             INSERT INTO messages (id, from_agent, created_at) VALUES ('m1', 'alice', 't');
             INSERT INTO message_recipients (message_id, agent_id, delivered_at) VALUES ('m1', 'bob', 't');
             INSERT INTO locks (id, lock_key, holder_agent_id, fencing_token, expires_at, created_at)
                 VALUES ('L', 'branch:main', 'alice', 1, 't', 't');",
        )
        .unwrap();
        run(&mut conn, "now").unwrap();
        let shard = |sql: &str| -> u16 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(shard("SELECT shard FROM root_tasks"), shard_of("T").0);
        assert_eq!(shard("SELECT shard FROM rounds"), shard_of("T").0);
        assert_eq!(
            shard("SELECT shard FROM operator_approvals"),
            shard_of("T").0
        );
        assert_eq!(shard("SELECT shard FROM messages"), shard_of("alice").0);
        assert_eq!(
            shard("SELECT shard FROM message_recipients"),
            shard_of("bob").0
        );
        assert_eq!(shard("SELECT shard FROM locks"), shard_of("branch:main").0);

        // A database sharded with another hash is refused.
        conn.execute(
            "UPDATE hub_meta SET value = 'other' WHERE name = 'shard_hash'",
            [],
        )
        .unwrap();
        assert!(matches!(run(&mut conn, "t"), Err(StoreError::Corrupt(_))));
    }

    /// 011 gives existing assignments their rowid as `seq`: they load in the order
    /// they were stored, as before, whatever their ids and times.
    #[test]
    fn assignment_order_is_carried_over() {
        use crate::store::load_tasks::{load_tasks, Scope};
        let mut conn = migrated_up_to(10);
        conn.execute_batch(TASK_T_ROUND_R).unwrap();
        conn.execute_batch(
            "INSERT INTO assignments (id, round_id, root_task_id, agent_id, goal, status, created_at, updated_at)
                 VALUES ('c', 'R', 'T', 'x', 'g', 'pending', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
                        ('a', 'R', 'T', 'x', 'g', 'pending', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
                        ('b', 'R', 'T', 'x', 'g', 'pending', '2025-01-01T00:00:00Z', '2026-01-01T00:00:00Z');",
        )
        .unwrap();
        run(&mut conn, "now").unwrap();
        let task = load_tasks(&conn, Scope::Task("T")).unwrap().pop().unwrap();
        let order: Vec<(&str, i64)> = task
            .assignments
            .iter()
            .map(|a| (a.id.as_str(), a.seq))
            .collect();
        assert_eq!(order, [("c", 1), ("a", 2), ("b", 3)]);
    }

    #[test]
    fn every_migration_file_is_listed_in_order() {
        assert_listed_in_order(
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
            MIGRATIONS,
        );
    }

    #[test]
    fn applies_once_and_refuses_newer() {
        let mut c = Connection::open_in_memory().unwrap();
        run(&mut c, "t").unwrap();
        run(&mut c, "t").unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        c.execute(
            "INSERT INTO schema_migrations VALUES (999, 'future', 't')",
            [],
        )
        .unwrap();
        assert!(matches!(
            run(&mut c, "t"),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
