//! POST framing (checklist lines 8–15 of shared/spec/mcp-transport.md §8, and the
//! processing order of §2.1): Accept, Content-Type, parse errors, invalid requests,
//! unknown methods, notifications, body cap, where responses go.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn alice() -> String {
    bearer("alice")
}

/// A request on `c`'s session with `Accept` and `Content-Type` replaced.
fn with_accept_ct(c: &Client, accept: &str, ct: &str, body: &str) -> Resp {
    c.post_with(body, &[("Accept", accept), ("Content-Type", ct)])
}

// ---- POST framing ----------------------------------------------------------------

/// §8.8
#[test]
fn l08_accept_must_list_both_types() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for accept in [
        "application/json",
        "text/html",
        "application/xml, text/plain",
    ] {
        let r = with_accept_ct(&c, accept, "application/json", &ping_body(1));
        assert_eq!(r.status, 406, "Accept: {accept}: {}", r.body);
        assert_not_success(&r);
    }
    for accept in [
        ACCEPT,
        "text/event-stream, application/json",
        "application/json;q=0.9, text/event-stream;q=0.8",
        "*/*",
    ] {
        let r = with_accept_ct(&c, accept, "application/json", &ping_body(2));
        assert_eq!(r.status, 200, "Accept: {accept}: {}", r.body);
        assert!(
            r.content_type().starts_with("application/json"),
            "Accept: {accept}: {r:?}"
        );
        assert_eq!(r.json()["result"], json!({}));
    }
}

/// §8.8, the other half: `Accept: text/event-stream` alone gets the answer as an SSE
/// stream with one event holding the response.
#[test]
fn l08_accept_event_stream_only_gets_an_sse_answer() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let r = with_accept_ct(&c, "text/event-stream", "application/json", &ping_body(5));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type().starts_with("text/event-stream"), "{r:?}");
    let events = sse_data(&r.body);
    assert_eq!(events.len(), 1, "{}", r.body);
    assert_eq!(events[0]["id"], 5);
    assert_eq!(events[0]["result"], json!({}));
    // A tool call the same way.
    let call = json!({"jsonrpc":"2.0","id":"s1","method":"tools/call","params":{"name":"hub_status","arguments":{}}});
    let r = with_accept_ct(
        &c,
        "text/event-stream",
        "application/json",
        &call.to_string(),
    );
    assert_eq!(r.status, 200);
    let events = sse_data(&r.body);
    assert_eq!(events.last().unwrap()["id"], "s1");
    assert_eq!(
        events.last().unwrap()["result"]["structuredContent"]["ok"],
        true
    );
}

/// §8.9
#[test]
fn l09_content_type_must_be_json() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = with_accept_ct(&c, ACCEPT, ct, &ping_body(1));
        assert_eq!(r.status, 415, "{ct}: {}", r.body);
        assert_not_success(&r);
    }
    let r = with_accept_ct(&c, ACCEPT, "application/json; charset=utf-8", &ping_body(2));
    assert_eq!(r.status, 200, "parameters are allowed: {}", r.body);
    assert_eq!(r.json()["id"], 2);
}

