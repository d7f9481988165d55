//! Sessions and the GET stream (shared/spec/mcp-transport.md §3, §4; checklist lines
//! 21–33), over real HTTP against a real `hubctl serve` child.

mod common;
use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

fn list_body() -> String {
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_string()
}

/// POST `body` with a valid token and the given session id (if any).
fn post_session(hub: &Hub, agent: &str, sid: Option<&str>, body: &str) -> Resp {
    let a = bearer(agent);
    let mut h = std_headers(&a);
    if let Some(s) = sid {
        h.push(("Mcp-Session-Id", s));
    }
    hub.post(&h, body)
}

fn get_stream(hub: &Hub, agent: &str, sid: Option<&str>, accept: &str) -> Result<SseStream, Resp> {
    let a = bearer(agent);
    let mut h = vec![("Authorization", a.as_str()), ("Accept", accept)];
    if let Some(s) = sid {
        h.push(("Mcp-Session-Id", s));
    }
    SseStream::open(&hub.url, &h)
}

fn delete(hub: &Hub, agent: &str, sid: Option<&str>) -> Resp {
    let a = bearer(agent);
    let mut h = vec![("Authorization", a.as_str())];
    if let Some(s) = sid {
        h.push(("Mcp-Session-Id", s));
    }
    request("DELETE", &hub.url, &h, "")
}

/// A 404 for a session: JSON-RPC -32001.
fn assert_session_not_found(r: &Resp) {
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.rpc_code(), -32001, "{}", r.body);
}

// ---- Sessions --------------------------------------------------------------------

