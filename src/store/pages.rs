//! Paged reads for the operator's list views, straight from SQLite: one contract
//! for every list, `limit` (default 50, at most 1000) and an opaque `cursor`, in
//! keyset order on (created_at, id), newest first. A page costs one short query
//! whatever the size of the history. Called by SQLite's [`super::reads::Reads`]
//! (through `Store::read`).

mod dashboard;

pub(crate) use dashboard::{
    agent_assignments, awaiting_rounds, every_state, sent_messages, task_counts, task_messages,
};

use super::load::{lock_row, message_from_row};
use super::load_tasks::{query_all, round_row, task_row, OPEN_TASKS};
use super::StoreError;
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{Round, Task};
use crate::domain::time::parse_iso;
use rusqlite::Connection;

/// Rows per page unless asked otherwise, and the most a page may hold.
pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 1000;

/// Where a page starts: after the row with this (created_at, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    created_at: String,
    id: String,
}

impl Cursor {
    /// What [`Cursor::encode`] wrote: hex of `created_at~id` (URL-safe as it is;
    /// ids of tasks and rounds never contain `~`). Anything else is refused.
    pub(crate) fn parse(s: &str) -> Option<Cursor> {
        let bytes = crate::domain::ids::unhex(s)?;
        let text = String::from_utf8(bytes).ok()?;
        let (created_at, id) = text.split_once('~')?;
        parse_iso(created_at)?;
        (!id.is_empty()).then(|| Cursor {
            created_at: created_at.to_string(),
            id: id.to_string(),
        })
    }

    /// The time of the row the page starts after (stored format).
    pub(crate) fn created_at(&self) -> &str {
        &self.created_at
    }

    /// The id of the row the page starts after.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn encode(created_at: &str, id: &str) -> String {
        crate::domain::ids::hex(format!("{created_at}~{id}").as_bytes())
    }
}

/// What a list call asks for.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    /// History too (completed and closed tasks, finished rounds), not only open work.
    pub all: bool,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// One page, and the cursor of the next one when there is more.
#[derive(Debug, Clone)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A task as the list shows it: how many rounds, and the latest one.
#[derive(Debug, Clone)]
pub(crate) struct TaskSummary {
    pub task: Task,
    pub rounds: u32,
    pub current_round: Option<(String, u32, String)>,
}

/// Keyset condition and parameters for `req` (rows strictly after the cursor).
fn after(req: &PageRequest) -> (&'static str, Vec<String>) {
    match &req.cursor {
        Some(c) => (
            "(created_at, id) < (?1, ?2)",
            vec![c.created_at.clone(), c.id.clone()],
        ),
        None => ("1", Vec::new()),
    }
}

/// Cut a `limit + 1` read down to `limit` and name the next page (every backend's
/// pages end here, so that their cursors are one format).
pub(crate) fn finish<T>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> (String, String),
) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|t| {
            let (created_at, id) = key(t);
            Cursor::encode(&created_at, &id)
        })
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Tasks, newest first: open ones, or every one with `all`.
pub(crate) fn tasks(conn: &Connection, req: &PageRequest) -> Result<Page<TaskSummary>, StoreError> {
    let (cond, params) = after(req);
    let status = if req.all { "1" } else { OPEN_TASKS };
    let sql = format!(
        "SELECT id, title, description, status, dispatcher_agent_id, created_at, updated_at,
                (SELECT COUNT(*) FROM rounds r WHERE r.root_task_id = t.id) AS round_count
         FROM root_tasks t WHERE {status} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, |row| {
        Ok(TaskSummary {
            task: task_row(row)?,
            rounds: row.get("round_count")?,
            current_round: None,
        })
    })?;
    let mut page = finish(items, req.limit, |t| {
        (
            crate::domain::time::iso(t.task.created_at),
            t.task.id.clone(),
        )
    });
    let mut latest = conn.prepare_cached(
        "SELECT id, round_number, status FROM rounds WHERE root_task_id = ?1
         ORDER BY round_number DESC LIMIT 1",
    )?;
    for t in &mut page.items {
        let mut rows = latest.query([&t.task.id])?;
        if let Some(r) = rows.next()? {
            t.current_round = Some((r.get(0)?, r.get(1)?, r.get(2)?));
        }
    }
    Ok(page)
}

