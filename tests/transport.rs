//! MCP Streamable HTTP transport rules (shared/spec/mcp-transport.md §8), over real
//! HTTP against a real server: each rule with its status code and JSON-RPC error.

mod support;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use support::*;

const PING: &str = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;

fn auth(agent: &str) -> String {
    format!("Bearer {}", token(agent))
}

fn post(hub: &Hub, headers: &[(&str, &str)], body: &str) -> Resp {
    post_like("POST", &hub.url, headers, body)
}

fn std_headers(a: &str) -> Vec<(&str, &str)> {
    vec![
        ("Authorization", a),
        ("Accept", ACCEPT),
        ("Content-Type", "application/json"),
    ]
}

#[test]
fn negotiation_of_protocol_versions() {
    let hub = Hub::start(&["alice"], "");
    let a = auth("alice");
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
        ("1.0.0", "2025-11-25"),
    ] {
        let r = post(&hub, &std_headers(&a), &init_body(asked));
        assert_eq!(r.status, 200, "{asked}");
        assert_eq!(r.json()["result"]["protocolVersion"], answered, "{asked}");
        assert!(r.header("mcp-session-id").is_some());
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let r = post(
        &hub,
        &std_headers(&a),
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#,
    );
    assert_eq!((r.status, r.rpc_code()), (200, -32602));
    assert!(r.header("mcp-session-id").is_none());
    let caps = post(&hub, &std_headers(&a), &init_body("2025-11-25")).json()["result"]
        ["capabilities"]
        .clone();
    assert_eq!(caps["tools"]["listChanged"], false);
    assert!(caps.get("logging").is_none());
}

#[test]
fn protocol_version_header_is_checked() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let a = auth("alice");
    let mut h = std_headers(&a);
    h.push(("Mcp-Session-Id", &c.session));
    let mut bad = h.clone();
    bad.push(("MCP-Protocol-Version", "1999-01-01"));
    assert_eq!(post(&hub, &bad, PING).status, 400);
    let mut other = h.clone();
    other.push(("MCP-Protocol-Version", "2025-06-18"));
    assert_eq!(
        post(&hub, &other, PING).status,
        400,
        "differs from the session's"
    );
    let mut same = h.clone();
    same.push(("MCP-Protocol-Version", "2025-11-25"));
    assert_eq!(post(&hub, &same, PING).status, 200);
    // Without the header, a 2025-03-26 session is served normally.
    let old = Client::connect(&hub.url, &token("alice"), "2025-03-26");
    assert_eq!(old.rpc("ping", json!({}))["result"], json!({}));
}

#[test]
fn post_framing_errors() {
    let hub = Hub::start(&["alice"], "max_body_bytes: 2048\n");
    let c = hub.client("alice");
    let a = auth("alice");
    let with = |accept: &str, ct: &str| -> Vec<(String, String)> {
        vec![
            ("Authorization".into(), a.clone()),
            ("Accept".into(), accept.into()),
            ("Content-Type".into(), ct.into()),
            ("Mcp-Session-Id".into(), c.session.clone()),
        ]
    };
    let send = |h: Vec<(String, String)>, body: &str| {
        let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        post(&hub, &hv, body)
    };
    assert_eq!(
        send(with("application/json", "application/json"), PING).status,
        406
    );
    assert_eq!(
        send(with("text/html", "application/json"), PING).status,
        406
    );
    assert_eq!(send(with(ACCEPT, "text/plain"), PING).status, 415);
    assert_eq!(
        send(with(ACCEPT, "application/json; charset=utf-8"), PING).status,
        200
    );
    let r = send(with(ACCEPT, "application/json"), "{not json");
    assert_eq!((r.status, r.rpc_code()), (400, -32700));
    assert_eq!(r.json()["id"], Value::Null);
    for body in [
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
    ] {
        let r = send(with(ACCEPT, "application/json"), body);
        assert_eq!((r.status, r.rpc_code()), (400, -32600), "{body}");
    }
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(4096)
    );
    assert_eq!(send(with(ACCEPT, "application/json"), &big).status, 413);
    // Only text/event-stream accepted: the answer is an SSE stream with the response.
    let r = send(with("text/event-stream", "application/json"), PING);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let data = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["id"], 5);
    // The server is still fine.
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

