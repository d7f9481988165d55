//! One agent's deliveries in storage: the per-agent page (order, read state, keyset
//! paging, and that an index serves it), the purge statement, and retention of
//! messages whose deliveries were all purged.

use super::op::Tally;
use super::pages::{deliveries, Cursor, PageRequest};
use super::replay_cases::{ack, send};
use super::{apply::apply_batch, migrate, prune, Op};
use rusqlite::Connection;

fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate::run(&mut conn, "t0").unwrap();
    conn
}

fn apply(conn: &mut Connection, ops: &[Op]) {
    let tx = conn.transaction().unwrap();
    apply_batch(&tx, ops.iter()).unwrap();
    tx.commit().unwrap();
}

fn purge(agent: &str, from: Option<&str>, deleted: &Tally) -> Op {
    Op::DeliveriesPurge {
        agent: agent.into(),
        from: from.map(String::from),
        deleted: deleted.clone(),
    }
}

/// Every page of `agent`'s deliveries, `limit` at a time: (id, read) per row.
fn all_pages(conn: &Connection, agent: &str, unread: bool, limit: usize) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let req = PageRequest {
            all: false,
            limit,
            cursor,
        };
        let page = deliveries(conn, &req, agent, unread).unwrap();
        assert!(page.items.len() <= limit);
        out.extend(
            page.items
                .iter()
                .map(|d| (d.message.id.clone(), d.read_at.is_some())),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
            None => return out,
        }
    }
}

fn ids(rows: &[(String, bool)]) -> Vec<&str> {
    rows.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn an_agents_deliveries_newest_first_with_read_state() {
    let mut c = db();
    apply(
        &mut c,
        &[
            send("m1", "alice", &["bob"], 1),
            send("m2", "carol", &["bob", "dave"], 2),
            send("m3", "alice", &["dave"], 3),
            // Same second: the id decides.
            send("m4b", "alice", &["bob"], 4),
            send("m4a", "carol", &["bob"], 4),
            send("m5", "alice", &["bob"], 5),
            ack("bob", "m2"),
            ack("bob", "m4a"),
        ],
    );
    let all = all_pages(&c, "bob", false, 2);
    assert_eq!(ids(&all), ["m5", "m4b", "m4a", "m2", "m1"]);
    let read: Vec<bool> = all.iter().map(|(_, r)| *r).collect();
    assert_eq!(read, [false, false, true, true, false]);
    assert_eq!(ids(&all_pages(&c, "bob", true, 1)), ["m5", "m4b", "m1"]);
    assert_eq!(ids(&all_pages(&c, "bob", false, 1000)).len(), 5);
    // dave's read state is its own.
    assert_eq!(
        all_pages(&c, "dave", false, 10),
        [("m3".to_string(), false), ("m2".to_string(), false)]
    );
    assert!(all_pages(&c, "nobody", false, 10).is_empty());
}

#[test]
fn unread_rows_load_oldest_first_through_the_unread_index() {
    let mut c = db();
    // Stored out of order: start-up goes by the messages' times.
    apply(
        &mut c,
        &[
            send("m2", "alice", &["bob"], 2),
            send("m1", "carol", &["bob"], 1),
            send("m3", "alice", &["bob"], 3),
            ack("bob", "m3"),
        ],
    );
    let snap = super::load::load_open_work(&c, &crate::domain::shard::Shards::All).unwrap();
    let unread: Vec<&str> = snap.mail["bob"]
        .unread
        .iter()
        .map(|u| u.id.as_str())
        .collect();
    assert_eq!(unread, ["m1", "m2"]);
    // The shape of load_mail's query, for every agent, one agent, or some shards.
    for cond in [
        "",
        " AND r.agent_id = ?",
        " AND r.shard IN (SELECT value FROM json_each(?))",
    ] {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT r.agent_id, r.message_id, length(m.body)
             FROM message_recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.read_at IS NULL{cond}
             ORDER BY r.agent_id, r.delivered_at, r.message_id"
        );
        let params: &[&str] = if cond.is_empty() { &[] } else { &["[1]"] };
        let mut stmt = c.prepare(&sql).unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let text = plan.join("\n");
        assert!(text.contains("idx_recipients_unread"), "{cond}: {text}");
        assert!(!text.contains("TEMP B-TREE"), "{cond}: sorted: {text}");
    }
}

