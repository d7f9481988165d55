//! Activation on PostgreSQL: the twins of SQLite's [`crate::store::load`] and
//! [`crate::store::load_tasks`], the live state entering memory (a node's shards at
//! start-up or take-over, one agent or task activated on demand) and the look-ups
//! that find a task. Same selection, same order, same values as SQLite's for the
//! same stored rows (`pg::conformance::reads_activation` compares them); rows are
//! decoded by the same [`crate::store::columns`] functions.
//!
//! The translation: `$n` parameters; a shard set is `shard = ANY($n)` with the
//! shard numbers as `integer[]` (SQLite: `IN (SELECT value FROM json_each(?))`),
//! and no condition at all for every shard, as in SQLite; flags are booleans; times
//! are selected as `hub_iso(col) AS col` (the hub's text, as SQLite stores it) and
//! ordered by the stored instant (qualified, `t.created_at`, so that ORDER BY does
//! not take the text alias: the same order, since the hub's text sorts as its
//! instant). Text keys are ordered `COLLATE "C"`: byte order, SQLite's BINARY,
//! whatever the database's collation.

use crate::domain::shard::{shard_of, Shards};
use crate::domain::task::{Assignment, Handoff, Round, Task};
use crate::domain::workflow::TaskState;
use crate::store::columns::{self, Columns};
use crate::store::load::{AgentRow, MailState, Snapshot, UnreadRow};
use crate::store::load_tasks::{Owned, Scope, OPEN_TASKS};
use crate::store::pg::PgError;
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

/// One query parameter of a statement built from a condition.
pub(super) enum Arg {
    Text(String),
    Texts(Vec<String>),
    /// Shard numbers, for `shard = ANY($n)`.
    Shards(Vec<i32>),
}

impl Arg {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Arg::Text(s) => s,
            Arg::Texts(v) => v,
            Arg::Shards(v) => v,
        }
    }
}

/// Every row of `sql` with `args`, mapped by `map`. The statement is prepared
/// through the connection's cache: the conditions come from a few fixed shapes.
pub(super) async fn query_all<T>(
    c: &impl GenericClient,
    sql: &str,
    args: &[Arg],
    map: impl Fn(&Row) -> Result<T, PgError>,
) -> Result<Vec<T>, PgError> {
    let stmt = c.prepare_cached(sql).await?;
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::param).collect();
    c.query(&stmt, &params).await?.iter().map(map).collect()
}

/// A condition (" AND {column} = ANY(${n})" or nothing) selecting `shards`, and its
/// parameter: SQLite's `Shards::condition`.
fn in_shards(shards: &Shards, column: &str, n: usize) -> (String, Vec<Arg>) {
    match shards {
        Shards::All => (String::new(), Vec::new()),
        Shards::Some(list) => (
            format!(" AND {column} = ANY(${n})"),
            vec![Arg::Shards(list.iter().map(|s| i32::from(s.0)).collect())],
        ),
    }
}

/// SQLite's `Scope::on`: a condition on a `root_task_id`-like column.
fn scope_on(scope: Scope, column: &str) -> (String, Vec<Arg>) {
    match scope {
        Scope::Open(shards) => {
            let (extra, args) = in_shards(shards, "shard", 1);
            (
                format!("{column} IN (SELECT id FROM root_tasks WHERE {OPEN_TASKS}{extra})"),
                args,
            )
        }
        Scope::Task(id) => (format!("{column} = $1"), vec![Arg::Text(id.to_string())]),
        #[cfg(test)]
        Scope::All => ("true".to_string(), Vec::new()),
    }
}

// --- load.rs ---

