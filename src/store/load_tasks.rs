//! Reading the task workflow: tasks with their rounds, assignments, handoffs and
//! count of agent messages, for a [`Scope`] (the open tasks at start-up, one task
//! when it is activated, or all of them for the operator's views), and the look-ups
//! that find which task owns an id. One function per table reads its columns by
//! name; [`load_tasks`] puts the rows together.

use super::columns::{self, Columns};
use super::StoreError;
use crate::domain::shard::Shards;
use crate::domain::task::{Assignment, Handoff, Round, Task};
use crate::domain::workflow::TaskState;
use rusqlite::{Connection, OptionalExtension, Row};
use std::collections::HashMap;

/// The statuses of tasks with open work, as a condition that uses the status
/// index (a `NOT IN` would scan every task). Shared with the operator's pages.
pub(crate) const OPEN_TASKS: &str =
    "status IN ('draft', 'awaiting_operator_approval', 'dispatched')";

/// Which tasks to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Tasks with open work (neither completed nor closed) in these shards: what a
    /// node loads at start-up, or when it takes shards over.
    Open(&'a Shards),
    /// One task (activated on demand).
    Task(&'a str),
    /// Every task.
    #[cfg(test)]
    All,
}

impl Scope<'_> {
    /// A condition on a `root_task_id`-like column, and its parameters.
    fn on(self, column: &str) -> (String, Vec<String>) {
        match self {
            Scope::Open(shards) => {
                let (extra, params) = match shards.condition("shard") {
                    Some((cond, param)) => (format!(" AND {cond}"), vec![param]),
                    None => (String::new(), Vec::new()),
                };
                (
                    format!("{column} IN (SELECT id FROM root_tasks WHERE {OPEN_TASKS}{extra})"),
                    params,
                )
            }
            Scope::Task(id) => (format!("{column} = ?1"), vec![id.to_string()]),
            #[cfg(test)]
            Scope::All => ("1".to_string(), Vec::new()),
        }
    }
}

/// The tasks of `scope`, oldest first, each with its rows in stored order. Rows of a
/// task that is not stored are left out.
pub(crate) fn load_tasks(conn: &Connection, scope: Scope) -> Result<Vec<TaskState>, StoreError> {
    let mut tasks: Vec<TaskState> = root_tasks(conn, scope)?
        .into_iter()
        .map(|(task, message_count)| TaskState {
            task,
            rounds: Vec::new(),
            assignments: Vec::new(),
            handoffs: Vec::new(),
            message_count,
        })
        .collect();
    let index: HashMap<String, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task.id.clone(), i))
        .collect();
    let of_task = |task_id: &str| index.get(task_id).copied();
    for round in rounds(conn, scope)? {
        if let Some(i) = of_task(&round.task_id) {
            tasks[i].rounds.push(round);
        }
    }
    for a in assignments(conn, scope)? {
        if let Some(i) = of_task(&a.task_id) {
            tasks[i].assignments.push(a);
        }
    }
    for h in handoffs(conn, scope)? {
        if let Some(i) = of_task(&h.task_id) {
            tasks[i].handoffs.push(h);
        }
    }
    Ok(tasks)
}

/// Every row of `sql` with `params`, mapped by `map`.
pub(crate) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: &[String],
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Tasks with their message budget used so far (kept on the task: pruning messages
/// must not give it back).
fn root_tasks(conn: &Connection, scope: Scope) -> Result<Vec<(Task, u32)>, StoreError> {
    let (cond, params) = scope.on("id");
    let sql = format!(
        "SELECT id, title, description, status, dispatcher_agent_id, created_at, updated_at,
                message_count
         FROM root_tasks WHERE {cond} ORDER BY created_at, id"
    );
    query_all(conn, &sql, &params, |row| {
        Ok((task_row(row)?, row.uint("message_count")?))
    })
}

/// A `root_tasks` row.
pub(crate) fn task_row(row: &Row<'_>) -> Result<Task, StoreError> {
    columns::task(row)
}

fn rounds(conn: &Connection, scope: Scope) -> Result<Vec<Round>, StoreError> {
    let (cond, params) = scope.on("root_task_id");
    let sql = format!(
        "SELECT id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                review_verdict, review_note, created_at, updated_at
         FROM rounds WHERE {cond} ORDER BY root_task_id, round_number"
    );
    query_all(conn, &sql, &params, round_row)
}

/// A `rounds` row.
pub(crate) fn round_row(row: &Row<'_>) -> Result<Round, StoreError> {
    columns::round(row)
}

pub(crate) const ASSIGNMENT_COLUMNS: &str =
    "id, round_id, root_task_id, agent_id, goal, status, progress_note, claimed_at,
     lease_expires_at, handoff_id, created_at, updated_at, seq";

/// Each task's in the order it created them (`seq`).
fn assignments(conn: &Connection, scope: Scope) -> Result<Vec<Assignment>, StoreError> {
    let (cond, params) = scope.on("root_task_id");
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE {cond} ORDER BY root_task_id, seq"
    );
    query_all(conn, &sql, &params, assignment_row)
}

/// An agent's assignments across every task, newest first, at most `limit`.
pub(crate) fn assignments_of_agent(
    conn: &Connection,
    agent: &str,
    limit: usize,
) -> Result<Vec<Assignment>, StoreError> {
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE agent_id = ?1
         ORDER BY created_at DESC, id DESC LIMIT {limit}"
    );
    query_all(conn, &sql, &[agent.to_string()], assignment_row)
}

pub(crate) fn assignment_row(row: &Row<'_>) -> Result<Assignment, StoreError> {
    columns::assignment(row)
}

/// Each task's in the order they were submitted: each by its own call, at its own
/// time (the id orders handoffs of one microsecond).
fn handoffs(conn: &Connection, scope: Scope) -> Result<Vec<Handoff>, StoreError> {
    let (cond, params) = scope.on("root_task_id");
    let sql = format!(
        "SELECT id, assignment_id, round_id, root_task_id, from_agent, branch, commit_hash, changed_files,
                tests_run, risks, next_steps, notes, created_at
         FROM handoffs WHERE {cond} ORDER BY root_task_id, created_at, id"
    );
    query_all(conn, &sql, &params, |row| columns::handoff(row))
}

/// (task id, count) of agent messages (not the hub's own notices) carrying one of the
/// task's round ids: they count against the task's limit.
/// The task owning a round, assignment or handoff id (`table` is one of those).
pub(crate) fn owner_of(
    conn: &Connection,
    table: Owned,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let sql = match table {
        Owned::Round => "SELECT root_task_id FROM rounds WHERE id = ?1",
        Owned::Assignment => "SELECT root_task_id FROM assignments WHERE id = ?1",
        Owned::Handoff => "SELECT root_task_id FROM handoffs WHERE id = ?1",
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Which kind of id [`owner_of`] looks up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owned {
    Round,
    Assignment,
    Handoff,
}

/// Whether task `id` is stored.
pub(crate) fn task_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM root_tasks WHERE id = ?1")?
        .exists([id])?)
}

/// How many tasks are stored (every state), as the writer keeps count.
pub(crate) fn count_tasks(conn: &Connection) -> Result<usize, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT value FROM hub_counters WHERE name = 'tasks'",
        [],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as usize)
}

#[cfg(test)]
mod tests;
