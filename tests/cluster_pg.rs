//! Cluster mode's PostgreSQL groundwork (issue 16, shared/spec/cluster.md §2)
//! against a real server from `common::postgres`: the embedded migrations
//! (idempotent; two nodes migrating at once end on one version), the password from
//! PGPASSWORD or a PGPASSFILE, node registration (a live node id is refused), shard
//! leases (acquire, renew, lapse, steal, release: epochs strictly grow) and the
//! epoch fence of a write batch. One server for the file, one database per
//! scenario; lease times are a few hundred milliseconds so that it stays fast.
//! Skips, saying why, where PostgreSQL is not installed.

mod common;
use agent_hub::pg::{self, lease, migrate, Epoch, PgError, Pool, PoolOptions, ShardId};
use common::postgres::Postgres;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Lease and node times of the scenarios: short, and slept past by a margin. Only
/// "at least" waits depend on them, apart from two statements in a row having to
/// run within TTL.
const TTL: Duration = Duration::from_millis(500);
const PAST_TTL: Duration = Duration::from_millis(700);
/// A node TTL long enough never to lapse during a scenario.
const LONG: Duration = Duration::from_secs(60);

/// The scenarios' databases, created before the scenarios run side by side
/// (createdb is a blocking child process, which would stall the others' timing).
const DATABASES: [&str; 5] = ["once", "race", "nodes", "leases", "fence"];

fn pool_for(server: &Postgres, db: &str) -> Pool {
    let config = pg::config_from_url(&server.url(db), &server.env()).expect("config");
    pg::pool(config, &PoolOptions::default()).expect("pool")
}

fn shards(list: &[u16]) -> Vec<ShardId> {
    list.iter().map(|&s| ShardId(s)).collect()
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
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    server.create_databases(&DATABASES);
    // Independent databases: the scenarios' waits overlap.
    tokio::join!(
        timed("migrations", migrations_apply_once(&server)),
        timed(
            "migrators",
            concurrent_migrators_end_on_one_version(&server)
        ),
        timed("nodes", node_ids_are_exclusive(&server)),
        timed("leases", leases_and_epochs(&server)),
        timed("fence", fenced_batch_after_a_steal(&server)),
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
    let latest = migrate::latest();
    assert!(latest >= 13, "{latest}");
    assert_eq!(migrate::run(&pool).await.expect("migrate"), latest);
    assert_eq!(migrate::run(&pool).await.expect("migrate again"), latest);
    let c = pool.get().await.expect("connection");
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM schema_migrations").await,
        latest
    );
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
            AND table_name NOT IN ('schema_migrations', 'nodes', 'shard_lease', 'request_log', 'batch_log',
                                   'revoked_sessions', 'delivery_outbox', 'agent_quota',
                                   'shard_pins')",
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
            known
        }) if known == latest
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
    let latest = migrate::latest();
    assert_eq!((ra.expect("node a"), rb.expect("node b")), (latest, latest));
    let c = b.get().await.expect("connection");
    let versions: Vec<i64> =
        column(&c, "SELECT version FROM schema_migrations ORDER BY version").await;
    assert_eq!(versions, (1..=latest).collect::<Vec<i64>>());
}

async fn node_ids_are_exclusive(server: &Postgres) {
    let pool = pool_for(server, "nodes");
    migrate::run(&pool).await.expect("migrate");
    let c = pool.get().await.expect("connection");

    let n1 = lease::register(&c, "n1", "127.0.0.1:8801", TTL, "standby")
        .await
        .expect("register n1");
    // A second live process with the same id is refused.
    let second = lease::register(&c, "n1", "127.0.0.1:9901", TTL, "standby").await;
    assert!(
        matches!(&second, Err(PgError::NodeIdInUse(id)) if id == "n1"),
        "{second:?}"
    );
    let n2 = lease::register(&c, "n2", "127.0.0.1:8802", TTL, "standby")
        .await
        .expect("register n2");
    // A node with the other cluster_placement is refused while these live.
    let mixed = lease::register(&c, "n3", "127.0.0.1:8803", TTL, "spread").await;
    assert!(
        matches!(&mixed, Err(PgError::PlacementMismatch { node, theirs, .. })
            if node == "n1" && theirs == "standby"),
        "{mixed:?}"
    );
    lease::heartbeat(&c, &n1).await.expect("heartbeat");
    let live = lease::live_nodes(&c, TTL).await.expect("live nodes");
    assert_eq!(
        live,
        vec![
            ("n1".to_string(), "127.0.0.1:8801".to_string()),
            ("n2".to_string(), "127.0.0.1:8802".to_string())
        ]
    );

    // n1 stops heartbeating (a stalled process): once its TTL has passed, a new
    // process may take the id, and the stalled one can no longer act in its name.
    tokio::time::sleep(PAST_TTL).await;
    lease::heartbeat(&c, &n2).await.expect("heartbeat n2");
    assert_eq!(
        lease::live_nodes(&c, TTL).await.expect("live nodes"),
        vec![("n2".to_string(), "127.0.0.1:8802".to_string())]
    );
    let n1_again = lease::register(&c, "n1", "127.0.0.1:9901", TTL, "standby")
        .await
        .expect("take over a dead node's id");
    let stale = lease::heartbeat(&c, &n1).await;
    assert!(matches!(stale, Err(PgError::NodeReplaced(_))), "{stale:?}");
    let taken = lease::acquire(&c, &n1, &shards(&[5]), LONG)
        .await
        .expect("acquire");
    assert!(taken.is_empty(), "a replaced process acquired {taken:?}");

    // Leaving frees the id at once.
    lease::leave(&c, &n1_again).await.expect("leave");
    lease::register(&c, "n1", "127.0.0.1:8801", TTL, "standby")
        .await
        .expect("register after leave");
}

