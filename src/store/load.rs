//! Start-up: reconcile the `agents` table with `agents.env`, then read the live state.

use super::StoreError;
use rusqlite::{params, Connection};

/// One agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub registered_at: Option<String>,
    pub last_heartbeat: Option<String>,
}

/// Everything the actors start from.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub agents: Vec<AgentRow>,
}

/// Make every agent of `agents.env` exist (the reference made callers register first
/// and crashed on foreign keys otherwise) and mark the others inactive.
/// `agents` is (id, token_hash).
pub fn sync_agents(
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

pub fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
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
    Ok(Snapshot { agents })
}
