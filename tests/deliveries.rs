//! One agent's deliveries as the operator sees and removes them: `hubctl messages
//! --agent A [--unread]` (GET /operator/messages?agent=A&unread=1) and `hubctl
//! purge-messages --agent A [--from B]` (POST /operator/messages/purge).

mod common;
use common::workflow::{hubctl_err, hubctl_ok, s};
use common::*;
use serde_json::{json, Value};

fn send(c: &Client, to: &str, subject: &str) -> String {
    send_keyed(c, to, subject, None)
}

fn send_keyed(c: &Client, to: &str, subject: &str, key: Option<&str>) -> String {
    let mut args = json!({"to_agent": to, "subject": subject, "body": "b"});
    if let Some(k) = key {
        args["dedupe_key"] = json!(k);
    }
    s(&c.call("message_send", args)["message_id"])
}

/// Ids of `c`'s unread messages (oldest first), without acking them.
fn pulled(c: &Client) -> Vec<String> {
    let v = c.call("inbox_pull", json!({"limit": 200}));
    ids(&v["messages"])
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| s(&m["id"]))
        .collect()
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

fn operator_post(hub: &Hub, path: &str, body: &Value) -> Resp {
    request(
        "POST",
        &format!("{}{path}", hub.base),
        &[
            ("Authorization", &format!("Bearer {}", hub.operator_token())),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
}

/// Unread messages over all inboxes, as `hubctl hub` shows them.
fn inbox_unread(hub: &Hub) -> u64 {
    hub.operator_get("/operator/hub")["inbox_unread"]
        .as_u64()
        .unwrap()
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

#[test]
fn purge_removes_deliveries_frees_the_inbox_and_keeps_dedupe_keys() {
    let hub = Hub::start(
        &["alice", "bob", "carol", "dave"],
        "max_inbox_messages: 3\n",
    );
    let (a, b, c) = (hub.client("alice"), hub.client("bob"), hub.client("carol"));
    let a1 = send_keyed(&a, "bob", "a1", Some("k1"));
    let a2 = send(&a, "bob", "a2");
    let c1 = send(&c, "bob", "c1");
    let to_dave = send(&a, "dave", "for dave");
    b.call("message_ack", json!({"message_id": a2}));
    let a3 = send(&a, "bob", "a3");
    // bob holds 3 unread messages (a1, c1, a3): full.
    assert_eq!(
        a.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "x", "body": "b"})
        ),
        "INBOX_FULL"
    );
    assert_eq!(inbox_unread(&hub), 4);

    // alice's deliveries to bob go, read (a2) and unread (a1, a3); carol's stay.
    let out = hubctl_ok(
        &hub,
        &["purge-messages", "--agent", "bob", "--from", "alice"],
    );
    assert_eq!(out.trim(), "purged 3 deliveries to bob from alice");
    assert_eq!(pulled(&b), [c1.as_str()]);
    let listed = hub.operator_get("/operator/messages?agent=bob");
    assert_eq!(ids(&listed["items"]), [c1.as_str()]);
    assert_eq!(inbox_unread(&hub), 2, "bob's quota counts c1 only");
    // A purged message can be neither acked nor replied to by bob.
    assert_eq!(
        b.refused("message_ack", json!({"message_id": a1})),
        "NOT_FOUND"
    );
    assert_eq!(
        b.refused(
            "message_send",
            json!({"to_agent": "alice", "subject": "re", "body": "b", "reply_to": a1})
        ),
        "REPLY_TO_NOT_FOUND"
    );
    // bob can receive again, and alice's dedupe key is still hers.
    send(&a, "bob", "a4");
    let (dup, is_error) = a.call_raw(
        "message_send",
        json!({"to_agent": "bob", "subject": "again", "body": "b", "dedupe_key": "k1"}),
    );
    assert!(is_error, "{dup}");
    assert_eq!(dup["error"], "DUPLICATE_MESSAGE");
    assert_eq!(dup["message_id"], json!(a1));
    // The messages themselves stay in the log.
    let log = hub.operator_get("/operator/messages?limit=100");
    for id in [&a1, &a2, &a3] {
        assert!(ids(&log["items"]).contains(id), "{id} kept: {log}");
    }

    // Everything of bob's, over the API.
    let r = operator_post(&hub, "/operator/messages/purge", &json!({"agent": "bob"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!((v["purged"].as_u64(), &v["from"]), (Some(2), &Value::Null));
    assert!(pulled(&b).is_empty());
    assert_eq!(inbox_unread(&hub), 1, "dave's message only");
    assert_eq!(
        hub.client("dave").call("inbox_pull", json!({}))["messages"][0]["id"],
        json!(to_dave)
    );
    let out = hubctl_ok(&hub, &["purge-messages", "--agent", "bob"]);
    assert_eq!(out.trim(), "purged 0 deliveries to bob");

    // One audit record per purge, with the sender and the count.
    let audit = hub.operator_get("/operator/audit?entity_type=agent&entity_id=bob");
    let events: Vec<(Value, Value, Value)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(
                (&e["event_type"], &e["actor"]),
                (&json!("messages_purged"), &json!("operator"))
            );
            (
                e["payload"]["from"].clone(),
                e["payload"]["count"].clone(),
                e["entity_type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (Value::Null, json!(0), json!("agent")),
            (Value::Null, json!(2), json!("agent")),
            (json!("alice"), json!(3), json!("agent")),
        ],
        "{audit}"
    );

    // After a restart: still purged, the dedupe key still found, a4 sent after the
    // first purge gone with the second.
    let hub = hub.restart();
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    assert!(pulled(&b).is_empty());
    let listed = hub.operator_get("/operator/messages?agent=bob");
    assert_eq!(listed["items"], json!([]), "{listed}");
    assert_eq!(
        a.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "again", "body": "b", "dedupe_key": "k1"})
        ),
        "DUPLICATE_MESSAGE"
    );
    assert!(!ids(&hub.operator_get("/operator/messages?limit=100")["items"]).is_empty());
    let a5 = send(&a, "bob", "a5");
    assert_eq!(pulled(&b), [a5]);
    assert_eq!(inbox_unread(&hub), 2);
}

