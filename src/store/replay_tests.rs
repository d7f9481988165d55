//! Replay (cluster.md §3): a batch applied a second time, as after a commit whose
//! outcome was lost, a retried forward or a shard's new owner, leaves exactly the
//! state of applying it once. One batch per op kind, on a database that holds what
//! the batch acts on; every table compared whole.

use super::deliveries_tests::{ack, send};
use super::op::{AuditRow, LockGone, Op, Tally};
use super::{migrate, writer::commit_batch};
use crate::domain::lease::Lock;
use crate::domain::task::{HandoffDraft, Plan, PlanItem};
use crate::domain::time::{iso, Timestamp};
use crate::domain::workflow::{Ctx, Limits, TaskState};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::collections::BTreeSet;

fn at(s: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
}

fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate::run(&mut conn, "t0").unwrap();
    // As the writer's connection has it: a replay must not trip a foreign key.
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

fn commit(conn: &mut Connection, ops: &[Op]) {
    let ops: Vec<&Op> = ops.iter().collect();
    commit_batch(conn, &ops).unwrap();
}

/// Every row of every table (SQLite's own `sqlite_sequence` too), its values as
/// text, the rows sorted: contents only, whatever their rowids.
fn dump(conn: &Connection) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let cells: Vec<String> = (0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            ValueRef::Null => "NULL".to_string(),
                            ValueRef::Integer(v) => v.to_string(),
                            ValueRef::Real(v) => v.to_string(),
                            ValueRef::Text(v) | ValueRef::Blob(v) => {
                                format!("{:?}", String::from_utf8_lossy(v))
                            }
                        })
                        .collect();
                    Ok(cells.join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            (t, rows)
        })
        .collect()
}

/// `now` must equal `then`, table by table (the first table that differs is named).
fn assert_same(now: &[(String, Vec<String>)], then: &[(String, Vec<String>)], what: &str) {
    for ((table, rows), (_, old)) in now.iter().zip(then) {
        assert_eq!(rows, old, "{what}: table {table}");
    }
    assert_eq!(now.len(), then.len(), "{what}: tables");
}

/// The kind of an op. A new kind: add its arm, add it to [`KINDS`], and give it a
/// case in [`cases`].
fn kind(op: &Op) -> &'static str {
    match op {
        Op::AgentRegister { .. } => "AgentRegister",
        Op::AgentsSync { .. } => "AgentsSync",
        Op::AgentHeartbeat { .. } => "AgentHeartbeat",
        Op::MessageInsert { .. } => "MessageInsert",
        Op::MessageAck { .. } => "MessageAck",
        Op::DeliveriesPurge { .. } => "DeliveriesPurge",
        Op::TaskUpsert(_) => "TaskUpsert",
        Op::RoundUpsert(_) => "RoundUpsert",
        Op::AssignmentUpsert(_) => "AssignmentUpsert",
        Op::TaskCreated(_) => "TaskCreated",
        Op::TaskMessageCount { .. } => "TaskMessageCount",
        Op::AssignmentDelete { .. } => "AssignmentDelete",
        Op::HandoffInsert(_) => "HandoffInsert",
        Op::Approval { .. } => "Approval",
        Op::LockUpsert { .. } => "LockUpsert",
        Op::LockDelete { .. } => "LockDelete",
        Op::Mark => "Mark",
        Op::Vacuum { .. } => "Vacuum",
        Op::PruneMessages(_) => "PruneMessages",
        Op::PruneTasks(_) => "PruneTasks",
        Op::PruneAudit(_) => "PruneAudit",
        Op::Audit(_) => "Audit",
    }
}

const KINDS: &[&str] = &[
    "AgentRegister",
    "AgentsSync",
    "AgentHeartbeat",
    "MessageInsert",
    "MessageAck",
    "DeliveriesPurge",
    "TaskUpsert",
    "RoundUpsert",
    "AssignmentUpsert",
    "TaskCreated",
    "TaskMessageCount",
    "AssignmentDelete",
    "HandoffInsert",
    "Approval",
    "LockUpsert",
    "LockDelete",
    "Mark",
    "Vacuum",
    "PruneMessages",
    "PruneTasks",
    "PruneAudit",
    "Audit",
];

