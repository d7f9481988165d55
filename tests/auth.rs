//! Security rules (shared/spec/mcp-transport.md §5; checklist lines 35–41): bearer
//! tokens on every request, Origin validation, loopback binding.

mod common;
use common::*;
use serde_json::json;

fn no_auth_headers() -> Vec<(&'static str, &'static str)> {
    vec![("Accept", ACCEPT), ("Content-Type", "application/json")]
}

fn challenge(r: &Resp) -> String {
    r.header("www-authenticate")
        .unwrap_or_else(|| panic!("{} without WWW-Authenticate: {r:?}", r.status))
        .to_string()
}

/// §8.35
#[test]
fn l35_post_without_authorization_is_401_with_bearer_challenge() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let r = hub.post(&no_auth_headers(), &init_body(LATEST));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(challenge(&r).starts_with("Bearer"), "{r:?}");
    assert!(r.header("mcp-session-id").is_none());
    // A valid session id is not a credential.
    let mut h = no_auth_headers();
    h.push(("Mcp-Session-Id", &c.session));
    let r = hub.post(&h, &ping_body(1));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(challenge(&r).starts_with("Bearer"));
}

/// §8.36
#[test]
fn l36_wrong_token_or_scheme_is_401() {
    let hub = Hub::start(&["alice"], "");
    let r = hub.post(&std_headers("Bearer wrong"), &init_body(LATEST));
    assert_eq!(r.status, 401, "{}", r.body);
    let ch = challenge(&r);
    assert!(ch.starts_with("Bearer"), "{ch}");
    assert!(ch.contains("error=\"invalid_token\""), "{ch}");
    for auth in [
        "Basic dXNlcjpwYXNz".to_string(),
        format!("Basic {}", token("alice")),
        format!("Token {}", token("alice")),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        token("alice"),
    ] {
        let r = hub.post(&std_headers(&auth), &init_body(LATEST));
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert!(challenge(&r).starts_with("Bearer"), "{auth:?}");
    }
    // The right token, for contrast.
    assert_eq!(
        hub.post(&std_headers(&bearer("alice")), &init_body(LATEST))
            .status,
        200
    );
}

/// §8.37
#[test]
fn l37_get_and_delete_need_the_token_too() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    match SseStream::open(
        &hub.url,
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &c.session),
        ],
    ) {
        Ok(_) => panic!("GET stream without a token"),
        Err(r) => {
            assert_eq!(r.status, 401, "{}", r.body);
            assert!(challenge(&r).starts_with("Bearer"));
        }
    }
    let r = request("DELETE", &hub.url, &[("Mcp-Session-Id", &c.session)], "");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(challenge(&r).starts_with("Bearer"));
    let wrong = request(
        "DELETE",
        &hub.url,
        &[
            ("Authorization", "Bearer wrong"),
            ("Mcp-Session-Id", &c.session),
        ],
        "",
    );
    assert_eq!(wrong.status, 401);
    // The session survived the unauthenticated DELETEs.
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.38
#[test]
fn l38_foreign_origin_is_403_before_auth() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let evil = ("Origin", "http://evil.example");
    // Before auth: no token, wrong token, right token all get 403.
    let a = bearer("alice");
    for auth in [None, Some("Bearer wrong"), Some(a.as_str())] {
        let mut h = no_auth_headers();
        if let Some(x) = auth {
            h.push(("Authorization", x));
        }
        h.push(evil);
        let r = hub.post(&h, &init_body(LATEST));
        assert_eq!(r.status, 403, "{auth:?}: {}", r.body);
        assert!(r.header("mcp-session-id").is_none());
    }
    // On a session, on GET and DELETE as well.
    let r = c.post_with(&ping_body(1), &[evil]);
    assert_eq!(r.status, 403, "{}", r.body);
    let get = SseStream::open(
        &hub.url,
        &[
            ("Authorization", &a),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &c.session),
            evil,
        ],
    );
    assert_eq!(get.err().map(|r| r.status), Some(403));
    let del = request(
        "DELETE",
        &hub.url,
        &[("Authorization", &a), ("Mcp-Session-Id", &c.session), evil],
        "",
    );
    assert_eq!(del.status, 403);
    // Near misses of the allowed origins are foreign too.
    for o in [
        format!("http://localhost:{}", hub.port + 1),
        format!("https://localhost:{}", hub.port),
        format!("http://localhost.evil.example:{}", hub.port),
        "null".to_string(),
    ] {
        let r = c.post_with(&ping_body(2), &[("Origin", &o)]);
        assert_eq!(r.status, 403, "Origin {o}: {}", r.body);
    }
    assert_eq!(c.rpc("ping", json!({}))["result"], json!({}));
}

