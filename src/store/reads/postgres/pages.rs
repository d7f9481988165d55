//! The operator's paged reads ([`crate::store::pages`]) on PostgreSQL: the same
//! rows, order and cursors as SQLite's, so that a cursor made by one backend pages
//! the other identically. The cursor itself (its format, `limit + 1` cut down to a
//! page) is SQLite's own code ([`finish`], [`Cursor`](crate::store::pages::Cursor));
//! only the SQL differs.
//!
//! What makes the SQL agree with SQLite's:
//! - ids are ordered and compared with `COLLATE "C"` (bytewise, as SQLite), whatever
//!   the database's default collation;
//! - SQLite compares times as text. Against a time in the hub's canonical format
//!   (what [`iso`] writes, what every stored row and every cursor the hub made
//!   holds) text order is time order, so the comparison is on the timestamptz
//!   column (its indexes serve it); against anything else it is on
//!   `hub_iso(col) COLLATE "C"`, as SQLite's text comparison, so even a hand-made
//!   cursor pages the same rows;
//! - times are selected as `hub_iso(col)`: SQLite's stored text.
//!
//! The plans stay SQLite's: the (created_at, id) row comparison bounds the
//! created_at index range, and `COLLATE "C"` on the tie costs an incremental sort
//! of the rows sharing one created_at only (the indexes' ids are in the database's
//! collation).

use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{Assignment, Round};
use crate::domain::time::{iso, parse_iso};
use crate::store::columns;
use crate::store::load_tasks::OPEN_TASKS;
use crate::store::pages::{
    every_state, finish, AuditEvent, AuditFilter, Decision, Delivery, Page, PageRequest,
    TaskSummary, OPEN_ROUNDS,
};
use crate::store::pg::PgError;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

// --- Building the SQL: parameters, and comparisons as SQLite makes them ---

/// The parameters of one statement, numbered in the order they are bound.
#[derive(Default)]
pub(super) struct Binds(Vec<Box<dyn ToSql + Sync + Send>>);

impl Binds {
    /// Bind `value`; returns its placeholder (`$n`).
    pub(super) fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
    }
}

/// Run `sql` (prepared once per connection) with `binds`.
pub(super) async fn rows(
    c: &impl GenericClient,
    sql: &str,
    binds: &Binds,
) -> Result<Vec<Row>, PgError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, &binds.refs()).await?)
}

/// Whether `t` is a time exactly as the hub writes it ([`iso`]): then its text
/// order is its time order, and comparing the instant equals SQLite's comparison
/// of the text.
fn canonical(t: &str) -> bool {
    t.len() == 32 && parse_iso(t).map(iso).as_deref() == Some(t)
}

/// `column op value` for a timestamptz `column`, as SQLite compares the stored
/// text with `value`.
pub(super) fn time_cmp(b: &mut Binds, column: &str, op: &str, value: &str) -> String {
    if canonical(value) {
        let at = b.bind(value.to_string());
        format!("{column} {op} {at}::text::timestamptz")
    } else {
        let at = b.bind(value.to_string());
        format!("hub_iso({column}) COLLATE \"C\" {op} {at}")
    }
}

/// `(time, id) op (value)` for a timestamptz `time` and a text `id`, as SQLite
/// compares the stored text.
pub(super) fn keyset(
    b: &mut Binds,
    (time, id): (&str, &str),
    op: &str,
    (at, key): (&str, &str),
) -> String {
    if at.is_empty() && op == ">" {
        // Every stored time is after "" (retention's first batch): no condition,
        // so that the time index bounds the range alone.
        return "TRUE".into();
    }
    let (time, at) = if canonical(at) {
        (
            time.to_string(),
            format!("{}::text::timestamptz", b.bind(at.to_string())),
        )
    } else {
        (
            format!("hub_iso({time}) COLLATE \"C\""),
            b.bind(at.to_string()),
        )
    };
    let key = b.bind(key.to_string());
    format!("({time}, {id} COLLATE \"C\") {op} ({at}, {key})")
}

/// Keyset condition for `req` on (created_at, id): rows strictly after the cursor
/// (SQLite's `after`).
fn after(b: &mut Binds, req: &PageRequest, (time, id): (&str, &str)) -> String {
    match &req.cursor {
        Some(c) => keyset(b, (time, id), "<", (c.created_at(), c.id())),
        None => "TRUE".into(),
    }
}

