//! The headers decide before the body is read (shared/spec/mcp-transport.md §2.1
//! steps 1–3): `Content-Length` over the cap 413, foreign `Origin` 403, bad token 401,
//! all without waiting for a body byte; only an authenticated POST gets its body read,
//! within `body_read_timeout_secs` (408, connection closed) and the cap (413). Over
//! raw TCP, since the point is what the server does with a body that never completes.

mod common;
use common::*;
use std::time::Duration;

/// Long enough that an answer given after waiting for the body is obviously late.
const PATIENT: &str = "body_read_timeout_secs: 30\n";
/// How long a test waits for an answer that must come at once.
const AT_ONCE: Duration = Duration::from_secs(5);

fn post_head<'a>(auth: Option<&'a str>, len: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("Accept", ACCEPT),
        ("Content-Type", "application/json"),
        ("Content-Length", len),
    ];
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    h
}

/// A POST announcing `len` bytes and sending only the first 20 of an initialize.
fn partial_post(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> RawConn {
    let mut conn = RawConn::open(hub.port);
    let body = init_body(LATEST);
    conn.send_head("POST", path, headers, &body.as_bytes()[..20]);
    conn
}

fn answer_now(conn: &mut RawConn, what: &str) -> RawResp {
    let r = conn
        .read_response(AT_ONCE)
        .unwrap_or_else(|| panic!("{what}: no answer within {AT_ONCE:?} (waiting for the body?)"));
    assert!(r.elapsed < AT_ONCE, "{what}: {r:?}");
    r
}

#[test]
fn tokenless_post_is_401_without_waiting_for_its_body() {
    let hub = Hub::start(&["alice"], PATIENT);
    for auth in [None, Some("Bearer wrong")] {
        let mut conn = partial_post(&hub, "/mcp", &post_head(auth, "500000"));
        let r = answer_now(&mut conn, &format!("{auth:?}"));
        assert_eq!(r.status, 401, "{auth:?}: {r:?}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|c| c.starts_with("Bearer")),
            "{r:?}"
        );
        assert_eq!(r.header("connection"), Some("close"), "{r:?}");
        assert!(conn.closed_within(AT_ONCE), "the unread body is not kept");
    }
    // The operator token is valid but not an agent's: 403, body unread as well.
    let op = format!("Bearer {}", hub.operator_token());
    let mut conn = partial_post(&hub, "/mcp", &post_head(Some(&op), "500000"));
    assert_eq!(answer_now(&mut conn, "operator").status, 403);
    // A chunked body gets no further.
    let mut conn = RawConn::open(hub.port);
    conn.send_head(
        "POST",
        "/mcp",
        &[
            ("Accept", ACCEPT),
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunk(b"{\"jsonrpc\":"),
    );
    let r = answer_now(&mut conn, "chunked");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(conn.closed_within(AT_ONCE));
    assert_eq!(
        hub.client("alice").rpc("ping", serde_json::json!({}))["result"],
        serde_json::json!({})
    );
}

#[test]
fn foreign_origin_is_403_without_reading_the_body() {
    let hub = Hub::start(&["alice"], PATIENT);
    let a = bearer("alice");
    for auth in [None, Some(a.as_str())] {
        let mut h = post_head(auth, "500000");
        h.push(("Origin", "http://evil.example"));
        let mut conn = partial_post(&hub, "/mcp", &h);
        let r = answer_now(&mut conn, &format!("{auth:?}"));
        assert_eq!(r.status, 403, "{auth:?}: {r:?}");
        assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    }
}

#[test]
fn content_length_over_the_cap_is_413_before_anything_else() {
    let hub = Hub::start(
        &["alice"],
        "max_body_bytes: 2048\nbody_read_timeout_secs: 30\n",
    );
    let a = bearer("alice");
    // No body byte is sent: the answer comes from the headers alone, before the
    // Origin and the token are looked at.
    for (auth, origin) in [
        (Some(a.as_str()), None),
        (None, None),
        (None, Some("http://evil.example")),
    ] {
        let mut h = post_head(auth, "1000000");
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        let mut conn = RawConn::open(hub.port);
        conn.send_head("POST", "/mcp", &h, b"");
        let r = answer_now(&mut conn, &format!("{auth:?} {origin:?}"));
        assert_eq!(r.status, 413, "{r:?}");
        assert!(r.body.contains("max_body_bytes"), "{r:?}");
        assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    }
}

#[test]
fn chunked_body_growing_past_the_cap_is_413() {
    let hub = Hub::start(&["alice"], "max_body_bytes: 2048\n");
    let c = hub.client("alice");
    let mut h: Vec<(&str, &str)> = vec![("Transfer-Encoding", "chunked")];
    let headers = c.headers();
    h.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut conn = RawConn::open(hub.port);
    conn.send_head("POST", "/mcp", &h, &chunk(&[b' '; 1500]));
    conn.send(&chunk(&[b' '; 1500]));
    let r = answer_now(&mut conn, "chunked");
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(conn.closed_within(AT_ONCE));
    // Within the cap a chunked body is served.
    let mut conn = RawConn::open(hub.port);
    let ping = ping_body(7);
    conn.send_head("POST", "/mcp", &h, &chunk(ping.as_bytes()));
    conn.send(b"0\r\n\r\n");
    let r = answer_now(&mut conn, "small chunked");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"id\":7"), "{r:?}");
}

