//! Cluster mode's PostgreSQL groundwork (issue 16, shared/spec/cluster.md §2)
//! against a real server from `common::postgres`: the embedded migrations
//! (idempotent; two nodes migrating at once end on one version), the password from
//! PGPASSWORD or a PGPASSFILE. One server for the file, one database per scenario.
//! Skips, saying why, where PostgreSQL is not installed.

mod common;
use agent_hub::pg::{self, migrate, PgError, Pool, PoolOptions};
use common::postgres::Postgres;
use std::collections::BTreeSet;
use std::time::Instant;

/// The scenarios' databases, created before the scenarios run side by side
/// (createdb is a blocking child process, which would stall the others' timing).
const DATABASES: [&str; 2] = ["once", "race"];

fn pool_for(server: &Postgres, db: &str) -> Pool {
    let config = pg::config_from_url(&server.url(db), &server.env()).expect("config");
    pg::pool(config, &PoolOptions::default()).expect("pool")
}

/// The first column of a query's rows.
async fn column<T>(c: &deadpool_postgres::Client, sql: &str) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let rows = c
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn cluster_store_on_postgres() {
    let server = match Postgres::start() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    server.create_databases(&DATABASES);
    // Independent databases: the scenarios' waits overlap.
    tokio::join!(
        timed("migrations", migrations_apply_once(&server)),
        timed(
            "migrators",
            concurrent_migrators_end_on_one_version(&server)
        ),
    );
    assert!(!server.log().contains("PANIC"), "{}", server.log());
}

async fn timed(name: &str, scenario: impl std::future::Future<Output = ()>) {
    let started = Instant::now();
    scenario.await;
    println!("{name}: {:?}", started.elapsed());
}

/// `table.column` of every table the SQLite migrations (migrations/*.sql) create.
fn sqlite_columns() -> BTreeSet<String> {
    let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
    // 008 fills shard columns of existing rows; there are none here.
    conn.create_scalar_function("hub_shard", 1, Default::default(), |_| Ok(0))
        .expect("hub_shard");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    for f in files {
        let sql = std::fs::read_to_string(&f).expect("read migration");
        conn.execute_batch(&sql)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    let mut stmt = conn
        .prepare(
            "SELECT m.name || '.' || c.name FROM sqlite_master m, pragma_table_info(m.name) c
              WHERE m.type = 'table' AND m.name NOT IN ('sqlite_sequence', 'schema_migrations')",
        )
        .expect("prepare");
    let columns = stmt
        .query_map([], |r| r.get(0))
        .expect("columns")
        .collect::<Result<_, _>>()
        .expect("column");
    columns
}

/// The frozen shard hash, computed here independently of the crate.
fn sha_shard(id: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(id.as_bytes());
    let head: [u8; 8] = d[..8].try_into().expect("8 bytes");
    (u64::from_be_bytes(head) % 1024) as i32
}

async fn migrations_apply_once(server: &Postgres) {
    let pool = pool_for(server, "once");
    assert_eq!(migrate::run(&pool).await.expect("migrate"), 2);
    assert_eq!(migrate::run(&pool).await.expect("migrate again"), 2);
    let c = pool.get().await.expect("connection");
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM schema_migrations").await, 2);
    assert_eq!(count("SELECT count(*) FROM shard_lease").await, 1024);
    assert_eq!(
        count("SELECT count(*) FROM shard_lease WHERE owner_node IS NULL AND epoch = 0").await,
        1024
    );
    // Every table of the hub carries a shard column (cluster.md §2).
    assert_eq!(
        count(
            "SELECT count(*) FROM information_schema.columns
              WHERE table_schema = 'public' AND column_name = 'shard'
                AND table_name IN ('agents', 'audit_events', 'messages', 'message_recipients',
                    'message_reads', 'locks', 'lock_fencing', 'root_tasks', 'rounds',
                    'assignments', 'handoffs', 'operator_approvals')"
        )
        .await,
        12
    );
    // The same tables and columns as SQLite's schema, so that operators' SQL and
    // the Store's statements name the same things on both engines.
    let pg_columns: BTreeSet<String> = column::<String>(
        &c,
        "SELECT table_name || '.' || column_name FROM information_schema.columns
          WHERE table_schema = 'public'
            AND table_name NOT IN ('schema_migrations', 'nodes', 'shard_lease', 'request_log', 'batch_log')",
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(pg_columns, sqlite_columns());

    // hub_shard() in SQL is the Rust hash (frozen values from src/domain/shard.rs).
    for (id, frozen) in [
        ("agent-1", Some(172)),
        ("task-42", Some(508)),
        ("branch:main", Some(275)),
        ("", None),
        ("ünïcødé/ключ", None),
    ] {
        let got: i32 = c
            .query_one("SELECT hub_shard($1)", &[&id])
            .await
            .expect("hub_shard")
            .get(0);
        assert_eq!(got, sha_shard(id), "{id:?}");
        if let Some(frozen) = frozen {
            assert_eq!(got, frozen, "{id:?}");
        }
    }
    // A database migrated by a newer build is refused.
    c.execute(
        "INSERT INTO schema_migrations VALUES (99, 'future', now())",
        &[],
    )
    .await
    .expect("insert");
    assert!(matches!(
        migrate::run(&pool).await,
        Err(PgError::SchemaTooNew {
            found: 99,
            known: 2
        })
    ));
}

/// Two nodes start at once on an empty database: one takes the advisory lock and
/// migrates, the other waits and then applies nothing (had both applied, the
/// second's CREATE TABLE or schema_migrations insert would have failed). The second
/// node logs in with a password file instead of PGPASSWORD.
async fn concurrent_migrators_end_on_one_version(server: &Postgres) {
    let a = pool_for(server, "race");
    let dir = tempfile::tempdir().expect("temp dir");
    let passfile = dir.path().join("pgpass");
    common::write_private(
        &passfile,
        &format!("127.0.0.1:{}:race:hub:{}\n", server.port, server.password),
    );
    let env = move |k: &str| (k == "PGPASSFILE").then(|| passfile.clone().into_os_string());
    let b_config = pg::config_from_url(&server.url("race"), &env).expect("config from passfile");
    let b = pg::pool(b_config, &PoolOptions::default()).expect("pool");

    let (ra, rb) = tokio::join!(migrate::run(&a), migrate::run(&b));
    assert_eq!((ra.expect("node a"), rb.expect("node b")), (2, 2));
    let c = b.get().await.expect("connection");
    let versions: Vec<i64> =
        column(&c, "SELECT version FROM schema_migrations ORDER BY version").await;
    assert_eq!(versions, vec![1, 2]);
}
