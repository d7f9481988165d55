//! Start-up loading of the task workflow: every task with its rounds, assignments,
//! handoffs and its count of agent messages.

use super::StoreError;
use crate::domain::task::{
    Assignment, AssignmentStatus, Handoff, Round, RoundStatus, Task, TaskStatus,
};
use crate::domain::workflow::TaskState;
use rusqlite::Connection;
use std::collections::HashMap;

fn bad_status(table: &str, s: &str) -> StoreError {
    StoreError::Corrupt(format!("{table} has unknown status {s:?}"))
}

fn list(s: String) -> Vec<String> {
    serde_json::from_str(&s).unwrap_or_default()
}

pub fn load_tasks(conn: &Connection) -> Result<Vec<TaskState>, StoreError> {
    let mut tasks: Vec<TaskState> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT id, title, description, status, dispatcher_agent_id, created_at, updated_at
         FROM root_tasks ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    for row in rows {
        let (id, title, description, status, dispatcher, created_at, updated_at) = row?;
        let status = TaskStatus::parse(&status).ok_or_else(|| bad_status("root_tasks", &status))?;
        index.insert(id.clone(), tasks.len());
        tasks.push(TaskState {
            task: Task {
                id,
                title,
                description,
                status,
                dispatcher_agent_id: dispatcher,
                created_at,
                updated_at,
            },
            rounds: Vec::new(),
            assignments: Vec::new(),
            handoffs: Vec::new(),
            message_count: 0,
        });
    }

    let mut stmt = conn.prepare(
        "SELECT id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                review_verdict, review_note, created_at, updated_at
         FROM rounds ORDER BY root_task_id, round_number",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let status: String = r.get(3)?;
        let round = Round {
            id: r.get(0)?,
            task_id: r.get(1)?,
            round_number: r.get(2)?,
            status: RoundStatus::parse(&status).ok_or_else(|| bad_status("rounds", &status))?,
            plan_json: r.get(4)?,
            operator_note: r.get(5)?,
            rejected: r.get(6)?,
            review_verdict: r.get(7)?,
            review_note: r.get(8)?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
        };
        if let Some(&i) = index.get(&round.task_id) {
            tasks[i].rounds.push(round);
        }
    }

    let mut stmt = conn.prepare(
        "SELECT id, round_id, root_task_id, agent_id, goal, status, progress_note, claimed_at,
                lease_expires_at, handoff_id, created_at, updated_at
         FROM assignments ORDER BY rowid",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let status: String = r.get(5)?;
        let a = Assignment {
            id: r.get(0)?,
            round_id: r.get(1)?,
            task_id: r.get(2)?,
            agent_id: r.get(3)?,
            goal: r.get(4)?,
            status: AssignmentStatus::parse(&status)
                .ok_or_else(|| bad_status("assignments", &status))?,
            progress_note: r.get(6)?,
            claimed_at: r.get(7)?,
            lease_expires_at: r.get(8)?,
            handoff_id: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
        };
        if let Some(&i) = index.get(&a.task_id) {
            tasks[i].assignments.push(a);
        }
    }

    let mut stmt = conn.prepare(
        "SELECT id, assignment_id, round_id, root_task_id, from_agent, branch, commit_hash, changed_files,
                tests_run, risks, next_steps, notes, created_at
         FROM handoffs ORDER BY rowid",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let h = Handoff {
            id: r.get(0)?,
            assignment_id: r.get(1)?,
            round_id: r.get(2)?,
            task_id: r.get(3)?,
            from_agent: r.get(4)?,
            branch: r.get(5)?,
            commit_hash: r.get(6)?,
            changed_files: list(r.get(7)?),
            tests_run: list(r.get(8)?),
            risks: list(r.get(9)?),
            next_steps: list(r.get(10)?),
            notes: r.get(11)?,
            created_at: r.get(12)?,
        };
        if let Some(&i) = index.get(&h.task_id) {
            tasks[i].handoffs.push(h);
        }
    }

    // Agent messages (not the hub's own notices) count against their task's limit.
    let mut stmt = conn.prepare(
        "SELECT r.root_task_id, COUNT(*) FROM messages m JOIN rounds r ON r.id = m.round_id
         WHERE m.from_agent != 'hub' GROUP BY r.root_task_id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let task: String = r.get(0)?;
        if let Some(&i) = index.get(&task) {
            tasks[i].message_count = r.get(1)?;
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::Message;
    use crate::store::{apply::apply_batch, migrate, Op};
    use std::sync::Arc;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        // Orphan rows must be storable to check that they are left out.
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        migrate::run(&mut conn, "t0").unwrap();
        conn
    }

    fn task(id: &str, created_at: &str) -> Task {
        Task {
            id: id.into(),
            title: format!("title of {id}"),
            description: "d".into(),
            status: TaskStatus::Dispatched,
            dispatcher_agent_id: "disp".into(),
            created_at: created_at.into(),
            updated_at: "t9".into(),
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
            created_at: "t1".into(),
            updated_at: "t2".into(),
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
            claimed_at: Some("t4".into()),
            lease_expires_at: None,
            handoff_id: Some("H1".into()),
            created_at: "t1".into(),
            updated_at: "t5".into(),
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
            created_at: "t5".into(),
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
        let (t1, t2) = (task("T1", "t2"), task("T2", "t1"));
        let (r1, r2) = (round("R1", "T1", 1), round("R2", "T1", 2));
        let (a, h) = (assignment(), handoff());
        let ops = vec![
            Op::TaskUpsert(t1.clone()),
            Op::TaskUpsert(t2.clone()),
            Op::RoundUpsert(r2.clone()),
            Op::RoundUpsert(r1.clone()),
            Op::RoundUpsert(round("R9", "gone", 1)),
            Op::AssignmentUpsert(a.clone()),
            Op::HandoffInsert(h.clone()),
            message("m1", "alice", Some("R1")),
            message("m2", "bob", Some("R2")),
            message("m3", "hub", Some("R1")),
            message("m4", "alice", None),
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
        assert_eq!(load_tasks(&conn).unwrap(), vec![empty(t2), full]);
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
        let err = load_tasks(&conn).unwrap_err().to_string();
        assert!(err.contains("rounds has unknown status \"bogus\""), "{err}");
    }
}
