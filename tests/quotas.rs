//! Per-agent quotas of the hardening issue: each is hit, answered with its code,
//! and a well-behaved client is still served.

mod common;
use common::workflow::{draft, hubctl_ok};
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn send_rate_is_limited_per_agent_with_retry_after() {
    let hub = Hub::start(
        &["alice", "bob", "carol"],
        "send_rate_per_second: 1\nsend_burst: 3\n",
    );
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    let msg = |to: &str| json!({"to_agent": to, "subject": "s", "body": "b"});
    for _ in 0..3 {
        a.call("message_send", msg("carol"));
    }
    let (err, is_error) = a.call_raw("message_send", msg("carol"));
    assert!(is_error, "{err}");
    assert_eq!(err["error"], "RATE_LIMITED");
    let retry = err["retry_after_seconds"]
        .as_f64()
        .expect("retry_after_seconds");
    assert!(retry > 0.0 && retry <= 1.0, "{err}");
    let text = err["message"].as_str().unwrap();
    assert!(
        text.contains("retry after") && text.contains("send_rate_per_second"),
        "{text}"
    );
    // A broadcast counts once, and is refused the same way.
    assert_eq!(a.refused("message_send", msg("")), "RATE_LIMITED");
    // Another agent is not slowed down by alice.
    b.call("message_send", msg("carol"));
    // After the advertised wait alice may send again.
    std::thread::sleep(Duration::from_secs_f64(retry + 0.05));
    a.call("message_send", msg(""));
    let got = hub
        .client("carol")
        .call("inbox_pull", json!({"limit": 200}));
    assert_eq!(got["count"], 5, "refused sends stored nothing: {got}");
}

#[test]
fn open_tasks_per_dispatcher_are_capped_and_freed_by_closing() {
    let hub = Hub::start(&["alice", "bob"], "max_open_tasks_per_agent: 2\n");
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    draft(&a, "T1");
    draft(&a, "T2");
    let (err, is_error) = a.call_raw("task_draft_create", json!({"task_id": "T3", "title": "t"}));
    assert!(is_error, "{err}");
    assert_eq!(err["error"], "TOO_MANY_OPEN_TASKS");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("max_open_tasks_per_agent"),
        "{err}"
    );
    // A refused id is not taken, and a taken id is still TASK_EXISTS.
    assert_eq!(
        a.refused("task_draft_create", json!({"task_id": "T1", "title": "t"})),
        "TASK_EXISTS"
    );
    // Others are not affected.
    draft(&b, "B1");
    // A closed task no longer counts, also after a restart.
    hubctl_ok(&hub, &["close", "T1"]);
    draft(&a, "T3");
    let hub = hub.restart();
    let a = hub.client("alice");
    assert_eq!(
        a.refused("task_draft_create", json!({"task_id": "T4", "title": "t"})),
        "TOO_MANY_OPEN_TASKS"
    );
    hubctl_ok(&hub, &["close", "T2"]);
    draft(&a, "T4");
}