#[test]
fn a_purged_message_never_reaches_a_long_poll() {
    let hub = Hub::start(&["alice", "bob", "carol"], "");
    let (a, c) = (hub.client("alice"), hub.client("carol"));
    let long_poll = || {
        let url = hub.url.clone();
        std::thread::spawn(move || {
            let b = Client::connect(&url, &token("bob"), LATEST);
            b.call("inbox_pull", json!({"wait_seconds": 20}))
        })
    };
    // Purged before the pull: the pull finds nothing and waits for a new message.
    send(&a, "bob", "purged");
    hubctl_ok(&hub, &["purge-messages", "--agent", "bob"]);
    let poll = long_poll();
    let fresh = send(&c, "bob", "after the purge");
    assert_eq!(ids(&poll.join().unwrap()["messages"]), [fresh.as_str()]);
    hub.client("bob")
        .call("message_ack", json!({"message_id": fresh}));

    // A pull parked on the empty inbox during a purge is not woken by it, and gets
    // the next message. (Whether it parked before the purge or after, the answer
    // must be the same: the wait below only makes the first case likely.)
    let poll = long_poll();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = hubctl_ok(
        &hub,
        &["purge-messages", "--agent", "bob", "--from", "carol"],
    );
    assert_eq!(out.trim(), "purged 1 delivery to bob from carol");
    let next = send(&a, "bob", "next");
    assert_eq!(ids(&poll.join().unwrap()["messages"]), [next]);
}

#[test]
fn purging_an_unknown_agent_is_refused_clearly() {
    let hub = Hub::start(&["alice", "bob"], "");
    let err = hubctl_err(&hub, &["purge-messages", "--agent", "nobody"]);
    assert!(
        err.contains("UNKNOWN_AGENT") && err.contains("nobody"),
        "{err}"
    );
    let r = operator_post(
        &hub,
        "/operator/messages/purge",
        &json!({"agent": "nobody"}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    for bad in [
        json!({"from": "alice"}),
        json!({"agent": "bob", "from": ""}),
        json!({"agent": "bob", "x": 1}),
    ] {
        let r = operator_post(&hub, "/operator/messages/purge", &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"], "INVALID_ARGUMENT");
    }
    // Agent tokens cannot purge.
    let r = request(
        "POST",
        &format!("{}/operator/messages/purge", hub.base),
        &[("Authorization", &bearer("alice"))],
        &json!({"agent": "bob"}).to_string(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}
