//! The task workflow as a dispatcher, its assignees and the operator drive it: plans,
//! dispatched rounds, claimed and completed assignments, `hubctl` answers. Used as
//! `common::workflow::*` by the workflow and durability tests.

use super::{Client, Hub};
use serde_json::{json, Value};

/// The scenarios' two-assignment plan: alice writes the code, bob the tests.
pub(crate) const CODE_AND_TESTS: &[(&str, &str)] = &[("alice", "code"), ("bob", "tests")];

/// A `plan_json` with one assignment per `(agent, goal)`.
pub(crate) fn plan(items: &[(&str, &str)]) -> Value {
    json!({"assignments": items.iter().map(|(a, g)| json!({"agent_id": a, "goal": g})).collect::<Vec<_>>()})
}

/// A JSON string's text; panics on any other value.
pub(crate) fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// `hubctl <args>` must succeed; its stdout.
pub(crate) fn hubctl_ok(hub: &Hub, args: &[&str]) -> String {
    let out = hub.hubctl(args);
    assert!(
        out.status.success(),
        "hubctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `hubctl <args>` must fail with a one-line reason; its stderr.
pub(crate) fn hubctl_err(hub: &Hub, args: &[&str]) -> String {
    let out = hub.hubctl(args);
    assert!(!out.status.success(), "hubctl {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
    err
}

/// The id of the first assignment that `c` sees in `round` (its own).
pub(crate) fn assignment(c: &Client, round: &str) -> String {
    s(&c.call("assignment_list", json!({"round_id": round}))["assignments"][0]["id"])
}

/// The hub of the workflow scenarios: `disp` dispatches to `alice` and `bob`, at most
/// two rounds per task.
pub(crate) fn workflow_hub() -> Hub {
    Hub::start(&["disp", "alice", "bob"], "max_rounds: 2\n")
}

/// A draft of `task` by `d`, titled `task`.
pub(crate) fn draft(d: &Client, task: &str) {
    d.call("task_draft_create", json!({"task_id": task, "title": task}));
}

/// `round_plan_submit` of `plan_json` for `task`, which must succeed: the round id.
pub(crate) fn submit_plan(d: &Client, task: &str, plan_json: Value) -> String {
    s(&d.call(
        "round_plan_submit",
        json!({"task_id": task, "plan_json": plan_json}),
    )["round_id"])
}

/// `round_plan_submit` of `plan_json` for `task`, which must be refused: the error code.
pub(crate) fn plan_refused(d: &Client, task: &str, plan_json: Value) -> String {
    d.refused(
        "round_plan_submit",
        json!({"task_id": task, "plan_json": plan_json}),
    )
}

/// Task `task` drafted by `disp`, planned as `items` and approved by the operator:
/// the id of its dispatched round.
pub(crate) fn dispatched_round(hub: &Hub, task: &str, items: &[(&str, &str)]) -> String {
    let d = hub.client("disp");
    draft(&d, task);
    let round = submit_plan(&d, task, plan(items));
    hubctl_ok(hub, &["approve", &round]);
    round
}

/// T-1 drafted, planned (alice: code), rejected "too vague" by the operator and
/// re-planned (alice: code, bob: tests): the round, awaiting approval again.
pub(crate) fn replanned_round(hub: &Hub) -> String {
    let d = hub.client("disp");
    draft(&d, "T-1");
    let round = submit_plan(&d, "T-1", plan(&[("alice", "code")]));
    hubctl_ok(hub, &["reject", &round, "too", "vague"]);
    submit_plan(&d, "T-1", plan(CODE_AND_TESTS));
    round
}

/// `assignment_claim` of `id` by `c`, which must succeed: the claimed assignment.
pub(crate) fn claim(c: &Client, id: &str) -> Value {
    c.call("assignment_claim", json!({"assignment_id": id}))["assignment"].clone()
}

/// `assignment_claim` of `id` by `c`, which must be refused: the error code.
pub(crate) fn claim_refused(c: &Client, id: &str) -> String {
    c.refused("assignment_claim", json!({"assignment_id": id}))
}

/// `c` claims its assignment in `round`: the assignment id.
pub(crate) fn claim_assignment(c: &Client, round: &str) -> String {
    let id = assignment(c, round);
    claim(c, &id);
    id
}

/// `assignment_progress` of `id` to in_progress with `note`, which must succeed.
pub(crate) fn in_progress(c: &Client, id: &str, note: &str) {
    c.call(
        "assignment_progress",
        json!({"assignment_id": id, "status": "in_progress", "note": note}),
    );
}

/// `assignment_progress` of `id` to `status`, which must be refused: the error code.
pub(crate) fn progress_refused(c: &Client, id: &str, status: &str) -> String {
    c.refused(
        "assignment_progress",
        json!({"assignment_id": id, "status": status}),
    )
}

/// A handoff with every field filled in.
pub(crate) fn feature_handoff() -> Value {
    json!({"branch": "feat", "commit_hash": "abc", "changed_files": ["src/a.rs"], "tests_run": ["cargo test"], "risks": [], "next_steps": ["review"], "notes": "ok"})
}

/// `assignment_complete` of `id` with `handoff`, which must succeed: the answer.
pub(crate) fn complete(c: &Client, id: &str, handoff: Value) -> Value {
    c.call(
        "assignment_complete",
        json!({"assignment_id": id, "handoff_json": handoff}),
    )
}

/// `assignment_complete` of `id` with `handoff`, which must be refused: the error code.
pub(crate) fn complete_refused(c: &Client, id: &str, handoff: Value) -> String {
    c.refused(
        "assignment_complete",
        json!({"assignment_id": id, "handoff_json": handoff}),
    )
}

/// `c` claims its assignment in `round` and completes it with an empty handoff.
pub(crate) fn claim_and_complete(c: &Client, round: &str) {
    let id = claim_assignment(c, round);
    complete(c, &id, json!({}));
}

/// `review_submit` of `verdict` on `round`, which must succeed: the answer.
pub(crate) fn review(d: &Client, round: &str, verdict: &str) -> Value {
    d.call(
        "review_submit",
        json!({"round_id": round, "verdict": verdict}),
    )
}

/// `review_submit` of `verdict` on `round`, which must be refused: the error code.
pub(crate) fn review_refused(d: &Client, round: &str, verdict: &str) -> String {
    d.refused(
        "review_submit",
        json!({"round_id": round, "verdict": verdict}),
    )
}

/// `review_submit` of changes_requested on `round` with `note`: the next round.
pub(crate) fn request_changes(d: &Client, round: &str, note: &str) -> Value {
    d.call(
        "review_submit",
        json!({"round_id": round, "verdict": "changes_requested", "note": note}),
    )
}
