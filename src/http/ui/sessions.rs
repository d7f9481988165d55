//! Dashboard sessions, as plain data with time passed in: the table of logged-in
//! browsers (bounded, expiring, keyed by a digest of the cookie's session id so that
//! memory never holds a usable cookie) and the cap on failed logins. The handlers
//! in `login.rs` and `guard.rs` hold these behind a mutex.

use crate::auth::{digest, Digest};
use crate::domain::time::Timestamp;
use chrono::Duration;
use std::collections::HashMap;

/// How long sessions live and how many there may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Unused this long: ended.
    pub idle: Duration,
    /// This long after its login: ended, used or not.
    pub max_age: Duration,
    pub max_sessions: usize,
}

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    /// The form token every action of this session must carry.
    csrf: String,
    created: Timestamp,
    last_used: Timestamp,
    /// The operator token it logged in with: a rotated token ends the session.
    operator: Digest,
}

/// What a login hands the browser: the cookie's session id, and the session's
/// CSRF token (put in every form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    pub id: String,
    pub csrf: String,
}

/// Every live session.
#[derive(Debug)]
pub(crate) struct SessionTable {
    by_id: HashMap<Digest, Session>,
    limits: Limits,
}

impl SessionTable {
    pub(crate) fn new(limits: Limits) -> SessionTable {
        SessionTable {
            by_id: HashMap::new(),
            limits,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn live(&self, s: &Session, operator: &Digest, now: Timestamp) -> bool {
        s.operator == *operator
            && now - s.last_used < self.limits.idle
            && now - s.created < self.limits.max_age
    }

    /// A new session for a login with `operator`'s token; the browser's previous
    /// session (`old`, its cookie) ends, so the id changes at every login. Expired
    /// sessions go first; a full table then drops its least recently used one.
    pub(crate) fn login(
        &mut self,
        old: Option<&str>,
        operator: Digest,
        now: Timestamp,
        fresh: &mut dyn FnMut() -> String,
    ) -> Issued {
        if let Some(old) = old {
            self.by_id.remove(&digest(old));
        }
        self.by_id.retain(|_, s| {
            now - s.last_used < self.limits.idle && now - s.created < self.limits.max_age
        });
        while self.by_id.len() >= self.limits.max_sessions {
            let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.by_id.remove(&oldest);
        }
        let issued = Issued {
            id: fresh(),
            csrf: fresh(),
        };
        self.by_id.insert(
            digest(&issued.id),
            Session {
                csrf: issued.csrf.clone(),
                created: now,
                last_used: now,
                operator,
            },
        );
        issued
    }

    /// The CSRF token of live session `id` (which counts as used now); `None` for
    /// an unknown, expired or other-token session (an expired one is removed).
    pub(crate) fn check(&mut self, id: &str, operator: &Digest, now: Timestamp) -> Option<String> {
        let key = digest(id);
        let s = self.by_id.get(&key)?;
        if !self.live(s, operator, now) {
            self.by_id.remove(&key);
            return None;
        }
        let s = self.by_id.get_mut(&key)?;
        s.last_used = now;
        Some(s.csrf.clone())
    }

    /// Whether session `id` is live, without counting this as a use (an open event
    /// stream does not keep an unattended session alive).
    pub(crate) fn alive(&self, id: &str, operator: &Digest, now: Timestamp) -> bool {
        self.by_id
            .get(&digest(id))
            .is_some_and(|s| self.live(s, operator, now))
    }

    /// End session `id` (logout).
    pub(crate) fn end(&mut self, id: &str) {
        self.by_id.remove(&digest(id));
    }
}

/// Failed logins, counted in one-minute windows for every client together: the
/// token is 256 random bits, so the cap is about the work and log lines a guesser
/// causes, not about the odds of a guess.
#[derive(Debug)]
pub(crate) struct FailedLogins {
    max_per_minute: u32,
    window_start: Option<Timestamp>,
    count: u32,
}

impl FailedLogins {
    pub(crate) fn new(max_per_minute: u32) -> FailedLogins {
        FailedLogins {
            max_per_minute,
            window_start: None,
            count: 0,
        }
    }

    fn roll(&mut self, now: Timestamp) {
        match self.window_start {
            Some(start) if now - start < Duration::minutes(1) && now >= start => {}
            _ => {
                self.window_start = Some(now);
                self.count = 0;
            }
        }
    }

    /// Whether a login may be tried at `now`; when not, the whole seconds until
    /// the window ends.
    pub(crate) fn allow(&mut self, now: Timestamp) -> Result<(), u64> {
        self.roll(now);
        if self.count < self.max_per_minute {
            return Ok(());
        }
        let end = self.window_start.unwrap_or(now) + Duration::minutes(1);
        let ms = (end - now).num_milliseconds().max(0) as u64;
        Err(ms.div_ceil(1000).max(1))
    }

    /// Count a failed login at `now`.
    pub(crate) fn failed(&mut self, now: Timestamp) {
        self.roll(now);
        self.count = self.count.saturating_add(1);
    }
}

/// Whether two secrets are equal, compared as digests: the time taken tells
/// nothing about how much of a guess was right.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    digest(a) == digest(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn t0() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn limits(max: usize) -> Limits {
        Limits {
            idle: Duration::minutes(10),
            max_age: Duration::hours(1),
            max_sessions: max,
        }
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id{n}")
        }
    }

    #[test]
    fn a_session_lives_until_idle_or_too_old() {
        let op = digest("operator");
        let mut table = SessionTable::new(limits(4));
        let mut ids = counter();
        let s = table.login(None, op, t0(), &mut ids);
        assert_ne!(s.id, s.csrf);
        assert_eq!(table.check(&s.id, &op, t0()), Some(s.csrf.clone()));
        assert!(table.alive(&s.id, &op, t0() + Duration::minutes(9)));
        assert!(
            !table.alive(&s.id, &op, t0() + Duration::minutes(10)),
            "alive() is not a use"
        );
        assert_eq!(table.check("nope", &op, t0()), None);
        // Used every 9 minutes: alive until the hour is over.
        let mut at = t0();
        for _ in 0..6 {
            at += Duration::minutes(9);
            assert!(table.check(&s.id, &op, at).is_some(), "{at}");
        }
        at += Duration::minutes(9);
        assert_eq!(table.check(&s.id, &op, at), None, "older than max_age");
        assert_eq!(table.len(), 0, "an expired session is removed");
        let s = table.login(None, op, t0(), &mut ids);
        assert_eq!(
            table.check(&s.id, &op, t0() + Duration::minutes(10)),
            None,
            "idle"
        );
    }

    #[test]
    fn a_login_rotates_the_id_and_a_new_operator_token_ends_sessions() {
        let op = digest("operator");
        let mut table = SessionTable::new(limits(4));
        let mut ids = counter();
        let first = table.login(None, op, t0(), &mut ids);
        let second = table.login(Some(&first.id), op, t0(), &mut ids);
        assert_ne!(first.id, second.id);
        assert_eq!(table.check(&first.id, &op, t0()), None, "old id ended");
        assert_eq!(table.len(), 1);
        assert_eq!(table.check(&second.id, &digest("rotated"), t0()), None);
        assert_eq!(table.len(), 0);
        let s = table.login(None, op, t0(), &mut ids);
        table.end(&s.id);
        assert_eq!(table.check(&s.id, &op, t0()), None, "logged out");
    }

    #[test]
    fn a_full_table_drops_its_least_recently_used_session() {
        let op = digest("operator");
        let mut table = SessionTable::new(limits(2));
        let mut ids = counter();
        let a = table.login(None, op, t0(), &mut ids);
        let b = table.login(None, op, t0() + Duration::seconds(1), &mut ids);
        assert!(table
            .check(&a.id, &op, t0() + Duration::seconds(2))
            .is_some());
        let c = table.login(None, op, t0() + Duration::seconds(3), &mut ids);
        assert_eq!(table.len(), 2);
        let at = t0() + Duration::seconds(4);
        assert!(table.check(&a.id, &op, at).is_some());
        assert_eq!(table.check(&b.id, &op, at), None, "least recently used");
        assert!(table.check(&c.id, &op, at).is_some());
    }

    #[test]
    fn failed_logins_are_capped_per_minute() {
        let mut f = FailedLogins::new(2);
        assert_eq!(f.allow(t0()), Ok(()));
        f.failed(t0());
        f.failed(t0() + Duration::seconds(10));
        assert_eq!(f.allow(t0() + Duration::seconds(20)), Err(40));
        assert_eq!(f.allow(t0() + Duration::milliseconds(59_500)), Err(1));
        assert_eq!(f.allow(t0() + Duration::minutes(1)), Ok(()), "new window");
        // A clock going backwards starts a new window rather than locking out.
        f.failed(t0() + Duration::minutes(1));
        f.failed(t0() + Duration::minutes(1));
        assert!(f.allow(t0() + Duration::minutes(1)).is_err());
        assert_eq!(f.allow(t0()), Ok(()));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", "abc"));
    }
}
