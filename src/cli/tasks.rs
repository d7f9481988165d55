//! Operator commands of the task workflow (approve, reject, close, status,
//! list-tasks, list-rounds, show) and of locks (locks, unlock). One-line confirmations as the reference prints them.

use super::operator::{list_table, s, table, OperatorClient};
use super::{CliError, LogArgs, PageArgs, Target};
use serde_json::{json, Value};
use std::path::Path;

pub(super) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Path segment: ids are URL-safe by construction, but a typo may not be.
pub(super) use crate::domain::ids::path_segment as seg;

pub(crate) fn decide(
    dir: &Path,
    target: &Target,
    round_id: &str,
    note: &str,
    approve: bool,
    json: bool,
) -> Result<(), CliError> {
    let action = if approve { "approve" } else { "reject" };
    let v = OperatorClient::new(dir, target)?.post(
        &format!("/operator/rounds/{}/{action}", seg(round_id)),
        &json!({"note": note}),
    )?;
    if json {
        print_json(&v);
    } else if approve {
        println!("Round {round_id}: APPROVED → {}", s(&v["round"]["status"]));
    } else {
        println!("Round {round_id}: REJECTED → needs re-plan");
    }
    Ok(())
}

pub(crate) fn close(
    dir: &Path,
    target: &Target,
    task_id: &str,
    json: bool,
) -> Result<(), CliError> {
    let v = OperatorClient::new(dir, target)?.post(
        &format!("/operator/tasks/{}/close", seg(task_id)),
        &json!({}),
    )?;
    if json {
        print_json(&v);
    } else {
        println!("Task {task_id}: CLOSED");
    }
    Ok(())
}

fn assignment_rows(list: &Value) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            vec![
                s(&a["id"]),
                s(&a["agent_id"]),
                s(&a["status"]),
                s(&a["lease_expires_at"]),
                s(&a["handoff_id"]),
                s(&a["goal"]),
            ]
        })
        .collect()
}

const ASSIGNMENT_HEADERS: [&str; 6] = [
    "ASSIGNMENT",
    "AGENT",
    "STATUS",
    "LEASE EXPIRES",
    "HANDOFF",
    "GOAL",
];

pub(crate) fn status(
    dir: &Path,
    target: &Target,
    round_id: &str,
    json: bool,
) -> Result<(), CliError> {
    let client = OperatorClient::new(dir, target)?;
    let v = match client.get(&format!("/operator/rounds/{}", seg(round_id))) {
        Ok(v) => v,
        // A task id given where a round id belongs: say so, and what shows it.
        Err(e) => match client.get(&format!("/operator/tasks/{}", seg(round_id))) {
            Ok(_) => {
                return Err(CliError::Api(format!(
                    "{round_id} is a task, not a round: `hubctl show {round_id}` shows it with its rounds"
                )))
            }
            Err(_) => return Err(e),
        },
    };
    if json {
        print_json(&v);
        return Ok(());
    }
    let r = &v["round"];
    println!(
        "Round {} (#{} of task {}): {}",
        s(&r["id"]),
        s(&r["round_number"]),
        s(&r["task_id"]),
        s(&r["status"])
    );
    if r["rejected"] == Value::Bool(true) {
        println!("  rejected by the operator; waiting for a revised plan");
    }
    // Every decision with its note (a rejected plan, then the approved one).
    let decisions = v["decisions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for d in decisions {
        let note = d["note"].as_str().unwrap_or_default();
        println!(
            "  {} by the operator at {}{}",
            if d["action"] == "approve" {
                "approved"
            } else {
                "rejected"
            },
            s(&d["created_at"]),
            if note.is_empty() {
                String::new()
            } else {
                format!(": {note}")
            }
        );
    }
    if decisions.is_empty() && !r["operator_note"].is_null() {
        println!("  operator note: {}", s(&r["operator_note"]));
    }
    if !r["review_verdict"].is_null() {
        println!(
            "  review: {} {}",
            s(&r["review_verdict"]),
            s(&r["review_note"])
        );
    }
    print!(
        "{}",
        table(&ASSIGNMENT_HEADERS, &assignment_rows(&v["assignments"]))
    );
    Ok(())
}

/// GET `path` for a list command: printed as JSON with `--json` (then `None`), else
/// the answer to render.
pub(super) fn fetch(
    dir: &Path,
    target: &Target,
    path: &str,
    json: bool,
) -> Result<Option<Value>, CliError> {
    let v = OperatorClient::new(dir, target)?.get(path)?;
    if json {
        print_json(&v);
        return Ok(None);
    }
    Ok(Some(v))
}

/// One table row per element of `v[key]`.
pub(super) fn rows_of(
    v: &Value,
    key: &str,
    row: impl Fn(&Value) -> Vec<String>,
) -> Vec<Vec<String>> {
    v[key].as_array().into_iter().flatten().map(row).collect()
}

