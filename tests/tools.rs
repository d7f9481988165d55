//! Tools as an MCP client sees them over HTTP: tools/list and tools/call rules
//! (checklist lines 42–46 of shared/spec/mcp-transport.md §8) and the results of
//! hub_status, agent_register and agent_heartbeat.

mod common;
use common::*;
use serde_json::{json, Value};

/// §8.42
#[test]
fn l42_tools_list_describes_every_tool() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let list = c.rpc("tools/list", json!({}));
    assert!(list["result"].get("nextCursor").is_none(), "{list}");
    let tools = list["result"]["tools"].as_array().expect("tools");
    let mut names = std::collections::HashSet::new();
    for t in tools {
        let name = t["name"].as_str().unwrap_or_else(|| panic!("name: {t}"));
        assert!(
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
            "{name}"
        );
        assert!(names.insert(name.to_string()), "{name} listed twice");
        assert_eq!(t["inputSchema"]["type"], "object", "{name}");
        assert_eq!(t["outputSchema"]["type"], "object", "{name}");
        assert!(t["title"].is_string(), "{name}: title");
        assert!(t["description"].is_string(), "{name}: description");
        assert!(t["annotations"].is_object(), "{name}: annotations");
    }
    for name in ["hub_status", "agent_register", "agent_heartbeat"] {
        assert!(names.contains(name), "{name} missing: {names:?}");
    }
    assert_eq!(
        tool(&list, "hub_status")["annotations"]["readOnlyHint"],
        true
    );
    let reg = tool(&list, "agent_register");
    assert!(
        reg["inputSchema"]["properties"]["name"].is_object(),
        "{reg}"
    );
    assert!(
        reg["inputSchema"]["properties"]["capabilities"].is_object(),
        "{reg}"
    );
    // Stable order.
    let again = c.rpc("tools/list", json!({}));
    assert_eq!(again["result"], list["result"]);
}

/// §8.42 on a 2025-03-26 session: no fields that revision does not define.
#[test]
fn l42_tools_list_on_2025_03_26_has_no_newer_fields() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client_v("alice", "2025-03-26");
    let list = c.rpc("tools/list", json!({}));
    for t in list["result"]["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object");
        assert!(t.get("outputSchema").is_none(), "{t}");
    }
    tool(&list, "agent_heartbeat");
}

/// §8.43
#[test]
fn l43_garbage_cursor_is_invalid_params() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let v = c.rpc("tools/list", json!({"cursor": "garbage"}));
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(v.get("result").is_none());
}

/// §8.44
#[test]
fn l44_unknown_tool_is_invalid_params() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let v = c.call_tool("no_such_tool", json!({}));
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no_such_tool"),
        "message names the tool: {v}"
    );
    // Malformed tools/call params are protocol errors too.
    for params in [
        json!({"arguments": {}}),
        json!({"name": "hub_status", "arguments": 5}),
        json!([1]),
    ] {
        let v = c.rpc("tools/call", params.clone());
        assert_eq!(v["error"]["code"], -32602, "{params}: {v}");
    }
}

