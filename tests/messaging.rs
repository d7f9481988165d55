//! Messaging over HTTP: broadcast read state, per-sender dedup, reply_to, limits,
//! long-poll, push on the GET stream, and 1,000 concurrent sends.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};

fn ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn broadcast_read_state_is_per_recipient() {
    let hub = Hub::start(&["alice", "bob", "carol"], "");
    let (a, b, c) = (hub.client("alice"), hub.client("bob"), hub.client("carol"));
    let sent = a.call(
        "message_send",
        json!({"to_agent": "", "subject": "all hands", "body": "hi"}),
    );
    assert_eq!(sent["broadcast"], true);
    assert_eq!(sent["recipients"], json!(["bob", "carol"]));
    let id = sent["message_id"].as_str().unwrap();
    assert!(
        ids(&a.call("inbox_pull", json!({}))).is_empty(),
        "the sender gets no copy"
    );
    assert_eq!(ids(&b.call("inbox_pull", json!({}))), vec![id]);
    // Pulling does not consume: still there until acked.
    assert_eq!(ids(&b.call("inbox_pull", json!({}))), vec![id]);
    let m = &b.call("inbox_pull", json!({}))["messages"][0];
    assert_eq!(
        (
            m["from_agent"].as_str(),
            &m["to_agent"],
            m["is_read"].as_bool()
        ),
        (Some("alice"), &Value::Null, Some(false))
    );
    assert_eq!(
        b.call("message_ack", json!({"message_id": id}))["acked"],
        json!([id])
    );
    assert!(ids(&b.call("inbox_pull", json!({}))).is_empty());
    assert_eq!(
        ids(&c.call("inbox_pull", json!({}))),
        vec![id],
        "bob's ack did not hide it from carol"
    );
    // Acking again is harmless; acking a message that is not yours is refused.
    assert_eq!(
        b.call("message_ack", json!({"message_id": [id]}))["acked"],
        json!([])
    );
    let private = a.call(
        "message_send",
        json!({"to_agent": "carol", "subject": "s", "body": "b"}),
    )["message_id"]
        .clone();
    assert_eq!(
        b.refused("message_ack", json!({"message_id": private})),
        "NOT_FOUND"
    );
    assert_eq!(
        b.refused("message_ack", json!({"message_id": "nope"})),
        "NOT_FOUND"
    );
    // A list is all or nothing.
    assert_eq!(
        c.refused("message_ack", json!({"message_id": [id, "nope"]})),
        "NOT_FOUND"
    );
    assert_eq!(ids(&c.call("inbox_pull", json!({}))).len(), 2);
    assert_eq!(
        c.call("message_ack", json!({"message_id": [id, private]}))["acked"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn dedup_is_per_sender_and_returns_the_original() {
    let hub = Hub::start(&["alice", "bob", "carol"], "");
    let (a, b, c) = (hub.client("alice"), hub.client("bob"), hub.client("carol"));
    let first = a.call(
        "message_send",
        json!({"to_agent": "carol", "subject": "s", "body": "1", "dedupe_key": "job-1"}),
    );
    let (dup, err) = a.call_raw(
        "message_send",
        json!({"to_agent": "carol", "subject": "s", "body": "2", "dedupe_key": "job-1"}),
    );
    assert!(err);
    assert_eq!(
        (dup["error"].as_str(), &dup["message_id"]),
        (Some("DUPLICATE_MESSAGE"), &first["message_id"])
    );
    b.call(
        "message_send",
        json!({"to_agent": "carol", "subject": "s", "body": "3", "dedupe_key": "job-1"}),
    );
    let bodies: Vec<Value> = c.call("inbox_pull", json!({}))["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        vec![json!("1"), json!("3")],
        "delivered once per sender"
    );
}

#[test]
fn validation_errors() {
    let hub = Hub::start(&["alice", "bob"], "");
    let a = hub.client("alice");
    let (v, _) = a.call_raw(
        "message_send",
        json!({"to_agent": "dave", "subject": "s", "body": "b"}),
    );
    assert_eq!(v["error"], "UNKNOWN_AGENT");
    assert!(v["message"].as_str().unwrap().contains("dave"));
    let (v, _) = a.call_raw(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "b", "msg_type": "shout"}),
    );
    assert_eq!(v["error"], "INVALID_ARGUMENT");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("info, question, answer"));
    assert_eq!(
        a.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "x".repeat(301), "body": "b"})
        ),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        a.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "s", "body": "x".repeat(70_000)})
        ),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        a.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "s", "body": "b", "reply_to": "unknown"})
        ),
        "REPLY_TO_NOT_FOUND"
    );
    assert_eq!(
        a.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "s", "body": "b", "round_id": "r-none"})
        ),
        "ROUND_NOT_FOUND"
    );
    assert_eq!(
        a.refused("inbox_pull", json!({"limit": 0})),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        a.refused("inbox_pull", json!({"limit": 201})),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        a.refused("inbox_pull", json!({"wait_seconds": 26})),
        "INVALID_ARGUMENT"
    );
    // reply_to: a message the sender received works; one it never saw does not.
    let b = hub.client("bob");
    let q = b.call(
        "message_send",
        json!({"to_agent": "alice", "subject": "q?", "body": "b", "msg_type": "question"}),
    )["message_id"]
        .clone();
    a.call("message_send", json!({"to_agent": "bob", "subject": "a", "body": "b", "msg_type": "answer", "reply_to": q}));
    let hub3 = Hub::start(&["alice", "bob", "carol"], "");
    let (a3, c3) = (hub3.client("alice"), hub3.client("carol"));
    let private = a3.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "b"}),
    )["message_id"]
        .clone();
    assert_eq!(
        c3.refused(
            "message_send",
            json!({"to_agent": "bob", "subject": "s", "body": "b", "reply_to": private})
        ),
        "REPLY_TO_NOT_FOUND"
    );
}

