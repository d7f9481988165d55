//! TaskActor: one per task. Owns the task, its rounds, assignments, handoffs and
//! message counter, and serializes every transition: two agents claiming one
//! assignment are two messages in this actor's mailbox, handled one after the other.
//! Rules live in [`crate::domain::workflow`]; this file applies their [`Change`]s
//! (store ops, directory entries, lease timers, notices, slots).
//! Messages: one per command in [`commands`], and [`ExpireLease`] and [`WarnLease`]
//! from its timers.

pub(crate) mod commands;

use super::directory::Directory;
use crate::config::{LiveSettings, Settings};
use crate::domain::channel::{lease_warning_lead, Item, Kind};
use crate::domain::task::TaskStatus;
use crate::domain::time::{iso, Timestamp};
use crate::domain::workflow::{Change, Changes, Limits, TaskState};
use crate::store::{AuditRow, Op, Store, Ticket};
use actix::prelude::*;
use chrono::Utc;
use dashmap::DashMap;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The workflow limits `s` sets.
pub(crate) fn limits_of(s: &Settings) -> Limits {
    Limits {
        max_rounds: s.max_rounds,
        max_assignments_per_round: s.max_assignments_per_round,
        max_messages_per_task: s.max_messages_per_task,
        lease: chrono::Duration::milliseconds((s.lease_minutes * 60_000.0) as i64),
    }
}

/// What every TaskActor shares.
pub(crate) struct TaskEnv {
    /// Where state changes go; the writer thread holds the other end.
    pub store: Store,
    /// The settings in force (limits change on a reload).
    pub settings: Arc<LiveSettings>,
    /// Ids → actors, and the cross-task active-assignment slots.
    pub dir: Arc<Directory>,
    /// Task id → actor, for the tasks in memory (routed by the Hub; a finished
    /// task removes itself when it passivates).
    pub tasks: Arc<DashMap<String, Addr<TaskActor>>>,
}

impl TaskEnv {
    /// The workflow limits in force.
    pub(crate) fn limits(&self) -> Limits {
        limits_of(&self.settings.load())
    }

    pub(crate) fn max_simultaneous_assignments(&self) -> u32 {
        self.settings.load().max_simultaneous_assignments
    }

    /// How long a finished task stays in memory unused.
    pub(crate) fn finished_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.settings.load().finished_task_idle_secs)
    }
}

pub(crate) struct TaskActor {
    state: TaskState,
    env: Arc<TaskEnv>,
    /// When a command last reached this actor (for passivating finished tasks).
    last_used: std::time::Instant,
    /// Messages counted against the budget and not yet stored (see `CountStep`).
    pub(crate) in_flight: u32,
    /// The pending lease timer of each claimed assignment; renewing cancels the old
    /// one so that progress reports do not pile up timers.
    lease_timers: HashMap<String, SpawnHandle>,
    /// Likewise the timer warning each lease's holder shortly before it lapses.
    warn_timers: HashMap<String, SpawnHandle>,
    /// Whether this task holds one of its dispatcher's open-task units (see
    /// [`Directory::try_reserve_open_task`]); given back once when it finishes.
    counted_open: bool,
}

impl TaskActor {
    /// Register the task's ids in the directory, then return the actor to start.
    pub(crate) fn new(state: TaskState, env: Arc<TaskEnv>) -> Self {
        let id = &state.task.id;
        for r in &state.rounds {
            env.dir.rounds.insert(r.id.clone(), id.clone());
        }
        for a in &state.assignments {
            env.dir.assignments.insert(a.id.clone(), id.clone());
        }
        for h in &state.handoffs {
            env.dir.handoffs.insert(h.id.clone(), id.clone());
        }
        TaskActor {
            state,
            env,
            last_used: std::time::Instant::now(),
            in_flight: 0,
            lease_timers: HashMap::new(),
            warn_timers: HashMap::new(),
            counted_open: false,
        }
    }

    /// This open task holds a unit of its dispatcher's open-task count, taken by
    /// the caller: the actor gives it back when the task completes or is closed.
    pub(crate) fn counting_open(mut self) -> Self {
        self.counted_open = true;
        self
    }

    /// Fresh ids of rounds, assignments and handoffs.
    pub(crate) fn ids() -> impl FnMut() -> String {
        || crate::domain::ids::random_hex(6)
    }

    /// Persist what a transition changed; the reply carries the ticket to wait for.
    fn commit<T>(
        &mut self,
        ctx: &mut Context<Self>,
        changes: Changes,
        event: &str,
        actor: &str,
        value: T,
    ) -> (T, Ticket) {
        let ticket = self.apply(changes, event, actor, ctx);
        (value, ticket)
    }

