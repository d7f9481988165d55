//! Retention's reads ([`crate::store::prune`]) on PostgreSQL: the candidates of
//! each policy, a batch at a time in keyset order, and the dry run's counts, equal
//! to SQLite's for the same rows. Times and ids compare as in [`super::pages`]
//! (SQLite's text order, ids bytewise).

use super::pages::{keyset, rows, time_cmp, Binds};
use crate::store::pg::PgError;
use crate::store::prune::{Prunable, BATCH};
use deadpool_postgres::GenericClient;

/// `LIMIT` of one batch.
const LIMIT: i64 = BATCH as i64;

/// Messages sent before `cutoff` that every recipient has read, after `after`
/// (created_at, id), oldest first.
pub(crate) async fn acked_messages(
    c: &impl GenericClient,
    cutoff: &str,
    after: &(String, String),
) -> Result<Vec<(String, String)>, PgError> {
    let mut b = Binds::default();
    let acked = acked_messages_where(&mut b, cutoff);
    let next = keyset(&mut b, ("m.created_at", "m.id"), ">", (&after.0, &after.1));
    let sql = format!(
        "SELECT hub_iso(m.created_at), m.id {acked} AND {next}
         ORDER BY m.created_at, m.id COLLATE \"C\" LIMIT {}",
        b.bind(LIMIT)
    );
    let rows = rows(c, &sql, &b).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Completed and closed tasks last changed before `cutoff`, after `after`
/// (updated_at, id), oldest first.
pub(crate) async fn finished_tasks(
    c: &impl GenericClient,
    cutoff: &str,
    after: &(String, String),
) -> Result<Vec<(String, String)>, PgError> {
    let mut b = Binds::default();
    let finished = finished_tasks_where(&mut b, cutoff);
    let next = keyset(&mut b, ("t.updated_at", "t.id"), ">", (&after.0, &after.1));
    let sql = format!(
        "SELECT hub_iso(t.updated_at), t.id {finished} AND {next}
         ORDER BY t.updated_at, t.id COLLATE \"C\" LIMIT {}",
        b.bind(LIMIT)
    );
    let rows = rows(c, &sql, &b).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Audit events written before `cutoff`, oldest first. SQLite orders them by
/// created_at alone and reads them through idx_audit_created, whose ties are in
/// rowid (= id) order: the id here makes that order explicit.
pub(crate) async fn audit_events(
    c: &impl GenericClient,
    cutoff: &str,
) -> Result<Vec<i64>, PgError> {
    let mut b = Binds::default();
    let before = audit_events_where(&mut b, cutoff);
    let sql = format!(
        "SELECT a.id {before} ORDER BY a.created_at, a.id LIMIT {}",
        b.bind(LIMIT)
    );
    let rows = rows(c, &sql, &b).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// How many rows `policy` names now (`hubctl prune --dry-run`).
pub(crate) async fn count(
    c: &impl GenericClient,
    policy: Prunable,
    cutoff: &str,
) -> Result<u64, PgError> {
    let mut b = Binds::default();
    let sql_where = match policy {
        Prunable::AckedMessages => acked_messages_where(&mut b, cutoff),
        Prunable::FinishedTasks => finished_tasks_where(&mut b, cutoff),
        Prunable::AuditEvents => audit_events_where(&mut b, cutoff),
    };
    let rows = rows(c, &format!("SELECT COUNT(*) {sql_where}"), &b).await?;
    let n: i64 = match rows.first() {
        Some(r) => r.try_get(0)?,
        None => 0,
    };
    Ok(n as u64)
}

// The `FROM ... WHERE` of each policy (same conditions as SQLite's; a message
// still in `delivery_outbox`, spread placement's deliveries not yet made, is
// unread as well).

fn acked_messages_where(b: &mut Binds, cutoff: &str) -> String {
    let before = time_cmp(b, "m.created_at", "<", cutoff);
    format!(
        "FROM messages m WHERE {before}
           AND NOT EXISTS (SELECT 1 FROM message_recipients r
                           WHERE r.message_id = m.id AND r.read_at IS NULL)
           AND NOT EXISTS (SELECT 1 FROM delivery_outbox o WHERE o.message_id = m.id)"
    )
}

fn finished_tasks_where(b: &mut Binds, cutoff: &str) -> String {
    let before = time_cmp(b, "t.updated_at", "<", cutoff);
    format!("FROM root_tasks t WHERE t.status IN ('completed', 'closed') AND {before}")
}

fn audit_events_where(b: &mut Binds, cutoff: &str) -> String {
    let before = time_cmp(b, "a.created_at", "<", cutoff);
    format!("FROM audit_events a WHERE {before}")
}