#[test]
fn methods_notifications_and_tools() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for m in [
        "foo/bar",
        "prompts/list",
        "logging/setLevel",
        "completion/complete",
    ] {
        let v = c.rpc(m, json!({}));
        assert_eq!(v["error"]["code"], -32601, "{m}");
        assert_eq!(v["id"], 7);
    }
    for n in [
        "notifications/initialized",
        "notifications/whatever",
        "notifications/cancelled",
    ] {
        let r = c
            .post(&json!({"jsonrpc": "2.0", "method": n, "params": {"requestId": 99}}).to_string());
        assert_eq!((r.status, r.body.as_str()), (202, ""), "{n}");
    }
    assert_eq!(
        c.post(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).status,
        202
    );
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    let list = c.rpc("tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap();
    assert!(list["result"].get("nextCursor").is_none());
    for name in [
        "hub_status",
        "agent_register",
        "agent_heartbeat",
        "message_send",
        "task_draft_create",
    ] {
        let t = tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(t["inputSchema"]["type"], "object");
        assert_eq!(t["outputSchema"]["type"], "object");
        assert!(t["title"].is_string() && t["description"].is_string());
        assert!(t["annotations"].is_object());
    }
    let status = tools.iter().find(|t| t["name"] == "hub_status").unwrap();
    assert_eq!(status["annotations"]["readOnlyHint"], true);
    assert_eq!(
        c.rpc("tools/list", json!({"cursor": "garbage"}))["error"]["code"],
        -32602
    );
    let v = c.rpc(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(v["error"]["code"], -32602);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no_such_tool"));
    assert_eq!(
        c.rpc("tools/call", json!({"arguments": {}}))["error"]["code"],
        -32602
    );
    assert_eq!(
        c.rpc("tools/call", json!({"name": "hub_status", "arguments": 5}))["error"]["code"],
        -32602
    );
    // Schema-violating arguments are tool errors naming the field.
    let (v, err) = c.call_raw("agent_register", json!({"name": 5}));
    assert!(err);
    assert_eq!(
        (v["error"].as_str(), v["field"].as_str()),
        (Some("INVALID_ARGUMENT"), Some("name"))
    );
    let (v, err) = c.call_raw("hub_status", json!({"surprise": 1}));
    assert!(err && v["field"] == "surprise");
}

#[test]
fn structured_content_depends_on_version() {
    let hub = Hub::start(&["alice"], "");
    let new = hub.client("alice");
    let v = new.rpc("tools/call", json!({"name": "hub_status", "arguments": {}}));
    assert_eq!(v["result"]["content"][0]["type"], "text");
    assert_eq!(
        v["result"]["structuredContent"]["transport"],
        "streamable-http"
    );
    let old = Client::connect(&hub.url, &token("alice"), "2025-03-26");
    let v = old.rpc("tools/call", json!({"name": "hub_status", "arguments": {}}));
    assert!(v["result"].get("structuredContent").is_none());
    let text: Value =
        serde_json::from_str(v["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["ok"], true);
    let tools = old.rpc("tools/list", json!({}));
    assert!(tools["result"]["tools"][0].get("outputSchema").is_none());
}

#[test]
fn batches_only_on_2025_03_26() {
    let hub = Hub::start(&["alice"], "");
    let new = hub.client("alice");
    let r = new.post(&format!("[{PING}]"));
    assert_eq!((r.status, r.rpc_code()), (400, -32600));
    let old = Client::connect(&hub.url, &token("alice"), "2025-03-26");
    let r = old.post(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"b","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
    assert_eq!(r.status, 200);
    let ids: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!("b")]);
    assert_eq!(
        old.post(r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#)
            .status,
        202
    );
    let r = old.post("[]");
    assert_eq!((r.status, r.rpc_code()), (400, -32600));
    let r = old.post(&format!("[{}]", init_body("2025-03-26")));
    assert_eq!((r.status, r.rpc_code()), (400, -32600));
}

#[test]
fn sessions_rules() {
    let hub = Hub::start(&["alice", "bob"], "");
    let a = auth("alice");
    let r = post(
        &hub,
        &std_headers(&a),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
    assert_eq!(r.status, 400, "no session header");
    let mut h = std_headers(&a);
    h.push(("Mcp-Session-Id", "never-issued"));
    let r = post(&hub, &h, PING);
    assert_eq!((r.status, r.rpc_code()), (404, -32001));
    // Session of alice used with bob's token.
    let alice = hub.client("alice");
    let b = auth("bob");
    let mut h = std_headers(&b);
    h.push(("Mcp-Session-Id", &alice.session));
    assert_eq!(post(&hub, &h, PING).status, 404);
    // initialize with a session header.
    let mut h = std_headers(&a);
    h.push(("Mcp-Session-Id", &alice.session));
    let r = post(&hub, &h, &init_body("2025-11-25"));
    assert_eq!((r.status, r.rpc_code()), (400, -32600));
    // Session ids: visible ASCII, all different. (Bob's: alice's own first session
    // would fall out of her max_sessions_per_agent.)
    let ids: std::collections::HashSet<String> = (0..200)
        .map(|_| {
            let r = post(&hub, &std_headers(&b), &init_body("2025-11-25"));
            r.header("mcp-session-id").unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 200);
    assert!(ids
        .iter()
        .all(|i| i.bytes().all(|b| (0x21..=0x7e).contains(&b))));
    // DELETE ends the session; then 404 for POST, GET and DELETE.
    let del = |sid: Option<&str>| {
        let mut h = vec![("Authorization", a.as_str())];
        if let Some(s) = sid {
            h.push(("Mcp-Session-Id", s));
        }
        post_like("DELETE", &hub.url, &h, "")
    };
    assert_eq!(del(None).status, 400);
    assert_eq!(del(Some(&alice.session)).status, 200);
    assert_eq!(alice.post(PING).status, 404);
    assert_eq!(del(Some(&alice.session)).status, 404);
    let g = post_like(
        "GET",
        &hub.url,
        &[
            ("Authorization", &a),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &alice.session),
        ],
        "",
    );
    assert_eq!(g.status, 404);
}

#[test]
fn idle_sessions_expire() {
    let hub = Hub::start(&["alice"], "session_idle_timeout_secs: 1\n");
    let c = hub.client("alice");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert_eq!(c.post(PING).status, 404);
    let fresh = hub.client("alice");
    assert_eq!(fresh.rpc("ping", json!({}))["result"], json!({}));
}

#[test]
fn stateless_probe_gets_a_plain_400() {
    let hub = Hub::start(&["alice"], "");
    let a = auth("alice");
    let mut h = std_headers(&a);
    h.push(("MCP-Protocol-Version", "2026-07-28"));
    let r = post(
        &hub,
        &h,
        r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#,
    );
    assert_eq!(r.status, 400);
    let code = r.rpc_code();
    assert!(![-32020, -32021, -32022].contains(&code), "{code}");
}

fn open_stream(hub: &Hub, c: &Client) -> ureq::Response {
    ureq::get(&hub.url)
        .set("Authorization", &auth("alice"))
        .set("Accept", "text/event-stream")
        .set("Mcp-Session-Id", &c.session)
        .call()
        .expect("GET stream")
}

#[test]
fn get_stream_keepalive_and_exclusivity() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let c = hub.client("alice");
    let a = auth("alice");
    let resp = open_stream(&hub, &c);
    assert_eq!(resp.status(), 200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let mut reader = BufReader::new(resp.into_reader());
    let mut pings = 0;
    let mut line = String::new();
    while pings < 2 {
        line.clear();
        reader.read_line(&mut line).expect("read stream");
        if line.starts_with(": ping") {
            pings += 1;
        }
    }
    // A second GET on the same session while the first is open.
    let g = post_like(
        "GET",
        &hub.url,
        &[
            ("Authorization", &a),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &c.session),
        ],
        "",
    );
    assert_eq!(g.status, 409);
    let g = post_like(
        "GET",
        &hub.url,
        &[
            ("Authorization", &a),
            ("Accept", "application/json"),
            ("Mcp-Session-Id", &c.session),
        ],
        "",
    );
    assert_eq!(g.status, 406);
    let g = post_like(
        "GET",
        &hub.url,
        &[("Authorization", &a), ("Accept", "text/event-stream")],
        "",
    );
    assert_eq!(g.status, 400);
    // DELETE ends the session and its stream.
    assert_eq!(
        post_like(
            "DELETE",
            &hub.url,
            &[("Authorization", &a), ("Mcp-Session-Id", &c.session)],
            ""
        )
        .status,
        200
    );
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
}

#[test]
fn auth_rules() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let none = post(
        &hub,
        &[("Accept", ACCEPT), ("Content-Type", "application/json")],
        &init_body("2025-11-25"),
    );
    assert_eq!(none.status, 401);
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let wrong = post(&hub, &std_headers("Bearer wrong"), &init_body("2025-11-25"));
    assert_eq!(wrong.status, 401);
    assert!(wrong
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert_eq!(
        post(
            &hub,
            &std_headers("Basic dXNlcjpwYXNz"),
            &init_body("2025-11-25")
        )
        .status,
        401
    );
    // Token in the query string only.
    let q = post_like(
        "POST",
        &format!("{}?access_token={}", hub.url, token("alice")),
        &[("Accept", ACCEPT), ("Content-Type", "application/json")],
        &init_body("2025-11-25"),
    );
    assert_eq!(q.status, 401);
    // GET and DELETE need the token too, session id or not.
    let g = post_like(
        "GET",
        &hub.url,
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &c.session),
        ],
        "",
    );
    assert_eq!(g.status, 401);
    assert_eq!(
        post_like("DELETE", &hub.url, &[("Mcp-Session-Id", &c.session)], "").status,
        401
    );
    // The operator token is not an agent.
    let op = format!("Bearer {}", hub.operator_token());
    assert_eq!(
        post(&hub, &std_headers(&op), &init_body("2025-11-25")).status,
        403
    );
    // Origin: a foreign one is refused before auth; ours and none pass.
    let mut h = std_headers("Bearer wrong");
    h.push(("Origin", "http://evil.example"));
    assert_eq!(post(&hub, &h, &init_body("2025-11-25")).status, 403);
    let a = auth("alice");
    let own = format!("http://localhost:{}", hub.port);
    let mut h = std_headers(&a);
    h.push(("Origin", &own));
    assert_eq!(post(&hub, &h, &init_body("2025-11-25")).status, 200);
    // Binds loopback only by default.
    assert!(hub.url.starts_with("http://127.0.0.1:"));
    // The session is unharmed by all of this.
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

#[test]
fn operator_api_needs_the_operator_token() {
    let hub = Hub::start(&["alice"], "");
    let url = format!("{}/operator/agents", hub.base);
    assert_eq!(post_like("GET", &url, &[], "").status, 401);
    assert_eq!(
        post_like("GET", &url, &[("Authorization", &auth("alice"))], "").status,
        403
    );
    let v = hub.operator_get("/operator/agents");
    assert_eq!(v["agents"][0]["agent_id"], "alice");
    let other = post_like("PUT", &hub.url, &[("Authorization", &auth("alice"))], "");
    assert_eq!(other.status, 405);
    assert!(other.header("allow").unwrap().contains("POST"));
}

#[test]
fn cancelled_notification_stops_a_long_wait() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let (url, session) = (hub.url.clone(), c.session.clone());
    let waiting = std::thread::spawn(move || {
        let a = auth("alice");
        let body = r#"{"jsonrpc":"2.0","id":"long-1","method":"tools/call","params":{"name":"inbox_pull","arguments":{"wait_seconds":20}}}"#;
        post_like(
            "POST",
            &url,
            &[
                ("Authorization", &a),
                ("Accept", ACCEPT),
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &session),
            ],
            body,
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = c.post(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long-1","reason":"user"}}"#);
    assert_eq!(r.status, 202);
    // Without the cancel this call would end after 20 s with an empty result, not an error.
    let answer = waiting.join().unwrap().json();
    assert_eq!(
        (answer["id"].as_str(), answer["error"]["code"].as_i64()),
        (Some("long-1"), Some(-32800))
    );
    // Cancelling something unknown or malformed is ignored.
    assert_eq!(
        c.post(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"nope"}}"#
        )
        .status,
        202
    );
    assert_eq!(
        c.post(r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#)
            .status,
        202
    );
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}