/// `?all=1&limit=N&cursor=C` for a list call.
fn page_query(page: &PageArgs) -> String {
    let mut q = format!("limit={}", page.limit);
    if page.all {
        q.push_str("&all=1");
    }
    if let Some(c) = &page.cursor {
        q.push_str(&format!("&cursor={}", seg(c)));
    }
    q
}

/// After a table: how to get the next page, if there is one.
fn next_page_hint(v: &Value, command: &str, page: &PageArgs) {
    if let Some(c) = v["next_cursor"].as_str() {
        let all = if page.all { " --all" } else { "" };
        println!(
            "more: hubctl {command}{all} --limit {} --cursor {c}",
            page.limit
        );
    }
}

pub(crate) fn list_tasks(
    dir: &Path,
    target: &Target,
    page: &PageArgs,
    json: bool,
) -> Result<(), CliError> {
    let path = format!("/operator/tasks?{}", page_query(page));
    let Some(v) = fetch(dir, target, &path, json)? else {
        return Ok(());
    };
    let rows = rows_of(&v, "items", |t| {
        let cur = &t["current_round"];
        vec![
            s(&t["task"]["id"]),
            s(&t["task"]["status"]),
            s(&t["task"]["dispatcher_agent_id"]),
            if cur.is_null() {
                "-".into()
            } else {
                format!("#{} {}", s(&cur["round_number"]), s(&cur["status"]))
            },
            s(&t["task"]["title"]),
        ]
    });
    print!(
        "{}",
        list_table(
            &["TASK", "STATUS", "DISPATCHER", "CURRENT ROUND", "TITLE"],
            &rows,
            if page.all {
                "no tasks"
            } else {
                "no open tasks; --all lists finished ones too"
            }
        )
    );
    next_page_hint(&v, "list-tasks", page);
    Ok(())
}

pub(crate) fn list_rounds(
    dir: &Path,
    target: &Target,
    task_id: Option<&str>,
    page: &PageArgs,
    json: bool,
) -> Result<(), CliError> {
    let path = match task_id {
        Some(t) => format!("/operator/rounds?task_id={}", seg(t)),
        None => format!("/operator/rounds?{}", page_query(page)),
    };
    let Some(v) = fetch(dir, target, &path, json)? else {
        return Ok(());
    };
    let rows = rows_of(&v, "items", |r| {
        vec![
            s(&r["id"]),
            s(&r["task_id"]),
            format!("#{}", s(&r["round_number"])),
            s(&r["status"]),
            s(&r["updated_at"]),
        ]
    });
    print!(
        "{}",
        list_table(
            &["ROUND", "TASK", "NUMBER", "STATUS", "UPDATED"],
            &rows,
            if page.all || task_id.is_some() {
                "no rounds"
            } else {
                "no open rounds; --all lists finished ones too"
            }
        )
    );
    next_page_hint(&v, "list-rounds", page);
    Ok(())
}

/// How many assignments a round of `/operator/tasks/{id}` lists.
fn assignment_count(r: &Value) -> usize {
    r["assignments"].as_array().map_or(0, Vec::len)
}

