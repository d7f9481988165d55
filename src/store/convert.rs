//! Opening a database written by agent-hub-mcp 0.2.1, the Python reference. Its
//! tables have the names ours keep but other columns (`creator_agent_id`, rounds'
//! `task_id`, one `is_read` per message, list fields as JSON text), and our
//! migrations (`CREATE TABLE IF NOT EXISTS`) would silently skip them. So
//! [`convert_if_reference`], called by [`super::Store::open`] before migrations,
//! detects such a database (its tables, no `schema_migrations`), copies it beside
//! itself with `VACUUM INTO`, and rebuilds it in our schema in one transaction that
//! reads the rows back from that copy: a failure leaves the file as it was.

use super::{migrate, StoreError};
use crate::domain::task::{list_from_text, AssignmentStatus, RoundStatus, TaskStatus};
use crate::domain::time::normalize_reference;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

/// The reference's tables (its `migrations/001_init.sql`).
const REFERENCE_TABLES: [&str; 10] = [
    "agents",
    "root_tasks",
    "rounds",
    "assignments",
    "messages",
    "message_reads",
    "handoffs",
    "locks",
    "operator_approvals",
    "audit_events",
];

/// What kind of database a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Ours (with `schema_migrations`), or empty.
    Ours,
    /// The reference's schema, never migrated by us.
    Reference,
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Which kind `conn` holds. Tables of the reference without its whole schema (and
/// without ours) are refused rather than guessed at.
pub(crate) fn detect(conn: &Connection) -> Result<Kind, StoreError> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if tables.iter().any(|t| t == "schema_migrations") {
        return Ok(Kind::Ours);
    }
    let (present, missing): (Vec<&str>, Vec<&str>) = REFERENCE_TABLES
        .iter()
        .partition(|t| tables.iter().any(|n| n == *t));
    if present.is_empty() {
        return Ok(Kind::Ours);
    }
    let reference_columns = has_column(conn, "root_tasks", "creator_agent_id")?
        && has_column(conn, "rounds", "task_id")?
        && has_column(conn, "operator_approvals", "operator_action")?;
    if !missing.is_empty() || !reference_columns {
        return Err(StoreError::Corrupt(format!(
            "it has no schema_migrations table but has tables named like agent-hub-mcp's ({}) without its whole schema{}; refusing to guess what it is",
            present.join(", "),
            if missing.is_empty() {
                String::new()
            } else {
                format!(" (missing: {})", missing.join(", "))
            }
        )));
    }
    Ok(Kind::Reference)
}

/// Convert `conn` (the database at `path`) if it is the reference's; returns the
/// backup's path when it did. `agents` are those of agents.env (id, token hash): a
/// broadcast goes to each of them and each agent of the database but its sender.
pub(crate) fn convert_if_reference(
    conn: &mut Connection,
    path: &Path,
    agents: &[(String, String)],
    now: &str,
) -> Result<Option<PathBuf>, StoreError> {
    if detect(conn)? != Kind::Reference {
        return Ok(None);
    }
    check_statuses(conn)?;
    let backup = backup(conn, path)?;
    tracing::warn!(db = %path.display(), backup = %backup.display(), "converting an agent-hub-mcp 0.2.1 database");
    let fail = |e: StoreError| StoreError::Conversion {
        backup: backup.display().to_string(),
        reason: e.to_string(),
    };
    rebuild(conn, &backup, agents, now).map_err(fail)?;
    tracing::warn!(db = %path.display(), backup = %backup.display(), "converted the agent-hub-mcp 0.2.1 database");
    Ok(Some(backup))
}

/// Statuses our loader would refuse: found before anything is written.
fn check_statuses(conn: &Connection) -> Result<(), StoreError> {
    type Known = fn(&str) -> bool;
    let checks: [(&str, Known); 3] = [
        ("root_tasks", |s| TaskStatus::parse(s).is_some()),
        ("rounds", |s| RoundStatus::parse(s).is_some()),
        ("assignments", |s| AssignmentStatus::parse(s).is_some()),
    ];
    for (table, known) in checks {
        let sql = format!("SELECT DISTINCT CAST(status AS TEXT) FROM {table}");
        let statuses: Vec<Option<String>> = conn
            .prepare(&sql)?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if let Some(bad) = statuses.iter().find(|s| !s.as_deref().is_some_and(known)) {
            return Err(StoreError::Corrupt(format!(
                "agent-hub-mcp's {table} has a status this hub does not know: {bad:?}; nothing was converted"
            )));
        }
    }
    Ok(())
}

/// The first free `<file>.agent-hub-mcp-0.2.1.bak[.N]` beside `path`.
fn backup_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".agent-hub-mcp-0.2.1.bak");
    if n > 0 {
        name.push(format!(".{n}"));
    }
    path.with_file_name(name)
}

