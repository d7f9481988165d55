//! `GET /metrics`: Prometheus text that a Prometheus parser reads, behind the
//! operator token unless `metrics_public`, with counters that follow traffic.

mod common;
use common::*;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

fn parse(body: &str) -> Vec<Sample> {
    Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text")
        .samples
}

fn scrape(hub: &Hub) -> Vec<Sample> {
    let r = hub.operator_get_raw("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    parse(&r.body)
}

/// The value of `metric` whose labels include `labels` (0 when absent: counters
/// appear once they move).
fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b
                .iter()
                .find(|c| c.less_than.is_infinite())
                .map_or(0.0, |c| c.count),
            Value::Summary(_) => f64::NAN,
        })
        .unwrap_or(0.0)
}

#[test]
fn counters_follow_tool_calls() {
    let hub = Hub::start(&["alice", "bob"], "");
    let before = scrape(&hub);
    let alice = hub.client("alice");
    for _ in 0..3 {
        alice.call("agent_heartbeat", json!({}));
    }
    alice.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "b"}),
    );
    let to_nobody = json!({"to_agent": "nobody", "subject": "s", "body": "b"});
    assert_eq!(alice.refused("message_send", to_nobody), "UNKNOWN_AGENT");
    let _stream_holder = hub.client("bob");
    let after = scrape(&hub);

    let calls = "agent_hub_tool_calls_total";
    let ok = [("tool", "agent_heartbeat"), ("outcome", "ok")];
    assert_eq!(value(&after, calls, &ok) - value(&before, calls, &ok), 3.0);
    let refused = [("tool", "message_send"), ("outcome", "UNKNOWN_AGENT")];
    assert_eq!(value(&after, calls, &refused), 1.0);
    let latency = "agent_hub_tool_call_duration_seconds";
    let hb = [("tool", "agent_heartbeat")];
    assert_eq!(
        value(&after, latency, &hb) - value(&before, latency, &hb),
        3.0
    );
    // The writer committed the send (and the registrations).
    assert!(value(&after, "agent_hub_writer_batch_ops", &[]) >= 1.0);
    assert!(value(&after, "agent_hub_writer_commit_duration_seconds", &[]) >= 1.0);
    assert_eq!(value(&after, "agent_hub_actors", &[("kind", "agent")]), 2.0);
    assert_eq!(value(&after, "agent_hub_inbox_unread", &[]), 1.0);
    assert_eq!(value(&after, "agent_hub_inbox_unread_max", &[]), 1.0);
    assert!(value(&after, "agent_hub_sessions", &[]) >= 2.0);
    assert_eq!(value(&after, "agent_hub_store_faults_total", &[]), 0.0);
    assert_eq!(value(&after, "agent_hub_locks_held", &[]), 0.0);
    // No label names an agent.
    assert!(after
        .iter()
        .all(|s| !s.labels.values().any(|v| v == "alice" || v == "bob")));
}

#[test]
fn needs_the_operator_token_unless_public() {
    let hub = Hub::start(&["alice"], "");
    let url = format!("{}/metrics", hub.base);
    assert_eq!(request("GET", &url, &[], "").status, 401);
    let agent = format!("Bearer {}", token("alice"));
    let r = request("GET", &url, &[("Authorization", &agent)], "");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(hub.operator_get_raw("/metrics").status, 200);

    let open = Hub::start(&["alice"], "metrics_public: true\n");
    let r = request("GET", &format!("{}/metrics", open.base), &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers["content-type"].starts_with("text/plain"));
    assert!(!parse(&r.body).is_empty());
}
