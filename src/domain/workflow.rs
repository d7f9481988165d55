//! The state machine of one task, as pure functions over [`TaskState`]. The TaskActor
//! owns a `TaskState`, calls these one at a time, and persists what they report as
//! changed. Time and fresh ids are passed in, so every rule is unit-tested here.
//!
//! Each transition returns the list of [`Change`]s it made (rows to write, notices
//! to deliver, active-assignment slots to release), or a refusal with the
//! reference's error code.

use super::error::DomainError;
use super::task::{
    Assignment, AssignmentStatus as A, Handoff, HandoffDraft, PlanItem, Round, RoundStatus as R,
    Task, TaskStatus as T,
};
use super::time::{iso, parse_iso, Timestamp};
use chrono::Duration;

/// Workflow limits from `config.yaml`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rounds: u32,
    pub max_assignments_per_round: u32,
    pub max_messages_per_task: u32,
    pub lease: Duration,
}

/// An inbox message the hub sends on its own (`from_agent` = "hub").
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub to: String,
    pub msg_type: &'static str,
    pub subject: String,
    pub body: String,
    pub round_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
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
    },
    /// A lease to (re)arm a timer for.
    Lease {
        assignment: String,
        expires_at: Timestamp,
    },
    Notice(Notice),
}

pub type Changes = Vec<Change>;

/// One task with everything under it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub task: Task,
    pub rounds: Vec<Round>,
    pub assignments: Vec<Assignment>,
    pub handoffs: Vec<Handoff>,
    /// Agent messages carrying one of this task's round ids.
    pub message_count: u32,
}

fn refused(code: &'static str, message: impl Into<String>) -> DomainError {
    DomainError::refused(code, message)
}

impl TaskState {
    pub fn new(
        id: &str,
        title: &str,
        description: &str,
        dispatcher: &str,
        now: Timestamp,
    ) -> TaskState {
        let at = iso(now);
        TaskState {
            task: Task {
                id: id.to_string(),
                title: title.to_string(),
                description: description.to_string(),
                status: T::Draft,
                dispatcher_agent_id: dispatcher.to_string(),
                created_at: at.clone(),
                updated_at: at,
            },
            rounds: Vec::new(),
            assignments: Vec::new(),
            handoffs: Vec::new(),
            message_count: 0,
        }
    }

    pub fn round(&self, id: &str) -> Option<&Round> {
        self.rounds.iter().find(|r| r.id == id)
    }

