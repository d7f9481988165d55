//! MCP 2026-07-28 on `/mcp`, over raw HTTP against a real `hubctl serve`: no
//! `initialize`, no session; every request carries the revision's `_meta` and
//! mirrored headers, each rule broken once here with the error code and HTTP status
//! the revision gives it. The handshake revisions keep working on the same endpoint.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The answer of a refused request: (HTTP status, JSON-RPC code), with the id echoed.
fn refused(r: &Resp) -> (u16, i64) {
    let v = r.json();
    assert!(v.get("result").is_none(), "{v}");
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    (r.status, r.rpc_code())
}

const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPS_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

#[test]
fn discover_lists_every_revision_without_a_session() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    let d = m.rpc("server/discover", json!({}));
    let versions: Vec<&str> = d["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(versions[0], MODERN, "{d}");
    for v in VERSIONS {
        assert!(versions.contains(&v), "{v}: {d}");
    }
    assert_eq!(
        d["capabilities"]["tools"],
        json!({"listChanged": false}),
        "{d}"
    );
    assert_eq!(d["capabilities"]["resources"]["subscribe"], true, "{d}");
    // The instructions name the caller, so the answer may be cached only privately.
    let instructions = d["instructions"].as_str().unwrap_or_default();
    assert!(instructions.contains("You are agent \"alice\""), "{d}");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["version"],
        "0.1.0"
    );
    assert_eq!(
        (&d["cacheScope"], d["ttlMs"].is_u64()),
        (&json!("private"), true),
        "{d}"
    );
    // Nothing was opened: the hub counts no session.
    assert_eq!(m.call("hub_status", json!({}))["sessions"], 0);
}

#[test]
fn lists_and_results_have_the_revisions_shapes() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    let list = m.rpc("tools/list", json!({}));
    let tools = list["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 16, "{list}");
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(
            t["title"].is_string() && t["outputSchema"].is_object(),
            "{t}"
        );
    }
    assert!(list.get("nextCursor").is_none());
    assert_eq!(
        (&list["cacheScope"], list["ttlMs"].is_u64()),
        (&json!("public"), true)
    );
    // The same tools as a handshake session sees, in the same order.
    let c = hub.client("alice");
    let session_list = &c.rpc("tools/list", json!({}))["result"];
    assert!(
        session_list.get("resultType").is_none(),
        "handshake shape unchanged"
    );
    assert_eq!(&session_list["tools"], &list["tools"]);
    let resources = m.rpc("resources/list", json!({}));
    assert_eq!(resources["resources"][0]["uri"], "agent-hub://inbox");
    assert!(resources["ttlMs"].is_u64());
    assert!(m.rpc("resources/templates/list", json!({}))["ttlMs"].is_u64());
    // Results and tool errors: resultType, structuredContent equal to the text.
    assert_eq!(m.call("hub_status", json!({}))["agent_id"], "alice");
    let (err, is_error) = m.call_raw("agent_register", json!({"name": "x", "capabilities": 7}));
    assert!(is_error && err["error"] == "INVALID_ARGUMENT", "{err}");
}

/// register, send, pull (a waiting pull, answered as a stream without a session),
/// ack, read the inbox resource: the whole messaging path, sessionless.
#[test]
fn a_workflow_without_a_session() {
    let hub = Hub::start(&["alice", "bob"], "");
    let (a, b) = (hub.modern("alice"), hub.modern("bob"));
    let r = a.call(
        "agent_register",
        json!({"name": "Alice (2026)", "capabilities": ["x"]}),
    );
    assert_eq!(r["agent_id"], "alice");
    assert_eq!(hub.operator_agent("alice")["name"], "Alice (2026)");
    let url = hub.url.clone();
    let waiting = std::thread::spawn(move || {
        let b = Modern::new(&url, &token("bob"));
        let params = json!({"name": "inbox_pull", "arguments": {"wait_seconds": 20}});
        let r = b.send("tools/call", params);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.content_type().starts_with("text/event-stream"), "{r:?}");
        assert!(r.header("mcp-session-id").is_none(), "{r:?}");
        sse_data(&r.body).pop().expect("one answer")
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "hello"}),
    );
    let got = waiting.join().unwrap();
    assert_eq!(got["result"]["resultType"], "complete", "{got}");
    let pulled = &got["result"]["structuredContent"];
    assert_eq!(pulled["messages"][0]["id"], sent["message_id"], "{got}");
    let read = b.rpc("resources/read", json!({"uri": "agent-hub://inbox"}));
    assert_eq!(
        (&read["cacheScope"], &read["ttlMs"]),
        (&json!("private"), &json!(0))
    );
    assert!(read["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("hello"));
    b.call("message_ack", json!({"message_id": sent["message_id"]}));
    assert_eq!(b.call("inbox_pull", json!({}))["messages"], json!([]));
}

#[test]
fn meta_rules_are_invalid_params() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    let mut bad_metas = vec![json!(null), json!("x"), json!({})];
    for key in [VERSION_KEY, CAPS_KEY] {
        let mut without = meta();
        without.as_object_mut().unwrap().remove(key);
        bad_metas.push(without);
    }
    let mut caps = meta();
    caps[CAPS_KEY] = json!([]);
    bad_metas.push(caps);
    let mut info = meta();
    info["io.modelcontextprotocol/clientInfo"] = json!(5);
    bad_metas.push(info);
    for bad in bad_metas {
        let body =
            json!({"jsonrpc": "2.0", "id": "m", "method": "tools/list", "params": {"_meta": bad}});
        let r = m.post_with(&body.to_string(), m.headers("tools/list", &json!({})), &[]);
        assert_eq!(refused(&r), (400, -32602), "{bad}: {}", r.body);
        assert_eq!(r.json()["id"], "m");
    }
    // No params at all.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = m.post_with(body, m.headers("tools/list", &json!({})), &[]);
    assert_eq!(refused(&r), (400, -32602), "{}", r.body);
}

