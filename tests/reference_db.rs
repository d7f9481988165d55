//! An existing agent-hub-mcp 0.2.1 database opens as is: `hubctl serve --db` on the
//! database the reference itself wrote (tests/fixtures/agent-hub-mcp-0.2.1.db, made by
//! tests/fixtures/make_reference_db.py, which the tests do not run) converts it in
//! place after a backup beside it, and serves its agents' inboxes, tasks, rounds,
//! handoffs and locks.
//!
//! What the fixture holds (agents disp, alice, bob):
//! - T-1 "Parser": round 1 (alice code, bob tests) completed by both, alice's handoff
//!   with JSON-text list fields, then changes requested (the reference leaves round 1
//!   `awaiting_review`); round 2 approved, alice's assignment claimed, bob's pending.
//! - T-2 a draft; T-3 planned (bob) and rejected "too vague"; T-4 approved and
//!   completed; T-5 approved, claimed by bob, then closed.
//! - Messages: disp→alice "welcome" (dedupe_key welcome-alice, unread), disp→alice
//!   "ping" (acked), alice→disp "question" (acked), bob→alice "fyi" (unread), disp's
//!   broadcasts "standup at 10" (unread) and "lunch at 12" (acked by bob, which the
//!   reference made read for everybody).
//! - Locks: branch:main held by alice for ten years; file_group:docs lapsed.

mod common;
use common::workflow::{hubctl_ok, s};
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/agent-hub-mcp-0.2.1.db"
);
const BACKUP: &str = "old-hub.db.agent-hub-mcp-0.2.1.bak";

/// A hub on a copy of the fixture, named old-hub.db in its config dir.
fn start(dir: tempfile::TempDir) -> Hub {
    let db = dir.path().join("old-hub.db");
    let mut args = serve_args(dir.path());
    let last = args.len() - 1;
    args[last] = db.into();
    let running = spawn(dir.path(), &args, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    Hub::from_running(dir, running)
}

fn fresh_copy() -> tempfile::TempDir {
    let dir = config_dir(&["disp", "alice", "bob"], "");
    std::fs::copy(FIXTURE, dir.path().join("old-hub.db")).expect("copy fixture");
    dir
}

/// Subjects of `agent`'s unread messages, oldest first, with their `to_agent`.
fn inbox(hub: &Hub, agent: &str) -> Vec<(String, Value)> {
    let v = hub.client(agent).call("inbox_pull", json!({"limit": 50}));
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (s(&m["subject"]), m["to_agent"].clone()))
        .collect()
}

/// The tasks the operator sees, by id: (status, rounds as (number, status)).
fn task(hub: &Hub, id: &str) -> (String, Vec<(i64, String)>) {
    let v = hub.operator_get(&format!("/operator/tasks/{id}"));
    let rounds = v["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| {
            (
                r["round"]["round_number"].as_i64().unwrap_or(0),
                s(&r["round"]["status"]),
            )
        })
        .collect();
    (s(&v["task"]["status"]), rounds)
}

fn rounds(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|(n, st)| (*n, st.to_string())).collect()
}

