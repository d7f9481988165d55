//! The state machine of one task, as pure functions over [`TaskState`]. The TaskActor
//! owns a `TaskState`, calls these one at a time, and persists what they report as
//! changed. Time, limits and fresh ids come in a [`Ctx`], so every rule is unit-tested.
//!
//! Each transition returns the list of [`Change`]s it made (rows to write, notices
//! to deliver, active-assignment slots to release), or a refusal with the
//! reference's error code. The transitions live by family: [`plan`] (dispatcher
//! plans, operator decisions, close), [`assignment`] (claim, progress, complete,
//! lease expiry) and [`review`].

mod assignment;
mod plan;
mod review;

use super::channel::{Item, Kind};
use super::error::{DomainError, ErrorCode};
use super::task::{
    Assignment, AssignmentStatus as A, Handoff, PlanItem, Round, RoundStatus as R, Task,
    TaskStatus as T,
};
use super::time::Timestamp;
use chrono::Duration;

/// Workflow limits from `config.yaml`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_rounds: u32,
    pub max_assignments_per_round: u32,
    pub max_messages_per_task: u32,
    pub lease: Duration,
}

/// What a transition gets besides its arguments: the time, the limits, and a source
/// of fresh ids (random in the actor, counted in tests).
pub(crate) struct Ctx<'a> {
    pub now: Timestamp,
    pub limits: &'a Limits,
    pub ids: &'a mut dyn FnMut() -> String,
}

/// An inbox message the hub sends on its own (`from_agent` = "hub").
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    pub to: String,
    pub msg_type: &'static str,
    pub subject: String,
    pub body: String,
    pub round_id: Option<String>,
    /// The channel event it also is (its message id is added on delivery).
    pub push: Item,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Task,
    Round(String),
    Assignment(String),
    /// A pending assignment replaced by a revised plan.
    AssignmentDeleted(String),
    Handoff(String),
    Approval {
        round_id: String,
        action: &'static str,
        note: String,
    },
    /// An assignment stopped being active: give its agent's slot back.
    Released {
        agent: String,
        /// The assignment (its quota unit goes back with spread placement).
        assignment: String,
    },
    /// A lease to (re)arm a timer for.
    Lease {
        assignment: String,
        expires_at: Timestamp,
    },
    Notice(Notice),
    /// A channel event alone, not an inbox message (so inboxes and quotas stay as
    /// they are): a round approved to its dispatcher, an approving review to the
    /// assignees.
    Push {
        to: String,
        item: Item,
    },
}

pub(crate) type Changes = Vec<Change>;

/// One task with everything under it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskState {
    pub task: Task,
    pub rounds: Vec<Round>,
    pub assignments: Vec<Assignment>,
    pub handoffs: Vec<Handoff>,
    /// Agent messages carrying one of this task's round ids.
    pub message_count: u32,
}

fn refused(code: ErrorCode, message: impl Into<String>) -> DomainError {
    DomainError::refused(code, message)
}

/// Group `(agent, item)` pairs by agent, agents in order of first appearance: one
/// notice per agent, however many assignments it has.
fn by_agent<V>(pairs: impl IntoIterator<Item = (String, V)>) -> Vec<(String, Vec<V>)> {
    let mut out: Vec<(String, Vec<V>)> = Vec::new();
    for (agent, v) in pairs {
        match out.iter_mut().find(|(a, _)| *a == agent) {
            Some((_, list)) => list.push(v),
            None => out.push((agent, vec![v])),
        }
    }
    out
}

impl TaskState {
    pub(crate) fn new(
        id: &str,
        title: &str,
        description: &str,
        dispatcher: &str,
        now: Timestamp,
    ) -> TaskState {
        let at = now;
        TaskState {
            task: Task {
                id: id.to_string(),
                title: title.to_string(),
                description: description.to_string(),
                status: T::Draft,
                dispatcher_agent_id: dispatcher.to_string(),
                created_at: at,
                updated_at: at,
            },
            rounds: Vec::new(),
            assignments: Vec::new(),
            handoffs: Vec::new(),
            message_count: 0,
        }
    }

    pub(crate) fn round(&self, id: &str) -> Option<&Round> {
        self.rounds.iter().find(|r| r.id == id)
    }

    fn round_mut(&mut self, id: &str) -> Result<&mut Round, DomainError> {
        self.rounds.iter_mut().find(|r| r.id == id).ok_or_else(|| {
            refused(
                ErrorCode::RoundNotFound,
                format!("round {id} does not exist"),
            )
        })
    }

    pub(crate) fn assignment(&self, id: &str) -> Option<&Assignment> {
        self.assignments.iter().find(|a| a.id == id)
    }

