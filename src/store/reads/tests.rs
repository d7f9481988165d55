//! Every [`Reads`] method against SQLite, on a store holding one message: each
//! query runs and answers what the writer committed (a second backend's tests can
//! follow the same list).

use super::{Owned, Prunable, Reads};
use crate::config::Durability;
use crate::domain::inbox::SendQuery;
use crate::domain::shard::Shards;
use crate::store::pages::{AuditFilter, PageRequest};
use crate::store::replay_cases::send;
use crate::store::{Store, StoreOptions};

const AT: &str = "2026-01-01T00:00:00.000000+00:00";

fn first_page() -> PageRequest {
    PageRequest {
        all: true,
        limit: 10,
        cursor: None,
    }
}

/// A store with agents a and b, and one message m1 from a to b (unread), sent at
/// [`AT`].
async fn store_with_message(dir: &std::path::Path) -> Store {
    let opts = StoreOptions {
        durability: Durability::Durable,
        max_ops: 64,
        window: std::time::Duration::ZERO,
    };
    let agents = vec![
        ("a".to_string(), "h".to_string()),
        ("b".to_string(), "h".to_string()),
    ];
    let (store, _) = Store::open(&dir.join("hub.db"), opts, &agents, AT).unwrap();
    let ticket = store.enqueue(send("m1", "a", &["b"], 0));
    store.wait_durable(ticket).await.unwrap();
    store
}

#[tokio::test]
async fn messaging_reads_see_the_committed_message() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_message(tmp.path()).await;
    let query = SendQuery {
        since: 0,
        dedupe_key: Some("key-m1".into()),
        reply_to: Some("m1".into()),
    };
    let stored = store.send_history("a", query).await.unwrap();
    assert_eq!(stored.dedupe_original.as_deref(), Some("m1"));
    assert!(stored.reply_seen);
    let ids = vec!["m1".to_string(), "nope".to_string()];
    let rows = store.messages_by_id(ids.clone()).await.unwrap();
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["m1"]);
    assert_eq!(rows["m1"].body, "b");
    let got = store.received_of("b", ids.clone()).await.unwrap();
    assert_eq!(got.into_iter().collect::<Vec<_>>(), ["m1"]);
    assert!(store.received_of("a", ids).await.unwrap().is_empty());
    let (row, mail) = store.load_agent("b").await.unwrap().unwrap();
    assert_eq!((row.id.as_str(), mail.unread.len()), ("b", 1));
    let snapshot = store.load(&Shards::All).await.unwrap();
    assert_eq!(snapshot.agents.len(), 2);
    store.shutdown();
}

#[tokio::test]
async fn pages_and_look_ups_answer_from_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_message(tmp.path()).await;
    let page = store.delivery_page("b", first_page(), true).await.unwrap();
    assert_eq!(page.map(|p| p.items.len()), Some(1));
    let unknown = store.delivery_page("zed", first_page(), false).await;
    assert!(unknown.unwrap().is_none());
    assert_eq!(
        store.message_page(first_page()).await.unwrap().items.len(),
        1
    );
    let sent = store.sent_message_page("a", first_page()).await.unwrap();
    assert_eq!(sent.items.len(), 1);
    let of_task = store.task_message_page("T-1", first_page()).await.unwrap();
    assert!(of_task.items.is_empty());
    assert_eq!(store.agent_page(first_page()).await.unwrap().items.len(), 2);
    assert!(store
        .lock_page(first_page(), AT)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .task_page(first_page())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .round_page(first_page())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .awaiting_page(first_page())
        .await
        .unwrap()
        .items
        .is_empty());
    let audit = store.audit_page(first_page(), AuditFilter::default()).await;
    audit.unwrap();
    let assigned = store.agent_assignment_page("a", first_page()).await;
    assert!(assigned.unwrap().items.is_empty());
    assert!(store.assignments_of_agent("a", 5).await.unwrap().is_empty());
    assert!(store.decisions("R-1").await.unwrap().is_empty());
    store.task_counts().await.unwrap();
    assert!(!store.task_exists("T-1").await.unwrap());
    assert!(store.load_task("T-1").await.unwrap().is_none());
    assert_eq!(store.owner_of(Owned::Round, "R-1").await.unwrap(), None);
    assert_eq!(store.fencing_counter("branch:main").await.unwrap(), 0);
    store.shutdown();
}

#[tokio::test]
async fn retention_reads_and_file_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_message(tmp.path()).await;
    let later = "2027-01-01T00:00:00.000000+00:00";
    let start = (String::new(), String::new());
    // m1 is unread: never a candidate.
    let acked = store.acked_messages_before(later, start.clone()).await;
    assert!(acked.unwrap().is_empty());
    let finished = store.finished_tasks_before(later, start).await;
    assert!(finished.unwrap().is_empty());
    store.audit_events_before(later).await.unwrap();
    for policy in [Prunable::AckedMessages, Prunable::FinishedTasks] {
        assert_eq!(store.prune_count(policy, later).await.unwrap(), 0);
    }
    store
        .prune_count(Prunable::AuditEvents, later)
        .await
        .unwrap();
    assert!(store.file_size().await.unwrap() > 0);
    let copy = tmp.path().join("copy.db");
    store.backup_into(copy.clone()).await.unwrap();
    assert!(std::fs::metadata(&copy).unwrap().len() > 0);
    store.shutdown();
}