fn backups(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".bak"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_reference_database_is_converted_and_served() {
    let hub = start(fresh_copy());
    assert_eq!(backups(&hub.path()), [BACKUP]);
    let backup = std::fs::read(hub.path().join(BACKUP)).expect("backup");
    assert!(
        backup.starts_with(b"SQLite format 3\0"),
        "a SQLite database"
    );

    // Inboxes keep their read state; a broadcast reached every agent but its sender.
    let null = Value::Null;
    assert_eq!(
        inbox(&hub, "alice"),
        [
            ("welcome".to_string(), json!("alice")),
            ("standup at 10".to_string(), null.clone()),
            ("fyi".to_string(), json!("alice")),
        ]
    );
    assert_eq!(inbox(&hub, "bob"), [("standup at 10".to_string(), null)]);
    assert!(inbox(&hub, "disp").is_empty());
    // Dedupe keys carry over, per sender.
    let d = hub.client("disp");
    let (dup, _) = d.call_raw(
        "message_send",
        json!({"to_agent": "alice", "subject": "again", "body": "x", "dedupe_key": "welcome-alice"}),
    );
    assert_eq!(dup["error"], "DUPLICATE_MESSAGE", "{dup}");

    // Tasks and rounds, with the reference's status strings.
    assert_eq!(
        task(&hub, "T-1"),
        (
            "dispatched".to_string(),
            rounds(&[(1, "awaiting_review"), (2, "in_progress")])
        )
    );
    assert_eq!(task(&hub, "T-2"), ("draft".to_string(), vec![]));
    assert_eq!(
        task(&hub, "T-3"),
        (
            "awaiting_operator_approval".to_string(),
            rounds(&[(1, "awaiting_operator_approval")])
        )
    );
    assert_eq!(
        task(&hub, "T-4"),
        ("completed".to_string(), rounds(&[(1, "completed")]))
    );
    assert_eq!(
        task(&hub, "T-5"),
        ("closed".to_string(), rounds(&[(1, "cancelled")]))
    );
    let list = hubctl_ok(&hub, &["list-rounds", "T-1"]);
    assert!(list.contains("awaiting_review"), "{list}");

    // Assignments and the handoff, its JSON-text list fields now lists.
    let a = hub.client("alice");
    let mine = a.call("assignment_list", json!({}))["assignments"].clone();
    let mine = mine.as_array().expect("assignments");
    // Newest first: round 2's claim, then round 1's completed assignment.
    let status_of = |i: usize| s(&mine[i]["status"]);
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(
        (status_of(0), status_of(1)),
        ("claimed".into(), "completed".into())
    );
    let h = a.call(
        "handoff_get",
        json!({"handoff_id": s(&mine[1]["handoff_id"])}),
    )["handoff"]
        .clone();
    assert_eq!(
        h["changed_files"],
        json!(["src/parser.py", "src/ast.py"]),
        "{h}"
    );
    assert_eq!(h["tests_run"], json!(["pytest -q"]), "{h}");
    assert_eq!(h["risks"], json!(["none known"]), "{h}");
    assert_eq!(h["next_steps"], json!([]), "{h}");

    // Locks: alice's is held (and fenced), the lapsed one is free again.
    let b = hub.client("bob");
    let key = json!({"lock_key": "branch:main", "resource_type": "branch"});
    assert_eq!(b.refused("lock_acquire", key), "LOCK_CONFLICT");
    let locks = hubctl_ok(&hub, &["--json", "locks"]);
    let locks: Value = serde_json::from_str(&locks).expect("locks JSON");
    let held = &locks["items"][0];
    assert_eq!(
        (s(&held["lock_key"]), s(&held["holder_agent_id"])),
        ("branch:main".into(), "alice".into()),
        "{locks}"
    );
    let docs = b.call(
        "lock_acquire",
        json!({"lock_key": "file_group:docs", "resource_type": "file_group"}),
    );
    assert_eq!(docs["lock"]["fencing_token"], 2, "{docs}");

    // The work goes on: bob claims round 2, the dispatcher approves round 1 (the
    // task stays dispatched: round 2 is open) and revises T-3's rejected plan.
    let bobs = b.call("assignment_list", json!({}))["assignments"].clone();
    let pending = bobs
        .as_array()
        .expect("assignments")
        .iter()
        .find(|x| x["status"] == "pending" && x["task_id"] == "T-1")
        .unwrap_or_else(|| panic!("bob's round 2 assignment: {bobs}"));
    b.call(
        "assignment_claim",
        json!({"assignment_id": s(&pending["id"])}),
    );
    let round1 = s(&mine[1]["round_id"]);
    let r = d.call(
        "review_submit",
        json!({"round_id": round1, "verdict": "approved"}),
    );
    assert_eq!(r["task_status"], "dispatched", "{r}");
    let revised = d.call(
        "round_plan_submit",
        json!({"task_id": "T-3", "plan_json": {"assignments": [{"agent_id": "bob", "goal": "lex it"}]}}),
    );
    assert_eq!(revised["round_number"], 1, "{revised}");

    // A restart opens the converted database as ours: no second backup.
    let mut hub = hub;
    hub.kill9();
    let dir = std::mem::replace(&mut hub.dir, tempfile::tempdir().expect("temp dir"));
    drop(hub);
    let hub = start(dir);
    assert_eq!(backups(&hub.path()), [BACKUP]);
    assert_eq!(
        task(&hub, "T-1"),
        (
            "dispatched".to_string(),
            rounds(&[(1, "completed"), (2, "in_progress")])
        )
    );
    assert_eq!(inbox(&hub, "bob")[0].0, "standup at 10");
}