/// The rounds [`rounds`] lists without `all` (SQL shared by both backends).
pub(crate) const OPEN_ROUNDS: &str =
    "status IN ('awaiting_operator_approval', 'dispatched', 'in_progress', 'awaiting_review')";

/// Rounds, newest first: open ones (awaiting approval, dispatched, in progress,
/// awaiting review), or every one with `all`.
pub(crate) fn rounds(conn: &Connection, req: &PageRequest) -> Result<Page<Round>, StoreError> {
    let (cond, params) = after(req);
    let status = if req.all { "1" } else { OPEN_ROUNDS };
    let sql = format!(
        "SELECT id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                review_verdict, review_note, created_at, updated_at
         FROM rounds WHERE {status} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, round_row)?;
    Ok(finish(items, req.limit, |r| {
        (crate::domain::time::iso(r.created_at), r.id.clone())
    }))
}

/// One row of `audit_events`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct AuditEvent {
    pub id: i64,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub actor: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: String,
}

/// Which audit events a page shows; every field narrows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    /// (entity type, entity id), e.g. ("task", "T-1").
    pub entity: Option<(String, String)>,
    /// Who did it: an agent id, `operator` or `system`.
    pub actor: Option<String>,
    pub event_type: Option<String>,
    /// Only events at or after this time (stored format, see `time::iso`).
    pub since: Option<String>,
}

/// Audit events, newest first, narrowed by `filter`.
pub(crate) fn audit(
    conn: &Connection,
    req: &PageRequest,
    filter: &AuditFilter,
) -> Result<Page<AuditEvent>, StoreError> {
    // Ids are integers: compared as numbers, so that the created_at index serves
    // both the range and the order.
    let (cond, mut params) = match &req.cursor {
        Some(c) => (
            "(created_at < ?1 OR (created_at = ?1 AND id < CAST(?2 AS INTEGER)))",
            vec![c.created_at.clone(), c.id.clone()],
        ),
        None => ("1", Vec::new()),
    };
    let mut conds = vec![cond.to_string()];
    let mut narrow = |column: &str, op: &str, value: &str| {
        params.push(value.to_string());
        conds.push(format!("{column} {op} ?{}", params.len()));
    };
    if let Some((t, i)) = &filter.entity {
        narrow("entity_type", "=", t);
        narrow("entity_id", "=", i);
    }
    if let Some(a) = &filter.actor {
        narrow("actor", "=", a);
    }
    if let Some(k) = &filter.event_type {
        narrow("event_type", "=", k);
    }
    if let Some(t) = &filter.since {
        narrow("created_at", ">=", t);
    }
    let sql = format!(
        "SELECT id, event_type, entity_type, entity_id, actor, payload_json, created_at
         FROM audit_events WHERE {}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        conds.join(" AND "),
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, |r| {
        let payload: String = r.get("payload_json")?;
        Ok(AuditEvent {
            id: r.get("id")?,
            event_type: r.get("event_type")?,
            entity_type: r.get("entity_type")?,
            entity_id: r.get("entity_id")?,
            actor: r.get("actor")?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            created_at: r.get("created_at")?,
        })
    })?;
    Ok(finish(items, req.limit, |e| {
        (e.created_at.clone(), e.id.to_string())
    }))
}

/// Active agents (those of agents.env), newest first: their (created_at, id). The
/// hub adds each one's live presence; the rows only fix the order and the page.
pub(crate) fn agents(
    conn: &Connection,
    req: &PageRequest,
) -> Result<Page<(String, String)>, StoreError> {
    let (cond, params) = after(req);
    let sql = format!(
        "SELECT created_at, id FROM agents WHERE is_active = 1 AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(finish(items, req.limit, |k| k.clone()))
}

/// Locks held at `now` (stored and not lapsed), newest grant first.
pub(crate) fn locks(
    conn: &Connection,
    req: &PageRequest,
    now: &str,
) -> Result<Page<Lock>, StoreError> {
    let (cond, mut params) = after(req);
    params.push(now.to_string());
    let sql = format!(
        "SELECT id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token,
                expires_at, created_at
         FROM locks WHERE expires_at > ?{} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        params.len(),
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, lock_row)?;
    Ok(finish(items, req.limit, |l| {
        (crate::domain::time::iso(l.created_at), l.id.clone())
    }))
}

/// One operator decision on a round (`operator_approvals`).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Decision {
    pub action: String,
    pub note: String,
    pub created_at: String,
}