/// Task `id` of dispatcher `disp` driven through the real transitions: a plan of
/// two assignments (alice, bob), approved, alice's claimed and completed with a
/// handoff. Returns the task and its round's id.
fn worked_task(id: &str) -> (TaskState, String) {
    let limits = Limits {
        max_rounds: 3,
        max_assignments_per_round: 5,
        max_messages_per_task: 100,
        lease: chrono::Duration::minutes(30),
    };
    let mut n = 0;
    let mut ids = || {
        n += 1;
        format!("{id}-{n}")
    };
    let mut s = TaskState::new(id, "title", "d", "disp", at(0));
    let items: Vec<PlanItem> = ["alice", "bob"]
        .iter()
        .map(|a| PlanItem {
            agent_id: a.to_string(),
            goal: format!("goal of {a}"),
        })
        .collect();
    let json = serde_json::json!({ "assignments": items }).to_string();
    let plan = Plan { items, json };
    let mut cx = Ctx {
        now: at(1),
        limits: &limits,
        ids: &mut ids,
    };
    let (round, _) = s.submit_plan(&mut cx, "disp", &plan, &|_| true).unwrap();
    s.approve(&round, "ok", at(2)).unwrap();
    let alice = s.assignments[0].id.clone();
    s.claim("alice", &alice, at(3), &limits).unwrap();
    let draft = HandoffDraft {
        branch: "feat".into(),
        commit_hash: "abc".into(),
        changed_files: vec!["a.rs".into()],
        tests_run: vec!["cargo test".into()],
        risks: vec![],
        next_steps: vec![],
        notes: "done".into(),
    };
    cx.now = at(4);
    s.complete(&mut cx, "alice", &alice, draft).unwrap();
    (s, round)
}

/// Every row of `s`, as the task actor writes them.
fn rows_of(s: &TaskState, round: &str) -> Vec<Op> {
    let mut ops = vec![
        Op::TaskCreated(s.task.clone()),
        Op::TaskUpsert(s.task.clone()),
    ];
    ops.extend(s.rounds.iter().cloned().map(Op::RoundUpsert));
    ops.extend(s.assignments.iter().cloned().map(Op::AssignmentUpsert));
    ops.extend(s.handoffs.iter().cloned().map(Op::HandoffInsert));
    ops.push(approval(&s.task.id, round));
    ops
}

fn approval(task: &str, round: &str) -> Op {
    Op::Approval {
        id: format!("{round}-approval"),
        task_id: task.into(),
        round_id: round.into(),
        action: "approve".into(),
        note: "ok".into(),
        at: iso(at(2)),
    }
}

fn audit(entity: &str, s: i64) -> AuditRow {
    AuditRow::new(
        "round_approved",
        ("task", entity),
        "operator",
        "{}".into(),
        at(s),
    )
}

fn lock(id: &str, holder: &str, token: u64, expires: i64) -> Lock {
    Lock {
        id: id.into(),
        lock_key: "branch:main".into(),
        holder_agent_id: holder.into(),
        resource_type: "branch".into(),
        resource_id: "main".into(),
        fencing_token: token,
        expires_at: at(expires),
        created_at: at(0),
    }
}

fn grant(l: Lock) -> Op {
    Op::LockUpsert {
        lock: l,
        renewed: false,
    }
}

/// The agents, a worked task, messages and a lock: what the batches act on.
fn base() -> Vec<Op> {
    let agents = ["alice", "bob", "disp"]
        .iter()
        .map(|a| (a.to_string(), format!("hash-{a}")))
        .collect();
    let (t1, r1) = worked_task("T1");
    let mut ops = vec![Op::AgentsSync {
        agents,
        at: iso(at(0)),
    }];
    ops.extend(rows_of(&t1, &r1));
    ops.push(send("m1", "alice", &["bob"], 1));
    ops.push(send("m2", "disp", &["alice", "bob"], 2));
    ops.push(grant(lock("L1", "alice", 1, 60)));
    ops.push(Op::Audit(audit("T1", 2)));
    ops
}

