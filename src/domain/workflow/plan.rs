//! The dispatcher's plans and the operator's decisions: `round_plan_submit`,
//! approve, reject, and closing a task.

use super::{by_agent, refused, Change, Changes, Ctx, Item, Kind, Notice, TaskState};
use crate::domain::error::{DomainError, ErrorCode};
use crate::domain::task::{AssignmentStatus as A, Plan, RoundStatus as R, TaskStatus as T};
use crate::domain::time::Timestamp;

impl TaskState {
    /// `round_plan_submit`. A plan while a round awaits operator approval (for
    /// example after a reject) replaces that round's assignments without using up a
    /// round; otherwise a draft or dispatched task gets round max+1 (the reference's
    /// follow-up rounds: round n+1 planned while round n is worked on), within
    /// `max_rounds`. Returns the round's id.
    pub(crate) fn submit_plan(
        &mut self,
        cx: &mut Ctx,
        caller: &str,
        plan: &Plan,
        is_agent: &dyn Fn(&str) -> bool,
    ) -> Result<(String, Changes), DomainError> {
        self.check_open()?;
        self.check_dispatcher(caller)?;
        let max = cx.limits.max_assignments_per_round;
        if plan.items.len() > max as usize {
            return Err(refused(
                ErrorCode::TooManyAssignments,
                format!(
                    "the plan has {} assignments; at most {max} per round (max_assignments_per_round)",
                    plan.items.len()
                ),
            ));
        }
        if let Some(unknown) = plan.items.iter().find(|i| !is_agent(&i.agent_id)) {
            return Err(DomainError::UnknownAgent(unknown.agent_id.clone()));
        }
        let mut changes = Vec::new();
        // The newest such round, should there be two (changes requested on one
        // round while a follow-up plan awaits the operator).
        let revising = self
            .rounds
            .iter()
            .filter(|r| r.status == R::AwaitingOperatorApproval)
            .max_by_key(|r| r.round_number)
            .map(|r| r.id.clone());
        let round_id = match revising {
            Some(rid) => {
                changes.extend(self.replace_plan(&rid, &plan.json, cx.now)?);
                rid
            }
            None => self.open_next_round(cx, &plan.json)?,
        };
        changes.push(Change::Round(round_id.clone()));
        changes.extend(self.new_assignments(cx, &round_id, &plan.items));
        self.settle_task(T::AwaitingOperatorApproval, cx.now);
        changes.push(Change::Task);
        Ok((round_id, changes))
    }

    /// A revised plan for round `rid`: its old assignments are deleted.
    fn replace_plan(
        &mut self,
        rid: &str,
        plan_json: &str,
        now: Timestamp,
    ) -> Result<Changes, DomainError> {
        let old: Vec<String> = self.round_assignments(rid).map(|a| a.id.clone()).collect();
        self.assignments.retain(|a| a.round_id != rid);
        let r = self.round_mut(rid)?;
        r.plan_json = plan_json.to_string();
        r.rejected = false;
        r.updated_at = now;
        Ok(old.into_iter().map(Change::AssignmentDeleted).collect())
    }

    /// Round max+1 of a draft or dispatched task; returns its id.
    fn open_next_round(&mut self, cx: &mut Ctx, plan_json: &str) -> Result<String, DomainError> {
        if !matches!(self.task.status, T::Draft | T::Dispatched) {
            return Err(refused(
                ErrorCode::TaskNotDispatchable,
                format!(
                    "task {} is {}; a plan is accepted for a draft or dispatched task, or replaces a round awaiting operator approval",
                    self.task.id,
                    self.task.status.as_str()
                ),
            ));
        }
        let number = self.next_round_number();
        if number > cx.limits.max_rounds {
            return Err(refused(
                ErrorCode::MaxRoundsReached,
                format!(
                    "task {} already had {} rounds (max_rounds)",
                    self.task.id, cx.limits.max_rounds
                ),
            ));
        }
        let r = self.open_round(number, plan_json, cx.now, cx.ids);
        let id = r.id.clone();
        self.rounds.push(r);
        Ok(id)
    }

    /// Record the operator's decision on a round awaiting approval; returns its
    /// number. `rejected` keeps it awaiting a revised plan.
    fn decide(
        &mut self,
        round_id: &str,
        note: &str,
        rejected: bool,
        now: Timestamp,
    ) -> Result<u32, DomainError> {
        self.check_open()?;
        let r = self.round_mut(round_id)?;
        if r.status != R::AwaitingOperatorApproval {
            return Err(refused(
                ErrorCode::RoundNotAwaitingApproval,
                format!(
                    "round {round_id} is {}, not awaiting operator approval",
                    r.status.as_str()
                ),
            ));
        }
        if !rejected {
            r.status = R::Dispatched;
        }
        r.rejected = rejected;
        r.operator_note = Some(note.to_string()).filter(|n| !n.is_empty());
        r.updated_at = now;
        Ok(r.round_number)
    }