/// Every approve and reject of `round_id`, oldest first (a round holds a handful:
/// one per plan the operator saw, each decided at its own time).
pub(crate) fn decisions(conn: &Connection, round_id: &str) -> Result<Vec<Decision>, StoreError> {
    query_all(
        conn,
        "SELECT action, note, created_at FROM operator_approvals WHERE round_id = ?1
         ORDER BY created_at, id",
        &[round_id.to_string()],
        |r| {
            Ok(Decision {
                action: r.get(0)?,
                note: r.get(1)?,
                created_at: r.get(2)?,
            })
        },
    )
}

/// Messages, newest first (every sender and recipient; bodies included).
pub(crate) fn messages(conn: &Connection, req: &PageRequest) -> Result<Page<Message>, StoreError> {
    let (cond, params) = after(req);
    // `created_at <= ?1` lets the created_at index bound the range.
    let bound = if req.cursor.is_some() {
        "created_at <= ?1"
    } else {
        "1"
    };
    let sql = format!(
        "SELECT * FROM messages WHERE {bound} AND {cond}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, message_from_row)?;
    Ok(finish(items, req.limit, |m| {
        (m.created_at.clone(), m.id.clone())
    }))
}

/// One delivery in an agent's list: the message and that agent's read state.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Delivery {
    #[serde(flatten)]
    pub message: Message,
    /// When the agent acked it; `None`: unread.
    pub read_at: Option<String>,
}

/// The messages delivered to `agent`, newest first, with its read state; only the
/// unread ones with `unread`. Keyset on (delivered_at, message_id), which are the
/// message's (created_at, id): idx_recipients_agent (idx_recipients_unread)
/// gives the range and the order, so a page reads its own rows only.
pub(crate) fn deliveries(
    conn: &Connection,
    req: &PageRequest,
    agent: &str,
    unread: bool,
) -> Result<Page<Delivery>, StoreError> {
    let mut params = vec![agent.to_string()];
    let cond = match &req.cursor {
        Some(c) => {
            params.push(c.created_at.clone());
            params.push(c.id.clone());
            // The first term bounds the index range; the row value cuts the tie.
            "r.delivered_at <= ?2 AND (r.delivered_at, r.message_id) < (?2, ?3)"
        }
        None => "1",
    };
    let read = if unread { "r.read_at IS NULL" } else { "1" };
    let sql = format!(
        "SELECT m.*, r.read_at AS delivery_read_at
         FROM message_recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.agent_id = ?1 AND {read} AND {cond}
         ORDER BY r.delivered_at DESC, r.message_id DESC LIMIT {}",
        req.limit + 1
    );
    let items = query_all(conn, &sql, &params, |r| {
        Ok(Delivery {
            message: message_from_row(r)?,
            read_at: r.get("delivery_read_at")?,
        })
    })?;
    Ok(finish(items, req.limit, |d| {
        (d.message.created_at.clone(), d.message.id.clone())
    }))
}

/// Whether `agent` is stored (in agents.env now, or before).
pub(crate) fn agent_known(conn: &Connection, agent: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM agents WHERE id = ?1)")?
        .query_row([agent], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = "2026-11-25T06:40:00.000000+00:00";
        let encoded = Cursor::encode(at, "T-1");
        assert!(encoded.bytes().all(|b| b.is_ascii_hexdigit()), "{encoded}");
        let c = Cursor::parse(&encoded).unwrap();
        assert_eq!((c.created_at.as_str(), c.id.as_str()), (at, "T-1"));
        let hex = |s: &str| crate::domain::ids::hex(s.as_bytes());
        for bad in [
            String::new(),
            "zz".into(),
            "abc".into(),
            hex("~x"),
            hex("yesterday~x"),
            hex(&format!("{at}~")),
            hex("no-tilde"),
        ] {
            assert_eq!(Cursor::parse(&bad), None, "{bad}");
        }
    }
}