    fn assignment_mut(&mut self, id: &str) -> &mut Assignment {
        self.assignments
            .iter_mut()
            .find(|a| a.id == id)
            .expect("invariant: the assignment was found by a check just before")
    }

    pub(crate) fn handoff(&self, id: &str) -> Option<&Handoff> {
        self.handoffs.iter().find(|h| h.id == id)
    }

    pub(crate) fn round_assignments<'a>(
        &'a self,
        round_id: &'a str,
    ) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments
            .iter()
            .filter(move |a| a.round_id == round_id)
    }

    fn check_open(&self) -> Result<(), DomainError> {
        if self.task.status == T::Closed {
            return Err(refused(
                ErrorCode::TaskClosed,
                format!("task {} is closed", self.task.id),
            ));
        }
        Ok(())
    }

    fn check_dispatcher(&self, caller: &str) -> Result<(), DomainError> {
        if caller != self.task.dispatcher_agent_id {
            return Err(refused(
                ErrorCode::NotTaskDispatcher,
                format!(
                    "only the task's dispatcher ({}) can do this",
                    self.task.dispatcher_agent_id
                ),
            ));
        }
        Ok(())
    }

    fn touch_task(&mut self, status: T, now: Timestamp) {
        self.task.status = status;
        self.task.updated_at = now;
    }

    /// The task's status after a transition of its rounds: awaiting the operator
    /// while any round awaits approval, else dispatched while any round is open,
    /// else `idle` (completed after an approving review). Several rounds can be
    /// open at once (follow-up rounds), so no single transition decides it.
    fn settle_task(&mut self, idle: T, now: Timestamp) {
        let awaiting = self
            .rounds
            .iter()
            .any(|r| r.status == R::AwaitingOperatorApproval);
        let open = self
            .rounds
            .iter()
            .any(|r| matches!(r.status, R::Dispatched | R::InProgress | R::AwaitingReview));
        let status = if awaiting {
            T::AwaitingOperatorApproval
        } else if open {
            T::Dispatched
        } else {
            idle
        };
        self.touch_task(status, now);
    }

    /// The number of the next round: one past the highest so far.
    fn next_round_number(&self) -> u32 {
        self.rounds
            .iter()
            .map(|r| r.round_number)
            .max()
            .unwrap_or(0)
            + 1
    }

    fn open_round(
        &self,
        number: u32,
        plan_json: &str,
        at: Timestamp,
        ids: &mut dyn FnMut() -> String,
    ) -> Round {
        Round {
            id: ids(),
            task_id: self.task.id.clone(),
            round_number: number,
            status: R::AwaitingOperatorApproval,
            plan_json: plan_json.to_string(),
            operator_note: None,
            rejected: false,
            review_verdict: None,
            review_note: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn new_assignments(&mut self, cx: &mut Ctx, round_id: &str, items: &[PlanItem]) -> Changes {
        let at = cx.now;
        let mut changes = Vec::new();
        // After every assignment the task holds: they are listed in creation order.
        let first = self.assignments.iter().map(|a| a.seq).max().unwrap_or(0) + 1;
        for (seq, item) in (first..).zip(items) {
            let a = Assignment {
                id: (cx.ids)(),
                round_id: round_id.to_string(),
                task_id: self.task.id.clone(),
                agent_id: item.agent_id.clone(),
                goal: item.goal.clone(),
                status: A::Pending,
                progress_note: None,
                claimed_at: None,
                lease_expires_at: None,
                handoff_id: None,
                created_at: at,
                updated_at: at,
                seq,
            };
            changes.push(Change::Assignment(a.id.clone()));
            self.assignments.push(a);
        }
        changes
    }

    /// One more agent message on this task's rounds, unless the limit is reached.
    /// Count one agent message about a round of this task against its budget. Only
    /// the dispatcher and agents assigned in any round may: anyone else could spend
    /// the budget and silence the task's own messages.
    pub(crate) fn count_message(
        &mut self,
        sender: &str,
        limits: &Limits,
    ) -> Result<(), DomainError> {
        let participant = self.task.dispatcher_agent_id == sender
            || self.assignments.iter().any(|a| a.agent_id == sender);
        if !participant {
            return Err(DomainError::refused(
                ErrorCode::NotTaskParticipant,
                format!(
                    "{sender} is neither the dispatcher of task {} nor assigned in any of its rounds; only they may send messages with its round_id",
                    self.task.id
                ),
            ));
        }
        if self.message_count >= limits.max_messages_per_task {
            return Err(DomainError::MessageLimitReached {
                task_id: self.task.id.clone(),
                limit: limits.max_messages_per_task,
            });
        }
        self.message_count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