/// `LIMIT` of a page read: one more row than the page, to know whether another
/// page follows.
fn limit(b: &mut Binds, req: &PageRequest) -> String {
    let n = i64::try_from(req.limit)
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    format!("LIMIT {}", b.bind(n))
}

// --- Decoding rows: the domain's types from PostgreSQL's cells ---

fn bad(what: String) -> PgError {
    PgError::Incompatible(what)
}

/// An `integer` column (a round number) as `u32`, as SQLite's `get::<u32>`.
fn int4_u32(row: &Row, column: &str) -> Result<u32, PgError> {
    let n: i32 = row.try_get(column)?;
    u32::try_from(n).map_err(|_| bad(format!("{column} is out of range: {n}")))
}

/// A `bigint` (a count) as `u32`.
fn int8_u32(row: &Row, column: &str) -> Result<u32, PgError> {
    let n: i64 = row.try_get(column)?;
    u32::try_from(n).map_err(|_| bad(format!("{column} is out of range: {n}")))
}

const TASK_COLUMNS: &str = "id, title, description, status, dispatcher_agent_id,
    hub_iso(created_at) AS created_at, hub_iso(updated_at) AS updated_at";

const ROUND_COLUMNS: &str = "id, root_task_id, round_number, status, plan_json, operator_note,
    rejected, review_verdict, review_note,
    hub_iso(created_at) AS created_at, hub_iso(updated_at) AS updated_at";

const ASSIGNMENT_COLUMNS: &str = "id, round_id, root_task_id, agent_id, goal, status,
    progress_note, hub_iso(claimed_at) AS claimed_at,
    hub_iso(lease_expires_at) AS lease_expires_at, handoff_id,
    hub_iso(created_at) AS created_at, hub_iso(updated_at) AS updated_at, seq";

/// The columns of a message, as `SELECT *` gives them in SQLite (`m.` prefixed).
const MESSAGE_COLUMNS: &str = "m.id, m.dedupe_key, m.reply_to, m.from_agent, m.to_agent,
    m.round_id, m.msg_type, m.subject, m.body, m.context_json, m.hop_count,
    hub_iso(m.created_at) AS created_at";

fn all<T>(rows: Vec<Row>, map: impl Fn(&Row) -> Result<T, PgError>) -> Result<Vec<T>, PgError> {
    rows.iter().map(map).collect()
}

// --- The reads ---

/// Tasks, newest first: open ones, or every one with `all`; each with its round
/// count and latest round (SQLite's `pages::tasks`).
pub(crate) async fn tasks(
    c: &impl GenericClient,
    req: &PageRequest,
) -> Result<Page<TaskSummary>, PgError> {
    let mut b = Binds::default();
    let cond = after(&mut b, req, ("t.created_at", "t.id"));
    let status = if req.all { "TRUE" } else { OPEN_TASKS };
    let limit = limit(&mut b, req);
    let sql = format!(
        "SELECT {TASK_COLUMNS},
                (SELECT COUNT(*) FROM rounds r WHERE r.root_task_id = t.id) AS round_count,
                cr.cr_id, cr.cr_number, cr.cr_status
         FROM root_tasks t
         LEFT JOIN LATERAL (SELECT r.id AS cr_id, r.round_number AS cr_number,
                                   r.status AS cr_status
                            FROM rounds r WHERE r.root_task_id = t.id
                            ORDER BY r.round_number DESC LIMIT 1) cr ON TRUE
         WHERE {status} AND {cond}
         ORDER BY t.created_at DESC, t.id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, &b).await?, |row| {
        let current_round = match row.try_get::<_, Option<String>>("cr_id")? {
            Some(id) => Some((id, int4_u32(row, "cr_number")?, row.try_get("cr_status")?)),
            None => None,
        };
        Ok(TaskSummary {
            task: columns::task(row)?,
            rounds: int8_u32(row, "round_count")?,
            current_round,
        })
    })?;
    Ok(finish(items, req.limit, |t| {
        (iso(t.task.created_at), t.task.id.clone())
    }))
}

