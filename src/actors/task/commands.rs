//! The commands a TaskActor takes: one actix message per tool or operator command,
//! each with its own reply type (as in actix's chat server). Commands are plain,
//! serde-serializable data, so they can be forwarded as they are. Callers send them
//! only through the [`Hub`](crate::actors::Hub) façade, which finds the actor and
//! waits until the reply's write is durable.

use super::TaskActor;
use crate::actors::HubError;
use crate::domain::task::{
    Assignment, Handoff, HandoffDraft, Plan, ProgressStatus, Round, Task, TaskStatus, Verdict,
};
use crate::domain::workflow::{Ctx, TaskState};
use crate::domain::{AgentId, DomainError, ErrorCode};
use crate::store::{Op, Ticket};
use actix::prelude::*;
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// A command's value and the ticket of its last write (`Ticket::NONE` when it wrote
/// nothing).
pub(crate) type Reply<T> = Result<(T, Ticket), HubError>;

/// `round_plan_submit`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Planned>")]
pub(crate) struct SubmitPlan {
    pub caller: AgentId,
    pub task_id: String,
    pub plan: Plan,
}

/// A submitted plan: its round and that round's assignments.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Planned {
    pub round: Round,
    pub assignments: Vec<Assignment>,
}

/// Operator approves a round's plan.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Round>")]
pub(crate) struct Approve {
    pub round_id: String,
    pub note: String,
}

/// Operator rejects a round's plan (the dispatcher revises it).
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Round>")]
pub(crate) struct Reject {
    pub round_id: String,
    pub note: String,
}

/// Operator closes the task.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Task>")]
pub(crate) struct Close {
    pub task_id: String,
}

/// `assignment_claim`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Assignment>")]
pub(crate) struct Claim {
    pub caller: AgentId,
    pub assignment_id: String,
}

/// `assignment_progress`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Assignment>")]
pub(crate) struct Progress {
    pub caller: AgentId,
    pub assignment_id: String,
    pub status: ProgressStatus,
    pub note: String,
}

/// `assignment_complete`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Completed>")]
pub(crate) struct Complete {
    pub caller: AgentId,
    pub assignment_id: String,
    pub handoff: HandoffDraft,
}

/// A completed assignment and its stored handoff.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Completed {
    pub assignment: Assignment,
    pub handoff: Handoff,
}

/// `review_submit`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Reviewed>")]
pub(crate) struct Review {
    pub caller: AgentId,
    pub round_id: String,
    pub verdict: Verdict,
    pub note: String,
}

/// The reviewed round, the round opened by `changes_requested`, and the task's
/// status after the review (an approval completes it only when no other round is
/// open).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reviewed {
    pub round: Round,
    pub next: Option<Round>,
    pub task_status: TaskStatus,
}

/// The caller's assignments in this task, in one round or all.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Vec<Assignment>>")]
pub(crate) struct MyAssignments {
    pub caller: AgentId,
    pub round_id: Option<String>,
}

/// `handoff_get`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<Handoff>")]
pub(crate) struct GetHandoff {
    pub handoff_id: String,
}

/// An agent message carrying a round id of this task, counted against its budget
/// before it is stored: counted, then stored or given back.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<()>")]
pub(crate) struct CountMessage {
    pub step: CountStep,
    /// The message's sender (checked at `Count`: only participants may).
    pub sender: AgentId,
}

/// The steps of [`CountMessage`]. Between `Count` and the next step the message is
/// in flight, and the task stays in memory: its count must not be re-read from
/// storage before the message is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CountStep {
    Count,
    Stored,
    Undo,
}

/// The whole task, for the operator's views.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "Reply<TaskState>")]
pub(crate) struct Snapshot;

/// A copy of a round the transition just touched, for the reply.
fn round_of(s: &TaskState, id: &str) -> Result<Round, HubError> {
    s.round(id)
        .cloned()
        .ok_or_else(|| HubError::bug(format!("round {id} vanished during a transition")))
}

fn assignment_of(s: &TaskState, id: &str) -> Result<Assignment, HubError> {
    s.assignment(id)
        .cloned()
        .ok_or_else(|| HubError::bug(format!("assignment {id} vanished during a transition")))
}

impl Handler<SubmitPlan> for TaskActor {
    type Result = Reply<Planned>;

    fn handle(&mut self, m: SubmitPlan, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        let dir = self.env.dir.clone();
        let is_agent = move |a: &str| dir.exists(&AgentId::new(a));
        let caller = m.caller.as_str();
        let (rid, changes) =
            self.transition(|s, cx| s.submit_plan(cx, caller, &m.plan, &is_agent))?;
        let s = &self.state;
        let planned = Planned {
            round: round_of(s, &rid)?,
            assignments: s.round_assignments(&rid).cloned().collect(),
        };
        let event = "round_plan_submitted";
        Ok(self.commit(ctx, changes, event, m.caller.as_str(), planned))
    }
}

impl TaskActor {
    /// Run a transition that creates rows: it gets the time, the limits and a source
    /// of fresh ids.
    fn transition<R>(&mut self, f: impl FnOnce(&mut TaskState, &mut Ctx) -> R) -> R {
        let limits = self.env.limits();
        let mut ids = Self::ids();
        let mut cx = Ctx {
            now: Utc::now(),
            limits: &limits,
            ids: &mut ids,
        };
        f(&mut self.state, &mut cx)
    }

    /// The operator's decision on a round: approve, or reject for a revised plan.
    fn decide(
        &mut self,
        ctx: &mut Context<Self>,
        round_id: &str,
        note: &str,
        approve: bool,
    ) -> Reply<Round> {
        let now = Utc::now();
        let (changes, event) = if approve {
            (self.state.approve(round_id, note, now)?, "round_approved")
        } else {
            (self.state.reject(round_id, note, now)?, "round_rejected")
        };
        let round = round_of(&self.state, round_id)?;
        Ok(self.commit(ctx, changes, event, "operator", round))
    }
}

