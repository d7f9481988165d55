//! The operator API (`/operator/...`, operator token) and `hubctl agents`.

mod common;
use common::*;
use serde_json::{json, Value};

fn agents_url(hub: &Hub) -> String {
    format!("{}/operator/agents", hub.base)
}

fn find<'a>(agents: &'a Value, id: &str) -> &'a Value {
    agents["items"]
        .as_array()
        .unwrap_or_else(|| panic!("agents array: {agents}"))
        .iter()
        .find(|a| a["agent_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {agents}"))
}

#[test]
fn operator_agents_lists_registration_and_presence() {
    let hub = Hub::start(&["alice", "bob"], "");
    let a = hub.client("alice");
    a.call(
        "agent_register",
        json!({"name": "Alice Operator-View", "capabilities": ["plan"]}),
    );
    let hb = a.call("agent_heartbeat", json!({}));
    let v = hub.operator_get("/operator/agents");
    assert_eq!(v["ok"], true, "{v}");
    let alice = find(&v, "alice");
    assert_eq!(alice["name"], "Alice Operator-View");
    assert_eq!(alice["capabilities"], json!(["plan"]));
    assert_eq!(alice["last_heartbeat"], hb["last_heartbeat"]);
    assert_eq!(alice["online"], true, "{alice}");
    // Bob is known from agents.env, never called.
    let bob = find(&v, "bob");
    assert!(
        bob.get("name").is_some() && bob.get("capabilities").is_some(),
        "{bob}"
    );
    assert!(bob.get("last_heartbeat").is_some(), "{bob}");
    assert_eq!(bob["online"], false, "{bob}");
}

#[test]
fn operator_api_needs_the_operator_token() {
    let hub = Hub::start(&["alice"], "");
    let url = agents_url(&hub);
    let none = request("GET", &url, &[], "");
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer")));
    let wrong = request("GET", &url, &[("Authorization", "Bearer wrong")], "");
    assert_eq!(wrong.status, 401);
    let agent = request("GET", &url, &[("Authorization", &bearer("alice"))], "");
    assert_eq!(
        agent.status, 403,
        "an agent token is not the operator's: {}",
        agent.body
    );
    let op = format!("Bearer {}", hub.operator_token());
    let ok = request("GET", &url, &[("Authorization", &op)], "");
    assert_eq!(ok.status, 200);
    assert!(ok.content_type().starts_with("application/json"));
    // Origin rules apply here too.
    let evil = request(
        "GET",
        &url,
        &[("Authorization", &op), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(evil.status, 403);
}

#[test]
fn hubctl_agents_prints_a_table_and_json() {
    let hub = Hub::start(&["alice", "bob"], "");
    hub.client("alice").call(
        "agent_register",
        json!({"name": "Table Alice", "capabilities": ["x"]}),
    );
    let out = hub.hubctl(&["agents"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("Table Alice"), "{table}");
    assert!(table.contains("alice") && table.contains("bob"), "{table}");
    let out = hub.hubctl(&["agents", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let list = if v.is_array() {
        json!({"agents": v})
    } else {
        v
    };
    assert_eq!(find(&list, "alice")["name"], "Table Alice");
    find(&list, "bob");
}

#[test]
fn hubctl_agents_fails_without_a_running_hub() {
    let mut hub = Hub::start(&["alice"], "");
    hub.kill9();
    let out = hub.hubctl(&["agents"]);
    assert!(!out.status.success(), "no hub: non-zero exit");
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
}
