//! Retention: finding what a policy names, a batch at a time in keyset order, and
//! the rows to delete with it (children before parents: foreign keys are on). The
//! Hub reads candidates here through [`super::reads::Reads`] and deletes them
//! through the writer ([`super::Op::PruneMessages`] and the like), one small
//! transaction per batch, so serving never waits long.

use super::load_tasks::query_all;
use super::StoreError;
use rusqlite::{params, Connection, Transaction};

/// Rows per batch.
pub(crate) const BATCH: usize = 500;

/// Messages sent before `cutoff` that every recipient has read (never an unread
/// one), after `after` (created_at, id), oldest first.
pub(crate) fn acked_messages(
    conn: &Connection,
    cutoff: &str,
    after: &(String, String),
) -> Result<Vec<(String, String)>, StoreError> {
    let sql = format!(
        "SELECT created_at, id FROM messages m
         WHERE created_at < ?1 AND (created_at, id) > (?2, ?3)
           AND NOT EXISTS (SELECT 1 FROM message_recipients r
                           WHERE r.message_id = m.id AND r.read_at IS NULL)
         ORDER BY created_at, id LIMIT {BATCH}"
    );
    let p = [cutoff.to_string(), after.0.clone(), after.1.clone()];
    query_all(conn, &sql, &p, |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Completed and closed tasks last changed before `cutoff`, after `after`
/// (updated_at, id), oldest first.
pub(crate) fn finished_tasks(
    conn: &Connection,
    cutoff: &str,
    after: &(String, String),
) -> Result<Vec<(String, String)>, StoreError> {
    let sql = format!(
        "SELECT updated_at, id FROM root_tasks
         WHERE status IN ('completed', 'closed') AND updated_at < ?1
           AND (updated_at, id) > (?2, ?3)
         ORDER BY updated_at, id LIMIT {BATCH}"
    );
    let p = [cutoff.to_string(), after.0.clone(), after.1.clone()];
    query_all(conn, &sql, &p, |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Audit events written before `cutoff`, oldest first.
pub(crate) fn audit_events(conn: &Connection, cutoff: &str) -> Result<Vec<i64>, StoreError> {
    let sql = format!(
        "SELECT id FROM audit_events WHERE created_at < ?1 ORDER BY created_at LIMIT {BATCH}"
    );
    query_all(conn, &sql, &[cutoff.to_string()], |r| Ok(r.get(0)?))
}

/// A retention policy, as a dry run counts it: named, so that its SQL stays here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prunable {
    AckedMessages,
    FinishedTasks,
    AuditEvents,
}

/// How many rows `policy` names now (`hubctl prune --dry-run`).
pub(crate) fn count(conn: &Connection, policy: Prunable, cutoff: &str) -> Result<u64, StoreError> {
    let sql_where = match policy {
        Prunable::AckedMessages => ACKED_MESSAGES,
        Prunable::FinishedTasks => FINISHED_TASKS,
        Prunable::AuditEvents => AUDIT_EVENTS,
    };
    let n: i64 = conn.query_row(&format!("SELECT COUNT(*) {sql_where}"), [cutoff], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
}

/// The `FROM ... WHERE` of each policy, for [`count`] (same conditions as above).
const ACKED_MESSAGES: &str = "FROM messages m WHERE created_at < ?1
    AND NOT EXISTS (SELECT 1 FROM message_recipients r
                    WHERE r.message_id = m.id AND r.read_at IS NULL)";
const FINISHED_TASKS: &str =
    "FROM root_tasks WHERE status IN ('completed', 'closed') AND updated_at < ?1";
const AUDIT_EVENTS: &str = "FROM audit_events WHERE created_at < ?1";

/// Delete messages and their delivery rows (writer thread).
pub(crate) fn delete_messages(tx: &Transaction<'_>, ids: &[String]) -> rusqlite::Result<()> {
    for id in ids {
        tx.prepare_cached("DELETE FROM message_reads WHERE message_id = ?1")?
            .execute(params![id])?;
        tx.prepare_cached("DELETE FROM message_recipients WHERE message_id = ?1")?
            .execute(params![id])?;
        tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
            .execute(params![id])?;
    }
    Ok(())
}

/// Delete tasks with their rounds, assignments, handoffs and operator decisions
/// (writer thread). Their messages and audit rows have policies of their own.
pub(crate) fn delete_tasks(tx: &Transaction<'_>, ids: &[String]) -> rusqlite::Result<()> {
    for id in ids {
        let mut deleted = 0;
        for sql in [
            "DELETE FROM handoffs WHERE root_task_id = ?1",
            "DELETE FROM assignments WHERE root_task_id = ?1",
            "DELETE FROM operator_approvals WHERE round_id IN
                 (SELECT id FROM rounds WHERE root_task_id = ?1)",
            "DELETE FROM rounds WHERE root_task_id = ?1",
            "DELETE FROM root_tasks WHERE id = ?1",
        ] {
            deleted = tx.prepare_cached(sql)?.execute(params![id])?;
        }
        // The count follows the rows really deleted (the last statement's).
        tx.prepare_cached("UPDATE hub_counters SET value = value - ?1 WHERE name = 'tasks'")?
            .execute(params![deleted as i64])?;
    }
    Ok(())
}

/// Delete audit events (writer thread).
pub(crate) fn delete_audit(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<()> {
    for id in ids {
        tx.prepare_cached("DELETE FROM audit_events WHERE id = ?1")?
            .execute(params![id])?;
    }
    Ok(())
}
