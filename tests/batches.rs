//! JSON-RPC batches (checklist lines 16–20 of shared/spec/mcp-transport.md §8): only
//! on sessions negotiated at 2025-03-26.

mod common;
use common::*;
use serde_json::{json, Value};

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
