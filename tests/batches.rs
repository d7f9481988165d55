//! JSON-RPC batches (checklist lines 16–20 of shared/spec/mcp-transport.md §8): only
//! on sessions negotiated at 2025-03-26, at most `max_batch_items` messages, their
//! requests run concurrently.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn alice() -> String {
    bearer("alice")
}

/// §8.16
#[test]
fn l16_array_body_on_a_2025_11_25_session_is_rejected() {
    let hub = Hub::start(&["alice"], "");
    for v in ["2025-11-25", "2025-06-18"] {
        let c = hub.client_v("alice", v);
        let r = c.post(&format!("[{}]", ping_body(1)));
        assert_eq!((r.status, r.rpc_code()), (400, -32600), "{v}: {}", r.body);
        let r = c.post(r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
        assert_eq!(r.status, 400, "{v}");
    }
}

/// §8.17
#[test]
fn l17_batch_of_two_requests_on_2025_03_26() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let r = c.post(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},
            {"jsonrpc":"2.0","id":"b","method":"tools/list"},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":3,"method":"foo/bar"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type().starts_with("application/json"));
    let v = r.json();
    let arr = v.as_array().unwrap_or_else(|| panic!("a JSON array: {v}"));
    assert_eq!(arr.len(), 3, "one response per request: {v}");
    let by_id = |id: Value| {
        arr.iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("no response for {id}: {v}"))
    };
    assert_eq!(by_id(json!(1))["result"], json!({}));
    assert!(by_id(json!("b"))["result"]["tools"].is_array());
    // An invalid element gets its own error entry, the rest is served.
    assert_eq!(by_id(json!(3))["error"]["code"], -32601);
}

/// §8.18
#[test]
fn l18_batch_of_only_notifications_is_202() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let r = c.post(
        r#"[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","method":"notifications/whatever"}]"#,
    );
    assert_eq!((r.status, r.body.as_str()), (202, ""));
}

/// §8.19
#[test]
fn l19_empty_batch_is_invalid() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let r = c.post("[]");
    assert_eq!((r.status, r.rpc_code()), (400, -32600), "{}", r.body);
}

/// §8.20
#[test]
fn l20_batch_containing_initialize_is_invalid() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let r = c.post(&format!("[{},{}]", init_body("2025-03-26"), ping_body(2)));
    assert_eq!((r.status, r.rpc_code()), (400, -32600), "{}", r.body);
    // Without a session, a batch is refused as well.
    let r = hub.post(
        &std_headers(&alice()),
        &format!("[{}]", init_body("2025-03-26")),
    );
    assert_eq!((r.status, r.rpc_code()), (400, -32600), "{}", r.body);
}

/// The requests of a batch run concurrently: an `inbox_pull` and two `lock_acquire`
/// waiting 2 s (on an empty inbox, on keys bob holds) take about 2 s together, not
/// 6; the answers keep the request order.
#[test]
fn batch_requests_run_concurrently_and_answer_in_order() {
    let hub = Hub::start(&["alice", "bob"], "");
    let bob = hub.client("bob");
    for key in ["k1", "k2"] {
        bob.call("lock_acquire", json!({"lock_key": key, "ttl_seconds": 60}));
    }
    let c = hub.client_v("alice", "2025-03-26");
    let pull = |id: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"inbox_pull","arguments":{{"wait_seconds":2}}}}}}"#
        )
    };
    let lock = |id: &str, key: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"lock_acquire","arguments":{{"lock_key":"{key}","wait_seconds":2}}}}}}"#
        )
    };
    let body = format!(
        r#"[{},{},{{"jsonrpc":"2.0","method":"notifications/initialized"}},{}]"#,
        lock(r#""c""#, "k1"),
        pull("1"),
        lock(r#""a""#, "k2")
    );
    let started = Instant::now();
    let r = c.post(&body);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let arr = v.as_array().unwrap_or_else(|| panic!("a JSON array: {v}"));
    let ids: Vec<&Value> = arr.iter().map(|x| &x["id"]).collect();
    assert_eq!(
        ids,
        [&json!("c"), &json!(1), &json!("a")],
        "request order: {v}"
    );
    assert!(arr[1]["result"].get("isError").is_none(), "{v}");
    // The lock waits ran out: LOCK_CONFLICT as tool errors.
    assert_eq!(arr[0]["result"]["isError"], true, "{v}");
    assert_eq!(arr[2]["result"]["isError"], true, "{v}");
    assert!(
        took >= Duration::from_millis(1900),
        "the calls waited: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "run one after another: {took:?}"
    );
}

/// A batch may hold one inbox read: each would build up to `max_pull_bytes` of the
/// same oldest messages, and 64 of them a huge answer at once.
#[test]
fn a_batch_holds_at_most_one_inbox_read() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let pull = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"inbox_pull","arguments":{}}}"#;
    let read = r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"agent-hub://inbox"}}"#;
    let r = c.post(&format!("[{pull},{read}]"));
    assert_eq!((r.status, r.rpc_code()), (400, -32600), "{}", r.body);
    assert!(r.body.contains("at most one inbox_pull"), "{}", r.body);
    let r = c.post(&format!("[{pull},{}]", ping_body(3)));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// At most `max_batch_items` messages (default 64) per batch; a longer batch is
/// refused whole, with Invalid Request and HTTP 400.
#[test]
fn batch_over_max_batch_items_is_refused() {
    let pings = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| ping_body(i as i64)).collect();
        format!("[{}]", items.join(","))
    };
    for (config, cap) in [("", 64), ("max_batch_items: 3\n", 3)] {
        let hub = Hub::start(&["alice"], config);
        let c = hub.client_v("alice", "2025-03-26");
        let r = c.post(&pings(cap));
        assert_eq!(r.status, 200, "{cap}: {}", r.body);
        assert_eq!(r.json().as_array().map(Vec::len), Some(cap));
        let r = c.post(&pings(cap + 1));
        assert_eq!((r.status, r.rpc_code()), (400, -32600), "{cap}: {}", r.body);
        let v = r.json();
        assert_eq!(v["id"], Value::Null);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("max_batch_items"), "{v}");
    }
}

/// A request inside a batch is tracked like a single one: `notifications/cancelled`
/// naming it ends its wait, and the batch answers at once, without an entry for it;
/// a batch whose every request was cancelled is an SSE stream that ends empty.
#[test]
fn a_batch_request_can_be_cancelled() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let pull = r#"{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"inbox_pull","arguments":{"wait_seconds":20}}}"#;
    for with_ping in [true, false] {
        let (url, session) = (hub.url.clone(), c.session.clone());
        let body = if with_ping {
            format!(r#"[{pull},{{"jsonrpc":"2.0","id":2,"method":"ping"}}]"#)
        } else {
            format!("[{pull}]")
        };
        let started = Instant::now();
        let waiting = std::thread::spawn(move || {
            let a = alice();
            let h = [
                ("Authorization", a.as_str()),
                ("Accept", ACCEPT),
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &session),
            ];
            request("POST", &url, &h, &body)
        });
        std::thread::sleep(Duration::from_millis(300));
        let r = c.post(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"w"}}"#,
        );
        assert_eq!(r.status, 202);
        let r = waiting.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "not cancelled");
        assert_eq!(r.status, 200, "{}", r.body);
        if with_ping {
            let v = r.json();
            assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
            assert_eq!(
                (&v[0]["id"], &v[0]["result"]),
                (&json!(2), &json!({})),
                "{v}"
            );
        } else {
            assert!(r.content_type().starts_with("text/event-stream"), "{r:?}");
            assert!(sse_data(&r.body).is_empty(), "{}", r.body);
        }
    }
}
