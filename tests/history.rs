//! Bounded state: finished tasks are not loaded at start-up but read on demand, and
//! answer every tool and operator command exactly as they did before the restart.

mod common;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};

/// Task D completed (alice's handoff reviewed and approved) and task C closed with
/// bob's assignment open: (D's round, alice's assignment, its handoff, C's round,
/// bob's assignment).
fn finished_tasks(hub: &Hub) -> [String; 5] {
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    let round_d = dispatched_round(hub, "D", &[("alice", "code")]);
    let aid = claim_assignment(&a, &round_d);
    let handoff = s(&complete(&a, &aid, feature_handoff())["handoff_id"]);
    review(&d, &round_d, "approved");
    let round_c = dispatched_round(hub, "C", &[("bob", "tests")]);
    let bid = assignment(&b, &round_c);
    hubctl_ok(hub, &["close", "C"]);
    [round_d, aid, handoff, round_c, bid]
}

/// Everything a client or the operator can ask about the two tasks.
fn observe(hub: &Hub, [round_d, aid, handoff, round_c, bid]: &[String; 5]) -> Vec<Value> {
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    vec![
        a.call("assignment_list", json!({})),
        a.call("assignment_list", json!({"round_id": round_d})),
        b.call("assignment_list", json!({"round_id": round_c})),
        a.call("handoff_get", json!({"handoff_id": handoff})),
        json!(review_refused(&d, round_d, "approved")),
        json!(claim_refused(&a, aid)),
        json!(claim_refused(&b, bid)),
        json!(complete_refused(&a, aid, json!({}))),
        json!(d.refused(
            "task_draft_create",
            json!({"task_id": "D", "title": "again"})
        )),
        json!(plan_refused(&d, "D", plan(&[("alice", "more")]))),
        json!(plan_refused(&d, "C", plan(&[("alice", "more")]))),
        hub.operator_get("/operator/tasks/D"),
        hub.operator_get("/operator/tasks/C"),
        hub.operator_get(&format!("/operator/rounds/{round_d}")),
        hub.operator_get("/operator/tasks"),
        json!(hubctl_err(hub, &["approve", round_c])),
        json!(hubctl_err(hub, &["close", "C"])),
        a.call("hub_status", json!({}))["tasks"].clone(),
    ]
}

#[test]
fn finished_tasks_answer_the_same_after_a_restart() {
    let hub = Hub::start(&["disp", "alice", "bob"], "max_messages_per_task: 2\n");
    let ids = finished_tasks(&hub);
    // One message about D's round before the restart counts against D's budget.
    let a = hub.client("alice");
    let about_d = json!({"to_agent": "disp", "subject": "s", "body": "b", "round_id": ids[0]});
    a.call("message_send", about_d.clone());
    let before = observe(&hub, &ids);
    assert_eq!(before[0]["truncated"], false);
    assert_eq!(before[4], "ROUND_NOT_REVIEWABLE");
    assert_eq!(before[6], "TASK_CLOSED");
    assert_eq!(before[8], "TASK_EXISTS");
    assert_eq!(before.last(), Some(&json!(2)));

    let hub = hub.restart(); // kill -9, then start on the same database
    assert_eq!(observe(&hub, &ids), before);
    // The budget is read back with the task: one more fits, then the limit.
    let a = hub.client("alice");
    a.call("message_send", about_d.clone());
    assert_eq!(a.refused("message_send", about_d), "MESSAGE_LIMIT_REACHED");
    // Unknown ids are still refused with their codes.
    assert_eq!(
        a.refused("handoff_get", json!({"handoff_id": "nope"})),
        "NOT_FOUND"
    );
    assert_eq!(claim_refused(&a, "nope"), "ASSIGNMENT_NOT_VALID");
    assert_eq!(
        review_refused(&hub.client("disp"), "nope", "approved"),
        "ROUND_NOT_FOUND"
    );
}
