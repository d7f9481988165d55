//! A purge against deliveries still on their way: a message whose insert was queued
//! before the purge (so its row is deleted) never arrives, not even at a pull parked
//! on the empty inbox, and gives its promised room back; later messages arrive.

use super::*;
use crate::config::Durability;
use crate::domain::inbox::InboxLimits;
use crate::store::StoreOptions;

struct Silent;

impl Notifier for Silent {
    fn inbox_updated(&self, _: &AgentId, _: &Mail) {}
    fn channel(&self, _: &AgentId, _: &crate::domain::channel::Event) {}
}

fn mail(id: &str, from: &str) -> Arc<Mail> {
    Arc::new(Mail {
        id: id.into(),
        dedupe_key: None,
        reply_to: None,
        from_agent: from.into(),
        to_agent: Some("bob".into()),
        round_id: None,
        msg_type: "info".into(),
        subject: "s".into(),
        body: "b".into(),
        context_json: "{}".into(),
        hop_count: 0,
        created_at: "2026-01-01T00:00:00.000000+00:00".into(),
    })
}

/// What a sender's actor does: store the message, then (later) deliver it. Returns
/// the delivery, with the room promised for it.
fn stored(store: &Store, gauge: &InboxGauge, m: Arc<Mail>) -> Deliver {
    let size = m.pull_size();
    gauge
        .reserve(size, InboxLimits::default())
        .expect("room in the inbox");
    let ticket = store.enqueue(Op::MessageInsert {
        message: m.clone(),
        recipients: vec!["bob".into()],
    });
    Deliver(m, Some(size), ticket)
}

#[test]
fn deliveries_purged_on_their_way_never_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    let agents = [("alice", "h"), ("bob", "h"), ("carol", "h")].map(|(a, h)| (a.into(), h.into()));
    let opts = StoreOptions {
        durability: Durability::Durable,
        max_ops: 64,
        window: Duration::ZERO,
    };
    let (store, _) = Store::open(&tmp.path().join("hub.db"), opts, &agents, "t0").unwrap();
    let writer = store.clone();
    actix::System::new().block_on(async move {
        let gauge = Arc::new(InboxGauge::default());
        let row = AgentRow {
            id: "bob".into(),
            name: "bob".into(),
            capabilities: Vec::new(),
            registered_at: None,
            last_heartbeat: None,
        };
        let bob = AgentActor::from_row(
            row,
            MailState::default(),
            gauge.clone(),
            store.clone(),
            Arc::new(Silent),
            Arc::new(LiveSettings::from_pointee(
                crate::config::Settings::default(),
            )),
        )
        .start();
        let pull = |wait| Pull { limit: 10, wait };

        // Stored, then purged before its delivery reached bob.
        let late = stored(&store, &gauge, mail("m1", "alice"));
        let (deleted, ticket) = bob.send(Purge { from: None }).await.unwrap();
        store.wait_committed(ticket).await.unwrap();
        assert_eq!(deleted.get(), 1, "its row was deleted");
        bob.send(late).await.unwrap();
        match bob.send(pull(Duration::ZERO)).await.unwrap() {
            PullReply::Ready(v) => assert!(v.is_empty()),
            PullReply::Wait(_) => panic!("no wait asked"),
        }
        assert_eq!(gauge.counts(), (0, 0), "its room is free again");

        // A pull parked on the empty inbox is not woken by a purged delivery; the
        // first one that was not purged (another sender's) wakes it.
        let PullReply::Wait(parked) = bob.send(pull(Duration::from_secs(30))).await.unwrap() else {
            panic!("the inbox is empty: the pull waits");
        };
        let late = stored(&store, &gauge, mail("m2", "alice"));
        let kept = stored(&store, &gauge, mail("c1", "carol"));
        bob.send(Purge {
            from: Some("alice".into()),
        })
        .await
        .unwrap();
        bob.send(late).await.unwrap();
        let after = stored(&store, &gauge, mail("m3", "alice"));
        bob.send(kept).await.unwrap();
        bob.send(after).await.unwrap();
        let got: Vec<String> = parked
            .await
            .unwrap()
            .iter()
            .map(|u| u.id().to_string())
            .collect();
        assert_eq!(got, ["c1"], "woken by the first message that arrived");
        match bob.send(pull(Duration::ZERO)).await.unwrap() {
            PullReply::Ready(v) => {
                let ids: Vec<&str> = v.iter().map(|u| u.id()).collect();
                assert_eq!(ids, ["c1", "m3"]);
            }
            PullReply::Wait(_) => panic!("no wait asked"),
        }
        let size = mail("c1", "carol").pull_size();
        assert_eq!(gauge.counts(), (2, 2 * size));
    });
    writer.shutdown();
}