#[test]
fn long_poll_is_woken_by_a_send_and_times_out_empty() {
    let hub = Hub::start(&["alice", "bob"], "");
    let b = hub.client("bob");
    let url = hub.url.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let a = Client::connect(&url, &token("alice"), "2025-11-25");
        a.call(
            "message_send",
            json!({"to_agent": "bob", "subject": "wake", "body": "up"}),
        )["message_id"]
            .clone()
    });
    // Waiting up to 20 s: only a wake-up can bring the message back in this call.
    let got = b.call("inbox_pull", json!({"wait_seconds": 20}));
    let sent = sender.join().unwrap();
    assert_eq!(got["messages"][0]["id"], sent);
    b.call("message_ack", json!({"message_id": sent}));
    let empty = b.call("inbox_pull", json!({"wait_seconds": 0.3}));
    assert_eq!(empty["count"], 0);
}

#[test]
fn new_messages_are_pushed_on_the_get_stream() {
    let hub = Hub::start(&["alice", "bob"], "sse_keepalive_secs: 1\n");
    let b = hub.client("bob");
    let stream = ureq::get(&hub.url)
        .set("Authorization", &format!("Bearer {}", token("bob")))
        .set("Accept", "text/event-stream")
        .set("Mcp-Session-Id", &b.session)
        .call()
        .unwrap();
    let mut reader = BufReader::new(stream.into_reader());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // the first keep-alive: the stream is open
    let a = hub.client("alice");
    let sent = a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "pushed", "body": "b"}),
    )["message_id"]
        .clone();
    let note = loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            break serde_json::from_str::<Value>(data).unwrap();
        }
    };
    assert_eq!(note["method"], "notifications/resources/updated");
    assert_eq!(note["params"]["uri"], "agent-hub://inbox");
    assert_eq!(note["params"]["_meta"]["agent-hub/message"]["id"], sent);
    assert!(note.get("id").is_none(), "a notification, not a response");
    // The inbox resource shows the same message.
    let read = b.rpc("resources/read", json!({"uri": "agent-hub://inbox"}));
    let text: Value =
        serde_json::from_str(read["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["messages"][0]["id"], sent);
    assert_eq!(
        b.rpc("resources/read", json!({"uri": "agent-hub://other"}))["error"]["code"],
        -32002
    );
}

#[test]
fn thousand_concurrent_sends_from_fifty_agents() {
    let agents: Vec<String> = (0..50).map(|i| format!("a{i:02}")).collect();
    let mut all: Vec<&str> = agents.iter().map(String::as_str).collect();
    all.push("sink");
    let hub = Hub::start(&all, "");
    let threads: Vec<_> = agents
        .iter()
        .map(|agent| {
            let (url, agent) = (hub.url.clone(), agent.clone());
            std::thread::spawn(move || {
                let c = Client::connect(&url, &token(&agent), "2025-11-25");
                (0..20)
                    .map(|i| {
                        let v = c.call("message_send", json!({"to_agent": "sink", "subject": agent, "body": i.to_string(), "dedupe_key": format!("{agent}-{i}")}));
                        v["message_id"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let sent: HashSet<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(sent.len(), 1000);
    let sink = hub.client("sink");
    let mut got: Vec<Value> = Vec::new();
    loop {
        let batch = sink.call("inbox_pull", json!({"limit": 200}));
        let msgs = batch["messages"].as_array().unwrap().clone();
        if msgs.is_empty() {
            break;
        }
        let ids: Vec<Value> = msgs.iter().map(|m| m["id"].clone()).collect();
        sink.call("message_ack", json!({"message_id": ids}));
        got.extend(msgs);
    }
    let got_ids: HashSet<String> = got
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 1000, "no duplicates");
    assert_eq!(got_ids, sent, "nothing lost");
    // Each sender's messages arrived in the order sent.
    let mut last: HashMap<String, i64> = HashMap::new();
    for m in &got {
        let n: i64 = m["body"].as_str().unwrap().parse().unwrap();
        let prev = last.insert(m["subject"].as_str().unwrap().to_string(), n);
        assert!(prev.is_none_or(|p| p < n), "order of {}", m["subject"]);
    }
}

#[test]
fn round_messages_count_against_the_task() {
    let hub = Hub::start(&["disp", "alice"], "max_messages_per_task: 2\n");
    let d = hub.client("disp");
    d.call("task_draft_create", json!({"task_id": "M", "title": "t"}));
    let round = d.call(
        "round_plan_submit",
        json!({"task_id": "M", "plan_json": {"assignments": [{"agent_id": "alice", "goal": "g"}]}}),
    )["round_id"]
        .clone();
    let a = hub.client("alice");
    let msg = json!({"to_agent": "disp", "subject": "s", "body": "b", "round_id": round});
    a.call("message_send", msg.clone());
    // A refused duplicate does not use up the budget.
    let mut dup = msg.clone();
    dup["dedupe_key"] = json!("k");
    a.call("message_send", dup.clone());
    assert_eq!(a.refused("message_send", dup), "DUPLICATE_MESSAGE");
    assert_eq!(a.refused("message_send", msg), "MESSAGE_LIMIT_REACHED");
    // Messages without a round are not limited.
    a.call(
        "message_send",
        json!({"to_agent": "disp", "subject": "s", "body": "b"}),
    );
}

/// Hardening finding 7: an agent with no part in a task sent 40 messages tagged
/// with its round and used up the budget, so the dispatcher's own message failed.
#[test]
fn only_participants_may_send_about_a_tasks_rounds() {
    let hub = Hub::start(
        &["disp", "alice", "mallory"],
        "max_messages_per_task: 3
",
    );
    let d = hub.client("disp");
    d.call("task_draft_create", json!({"task_id": "M", "title": "t"}));
    let round = d.call(
        "round_plan_submit",
        json!({"task_id": "M", "plan_json": {"assignments": [{"agent_id": "alice", "goal": "g"}]}}),
    )["round_id"]
        .clone();
    let m = hub.client("mallory");
    let spam = json!({"to_agent": "disp", "subject": "s", "body": "b", "round_id": round});
    for _ in 0..5 {
        assert_eq!(
            m.refused("message_send", spam.clone()),
            "NOT_TASK_PARTICIPANT"
        );
    }
    // The budget is untouched: the dispatcher and the assignee use all of it.
    let to = |who: &str| json!({"to_agent": who, "subject": "s", "body": "b", "round_id": round});
    d.call("message_send", to("alice"));
    hub.client("alice").call("message_send", to("disp"));
    d.call("message_send", to("alice"));
    assert_eq!(
        d.refused("message_send", to("alice")),
        "MESSAGE_LIMIT_REACHED"
    );
    // mallory's own messages without a round still go through.
    m.call(
        "message_send",
        json!({"to_agent": "disp", "subject": "s", "body": "b"}),
    );
}

/// Hardening: an answer's size is bounded. `inbox_pull` returns at most
/// `max_pull_bytes` of messages, always at least one, and says when more wait.
#[test]
fn a_pull_is_bounded_in_bytes_and_says_more_are_waiting() {
    let hub = Hub::start(&["alice", "bob"], "max_pull_bytes: 4096\n");
    let a = hub.client("alice");
    let b = hub.client("bob");
    let send = |body: String| {
        a.call(
            "message_send",
            json!({"to_agent": "bob", "subject": "s", "body": body}),
        );
    };
    for _ in 0..5 {
        send("x".repeat(1500));
    }
    // Two of about 1.8 KB fit in 4 KiB, a third would not.
    let got = b.call("inbox_pull", json!({"limit": 200}));
    assert_eq!(
        (got["count"].as_u64(), got["more"].as_bool()),
        (Some(2), Some(true)),
        "{got}"
    );
    // `limit` reached with more waiting is `more` too.
    let got = b.call("inbox_pull", json!({"limit": 1}));
    assert_eq!(
        (got["count"].as_u64(), got["more"].as_bool()),
        (Some(1), Some(true))
    );
    let ids: Vec<Value> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    let first = b.call("inbox_pull", json!({"limit": 200}));
    let mut all_ids: Vec<Value> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(all_ids[0], ids[0]);
    all_ids.truncate(2);
    b.call("message_ack", json!({"message_id": all_ids}));
    // Three left, of which two fit; then one, and nothing more waits.
    let got = b.call("inbox_pull", json!({}));
    assert_eq!(
        (got["count"].as_u64(), got["more"].as_bool()),
        (Some(2), Some(true))
    );
    let two: Vec<Value> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    b.call("message_ack", json!({"message_id": two}));
    let got = b.call("inbox_pull", json!({}));
    assert_eq!(
        (got["count"].as_u64(), got["more"].as_bool()),
        (Some(1), Some(false))
    );
    let one = got["messages"][0]["id"].clone();
    b.call("message_ack", json!({"message_id": [one]}));
    // A message bigger than the budget still comes, alone.
    send("y".repeat(20_000));
    send("z".to_string());
    let got = b.call("inbox_pull", json!({}));
    assert_eq!(
        (got["count"].as_u64(), got["more"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        got["messages"][0]["body"].as_str().map(str::len),
        Some(20_000)
    );
}