/// [`load_open_work_in`] in its own `REPEATABLE READ, READ ONLY` transaction on
/// `client`, so that every table is read at one instant (SQLite's reader sees one
/// snapshot per transaction too). Takes the client itself (`&mut`), not a
/// [`GenericClient`]: a transaction's isolation is set when it begins, and a
/// caller already inside one calls [`load_open_work_in`].
pub(crate) async fn load_open_work(
    client: &mut deadpool_postgres::Client,
    shards: &Shards,
) -> Result<Snapshot, PgError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let snapshot = load_open_work_in(&tx, shards).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// SQLite's `load_open_work` on `c` as it is: consistent only inside a transaction
/// of `REPEATABLE READ` or stricter (see [`load_open_work`]).
pub(crate) async fn load_open_work_in(
    c: &impl GenericClient,
    shards: &Shards,
) -> Result<Snapshot, PgError> {
    let (cond, args) = in_shards(shards, "shard", 1);
    let agents = agent_rows(c, &format!("is_active{cond}"), &args).await?;
    let (mail_cond, mail_args) = in_shards(shards, "r.shard", 1);
    let mail = load_mail(c, &mail_cond, &mail_args).await?;
    let tasks = load_tasks(c, Scope::Open(shards)).await?;
    let task_count = count_tasks(c).await?;
    let locks = load_locks(c, &cond, &args).await?;
    Ok(Snapshot {
        agents,
        mail,
        tasks,
        task_count,
        locks,
        last_audit_id: last_audit_id(c).await?,
        shards: shards.clone(),
    })
}

/// SQLite's `last_audit_id`: the largest audit id stored below `ID_LIMIT` (0 if
/// none), of every shard.
pub(crate) async fn last_audit_id(c: &impl GenericClient) -> Result<i64, PgError> {
    let stmt = c
        .prepare_cached("SELECT max(id) FROM audit_events WHERE id < $1")
        .await?;
    let row = c
        .query_one(&stmt, &[&crate::domain::audit_id::ID_LIMIT])
        .await?;
    let max: Option<i64> = row.try_get(0)?;
    Ok(max.unwrap_or(0))
}