/// Rounds (as `r`) of `status` (SQL) after the cursor, newest first.
async fn round_list(
    c: &impl GenericClient,
    req: &PageRequest,
    status: &str,
    b: &mut Binds,
) -> Result<Page<Round>, PgError> {
    let cond = after(b, req, ("r.created_at", "r.id"));
    let limit = limit(b, req);
    let sql = format!(
        "SELECT {ROUND_COLUMNS} FROM rounds r WHERE {status} AND {cond}
         ORDER BY r.created_at DESC, r.id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, b).await?, columns::round)?;
    Ok(finish(items, req.limit, |r| {
        (iso(r.created_at), r.id.clone())
    }))
}

/// Rounds, newest first: open ones, or every one with `all`.
pub(crate) async fn rounds(
    c: &impl GenericClient,
    req: &PageRequest,
) -> Result<Page<Round>, PgError> {
    let status = if req.all { "TRUE" } else { OPEN_ROUNDS };
    round_list(c, req, status, &mut Binds::default()).await
}

/// Rounds waiting for the operator's approval, newest first.
pub(crate) async fn awaiting_rounds(
    c: &impl GenericClient,
    req: &PageRequest,
) -> Result<Page<Round>, PgError> {
    let mut b = Binds::default();
    let status = format!("status = {}", b.bind("awaiting_operator_approval"));
    round_list(c, req, &status, &mut b).await
}

/// SQLite's `CAST(text AS INTEGER)`: the longest integer prefix (after leading
/// spaces), 0 without one, clamped to i64 when it overflows.
fn sqlite_integer(text: &str) -> i64 {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: &str = &digits[..digits
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(digits.len())];
    let mut n: i128 = 0;
    for d in digits.bytes() {
        n = (n * 10 + i128::from(d - b'0')).min(i128::from(i64::MAX) + 1);
    }
    let n = if negative { -n } else { n };
    n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Audit events, newest first, narrowed by `filter`.
pub(crate) async fn audit(
    c: &impl GenericClient,
    req: &PageRequest,
    filter: &AuditFilter,
) -> Result<Page<AuditEvent>, PgError> {
    let mut b = Binds::default();
    let mut conds = Vec::new();
    if let Some(cur) = &req.cursor {
        // Ids are integers, compared as numbers (SQLite casts the cursor's id).
        let before = time_cmp(&mut b, "a.created_at", "<", cur.created_at());
        let same = time_cmp(&mut b, "a.created_at", "=", cur.created_at());
        let id = b.bind(sqlite_integer(cur.id()));
        conds.push(format!("({before} OR ({same} AND id < {id}))"));
    }
    if let Some((t, i)) = &filter.entity {
        conds.push(format!("entity_type = {}", b.bind(t.clone())));
        conds.push(format!("entity_id = {}", b.bind(i.clone())));
    }
    if let Some(a) = &filter.actor {
        conds.push(format!("actor = {}", b.bind(a.clone())));
    }
    if let Some(k) = &filter.event_type {
        conds.push(format!("event_type = {}", b.bind(k.clone())));
    }
    if let Some(t) = &filter.since {
        conds.push(time_cmp(&mut b, "a.created_at", ">=", t));
    }
    if conds.is_empty() {
        conds.push("TRUE".into());
    }
    let limit = limit(&mut b, req);
    let sql = format!(
        "SELECT id, event_type, entity_type, entity_id, actor, payload_json,
                hub_iso(created_at) AS created_at
         FROM audit_events a WHERE {}
         ORDER BY a.created_at DESC, a.id DESC {limit}",
        conds.join(" AND ")
    );
    let items = all(rows(c, &sql, &b).await?, |r| {
        let payload: String = r.try_get("payload_json")?;
        Ok(AuditEvent {
            id: r.try_get("id")?,
            event_type: r.try_get("event_type")?,
            entity_type: r.try_get("entity_type")?,
            entity_id: r.try_get("entity_id")?,
            actor: r.try_get("actor")?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            created_at: r.try_get("created_at")?,
        })
    })?;
    Ok(finish(items, req.limit, |e| {
        (e.created_at.clone(), e.id.to_string())
    }))
}

/// Active agents, newest first: their (created_at, id).
pub(crate) async fn agents(
    c: &impl GenericClient,
    req: &PageRequest,
) -> Result<Page<(String, String)>, PgError> {
    let mut b = Binds::default();
    let cond = after(&mut b, req, ("g.created_at", "g.id"));
    let limit = limit(&mut b, req);
    let sql = format!(
        "SELECT hub_iso(g.created_at), g.id FROM agents g WHERE g.is_active AND {cond}
         ORDER BY g.created_at DESC, g.id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, &b).await?, |r| {
        Ok((r.try_get(0)?, r.try_get(1)?))
    })?;
    Ok(finish(items, req.limit, |k| k.clone()))
}

