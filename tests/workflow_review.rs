//! Reviews and later rounds: review refusals, changes requested opening the next round,
//! follow-up rounds planned while a round is worked on, the last round
//! (`max_rounds: 2`) that can only be approved, and what the operator sees of a task
//! that went through all of it.

mod common;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};

/// The rounds of a task taken through [`two_rounds`].
struct TwoRounds {
    first: String,
    last: String,
    /// alice's handoff in the first round.
    handoff: String,
}

/// T-1 re-planned after a reject ([`replanned_round`]) and approved; both complete
/// (alice through in_progress, with a full handoff); changes requested; round 2
/// approved and both complete again. Round 2 awaits its review.
fn two_rounds(hub: &Hub) -> TwoRounds {
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    let first = replanned_round(hub);
    hubctl_ok(hub, &["approve", &first, "go"]);
    let aid = claim_assignment(&a, &first);
    in_progress(&a, &aid, "half");
    let handoff = s(&complete(&a, &aid, feature_handoff())["handoff_id"]);
    claim_and_complete(&b, &first);
    let last = s(&request_changes(&d, &first, "more tests")["round_id"]);
    hubctl_ok(hub, &["approve", &last]);
    claim_and_complete(&a, &last);
    claim_and_complete(&b, &last);
    TwoRounds {
        first,
        last,
        handoff,
    }
}

#[test]
fn review_refusals_then_changes_requested_opens_round_2() {
    let hub = workflow_hub();
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    claim_and_complete(&a, &round);
    claim_and_complete(&b, &round);
    assert_eq!(
        review_refused(&a, &round, "approved"),
        "NOT_TASK_DISPATCHER"
    );
    assert_eq!(review_refused(&d, &round, "meh"), "INVALID_VERDICT");
    assert_eq!(review_refused(&d, "nope", "approved"), "ROUND_NOT_FOUND");
    // Changes requested opens round 2 with the same assignments.
    let next = request_changes(&d, &round, "more tests");
    assert_eq!(
        (next["status"].as_str(), next["round_number"].as_i64()),
        (Some("awaiting_operator_approval"), Some(2))
    );
    let r2 = s(&next["round_id"]);
    assert_eq!(
        review_refused(&d, &round, "approved"),
        "ROUND_NOT_REVIEWABLE"
    );
    let r2_list = a.call("assignment_list", json!({"round_id": r2}))["assignments"].clone();
    assert_eq!(
        (r2_list[0]["status"].as_str(), r2_list[0]["goal"].as_str()),
        (Some("pending"), Some("code"))
    );
}

/// The task's status as the operator sees it.
fn task_status(hub: &Hub, task: &str) -> String {
    s(&hub.operator_get(&format!("/operator/tasks/{task}"))["task"]["status"])
}

/// As in the reference, a dispatcher plans round n+1 while round n is worked on:
/// the task awaits the operator while a round does, is dispatched while a round is
/// open, and an approving review completes it only with its last open round.
#[test]
fn a_follow_up_round_is_planned_while_round_1_is_worked_on() {
    let hub = workflow_hub();
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    let first = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let aid = claim_assignment(&a, &first);
    let planned = d.call(
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": plan(&[("alice", "docs")])}),
    );
    assert_eq!(
        (planned["round_number"].as_i64(), planned["status"].as_str()),
        (Some(2), Some("awaiting_operator_approval")),
        "{planned}"
    );
    let second = s(&planned["round_id"]);
    assert_eq!(task_status(&hub, "T-1"), "awaiting_operator_approval");
    // Round 1 goes on meanwhile; a plan while round 2 awaits approval replaces it.
    complete(&a, &aid, json!({}));
    let again = submit_plan(&d, "T-1", plan(&[("alice", "docs"), ("bob", "docs")]));
    assert_eq!(again, second);
    hubctl_ok(&hub, &["approve", &second]);
    assert_eq!(task_status(&hub, "T-1"), "dispatched");
    // max_rounds: 2 bounds follow-up plans too.
    assert_eq!(
        plan_refused(&d, "T-1", plan(&[("alice", "x")])),
        "MAX_ROUNDS_REACHED"
    );
    claim_and_complete(&b, &first);
    let r = review(&d, &first, "approved");
    assert_eq!(
        (r["status"].as_str(), r["task_status"].as_str()),
        (Some("completed"), Some("dispatched")),
        "{r}"
    );
    assert_eq!(task_status(&hub, "T-1"), "dispatched");
    claim_and_complete(&a, &second);
    claim_and_complete(&b, &second);
    let r = review(&d, &second, "approved");
    assert_eq!(r["task_status"], "completed", "{r}");
    assert_eq!(task_status(&hub, "T-1"), "completed");
    assert_eq!(
        plan_refused(&d, "T-1", plan(&[("alice", "x")])),
        "TASK_NOT_DISPATCHABLE"
    );
}

#[test]
fn the_last_round_can_only_be_approved_which_completes_the_task() {
    let hub = workflow_hub();
    let d = hub.client("disp");
    let rounds = two_rounds(&hub);
    assert_eq!(
        review_refused(&d, &rounds.last, "changes_requested"),
        "MAX_ROUNDS_REACHED"
    );
    assert_eq!(review(&d, &rounds.last, "approved")["status"], "completed");
    assert_eq!(
        plan_refused(&d, "T-1", plan(&[("alice", "x")])),
        "TASK_NOT_DISPATCHABLE"
    );
}

#[test]
fn operator_views_and_audit_cover_every_round() {
    let hub = workflow_hub();
    let TwoRounds {
        first,
        last,
        handoff,
    } = two_rounds(&hub);
    review(&hub.client("disp"), &last, "approved");
    // Finished tasks are history: listed with --all.
    let list = hubctl_ok(&hub, &["list-tasks", "--all"]);
    assert!(list.contains("T-1") && list.contains("completed"), "{list}");
    let rounds = hubctl_ok(&hub, &["list-rounds", "T-1"]);
    assert!(
        rounds.contains("changes_requested") && rounds.contains(&last),
        "{rounds}"
    );
    let tree = hubctl_ok(&hub, &["show", "T-1"]);
    assert!(
        tree.contains("Round #1")
            && tree.contains("Round #2")
            && tree.contains(&format!("handoff {handoff}"))
            && tree.contains("review note: more tests"),
        "{tree}"
    );
    let st: Value = serde_json::from_str(&hubctl_ok(&hub, &["--json", "status", &first])).unwrap();
    assert_eq!(st["round"]["status"], "changes_requested");
    assert!(hubctl_ok(&hub, &["status", &last]).contains("completed"));
    // Every transition left an audit row.
    let db = rusqlite::Connection::open(hub.path().join("hub.db")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit_events WHERE entity_id = 'T-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n >= 12, "{n}");
    let approvals: i64 = db
        .query_row("SELECT COUNT(*) FROM operator_approvals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(approvals, 3);
}