    fn round_mut(&mut self, id: &str) -> Result<&mut Round, DomainError> {
        self.rounds
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| refused("ROUND_NOT_FOUND", format!("round {id} does not exist")))
    }

    pub fn assignment(&self, id: &str) -> Option<&Assignment> {
        self.assignments.iter().find(|a| a.id == id)
    }

    pub fn handoff(&self, id: &str) -> Option<&Handoff> {
        self.handoffs.iter().find(|h| h.id == id)
    }

    pub fn round_assignments<'a>(
        &'a self,
        round_id: &'a str,
    ) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments
            .iter()
            .filter(move |a| a.round_id == round_id)
    }

    fn latest_round(&self) -> Option<&Round> {
        self.rounds.iter().max_by_key(|r| r.round_number)
    }

    fn check_open(&self) -> Result<(), DomainError> {
        if self.task.status == T::Closed {
            return Err(refused(
                "TASK_CLOSED",
                format!("task {} is closed", self.task.id),
            ));
        }
        Ok(())
    }

    fn check_dispatcher(&self, caller: &str) -> Result<(), DomainError> {
        if caller != self.task.dispatcher_agent_id {
            return Err(refused(
                "NOT_TASK_DISPATCHER",
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
        self.task.updated_at = iso(now);
    }

    fn new_assignments(
        &mut self,
        round_id: &str,
        items: &[PlanItem],
        now: Timestamp,
        ids: &mut dyn FnMut() -> String,
    ) -> Changes {
        let at = iso(now);
        let mut changes = Vec::new();
        for item in items {
            let a = Assignment {
                id: ids(),
                round_id: round_id.to_string(),
                task_id: self.task.id.clone(),
                agent_id: item.agent_id.clone(),
                goal: item.goal.clone(),
                status: A::Pending,
                progress_note: None,
                claimed_at: None,
                lease_expires_at: None,
                handoff_id: None,
                created_at: at.clone(),
                updated_at: at.clone(),
            };
            changes.push(Change::Assignment(a.id.clone()));
            self.assignments.push(a);
        }
        changes
    }

    /// `round_plan_submit`. A plan for a round still awaiting operator approval (for
    /// example after a reject) replaces that round's assignments without using up a
    /// round; otherwise the first plan of a draft task opens round 1.
    // Every argument is a distinct input of the rule; a bag struct would only hide them.
    #[allow(clippy::too_many_arguments)]
    pub fn submit_plan(
        &mut self,
        caller: &str,
        items: &[PlanItem],
        plan_json: &str,
        is_agent: &dyn Fn(&str) -> bool,
        limits: &Limits,
        now: Timestamp,
        ids: &mut dyn FnMut() -> String,
    ) -> Result<(String, Changes), DomainError> {
        self.check_open()?;
        self.check_dispatcher(caller)?;
        if items.len() > limits.max_assignments_per_round as usize {
            return Err(refused(
                "TOO_MANY_ASSIGNMENTS",
                format!(
                    "the plan has {} assignments; at most {} per round (max_assignments_per_round)",
                    items.len(),
                    limits.max_assignments_per_round
                ),
            ));
        }
        if let Some(unknown) = items.iter().find(|i| !is_agent(&i.agent_id)) {
            return Err(DomainError::UnknownAgent(unknown.agent_id.clone()));
        }
        let at = iso(now);
        let mut changes = Vec::new();
        let revising = self
            .latest_round()
            .filter(|r| r.status == R::AwaitingOperatorApproval)
            .map(|r| r.id.clone());
        let round_id = match revising {
            Some(rid) => {
                let old: Vec<String> = self.round_assignments(&rid).map(|a| a.id.clone()).collect();
                self.assignments.retain(|a| a.round_id != rid);
                changes.extend(old.into_iter().map(Change::AssignmentDeleted));
                let r = self.round_mut(&rid)?;
                r.plan_json = plan_json.to_string();
                r.rejected = false;
                r.updated_at = at.clone();
                rid
            }
            None => {
                if self.task.status != T::Draft {
                    return Err(refused(
                        "TASK_NOT_DISPATCHABLE",
                        format!(
                            "task {} is {}; a new plan is accepted for a draft task or a round awaiting operator approval",
                            self.task.id,
                            self.task.status.as_str()
                        ),
                    ));
                }
                let number = self.rounds.len() as u32 + 1;
                if number > limits.max_rounds {
                    return Err(refused(
                        "MAX_ROUNDS_REACHED",
                        format!(
                            "task {} already had {} rounds (max_rounds)",
                            self.task.id, limits.max_rounds
                        ),
                    ));
                }
                let r = self.open_round(number, plan_json, &at, ids);
                self.rounds.push(r);
                self.rounds.last().map(|r| r.id.clone()).unwrap_or_default()
            }
        };
        changes.push(Change::Round(round_id.clone()));
        changes.extend(self.new_assignments(&round_id, items, now, ids));
        self.touch_task(T::AwaitingOperatorApproval, now);
        changes.push(Change::Task);
        Ok((round_id, changes))
    }

    fn open_round(
        &self,
        number: u32,
        plan_json: &str,
        at: &str,
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
            created_at: at.to_string(),
            updated_at: at.to_string(),
        }
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
                "ROUND_NOT_AWAITING_APPROVAL",
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
        r.updated_at = iso(now);
        Ok(r.round_number)
    }

    /// Operator approves: round and task → dispatched; each assignee is told.
    pub fn approve(
        &mut self,
        round_id: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Changes, DomainError> {
        let number = self.decide(round_id, note, false, now)?;
        self.touch_task(T::Dispatched, now);
        let mut changes = vec![
            Change::Round(round_id.to_string()),
            Change::Task,
            Change::Approval {
                round_id: round_id.to_string(),
                action: "approve",
                note: note.to_string(),
            },
        ];
        let mut by_agent: Vec<(String, Vec<String>)> = Vec::new();
        for a in self.round_assignments(round_id) {
            let line = format!("- {}: {}", a.id, a.goal);
            match by_agent.iter_mut().find(|(ag, _)| *ag == a.agent_id) {
                Some((_, lines)) => lines.push(line),
                None => by_agent.push((a.agent_id.clone(), vec![line])),
            }
        }
        for (agent, lines) in by_agent {
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
            }));
        }
        Ok(changes)
    }

    /// Operator rejects: the round keeps awaiting approval, the note is recorded, and
    /// the dispatcher is told to submit a revised plan.
    pub fn reject(
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
            }),
        ])
    }

    fn own_assignment(&self, caller: &str, id: &str) -> Result<&Assignment, DomainError> {
        match self.assignment(id) {
            Some(a) if a.agent_id == caller => {
                self.check_open()?;
                Ok(a)
            }
            _ => Err(refused(
                "ASSIGNMENT_NOT_VALID",
                format!("assignment {id} does not exist or is not assigned to you"),
            )),
        }
    }

    fn assignment_mut(&mut self, id: &str) -> &mut Assignment {
        self.assignments
            .iter_mut()
            .find(|a| a.id == id)
            .expect("invariant: the assignment was found by a check just before")
    }

    /// Whether `caller` may claim assignment `id` now (before taking one of its
    /// active-assignment slots).
    pub fn check_claim(&self, caller: &str, id: &str) -> Result<(), DomainError> {
        let a = self.own_assignment(caller, id)?;
        if a.status != A::Pending {
            return Err(refused(
                "ASSIGNMENT_NOT_PENDING",
                format!("assignment {id} is {}, not pending", a.status.as_str()),
            ));
        }
        let r = self.round(&a.round_id).map(|r| r.status);
        if !matches!(r, Some(R::Dispatched | R::InProgress)) {
            return Err(refused(
                "ROUND_NOT_APPROVED",
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
    pub fn claim(
        &mut self,
        caller: &str,
        id: &str,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Changes, DomainError> {
        self.check_claim(caller, id)?;
        let at = iso(now);
        let expires = now + limits.lease;
        let a = self.assignment_mut(id);
        a.status = A::Claimed;
        a.claimed_at = Some(at.clone());
        a.lease_expires_at = Some(iso(expires));
        a.updated_at = at.clone();
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
    pub fn progress(
        &mut self,
        caller: &str,
        id: &str,
        status: &str,
        note: &str,
        now: Timestamp,
        limits: &Limits,
    ) -> Result<Changes, DomainError> {
        let target = match status {
            "claimed" => A::Claimed,
            "in_progress" => A::InProgress,
            other => {
                return Err(refused(
                    "INVALID_STATUS",
                    format!("status {other:?} is not one of: claimed, in_progress"),
                ))
            }
        };
        let a = self.own_assignment(caller, id)?;
        if !a.status.is_active() {
            return Err(refused(
                "ASSIGNMENT_NOT_ACTIVE",
                format!("assignment {id} is {}; only a claimed or in-progress assignment can report progress", a.status.as_str()),
            ));
        }
        if a.status == A::InProgress && target == A::Claimed {
            return Err(refused(
                "INVALID_TRANSITION",
                format!("assignment {id} is already in_progress; it cannot go back to claimed"),
            ));
        }
        let at = iso(now);
        let expires = now + limits.lease;
        let a = self.assignment_mut(id);
        a.status = target;
        if !note.is_empty() {
            a.progress_note = Some(note.to_string());
        }
        a.lease_expires_at = Some(iso(expires));
        a.updated_at = at;
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
    pub fn complete(
        &mut self,
        caller: &str,
        id: &str,
        draft: HandoffDraft,
        now: Timestamp,
        ids: &mut dyn FnMut() -> String,
    ) -> Result<(Handoff, Changes), DomainError> {
        let a = self.own_assignment(caller, id)?;
        if !a.status.is_active() {
            return Err(refused(
                "ASSIGNMENT_NOT_ACTIVE",
                format!("assignment {id} is {}; claim it first (only claimed or in-progress work can be completed)", a.status.as_str()),
            ));
        }
        let at = iso(now);
        let handoff = Handoff {
            id: ids(),
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
            created_at: at.clone(),
        };
        let a = self.assignment_mut(id);
        a.status = A::Completed;
        a.handoff_id = Some(handoff.id.clone());
        a.lease_expires_at = None;
        a.updated_at = at.clone();
        let round_id = a.round_id.clone();
        let goal = a.goal.clone();
        self.handoffs.push(handoff.clone());
        let dispatcher = self.task.dispatcher_agent_id.clone();
        let mut changes = vec![
            Change::Handoff(handoff.id.clone()),
            Change::Assignment(id.to_string()),
            Change::Released { agent: caller.to_string() },
            Change::Notice(Notice {
                to: dispatcher.clone(),
                msg_type: "handoff",
                subject: format!("Task {}: assignment {id} completed by {caller}", self.task.id),
                body: format!(
                    "{caller} completed assignment {id} ({goal}). Read the handoff with handoff_get(\"{}\").",
                    handoff.id
                ),
                round_id: Some(round_id.clone()),
            }),
        ];
        let all_done = self
            .round_assignments(&round_id)
            .all(|a| a.status == A::Completed);
        let task_id = self.task.id.clone();
        let r = self.round_mut(&round_id)?;
        if all_done && matches!(r.status, R::Dispatched | R::InProgress) {
            r.status = R::AwaitingReview;
            r.updated_at = at;
            let number = r.round_number;
            changes.push(Change::Round(round_id.clone()));
            changes.push(Change::Notice(Notice {
                to: dispatcher,
                msg_type: "review",
                subject: format!("Task {task_id} round {number} awaits your review"),
                body: format!(
                    "Every assignment of round {number} ({round_id}) is completed. Review it with review_submit(round_id, \"approved\" | \"changes_requested\", note)."
                ),
                round_id: Some(round_id),
            }));
        }
        Ok((handoff, changes))
    }

    /// A lease timer fired: if the claim really lapsed, the assignment is pending
    /// again (claimable; completing it fails) and its agent is told. Renewed or
    /// finished assignments are left alone.
    pub fn expire_lease(&mut self, id: &str, now: Timestamp) -> Changes {
        let Some(a) = self.assignment(id) else {
            return Vec::new();
        };
        let lapsed = a
            .lease_expires_at
            .as_deref()
            .and_then(parse_iso)
            .is_some_and(|t| t <= now);
        if !a.status.is_active() || !lapsed || self.task.status == T::Closed {
            return Vec::new();
        }
        let at = iso(now);
        let a = self.assignment_mut(id);
        a.status = A::Pending;
        a.claimed_at = None;
        a.lease_expires_at = None;
        a.updated_at = at;
        let agent = a.agent_id.clone();
        let (goal, round_id) = (a.goal.clone(), a.round_id.clone());
        vec![
            Change::Assignment(id.to_string()),
            Change::Released { agent: agent.clone() },
            Change::Notice(Notice {
                to: agent,
                msg_type: "status",
                subject: format!("Task {}: your lease on assignment {id} expired", self.task.id),
                body: format!(
                    "Assignment {id} ({goal}) went back to pending because its lease lapsed without progress. Claim it again to continue; report progress with assignment_progress to keep the lease."
                ),
                round_id: Some(round_id),
            }),
        ]
    }

    /// `review_submit` by the dispatcher on a round awaiting review.
    #[allow(clippy::too_many_arguments)]
    pub fn review(
        &mut self,
        caller: &str,
        round_id: &str,
        verdict: &str,
        note: &str,
        limits: &Limits,
        now: Timestamp,
        ids: &mut dyn FnMut() -> String,
    ) -> Result<(Option<Round>, Changes), DomainError> {
        if !matches!(verdict, "approved" | "changes_requested") {
            return Err(refused(
                "INVALID_VERDICT",
                format!("verdict {verdict:?} is not one of: approved, changes_requested"),
            ));
        }
        self.check_open()?;
        self.check_dispatcher(caller)?;
        let r = self.round(round_id).ok_or_else(|| {
            refused(
                "ROUND_NOT_FOUND",
                format!("round {round_id} does not exist"),
            )
        })?;
        match r.status {
            R::AwaitingReview => {}
            R::Dispatched | R::InProgress => {
                let open: Vec<String> = self
                    .round_assignments(round_id)
                    .filter(|a| a.status != A::Completed)
                    .map(|a| format!("{}({})", a.id, a.status.as_str()))
                    .collect();
                return Err(refused(
                    "ASSIGNMENTS_NOT_COMPLETE",
                    format!(
                        "round {round_id} still has open assignments: {}",
                        open.join(", ")
                    ),
                ));
            }
            other => {
                return Err(refused(
                    "ROUND_NOT_REVIEWABLE",
                    format!(
                        "round {round_id} is {}, not awaiting review",
                        other.as_str()
                    ),
                ))
            }
        }
        let number = r.round_number;
        if verdict == "changes_requested" && number >= limits.max_rounds {
            return Err(refused(
                "MAX_ROUNDS_REACHED",
                format!("round {number} is the last of {} (max_rounds); approve it or ask the operator to close the task", limits.max_rounds),
            ));
        }
        let at = iso(now);
        let r = self.round_mut(round_id)?;
        r.review_verdict = Some(verdict.to_string());
        r.review_note = Some(note.to_string()).filter(|n| !n.is_empty());
        r.updated_at = at.clone();
        let mut changes = vec![Change::Round(round_id.to_string()), Change::Task];
        if verdict == "approved" {
            r.status = R::Completed;
            self.touch_task(T::Completed, now);
            return Ok((None, changes));
        }
        r.status = R::ChangesRequested;
        let plan_json = r.plan_json.clone();
        let items: Vec<PlanItem> = self
            .round_assignments(round_id)
            .map(|a| PlanItem {
                agent_id: a.agent_id.clone(),
                goal: a.goal.clone(),
            })
            .collect();
        let next = self.open_round(number + 1, &plan_json, &at, ids);
        let next_id = next.id.clone();
        self.rounds.push(next.clone());
        changes.push(Change::Round(next_id.clone()));
        changes.extend(self.new_assignments(&next_id, &items, now, ids));
        self.touch_task(T::AwaitingOperatorApproval, now);
        let mut told: Vec<&str> = Vec::new();
        for item in &items {
            if told.contains(&item.agent_id.as_str()) {
                continue;
            }
            told.push(&item.agent_id);
            changes.push(Change::Notice(Notice {
                to: item.agent_id.clone(),
                msg_type: "review",
                subject: format!("Task {} round {number}: changes requested", self.task.id),
                body: format!(
                    "The dispatcher requested changes on round {number} ({round_id}). Note: {}\nRound {} ({next_id}) now awaits operator approval; you will be told when it is dispatched.",
                    if note.is_empty() { "(none)" } else { note },
                    number + 1
                ),
                round_id: Some(next_id.clone()),
            }));
        }
        Ok((Some(next), changes))
    }

    /// Operator closes the task: open assignments are cancelled, unfinished rounds too,
    /// and agents holding open work are told.
    pub fn close(&mut self, now: Timestamp) -> Result<Changes, DomainError> {
        self.check_open()?;
        let at = iso(now);
        let mut changes = vec![Change::Task];
        let mut told: Vec<String> = Vec::new();
        let task_id = self.task.id.clone();
        for a in self.assignments.iter_mut() {
            if matches!(a.status, A::Completed | A::Cancelled) {
                continue;
            }
            if a.status.is_active() {
                changes.push(Change::Released {
                    agent: a.agent_id.clone(),
                });
            }
            if !told.contains(&a.agent_id) {
                told.push(a.agent_id.clone());
            }
            a.status = A::Cancelled;
            a.lease_expires_at = None;
            a.updated_at = at.clone();
            changes.push(Change::Assignment(a.id.clone()));
        }
        for r in self.rounds.iter_mut() {
            if !matches!(r.status, R::Completed | R::ChangesRequested | R::Cancelled) {
                r.status = R::Cancelled;
                r.updated_at = at.clone();
                changes.push(Change::Round(r.id.clone()));
            }
        }
        for agent in told {
            changes.push(Change::Notice(Notice {
                to: agent,
                msg_type: "status",
                subject: format!("Task {task_id} was closed"),
                body: format!("The operator closed task {task_id}; your open assignments on it are cancelled. Stop work on them."),
                round_id: None,
            }));
        }
        self.touch_task(T::Closed, now);
        Ok(changes)
    }

    /// One more agent message on this task's rounds, unless the limit is reached.
    pub fn count_message(&mut self, limits: &Limits) -> Result<(), DomainError> {
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
mod tests;
