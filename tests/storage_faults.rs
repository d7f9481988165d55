//! Storage faults heal by themselves (hardening findings 2, 5 and 8): a failed
//! commit refuses writes in either durability mode with 503 + Retry-After, reads go
//! on from what is on disk, and writes resume once storage takes them again, with
//! nothing unsaved ever shown or written. A fault is made the way a full disk fails
//! writes: SQLite triggers that abort inserts (the probe write included).

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const FULL: &str = "CREATE TRIGGER full_messages BEFORE INSERT ON messages \
                      BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END; \
                    CREATE TRIGGER full_meta BEFORE INSERT ON hub_meta \
                      BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;";
const FREED: &str = "DROP TRIGGER full_messages; DROP TRIGGER full_meta;";

fn db(hub: &Hub, sql: &str) {
    rusqlite::Connection::open(hub.path().join("hub.db"))
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn send(c: &Client, subject: &str) -> Resp {
    c.post_json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "message_send", "arguments": {"to_agent": "bob", "subject": subject, "body": "b"}}}))
}

fn readyz(hub: &Hub) -> Resp {
    request("GET", &format!("{}/readyz", hub.base), &[], "")
}

/// The subjects of `c`'s unread messages; `None` for a 503 (a call that met the
/// moment the live state was being rebuilt: clients retry those).
fn try_subjects(c: &Client) -> Option<Vec<String>> {
    let r = c.post_json(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "inbox_pull", "arguments": {"limit": 200}}}));
    if r.status == 503 {
        return None;
    }
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    Some(
        v["result"]["structuredContent"]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|m| m["subject"].as_str().unwrap().to_string())
            .collect(),
    )
}

fn subjects(c: &Client) -> Vec<String> {
    wait_for(Duration::from_secs(5), || try_subjects(c)).expect("served within 5 s")
}

fn faults_heal(config: &str, durable: bool) {
    let mut hub = Hub::start(&["alice", "bob"], config);
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    // The operator watches the event stream throughout.
    let auth = format!("Bearer {}", hub.operator_token());
    let watch = SseStream::open(
        &format!("{}/operator/events", hub.base),
        &[("Authorization", auth.as_str())],
    )
    .expect("event stream");
    assert_eq!(send(&a, "before").status, 200);
    // An operator read waits until everything queued is written (fast mode answers
    // before that): "before" is on disk before the disk "fills".
    hub.operator_get("/operator/messages");
    db(&hub, FULL);
    let r = send(&a, "lost");
    if durable {
        // Refused, never acknowledged.
        assert_eq!(r.status, 503, "{}", r.body);
    } else {
        // Fast mode answers before the commit, so this one may be acknowledged and
        // lost (that is what fast mode trades); once the failure is known, no
        // write is acknowledged any more.
        let known = wait_for(Duration::from_secs(5), || {
            (readyz(&hub).status == 503).then_some(())
        });
        assert!(known.is_some(), "the fault was not noticed");
    }
    // 503, Retry-After, JSON-RPC -32000.
    let r = send(&a, "refused");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("5"));
    let v: Value = r.json();
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Store unavailable"),
        "{v}"
    );
    // /readyz says why.
    let ready = readyz(&hub);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.json()["reason"]
        .as_str()
        .unwrap()
        .starts_with("writes refused"));
    assert_eq!(
        request("GET", &format!("{}/healthz", hub.base), &[], "").status,
        200
    );
    // Reads go on, and show only what is on disk (the rebuild drops the rest).
    let shown = wait_for(Duration::from_secs(5), || {
        try_subjects(&b).filter(|s| s == &["before"])
    });
    assert!(
        shown.is_some(),
        "unsaved messages served: {:?}",
        subjects(&b)
    );
    // Space is freed: writes resume by themselves, without a restart.
    db(&hub, FREED);
    let resumed = wait_for(Duration::from_secs(15), || {
        (send(&a, "after").status == 200).then_some(())
    });
    assert!(resumed.is_some(), "writes did not resume");
    assert_eq!(readyz(&hub).status, 200);
    assert_eq!(subjects(&b), ["before", "after"]);
    // The fault and the heal were on the operator's event stream.
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let line = watch
            .next_line(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("events so far: {kinds:?}"));
        if let Some(kind) = line
            .strip_prefix("event: ")
            .filter(|k| k.starts_with("store_"))
        {
            kinds.push(kind.to_string());
        }
    }
    assert_eq!(kinds, ["store_fault", "store_healed"]);
    // Everything acknowledged is on disk, nothing refused is.
    hub = hub.restart();
    assert_eq!(subjects(&hub.client("bob")), ["before", "after"]);
}

#[test]
fn a_storage_fault_heals_in_durable_mode() {
    faults_heal("", true);
}

#[test]
fn a_storage_fault_heals_in_fast_mode() {
    faults_heal("durability: fast\n", false);
}

/// Finding 8: writes were acknowledged after the database was deleted under the
/// server, and nothing was saved. Now the deletion is noticed before the next
/// commit: writes are refused until a restart, what the server held is saved beside
/// the lost file, and no new empty database appears.
#[test]
fn a_deleted_database_refuses_writes_and_is_saved() {
    let hub = Hub::start(&["alice", "bob"], "");
    let a = hub.client("alice");
    assert_eq!(send(&a, "kept").status, 200);
    let db = hub.path().join("hub.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let r = send(&a, "after");
    assert_eq!(r.status, 503, "{}", r.body);
    let ready = readyz(&hub).json();
    let reason = ready["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("was deleted") && reason.contains("restart"),
        "{ready}"
    );
    // Still refused later: it does not "heal" into a new database.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(send(&a, "later").status, 503);
    assert!(!db.exists(), "a new empty database was created");
    let saved: Vec<_> = std::fs::read_dir(hub.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hub.db.recovered-")
        })
        .collect();
    assert_eq!(saved.len(), 1, "{reason}");
    let kept: i64 = rusqlite::Connection::open(saved[0].path())
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE subject = 'kept'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}