    /// Operator approves: round → dispatched, and the task too unless another round
    /// still awaits approval; each assignee is told once, with all of its assignments.
    pub(crate) fn approve(
        &mut self,
        round_id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Changes, DomainError> {
        let number = self.decide(round_id, note, false, now)?;
        self.settle_task(T::Dispatched, now);
        let mut changes = vec![
            Change::Round(round_id.to_string()),
            Change::Task,
            Change::Approval {
                round_id: round_id.to_string(),
                action: "approve",
                note: note.to_string(),
            },
        ];
        let lines = self.round_assignments(round_id).map(|a| {
            (
                a.agent_id.clone(),
                (a.id.clone(), format!("- {}: {}", a.id, a.goal)),
            )
        });
        let task_id = self.task.id.clone();
        changes.push(Change::Push {
            to: self.task.dispatcher_agent_id.clone(),
            item: Item::hub(Kind::RoundApproved, None)
                .task(&task_id)
                .round(round_id),
        });
        for (agent, items) in by_agent(lines) {
            let (ids, lines): (Vec<String>, Vec<String>) = items.into_iter().unzip();
            changes.push(Change::Notice(Notice {
                to: agent,
                msg_type: "assignment",
                subject: format!("Task {} round {number} approved: your assignments", self.task.id),
                body: format!(
                    "The operator approved round {number} ({round_id}) of task {} \"{}\". Claim each with assignment_claim:\n{}",
                    self.task.id,
                    self.task.title,
                    lines.join("\n")
                ),
                round_id: Some(round_id.to_string()),
                push: Item::hub(Kind::Assignment, None)
                    .task(&task_id)
                    .round(round_id)
                    .assignment(&ids.join(",")),
            }));
        }
        Ok(changes)
    }

    /// Operator rejects: the round keeps awaiting approval, the note is recorded, and
    /// the dispatcher is told to submit a revised plan.
    pub(crate) fn reject(
        &mut self,
        round_id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Changes, DomainError> {
        let number = self.decide(round_id, note, true, now)?;
        Ok(vec![
            Change::Round(round_id.to_string()),
            Change::Approval {
                round_id: round_id.to_string(),
                action: "reject",
                note: note.to_string(),
            },
            Change::Notice(Notice {
                to: self.task.dispatcher_agent_id.clone(),
                msg_type: "review",
                subject: format!("Task {} round {number}: plan rejected", self.task.id),
                body: format!(
                    "The operator rejected the plan of round {number} ({round_id}). Note: {}\nSubmit a revised plan with round_plan_submit; it replaces this round's assignments.",
                    if note.is_empty() { "(none)" } else { note }
                ),
                round_id: Some(round_id.to_string()),
                push: Item::hub(Kind::RoundRejected, None)
                    .task(&self.task.id)
                    .round(round_id),
            }),
        ])
    }

    /// Operator closes the task: open assignments are cancelled, unfinished rounds too,
    /// and agents holding open work are told.
    pub(crate) fn close(&mut self, now: Timestamp) -> Result<Changes, DomainError> {
        self.check_open()?;
        let at = now;
        let mut changes = vec![Change::Task];
        let mut holders = Vec::new();
        for a in self.assignments.iter_mut() {
            if matches!(a.status, A::Completed | A::Cancelled) {
                continue;
            }
            if a.status.is_active() {
                changes.push(Change::Released {
                    agent: a.agent_id.clone(),
                    assignment: a.id.clone(),
                });
            }
            holders.push((a.agent_id.clone(), ()));
            a.status = A::Cancelled;
            a.lease_expires_at = None;
            a.updated_at = at;
            changes.push(Change::Assignment(a.id.clone()));
        }
        for r in self.rounds.iter_mut() {
            if !matches!(r.status, R::Completed | R::ChangesRequested | R::Cancelled) {
                r.status = R::Cancelled;
                r.updated_at = at;
                changes.push(Change::Round(r.id.clone()));
            }
        }
        let task_id = &self.task.id;
        for (agent, _) in by_agent(holders) {
            changes.push(Change::Notice(Notice {
                to: agent,
                msg_type: "status",
                subject: format!("Task {task_id} was closed"),
                body: format!("The operator closed task {task_id}; your open assignments on it are cancelled. Stop work on them."),
                round_id: None,
                push: Item::hub(Kind::TaskClosed, None).task(task_id),
            }));
        }
        self.touch_task(T::Closed, now);
        Ok(changes)
    }
}
