//! The dashboard's agent page: presence, the inbox (unread first, with read state),
//! assignments and sent messages a page at a time, and the purge of messages sent
//! by mistake.

mod common;
use common::workflow::*;
use common::*;
use serde_json::json;

#[test]
fn the_agent_page_shows_presence_assignments_and_sent_messages_a_page_at_a_time() {
    let hub = workflow_hub();
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let alice = hub.client("alice");
    claim_assignment(&alice, &round);
    for n in 0..27 {
        alice.call(
            "message_send",
            json!({"to_agent": "bob", "subject": format!("note {n:02}"), "body": "b"}),
        );
    }
    let b = Browser::logged_in(&hub);
    let page = b.page("/ui/agents/alice");
    for needle in [
        "s-online",
        "Active assignments",
        "T-1",
        "s-claimed",
        "note 26",
        "note 02",
    ] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    assert!(!page.contains("note 01"), "25 a page: {page}");
    let next = link(&page, "sent=").expect("a link to older messages");
    let older = b.page(&next);
    assert!(
        older.contains("note 01") && older.contains("note 00"),
        "{older}"
    );
    assert!(!older.contains("note 26"));
    assert_eq!(b.get("/ui/agents/nobody").status, 404);
    assert_eq!(b.get("/ui/agents/alice?sent=zz").status, 400);
}

#[test]
fn the_inbox_shows_unread_first_and_the_operator_purges_one_senders_messages() {
    let hub = Hub::start(&["alice", "bob", "carol"], "");
    let (alice, bob, carol) = (hub.client("alice"), hub.client("bob"), hub.client("carol"));
    let send = |from: &Client, subject: &str| {
        s(&from.call(
            "message_send",
            json!({"to_agent": "alice", "subject": subject, "body": format!("body of {subject}")}),
        )["message_id"])
    };
    let first = send(&bob, "bob one");
    send(&bob, "bob two (by mistake)");
    send(&carol, "carol one");
    alice.call("message_ack", json!({"message_id": first}));
    let b = Browser::logged_in(&hub);
    let page = b.page("/ui/agents/alice");
    let unread_at = page.find(">Unread<").expect("unread section");
    let all_at = page.find("All deliveries").expect("all section");
    let unread = &page[unread_at..all_at];
    assert!(unread.contains("bob two (by mistake)") && unread.contains("carol one"));
    assert!(!unread.contains("bob one"), "read: {unread}");
    assert!(page[all_at..].contains("bob one") && page[all_at..].contains(" · read "));
    assert!(page.contains("Purge messages to alice"));

    // Purging needs the session's token like every action.
    let r = b.post("/ui/agents/alice/purge", &[("from", "bob")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let csrf = field(&page, "csrf").unwrap();
    let r = b.post(
        "/ui/agents/alice/purge",
        &[
            ("csrf", &csrf),
            ("from", "bob"),
            ("back", "/ui/agents/alice"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.page(r.header("location").unwrap());
    assert!(page.contains("Purged 2 deliveries to alice."), "{page}");
    assert!(
        !page.contains("bob two") && page.contains("carol one"),
        "{page}"
    );
    // alice never pulls them; carol's message is still there.
    let pulled = alice.call("inbox_pull", json!({}));
    let subjects: Vec<String> = pulled["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["subject"]))
        .collect();
    assert_eq!(subjects, ["carol one"], "{pulled}");
    let audit = hub.operator_get("/operator/audit?event_type=messages_purged");
    assert_eq!(audit["items"][0]["payload"]["count"], 2, "{audit}");
    // Without `from`, every delivery goes (carol's, the one left).
    let r = b.post("/ui/agents/alice/purge", &[("csrf", &csrf), ("from", "")]);
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.page(r.header("location").unwrap());
    assert!(page.contains("Purged 1 delivery to alice."), "{page}");
    let inbox = b.page("/ui/agents/alice");
    assert!(!inbox.contains("carol one"), "{inbox}");
}
