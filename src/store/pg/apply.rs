//! Applying a batch of ops inside one PostgreSQL transaction: the PostgreSQL twin
//! of [`crate::store::apply`] (SQLite), statement for statement, with the epoch
//! fence first.
//!
//! The translation from SQLite: `$n` parameters; `INSERT OR IGNORE` is `ON CONFLICT
//! DO NOTHING` (no target: any unique key, as OR IGNORE); flags are booleans;
//! two-argument `MAX` is `GREATEST`. Times are the ops' ISO 8601 text, cast with
//! `$n::text::timestamptz` so that the parameter stays text (no chrono feature in
//! tokio-postgres, and the value stored is exactly the instant SQLite stores as
//! text). Small integers are bound as bigint and narrowed by PostgreSQL's
//! assignment cast, which refuses an out-of-range value instead of wrapping it.
//! Retention deletes a whole list per statement (`= ANY($1)`): one statement
//! instead of one per id, with the same rows deleted.
//!
//! Pipelined: after the fence, every op of the batch is turned into its
//! statements ([`Stmt`], parameters borrowed from the op or computed), in queue
//! order, heartbeats last; all of them are then sent without waiting for any
//! answer ([`pipeline`]), and PostgreSQL executes them in that order on the
//! connection, so the effect is that of running them one by one. No statement
//! needs an earlier one's result while the batch is in flight: the task counter
//! moves in the same statement as the task row it counts (a data-modifying CTE),
//! and a purge's count is read once every answer is in.

use super::{Epoch, PgError, ShardId, Transaction};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{Assignment, Handoff, Round, Task};
use crate::domain::time::iso;
use crate::store::op::{AuditRow, Op, Tally};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

/// The ops of one shard, submitted under the epoch the node held it at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tagged<'a> {
    pub shard: ShardId,
    pub epoch: Epoch,
    pub ops: &'a [Op],
}

/// The `shard` column of a row owned by `owner`.
pub(super) fn shard(owner: &str) -> i32 {
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
    let mut stmts = Vec::new();
    for o in ops {
        if o.tags.iter().all(|(shard, _)| !skip.contains(shard)) {
            statements(o.op, &mut stmts, &mut heartbeats)?;
        }
    }
    for (id, at) in heartbeats {
        stmts.push(Stmt::new(HEARTBEAT, vec![arg(id), arg(at)]));
    }
    pipeline(tx, &stmts).await?;
    Ok(fenced)
}

/// A statement's parameter: borrowed from its op, or computed from it.
type Arg<'a> = Box<dyn ToSql + Sync + Send + 'a>;

fn arg<'a>(v: impl ToSql + Sync + Send + 'a) -> Arg<'a> {
    Box::new(v)
}

/// One statement of a batch, with its parameters.
struct Stmt<'a> {
    sql: &'static str,
    args: Vec<Arg<'a>>,
    /// Where the rows it changed are left once the batch is through (a purge's).
    tally: Option<&'a Tally>,
}

impl<'a> Stmt<'a> {
    fn new(sql: &'static str, args: Vec<Arg<'a>>) -> Stmt<'a> {
        Stmt {
            sql,
            args,
            tally: None,
        }
    }
}

