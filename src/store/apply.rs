//! Applying a batch of ops inside one transaction. Pure SQL, no decisions.

use super::op::Op;
use crate::domain::time::iso;
use rusqlite::{params, Transaction};
use std::collections::HashMap;

/// Apply `ops` in order, except heartbeats: only the last heartbeat of each agent in
/// the batch is written, after everything else (a heartbeat touches only its own
/// column, so moving it later changes nothing but saves rows).
pub fn apply_batch<'a>(
    tx: &Transaction<'_>,
    ops: impl IntoIterator<Item = &'a Op>,
) -> rusqlite::Result<()> {
    let mut heartbeats: HashMap<&str, &str> = HashMap::new();
    for op in ops {
        match op {
            Op::AgentHeartbeat { id, at } => {
                heartbeats.insert(id, at);
            }
            other => apply_one(tx, other)?,
        }
    }
    if !heartbeats.is_empty() {
        let mut stmt = tx.prepare_cached(
            "UPDATE agents SET last_heartbeat = ?2, updated_at = ?2 WHERE id = ?1",
        )?;
        for (id, at) in heartbeats {
            stmt.execute(params![id, at])?;
        }
    }
    Ok(())
}

fn apply_one(tx: &Transaction<'_>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::AgentRegister {
            id,
            name,
            capabilities_json,
            at,
        } => {
            tx.prepare_cached(
                "UPDATE agents SET name = ?2, capabilities = ?3, is_active = 1,
                                   registered_at = ?4, updated_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, name, capabilities_json, at])?;
        }
        Op::AgentHeartbeat { id, at } => {
            tx.prepare_cached(
                "UPDATE agents SET last_heartbeat = ?2, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, at])?;
        }
        Op::MessageInsert {
            message: m,
            recipients,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO messages (id, dedupe_key, reply_to, from_agent, to_agent, round_id,
                     msg_type, subject, body, context_json, hop_count, is_read, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12)",
            )?
            .execute(params![
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
                m.created_at
            ])?;
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO message_recipients (message_id, agent_id, delivered_at) VALUES (?1, ?2, ?3)",
            )?;
            for r in recipients {
                stmt.execute(params![m.id, r, m.created_at])?;
            }
        }
        Op::MessageAck {
            agent,
            message_ids,
            at,
        } => {
            let mut recip = tx.prepare_cached(
                "UPDATE message_recipients SET read_at = ?3 WHERE message_id = ?1 AND agent_id = ?2 AND read_at IS NULL",
            )?;
            let mut reads = tx.prepare_cached(
                "INSERT OR IGNORE INTO message_reads (message_id, agent_id, read_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut direct = tx.prepare_cached(
                "UPDATE messages SET is_read = 1 WHERE id = ?1 AND to_agent = ?2",
            )?;
            for id in message_ids {
                recip.execute(params![id, agent, at])?;
                reads.execute(params![id, agent, at])?;
                direct.execute(params![id, agent])?;
            }
        }
        Op::TaskUpsert(t) => {
            tx.prepare_cached(
                "INSERT INTO root_tasks (id, title, description, status, dispatcher_agent_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET title = excluded.title, description = excluded.description,
                     status = excluded.status, updated_at = excluded.updated_at",
            )?
            .execute(params![t.id, t.title, t.description, t.status.as_str(), t.dispatcher_agent_id, t.created_at, t.updated_at])?;
        }
        Op::RoundUpsert(r) => {
            tx.prepare_cached(
                "INSERT INTO rounds (id, root_task_id, round_number, status, plan_json, operator_note, rejected,
                     review_verdict, review_note, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, plan_json = excluded.plan_json,
                     operator_note = excluded.operator_note, rejected = excluded.rejected,
                     review_verdict = excluded.review_verdict, review_note = excluded.review_note,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                r.id,
                r.task_id,
                r.round_number,
                r.status.as_str(),
                r.plan_json,
                r.operator_note,
                r.rejected,
                r.review_verdict,
                r.review_note,
                r.created_at,
                r.updated_at
            ])?;
        }
        Op::AssignmentUpsert(a) => {
            tx.prepare_cached(
                "INSERT INTO assignments (id, round_id, root_task_id, agent_id, goal, status, progress_note,
                     claimed_at, lease_expires_at, handoff_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, progress_note = excluded.progress_note,
                     claimed_at = excluded.claimed_at, lease_expires_at = excluded.lease_expires_at,
                     handoff_id = excluded.handoff_id, updated_at = excluded.updated_at",
            )?
            .execute(params![
                a.id,
                a.round_id,
                a.task_id,
                a.agent_id,
                a.goal,
                a.status.as_str(),
                a.progress_note,
                a.claimed_at,
                a.lease_expires_at,
                a.handoff_id,
                a.created_at,
                a.updated_at
            ])?;
        }
        Op::AssignmentDelete { id } => {
            tx.prepare_cached("DELETE FROM assignments WHERE id = ?1")?
                .execute(params![id])?;
        }
        Op::HandoffInsert(h) => {
            let list = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
            tx.prepare_cached(
                "INSERT OR IGNORE INTO handoffs (id, assignment_id, round_id, root_task_id, from_agent, branch,
                     commit_hash, changed_files, tests_run, risks, next_steps, notes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                h.id,
                h.assignment_id,
                h.round_id,
                h.task_id,
                h.from_agent,
                h.branch,
                h.commit_hash,
                list(&h.changed_files),
                list(&h.tests_run),
                list(&h.risks),
                list(&h.next_steps),
                h.notes,
                h.created_at
            ])?;
        }
        Op::Approval {
            id,
            round_id,
            action,
            note,
            at,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO operator_approvals (id, round_id, action, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, round_id, action, note, at])?;
        }
        Op::LockUpsert(l) => {
            tx.prepare_cached(
                "INSERT INTO locks (id, lock_key, holder_agent_id, resource_type, resource_id, fencing_token, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(lock_key) DO UPDATE SET id = excluded.id, holder_agent_id = excluded.holder_agent_id,
                     resource_type = excluded.resource_type, resource_id = excluded.resource_id,
                     fencing_token = excluded.fencing_token, expires_at = excluded.expires_at,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                l.id,
                l.lock_key,
                l.holder_agent_id,
                l.resource_type,
                l.resource_id,
                l.fencing_token as i64,
                iso(l.expires_at),
                iso(l.created_at)
            ])?;
            tx.prepare_cached(
                "INSERT INTO lock_fencing (lock_key, last_token) VALUES (?1, ?2)
                 ON CONFLICT(lock_key) DO UPDATE SET last_token = MAX(last_token, excluded.last_token)",
            )?
            .execute(params![l.lock_key, l.fencing_token as i64])?;
        }
        Op::LockDelete { key, id } => {
            tx.prepare_cached("DELETE FROM locks WHERE lock_key = ?1 AND id = ?2")?
                .execute(params![key, id])?;
        }
        Op::Audit {
            event_type,
            entity_type,
            entity_id,
            actor,
            payload_json,
            at,
        } => {
            tx.prepare_cached(
                "INSERT INTO audit_events (event_type, entity_type, entity_id, actor, payload_json, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![event_type, entity_type, entity_id, actor, payload_json, at])?;
        }
    }
    Ok(())
}
