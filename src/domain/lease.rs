//! The lock table: TTL leases with renewal and fencing tokens, as a pure structure
//! (time is passed in, so every rule is tested with an injected clock). The
//! LockManager actor owns one and adds timers, waiters and persistence.
//!
//! Fencing: each grant of a key gets the next number of that key's counter, which
//! never goes down (across holders and restarts). A resource that remembers the
//! highest token it has seen can refuse a write carrying a lower one: the write of a
//! holder whose lease lapsed while a newer holder already wrote. Tokens carry the
//! epoch of the key's shard in their high bits ([`next_fencing_token`]), so they
//! also grow across a change of the shard's owner in cluster mode.

use super::error::DomainError;
use super::shard::{Epoch, ShardEpochs};
use super::time::{iso, Timestamp};
use chrono::Duration;
use serde::Serialize;
use std::collections::HashMap;

pub(crate) const RESOURCE_TYPES: &[&str] = &["assignment", "branch", "file_group"];
pub(crate) const MAX_KEY_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Lock {
    pub id: String,
    pub lock_key: String,
    pub holder_agent_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub fencing_token: u64,
    #[serde(serialize_with = "ser_time")]
    pub expires_at: Timestamp,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Timestamp,
}

fn ser_time<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*t))
}

/// A validated `lock_acquire`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub key: String,
    pub agent: String,
    pub resource_type: String,
    pub resource_id: String,
    pub ttl: Duration,
    /// Spread placement: the locks the agent holds at other nodes (stored),
    /// counted against `max_locks_per_agent` with those held here.
    pub held_elsewhere: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Acquired {
    Granted(Lock),
    /// The holder asked again: new expiry, same fencing token.
    Renewed(Lock),
    /// Someone else holds it.
    Conflict(Lock),
}

/// Validate `lock_acquire` arguments. `ttl_bounds` are whole seconds from config.
pub(crate) fn validate(
    key: &str,
    agent: &str,
    resource_type: &str,
    resource_id: &str,
    ttl_seconds: f64,
    ttl_bounds: (u64, u64),
) -> Result<Request, DomainError> {
    let key = key.trim();
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(DomainError::invalid(
            "lock_key",
            format!("must be 1-{MAX_KEY_CHARS} characters"),
        ));
    }
    if !RESOURCE_TYPES.contains(&resource_type) {
        return Err(DomainError::invalid(
            "resource_type",
            format!(
                "{resource_type:?} is not one of: {}",
                RESOURCE_TYPES.join(", ")
            ),
        ));
    }
    let (min, max) = ttl_bounds;
    if !(ttl_seconds >= min as f64 && ttl_seconds <= max as f64) {
        return Err(DomainError::invalid(
            "ttl_seconds",
            format!("must be from {min} to {max} seconds, got {ttl_seconds}"),
        ));
    }
    Ok(Request {
        key: key.to_string(),
        agent: agent.to_string(),
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
        ttl: Duration::milliseconds((ttl_seconds * 1000.0) as i64),
        held_elsewhere: 0,
    })
}

pub(crate) fn conflict(l: &Lock) -> DomainError {
    DomainError::LockConflict {
        key: l.lock_key.clone(),
        holder: l.holder_agent_id.clone(),
        expires_at: iso(l.expires_at),
    }
}

/// The fencing token of a grant by the owner of the key's shard under `epoch`,
/// after `last` (the key's last token, 0 if none): `(epoch << 32) | counter`
/// (cluster.md §2). Within one epoch the counter goes on from `last`; a newer
/// epoch starts above every token of older ones, even ones its new owner never
/// saw (an old owner's last grants may be lost with it). With
/// [`Epoch::SINGLE_NODE`] this is `last + 1`, the tokens of every earlier version.
pub fn next_fencing_token(last: u64, epoch: Epoch) -> u64 {
    let floor = u64::try_from(epoch.0).unwrap_or(0).saturating_mul(1 << 32);
    last.max(floor).saturating_add(1)
}

