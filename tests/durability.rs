//! Acknowledged means durable: answered writes survive `kill -9`; SIGTERM flushes.

mod common;
use common::workflow::*;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn registration_survives_kill_9() {
    let hub = Hub::start(&["alice", "bob"], "");
    let c = hub.client("alice");
    c.call(
        "agent_register",
        json!({"name": "Alice the Agent", "capabilities": ["planning"]}),
    );
    let hb = c.call("agent_heartbeat", json!({}));
    let hub = hub.restart(); // kill -9, then start on the same database
    let alice = hub.operator_agent("alice");
    assert_eq!(alice["name"], "Alice the Agent");
    assert_eq!(alice["capabilities"], json!(["planning"]));
    assert_eq!(alice["last_heartbeat"], hb["last_heartbeat"]);
    // Straight from the database too, with the reference's column names.
    let db = rusqlite::Connection::open(hub.path().join("hub.db")).unwrap();
    let (name, caps): (String, String) = db
        .query_row(
            "SELECT name, capabilities FROM agents WHERE id = 'alice'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (name.as_str(), caps.as_str()),
        ("Alice the Agent", "[\"planning\"]")
    );
}

#[test]
fn every_stop_signal_flushes_fast_mode_writes() {
    for sig in ["TERM", "INT", "QUIT"] {
        let mut hub = Hub::start(
            &["alice"],
            "durability: fast\ncommit_batch_window_ms: 1000\n",
        );
        let c = hub.client("alice");
        c.call("agent_register", json!({"name": "Fast Alice"}));
        hub.signal(sig);
        let status = hub
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("SIG{sig}: still running"));
        assert!(status.success(), "SIG{sig}: clean exit: {status}");
        let db = rusqlite::Connection::open(hub.path().join("hub.db")).unwrap();
        let name: String = db
            .query_row("SELECT name FROM agents WHERE id = 'alice'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(name, "Fast Alice", "SIG{sig}");
    }
}

#[test]
fn messages_and_workflow_survive_kill_9_halfway() {
    let hub = Hub::start(&["disp", "alice", "bob"], "");
    let round = dispatched_round(&hub, "T1", &[("alice", "a"), ("bob", "b")]);
    let a = hub.client("alice");
    let aid = claim_assignment(&a, &round);
    let handoff = s(&complete(&a, &aid, json!({"branch": "feat-a"}))["handoff_id"]);
    let sent = a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "hi", "body": "b", "dedupe_key": "k1"}),
    );

    let hub = hub.restart();
    let b = hub.client("bob");
    // Bob's inbox: the approval notice and alice's message, still unread.
    let inbox = b.call("inbox_pull", json!({}))["messages"].clone();
    assert!(inbox
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == sent["message_id"]));
    // Alice's dedupe key survived the restart.
    let a = hub.client("alice");
    let (dup, _) = a.call_raw(
        "message_send",
        json!({"to_agent": "bob", "subject": "hi", "body": "b", "dedupe_key": "k1"}),
    );
    assert_eq!(
        (dup["error"].as_str(), &dup["message_id"]),
        (Some("DUPLICATE_MESSAGE"), &sent["message_id"])
    );
    // The workflow goes on where it stopped.
    assert_eq!(
        b.call("handoff_get", json!({"handoff_id": handoff}))["handoff"]["branch"],
        "feat-a"
    );
    let bid = claim_assignment(&b, &round);
    complete(&b, &bid, json!("{}"));
    let r = review(&hub.client("disp"), &round, "approved");
    assert_eq!(r["status"], "completed");
    let v = hub.operator_get("/operator/tasks/T1");
    assert_eq!(v["task"]["status"], "completed");
}

#[test]
fn leases_are_rearmed_after_restart() {
    // 0.05 min = 3 s.
    let hub = Hub::start(&["disp", "alice"], "lease_minutes: 0.05\n");
    let round = dispatched_round(&hub, "L", &[("alice", "g")]);
    let aid = claim_assignment(&hub.client("alice"), &round);
    let hub = hub.restart();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let a = hub.client("alice");
    let list = a.call("assignment_list", json!({}));
    assert_eq!(list["assignments"][0]["status"], "pending", "{list}");
    assert_eq!(
        complete_refused(&a, &aid, json!({})),
        "ASSIGNMENT_NOT_ACTIVE"
    );
}