impl Handler<Approve> for TaskActor {
    type Result = Reply<Round>;

    fn handle(&mut self, m: Approve, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        self.decide(ctx, &m.round_id, &m.note, true)
    }
}

impl Handler<Reject> for TaskActor {
    type Result = Reply<Round>;

    fn handle(&mut self, m: Reject, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        self.decide(ctx, &m.round_id, &m.note, false)
    }
}

impl Handler<Close> for TaskActor {
    type Result = Reply<Task>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        let changes = self.state.close(Utc::now())?;
        let task = self.state.task.clone();
        Ok(self.commit(ctx, changes, "task_closed", "operator", task))
    }
}

/// ACTIVE_ASSIGNMENT_LIMIT: the caller holds `max` claimed or in-progress
/// assignments.
pub(crate) fn active_limit(max: u32) -> DomainError {
    DomainError::refused(
        ErrorCode::ActiveAssignmentLimit,
        format!("you already have {max} claimed or in-progress assignments (max_simultaneous_assignments); complete one first"),
    )
}

impl Handler<Claim> for TaskActor {
    type Result = Reply<Assignment>;

    fn handle(&mut self, m: Claim, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        let (caller, id) = (m.caller.as_str(), m.assignment_id.as_str());
        self.state.check_claim(caller, id)?;
        let max = self.env.max_simultaneous_assignments();
        if !self.env.dir.try_reserve_slot(caller, max) {
            return Err(active_limit(max).into());
        }
        let changes = match self.state.claim(caller, id, Utc::now(), &self.env.limits()) {
            Ok(ch) => ch,
            Err(e) => {
                self.env.dir.release_slot(caller);
                return Err(e.into());
            }
        };
        let a = assignment_of(&self.state, id)?;
        Ok(self.commit(ctx, changes, "assignment_claimed", caller, a))
    }
}

impl Handler<Progress> for TaskActor {
    type Result = Reply<Assignment>;

    fn handle(&mut self, m: Progress, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        let (caller, id) = (m.caller.as_str(), m.assignment_id.as_str());
        let limits = self.env.limits();
        let changes = self
            .state
            .progress(caller, id, m.status, &m.note, Utc::now(), &limits)?;
        let a = assignment_of(&self.state, id)?;
        Ok(self.commit(ctx, changes, "assignment_progress", caller, a))
    }
}

impl Handler<Complete> for TaskActor {
    type Result = Reply<Completed>;

    fn handle(&mut self, m: Complete, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        let (caller, id) = (m.caller.as_str(), m.assignment_id.as_str());
        let (handoff, changes) = self.transition(|s, cx| s.complete(cx, caller, id, m.handoff))?;
        let assignment = assignment_of(&self.state, id)?;
        let done = Completed {
            assignment,
            handoff,
        };
        Ok(self.commit(ctx, changes, "assignment_completed", caller, done))
    }
}

impl Handler<Review> for TaskActor {
    type Result = Reply<Reviewed>;

    fn handle(&mut self, m: Review, ctx: &mut Context<Self>) -> Self::Result {
        self.used();
        let caller = m.caller.as_str();
        let (next, changes) =
            self.transition(|s, cx| s.review(cx, caller, &m.round_id, m.verdict, &m.note))?;
        let round = round_of(&self.state, &m.round_id)?;
        let reviewed = Reviewed {
            round,
            next,
            task_status: self.state.task.status,
        };
        Ok(self.commit(ctx, changes, "review_submitted", caller, reviewed))
    }
}

impl Handler<MyAssignments> for TaskActor {
    type Result = Reply<Vec<Assignment>>;

    fn handle(&mut self, m: MyAssignments, _: &mut Context<Self>) -> Self::Result {
        self.used();
        let list = self
            .state
            .assignments
            .iter()
            .filter(|a| a.agent_id == m.caller.as_str())
            .filter(|a| m.round_id.as_deref().is_none_or(|r| a.round_id == r))
            .cloned()
            .collect();
        Ok((list, Ticket::NONE))
    }
}

impl Handler<GetHandoff> for TaskActor {
    type Result = Reply<Handoff>;

    fn handle(&mut self, m: GetHandoff, _: &mut Context<Self>) -> Self::Result {
        self.used();
        let id = &m.handoff_id;
        let h = self.state.handoff(id).cloned().ok_or_else(|| {
            DomainError::refused(ErrorCode::NotFound, format!("handoff {id} does not exist"))
        })?;
        Ok((h, Ticket::NONE))
    }
}

impl Handler<CountMessage> for TaskActor {
    type Result = Reply<()>;

    fn handle(&mut self, m: CountMessage, _: &mut Context<Self>) -> Self::Result {
        self.used();
        match m.step {
            CountStep::Count => {
                self.state
                    .count_message(m.sender.as_str(), &self.env.limits())?;
                self.in_flight += 1;
            }
            CountStep::Stored => {
                self.in_flight = self.in_flight.saturating_sub(1);
                return Ok(((), Ticket::NONE));
            }
            CountStep::Undo => {
                self.state.message_count = self.state.message_count.saturating_sub(1);
                self.in_flight = self.in_flight.saturating_sub(1);
            }
        }
        let ticket = self.env.store.enqueue(Op::TaskMessageCount {
            task_id: self.state.task.id.clone(),
            count: self.state.message_count,
        });
        Ok(((), ticket))
    }
}

impl Handler<Snapshot> for TaskActor {
    type Result = Reply<TaskState>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        self.used();
        Ok((self.state.clone(), Ticket::NONE))
    }
}
