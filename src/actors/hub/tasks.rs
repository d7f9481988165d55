//! The task workflow through the façade, as the agents use it: create, plan,
//! claim, progress, complete, review, list and read handoffs.

use super::Hub;
use crate::actors::task::commands::{
    Claim, Complete, Completed, GetHandoff, MyAssignments, Planned, Progress, Review, Reviewed,
    SubmitPlan,
};
use crate::actors::task::TaskActor;
use crate::actors::HubError;
use crate::domain::task::{Assignment, Handoff, HandoffDraft, Plan, ProgressStatus, Task, Verdict};
use crate::domain::workflow::TaskState;
use crate::domain::{AgentId, DomainError, ErrorCode};
use crate::store::Op;
use actix::Actor;
use chrono::{DateTime, Utc};

impl Hub {
    /// `task_draft_create`: a new task in draft, owned by a new TaskActor. The
    /// directory's entry API makes two creations of one id race-free.
    pub(crate) async fn create_task(
        &self,
        caller: &AgentId,
        id: &str,
        title: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<Task, HubError> {
        let state = TaskState::new(id, title, description, caller.as_str(), now);
        let task = state.task.clone();
        // The entry (and its shard lock) is released before any await.
        let created = match self.inner.tasks.entry(id.to_string()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(v) => {
                // Enqueued before the actor exists, so it precedes all of its writes.
                let ticket = self.inner.store.enqueue(Op::TaskUpsert(task.clone()));
                let actor = TaskActor::new(state, self.inner.task_env.clone());
                v.insert(TaskActor::start_in_arbiter(
                    &self.inner.arbiter,
                    move |_| actor,
                ));
                Some(ticket)
            }
        };
        let Some(ticket) = created else {
            return Err(DomainError::refused(
                ErrorCode::TaskExists,
                format!("task {id} already exists; choose another task_id"),
            )
            .into());
        };
        self.inner.store.wait_durable(ticket).await?;
        Ok(task)
    }

    /// `round_plan_submit` by `caller` on task `task_id`.
    pub(crate) async fn submit_plan(
        &self,
        caller: &AgentId,
        task_id: &str,
        plan: Plan,
    ) -> Result<Planned, HubError> {
        let cmd = SubmitPlan {
            caller: caller.clone(),
            task_id: task_id.to_string(),
            plan,
        };
        self.on_task(task_id, cmd).await
    }

    /// `review_submit` by `caller` on round `round_id`.
    pub(crate) async fn review(
        &self,
        caller: &AgentId,
        round_id: &str,
        verdict: Verdict,
        note: String,
    ) -> Result<Reviewed, HubError> {
        let task = self.task_of_round(round_id)?;
        let cmd = Review {
            caller: caller.clone(),
            round_id: round_id.to_string(),
            verdict,
            note,
        };
        self.on_task(&task, cmd).await
    }

    /// `assignment_claim`.
    pub(crate) async fn claim(&self, caller: &AgentId, id: &str) -> Result<Assignment, HubError> {
        let task = self.task_of_assignment(id)?;
        let cmd = Claim {
            caller: caller.clone(),
            assignment_id: id.to_string(),
        };
        self.on_task(&task, cmd).await
    }

    /// `assignment_progress`: forward moves only; renews the lease.
    pub(crate) async fn progress(
        &self,
        caller: &AgentId,
        id: &str,
        status: ProgressStatus,
        note: String,
    ) -> Result<Assignment, HubError> {
        let task = self.task_of_assignment(id)?;
        let cmd = Progress {
            caller: caller.clone(),
            assignment_id: id.to_string(),
            status,
            note,
        };
        self.on_task(&task, cmd).await
    }

    /// `assignment_complete` with its handoff.
    pub(crate) async fn complete(
        &self,
        caller: &AgentId,
        id: &str,
        handoff: HandoffDraft,
    ) -> Result<Completed, HubError> {
        let task = self.task_of_assignment(id)?;
        let cmd = Complete {
            caller: caller.clone(),
            assignment_id: id.to_string(),
            handoff,
        };
        self.on_task(&task, cmd).await
    }

    /// `handoff_get`: any agent may read any handoff.
    pub(crate) async fn handoff(&self, id: &str) -> Result<Handoff, HubError> {
        let task = self.task_of_handoff(id)?;
        let cmd = GetHandoff {
            handoff_id: id.to_string(),
        };
        self.on_task(&task, cmd).await
    }

    /// The caller's assignments: in one round (oldest first) or everywhere (newest first).
    pub(crate) async fn assignments_of(
        &self,
        caller: &AgentId,
        round_id: Option<&str>,
    ) -> Result<Vec<Assignment>, HubError> {
        let tasks: Vec<String> = match round_id {
            Some(r) => vec![self.task_of_round(r)?],
            None => self
                .inner
                .dir
                .agent_tasks
                .get(caller.as_str())
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default(),
        };
        let mut out = Vec::new();
        for t in tasks {
            let cmd = MyAssignments {
                caller: caller.clone(),
                round_id: round_id.map(String::from),
            };
            out.extend(self.on_task(&t, cmd).await?);
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        if round_id.is_none() {
            out.reverse();
        }
        Ok(out)
    }
}
