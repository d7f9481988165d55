//! Applying a batch of ops inside one transaction: one function per op, grouped by
//! table family (agents; messages and their read state; the task workflow; locks and
//! fencing; audit). Pure SQL, no decisions. Called only by the writer thread
//! ([`super::writer`]) through [`apply_batch`].
//!
//! Every statement is keyed by the row's own values (upserts and deletes by key,
//! inserts that ignore a stored key, counters set or moved only with an insert or
//! delete that happened), so a batch applied again leaves the state of applying it
//! once (cluster.md §3; `replay_tests`).

use super::op::{AuditRow, Op};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{Assignment, Handoff, Round, Task};
use crate::domain::time::iso;
use rusqlite::{params, Params, Transaction};
use std::collections::HashMap;

/// The `shard` column of a row owned by `owner` (see [`crate::domain::shard`]).
fn shard(owner: &str) -> i64 {
    i64::from(crate::domain::shard::shard_of(owner).0)
}

/// Apply `ops` in order, except heartbeats: only the last heartbeat of each agent in
/// the batch is written, after everything else (a heartbeat touches only its own
/// column, so moving it later changes nothing but saves rows).
pub(crate) fn apply_batch<'a>(
    tx: &Transaction<'_>,
    ops: impl IntoIterator<Item = &'a Op>,
) -> rusqlite::Result<()> {
    // Agent id -> time of its latest heartbeat in this batch.
    let mut heartbeats: HashMap<&str, &str> = HashMap::new();
    for op in ops {
        apply_one(tx, op, &mut heartbeats)?;
    }
    write_heartbeats(tx, &heartbeats)
}

/// Write one op, except a heartbeat: that is only recorded in `heartbeats`, for
/// [`apply_batch`] to write after the rest. This is the only match over [`Op`], so
/// no path writes heartbeats one op at a time.
fn apply_one<'a>(
    tx: &Transaction<'_>,
    op: &'a Op,
    heartbeats: &mut HashMap<&'a str, &'a str>,
) -> rusqlite::Result<()> {
    match op {
        Op::AgentHeartbeat { id, at } => {
            heartbeats.insert(id, at);
        }
        Op::AgentRegister {
            id,
            name,
            capabilities_json,
            at,
        } => register_agent(tx, id, name, capabilities_json, at)?,
        Op::AgentsSync { agents, at } => super::load::sync_agents_in(tx, agents, at)?,
        Op::MessageInsert {
            message,
            recipients,
        } => insert_message(tx, message, recipients)?,
        // SQLite serves every shard: no recipient is elsewhere (and no quota is
        // counted cluster-wide). Kept in step with PostgreSQL for the rest.
        Op::MessageElsewhere {
            message,
            recipients,
            ..
        } => insert_message(tx, message, recipients)?,
        Op::QuotaFree { .. } => {}
        Op::OutboxTaken { message, agent } => exec(
            tx,
            "INSERT OR IGNORE INTO message_recipients (message_id, agent_id, delivered_at, shard) VALUES (?1, ?2, ?3, ?4)",
            params![message.id, agent, message.created_at, shard(agent)],
        )?,
        Op::MessageAck {
            agent,
            message_ids,
            at,
        } => ack_messages(tx, agent, message_ids, at)?,
        Op::DeliveriesPurge {
            agent,
            from,
            deleted,
        } => deleted.set(purge_deliveries(tx, agent, from.as_deref())?),
        Op::TaskUpsert(t) => upsert_task(tx, t)?,
        Op::TaskCreated(t) => create_task(tx, t)?,
        // Run by the writer after the batch's transaction (VACUUM cannot run in one).
        Op::Vacuum { .. } | Op::Mark => {}
        // Groups only shape batches; forwarded calls (and so their log) exist in
        // cluster mode only.
        Op::Begin(_) | Op::End { .. } => {}
        Op::PruneMessages(ids) => super::prune::delete_messages(tx, ids)?,
        Op::PruneTasks(ids) => super::prune::delete_tasks(tx, ids)?,
        Op::PruneAudit(ids) => super::prune::delete_audit(tx, ids)?,
        Op::TaskMessageCount { task_id, count } => exec(
            tx,
            "UPDATE root_tasks SET message_count = ?2 WHERE id = ?1",
            params![task_id, count],
        )?,
        Op::RoundUpsert(r) => upsert_round(tx, r)?,
        Op::AssignmentUpsert(a) => upsert_assignment(tx, a)?,
        Op::AssignmentDelete { id, .. } => delete_assignment(tx, id)?,
        Op::HandoffInsert(h) => insert_handoff(tx, h)?,
        Op::Approval {
            id,
            task_id,
            round_id,
            action,
            note,
            at,
        } => insert_approval(tx, id, task_id, round_id, action, note, at)?,
        Op::LockUpsert { lock, .. } => upsert_lock(tx, lock)?,
        Op::LockDelete { key, id, .. } => delete_lock(tx, key, id)?,
        Op::Audit(row) => insert_audit(tx, row)?,
    }
    Ok(())
}