/// A consistent copy of the whole database (WAL included) beside it, private like
/// the database, synced before anything is changed. An existing backup (of an
/// earlier attempt) is never overwritten.
fn backup(conn: &Connection, path: &Path) -> Result<PathBuf, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| StoreError::Io { path: p, source: e }
    };
    let mut n = 0;
    let target = loop {
        let candidate = backup_path(path, n);
        // VACUUM INTO writes into an empty file: create it first, 0600, and only if
        // it does not exist yet.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(_) => break candidate,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(io(&candidate)(e)),
        }
    };
    let name = target.to_str().ok_or_else(|| {
        StoreError::Corrupt(format!("the backup path {} is not UTF-8", target.display()))
    })?;
    conn.execute("VACUUM INTO ?1", [name])?;
    std::fs::File::open(&target)
        .and_then(|f| f.sync_all())
        .map_err(io(&target))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io(dir))?;
    }
    Ok(target)
}

/// `hub_iso(t)`: a reference timestamp in our format (NULL stays NULL); anything
/// else fails the conversion, naming the value. `hub_list(text)`: a list field as
/// a JSON array ([`list_from_text`]).
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("hub_iso", 1, flags, |ctx| {
        let Some(text) = text_of(ctx.get_raw(0)) else {
            return Ok(None);
        };
        normalize_reference(&text).map(Some).ok_or_else(|| {
            rusqlite::Error::UserFunctionError(format!("{text:?} is not a timestamp").into())
        })
    })?;
    conn.create_scalar_function("hub_list", 1, flags, |ctx| {
        let list = text_of(ctx.get_raw(0)).map_or_else(Vec::new, |t| list_from_text(&t));
        serde_json::to_string(&list).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
    })
}

/// A column's value as text: the reference bound whatever JSON scalar an agent sent.
fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// Our schema, filled from the backup (attached as `ref`), in one transaction.
fn rebuild(
    conn: &mut Connection,
    backup: &Path,
    agents: &[(String, String)],
    now: &str,
) -> Result<(), StoreError> {
    migrate::register_functions(conn)?;
    register_functions(conn)?;
    // The reference's own foreign keys point at tables dropped here.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = attached(conn, backup, |conn| fill(conn, agents, now));
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

/// Run `f` with the backup attached as `ref` (read only by it), detached after.
fn attached(
    conn: &mut Connection,
    backup: &Path,
    f: impl FnOnce(&mut Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let name = backup.to_string_lossy().into_owned();
    conn.execute("ATTACH DATABASE ?1 AS ref", [name])?;
    let result = f(conn);
    let detached = conn.execute_batch("DETACH DATABASE ref");
    result?;
    Ok(detached?)
}

fn fill(conn: &mut Connection, agents: &[(String, String)], now: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for t in REFERENCE_TABLES {
        tx.execute_batch(&format!("DROP TABLE main.{t}"))?;
    }
    migrate::apply_all_in(&tx, now)?;
    // Who a broadcast reached: every agent of agents.env and of the database.
    tx.execute_batch("CREATE TEMP TABLE convert_agents (id TEXT PRIMARY KEY)")?;
    {
        let mut add = tx.prepare("INSERT OR IGNORE INTO temp.convert_agents (id) VALUES (?1)")?;
        for (id, _) in agents {
            add.execute([id])?;
        }
    }
    tx.execute_batch("INSERT OR IGNORE INTO temp.convert_agents (id) SELECT id FROM ref.agents")?;
    for (what, sql) in COPY {
        let run = |sql: &str| -> rusqlite::Result<usize> {
            let mut stmt = tx.prepare(sql)?;
            if stmt.parameter_count() == 0 {
                stmt.execute([])
            } else {
                stmt.execute([now])
            }
        };
        run(sql).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
    }
    tx.execute_batch("DROP TABLE temp.convert_agents")?;
    // Numbered after the converted events, like them (see convert/audit.sql).
    tx.execute(
        "INSERT INTO audit_events (id, event_type, entity_type, entity_id, actor, payload_json, created_at, shard)
         VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM audit_events),
                 'converted_from_agent_hub_mcp', 'hub', 'hub', 'system', ?1, ?2, hub_shard('hub'))",
        params![
            serde_json::json!({"from": "agent-hub-mcp 0.2.1"}).to_string(),
            now
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// The copy, table by table; `?1` is the conversion's time. Rows are read back in
/// the order of their values (assignments by `seq`, audit events by id), never of
/// their rowids.
const COPY: &[(&str, &str)] = &[
    ("agents", include_str!("convert/agents.sql")),
    ("root_tasks", include_str!("convert/root_tasks.sql")),
    ("rounds", include_str!("convert/rounds.sql")),
    ("assignments", include_str!("convert/assignments.sql")),
    ("handoffs", include_str!("convert/handoffs.sql")),
    ("messages", include_str!("convert/messages.sql")),
    ("message_recipients", include_str!("convert/recipients.sql")),
    ("message_reads", include_str!("convert/reads.sql")),
    ("locks", include_str!("convert/locks.sql")),
    ("lock_fencing", include_str!("convert/fencing.sql")),
    ("operator_approvals", include_str!("convert/approvals.sql")),
    ("audit_events", include_str!("convert/audit.sql")),
    ("finished tasks", include_str!("convert/finished.sql")),
    (
        "finished rounds",
        include_str!("convert/finished_rounds.sql"),
    ),
    ("task statuses", include_str!("convert/task_status.sql")),
    ("hub_counters", include_str!("convert/counters.sql")),
];

#[cfg(test)]
mod tests;
