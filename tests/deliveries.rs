//! One agent's deliveries as the operator sees them: `hubctl messages --agent A
//! [--unread]` (GET /operator/messages?agent=A&unread=1).

mod common;
use common::workflow::{hubctl_ok, s};
use common::*;
use serde_json::{json, Value};

fn send(c: &Client, to: &str, subject: &str) -> String {
    let args = json!({"to_agent": to, "subject": subject, "body": "b"});
    s(&c.call("message_send", args)["message_id"])
}

/// Every page of `path` (which has a `?`), `limit` rows at a time.
fn all_pages(hub: &Hub, path: &str, limit: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = hub.operator_get(&format!("{path}&limit={limit}&cursor={cursor}"));
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit, "{page}");
        rows.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return rows,
        }
    }
}

#[test]
fn an_agents_messages_with_read_state_a_page_at_a_time() {
    let hub = Hub::start(&["alice", "bob", "carol"], "");
    let (a, b, c) = (hub.client("alice"), hub.client("bob"), hub.client("carol"));
    let mut to_bob: Vec<String> = (0..5)
        .map(|n| send(&a, "bob", &format!("subj-a{n}")))
        .collect();
    to_bob.push(send(&c, "bob", "c0"));
    send(&a, "carol", "not bob's");
    let broadcast =
        s(&c.call("message_send", json!({"subject": "all", "body": "b"}))["message_id"]);
    to_bob.push(broadcast.clone());
    let read = [to_bob[1].clone(), to_bob[3].clone(), broadcast.clone()];
    b.call("message_ack", json!({"message_id": read}));

    let rows = all_pages(&hub, "/operator/messages?agent=bob", 2);
    let mut listed: Vec<String> = rows.iter().map(|m| s(&m["id"])).collect();
    // Newest first in keyset order on (created_at, id), each delivery once.
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|m| (s(&m["created_at"]), s(&m["id"])))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "{keys:?}");
    listed.sort();
    let mut want = to_bob.clone();
    want.sort();
    assert_eq!(listed, want);
    for m in &rows {
        let id = s(&m["id"]);
        assert_eq!(m["read_at"].is_string(), read.contains(&id), "{m}");
        assert!(
            m["subject"].is_string() && m["from_agent"].is_string(),
            "{m}"
        );
    }
    // Only the unread ones, also a page at a time.
    let mut unread: Vec<String> = all_pages(&hub, "/operator/messages?agent=bob&unread=1", 1)
        .iter()
        .map(|m| s(&m["id"]))
        .collect();
    unread.sort();
    let mut want: Vec<String> = to_bob
        .iter()
        .filter(|id| !read.contains(id))
        .cloned()
        .collect();
    want.sort();
    assert_eq!(unread, want);
    // Carol's own list has only what was delivered to her, her read state unchanged.
    let carol = hub.operator_get("/operator/messages?agent=carol");
    assert_eq!(carol["items"].as_array().unwrap().len(), 1, "{carol}");
    assert!(carol["items"][0]["read_at"].is_null());

    let out = hubctl_ok(&hub, &["messages", "--agent", "bob", "--unread"]);
    assert!(
        out.contains("READ") && out.contains("unread") && out.contains("subj-a0"),
        "{out}"
    );
    assert!(
        !out.contains("subj-a1") && !out.contains("not bob's"),
        "{out}"
    );
    let out = hubctl_ok(&hub, &["messages", "--agent", "bob", "--limit", "3"]);
    assert!(
        out.contains("more: hubctl messages --agent bob --limit 3 --cursor "),
        "{out}"
    );
    let out = hubctl_ok(&hub, &["--json", "messages", "--agent", "bob", "--unread"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 4, "{v}");
    // --unread is about one agent.
    assert!(!hub.hubctl(&["messages", "--unread"]).status.success());
    let r = hub.operator_get_raw("/operator/messages?unread=1");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = hub.operator_get_raw("/operator/messages?agent=nobody");
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error"], "UNKNOWN_AGENT");
}
