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
    /// Sequence numbers (inclusive ranges, oldest first) that were not saved.
    pub failed: Vec<(u64, u64)>,
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

impl Progress {
    /// Record `first..=last` as not saved, merged with the previous range when
    /// they touch.
    pub(crate) fn fail(&mut self, first: u64, last: u64) {
        if let Some(prev) = self.failed.last_mut() {
            if prev.1 + 1 >= first {
                prev.1 = prev.1.max(last);
                return;
            }
        }
        self.failed.push((first, last));
        if self.failed.len() > MAX_RANGES {
            self.failed.remove(0);
        }
    }

    /// Whether the op with sequence number `seq` was not saved.
    pub(crate) fn lost(&self, seq: u64) -> bool {
        self.failed.iter().any(|&(a, b)| a <= seq && seq <= b)
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
        assert_eq!(p.failed, vec![(5, 9), (12, 12)]);
        assert!(!p.lost(4) && p.lost(5) && p.lost(9) && !p.lost(10) && p.lost(12));
        for i in 0..(MAX_RANGES as u64 + 10) {
            p.fail(100 + 2 * i, 100 + 2 * i);
        }
        assert_eq!(p.failed.len(), MAX_RANGES, "bounded");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(next_backoff(FIRST_BACKOFF), Duration::from_secs(2));
        assert_eq!(next_backoff(Duration::from_secs(20)), MAX_BACKOFF);
    }
}