    fn arm_lease(
        &mut self,
        ctx: &mut Context<Self>,
        assignment: String,
        expires_at: chrono::DateTime<Utc>,
    ) {
        // A few ms late rather than early: expiry only acts on a lapsed lease.
        let wait = (expires_at - Utc::now()).to_std().unwrap_or_default()
            + std::time::Duration::from_millis(5);
        let handle = ctx.notify_later(ExpireLease(assignment.clone()), wait);
        if let Some(old) = self.lease_timers.insert(assignment.clone(), handle) {
            ctx.cancel_future(old);
        }
        let lead = lease_warning_lead(self.env.limits().lease);
        let warn_in = (expires_at - lead - Utc::now())
            .to_std()
            .unwrap_or_default();
        let warn = WarnLease {
            assignment: assignment.clone(),
            expires_at,
        };
        let handle = ctx.notify_later(warn, warn_in);
        if let Some(old) = self.warn_timers.insert(assignment, handle) {
            ctx.cancel_future(old);
        }
    }

    /// Persist and carry out what a transition changed, then audit it. Returns the
    /// ticket of the last write, which covers every earlier one (the writer commits
    /// in order).
    fn apply(
        &mut self,
        changes: Changes,
        event: &str,
        actor: &str,
        ctx: &mut Context<Self>,
    ) -> Ticket {
        let now = Utc::now();
        let mut last = Ticket::NONE;
        for change in changes {
            last = last.max(self.apply_one(change, now, ctx));
        }
        // Terminal states are final, so this happens at most once.
        if self.counted_open && !self.state.task.status.is_open() {
            self.counted_open = false;
            let dispatcher = &self.state.task.dispatcher_agent_id;
            self.env.dir.release_open_task(dispatcher);
            if self.env.dir.spread {
                let id = self.state.task.id.clone();
                last = last.max(self.env.store.enqueue(Op::QuotaFree {
                    kind: "open",
                    item_id: id.clone(),
                    task_id: id,
                }));
            }
        }
        let audit = self.env.store.enqueue(Op::Audit(AuditRow::new(
            event,
            ("task", &self.state.task.id),
            actor,
            json!({"task_status": self.state.task.status.as_str()}).to_string(),
            now,
        )));
        last.max(audit)
    }

    /// One change: a row to write (and the directory entry that routes its id
    /// here), a slot to give back, a lease timer to arm, or a notice to deliver.
    fn apply_one(&mut self, change: Change, now: Timestamp, ctx: &mut Context<Self>) -> Ticket {
        // A handle of its own, so that arming timers may borrow `self` mutably.
        let env = self.env.clone();
        let (store, dir) = (&env.store, &env.dir);
        let task_id = &self.state.task.id;
        match change {
            Change::Task => store.enqueue(Op::TaskUpsert(self.state.task.clone())),
            Change::Round(id) => match self.state.round(&id) {
                Some(r) => {
                    dir.rounds.insert(id, task_id.clone());
                    store.enqueue(Op::RoundUpsert(r.clone()))
                }
                None => Ticket::NONE,
            },
            Change::Assignment(id) => match self.state.assignment(&id) {
                Some(a) => {
                    dir.assignments.insert(id, task_id.clone());
                    store.enqueue(Op::AssignmentUpsert(a.clone()))
                }
                None => Ticket::NONE,
            },
            Change::AssignmentDeleted(id) => {
                dir.assignments.remove(&id);
                store.enqueue(Op::AssignmentDelete {
                    id,
                    task_id: task_id.clone(),
                })
            }
            Change::Handoff(id) => match self.state.handoff(&id) {
                Some(h) => {
                    dir.handoffs.insert(id, task_id.clone());
                    store.enqueue(Op::HandoffInsert(h.clone()))
                }
                None => Ticket::NONE,
            },
            Change::Approval {
                round_id,
                action,
                note,
            } => store.enqueue(Op::Approval {
                id: crate::domain::ids::random_hex(6),
                task_id: task_id.clone(),
                round_id,
                action: action.to_string(),
                note,
                at: iso(now),
            }),
            Change::Released { agent, assignment } => {
                dir.release_slot(&agent);
                if dir.spread {
                    // The cluster-wide count's unit goes with the batch.
                    return store.enqueue(Op::QuotaFree {
                        kind: "active",
                        item_id: assignment,
                        task_id: task_id.clone(),
                    });
                }
                Ticket::NONE
            }
            Change::Lease {
                assignment,
                expires_at,
            } => {
                self.arm_lease(ctx, assignment, expires_at);
                Ticket::NONE
            }
            Change::Notice(n) => dir.deliver_notice(store, task_id, n, now),
            Change::Push { to, item } => {
                dir.push(&to, item);
                Ticket::NONE
            }
        }
    }
}

