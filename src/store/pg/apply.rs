//! Applying a batch of ops inside one PostgreSQL transaction: the PostgreSQL twin
//! of [`crate::store::apply`] (SQLite), statement for statement, with the epoch
//! fence first. Pure SQL, no decisions; nothing calls it while serving yet (the
//! writer of cluster.md §3 will).
//!
//! The translation from SQLite: `$n` parameters; `INSERT OR IGNORE` is `ON CONFLICT
//! DO NOTHING` (no target: any unique key, as OR IGNORE); flags are booleans;
//! two-argument `MAX` is `GREATEST`. Times are the ops' ISO 8601 text, cast with
//! `$n::text::timestamptz` so that the parameter stays text (no chrono feature in
//! tokio-postgres, and the value stored is exactly the instant SQLite stores as
//! text). Small integers are bound as bigint and narrowed by PostgreSQL's
//! assignment cast, which refuses an out-of-range value instead of wrapping it.
//! Retention deletes a whole list per statement (`= ANY($1)`): one round trip
//! instead of one per id, with the same rows deleted.

use super::{Epoch, PgError, ShardId, Transaction};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{Assignment, Handoff, Round, Task};
use crate::domain::time::iso;
use crate::store::op::{AuditRow, Op};
use std::collections::{HashMap, HashSet};
use tokio_postgres::types::ToSql;

/// The ops of one shard, submitted under the epoch the node held it at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tagged<'a> {
    pub shard: ShardId,
    pub epoch: Epoch,
    pub ops: &'a [Op],
}

/// The `shard` column of a row owned by `owner`.
fn shard(owner: &str) -> i32 {
    i32::from(crate::domain::shard::shard_of(owner).0)
}

/// Fence the batch on its shards' epochs (its first statement), then apply the ops
/// of every shard still held, in order, heartbeats last as in SQLite. Returns the
/// fenced shards, whose ops were not applied: nothing was written before the fence,
/// so leaving them out equals the rollback and retry without them of
/// [`super::fence`]. The caller commits `tx`.
pub(crate) async fn apply_batch(
    tx: &Transaction<'_>,
    batch: &[Tagged<'_>],
) -> Result<Vec<ShardId>, PgError> {
    let ops: Vec<TaggedOp<'_>> = batch
        .iter()
        .flat_map(|t| {
            t.ops.iter().map(|op| TaggedOp {
                op,
                tags: vec![(t.shard, t.epoch)],
            })
        })
        .collect();
    apply_ops(tx, &ops).await
}

/// One op and the (shard, epoch) of every shard it writes in, as the node held
/// them when it queued the op.
#[derive(Debug, Clone)]
pub(crate) struct TaggedOp<'a> {
    pub op: &'a Op,
    pub tags: Vec<(ShardId, Epoch)>,
}