/// Prepare (cached) and run one statement.
fn exec(tx: &Transaction<'_>, sql: &str, params: impl Params) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute(params)?;
    Ok(())
}

// Agents.

fn register_agent(
    tx: &Transaction<'_>,
    id: &str,
    name: &str,
    capabilities_json: &str,
    at: &str,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "UPDATE agents SET name = ?2, capabilities = ?3, is_active = 1,
                                   registered_at = ?4, updated_at = ?4
                 WHERE id = ?1",
        params![id, name, capabilities_json, at],
    )
}

/// `heartbeats` is agent id -> time; see [`apply_batch`].
fn write_heartbeats(
    tx: &Transaction<'_>,
    heartbeats: &HashMap<&str, &str>,
) -> rusqlite::Result<()> {
    if heartbeats.is_empty() {
        return Ok(());
    }
    let mut stmt =
        tx.prepare_cached("UPDATE agents SET last_heartbeat = ?2, updated_at = ?2 WHERE id = ?1")?;
    for (id, at) in heartbeats {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

// Messages, their recipients and read state.

fn insert_message(
    tx: &Transaction<'_>,
    m: &Message,
    recipients: &[String],
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR IGNORE INTO messages (id, dedupe_key, reply_to, from_agent, to_agent, round_id,
                     msg_type, subject, body, context_json, hop_count, is_read, created_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13)",
        params![
            m.id,
            m.dedupe_key,
            m.reply_to,
            m.from_agent,
            m.to_agent,
            m.round_id,
            m.msg_type,
            m.subject,
            m.body,
            m.context_json,
            m.hop_count,
            m.created_at,
            shard(&m.from_agent)
        ],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO message_recipients (message_id, agent_id, delivered_at, shard) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in recipients {
        stmt.execute(params![m.id, r, m.created_at, shard(r)])?;
    }
    Ok(())
}

fn ack_messages(
    tx: &Transaction<'_>,
    agent: &str,
    message_ids: &[String],
    at: &str,
) -> rusqlite::Result<()> {
    let mut recip = tx.prepare_cached(
        "UPDATE message_recipients SET read_at = ?3 WHERE message_id = ?1 AND agent_id = ?2 AND read_at IS NULL",
    )?;
    let mut reads = tx.prepare_cached(
        "INSERT OR IGNORE INTO message_reads (message_id, agent_id, read_at, shard) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut direct =
        tx.prepare_cached("UPDATE messages SET is_read = 1 WHERE id = ?1 AND to_agent = ?2")?;
    let agent_shard = shard(agent);
    for id in message_ids {
        recip.execute(params![id, agent, at])?;
        reads.execute(params![id, agent, at, agent_shard])?;
        direct.execute(params![id, agent])?;
    }
    Ok(())
}

/// Delete `agent`'s deliveries (of messages `from` sent, if given); returns how
/// many. Found through idx_recipients_agent, each sender checked by primary key:
/// the work is the agent's deliveries, never the whole history.
fn purge_deliveries(
    tx: &Transaction<'_>,
    agent: &str,
    from: Option<&str>,
) -> rusqlite::Result<u64> {
    let n = match from {
        None => tx
            .prepare_cached("DELETE FROM message_recipients WHERE agent_id = ?1")?
            .execute(params![agent])?,
        Some(from) => tx
            .prepare_cached(
                "DELETE FROM message_recipients WHERE agent_id = ?1 AND EXISTS
                     (SELECT 1 FROM messages m WHERE m.id = message_recipients.message_id AND m.from_agent = ?2)",
            )?
            .execute(params![agent, from])?,
    };
    Ok(n as u64)
}

// The task workflow: tasks, rounds, assignments, handoffs, operator approvals.

fn create_task(tx: &Transaction<'_>, t: &Task) -> rusqlite::Result<()> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO root_tasks (id, title, description, status, dispatcher_agent_id, created_at, updated_at, shard)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            t.id,
            t.title,
            t.description,
            t.status.as_str(),
            t.dispatcher_agent_id,
            iso(t.created_at),
            iso(t.updated_at),
            shard(&t.id)
        ])?;
    exec(
        tx,
        "UPDATE hub_counters SET value = value + ?1 WHERE name = 'tasks'",
        params![inserted as i64],
    )
}

fn upsert_task(tx: &Transaction<'_>, t: &Task) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO root_tasks (id, title, description, status, dispatcher_agent_id, created_at, updated_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET title = excluded.title, description = excluded.description,
                     status = excluded.status, updated_at = excluded.updated_at",
        params![
            t.id,
            t.title,
            t.description,
            t.status.as_str(),
            t.dispatcher_agent_id,
            iso(t.created_at),
            iso(t.updated_at),
            shard(&t.id)
        ],
    )
}

