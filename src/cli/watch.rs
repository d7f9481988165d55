//! `hubctl watch`: a live terminal view of what needs the operator (rounds awaiting
//! approval, with their plans), the work under way (assignments and their leases)
//! and the locks held. Re-read when the operator event stream says something
//! changed, redrawn every second for the lease countdowns.

use super::operator::{list_table, s, OperatorClient};
use super::{CliError, Target};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Rounds read per refresh: a view, not a report (`hubctl list-rounds` pages).
const ROUNDS: usize = 50;
/// Rounds whose assignments are read per refresh (one request each).
const ROUNDS_DETAILED: usize = 20;
/// Locks shown.
const LOCKS: usize = 20;
/// A refresh at least this often, events or not (a missed event heals).
const REFRESH: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Print one view and exit (for scripts and for a terminal without ANSI)
    #[arg(long)]
    pub once: bool,
}

/// What one view shows, as the operator API answered it.
#[derive(Debug, Default)]
struct View {
    /// Open rounds with their task and assignments (`/operator/rounds/{id}`), newest
    /// first; the first [`ROUNDS_DETAILED`] only.
    rounds: Vec<Value>,
    /// Open rounds beyond those detailed.
    more_rounds: usize,
    locks: Vec<Value>,
    more_locks: bool,
}

fn fetch(c: &OperatorClient) -> Result<View, CliError> {
    let page = c.get(&format!("/operator/rounds?limit={ROUNDS}"))?;
    let ids: Vec<String> = page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut rounds = Vec::new();
    for id in ids.iter().take(ROUNDS_DETAILED) {
        rounds.push(c.get(&format!("/operator/rounds/{id}"))?);
    }
    let more_rounds =
        ids.len().saturating_sub(ROUNDS_DETAILED) + usize::from(page["next_cursor"].is_string());
    let locks = c.get(&format!("/operator/locks?limit={LOCKS}"))?;
    Ok(View {
        rounds,
        more_rounds,
        locks: locks["items"].as_array().cloned().unwrap_or_default(),
        more_locks: locks["next_cursor"].is_string(),
    })
}

/// Whole seconds from `now` until `at` (RFC 3339), as `1m05s`; `-` if none.
fn left(at: &Value, now: DateTime<Utc>) -> String {
    let Some(t) = at
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    else {
        return "-".into();
    };
    let secs = (t.with_timezone(&Utc) - now).num_seconds();
    if secs <= 0 {
        return "lapsed".into();
    }
    let (m, s) = (secs / 60, secs % 60);
    if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// One screenful of text.
fn render(v: &View, now: DateTime<Utc>, hub: &str) -> String {
    let mut out = format!(
        "agent-hub {hub}  {}  (Ctrl-C to quit)\n\n",
        now.format("%H:%M:%S")
    );
    let (awaiting, working): (Vec<&Value>, Vec<&Value>) = v
        .rounds
        .iter()
        .partition(|r| r["round"]["status"] == "awaiting_operator_approval");
    out.push_str("AWAITING APPROVAL\n");
    if awaiting.is_empty() {
        out.push_str("(no rounds awaiting approval)\n");
    }
    for r in &awaiting {
        let round = &r["round"];
        out.push_str(&format!(
            "round {}  task {} #{}  \"{}\"  -> hubctl approve {} | hubctl reject {} --note ...\n",
            s(&round["id"]),
            s(&round["task_id"]),
            s(&round["round_number"]),
            s(&r["task"]["title"]),
            s(&round["id"]),
            s(&round["id"]),
        ));
        for a in r["assignments"].as_array().into_iter().flatten() {
            out.push_str(&format!("    {}: {}\n", s(&a["agent_id"]), s(&a["goal"])));
        }
    }
    out.push_str("\nASSIGNMENTS\n");
    let rows: Vec<Vec<String>> = working
        .iter()
        .flat_map(|r| {
            let round = &r["round"];
            r["assignments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |a| {
                    vec![
                        format!("{} #{}", s(&round["task_id"]), s(&round["round_number"])),
                        s(&a["agent_id"]),
                        s(&a["status"]),
                        left(&a["lease_expires_at"], now),
                        s(&a["goal"]),
                    ]
                })
        })
        .collect();
    out.push_str(&list_table(
        &["TASK", "AGENT", "STATE", "LEASE", "GOAL"],
        &rows,
        "no open assignments",
    ));
    if v.more_rounds > 0 {
        out.push_str("(more open rounds: hubctl list-rounds)\n");
    }
    out.push_str("\nLOCKS\n");
    let locks: Vec<Vec<String>> = v
        .locks
        .iter()
        .map(|l| {
            vec![
                s(&l["lock_key"]),
                s(&l["holder_agent_id"]),
                left(&l["expires_at"], now),
                s(&l["fencing_token"]),
            ]
        })
        .collect();
    out.push_str(&list_table(
        &["KEY", "HOLDER", "EXPIRES", "FENCING"],
        &locks,
        "no locks held",
    ));
    if v.more_locks {
        out.push_str("(more locks: hubctl locks)\n");
    }
    out
}

