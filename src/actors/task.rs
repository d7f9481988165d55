//! TaskActor: one per task. Owns the task, its rounds, assignments, handoffs and
//! message counter, and serializes every transition: two agents claiming one
//! assignment are two messages in this actor's mailbox, handled one after the other.
//! Rules live in [`crate::domain::workflow`]; this file applies their [`Change`]s
//! (store ops, directory entries, lease timers, notices, slots).
//! Messages: [`TaskCmd`] (every tool and operator command), [`ExpireLease`].

use super::directory::Directory;
use super::hub::HubError;
use crate::domain::task::{Assignment, Handoff, HandoffDraft, PlanItem, Round, Task};
use crate::domain::time::{iso, parse_iso};
use crate::domain::workflow::{Change, Changes, Limits, TaskState};
use crate::domain::DomainError;
use crate::store::{Op, Store, Ticket};
use actix::prelude::*;
use chrono::Utc;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// What every TaskActor shares.
pub struct TaskEnv {
    /// Where state changes go; the writer thread holds the other end.
    pub store: Store,
    pub limits: Limits,
    pub max_simultaneous_assignments: u32,
    /// Ids → actors, and the cross-task active-assignment slots.
    pub dir: Arc<Directory>,
}

pub struct TaskActor {
    state: TaskState,
    env: Arc<TaskEnv>,
    /// The pending lease timer of each claimed assignment; renewing cancels the old
    /// one so that progress reports do not pile up timers.
    lease_timers: HashMap<String, SpawnHandle>,
}

impl TaskActor {
    /// Register the task's ids in the directory, then return the actor to start.
    pub fn new(state: TaskState, env: Arc<TaskEnv>) -> Self {
        let id = &state.task.id;
        for r in &state.rounds {
            env.dir.rounds.insert(r.id.clone(), id.clone());
        }
        for a in &state.assignments {
            env.dir.assignments.insert(a.id.clone(), id.clone());
            env.dir
                .agent_tasks
                .entry(a.agent_id.clone())
                .or_default()
                .insert(id.clone());
        }
        for h in &state.handoffs {
            env.dir.handoffs.insert(h.id.clone(), id.clone());
        }
        TaskActor {
            state,
            env,
            lease_timers: HashMap::new(),
        }
    }

    fn ids() -> impl FnMut() -> String {
        || crate::domain::ids::random_hex(6)
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
        if let Some(old) = self.lease_timers.insert(assignment, handle) {
            ctx.cancel_future(old);
        }
    }

    /// Persist and carry out what a transition changed. Returns the ticket of the
    /// last write, which covers every earlier one (the writer commits in order).
    fn apply(
        &mut self,
        changes: Changes,
        event: &str,
        actor: &str,
        ctx: &mut Context<Self>,
    ) -> Ticket {
        let now = Utc::now();
        // A handle of its own, so that arming timers may borrow `self` mutably.
        let env = self.env.clone();
        let (store, dir) = (&env.store, &env.dir);
        let task_id = self.state.task.id.clone();
        let mut last = Ticket::NONE;
        for change in changes {
            let t = match change {
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
                        dir.agent_tasks
                            .entry(a.agent_id.clone())
                            .or_default()
                            .insert(task_id.clone());
                        store.enqueue(Op::AssignmentUpsert(a.clone()))
                    }
                    None => Ticket::NONE,
                },
                Change::AssignmentDeleted(id) => {
                    dir.assignments.remove(&id);
                    store.enqueue(Op::AssignmentDelete { id })
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
                    round_id,
                    action: action.to_string(),
                    note,
                    at: iso(now),
                }),
                Change::Released { agent } => {
                    dir.release_slot(&agent);
                    Ticket::NONE
                }
                Change::Lease {
                    assignment,
                    expires_at,
                } => {
                    self.arm_lease(ctx, assignment, expires_at);
                    Ticket::NONE
                }
                Change::Notice(n) => dir.deliver_notice(store, n, now),
            };
            last = last.max(t);
        }
        let audit = store.enqueue(Op::Audit {
            event_type: event.to_string(),
            entity_type: "task".into(),
            entity_id: task_id,
            actor: actor.to_string(),
            payload_json: json!({"task_status": self.state.task.status.as_str()}).to_string(),
            at: iso(now),
        });
        last.max(audit)
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    /// Re-arm the lease timers of claims loaded from the database; a lease that
    /// lapsed while the server was down expires at once.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let leases: Vec<(String, chrono::DateTime<Utc>)> = self
            .state
            .assignments
            .iter()
            .filter(|a| a.status.is_active())
            .filter_map(|a| Some((a.id.clone(), parse_iso(a.lease_expires_at.as_deref()?)?)))
            .collect();
        for (id, at) in leases {
            self.arm_lease(ctx, id, at);
        }
    }
}

