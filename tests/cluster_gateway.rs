//! Any node answers (issue 16, shared/spec/cluster.md §2 "Routing requests", §4
//! items 2, 3 and 8): three nodes on one PostgreSQL behind a round-robin TCP proxy.
//! The nodes that do not hold the shards forward every call to the one that does:
//! the workflow, messaging, sessions opened at one node and used at another, a GET
//! stream through a standby, `hubctl` through the proxy. Then a rolling restart
//! (SIGTERM each node in turn, the serving one included) under load through the
//! proxy: no call fails, every answered message is there, and a session opened
//! before it still works (its id is signed with the shared cluster key). And a
//! switchover (`hubctl cluster move`) there and back under load: no call fails.
//! Skips, saying why, where PostgreSQL is not installed.

mod common;
use common::postgres::{start_node, until_ready, Postgres};
use common::proxy::Proxy;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const AGENTS: [&str; 3] = ["disp", "alice", "bob"];

#[test]
fn any_node_answers_behind_a_round_robin_proxy() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    let urls = server.create_databases(&["front", "rolling", "moving"]);
    std::thread::scope(|scope| {
        scope.spawn(|| forwarded_calls(&server, &urls[0]));
        scope.spawn(|| rolling_restart(&server, &urls[1]));
        scope.spawn(|| switchover(&server, &urls[2]));
    });
}

/// What every node's config.yaml says: a stopping node keeps answering for a
/// second (its /healthz 503), long enough for the proxy's health check.
/// The load's one sender is not rate limited.
const CONFIG: &str = "shutdown_drain_secs: 1\nsend_rate_per_second: 100000\nsend_burst: 100000\n";

/// A node's config dir with the same agents, operator token and cluster key as
/// `first`'s (a cluster's nodes share them).
fn like(first: &Hub) -> tempfile::TempDir {
    common::postgres::config_like(first, &AGENTS, CONFIG)
}

/// Three nodes: n1 serves, n2 and n3 forward (once they know the leader).
fn three_nodes(server: &Postgres, url: &str) -> [Hub; 3] {
    let n1 = start_node(server, config_dir(&AGENTS, CONFIG), url, "n1");
    until_ready(&n1, Duration::from_secs(30));
    let n2 = start_node(server, like(&n1), url, "n2");
    let n3 = start_node(server, like(&n1), url, "n3");
    for n in [&n2, &n3] {
        forwarding(&n.url);
    }
    [n1, n2, n3]
}

/// `hub_status` of alice through `url` (2026-07-28, no session): the HTTP status.
fn status_via(url: &str) -> u16 {
    Modern::new(url, &token("alice"))
        .send("tools/call", json!({"name": "hub_status", "arguments": {}}))
        .status
}

