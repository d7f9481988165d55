//! MCP Streamable HTTP transport: version negotiation and the utilities (checklist
//! lines 1–7, 47, 48 of shared/spec/mcp-transport.md §8, and `server/discover` of
//! §1.5), over real HTTP against a real `hubctl serve` child. Framing, batches,
//! sessions, auth and tools have their own files.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

fn alice() -> String {
    bearer("alice")
}

fn init(hub: &Hub, version: &str) -> Resp {
    hub.post(&std_headers(&alice()), &init_body(version))
}

// ---- Negotiation ----------------------------------------------------------------

/// §8.1
#[test]
fn l01_initialize_2025_11_25() {
    let hub = Hub::start(&["alice"], "");
    let r = init(&hub, "2025-11-25");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type().starts_with("application/json"), "{r:?}");
    let sid = r.header("mcp-session-id").expect("Mcp-Session-Id header");
    assert!(!sid.is_empty());
    let v = r.json();
    assert_eq!((&v["jsonrpc"], &v["id"]), (&json!("2.0"), &json!(1)));
    let res = &v["result"];
    assert_eq!(res["protocolVersion"], "2025-11-25");
    assert_eq!(res["serverInfo"]["name"], "agent-hub");
    assert_eq!(res["serverInfo"]["version"], "0.1.0");
    // Instructions for the model, naming the calling agent and how to wait for work.
    let instructions = res["instructions"].as_str().unwrap_or_default();
    assert!(instructions.starts_with("You are agent \"alice\""), "{res}");
    assert!(
        instructions.contains("inbox_pull with wait_seconds"),
        "{res}"
    );
    assert_eq!(res["capabilities"]["tools"]["listChanged"], false, "{res}");
    assert!(
        res["capabilities"].get("logging").is_none(),
        "logging is not declared: {res}"
    );
    for undeclared in ["prompts", "completions"] {
        assert!(res["capabilities"].get(undeclared).is_none(), "{res}");
    }
}

/// §8.2
#[test]
fn l02_initialize_echoes_older_supported_versions() {
    let hub = Hub::start(&["alice"], "");
    for v in ["2025-06-18", "2025-03-26"] {
        let r = init(&hub, v);
        assert_eq!(r.status, 200, "{v}: {}", r.body);
        assert_eq!(r.json()["result"]["protocolVersion"], v);
        assert!(r.header("mcp-session-id").is_some(), "{v}");
    }
}

/// §8.3
#[test]
fn l03_initialize_with_unsupported_version_answers_latest() {
    let hub = Hub::start(&["alice"], "");
    for v in ["2024-11-05", "2099-01-01", "1.0.0", "2026-07-28"] {
        let r = init(&hub, v);
        assert_eq!(r.status, 200, "{v}: {}", r.body);
        let body = r.json();
        assert!(body.get("error").is_none(), "{v}: {body}");
        assert_eq!(body["result"]["protocolVersion"], LATEST, "{v}");
        assert!(r.header("mcp-session-id").is_some(), "{v}");
    }
}

/// §8.4
#[test]
fn l04_initialize_without_protocol_version_is_invalid_params() {
    let hub = Hub::start(&["alice"], "");
    for params in [
        json!({"capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        json!({"protocolVersion": 5, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": params});
        let r = hub.post(&std_headers(&alice()), &body.to_string());
        assert_eq!(
            (r.status, r.rpc_code()),
            (200, -32602),
            "{params}: {}",
            r.body
        );
        assert_eq!(r.json()["id"], 9);
        assert!(
            r.header("mcp-session-id").is_none(),
            "no session for a failed initialize"
        );
    }
}

/// §8.5
#[test]
fn l05_unsupported_protocol_version_header_is_400() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for bad in ["1999-01-01", "garbage", "2026-07-28"] {
        let r = c.post_with(&ping_body(1), &[("MCP-Protocol-Version", bad)]);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_not_success(&r);
    }
    // The session itself is fine.
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.6
#[test]
fn l06_protocol_version_header_must_match_the_session() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice"); // 2025-11-25
    for other in ["2025-06-18", "2025-03-26"] {
        let r = c.post_with(&ping_body(1), &[("MCP-Protocol-Version", other)]);
        assert_eq!(r.status, 400, "{other}: {}", r.body);
        assert_not_success(&r);
    }
    let same = c.post_with(&ping_body(2), &[("MCP-Protocol-Version", "2025-11-25")]);
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.json()["result"], json!({}));
    let old = hub.client_v("alice", "2025-06-18");
    let r = old.post_with(&ping_body(3), &[("MCP-Protocol-Version", "2025-11-25")]);
    assert_eq!(r.status, 400, "{}", r.body);
}

/// §8.7
#[test]
fn l07_no_version_header_on_a_2025_03_26_session_is_served() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    assert!(!c.send_version_header);
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    let list = c.rpc("tools/list", json!({}));
    tool(&list, "hub_status");
    assert_eq!(c.call("hub_status", json!({}))["ok"], true);
}

