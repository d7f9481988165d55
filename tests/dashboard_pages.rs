//! The dashboard's pages and actions over HTTP: what each page shows of the hub,
//! that approve / reject / close / release do what `hubctl` does, that everything
//! agents wrote comes out escaped, and that lists are paged.

mod common;
use common::workflow::*;
use common::*;
use serde_json::json;

/// The round of T-1 that `disp` planned for alice (code) and bob (tests).
fn waiting_round(hub: &Hub) -> String {
    let d = hub.client("disp");
    draft(&d, "T-1");
    submit_plan(&d, "T-1", plan(CODE_AND_TESTS))
}

#[test]
fn the_overview_puts_waiting_rounds_first_then_agents_tasks_locks_and_health() {
    let hub = workflow_hub();
    let b = Browser::logged_in(&hub);
    let empty = b.page("/ui");
    assert!(
        empty.contains("No round is waiting for approval."),
        "{empty}"
    );
    let round = waiting_round(&hub);
    hub.client("alice").call(
        "lock_acquire",
        json!({"lock_key": "branch:main", "ttl_seconds": 600}),
    );
    let page = b.page("/ui");
    let approvals = page
        .find("Awaiting approval (1)")
        .expect("approvals section");
    let agents = page.find("id=\"agents\"").expect("agents section");
    assert!(approvals < agents, "waiting rounds come first");
    for needle in [
        &format!("/ui/rounds/{round}/approve"),
        &format!("/ui/rounds/{round}/reject"),
        "Approve round 1 of task T-1",
        ">code<",
        ">tests<",
        "href=\"/ui/agents/alice\"",
        "s-online",
        "branch:main",
        "Force release lock branch:main held by alice",
        "s-saved",
        "durable",
    ] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    // Tasks by state: one awaiting approval.
    assert!(
        page.contains("awaiting operator approval</span></dt><dd>1</dd>"),
        "{page}"
    );
    assert!(page.contains("data-last-event=\""), "{page}");
}