#[test]
fn a_page_is_read_through_an_index_of_the_agent() {
    let c = db();
    let cursor = "r.delivered_at <= ?2 AND (r.delivered_at, r.message_id) < (?2, ?3)";
    for (read, index) in [
        ("1", "idx_recipients_agent "),
        ("r.read_at IS NULL", "idx_recipients_unread "),
    ] {
        for (cond, params) in [("1", &["a"][..]), (cursor, &["a", "t", "i"][..])] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT m.*, r.read_at AS delivery_read_at
                 FROM message_recipients r JOIN messages m ON m.id = r.message_id
                 WHERE r.agent_id = ?1 AND {read} AND {cond}
                 ORDER BY r.delivered_at DESC, r.message_id DESC LIMIT 51"
            );
            let mut stmt = c.prepare(&sql).unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let text = plan.join("\n");
            assert!(text.contains(index), "{read} / {cond}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "sorted: {text}");
            assert!(
                !text.contains("SCAN r") && !text.contains("SCAN m"),
                "scan: {text}"
            );
        }
    }
}

#[test]
fn a_purge_deletes_the_agents_deliveries_and_keeps_the_messages() {
    let mut c = db();
    let (all, from_alice, again) = (Tally::default(), Tally::default(), Tally::default());
    apply(
        &mut c,
        &[
            send("m1", "alice", &["bob"], 1),
            send("m2", "carol", &["bob", "dave"], 2),
            send("m3", "alice", &["bob", "dave"], 3),
            ack("bob", "m1"),
            purge("bob", Some("alice"), &from_alice),
        ],
    );
    assert_eq!(from_alice.get(), 2, "read and unread");
    assert_eq!(ids(&all_pages(&c, "bob", false, 10)), ["m2"]);
    assert_eq!(ids(&all_pages(&c, "dave", false, 10)), ["m3", "m2"]);
    apply(
        &mut c,
        &[purge("bob", None, &all), purge("bob", None, &again)],
    );
    assert_eq!((all.get(), again.get()), (1, 0));
    assert!(all_pages(&c, "bob", false, 10).is_empty());
    let messages: i64 = c
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(messages, 3, "the messages stay");
    // The sender's dedupe key is still found.
    assert_eq!(
        super::mail::dedupe_original(&c, "alice", "key-m1").unwrap(),
        Some("m1".to_string())
    );
    assert!(!super::mail::sent_or_received(&c, "bob", "m1").unwrap());
}

#[test]
fn messages_whose_deliveries_were_purged_are_pruned_like_read_ones() {
    let mut c = db();
    let t = Tally::default();
    apply(
        &mut c,
        &[
            send("gone", "alice", &["bob"], 1),
            send("half", "alice", &["bob", "dave"], 2),
            send("read", "alice", &["dave"], 3),
            ack("dave", "read"),
            purge("bob", None, &t),
        ],
    );
    let cutoff = "2027-01-01T00:00:00.000000+00:00";
    let start = (String::new(), String::new());
    let found = prune::acked_messages(&c, cutoff, &start).unwrap();
    let found: Vec<&str> = found.iter().map(|(_, id)| id.as_str()).collect();
    // `half` is still unread by dave: kept.
    assert_eq!(found, ["gone", "read"]);
    assert_eq!(
        prune::count(&c, prune::Prunable::AckedMessages, cutoff).unwrap(),
        2
    );
    apply(
        &mut c,
        &[Op::PruneMessages(vec!["gone".into(), "read".into()])],
    );
    let left: Vec<String> = c
        .prepare("SELECT id FROM messages")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, ["half"]);
}
