//! Reading back what the writer wrote: every scope, the id look-ups, corrupt rows.

use super::*;
use crate::domain::message::Message;
use crate::domain::task::{AssignmentStatus, RoundStatus, TaskStatus};
use crate::domain::time::Timestamp;
use crate::store::{apply::apply_batch, migrate, Op};
use std::sync::Arc;

/// A distinct timestamp per `n`, in order.
fn t(n: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap()
}

fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    // Orphan rows must be storable to check that they are left out.
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    migrate::run(&mut conn, "t0").unwrap();
    conn
}

fn task(id: &str, created_at: Timestamp) -> Task {
    Task {
        id: id.into(),
        title: format!("title of {id}"),
        description: "d".into(),
        status: TaskStatus::Dispatched,
        dispatcher_agent_id: "disp".into(),
        created_at,
        updated_at: t(9),
    }
}

fn round(id: &str, task_id: &str, round_number: u32) -> Round {
    Round {
        id: id.into(),
        task_id: task_id.into(),
        round_number,
        status: RoundStatus::AwaitingReview,
        plan_json: "{\"assignments\":[]}".into(),
        operator_note: Some("ok".into()),
        rejected: round_number == 2,
        review_verdict: None,
        review_note: Some("n".into()),
        created_at: t(1),
        updated_at: t(2),
    }
}

fn assignment() -> Assignment {
    Assignment {
        id: "A1".into(),
        round_id: "R1".into(),
        task_id: "T1".into(),
        agent_id: "alice".into(),
        goal: "g".into(),
        status: AssignmentStatus::Completed,
        progress_note: None,
        claimed_at: Some(t(4)),
        lease_expires_at: None,
        handoff_id: Some("H1".into()),
        created_at: t(1),
        updated_at: t(5),
        seq: 1,
    }
}

fn handoff() -> Handoff {
    Handoff {
        id: "H1".into(),
        assignment_id: "A1".into(),
        round_id: "R1".into(),
        task_id: "T1".into(),
        from_agent: "alice".into(),
        branch: "feat".into(),
        commit_hash: "abc".into(),
        changed_files: vec!["a.rs".into(), "b.rs".into()],
        tests_run: vec![],
        risks: vec!["r".into()],
        next_steps: vec![],
        notes: "n".into(),
        created_at: t(5),
    }
}

fn message(id: &str, from: &str, round_id: Option<&str>) -> Op {
    Op::MessageInsert {
        message: Arc::new(Message {
            id: id.into(),
            dedupe_key: None,
            reply_to: None,
            from_agent: from.into(),
            to_agent: Some("bob".into()),
            round_id: round_id.map(Into::into),
            msg_type: "note".into(),
            subject: "s".into(),
            body: "b".into(),
            context_json: "{}".into(),
            hop_count: 0,
            created_at: "t3".into(),
        }),
        recipients: vec!["bob".into()],
    }
}

#[test]
fn reads_back_what_apply_batch_wrote() {
    let mut conn = db();
    let (t1, t2) = (task("T1", t(2)), task("T2", t(1)));
    let (r1, r2) = (round("R1", "T1", 1), round("R2", "T1", 2));
    let (a, h) = (assignment(), handoff());
    let ops = vec![
        Op::TaskCreated(t1.clone()),
        Op::TaskCreated(t2.clone()),
        Op::RoundUpsert(r2.clone()),
        Op::RoundUpsert(r1.clone()),
        Op::RoundUpsert(round("R9", "gone", 1)),
        Op::AssignmentUpsert(a.clone()),
        Op::HandoffInsert(h.clone()),
        message("m1", "alice", Some("R1")),
        message("m2", "bob", Some("R2")),
        message("m3", "hub", Some("R1")),
        message("m4", "alice", None),
        // The budget is kept on the task (the TaskActor writes it as it counts).
        Op::TaskMessageCount {
            task_id: "T1".into(),
            count: 2,
        },
    ];
    let tx = conn.transaction().unwrap();
    apply_batch(&tx, &ops).unwrap();
    tx.commit().unwrap();
    let empty = |task| TaskState {
        task,
        rounds: vec![],
        assignments: vec![],
        handoffs: vec![],
        message_count: 0,
    };
    let full = TaskState {
        rounds: vec![r1, r2],
        assignments: vec![a],
        handoffs: vec![h],
        message_count: 2,
        ..empty(t1)
    };
    assert_eq!(
        load_tasks(&conn, Scope::All).unwrap(),
        vec![empty(t2.clone()), full.clone()]
    );
    // One task, with everything under it.
    assert_eq!(load_tasks(&conn, Scope::Task("T1")).unwrap(), vec![full]);
    assert!(load_tasks(&conn, Scope::Task("nope")).unwrap().is_empty());
    // Which task owns an id, without loading it.
    assert_eq!(
        owner_of(&conn, Owned::Round, "R2").unwrap().as_deref(),
        Some("T1")
    );
    assert_eq!(
        owner_of(&conn, Owned::Assignment, "A1").unwrap().as_deref(),
        Some("T1")
    );
    assert_eq!(
        owner_of(&conn, Owned::Handoff, "H1").unwrap().as_deref(),
        Some("T1")
    );
    assert_eq!(owner_of(&conn, Owned::Handoff, "H9").unwrap(), None);
    assert!(task_exists(&conn, "T2").unwrap() && !task_exists(&conn, "T3").unwrap());
    assert_eq!(count_tasks(&conn).unwrap(), 2);
    assert_eq!(assignments_of_agent(&conn, "alice", 5).unwrap().len(), 1);
    assert!(assignments_of_agent(&conn, "bob", 5).unwrap().is_empty());
}

/// Start-up loads only tasks with open work.
#[test]
fn the_open_scope_leaves_finished_tasks_out() {
    let mut conn = db();
    let mut done = task("T-done", t(1));
    done.status = TaskStatus::Completed;
    let mut closed = task("T-closed", t(2));
    closed.status = TaskStatus::Closed;
    let open = task("T-open", t(3));
    let ops = vec![
        Op::TaskCreated(done),
        Op::TaskCreated(closed),
        Op::TaskCreated(open.clone()),
        Op::RoundUpsert(round("R1", "T-done", 1)),
        Op::RoundUpsert(round("R2", "T-open", 1)),
    ];
    let tx = conn.transaction().unwrap();
    apply_batch(&tx, &ops).unwrap();
    tx.commit().unwrap();
    let loaded = load_tasks(&conn, Scope::Open(&crate::domain::shard::Shards::All)).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].task, open);
    assert_eq!(loaded[0].rounds.len(), 1);
    assert_eq!(loaded[0].rounds[0].id, "R2");
    assert_eq!(count_tasks(&conn).unwrap(), 3);
}

#[test]
fn an_unknown_status_is_corrupt() {
    let conn = db();
    conn.execute(
        "INSERT INTO rounds (id, root_task_id, round_number, status, created_at, updated_at)
         VALUES ('R1', 'T1', 1, 'bogus', 't', 't')",
        [],
    )
    .unwrap();
    let err = load_tasks(&conn, Scope::All).unwrap_err().to_string();
    assert!(err.contains("rounds has unknown status \"bogus\""), "{err}");
}