fn upsert_round(tx: &Transaction<'_>, r: &Round) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO rounds (id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                     review_verdict, review_note, created_at, updated_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, plan_json = excluded.plan_json,
                     operator_note = excluded.operator_note, rejected = excluded.rejected,
                     review_verdict = excluded.review_verdict, review_note = excluded.review_note,
                     updated_at = excluded.updated_at",
        params![
            r.id,
            r.task_id,
            r.round_number,
            r.status.as_str(),
            r.plan_json,
            r.operator_note,
            r.rejected,
            r.review_verdict,
            r.review_note,
            iso(r.created_at),
            iso(r.updated_at),
            shard(&r.task_id)
        ],
    )
}

fn upsert_assignment(tx: &Transaction<'_>, a: &Assignment) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO assignments (id, round_id, root_task_id, agent_id, goal, status, progress_note,
                     claimed_at, lease_expires_at, handoff_id, created_at, updated_at, shard, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, progress_note = excluded.progress_note,
                     claimed_at = excluded.claimed_at, lease_expires_at = excluded.lease_expires_at,
                     handoff_id = excluded.handoff_id, updated_at = excluded.updated_at",
        params![
            a.id,
            a.round_id,
            a.task_id,
            a.agent_id,
            a.goal,
            a.status.as_str(),
            a.progress_note,
            a.claimed_at.map(iso),
            a.lease_expires_at.map(iso),
            a.handoff_id,
            iso(a.created_at),
            iso(a.updated_at),
            shard(&a.task_id),
            a.seq
        ],
    )
}

fn delete_assignment(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    exec(tx, "DELETE FROM assignments WHERE id = ?1", params![id])
}

/// A handoff's string lists are stored as JSON array text.
fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn insert_handoff(tx: &Transaction<'_>, h: &Handoff) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR IGNORE INTO handoffs (id, assignment_id, round_id, root_task_id, from_agent, branch,
                     commit_hash, changed_files, tests_run, risks, next_steps, notes, created_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            h.id,
            h.assignment_id,
            h.round_id,
            h.task_id,
            h.from_agent,
            h.branch,
            h.commit_hash,
            json_list(&h.changed_files),
            json_list(&h.tests_run),
            json_list(&h.risks),
            json_list(&h.next_steps),
            h.notes,
            iso(h.created_at),
            shard(&h.task_id)
        ],
    )
}

fn insert_approval(
    tx: &Transaction<'_>,
    id: &str,
    task_id: &str,
    round_id: &str,
    action: &str,
    note: &str,
    at: &str,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR IGNORE INTO operator_approvals (id, round_id, action, note, created_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, round_id, action, note, at, shard(task_id)],
    )
}

// Locks and fencing counters.

/// The lock row, and its key's fencing counter (which only grows). A grant older
/// than the stored one (a batch applied again after newer grants) changes neither.
fn upsert_lock(tx: &Transaction<'_>, l: &Lock) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO locks (id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token, expires_at, created_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(lock_key) DO UPDATE SET id = excluded.id, holder_agent_id = excluded.holder_agent_id,
                     resource_type = excluded.resource_type, resource_id = excluded.resource_id,
                     fencing_token = excluded.fencing_token, expires_at = excluded.expires_at,
                     created_at = excluded.created_at
                 WHERE excluded.fencing_token >= locks.fencing_token",
        params![
            l.id,
            l.lock_key,
            l.holder_agent_id,
            l.resource_type,
            l.resource_id,
            l.fencing_token as i64,
            iso(l.expires_at),
            iso(l.created_at),
            shard(&l.lock_key)
        ],
    )?;
    exec(
        tx,
        "INSERT INTO lock_fencing (lock_key, last_token, shard) VALUES (?1, ?2, ?3)
                 ON CONFLICT(lock_key) DO UPDATE SET last_token = MAX(last_token, excluded.last_token)",
        params![l.lock_key, l.fencing_token as i64, shard(&l.lock_key)],
    )
}

fn delete_lock(tx: &Transaction<'_>, key: &str, id: &str) -> rusqlite::Result<()> {
    exec(
        tx,
        "DELETE FROM locks WHERE lock_key = ?1 AND id = ?2",
        params![key, id],
    )
}

// Audit.

/// By its id: applied again (a retried batch), the row is already there and stays
/// as it is. PostgreSQL takes the same statement (with `$n` parameters).
fn insert_audit(tx: &Transaction<'_>, a: &AuditRow) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO audit_events (id, event_type, entity_type, entity_id, actor, payload_json, created_at, shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO NOTHING",
        params![
            a.id,
            a.event_type,
            a.entity_type,
            a.entity_id,
            a.actor,
            a.payload_json,
            a.at,
            shard(&a.entity_id)
        ],
    )
}