/// Wait until the node at `url` answers calls (it serves, or forwards to a
/// leader it knows).
fn forwarding(url: &str) {
    wait_for(Duration::from_secs(30), || {
        (status_via(url) == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("{url} does not answer"));
}

fn forwarded_calls(server: &Postgres, url: &str) {
    let [n1, n2, n3] = three_nodes(server, url);
    // The standbys do not serve from their own memory (/readyz), but answer.
    assert_eq!(common::postgres::ready(&n2), 503);
    let proxy = Proxy::start(&[n1.port, n2.port, n3.port]);
    let (n2_url, n3_url, n3_port) = (n2.url.clone(), n3.url.clone(), n3.port);
    let front = n3.routed(&proxy.base);

    // The workflow through the proxy: sessions, tool calls and `hubctl approve`,
    // each connection on the next node.
    let round = dispatched_round(&front, "T-1", CODE_AND_TESTS);
    let (d, a, b) = (
        front.client("disp"),
        front.client("alice"),
        front.client("bob"),
    );
    claim_and_complete(&a, &round);
    claim_and_complete(&b, &round);
    review(&d, &round, "approved");
    let shown = hubctl_ok(&front, &["show", "T-1"]);
    assert!(shown.contains("completed"), "{shown}");
    for port in [n1.port, n2.port, n3_port] {
        assert!(proxy.served(port) > 0, "the proxy used node :{port}");
    }

    // A session opened at n2 is used at n3 and n1: it lives at the leader.
    let mut bob = Client::connect(&n2_url, &token("bob"), LATEST);
    for at in [&n3_url, &n1.url] {
        bob.url = at.clone();
        bob.call("agent_heartbeat", json!({}));
    }
    // bob's GET stream through n3 hears of a message sent at n2.
    bob.url = n3_url.clone();
    let stream = bob.open_stream().expect("GET stream through a standby");
    assert_eq!(stream.status, 200);
    let alice = Client::connect(&n2_url, &token("alice"), LATEST);
    let sent = s(&alice.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "relayed"}),
    )["message_id"]);
    let heard = wait_for(Duration::from_secs(10), || {
        let e = stream.next_event(Duration::from_millis(500))?;
        e.to_string().contains("inbox").then_some(e)
    });
    assert!(
        heard.is_some(),
        "no inbox notification on the relayed stream"
    );
    let inbox = bob.call("inbox_pull", json!({}));
    assert!(inbox.to_string().contains(&sent), "{inbox}");
    // And a 2026-07-28 listen stream of bob's through n3, acknowledged once.
    let listening = Modern::new(&n3_url, &token("bob")).listen(
        "\"l-1\"",
        json!({"resourceSubscriptions": ["agent-hub://inbox"]}),
    );
    let ack = listening.next_event(Duration::from_secs(10));
    assert!(
        ack.as_ref()
            .is_some_and(|a| a["method"] == "notifications/subscriptions/acknowledged"),
        "{ack:?}"
    );

    // n2 counts what it forwarded; refusals come from the leader unchanged.
    let m = n2.operator_get_raw("/metrics").body;
    assert!(
        m.contains("agent_hub_cluster_forwarded_duration_seconds_count"),
        "{m}"
    );
    let (refused, err) = Modern::new(&n2_url, &token("disp")).call_raw(
        "round_plan_submit",
        json!({"task_id": "T-404", "plan_json": plan(&[("alice", "x")])}),
    );
    assert!(err && refused["error"] == "TASK_NOT_FOUND", "{refused}");
    let unknown = Modern::new(&n2_url, "not-a-token").send("tools/list", json!({}));
    assert_eq!(unknown.status, 401, "{}", unknown.body);

    // The agents table is the registry: an agent added at one node (a standby
    // here) works through every node, and so do its rotation and removal; the
    // other nodes' agents.env never list it, and their reloads undo nothing.
    hubctl_ok(&n2, &["agent", "add", "carol"]);
    let first = file_token(&n2, "carol");
    // At once at n3 too, which reads the table only every second otherwise: a
    // token it does not know makes it read the table before it answers (no 401
    // for an agent just added; clients do not retry one).
    let at_once = Modern::new(&n3_url, &first).send(
        "tools/call",
        json!({"name": "agent_heartbeat", "arguments": {}}),
    );
    assert_eq!(at_once.status, 200, "{}", at_once.body);
    let urls = [n1.url.clone(), n2_url.clone(), n3_url.clone()];
    everywhere(&urls, &first, 200, "carol, added at a standby");
    hubctl_ok(&n1, &["reload"]);
    front.signal("HUP");
    // Past a poll of the table by every node.
    std::thread::sleep(Duration::from_millis(1500));
    everywhere(&urls, &first, 200, "carol, after the reload of stale files");
    hubctl_ok(&n2, &["agent", "rotate", "carol"]);
    let second = file_token(&n2, "carol");
    everywhere(&urls, &first, 401, "carol's old token");
    everywhere(&urls, &second, 200, "carol's new token");
    // At a node whose agents.env does not list her: the hub changes the table.
    let out = hubctl_ok(&n1, &["agent", "rotate", "carol"]);
    let third = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("and start Codex with: export AGENT_HUB_TOKEN=")
        })
        .unwrap_or_else(|| panic!("no token in: {out}"))
        .to_string();
    everywhere(&urls, &second, 401, "carol's token rotated at n1");
    everywhere(&urls, &third, 200, "carol's token from n1");
    // Through the proxy (a standby forwards the operator's call to the leader).
    hubctl_ok(&front, &["agent", "remove", "carol"]);
    everywhere(&urls, &third, 401, "carol, removed");
    let e = hubctl_err(&front, &["agent", "remove", "carol"]);
    assert!(e.contains("carol is not in"), "{e}");

    // A call a gateway sends again after losing its connection (the same request
    // id, marked as a retry) gets its first answer, and is done once: at the same
    // node, and at the next serving node once that one stopped.
    let disp = Modern::new(&n1.url, &token("disp"));
    let params =
        json!({"name": "task_draft_create", "arguments": {"task_id": "T-once", "title": "once"}});
    let body = Modern::body(&json!(41), "tools/call", &params);
    let headers = disp.headers("tools/call", &params);
    let first_try = marks(&n1, "00112233445566778899aabbccddeeff", false);
    let retry = marks(&n1, "00112233445566778899aabbccddeeff", true);
    let first = disp.post_with(&body, headers.clone(), &refs(&first_try));
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains(r#"\"ok\":true"#), "{}", first.body);
    let again = disp.post_with(&body, headers.clone(), &refs(&retry));
    assert_eq!(again.body, first.body);
    let fresh = disp.post_with(&body, headers.clone(), &[]);
    assert!(fresh.body.contains("TASK_EXISTS"), "{}", fresh.body);
    // Another request id is another call.
    let other = marks(&n1, "ffeeddccbbaa99887766554433221100", true);
    let other = disp.post_with(&body, headers.clone(), &refs(&other));
    assert!(other.body.contains("TASK_EXISTS"), "{}", other.body);
    // The marks without their proof (a node with another cluster.key, or a
    // client setting them itself) are refused, saying why.
    let unproven: Vec<(&str, &str)> = refs(&retry)
        .into_iter()
        .filter(|(k, _)| *k != "x-agent-hub-node-auth")
        .collect();
    let forged = disp.post_with(&body, headers.clone(), &unproven);
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("cluster.key"), "{}", forged.body);
    // Proven marks stamped long ago (a copy read off the wire, or a node whose
    // clock is off): refused, saying why.
    let old_marks = node_marks(&n1, "POST", "/mcp", Some("0f"), true, None, 600_000);
    let stale = disp.post_with(&body, headers.clone(), &refs(&old_marks));
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert!(stale.body.contains("clocks"), "{}", stale.body);
    // A node-to-node call binds its path, its body and its time, and is taken
    // once: a copy, another body, another path or an old stamp is refused.
    let internal = |path: &str, marks: &[(&'static str, String)], body: &str| {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend(refs(marks));
        request(
            "POST",
            &format!("http://127.0.0.1:{}{path}", n1.port),
            &h,
            body,
        )
    };
    let ask = r#"{"ids":["alice","bob"]}"#;
    let ask_marks = |ago_ms| {
        let body = Some(ask.as_bytes());
        node_marks(&n1, "POST", "/internal/agents", None, false, body, ago_ms)
    };
    let proven = ask_marks(0);
    let answered = internal("/internal/agents", &proven, ask);
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert!(answered.body.contains("alice"), "{}", answered.body);
    let copy = internal("/internal/agents", &proven, ask);
    assert_eq!(copy.status, 403, "{}", copy.body);
    assert!(copy.body.contains("already taken"), "{}", copy.body);
    let fresh = ask_marks(0);
    let swapped = internal("/internal/agents", &fresh, r#"{"ids":["disp"]}"#);
    assert_eq!(swapped.status, 403, "{}", swapped.body);
    assert!(swapped.body.contains("does not bind"), "{}", swapped.body);
    let moved = internal("/internal/follow", &fresh, ask);
    assert_eq!(moved.status, 403, "{}", moved.body);
    assert!(
        moved.body.contains("valid x-agent-hub-node-auth"),
        "{}",
        moved.body
    );
    let late = ask_marks(600_000);
    let late = internal("/internal/agents", &late, ask);
    assert_eq!(late.status, 403, "{}", late.body);
    assert!(late.body.contains("60 s"), "{}", late.body);
    // Unused so far, the fresh proof still works once.
    assert_eq!(internal("/internal/agents", &fresh, ask).status, 200);
    // message_send too: one message, and the first answer's id on every try.
    let send = json!({"name": "message_send", "arguments":
        {"to_agent": "bob", "subject": "once", "body": "exactly once"}});
    let send_body = Modern::body(&json!(42), "tools/call", &send);
    let send_headers = disp.headers("tools/call", &send);
    let send_try = marks(&n1, "0123456789abcdef0123456789abcdef", false);
    let send_retry = marks(&n1, "0123456789abcdef0123456789abcdef", true);
    let sent = disp.post_with(&send_body, send_headers.clone(), &refs(&send_try));
    assert!(sent.body.contains("message_id"), "{}", sent.body);
    let resent = disp.post_with(&send_body, send_headers.clone(), &refs(&send_retry));
    assert_eq!(resent.body, sent.body);
    // A 2025-03-26 batch whose two sends carry the same JSON-RPC id: two calls,
    // logged apart (each is logged under a request id derived from the batch's and
    // its position).
    let old = Client::connect(&n1.url, &token("disp"), "2025-03-26");
    let item = |text: &str| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "message_send",
            "arguments": {"to_agent": "bob", "subject": "batch", "body": text}}})
    };
    let batch = json!([item("twin one"), item("twin two")]).to_string();
    let batch_try = marks(&n1, "fedcba9876543210fedcba9876543210", false);
    let batch_retry = marks(&n1, "fedcba9876543210fedcba9876543210", true);
    let twins = old.post_with(&batch, &refs(&batch_try));
    assert_eq!(twins.status, 200, "{}", twins.body);
    assert_eq!(
        twins.body.matches("message_id").count(),
        2,
        "{}",
        twins.body
    );
    assert_eq!(old.post_with(&batch, &refs(&batch_retry)).body, twins.body);
    let operator = format!(
        "Bearer {}",
        std::fs::read_to_string(n1.path().join("operator.token"))
            .expect("operator.token")
            .trim()
    );
    // (Each node's own port: `front` is routed through the proxy.)
    let metric = |port: u16, name: &str| {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let m = request("GET", &url, &[("Authorization", &operator)], "").body;
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.trim().to_string())
    };
    let replayed = |port: u16| metric(port, "agent_hub_cluster_replayed_total");
    assert_eq!(replayed(n1.port).as_deref(), Some("4"));
    // What bob's streams through n3 heard so far (the sends above).
    while stream.next_event(Duration::from_millis(300)).is_some() {}
    while listening.next_event(Duration::from_millis(300)).is_some() {}
    // alice holds a lock, and bob waits for it through n3 (a streamed answer).
    let alice_lock = json!({"lock_key": "handover", "ttl_seconds": 60});
    Modern::new(&n1.url, &token("alice")).call("lock_acquire", alice_lock);
    let n3_for_bob = n3_url.clone();
    let waiter = std::thread::spawn(move || {
        let b = Client::connect(&n3_for_bob, &token("bob"), LATEST);
        b.call(
            "lock_acquire",
            json!({"lock_key": "handover", "ttl_seconds": 30, "wait_seconds": 25}),
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    n1.signal("TERM");
    let next = wait_for(Duration::from_secs(30), || {
        [n2.port, n3_port].into_iter().find(|port| {
            let url = format!("http://127.0.0.1:{port}/readyz");
            request("GET", &url, &[], "").status == 200
        })
    })
    .expect("a node serves after n1 stopped");
    let next_url = format!("http://127.0.0.1:{next}/mcp");
    // The gateway's marks, proven for the node they are sent to now.
    let next_id = if next == n2.port { "n2" } else { "n3" };
    let retry = marks_to(&n1, next_id, "00112233445566778899aabbccddeeff", true);
    let send_retry = marks_to(&n1, next_id, "0123456789abcdef0123456789abcdef", true);
    let at_next = Modern::new(&next_url, &token("disp")).post_with(&body, headers, &refs(&retry));
    assert_eq!(at_next.body, first.body, "from request_log");
    let sent_next = Modern::new(&next_url, &token("disp")).post_with(
        &send_body,
        send_headers,
        &refs(&send_retry),
    );
    assert_eq!(sent_next.body, sent.body, "from request_log");
    assert_eq!(replayed(next).as_deref(), Some("2"));
    // bob's GET stream through n3, opened while n1 served, is opened again at the
    // node serving now (n3 itself, or n2): it hears of a message sent there
    // (once it is: what is pushed before is not replayed).
    // All followed: bob's GET stream, his listen stream and his wait.
    let followed = wait_for(Duration::from_secs(30), || {
        let n = metric(n3_port, "agent_hub_cluster_streams_followed_total");
        (n.as_deref() == Some("3")).then_some(())
    });
    assert!(followed.is_some(), "n3 did not open the streams again");
    // The listen stream, listened to again at the next node, goes on without a
    // second acknowledgement or n1's "store unavailable": it says at once that
    // bob's inbox holds messages (what came meanwhile reached no stream).
    // So does the GET stream (bob has unread messages from the sends above).
    let hint = inbox_updated(&stream);
    assert!(
        hint["params"]["uri"] == "agent-hub://inbox" && hint["params"].get("_meta").is_none(),
        "no inbox hint on the GET stream opened again: {hint}"
    );
    let hint = inbox_updated(&listening);
    assert_eq!(hint["params"]["uri"], "agent-hub://inbox", "{hint}");
    assert_eq!(
        hint["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "l-1",
        "{hint}"
    );
    Modern::new(&next_url, &token("alice")).call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "after the stop"}),
    );
    let heard = wait_for(Duration::from_secs(30), || {
        let e = stream.next_event(Duration::from_millis(500))?;
        e.to_string().contains("inbox").then_some(e)
    });
    assert!(heard.is_some(), "the relayed GET stream did not follow");
    let heard = inbox_updated(&listening);
    assert!(
        heard["params"]["_meta"]["agent-hub/message"].is_object(),
        "the relayed listen stream did not follow: {heard}"
    );
    // bob's wait, cut when n1 handed over, was sent again to the node serving
    // now, where alice's release hands him the lock.
    Modern::new(&next_url, &token("alice")).call("lock_release", json!({"lock_key": "handover"}));
    let got = waiter.join().expect("waiter");
    assert_eq!(got["lock"]["holder_agent_id"], "bob", "{got}");
    let inbox = Modern::new(&next_url, &token("bob")).call("inbox_pull", json!({"limit": 100}));
    let copies = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["body"] == "exactly once")
        .count();
    assert_eq!(copies, 1, "{inbox}");
    for twin in ["twin one", "twin two"] {
        let n = inbox["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["body"] == twin)
            .count();
        assert_eq!(n, 1, "{twin}: {inbox}");
    }
}

