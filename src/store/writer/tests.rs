//! The writer thread: group commit, tickets, durability modes, failed commits.

use super::*;
use crate::store::Reads;

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
    let snap = load::load_open_work(&c, &crate::domain::shard::Shards::All).unwrap();
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
        load::load_open_work(&c, &crate::domain::shard::Shards::All)
            .unwrap()
            .agents[0]
            .last_heartbeat
            .as_deref(),
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

fn audit() -> Op {
    Op::Audit(crate::store::AuditRow::new(
        "x",
        ("x", "x"),
        "x",
        "{}".into(),
        chrono::Utc::now(),
    ))
}

/// A failed commit fails its writes and every later one (in either mode) until a
/// probe write succeeds and a new generation is adopted; ops of older handles are
/// then dropped, never written; reads go on throughout.
#[tokio::test]
async fn a_fault_refuses_writes_until_healed_and_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, _) = Store::open(&path, opts(Durability::Durable), &agents, "t0").unwrap();
    let ok = store.enqueue(heartbeat("a", "t1"));
    store.wait_durable(ok).await.unwrap();
    // A trigger makes every audit insert fail, as a full disk would: the batch
    // fails for good (retries included). The probe writes hub_meta, so it succeeds.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TRIGGER boom BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    let bad = store.enqueue(audit());
    assert!(matches!(
        store.wait_durable(bad).await,
        Err(StoreError::WriterFailed)
    ));
    assert!(matches!(store.write_health(), Err(StoreError::Refusing(_))));
    let later = store.enqueue(heartbeat("a", "t2"));
    assert!(matches!(
        store.wait_durable(later).await,
        Err(StoreError::WriterFailed)
    ));
    // Reads go on.
    let n: i64 = store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM agents", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The probe succeeds after about a second: healed, but still refusing until a
    // new generation is adopted.
    let mut progress = store.progress();
    progress.wait_for(|p| p.healed == 1).await.unwrap();
    let refused = store.enqueue(heartbeat("a", "t3"));
    assert!(store.wait_durable(refused).await.is_err());
    let next = store.next_generation();
    next.adopt();
    let stale = store.enqueue(heartbeat("a", "t4"));
    assert!(matches!(
        store.wait_durable(stale).await,
        Err(StoreError::Replaced)
    ));
    let fresh = next.enqueue(heartbeat("a", "t5"));
    next.wait_durable(fresh).await.unwrap();
    next.write_health().unwrap();
    assert!(matches!(store.write_health(), Err(StoreError::Replaced)));
    store.shutdown();
    // On disk: t1 and t5, never the failed t2/t3 or the dropped t4.
    let at: String = conn
        .query_row("SELECT last_heartbeat FROM agents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(at, "t5");
}

/// Fast mode answers writes at once, but not while writes are refused.
#[tokio::test]
async fn fast_mode_refuses_writes_during_a_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, _) = Store::open(&path, opts(Durability::Fast), &agents, "t0").unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TRIGGER boom BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    let bad = store.enqueue(audit());
    store.wait_durable(bad).await.unwrap(); // fast: answered before the commit
    assert!(matches!(
        store.wait_committed(bad).await,
        Err(StoreError::WriterFailed)
    ));
    let later = store.enqueue(heartbeat("a", "t2"));
    assert!(matches!(
        store.wait_durable(later).await,
        Err(StoreError::Refusing(_))
    ));
    store.shutdown();
}

#[test]
fn batches_respect_max_ops() {
    let (tx, rx) = mpsc::channel();
    for i in 0..10 {
        tx.send(Msg::Op(i, 0, 0, heartbeat("a", "t"))).unwrap();
    }
    let (b, control) = next_batch(&rx, 4, Duration::ZERO, None);
    assert_eq!((b.len(), control), (4, Control::None));
    tx.send(Msg::Adopt(3)).unwrap();
    tx.send(Msg::Shutdown).unwrap();
    let (b, control) = next_batch(&rx, 100, Duration::ZERO, None);
    assert_eq!((b.len(), control), (6, Control::Adopt(3)));
    let (b, control) = next_batch(&rx, 100, Duration::ZERO, None);
    assert_eq!((b.len(), control), (0, Control::Stop));
    let (_tx2, rx2) = mpsc::channel::<Msg>();
    let (b, control) = next_batch(&rx2, 100, Duration::ZERO, Some(Duration::from_millis(10)));
    assert_eq!((b.len(), control), (0, Control::Timeout));
}

