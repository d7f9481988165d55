//! Nothing a client sends can hurt the server: malformed bodies of every shape get a
//! 4xx or a JSON-RPC error, and the server keeps its state and keeps serving.

mod common;
use common::*;
use serde_json::json;

#[test]
fn garbage_never_hurts_the_server() {
    let hub = Hub::start(&["alice", "bob"], "");
    let c = hub.client("alice");
    c.call("agent_register", json!({"name": "Before"}));
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<String> = vec![
        "".into(),
        "null".into(),
        "42".into(),
        "\"str\"".into(),
        "{}".into(),
        "[1,2,3]".into(),
        deep,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"agent_register\",\"arguments\":{\"name\":\"\\ud800\"}}}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1e999,\"method\":\"ping\"}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":18446744073709551616,\"method\":\"ping\"}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[1]}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"inbox_pull\",\"arguments\":{\"limit\":-1,\"wait_seconds\":\"x\"}}}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"lock_acquire\",\"arguments\":{\"lock_key\":\"k\",\"ttl_seconds\":1e308}}}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"round_plan_submit\",\"arguments\":{\"task_id\":\"x\",\"plan_json\":{\"assignments\":\"no\"}}}}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"message_ack\",\"arguments\":{\"message_id\":[1,2]}}}".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"assignment_complete\",\"arguments\":{\"assignment_id\":\"x\",\"handoff_json\":null}}}".into(),
        "\u{0}\u{1}\u{2}binary".into(),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}".into(),
    ];
    for body in &bodies {
        let r = c.post(body);
        assert!(
            matches!(r.status, 200 | 202 | 400 | 404 | 413),
            "{} for {:.80}",
            r.status,
            body
        );
        if r.status == 200 {
            let v = r.json();
            assert!(v.get("result").is_some() || v.get("error").is_some(), "{v}");
        }
    }
    // Still serving, state intact.
    let alice = hub.operator_agent("alice");
    assert_eq!(alice["name"], "Before");
    assert_eq!(c.call("hub_status", json!({}))["ok"], true);
    assert_eq!(hub.client("bob").call("hub_status", json!({}))["agents"], 2);
}