/// §8.21
#[test]
fn l21_request_without_session_is_400() {
    let hub = Hub::start(&["alice"], "");
    for body in [list_body(), ping_body(2)] {
        let r = post_session(&hub, "alice", None, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.rpc_code(), -32000, "{body}: {}", r.body);
    }
    // A notification without session is refused the same way.
    let r = post_session(
        &hub,
        "alice",
        None,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

/// §8.22
#[test]
fn l22_never_issued_session_is_404() {
    let hub = Hub::start(&["alice"], "");
    let _real = hub.client("alice");
    for sid in ["never-issued", "0123456789abcdef0123456789abcdef"] {
        let r = post_session(&hub, "alice", Some(sid), &list_body());
        assert_session_not_found(&r);
    }
}

/// §8.23
#[test]
fn l23_session_of_token_a_used_with_token_b_is_404() {
    let hub = Hub::start(&["alice", "bob"], "");
    let alice = hub.client("alice");
    let r = post_session(&hub, "bob", Some(&alice.session), &list_body());
    assert_session_not_found(&r);
    let r = delete(&hub, "bob", Some(&alice.session));
    assert_eq!(r.status, 404, "bob cannot end alice's session: {}", r.body);
    match get_stream(&hub, "bob", Some(&alice.session), "text/event-stream") {
        Ok(_) => panic!("bob opened alice's GET stream"),
        Err(r) => assert_eq!(r.status, 404),
    }
    // Alice's session is untouched.
    assert_eq!(alice.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.24
#[test]
fn l24_session_ids_are_visible_ascii_and_unique() {
    let hub = Hub::start(&["alice", "bob", "carol", "dave"], "");
    let agents = ["alice", "bob", "carol", "dave"];
    let mut ids = HashSet::new();
    for i in 0..1000 {
        let a = bearer(agents[i % agents.len()]);
        let r = hub.post(&std_headers(&a), &init_body(LATEST));
        assert_eq!(r.status, 200, "init #{i}: {}", r.body);
        let sid = r.header("mcp-session-id").expect("session id").to_string();
        assert!(
            !sid.is_empty() && sid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{sid:?}"
        );
        assert!(sid.len() >= 22, "at least 128 random bits: {sid:?}");
        assert!(ids.insert(sid.clone()), "{sid} issued twice");
    }
    assert_eq!(ids.len(), 1000);
}

/// §8.25
#[test]
fn l25_deleted_session_is_404_everywhere() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let r = c.delete();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "", "empty body");
    assert_session_not_found(&c.post(&ping_body(1)));
    assert_session_not_found(&c.post(&list_body()));
    match c.open_stream() {
        Ok(_) => panic!("GET stream on a deleted session"),
        Err(r) => assert_eq!(r.status, 404, "{}", r.body),
    }
    assert_eq!(c.delete().status, 404);
    // Other sessions of the same agent are unaffected; a new one works.
    let fresh = hub.client("alice");
    assert_eq!(fresh.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.26
#[test]
fn l26_delete_without_session_header_is_400() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let r = delete(&hub, "alice", None);
    assert_eq!(r.status, 400, "{}", r.body);
    // And with an unknown id: 404.
    assert_eq!(delete(&hub, "alice", Some("never-issued")).status, 404);
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.27
#[test]
fn l27_initialize_with_a_session_header_is_invalid() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for sid in [c.session.as_str(), "never-issued"] {
        let r = post_session(&hub, "alice", Some(sid), &init_body(LATEST));
        assert_eq!((r.status, r.rpc_code()), (400, -32600), "{sid}: {}", r.body);
        assert!(r.header("mcp-session-id").is_none() || r.header("mcp-session-id") == Some(sid));
    }
    // The existing session keeps working.
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.28
#[test]
fn l28_idle_session_expires_then_a_fresh_initialize_works() {
    let hub = Hub::start(&["alice"], "session_idle_timeout_secs: 2\n");
    let c = hub.client("alice");
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    std::thread::sleep(Duration::from_millis(3000));
    assert_session_not_found(&c.post(&ping_body(1)));
    let fresh = hub.client("alice");
    assert_ne!(fresh.session, c.session);
    assert_eq!(fresh.rpc("ping", json!({}))["result"], json!({}));
    assert_eq!(fresh.call("hub_status", json!({}))["ok"], true);
}

/// Activity keeps a session alive past the idle timeout.
#[test]
fn active_session_does_not_expire() {
    let hub = Hub::start(&["alice"], "session_idle_timeout_secs: 3\n");
    let c = hub.client("alice");
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
    }
}

// ---- GET stream ------------------------------------------------------------------

/// §8.29
#[test]
fn l29_get_opens_an_event_stream() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let c = hub.client("alice");
    let s = c.open_stream().unwrap_or_else(|r| panic!("GET: {r:?}"));
    assert_eq!(s.status, 200);
    assert!(
        s.content_type.starts_with("text/event-stream"),
        "{}",
        s.content_type
    );
    s.read_comments(1, Duration::from_secs(10));
    // Without MCP-Protocol-Version as well (older clients).
    let c2 = hub.client("alice");
    let s2 = get_stream(&hub, "alice", Some(&c2.session), "text/event-stream").expect("GET");
    assert_eq!(s2.status, 200);
}

/// §8.30
#[test]
fn l30_get_without_event_stream_in_accept_is_406() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    for accept in ["application/json", "text/html"] {
        match get_stream(&hub, "alice", Some(&c.session), accept) {
            Ok(_) => panic!("stream opened with Accept: {accept}"),
            Err(r) => assert_eq!(r.status, 406, "{accept}: {}", r.body),
        }
    }
    // The session still can open its stream afterwards.
    assert!(c.open_stream().is_ok());
}

/// §8.31
#[test]
fn l31_get_without_session_is_400_unknown_session_404() {
    let hub = Hub::start(&["alice"], "");
    match get_stream(&hub, "alice", None, "text/event-stream") {
        Ok(_) => panic!("stream without session"),
        Err(r) => assert_eq!(r.status, 400, "{}", r.body),
    }
    match get_stream(&hub, "alice", Some("never-issued"), "text/event-stream") {
        Ok(_) => panic!("stream on an unknown session"),
        Err(r) => assert_session_not_found(&r),
    }
}

/// §8.32 (keep-alive set to 1 s in config.yaml)
#[test]
fn l32_idle_get_stream_receives_keepalive_comments() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let c = hub.client("alice");
    let s = c.open_stream().expect("GET");
    let lines = s.read_comments(3, Duration::from_secs(15));
    assert!(
        lines.iter().filter(|l| l.starts_with(": ping")).count() >= 1,
        "{lines:?}"
    );
}

/// §8.33
#[test]
fn l33_second_concurrent_get_is_409() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let c = hub.client("alice");
    let first = c.open_stream().expect("first GET");
    first.read_comments(1, Duration::from_secs(10));
    match c.open_stream() {
        Ok(_) => panic!("a second GET stream on one session"),
        Err(r) => assert_eq!(r.status, 409, "{}", r.body),
    }
    // The first stream is still alive.
    first.read_comments(1, Duration::from_secs(10));
    // Another session of the same agent has its own stream.
    let other = hub.client("alice");
    assert!(other.open_stream().is_ok());
    // Once the first stream is gone, the session can open a new one.
    drop(first);
    let reopened = wait_for(Duration::from_secs(15), || c.open_stream().ok());
    assert!(
        reopened.is_some(),
        "no new GET stream after the first closed"
    );
}

/// DELETE ends the session's open stream as well.
#[test]
fn delete_closes_the_get_stream() {
    let hub = Hub::start(&["alice"], "sse_keepalive_secs: 1\n");
    let c = hub.client("alice");
    let s = c.open_stream().expect("GET");
    s.read_comments(1, Duration::from_secs(10));
    assert_eq!(c.delete().status, 200);
    // The stream ends: no more lines within a few keep-alive periods.
    let ended = wait_for(Duration::from_secs(10), || {
        match s.next_line(Duration::from_millis(1500)) {
            None => Some(()),
            Some(_) => None,
        }
    });
    assert!(ended.is_some(), "stream still open after DELETE");
}