/// Every command on a task.
pub enum TaskCmd {
    SubmitPlan {
        caller: String,
        items: Vec<PlanItem>,
        plan_json: String,
    },
    Approve {
        round_id: String,
        note: String,
    },
    Reject {
        round_id: String,
        note: String,
    },
    Close,
    Claim {
        caller: String,
        id: String,
    },
    Progress {
        caller: String,
        id: String,
        status: String,
        note: String,
    },
    Complete {
        caller: String,
        id: String,
        draft: HandoffDraft,
    },
    Review {
        caller: String,
        round_id: String,
        verdict: String,
        note: String,
    },
    /// The caller's assignments, in one round or all.
    Assignments {
        caller: String,
        round_id: Option<String>,
    },
    GetHandoff {
        id: String,
    },
    /// One more agent message carrying a round id of this task (or one less, when
    /// the send failed after counting).
    CountMessage,
    UncountMessage,
    Snapshot,
}

pub enum TaskReply {
    Round(Round),
    /// A submitted plan: its round and that round's assignments.
    Planned(Round, Vec<Assignment>),
    Task(Task),
    Assignment(Assignment),
    Completed(Assignment, Handoff),
    Reviewed {
        round: Round,
        next: Option<Round>,
    },
    Assignments(Vec<Assignment>),
    Handoff(Handoff),
    Snapshot(Box<TaskState>),
    Done,
}

impl TaskReply {
    /// A reply of another kind than the command asks for: a bug, reported as such.
    pub fn unexpected() -> HubError {
        DomainError::refused("INTERNAL", "unexpected reply from the task actor").into()
    }
}

impl Message for TaskCmd {
    type Result = Result<(TaskReply, Ticket), DomainError>;
}

fn not_found(code: &'static str, what: &str) -> DomainError {
    DomainError::refused(code, format!("{what} does not exist"))
}

/// A copy of a round the transition just touched, for the reply.
fn round_of(s: &TaskState, id: &str) -> Result<Round, DomainError> {
    s.round(id)
        .cloned()
        .ok_or_else(|| not_found("ROUND_NOT_FOUND", id))
}

fn assignment_of(s: &TaskState, id: &str) -> Result<Assignment, DomainError> {
    s.assignment(id)
        .cloned()
        .ok_or_else(|| not_found("ASSIGNMENT_NOT_VALID", id))
}

impl Handler<TaskCmd> for TaskActor {
    type Result = Result<(TaskReply, Ticket), DomainError>;