/// The writer's form of [`apply_batch`]: the ops in their queue order (a delivery
/// needs its agent's row, whatever shard each is in), each fenced on all of its
/// shards. An op with a fenced shard is left out whole.
pub(crate) async fn apply_ops(
    tx: &Transaction<'_>,
    ops: &[TaggedOp<'_>],
) -> Result<Vec<ShardId>, PgError> {
    let mut tags: Vec<(ShardId, Epoch)> = ops.iter().flat_map(|o| o.tags.iter().copied()).collect();
    tags.sort();
    tags.dedup();
    let fenced = if tags.is_empty() {
        Vec::new()
    } else {
        super::fence(tx, &tags).await?
    };
    let skip: HashSet<ShardId> = fenced.iter().copied().collect();
    // Agent id -> time of its latest heartbeat in this batch.
    let mut heartbeats: HashMap<&str, &str> = HashMap::new();
    for o in ops {
        if o.tags.iter().all(|(shard, _)| !skip.contains(shard)) {
            apply_one(tx, o.op, &mut heartbeats).await?;
        }
    }
    write_heartbeats(tx, &heartbeats).await?;
    Ok(fenced)
}

/// Write one op, except a heartbeat (recorded for [`apply_batch`] to write last).
/// Exhaustive: a new op kind does not compile until PostgreSQL writes it.
async fn apply_one<'a>(
    tx: &Transaction<'_>,
    op: &'a Op,
    heartbeats: &mut HashMap<&'a str, &'a str>,
) -> Result<(), PgError> {
    match op {
        Op::AgentHeartbeat { id, at } => {
            heartbeats.insert(id, at);
        }
        Op::AgentRegister {
            id,
            name,
            capabilities_json,
            at,
        } => register_agent(tx, id, name, capabilities_json, at).await?,
        Op::AgentsSync { agents, at } => sync_agents(tx, agents, at).await?,
        Op::MessageInsert {
            message,
            recipients,
        } => insert_message(tx, message, recipients).await?,
        Op::MessageAck {
            agent,
            message_ids,
            at,
        } => ack_messages(tx, agent, message_ids, at).await?,
        Op::DeliveriesPurge {
            agent,
            from,
            deleted,
        } => deleted.set(purge_deliveries(tx, agent, from.as_deref()).await?),
        Op::TaskUpsert(t) => upsert_task(tx, t).await?,
        Op::TaskCreated(t) => create_task(tx, t).await?,
        // SQLite runs its VACUUM after the transaction; PostgreSQL's autovacuum
        // gives space back by itself, and a mark writes nothing in either.
        Op::Vacuum { .. } | Op::Mark => {}
        Op::PruneMessages(ids) => delete_messages(tx, ids).await?,
        Op::PruneTasks(ids) => delete_tasks(tx, ids).await?,
        Op::PruneAudit(ids) => {
            exec(tx, "DELETE FROM audit_events WHERE id = ANY($1)", &[ids]).await?;
        }
        Op::TaskMessageCount { task_id, count } => {
            exec(
                tx,
                "UPDATE root_tasks SET message_count = $2 WHERE id = $1",
                &[task_id, &i64::from(*count)],
            )
            .await?;
        }
        Op::RoundUpsert(r) => upsert_round(tx, r).await?,
        Op::AssignmentUpsert(a) => upsert_assignment(tx, a).await?,
        Op::AssignmentDelete { id, .. } => {
            exec(tx, "DELETE FROM assignments WHERE id = $1", &[id]).await?;
        }
        Op::HandoffInsert(h) => insert_handoff(tx, h).await?,
        Op::Approval {
            id,
            task_id,
            round_id,
            action,
            note,
            at,
        } => {
            exec(
                tx,
                "INSERT INTO operator_approvals (id, round_id, action, note, created_at, shard)
                 VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6)
                 ON CONFLICT DO NOTHING",
                &[id, round_id, action, note, at, &shard(task_id)],
            )
            .await?;
        }
        Op::LockUpsert { lock, .. } => upsert_lock(tx, lock).await?,
        Op::LockDelete { key, id, .. } => {
            exec(
                tx,
                "DELETE FROM locks WHERE lock_key = $1 AND id = $2",
                &[key, id],
            )
            .await?;
        }
        Op::Audit(row) => insert_audit(tx, row).await?,
    }
    Ok(())
}

/// Prepare (cached on the connection) and run one statement; the rows it changed.
async fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, PgError> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

// Agents.

async fn register_agent(
    tx: &Transaction<'_>,
    id: &str,
    name: &str,
    capabilities_json: &str,
    at: &str,
) -> Result<(), PgError> {
    exec(
        tx,
        "UPDATE agents SET name = $2, capabilities = $3, is_active = true,
                registered_at = $4::text::timestamptz, updated_at = $4::text::timestamptz
          WHERE id = $1",
        &[&id, &name, &capabilities_json, &at],
    )
    .await?;
    Ok(())
}

/// SQLite's `load::sync_agents_in`: every listed agent exists and is active, the
/// others are kept but inactive.
pub(crate) async fn sync_agents(
    tx: &Transaction<'_>,
    agents: &[(String, String)],
    at: &str,
) -> Result<(), PgError> {
    exec(tx, "UPDATE agents SET is_active = false", &[]).await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO agents (id, name, token_hash, is_active, created_at, updated_at, shard)
             VALUES ($1, $1, $2, true, $3::text::timestamptz, $3::text::timestamptz, $4)
             ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, is_active = true",
        )
        .await?;
    for (id, hash) in agents {
        tx.execute(&stmt, &[id, hash, &at, &shard(id)]).await?;
    }
    Ok(())
}