/// Run `stmts` in order, pipelined: each is prepared first (`prepare_cached`: a
/// round trip the first time a connection sees its text, none after), then all are
/// sent before any answer is awaited, and PostgreSQL runs them in the order sent.
/// The first failing statement fails the whole (the caller rolls back; the ones
/// after it fail too, the transaction being aborted). Then each tally gets the rows
/// its statement changed.
///
/// The order sent is the order the futures are first polled, which [`in_order`]
/// makes the list's order. That a future sends on its first poll, before any
/// await, is tokio-postgres 0.7's code (checked in 0.7.18): `Transaction::execute_raw`
/// -> `Client::execute_raw`, whose `into_statement` for a prepared `Statement` is
/// `Ok(s.clone())` with no await, -> `query::execute`, which encodes Bind/Execute/
/// Sync into a buffer and calls `start` -> `InnerClient::send`, a synchronous
/// `unbounded_send` of the request to the connection task, before its first
/// `responses.next().await`. The connection task writes requests in the order it
/// receives them and hands the answers back in that order (`Connection::poll_write`
/// / `poll_read`, a queue of pending responses).
async fn pipeline(tx: &Transaction<'_>, stmts: &[Stmt<'_>]) -> Result<(), PgError> {
    let mut prepared: HashMap<&str, Statement> = HashMap::new();
    for s in stmts {
        if !prepared.contains_key(s.sql) {
            prepared.insert(s.sql, tx.prepare_cached(s.sql).await?);
        }
    }
    let mut futures = Vec::with_capacity(stmts.len());
    for s in stmts {
        let stmt = prepared
            .get(s.sql)
            .ok_or_else(|| PgError::Incompatible(format!("statement not prepared: {}", s.sql)))?;
        let args = s.args.iter().map(|a| &**a as &(dyn ToSql + Sync));
        futures.push(tx.execute_raw(stmt, args));
    }
    let changed = in_order(futures).await?;
    for (s, n) in stmts.iter().zip(changed) {
        if let Some(tally) = s.tally {
            tally.set(n);
        }
    }
    Ok(())
}