/// §8.10
#[test]
fn l10_invalid_json_is_a_parse_error() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for body in ["{not json", "", "{\"jsonrpc\":\"2.0\",\"id\":1,"] {
        let r = c.post(body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        let v = r.json();
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert_eq!(v["error"]["code"], -32700, "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
        assert_eq!(v["id"], Value::Null, "{v}");
        assert!(v.get("result").is_none());
    }
}

/// §8.11
#[test]
fn l11_not_json_rpc_is_an_invalid_request() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for (body, id) in [
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, json!(1)),
        (r#"{"id":2,"method":"ping"}"#, json!(2)),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            Value::Null,
        ),
        (r#"{"jsonrpc":"2.0","id":3,"method":7}"#, json!(3)),
        (r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","id":4}"#, json!(4)),
        ("42", Value::Null),
    ] {
        let r = c.post(body);
        assert_eq!(
            (r.status, r.rpc_code()),
            (400, -32600),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.json()["id"], id, "{body}: id echoed when readable");
    }
}

/// Request ids are echoed byte for byte, whatever their size or escapes: on a result,
/// an error, an SSE answer, a refused message and in a batch (the raw text compared).
#[test]
fn request_ids_are_echoed_exactly_as_sent() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let ids = [
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "-0",
        r#""a\"b""#,
        r#""caf\u00e9\n\/""#,
        r#""""#,
    ];
    let msg =
        |id: &str, method: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}"}}"#);
    for id in ids {
        let echo = format!(r#""id":{id},"#);
        let r = c.post(&msg(id, "ping"));
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        assert!(r.body.contains(&echo), "{id}: {}", r.body);
        let r = c.post(&msg(id, "foo/bar"));
        assert_eq!(r.rpc_code(), -32601, "{id}: {}", r.body);
        assert!(r.body.contains(&echo), "{id}: {}", r.body);
        let r = with_accept_ct(
            &c,
            "text/event-stream",
            "application/json",
            &msg(id, "ping"),
        );
        assert!(r.content_type().starts_with("text/event-stream"), "{r:?}");
        assert!(r.body.contains(&echo), "{id}: {}", r.body);
        let refused = msg(id, "ping").replace("2.0", "1.0");
        let r = c.post(&refused);
        assert_eq!((r.status, r.rpc_code()), (400, -32600), "{id}: {}", r.body);
        assert!(r.body.contains(&echo), "{id}: {}", r.body);
    }
    let old = hub.client_v("alice", "2025-03-26");
    let batch: Vec<String> = ids.iter().map(|id| msg(id, "ping")).collect();
    let r = old.post(&format!("[{}]", batch.join(",")));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut at = 0;
    for id in ids {
        let found = r.body[at..].find(&format!(r#""id":{id},"#));
        at += found.unwrap_or_else(|| panic!("{id} not echoed in order: {}", r.body)) + 1;
    }
}

/// MCP ids are strings or integers: anything else (a fraction or exponent even when
/// equal to an integer, booleans, objects, arrays, null) is an Invalid Request
/// answered with `id: null`.
#[test]
fn ids_neither_string_nor_integer_are_invalid_requests() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for id in [
        "1e3",
        "1.0",
        "1.5",
        "-0.0",
        "1E2",
        "true",
        r#"{"a":1}"#,
        "[1]",
        "null",
    ] {
        let r = c.post(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        assert_eq!((r.status, r.rpc_code()), (400, -32600), "{id}: {}", r.body);
        assert_eq!(r.json()["id"], Value::Null, "{id}: {}", r.body);
    }
}

/// §8.12
#[test]
fn l12_unknown_or_undeclared_methods_are_method_not_found() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let caps = c.init["result"]["capabilities"].clone();
    let mut methods = vec![
        "foo/bar",
        "prompts/list",
        "completion/complete",
        "logging/setLevel",
    ];
    if caps.get("resources").is_none() {
        methods.push("resources/list");
    }
    for (i, m) in methods.iter().enumerate() {
        let id = json!(format!("req-{i}"));
        let r = c.post_json(
            &json!({"jsonrpc": "2.0", "id": id, "method": m, "params": {"level": "info"}}),
        );
        assert_eq!(r.status, 200, "{m}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], -32601, "{m}: {v}");
        assert_eq!(v["id"], id, "{m}: same id");
        assert!(v.get("result").is_none());
    }
    if caps.get("resources").is_some() {
        // Declared, so served (the hub's inbox resource).
        let v = c.rpc("resources/list", json!({}));
        assert!(v["result"]["resources"].is_array(), "{v}");
    }
}

/// §8.13
#[test]
fn l13_notifications_get_202_and_no_body() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for n in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/whatever", "params": {"x": 1}}),
        json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
    ] {
        let r = c.post_json(&n);
        assert_eq!((r.status, r.body.as_str()), (202, ""), "{n}");
        assert!(r.header("content-type").is_none(), "{n}: {r:?}");
    }
    // A JSON-RPC response from the client is accepted the same way.
    let r = c.post(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.14
#[test]
fn l14_body_over_the_cap_is_413() {
    let hub = Hub::start(&["alice"], "max_body_bytes: 2048\n");
    let c = hub.client("alice");
    let body = |n: usize| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"pad": "a".repeat(n)}}})
            .to_string()
    };
    let big = body(4096);
    assert!(big.len() > 2048);
    let r = c.post(&big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_not_success(&r);
    let small = body(1500);
    assert!(small.len() <= 2048);
    assert_eq!(c.post(&small).status, 200);
}

