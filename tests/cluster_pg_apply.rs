//! The PostgreSQL writer (`src/store/pg/apply.rs`) against SQLite's: every op kind,
//! in the replay tests' batches, applied to SQLite through the single-node
//! writer's commit and to PostgreSQL through `pg::conformance`, then every table
//! compared row by row (booleans as 0/1, times as UTC instants to the
//! microsecond). Each batch is applied a second time on PostgreSQL, which must
//! leave the state of once; and a batch tagged with a stolen shard's old epoch
//! writes nothing of that shard. Skips, saying why, where PostgreSQL is absent.

mod common;
use agent_hub::pg::conformance::{self, Batch};
use agent_hub::pg::{self, lease, migrate, Epoch, PoolOptions, ShardId};
use common::postgres::Postgres;
use deadpool_postgres::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The tables ops write (hub_meta, the migrations' and the cluster's own tables
/// are not theirs).
const TABLES: [&str; 13] = [
    "agents",
    "assignments",
    "audit_events",
    "handoffs",
    "hub_counters",
    "lock_fencing",
    "locks",
    "message_reads",
    "message_recipients",
    "messages",
    "operator_approvals",
    "root_tasks",
    "rounds",
];

/// Table -> its rows, each normalised to text cells joined by `|`, sorted.
type Dump = BTreeMap<&'static str, Vec<String>>;

/// A column and whether PostgreSQL types it boolean, timestamptz or else.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Flag,
    Time,
    Other,
}

/// Table -> (column, kind) in PostgreSQL's column order (the schema test of
/// `cluster_pg.rs` checks that SQLite has the same columns).
async fn columns(c: &Client) -> BTreeMap<&'static str, Vec<(String, Kind)>> {
    let mut out = BTreeMap::new();
    for table in TABLES {
        let rows = c
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .expect("columns");
        let cols: Vec<(String, Kind)> = rows
            .iter()
            .map(|r| {
                let kind = match r.get::<_, String>(1).as_str() {
                    "boolean" => Kind::Flag,
                    "timestamp with time zone" => Kind::Time,
                    _ => Kind::Other,
                };
                (r.get(0), kind)
            })
            .collect();
        assert!(!cols.is_empty(), "no table {table} in PostgreSQL");
        out.insert(table, cols);
    }
    out
}

/// A time as both sides are compared: UTC, microseconds.
const TIME: &str = "%Y-%m-%dT%H:%M:%S%.6f";