/// Agent `id`'s token in `hub`'s agents.env.
/// The next `notifications/resources/updated` on a GET or listen stream (within
/// 10 s), past channel events; never a second acknowledgement or a response (a
/// node's "store unavailable" is the gateway's to act on).
fn inbox_updated(listening: &SseStream) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let e = listening
            .next_event(left)
            .expect("no inbox notification on the relayed listen stream");
        assert!(
            e["method"] != "notifications/subscriptions/acknowledged" && e.get("id").is_none(),
            "{e}"
        );
        if e["method"] == "notifications/resources/updated" {
            return e;
        }
    }
}

/// The marks of a call to `/mcp` sent on by a node named "a-test" with
/// `request_id`, a later try with `retry`, proven under `hub`'s cluster key.
fn marks(hub: &Hub, request_id: &str, retry: bool) -> Vec<(&'static str, String)> {
    marks_to(hub, "n1", request_id, retry)
}

/// [`marks`] of a call sent to node `to`.
fn marks_to(hub: &Hub, to: &str, request_id: &str, retry: bool) -> Vec<(&'static str, String)> {
    node_marks_to(hub, to, "POST", "/mcp", (Some(request_id), retry), None, 0)
}

/// The marks of a call to `target` at node n1 by a node named "a-test", stamped
/// `ago_ms` before now (and bound to `body` when given), proven under `hub`'s
/// cluster key as the hub's `node_auth` proves them: HMAC-SHA256 of a label and
/// each field followed by a NUL, 128 bits in hex.
fn node_marks(
    hub: &Hub,
    method: &str,
    target: &str,
    request_id: Option<&str>,
    retry: bool,
    body: Option<&[u8]>,
    ago_ms: i64,
) -> Vec<(&'static str, String)> {
    let id_retry = (request_id, retry);
    node_marks_to(hub, "n1", method, target, id_retry, body, ago_ms)
}