/// (what a case is about, the batch applied twice) on `base` (made by [`base`]).
fn cases(base: &[Op]) -> Vec<(&'static str, Vec<Op>)> {
    let (t1, r1) = worked_task("T1");
    let mut t1_later = t1.task.clone();
    t1_later.title = "renamed".into();
    t1_later.updated_at = at(9);
    let mut round_later = t1.rounds[0].clone();
    round_later.operator_note = Some("again".into());
    let mut bob_noted = t1.assignments[1].clone();
    bob_noted.progress_note = Some("on it".into());
    let mut revised = t1.assignments[1].clone();
    revised.id = "T1-revised".into();
    revised.goal = "another goal".into();
    revised.seq = 3;
    let (t2, r2) = worked_task("T2");
    let base_audit: Vec<i64> = base
        .iter()
        .filter_map(|op| match op {
            Op::Audit(row) => Some(row.id),
            _ => None,
        })
        .collect();
    vec![
        (
            "agents",
            vec![
                Op::AgentRegister {
                    id: "alice".into(),
                    name: "Alice".into(),
                    capabilities_json: "[\"rust\"]".into(),
                    at: iso(at(5)),
                },
                Op::AgentHeartbeat {
                    id: "bob".into(),
                    at: iso(at(5)),
                },
                Op::AgentHeartbeat {
                    id: "bob".into(),
                    at: iso(at(6)),
                },
                Op::AgentsSync {
                    agents: vec![("alice".into(), "new".into()), ("carol".into(), "c".into())],
                    at: iso(at(6)),
                },
            ],
        ),
        (
            "messages: a send, a broadcast, acks",
            vec![
                send("m3", "bob", &["alice"], 5),
                send("m4", "alice", &["bob", "disp"], 6),
                ack("bob", "m1"),
                ack("bob", "m4"),
            ],
        ),
        (
            "a purge between sends",
            vec![
                send("m3", "alice", &["bob"], 5),
                Op::DeliveriesPurge {
                    agent: "bob".into(),
                    from: Some("alice".into()),
                    deleted: Tally::default(),
                },
                send("m4", "alice", &["bob"], 6),
            ],
        ),
        (
            "the workflow of a task",
            vec![
                Op::TaskUpsert(t1_later),
                Op::RoundUpsert(round_later),
                Op::AssignmentUpsert(bob_noted),
                Op::TaskMessageCount {
                    task_id: "T1".into(),
                    count: 3,
                },
                Op::Audit(audit("T1", 7)),
            ],
        ),
        ("a new task, counted once", rows_of(&t2, &r2)),
        (
            "a revised plan",
            vec![
                Op::AssignmentDelete {
                    id: t1.assignments[1].id.clone(),
                },
                Op::AssignmentUpsert(revised),
                approval("T1", &r1),
                Op::HandoffInsert(t1.handoffs[0].clone()),
            ],
        ),
        (
            "locks: release, grants, renewal, expiry",
            vec![
                Op::LockDelete {
                    key: "branch:main".into(),
                    id: "L1".into(),
                    holder: "alice".into(),
                    why: LockGone::Released,
                },
                grant(lock("L2", "bob", 2, 60)),
                Op::LockUpsert {
                    lock: lock("L2", "bob", 2, 90),
                    renewed: true,
                },
                Op::LockDelete {
                    key: "branch:main".into(),
                    id: "L2".into(),
                    holder: "bob".into(),
                    why: LockGone::Expired,
                },
                grant(lock("L3", "disp", 3, 60)),
            ],
        ),
        (
            "retention",
            vec![
                ack("bob", "m1"),
                Op::PruneMessages(vec!["m1".into()]),
                Op::PruneTasks(vec!["T1".into()]),
                Op::PruneAudit(base_audit),
                Op::Mark,
                Op::Vacuum { full: false },
            ],
        ),
    ]
}

#[test]
fn every_op_applied_twice_leaves_the_state_of_once() {
    let base = base();
    let mut covered = BTreeSet::new();
    for (what, batch) in cases(&base) {
        covered.extend(batch.iter().map(kind));
        let mut conn = db();
        commit(&mut conn, &base);
        let before = dump(&conn);
        commit(&mut conn, &batch);
        let once = dump(&conn);
        assert_ne!(once, before, "{what}: the batch changed nothing");
        commit(&mut conn, &batch);
        assert_same(&dump(&conn), &once, &format!("{what}, applied twice"));
    }
    let all: BTreeSet<&str> = KINDS.iter().copied().collect();
    assert_eq!(covered, all, "every op kind has a case");
}

/// The whole base history, applied again over itself (a new owner re-applying
/// what it cannot tell was committed): nothing changes, not even the task count.
#[test]
fn a_whole_history_applied_twice_is_the_same_history() {
    let base = base();
    let mut conn = db();
    commit(&mut conn, &base);
    let once = dump(&conn);
    commit(&mut conn, &base);
    assert_same(&dump(&conn), &once, "the base history");
    assert_eq!(super::load_tasks::count_tasks(&conn).unwrap(), 1);
}

/// A purge applied again reports what it deleted itself: nothing more, once the
/// first application is committed. The count the caller reads is the one of the
/// application its ticket was committed with.
#[test]
fn a_replayed_purge_deletes_nothing_more() {
    let mut conn = db();
    commit(&mut conn, &base());
    let deleted = Tally::default();
    let purge = [Op::DeliveriesPurge {
        agent: "bob".into(),
        from: None,
        deleted: deleted.clone(),
    }];
    commit(&mut conn, &purge);
    assert_eq!(deleted.get(), 2);
    commit(&mut conn, &purge);
    assert_eq!(deleted.get(), 0);
}

/// A grant replayed after a newer holder's: the lock stays the newer holder's and
/// no fencing counter goes back.
#[test]
fn an_older_grant_replayed_late_changes_no_lock() {
    let mut conn = db();
    commit(&mut conn, &base());
    let older = [
        Op::LockDelete {
            key: "branch:main".into(),
            id: "L1".into(),
            holder: "alice".into(),
            why: LockGone::Expired,
        },
        grant(lock("L2", "bob", 2, 60)),
    ];
    commit(&mut conn, &older);
    commit(&mut conn, &[grant(lock("L3", "disp", 3, 120))]);
    let newest = dump(&conn);
    commit(&mut conn, &older[1..]);
    assert_same(&dump(&conn), &newest, "an older grant");
    let (holder, token, last): (String, i64, i64) = conn
        .query_row(
            "SELECT l.holder_agent_id, l.fencing_token, f.last_token
             FROM locks l JOIN lock_fencing f ON f.lock_key = l.lock_key",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((holder.as_str(), token, last), ("disp", 3, 3));
}