/// §8.14 with the default cap of 1 MiB.
#[test]
fn l14_default_cap_is_one_mebibyte() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let body = |n: usize| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"pad": "a".repeat(n)}}})
            .to_string()
    };
    let under = body(1_000_000);
    assert!(under.len() < 1_048_576);
    let r = c.post(&under);
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(200)]);
    let over = body(1_048_576);
    assert_eq!(c.post(&over).status, 413);
}

/// §8.15
#[test]
fn l15_response_comes_on_the_post_never_on_the_get_stream() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let c = hub.client("alice");
    let stream = c.open_stream().expect("GET stream");
    assert_eq!(stream.status, 200);
    stream.read_comments(1, Duration::from_secs(10)); // the stream is live
    let r = c.post(r#"{"jsonrpc":"2.0","id":"on-post","method":"tools/call","params":{"name":"hub_status","arguments":{}}}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "on-post");
    let r = c.post(r#"{"jsonrpc":"2.0","id":"ping-on-post","method":"ping"}"#);
    assert_eq!(r.json()["id"], "ping-on-post");
    // Two more keep-alives: whatever was going to be sent on the stream has been.
    for line in stream.read_comments(2, Duration::from_secs(10)) {
        if let Some(data) = line.strip_prefix("data:") {
            let v: Value = serde_json::from_str(data.trim()).unwrap();
            assert!(
                v.get("result").is_none() && v.get("error").is_none(),
                "a response on the GET stream: {v}"
            );
        }
    }
}

/// Status codes come in the order of §2.1: 413, 403, 401 (from the headers), then
/// the body is read (408 and a chunked 413 are in body_read.rs), then 406, 415, 400.
#[test]
fn processing_order_is_deterministic() {
    let hub = Hub::start(&["alice"], "max_body_bytes: 1024\n");
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"p":"{}"}}}}"#,
        "x".repeat(2000)
    );
    let evil = ("Origin", "http://evil.example");
    let a = alice();
    // Too big beats everything.
    let r = hub.post(
        &[
            evil,
            ("Accept", "text/html"),
            ("Content-Type", "text/plain"),
        ],
        &big,
    );
    assert_eq!(r.status, 413);
    // Origin before auth.
    let r = hub.post(&[evil, ("Accept", "text/html")], "{");
    assert_eq!(r.status, 403);
    // Auth before Accept.
    let r = hub.post(
        &[("Accept", "text/html"), ("Content-Type", "text/plain")],
        "{",
    );
    assert_eq!(r.status, 401);
    // Accept before Content-Type.
    let r = hub.post(
        &[
            ("Authorization", &a),
            ("Accept", "text/html"),
            ("Content-Type", "text/plain"),
        ],
        "{",
    );
    assert_eq!(r.status, 406);
    // Content-Type before parsing.
    let r = hub.post(
        &[
            ("Authorization", &a),
            ("Accept", ACCEPT),
            ("Content-Type", "text/plain"),
        ],
        "{",
    );
    assert_eq!(r.status, 415);
    let r = hub.post(&std_headers(&a), "{");
    assert_eq!((r.status, r.rpc_code()), (400, -32700));
}

/// Methods other than POST, GET and DELETE on the endpoint.
#[test]
fn other_http_methods_are_405() {
    let hub = Hub::start(&["alice"], "");
    let r = request("PUT", &hub.url, &[("Authorization", &alice())], "");
    assert_eq!(r.status, 405, "{}", r.body);
    let allow = r.header("allow").expect("Allow header");
    assert!(allow.contains("POST"), "{allow}");
}