pub(crate) fn show(dir: &Path, target: &Target, task_id: &str, json: bool) -> Result<(), CliError> {
    let v = OperatorClient::new(dir, target)?.get(&format!("/operator/tasks/{}", seg(task_id)))?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let t = &v["task"];
    println!(
        "Task {} [{}] {}\n  dispatcher: {}  created: {}  messages: {}",
        s(&t["id"]),
        s(&t["status"]),
        s(&t["title"]),
        s(&t["dispatcher_agent_id"]),
        s(&t["created_at"]),
        s(&v["message_count"])
    );
    let rounds = v["rounds"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default();
    if rounds.is_empty() {
        println!("└── (no rounds yet)");
    }
    for (i, r) in rounds.iter().enumerate() {
        let last_round = i + 1 == rounds.len();
        let (branch, pad) = if last_round {
            ("└──", "    ")
        } else {
            ("├──", "│   ")
        };
        let round = &r["round"];
        let mut line = format!(
            "{branch} Round #{} {} [{}]",
            s(&round["round_number"]),
            s(&round["id"]),
            s(&round["status"])
        );
        if round["rejected"] == Value::Bool(true) {
            line.push_str(" (rejected)");
        }
        if !round["review_verdict"].is_null() {
            line.push_str(&format!(" review: {}", s(&round["review_verdict"])));
        }
        println!("{line}");
        // The notes, under the round line: the operator's and the reviewer's.
        let note_pad = if assignment_count(r) > 0 {
            "│   "
        } else {
            "    "
        };
        if !round["operator_note"].is_null() {
            println!(
                "{pad}{note_pad}operator note: {}",
                s(&round["operator_note"])
            );
        }
        if !round["review_note"].is_null() && round["review_note"] != "" {
            println!("{pad}{note_pad}review note: {}", s(&round["review_note"]));
        }
        let assignments = r["assignments"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default();
        let handoffs = r["handoffs"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default();
        for (j, a) in assignments.iter().enumerate() {
            let last = j + 1 == assignments.len();
            let b = if last { "└──" } else { "├──" };
            println!(
                "{pad}{b} {} {} [{}] {}",
                s(&a["id"]),
                s(&a["agent_id"]),
                s(&a["status"]),
                s(&a["goal"])
            );
            if let Some(h) = handoffs.iter().find(|h| h["assignment_id"] == a["id"]) {
                let inner = if last { "    " } else { "│   " };
                println!(
                    "{pad}{inner}└── handoff {}: branch {} commit {} files {}",
                    s(&h["id"]),
                    s(&h["branch"]),
                    s(&h["commit_hash"]),
                    h["changed_files"].as_array().map(|f| f.len()).unwrap_or(0)
                );
            }
        }
    }
    Ok(())
}

pub(crate) fn locks(
    dir: &Path,
    target: &Target,
    page: &LogArgs,
    json: bool,
) -> Result<(), CliError> {
    let path = format!("/operator/locks?{}", log_query(page));
    let Some(v) = fetch(dir, target, &path, json)? else {
        return Ok(());
    };
    let rows = rows_of(&v, "items", |l| {
        vec![
            s(&l["lock_key"]),
            s(&l["holder_agent_id"]),
            format!("{}:{}", s(&l["resource_type"]), s(&l["resource_id"])),
            format!("{:.0}s", l["expires_in_seconds"].as_f64().unwrap_or(0.0)),
            s(&l["fencing_token"]),
        ]
    });
    print!(
        "{}",
        list_table(
            &["KEY", "HOLDER", "RESOURCE", "EXPIRES IN", "FENCING"],
            &rows,
            "no locks held"
        )
    );
    log_hint(&v, "locks", page);
    Ok(())
}

pub(crate) fn unlock(dir: &Path, target: &Target, key: &str, json: bool) -> Result<(), CliError> {
    let v =
        OperatorClient::new(dir, target)?.delete(&format!("/operator/locks?key={}", seg(key)))?;
    if json {
        print_json(&v);
    } else {
        println!(
            "Lock {key}: RELEASED (was held by {})",
            s(&v["lock"]["holder_agent_id"])
        );
    }
    Ok(())
}

pub(crate) fn prune(
    dir: &Path,
    target: &Target,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    let path = if dry_run {
        "/operator/prune?dry_run=1"
    } else {
        "/operator/prune"
    };
    // A first prune of months of history takes minutes (batches interleave with
    // serving); the answer comes when it is done.
    let client = OperatorClient::with_timeout(dir, target, std::time::Duration::from_secs(3600))?;
    let v = client.post(path, &json!({}))?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    let p = &v["pruned"];
    let mut any = false;
    for (key, what) in [
        ("messages", "read messages"),
        ("tasks", "finished tasks"),
        ("audit_events", "audit events"),
    ] {
        if let Some(n) = p[key].as_u64() {
            println!("{verb} {n} {what}");
            any = true;
        }
    }
    if !any {
        println!("no retention: in config.yaml; nothing to delete");
    }
    // Spread placement: nodes that did not prune their tasks (they will at their
    // next hourly run).
    if let Some(nodes) = v["not_pruned_at"].as_array() {
        let nodes: Vec<&str> = nodes.iter().filter_map(|n| n.as_str()).collect();
        return Err(CliError::Api(format!(
            "the tasks of node(s) {} were not pruned (not reached); they are at their next hourly run, or run hubctl prune again",
            nodes.join(", ")
        )));
    }
    Ok(())
}

pub(crate) fn vacuum(dir: &Path, target: &Target, json: bool) -> Result<(), CliError> {
    let client = OperatorClient::with_timeout(dir, target, std::time::Duration::from_secs(3600))?;
    let v = client.post("/operator/vacuum", &json!({}))?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let mib = |k: &str| v[k].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    println!(
        "database file: {:.1} MiB -> {:.1} MiB",
        mib("bytes_before"),
        mib("bytes_after")
    );
    Ok(())
}

pub(crate) fn backup(dir: &Path, target: &Target, file: &Path, json: bool) -> Result<(), CliError> {
    // Relative to where hubctl runs: the hub's working directory is not ours.
    let abs = std::path::absolute(file)?;
    let client = OperatorClient::with_timeout(dir, target, std::time::Duration::from_secs(3600))?;
    let v = client.post("/operator/backup", &json!({"path": abs.to_string_lossy()}))?;
    if json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "backup written: {} ({:.1} MiB)",
        abs.display(),
        v["bytes"].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// `limit=N&cursor=C` and the next-page hint of the log commands.
pub(super) fn log_query(page: &LogArgs) -> String {
    let mut q = format!("limit={}", page.limit);
    if let Some(c) = &page.cursor {
        q.push_str(&format!("&cursor={}", seg(c)));
    }
    q
}

pub(super) fn log_hint(v: &Value, command: &str, page: &LogArgs) {
    if let Some(c) = v["next_cursor"].as_str() {
        println!("more: hubctl {command} --limit {} --cursor {c}", page.limit);
    }
}
