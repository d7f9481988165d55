//! A stored row's columns read by name, the same way on SQLite and PostgreSQL, and
//! the domain values built from them (a task, round, assignment, handoff, message,
//! lock, agent): one decoding for both backends, so that they cannot drift apart
//! (what is corrupt data, how a timestamp or a JSON list reads). SQLite's mappers
//! ([`super::load_tasks::task_row`], ...) and PostgreSQL's reads
//! ([`super::reads::postgres`]) both call these. PostgreSQL's queries select every
//! time as `hub_iso(col) AS col`, so a time column is the hub's text on both.

use super::load::AgentRow;
use super::StoreError;
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{
    Assignment, AssignmentStatus, Handoff, Round, RoundStatus, Task, TaskStatus,
};
use crate::domain::time::{parse_iso, Timestamp};

/// One row of a query, its columns read by name.
pub(crate) trait Columns {
    /// What reading fails with.
    type Error;
    fn text(&self, col: &str) -> Result<String, Self::Error>;
    fn text_opt(&self, col: &str) -> Result<Option<String>, Self::Error>;
    fn int(&self, col: &str) -> Result<i64, Self::Error>;
    /// An integer that must fit a `u32` (anything else is an error).
    fn uint(&self, col: &str) -> Result<u32, Self::Error>;
    fn flag(&self, col: &str) -> Result<bool, Self::Error>;
    /// The error of a value that is stored but unreadable (corrupt data).
    fn corrupt(what: String) -> Self::Error;
}

impl Columns for rusqlite::Row<'_> {
    type Error = StoreError;
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.get(col)?)
    }
    fn text_opt(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.get(col)?)
    }
    fn uint(&self, col: &str) -> Result<u32, StoreError> {
        Ok(self.get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool, StoreError> {
        Ok(self.get(col)?)
    }
    fn corrupt(what: String) -> StoreError {
        StoreError::Corrupt(what)
    }
}

impl Columns for tokio_postgres::Row {
    type Error = crate::store::pg::PgError;
    fn text(&self, col: &str) -> Result<String, Self::Error> {
        Ok(self.try_get(col)?)
    }
    fn text_opt(&self, col: &str) -> Result<Option<String>, Self::Error> {
        Ok(self.try_get(col)?)
    }
    /// `smallint`, `integer` or `bigint` alike (the schema types counters
    /// `integer` or `bigint` by what they hold).
    fn int(&self, col: &str) -> Result<i64, Self::Error> {
        use tokio_postgres::types::Type;
        let ty = self
            .columns()
            .iter()
            .find(|c| c.name() == col)
            .map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT2) => i64::from(self.try_get::<_, i16>(col)?),
            Some(Type::INT4) => i64::from(self.try_get::<_, i32>(col)?),
            _ => self.try_get::<_, i64>(col)?,
        })
    }
    fn uint(&self, col: &str) -> Result<u32, Self::Error> {
        let n = self.int(col)?;
        u32::try_from(n).map_err(|_| Self::corrupt(format!("{col} is out of range: {n}")))
    }
    fn flag(&self, col: &str) -> Result<bool, Self::Error> {
        Ok(self.try_get(col)?)
    }
    fn corrupt(what: String) -> Self::Error {
        crate::store::pg::PgError::Incompatible(what)
    }
}

/// The row's `status` column, parsed by `parse`; an unknown status is corrupt data.
fn status<R: Columns, S>(
    row: &R,
    table: &str,
    parse: fn(&str) -> Option<S>,
) -> Result<S, R::Error> {
    let s = row.text("status")?;
    parse(&s).ok_or_else(|| R::corrupt(format!("{table} has unknown status {s:?}")))
}

/// A timestamp column (ISO-8601, as [`iso`](crate::domain::time::iso) writes it);
/// anything else is corrupt data.
fn stamp<R: Columns>(row: &R, column: &str) -> Result<Timestamp, R::Error> {
    let s = row.text(column)?;
    parse_iso(&s).ok_or_else(|| R::corrupt(format!("{column} is not a timestamp: {s:?}")))
}

/// A timestamp column that may be NULL.
fn stamp_opt<R: Columns>(row: &R, column: &str) -> Result<Option<Timestamp>, R::Error> {
    row.text_opt(column)?
        .map(|s| {
            parse_iso(&s).ok_or_else(|| R::corrupt(format!("{column} is not a timestamp: {s:?}")))
        })
        .transpose()
}

/// A JSON array of strings; anything else reads as empty.
fn list<R: Columns>(row: &R, column: &str) -> Result<Vec<String>, R::Error> {
    Ok(serde_json::from_str(&row.text(column)?).unwrap_or_default())
}

