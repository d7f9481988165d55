//! Audit event ids (`audit_events.id`), chosen by the hub when it builds the row,
//! before the row is queued (cluster.md §3: nothing comes from AUTOINCREMENT), so
//! that re-applying a batch finds its rows stored and inserts nothing twice.
//!
//! `id = tick << 10 | shard`, below 2^53 (JavaScript and jq 1.6 hold JSON numbers
//! as doubles: `/operator/audit` ids must survive them exactly):
//! - `shard` (10 bits): the shard of the event's entity, whose row it is. Only that
//!   shard's owner writes the shard's rows (the epoch fence, cluster.md §2), so two
//!   nodes never make ids with the same low bits at once.
//! - `tick` (43 bits): quarter milliseconds since 2025-01-01T00:00:00Z as a logical
//!   clock per shard, `max(previous + 1, now)`. The ids of a shard are unique by
//!   construction and never go back, whatever the wall clock does; they run ahead
//!   of it only while one shard makes more than 4,000 a second (one task's or lock's
//!   transitions never do) and fall back in step when it slows. 43 bits last until
//!   2094; after that ids go on growing, beyond 2^53.
//!
//! A node makes ids for its shards only after [`AuditClock::after`] the largest id
//! stored (read at load), so new ids sort after every stored one: a former owner's,
//! an older version's (AUTOINCREMENT numbers from 1) and a converted agent-hub-mcp
//! database's (1 to n). Sorting by id is then sorting by time, to the tick.

use super::shard::{ShardId, SHARD_COUNT};
use super::time::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every id the hub makes is below this until 2094; a stored id at or above it is
/// not the hub's (no version wrote one), and is not waited for by [`AuditClock::after`].
pub(crate) const ID_LIMIT: i64 = 1 << 53;

/// 2025-01-01T00:00:00Z in microseconds since the Unix epoch.
const EPOCH_MICROS: i64 = 1_735_689_600_000_000;
const MICROS_PER_TICK: i64 = 250;
const SHARD_BITS: u32 = 10;
/// The largest tick whose id still fits an i64.
const MAX_TICK: u64 = (1 << (63 - SHARD_BITS)) - 1;

// The shard fills the low bits exactly.
const _: () = assert!(SHARD_COUNT as u64 == 1 << SHARD_BITS);

/// The last tick used by each shard. One per process ([`audit_id`]); tests make
/// their own.
pub(crate) struct AuditClock {
    last: [AtomicU64; SHARD_COUNT as usize],
}

impl AuditClock {
    pub(crate) const fn new() -> AuditClock {
        AuditClock {
            last: [const { AtomicU64::new(0) }; SHARD_COUNT as usize],
        }
    }

    /// A new id for a row of `shard` made at `now`.
    pub(crate) fn next(&self, shard: ShardId, now: Timestamp) -> i64 {
        let now_tick = tick_of(now);
        let step = |last: u64| (last + 1).max(now_tick).min(MAX_TICK);
        let slot = &self.last[usize::from(shard.0) % SHARD_COUNT as usize];
        // Each caller moves the shard's tick from the value it read to a larger
        // one, so no two callers get the same tick (short of MAX_TICK, centuries away).
        let last = match slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(step(l)))
        {
            Ok(l) | Err(l) => l,
        };
        ((step(last) << SHARD_BITS) | u64::from(shard.0 % SHARD_COUNT)) as i64
    }

    /// Make every later id of every shard larger than `stored`, the largest id
    /// stored below [`ID_LIMIT`].
    pub(crate) fn after(&self, stored: i64) {
        let Ok(stored) = u64::try_from(stored) else {
            return;
        };
        let tick = (stored >> SHARD_BITS).min(MAX_TICK);
        for slot in &self.last {
            slot.fetch_max(tick, Ordering::Relaxed);
        }
    }
}

