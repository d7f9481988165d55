//! Schema migrations, embedded in the binary and applied in order at start-up.
//! `schema_migrations` records which versions are applied. Run by
//! [`super::Store::open`] before anything is loaded.

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
];

pub(crate) fn run(conn: &mut Connection, now: &str) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         );",
    )?;
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
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 006 moves each task's message budget onto the task, counted from what an
    /// older schema stored (agent messages about its rounds, not the hub's notices).
    #[test]
    fn the_message_budget_is_carried_over() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);",
        )
        .unwrap();
        for (version, name, sql) in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 't')",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
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

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let mut files: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .unwrap()
                .map(|e| {
                    e.unwrap()
                        .file_name()
                        .to_string_lossy()
                        .trim_end_matches(".sql")
                        .to_string()
                })
                .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| m.1.to_string()).collect();
        assert_eq!(listed, files);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
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
