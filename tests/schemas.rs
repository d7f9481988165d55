//! Tool schemas as a strict client checks them: every inputSchema and outputSchema
//! of tools/list is a valid JSON Schema (draft 2020-12) written in the portable
//! dialect (no `"type": [...]` arrays: nullable fields are `anyOf`), and real
//! results of every tool, called over HTTP, validate against their outputSchema.

mod common;
use common::workflow::{plan, s};
use common::*;
use jsonschema::Validator;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// Paths of every `type` keyword whose value is not a single type name.
fn type_arrays(schema: &Value, path: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}/{k}");
                if k == "type" && !v.is_string() {
                    out.push(here.clone());
                }
                type_arrays(v, &here, out);
            }
        }
        Value::Array(list) => {
            for (i, v) in list.iter().enumerate() {
                type_arrays(v, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A strict draft 2020-12 validator of `schema`, after checking the schema itself
/// against the 2020-12 meta-schema and the portable dialect.
fn strict(name: &str, which: &str, schema: &Value) -> Validator {
    if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
        panic!("{name} {which} is not a valid 2020-12 schema: {e}\n{schema}");
    }
    let mut arrays = Vec::new();
    type_arrays(schema, "", &mut arrays);
    assert!(
        arrays.is_empty(),
        "{name} {which}: `type` arrays at {arrays:?}"
    );
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("{name} {which} does not compile: {e}"))
}

/// The output validators of every tool the hub lists, by name.
struct Schemas {
    output: HashMap<String, Validator>,
    /// Tools whose results were checked, success or refusal.
    seen: BTreeSet<String>,
    seen_ok: BTreeSet<String>,
}

impl Schemas {
    fn of(c: &Client) -> Schemas {
        let list = c.rpc("tools/list", json!({}));
        let tools = list["result"]["tools"].as_array().expect("tools");
        let mut output = HashMap::new();
        for t in tools {
            let name = s(&t["name"]);
            strict(&name, "inputSchema", &t["inputSchema"]);
            output.insert(
                name.clone(),
                strict(&name, "outputSchema", &t["outputSchema"]),
            );
        }
        Schemas {
            output,
            seen: BTreeSet::new(),
            seen_ok: BTreeSet::new(),
        }
    }

    /// Call `tool` as `c` and check its structured result against the tool's
    /// outputSchema; returns the result.
    fn call(&mut self, c: &Client, tool: &str, args: Value) -> Value {
        let v = c.call_tool(tool, args.clone());
        let result = &v["result"];
        let structured = result
            .get("structuredContent")
            .unwrap_or_else(|| panic!("{tool}: no structuredContent: {v}"));
        let validator = self
            .output
            .get(tool)
            .unwrap_or_else(|| panic!("{tool} is not listed"));
        let errors: Vec<String> = validator
            .iter_errors(structured)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{tool}({args}) result does not match its outputSchema: {errors:?}\n{structured}"
        );
        self.seen.insert(tool.to_string());
        if structured["ok"] == true {
            self.seen_ok.insert(tool.to_string());
        }
        structured.clone()
    }

    /// Like [`Schemas::call`], and the call must succeed.
    fn ok(&mut self, c: &Client, tool: &str, args: Value) -> Value {
        let v = self.call(c, tool, args.clone());
        assert_eq!(v["ok"], true, "{tool}({args}): {v}");
        v
    }
}

