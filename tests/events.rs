//! The operator event stream: committed audited transitions as SSE, resumable with
//! Last-Event-ID, operator token only.

mod common;
use common::workflow::{draft, hubctl_ok, plan, submit_plan};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Read events (skipping comments and presence) until `n` arrive: (id, type, data).
fn events(stream: &SseStream, n: usize) -> Vec<(String, String, Value)> {
    events_where(stream, n, |k| !k.starts_with("agent_"))
}

/// Read events of the kinds `keep` accepts until `n` arrive.
fn events_where(
    stream: &SseStream,
    n: usize,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let (mut id, mut kind) = (String::new(), String::new());
    while out.len() < n {
        let line = stream
            .next_line(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("only {} events: {out:?}", out.len()));
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_string();
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            if keep(&kind) {
                out.push((id.clone(), kind.clone(), serde_json::from_str(v).unwrap()));
            }
        }
    }
    out
}

#[test]
fn transitions_stream_to_the_operator_and_resume_after_last_event_id() {
    let hub = Hub::start(&["disp", "alice"], "");
    let url = format!("{}/operator/events", hub.base);
    let auth = format!("Bearer {}", hub.operator_token());
    // Agents may not watch.
    let agent = format!("Bearer {}", token("alice"));
    assert_eq!(
        SseStream::open(&url, &[("Authorization", agent.as_str())])
            .err()
            .map(|r| r.status),
        Some(403)
    );
    let stream = SseStream::open(&url, &[("Authorization", auth.as_str())]).expect("stream");
    let d = hub.client("disp");
    draft(&d, "T-1");
    let round = submit_plan(&d, "T-1", plan(&[("alice", "code")]));
    hubctl_ok(&hub, &["approve", &round]);
    // The draft first (dashboards list drafts), then the round's transitions.
    let created = events_where(&stream, 1, |k| k == "task_created");
    assert_eq!(created[0].2["entity_id"], "T-1");
    assert_eq!(created[0].2["actor"], "disp");
    let rounds = |k: &str| k.starts_with("round_");
    let got = events_where(&stream, 2, rounds);
    let kinds: Vec<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["round_plan_submitted", "round_approved"], "{got:?}");
    assert_eq!(got[1].2["entity_id"], "T-1");
    assert_eq!(got[1].2["actor"], "operator");
    assert!(got[0].0 < got[1].0, "ids are ordered");
    // Reconnecting after the first event replays the second.
    let resumed = SseStream::open(
        &url,
        &[
            ("Authorization", auth.as_str()),
            ("Last-Event-ID", got[0].0.as_str()),
        ],
    )
    .expect("stream");
    let again = events_where(&resumed, 1, rounds);
    assert_eq!(again[0].0, got[1].0);
    // An id no longer kept (or never given out) asks the client to resync.
    let stale = SseStream::open(
        &url,
        &[("Authorization", auth.as_str()), ("Last-Event-ID", "0-0")],
    )
    .expect("stream");
    assert_eq!(events(&stale, 1)[0].1, "resync");
}