/// SQLite's `load_agent`: one active agent and its unread deliveries; `None` if it
/// is not an active agent. The unread rows are also selected by the agent's shard
/// (every delivery row carries its agent's), which only lets PostgreSQL use
/// `idx_recipients_unread`: the same rows.
pub(crate) async fn load_agent(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<(AgentRow, MailState)>, PgError> {
    let args = [Arg::Text(id.to_string())];
    let Some(agent) = agent_rows(c, "is_active AND id = $1", &args).await?.pop() else {
        return Ok(None);
    };
    let mail_args = [
        Arg::Text(id.to_string()),
        Arg::Shards(vec![i32::from(shard_of(id).0)]),
    ];
    let mut mail = load_mail(c, " AND r.agent_id = $1 AND r.shard = ANY($2)", &mail_args).await?;
    let state = mail.remove(id).unwrap_or_default();
    Ok(Some((agent, state)))
}

/// Agents matching `cond` (with `args`), by id.
async fn agent_rows(
    c: &impl GenericClient,
    cond: &str,
    args: &[Arg],
) -> Result<Vec<AgentRow>, PgError> {
    let sql = format!(
        "SELECT id, name, capabilities, hub_iso(registered_at) AS registered_at,
                hub_iso(last_heartbeat) AS last_heartbeat
         FROM agents WHERE {cond} ORDER BY id COLLATE \"C\""
    );
    query_all(c, &sql, args, columns::agent).await
}

/// SQLite's `PULL_SIZE_SQL` (`Message::pull_size` of the `messages` row `m`): byte
/// lengths (`octet_length`), in bigint from the first term on.
const PULL_SIZE_SQL: &str = "octet_length(m.id)::bigint + coalesce(octet_length(m.dedupe_key), 0)
    + coalesce(octet_length(m.reply_to), 0) + octet_length(m.from_agent)
    + coalesce(octet_length(m.to_agent), 0) + coalesce(octet_length(m.round_id), 0)
    + octet_length(m.msg_type) + octet_length(m.subject)
    + octet_length(m.body) + octet_length(m.context_json)
    + octet_length(hub_iso(m.created_at))";

/// SQLite's `load_mail`: unread deliveries by agent id, oldest first (delivery
/// time, then message id), of the rows matching `cond` (on `r.`, with `args`).
async fn load_mail(
    c: &impl GenericClient,
    cond: &str,
    args: &[Arg],
) -> Result<HashMap<String, MailState>, PgError> {
    let sql = format!(
        "SELECT r.agent_id, r.message_id, {PULL_SIZE_SQL} AS size, m.from_agent
         FROM message_recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.read_at IS NULL{cond}
         ORDER BY r.agent_id COLLATE \"C\", r.delivered_at, r.message_id COLLATE \"C\""
    );
    let overhead = crate::domain::message::PULL_OVERHEAD_BYTES as i64;
    let rows = query_all(c, &sql, args, |r| {
        let size = r.int("size")?;
        Ok((
            r.text("agent_id")?,
            UnreadRow {
                id: r.text("message_id")?,
                size: usize::try_from(size + overhead).unwrap_or(0),
                from: r.text("from_agent")?,
            },
        ))
    })
    .await?;
    let mut out: HashMap<String, MailState> = HashMap::new();
    for (agent, row) in rows {
        out.entry(agent).or_default().unread.push(row);
    }
    Ok(out)
}

/// SQLite's `load_locks`: stored locks matching `cond` (" AND ..." or empty). In
/// lock key order; SQLite's has none (its callers do not depend on one).
async fn load_locks(
    c: &impl GenericClient,
    cond: &str,
    args: &[Arg],
) -> Result<Vec<crate::domain::lease::Lock>, PgError> {
    let sql = format!(
        "SELECT id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token,
                hub_iso(expires_at) AS expires_at, hub_iso(created_at) AS created_at
         FROM locks WHERE true{cond} ORDER BY lock_key COLLATE \"C\""
    );
    query_all(c, &sql, args, columns::lock).await
}

/// SQLite's `fencing_counter`: the last fencing token handed out for `key` (0:
/// never locked).
pub(crate) async fn fencing_counter(c: &impl GenericClient, key: &str) -> Result<u64, PgError> {
    let stmt = c
        .prepare_cached("SELECT last_token FROM lock_fencing WHERE lock_key = $1")
        .await?;
    let n: Option<i64> = match c.query_opt(&stmt, &[&key]).await? {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    Ok(n.unwrap_or(0) as u64)
}

/// SQLite's `sync_agents`: make every agent of `agents` (id, token hash) exist and
/// be active, mark the others inactive; in its own transaction on `client`,
/// through the PostgreSQL writer's statements for `Op::AgentsSync`.
pub(crate) async fn sync_agents(
    client: &mut deadpool_postgres::Client,
    agents: &[(String, String)],
    now: &str,
) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    crate::store::pg::apply::sync_agents(&tx, agents, now).await?;
    tx.commit().await?;
    Ok(())
}

// --- load_tasks.rs ---

/// SQLite's `load_tasks`: the tasks of `scope`, oldest first, each with its rows in
/// stored order; rows of a task that is not stored are left out.
pub(crate) async fn load_tasks(
    c: &impl GenericClient,
    scope: Scope<'_>,
) -> Result<Vec<TaskState>, PgError> {
    let mut tasks: Vec<TaskState> = root_tasks(c, scope)
        .await?
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
    for round in rounds(c, scope).await? {
        if let Some(i) = of_task(&round.task_id) {
            tasks[i].rounds.push(round);
        }
    }
    for a in assignments(c, scope).await? {
        if let Some(i) = of_task(&a.task_id) {
            tasks[i].assignments.push(a);
        }
    }
    for h in handoffs(c, scope).await? {
        if let Some(i) = of_task(&h.task_id) {
            tasks[i].handoffs.push(h);
        }
    }
    Ok(tasks)
}

/// Tasks with their message budget used so far.
async fn root_tasks(c: &impl GenericClient, scope: Scope<'_>) -> Result<Vec<(Task, u32)>, PgError> {
    let (cond, args) = scope_on(scope, "t.id");
    let sql = format!(
        "SELECT t.id, t.title, t.description, t.status, t.dispatcher_agent_id,
                hub_iso(t.created_at) AS created_at, hub_iso(t.updated_at) AS updated_at,
                t.message_count
         FROM root_tasks t WHERE {cond} ORDER BY t.created_at, t.id COLLATE \"C\""
    );
    query_all(c, &sql, &args, |r| {
        Ok((columns::task(r)?, r.uint("message_count")?))
    })
    .await
}

async fn rounds(c: &impl GenericClient, scope: Scope<'_>) -> Result<Vec<Round>, PgError> {
    let (cond, args) = scope_on(scope, "root_task_id");
    let sql = format!(
        "SELECT id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                review_verdict, review_note, hub_iso(created_at) AS created_at,
                hub_iso(updated_at) AS updated_at
         FROM rounds WHERE {cond} ORDER BY root_task_id COLLATE \"C\", round_number"
    );
    query_all(c, &sql, &args, columns::round).await
}

/// SQLite's `ASSIGNMENT_COLUMNS`, of `assignments a`, times as the hub's text.
const ASSIGNMENT_COLUMNS: &str =
    "a.id, a.round_id, a.root_task_id, a.agent_id, a.goal, a.status, a.progress_note,
     hub_iso(a.claimed_at) AS claimed_at, hub_iso(a.lease_expires_at) AS lease_expires_at,
     a.handoff_id, hub_iso(a.created_at) AS created_at, hub_iso(a.updated_at) AS updated_at,
     a.seq";

/// Each task's in the order it created them (`seq`).
async fn assignments(c: &impl GenericClient, scope: Scope<'_>) -> Result<Vec<Assignment>, PgError> {
    let (cond, args) = scope_on(scope, "a.root_task_id");
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments a WHERE {cond}
         ORDER BY a.root_task_id COLLATE \"C\", a.seq"
    );
    query_all(c, &sql, &args, columns::assignment).await
}

