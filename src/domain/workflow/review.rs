//! `review_submit`: the dispatcher's verdict on a round whose work is done.

use super::{by_agent, refused, Change, Changes, Ctx, Item, Kind, Notice, TaskState};
use crate::domain::error::{DomainError, ErrorCode};
use crate::domain::task::{
    AssignmentStatus as A, PlanItem, Round, RoundStatus as R, TaskStatus as T, Verdict,
};

impl TaskState {
    /// `review_submit` by the dispatcher on a round awaiting review. "approved"
    /// completes round and task; "changes_requested" opens the next round with the
    /// same assignments (returned), awaiting the operator.
    pub(crate) fn review(
        &mut self,
        cx: &mut Ctx,
        caller: &str,
        round_id: &str,
        verdict: Verdict,
        note: &str,
    ) -> Result<(Option<Round>, Changes), DomainError> {
        self.check_open()?;
        self.check_dispatcher(caller)?;
        let number = self.check_reviewable(round_id)?;
        let next = self.next_round_number();
        if verdict == Verdict::ChangesRequested && next > cx.limits.max_rounds {
            return Err(refused(
                ErrorCode::MaxRoundsReached,
                format!("task {} already had {} rounds (max_rounds); approve round {number} or ask the operator to close the task", self.task.id, cx.limits.max_rounds),
            ));
        }
        let at = cx.now;
        let r = self.round_mut(round_id)?;
        r.review_verdict = Some(verdict.as_str().to_string());
        r.review_note = Some(note.to_string()).filter(|n| !n.is_empty());
        r.updated_at = at;
        let mut changes = vec![Change::Round(round_id.to_string()), Change::Task];
        if verdict == Verdict::Approved {
            r.status = R::Completed;
            let assignees = self
                .round_assignments(round_id)
                .map(|a| (a.agent_id.clone(), ()));
            for (agent, _) in by_agent(assignees) {
                changes.push(Change::Push {
                    to: agent,
                    item: Item {
                        verdict: Some(verdict.as_str().to_string()),
                        ..Item::hub(Kind::Review, Some(caller))
                            .task(&self.task.id)
                            .round(round_id)
                    },
                });
            }
            // Completes the task only when no other round of it is open.
            self.settle_task(T::Completed, cx.now);
            return Ok((None, changes));
        }
        r.status = R::ChangesRequested;
        let (next, more) = self.reopen(cx, round_id, number, next, note)?;
        changes.extend(more);
        Ok((Some(next), changes))
    }

    /// The round's number if it awaits review; otherwise why it cannot be reviewed.
    fn check_reviewable(&self, round_id: &str) -> Result<u32, DomainError> {
        let r = self.round(round_id).ok_or_else(|| {
            refused(
                ErrorCode::RoundNotFound,
                format!("round {round_id} does not exist"),
            )
        })?;
        match r.status {
            R::AwaitingReview => Ok(r.round_number),
            R::Dispatched | R::InProgress => {
                let open: Vec<String> = self
                    .round_assignments(round_id)
                    .filter(|a| a.status != A::Completed)
                    .map(|a| format!("{}({})", a.id, a.status.as_str()))
                    .collect();
                Err(refused(
                    ErrorCode::AssignmentsNotComplete,
                    format!(
                        "round {round_id} still has open assignments: {}",
                        open.join(", ")
                    ),
                ))
            }
            other => Err(refused(
                ErrorCode::RoundNotReviewable,
                format!(
                    "round {round_id} is {}, not awaiting review",
                    other.as_str()
                ),
            )),
        }
    }

    /// Changes requested on round `number`: round `next` (max+1) opens with the same
    /// plan and assignments, awaiting the operator; each assignee is told once.
    fn reopen(
        &mut self,
        cx: &mut Ctx,
        round_id: &str,
        number: u32,
        next_number: u32,
        note: &str,
    ) -> Result<(Round, Changes), DomainError> {
        let plan_json = self.round_mut(round_id)?.plan_json.clone();
        let items: Vec<PlanItem> = self
            .round_assignments(round_id)
            .map(|a| PlanItem {
                agent_id: a.agent_id.clone(),
                goal: a.goal.clone(),
            })
            .collect();
        let next = self.open_round(next_number, &plan_json, cx.now, cx.ids);
        let next_id = next.id.clone();
        self.rounds.push(next.clone());
        let mut changes = vec![Change::Round(next_id.clone())];
        changes.extend(self.new_assignments(cx, &next_id, &items));
        self.settle_task(T::AwaitingOperatorApproval, cx.now);
        let assignees = items.into_iter().map(|i| (i.agent_id, ()));
        for (agent, _) in by_agent(assignees) {
            changes.push(Change::Notice(Notice {
                to: agent,
                msg_type: "review",
                subject: format!("Task {} round {number}: changes requested", self.task.id),
                body: format!(
                    "The dispatcher requested changes on round {number} ({round_id}). Note: {}\nRound {} ({next_id}) now awaits operator approval; you will be told when it is dispatched.",
                    if note.is_empty() { "(none)" } else { note },
                    next_number
                ),
                round_id: Some(next_id.clone()),
                push: Item {
                    verdict: Some("changes_requested".to_string()),
                    ..Item::hub(Kind::Review, Some(&self.task.dispatcher_agent_id))
                        .task(&self.task.id)
                        .round(&next_id)
                },
            }));
        }
        Ok((next, changes))
    }
}