/// A group's ops are never split between batches: what follows the last point
/// with no group open waits for the group's end, whatever `max_ops` says.
#[test]
fn batches_are_cut_only_where_no_group_is_open() {
    let (tx, rx) = mpsc::channel();
    let end = |g| Op::End {
        group: g,
        logged: None,
    };
    let send = |seq: u64, op: Op| tx.send(Msg::Op(seq, 0, 0, op)).unwrap();
    send(1, heartbeat("a", "t1"));
    send(2, Op::Begin(1));
    send(3, heartbeat("a", "t2"));
    send(4, Op::Begin(2));
    let mut batcher = Batcher::default();
    let seqs = |b: &[Queued]| b.iter().map(|q| q.0).collect::<Vec<_>>();
    let (b, control) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert_eq!((seqs(&b), control), (vec![1], Control::None));
    // Group 1 closes, group 2 is still open: nothing more may go.
    send(5, end(1));
    let (b, _) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert!(b.is_empty(), "{:?}", seqs(&b));
    send(6, heartbeat("a", "t3"));
    send(7, end(2));
    send(8, Op::Begin(3));
    // Beyond max_ops: the group is taken whole.
    let (b, _) = batcher.next(&rx, 2, Duration::ZERO, None);
    assert_eq!(seqs(&b), vec![2, 3, 4, 5, 6, 7]);
    send(9, end(3));
    let (b, _) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert_eq!(seqs(&b), vec![8, 9]);
    // A shutdown takes what is held, open or not.
    send(10, Op::Begin(4));
    let (b, _) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert!(b.is_empty());
    tx.send(Msg::Shutdown).unwrap();
    let (b, control) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert_eq!((seqs(&b), control), (vec![10], Control::Stop));
}

/// Held back for a moment, the writer closes the gate new groups wait at, and
/// opens it once it could commit everything.
#[test]
fn holding_ops_back_closes_the_gate_until_they_go() {
    let (tx, rx) = mpsc::channel();
    let mut batcher = Batcher::default();
    tx.send(Msg::Op(1, 0, 0, Op::Begin(1))).unwrap();
    let (b, _) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert!(b.is_empty());
    assert!(!batcher.gate.is_closed(), "not yet");
    std::thread::sleep(DRAIN_AFTER + Duration::from_millis(1));
    let (b, control) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert_eq!((b.len(), control), (0, Control::Timeout));
    assert!(batcher.gate.is_closed(), "held past DRAIN_AFTER");
    let end = Op::End {
        group: 1,
        logged: None,
    };
    tx.send(Msg::Op(2, 0, 0, end)).unwrap();
    let (b, _) = batcher.next(&rx, 100, Duration::ZERO, None);
    assert_eq!(b.len(), 2);
    assert!(!batcher.gate.is_closed(), "open again");
}