#[derive(Debug, Default, Clone)]
pub(crate) struct LockTable {
    /// The epoch each key's shard is owned at: the high bits of its tokens.
    epochs: ShardEpochs,
    locks: HashMap<String, Lock>,
    /// Last fencing token handed out per key, for keys held or used since start-up
    /// (the rest are in storage); only grows.
    counters: HashMap<String, u64>,
    /// Stored leases that had lapsed when restored, for the owner to delete.
    lapsed: Vec<Lock>,
    /// Agent id → entries of `locks` it holds (a lease that lapsed a moment ago
    /// counts until its timer removes it, a few ms later).
    held_by: HashMap<String, usize>,
}

/// Refusal of a lock call beyond a per-agent cap, naming the cap.
pub(crate) fn too_many(what: String) -> DomainError {
    DomainError::refused(super::error::ErrorCode::TooManyLocks, what)
}

impl LockTable {
    /// Locks held (a lapsed lease counts until its timer removes it).
    pub(crate) fn len(&self) -> usize {
        self.locks.len()
    }

    /// Rebuild from storage: live and stored locks, and the counters, to grant
    /// under `epoch`.
    pub(crate) fn restore(
        locks: Vec<Lock>,
        counters: Vec<(String, u64)>,
        epochs: ShardEpochs,
        now: Timestamp,
    ) -> LockTable {
        let mut t = LockTable {
            epochs,
            counters: counters.into_iter().collect(),
            ..Default::default()
        };
        for l in locks {
            let c = t.counters.entry(l.lock_key.clone()).or_insert(0);
            *c = (*c).max(l.fencing_token);
            if l.expires_at > now {
                t.insert(l);
            } else {
                t.lapsed.push(l);
            }
        }
        t
    }

    fn insert(&mut self, l: Lock) {
        *self.held_by.entry(l.holder_agent_id.clone()).or_insert(0) += 1;
        if let Some(old) = self.locks.insert(l.lock_key.clone(), l) {
            self.uncount(&old);
        }
    }

    fn remove(&mut self, key: &str) -> Option<Lock> {
        let l = self.locks.remove(key)?;
        self.uncount(&l);
        Some(l)
    }

    fn uncount(&mut self, l: &Lock) {
        if let Some(n) = self.held_by.get_mut(&l.holder_agent_id) {
            *n -= 1;
            if *n == 0 {
                self.held_by.remove(&l.holder_agent_id);
            }
        }
    }

    /// Locks `agent` holds.
    pub(crate) fn held_by(&self, agent: &str) -> usize {
        self.held_by.get(agent).copied().unwrap_or(0)
    }

    /// Whether `req` may take one more lock under `max` per agent: a renewal
    /// always may (it takes nothing new).
    pub(crate) fn check_cap(
        &self,
        req: &Request,
        now: Timestamp,
        max: usize,
    ) -> Result<(), DomainError> {
        let renewal = self
            .get(&req.key, now)
            .is_some_and(|l| l.holder_agent_id == req.agent);
        if renewal || self.held_by(&req.agent) + req.held_elsewhere < max {
            return Ok(());
        }
        Err(too_many(format!(
            "you hold {max} locks (max_locks_per_agent); release one before acquiring {}",
            req.key
        )))
    }

    /// Whether the last fencing token of `key` is known here (held now, or used
    /// since start-up). An unknown key's counter is read from storage first.
    pub(crate) fn knows(&self, key: &str) -> bool {
        self.counters.contains_key(key)
    }

    /// The last fencing token stored for `key` (counters only grow: the larger of
    /// what storage and this table know wins).
    pub(crate) fn learn(&mut self, key: &str, stored: u64) {
        let c = self.counters.entry(key.to_string()).or_insert(0);
        *c = (*c).max(stored);
    }

    /// Forget the counters of keys no lock holds (but `keep`) once there are more
    /// than `cap` of them: they are stored, and read back on next use, so memory
    /// stays bounded. Returns whether any was forgotten.
    pub(crate) fn trim_counters(&mut self, cap: usize, keep: &str) -> bool {
        if self.counters.len() <= cap + self.locks.len() + 1 {
            return false;
        }
        let held = &self.locks;
        self.counters
            .retain(|k, _| k.as_str() == keep || held.contains_key(k));
        true
    }

    /// The stored leases that had already lapsed at [`LockTable::restore`] (once).
    pub(crate) fn take_lapsed(&mut self) -> Vec<Lock> {
        std::mem::take(&mut self.lapsed)
    }

