//! The operator's paged reads and retention's reads on PostgreSQL against SQLite's
//! (`pg::conformance::reads_pages`): the same history written to both (the replay
//! tests' base, each case, and more history with pages of several rows, times
//! shared by several rows and ids a language collation orders differently), then
//! every read compared on every page of several limits, from forged cursors, with
//! each audit filter and at many cutoffs. Run on a database of the C collation and,
//! where the server has ICU, on one whose default collation is en-US (where only
//! `COLLATE "C"` keeps ids in SQLite's order). Skips, saying why, where PostgreSQL
//! is absent.

mod common;
use agent_hub::pg::conformance::{self, reads_pages, Batch};
use agent_hub::pg::{self, lease, migrate, Epoch, PoolOptions, ShardId};
use common::postgres::Postgres;
use deadpool_postgres::Client;
use std::collections::BTreeSet;
use std::time::Duration;

/// The tables ops write, emptied between cases.
const TABLES: &str = "agents, assignments, audit_events, handoffs, lock_fencing, locks,
    message_reads, message_recipients, messages, operator_approvals, root_tasks, rounds";

async fn reset_pg(c: &Client) {
    c.batch_execute(&format!(
        "TRUNCATE {TABLES} CASCADE; UPDATE hub_counters SET value = 0 WHERE name = 'tasks';"
    ))
    .await
    .expect("reset");
}

/// Apply `batches` in one transaction under shard 1's epoch and commit.
async fn apply_pg(c: &mut Client, tag: (ShardId, Epoch), batches: &[&Batch]) {
    let tx = c.transaction().await.expect("begin");
    for batch in batches {
        let fenced = conformance::apply_pg(&tx, &[(tag.0, tag.1, batch)])
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", batch.name()));
        assert!(fenced.is_empty(), "{}: fenced", batch.name());
    }
    tx.commit().await.expect("commit");
}

/// A migrated pool on database `db`, and a connection holding shard 1.
async fn connect(server: &Postgres, db: &str) -> (Client, (ShardId, Epoch)) {
    let config = pg::config_from_url(&server.url(db), &server.env()).expect("config");
    let pool = pg::pool(config, &PoolOptions::default()).expect("pool");
    migrate::run(&pool).await.expect("migrate");
    let c = pool.get().await.expect("connection");
    let long = Duration::from_secs(600);
    let me = lease::register(&c, "a", "a:1", long, "standby")
        .await
        .expect("register");
    let held = lease::acquire(&c, &me, &[ShardId(1)], long)
        .await
        .expect("acquire");
    (c, held[0])
}

/// Every scenario on `c`: base alone, then base, each case and more history. Returns
/// the reads that answered something.
async fn scenarios(
    c: &mut Client,
    tag: (ShardId, Epoch),
    dir: &std::path::Path,
    label: &str,
) -> BTreeSet<&'static str> {
    let base = conformance::base();
    let cases = conformance::cases(&base);
    let more = reads_pages::reads_history();
    let mut filled = BTreeSet::new();
    let mut plans: Vec<(String, Vec<&Batch>)> = vec![("base".into(), vec![&base])];
    for case in &cases {
        plans.push((case.name().to_string(), vec![&base, case, &more]));
    }
    for (n, (name, batches)) in plans.iter().enumerate() {
        reset_pg(c).await;
        let mut lite = conformance::sqlite(&dir.join(format!("{label}-{n}.db"))).expect("sqlite");
        for batch in batches {
            conformance::apply_sqlite(&mut lite, batch)
                .unwrap_or_else(|e| panic!("{}: {e}", batch.name()));
        }
        apply_pg(c, tag, batches).await;
        let report = reads_pages::compare(&lite, &*c).await;
        assert!(
            report.mismatches.is_empty(),
            "{label}, {name}: {} of {} reads differ; the first:\n{}",
            report.mismatches.len(),
            report.calls,
            report.mismatches[..report.mismatches.len().min(10)].join("\n")
        );
        println!("{label}, {name}: {} reads agree", report.calls);
        filled.extend(report.filled);
    }
    filled
}

fn assert_every_read_filled(filled: &BTreeSet<&'static str>, label: &str) {
    let all: BTreeSet<&str> = reads_pages::READS.iter().copied().collect();
    let empty: Vec<&&str> = all.difference(filled).collect();
    assert!(
        empty.is_empty(),
        "{label}: never a non-empty answer: {empty:?}"
    );
}

#[tokio::test]
async fn postgres_pages_match_sqlite() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    server.create_databases(&["pages"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut c, tag) = connect(&server, "pages").await;
    let filled = scenarios(&mut c, tag, dir.path(), "C collation").await;
    assert_every_read_filled(&filled, "C collation");

    // A database whose default collation is a language's: ids compared without
    // COLLATE "C" would order differently from SQLite's bytes.
    let icu = c
        .batch_execute(
            "CREATE DATABASE pages_icu TEMPLATE template0 ENCODING 'UTF8'
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
        )
        .await;
    match icu {
        Err(e) => println!("en-US collation not checked: {e}"),
        Ok(()) => {
            let (mut c, tag) = connect(&server, "pages_icu").await;
            let differs: bool = c
                .query_one("SELECT 'mB' > 'ma' AND 'a-b' > 'a_c'", &[])
                .await
                .expect("collation")
                .get(0);
            assert!(differs, "the en-US database orders text as bytes");
            let filled = scenarios(&mut c, tag, dir.path(), "en-US collation").await;
            assert_every_read_filled(&filled, "en-US collation");
        }
    }
    assert!(!server.log().contains("PANIC"), "{}", server.log());
}