/// `(shard, epoch)` pairs from numbers.
fn held(list: &[(u16, i64)]) -> Vec<(ShardId, Epoch)> {
    list.iter().map(|&(s, e)| (ShardId(s), Epoch(e))).collect()
}

/// Acquires that remember every epoch each shard went through.
#[derive(Default)]
struct History(BTreeMap<ShardId, Vec<Epoch>>);

impl History {
    async fn acquire(
        &mut self,
        c: &deadpool_postgres::Client,
        who: &pg::Member,
        list: &[u16],
        ttl: Duration,
    ) -> Vec<(ShardId, Epoch)> {
        let got = lease::acquire(c, who, &shards(list), ttl)
            .await
            .expect("acquire");
        for (s, e) in &got {
            self.0.entry(*s).or_default().push(*e);
        }
        got
    }

    fn assert_epochs_grow(&self) {
        for (shard, epochs) in &self.0 {
            assert!(
                epochs.windows(2).all(|w| w[0] < w[1]),
                "shard {shard:?}: epochs {epochs:?}"
            );
        }
    }
}

async fn leases_and_epochs(server: &Postgres) {
    let pool = pool_for(server, "leases");
    migrate::run(&pool).await.expect("migrate");
    let c = pool.get().await.expect("connection");
    let a = lease::register(&c, "a", "a:1", LONG, "standby")
        .await
        .expect("a");
    let b = lease::register(&c, "b", "b:1", LONG, "standby")
        .await
        .expect("b");
    let mut history = History::default();

    let got_a = history.acquire(&c, &a, &[0, 1, 2], TTL).await;
    assert_eq!(got_a, held(&[(0, 1), (1, 1), (2, 1)]));
    // Held shards are not free: b gets only the one nobody holds.
    let got = history.acquire(&c, &b, &[1, 2, 3], TTL).await;
    assert_eq!(got, held(&[(3, 1)]));

    // Renewing moves the expiry of a's shards later, under the same epochs.
    let expiry = "SELECT max(expires_at)::text FROM shard_lease WHERE owner_node = 'a'";
    let before: String = c.query_one(expiry, &[]).await.expect("expiry").get(0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(lease::renew(&c, &a, TTL).await.expect("renew"), got_a);
    let later: bool = c
        .query_one(
            "SELECT bool_and(expires_at > $1::text::timestamptz) FROM shard_lease
              WHERE owner_node = 'a'",
            &[&before],
        )
        .await
        .expect("compare expiry")
        .get(0);
    assert!(later, "renew did not extend the leases");

    // a stops renewing: its leases lapse, a lapsed lease is not renewed, and b
    // steals shard 1 under a new epoch.
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(lease::renew(&c, &a, TTL).await.expect("renew"), vec![]);
    let got = history.acquire(&c, &b, &[1], LONG).await;
    assert_eq!(got, held(&[(1, 2)]));
    // a takes its lapsed shards 0 and 2 back, also under new epochs.
    let got = history.acquire(&c, &a, &[0, 1, 2], LONG).await;
    assert_eq!(got, held(&[(0, 2), (2, 2)]));

    // Releasing: only under the epoch still held; the epoch stays until the next
    // acquire bumps it.
    let stale = lease::release(&c, &a, &held(&[(1, 1)]))
        .await
        .expect("stale release");
    assert!(stale.is_empty(), "released a shard a no longer holds");
    let released = lease::release(&c, &a, &held(&[(0, 2)]))
        .await
        .expect("release");
    assert_eq!(released, shards(&[0]));
    let got = history.acquire(&c, &b, &[0], LONG).await;
    assert_eq!(got, held(&[(0, 3)]));
    assert_eq!(
        lease::renew(&c, &b, LONG).await.expect("renew b"),
        held(&[(0, 3), (1, 2)])
    );

    // A move (`hubctl cluster move`): only to another live node, only under the
    // epoch held; the target holds it at once (its renewal finds it) at the next
    // epoch, and nobody can acquire it meanwhile.
    for (to, epoch) in [("nobody", 3), ("b", 3), ("a", 2)] {
        let moved = lease::transfer(&c, &b, &held(&[(0, epoch)]), to, LONG, LONG)
            .await
            .expect("transfer");
        assert!(moved.is_empty(), "moved to {to} under epoch {epoch}");
    }
    let moved = lease::transfer(&c, &b, &held(&[(0, 3)]), "a", LONG, LONG)
        .await
        .expect("transfer");
    assert_eq!(moved, held(&[(0, 4)]));
    history.0.entry(ShardId(0)).or_default().push(Epoch(4));
    assert_eq!(
        lease::renew(&c, &a, LONG).await.expect("renew a"),
        held(&[(0, 4), (2, 2)])
    );
    assert_eq!(
        lease::renew(&c, &b, LONG).await.expect("renew b"),
        held(&[(1, 2)])
    );
    assert!(history.acquire(&c, &b, &[0], LONG).await.is_empty());

    // A graceful stop releases the rest, lapsed ones (3) included.
    assert_eq!(lease::leave(&c, &b).await.expect("b leaves"), 2);
    let got = history.acquire(&c, &a, &[0, 1, 3], LONG).await;
    assert_eq!(got, held(&[(1, 3), (3, 2)]));
    history.assert_epochs_grow();
}

/// The old owner's batch commits while its epoch is current, and the lease row's
/// share lock keeps a takeover out until it has; after the takeover, its next batch
/// is fenced and nothing of it is stored.
async fn fenced_batch_after_a_steal(server: &Postgres) {
    let pool = pool_for(server, "fence");
    migrate::run(&pool).await.expect("migrate");
    let mut c_a = pool.get().await.expect("connection a");
    let c_b = pool.get().await.expect("connection b");
    let a = lease::register(&c_a, "a", "a:1", LONG, "standby")
        .await
        .expect("a");
    let b = lease::register(&c_b, "b", "b:1", LONG, "standby")
        .await
        .expect("b");
    let got = lease::acquire(&c_a, &a, &shards(&[7, 8]), TTL)
        .await
        .expect("a acquires");
    let tags = held(&[(7, 1), (8, 1)]);
    assert_eq!(got, tags);
    let write = "INSERT INTO request_log (request_id, shard, reply, created_at)
                 VALUES ($1, 7, '{}', now())";

    // A batch under the current epochs commits.
    let tx = c_a.transaction().await.expect("begin");
    assert_eq!(pg::fence(&tx, &tags).await.expect("fence"), vec![]);
    tx.execute(write, &[&"r1"]).await.expect("write r1");
    tx.commit().await.expect("commit r1");

    // A batch that checked its fence holds the lease rows: the lease lapses
    // meanwhile, yet b cannot take shard 7 until that batch has committed.
    let tx = c_a.transaction().await.expect("begin");
    assert_eq!(pg::fence(&tx, &tags).await.expect("fence"), vec![]);
    tokio::time::sleep(PAST_TTL).await;
    let blocked = lease::acquire(&c_b, &b, &shards(&[7]), LONG)
        .await
        .expect("b tries");
    assert!(
        blocked.is_empty(),
        "took over during a fenced batch: {blocked:?}"
    );
    tx.execute(write, &[&"r2"]).await.expect("write r2");
    tx.commit().await.expect("commit r2");
    let stolen = lease::acquire(&c_b, &b, &shards(&[7]), LONG)
        .await
        .expect("b steals");
    assert_eq!(stolen, vec![(ShardId(7), Epoch(2))]);

    // a's next batch is fenced on shard 7 (8 was not taken) and rolls back.
    let tx = c_a.transaction().await.expect("begin");
    assert_eq!(pg::fence(&tx, &tags).await.expect("fence"), shards(&[7]));
    tx.execute(write, &[&"r3"]).await.expect("write r3");
    tx.rollback().await.expect("rollback");
    // b's batch under the new epoch commits.
    let mut c_b = c_b;
    let tx = c_b.transaction().await.expect("begin");
    assert_eq!(pg::fence(&tx, &stolen).await.expect("fence"), vec![]);
    tx.commit().await.expect("commit");

    let stored: Vec<String> = column(
        &c_a,
        "SELECT request_id FROM request_log ORDER BY request_id",
    )
    .await;
    assert_eq!(stored, vec!["r1", "r2"]);
}
