//! The operator's purge of one inbox's deliveries (all of them, or one sender's):
//! what the inbox forgets, and the floors that drop deliveries still on their way.
//!
//! A purge is one store op (ticket P) that deletes every stored delivery of the
//! agent (from the sender) inserted before it. A message whose insert was queued
//! before P but whose [`Inbox::deliver`] has not reached the agent yet is such a
//! delivery: its row is gone, so it must not arrive either. Tickets order inserts
//! and purges on the store's one queue, so comparing them is exact.

use super::{Inbox, Pending, Recent};
use std::collections::HashMap;
use std::sync::Arc;

/// Deliveries whose insert was queued before these tickets are purged: every one
/// before `all`, and each sender's before its own.
#[derive(Debug, Default)]
pub(super) struct Floors {
    all: u64,
    from: HashMap<Arc<str>, u64>,
}

impl Floors {
    fn covers(&self, from: &str, stored_at: u64) -> bool {
        stored_at < self.all || self.from.get(from).is_some_and(|&f| stored_at < f)
    }

    fn raise(&mut self, from: Option<Arc<str>>, at: u64) {
        match from {
            None => {
                self.all = self.all.max(at);
                // A sender's floor at or below `all` says nothing more.
                let all = self.all;
                self.from.retain(|_, f| *f > all);
            }
            Some(s) => {
                let f = self.from.entry(s).or_default();
                *f = (*f).max(at);
            }
        }
    }
}

/// What a purge took out of the unread messages (room given back to the quota).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Purged {
    pub messages: usize,
    pub bytes: usize,
}

impl<V> Recent<V> {
    /// Drop the entries whose value fails `keep`; their places in `order` are
    /// skipped when they come up.
    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.map.retain(|_, (_, v)| keep(v));
    }
}

impl Inbox {
    /// Forget every delivery from `from` (from anyone: `None`), read or not, that
    /// was stored before the purge's ticket `at`: the unread ones, the recently
    /// received ids, and (see [`Inbox::purged_in_flight`]) those still on their way.
    /// Every message now in the inbox was stored before `at`. Answers stored before
    /// the purge are asked again: they may name purged deliveries.
    pub(crate) fn purge(&mut self, from: Option<&str>, at: u64) -> Purged {
        let hit = |s: &str| from.is_none_or(|f| f == s);
        let before = (self.unread_count(), self.unread_bytes);
        // The unread ones purged: at most the unread messages, which are in memory
        // already.
        let gone: Vec<Pending> = self
            .unread_index
            .extract_if(|_, p| hit(&p.from))
            .map(|(_, p)| p)
            .collect();
        for p in &gone {
            self.forget(p);
        }
        self.shrink();
        self.received.retain(|s| !hit(s));
        let s = self.seq();
        self.evicted_upto = s;
        let sender = from.map(|f| self.sender(f));
        self.purged.raise(sender, at);
        Purged {
            messages: before.0 - self.unread_count(),
            bytes: before.1 - self.unread_bytes,
        }
    }

    /// Whether a delivery from `from` whose insert has ticket `stored_at` was purged
    /// before it arrived (then it must not be delivered: its row is deleted).
    pub(crate) fn purged_in_flight(&self, from: &str, stored_at: u64) -> bool {
        self.purged.covers(from, stored_at)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::msg;
    use super::super::{AckCheck, Inbox};

    fn ids(i: &Inbox) -> Vec<String> {
        i.peek(100).iter().map(|u| u.id().to_string()).collect()
    }

    #[test]
    fn purges_one_senders_deliveries_or_all() {
        let mut i = Inbox::default();
        for (id, from) in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")] {
            i.deliver(msg(id, from));
        }
        i.deliver_stored("a3".into(), 500, "a");
        let bytes = i.unread_bytes();
        let size = msg("x1", "a").pull_size();
        let p = i.purge(Some("a"), 10);
        assert_eq!(p.messages, 3);
        assert_eq!(p.bytes, 2 * size + 500);
        assert_eq!(i.unread_bytes(), bytes - p.bytes);
        assert_eq!(ids(&i), ["b1", "b2"]);
        // Purged ids are no longer known: an ack of one asks storage.
        assert!(matches!(
            i.ack(&["a1".into()], None),
            Ok(AckCheck::LookUp { .. })
        ));
        // Messages arriving later are kept.
        i.deliver(msg("a4", "a"));
        assert_eq!(ids(&i), ["b1", "b2", "a4"]);
        let p = i.purge(None, 20);
        assert_eq!((p.messages, i.unread_count(), i.unread_bytes()), (3, 0, 0));
        assert_eq!(i.purge(None, 30).messages, 0);
    }

    #[test]
    fn read_deliveries_are_forgotten_too() {
        let mut i = Inbox::default();
        i.deliver(msg("r", "a"));
        i.ack(&["r".into()], None).unwrap();
        assert!(matches!(i.ack(&["r".into()], None), Ok(AckCheck::Done(_))));
        assert_eq!(i.purge(Some("a"), 5).messages, 0);
        assert!(matches!(
            i.ack(&["r".into()], None),
            Ok(AckCheck::LookUp { .. })
        ));
    }

    #[test]
    fn deliveries_stored_before_a_purge_are_dropped_on_arrival() {
        let mut i = Inbox::default();
        assert!(!i.purged_in_flight("a", 1));
        i.purge(Some("a"), 10);
        assert!(i.purged_in_flight("a", 9));
        assert!(!i.purged_in_flight("a", 11), "stored after the purge");
        assert!(!i.purged_in_flight("b", 9), "another sender");
        i.purge(None, 5);
        assert!(i.purged_in_flight("b", 4));
        assert!(!i.purged_in_flight("b", 6));
        assert!(
            i.purged_in_flight("a", 9),
            "a lower floor keeps a higher one"
        );
        i.purge(None, 20);
        assert!(i.purged_in_flight("a", 19) && i.purged_in_flight("b", 19));
        assert!(!i.purged_in_flight("a", 21));
    }

    #[test]
    fn answers_from_storage_made_before_a_purge_are_asked_again() {
        let mut i = Inbox::default();
        let since = match i.ack(&["old".into()], None) {
            Ok(AckCheck::LookUp { since, .. }) => since,
            other => panic!("{other:?}"),
        };
        i.purge(None, 3);
        let stored = super::super::StoredAck {
            since,
            asked: vec!["old".into()],
            received: ["old".to_string()].into(),
        };
        assert!(matches!(
            i.ack(&["old".into()], Some(&stored)),
            Ok(AckCheck::LookUp { .. })
        ));
    }
}