/// Locks held at `now` (stored and not lapsed), newest grant first.
pub(crate) async fn locks(
    c: &impl GenericClient,
    req: &PageRequest,
    now: &str,
) -> Result<Page<Lock>, PgError> {
    let mut b = Binds::default();
    let cond = after(&mut b, req, ("l.created_at", "l.id"));
    let held = time_cmp(&mut b, "l.expires_at", ">", now);
    let limit = limit(&mut b, req);
    let sql = format!(
        "SELECT id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token,
                hub_iso(expires_at) AS expires_at, hub_iso(created_at) AS created_at
         FROM locks l WHERE {held} AND {cond}
         ORDER BY l.created_at DESC, l.id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, &b).await?, columns::lock)?;
    Ok(finish(items, req.limit, |l| {
        (iso(l.created_at), l.id.clone())
    }))
}

/// Every approve and reject of `round_id`, oldest first.
pub(crate) async fn decisions(
    c: &impl GenericClient,
    round_id: &str,
) -> Result<Vec<Decision>, PgError> {
    let mut b = Binds::default();
    let round = b.bind(round_id.to_string());
    let sql = format!(
        "SELECT o.action, o.note, hub_iso(o.created_at) FROM operator_approvals o
         WHERE o.round_id = {round} ORDER BY o.created_at, o.id COLLATE \"C\""
    );
    all(rows(c, &sql, &b).await?, |r| {
        Ok(Decision {
            action: r.try_get(0)?,
            note: r.try_get(1)?,
            created_at: r.try_get(2)?,
        })
    })
}

/// Messages matching `cond` (on `m.`), after the cursor, newest first.
async fn message_list(
    c: &impl GenericClient,
    req: &PageRequest,
    cond: &str,
    b: &mut Binds,
) -> Result<Page<Message>, PgError> {
    let keyset = after(b, req, ("m.created_at", "m.id"));
    let limit = limit(b, req);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {cond} AND {keyset}
         ORDER BY m.created_at DESC, m.id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, b).await?, columns::message)?;
    Ok(finish(items, req.limit, |m| {
        (m.created_at.clone(), m.id.clone())
    }))
}

/// Messages, newest first (every sender and recipient; bodies included).
pub(crate) async fn messages(
    c: &impl GenericClient,
    req: &PageRequest,
) -> Result<Page<Message>, PgError> {
    let mut b = Binds::default();
    // As SQLite's bound: lets the created_at index bound the range.
    let bound = match &req.cursor {
        Some(cur) => time_cmp(&mut b, "m.created_at", "<=", cur.created_at()),
        None => "TRUE".into(),
    };
    message_list(c, req, &bound, &mut b).await
}

/// Messages carrying a round id of `task_id`, newest first.
pub(crate) async fn task_messages(
    c: &impl GenericClient,
    task_id: &str,
    req: &PageRequest,
) -> Result<Page<Message>, PgError> {
    let mut b = Binds::default();
    let task = b.bind(task_id.to_string());
    let cond = format!("m.round_id IN (SELECT id FROM rounds WHERE root_task_id = {task})");
    message_list(c, req, &cond, &mut b).await
}

/// Messages `agent` sent, newest first.
pub(crate) async fn sent_messages(
    c: &impl GenericClient,
    agent: &str,
    req: &PageRequest,
) -> Result<Page<Message>, PgError> {
    let mut b = Binds::default();
    let cond = format!("m.from_agent = {}", b.bind(agent.to_string()));
    message_list(c, req, &cond, &mut b).await
}

