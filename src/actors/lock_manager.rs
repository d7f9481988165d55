//! LockManager: the one owner of the lock table. Contention is its normal case:
//! a conflicting `lock_acquire` either fails at once with the holder, or parks as a
//! waiter (first come, first served) that gets the lock the moment it is released or
//! its lease lapses. Leases are enforced by timers, not only when someone looks.
//! Messages: [`Acquire`], [`Release`], [`ForceRelease`], [`Expire`], [`Count`].

use crate::config::LiveSettings;
use crate::domain::ids::random_hex;
use crate::domain::lease::{conflict, too_many, Acquired, Lock, LockTable, Request};
use crate::domain::time::Timestamp;
use crate::domain::{DomainError, ErrorCode};
use crate::store::{AuditRow, LockGone, Op, Store, Ticket};
use actix::prelude::*;
use chrono::Utc;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const TIMER_MARGIN: Duration = Duration::from_millis(5);

/// A granted or renewed lock, whether it was a renewal, and the write's ticket.
pub(crate) type Grant = (Lock, bool, Ticket);

struct Waiter {
    id: u64,
    req: Request,
    reply: oneshot::Sender<Result<Grant, DomainError>>,
}

pub(crate) struct LockManager {
    table: LockTable,
    /// Per-agent caps (locks held, acquires waiting) are read from here per call:
    /// a reload may change them.
    settings: Arc<LiveSettings>,
    /// Key → parked acquirers, oldest first.
    waiters: HashMap<String, VecDeque<Waiter>>,
    /// Agent id → its parked acquirers (every key).
    waits_by: HashMap<String, usize>,
    next_waiter: u64,
    /// Removes waiters whose caller is gone, every second while any wait.
    sweep: Option<SpawnHandle>,
    /// The pending expiry timer of each held key; re-arming cancels the previous one
    /// so that renewals do not pile up timers.
    timers: HashMap<String, SpawnHandle>,
    /// Where state changes go; the writer thread holds the other end.
    store: Store,
    /// How many times counters of free keys were forgotten (see `NeedCounter`).
    trims: u64,
}

impl LockManager {
    pub(crate) fn new(table: LockTable, settings: Arc<LiveSettings>, store: Store) -> Self {
        LockManager {
            table,
            settings,
            waiters: HashMap::new(),
            waits_by: HashMap::new(),
            next_waiter: 0,
            sweep: None,
            timers: HashMap::new(),
            trims: 0,
            store,
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>, lock: &Lock) {
        // A few ms late rather than early: the handler only frees a lapsed lease.
        let wait = (lock.expires_at - Utc::now()).to_std().unwrap_or_default() + TIMER_MARGIN;
        let handle = ctx.notify_later(Expire(lock.lock_key.clone()), wait);
        if let Some(old) = self.timers.insert(lock.lock_key.clone(), handle) {
            ctx.cancel_future(old);
        }
    }

    fn acquire_now(
        &mut self,
        req: &Request,
        ctx: &mut Context<Self>,
    ) -> Result<Grant, DomainError> {
        let now = Utc::now();
        // Also for a waiter being served: it may have taken other locks meanwhile.
        let max_held = self.settings.load().max_locks_per_agent;
        self.table.check_cap(req, now, max_held)?;
        match self.table.acquire(req, now, &mut || random_hex(6)) {
            Acquired::Conflict(l) => Err(conflict(&l)),
            Acquired::Granted(l) => {
                self.arm(ctx, &l);
                let t = self.store.enqueue(Op::LockUpsert {
                    lock: l.clone(),
                    renewed: false,
                });
                Ok((l, false, t))
            }
            Acquired::Renewed(l) => {
                self.arm(ctx, &l);
                let t = self.store.enqueue(Op::LockUpsert {
                    lock: l.clone(),
                    renewed: true,
                });
                Ok((l, true, t))
            }
        }
    }

    /// While any acquire is parked, drop each second those whose caller hung up
    /// (their receiver is dropped with the HTTP request), so that they neither hold
    /// a place in line nor count as waiting.
    fn sweep_gone_waiters(&mut self, ctx: &mut Context<Self>) {
        if self.sweep.is_some() {
            return;
        }
        let handle = ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| {
            let mut gone = Vec::new();
            act.waiters.retain(|_, queue| {
                queue.retain(|w| {
                    let closed = w.reply.is_closed();
                    if closed {
                        gone.push(w.req.agent.clone());
                    }
                    !closed
                });
                !queue.is_empty()
            });
            // A removed waiter no longer counts against its agent's waits.
            for agent in gone {
                act.unpark(&agent);
            }
            if act.waiters.is_empty() {
                if let Some(h) = act.sweep.take() {
                    ctx.cancel_future(h);
                }
            }
        });
        self.sweep = Some(handle);
    }