    /// The live lock on `key`, if any.
    pub(crate) fn get(&self, key: &str, now: Timestamp) -> Option<&Lock> {
        self.locks.get(key).filter(|l| l.expires_at > now)
    }

    pub(crate) fn acquire(
        &mut self,
        req: &Request,
        now: Timestamp,
        new_id: &mut dyn FnMut() -> String,
    ) -> Acquired {
        if let Some(l) = self.locks.get_mut(&req.key).filter(|l| l.expires_at > now) {
            if l.holder_agent_id != req.agent {
                return Acquired::Conflict(l.clone());
            }
            l.expires_at = now + req.ttl;
            l.resource_type = req.resource_type.clone();
            l.resource_id = req.resource_id.clone();
            return Acquired::Renewed(l.clone());
        }
        let token = {
            let c = self.counters.entry(req.key.clone()).or_insert(0);
            *c = next_fencing_token(*c, self.epochs.of(&req.key));
            *c
        };
        let l = Lock {
            id: new_id(),
            lock_key: req.key.clone(),
            holder_agent_id: req.agent.clone(),
            resource_type: req.resource_type.clone(),
            resource_id: req.resource_id.clone(),
            fencing_token: token,
            expires_at: now + req.ttl,
            created_at: now,
        };
        self.insert(l.clone());
        Acquired::Granted(l)
    }

    /// `lock_release` by `agent`: only the live holder may release.
    pub(crate) fn release(
        &mut self,
        key: &str,
        agent: &str,
        now: Timestamp,
    ) -> Result<Lock, DomainError> {
        match self.get(key, now) {
            Some(l) if l.holder_agent_id == agent => {
                Ok(self.remove(key).expect("invariant: just found"))
            }
            Some(l) => Err(DomainError::LockNotHeld {
                key: key.to_string(),
                holder: Some(l.holder_agent_id.clone()),
            }),
            None => Err(DomainError::LockNotHeld {
                key: key.to_string(),
                holder: None,
            }),
        }
    }

    /// Operator force-release of a live lock.
    pub(crate) fn force_release(&mut self, key: &str, now: Timestamp) -> Option<Lock> {
        self.get(key, now)?;
        self.remove(key)
    }

    /// Drop the lock on `key` if its lease has lapsed; returns it.
    pub(crate) fn expire(&mut self, key: &str, now: Timestamp) -> Option<Lock> {
        if self.locks.get(key).is_some_and(|l| l.expires_at <= now) {
            return self.remove(key);
        }
        None
    }

    /// Live locks, by key.
    pub(crate) fn list(&self, now: Timestamp) -> Vec<Lock> {
        let mut v: Vec<Lock> = self
            .locks
            .values()
            .filter(|l| l.expires_at > now)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.lock_key.cmp(&b.lock_key));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::shard::shard_of;
    use chrono::{TimeZone, Utc};

    fn t(s: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn req(agent: &str, ttl: i64) -> Request {
        validate("k", agent, "branch", "main", ttl as f64, (1, 86400)).unwrap()
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("l{n}")
        }
    }

    #[test]
    fn locks_per_agent_are_capped_and_counted_through_every_exit() {
        let mut tab = LockTable::default();
        let mut g = ids();
        let on = |key: &str, agent: &str, ttl: i64| {
            validate(key, agent, "branch", "", ttl as f64, (1, 86400)).unwrap()
        };
        for k in ["a", "b"] {
            tab.check_cap(&on(k, "al", 10), t(0), 2).unwrap();
            tab.acquire(&on(k, "al", 10), t(0), &mut g);
        }
        assert_eq!(tab.held_by("al"), 2);
        let e = tab.check_cap(&on("c", "al", 10), t(0), 2).unwrap_err();
        assert_eq!(e.code(), crate::domain::ErrorCode::TooManyLocks);
        assert!(e.to_string().contains("max_locks_per_agent"), "{e}");
        // Renewing a held key takes nothing new; others are not affected.
        tab.check_cap(&on("a", "al", 10), t(1), 2).unwrap();
        tab.check_cap(&on("c", "bo", 10), t(1), 2).unwrap();
        // Locks held at other nodes (spread placement) count too.
        let two_elsewhere = Request {
            held_elsewhere: 2,
            ..on("c", "bo", 10)
        };
        assert!(tab.check_cap(&two_elsewhere, t(1), 2).is_err());
        let renewal_elsewhere = Request {
            held_elsewhere: 5,
            ..on("a", "al", 10)
        };
        tab.check_cap(&renewal_elsewhere, t(1), 2).unwrap();
        // Release, expiry, force-release and a lapsed lease taken over all count down.
        tab.release("a", "al", t(1)).unwrap();
        assert_eq!(tab.held_by("al"), 1);
        tab.acquire(&on("b", "bo", 10), t(11), &mut g);
        assert_eq!((tab.held_by("al"), tab.held_by("bo")), (0, 1));
        tab.force_release("b", t(12)).unwrap();
        tab.acquire(&on("c", "bo", 1), t(12), &mut g);
        tab.expire("c", t(20)).unwrap();
        assert_eq!(tab.held_by("bo"), 0);
    }