/// `heartbeats` is agent id -> time; see [`apply_batch`].
async fn write_heartbeats(
    tx: &Transaction<'_>,
    heartbeats: &HashMap<&str, &str>,
) -> Result<(), PgError> {
    if heartbeats.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE agents SET last_heartbeat = $2::text::timestamptz,
                    updated_at = $2::text::timestamptz
              WHERE id = $1",
        )
        .await?;
    for (id, at) in heartbeats {
        tx.execute(&stmt, &[id, at]).await?;
    }
    Ok(())
}

// Messages, their recipients and read state.

async fn insert_message(
    tx: &Transaction<'_>,
    m: &Message,
    recipients: &[String],
) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO messages (id, dedupe_key, reply_to, from_agent, to_agent, round_id,
                msg_type, subject, body, context_json, hop_count, is_read, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::bigint, false,
                 $12::text::timestamptz, $13)
         ON CONFLICT DO NOTHING",
        &[
            &m.id,
            &m.dedupe_key,
            &m.reply_to,
            &m.from_agent,
            &m.to_agent,
            &m.round_id,
            &m.msg_type,
            &m.subject,
            &m.body,
            &m.context_json,
            &m.hop_count,
            &m.created_at,
            &shard(&m.from_agent),
        ],
    )
    .await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO message_recipients (message_id, agent_id, delivered_at, shard)
             VALUES ($1, $2, $3::text::timestamptz, $4)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    for r in recipients {
        tx.execute(&stmt, &[&m.id, r, &m.created_at, &shard(r)])
            .await?;
    }
    Ok(())
}

async fn ack_messages(
    tx: &Transaction<'_>,
    agent: &str,
    message_ids: &[String],
    at: &str,
) -> Result<(), PgError> {
    let recip = tx
        .prepare_cached(
            "UPDATE message_recipients SET read_at = $3::text::timestamptz
              WHERE message_id = $1 AND agent_id = $2 AND read_at IS NULL",
        )
        .await?;
    let reads = tx
        .prepare_cached(
            "INSERT INTO message_reads (message_id, agent_id, read_at, shard)
             VALUES ($1, $2, $3::text::timestamptz, $4)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let direct = tx
        .prepare_cached("UPDATE messages SET is_read = true WHERE id = $1 AND to_agent = $2")
        .await?;
    let agent_shard = shard(agent);
    for id in message_ids {
        tx.execute(&recip, &[id, &agent, &at]).await?;
        tx.execute(&reads, &[id, &agent, &at, &agent_shard]).await?;
        tx.execute(&direct, &[id, &agent]).await?;
    }
    Ok(())
}

/// Delete `agent`'s deliveries (of messages `from` sent, if given); returns how many.
async fn purge_deliveries(
    tx: &Transaction<'_>,
    agent: &str,
    from: Option<&str>,
) -> Result<u64, PgError> {
    match from {
        None => {
            exec(
                tx,
                "DELETE FROM message_recipients WHERE agent_id = $1",
                &[&agent],
            )
            .await
        }
        Some(from) => {
            exec(
                tx,
                "DELETE FROM message_recipients WHERE agent_id = $1 AND EXISTS
                     (SELECT 1 FROM messages m
                       WHERE m.id = message_recipients.message_id AND m.from_agent = $2)",
                &[&agent, &from],
            )
            .await
        }
    }
}

// The task workflow: tasks, rounds, assignments, handoffs.

/// A whole `root_tasks` row; what a stored one becomes is the caller's clause.
const TASK_INSERT: &str =
    "INSERT INTO root_tasks (id, title, description, status, dispatcher_agent_id,
            created_at, updated_at, shard)
     VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz, $8)";