    /// `key` just became free: hand it to the oldest waiter still listening.
    fn serve_waiters(&mut self, key: &str, ctx: &mut Context<Self>) {
        while let Some(w) = self.waiters.get_mut(key).and_then(VecDeque::pop_front) {
            self.unpark(&w.req.agent);
            if w.reply.is_closed() {
                continue; // its HTTP request is gone
            }
            let granted = self.acquire_now(&w.req, ctx);
            if self.hand_over(w, granted, ctx) {
                break;
            }
        }
        if self.waiters.get(key).is_some_and(VecDeque::is_empty) {
            self.waiters.remove(key);
        }
    }

    /// Answer a waiter. A grant whose requester vanished in the meantime is taken
    /// back at once, so no lock sits with an agent that never learned it has it.
    /// Returns whether the waiter now holds the lock.
    fn hand_over(
        &mut self,
        w: Waiter,
        answer: Result<Grant, DomainError>,
        ctx: &mut Context<Self>,
    ) -> bool {
        match w.reply.send(answer) {
            Ok(()) => self
                .table
                .get(&w.req.key, Utc::now())
                .is_some_and(|l| l.holder_agent_id == w.req.agent),
            Err(Ok((lock, renewed, _))) => {
                if !renewed {
                    if let Ok(l) =
                        self.table
                            .release(&lock.lock_key, &lock.holder_agent_id, Utc::now())
                    {
                        if let Some(timer) = self.timers.remove(&l.lock_key) {
                            ctx.cancel_future(timer);
                        }
                        self.store.enqueue(Op::LockDelete {
                            key: l.lock_key,
                            id: l.id,
                            holder: l.holder_agent_id,
                            why: LockGone::Withdrawn,
                        });
                    }
                }
                false
            }
            Err(Err(_)) => false,
        }
    }

    /// A waiter of `agent` left its line (served, timed out or gone).
    fn unpark(&mut self, agent: &str) {
        if let Some(n) = self.waits_by.get_mut(agent) {
            *n -= 1;
            if *n == 0 {
                self.waits_by.remove(agent);
            }
        }
    }

    fn freed(&mut self, lock: &Lock, why: LockGone, ctx: &mut Context<Self>) -> Ticket {
        if let Some(timer) = self.timers.remove(&lock.lock_key) {
            ctx.cancel_future(timer);
        }
        let t = self.store.enqueue(Op::LockDelete {
            key: lock.lock_key.clone(),
            id: lock.id.clone(),
            holder: lock.holder_agent_id.clone(),
            why,
        });
        self.serve_waiters(&lock.lock_key, ctx);
        t
    }
}

impl Actor for LockManager {
    type Context = Context<Self>;

    /// Delete the rows of leases that lapsed while the server was down, and re-arm
    /// the timers of those loaded live.
    fn started(&mut self, ctx: &mut Context<Self>) {
        for l in self.table.take_lapsed() {
            self.store.enqueue(Op::LockDelete {
                key: l.lock_key,
                id: l.id,
                holder: l.holder_agent_id,
                why: LockGone::Expired,
            });
        }
        let live = self.table.list(Utc::now());
        for l in live {
            self.arm(ctx, &l);
        }
    }
}

/// `lock_acquire`, waiting up to `wait` when someone else holds the lock.
pub(crate) struct Acquire {
    pub req: Request,
    pub wait: Duration,
    /// The key's last stored fencing token, asked for by [`AcquireReply::NeedCounter`],
    /// with the trim generation that reply gave.
    pub stored_counter: Option<(u64, u64)>,
}

