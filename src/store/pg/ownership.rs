//! The shards this node holds and the epoch of each, as the lease loop last saw
//! them: what the writer tags every op with (cluster.md §2-3). Lock-free reads, one
//! per op; written only when a lease is acquired, lost or released.
//!
//! The *term* counts losses (and, with spread placement, the gains a hub must be
//! loaded again for): it grows each time a held shard is dropped. A hub is
//! loaded under one term, and its ops are written only while the term is still that
//! one (`store::writer`): once a shard was lost, another node may have written it,
//! so nothing computed from the memory of before may be written, even if the shard
//! is taken back (at a new epoch) before the op reaches the writer.

use super::{Epoch, ShardId};
use crate::domain::shard::SHARD_COUNT;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Not held (epochs start at 1 once acquired).
const NOT_HELD: i64 = -1;

/// Shard -> the epoch this node holds it at.
#[derive(Debug)]
pub(crate) struct Ownership {
    epochs: Box<[AtomicI64]>,
    term: AtomicU64,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            epochs: (0..SHARD_COUNT).map(|_| AtomicI64::new(NOT_HELD)).collect(),
            term: AtomicU64::new(0),
        }
    }
}

impl Ownership {
    /// Held from now on, at `epoch`.
    pub(crate) fn hold(&self, shard: ShardId, epoch: Epoch) {
        if let Some(slot) = self.epochs.get(usize::from(shard.0)) {
            slot.store(epoch.0, Ordering::Release);
        }
    }

    /// No longer held: its ops are refused from now on.
    pub(crate) fn lose(&self, shard: ShardId) {
        if let Some(slot) = self.epochs.get(usize::from(shard.0)) {
            if slot.swap(NOT_HELD, Ordering::AcqRel) != NOT_HELD {
                self.term.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Nothing is held (a node that cannot renew fences itself).
    pub(crate) fn lose_all(&self) {
        let mut lost = false;
        for slot in self.epochs.iter() {
            lost |= slot.swap(NOT_HELD, Ordering::AcqRel) != NOT_HELD;
        }
        if lost {
            self.term.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Move the term without a loss: the hub must be loaded again (spread
    /// placement, after shards were gained).
    pub(crate) fn bump(&self) {
        self.term.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times a held shard was dropped so far.
    pub(crate) fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// The epoch `shard` is held at, if it is.
    pub(crate) fn epoch(&self, shard: ShardId) -> Option<Epoch> {
        let e = self
            .epochs
            .get(usize::from(shard.0))?
            .load(Ordering::Acquire);
        (e != NOT_HELD).then_some(Epoch(e))
    }

    /// Every shard held, with its epoch, in shard order.
    pub(crate) fn held(&self) -> Vec<(ShardId, Epoch)> {
        (0..SHARD_COUNT)
            .filter_map(|s| self.epoch(ShardId(s)).map(|e| (ShardId(s), e)))
            .collect()
    }

    /// How many shards are held.
    pub(crate) fn count(&self) -> usize {
        self.epochs
            .iter()
            .filter(|e| e.load(Ordering::Acquire) != NOT_HELD)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_loses_and_lists() {
        let o = Ownership::default();
        assert_eq!(o.count(), 0);
        o.hold(ShardId(3), Epoch(7));
        o.hold(ShardId(1), Epoch(2));
        assert_eq!(o.epoch(ShardId(3)), Some(Epoch(7)));
        assert_eq!(o.epoch(ShardId(4)), None);
        assert_eq!(
            o.held(),
            vec![(ShardId(1), Epoch(2)), (ShardId(3), Epoch(7))]
        );
        assert_eq!(o.term(), 0);
        o.lose(ShardId(3));
        assert_eq!(o.epoch(ShardId(3)), None);
        assert_eq!(o.term(), 1, "a loss moves the term");
        o.lose(ShardId(3));
        assert_eq!(o.term(), 1, "dropping what is not held does not");
        o.hold(ShardId(3), Epoch(8));
        assert_eq!(o.term(), 1, "taking a shard back does not");
        o.hold(ShardId(SHARD_COUNT), Epoch(1)); // out of range: ignored
        assert_eq!(o.count(), 2);
        o.lose_all();
        assert_eq!((o.count(), o.term()), (0, 2));
        o.lose_all();
        assert_eq!(o.term(), 2);
    }
}
