//! Applying a batch of ops inside one transaction. Pure SQL, no decisions.

use super::op::Op;
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
