//! Bounded state: finished tasks are not loaded at start-up but read on demand, and
//! answer every tool and operator command exactly as they did before the restart.

mod common;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

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
        hub.operator_get("/operator/tasks?all=1"),
        json!(hubctl_err(hub, &["approve", round_c])),
        json!(hubctl_err(hub, &["close", "C"])),
        a.call("hub_status", json!({}))["tasks"].clone(),
    ]
}

/// A finished task unused for `finished_task_idle_secs` leaves memory, and is read
/// back when named again: every answer is the same.
#[test]
fn finished_tasks_leave_memory_and_answer_the_same() {
    let dir = config_dir(&["disp", "alice", "bob"], "finished_task_idle_secs: 1\n");
    let args = serve_args(dir.path());
    let running = spawn(dir.path(), &args, &[("RUST_LOG", "agent_hub=info")]).unwrap();
    let hub = Hub::from_running(dir, running);
    let ids = finished_tasks(&hub);
    let before = observe(&hub, &ids);
    // Both tasks leave memory after this look (which read them, in memory or not),
    // so the next look reads them back from disk.
    let passivated = |task: &str| {
        let log = hub.out.stderr();
        log.lines()
            .filter(|l| l.contains("finished task passivated") && l.contains(task))
            .count()
    };
    let seen = (passivated("task=C"), passivated("task=D"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while passivated("task=C") == seen.0 || passivated("task=D") == seen.1 {
        assert!(std::time::Instant::now() < deadline, "{}", hub.out.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(observe(&hub, &ids), before);
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

/// Every page of `path` (a list of the operator API) with `limit` rows: the ids of
/// all rows, in order. Tasks are created between pages to show that writes going on
/// neither repeat nor skip a row.
fn all_pages(hub: &Hub, path: &str, limit: usize, id: impl Fn(&Value) -> String) -> Vec<String> {
    let d = hub.client("disp");
    let mut ids = Vec::new();
    let mut cursor = String::new();
    for n in 0.. {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = hub.operator_get(&format!("{path}{sep}limit={limit}&cursor={cursor}"));
        // Cursors are URL-safe as they are.
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit, "{page}");
        ids.extend(items.iter().map(&id));
        draft(
            &d,
            &format!("during-{path}-{n}").replace(['/', '?', '='], "-"),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return ids,
        }
    }
    unreachable!()
}

#[test]
fn operator_lists_are_paged_and_open_work_by_default() {
    let hub = Hub::start(&["disp", "alice", "bob"], "");
    finished_tasks(&hub); // D completed, C closed
    let d = hub.client("disp");
    for n in 0..5 {
        draft(&d, &format!("open-{n}"));
    }
    let task_id = |v: &Value| s(&v["task"]["id"]);
    // Open tasks only, newest first, each exactly once over pages of 2.
    let open = all_pages(&hub, "/operator/tasks", 2, task_id);
    assert_eq!(open, ["open-4", "open-3", "open-2", "open-1", "open-0"]);
    // With history: the finished tasks too, and the drafts made while paging come
    // before the first page, so they are not in it.
    let all = all_pages(&hub, "/operator/tasks?all=1", 3, task_id);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "a task was listed twice: {all:?}");
    for want in ["C", "D", "open-0", "open-4"] {
        assert!(all.contains(&want.to_string()), "{want} missing: {all:?}");
    }
    // Rounds: D's and C's are finished, so only with all=1.
    let open_rounds = hub.operator_get("/operator/rounds");
    assert_eq!(open_rounds["items"], json!([]), "{open_rounds}");
    let rounds = all_pages(&hub, "/operator/rounds?all=1", 1, |r| s(&r["task_id"]));
    assert_eq!(rounds, ["C", "D"]);
    // The audit log and the messages, with the same contract.
    let no_dups = |ids: &Vec<String>| {
        let mut d = ids.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), ids.len(), "listed twice: {ids:?}");
    };
    let audit = all_pages(&hub, "/operator/audit", 4, |e| e["id"].to_string());
    assert!(audit.len() >= 8, "{audit:?}");
    no_dups(&audit);
    let of_d = hub.operator_get("/operator/audit?entity_type=task&entity_id=D&limit=1000");
    let of_d = of_d["items"].as_array().unwrap();
    assert!(!of_d.is_empty() && of_d.iter().all(|e| e["entity_id"] == "D"));
    let messages = all_pages(&hub, "/operator/messages", 2, |m| s(&m["id"]));
    assert!(messages.len() > 2, "{messages:?}");
    no_dups(&messages);
    let out = hubctl_ok(&hub, &["audit", "task", "D"]);
    assert!(out.contains("task:D"), "{out}");
    // hubctl prints how to get the next page.
    let out = hubctl_ok(&hub, &["list-tasks", "--limit", "1"]);
    assert!(
        out.contains("more: hubctl list-tasks --limit 1 --cursor "),
        "{out}"
    );
    // Agents and held locks, with the same contract.
    let mut agents = all_pages(&hub, "/operator/agents", 2, |a| s(&a["agent_id"]));
    agents.sort();
    assert_eq!(agents, ["alice", "bob", "disp"]);
    let a = hub.client("alice");
    for key in ["k1", "k2", "k3"] {
        a.call("lock_acquire", json!({"lock_key": key, "ttl_seconds": 600}));
    }
    let short = a.call(
        "lock_acquire",
        json!({"lock_key": "gone", "ttl_seconds": 1}),
    );
    assert_eq!(short["lock"]["lock_key"], "gone", "{short}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut locks = all_pages(&hub, "/operator/locks", 2, |l| s(&l["lock_key"]));
    locks.sort();
    assert_eq!(locks, ["k1", "k2", "k3"], "a lapsed lock is not listed");
    let out = hubctl_ok(&hub, &["locks", "--limit", "1"]);
    assert!(
        out.contains("more: hubctl locks --limit 1 --cursor "),
        "{out}"
    );
    let out = hubctl_ok(&hub, &["agents", "--limit", "1"]);
    assert!(
        out.contains("more: hubctl agents --limit 1 --cursor "),
        "{out}"
    );
    // Bad paging arguments are refused with the reason.
    let out = hubctl_err(&hub, &["list-tasks", "--limit", "5000"]);
    assert!(out.contains("limit"), "{out}");
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=nonsense",
        "cursor=7e",
    ] {
        let r = hub.operator_get_raw(&format!("/operator/tasks?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains("INVALID_ARGUMENT"), "{bad}: {}", r.body);
    }
}

/// The answers about old messages that depend on history: dedupe, reply_to, ack.
fn history_answers(hub: &Hub, first: &str, second_to_last: &str) -> Vec<Value> {
    let (a, b, c) = (hub.client("a"), hub.client("b"), hub.client("c"));
    let send = |cl: &Client, args: Value| {
        let (v, err) = cl.call_raw("message_send", args);
        json!({"err": err, "error": v["error"], "message_id": v["message_id"]})
    };
    vec![
        // The oldest key again: refused with the original id.
        send(
            &a,
            json!({"to_agent": "b", "subject": "again", "body": "x", "dedupe_key": "k0"}),
        ),
        // Replies to an old message by its sender and by its recipient; not by others.
        send(
            &a,
            json!({"to_agent": "b", "subject": "re", "body": "x", "reply_to": first}),
        ),
        send(
            &b,
            json!({"to_agent": "a", "subject": "re", "body": "x", "reply_to": second_to_last}),
        ),
        send(
            &c,
            json!({"to_agent": "a", "subject": "re", "body": "x", "reply_to": first}),
        ),
        // Acks of old, already read messages: accepted by the recipient only.
        b.call(
            "message_ack",
            json!({"message_id": [first, second_to_last]}),
        ),
        json!(c.refused("message_ack", json!({"message_id": first}))),
        json!(a.refused("message_ack", json!({"message_id": first}))),
    ]
}

#[test]
fn old_messages_answer_the_same_from_storage_and_after_a_restart() {
    // Hundreds of sends in a burst: beyond the default send rate, which is not tested here.
    let hub = Hub::start(&["a", "b", "c"], "send_burst: 100000\n");
    let (a, b) = (hub.client("a"), hub.client("b"));
    // More messages than the recent keys an agent keeps in memory, and more bytes
    // than the unread bodies it keeps there (512 KiB).
    let n = 600;
    let body = "x".repeat(1500);
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let args = json!({"to_agent": "b", "subject": format!("m{i}"), "body": body, "dedupe_key": format!("k{i}")});
            s(&a.call("message_send", args)["message_id"])
        })
        .collect();
    // The backlog is pulled in order, bodies and all (the older ones are read back
    // from disk: only the newest unread keep their bodies in memory).
    let mut subjects = Vec::new();
    loop {
        let got = b.call("inbox_pull", json!({"limit": 200}))["messages"].clone();
        let got = got.as_array().unwrap();
        if got.is_empty() {
            break;
        }
        subjects.extend(got.iter().map(|m| {
            assert_eq!(m["body"], body.as_str(), "{m}");
            s(&m["subject"])
        }));
        let ids: Vec<String> = got.iter().map(|m| s(&m["id"])).collect();
        b.call("message_ack", json!({"message_id": ids}));
    }
    let sent: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(subjects, sent);
    let before = history_answers(&hub, &ids[0], &ids[n - 2]);
    assert_eq!(before[0]["error"], "DUPLICATE_MESSAGE");
    assert_eq!(before[0]["message_id"], ids[0].as_str());
    assert_eq!(before[1]["err"], false);
    assert_eq!(before[2]["err"], false);
    assert_eq!(before[3]["error"], "REPLY_TO_NOT_FOUND");
    assert_eq!(before[4]["acked"], json!([]));
    assert_eq!(before[5], "NOT_FOUND");
    assert_eq!(before[6], "NOT_FOUND");

    let hub = hub.restart();
    // The replies were sent again: new ids, same outcome.
    let without_new_ids = |mut list: Vec<Value>| {
        for i in [1, 2] {
            list[i]["message_id"] = Value::Null;
        }
        list
    };
    let after = history_answers(&hub, &ids[0], &ids[n - 2]);
    assert_eq!(without_new_ids(after), without_new_ids(before));
}

/// Retention deletes only what the policy names: read messages, finished tasks and
/// audit events past their age; never an unread message, an open task or a lock.
#[test]
fn prune_removes_only_what_the_policy_names() {
    // 0.00002 days is under 2 s.
    let config = "finished_task_idle_secs: 1\nretention:\n  acked_messages_days: 0.00002\n  terminal_tasks_days: 0.00002\n  audit_days: 0.00002\n";
    let dir = config_dir(&["disp", "alice", "bob"], config);
    let args = serve_args(dir.path());
    let running = spawn(dir.path(), &args, &[("RUST_LOG", "agent_hub=info")]).unwrap();
    let hub = Hub::from_running(dir, running);
    let ids = finished_tasks(&hub); // D completed, C closed
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    draft(&d, "OPEN");
    let read = s(&a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "read", "body": "x"}),
    )["message_id"]);
    b.call("message_ack", json!({"message_id": read}));
    let unread = s(&a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "unread", "body": "x"}),
    )["message_id"]);
    a.call(
        "lock_acquire",
        json!({"lock_key": "held", "ttl_seconds": 600}),
    );
    // Wait until everything is old enough and the finished tasks left memory.
    std::thread::sleep(Duration::from_millis(2500));
    for task in ["task=C", "task=D"] {
        hub.out.wait_stderr(task, Duration::from_secs(10));
    }
    let dry = hubctl_ok(&hub, &["--json", "prune", "--dry-run"]);
    let dry: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["pruned"]["tasks"], 2, "{dry}");
    assert!(dry["pruned"]["messages"].as_u64() >= Some(1), "{dry}");
    assert!(dry["pruned"]["audit_events"].as_u64() > Some(0), "{dry}");
    // A dry run deleted nothing (the list reads storage without loading the tasks:
    // a task in use is left for the next run).
    let listed = hub.operator_get("/operator/tasks?all=1");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let done: Value = serde_json::from_str(&hubctl_ok(&hub, &["--json", "prune"])).unwrap();
    assert_eq!(done["pruned"], dry["pruned"], "{done}");
    // The finished tasks are gone with everything under them; the open one stays.
    assert_eq!(
        hub.operator_get_raw("/operator/tasks/D").status,
        404,
        "D is gone"
    );
    assert_eq!(claim_refused(&a, &ids[1]), "ASSIGNMENT_NOT_VALID");
    assert_eq!(
        a.refused("handoff_get", json!({"handoff_id": ids[2]})),
        "NOT_FOUND"
    );
    assert_eq!(
        hub.operator_get("/operator/tasks/OPEN")["task"]["status"],
        "draft"
    );
    // The unread message is still there for bob; the read one is not.
    let inbox = b.call("inbox_pull", json!({}))["messages"].clone();
    let got: Vec<String> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["id"]))
        .collect();
    assert!(got.contains(&unread), "{inbox}");
    assert!(!got.contains(&read), "{inbox}");
    // hub_status counts what is left.
    assert_eq!(a.call("hub_status", json!({}))["tasks"], 1);
    // The lock is held as before.
    let locks = hub.operator_get("/operator/locks");
    assert_eq!(locks["items"][0]["lock_key"], "held", "{locks}");
    // The file gives its free pages back on request.
    let v: Value = serde_json::from_str(&hubctl_ok(&hub, &["--json", "vacuum"])).unwrap();
    assert!(
        v["bytes_after"].as_u64() <= v["bytes_before"].as_u64(),
        "{v}"
    );
    // Nothing left for the policy now.
    let again: Value =
        serde_json::from_str(&hubctl_ok(&hub, &["--json", "prune", "--dry-run"])).unwrap();
    assert_eq!(again["pruned"]["tasks"], 0, "{again}");
}
