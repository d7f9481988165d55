//! Start-up: reconcile the `agents` table with `agents.env`, then read the live state
//! (agents, mail and locks here; tasks in [`super::load_tasks`]). Called by
//! [`super::Store::open`], which hands the [`Snapshot`] to the actors.

use super::load_tasks::Scope;
use super::StoreError;
use crate::domain::shard::Shards;
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
    /// The largest audit id stored ([`last_audit_id`]): ids made from now on
    /// must sort after it.
    pub last_audit_id: i64,
    /// The shards loaded: the hub built from it serves these only.
    pub shards: Shards,
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
    sync_agents_in(&tx, agents, now)?;
    tx.commit()?;
    Ok(())
}

/// [`sync_agents`] inside a transaction the caller holds (the writer's batch, for a
/// reload while running).
pub(crate) fn sync_agents_in(
    conn: &Connection,
    agents: &[(String, String)],
    now: &str,
) -> rusqlite::Result<()> {
    conn.execute("UPDATE agents SET is_active = 0", [])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO agents (id, name, token_hash, is_active, created_at, updated_at, shard)
         VALUES (?1, ?1, ?2, 1, ?3, ?3, ?4)
         ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash, is_active = 1",
    )?;
    for (id, hash) in agents {
        let shard = crate::domain::shard::shard_of(id).0;
        stmt.execute(params![id, hash, now, shard])?;
    }
    Ok(())
}

/// A condition (" AND ..." or nothing) on a `shard` column, and its parameters.
fn in_shards(shards: &Shards, column: &str) -> (String, Vec<String>) {
    match shards.condition(column) {
        Some((cond, param)) => (format!(" AND {cond}"), vec![param]),
        None => (String::new(), Vec::new()),
    }
}

/// The live state of `shards`: their active agents with their unread deliveries,
/// tasks with open work, and locks. What a node serves from (one node: every shard).
/// Nothing here reads history: each query uses a partial or shard index.
pub(crate) fn load_open_work(conn: &Connection, shards: &Shards) -> Result<Snapshot, StoreError> {
    let (cond, params) = in_shards(shards, "shard");
    let agents = agent_rows(conn, &format!("is_active = 1{cond}"), &params)?;
    let (mail_cond, mail_params) = in_shards(shards, "r.shard");
    let mail = load_mail(conn, &mail_cond, &mail_params)?;
    let tasks = super::load_tasks::load_tasks(conn, Scope::Open(shards))?;
    let task_count = super::load_tasks::count_tasks(conn)?;
    let locks = load_locks(conn, &cond, &params)?;
    Ok(Snapshot {
        agents,
        mail,
        tasks,
        task_count,
        locks,
        last_audit_id: last_audit_id(conn)?,
        shards: shards.clone(),
    })
}

/// The largest audit id stored (0 if none), ids at or above
/// [`ID_LIMIT`](crate::domain::audit_id::ID_LIMIT) left out: they are not the
/// hub's. One step down the primary key. Of every shard: the largest of all is at
/// least each shard's, and reading it costs no index on `shard`.
pub(crate) fn last_audit_id(conn: &Connection) -> Result<i64, StoreError> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM audit_events WHERE id < ?1")?
        .query_row([crate::domain::audit_id::ID_LIMIT], |r| r.get(0))?;
    Ok(max.unwrap_or(0))
}

/// One agent and its unread deliveries, as [`load_open_work`] reads them: for an
/// agent that starts being served after start-up (added while running, or its shard
/// taken over). `None` if it is not an active agent.
pub(crate) fn load_agent(
    conn: &Connection,
    id: &str,
) -> Result<Option<(AgentRow, MailState)>, StoreError> {
    let params = [id.to_string()];
    let Some(agent) = agent_rows(conn, "is_active = 1 AND id = ?", &params)?.pop() else {
        return Ok(None);
    };
    let mut mail = load_mail(conn, " AND r.agent_id = ?", &params)?;
    let state = mail.remove(id).unwrap_or_default();
    Ok(Some((agent, state)))
}

