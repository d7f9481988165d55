//! Hardening findings that a careless or hostile client could cause, each hitting
//! its limit and then showing that the hub still serves a well-behaved client.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

/// Requests in flight are capped per agent (429) and in all (503), with
/// Retry-After; other agents and later calls are served.
#[test]
fn requests_in_flight_are_capped_per_agent_and_in_all() {
    let hub = Hub::start(
        &["alice", "bob", "carol"],
        "max_in_flight_per_agent: 2\nmax_in_flight: 3\n",
    );
    let (a, b, c) = (hub.client("alice"), hub.client("bob"), hub.client("carol"));
    // Two parked pulls of alice take her two slots.
    let parked: Vec<RawConn> = (0..2)
        .map(|_| {
            raw_tool_call(
                hub.port,
                &a,
                "inbox_pull",
                json!({"wait_seconds": 3}),
                false,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = a.post_json(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(r.body.contains("max_in_flight_per_agent"), "{}", r.body);
    // Bob takes the third slot of all; then carol finds none.
    let _bob = raw_tool_call(
        hub.port,
        &b,
        "inbox_pull",
        json!({"wait_seconds": 3}),
        false,
    );
    std::thread::sleep(Duration::from_millis(300));
    let r = c.post_json(&json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("1"));
    // When the parked calls end, everyone is served again.
    drop(parked);
    let served = wait_for(Duration::from_secs(6), || {
        (c.post_json(&json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
            .status
            == 200)
            .then_some(())
    });
    assert!(served.is_some());
    assert_eq!(a.rpc("ping", json!({}))["result"], json!({}));
}

/// Finding 4: clients that did not read their answers made the hub hold them all
/// (1.1 GiB for 40 connections). Now the bytes of an agent's unwritten answers are
/// capped: more big answers get 429 (nothing is lost: the messages stay unread),
/// small calls still go, and other agents are not slowed.
#[test]
fn answers_nobody_reads_are_capped_per_agent() {
    let hub = Hub::start(
        &["alice", "bob"],
        "max_answer_bytes_in_flight_per_agent: 65536\nmax_pull_bytes: 16777216\n",
    );
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    // About 12 MB of answer: more than the kernel's socket buffers take.
    for n in 0..100 {
        b.call(
            "message_send",
            json!({"to_agent": "alice", "subject": format!("big {n}"), "body": "x".repeat(60_000)}),
        );
    }
    // The first big answer goes (and is never read).
    let _unread = raw_tool_call(hub.port, &a, "inbox_pull", json!({"limit": 200}), true);
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for _ in 0..5 {
        let mut conn = raw_tool_call(hub.port, &a, "inbox_pull", json!({"limit": 200}), false);
        let r = conn
            .read_response(Duration::from_secs(10))
            .expect("an answer");
        if r.status == 429 {
            assert!(r.body.contains("not read yet"), "{}", r.body);
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "big answers beyond the cap are refused");
    // Small calls of alice and every call of bob are served.
    assert_eq!(a.rpc("ping", json!({}))["result"], json!({}));
    assert_eq!(b.call("hub_status", json!({}))["agents"], 2);
}

/// Finding 6: each notice dropped for a GET stream that is not read logged one WARN
/// line; an agent messaging itself could write 100 MB of log in 20 s. The server
/// buffers about 800 KB per stream before it drops anything, so this sends 12,000
/// messages (from eight agents at once).
#[test]
fn notices_dropped_for_unread_streams_log_one_line_per_interval() {
    let senders: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let mut agents: Vec<&str> = senders.iter().map(String::as_str).collect();
    agents.push("alice");
    // The send rate and inbox quotas are lifted: this test is about the log.
    let hub = Hub::start(
        &agents,
        "send_rate_per_second: 1000000\nsend_burst: 1000000\nmax_inbox_messages: 100000\n",
    );
    // A GET stream opened on a socket that never reads.
    let c = hub.client("alice");
    let mut headers: Vec<(String, String)> = c.headers();
    headers.retain(|(k, _)| k != "Accept" && k != "Content-Type");
    headers.push(("Accept".into(), "text/event-stream".into()));
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut stream = RawConn::open_small_window(hub.port);
    stream.send_head("GET", "/mcp", &refs, b"");
    assert!(stream
        .read_head(Duration::from_secs(5))
        .starts_with("HTTP/1.1 200"));
    let subject = "s".repeat(290);
    let threads: Vec<_> = senders
        .iter()
        .map(|s| {
            let c = hub.client(s);
            let subject = subject.clone();
            std::thread::spawn(move || {
                for n in 0..1500 {
                    c.call(
                        "message_send",
                        json!({"to_agent": "alice", "subject": format!("{subject}{n}"), "body": "b"}),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = hub
        .out
        .wait_stderr("notifications dropped", Duration::from_secs(5));
    let lines = log.matches("notifications dropped").count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} lines about dropped notices:\n{log}"
    );
    assert!(log.contains("dropped="), "{log}");
    assert_eq!(c.call("hub_status", json!({}))["agents"], 9);
}