#[test]
fn approve_and_reject_do_what_hubctl_does_and_report_back() {
    let hub = workflow_hub();
    let round = waiting_round(&hub);
    let b = Browser::logged_in(&hub);
    let csrf = b.csrf();
    let r = b.post(
        &format!("/ui/rounds/{round}/reject"),
        &[
            ("csrf", &csrf),
            ("note", "split the tests"),
            ("back", "/ui"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").unwrap().to_string();
    assert_eq!(back, format!("/ui?done=rejected&id={round}"));
    assert!(b.page(&back).contains("rejected: the dispatcher was told"));
    let status = hub.operator_get(&format!("/operator/rounds/{round}"));
    assert_eq!(status["decisions"][0]["note"], "split the tests");
    assert_eq!(status["round"]["rejected"], true);
    // The dispatcher revises; the operator approves from the task page.
    let d = hub.client("disp");
    submit_plan(&d, "T-1", plan(CODE_AND_TESTS));
    let task_page = b.page("/ui/tasks/T-1");
    assert!(task_page.contains("split the tests"), "decisions shown");
    let r = b.post(
        &format!("/ui/rounds/{round}/approve"),
        &[("csrf", &csrf), ("back", "/ui/tasks/T-1")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/ui/tasks/T-1?done=approved&id={round}").as_str())
    );
    // Its assignments can be claimed now.
    claim_assignment(&hub.client("alice"), &round);
    // A second approve is refused with the hub's reason, as a page.
    let r = b.post(&format!("/ui/rounds/{round}/approve"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.content_type().starts_with("text/html"));
    // Unknown rounds are 404; a `back` to another site goes to the overview.
    let r = b.post("/ui/rounds/nope/approve", &[("csrf", &csrf)]);
    assert_eq!(r.status, 404, "{}", r.body);
    draft(&d, "T-2");
    let other = submit_plan(&d, "T-2", plan(&[("bob", "docs")]));
    let r = b.post(
        &format!("/ui/rounds/{other}/approve"),
        &[("csrf", &csrf), ("back", "//evil.example/ui")],
    );
    assert_eq!(r.status, 303);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/ui?done=approved"));
}

#[test]
fn the_task_page_shows_rounds_assignments_leases_handoffs_reviews_and_messages() {
    let hub = workflow_hub();
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let (alice, bob, d) = (hub.client("alice"), hub.client("bob"), hub.client("disp"));
    let a = claim_assignment(&alice, &round);
    in_progress(&alice, &a, "half way");
    claim_and_complete(&bob, &round);
    alice.call(
        "message_send",
        json!({"to_agent": "disp", "subject": "question on T-1", "body": "which branch?", "round_id": round}),
    );
    let b = Browser::logged_in(&hub);
    let page = b.page("/ui/tasks/T-1");
    for needle in [
        "Round 1",
        "s-dispatched",
        "half way",
        "class=\"countdown",
        "data-deadline=",
        "Handoff from",
        "question on T-1",
        "which branch?",
        "Close this task",
    ] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    complete(&alice, &a, feature_handoff());
    review(&d, &round, "approved");
    let page = b.page("/ui/tasks/T-1");
    for needle in [
        ">feat<",
        ">abc<",
        "src/a.rs",
        "cargo test",
        ">review<",
        "s-completed",
        "Review",
        "s-approved",
    ] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    assert!(!page.contains("Close this task"), "a completed task");
    assert_eq!(b.get("/ui/tasks/NOPE").status, 404);
}

#[test]
fn closing_a_task_from_its_page_cancels_its_work() {
    let hub = workflow_hub();
    dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let b = Browser::logged_in(&hub);
    let csrf = field(&b.page("/ui/tasks/T-1"), "csrf").unwrap();
    let r = b.post(
        "/ui/tasks/T-1/close",
        &[("csrf", &csrf), ("back", "/ui/tasks/T-1")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.page(r.header("location").unwrap());
    assert!(page.contains("Task T-1 closed."), "{page}");
    assert!(
        page.contains("s-closed") && page.contains("s-cancelled"),
        "{page}"
    );
}

#[test]
fn everything_agents_wrote_is_escaped() {
    let hub = workflow_hub();
    let d = hub.client("disp");
    let evil = "<script>alert(1)</script>";
    d.call(
        "task_draft_create",
        json!({"task_id": "T-1", "title": "<b>bold</b>", "description": evil}),
    );
    let round = submit_plan(&d, "T-1", plan(&[("alice", evil)]));
    d.call(
        "message_send",
        json!({"to_agent": "alice", "subject": "<img src=x onerror=alert(2)>", "body": "</pre><script>alert(3)</script>", "round_id": round}),
    );
    hub.client("alice").call(
        "lock_acquire",
        json!({"lock_key": "<i>key</i>", "ttl_seconds": 600}),
    );
    let b = Browser::logged_in(&hub);
    for path in [
        "/ui",
        "/ui/tasks/T-1",
        "/ui/agents/disp",
        "/ui/locks",
        "/ui/tasks",
    ] {
        let page = b.page(path);
        for raw in ["<script>alert", "<img src=x", "<b>bold", "<i>key"] {
            assert!(!page.contains(raw), "{path} has {raw} unescaped: {page}");
        }
    }
    let task = b.page("/ui/tasks/T-1");
    assert!(
        task.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{task}"
    );
    assert!(
        task.contains("&lt;/pre&gt;&lt;script&gt;alert(3)"),
        "{task}"
    );
    assert!(
        task.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{task}"
    );
    assert!(task.contains("&lt;b&gt;bold&lt;/b&gt;"), "{task}");
    assert!(b.page("/ui/locks").contains("&lt;i&gt;key&lt;/i&gt;"));
}

#[test]
fn the_task_list_is_paged() {
    let hub = workflow_hub();
    let d = hub.client("disp");
    for n in 0..51 {
        draft(&d, &format!("T-{n:02}"));
    }
    let b = Browser::logged_in(&hub);
    let first = b.page("/ui/tasks");
    assert!(first.contains("/ui/tasks/T-50") && !first.contains("/ui/tasks/T-00\""));
    let next = link(&first, "cursor=").expect("older");
    let second = b.page(&next);
    assert!(second.contains("/ui/tasks/T-00") && !second.contains("/ui/tasks/T-50"));
    assert!(link(&second, "cursor=").is_none(), "the last page");
}

#[test]
fn locks_are_listed_and_force_released() {
    let hub = workflow_hub();
    let alice = hub.client("alice");
    alice.call(
        "lock_acquire",
        json!({"lock_key": "repo/main file", "resource_type": "branch", "resource_id": "main", "ttl_seconds": 600}),
    );
    let b = Browser::logged_in(&hub);
    let page = b.page("/ui/locks");
    for needle in [
        "repo/main file",
        "href=\"/ui/agents/alice\"",
        "branch",
        "data-deadline",
    ] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    let csrf = field(&page, "csrf").unwrap();
    let r = b.post(
        "/ui/locks/release",
        &[
            ("csrf", &csrf),
            ("key", "repo/main file"),
            ("back", "/ui/locks"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.page(r.header("location").unwrap());
    assert!(page.contains("Lock repo/main file released."), "{page}");
    assert!(page.contains("No locks are held."), "{page}");
    let audit = hub.operator_get("/operator/audit?event_type=lock_force_released");
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    let r = b.post("/ui/locks/release", &[("csrf", &csrf), ("key", "gone")]);
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn the_audit_page_filters_by_task_agent_kind_and_time() {
    let hub = workflow_hub();
    let round = waiting_round(&hub);
    hubctl_ok(&hub, &["reject", &round, "no"]);
    let d = hub.client("disp");
    draft(&d, "T-2");
    let other = submit_plan(&d, "T-2", plan(&[("bob", "docs")]));
    hubctl_ok(&hub, &["approve", &other]);
    let b = Browser::logged_in(&hub);
    let all = b.page("/ui/audit");
    assert!(
        all.contains("round_rejected") && all.contains("round_approved"),
        "{all}"
    );
    let rejected = b.page("/ui/audit?kind=round_rejected");
    assert!(rejected.contains("round_rejected") && !rejected.contains(">round_approved<"));
    let t2 = b.page("/ui/audit?task=T-2");
    assert!(
        t2.contains("/ui/tasks/T-2") && !t2.contains("/ui/tasks/T-1\""),
        "{t2}"
    );
    let by_operator = b.page("/ui/audit?agent=operator");
    assert!(
        !by_operator.contains(">round_plan_submitted<"),
        "{by_operator}"
    );
    assert!(by_operator.contains("round_approved"));
    assert!(b.page("/ui/audit?since=1h").contains("round_approved"));
    assert!(b
        .page("/ui/audit?since=2099-01-01")
        .contains("No events match."));
    let bad = b.get("/ui/audit?since=yesterday");
    assert_eq!(bad.status, 400, "{}", bad.body);
    // The filters stay in the form and in the paging links.
    assert!(rejected.contains("value=\"round_rejected\""));
}
