//! The inbox: arrival order, all-or-nothing acks, per-sender dedupe, and the answers
//! from storage when the recent keys cannot decide.

use super::*;

pub(super) fn msg(id: &str, from: &str) -> Arc<Message> {
    Arc::new(Message {
        id: id.into(),
        dedupe_key: None,
        reply_to: None,
        from_agent: from.into(),
        to_agent: None,
        round_id: None,
        msg_type: "info".into(),
        subject: "s".into(),
        body: "b".into(),
        context_json: "{}".into(),
        hop_count: 0,
        created_at: "t".into(),
    })
}

fn draft(dedupe_key: Option<&str>, reply_to: Option<&str>) -> Draft {
    Draft {
        to_agent: None,
        subject: "s".into(),
        body: "b".into(),
        msg_type: "info".into(),
        dedupe_key: dedupe_key.map(String::from),
        round_id: None,
        reply_to: reply_to.map(String::from),
    }
}

fn done(r: Result<AckCheck, AckRefusal>) -> Vec<String> {
    match r {
        Ok(AckCheck::Done(v)) => v,
        other => panic!("not done: {other:?}"),
    }
}

#[test]
fn unread_in_arrival_order_until_acked() {
    let mut i = Inbox::default();
    i.deliver(msg("m2", "a"));
    i.deliver(msg("m1", "b"));
    i.deliver(msg("m2", "a")); // a second copy is ignored
    let ids: Vec<_> = i.peek(10).iter().map(|m| m.id().to_string()).collect();
    assert_eq!(ids, vec!["m2", "m1"]);
    assert_eq!(i.peek(1).len(), 1);
    assert_eq!(done(i.ack(&["m2".into()], None)), vec!["m2"]);
    assert_eq!(i.peek(10)[0].id(), "m1");
    // Acking again is harmless; acking what the caches do not know asks storage,
    // and what storage does not know is refused: a refused batch acks nothing.
    assert_eq!(done(i.ack(&["m2".into()], None)), Vec::<String>::new());
    let batch = ["m1".to_string(), "zz".to_string()];
    let since = match i.ack(&batch, None) {
        Ok(AckCheck::LookUp { since, ids }) => {
            assert_eq!(ids, vec!["zz"]);
            since
        }
        other => panic!("{other:?}"),
    };
    let stored = StoredAck {
        since,
        asked: vec!["zz".into()],
        received: HashSet::new(),
    };
    assert_eq!(
        i.ack(&batch, Some(&stored)),
        Err(AckRefusal::NotFound("zz".into()))
    );
    assert_eq!(i.unread_count(), 1);
}

#[test]
fn dedupe_per_sender_and_visibility() {
    let mut i = Inbox::default();
    i.record_sent("m1", Some("k"));
    let dup = i.check_send(&draft(Some("k"), None), None).unwrap_err();
    assert_eq!(
        dup,
        DomainError::DuplicateMessage {
            message_id: "m1".into(),
            dedupe_key: "k".into()
        }
    );
    i.deliver(msg("m9", "x"));
    // Ids sent or received recently answer reply_to at once.
    for seen in ["m1", "m9"] {
        assert_eq!(
            i.check_send(&draft(None, Some(seen)), None),
            Ok(SendCheck::Clear)
        );
    }
    // A new key or an older id needs the stored rows.
    let q = match i.check_send(&draft(Some("new"), Some("m10")), None) {
        Ok(SendCheck::LookUp(q)) => q,
        other => panic!("{other:?}"),
    };
    assert_eq!(q.dedupe_key.as_deref(), Some("new"));
    assert_eq!(q.reply_to.as_deref(), Some("m10"));
    let answer = |original: Option<&str>, seen| Stored {
        query: q.clone(),
        dedupe_original: original.map(String::from),
        reply_seen: seen,
    };
    let d = draft(Some("new"), Some("m10"));
    assert_eq!(
        i.check_send(&d, Some(&answer(None, true))),
        Ok(SendCheck::Clear)
    );
    assert_eq!(
        i.check_send(&d, Some(&answer(None, false))),
        Err(DomainError::ReplyToNotFound("m10".into()))
    );
    assert!(matches!(
        i.check_send(&d, Some(&answer(Some("m0"), true))),
        Err(DomainError::DuplicateMessage { message_id, .. }) if message_id == "m0"
    ));
}

/// Memory does not grow with history, and an answer from storage that an eviction
/// may have made stale is asked again.
#[test]
fn recent_keys_are_bounded_and_stale_answers_are_asked_again() {
    let mut i = Inbox::with_capacity(2);
    let q = match i.check_send(&draft(Some("k"), None), None) {
        Ok(SendCheck::LookUp(q)) => q,
        other => panic!("{other:?}"),
    };
    // While storage is asked, the same key is used once and pushed out of the cache.
    i.record_sent("m1", Some("k"));
    for n in 2..6 {
        i.record_sent(&format!("m{n}"), Some(&format!("k{n}")));
    }
    assert!(i.dedupe.get("k").is_none(), "k was pushed out");
    assert!(i.sent.map.len() <= 2 && i.dedupe.map.len() <= 2);
    let stale = Stored {
        query: q.clone(),
        dedupe_original: None,
        reply_seen: false,
    };
    assert!(matches!(
        i.check_send(&draft(Some("k"), None), Some(&stale)),
        Ok(SendCheck::LookUp(_))
    ));
    for n in 0..100 {
        i.deliver(msg(&format!("r{n}"), "x"));
    }
    assert!(i.received.map.len() <= 2);
    // Unread messages stay, whatever the cache holds.
    assert_eq!(i.unread_count(), 100);
    assert_eq!(done(i.ack(&["r0".into()], None)), vec!["r0"]);
}