/// [`node_marks`] of a call sent to node `to`.
fn node_marks_to(
    hub: &Hub,
    to: &str,
    method: &str,
    target: &str,
    (request_id, retry): (Option<&str>, bool),
    body: Option<&[u8]>,
    ago_ms: i64,
) -> Vec<(&'static str, String)> {
    use hmac::{Hmac, Mac};
    use sha2::Digest;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let text = std::fs::read_to_string(hub.path().join("cluster.key")).expect("cluster.key");
    let key: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&text.trim()[i..i + 2], 16).expect("hex"))
        .collect();
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let stamp = format!(
        "{}.t{}",
        now - ago_ms,
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let digest = body.map(|b| hex(&sha2::Sha256::digest(b)));
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("key");
    m.update(b"agent-hub node call v2\0");
    for field in [
        "a-test",
        // The node it is sent to (each test node is named by its --node-id).
        to,
        method,
        target,
        request_id.unwrap_or(""),
        if retry { "retry" } else { "first" },
        &stamp,
        digest.as_deref().unwrap_or(""),
    ] {
        m.update(field.as_bytes());
        m.update(b"\0");
    }
    let proof = hex(&m.finalize().into_bytes()[..16]);
    let mut out = vec![
        ("x-agent-hub-forwarded-by", "a-test".to_string()),
        ("x-agent-hub-node-stamp", stamp),
        ("x-agent-hub-node-auth", proof),
    ];
    if let Some(id) = request_id {
        out.push(("x-agent-hub-request-id", id.to_string()));
    }
    if retry {
        out.push(("x-agent-hub-retry", "1".to_string()));
    }
    if let Some(d) = digest {
        out.push(("x-agent-hub-node-body", d));
    }
    out
}