/// The messages delivered to `agent`, newest first, with its read state; only the
/// unread ones with `unread`. Keyset on (delivered_at, message_id).
pub(crate) async fn deliveries(
    c: &impl GenericClient,
    req: &PageRequest,
    agent: &str,
    unread: bool,
) -> Result<Page<Delivery>, PgError> {
    let mut b = Binds::default();
    let who = b.bind(agent.to_string());
    let read = if unread {
        // Its shard too: idx_recipients_unread leads with it (a delivery row is in
        // its recipient's shard, as the writer stores it).
        let shard = i32::from(crate::domain::shard::shard_of(agent).0);
        format!("r.read_at IS NULL AND r.shard = {}", b.bind(shard))
    } else {
        "TRUE".into()
    };
    let cond = match &req.cursor {
        Some(cur) => {
            let bound = time_cmp(&mut b, "r.delivered_at", "<=", cur.created_at());
            let keyset = keyset(
                &mut b,
                ("r.delivered_at", "r.message_id"),
                "<",
                (cur.created_at(), cur.id()),
            );
            format!("{bound} AND {keyset}")
        }
        None => "TRUE".into(),
    };
    let limit = limit(&mut b, req);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, hub_iso(r.read_at) AS delivery_read_at
         FROM message_recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.agent_id = {who} AND {read} AND {cond}
         ORDER BY r.delivered_at DESC, r.message_id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, &b).await?, |r| {
        Ok(Delivery {
            message: columns::message(r)?,
            read_at: r.try_get("delivery_read_at")?,
        })
    })?;
    Ok(finish(items, req.limit, |d| {
        (d.message.created_at.clone(), d.message.id.clone())
    }))
}

/// Whether `agent` is stored (in agents.env now, or before).
pub(crate) async fn agent_known(c: &impl GenericClient, agent: &str) -> Result<bool, PgError> {
    let stmt = c
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM agents WHERE id = $1)")
        .await?;
    Ok(c.query_one(&stmt, &[&agent]).await?.try_get(0)?)
}

/// Stored tasks per state, every state listed (0 when none).
pub(crate) async fn task_counts(c: &impl GenericClient) -> Result<Vec<(String, u64)>, PgError> {
    let b = Binds::default();
    let rows = rows(
        c,
        "SELECT status, COUNT(*) FROM root_tasks GROUP BY status",
        &b,
    )
    .await?;
    let counted = all(rows, |r| {
        let n: i64 = r.try_get(1)?;
        Ok((r.try_get::<_, String>(0)?, n as u64))
    })?;
    Ok(every_state(&counted))
}

/// `agent`'s assignments across every task, newest first.
pub(crate) async fn agent_assignments(
    c: &impl GenericClient,
    agent: &str,
    req: &PageRequest,
) -> Result<Page<Assignment>, PgError> {
    let mut b = Binds::default();
    let who = b.bind(agent.to_string());
    let cond = after(&mut b, req, ("a.created_at", "a.id"));
    let limit = limit(&mut b, req);
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments a WHERE a.agent_id = {who} AND {cond}
         ORDER BY a.created_at DESC, a.id COLLATE \"C\" DESC {limit}"
    );
    let items = all(rows(c, &sql, &b).await?, columns::assignment)?;
    Ok(finish(items, req.limit, |a| {
        (iso(a.created_at), a.id.clone())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_cast_as_sqlite_casts_them() {
        for (text, n) in [
            ("12", 12),
            ("  -7x", -7),
            ("+3", 3),
            ("abc", 0),
            ("", 0),
            ("12.9", 12),
            ("1e3", 1),
            ("99999999999999999999", i64::MAX),
            ("-99999999999999999999", i64::MIN),
            ("\t 5", 5),
            ("- 5", 0),
            ("0x10", 0),
        ] {
            assert_eq!(sqlite_integer(text), n, "{text:?}");
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            let cast: i64 = conn
                .query_row("SELECT CAST(?1 AS INTEGER)", [text], |r| r.get(0))
                .unwrap();
            assert_eq!(cast, n, "SQLite casts {text:?}");
        }
    }

    #[test]
    fn only_the_hubs_own_format_is_compared_as_a_time() {
        assert!(canonical("2026-11-25T06:40:00.123456+00:00"));
        for t in [
            "",
            "2026-11-25T06:40:00Z",
            "2026-11-25T06:40:00.123+00:00",
            "2026-11-25T07:40:00.123456+01:00",
            "yesterday",
        ] {
            assert!(!canonical(t), "{t}");
        }
        let mut b = Binds::default();
        assert_eq!(
            time_cmp(&mut b, "c", "<", "2026-11-25T06:40:00Z"),
            "hub_iso(c) COLLATE \"C\" < $1"
        );
    }
}