/// Drive `futures` to completion, each polled for the first time in the list's
/// order (every wake polls the unfinished ones, first to last); their outputs in
/// that order, or the first error met. (`try_join_all` switches to
/// `FuturesOrdered` above 30 futures, whose first polls follow its task queue.)
async fn in_order<F>(futures: Vec<F>) -> Result<Vec<u64>, PgError>
where
    F: Future<Output = Result<u64, tokio_postgres::Error>>,
{
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<u64>> = vec![None; futures.len()];
    // Before it, every future is done.
    let mut first = 0;
    // After the first pass every request is sent, and answers come back in the
    // order sent: later polls stop at the first one still waiting (each wake costs
    // what it finishes, not the whole batch).
    let mut sent = false;
    std::future::poll_fn(|cx| {
        for (f, o) in futures[first..].iter_mut().zip(&mut out[first..]) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(Ok(n)) => *o = Some(n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(PgError::from(e))),
                    Poll::Pending if sent => break,
                    Poll::Pending => {}
                }
            }
        }
        sent = true;
        while out.get(first).is_some_and(Option::is_some) {
            first += 1;
        }
        if first == out.len() {
            Poll::Ready(Ok(out.iter().map(|o| o.unwrap_or(0)).collect()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The statements of one op, in order, added to `out`; a heartbeat is recorded in
/// `heartbeats` instead, for [`apply_ops`] to write last. Exhaustive: a new op
/// kind does not compile until PostgreSQL writes it.
fn statements<'a>(
    op: &'a Op,
    out: &mut Vec<Stmt<'a>>,
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
        } => out.push(Stmt::new(
            // Not `is_active`: the registry's (`pg::agents`), which a register
            // committed just after a removal must not undo.
            "UPDATE agents SET name = $2, capabilities = $3,
                    registered_at = $4::text::timestamptz, updated_at = $4::text::timestamptz
              WHERE id = $1",
            vec![arg(id), arg(name), arg(capabilities_json), arg(at)],
        )),
        Op::AgentsSync { agents, at } => sync_statements(agents, at, out),
        Op::MessageInsert {
            message,
            recipients,
        } => insert_message(message, recipients, out),
        Op::MessageElsewhere {
            message,
            recipients,
            elsewhere,
            event,
            ..
        } => {
            insert_message(message, recipients, out);
            let event = event.as_ref().and_then(|e| serde_json::to_string(e).ok());
            for r in elsewhere {
                out.push(Stmt::new(
                    "INSERT INTO delivery_outbox (message_id, agent_id, shard, created_at, event_json)
                     VALUES ($1, $2, $3, $4::text::timestamptz, $5)
                     ON CONFLICT DO NOTHING",
                    vec![
                        arg(&message.id),
                        arg(r),
                        arg(shard(r)),
                        arg(&message.created_at),
                        arg(event.clone()),
                    ],
                ));
            }
        }
        Op::QuotaFree { kind, item_id, .. } => out.push(Stmt::new(
            "DELETE FROM agent_quota WHERE kind = $1 AND item_id = $2",
            vec![arg(kind), arg(item_id)],
        )),
        Op::OutboxTaken { message, agent } => {
            out.push(Stmt::new(
                "INSERT INTO message_recipients (message_id, agent_id, delivered_at, shard)
                 VALUES ($1, $2, $3::text::timestamptz, $4)
                 ON CONFLICT DO NOTHING",
                vec![
                    arg(&message.id),
                    arg(agent),
                    arg(&message.created_at),
                    arg(shard(agent)),
                ],
            ));
            out.push(Stmt::new(
                "DELETE FROM delivery_outbox WHERE message_id = $1 AND agent_id = $2",
                vec![arg(&message.id), arg(agent)],
            ));
        }
        Op::MessageAck {
            agent,
            message_ids,
            at,
        } => ack_messages(agent, message_ids, at, out),
        Op::DeliveriesPurge {
            agent,
            from,
            deleted,
        } => out.push(Stmt {
            tally: Some(deleted),
            ..purge_deliveries(agent, from.as_deref())
        }),
        Op::TaskUpsert(t) => out.push(Stmt::new(TASK_UPSERT, task_args(t))),
        // Stored and counted in one statement: the counter moves by the rows the
        // INSERT really added (none for a task already stored).
        Op::TaskCreated(t) => out.push(Stmt::new(TASK_CREATE, task_args(t))),
        // SQLite runs its VACUUM after the transaction; PostgreSQL's autovacuum
        // gives space back by itself, and a mark writes nothing in either.
        Op::Vacuum { .. } | Op::Mark => {}
        Op::PruneMessages(ids) => delete_messages(ids, out),
        Op::PruneTasks(ids) => delete_tasks(ids, out),
        Op::PruneAudit(ids) => out.push(Stmt::new(
            "DELETE FROM audit_events WHERE id = ANY($1)",
            vec![arg(ids)],
        )),
        Op::TaskMessageCount { task_id, count } => out.push(Stmt::new(
            "UPDATE root_tasks SET message_count = $2 WHERE id = $1",
            vec![arg(task_id), arg(i64::from(*count))],
        )),
        Op::RoundUpsert(r) => out.push(upsert_round(r)),
        Op::AssignmentUpsert(a) => out.push(upsert_assignment(a)),
        Op::AssignmentDelete { id, .. } => out.push(Stmt::new(
            "DELETE FROM assignments WHERE id = $1",
            vec![arg(id)],
        )),
        Op::HandoffInsert(h) => out.push(insert_handoff(h)),
        Op::Approval {
            id,
            task_id,
            round_id,
            action,
            note,
            at,
        } => out.push(Stmt::new(
            "INSERT INTO operator_approvals (id, round_id, action, note, created_at, shard)
             VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6)
             ON CONFLICT DO NOTHING",
            vec![
                arg(id),
                arg(round_id),
                arg(action),
                arg(note),
                arg(at),
                arg(shard(task_id)),
            ],
        )),
        Op::LockUpsert { lock, .. } => upsert_lock(lock, out)?,
        Op::LockDelete { key, id, .. } => out.push(Stmt::new(
            "DELETE FROM locks WHERE lock_key = $1 AND id = $2",
            vec![arg(key), arg(id)],
        )),
        Op::Audit(row) => out.push(insert_audit(row)),
        Op::Begin(_) | Op::End { logged: None, .. } => {}
        Op::End {
            logged: Some(l), ..
        } => out.push(Stmt::new(
            "INSERT INTO request_log (request_id, shard, reply, created_at)
             VALUES ($1, $2, $3, $4::text::timestamptz)
             ON CONFLICT (request_id) DO NOTHING",
            vec![arg(&l.key), arg(shard(&l.owner)), arg(&l.reply), arg(&l.at)],
        )),
    }
    Ok(())
}

// Agents.

/// SQLite's `load::sync_agents_in`: every listed agent exists and is active, the
/// others are kept but inactive.
pub(crate) async fn sync_agents(
    tx: &Transaction<'_>,
    agents: &[(String, String)],
    at: &str,
) -> Result<(), PgError> {
    let mut stmts = Vec::new();
    sync_statements(agents, at, &mut stmts);
    pipeline(tx, &stmts).await
}

