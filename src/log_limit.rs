//! Warnings that a client can trigger at will (a GET stream it never reads, say) are
//! logged at most once per interval, with how many were left out: a log line per
//! event would let one agent fill the disk (100 MB in 20 s was measured).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// One call site's limiter, usually a `static`.
#[derive(Debug)]
pub(crate) struct LogLimit {
    interval_ms: u64,
    /// Milliseconds since [`epoch`] of the last line written, plus one (0: never).
    last: AtomicU64,
    /// Events since the last line written.
    skipped: AtomicU64,
}

/// The process's clock origin for [`LogLimit`].
fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl LogLimit {
    /// At most one line per `interval_ms`.
    pub(crate) const fn new(interval_ms: u64) -> LogLimit {
        LogLimit {
            interval_ms,
            last: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Record one event now: `Some(n)` when a line should be written for it, `n`
    /// being the events it stands for (this one and those left out since the last
    /// line); `None` when it is only counted.
    pub(crate) fn hit(&self) -> Option<u64> {
        self.hit_at(epoch().elapsed().as_millis() as u64 + 1)
    }

    fn hit_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval_ms;
        // One thread wins the line; the others count.
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed) + 1);
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let l = LogLimit::new(1000);
        assert_eq!(l.hit_at(1), Some(1));
        for t in 2..500 {
            assert_eq!(l.hit_at(t), None);
        }
        // 498 left out, and this one.
        assert_eq!(l.hit_at(1001), Some(499));
        assert_eq!(l.hit_at(1500), None);
        assert_eq!(l.hit_at(2001), Some(2));
    }
}