#[test]
fn mirrored_headers_must_match_the_body() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    let call = json!({"name": "hub_status", "arguments": {}});
    let read = json!({"uri": "agent-hub://inbox"});
    for (method, params, extra) in [
        // Claimed by its _meta, but no version header.
        ("tools/list", json!({}), vec![("MCP-Protocol-Version", "")]),
        (
            "tools/list",
            json!({}),
            vec![("MCP-Protocol-Version", "2025-11-25")],
        ),
        ("tools/list", json!({}), vec![("Mcp-Method", "")]),
        ("tools/list", json!({}), vec![("Mcp-Method", "tools/call")]),
        ("tools/call", call.clone(), vec![("Mcp-Name", "")]),
        ("tools/call", call.clone(), vec![("Mcp-Name", "hub_statuS")]),
        (
            "tools/call",
            call.clone(),
            vec![("Mcp-Name", "=?base64?!?=")],
        ),
        (
            "resources/read",
            read.clone(),
            vec![("Mcp-Name", "agent-hub://other")],
        ),
    ] {
        let r = m.send_with(method, params, &extra);
        assert_eq!(refused(&r), (400, -32020), "{method} {extra:?}: {}", r.body);
    }
    // The base64 sentinel is decoded before comparing.
    let r = m.send_with(
        "tools/call",
        call.clone(),
        &[("Mcp-Name", "=?base64?aHViX3N0YXR1cw==?=")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A header given twice (only raw HTTP sends that).
    for twice in ["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"] {
        let body = Modern::body(&json!(7), "tools/call", &call);
        let mut h = m.headers("tools/call", &call);
        let value = h.iter().find(|(k, _)| k == twice).unwrap().1.clone();
        h.push((twice.to_string(), value));
        h.push(("Content-Length".into(), body.len().to_string()));
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut conn = RawConn::open(hub.port);
        conn.send_head("POST", "/mcp", &refs, body.as_bytes());
        let r = conn
            .read_response(Duration::from_secs(10))
            .expect("an answer");
        assert_eq!(r.status, 400, "{twice}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!(7), json!(-32020)),
            "{twice}: {v}"
        );
    }
}

#[test]
fn an_unsupported_version_is_told_what_we_serve() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    let mut old = meta();
    old[VERSION_KEY] = json!("2099-01-01");
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": old}});
    let r = m.post_with(
        &body.to_string(),
        m.headers("tools/list", &json!({})),
        &[("MCP-Protocol-Version", "2099-01-01")],
    );
    assert_eq!(refused(&r), (400, -32022), "{}", r.body);
    let data = &r.json()["error"]["data"];
    assert_eq!(data["requested"], "2099-01-01");
    let supported = data["supported"].as_array().unwrap();
    for v in VERSIONS.iter().chain([MODERN].iter()) {
        assert!(supported.contains(&json!(v)), "{v}: {data}");
    }
    // A notification naming a version we do not serve is told the same.
    let n = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#;
    let r = m.post_with(
        n,
        m.headers("notifications/cancelled", &json!({})),
        &[("MCP-Protocol-Version", "2027-01-01")],
    );
    assert_eq!((r.status, r.rpc_code()), (400, -32022), "{}", r.body);
    // An unknown version header without a session is this revision's business, not a
    // plain handshake 400.
    let h = m.headers("ping", &json!({}));
    let r = m.post_with(&ping_body(4), h, &[("MCP-Protocol-Version", "2099-01-01")]);
    assert_eq!(refused(&r), (400, -32602), "no _meta: {}", r.body);
}

