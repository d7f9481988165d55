//! What the writer publishes about its work, and the rules a waiter reads it by:
//! which tickets are done, which of those were not saved, and whether writes are
//! refused now. Plain data and functions, unit-tested; the thread lives in
//! [`super::writer_loop`].

use std::time::Duration;

/// Most failed ranges kept. Ranges of one fault episode merge into one, so this is
/// the number of separate episodes a waiter could still ask about.
const MAX_RANGES: usize = 256;

/// Published by the writer after each batch (and on each change of health).
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Highest sequence number the writer is done with: committed, failed, or
    /// dropped as stale.
    pub done: u64,
    /// Sequence numbers that were not saved: failed by a storage fault.
    pub failed: Ranges,
    /// Sequence numbers that were not saved: queued by a replaced hub's actors.
    pub stale: Ranges,
    /// Storage faults so far (each one a rebuild of the live state from disk).
    pub faults: u64,
    /// Why writes are refused now; `None` while they are saved.
    pub refusing: Option<String>,
    /// The fault cannot clear by itself (the file was deleted or replaced).
    pub fatal: bool,
    /// How many times a probe found a fault cleared. The writer then keeps refusing
    /// until a newer generation of handles is adopted ([`super::Store::adopt`]).
    pub healed: u64,
    /// Ops of handles older than this were dropped unsaved: their hub was replaced.
    pub min_generation: u64,
    /// The writer has exited.
    pub closed: bool,
}

/// Sequence numbers as inclusive ranges, oldest first, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Add `first..=last`, merged with the previous range when they touch.
    pub(crate) fn add(&mut self, first: u64, last: u64) {
        if let Some(prev) = self.0.last_mut() {
            if prev.1 + 1 >= first {
                prev.1 = prev.1.max(last);
                return;
            }
        }
        self.0.push((first, last));
        if self.0.len() > MAX_RANGES {
            self.0.remove(0);
        }
    }

    /// Whether `seq` is in one of the ranges.
    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= seq && seq <= b)
    }
}

impl Progress {
    /// Record `first..=last` as failed (not saved).
    pub(crate) fn fail(&mut self, first: u64, last: u64) {
        self.failed.add(first, last);
    }

    /// Whether the op with sequence number `seq` was failed.
    pub(crate) fn lost(&self, seq: u64) -> bool {
        self.failed.contains(seq)
    }
}

/// The writer's own view of its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Batches are applied.
    Ok,
    /// A commit failed: every op is failed until a probe write succeeds.
    Faulted {
        /// Wait before the next probe (doubles up to [`MAX_BACKOFF`]).
        backoff: Duration,
    },
    /// A probe succeeded: ops are still failed until the hub is rebuilt from disk
    /// and adopts a new generation (so that memory holds only what is saved).
    Healed,
    /// The database file is gone or replaced: only a restart helps.
    Fatal,
}

/// First wait before probing a failed store, and the longest.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after a failed probe.
pub(crate) fn next_backoff(b: Duration) -> Duration {
    (b * 2).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_ranges_merge_and_answer() {
        let mut p = Progress::default();
        p.fail(5, 7);
        p.fail(8, 9); // touches: merged
        p.fail(12, 12);
        assert_eq!(p.failed, Ranges(vec![(5, 9), (12, 12)]));
        assert!(!p.lost(4) && p.lost(5) && p.lost(9) && !p.lost(10) && p.lost(12));
        for i in 0..(MAX_RANGES as u64 + 10) {
            p.fail(100 + 2 * i, 100 + 2 * i);
        }
        assert_eq!(p.failed.0.len(), MAX_RANGES, "bounded");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(next_backoff(FIRST_BACKOFF), Duration::from_secs(2));
        assert_eq!(next_backoff(Duration::from_secs(20)), MAX_BACKOFF);
    }
}
