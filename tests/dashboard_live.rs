//! The dashboard's event stream, `/ui/events`: the operator event stream for a
//! session cookie (never a bearer token), resumed after the event a page was
//! rendered at or after `Last-Event-ID`, and ended with the session.

mod common;
use common::workflow::*;
use common::*;
use serde_json::json;
use std::time::Duration;

/// The round of T-1 that `disp` planned for alice (code) and bob (tests).
fn waiting_round(hub: &Hub) -> String {
    let d = hub.client("disp");
    draft(&d, "T-1");
    submit_plan(&d, "T-1", plan(CODE_AND_TESTS))
}

#[test]
fn the_live_stream_needs_a_session_resumes_and_ends_with_the_session() {
    let hub = workflow_hub();
    let b = Browser::logged_in(&hub);
    let page = b.page("/ui");
    let cookie = format!("ahub_session={}", b.session().unwrap());
    let url = format!("{}/ui/events", hub.base);
    assert_eq!(
        SseStream::open(&url, &[]).err().map(|r| r.status),
        Some(401)
    );
    let auth = format!("Bearer {}", hub.operator_token());
    assert_eq!(
        SseStream::open(&url, &[("Authorization", &auth)])
            .err()
            .map(|r| r.status),
        Some(401),
        "the dashboard's stream takes the cookie, not the token"
    );
    let stream = SseStream::open(&url, &[("Cookie", &cookie)]).expect("stream");
    let round = waiting_round(&hub);
    let ev = next_event(&stream, "round_plan_submitted");
    assert_eq!(ev["entity_id"], "T-1");
    // A page rendered before the plan resumes after its event: the plan is replayed.
    let last = page
        .split("data-last-event=\"")
        .nth(1)
        .map(|s| s[..s.find('"').unwrap()].to_string());
    let resume = match &last {
        Some(id) => format!("{url}?last_event_id={id}"),
        None => url.clone(),
    };
    if last.is_some() {
        let replay = SseStream::open(&resume, &[("Cookie", &cookie)]).expect("stream");
        assert_eq!(
            next_event(&replay, "round_plan_submitted")["entity_id"],
            "T-1"
        );
    }
    hubctl_ok(&hub, &["approve", &round]);
    let approved_id = next_event_id(&stream, "round_approved");
    // Last-Event-ID (a reconnect) wins over the page's id.
    let again = SseStream::open(
        &resume,
        &[("Cookie", &cookie), ("Last-Event-ID", &approved_id)],
    )
    .expect("stream");
    hub.client("alice")
        .call("lock_acquire", json!({"lock_key": "k", "ttl_seconds": 60}));
    assert_eq!(next_event(&again, "lock_granted")["entity_id"], "k");
    // Logging out ends the open stream (checked before each event or keep-alive).
    let csrf = b.csrf();
    b.post("/ui/logout", &[("csrf", &csrf)]);
    hub.client("alice")
        .call("lock_acquire", json!({"lock_key": "k2", "ttl_seconds": 60}));
    let ended = wait_for(Duration::from_secs(10), || {
        match stream.next_line(Duration::from_secs(5)) {
            None => Some(true),
            Some(l) if l.contains("\"k2\"") => Some(false),
            Some(_) => None,
        }
    });
    assert_eq!(ended, Some(true), "the stream ended without sending k2");
}

/// The data of the next event of `kind` on `stream`.
fn next_event(stream: &SseStream, kind: &str) -> serde_json::Value {
    let (_, data) = next_of(stream, kind);
    data
}

fn next_event_id(stream: &SseStream, kind: &str) -> String {
    next_of(stream, kind).0
}

fn next_of(stream: &SseStream, kind: &str) -> (String, serde_json::Value) {
    let (mut id, mut event) = (String::new(), String::new());
    loop {
        let line = stream
            .next_line(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no {kind} event"));
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_string();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            if event == kind {
                return (id, serde_json::from_str(v).unwrap());
            }
        }
    }
}
