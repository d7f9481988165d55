//! The conversion of a database written by agent-hub-mcp 0.2.1 itself
//! (tests/fixtures/agent-hub-mcp-0.2.1.db, made by make_reference_db.py): rows as
//! our loader reads them, the backup, and refusals.

use super::*;
use crate::domain::shard::Shards;
use crate::store::load;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/agent-hub-mcp-0.2.1.db"
);

fn agents() -> Vec<(String, String)> {
    ["disp", "alice", "bob"]
        .iter()
        .map(|a| (a.to_string(), "hash".to_string()))
        .collect()
}

/// A copy of the fixture in a temp dir, opened.
fn fixture() -> (tempfile::TempDir, PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old-hub.db");
    std::fs::copy(FIXTURE, &path).unwrap();
    let conn = Connection::open(&path).unwrap();
    (dir, path, conn)
}

fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn the_reference_database_is_detected_and_converted_once() {
    let (_dir, path, mut conn) = fixture();
    assert_eq!(detect(&conn).unwrap(), Kind::Reference);
    // Nothing else may open it unconverted.
    assert!(matches!(
        migrate::run(&mut conn, "t"),
        Err(StoreError::UnconvertedReference)
    ));
    let now = "2027-01-01T00:00:00.000000+00:00";
    let backup = convert_if_reference(&mut conn, &path, &agents(), now)
        .unwrap()
        .expect("converted");
    assert_eq!(
        backup,
        path.with_file_name("old-hub.db.agent-hub-mcp-0.2.1.bak")
    );
    assert_eq!(detect(&conn).unwrap(), Kind::Ours);
    migrate::run(&mut conn, now).unwrap();
    // The backup is the reference's database as it was.
    let copy = Connection::open(&backup).unwrap();
    assert_eq!(detect(&copy).unwrap(), Kind::Reference);
    let n: i64 = one(&copy, "SELECT COUNT(*) FROM messages");
    assert_eq!(n, one::<i64>(&conn, "SELECT COUNT(*) FROM messages"));
    // A second open converts nothing.
    assert!(convert_if_reference(&mut conn, &path, &agents(), now)
        .unwrap()
        .is_none());
}

#[test]
fn rows_read_as_ours() {
    let (_dir, path, mut conn) = fixture();
    let now = "2027-01-01T00:00:00.000000+00:00";
    convert_if_reference(&mut conn, &path, &agents(), now).unwrap();
    migrate::run(&mut conn, now).unwrap();
    load::sync_agents(&mut conn, &agents(), now).unwrap();
    let snap = load::load_open_work(&conn, &Shards::All).unwrap();
    assert_eq!(snap.task_count, 5);
    let mut open: Vec<(&str, &str)> = snap
        .tasks
        .iter()
        .map(|t| (t.task.id.as_str(), t.task.status.as_str()))
        .collect();
    open.sort();
    assert_eq!(
        open,
        [
            ("T-1", "dispatched"),
            ("T-2", "draft"),
            ("T-3", "awaiting_operator_approval")
        ]
    );
    // T-1: round 1 left awaiting review by the reference's changes_requested, round 2
    // in progress with alice's claim; the handoff's JSON text lists are lists.
    let t1 = snap.tasks.iter().find(|t| t.task.id == "T-1").unwrap();
    let rounds: Vec<(u32, &str)> = t1
        .rounds
        .iter()
        .map(|r| (r.round_number, r.status.as_str()))
        .collect();
    assert_eq!(rounds, [(1, "awaiting_review"), (2, "in_progress")]);
    assert!(t1.rounds[0].plan_json.contains("\"goal\":\"code\""));
    let h = t1
        .handoffs
        .iter()
        .find(|h| h.branch == "feat/parser")
        .unwrap();
    assert_eq!(h.changed_files, ["src/parser.py", "src/ast.py"]);
    assert_eq!(h.tests_run, ["pytest -q"]);
    assert_eq!(h.risks, ["none known"]);
    assert!(h.next_steps.is_empty());
    let t3 = snap.tasks.iter().find(|t| t.task.id == "T-3").unwrap();
    assert!(t3.rounds[0].rejected);
    assert_eq!(t3.rounds[0].operator_note.as_deref(), Some("too vague"));
    // T-5 was closed with bob's claim open: cancelled.
    let closed: String = one(
        &conn,
        "SELECT group_concat(status) FROM assignments WHERE root_task_id = 'T-5'",
    );
    assert_eq!(closed, "cancelled");
    // Inboxes: alice has welcome, fyi and the unread broadcast; disp the broadcast's
    // sender, has none of it.
    let unread = |a: &str| snap.mail.get(a).map_or(0, |m| m.unread.len());
    assert_eq!((unread("alice"), unread("bob"), unread("disp")), (3, 1, 0));
    // Locks: the held one with token 1 (the lapsed one is kept, for the manager).
    let held = snap
        .locks
        .iter()
        .find(|l| l.lock_key == "branch:main")
        .unwrap();
    assert_eq!(
        (held.holder_agent_id.as_str(), held.fencing_token),
        ("alice", 1)
    );
    // Every row got its owner's shard.
    let unsharded: i64 = one(
        &conn,
        "SELECT (SELECT COUNT(*) FROM root_tasks WHERE shard != hub_shard(id))
              + (SELECT COUNT(*) FROM message_recipients WHERE shard != hub_shard(agent_id))
              + (SELECT COUNT(*) FROM locks WHERE shard != hub_shard(lock_key))",
    );
    assert_eq!(unsharded, 0);
    let tasks: i64 = one(&conn, "SELECT value FROM hub_counters WHERE name = 'tasks'");
    assert_eq!(tasks, 5);
    // Audit ids are numbered 1..n in time order, the conversion's own event last,
    // and the hub's next ids come after them.
    let ids: String = one(
        &conn,
        "SELECT group_concat(id) FROM (SELECT id FROM audit_events ORDER BY created_at, id)",
    );
    let n: i64 = one(&conn, "SELECT COUNT(*) FROM audit_events");
    let expected: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected.join(","));
    let last: String = one(
        &conn,
        "SELECT event_type FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)",
    );
    assert_eq!(last, "converted_from_agent_hub_mcp");
    assert_eq!(snap.last_audit_id, n);
}