pub(crate) enum AcquireReply {
    Ready(Result<Grant, DomainError>),
    Wait(oneshot::Receiver<Result<Grant, DomainError>>),
    /// The key's counter is not in memory: read it and send the call again with
    /// this trim generation (a trim meanwhile makes the read stale: asked again).
    NeedCounter(Request, u64),
}

/// Counters of keys no lock holds kept in memory at most (the rest are read back).
const KNOWN_COUNTERS: usize = 4096;

/// Locks held and `lock_acquire` calls waiting, for the metrics.
pub(crate) struct Count;

impl Message for Count {
    type Result = (usize, usize);
}

impl Handler<Count> for LockManager {
    type Result = MessageResult<Count>;

    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> Self::Result {
        let waiting = self.waiters.values().map(VecDeque::len).sum();
        MessageResult((self.table.len(), waiting))
    }
}

impl Message for Acquire {
    type Result = AcquireReply;
}

impl Handler<Acquire> for LockManager {
    type Result = MessageResult<Acquire>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let key = &msg.req.key;
        match msg.stored_counter {
            // Known here: the larger counter wins. Unknown and no trim since the
            // read: nobody used the key in between, so the stored value is current.
            Some((n, trims)) if self.table.knows(key) || trims == self.trims => {
                self.table.learn(key, n)
            }
            _ if !self.table.knows(key) => {
                return MessageResult(AcquireReply::NeedCounter(msg.req, self.trims));
            }
            _ => {}
        }
        if self.table.trim_counters(KNOWN_COUNTERS, key) {
            self.trims += 1;
        }
        // A lease that lapsed a moment ago (its timer not fired yet) goes to the
        // waiters in line first, not to this newcomer.
        if let Some(lapsed) = self.table.expire(&msg.req.key, Utc::now()) {
            self.freed(&lapsed, LockGone::Expired, ctx);
        }
        let now = self.acquire_now(&msg.req, ctx);
        let contended = matches!(now, Err(DomainError::LockConflict { .. }));
        if !contended || msg.wait.is_zero() {
            return MessageResult(AcquireReply::Ready(now));
        }
        let waits = self.waits_by.entry(msg.req.agent.clone()).or_insert(0);
        let max = self.settings.load().max_lock_waits_per_agent;
        if *waits >= max {
            return MessageResult(AcquireReply::Ready(Err(too_many(format!(
                "you have {max} lock_acquire calls waiting (max_lock_waits_per_agent); \
                 retry {} without wait_seconds or later",
                msg.req.key
            )))));
        }
        *waits += 1;
        let (tx, rx) = oneshot::channel();
        let id = self.next_waiter;
        self.next_waiter += 1;
        let key = msg.req.key.clone();
        self.waiters
            .entry(key.clone())
            .or_default()
            .push_back(Waiter {
                id,
                req: msg.req,
                reply: tx,
            });
        self.sweep_gone_waiters(ctx);
        ctx.run_later(msg.wait, move |act, ctx| {
            // A lease lapsing this very moment goes to the line in order first.
            if let Some(lapsed) = act.table.expire(&key, Utc::now()) {
                act.freed(&lapsed, LockGone::Expired, ctx);
            }
            let Some(queue) = act.waiters.get_mut(&key) else {
                return;
            };
            let Some(pos) = queue.iter().position(|w| w.id == id) else {
                return; // already served
            };
            let w = queue.remove(pos).expect("invariant: position is in range");
            if queue.is_empty() {
                act.waiters.remove(&key);
            }
            act.unpark(&w.req.agent);
            let answer = match act.table.get(&key, Utc::now()) {
                Some(l) => Err(conflict(l)),
                // Free but not yet handed out (its timer is about to fire): take it.
                None => act.acquire_now(&w.req, ctx),
            };
            act.hand_over(w, answer, ctx);
        });
        MessageResult(AcquireReply::Wait(rx))
    }
}

/// `lock_release` by its holder.
pub(crate) struct Release {
    pub key: String,
    pub agent: String,
    /// Only the grant with this id and expiry (not one renewed since): what a
    /// grant taken back after the fact names.
    pub only: Option<(String, crate::domain::time::Timestamp)>,
}

