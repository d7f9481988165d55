//! The task workflow over HTTP with several agents, every error code, races, and
//! `hubctl` as a process against a running server.

mod common;
use common::*;
use serde_json::{json, Value};

fn plan(items: &[(&str, &str)]) -> Value {
    json!({"assignments": items.iter().map(|(a, g)| json!({"agent_id": a, "goal": g})).collect::<Vec<_>>()})
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn hubctl_ok(hub: &Hub, args: &[&str]) -> String {
    let out = hub.hubctl(args);
    assert!(
        out.status.success(),
        "hubctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn hubctl_err(hub: &Hub, args: &[&str]) -> String {
    let out = hub.hubctl(args);
    assert!(!out.status.success(), "hubctl {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
    err
}

/// The assignment of `agent` in `round`.
fn assignment(c: &Client, round: &str) -> String {
    s(&c.call("assignment_list", json!({"round_id": round}))["assignments"][0]["id"])
}

#[test]
fn whole_workflow_with_reject_and_changes_requested() {
    let hub = Hub::start(&["disp", "alice", "bob"], "max_rounds: 2\n");
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
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
    // Plan refusals, nothing written.
    assert_eq!(
        a.refused(
            "round_plan_submit",
            json!({"task_id": "T-1", "plan_json": plan(&[("alice", "x")])})
        ),
        "NOT_TASK_DISPATCHER"
    );
    let (v, _) = d.call_raw(
        "round_plan_submit",
        json!({"task_id": "T-1", "plan_json": plan(&[("alice", "x"), ("zed", "y")])}),
    );
    assert_eq!(v["error"], "UNKNOWN_AGENT");
    assert!(s(&v["message"]).contains("zed"));
    assert_eq!(
        d.refused(
            "round_plan_submit",
            json!({"task_id": "T-1", "plan_json": "{not json"})
        ),
        "PLAN_SUBMIT_FAILED"
    );
    assert_eq!(
        d.refused(
            "round_plan_submit",
            json!({"task_id": "T-1", "plan_json": plan(&[])})
        ),
        "PLAN_SUBMIT_FAILED"
    );
    let seven: Vec<(&str, &str)> = ["1", "2", "3", "4", "5", "6", "7"]
        .iter()
        .map(|g| ("alice", *g))
        .collect();
    assert_eq!(
        d.refused(
            "round_plan_submit",
            json!({"task_id": "T-1", "plan_json": plan(&seven)})
        ),
        "TOO_MANY_ASSIGNMENTS"
    );
    assert_eq!(
        d.refused(
            "round_plan_submit",
            json!({"task_id": "nope", "plan_json": plan(&[("alice", "x")])})
        ),
        "TASK_NOT_FOUND"
    );
    assert!(hub.operator_get("/operator/tasks/T-1")["rounds"]
        .as_array()
        .unwrap()
        .is_empty());

    // Round 1, rejected, revised, approved.
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
    let revised = d.call("round_plan_submit", json!({"task_id": "T-1", "plan_json": serde_json::to_string(&plan(&[("alice", "code"), ("bob", "tests")])).unwrap()}));
    assert_eq!(
        s(&revised["round_id"]),
        round,
        "the revision reuses the round"
    );
    assert_eq!(revised["assignments"].as_array().unwrap().len(), 2);
    // Claim before approval.
    let aid = assignment(&a, &round);
    assert_eq!(
        a.refused("assignment_claim", json!({"assignment_id": aid})),
        "ROUND_NOT_APPROVED"
    );
    assert_eq!(
        hubctl_ok(&hub, &["approve", &round, "go"]).trim(),
        format!("Round {round}: APPROVED → dispatched")
    );
    assert!(hubctl_err(&hub, &["approve", &round]).contains("ROUND_NOT_AWAITING_APPROVAL"));
    // Each assignee is told, naming its assignment.
    let told = a.call("inbox_pull", json!({}))["messages"][0].clone();
    assert_eq!(told["msg_type"], "assignment");
    assert!(s(&told["body"]).contains(&aid));

    let bid = assignment(&b, &round);
    assert_eq!(
        b.refused("assignment_claim", json!({"assignment_id": aid})),
        "ASSIGNMENT_NOT_VALID"
    );
    assert_eq!(
        a.refused("assignment_claim", json!({"assignment_id": "nope"})),
        "ASSIGNMENT_NOT_VALID"
    );
    assert_eq!(
        a.refused(
            "assignment_progress",
            json!({"assignment_id": aid, "status": "in_progress"})
        ),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(
        a.refused(
            "assignment_complete",
            json!({"assignment_id": aid, "handoff_json": {}})
        ),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(
        a.call("assignment_claim", json!({"assignment_id": aid}))["assignment"]["status"],
        "claimed"
    );
    assert_eq!(
        a.refused("assignment_claim", json!({"assignment_id": aid})),
        "ASSIGNMENT_NOT_PENDING"
    );
    assert_eq!(
        a.refused(
            "assignment_progress",
            json!({"assignment_id": aid, "status": "done"})
        ),
        "INVALID_STATUS"
    );
    a.call(
        "assignment_progress",
        json!({"assignment_id": aid, "status": "in_progress", "note": "half"}),
    );
    assert_eq!(
        a.refused(
            "assignment_progress",
            json!({"assignment_id": aid, "status": "claimed"})
        ),
        "INVALID_TRANSITION"
    );
    assert_eq!(
        d.refused(
            "review_submit",
            json!({"round_id": round, "verdict": "approved"})
        ),
        "ASSIGNMENTS_NOT_COMPLETE"
    );
    assert_eq!(
        a.refused(
            "assignment_complete",
            json!({"assignment_id": aid, "handoff_json": "{oops"})
        ),
        "COMPLETE_FAILED"
    );
    let done = a.call("assignment_complete", json!({"assignment_id": aid, "handoff_json": {"branch": "feat", "commit_hash": "abc", "changed_files": ["src/a.rs"], "tests_run": ["cargo test"], "risks": [], "next_steps": ["review"], "notes": "ok"}}));
    let handoff = s(&done["handoff_id"]);
    assert_eq!(done["assignment"]["status"], "completed");
    assert_eq!(
        a.refused(
            "assignment_progress",
            json!({"assignment_id": aid, "status": "in_progress"})
        ),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    let h = b.call("handoff_get", json!({"handoff_id": handoff}))["handoff"].clone();
    assert_eq!(
        (h["branch"].as_str(), h["changed_files"].clone()),
        (Some("feat"), json!(["src/a.rs"]))
    );
    assert_eq!(
        b.refused("handoff_get", json!({"handoff_id": "nope"})),
        "NOT_FOUND"
    );
    b.call("assignment_claim", json!({"assignment_id": bid}));
    b.call(
        "assignment_complete",
        json!({"assignment_id": bid, "handoff_json": {}}),
    );
    let subjects: Vec<String> = d.call("inbox_pull", json!({}))["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["subject"]))
        .collect();
    assert!(
        subjects.iter().any(|x| x.contains("completed by alice")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|x| x.contains("awaits your review")),
        "{subjects:?}"
    );

    // Review: changes requested opens round 2 with the same assignments.
    assert_eq!(
        a.refused(
            "review_submit",
            json!({"round_id": round, "verdict": "approved"})
        ),
        "NOT_TASK_DISPATCHER"
    );
    assert_eq!(
        d.refused(
            "review_submit",
            json!({"round_id": round, "verdict": "meh"})
        ),
        "INVALID_VERDICT"
    );
    assert_eq!(
        d.refused(
            "review_submit",
            json!({"round_id": "nope", "verdict": "approved"})
        ),
        "ROUND_NOT_FOUND"
    );
    let next = d.call(
        "review_submit",
        json!({"round_id": round, "verdict": "changes_requested", "note": "more tests"}),
    );
    assert_eq!(
        (next["status"].as_str(), next["round_number"].as_i64()),
        (Some("awaiting_operator_approval"), Some(2))
    );
    let r2 = s(&next["round_id"]);
    assert_eq!(
        d.refused(
            "review_submit",
            json!({"round_id": round, "verdict": "approved"})
        ),
        "ROUND_NOT_REVIEWABLE"
    );
    let r2_list = a.call("assignment_list", json!({"round_id": r2}))["assignments"].clone();
    assert_eq!(
        (r2_list[0]["status"].as_str(), r2_list[0]["goal"].as_str()),
        (Some("pending"), Some("code"))
    );
    hubctl_ok(&hub, &["approve", &r2]);
    for c in [&a, &b] {
        let id = assignment(c, &r2);
        c.call("assignment_claim", json!({"assignment_id": id}));
        c.call(
            "assignment_complete",
            json!({"assignment_id": id, "handoff_json": {}}),
        );
    }
    // The last round: changes_requested is refused, approval completes the task.
    assert_eq!(
        d.refused(
            "review_submit",
            json!({"round_id": r2, "verdict": "changes_requested"})
        ),
        "MAX_ROUNDS_REACHED"
    );
    assert_eq!(
        d.call(
            "review_submit",
            json!({"round_id": r2, "verdict": "approved"})
        )["status"],
        "completed"
    );
    assert_eq!(
        d.refused(
            "round_plan_submit",
            json!({"task_id": "T-1", "plan_json": plan(&[("alice", "x")])})
        ),
        "TASK_NOT_DISPATCHABLE"
    );

    // Operator views.
    let list = hubctl_ok(&hub, &["list-tasks"]);
    assert!(list.contains("T-1") && list.contains("completed"), "{list}");
    let rounds = hubctl_ok(&hub, &["list-rounds", "T-1"]);
    assert!(
        rounds.contains("changes_requested") && rounds.contains(&r2),
        "{rounds}"
    );
    let tree = hubctl_ok(&hub, &["show", "T-1"]);
    assert!(
        tree.contains("Round #1")
            && tree.contains("Round #2")
            && tree.contains(&format!("handoff {handoff}")),
        "{tree}"
    );
    let st: Value = serde_json::from_str(&hubctl_ok(&hub, &["--json", "status", &round])).unwrap();
    assert_eq!(st["round"]["status"], "changes_requested");
    assert!(hubctl_ok(&hub, &["status", &r2]).contains("completed"));
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

#[test]
fn active_assignment_limit_spans_tasks_and_close_cancels() {
    let hub = Hub::start(&["disp", "alice"], "max_simultaneous_assignments: 2\n");
    let (d, a) = (hub.client("disp"), hub.client("alice"));
    let mut ids = Vec::new();
    for t in ["A", "B", "C"] {
        d.call("task_draft_create", json!({"task_id": t, "title": t}));
        let r = s(&d.call(
            "round_plan_submit",
            json!({"task_id": t, "plan_json": plan(&[("alice", "g")])}),
        )["round_id"]);
        hubctl_ok(&hub, &["approve", &r]);
        ids.push(assignment(&a, &r));
    }
    a.call("assignment_claim", json!({"assignment_id": ids[0]}));
    a.call("assignment_claim", json!({"assignment_id": ids[1]}));
    assert_eq!(
        a.refused("assignment_claim", json!({"assignment_id": ids[2]})),
        "ACTIVE_ASSIGNMENT_LIMIT"
    );
    // Closing task A cancels alice's claim there and frees her slot.
    assert_eq!(hubctl_ok(&hub, &["close", "A"]).trim(), "Task A: CLOSED");
    assert!(hubctl_err(&hub, &["close", "A"]).contains("TASK_CLOSED"));
    assert_eq!(
        a.refused(
            "assignment_complete",
            json!({"assignment_id": ids[0], "handoff_json": {}})
        ),
        "TASK_CLOSED"
    );
    assert_eq!(
        d.refused(
            "round_plan_submit",
            json!({"task_id": "A", "plan_json": plan(&[("alice", "g")])})
        ),
        "TASK_CLOSED"
    );
    a.call("assignment_claim", json!({"assignment_id": ids[2]}));
    let listed = a.call("assignment_list", json!({}))["assignments"].clone();
    let a_status = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == ids[0])
        .unwrap()["status"]
        .clone();
    assert_eq!(a_status, "cancelled");
    assert!(hubctl_err(&hub, &["close", "nope"]).contains("TASK_NOT_FOUND"));
    assert!(hubctl_err(&hub, &["approve", "nope"]).contains("ROUND_NOT_FOUND"));
}

#[test]
fn lapsed_lease_returns_the_assignment_to_pending() {
    let hub = Hub::start(&["disp", "alice"], "lease_minutes: 0.02\n"); // 1.2 s
    let (d, a) = (hub.client("disp"), hub.client("alice"));
    d.call(
        "task_draft_create",
        json!({"task_id": "L", "title": "lease"}),
    );
    let r = s(&d.call(
        "round_plan_submit",
        json!({"task_id": "L", "plan_json": plan(&[("alice", "g")])}),
    )["round_id"]);
    hubctl_ok(&hub, &["approve", &r]);
    let id = assignment(&a, &r);
    a.call("assignment_claim", json!({"assignment_id": id}));
    a.call(
        "message_ack",
        json!({"message_id": a.call("inbox_pull", json!({}))["messages"][0]["id"].clone()}),
    );
    // The expiry notice wakes this long-poll.
    let note = a.call("inbox_pull", json!({"wait_seconds": 20}))["messages"][0].clone();
    assert!(s(&note["subject"]).contains("lease"), "{note}");
    assert_eq!(
        a.refused(
            "assignment_complete",
            json!({"assignment_id": id, "handoff_json": {}})
        ),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(
        a.call("assignment_claim", json!({"assignment_id": id}))["assignment"]["status"],
        "claimed"
    );
}

fn dispatched_round(hub: &Hub, agents: &[&str]) -> String {
    let d = hub.client("disp");
    d.call(
        "task_draft_create",
        json!({"task_id": "R", "title": "race"}),
    );
    let items: Vec<(&str, &str)> = agents.iter().map(|a| (*a, "g")).collect();
    let r = s(&d.call(
        "round_plan_submit",
        json!({"task_id": "R", "plan_json": plan(&items)}),
    )["round_id"]);
    hubctl_ok(hub, &["approve", &r]);
    r
}

#[test]
fn twenty_agents_race_for_one_assignment() {
    let names: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("disp");
    let hub = Hub::start(&all, "");
    let round = dispatched_round(&hub, &["r00"]);
    let id = assignment(&hub.client("r00"), &round);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
    let threads: Vec<_> = names
        .iter()
        .map(|n| {
            let (url, n, id, barrier) = (hub.url.clone(), n.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = Client::connect(&url, &token(&n), "2025-11-25");
                barrier.wait();
                let (v, err) = c.call_raw("assignment_claim", json!({"assignment_id": id}));
                (n, if err { s(&v["error"]) } else { "OK".into() })
            })
        })
        .collect();
    let results: Vec<(String, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r == "OK")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners, vec!["r00"], "only the assignee, exactly once");
    assert!(
        results
            .iter()
            .filter(|(n, _)| n != "r00")
            .all(|(_, r)| r == "ASSIGNMENT_NOT_VALID"),
        "{results:?}"
    );
}

#[test]
fn an_assignees_concurrent_double_claim_succeeds_once() {
    let hub = Hub::start(&["disp", "alice"], "");
    let round = dispatched_round(&hub, &["alice"]);
    let id = assignment(&hub.client("alice"), &round);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (url, id, barrier) = (hub.url.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = Client::connect(&url, &token("alice"), "2025-11-25");
                barrier.wait();
                let (v, err) = c.call_raw("assignment_claim", json!({"assignment_id": id}));
                if err {
                    s(&v["error"])
                } else {
                    "OK".to_string()
                }
            })
        })
        .collect();
    let results: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| *r == "OK").count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter(|r| *r != "OK")
        .all(|r| r == "ASSIGNMENT_NOT_PENDING"));
}

#[test]
fn concurrent_approve_and_close() {
    for _ in 0..3 {
        let hub = Hub::start(&["disp", "alice"], "");
        let d = hub.client("disp");
        d.call("task_draft_create", json!({"task_id": "X", "title": "x"}));
        let round = s(&d.call(
            "round_plan_submit",
            json!({"task_id": "X", "plan_json": plan(&[("alice", "g")])}),
        )["round_id"]);
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
    assert_eq!(v["tasks"], json!([]));
    assert!(hubctl_err(&hub, &["status", "nope"]).contains("ROUND_NOT_FOUND"));
    assert!(hubctl_err(&hub, &["show", "nope"]).contains("TASK_NOT_FOUND"));
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