#[test]
fn a_second_backup_never_overwrites_the_first() {
    let (_dir, path, mut conn) = fixture();
    let first = path.with_file_name("old-hub.db.agent-hub-mcp-0.2.1.bak");
    std::fs::write(&first, b"earlier").unwrap();
    let backup = convert_if_reference(&mut conn, &path, &agents(), "2027-01-01T00:00:00+00:00")
        .unwrap()
        .unwrap();
    assert_eq!(
        backup,
        path.with_file_name("old-hub.db.agent-hub-mcp-0.2.1.bak.1")
    );
    assert_eq!(std::fs::read(&first).unwrap(), b"earlier");
}

#[test]
fn a_bad_row_leaves_the_database_as_it_was() {
    let (_dir, path, mut conn) = fixture();
    conn.execute("UPDATE locks SET expires_at = 'soon'", [])
        .unwrap();
    let e =
        convert_if_reference(&mut conn, &path, &agents(), "2027-01-01T00:00:00+00:00").unwrap_err();
    assert!(matches!(e, StoreError::Conversion { .. }), "{e}");
    assert!(e.to_string().contains("\"soon\" is not a timestamp"), "{e}");
    assert_eq!(detect(&conn).unwrap(), Kind::Reference);
    let n: i64 = one(&conn, "SELECT COUNT(*) FROM root_tasks");
    assert_eq!(n, 5);
    // An unknown status is refused before any backup.
    conn.execute(
        "UPDATE root_tasks SET status = 'weird' WHERE id = 'T-2'",
        [],
    )
    .unwrap();
    let e = convert_if_reference(&mut conn, &path, &agents(), "t").unwrap_err();
    assert!(e.to_string().contains("\"weird\""), "{e}");
    assert!(!path
        .with_file_name("old-hub.db.agent-hub-mcp-0.2.1.bak.1")
        .exists());
}

#[test]
fn part_of_the_reference_schema_is_refused() {
    let conn = Connection::open_in_memory().unwrap();
    assert_eq!(detect(&conn).unwrap(), Kind::Ours);
    conn.execute_batch("CREATE TABLE agents (id TEXT PRIMARY KEY)")
        .unwrap();
    assert!(matches!(detect(&conn), Err(StoreError::Corrupt(_))));
}