#[test]
fn methods_the_revision_removed_or_never_had() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    for method in [
        "ping",
        "resources/subscribe",
        "logging/setLevel",
        "prompts/list",
        "foo/bar",
    ] {
        let r = m.send(method, json!({"uri": "agent-hub://inbox", "level": "info"}));
        assert_eq!(refused(&r), (404, -32601), "{method}: {}", r.body);
    }
    let r = m.send(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(refused(&r), (400, -32602), "{}", r.body);
    assert!(r.body.contains("no_such_tool"), "{}", r.body);
    // -32002 is retired: an unknown resource is invalid params.
    let r = m.send("resources/read", json!({"uri": "agent-hub://nope"}));
    assert_eq!(refused(&r), (400, -32602), "{}", r.body);
    let r = m.send("tools/list", json!({"cursor": "garbage"}));
    assert_eq!(refused(&r), (400, -32602), "{}", r.body);
}

#[test]
fn one_message_per_post_and_both_media_types() {
    let hub = Hub::start(&["alice"], "");
    let m = hub.modern("alice");
    let list = json!({});
    let h = m.headers("tools/list", &list);
    let one = Modern::body(&json!(1), "tools/list", &list);
    let r = m.post_with(&format!("[{one}]"), h.clone(), &[]);
    assert_eq!(refused(&r), (400, -32600), "batch: {}", r.body);
    let r = m.post_with(r#"{"jsonrpc":"2.0","id":5,"result":{}}"#, h.clone(), &[]);
    assert_eq!(refused(&r), (400, -32600), "response: {}", r.body);
    // A notification is accepted and dropped (cancellation is closing a stream).
    let n = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#;
    let r = m.post_with(n, h.clone(), &[("Mcp-Method", "notifications/cancelled")]);
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    let r = m.post_with(&one, h.clone(), &[("Accept", "text/event-stream")]);
    assert_eq!(r.status, 406, "{}", r.body);
    // No GET stream and no session to DELETE in this revision: 405, POST only.
    let auth = bearer("alice");
    for verb in ["GET", "DELETE"] {
        let h = [
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
            ("MCP-Protocol-Version", MODERN),
        ];
        let r = request(verb, &hub.url, &h, "");
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("POST")),
            "{verb}: {}",
            r.body
        );
        // Without the revision's header it is a handshake request missing its session.
        let r = request(verb, &hub.url, &h[..2], "");
        assert_eq!(r.status, 400, "{verb}: {}", r.body);
    }
    // With a session header the handshake rules apply: an unknown session is 404.
    let r = m.post_with(&one, h, &[("Mcp-Session-Id", "nope")]);
    assert_eq!(r.status, 404, "{}", r.body);
}

/// Handshake sessions and sessionless requests of one agent interleave on `/mcp`.
#[test]
fn both_eras_side_by_side() {
    let hub = Hub::start(&["alice", "bob"], "");
    let old = hub.client_v("bob", "2025-03-26");
    let new = hub.modern("alice");
    let sent = new.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "b"}),
    );
    let got = old.call("inbox_pull", json!({}));
    assert_eq!(got["messages"][0]["id"], sent["message_id"]);
    let back = old.call(
        "message_send",
        json!({"to_agent": "alice", "subject": "r", "body": "b"}),
    );
    assert_eq!(
        new.call("inbox_pull", json!({}))["messages"][0]["id"],
        back["message_id"]
    );
    assert_eq!(old.rpc("ping", json!({}))["result"], json!({}));
    // initialize with the revision's header still opens a handshake session.
    let r = hub.post(
        &[
            ("Authorization", &bearer("alice")),
            ("Accept", ACCEPT),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", MODERN),
        ],
        &init_body(MODERN),
    );
    assert_eq!(r.json()["result"]["protocolVersion"], LATEST, "{}", r.body);
    assert!(r.header("mcp-session-id").is_some());
}