fn sync_statements<'a>(agents: &'a [(String, String)], at: &'a str, out: &mut Vec<Stmt<'a>>) {
    out.push(Stmt::new("UPDATE agents SET is_active = false", vec![]));
    for (id, hash) in agents {
        out.push(Stmt::new(
            "INSERT INTO agents (id, name, token_hash, is_active, created_at, updated_at, shard)
             VALUES ($1, $1, $2, true, $3::text::timestamptz, $3::text::timestamptz, $4)
             ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, is_active = true",
            vec![arg(id), arg(hash), arg(at), arg(shard(id))],
        ));
    }
}

/// An agent's latest heartbeat of the batch (agent id, time); see [`apply_ops`].
const HEARTBEAT: &str = "UPDATE agents SET last_heartbeat = $2::text::timestamptz,
        updated_at = $2::text::timestamptz
  WHERE id = $1";

// Messages, their recipients and read state.

fn insert_message<'a>(m: &'a Message, recipients: &'a [String], out: &mut Vec<Stmt<'a>>) {
    out.push(Stmt::new(
        "INSERT INTO messages (id, dedupe_key, reply_to, from_agent, to_agent, round_id,
                msg_type, subject, body, context_json, hop_count, is_read, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::bigint, false,
                 $12::text::timestamptz, $13)
         ON CONFLICT DO NOTHING",
        vec![
            arg(&m.id),
            arg(&m.dedupe_key),
            arg(&m.reply_to),
            arg(&m.from_agent),
            arg(&m.to_agent),
            arg(&m.round_id),
            arg(&m.msg_type),
            arg(&m.subject),
            arg(&m.body),
            arg(&m.context_json),
            arg(m.hop_count),
            arg(&m.created_at),
            arg(shard(&m.from_agent)),
        ],
    ));
    for r in recipients {
        out.push(Stmt::new(
            "INSERT INTO message_recipients (message_id, agent_id, delivered_at, shard)
             VALUES ($1, $2, $3::text::timestamptz, $4)
             ON CONFLICT DO NOTHING",
            vec![arg(&m.id), arg(r), arg(&m.created_at), arg(shard(r))],
        ));
    }
}

fn ack_messages<'a>(
    agent: &'a str,
    message_ids: &'a [String],
    at: &'a str,
    out: &mut Vec<Stmt<'a>>,
) {
    let agent_shard = shard(agent);
    for id in message_ids {
        out.push(Stmt::new(
            "UPDATE message_recipients SET read_at = $3::text::timestamptz
              WHERE message_id = $1 AND agent_id = $2 AND read_at IS NULL",
            vec![arg(id), arg(agent), arg(at)],
        ));
        out.push(Stmt::new(
            "INSERT INTO message_reads (message_id, agent_id, read_at, shard)
             VALUES ($1, $2, $3::text::timestamptz, $4)
             ON CONFLICT DO NOTHING",
            vec![arg(id), arg(agent), arg(at), arg(agent_shard)],
        ));
        out.push(Stmt::new(
            "UPDATE messages SET is_read = true WHERE id = $1 AND to_agent = $2",
            vec![arg(id), arg(agent)],
        ));
    }
}

/// Delete `agent`'s deliveries (of messages `from` sent, if given); the rows it
/// changed are how many.
fn purge_deliveries<'a>(agent: &'a str, from: Option<&'a str>) -> Stmt<'a> {
    match from {
        None => Stmt::new(
            "DELETE FROM message_recipients WHERE agent_id = $1",
            vec![arg(agent)],
        ),
        Some(from) => Stmt::new(
            "DELETE FROM message_recipients WHERE agent_id = $1 AND EXISTS
                 (SELECT 1 FROM messages m
                   WHERE m.id = message_recipients.message_id AND m.from_agent = $2)",
            vec![arg(agent), arg(from)],
        ),
    }
}

// The task workflow: tasks, rounds, assignments, handoffs.