/// A database file deleted under the server is not "healed" into a new empty one:
/// writes are refused for good and what the server held is saved beside it.
#[tokio::test]
async fn a_deleted_database_is_saved_and_writes_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, _) = Store::open(&path, opts(Durability::Durable), &agents, "t0").unwrap();
    let ok = store.enqueue(heartbeat("a", "t1"));
    store.wait_durable(ok).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let after = store.enqueue(heartbeat("a", "t2"));
    assert!(store.wait_durable(after).await.is_err());
    let why = store.write_health().unwrap_err().to_string();
    assert!(
        why.contains("was deleted") && why.contains("recovered-"),
        "{why}"
    );
    let p = store.progress().borrow().clone();
    assert!(p.fatal);
    let saved: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hub.db.recovered-")
        })
        .collect();
    assert_eq!(saved.len(), 1, "{why}");
    let c = Connection::open(saved[0].path()).unwrap();
    let at: String = c
        .query_row("SELECT last_heartbeat FROM agents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(at, "t1");
    assert!(!path.exists(), "no new empty database was made");
    store.shutdown();
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

/// The seam for cluster mode: live state enters by shard (start-up, a shard taken
/// over) or by owner (one agent, one task), and each row is found by its owner's shard.
#[tokio::test]
async fn live_state_loads_by_shard_and_by_owner() {
    use crate::domain::lease::Lock;
    use crate::domain::message::Message;
    use crate::domain::shard::{shard_of, Shards};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    // Two agents in different shards.
    let (a, b) = ("agent-1", "agent-2");
    assert_ne!(shard_of(a), shard_of(b));
    let agents = vec![
        (a.to_string(), "h".to_string()),
        (b.to_string(), "h".to_string()),
    ];
    let (store, _) = Store::open(&path, opts(Durability::Durable), &agents, "t0").unwrap();
    let msg = |id: &str, to: &str| Op::MessageInsert {
        message: std::sync::Arc::new(Message {
            id: id.into(),
            dedupe_key: None,
            reply_to: None,
            from_agent: a.into(),
            to_agent: Some(to.into()),
            round_id: None,
            msg_type: "info".into(),
            subject: String::new(),
            body: "hi".into(),
            context_json: "{}".into(),
            hop_count: 0,
            created_at: "t1".into(),
        }),
        recipients: vec![to.into()],
    };
    store.enqueue(msg("m1", a));
    store.enqueue(msg("m2", b));
    let now = chrono::Utc::now();
    let last = store.enqueue(Op::LockUpsert {
        lock: Lock {
            id: "L".into(),
            lock_key: "branch:main".into(),
            holder_agent_id: a.into(),
            resource_type: "branch".into(),
            resource_id: String::new(),
            fencing_token: 1,
            expires_at: now + chrono::Duration::seconds(60),
            created_at: now,
        },
        renewed: false,
    });
    store.wait_durable(last).await.unwrap();

    let (row, mail) = store.load_agent(b).await.unwrap().unwrap();
    // The size is Message::pull_size of m2, computed by SQL: id, from, to,
    // msg_type, body, context_json, created_at and the overhead.
    let size = 2 + a.len() + b.len() + 4 + 2 + 2 + 2 + 200;
    let unread: Vec<_> = mail
        .unread
        .iter()
        .map(|u| (&*u.id, u.size, &*u.from))
        .collect();
    assert_eq!((row.id.as_str(), unread), (b, vec![("m2", size, a)]));
    assert!(store.load_agent("nobody").await.unwrap().is_none());

    let c = Connection::open(&path).unwrap();
    let only_a = load::load_open_work(&c, &Shards::Some(vec![shard_of(a)])).unwrap();
    let ids: Vec<&str> = only_a.agents.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec![a]);
    assert_eq!(only_a.mail.keys().collect::<Vec<_>>(), vec![a]);
    let lock_shard = shard_of("branch:main");
    assert_eq!(only_a.locks.len(), usize::from(lock_shard == shard_of(a)));
    let with_lock = load::load_open_work(&c, &Shards::Some(vec![lock_shard])).unwrap();
    assert_eq!(with_lock.locks.len(), 1);
    let all = load::load_open_work(&c, &Shards::All).unwrap();
    assert_eq!(
        (all.agents.len(), all.mail.len(), all.locks.len()),
        (2, 2, 1)
    );
    // Every row carries its owner's shard.
    let shard_in = |sql: &str| -> u16 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        shard_in("SELECT shard FROM message_recipients WHERE message_id = 'm2'"),
        shard_of(b).0
    );
    assert_eq!(
        shard_in("SELECT shard FROM messages WHERE id = 'm2'"),
        shard_of(a).0
    );
    assert_eq!(
        shard_in("SELECT shard FROM agents WHERE id = 'agent-2'"),
        shard_of(b).0
    );
    store.shutdown();
}

/// On an actix thread waiters go through the thread's relay: many waiters on one
/// thread all wake, each on its own ticket, and a ticket the closed store will never
/// commit is answered `Closed`.
#[actix_rt::test]
async fn waiters_on_an_actix_thread_wake_through_the_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.db");
    let agents = vec![("a".to_string(), "h".to_string())];
    let (store, _) = Store::open(&path, opts(Durability::Durable), &agents, "t0").unwrap();
    let store = Arc::new(store);
    let waiters: Vec<_> = (0..200)
        .map(|i| {
            let ticket = store.enqueue(heartbeat("a", &format!("t{i:03}")));
            let store = store.clone();
            actix_rt::spawn(async move { store.wait_durable(ticket).await })
        })
        .collect();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    assert!(relay::local(store.inner.id, &store.inner.progress).is_some());
    store.shutdown();
    let late = store.enqueue(heartbeat("a", "t999"));
    let waiter = {
        let store = store.clone();
        actix_rt::spawn(async move { store.wait_committed(late).await })
    };
    assert!(matches!(waiter.await.unwrap(), Err(StoreError::Closed)));
}