/// `hubctl audit --follow` prints new events as they are committed.
#[test]
fn hubctl_audit_follow_prints_new_events() {
    use std::io::{BufRead, BufReader};
    let hub = Hub::start(&["disp", "alice"], "");
    let mut child = hubctl_cmd(hub.dir.path())
        .arg("--config-dir")
        .arg(hub.path())
        .args(["--url", &hub.base, "audit", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The (empty) page first; the stream was opened before it (nothing to wait for).
    assert_eq!(lines.next().unwrap().unwrap(), "(no audit events)");
    let d = hub.client("disp");
    draft(&d, "T-2");
    submit_plan(&d, "T-2", plan(&[("alice", "code")]));
    let created = lines.next().unwrap().unwrap();
    assert!(
        created.contains("task_created") && created.contains("task:T-2"),
        "{created}"
    );
    let line = lines.next().unwrap().unwrap();
    assert!(
        line.contains("round_plan_submitted") && line.contains("task:T-2"),
        "{line}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Messages, lock grants, renewals and releases, and presence go to the stream too.
#[test]
fn messages_locks_and_presence_stream_to_the_operator() {
    let hub = Hub::start(&["alice", "bob"], "presence_window_secs: 1\n");
    let url = format!("{}/operator/events", hub.base);
    let auth = format!("Bearer {}", hub.operator_token());
    let stream = SseStream::open(&url, &[("Authorization", auth.as_str())]).expect("stream");
    let a = hub.client("alice");
    a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "hi", "body": "x"}),
    );
    let online = events_where(&stream, 1, |k| k.starts_with("agent_"));
    assert_eq!(online[0].1, "agent_online");
    assert_eq!(online[0].2["entity_id"], "alice");
    let msg = events(&stream, 1);
    assert_eq!(msg[0].1, "message_delivered");
    assert_eq!(msg[0].2["actor"], "alice");
    assert_eq!(msg[0].2["payload"]["recipients"], json!(["bob"]));
    assert_eq!(msg[0].2["payload"]["subject"], "hi");
    let lock = json!({"lock_key": "branch:main", "resource_type": "branch", "resource_id": "main", "ttl_seconds": 60});
    a.call("lock_acquire", lock.clone());
    a.call("lock_acquire", lock.clone());
    a.call("lock_release", json!({"lock_key": "branch:main"}));
    let got = events(&stream, 3);
    let kinds: Vec<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["lock_granted", "lock_renewed", "lock_released"],
        "{got:?}"
    );
    assert_eq!(got[0].2["entity_id"], "branch:main");
    // The key's first grant: counter 1 (on PostgreSQL under the shard's epoch,
    // in the high 32 bits).
    let token = got[0].2["payload"]["fencing_token"].as_u64();
    assert_eq!(token.map(|t| t & 0xffff_ffff), Some(1), "{got:?}");
    assert_eq!(got[2].2["payload"]["reason"], "released");
    // Quiet for longer than the presence window: announced offline.
    let offline = events_where(&stream, 1, |k| k == "agent_offline");
    assert_eq!(offline[0].2["entity_id"], "alice");
}

/// `hubctl audit` narrowed by task, agent, kind and time; token changes are audited.
#[test]
fn audit_filters_and_token_changes() {
    let hub = Hub::start(&["disp", "alice"], "");
    let d = hub.client("disp");
    draft(&d, "T-1");
    draft(&d, "T-2");
    let round = submit_plan(&d, "T-1", plan(&[("alice", "code")]));
    hubctl_ok(&hub, &["approve", &round]);
    let by_task = hubctl_ok(&hub, &["audit", "--task", "T-1"]);
    assert!(by_task.contains("round_approved"), "{by_task}");
    assert!(!by_task.contains("task:T-2"), "{by_task}");
    let by_agent = hubctl_ok(&hub, &["audit", "--agent", "operator"]);
    assert!(by_agent.contains("round_approved"), "{by_agent}");
    assert!(!by_agent.contains("round_plan_submitted"), "{by_agent}");
    let by_kind = hubctl_ok(&hub, &["audit", "--kind", "round_plan_submitted"]);
    assert!(by_kind.contains("task:T-1") && !by_kind.contains("round_approved"));
    let future = hubctl_ok(&hub, &["audit", "--since", "2999-01-01"]);
    assert!(future.contains("no audit events"), "{future}");
    let recent = hubctl_ok(&hub, &["audit", "--since", "1h"]);
    assert!(recent.contains("round_approved"), "{recent}");
    let out = hub.hubctl(&["audit", "--since", "yesterday"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not a time"),
        "{err}"
    );
    // Adding an agent is audited (its id, never its token).
    hubctl_ok(&hub, &["agent", "add", "carol"]);
    let added = hubctl_ok(&hub, &["audit", "agent", "carol"]);
    assert!(added.contains("agent_added"), "{added}");
}

/// `hubctl watch` shows a round awaiting approval as soon as it is submitted, and
/// `--once` prints one view.
#[test]
fn hubctl_watch_redraws_when_a_round_arrives() {
    use std::io::{BufRead, BufReader};
    let hub = Hub::start(&["disp", "alice"], "");
    let mut child = hubctl_cmd(hub.dir.path())
        .arg("--config-dir")
        .arg(hub.path())
        .args(["--url", &hub.base, "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Shorter than watch's periodic re-read (10 s): the redraw must come from the event.
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("hubctl watch never showed {what:?}"),
            }
        }
    };
    wait_for("(no rounds awaiting approval)");
    let d = hub.client("disp");
    draft(&d, "T-9");
    let round = submit_plan(&d, "T-9", plan(&[("alice", "write the parser")]));
    let shown = wait_for(&format!("round {round}"));
    assert!(shown.contains("task T-9 #1"), "{shown}");
    wait_for("alice: write the parser");
    let _ = child.kill();
    let _ = child.wait();
    let once = hubctl_ok(&hub, &["watch", "--once"]);
    assert!(once.contains(&format!("hubctl approve {round}")), "{once}");
    assert!(once.contains("(no locks held)"), "{once}");
}
