//! `access_log: true`: one stderr line per tool call with agent, tool, outcome and
//! milliseconds, never arguments; off by default. `log_format: json` makes the
//! access lines (and the main log) JSON objects.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn access_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("ACCESS") || l.contains("\"type\":\"access\""))
        .collect()
}

#[test]
fn one_line_per_tool_call_without_arguments() {
    let hub = Hub::start(&["alice", "bob"], "access_log: true\n");
    let alice = hub.client("alice");
    alice.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "secret-subject", "body": "secret-body"}),
    );
    let to_nobody = json!({"to_agent": "nobody", "subject": "s", "body": "b"});
    assert_eq!(alice.refused("message_send", to_nobody), "UNKNOWN_AGENT");
    let err = hub
        .out
        .wait_stderr("outcome=UNKNOWN_AGENT", Duration::from_secs(10));
    let lines = access_lines(&err);
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("agent=alice tool=message_send outcome=ok ms="),
        "{err}"
    );
    assert!(
        lines[1].contains("agent=alice tool=message_send outcome=UNKNOWN_AGENT ms="),
        "{err}"
    );
    let ms: f64 = lines[0]
        .rsplit("ms=")
        .next()
        .unwrap_or("")
        .parse()
        .expect("ms is a number");
    assert!(ms >= 0.0);
    assert!(
        !err.contains("secret-"),
        "arguments are never logged: {err}"
    );
}

#[test]
fn json_lines_for_log_shippers() {
    let config = "access_log: true\nlog_format: json\n";
    let hub = Hub::start_env(&["alice"], config, &[("RUST_LOG", "info")]);
    hub.client("alice").call("agent_heartbeat", json!({}));
    let err = hub
        .out
        .wait_stderr("\"type\":\"access\"", Duration::from_secs(10));
    let lines = access_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    let v: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(v["agent"], "alice");
    assert_eq!(v["tool"], "agent_heartbeat");
    assert_eq!(v["outcome"], "ok");
    assert!(v["ms"].is_number());
    // The main log is JSON too: every line on stderr is an object.
    assert!(err.contains("session opened"), "{err}");
    for l in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "{l}");
    }
}

#[test]
fn off_by_default() {
    let hub = Hub::start(&["alice"], "");
    hub.client("alice").call("agent_heartbeat", json!({}));
    std::thread::sleep(Duration::from_millis(300));
    let err = hub.out.stderr();
    assert!(access_lines(&err).is_empty(), "{err}");
}
