//! Start-up: reconcile the `agents` table with `agents.env`, then read the live state
//! (agents, mail and locks here; tasks in [`super::load_tasks`]). Called by
//! [`super::Store::open`], which hands the [`Snapshot`] to the actors.

use super::StoreError;
use rusqlite::{params, Connection};

/// One agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentRow {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub registered_at: Option<String>,
    pub last_heartbeat: Option<String>,
}

/// Everything the actors start from.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub agents: Vec<AgentRow>,
    /// Messaging state by agent id.
    pub mail: std::collections::HashMap<String, MailState>,
    /// Every task with open work (neither completed nor closed), with everything
    /// under it. Finished tasks are read on demand.
    pub tasks: Vec<crate::domain::workflow::TaskState>,
    /// How many tasks are stored, open or not.
    pub task_count: usize,
    /// Stored locks (possibly lapsed).
    pub locks: Vec<crate::domain::lease::Lock>,
}

/// Make every agent of `agents.env` exist (the reference made callers register first
/// and crashed on foreign keys otherwise) and mark the others inactive.
/// `agents` is (id, token_hash).
pub(crate) fn sync_agents(
    conn: &mut Connection,
    agents: &[(String, String)],
    now: &str,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute("UPDATE agents SET is_active = 0", [])?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO agents (id, name, token_hash, is_active, created_at, updated_at)
             VALUES (?1, ?1, ?2, 1, ?3, ?3)
             ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash, is_active = 1",
        )?;
        for (id, hash) in agents {
            stmt.execute(params![id, hash, now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, capabilities, registered_at, last_heartbeat
         FROM agents WHERE is_active = 1 ORDER BY id",
    )?;
    let agents = stmt
        .query_map([], |r| {
            let caps: String = r.get(2)?;
            Ok(AgentRow {
                id: r.get(0)?,
                name: r.get(1)?,
                // Rows are only written by us as JSON arrays; anything else is treated as
                // empty rather than refusing to start.
                capabilities: serde_json::from_str(&caps).unwrap_or_default(),
                registered_at: r.get(3)?,
                last_heartbeat: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mail = load_mail(conn)?;
    let tasks = super::load_tasks::load_tasks(conn, super::load_tasks::Scope::Open)?;
    let task_count = super::load_tasks::count_tasks(conn)?;
    let locks = load_locks(conn)?;
    Ok(Snapshot {
        agents,
        mail,
        tasks,
        task_count,
        locks,
    })
}

/// Messaging state of one agent at start-up: the ids of its unread deliveries in
/// arrival order. Bodies, and what it sent and read, stay on disk ([`super::mail`]).
#[derive(Debug, Default)]
pub(crate) struct MailState {
    pub unread: Vec<String>,
}

pub(crate) fn message_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<crate::domain::message::Message> {
    Ok(crate::domain::message::Message {
        id: r.get("id")?,
        dedupe_key: r.get("dedupe_key")?,
        reply_to: r.get("reply_to")?,
        from_agent: r.get("from_agent")?,
        to_agent: r.get("to_agent")?,
        round_id: r.get("round_id")?,
        msg_type: r.get("msg_type")?,
        subject: r.get("subject")?,
        body: r.get("body")?,
        context_json: r.get("context_json")?,
        hop_count: r.get("hop_count")?,
        created_at: r.get("created_at")?,
    })
}

/// Every agent's unread deliveries by agent id, in arrival order: ids only, the
/// bodies stay on disk until pulled (`idx_recipients_unread`: the read history is
/// never scanned).
pub(crate) fn load_mail(
    conn: &Connection,
) -> Result<std::collections::HashMap<String, MailState>, StoreError> {
    let mut out: std::collections::HashMap<String, MailState> = Default::default();
    let mut stmt = conn.prepare(
        "SELECT agent_id, message_id FROM message_recipients
         WHERE read_at IS NULL ORDER BY agent_id, rowid",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let agent: String = r.get(0)?;
        out.entry(agent).or_default().unread.push(r.get(1)?);
    }
    Ok(out)
}

/// Stored locks. Fencing counters are read per key on first use
/// ([`fencing_counter`]): `lock_fencing` holds every key ever locked.
pub(crate) fn load_locks(conn: &Connection) -> Result<Vec<crate::domain::lease::Lock>, StoreError> {
    use crate::domain::time::parse_iso;
    let bad = |what: &str| StoreError::Corrupt(format!("locks has an unreadable {what}"));
    let mut stmt = conn.prepare(
        "SELECT id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token, expires_at, created_at FROM locks",
    )?;
    let mut rows = stmt.query([])?;
    let mut locks = Vec::new();
    while let Some(r) = rows.next()? {
        let expires: String = r.get(6)?;
        let created: String = r.get(7)?;
        locks.push(crate::domain::lease::Lock {
            id: r.get(0)?,
            lock_key: r.get(1)?,
            holder_agent_id: r.get(2)?,
            resource_type: r.get(3)?,
            resource_id: r.get(4)?,
            fencing_token: r.get::<_, i64>(5)? as u64,
            expires_at: parse_iso(&expires).ok_or_else(|| bad("expires_at"))?,
            created_at: parse_iso(&created).ok_or_else(|| bad("created_at"))?,
        });
    }
    Ok(locks)
}

/// The last fencing token handed out for `key` (0: never locked).
pub(crate) fn fencing_counter(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    use rusqlite::OptionalExtension;
    let n: Option<i64> = conn
        .prepare_cached("SELECT last_token FROM lock_fencing WHERE lock_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(n.unwrap_or(0) as u64)
}
