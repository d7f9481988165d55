//! The writer thread: group commit, tickets, durability modes, failed commits.

use super::*;

fn opts(d: Durability) -> StoreOptions {
    StoreOptions {
        durability: d,
        max_ops: 64,
        window: Duration::ZERO,
    }
}

fn heartbeat(id: &str, at: &str) -> Op {
    Op::AgentHeartbeat {
        id: id.into(),
        at: at.into(),
    }
}

#[tokio::test]
async fn durable_write_is_committed_before_wait_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db/hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, snap) = Store::open(&path, opts(Durability::Durable), &agents, "t0").unwrap();
    assert_eq!(snap.agents.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
    assert_eq!(snap.agents[0].name, "a");
    let t1 = store.enqueue(Op::AgentRegister {
        id: "a".into(),
        name: "Alice".into(),
        capabilities_json: "[\"x\"]".into(),
        at: "t1".into(),
    });
    let t2 = store.enqueue(heartbeat("a", "t2"));
    let t3 = store.enqueue(heartbeat("a", "t3"));
    assert!(t1 < t2 && t2 < t3);
    store.wait_durable(t3).await.unwrap();
    assert!(store.committed() >= t3.0);
    // Read through a second connection: what a restarted server would see.
    let c = Connection::open(&path).unwrap();
    let snap = load::load(&c).unwrap();
    assert_eq!(snap.agents[0].name, "Alice");
    assert_eq!(snap.agents[0].capabilities, vec!["x"]);
    assert_eq!(snap.agents[0].last_heartbeat.as_deref(), Some("t3"));
    store.shutdown();
    // After shutdown a new write can never become durable; waiting says so.
    let t4 = store.enqueue(heartbeat("a", "t4"));
    assert!(matches!(
        store.wait_committed(t4).await,
        Err(StoreError::Closed)
    ));
}

#[tokio::test]
async fn shutdown_flushes_fast_mode_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, _) = Store::open(&path, opts(Durability::Fast), &agents, "t0").unwrap();
    let mut last = Ticket::NONE;
    for i in 0..500 {
        last = store.enqueue(heartbeat("a", &format!("t{i:03}")));
    }
    store.wait_durable(last).await.unwrap(); // fast: immediate
    store.shutdown();
    assert_eq!(store.committed(), last.0);
    let c = Connection::open(&path).unwrap();
    assert_eq!(
        load::load(&c).unwrap().agents[0].last_heartbeat.as_deref(),
        Some("t499")
    );
}

#[test]
fn agents_removed_from_env_become_inactive() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let two = vec![
        ("a".to_string(), "h".to_string()),
        ("b".to_string(), "h2".to_string()),
    ];
    let (s, snap) = Store::open(&path, opts(Durability::Durable), &two, "t0").unwrap();
    assert_eq!(snap.agents.len(), 2);
    s.shutdown();
    let (s, snap) = Store::open(&path, opts(Durability::Durable), &two[..1], "t1").unwrap();
    assert_eq!(snap.agents.len(), 1);
    s.shutdown();
}

#[tokio::test]
async fn a_failed_commit_fails_its_writes_and_every_later_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, _) = Store::open(&path, opts(Durability::Durable), &agents, "t0").unwrap();
    let ok = store.enqueue(heartbeat("a", "t1"));
    store.wait_durable(ok).await.unwrap();
    // A trigger makes every audit insert fail, as a full disk would: the batch
    // fails for good (retries included).
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TRIGGER boom BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    drop(conn);
    let bad = store.enqueue(Op::Audit {
        event_type: "x".into(),
        entity_type: "x".into(),
        entity_id: "x".into(),
        actor: "x".into(),
        payload_json: "{}".into(),
        at: "t".into(),
    });
    assert!(matches!(
        store.wait_durable(bad).await,
        Err(StoreError::WriterFailed)
    ));
    let later = store.enqueue(heartbeat("a", "t2"));
    assert!(matches!(
        store.wait_durable(later).await,
        Err(StoreError::WriterFailed)
    ));
    assert_eq!(
        store.committed(),
        ok.0,
        "nothing after the failure was committed"
    );
    assert_eq!(store.barrier(), later);
    store.shutdown();
}

#[test]
fn batches_respect_max_ops() {
    let (tx, rx) = mpsc::channel();
    for i in 0..10 {
        tx.send(Msg::Op(i, heartbeat("a", "t"))).unwrap();
    }
    let (b, stop) = next_batch(&rx, 4, Duration::ZERO);
    assert_eq!((b.len(), stop), (4, false));
    tx.send(Msg::Shutdown).unwrap();
    let (b, stop) = next_batch(&rx, 100, Duration::ZERO);
    assert_eq!((b.len(), stop), (6, true));
}

/// A new database can give deleted pages back without a rewrite; vacuum ops run
/// after their batch's transaction and lose nothing.
#[test]
fn new_databases_vacuum_incrementally() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let (store, _) = Store::open(&path, opts(Durability::Durable), &[], "t").unwrap();
    store.enqueue(Op::Vacuum { full: false });
    let last = store.enqueue(Op::Vacuum { full: true });
    store.shutdown();
    assert!(store.committed() >= last.0);
    let conn = Connection::open(&path).unwrap();
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "INCREMENTAL");
}