/// SQLite's `assignments_of_agent`: an agent's assignments across every task,
/// newest first, at most `limit`.
pub(crate) async fn assignments_of_agent(
    c: &impl GenericClient,
    agent: &str,
    limit: usize,
) -> Result<Vec<Assignment>, PgError> {
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments a WHERE a.agent_id = $1
         ORDER BY a.created_at DESC, a.id COLLATE \"C\" DESC LIMIT $2"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(&stmt, &[&agent, &limit])
        .await?
        .iter()
        .map(columns::assignment)
        .collect()
}

/// Each task's in the order they were submitted (the id orders handoffs of one
/// microsecond).
async fn handoffs(c: &impl GenericClient, scope: Scope<'_>) -> Result<Vec<Handoff>, PgError> {
    let (cond, args) = scope_on(scope, "h.root_task_id");
    let sql = format!(
        "SELECT h.id, h.assignment_id, h.round_id, h.root_task_id, h.from_agent, h.branch,
                h.commit_hash, h.changed_files, h.tests_run, h.risks, h.next_steps, h.notes,
                hub_iso(h.created_at) AS created_at
         FROM handoffs h WHERE {cond}
         ORDER BY h.root_task_id COLLATE \"C\", h.created_at, h.id COLLATE \"C\""
    );
    query_all(c, &sql, &args, columns::handoff).await
}

/// SQLite's `owner_of`: the task owning a round, assignment or handoff id.
pub(crate) async fn owner_of(
    c: &impl GenericClient,
    table: Owned,
    id: &str,
) -> Result<Option<String>, PgError> {
    let sql = match table {
        Owned::Round => "SELECT root_task_id FROM rounds WHERE id = $1",
        Owned::Assignment => "SELECT root_task_id FROM assignments WHERE id = $1",
        Owned::Handoff => "SELECT root_task_id FROM handoffs WHERE id = $1",
    };
    let stmt = c.prepare_cached(sql).await?;
    match c.query_opt(&stmt, &[&id]).await? {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

/// SQLite's `task_exists`: whether task `id` is stored.
pub(crate) async fn task_exists(c: &impl GenericClient, id: &str) -> Result<bool, PgError> {
    let stmt = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM root_tasks WHERE id = $1)")
        .await?;
    Ok(c.query_one(&stmt, &[&id]).await?.try_get(0)?)
}

/// SQLite's `count_tasks`: how many tasks are stored, as the writer keeps count.
pub(crate) async fn count_tasks(c: &impl GenericClient) -> Result<usize, PgError> {
    let stmt = c
        .prepare_cached("SELECT value FROM hub_counters WHERE name = 'tasks'")
        .await?;
    let n: i64 = c.query_one(&stmt, &[]).await?.try_get(0)?;
    Ok(n.max(0) as usize)
}