impl Message for Release {
    type Result = Result<(Lock, Ticket), DomainError>;
}

impl Handler<Release> for LockManager {
    type Result = Result<(Lock, Ticket), DomainError>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        if let Some((id, expires_at)) = &msg.only {
            let same = self
                .table
                .get(&msg.key, now)
                .is_some_and(|l| &l.id == id && &l.expires_at == expires_at);
            if !same {
                return Err(DomainError::LockNotHeld {
                    key: msg.key,
                    holder: None,
                });
            }
        }
        let lock = self.table.release(&msg.key, &msg.agent, now)?;
        let t = self.freed(&lock, LockGone::Released, ctx);
        Ok((lock, t))
    }
}

/// `hubctl unlock`: the operator takes a lock away, with an audit record.
pub(crate) struct ForceRelease {
    pub key: String,
}

impl Message for ForceRelease {
    type Result = Result<(Lock, Ticket), DomainError>;
}

impl Handler<ForceRelease> for LockManager {
    type Result = Result<(Lock, Ticket), DomainError>;

    fn handle(&mut self, msg: ForceRelease, ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        let lock = self.table.force_release(&msg.key, now).ok_or_else(|| {
            DomainError::refused(
                ErrorCode::LockNotFound,
                format!("lock {} is not held by anyone", msg.key),
            )
        })?;
        let audit = self
            .store
            .enqueue(Op::Audit(released_row("lock_force_released", &lock, now)));
        let t = self.freed(&lock, LockGone::Forced, ctx);
        Ok((lock, t.max(audit)))
    }
}

/// An agent was removed from agents.env: every lock it holds is released (each
/// audited), so its keys pass to the next waiters instead of waiting out a TTL.
pub(crate) struct ReleaseHolder {
    pub agent: String,
}

impl Message for ReleaseHolder {
    type Result = (usize, Ticket);
}

impl Handler<ReleaseHolder> for LockManager {
    type Result = MessageResult<ReleaseHolder>;

    fn handle(&mut self, msg: ReleaseHolder, ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        let keys: Vec<String> = self
            .table
            .list(now)
            .into_iter()
            .filter(|l| l.holder_agent_id == msg.agent)
            .map(|l| l.lock_key)
            .collect();
        let mut ticket = Ticket::NONE;
        let mut released = 0;
        for key in keys {
            let Some(lock) = self.table.force_release(&key, now) else {
                continue;
            };
            let audit = self.store.enqueue(Op::Audit(released_row(
                "lock_released_agent_removed",
                &lock,
                now,
            )));
            ticket = ticket
                .max(audit)
                .max(self.freed(&lock, LockGone::AgentRemoved, ctx));
            released += 1;
        }
        MessageResult((released, ticket))
    }
}

/// A lease timer fired; a renewed lease is left alone.
pub(crate) struct Expire(pub String);

impl Message for Expire {
    type Result = ();
}

impl Handler<Expire> for LockManager {
    type Result = ();

    fn handle(&mut self, msg: Expire, ctx: &mut Context<Self>) {
        // Older timers of this key were cancelled, so this one is the current one.
        self.timers.remove(&msg.0);
        let now = Utc::now();
        if let Some(lock) = self.table.expire(&msg.0, now) {
            tracing::info!(key = %lock.lock_key, holder = %lock.holder_agent_id, "lock lease expired");
            self.freed(&lock, LockGone::Expired, ctx);
        } else if let Some(l) = self.table.get(&msg.0, now) {
            // Clocks disagreeing by a hair: this timer belongs to the current lease.
            if l.expires_at - now <= chrono::Duration::milliseconds(50) {
                let l = l.clone();
                self.arm(ctx, &l);
            }
        }
    }
}

/// The audit row of `lock` taken from its holder by the operator (`event_type`).
fn released_row(event_type: &str, lock: &Lock, now: Timestamp) -> AuditRow {
    let payload =
        json!({"holder_agent_id": lock.holder_agent_id, "fencing_token": lock.fencing_token});
    AuditRow::new(
        event_type,
        ("lock", &lock.lock_key),
        "operator",
        payload.to_string(),
        now,
    )
}