/// Header pairs as `post_with` takes them.
fn refs<'a>(marks: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    marks.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn file_token(hub: &Hub, id: &str) -> String {
    let text = std::fs::read_to_string(hub.path().join("agents.env")).expect("agents.env");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{id}=")))
        .unwrap_or_else(|| panic!("{id} not in agents.env: {text}"))
        .to_string()
}

/// Wait (up to 5 s: each node reads the agents table every second) until
/// `agent_heartbeat` with `tok` answers `status` at every one of `urls`.
fn everywhere(urls: &[String], tok: &str, status: u16, what: &str) {
    for url in urls {
        let got = wait_for(Duration::from_secs(5), || {
            let s = Modern::new(url, tok)
                .send(
                    "tools/call",
                    json!({"name": "agent_heartbeat", "arguments": {}}),
                )
                .status;
            (s == status).then_some(())
        });
        assert!(got.is_some(), "{what}: not {status} at {url}");
    }
}

/// Sets its flag when dropped, also by a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Messages sent by `threads` loops through `url` until `stop`: the ids answered,
/// and every failure (status and body).
fn load(url: &str, threads: usize, stop: &AtomicBool) -> (Vec<String>, Vec<String>) {
    let acked = Mutex::new(Vec::new());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (acked, failed) = (&acked, &failed);
            scope.spawn(move || {
                let alice = Modern::new(url, &token("alice"));
                let mut i = 0;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    let args =
                        json!({"to_agent": "bob", "subject": "s", "body": format!("r{t}-{i}")});
                    let r = alice.send(
                        "tools/call",
                        json!({"name": "message_send", "arguments": args}),
                    );
                    let id = (r.status == 200).then(|| answer(&r)).and_then(|v| {
                        v["result"]["structuredContent"]["message_id"]
                            .as_str()
                            .map(str::to_string)
                    });
                    match id {
                        Some(id) => acked.lock().unwrap().push(id),
                        None => failed
                            .lock()
                            .unwrap()
                            .push(format!("{}: {}", r.status, r.body)),
                    }
                }
            });
        }
    });
    (acked.into_inner().unwrap(), failed.into_inner().unwrap())
}