/// `server/discover` (a 2026-07-28 client's first request) is answered, without a
/// session; the handshake keeps working on the same endpoint. (tests/modern.rs has
/// the revision's rules.)
#[test]
fn discover_is_answered_and_initialize_still_works() {
    let hub = Hub::start(&["alice"], "");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let a = alice();
    let mut h = std_headers(&a);
    h.extend([
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "server/discover"),
    ]);
    let r = hub.post(&h, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    let versions = &r.json()["result"]["supportedVersions"];
    for v in VERSIONS.iter().chain(["2026-07-28"].iter()) {
        assert!(
            versions.as_array().unwrap().contains(&json!(v)),
            "{v}: {versions}"
        );
    }
    assert_eq!(init(&hub, "2025-11-25").status, 200);
}

// ---- Utilities -------------------------------------------------------------------

/// §8.47
#[test]
fn l47_ping_answers_empty_object() {
    let hub = Hub::start(&["alice"], "");
    // Before notifications/initialized too.
    let r = init(&hub, "2025-11-25");
    let sid = r.header("mcp-session-id").unwrap().to_string();
    let a = alice();
    let mut h = std_headers(&a);
    h.push(("Mcp-Session-Id", &sid));
    let r = hub.post(&h, r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"jsonrpc": "2.0", "id": "p", "result": {}}));
}

/// §8.48
#[test]
fn l48_cancelling_an_unknown_request_is_accepted_and_harmless() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for params in [
        json!({"requestId": "nope", "reason": "user"}),
        json!({"requestId": 12345}),
        json!({}),
    ] {
        let r = c.post_json(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}),
        );
        assert_eq!((r.status, r.body.as_str()), (202, ""), "{params}");
    }
    let r = c.post(r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#);
    assert_eq!(r.status, 202);
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    assert_eq!(c.call("hub_status", json!({}))["ok"], true);
}

/// `notifications/cancelled` for a request still running on the session ends it, and
/// the request gets no response (the spec's cancellation utility: clients report a
/// response to an id they cancelled as one for an unknown id). Its SSE stream just
/// ends. The `requestId` names the request by value: a string however escaped, an
/// integer of any size. Nothing is lost: the inbox keeps its unread messages.
#[test]
fn cancelled_notification_stops_a_long_wait_without_an_answer() {
    let hub = Hub::start(&["alice", "bob"], "");
    let c = hub.client("alice");
    for (id, request_id) in [
        (r#""long-1""#, r#""long-1""#),
        ("18446744073709551616", "18446744073709551616"),
        (r#""long\u002d2""#, r#""long-2""#),
    ] {
        let (url, session) = (hub.url.clone(), c.session.clone());
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"inbox_pull","arguments":{{"wait_seconds":20}}}}}}"#
        );
        let waiting = std::thread::spawn(move || {
            let a = alice();
            let h = [
                ("Authorization", a.as_str()),
                ("Accept", ACCEPT),
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &session),
                ("MCP-Protocol-Version", LATEST),
            ];
            request("POST", &url, &h, &body)
        });
        std::thread::sleep(Duration::from_millis(300));
        let r = c.post(&format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{request_id},"reason":"user"}}}}"#
        ));
        assert_eq!(r.status, 202);
        // Without the cancel this call would end after 20 s with an empty result.
        let answer = waiting.join().unwrap();
        assert_eq!(answer.status, 200, "{id}: {}", answer.body);
        // A call that may wait is answered as an SSE stream; this one ends empty.
        assert!(answer.content_type().starts_with("text/event-stream"));
        assert!(sse_data(&answer.body).is_empty(), "{id}: {}", answer.body);
        assert!(!answer.body.contains(r#""id":"#), "{id}: {}", answer.body);
    }
    // The wait took nothing: a message sent now is unread and pulled.
    let bob = hub.client("bob");
    let sent = bob.call(
        "message_send",
        json!({"to_agent": "alice", "subject": "s", "body": "b"}),
    );
    let got = c.call("inbox_pull", json!({}));
    assert_eq!(got["messages"][0]["id"], sent["message_id"], "{got}");
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// A cancelled lock wait leaves the line at once and gets no answer: when the key
/// is freed the next waiter gets it, not the cancelled one.
#[test]
fn a_cancelled_lock_wait_is_withdrawn_without_an_answer() {
    let hub = Hub::start(&["a", "b", "c"], "");
    let a = hub.client("a");
    a.call("lock_acquire", json!({"lock_key": "L", "ttl_seconds": 60}));
    let b = hub.client("b");
    let (url, headers) = (hub.url.clone(), b.headers());
    let waiting = std::thread::spawn(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = r#"{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"lock_acquire","arguments":{"lock_key":"L","wait_seconds":20,"ttl_seconds":60}}}"#;
        request("POST", &url, &h, body)
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = b
        .post(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"w"}}"#);
    assert_eq!(r.status, 202);
    let answer = waiting.join().unwrap();
    assert!(sse_data(&answer.body).is_empty(), "{}", answer.body);
    // c waits next; a's release hands the key to c, not to b's withdrawn wait.
    let c = hub.client("c");
    let c_wait = std::thread::spawn(move || {
        c.call(
            "lock_acquire",
            json!({"lock_key": "L", "wait_seconds": 20, "ttl_seconds": 60}),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    a.call("lock_release", json!({"lock_key": "L"}));
    let got = c_wait.join().unwrap();
    assert_eq!(got["lock"]["holder_agent_id"], "c", "{got}");
}