/// §8.39
#[test]
fn l39_own_origins_and_no_origin_pass() {
    let hub = Hub::start(&["alice"], "");
    let p = hub.port;
    for o in [
        format!("http://localhost:{p}"),
        format!("http://127.0.0.1:{p}"),
        format!("http://[::1]:{p}"),
    ] {
        let mut h = std_headers_owned(&bearer("alice"));
        h.push(("Origin".into(), o.clone()));
        let r = hub.post(&borrow(&h), &init_body(LATEST));
        assert_eq!(r.status, 200, "Origin {o}: {}", r.body);
    }
    let r = hub.post(&std_headers(&bearer("alice")), &init_body(LATEST));
    assert_eq!(r.status, 200, "no Origin: {}", r.body);
}

/// §5: the allow-list comes from config.yaml when set.
#[test]
fn configured_allowed_origins() {
    let hub = Hub::start(
        &["alice"],
        "allowed_origins:\n  - https://app.example\n  - http://tool.local:3000\n",
    );
    let c = hub.client("alice");
    for o in ["https://app.example", "http://tool.local:3000"] {
        let r = c.post_with(&ping_body(1), &[("Origin", o)]);
        assert_eq!(r.status, 200, "Origin {o}: {}", r.body);
    }
    let r = c.post_with(&ping_body(2), &[("Origin", "http://evil.example")]);
    assert_eq!(r.status, 403);
}

/// §8.40
#[test]
fn l40_token_in_query_string_is_not_accepted() {
    let hub = Hub::start(&["alice"], "");
    for q in ["access_token", "token"] {
        let url = format!("{}?{q}={}", hub.url, token("alice"));
        let r = request("POST", &url, &no_auth_headers(), &init_body(LATEST));
        assert_eq!(r.status, 401, "?{q}=: {}", r.body);
        assert!(challenge(&r).starts_with("Bearer"));
    }
}

/// §8.41: without --host and without `host` in config.yaml, the hub listens on
/// 127.0.0.1 only (checked in the kernel's socket table).
#[test]
fn l41_default_bind_is_loopback_only() {
    let dir = config_dir(&["alice"], "");
    let args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--port".into(),
        "0".into(),
        "--config-dir".into(),
        dir.path().into(),
        "--db".into(),
        dir.path().join("hub.db").into(),
    ];
    let r = spawn(dir.path(), &args, &[]).unwrap_or_else(|e| panic!("start: {e:?}"));
    let hub = Hub::from_running(dir, r);
    assert!(hub.url.starts_with("http://127.0.0.1:"), "{}", hub.url);
    let listeners = listening_addresses(hub.port);
    assert!(
        !listeners.is_empty(),
        "no listener found for port {}",
        hub.port
    );
    for (family, addr) in &listeners {
        assert!(
            (family == "tcp" && addr == "0100007F")
                || (family == "tcp6" && addr == "00000000000000000000000001000000"),
            "listening on a non-loopback address: {family} {addr} (all: {listeners:?})"
        );
    }
    assert!(
        listeners.iter().any(|(f, a)| f == "tcp" && a == "0100007F"),
        "{listeners:?}"
    );
    assert_eq!(
        hub.client("alice").rpc("ping", json!({}))["result"],
        json!({})
    );
}

/// The operator token is valid but not an agent's: 403 on the MCP endpoint (§5).
#[test]
fn operator_token_is_not_an_agent_token() {
    let hub = Hub::start(&["alice"], "");
    let op = format!("Bearer {}", hub.operator_token());
    let r = hub.post(&std_headers(&op), &init_body(LATEST));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.header("mcp-session-id").is_none());
}

/// (family, hex local address) of every LISTEN socket on `port`, from /proc/net/tcp{,6}.
fn listening_addresses(port: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for family in ["tcp", "tcp6"] {
        let Ok(table) = std::fs::read_to_string(format!("/proc/net/{family}")) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 || cols[3] != "0A" {
                continue; // not LISTEN
            }
            let Some((addr, p)) = cols[1].split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                out.push((family.to_string(), addr.to_string()));
            }
        }
    }
    out
}

fn std_headers_owned(auth: &str) -> Vec<(String, String)> {
    std_headers(auth)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn borrow(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