/// The JSON-RPC answer of `r`, sent as JSON or as an SSE event.
fn answer(r: &Resp) -> Value {
    if r.content_type().starts_with("text/event-stream") {
        sse_data(&r.body).pop().unwrap_or(Value::Null)
    } else {
        r.json()
    }
}

/// Every message id in bob's inbox (pulled and acknowledged page by page).
fn drain_inbox(url: &str) -> std::collections::HashSet<String> {
    let bob = Modern::new(url, &token("bob"));
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = bob.call("inbox_pull", json!({"limit": 100}));
        let ids: Vec<String> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| s(&m["id"]))
            .collect();
        if ids.is_empty() {
            return seen;
        }
        bob.call("message_ack", json!({"message_id": ids}));
        seen.extend(ids);
    }
}

/// What `load` saw during `what`: no call failed, and every message answered is in
/// bob's inbox (read through `front`).
fn no_call_failed_or_lost(what: &str, acked: &[String], failed: &[String], front: &str) {
    println!(
        "{what}: {} sends answered, {} failed",
        acked.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failed calls, the first of them: {:#?}",
        &failed[..failed.len().min(5)]
    );
    assert!(acked.len() > 50, "the load ran: {}", acked.len());
    let inbox = drain_inbox(front);
    let lost: Vec<&String> = acked.iter().filter(|id| !inbox.contains(*id)).collect();
    assert!(lost.is_empty(), "answered but lost: {lost:?}");
}

/// SIGTERM each node in turn (the leader last), restarting it, under load through
/// the proxy: no call fails, nothing answered is lost.
fn rolling_restart(server: &Postgres, url: &str) {
    let mut nodes = three_nodes(server, url).map(Some);
    let ports =
        |nodes: &[Option<Hub>; 3]| -> Vec<u16> { nodes.iter().flatten().map(|n| n.port).collect() };
    let proxy = Proxy::start(&ports(&nodes));
    let front = proxy.url();
    // A session opened before the restarts (at the node that served then), and
    // one ended by DELETE then.
    let before = Client::connect(&front, &token("bob"), LATEST);
    let ended = Client::connect(&front, &token("bob"), LATEST);
    assert_eq!(ended.delete().status, 200);
    let stop = AtomicBool::new(false);
    let (acked, failed) = std::thread::scope(|scope| {
        let running = scope.spawn(|| load(&front, 4, &stop));
        // A failed check here stops the load, which the scope would wait for.
        let _stops = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(1));
        for (i, name) in [(1, "n2"), (2, "n3"), (0, "n1")] {
            let mut node = nodes[i].take().expect("running");
            node.signal("TERM");
            let stopped = node.wait_exit(Duration::from_secs(30));
            assert!(
                stopped.is_some_and(|s| s.success()),
                "{name} stopped cleanly"
            );
            // Restarted from its config dir (a new port).
            let dir = std::mem::replace(&mut node.dir, tempfile::tempdir().expect("temp"));
            let started = Instant::now();
            let again = start_node(server, dir, url, name);
            forwarding(&again.url);
            println!("{name} back in {:?}", started.elapsed());
            nodes[i] = Some(again);
            proxy.set_backends(&ports(&nodes));
            std::thread::sleep(Duration::from_secs(1));
        }
        stop.store(true, Ordering::Release);
        running.join().expect("load")
    });
    no_call_failed_or_lost("rolling restart", &acked, &failed, &front);
    // Every node was restarted and the shards moved: the session signed with the
    // cluster key is taken back by the node serving now (on a new connection).
    let mut after = Client::connect(&front, &token("bob"), LATEST);
    after.session = before.session.clone();
    let r = after.call("agent_heartbeat", json!({}));
    assert_eq!(r["ok"], true, "{r}");
    // Another agent's token with it: unknown.
    let mut other = Client::connect(&front, &token("alice"), LATEST);
    other.session = before.session.clone();
    let refused = other.post(&ping_body(5));
    assert_eq!(refused.status, 404, "{}", refused.body);
    // The ended one stays ended at every node that has served since
    // (`revoked_sessions`), through the proxy and at each node's own port.
    let mut again = Client::connect(&front, &token("bob"), LATEST);
    again.session = ended.session.clone();
    let gone = again.post(&ping_body(6));
    assert_eq!(gone.status, 404, "ended before the restarts: {}", gone.body);
    for node in nodes.iter().flatten() {
        let mut direct = Client::connect(&node.url, &token("bob"), LATEST);
        direct.session = ended.session.clone();
        assert_eq!(direct.post(&ping_body(7)).status, 404);
    }
}