/// Agents matching `cond` (with `params`), by id.
fn agent_rows(
    conn: &Connection,
    cond: &str,
    params: &[String],
) -> Result<Vec<AgentRow>, StoreError> {
    let sql = format!(
        "SELECT id, name, capabilities, registered_at, last_heartbeat
         FROM agents WHERE {cond} ORDER BY id"
    );
    super::load_tasks::query_all(conn, &sql, params, |r| super::columns::agent(r))
}

/// Messaging state of one agent at start-up: the ids of its unread deliveries,
/// oldest first, with their sizes (for the inbox quota) and senders (for a purge
/// of one sender's). Bodies, and what it sent and read, stay on disk
/// ([`super::mail`]).
#[derive(Debug, Default)]
pub(crate) struct MailState {
    pub unread: Vec<UnreadRow>,
}

/// One unread delivery as loaded.
#[derive(Debug)]
pub(crate) struct UnreadRow {
    pub id: String,
    pub size: usize,
    pub from: String,
}

/// `Message::pull_size` in SQL, of the `messages` row `m`: byte lengths (a BLOB's
/// length is its bytes; a TEXT's would be characters) plus the same overhead.
const PULL_SIZE_SQL: &str =
    "length(CAST(m.id AS BLOB)) + coalesce(length(CAST(m.dedupe_key AS BLOB)), 0)
    + coalesce(length(CAST(m.reply_to AS BLOB)), 0) + length(CAST(m.from_agent AS BLOB))
    + coalesce(length(CAST(m.to_agent AS BLOB)), 0) + coalesce(length(CAST(m.round_id AS BLOB)), 0)
    + length(CAST(m.msg_type AS BLOB)) + length(CAST(m.subject AS BLOB))
    + length(CAST(m.body AS BLOB)) + length(CAST(m.context_json AS BLOB))
    + length(CAST(m.created_at AS BLOB))";

/// A `messages` row (every column, selected by name).
pub(crate) fn message_from_row(
    r: &rusqlite::Row<'_>,
) -> Result<crate::domain::message::Message, StoreError> {
    super::columns::message(r)
}

/// Unread deliveries by agent id, oldest first (by the message's created_at, then
/// id), of the rows matching `cond` (" AND ..." or empty, with `params`): ids only,
/// the bodies stay on disk until pulled. `idx_recipients_unread` (unread rows only)
/// gives the rows in that order: the read history is never scanned, nothing sorted.
fn load_mail(
    conn: &Connection,
    cond: &str,
    params: &[String],
) -> Result<std::collections::HashMap<String, MailState>, StoreError> {
    let mut out: std::collections::HashMap<String, MailState> = Default::default();
    // Sizes are read from the message rows of unread deliveries only (by primary
    // key): the read history is still not scanned. `cond` names columns of
    // `message_recipients` as `r.`.
    let mut stmt = conn.prepare(&format!(
        "SELECT r.agent_id, r.message_id, {PULL_SIZE_SQL}, m.from_agent
         FROM message_recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.read_at IS NULL{cond}
         ORDER BY r.agent_id, r.delivered_at, r.message_id"
    ))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let overhead = crate::domain::message::PULL_OVERHEAD_BYTES as i64;
    while let Some(r) = rows.next()? {
        let agent: String = r.get(0)?;
        let size: i64 = r.get(2)?;
        let size = usize::try_from(size + overhead).unwrap_or(0);
        out.entry(agent).or_default().unread.push(UnreadRow {
            id: r.get(1)?,
            size,
            from: r.get(3)?,
        });
    }
    Ok(out)
}

/// Stored locks. Fencing counters are read per key on first use
/// ([`fencing_counter`]): `lock_fencing` holds every key ever locked.
fn load_locks(
    conn: &Connection,
    cond: &str,
    params: &[String],
) -> Result<Vec<crate::domain::lease::Lock>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token, expires_at, created_at
         FROM locks WHERE 1{cond}"
    ))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut locks = Vec::new();
    while let Some(r) = rows.next()? {
        locks.push(lock_row(r)?);
    }
    Ok(locks)
}

/// A `locks` row, selected as `id, lock_key, holder_agent_id, resource_type,
/// resource_id, fencing_token, expires_at, created_at`.
pub(crate) fn lock_row(r: &rusqlite::Row<'_>) -> Result<crate::domain::lease::Lock, StoreError> {
    super::columns::lock(r)
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