/// Insert `t`'s row, `on_conflict` deciding what happens to a stored one.
async fn exec_task(tx: &Transaction<'_>, t: &Task, on_conflict: &str) -> Result<u64, PgError> {
    exec(
        tx,
        &format!("{TASK_INSERT} {on_conflict}"),
        &[
            &t.id,
            &t.title,
            &t.description,
            &t.status.as_str(),
            &t.dispatcher_agent_id,
            &iso(t.created_at),
            &iso(t.updated_at),
            &shard(&t.id),
        ],
    )
    .await
}

async fn create_task(tx: &Transaction<'_>, t: &Task) -> Result<(), PgError> {
    let inserted = exec_task(tx, t, "ON CONFLICT DO NOTHING").await?;
    count_tasks(tx, i64::try_from(inserted).unwrap_or(i64::MAX)).await
}

/// Move the `tasks` counter by the rows really inserted (or, negative, deleted).
async fn count_tasks(tx: &Transaction<'_>, by: i64) -> Result<(), PgError> {
    exec(
        tx,
        "UPDATE hub_counters SET value = value + $1 WHERE name = 'tasks'",
        &[&by],
    )
    .await?;
    Ok(())
}

async fn upsert_task(tx: &Transaction<'_>, t: &Task) -> Result<(), PgError> {
    exec_task(
        tx,
        t,
        "ON CONFLICT (id) DO UPDATE SET title = excluded.title,
             description = excluded.description, status = excluded.status,
             updated_at = excluded.updated_at",
    )
    .await?;
    Ok(())
}

async fn upsert_round(tx: &Transaction<'_>, r: &Round) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO rounds (id, root_task_id, round_number, status, plan_json, operator_note,
                rejected, review_verdict, review_note, created_at, updated_at, shard)
         VALUES ($1, $2, $3::bigint, $4, $5, $6, $7, $8, $9, $10::text::timestamptz,
                 $11::text::timestamptz, $12)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status,
             plan_json = excluded.plan_json, operator_note = excluded.operator_note,
             rejected = excluded.rejected, review_verdict = excluded.review_verdict,
             review_note = excluded.review_note, updated_at = excluded.updated_at",
        &[
            &r.id,
            &r.task_id,
            &i64::from(r.round_number),
            &r.status.as_str(),
            &r.plan_json,
            &r.operator_note,
            &r.rejected,
            &r.review_verdict,
            &r.review_note,
            &iso(r.created_at),
            &iso(r.updated_at),
            &shard(&r.task_id),
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_assignment(tx: &Transaction<'_>, a: &Assignment) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO assignments (id, round_id, root_task_id, agent_id, goal, status,
                progress_note, claimed_at, lease_expires_at, handoff_id, created_at,
                updated_at, shard, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::timestamptz, $9::text::timestamptz,
                 $10, $11::text::timestamptz, $12::text::timestamptz, $13, $14)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status,
             progress_note = excluded.progress_note, claimed_at = excluded.claimed_at,
             lease_expires_at = excluded.lease_expires_at, handoff_id = excluded.handoff_id,
             updated_at = excluded.updated_at",
        &[
            &a.id,
            &a.round_id,
            &a.task_id,
            &a.agent_id,
            &a.goal,
            &a.status.as_str(),
            &a.progress_note,
            &a.claimed_at.map(iso),
            &a.lease_expires_at.map(iso),
            &a.handoff_id,
            &iso(a.created_at),
            &iso(a.updated_at),
            &shard(&a.task_id),
            &a.seq,
        ],
    )
    .await?;
    Ok(())
}

/// A handoff's string lists are stored as JSON array text, as in SQLite.
fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

async fn insert_handoff(tx: &Transaction<'_>, h: &Handoff) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO handoffs (id, assignment_id, round_id, root_task_id, from_agent, branch,
                commit_hash, changed_files, tests_run, risks, next_steps, notes, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text::timestamptz, $14)
         ON CONFLICT DO NOTHING",
        &[
            &h.id,
            &h.assignment_id,
            &h.round_id,
            &h.task_id,
            &h.from_agent,
            &h.branch,
            &h.commit_hash,
            &json_list(&h.changed_files),
            &json_list(&h.tests_run),
            &json_list(&h.risks),
            &json_list(&h.next_steps),
            &h.notes,
            &iso(h.created_at),
            &shard(&h.task_id),
        ],
    )
    .await?;
    Ok(())
}

