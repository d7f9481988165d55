//! The dashboard in a real browser (headless Chromium over WebDriver): log in, see
//! a round appear live while an agent submits its plan, approve it, and watch the
//! task page follow the assignees' claims and messages without a reload. Saves
//! screenshots of the overview, a task page and an agent page under target/ to look
//! at. Skips, saying why, where Chromium or chromedriver is not installed.

mod common;
use common::webdriver::{unavailable, Browserd};
use common::workflow::*;
use common::Hub;
use serde_json::json;
use std::path::PathBuf;

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
}

#[test]
fn an_operator_approves_a_round_that_appeared_live() {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return;
    }
    let hub = workflow_hub();
    let web = Browserd::start();
    let ui = format!("{}/ui", hub.base);

    // The dashboard sends the browser to its login form; the operator token opens it.
    web.goto(&ui);
    assert!(web.url().ends_with("/ui/login"), "{}", web.url());
    web.type_into("#token", &hub.operator_token());
    web.click("button[type=submit]");
    web.wait_true("the overview", "return location.pathname === '/ui'");
    web.wait_true(
        "the live stream",
        "return document.getElementById('live').textContent === 'Live'",
    );
    web.run("window.notReloaded = true; return true");

    // A dispatcher plans T-1 meanwhile; the round shows up without a reload.
    let d = hub.client("disp");
    d.call(
        "task_draft_create",
        json!({"task_id": "T-1", "title": "Add the export command", "description": "CSV and JSON"}),
    );
    let round = submit_plan(
        &d,
        "T-1",
        plan(&[
            ("alice", "Write `hubctl export` with CSV and JSON output"),
            ("bob", "Tests for both formats, including a 10k-row table"),
        ]),
    );
    web.wait_true(
        "the round in Awaiting approval",
        &format!("return document.getElementById('approvals').textContent.includes('{round}')"),
    );
    assert_eq!(web.run("return window.notReloaded === true"), json!(true));
    // Agents calling in show up online, a lock appears.
    hub.client("alice")
        .call("lock_acquire", json!({"lock_key": "branch:export", "resource_type": "branch", "resource_id": "export", "ttl_seconds": 3600}));
    web.wait_true(
        "the lock",
        "return document.getElementById('locks').textContent.includes('branch:export')",
    );
    web.fit_page(1280, 800);
    web.screenshot(&shot("dashboard-overview.png"));

    // Approve with a note: the page reports it and the round leaves the queue.
    web.type_into(&format!("#approve-{round}"), "go ahead");
    web.click("button[aria-label='Approve round 1 of task T-1']");
    web.wait_true(
        "the approval notice",
        "return document.querySelector('.notice') !== null && document.querySelector('.notice').textContent.includes('approved')",
    );
    assert!(web
        .run("return document.getElementById('approvals').textContent")
        .as_str()
        .unwrap()
        .contains("No round is waiting"));
    let status = hub.operator_get(&format!("/operator/rounds/{round}"));
    assert_eq!(status["round"]["status"], "dispatched");
    assert_eq!(status["decisions"][0]["note"], "go ahead");

    // The task page follows the assignees live: a claim (with its lease counting
    // down), a completion with its handoff, a message.
    web.goto(&format!("{ui}/tasks/T-1"));
    web.wait_true(
        "the live stream",
        "return document.getElementById('live').textContent === 'Live'",
    );
    web.run("window.notReloaded = true; return true");
    let alice = hub.client("alice");
    let a = claim_assignment(&alice, &round);
    in_progress(&alice, &a, "parser done, writing the CSV side");
    web.wait_true(
        "alice's claim",
        "return document.getElementById('rounds').textContent.includes('parser done')",
    );
    web.wait_true(
        "a lease countdown",
        "var t = document.querySelector('time.countdown'); return t !== null && /^\\d+h \\d\\dm$|^\\d+m \\d\\ds$/.test(t.textContent)",
    );
    let bob = hub.client("bob");
    let b = claim_assignment(&bob, &round);
    complete(
        &bob,
        &b,
        json!({"branch": "export-tests", "commit_hash": "4f2a9c1", "changed_files": ["tests/export.rs"], "tests_run": ["cargo test --test export"], "risks": ["the 10k-row case takes 2 s"], "next_steps": ["review"], "notes": "CSV quoting follows RFC 4180"}),
    );
    alice.call(
        "message_send",
        json!({"to_agent": "disp", "subject": "CSV header row?", "body": "Should the CSV have a header row? <b>not bold</b>", "round_id": round}),
    );
    web.wait_true(
        "bob's handoff and alice's message",
        "var t = document.body.textContent; return t.includes('export-tests') && t.includes('CSV header row?')",
    );
    assert_eq!(web.run("return window.notReloaded === true"), json!(true));
    // The message body is text, not markup.
    assert_eq!(
        web.run("return document.querySelectorAll('#messages b').length"),
        json!(0)
    );
    web.fit_page(1280, 800);
    web.screenshot(&shot("dashboard-task.png"));
    // The dispatcher's inbox: alice's question unread, the hub's notices.
    web.goto(&format!("{ui}/agents/disp"));
    web.wait_true(
        "disp's inbox",
        "return document.getElementById('inbox').textContent.includes('CSV header row?')",
    );
    web.fit_page(1280, 800);
    web.screenshot(&shot("dashboard-agent.png"));
}

/// What a page must not do, whatever agents wrote: grow wider than the window, or
/// have a form field without a label.
const LAYOUT_AND_LABELS: &str = "
    if (document.documentElement.scrollWidth > window.innerWidth) { return 'wider than the window'; }
    var fields = document.querySelectorAll('input:not([type=hidden]), textarea');
    for (var i = 0; i < fields.length; i++) {
        if (fields[i].labels.length === 0) { return 'unlabelled field ' + fields[i].name; }
    }
    return 'ok';";

#[test]
fn long_ids_and_texts_neither_widen_the_page_nor_break_it() {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return;
    }
    let long_id = format!("T-{}", "x".repeat(98));
    let word = "Supercalifragilistic".repeat(20);
    let agent = "a".repeat(64);
    let hub = Hub::start(&["disp", &agent], "");
    let d = hub.client("disp");
    d.call(
        "task_draft_create",
        json!({"task_id": long_id, "title": word[..200].to_string(), "description": word}),
    );
    let round = submit_plan(&d, &long_id, plan(&[(agent.as_str(), word.as_str())]));
    d.call(
        "message_send",
        json!({"to_agent": agent, "subject": word[..300].to_string(), "body": word.repeat(5), "round_id": round}),
    );
    hub.client(&agent).call(
        "lock_acquire",
        json!({"lock_key": word[..200].to_string(), "resource_type": "file_group", "resource_id": word[..200].to_string(), "ttl_seconds": 600}),
    );
    let web = Browserd::start();
    web.goto(&format!("{}/ui/login", hub.base));
    web.type_into("#token", &hub.operator_token());
    web.click("button[type=submit]");
    web.wait_true("the overview", "return location.pathname === '/ui'");
    for path in [
        "/ui".to_string(),
        format!("/ui/tasks/{long_id}"),
        format!("/ui/agents/{agent}"),
        "/ui/locks".to_string(),
        "/ui/audit".to_string(),
        "/ui/tasks".to_string(),
    ] {
        web.goto(&format!("{}{path}", hub.base));
        assert_eq!(web.run(LAYOUT_AND_LABELS), json!("ok"), "{path}");
    }
    web.goto(&format!("{}/ui/tasks/{long_id}", hub.base));
    web.fit_page(1280, 800);
    web.screenshot(&shot("dashboard-long-texts.png"));
}
