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