    #[test]
    fn grant_renew_conflict_release() {
        let mut tab = LockTable::default();
        let mut g = ids();
        let Acquired::Granted(a) = tab.acquire(&req("alice", 10), t(0), &mut g) else {
            panic!()
        };
        assert_eq!((a.fencing_token, a.expires_at), (1, t(10)));
        let Acquired::Renewed(r) = tab.acquire(&req("alice", 10), t(5), &mut g) else {
            panic!()
        };
        assert_eq!(
            (r.fencing_token, r.expires_at, r.id.as_str()),
            (1, t(15), "l1")
        );
        let Acquired::Conflict(c) = tab.acquire(&req("bob", 10), t(6), &mut g) else {
            panic!()
        };
        assert_eq!(c.holder_agent_id, "alice");
        assert_eq!(
            tab.release("k", "bob", t(7)).unwrap_err().code(),
            "LOCK_NOT_HELD"
        );
        tab.release("k", "alice", t(7)).unwrap();
        assert_eq!(
            tab.release("k", "alice", t(7)).unwrap_err().code(),
            "LOCK_NOT_HELD"
        );
        let Acquired::Granted(b) = tab.acquire(&req("bob", 10), t(8), &mut g) else {
            panic!()
        };
        assert_eq!(b.fencing_token, 2, "tokens only grow across holders");
    }

    #[test]
    fn expiry_frees_the_key() {
        let mut tab = LockTable::default();
        let mut g = ids();
        tab.acquire(&req("alice", 10), t(0), &mut g);
        assert!(tab.expire("k", t(9)).is_none());
        assert!(tab.get("k", t(10)).is_none(), "free at its expiry time");
        let Acquired::Granted(b) = tab.acquire(&req("bob", 10), t(10), &mut g) else {
            panic!()
        };
        assert_eq!(b.fencing_token, 2);
        assert!(tab
            .release("k", "alice", t(11))
            .unwrap_err()
            .to_string()
            .contains("bob"));
        assert_eq!(
            tab.expire("k", t(20)).map(|l| l.holder_agent_id),
            Some("bob".into())
        );
        assert!(tab.list(t(20)).is_empty());
    }

    #[test]
    fn restore_keeps_counters_and_drops_lapsed_leases() {
        let mut tab = LockTable::default();
        let mut g = ids();
        tab.acquire(&req("alice", 10), t(0), &mut g);
        let locks = tab.list(t(0));
        let one = ShardEpochs::default;
        let restored = LockTable::restore(locks.clone(), vec![("k".into(), 7)], one(), t(1));
        assert_eq!(restored.get("k", t(1)).unwrap().holder_agent_id, "alice");
        let mut lapsed = LockTable::restore(locks, vec![("k".into(), 7)], one(), t(10));
        assert!(lapsed.get("k", t(10)).is_none());
        assert_eq!(lapsed.take_lapsed().len(), 1, "handed over for deletion");
        assert!(lapsed.take_lapsed().is_empty(), "only once");
        let Acquired::Granted(b) = lapsed.acquire(&req("bob", 10), t(10), &mut g) else {
            panic!()
        };
        assert_eq!(b.fencing_token, 8);
    }