/// The tick of `now` (0 before 2025: the logical clock then counts on from the
/// stored ids alone).
fn tick_of(now: Timestamp) -> u64 {
    let micros = now.timestamp_micros().saturating_sub(EPOCH_MICROS);
    u64::try_from(micros / MICROS_PER_TICK).unwrap_or(0)
}

/// This process's clock: one per process, so that every hub and store in it (a
/// test runs several) makes distinct ids.
static CLOCK: AuditClock = AuditClock::new();

/// A new audit id for a row of `shard` made at `now`.
pub(crate) fn audit_id(shard: ShardId, now: Timestamp) -> i64 {
    CLOCK.next(shard, now)
}

/// Every later [`audit_id`] is larger than `stored` (the largest stored id below
/// [`ID_LIMIT`]): called with what a node loads before it serves.
pub(crate) fn audit_ids_after(stored: i64) {
    CLOCK.after(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(ms: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
    }

    fn shard(id: i64) -> u16 {
        (id & 1023) as u16
    }

    #[test]
    fn ids_follow_time_and_carry_their_shard() {
        let c = AuditClock::new();
        let a = c.next(ShardId(7), at(0));
        let b = c.next(ShardId(3), at(1));
        let d = c.next(ShardId(1023), at(1000));
        assert!(a < b && b < d, "{a} {b} {d}");
        assert_eq!((shard(a), shard(b), shard(d)), (7, 3, 1023));
        // A tick is a quarter millisecond since 2025.
        assert_eq!(d - b, (999 * 4) << 10 | (1023 - 3));
        assert!(d < ID_LIMIT, "JSON-safe: {d}");
        // Until 2094.
        let late = Utc.with_ymd_and_hms(2094, 9, 1, 0, 0, 0).unwrap();
        assert!(c.next(ShardId(1023), late) < ID_LIMIT);
    }

    /// Many ids of one shard in one tick, and a clock that goes back: every id is
    /// new and larger than the one before.
    #[test]
    fn ids_of_a_shard_grow_whatever_the_clock_does() {
        let c = AuditClock::new();
        let mut last = 0;
        for i in 0..10_000 {
            let now = if i % 3 == 0 { at(0) } else { at(-5_000) };
            let id = c.next(ShardId(42), now);
            assert!(id > last, "{id} after {last}");
            last = id;
        }
        // Past the burst, the clock is back to the wall's time.
        assert_eq!(
            c.next(ShardId(42), at(60_000)) >> 10,
            tick_of(at(60_000)) as i64
        );
    }

    #[test]
    fn ids_are_unique_under_concurrency() {
        let c = std::sync::Arc::new(AuditClock::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    (0..20_000)
                        .map(|i| c.next(ShardId((i % 3) as u16), at(t)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(all.insert(id), "{id} twice");
            }
        }
        assert_eq!(all.len(), 80_000);
    }

    /// After what is stored: old AUTOINCREMENT numbers, converted ones, and ids of
    /// a former owner whose clock ran ahead of ours.
    #[test]
    fn ids_sort_after_what_is_stored() {
        let c = AuditClock::new();
        c.after(1_234);
        assert!(c.next(ShardId(0), at(0)) > 1_234);
        let ahead = AuditClock::new().next(ShardId(5), at(3_600_000));
        c.after(ahead);
        for s in [0, 5, 1023] {
            assert!(c.next(ShardId(s), at(0)) > ahead, "shard {s}");
        }
        // Before 2025 (a clock far off), ids still grow from what is stored.
        let c = AuditClock::new();
        c.after(99);
        let old = Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0).unwrap();
        let (x, y) = (c.next(ShardId(1), old), c.next(ShardId(1), old));
        assert!(99 < x && x < y);
        // Nothing stored, or nonsense: no effect.
        c.after(-1);
        assert!(c.next(ShardId(1), old) > y);
    }

    #[test]
    fn the_process_clock_hands_out_distinct_ids() {
        let now = at(0);
        audit_ids_after(0);
        let a = audit_id(ShardId(9), now);
        assert_ne!(a, audit_id(ShardId(9), now));
        assert_eq!(shard(a), 9);
    }
}