#[test]
fn every_tool_schema_is_strict_and_every_result_matches_it() {
    let hub = Hub::start(&["disp", "alice", "bob"], "max_rounds: 3\n");
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    let mut sc = Schemas::of(&d);

    sc.ok(&d, "hub_status", json!({}));
    sc.ok(
        &d,
        "agent_register",
        json!({"name": "Dispatcher", "capabilities": "[\"planning\"]"}),
    );
    sc.ok(&a, "agent_heartbeat", json!({}));

    // Messages with and without the nullable fields, and a broadcast (to_agent null).
    sc.ok(
        &d,
        "message_send",
        json!({"to_agent": "alice", "subject": "hi", "body": "plain"}),
    );
    sc.ok(
        &d,
        "message_send",
        json!({"subject": "all", "body": "broadcast"}),
    );
    let dup = json!({"to_agent": "alice", "subject": "k", "body": "keyed", "dedupe_key": "k1"});
    sc.ok(&d, "message_send", dup.clone());
    sc.call(&d, "message_send", dup);
    let inbox = sc.ok(&a, "inbox_pull", json!({"limit": 10}));
    let msgs = inbox["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 3, "{inbox}");
    assert!(msgs.iter().any(|m| m["to_agent"].is_null()), "{inbox}");
    assert!(msgs.iter().any(|m| m["dedupe_key"].is_null()), "{inbox}");
    assert!(msgs.iter().all(|m| m["round_id"].is_null()), "{inbox}");
    let first = s(&msgs[0]["id"]);
    sc.ok(
        &a,
        "message_send",
        json!({"to_agent": "disp", "subject": "re", "body": "reply", "reply_to": first}),
    );
    sc.ok(&a, "message_ack", json!({"message_id": first}));
    sc.call(&a, "message_ack", json!({"message_id": "no-such-message"}));

    // The workflow: plan, claim, progress, complete, handoff, both verdicts.
    sc.ok(
        &d,
        "task_draft_create",
        json!({"task_id": "T-1", "title": "t"}),
    );
    let p = sc.ok(
        &d,
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": plan(&[("alice", "code")])}),
    );
    let r1 = s(&p["round_id"]);
    sc.call(
        &a,
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": plan(&[("alice", "code")])}),
    );
    common::workflow::hubctl_ok(&hub, &["approve", &r1]);
    let list = sc.ok(&a, "assignment_list", json!({"round_id": r1}));
    let id = s(&list["assignments"][0]["id"]);
    sc.ok(&a, "assignment_list", json!({}));
    sc.call(&b, "assignment_claim", json!({"assignment_id": id}));
    sc.ok(&a, "assignment_claim", json!({"assignment_id": id}));
    sc.ok(
        &a,
        "assignment_progress",
        json!({"assignment_id": id, "status": "in_progress", "note": "half"}),
    );
    let done = sc.ok(
        &a,
        "assignment_complete",
        json!({"assignment_id": id, "handoff_json": {"branch": "b", "changed_files": ["x"]}}),
    );
    sc.ok(
        &a,
        "handoff_get",
        json!({"handoff_id": s(&done["handoff_id"])}),
    );
    sc.call(&a, "handoff_get", json!({"handoff_id": "nope"}));
    let changes = sc.ok(
        &d,
        "review_submit",
        json!({"round_id": r1, "verdict": "changes_requested", "note": "more"}),
    );
    let r2 = s(&changes["round_id"]);
    common::workflow::hubctl_ok(&hub, &["approve", &r2]);
    let id2 = s(&sc.ok(&a, "assignment_list", json!({"round_id": r2}))["assignments"][0]["id"]);
    sc.ok(&a, "assignment_claim", json!({"assignment_id": id2}));
    sc.ok(
        &a,
        "assignment_complete",
        json!({"assignment_id": id2, "handoff_json": "{}"}),
    );
    sc.ok(
        &d,
        "review_submit",
        json!({"round_id": r2, "verdict": "approved"}),
    );
    sc.call(
        &d,
        "review_submit",
        json!({"round_id": r2, "verdict": "approved"}),
    );

    // Locks: acquire, a conflict, renew, release, release of a lock not held.
    let lock = json!({"lock_key": "branch:main", "resource_type": "branch", "ttl_seconds": 60});
    sc.ok(&a, "lock_acquire", lock.clone());
    sc.call(&b, "lock_acquire", lock.clone());
    sc.ok(&a, "lock_acquire", lock);
    sc.ok(&a, "lock_release", json!({"lock_key": "branch:main"}));
    sc.call(&a, "lock_release", json!({"lock_key": "branch:main"}));

    let listed: BTreeSet<String> = sc.output.keys().cloned().collect();
    assert_eq!(sc.seen_ok, listed, "every tool was called successfully");
    assert_eq!(sc.seen, listed);
}
