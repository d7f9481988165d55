//! Assignments: claiming, progress, completion with a handoff, the active-assignment
//! limit, leases, and concurrent claims.

mod common;
use common::workflow::*;
use common::*;
use serde_json::json;

#[test]
fn claim_refusals_then_a_single_claim() {
    let hub = workflow_hub();
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let aid = assignment(&a, &round);
    assert_eq!(claim_refused(&b, &aid), "ASSIGNMENT_NOT_VALID");
    assert_eq!(claim_refused(&a, "nope"), "ASSIGNMENT_NOT_VALID");
    assert_eq!(
        progress_refused(&a, &aid, "in_progress"),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(
        complete_refused(&a, &aid, json!({})),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(claim(&a, &aid)["status"], "claimed");
    assert_eq!(claim_refused(&a, &aid), "ASSIGNMENT_NOT_PENDING");
}

#[test]
fn progress_moves_forward_only_and_review_waits_for_completion() {
    let hub = workflow_hub();
    let (d, a) = (hub.client("disp"), hub.client("alice"));
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let aid = claim_assignment(&a, &round);
    assert_eq!(progress_refused(&a, &aid, "done"), "INVALID_STATUS");
    in_progress(&a, &aid, "half");
    assert_eq!(progress_refused(&a, &aid, "claimed"), "INVALID_TRANSITION");
    assert_eq!(
        review_refused(&d, &round, "approved"),
        "ASSIGNMENTS_NOT_COMPLETE"
    );
}

#[test]
fn completion_leaves_a_handoff_and_tells_the_dispatcher() {
    let hub = workflow_hub();
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let aid = claim_assignment(&a, &round);
    in_progress(&a, &aid, "half");
    assert_eq!(
        complete_refused(&a, &aid, json!("{oops")),
        "COMPLETE_FAILED"
    );
    let done = complete(&a, &aid, feature_handoff());
    let handoff = s(&done["handoff_id"]);
    assert_eq!(done["assignment"]["status"], "completed");
    assert_eq!(
        progress_refused(&a, &aid, "in_progress"),
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
    claim_and_complete(&b, &round);
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
}

/// The reference's documented handoff form sends list fields as JSON-encoded strings:
/// they are stored as lists; "" is an empty list; other text is a one-item list.
#[test]
fn handoff_list_fields_sent_as_json_text_are_lists() {
    let hub = workflow_hub();
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let aid = claim_assignment(&a, &round);
    // handoff_json itself as text, the way the reference's clients send it.
    let handoff = json!({
        "branch": "feat",
        "changed_files": "[\"src/a.py\", \"src/b.py\"]",
        "tests_run": "[\"pytest -q\"]",
        "risks": "none known",
        "next_steps": "",
    })
    .to_string();
    let done = complete(&a, &aid, json!(handoff));
    let id = s(&done["handoff_id"]);
    let h = b.call("handoff_get", json!({"handoff_id": id}))["handoff"].clone();
    assert_eq!(h["changed_files"], json!(["src/a.py", "src/b.py"]), "{h}");
    assert_eq!(h["tests_run"], json!(["pytest -q"]), "{h}");
    assert_eq!(h["risks"], json!(["none known"]), "{h}");
    assert_eq!(h["next_steps"], json!([]), "{h}");
    // An array of non-strings is not a list of files: kept as one item.
    let bid = claim_assignment(&b, &round);
    let done = complete(&b, &bid, json!({"changed_files": "[1, 2]"}));
    let h = b.call("handoff_get", json!({"handoff_id": s(&done["handoff_id"])}))["handoff"].clone();
    assert_eq!(h["changed_files"], json!(["[1, 2]"]), "{h}");
}

#[test]
fn active_assignment_limit_spans_tasks_and_close_cancels() {
    let hub = Hub::start(&["disp", "alice"], "max_simultaneous_assignments: 2\n");
    let (d, a) = (hub.client("disp"), hub.client("alice"));
    let mut ids = Vec::new();
    for t in ["A", "B", "C"] {
        let r = dispatched_round(&hub, t, &[("alice", "g")]);
        ids.push(assignment(&a, &r));
    }
    claim(&a, &ids[0]);
    claim(&a, &ids[1]);
    assert_eq!(claim_refused(&a, &ids[2]), "ACTIVE_ASSIGNMENT_LIMIT");
    // Closing task A cancels alice's claim there and frees her slot.
    assert_eq!(hubctl_ok(&hub, &["close", "A"]).trim(), "Task A: CLOSED");
    assert!(hubctl_err(&hub, &["close", "A"]).contains("TASK_CLOSED"));
    assert_eq!(complete_refused(&a, &ids[0], json!({})), "TASK_CLOSED");
    assert_eq!(
        plan_refused(&d, "A", plan(&[("alice", "g")])),
        "TASK_CLOSED"
    );
    claim(&a, &ids[2]);
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
    let a = hub.client("alice");
    let r = dispatched_round(&hub, "L", &[("alice", "g")]);
    let id = claim_assignment(&a, &r);
    a.call(
        "message_ack",
        json!({"message_id": a.call("inbox_pull", json!({}))["messages"][0]["id"].clone()}),
    );
    // The expiry notice wakes this long-poll.
    let note = a.call("inbox_pull", json!({"wait_seconds": 20}))["messages"][0].clone();
    assert!(s(&note["subject"]).contains("lease"), "{note}");
    assert_eq!(
        complete_refused(&a, &id, json!({})),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(claim(&a, &id)["status"], "claimed");
}

#[test]
fn twenty_agents_race_for_one_assignment() {
    let names: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("disp");
    let hub = Hub::start(&all, "");
    let round = dispatched_round(&hub, "R", &[("r00", "g")]);
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
    let round = dispatched_round(&hub, "R", &[("alice", "g")]);
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
