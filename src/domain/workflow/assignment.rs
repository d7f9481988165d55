//! The assignees' transitions: claim, progress, complete, and a lease lapsing.

use super::{refused, Change, Changes, Ctx, Item, Kind, Limits, Notice, TaskState};
use crate::domain::error::{DomainError, ErrorCode};
use crate::domain::task::{
    Assignment, AssignmentStatus as A, Handoff, HandoffDraft, ProgressStatus, RoundStatus as R,
    TaskStatus as T,
};
use crate::domain::time::Timestamp;

impl TaskState {
    fn own_assignment(&self, caller: &str, id: &str) -> Result<&Assignment, DomainError> {
        match self.assignment(id) {
            Some(a) if a.agent_id == caller => {
                self.check_open()?;
                Ok(a)
            }
            _ => Err(refused(
                ErrorCode::AssignmentNotValid,
                format!("assignment {id} does not exist or is not assigned to you"),
            )),
        }
    }

    /// Whether `caller` may claim assignment `id` now (before taking one of its
    /// active-assignment slots).
    pub(crate) fn check_claim(&self, caller: &str, id: &str) -> Result<(), DomainError> {
        let a = self.own_assignment(caller, id)?;
        if a.status != A::Pending {
            return Err(refused(
                ErrorCode::AssignmentNotPending,
                format!("assignment {id} is {}, not pending", a.status.as_str()),
            ));
        }
        let r = self.round(&a.round_id).map(|r| r.status);
        if !matches!(r, Some(R::Dispatched | R::InProgress)) {
            return Err(refused(
                ErrorCode::RoundNotApproved,
                format!(
                    "round {} has not been approved by the operator yet",
                    a.round_id
                ),
            ));
        }
        Ok(())
    }