#[test]
fn stalled_body_is_408_after_the_read_timeout_and_closes_the_connection() {
    let hub = Hub::start(&["alice"], "body_read_timeout_secs: 1\n");
    let a = bearer("alice");
    let mut conn = partial_post(&hub, "/mcp", &post_head(Some(&a), "200"));
    let r = conn
        .read_response(Duration::from_secs(10))
        .expect("an answer once the read timeout has passed");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(900) && r.elapsed < Duration::from_secs(5),
        "answered after {:?}, the timeout is 1 s",
        r.elapsed
    );
    assert!(r.body.contains("body_read_timeout_secs"), "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(conn.closed_within(AT_ONCE), "the connection is closed");
    // A chunked body that stalls: the same, and the server does not keep reading it.
    let mut h = post_head(Some(&a), "0");
    h.retain(|(k, _)| *k != "Content-Length");
    h.push(("Transfer-Encoding", "chunked"));
    let mut conn = RawConn::open(hub.port);
    conn.send_head("POST", "/mcp", &h, &chunk(b"{\"jsonrpc\":"));
    let r = conn.read_response(Duration::from_secs(10)).expect("408");
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(
        conn.closed_within(AT_ONCE),
        "the chunked body is not drained"
    );
    // A body that does arrive is served as usual.
    let c = hub.client("alice");
    assert_eq!(
        c.rpc("ping", serde_json::json!({}))["result"],
        serde_json::json!({})
    );
}

/// The operator API's routes with a body check the token first as well.
#[test]
fn operator_body_is_read_only_with_the_operator_token() {
    let hub = Hub::start(&["alice"], "body_read_timeout_secs: 1\n");
    let path = "/operator/rounds/no-such-round/approve";
    let json = ("Content-Type", "application/json");
    let mut conn = partial_post(&hub, path, &[json, ("Content-Length", "5000")]);
    let r = answer_now(&mut conn, "no token");
    assert_eq!(r.status, 401, "{r:?}");
    let agent = bearer("alice");
    let h = [json, ("Content-Length", "5000"), ("Authorization", &agent)];
    let mut conn = partial_post(&hub, path, &h);
    assert_eq!(answer_now(&mut conn, "agent token").status, 403);
    let op = format!("Bearer {}", hub.operator_token());
    let h = [json, ("Content-Length", "5000"), ("Authorization", &op)];
    let mut conn = partial_post(&hub, path, &h);
    let r = conn.read_response(Duration::from_secs(10)).expect("408");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.elapsed >= Duration::from_millis(900), "{r:?}");
    // A complete body reaches the hub (which knows no such round).
    let r = request(
        "POST",
        &format!("{}{path}", hub.base),
        &[json, ("Authorization", &op)],
        r#"{"note": "ok"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.body);
}