/// A whole `root_tasks` row, followed by what a stored one becomes.
macro_rules! task_insert {
    ($on_conflict:literal) => {
        concat!(
            "INSERT INTO root_tasks (id, title, description, status, dispatcher_agent_id,
                    created_at, updated_at, shard)
             VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz, $8) ",
            $on_conflict
        )
    };
}

const TASK_UPSERT: &str = task_insert!(
    "ON CONFLICT (id) DO UPDATE SET title = excluded.title,
         description = excluded.description, status = excluded.status,
         updated_at = excluded.updated_at"
);

/// A new task, and the `tasks` counter moved by the rows really inserted.
const TASK_CREATE: &str = concat!(
    "WITH ins AS (",
    task_insert!("ON CONFLICT DO NOTHING RETURNING 1"),
    ") UPDATE hub_counters SET value = value + (SELECT count(*) FROM ins)
       WHERE name = 'tasks'"
);

fn task_args(t: &Task) -> Vec<Arg<'_>> {
    vec![
        arg(&t.id),
        arg(&t.title),
        arg(&t.description),
        arg(t.status.as_str()),
        arg(&t.dispatcher_agent_id),
        arg(iso(t.created_at)),
        arg(iso(t.updated_at)),
        arg(shard(&t.id)),
    ]
}

fn upsert_round(r: &Round) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO rounds (id, root_task_id, round_number, status, plan_json, operator_note,
                rejected, review_verdict, review_note, created_at, updated_at, shard)
         VALUES ($1, $2, $3::bigint, $4, $5, $6, $7, $8, $9, $10::text::timestamptz,
                 $11::text::timestamptz, $12)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status,
             plan_json = excluded.plan_json, operator_note = excluded.operator_note,
             rejected = excluded.rejected, review_verdict = excluded.review_verdict,
             review_note = excluded.review_note, updated_at = excluded.updated_at",
        vec![
            arg(&r.id),
            arg(&r.task_id),
            arg(i64::from(r.round_number)),
            arg(r.status.as_str()),
            arg(&r.plan_json),
            arg(&r.operator_note),
            arg(r.rejected),
            arg(&r.review_verdict),
            arg(&r.review_note),
            arg(iso(r.created_at)),
            arg(iso(r.updated_at)),
            arg(shard(&r.task_id)),
        ],
    )
}

fn upsert_assignment(a: &Assignment) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO assignments (id, round_id, root_task_id, agent_id, goal, status,
                progress_note, claimed_at, lease_expires_at, handoff_id, created_at,
                updated_at, shard, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::timestamptz, $9::text::timestamptz,
                 $10, $11::text::timestamptz, $12::text::timestamptz, $13, $14)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status,
             progress_note = excluded.progress_note, claimed_at = excluded.claimed_at,
             lease_expires_at = excluded.lease_expires_at, handoff_id = excluded.handoff_id,
             updated_at = excluded.updated_at",
        vec![
            arg(&a.id),
            arg(&a.round_id),
            arg(&a.task_id),
            arg(&a.agent_id),
            arg(&a.goal),
            arg(a.status.as_str()),
            arg(&a.progress_note),
            arg(a.claimed_at.map(iso)),
            arg(a.lease_expires_at.map(iso)),
            arg(&a.handoff_id),
            arg(iso(a.created_at)),
            arg(iso(a.updated_at)),
            arg(shard(&a.task_id)),
            arg(a.seq),
        ],
    )
}

/// A handoff's string lists are stored as JSON array text, as in SQLite.
fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn insert_handoff(h: &Handoff) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO handoffs (id, assignment_id, round_id, root_task_id, from_agent, branch,
                commit_hash, changed_files, tests_run, risks, next_steps, notes, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text::timestamptz, $14)
         ON CONFLICT DO NOTHING",
        vec![
            arg(&h.id),
            arg(&h.assignment_id),
            arg(&h.round_id),
            arg(&h.task_id),
            arg(&h.from_agent),
            arg(&h.branch),
            arg(&h.commit_hash),
            arg(json_list(&h.changed_files)),
            arg(json_list(&h.tests_run)),
            arg(json_list(&h.risks)),
            arg(json_list(&h.next_steps)),
            arg(&h.notes),
            arg(iso(h.created_at)),
            arg(shard(&h.task_id)),
        ],
    )
}