    #[test]
    fn tokens_grow_within_and_across_epochs() {
        assert_eq!(next_fencing_token(0, Epoch::SINGLE_NODE), 1);
        assert_eq!(next_fencing_token(41, Epoch::SINGLE_NODE), 42);
        let first = next_fencing_token(41, Epoch(1));
        assert_eq!(first, (1 << 32) | 1);
        assert_eq!(next_fencing_token(first, Epoch(1)), (1 << 32) | 2);
        // A newer epoch's first token exceeds anything the older one could have
        // granted, stored or not.
        let old_last = (1u64 << 32) | 0xffff_fffe;
        let next = next_fencing_token(first, Epoch(2));
        assert!(next > old_last && next == (2 << 32) | 1);
        // Stored tokens above the floor (a counter that overflowed) still grow.
        assert_eq!(next_fencing_token(5 << 32, Epoch(3)), (5 << 32) + 1);
    }

    /// A table restored under a newer epoch (its shard changed owner) grants above
    /// every token of the old one, whatever the old owner stored; one node's
    /// tokens are `last + 1`, as before epochs existed. Each key takes the epoch
    /// of its own shard.
    #[test]
    fn a_table_grants_in_its_epoch() {
        let grant =
            |tab: &mut LockTable, at: i64| match tab.acquire(&req("bob", 10), t(at), &mut ids()) {
                Acquired::Granted(l) => l.fencing_token,
                other => panic!("{other:?}"),
            };
        let stored = || vec![("k".to_string(), 7)];
        let mut single = LockTable::restore(Vec::new(), stored(), ShardEpochs::default(), t(0));
        assert_eq!(grant(&mut single, 0), 8);
        let other = (0..100)
            .map(|i| format!("other-{i}"))
            .find(|o| shard_of(o) != shard_of("k"))
            .unwrap();
        let epochs =
            ShardEpochs::from_held(&[(shard_of("k"), Epoch(3)), (shard_of(&other), Epoch(9))]);
        let mut moved = LockTable::restore(Vec::new(), stored(), epochs, t(0));
        assert_eq!(grant(&mut moved, 0), (3 << 32) | 1);
        moved.release("k", "bob", t(1)).unwrap();
        assert_eq!(grant(&mut moved, 1), (3 << 32) | 2);
        let mut r = req("bob", 10);
        r.key = other;
        let Acquired::Granted(l) = moved.acquire(&r, t(1), &mut ids()) else {
            panic!()
        };
        assert_eq!(l.fencing_token, (9 << 32) | 1, "its own shard's epoch");
    }

    #[test]
    fn counters_are_learned_and_trimmed() {
        let mut tab = LockTable::default();
        assert!(!tab.knows("k"));
        tab.learn("k", 7);
        assert!(tab.knows("k"));
        let a = match tab.acquire(&req("alice", 10), t(0), &mut ids()) {
            Acquired::Granted(l) => l,
            other => panic!("{other:?}"),
        };
        assert_eq!(a.fencing_token, 8, "continues from the stored counter");
        tab.learn("k", 3);
        tab.release("k", "alice", t(1)).unwrap();
        tab.learn("other", 1);
        tab.learn("third", 1);
        assert!(tab.trim_counters(0, "third"));
        assert!(!tab.knows("k") && !tab.knows("other"), "no lock holds them");
        assert!(tab.knows("third"), "the key being acquired is kept");
    }

    #[test]
    fn validation() {
        assert!(validate("", "a", "branch", "", 10.0, (1, 100)).is_err());
        let e = validate("k", "a", "folder", "", 10.0, (1, 100)).unwrap_err();
        assert!(e.to_string().contains("assignment, branch, file_group"));
        let e = validate("k", "a", "branch", "", 0.5, (1, 100)).unwrap_err();
        assert!(e.to_string().contains("from 1 to 100"), "{e}");
        assert!(validate("k", "a", "branch", "", -5.0, (1, 100)).is_err());
        assert!(validate("k", "a", "branch", "", f64::NAN, (1, 100)).is_err());
        assert!(validate("k", "a", "branch", "", 101.0, (1, 100)).is_err());
        assert!(validate("k", "a", "assignment", "", 100.0, (1, 100)).is_ok());
    }

    #[test]
    fn force_release() {
        let mut tab = LockTable::default();
        tab.acquire(&req("alice", 10), t(0), &mut ids());
        assert!(tab.force_release("k", t(1)).is_some());
        assert!(tab.force_release("k", t(1)).is_none());
    }
}
