//! Paged reads the operator dashboard needs beyond the operator lists, under the
//! same contract (`limit`, opaque `cursor`, newest first): rounds awaiting approval,
//! a task's messages, what one agent sent and was assigned, and tasks counted by
//! state.

use super::{after, finish, Page, PageRequest};
use crate::domain::message::Message;
use crate::domain::task::{Assignment, Round};
use crate::domain::time::iso;
use crate::store::load::message_from_row;
use crate::store::load_tasks::{assignment_row, query_all, round_row, ASSIGNMENT_COLUMNS};
use crate::store::StoreError;
use rusqlite::Connection;

/// `after(req)` with one more parameter: the condition, the parameters, and the
/// placeholder of `value`.
fn after_with(req: &PageRequest, value: &str) -> (&'static str, Vec<String>, String) {
    let (cond, mut params) = after(req);
    params.push(value.to_string());
    let at = format!("?{}", params.len());
    (cond, params, at)
}

/// Rounds waiting for the operator's approval, newest first.
pub(crate) fn awaiting_rounds(
    conn: &Connection,
    req: &PageRequest,
) -> Result<Page<Round>, StoreError> {
    let (cond, params, status) = after_with(req, "awaiting_operator_approval");
    let sql = format!(
        "SELECT id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                review_verdict, review_note, created_at, updated_at
         FROM rounds WHERE status = {status} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, round_row)?;
    Ok(finish(items, req.limit, |r| {
        (iso(r.created_at), r.id.clone())
    }))
}

/// Stored tasks per state, every state listed (0 when none).
pub(crate) fn task_counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let counted = query_all(
        conn,
        "SELECT status, COUNT(*) FROM root_tasks GROUP BY status",
        &[],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)),
    )?;
    Ok(every_state(&counted))
}

/// `counted` (state, tasks) as [`task_counts`] lists it: every state, in the
/// workflow's order, 0 when none (shared with PostgreSQL's twin).
pub(crate) fn every_state(counted: &[(String, u64)]) -> Vec<(String, u64)> {
    let states = [
        "draft",
        "awaiting_operator_approval",
        "dispatched",
        "completed",
        "closed",
    ];
    states
        .iter()
        .map(|s| {
            let n = counted.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
            (s.to_string(), n)
        })
        .collect()
}

/// Messages (agents' and the hub's) carrying a round id of `task_id`, newest first.
pub(crate) fn task_messages(
    conn: &Connection,
    task_id: &str,
    req: &PageRequest,
) -> Result<Page<Message>, StoreError> {
    let (cond, params, task) = after_with(req, task_id);
    let sql = format!(
        "SELECT * FROM messages
         WHERE round_id IN (SELECT id FROM rounds WHERE root_task_id = {task}) AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, message_from_row)?;
    Ok(finish(items, req.limit, |m| {
        (m.created_at.clone(), m.id.clone())
    }))
}

/// Messages `agent` sent, newest first.
pub(crate) fn sent_messages(
    conn: &Connection,
    agent: &str,
    req: &PageRequest,
) -> Result<Page<Message>, StoreError> {
    let (cond, params, from) = after_with(req, agent);
    let sql = format!(
        "SELECT * FROM messages WHERE from_agent = {from} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, message_from_row)?;
    Ok(finish(items, req.limit, |m| {
        (m.created_at.clone(), m.id.clone())
    }))
}

/// `agent`'s assignments across every task, newest first.
pub(crate) fn agent_assignments(
    conn: &Connection,
    agent: &str,
    req: &PageRequest,
) -> Result<Page<Assignment>, StoreError> {
    let (cond, params, who) = after_with(req, agent);
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE agent_id = {who} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, assignment_row)?;
    Ok(finish(items, req.limit, |a| {
        (iso(a.created_at), a.id.clone())
    }))
}