async fn dump_pg(c: &Client, cols: &BTreeMap<&'static str, Vec<(String, Kind)>>) -> Dump {
    let mut out = Dump::new();
    for (table, columns) in cols {
        let select: Vec<String> = columns
            .iter()
            .map(|(name, kind)| match kind {
                Kind::Flag => format!("({name})::int::text"),
                Kind::Time => {
                    format!("to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
                }
                Kind::Other => format!("({name})::text"),
            })
            .collect();
        // The agent registry's and the ended sessions' counters exist in cluster
        // mode only.
        let only_hub = if *table == "hub_counters" {
            " WHERE name NOT IN ('agents', 'revoked_sessions')"
        } else {
            ""
        };
        let sql = format!("SELECT {} FROM {table}{only_hub}", select.join(", "));
        let rows = c
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut rows: Vec<String> = rows
            .iter()
            .map(|r| {
                (0..columns.len())
                    .map(|i| {
                        r.get::<_, Option<String>>(i)
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

fn dump_sqlite(
    conn: &rusqlite::Connection,
    cols: &BTreeMap<&'static str, Vec<(String, Kind)>>,
) -> Dump {
    use rusqlite::types::ValueRef;
    let mut out = Dump::new();
    for (table, columns) in cols {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let sql = format!("SELECT {} FROM {table}", names.join(", "));
        let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, kind))| match r.get_ref(i).expect("cell") {
                        ValueRef::Null => "NULL".into(),
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Real(v) => v.to_string(),
                        ValueRef::Text(v) | ValueRef::Blob(v) => {
                            let text = String::from_utf8_lossy(v).into_owned();
                            if *kind == Kind::Time {
                                chrono::DateTime::parse_from_rfc3339(&text)
                                    .unwrap_or_else(|e| {
                                        panic!("{table}.{name}: {text:?} is no time: {e}")
                                    })
                                    .naive_utc()
                                    .format(TIME)
                                    .to_string()
                            } else {
                                text
                            }
                        }
                    })
                    .collect();
                Ok(cells.join("|"))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(table, rows);
    }
    out
}

/// `pg` must equal `sqlite`, table by table (the first that differs is named).
fn assert_same(pg: &Dump, sqlite: &Dump, what: &str) {
    for (table, rows) in sqlite {
        assert_eq!(pg.get(table), Some(rows), "{what}: table {table}");
    }
}

/// Apply `batches` in one transaction and commit; returns the fenced shards.
async fn apply_pg(c: &mut Client, batches: &[(ShardId, Epoch, &Batch)]) -> Vec<ShardId> {
    let tx = c.transaction().await.expect("begin");
    let fenced = conformance::apply_pg(&tx, batches)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", names(batches)));
    tx.commit().await.expect("commit");
    fenced
}

fn names(batches: &[(ShardId, Epoch, &Batch)]) -> Vec<&'static str> {
    batches.iter().map(|b| b.2.name()).collect()
}

fn apply_sqlite(conn: &mut rusqlite::Connection, batch: &Batch) {
    conformance::apply_sqlite(conn, batch).unwrap_or_else(|e| panic!("{}: {e}", batch.name()));
}

/// Empty every table ops write, and the task counter, between cases.
async fn reset_pg(c: &Client) {
    c.batch_execute(&format!(
        "TRUNCATE {} CASCADE; UPDATE hub_counters SET value = 0 WHERE name = 'tasks';",
        TABLES
            .iter()
            .filter(|t| **t != "hub_counters")
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .await
    .expect("reset");
}

#[tokio::test]
async fn postgres_writer_matches_sqlite() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    server.create_databases(&["apply"]);
    let config = pg::config_from_url(&server.url("apply"), &server.env()).expect("config");
    let pool = pg::pool(config, &PoolOptions::default()).expect("pool");
    migrate::run(&pool).await.expect("migrate");
    let mut c = pool.get().await.expect("connection");
    let c_b = pool.get().await.expect("connection b");
    let cols = columns(&c).await;
    let dir = tempfile::tempdir().expect("temp dir");

    // Node a holds shards 1, 7 and 8; the batches go under shard 1's epoch.
    let long = Duration::from_secs(60);
    let a = lease::register(&c, "a", "a:1", long, "standby")
        .await
        .expect("a");
    let b = lease::register(&c_b, "b", "b:1", long, "standby")
        .await
        .expect("b");
    let held = lease::acquire(&c, &a, &[ShardId(1)], long)
        .await
        .expect("acquire");
    let (shard, epoch) = held[0];

    let base = conformance::base();
    let cases = conformance::cases(&base);
    let mut covered = BTreeSet::new();
    for (n, case) in cases.iter().enumerate() {
        covered.extend(case.kinds());
        let what = case.name();
        reset_pg(&c).await;
        let mut lite = conformance::sqlite(&dir.path().join(format!("{n}.db"))).expect("sqlite");

        apply_sqlite(&mut lite, &base);
        assert!(apply_pg(&mut c, &[(shard, epoch, &base)]).await.is_empty());
        let before = dump_sqlite(&lite, &cols);
        assert_same(&dump_pg(&c, &cols).await, &before, &format!("{what}: base"));
        if n == 0 {
            // The whole history again: nothing changes, not even the task count.
            apply_pg(&mut c, &[(shard, epoch, &base)]).await;
            assert_same(&dump_pg(&c, &cols).await, &before, "base applied twice");
        }

        apply_sqlite(&mut lite, case);
        let once = dump_sqlite(&lite, &cols);
        let purged = case.purged();
        assert_ne!(once, before, "{what}: the batch changed nothing");
        apply_pg(&mut c, &[(shard, epoch, case)]).await;
        assert_same(&dump_pg(&c, &cols).await, &once, what);
        assert_eq!(case.purged(), purged, "{what}: purged");
        apply_pg(&mut c, &[(shard, epoch, case)]).await;
        // Applied again, a purge reports what that application deleted, as on
        // SQLite (not always 0: a batch that sends after its purge re-delivers).
        let purged_again = case.purged();
        apply_sqlite(&mut lite, case);
        assert_eq!(purged_again, case.purged(), "{what}: purged again");
        assert_same(
            &dump_pg(&c, &cols).await,
            &once,
            &format!("{what}, applied twice"),
        );
    }
    assert!(
        cases.iter().any(|c| !c.purged().is_empty()),
        "a purge was checked"
    );
    let all: BTreeSet<&str> = conformance::all_kinds().iter().copied().collect();
    assert_eq!(covered, all, "every op kind has a case");

    older_grant_applied_late(&mut c, (shard, epoch), &cols, &dir, &base).await;
    fenced_shard_writes_nothing(&mut c, &c_b, (&a, &b), &cols, &dir, (&base, &cases)).await;
    assert!(!server.log().contains("PANIC"), "{}", server.log());
}

/// An older lock grant applied after a newer one moves neither the lock nor its
/// fencing counter back, on PostgreSQL as on SQLite.
async fn older_grant_applied_late(
    c: &mut Client,
    (shard, epoch): (ShardId, Epoch),
    cols: &BTreeMap<&'static str, Vec<(String, Kind)>>,
    dir: &tempfile::TempDir,
    base: &Batch,
) {
    reset_pg(c).await;
    let mut lite = conformance::sqlite(&dir.path().join("late.db")).expect("sqlite");
    let [older, newer, late] = conformance::late_grant();
    for batch in [base, &older, &newer] {
        apply_sqlite(&mut lite, batch);
        apply_pg(c, &[(shard, epoch, batch)]).await;
    }
    let newest = dump_sqlite(&lite, cols);
    assert_same(&dump_pg(c, cols).await, &newest, "a newer grant");
    apply_pg(c, &[(shard, epoch, &late)]).await;
    assert_same(
        &dump_pg(c, cols).await,
        &newest,
        "an older grant applied late",
    );
}

/// a holds shards 7 and 8; b takes 7 over once a's lease lapses. a's next batch,
/// one case under each shard's old epoch, reports 7 fenced and stores exactly the
/// base and shard 8's case; a batch of shard 7 alone stores nothing.
async fn fenced_shard_writes_nothing(
    c: &mut Client,
    c_b: &Client,
    (a, b): (&pg::Member, &pg::Member),
    cols: &BTreeMap<&'static str, Vec<(String, Kind)>>,
    dir: &tempfile::TempDir,
    (base, cases): (&Batch, &[Batch]),
) {
    let ttl = Duration::from_millis(300);
    let tags = lease::acquire(&*c, a, &[ShardId(7), ShardId(8)], ttl)
        .await
        .expect("a acquires");
    assert_eq!(tags.len(), 2);
    let (s7, e7) = tags[0];
    let (s8, e8) = tags[1];
    reset_pg(c).await;
    assert!(apply_pg(c, &[(s8, e8, base)]).await.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stolen = lease::acquire(c_b, b, &[s7], Duration::from_secs(60))
        .await
        .expect("b steals");
    assert_eq!(stolen, vec![(s7, Epoch(e7.0 + 1))]);

    let by_name = |name: &str| -> &Batch {
        cases
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no case {name:?}"))
    };
    let lost = by_name("messages: a send, a broadcast, acks");
    let kept = by_name("the workflow of a task");
    let fenced = apply_pg(c, &[(s7, e7, lost), (s8, e8, kept)]).await;
    assert_eq!(fenced, vec![s7]);
    let mut lite = conformance::sqlite(&dir.path().join("fenced.db")).expect("sqlite");
    apply_sqlite(&mut lite, base);
    apply_sqlite(&mut lite, kept);
    let expected = dump_sqlite(&lite, cols);
    assert_same(
        &dump_pg(c, cols).await,
        &expected,
        "a batch with a fenced shard",
    );

    let fenced = apply_pg(c, &[(s7, e7, lost)]).await;
    assert_eq!(fenced, vec![s7]);
    assert_same(&dump_pg(c, cols).await, &expected, "a fenced batch");
}