/// §8.45
#[test]
fn l45_schema_violations_are_tool_errors() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let check = |args: Value, field: &str| {
        let v = c.call_tool("agent_register", args.clone());
        assert!(
            v.get("error").is_none(),
            "{args}: not a protocol error: {v}"
        );
        let res = &v["result"];
        assert_eq!(res["isError"], true, "{args}: {v}");
        let sc = &res["structuredContent"];
        assert_eq!(sc["ok"], false, "{args}: {v}");
        assert_eq!(sc["error"], "INVALID_ARGUMENT", "{args}: {v}");
        let msg = sc["message"].as_str().unwrap_or("");
        assert!(
            msg.contains(field),
            "{args}: message names `{field}`: {msg:?}"
        );
        // The text block explains it too.
        let text: Value =
            serde_json::from_str(res["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(&text, sc);
    };
    check(json!({"name": 5}), "name");
    check(json!({}), "name");
    check(
        json!({"name": "A", "capabilities": "not json"}),
        "capabilities",
    );
    check(json!({"name": "A", "capabilities": [1, 2]}), "capabilities");
    check(
        json!({"name": "A", "capabilities": "{\"a\":1}"}),
        "capabilities",
    );
    // Nothing was registered by those.
    let ok = c.call("agent_register", json!({"name": "A"}));
    assert_eq!(ok["capabilities"], json!([]));
}

/// §8.46
#[test]
fn l46_structured_content_on_2025_11_25_only_text_on_2025_03_26() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let list = c.rpc("tools/list", json!({}));
    for (name, args) in [
        ("hub_status", json!({})),
        (
            "agent_register",
            json!({"name": "Alice", "capabilities": ["x"]}),
        ),
        ("agent_heartbeat", json!({})),
    ] {
        let v = c.call_tool(name, args);
        let res = &v["result"];
        assert!(
            res.get("isError").is_none() || res["isError"] == false,
            "{v}"
        );
        assert_eq!(res["content"][0]["type"], "text", "{name}: {v}");
        let text: Value = serde_json::from_str(res["content"][0]["text"].as_str().unwrap())
            .expect("text holds JSON");
        let sc = &res["structuredContent"];
        assert!(sc.is_object(), "{name}: structuredContent: {v}");
        assert_eq!(sc, &text, "{name}");
        let schema = &tool(&list, name)["outputSchema"];
        if let Some(e) = schema_violation(schema, sc, name) {
            panic!(
                "{name}: result does not match outputSchema: {e}\nschema: {schema}\nresult: {sc}"
            );
        }
    }
    let old = hub.client_v("alice", "2025-03-26");
    let v = old.call_tool("hub_status", json!({}));
    let res = &v["result"];
    assert!(res.get("structuredContent").is_none(), "{v}");
    assert_eq!(res["content"][0]["type"], "text");
    let text: Value = serde_json::from_str(res["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["ok"], true);
}

// ---- The agent tools' results -----------------------------------------------------

#[test]
fn hub_status_reports_version_transport_and_counts() {
    let hub = Hub::start(&["alice", "bob"], "");
    let c = hub.client("alice");
    let _other = hub.client("bob");
    let s = c.call("hub_status", json!({}));
    assert_eq!(s["ok"], true);
    assert_eq!(s["version"], "0.1.0");
    assert_eq!(s["transport"], "streamable-http");
    let versions: Vec<&str> = s["protocol_versions"]
        .as_array()
        .unwrap_or_else(|| panic!("protocol_versions: {s}"))
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for v in VERSIONS {
        assert!(versions.contains(&v), "{v} in {versions:?}");
    }
    assert!(
        s["uptime_seconds"].as_u64().is_some() || s["uptime_seconds"].as_f64().is_some(),
        "{s}"
    );
    assert_eq!(s["agents"], 2, "agents from agents.env: {s}");
    assert_eq!(s["tasks"], 0, "{s}");
    assert!(
        s["sessions"].as_u64().unwrap_or(0) >= 2,
        "two sessions open: {s}"
    );
}

#[test]
fn agent_register_takes_identity_from_the_token() {
    let hub = Hub::start(&["alice", "bob"], "");
    let c = hub.client("alice");
    let r = c.call(
        "agent_register",
        json!({"name": "Alice", "capabilities": ["rust", "review"]}),
    );
    assert_eq!(r["ok"], true);
    assert_eq!(r["agent_id"], "alice", "{r}");
    assert_eq!(r["name"], "Alice", "{r}");
    assert_eq!(r["capabilities"], json!(["rust", "review"]), "{r}");
    // An agent_id argument does not change who registers.
    let b = hub.client("bob");
    let (v, _) = b.call_raw(
        "agent_register",
        json!({"name": "Bob", "agent_id": "alice"}),
    );
    if v["ok"] == true {
        assert_eq!(v["agent_id"], "bob", "{v}");
    }
}

#[test]
fn agent_register_capabilities_forms() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    // Default: [].
    let r = c.call("agent_register", json!({"name": "A"}));
    assert_eq!(r["capabilities"], json!([]));
    // A string holding a JSON array (the reference's form).
    let r = c.call(
        "agent_register",
        json!({"name": "A", "capabilities": "[\"planning\",\"tests\"]"}),
    );
    assert_eq!(r["capabilities"], json!(["planning", "tests"]));
    // A real array.
    let r = c.call(
        "agent_register",
        json!({"name": "A", "capabilities": ["x"]}),
    );
    assert_eq!(r["capabilities"], json!(["x"]));
    // Not an array of strings.
    for bad in [
        json!("not json"),
        json!([1, 2]),
        json!("[1]"),
        json!({"a": 1}),
        json!(5),
    ] {
        assert_eq!(
            c.refused("agent_register", json!({"name": "A", "capabilities": bad})),
            "INVALID_ARGUMENT",
            "{bad}"
        );
    }
    // Registering again updates.
    let r = c.call(
        "agent_register",
        json!({"name": "Renamed", "capabilities": []}),
    );
    assert_eq!(
        (r["name"].as_str(), &r["capabilities"]),
        (Some("Renamed"), &json!([]))
    );
}

#[test]
fn agent_heartbeat_returns_an_iso_timestamp() {
    let hub = Hub::start(&["alice"], "");
    let c = hub.client("alice");
    let h = c.call("agent_heartbeat", json!({}));
    assert_eq!(h["agent_id"], "alice");
    let ts = h["last_heartbeat"]
        .as_str()
        .unwrap_or_else(|| panic!("{h}"));
    assert!(is_iso8601(ts), "ISO-8601: {ts}");
    let h2 = c.call("agent_heartbeat", json!({}));
    let ts2 = h2["last_heartbeat"].as_str().unwrap();
    assert!(is_iso8601(ts2));
    assert!(ts2 >= ts, "{ts2} after {ts}");
}