// Locks and fencing counters.

/// The lock row and its key's fencing counter; a grant older than the stored one
/// (a batch applied again after newer grants) changes neither.
fn upsert_lock<'a>(l: &'a Lock, out: &mut Vec<Stmt<'a>>) -> Result<(), PgError> {
    // Tokens are (epoch << 32) | counter with a non-negative epoch: they fit.
    let token = i64::try_from(l.fencing_token).map_err(|_| {
        PgError::Value(format!(
            "fencing token {} of lock {} exceeds bigint",
            l.fencing_token, l.lock_key
        ))
    })?;
    let key_shard = shard(&l.lock_key);
    out.push(Stmt::new(
        "INSERT INTO locks (id, lock_key, holder_agent_id, resource_type, resource_id,
                fencing_token, expires_at, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8::text::timestamptz, $9)
         ON CONFLICT (lock_key) DO UPDATE SET id = excluded.id,
             holder_agent_id = excluded.holder_agent_id,
             resource_type = excluded.resource_type, resource_id = excluded.resource_id,
             fencing_token = excluded.fencing_token, expires_at = excluded.expires_at,
             created_at = excluded.created_at
         WHERE excluded.fencing_token >= locks.fencing_token",
        vec![
            arg(&l.id),
            arg(&l.lock_key),
            arg(&l.holder_agent_id),
            arg(&l.resource_type),
            arg(&l.resource_id),
            arg(token),
            arg(iso(l.expires_at)),
            arg(iso(l.created_at)),
            arg(key_shard),
        ],
    ));
    out.push(Stmt::new(
        "INSERT INTO lock_fencing (lock_key, last_token, shard) VALUES ($1, $2, $3)
         ON CONFLICT (lock_key) DO UPDATE
             SET last_token = GREATEST(lock_fencing.last_token, excluded.last_token)",
        vec![arg(&l.lock_key), arg(token), arg(key_shard)],
    ));
    Ok(())
}

// Retention: children before parents, as SQLite's `prune` (foreign keys).

fn delete_messages<'a>(ids: &'a [String], out: &mut Vec<Stmt<'a>>) {
    for sql in [
        "DELETE FROM message_reads WHERE message_id = ANY($1)",
        "DELETE FROM message_recipients WHERE message_id = ANY($1)",
        "DELETE FROM messages WHERE id = ANY($1)",
    ] {
        out.push(Stmt::new(sql, vec![arg(ids)]));
    }
}

/// Tasks with their rounds, assignments, handoffs and operator decisions; the
/// `tasks` counter goes down by the task rows really deleted, in the statement
/// that deletes them.
fn delete_tasks<'a>(ids: &'a [String], out: &mut Vec<Stmt<'a>>) {
    for sql in [
        "DELETE FROM handoffs WHERE root_task_id = ANY($1)",
        "DELETE FROM assignments WHERE root_task_id = ANY($1)",
        "DELETE FROM operator_approvals WHERE round_id IN
             (SELECT id FROM rounds WHERE root_task_id = ANY($1))",
        "DELETE FROM rounds WHERE root_task_id = ANY($1)",
        "WITH del AS (DELETE FROM root_tasks WHERE id = ANY($1) RETURNING 1)
         UPDATE hub_counters SET value = value - (SELECT count(*) FROM del)
          WHERE name = 'tasks'",
    ] {
        out.push(Stmt::new(sql, vec![arg(ids)]));
    }
}

// Audit.

/// By its hub-chosen id: applied again, the stored row stays as it is.
fn insert_audit(a: &AuditRow) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO audit_events (id, event_type, entity_type, entity_id, actor,
                payload_json, created_at, shard)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)
         ON CONFLICT (id) DO NOTHING",
        vec![
            arg(a.id),
            arg(&a.event_type),
            arg(&a.entity_type),
            arg(&a.entity_id),
            arg(&a.actor),
            arg(&a.payload_json),
            arg(&a.at),
            arg(shard(&a.entity_id)),
        ],
    )
}
