//! The PostgreSQL activation and messaging reads against SQLite's: for the base
//! history of the replay tests and for it followed by each case batch (every op
//! kind), both databases are written the same history (SQLite through the
//! single-node writer's commit, PostgreSQL through `pg::conformance::apply_pg`),
//! then every read (`load_open_work`, `load_agent`, `load_tasks`, `owner_of`, ...,
//! `messages_by_id`) is asked the same questions of both through
//! `pg::conformance::reads_activation` (every stored id and a missing one, every
//! shard, a subset of them, none, and a shard holding nothing) and the answers
//! must be equal; so must the state `sync_agents` leaves. All of it twice: on a
//! database in byte order (the `C` locale) and on one collated by ICU's `en-US`,
//! where an ORDER BY on text without `COLLATE "C"` would differ from SQLite's. The last history adds
//! `reads_activation::edge_history` (ties, non-ASCII sizes, several handoffs and
//! locks, a finished task, microseconds), and `sync_agents` runs on it. Each read must have
//! given a non-empty answer at least once, so that the test cannot pass on empty
//! databases. Skips, saying why, where PostgreSQL is absent.

mod common;
use agent_hub::pg::conformance::reads_activation::{self as reads, Compared, Probe};
use agent_hub::pg::conformance::{self, Batch};
use agent_hub::pg::{self, lease, migrate, Epoch, PoolOptions, ShardId};
use common::postgres::Postgres;
use deadpool_postgres::Client;
use std::collections::BTreeSet;
use std::time::Duration;

/// Every read (and part of a snapshot) that must have answered non-empty.
const READS: [&str; 20] = [
    "load_open_work.agents",
    "load_open_work.mail",
    "load_open_work.tasks",
    "load_open_work.task_count",
    "load_open_work.locks",
    "load_open_work.last_audit_id",
    "load_tasks(Open)",
    "load_tasks(Task)",
    "last_audit_id",
    "count_tasks",
    "fencing_counter",
    "task_exists",
    "owner_of",
    "load_agent",
    "assignments_of_agent",
    "dedupe_original",
    "sent_or_received",
    "received_of",
    "messages_by_id",
    "sync_agents",
];

/// The tables ops write, emptied between histories.
const TABLES: [&str; 12] = [
    "agents",
    "assignments",
    "audit_events",
    "handoffs",
    "lock_fencing",
    "locks",
    "message_reads",
    "message_recipients",
    "messages",
    "operator_approvals",
    "root_tasks",
    "rounds",
];

async fn reset_pg(c: &Client) {
    c.batch_execute(&format!(
        "TRUNCATE {} CASCADE; UPDATE hub_counters SET value = 0 WHERE name = 'tasks';",
        TABLES.join(", ")
    ))
    .await
    .expect("reset");
}

async fn apply_pg(c: &mut Client, tag: (ShardId, Epoch), batch: &Batch) {
    let tx = c.transaction().await.expect("begin");
    let fenced = conformance::apply_pg(&tx, &[(tag.0, tag.1, batch)])
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", batch.name()));
    assert!(fenced.is_empty(), "{}: fenced", batch.name());
    tx.commit().await.expect("commit");
}

