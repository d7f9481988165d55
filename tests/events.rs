//! The operator event stream: committed audited transitions as SSE, resumable with
//! Last-Event-ID, operator token only.

mod common;
use common::workflow::{draft, hubctl_ok, plan, submit_plan};
use common::*;
use serde_json::Value;
use std::time::Duration;

/// Read events (skipping comments) until `n` arrive: (id, type, data).
fn events(stream: &SseStream, n: usize) -> Vec<(String, String, Value)> {
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
            out.push((id.clone(), kind.clone(), serde_json::from_str(v).unwrap()));
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
    let got = events(&stream, 2);
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
    let again = events(&resumed, 1);
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
    // The (empty) page first.
    assert_eq!(lines.next().unwrap().unwrap(), "(no audit events)");
    std::thread::sleep(Duration::from_millis(300));
    let d = hub.client("disp");
    draft(&d, "T-2");
    submit_plan(&d, "T-2", plan(&[("alice", "code")]));
    let line = lines.next().unwrap().unwrap();
    assert!(
        line.contains("round_plan_submitted") && line.contains("task:T-2"),
        "{line}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