/// Closing a response stream is this revision's cancellation: a parked lock wait
/// whose client hung up is withdrawn, so the next waiter gets the key.
#[test]
fn closing_a_waiting_stream_withdraws_the_wait() {
    let hub = Hub::start(&["a", "b", "c"], "");
    let a = hub.modern("a");
    a.call("lock_acquire", json!({"lock_key": "L", "ttl_seconds": 60}));
    let b = hub.modern("b");
    let params = json!({"name": "lock_acquire", "arguments": {"lock_key": "L", "wait_seconds": 20, "ttl_seconds": 60}});
    let body = Modern::body(&json!(1), "tools/call", &params);
    let mut h = b.headers("tools/call", &params);
    h.push(("Content-Length".into(), body.len().to_string()));
    let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut conn = RawConn::open(hub.port);
    conn.send_head("POST", "/mcp", &refs, body.as_bytes());
    let head = conn.read_head(Duration::from_secs(10));
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("mcp-session-id"),
        "{head}"
    );
    drop(conn);
    // Comments go out every second: within about two the server knows b left.
    std::thread::sleep(Duration::from_millis(2500));
    let url = hub.url.clone();
    let c_wait = std::thread::spawn(move || {
        Modern::new(&url, &token("c")).call(
            "lock_acquire",
            json!({"lock_key": "L", "wait_seconds": 20, "ttl_seconds": 60}),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    a.call("lock_release", json!({"lock_key": "L"}));
    let got = c_wait.join().unwrap();
    assert_eq!(got["lock"]["holder_agent_id"], "c", "{got}");
}

#[test]
fn listen_streams_carry_inbox_updates() {
    let hub = Hub::start(&["alice", "bob"], "");
    let (a, b) = (hub.modern("alice"), hub.modern("bob"));
    let wait = Duration::from_secs(10);
    // Ids are echoed as sent: an integer beyond 64 bits, a string.
    let big = hub.modern("bob").listen(
        "18446744073709551616",
        json!({"resourceSubscriptions": ["agent-hub://inbox"]}),
    );
    let s = b.listen(
        r#""listen-1""#,
        json!({"resourceSubscriptions": ["agent-hub://inbox", "file:///x"], "toolsListChanged": true}),
    );
    assert!(s.content_type.starts_with("text/event-stream"));
    let ack = s.next_event(wait).expect("acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    // Only what we send is acknowledged.
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": ["agent-hub://inbox"]})
    );
    let sent = a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "b"}),
    );
    let n = s.next_event(wait).expect("an update");
    assert_eq!(n["method"], "notifications/resources/updated", "{n}");
    assert_eq!(n["params"]["uri"], "agent-hub://inbox");
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    assert_eq!(
        n["params"]["_meta"]["agent-hub/message"]["id"],
        sent["message_id"]
    );
    let first = big.next_line(wait).expect("a line");
    let line = std::iter::once(first)
        .chain(std::iter::from_fn(|| big.next_line(wait)))
        .find(|l| l.starts_with("data:"))
        .expect("ack");
    assert!(
        line.contains(r#""io.modelcontextprotocol/subscriptionId":18446744073709551616"#),
        "{line}"
    );
    // A listen without a filter is malformed; one without the inbox gets nothing of it.
    let r = b.send("subscriptions/listen", json!({}));
    assert_eq!(refused(&r), (400, -32602), "{}", r.body);
    let quiet = a.listen("2", json!({}));
    assert_eq!(
        quiet.next_event(wait).expect("ack")["params"]["notifications"],
        json!({})
    );
}

/// Removing an agent ends its listen streams with the graceful closing response.
#[test]
fn removing_the_agent_closes_its_listen_streams_gracefully() {
    let hub = Hub::start(&["alice", "bob"], "");
    let s = hub.modern("bob").listen(
        r#""l""#,
        json!({"resourceSubscriptions": ["agent-hub://inbox"]}),
    );
    let wait = Duration::from_secs(10);
    assert!(s.next_event(wait).is_some(), "ack");
    write_private(
        &hub.path().join("agents.env"),
        &format!("alice={}\n", token("alice")),
    );
    let out = hub.hubctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let closed = s.next_event(wait).expect("closing response");
    assert_eq!(
        (&closed["id"], &closed["result"]["resultType"]),
        (&json!("l"), &json!("complete")),
        "{closed}"
    );
    assert_eq!(
        closed["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "l"
    );
    assert!(s.ends_within(wait), "the stream ends");
}

/// A listen stream whose client went away is unregistered once a keep-alive comment
/// cannot be written (closing the stream is this revision's cancellation).
#[test]
fn closing_a_listen_stream_unregisters_it() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let open = || hub.operator_get("/operator/hub")["listen_streams"].as_u64();
    let s = hub
        .modern("alice")
        .listen("1", json!({"resourceSubscriptions": ["agent-hub://inbox"]}));
    assert!(s.next_event(Duration::from_secs(10)).is_some(), "ack");
    assert_eq!(open(), Some(1));
    drop(s);
    let gone = wait_for(Duration::from_secs(20), || {
        (open() == Some(0)).then_some(())
    });
    assert!(gone.is_some(), "still registered: {:?}", open());
}
