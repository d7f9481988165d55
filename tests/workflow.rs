//! Tasks and plans: drafts, plan submission and its refusals, the operator's reject
//! and approve, and `hubctl` against a running server. Assignments are in
//! workflow_assignments.rs, reviews and later rounds in workflow_review.rs.

mod common;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};

#[test]
fn draft_create_and_its_refusals() {
    let hub = workflow_hub();
    let d = hub.client("disp");
    assert_eq!(
        d.call(
            "task_draft_create",
            json!({"task_id": "T-1", "title": "Ship it", "description": "all of it"})
        )["status"],
        "draft"
    );
    assert_eq!(
        d.refused(
            "task_draft_create",
            json!({"task_id": "T-1", "title": "again"})
        ),
        "TASK_EXISTS"
    );
    assert_eq!(
        d.refused(
            "task_draft_create",
            json!({"task_id": "bad id", "title": "x"})
        ),
        "INVALID_ARGUMENT"
    );
}

#[test]
fn plan_submit_refusals_write_nothing() {
    let hub = workflow_hub();
    let (d, a) = (hub.client("disp"), hub.client("alice"));
    draft(&d, "T-1");
    assert_eq!(
        plan_refused(&a, "T-1", plan(&[("alice", "x")])),
        "NOT_TASK_DISPATCHER"
    );
    let (v, _) = d.call_raw(
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": plan(&[("alice", "x"), ("zed", "y")])}),
    );
    assert_eq!(v["error"], "UNKNOWN_AGENT");
    assert!(s(&v["message"]).contains("zed"));
    assert_eq!(
        plan_refused(&d, "T-1", json!("{not json")),
        "PLAN_SUBMIT_FAILED"
    );
    assert_eq!(plan_refused(&d, "T-1", plan(&[])), "PLAN_SUBMIT_FAILED");
    let seven: Vec<(&str, &str)> = ["1", "2", "3", "4", "5", "6", "7"]
        .iter()
        .map(|g| ("alice", *g))
        .collect();
    assert_eq!(
        plan_refused(&d, "T-1", plan(&seven)),
        "TOO_MANY_ASSIGNMENTS"
    );
    assert_eq!(
        plan_refused(&d, "nope", plan(&[("alice", "x")])),
        "TASK_NOT_FOUND"
    );
    assert!(hub.operator_get("/operator/tasks/T-1")["rounds"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn operator_reject_then_the_revised_plan_reuses_the_round() {
    let hub = workflow_hub();
    let d = hub.client("disp");
    draft(&d, "T-1");
    let r1 = d.call(
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": plan(&[("alice", "code")])}),
    );
    assert_eq!(
        (r1["round_number"].as_i64(), r1["status"].as_str()),
        (Some(1), Some("awaiting_operator_approval"))
    );
    let round = s(&r1["round_id"]);
    assert_eq!(
        hubctl_ok(&hub, &["reject", &round, "too", "vague"]).trim(),
        format!("Round {round}: REJECTED → needs re-plan")
    );
    let notice = d.call("inbox_pull", json!({}))["messages"][0].clone();
    assert_eq!(
        (notice["from_agent"].as_str(), notice["msg_type"].as_str()),
        (Some("hub"), Some("review"))
    );
    assert!(s(&notice["body"]).contains("too vague"));
    // This time plan_json comes as text.
    let text = serde_json::to_string(&plan(CODE_AND_TESTS)).unwrap();
    let revised = d.call(
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": text}),
    );
    assert_eq!(
        s(&revised["round_id"]),
        round,
        "the revision reuses the round"
    );
    assert_eq!(revised["assignments"].as_array().unwrap().len(), 2);
    // Both decisions keep their notes: the rejection and the approval.
    hubctl_ok(&hub, &["approve", &round, "good", "now"]);
    let status = hubctl_ok(&hub, &["status", &round]);
    assert!(
        status.contains(": too vague") && status.contains(": good now"),
        "{status}"
    );
}

#[test]
fn claims_wait_for_approval_and_assignees_are_told() {
    let hub = workflow_hub();
    let a = hub.client("alice");
    let round = replanned_round(&hub);
    let aid = assignment(&a, &round);
    assert_eq!(claim_refused(&a, &aid), "ROUND_NOT_APPROVED");
    assert_eq!(
        hubctl_ok(&hub, &["approve", &round, "go"]).trim(),
        format!("Round {round}: APPROVED → dispatched")
    );
    assert!(hubctl_err(&hub, &["approve", &round]).contains("ROUND_NOT_AWAITING_APPROVAL"));
    // Each assignee is told, naming its assignment.
    let told = a.call("inbox_pull", json!({}))["messages"][0].clone();
    assert_eq!(told["msg_type"], "assignment");
    assert!(s(&told["body"]).contains(&aid));
}

#[test]
fn concurrent_approve_and_close() {
    for _ in 0..3 {
        let hub = Hub::start(&["disp", "alice"], "");
        let d = hub.client("disp");
        draft(&d, "X");
        let round = submit_plan(&d, "X", plan(&[("alice", "g")]));
        let approve = {
            let (dir, port, round) = (hub.path(), hub.port, round.clone());
            std::thread::spawn(move || {
                std::process::Command::new(BIN)
                    .arg("--config-dir")
                    .arg(dir)
                    .args(["--port", &port.to_string(), "approve", &round])
                    .output()
                    .unwrap()
            })
        };
        let close = hub.hubctl(&["close", "X"]);
        let approve = approve.join().unwrap();
        assert!(close.status.success());
        // Either order is fine; what matters is a consistent end state.
        let v = hub.operator_get("/operator/tasks/X");
        assert_eq!(v["task"]["status"], "closed");
        assert_eq!(v["rounds"][0]["round"]["status"], "cancelled");
        assert_eq!(v["rounds"][0]["assignments"][0]["status"], "cancelled");
        if !approve.status.success() {
            let err = String::from_utf8_lossy(&approve.stderr);
            assert!(err.contains("TASK_CLOSED"), "{err}");
        }
    }
}

#[test]
fn hubctl_explains_failures() {
    let hub = Hub::start(&["disp"], "");
    // Server not running: say how to start it.
    let out = std::process::Command::new(BIN)
        .arg("--config-dir")
        .arg(hub.path())
        .args(["--url", "http://127.0.0.1:9", "list-tasks"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hubctl serve"), "{err}");
    // Environment variables find the server.
    let out = std::process::Command::new(BIN)
        .args(["list-tasks", "--json"])
        .env("AGENT_HUB_CONFIG_DIR", hub.path())
        .env("AGENT_HUB_PORT", hub.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"], json!([]));
    assert!(hubctl_err(&hub, &["status", "nope"]).contains("ROUND_NOT_FOUND"));
    assert!(hubctl_err(&hub, &["show", "nope"]).contains("TASK_NOT_FOUND"));
    // Empty lists say so rather than print a lone header.
    assert_eq!(
        hubctl_ok(&hub, &["list-tasks"]).trim(),
        "(no open tasks; --all lists finished ones too)"
    );
    assert_eq!(hubctl_ok(&hub, &["locks"]).trim(), "(no locks held)");
    // A task id where a round id belongs: say what it is and what shows it.
    hub.client("disp")
        .call("task_draft_create", json!({"task_id": "T-9", "title": "t"}));
    let err = hubctl_err(&hub, &["status", "T-9"]);
    assert!(
        err.contains("is a task, not a round") && err.contains("hubctl show T-9"),
        "{err}"
    );
    // Every subcommand has --help.
    for sub in [
        "serve",
        "connect",
        "agents",
        "approve",
        "reject",
        "close",
        "status",
        "list-tasks",
        "list-rounds",
        "show",
        "bench",
    ] {
        assert!(
            hub.hubctl(&[sub, "--help"]).status.success(),
            "{sub} --help"
        );
    }
}