    /// `assignment_claim` after [`check_claim`](Self::check_claim) passed and a slot
    /// was taken: claimed with a lease; the round is in progress from its first claim.
    pub(crate) fn claim(
        &mut self,
        caller: &str,
        id: &str,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Changes, DomainError> {
        self.check_claim(caller, id)?;
        let at = now;
        let expires = now + limits.lease;
        let a = self.assignment_mut(id);
        a.status = A::Claimed;
        a.claimed_at = Some(at);
        a.lease_expires_at = Some(expires);
        a.updated_at = at;
        let round_id = a.round_id.clone();
        let mut changes = vec![
            Change::Assignment(id.to_string()),
            Change::Lease {
                assignment: id.to_string(),
                expires_at: expires,
            },
        ];
        let r = self.round_mut(&round_id)?;
        if r.status == R::Dispatched {
            r.status = R::InProgress;
            r.updated_at = at;
            changes.push(Change::Round(round_id));
        }
        Ok(changes)
    }

    /// `assignment_progress`: forward moves of one's own active assignment only
    /// (claimed → claimed | in_progress, in_progress → in_progress); renews the lease.
    pub(crate) fn progress(
        &mut self,
        caller: &str,
        id: &str,
        status: ProgressStatus,
        note: &str,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Changes, DomainError> {
        let target = status.target();
        let a = self.own_assignment(caller, id)?;
        if !a.status.is_active() {
            return Err(refused(
                ErrorCode::AssignmentNotActive,
                format!("assignment {id} is {}; only a claimed or in-progress assignment can report progress", a.status.as_str()),
            ));
        }
        if a.status == A::InProgress && target == A::Claimed {
            return Err(refused(
                ErrorCode::InvalidTransition,
                format!("assignment {id} is already in_progress; it cannot go back to claimed"),
            ));
        }
        let expires = now + limits.lease;
        let a = self.assignment_mut(id);
        a.status = target;
        if !note.is_empty() {
            a.progress_note = Some(note.to_string());
        }
        a.lease_expires_at = Some(expires);
        a.updated_at = now;
        Ok(vec![
            Change::Assignment(id.to_string()),
            Change::Lease {
                assignment: id.to_string(),
                expires_at: expires,
            },
        ])
    }

    /// `assignment_complete`: stores the handoff; the dispatcher is told, and when it
    /// was the round's last open assignment the round awaits review.
    pub(crate) fn complete(
        &mut self,
        cx: &mut Ctx,
        caller: &str,
        id: &str,
        draft: HandoffDraft,
    ) -> Result<(Handoff, Changes), DomainError> {
        let a = self.own_assignment(caller, id)?;
        if !a.status.is_active() {
            return Err(refused(
                ErrorCode::AssignmentNotActive,
                format!("assignment {id} is {}; claim it first (only claimed or in-progress work can be completed)", a.status.as_str()),
            ));
        }
        let at = cx.now;
        let handoff = Handoff {
            id: (cx.ids)(),
            assignment_id: id.to_string(),
            round_id: a.round_id.clone(),
            task_id: self.task.id.clone(),
            from_agent: caller.to_string(),
            branch: draft.branch,
            commit_hash: draft.commit_hash,
            changed_files: draft.changed_files,
            tests_run: draft.tests_run,
            risks: draft.risks,
            next_steps: draft.next_steps,
            notes: draft.notes,
            created_at: at,
        };
        let a = self.assignment_mut(id);
        a.status = A::Completed;
        a.handoff_id = Some(handoff.id.clone());
        a.lease_expires_at = None;
        a.updated_at = at;
        let (round_id, goal) = (a.round_id.clone(), a.goal.clone());
        self.handoffs.push(handoff.clone());
        let mut changes = vec![
            Change::Handoff(handoff.id.clone()),
            Change::Assignment(id.to_string()),
            Change::Released {
                agent: caller.to_string(),
                assignment: id.to_string(),
            },
            Change::Notice(Notice {
                to: self.task.dispatcher_agent_id.clone(),
                msg_type: "handoff",
                subject: format!("Task {}: assignment {id} completed by {caller}", self.task.id),
                body: format!(
                    "{caller} completed assignment {id} ({goal}). Read the handoff with handoff_get(\"{}\").",
                    handoff.id
                ),
                round_id: Some(round_id.clone()),
                push: Item {
                    handoff_id: Some(handoff.id.clone()),
                    ..Item::hub(Kind::Handoff, Some(caller))
                        .task(&self.task.id)
                        .round(&round_id)
                        .assignment(id)
                },
            }),
        ];
        changes.extend(self.await_review_if_done(&round_id, at)?);
        Ok((handoff, changes))
    }

    /// After a completion: when every assignment of the round is completed, the
    /// round awaits review and the dispatcher is told.
    fn await_review_if_done(
        &mut self,
        round_id: &str,
        at: Timestamp,
    ) -> Result<Changes, DomainError> {
        let all_done = self
            .round_assignments(round_id)
            .all(|a| a.status == A::Completed);
        let (task_id, dispatcher) = (self.task.id.clone(), self.task.dispatcher_agent_id.clone());
        let r = self.round_mut(round_id)?;
        if !all_done || !matches!(r.status, R::Dispatched | R::InProgress) {
            return Ok(Vec::new());
        }
        r.status = R::AwaitingReview;
        r.updated_at = at;
        let number = r.round_number;
        let push = Item::hub(Kind::RoundCompleted, None)
            .task(&task_id)
            .round(round_id);
        Ok(vec![
            Change::Round(round_id.to_string()),
            Change::Notice(Notice {
                to: dispatcher,
                msg_type: "review",
                subject: format!("Task {task_id} round {number} awaits your review"),
                body: format!(
                    "Every assignment of round {number} ({round_id}) is completed. Review it with review_submit(round_id, \"approved\" | \"changes_requested\", note)."
                ),
                round_id: Some(round_id.to_string()),
                push,
            }),
        ])
    }

    /// A lease timer fired: if the claim really lapsed, the assignment is pending
    /// again (claimable; completing it fails) and its agent is told. Renewed or
    /// finished assignments are left alone.
    pub(crate) fn expire_lease(&mut self, id: &str, now: Timestamp) -> Changes {
        let Some(a) = self.assignment(id) else {
            return Vec::new();
        };
        let lapsed = a.lease_expires_at.is_some_and(|t| t <= now);
        if !a.status.is_active() || !lapsed || self.task.status == T::Closed {
            return Vec::new();
        }
        let a = self.assignment_mut(id);
        a.status = A::Pending;
        a.claimed_at = None;
        a.lease_expires_at = None;
        a.updated_at = now;
        let agent = a.agent_id.clone();
        let (goal, round_id) = (a.goal.clone(), a.round_id.clone());
        vec![
            Change::Assignment(id.to_string()),
            Change::Released {
                agent: agent.clone(),
                assignment: id.to_string(),
            },
            Change::Notice(Notice {
                to: agent,
                msg_type: "status",
                subject: format!("Task {}: your lease on assignment {id} expired", self.task.id),
                body: format!(
                    "Assignment {id} ({goal}) went back to pending because its lease lapsed without progress. Claim it again to continue; report progress with assignment_progress to keep the lease."
                ),
                push: Item::hub(Kind::LeaseExpired, None)
                    .task(&self.task.id)
                    .round(&round_id)
                    .assignment(id),
                round_id: Some(round_id),
            }),
        ]
    }
}
