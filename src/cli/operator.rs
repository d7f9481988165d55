//! Operator commands: HTTP calls to the running hub's operator API with the token
//! from `operator.token`. Tables for people, `--json` for scripts, and a non-zero
//! exit with a one-line reason on any failure.

use super::{hub_url, CliError, Target};
use crate::config::bootstrap;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub(crate) struct OperatorClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl OperatorClient {
    pub(crate) fn new(dir: &Path, target: &Target) -> Result<Self, CliError> {
        Self::with_timeout(dir, target, Duration::from_secs(30))
    }

    /// The hub's base URL, e.g. `http://127.0.0.1:8765`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// For commands whose answer may take long (prune, vacuum of a big history).
    pub(crate) fn with_timeout(
        dir: &Path,
        target: &Target,
        timeout: Duration,
    ) -> Result<Self, CliError> {
        let loaded = bootstrap::prepare(dir, false)?;
        Ok(OperatorClient {
            base: hub_url(&loaded.dir, target, &loaded.settings),
            token: loaded.operator_token,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(3))
                .timeout(timeout)
                .build(),
        })
    }

    fn finish(&self, r: Result<ureq::Response, ureq::Error>) -> Result<Value, CliError> {
        match r {
            Ok(resp) => resp
                .into_json::<Value>()
                .map_err(|e| CliError::Api(format!("the hub sent an unreadable answer: {e}"))),
            Err(ureq::Error::Status(code, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                if let Some(code) = body.get("error").and_then(Value::as_str) {
                    let msg = body.get("message").and_then(Value::as_str).unwrap_or("");
                    return Err(CliError::Api(format!("{code}: {msg}")));
                }
                let msg = body
                    .get("message")
                    .or_else(|| body.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .unwrap_or("no details")
                    .to_string();
                Err(CliError::Api(format!("the hub refused ({code}): {msg}")))
            }
            Err(ureq::Error::Transport(t)) => Err(CliError::Unreachable {
                url: self.base.clone(),
                detail: t.to_string(),
            }),
        }
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(body.clone());
        self.finish(r)
    }

    pub(crate) fn delete(&self, path: &str) -> Result<Value, CliError> {
        let r = self
            .agent
            .delete(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call();
        self.finish(r)
    }

    /// The lines of the operator event stream (`GET /operator/events`), as they
    /// come; for a client made `with_timeout` long enough to keep reading.
    pub(crate) fn event_lines(
        &self,
    ) -> Result<std::io::Lines<std::io::BufReader<Box<dyn std::io::Read + Send + Sync>>>, CliError>
    {
        use std::io::BufRead;
        let url = format!("{}/operator/events", self.base);
        let resp = self
            .agent
            .get(&url)
            .set("Authorization", &format!("Bearer {}", self.token))
            .call();
        match resp {
            Ok(r) => Ok(std::io::BufReader::new(r.into_reader()).lines()),
            Err(e) => self.finish(Err(e)).and(Err(CliError::Api(
                "the event stream could not be opened".into(),
            ))),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value, CliError> {
        let r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call();
        self.finish(r)
    }
}

/// A list as a table, or `none` (say "no tasks") when it has no rows: a lone header
/// reads like an error.
pub(crate) fn list_table(headers: &[&str], rows: &[Vec<String>], none: &str) -> String {
    if rows.is_empty() {
        format!("({none})\n")
    } else {
        table(headers, rows)
    }
}

/// Left-aligned text table.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// Characters shown escaped: controls (an escape sequence could redraw or retitle
/// the operator's terminal, a newline would break a table) and the invisible
/// format characters that reorder or hide text (bidi overrides, zero widths).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// A value as one line of terminal text, agents' text made harmless (see
/// [`unsafe_char`]).
pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.chars().any(unsafe_char) => s
            .chars()
            .flat_map(|c| {
                let shown: Vec<char> = if unsafe_char(c) {
                    c.escape_unicode().collect()
                } else {
                    vec![c]
                };
                shown
            })
            .collect(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn hub(dir: &Path, target: &Target, json: bool) -> Result<(), CliError> {
    let v = OperatorClient::new(dir, target)?.get("/operator/hub")?;
    if json {
        super::tasks::print_json(&v);
        return Ok(());
    }
    let w = &v["writer"];
    println!(
        "agent-hub {} (pid {}, instance {})",
        s(&v["version"]),
        s(&v["pid"]),
        s(&v["instance"])
    );
    println!("  address:     {}", s(&v["url"]));
    println!(
        "  database:    {} ({})",
        s(&v["database"]),
        s(&v["durability"])
    );
    println!("  uptime:      {} s", s(&v["uptime_seconds"]));
    println!(
        "  agents:      {}   tasks: {} ({} in memory)",
        s(&v["agents"]),
        s(&v["tasks"]),
        s(&v["tasks_in_memory"])
    );
    println!(
        "  sessions:    {}   GET streams: {}   listen streams: {}   requests in flight: {}",
        s(&v["sessions"]),
        s(&v["get_streams"]),
        s(&v["listen_streams"]),
        s(&v["requests_in_flight"])
    );
    println!(
        "  locks held:  {}   unread messages: {}",
        s(&v["locks_held"]),
        s(&v["inbox_unread"])
    );
    println!(
        "  writer:      {} ops queued, writes {} ({} storage faults so far)",
        s(&w["queued_ops"]),
        s(&w["writes"]),
        s(&w["storage_faults"])
    );
    Ok(())
}

pub(crate) fn cluster(dir: &Path, target: &Target, json: bool) -> Result<(), CliError> {
    let v = OperatorClient::new(dir, target)?.get("/operator/cluster")?;
    if json {
        super::tasks::print_json(&v);
        return Ok(());
    }
    let c = &v["cluster"];
    println!(
        "node {} ({}, {} shards held)",
        s(&c["node_id"]),
        s(&c["role"]),
        s(&c["shards_held"])
    );
    if let Some(l) = c["forwards_to"].as_object() {
        println!(
            "forwards calls to: {} at {}",
            s(&l["node_id"]),
            s(&l["url"])
        );
    }
    println!("members:");
    for m in c["members"].as_array().into_iter().flatten() {
        println!(
            "  {:<20} {:<8} {:>5} shards  {}  (seen {}, started {})",
            s(&m["node_id"]),
            if m["live"] == true { "live" } else { "gone" },
            s(&m["shards"]),
            s(&m["addr"]),
            s(&m["seen_at"]),
            s(&m["started_at"]),
        );
    }
    println!("shards:");
    for g in c["shards"].as_array().into_iter().flatten() {
        let owner = match &g["owner"] {
            Value::Null => "(none)".to_string(),
            o => s(o),
        };
        let until = match &g["expires_at"] {
            Value::Null => String::new(),
            t => format!("  until {}", s(t)),
        };
        println!(
            "  {:<20} {:<7} {:>5}  epochs {}..{}{}",
            owner,
            s(&g["state"]),
            s(&g["shards"]),
            s(&g["epochs"][0]),
            s(&g["epochs"][1]),
            until
        );
    }
    let pins = c["pins"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !pins.is_empty() {
        println!("pinned (hubctl cluster unpin gives them back to rendezvous):");
        for p in pins {
            println!("  shard {:>4} -> {}", s(&p["shard"]), s(&p["node_id"]));
        }
    }
    Ok(())
}

/// `hubctl cluster move --to NODE`: long enough for the drain (5 s), the move and
/// the new node's load (20 s), through a gateway.
const MOVE_ANSWER_WITHIN: Duration = Duration::from_secs(60);

pub(crate) fn cluster_move(
    dir: &Path,
    target: &Target,
    to: &str,
    shards: &[u16],
    json: bool,
) -> Result<(), CliError> {
    let mut body = serde_json::json!({ "to": to });
    if !shards.is_empty() {
        body["shards"] = serde_json::json!(shards);
    }
    let v = OperatorClient::with_timeout(dir, target, MOVE_ANSWER_WITHIN)?
        .post("/operator/cluster/move", &body)?;
    if json {
        super::tasks::print_json(&v);
    } else if v["pinned"] == true {
        println!(
            "{} shard(s) pinned to {} ({} ms); hubctl cluster unpin gives them back to rendezvous",
            s(&v["shards"]),
            s(&v["to"]),
            s(&v["took_ms"])
        );
    } else if v["moved"] != true {
        println!("{to} serves already: nothing moved");
    } else {
        println!(
            "{} shards moved from {} to {} in {} ms",
            s(&v["shards"]),
            s(&v["from"]),
            s(&v["to"]),
            s(&v["took_ms"])
        );
    }
    if v["serving"] != true {
        return Err(CliError::Api(format!(
            "{to} holds the shards but does not serve yet; see `hubctl cluster` and its log"
        )));
    }
    Ok(())
}

/// `hubctl cluster unpin`: `shards`, or every pinned shard with `None`.
pub(crate) fn cluster_unpin(
    dir: &Path,
    target: &Target,
    shards: Option<&[u16]>,
    json: bool,
) -> Result<(), CliError> {
    let body = match shards {
        Some(list) => serde_json::json!({ "shards": list }),
        None => serde_json::json!({}),
    };
    let v = OperatorClient::new(dir, target)?.post("/operator/cluster/unpin", &body)?;
    if json {
        super::tasks::print_json(&v);
    } else {
        println!(
            "{} shard(s) unpinned: rendezvous hashing places them again",
            s(&v["unpinned"])
        );
    }
    Ok(())
}

pub(crate) fn agents(
    dir: &Path,
    target: &Target,
    page: &super::LogArgs,
    json: bool,
) -> Result<(), CliError> {
    let path = format!("/operator/agents?{}", super::tasks::log_query(page));
    let v = OperatorClient::new(dir, target)?.get(&path)?;
    if json {
        super::tasks::print_json(&v);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let caps: Vec<String> = a["capabilities"]
                .as_array()
                .map(|c| c.iter().map(s).collect())
                .unwrap_or_default();
            vec![
                s(&a["agent_id"]),
                s(&a["name"]),
                if a["online"] == Value::Bool(true) {
                    "online"
                } else {
                    "offline"
                }
                .into(),
                s(&a["last_seen"]),
                s(&a["last_heartbeat"]),
                caps.join(", "),
            ]
        })
        .collect();
    print!(
        "{}",
        list_table(
            &[
                "AGENT",
                "NAME",
                "PRESENCE",
                "LAST SEEN",
                "LAST HEARTBEAT",
                "CAPABILITIES"
            ],
            &rows,
            "no agents"
        )
    );
    super::tasks::log_hint(&v, "agents", page);
    Ok(())
}

/// The ids of a reload answer's list `key`, comma-separated ("-" if none).
fn ids(v: &Value, key: &str) -> String {
    let list: Vec<String> = v["reloaded"][key]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

/// `hubctl reload`: the running hub re-reads agents.env.
pub(crate) fn reload(dir: &Path, target: &Target, json: bool) -> Result<(), CliError> {
    let v = OperatorClient::new(dir, target)?.post("/operator/reload", &Value::Null)?;
    if json {
        super::tasks::print_json(&v);
        return Ok(());
    }
    print_reloaded(&v);
    Ok(())
}

/// `hubctl notify test`.
pub(crate) fn notify_test(dir: &Path, target: &Target, json: bool) -> Result<(), CliError> {
    // Each target may take its full try timeout.
    let c = OperatorClient::with_timeout(dir, target, Duration::from_secs(180))?;
    let v = c.post("/operator/notify/test", &Value::Null)?;
    let targets = v["targets"].as_array().cloned().unwrap_or_default();
    if json {
        super::tasks::print_json(&v);
    } else {
        for t in &targets {
            let how = if t["ok"] == true {
                format!("ok (HTTP {})", s(&t["status"]))
            } else {
                format!("FAILED: {}", s(&t["error"]))
            };
            println!("{}: {how}", s(&t["target"]));
        }
    }
    if targets.is_empty() {
        return Err(CliError::Api(
            "no webhooks: add a notify: list to config.yaml (see the README), then restart the hub"
                .into(),
        ));
    }
    let failed = targets.iter().filter(|t| t["ok"] != true).count();
    if failed > 0 {
        return Err(CliError::Api(format!(
            "{failed} of {} webhooks failed",
            targets.len()
        )));
    }
    Ok(())
}

/// A reload answer for people.
pub(crate) fn print_reloaded(v: &Value) {
    println!(
        "reloaded agents.env: {} agents; added: {}; removed: {}; rotated: {}; sessions closed: {}",
        s(&v["reloaded"]["agents"]),
        ids(v, "added"),
        ids(v, "removed"),
        ids(v, "rotated"),
        s(&v["reloaded"]["sessions_closed"]),
    );
    println!(
        "reloaded config.yaml: changed: {}; changed but needing a restart: {}",
        ids(v, "settings_changed"),
        ids(v, "restart_needed"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
        assert_eq!(list_table(&["A"], &[], "no tasks"), "(no tasks)\n");
    }

    #[test]
    fn text_for_the_terminal_has_no_control_characters() {
        let v = Value::String("ok\x1b[2J\nnext\u{202e}col".into());
        assert_eq!(s(&v), "ok\\u{1b}[2J\\u{a}next\\u{202e}col");
        assert_eq!(s(&Value::String("plain é".into())), "plain é");
        assert_eq!(s(&Value::Null), "-");
    }
}