/// A `root_tasks` row.
pub(crate) fn task<R: Columns>(row: &R) -> Result<Task, R::Error> {
    Ok(Task {
        id: row.text("id")?,
        title: row.text("title")?,
        description: row.text("description")?,
        status: status(row, "root_tasks", TaskStatus::parse)?,
        dispatcher_agent_id: row.text("dispatcher_agent_id")?,
        created_at: stamp(row, "created_at")?,
        updated_at: stamp(row, "updated_at")?,
    })
}

/// A `rounds` row.
pub(crate) fn round<R: Columns>(row: &R) -> Result<Round, R::Error> {
    Ok(Round {
        id: row.text("id")?,
        task_id: row.text("root_task_id")?,
        round_number: row.uint("round_number")?,
        status: status(row, "rounds", RoundStatus::parse)?,
        plan_json: row.text("plan_json")?,
        operator_note: row.text_opt("operator_note")?,
        rejected: row.flag("rejected")?,
        review_verdict: row.text_opt("review_verdict")?,
        review_note: row.text_opt("review_note")?,
        created_at: stamp(row, "created_at")?,
        updated_at: stamp(row, "updated_at")?,
    })
}

/// An `assignments` row.
pub(crate) fn assignment<R: Columns>(row: &R) -> Result<Assignment, R::Error> {
    Ok(Assignment {
        id: row.text("id")?,
        round_id: row.text("round_id")?,
        task_id: row.text("root_task_id")?,
        agent_id: row.text("agent_id")?,
        goal: row.text("goal")?,
        status: status(row, "assignments", AssignmentStatus::parse)?,
        progress_note: row.text_opt("progress_note")?,
        claimed_at: stamp_opt(row, "claimed_at")?,
        lease_expires_at: stamp_opt(row, "lease_expires_at")?,
        handoff_id: row.text_opt("handoff_id")?,
        created_at: stamp(row, "created_at")?,
        updated_at: stamp(row, "updated_at")?,
        seq: row.int("seq")?,
    })
}

/// A `handoffs` row.
pub(crate) fn handoff<R: Columns>(row: &R) -> Result<Handoff, R::Error> {
    Ok(Handoff {
        id: row.text("id")?,
        assignment_id: row.text("assignment_id")?,
        round_id: row.text("round_id")?,
        task_id: row.text("root_task_id")?,
        from_agent: row.text("from_agent")?,
        branch: row.text("branch")?,
        commit_hash: row.text("commit_hash")?,
        changed_files: list(row, "changed_files")?,
        tests_run: list(row, "tests_run")?,
        risks: list(row, "risks")?,
        next_steps: list(row, "next_steps")?,
        notes: row.text("notes")?,
        created_at: stamp(row, "created_at")?,
    })
}

/// A `messages` row (its time kept as the stored text).
pub(crate) fn message<R: Columns>(row: &R) -> Result<Message, R::Error> {
    Ok(Message {
        id: row.text("id")?,
        dedupe_key: row.text_opt("dedupe_key")?,
        reply_to: row.text_opt("reply_to")?,
        from_agent: row.text("from_agent")?,
        to_agent: row.text_opt("to_agent")?,
        round_id: row.text_opt("round_id")?,
        msg_type: row.text("msg_type")?,
        subject: row.text("subject")?,
        body: row.text("body")?,
        context_json: row.text("context_json")?,
        hop_count: row.int("hop_count")?,
        created_at: row.text("created_at")?,
    })
}

/// A `locks` row.
pub(crate) fn lock<R: Columns>(row: &R) -> Result<Lock, R::Error> {
    let bad = |what: &str| R::corrupt(format!("locks has an unreadable {what}"));
    let expires = row.text("expires_at")?;
    let created = row.text("created_at")?;
    Ok(Lock {
        id: row.text("id")?,
        lock_key: row.text("lock_key")?,
        holder_agent_id: row.text("holder_agent_id")?,
        resource_type: row.text("resource_type")?,
        resource_id: row.text("resource_id")?,
        fencing_token: row.int("fencing_token")? as u64,
        expires_at: parse_iso(&expires).ok_or_else(|| bad("expires_at"))?,
        created_at: parse_iso(&created).ok_or_else(|| bad("created_at"))?,
    })
}

/// An `agents` row.
pub(crate) fn agent<R: Columns>(row: &R) -> Result<AgentRow, R::Error> {
    Ok(AgentRow {
        id: row.text("id")?,
        name: row.text("name")?,
        // Rows are only written by us as JSON arrays; anything else is treated as
        // empty rather than refusing to start.
        capabilities: list(row, "capabilities")?,
        registered_at: row.text_opt("registered_at")?,
        last_heartbeat: row.text_opt("last_heartbeat")?,
    })
}