/// `hubctl watch`.
pub(crate) fn run(dir: &Path, target: &Target, args: &WatchArgs) -> Result<(), CliError> {
    let c = OperatorClient::new(dir, target)?;
    let hub = c.base().to_string();
    if args.once {
        print!("{}", render(&fetch(&c)?, Utc::now(), &hub));
        return Ok(());
    }
    // Events only say "something changed": a reader thread forwards those that
    // change what is shown (not messages, lock renewals or presence).
    let (tx, rx) = mpsc::channel::<()>();
    let stream = OperatorClient::with_timeout(dir, target, Duration::from_secs(365 * 24 * 3600))?;
    let lines = stream.event_lines()?;
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { return };
            let Some(kind) = line.strip_prefix("event: ") else {
                continue;
            };
            let shown = !matches!(
                kind,
                "message_delivered" | "lock_renewed" | "agent_online" | "agent_offline"
            );
            if shown && tx.send(()).is_err() {
                return;
            }
        }
    });
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut view = fetch(&c)?;
    let mut fetched = Instant::now();
    loop {
        let screen = render(&view, Utc::now(), &hub);
        if tty {
            // Home, clear: the whole view is redrawn.
            print!("\x1b[H\x1b[2J{screen}");
        } else {
            println!("{screen}");
        }
        use std::io::Write;
        std::io::stdout()
            .flush()
            .map_err(|e| CliError::Api(format!("stdout: {e}")))?;
        let changed = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CliError::Api(
                    "the event stream ended (the hub stopped?)".into(),
                ))
            }
        };
        if changed {
            // A burst of events is one refresh.
            std::thread::sleep(Duration::from_millis(200));
            while rx.try_recv().is_ok() {}
        }
        if changed || fetched.elapsed() >= REFRESH {
            view = fetch(&c)?;
            fetched = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_rounds_to_approve_assignments_with_leases_and_locks() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let v = View {
            rounds: vec![
                json!({"round": {"id": "R1", "task_id": "T-1", "round_number": 2, "status": "awaiting_operator_approval"},
                       "task": {"title": "Fix <login>"},
                       "assignments": [{"agent_id": "alice", "goal": "code it", "status": "pending"}]}),
                json!({"round": {"id": "R0", "task_id": "T-0", "round_number": 1, "status": "in_progress"},
                       "assignments": [{"agent_id": "bob", "goal": "review", "status": "claimed",
                                        "lease_expires_at": "2026-11-29T12:01:05Z"}]}),
            ],
            more_rounds: 0,
            locks: vec![json!({"lock_key": "branch:main", "holder_agent_id": "bob",
                               "expires_at": "2026-11-29T11:59:00Z", "fencing_token": 7})],
            more_locks: true,
        };
        let out = render(&v, now, "http://h");
        assert!(
            out.contains("round R1  task T-1 #2  \"Fix <login>\""),
            "{out}"
        );
        assert!(out.contains("    alice: code it"), "{out}");
        assert!(
            out.contains("T-0 #1  bob    claimed  1m05s  review"),
            "{out}"
        );
        assert!(out.contains("branch:main  bob     lapsed"), "{out}");
        assert!(out.contains("(more locks: hubctl locks)"), "{out}");
        let empty = render(&View::default(), now, "http://h");
        assert!(empty.contains("(no rounds awaiting approval)"));
        assert!(empty.contains("(no open assignments)"));
        assert!(empty.contains("(no locks held)"));
    }
}