// Locks and fencing counters.

/// The lock row and its key's fencing counter; a grant older than the stored one
/// (a batch applied again after newer grants) changes neither.
async fn upsert_lock(tx: &Transaction<'_>, l: &Lock) -> Result<(), PgError> {
    // Tokens are (epoch << 32) | counter with a non-negative epoch: they fit.
    let token = i64::try_from(l.fencing_token).map_err(|_| {
        PgError::Value(format!(
            "fencing token {} of lock {} exceeds bigint",
            l.fencing_token, l.lock_key
        ))
    })?;
    let key_shard = shard(&l.lock_key);
    exec(
        tx,
        "INSERT INTO locks (id, lock_key, holder_agent_id, resource_type, resource_id,
                fencing_token, expires_at, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8::text::timestamptz, $9)
         ON CONFLICT (lock_key) DO UPDATE SET id = excluded.id,
             holder_agent_id = excluded.holder_agent_id,
             resource_type = excluded.resource_type, resource_id = excluded.resource_id,
             fencing_token = excluded.fencing_token, expires_at = excluded.expires_at,
             created_at = excluded.created_at
         WHERE excluded.fencing_token >= locks.fencing_token",
        &[
            &l.id,
            &l.lock_key,
            &l.holder_agent_id,
            &l.resource_type,
            &l.resource_id,
            &token,
            &iso(l.expires_at),
            &iso(l.created_at),
            &key_shard,
        ],
    )
    .await?;
    exec(
        tx,
        "INSERT INTO lock_fencing (lock_key, last_token, shard) VALUES ($1, $2, $3)
         ON CONFLICT (lock_key) DO UPDATE
             SET last_token = GREATEST(lock_fencing.last_token, excluded.last_token)",
        &[&l.lock_key, &token, &key_shard],
    )
    .await?;
    Ok(())
}

// Retention: children before parents, as SQLite's `prune` (foreign keys).

async fn delete_messages(tx: &Transaction<'_>, ids: &[String]) -> Result<(), PgError> {
    for sql in [
        "DELETE FROM message_reads WHERE message_id = ANY($1)",
        "DELETE FROM message_recipients WHERE message_id = ANY($1)",
        "DELETE FROM messages WHERE id = ANY($1)",
    ] {
        exec(tx, sql, &[&ids]).await?;
    }
    Ok(())
}

/// Tasks with their rounds, assignments, handoffs and operator decisions; the
/// `tasks` counter goes down by the task rows really deleted.
async fn delete_tasks(tx: &Transaction<'_>, ids: &[String]) -> Result<(), PgError> {
    let mut deleted = 0;
    for sql in [
        "DELETE FROM handoffs WHERE root_task_id = ANY($1)",
        "DELETE FROM assignments WHERE root_task_id = ANY($1)",
        "DELETE FROM operator_approvals WHERE round_id IN
             (SELECT id FROM rounds WHERE root_task_id = ANY($1))",
        "DELETE FROM rounds WHERE root_task_id = ANY($1)",
        "DELETE FROM root_tasks WHERE id = ANY($1)",
    ] {
        deleted = exec(tx, sql, &[&ids]).await?;
    }
    count_tasks(tx, -i64::try_from(deleted).unwrap_or(i64::MAX)).await
}

// Audit.

/// By its hub-chosen id: applied again, the stored row stays as it is.
async fn insert_audit(tx: &Transaction<'_>, a: &AuditRow) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO audit_events (id, event_type, entity_type, entity_id, actor,
                payload_json, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)
         ON CONFLICT (id) DO NOTHING",
        &[
            &a.id,
            &a.event_type,
            &a.entity_type,
            &a.entity_id,
            &a.actor,
            &a.payload_json,
            &a.at,
            &shard(&a.entity_id),
        ],
    )
    .await?;
    Ok(())
}