impl TaskActor {
    /// Note that a command arrived (keeps a finished task in memory a while longer).
    pub(crate) fn used(&mut self) {
        self.last_used = std::time::Instant::now();
    }

    /// A finished task unused for `finished_idle` leaves memory: its ids leave the
    /// maps and the actor stops. Its rows are all queued already, and a later call
    /// reads them back only once the writer has committed everything queued before
    /// it (see [`crate::store::Store::read`]), so nothing answered is ever missed.
    /// A call that reached the old actor as it stopped is sent again by the Hub.
    fn passivate_if_idle(&mut self, ctx: &mut Context<Self>) {
        let finished = matches!(
            self.state.task.status,
            TaskStatus::Completed | TaskStatus::Closed
        );
        if !finished || self.in_flight > 0 || self.last_used.elapsed() < self.env.finished_idle() {
            return;
        }
        let me = ctx.address();
        let id = &self.state.task.id;
        // Ids leave the directory first, while the map still routes calls here (so
        // no new actor of this task can register them meanwhile); then the map entry.
        if self.env.tasks.get(id).is_none_or(|a| *a != me) {
            return;
        }
        let dir = &self.env.dir;
        for r in &self.state.rounds {
            dir.rounds.remove(&r.id);
        }
        for a in &self.state.assignments {
            dir.assignments.remove(&a.id);
        }
        for h in &self.state.handoffs {
            dir.handoffs.remove(&h.id);
        }
        self.env.tasks.remove_if(id, |_, a| *a == me);
        tracing::info!(task = %id, "finished task passivated");
        ctx.stop();
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    /// Re-arm the lease timers of claims loaded from the database; a lease that
    /// lapsed while the server was down expires at once.
    fn started(&mut self, ctx: &mut Context<Self>) {
        // At most 30 s apart, so that a reload lowering finished_task_idle_secs
        // takes effect for actors already running.
        let every = (self.env.finished_idle() / 2).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(30),
        );
        ctx.run_interval(every, |act, ctx| act.passivate_if_idle(ctx));
        let leases: Vec<(String, chrono::DateTime<Utc>)> = self
            .state
            .assignments
            .iter()
            .filter(|a| a.status.is_active())
            .filter_map(|a| Some((a.id.clone(), a.lease_expires_at?)))
            .collect();
        for (id, at) in leases {
            self.arm_lease(ctx, id, at);
        }
    }
}

/// A lease timer fired.
pub(crate) struct ExpireLease(pub String);

impl Message for ExpireLease {
    type Result = ();
}

impl Handler<ExpireLease> for TaskActor {
    type Result = ();

    fn handle(&mut self, msg: ExpireLease, ctx: &mut Context<Self>) {
        // Older timers of this assignment were cancelled: this one is current.
        self.lease_timers.remove(&msg.0);
        let now = Utc::now();
        let changes = self.state.expire_lease(&msg.0, now);
        if !changes.is_empty() {
            tracing::info!(task = %self.state.task.id, assignment = %msg.0, "lease expired; assignment is pending again");
            self.apply(changes, "lease_expired", "system", ctx);
            return;
        }
        // Clocks disagreeing by a hair: re-arm if this timer belongs to the current lease.
        let due = self
            .state
            .assignment(&msg.0)
            .filter(|a| a.status.is_active())
            .and_then(|a| a.lease_expires_at);
        if let Some(at) = due.filter(|at| *at - now <= chrono::Duration::milliseconds(50)) {
            self.arm_lease(ctx, msg.0, at);
        }
    }
}

/// A lease warning timer fired: tell the holder, once per lease, unless the lease
/// was renewed, ended or already lapsed meanwhile.
pub(crate) struct WarnLease {
    assignment: String,
    expires_at: chrono::DateTime<Utc>,
}

impl Message for WarnLease {
    type Result = ();
}

impl Handler<WarnLease> for TaskActor {
    type Result = ();

    fn handle(&mut self, msg: WarnLease, _: &mut Context<Self>) {
        let (id, at) = (&msg.assignment, msg.expires_at);
        let Some(a) = self.state.assignment(id) else {
            return;
        };
        // Renewals cancel the older timer, so a current lease means this is its own.
        if !a.status.is_active() || a.lease_expires_at != Some(at) {
            return;
        }
        self.warn_timers.remove(id);
        if at <= Utc::now() {
            return;
        }
        let item = Item {
            expires_at: Some(crate::domain::time::iso(at)),
            ..Item::hub(Kind::LeaseExpiring, None)
                .task(&self.state.task.id)
                .round(&a.round_id)
                .assignment(id)
        };
        self.env.dir.push(&a.agent_id, item);
    }
}