/// The strings of `sql`'s first column on SQLite.
fn strings(lite: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = lite.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Every id stored in `lite` plus a missing one of each kind; shard sets: all, the
/// stored rows' shards, every other of them, none, and one holding nothing.
fn probe_of(lite: &rusqlite::Connection) -> Probe {
    let with_missing = |sql: &str, missing: &str| {
        let mut v = strings(lite, sql);
        v.push(missing.to_string());
        v
    };
    let stored: BTreeSet<u16> = strings(
        lite,
        "SELECT CAST(shard AS TEXT) FROM agents UNION SELECT CAST(shard AS TEXT) FROM root_tasks
         UNION SELECT CAST(shard AS TEXT) FROM locks
         UNION SELECT CAST(shard AS TEXT) FROM message_recipients",
    )
    .iter()
    .map(|s| s.parse().expect("a shard number"))
    .collect();
    let stored: Vec<ShardId> = stored.into_iter().map(ShardId).collect();
    let half: Vec<ShardId> = stored.iter().copied().step_by(2).collect();
    let empty = (0..1024)
        .map(ShardId)
        .find(|s| !stored.contains(s))
        .expect("a shard holding nothing");
    Probe {
        shards: vec![
            None,
            Some(stored.clone()),
            Some(half),
            Some(Vec::new()),
            Some(vec![empty]),
        ],
        agents: with_missing(
            "SELECT id FROM agents UNION SELECT from_agent FROM messages ORDER BY 1",
            "nobody",
        ),
        tasks: with_missing("SELECT id FROM root_tasks ORDER BY 1", "no-such-task"),
        owned: with_missing(
            "SELECT id FROM rounds UNION SELECT id FROM assignments UNION SELECT id FROM handoffs
             ORDER BY 1",
            "no-such-id",
        ),
        lock_keys: with_missing(
            "SELECT lock_key FROM lock_fencing UNION SELECT lock_key FROM locks ORDER BY 1",
            "no-such-key",
        ),
        messages: with_missing("SELECT id FROM messages ORDER BY 1", "no-such-message"),
        dedupe_keys: with_missing(
            "SELECT dedupe_key FROM messages WHERE dedupe_key IS NOT NULL ORDER BY 1",
            "no-such-key",
        ),
        limits: vec![0, 1, 100],
    }
}

fn assert_none(got: &Compared, what: &str) {
    assert!(
        got.mismatches.is_empty(),
        "{what}: {} mismatches:\n{}",
        got.mismatches.len(),
        got.mismatches.join("\n")
    );
}

/// A database with a collation other than byte order (ICU's `en-US`: lower case
/// first, punctuation ignored at first), where reads ordered without `COLLATE "C"`
/// would differ from SQLite's; the error if the server cannot make one.
async fn icu_database(c: &Client, name: &str) -> Result<(), String> {
    c.batch_execute(&format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
    ))
    .await
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn postgres_activation_reads_match_sqlite() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    server.create_databases(&["reads"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    let mut calls = 0;
    let pool_of = |db: &str| {
        let config = pg::config_from_url(&server.url(db), &server.env()).expect("config");
        pg::pool(config, &PoolOptions::default()).expect("pool")
    };
    let pool = pool_of("reads");
    calls += compare_all(&pool, dir.path(), "C", &mut seen).await;
    let c = pool.get().await.expect("connection");
    match icu_database(&c, "reads_icu").await {
        Ok(()) => {
            let icu = pool_of("reads_icu");
            calls += compare_all(&icu, dir.path(), "ICU en-US", &mut seen).await;
        }
        Err(why) => println!("no ICU database ({why}): byte-order collation only"),
    }

    let missing: Vec<&str> = READS
        .iter()
        .copied()
        .filter(|r| !seen.contains(r))
        .collect();
    assert!(missing.is_empty(), "never answered non-empty: {missing:?}");
    assert!(calls > 500, "only {calls} questions asked");
    println!("{calls} questions asked of both");
    assert!(!server.log().contains("PANIC"), "{}", server.log());
}

/// Every history written to a fresh SQLite database and to `pool`'s (migrated
/// here), the reads compared after each, then `sync_agents` on the last; returns
/// how many questions were asked, the reads that answered non-empty in `seen`.
async fn compare_all(
    pool: &pg::Pool,
    dir: &std::path::Path,
    collation: &str,
    seen: &mut BTreeSet<&'static str>,
) -> usize {
    migrate::run(pool).await.expect("migrate");
    let mut c = pool.get().await.expect("connection");
    let long = Duration::from_secs(60);
    let a = lease::register(&c, "a", "a:1", long, "standby")
        .await
        .expect("a");
    let held = lease::acquire(&c, &a, &[ShardId(1)], long)
        .await
        .expect("acquire");
    let tag = held[0];

    let base = conformance::base();
    let cases = conformance::cases(&base);
    let edges = reads::edge_history();
    let histories: Vec<Option<&Batch>> = std::iter::once(None)
        .chain(cases.iter().map(Some))
        .chain(std::iter::once(Some(&edges)))
        .collect();
    let mut calls = 0;
    let mut last = None;
    for (n, case) in histories.iter().enumerate() {
        let what = format!("{collation}: {}", case.map_or("base", |c| c.name()));
        reset_pg(&c).await;
        let file = dir.join(format!("{collation}-{n}.db"));
        let mut lite = conformance::sqlite(&file).expect("sqlite");
        conformance::apply_sqlite(&mut lite, &base).expect("base on SQLite");
        apply_pg(&mut c, tag, &base).await;
        if let Some(case) = case {
            conformance::apply_sqlite(&mut lite, case)
                .unwrap_or_else(|e| panic!("{what} on SQLite: {e}"));
            apply_pg(&mut c, tag, case).await;
        }
        let probe = probe_of(&lite);
        let got = reads::compare_reads(&lite, &mut c, &probe).await;
        assert_none(&got, &what);
        calls += got.calls;
        seen.extend(got.non_empty);
        last = Some((lite, probe));
    }

    // sync_agents on the last history: one agent kept, one new, the rest dropped.
    let (mut lite, probe) = last.expect("a history");
    let agents = vec![
        ("alice".to_string(), "hash-2".to_string()),
        ("zed".to_string(), "hash-z".to_string()),
    ];
    let now = "2026-02-01T00:00:00.000000+00:00";
    let got = reads::compare_sync_agents(&mut lite, &mut c, &agents, now, &probe).await;
    assert_none(&got, &format!("{collation}: sync_agents"));
    seen.extend(got.non_empty);
    calls + got.calls
}