/// A backlog keeps only the oldest bodies in memory (pulls take those first); the
/// rest are ids, in order.
#[test]
fn a_backlog_keeps_bodies_on_disk() {
    let mut i = Inbox::default();
    i.deliver_stored("old".into(), 300, "x");
    let fit = HELD_BYTES / cost(&msg("m0", "x"));
    for n in 0..fit + 10 {
        i.deliver(msg(&format!("m{n}"), "x"));
    }
    let all = i.peek(usize::MAX);
    assert_eq!(all.len(), fit + 11);
    assert_eq!(all[0], Unread::OnDisk("old".into()));
    assert!(matches!(&all[1], Unread::Held(m) if m.id == "m0"));
    assert_eq!(all[fit + 1], Unread::OnDisk(format!("m{fit}")));
    let held = all.iter().filter(|u| matches!(u, Unread::Held(_))).count();
    assert_eq!(held, fit);
    assert!(i.held_bytes <= HELD_BYTES);
    // Acking works the same on ids only.
    assert_eq!(
        done(i.ack(&["old".into(), "m0".into()], None)),
        vec!["old", "m0"]
    );
    assert_eq!(i.peek(1)[0].id(), "m1");
    // Acking held messages gives their bytes back.
    let ids: Vec<String> = i
        .peek(usize::MAX)
        .iter()
        .map(|u| u.id().to_string())
        .collect();
    done(i.ack(&ids, None));
    assert_eq!(i.held_bytes, 0);
}

/// Rows read back from disk are held again while they fit.
#[test]
fn pulled_rows_are_held_again() {
    let mut i = Inbox::default();
    i.deliver_stored("a".into(), 300, "x");
    i.deliver_stored("b".into(), 300, "x");
    i.hold(&[msg("a", "x"), msg("zz", "x")]);
    let all = i.peek(10);
    assert!(matches!(&all[0], Unread::Held(m) if m.id == "a"));
    assert_eq!(all[1], Unread::OnDisk("b".into()));
    assert_eq!(i.held_bytes, cost(&msg("a", "x")));
    done(i.ack(&["a".into()], None));
    assert_eq!(i.held_bytes, 0);
}

/// An answer covers only what was asked: a key that was in a cache at the check,
/// and was pushed out before the answer came, is asked again rather than refused.
#[test]
fn an_answer_covers_only_what_it_asked() {
    let mut i = Inbox::with_capacity(2);
    i.deliver(msg("r", "x"));
    done(i.ack(&["r".into()], None)); // read: only the received cache knows it now
    let d = draft(Some("new"), Some("r"));
    let q = match i.check_send(&d, None) {
        Ok(SendCheck::LookUp(q)) => q,
        other => panic!("{other:?}"),
    };
    assert_eq!(q.reply_to, None, "r was known");
    // One delivery pushes r out of the received cache (capacity 2) while asking.
    i.deliver(msg("s", "x"));
    i.deliver(msg("t", "x"));
    let answer = Stored {
        query: q,
        dedupe_original: None,
        reply_seen: false,
    };
    match i.check_send(&d, Some(&answer)) {
        Ok(SendCheck::LookUp(q)) => assert_eq!(q.reply_to.as_deref(), Some("r")),
        other => panic!("r must be asked about, not refused: {other:?}"),
    }
}

/// A row read back for a pull takes the place of later held messages: the oldest
/// unread, pulled first, stay in memory.
#[test]
fn pulled_rows_take_the_place_of_later_ones() {
    let mut i = Inbox::default();
    i.deliver_stored("old".into(), 300, "x");
    let fit = HELD_BYTES / cost(&msg("m0", "x"));
    for n in 0..fit {
        i.deliver(msg(&format!("m{n}"), "x"));
    }
    i.hold(&[msg("old", "x")]);
    let all = i.peek(usize::MAX);
    assert!(matches!(&all[0], Unread::Held(m) if m.id == "old"));
    assert_eq!(all[fit], Unread::OnDisk(format!("m{}", fit - 1)));
    assert!(i.held_bytes <= HELD_BYTES);
}

#[test]
fn promises_stay_within_the_quota() {
    let limits = InboxLimits {
        max_messages: 2,
        max_bytes: 10_000,
    };
    let g = InboxGauge::default();
    let size = msg("m1", "a").pull_size();
    g.reserve(size, limits).unwrap();
    g.reserve(size, limits).unwrap();
    assert_eq!(g.reserve(size, limits), Err(Full::Messages(2)));
    assert_eq!(g.counts(), (2, 2 * size), "a refused promise takes nothing");
    // Read messages (or a send not stored) give room back.
    g.release(1, size);
    g.reserve(size, limits).unwrap();
    assert_eq!(g.reserve(size, limits), Err(Full::Messages(2)));
    g.release(2, 2 * size);
    // Bytes are a quota of their own; notices come in without a promise.
    let tight = InboxLimits {
        max_messages: 10,
        max_bytes: size * 2,
    };
    g.add(1, size);
    g.reserve(size, tight).unwrap();
    assert_eq!(g.reserve(1, tight), Err(Full::Bytes(size * 2)));
    assert_eq!(g.counts(), (2, 2 * size));
    g.release(5, usize::MAX);
    assert_eq!(g.counts(), (0, 0), "never below zero");
}