    fn handle(&mut self, cmd: TaskCmd, ctx: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        let limits = self.env.limits;
        let mut ids = Self::ids();
        let s = &mut self.state;
        let (reply, changes, event, actor) = match cmd {
            TaskCmd::SubmitPlan {
                caller,
                items,
                plan_json,
            } => {
                let dir = self.env.dir.clone();
                let is_agent =
                    move |a: &str| dir.agents.contains_key(&crate::domain::AgentId::new(a));
                let (rid, ch) = s.submit_plan(
                    &caller, &items, &plan_json, &is_agent, &limits, now, &mut ids,
                )?;
                let round = round_of(s, &rid)?;
                let assignments = s.round_assignments(&rid).cloned().collect();
                (
                    TaskReply::Planned(round, assignments),
                    ch,
                    "round_plan_submitted",
                    caller,
                )
            }
            TaskCmd::Approve { round_id, note } => {
                let ch = s.approve(&round_id, &note, now)?;
                let round = round_of(s, &round_id)?;
                (
                    TaskReply::Round(round),
                    ch,
                    "round_approved",
                    "operator".into(),
                )
            }
            TaskCmd::Reject { round_id, note } => {
                let ch = s.reject(&round_id, &note, now)?;
                let round = round_of(s, &round_id)?;
                (
                    TaskReply::Round(round),
                    ch,
                    "round_rejected",
                    "operator".into(),
                )
            }
            TaskCmd::Close => {
                let ch = s.close(now)?;
                (
                    TaskReply::Task(s.task.clone()),
                    ch,
                    "task_closed",
                    "operator".into(),
                )
            }
            TaskCmd::Claim { caller, id } => {
                s.check_claim(&caller, &id)?;
                let max = self.env.max_simultaneous_assignments;
                if !self.env.dir.try_reserve_slot(&caller, max) {
                    return Err(DomainError::refused(
                        "ACTIVE_ASSIGNMENT_LIMIT",
                        format!("you already have {max} claimed or in-progress assignments (max_simultaneous_assignments); complete one first"),
                    ));
                }
                let ch = match s.claim(&caller, &id, now, &limits) {
                    Ok(ch) => ch,
                    Err(e) => {
                        self.env.dir.release_slot(&caller);
                        return Err(e);
                    }
                };
                let a = assignment_of(s, &id)?;
                (TaskReply::Assignment(a), ch, "assignment_claimed", caller)
            }
            TaskCmd::Progress {
                caller,
                id,
                status,
                note,
            } => {
                let ch = s.progress(&caller, &id, &status, &note, now, &limits)?;
                let a = assignment_of(s, &id)?;
                (TaskReply::Assignment(a), ch, "assignment_progress", caller)
            }
            TaskCmd::Complete { caller, id, draft } => {
                let (h, ch) = s.complete(&caller, &id, draft, now, &mut ids)?;
                let a = assignment_of(s, &id)?;
                (
                    TaskReply::Completed(a, h),
                    ch,
                    "assignment_completed",
                    caller,
                )
            }
            TaskCmd::Review {
                caller,
                round_id,
                verdict,
                note,
            } => {
                let (next, ch) =
                    s.review(&caller, &round_id, &verdict, &note, &limits, now, &mut ids)?;
                let round = round_of(s, &round_id)?;
                (
                    TaskReply::Reviewed { round, next },
                    ch,
                    "review_submitted",
                    caller,
                )
            }
            TaskCmd::Assignments { caller, round_id } => {
                let list = s
                    .assignments
                    .iter()
                    .filter(|a| a.agent_id == caller)
                    .filter(|a| round_id.as_deref().is_none_or(|r| a.round_id == r))
                    .cloned()
                    .collect();
                return Ok((TaskReply::Assignments(list), Ticket::NONE));
            }
            TaskCmd::GetHandoff { id } => {
                let h = s
                    .handoff(&id)
                    .cloned()
                    .ok_or_else(|| not_found("NOT_FOUND", &format!("handoff {id}")))?;
                return Ok((TaskReply::Handoff(h), Ticket::NONE));
            }
            TaskCmd::CountMessage => {
                s.count_message(&limits)?;
                return Ok((TaskReply::Done, Ticket::NONE));
            }
            TaskCmd::UncountMessage => {
                s.message_count = s.message_count.saturating_sub(1);
                return Ok((TaskReply::Done, Ticket::NONE));
            }
            TaskCmd::Snapshot => {
                return Ok((TaskReply::Snapshot(Box::new(s.clone())), Ticket::NONE))
            }
        };
        let ticket = self.apply(changes, event, &actor, ctx);
        Ok((reply, ticket))
    }
}

/// A lease timer fired.
pub struct ExpireLease(pub String);

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
            .and_then(|a| parse_iso(a.lease_expires_at.as_deref()?));
        if let Some(at) = due.filter(|at| *at - now <= chrono::Duration::milliseconds(50)) {
            self.arm_lease(ctx, msg.0, at);
        }
    }
}
