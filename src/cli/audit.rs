//! `hubctl audit`: the stored audit log a page at a time, narrowed by entity, task,
//! agent, kind and time, then (`--follow`) the operator event stream as it comes.

use super::operator::{list_table, s, OperatorClient};
use super::tasks::{log_hint, log_query, seg};
use super::{CliError, LogArgs, Target};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// What `hubctl audit` shows.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Entity type, e.g. task, lock or agent
    pub entity_type: Option<String>,
    /// Entity id, e.g. a task id, a lock key or an agent id
    pub entity_id: Option<String>,
    /// Only the events of this task (the same as `audit task ID`)
    #[arg(long, conflicts_with_all = ["entity_type", "entity_id"])]
    pub task: Option<String>,
    /// Only what this agent did (or `operator`, `system`)
    #[arg(long)]
    pub agent: Option<String>,
    /// Only events of this kind, e.g. round_approved or lock_force_released
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events at or after this time: RFC 3339 (2026-11-29T12:00:00Z), a date
    /// (2026-11-29) or an age (90s, 30m, 2h, 7d)
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub page: LogArgs,
    /// Then go on printing new events as they happen (the operator event stream:
    /// also lock grants and releases), until interrupted
    #[arg(long)]
    pub follow: bool,
}

impl AuditArgs {
    fn entity(&self) -> Option<(String, String)> {
        match (&self.entity_type, &self.entity_id, &self.task) {
            (Some(t), Some(i), _) => Some((t.clone(), i.clone())),
            (_, _, Some(task)) => Some(("task".into(), task.clone())),
            _ => None,
        }
    }

    /// Whether a streamed event passes the filters (the stream itself is unfiltered).
    fn keeps(&self, e: &Value) -> bool {
        let entity_ok = self
            .entity()
            .is_none_or(|(t, i)| e["entity_type"] == t.as_str() && e["entity_id"] == i.as_str());
        let agent_ok = self.agent.as_ref().is_none_or(|a| e["actor"] == a.as_str());
        let kind_ok = self.kind.as_ref().is_none_or(|k| e["type"] == k.as_str());
        // Presence and message events are for live views, not the audit trail.
        let audited = !matches!(
            e["type"].as_str(),
            Some("agent_online" | "agent_offline" | "message_delivered")
        );
        entity_ok && agent_ok && kind_ok && audited
    }
}

/// `--since`: a time, a date (midnight UTC) or an age counted back from now.
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    crate::domain::time::parse_since(text, Utc::now()).ok_or_else(|| bad_since(text.trim()))
}

fn bad_since(t: &str) -> String {
    format!("{t:?} is not a time (2026-11-29T12:00:00Z), a date (2026-11-29) or an age (90s, 30m, 2h, 7d)")
}

/// `hubctl audit`: one page, then the stream with `--follow`.
pub(crate) fn run(dir: &Path, target: &Target, a: &AuditArgs, json: bool) -> Result<(), CliError> {
    if a.entity_type.is_some() != a.entity_id.is_some() {
        return Err(CliError::Api(
            "give both an entity type and an entity id (e.g. `hubctl audit task T-1`)".into(),
        ));
    }
    if !a.follow {
        return page(dir, target, a, json);
    }
    // Subscribed before the page is read: an event committed in between is then
    // on the stream (perhaps also on the page) rather than lost.
    let c = OperatorClient::with_timeout(dir, target, Duration::from_secs(365 * 24 * 3600))?;
    let lines = c.event_lines()?;
    page(dir, target, a, json)?;
    follow(lines, a, json)
}

fn page(dir: &Path, target: &Target, a: &AuditArgs, json: bool) -> Result<(), CliError> {
    let mut path = format!("/operator/audit?{}", log_query(&a.page));
    if let Some((t, i)) = a.entity() {
        path.push_str(&format!("&entity_type={}&entity_id={}", seg(&t), seg(&i)));
    }
    if let Some(agent) = &a.agent {
        path.push_str(&format!("&actor={}", seg(agent)));
    }
    if let Some(kind) = &a.kind {
        path.push_str(&format!("&event_type={}", seg(kind)));
    }
    if let Some(since) = &a.since {
        path.push_str(&format!("&since={}", seg(&since.to_rfc3339())));
    }
    let v = OperatorClient::new(dir, target)?.get(&path)?;
    if json {
        super::tasks::print_json(&v);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    vec![
                        s(&e["created_at"]),
                        s(&e["event_type"]),
                        format!("{}:{}", s(&e["entity_type"]), s(&e["entity_id"])),
                        s(&e["actor"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    print!(
        "{}",
        list_table(
            &["AT", "EVENT", "ENTITY", "ACTOR"],
            &rows,
            "no audit events"
        )
    );
    log_hint(&v, "audit", &a.page);
    Ok(())
}

/// Print events of the operator event stream as they come (those passing the
/// filters), until the stream ends or hubctl is stopped.
fn follow(
    lines: impl Iterator<Item = std::io::Result<String>>,
    a: &AuditArgs,
    json: bool,
) -> Result<(), CliError> {
    for line in lines {
        let line = line.map_err(|e| CliError::Api(format!("event stream ended: {e}")))?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let e: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        if e["reason"].is_string() && e["type"].is_null() {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"type": "resync", "reason": e["reason"]})
                );
            } else {
                println!("-- resync: {}", s(&e["reason"]));
            }
            continue;
        }
        if !a.keeps(&e) {
            continue;
        }
        if json {
            println!("{data}");
        } else {
            println!(
                "{}  {}  {}:{}  {}",
                s(&e["at"]),
                s(&e["type"]),
                s(&e["entity_type"]),
                s(&e["entity_id"]),
                s(&e["actor"])
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_dates_and_ages() {
        let t = parse_since("2026-11-29T12:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T12:00:00+00:00");
        let d = parse_since("2026-11-29").unwrap();
        assert_eq!(d.to_rfc3339(), "2026-11-29T00:00:00+00:00");
        let age = Utc::now() - parse_since("2h").unwrap();
        assert!((age.num_minutes() - 120).abs() <= 1, "{age}");
        for bad in ["", "yesterday", "2x", "h", "-3d", "99999999999999d"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