/// The lowest and highest epoch of the shards held, as `hubctl cluster` at `hub`
/// shows them.
fn held_epochs(hub: &Hub) -> (i64, i64) {
    let v: Value = serde_json::from_str(&hubctl_ok(hub, &["--json", "cluster"])).expect("json");
    let held: Vec<&Value> = v["cluster"]["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter(|g| g["state"] == "held")
        .collect();
    assert_eq!(held.len(), 1, "one holder: {v}");
    let e = &held[0]["epochs"];
    (e[0].as_i64().expect("min"), e[1].as_i64().expect("max"))
}

/// `hubctl cluster move` to n2 and back to n1, each asked at the node that does
/// not serve (a gateway forwards it), under load through the proxy: no call
/// fails, nothing answered is lost, each move raises every shard's epoch by one.
/// A move to a node that is not a live member is refused and moves nothing.
fn switchover(server: &Postgres, url: &str) {
    let n1 = start_node(server, config_dir(&AGENTS, CONFIG), url, "n1");
    until_ready(&n1, Duration::from_secs(30));
    let n2 = start_node(server, like(&n1), url, "n2");
    forwarding(&n2.url);
    let err = hubctl_err(&n2, &["cluster", "move", "--to", "n3"]);
    assert!(
        err.contains("n3 is not another live node") && err.contains("live: n2"),
        "{err}"
    );
    let same = hubctl_ok(&n2, &["cluster", "move", "--to", "n1"]);
    assert!(same.contains("n1 serves already"), "{same}");
    let before = held_epochs(&n1);
    // A listen stream at the serving node itself: the move does not wait for it
    // (it never ends by itself), and it ends with "store unavailable", which its
    // client retries, not with the response that closes a subscription.
    let listening = Modern::new(&n1.url, &token("bob"))
        .listen("7", json!({"resourceSubscriptions": ["agent-hub://inbox"]}));
    // Nor for a call parked there (nobody writes to disp): it is cut with "store
    // unavailable", which its client sends again.
    let n1_url = n1.url.clone();
    let parked = std::thread::spawn(move || {
        Modern::new(&n1_url, &token("disp")).send(
            "tools/call",
            json!({"name": "inbox_pull", "arguments": {"wait_seconds": 25}}),
        )
    });
    let proxy = Proxy::start(&[n1.port, n2.port]);
    let front = proxy.url();
    let stop = AtomicBool::new(false);
    let moves = [(&n2, "n2", "n1"), (&n1, "n1", "n2")];
    // Checked once the load has stopped (a panic in the scope would wait for it).
    let (answers, (acked, failed)) = std::thread::scope(|scope| {
        let running = scope.spawn(|| load(&front, 4, &stop));
        // A failed check here stops the load, which the scope would wait for.
        let _stops = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(1));
        let mut answers = Vec::new();
        for (asked, to, _) in moves {
            answers.push(asked.hubctl(&["--json", "cluster", "move", "--to", to]));
            std::thread::sleep(Duration::from_secs(1));
        }
        stop.store(true, Ordering::Release);
        (answers, running.join().expect("load"))
    });
    for ((_, to, from), out) in moves.iter().zip(answers) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        println!("moved from {from} to {to}: {v}");
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str()),
            (Some(*from), Some(*to))
        );
        assert_eq!(
            (v["shards"].as_u64(), v["serving"].as_bool()),
            (Some(1024), Some(true))
        );
        // Not the 5 s a node waits at most for the calls it serves.
        let took = v["took_ms"].as_u64().expect("took_ms");
        assert!(
            took < 4_000,
            "the move waited for the listen stream or the parked call: {v}"
        );
    }
    no_call_failed_or_lost("switchover there and back", &acked, &failed, &front);
    let cut = parked.join().expect("parked call");
    assert!(cut.body.contains("Store unavailable: "), "{}", cut.body);
    assert_eq!(held_epochs(&n1), (before.0 + 2, before.1 + 2));
    let last = std::iter::from_fn(|| listening.next_event(Duration::from_secs(5)))
        .find(|e| e.get("id").is_some());
    assert!(
        last.as_ref().is_some_and(|l| l["id"] == 7
            && l["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Store unavailable: "))),
        "{last:?}"
    );
    let v: Value = serde_json::from_str(&hubctl_ok(&n1, &["--json", "cluster"])).expect("json");
    assert_eq!(v["cluster"]["role"], "active", "{v}");
    let operator = format!(
        "Bearer {}",
        std::fs::read_to_string(n1.path().join("operator.token"))
            .expect("operator.token")
            .trim()
    );
    for node in [&n1, &n2] {
        let url = format!("http://127.0.0.1:{}/metrics", node.port);
        let m = request("GET", &url, &[("Authorization", &operator)], "").body;
        assert!(m.contains("agent_hub_cluster_moves_total 1"), "{m}");
    }
}
