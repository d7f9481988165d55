//! The task workflow through the façade, as the agents use it: create, plan,
//! claim, progress, complete, review, list and read handoffs.

use super::Hub;
use crate::actors::task::commands::{
    active_limit, Claim, Complete, Completed, GetHandoff, MyAssignments, Planned, Progress, Review,
    Reviewed, SubmitPlan,
};
use crate::actors::task::TaskActor;
use crate::actors::HubError;
use crate::domain::task::{Assignment, Handoff, HandoffDraft, Plan, ProgressStatus, Task, Verdict};
use crate::domain::workflow::TaskState;
use crate::domain::{AgentId, DomainError, ErrorCode};
use crate::store::pg::quota::{Quota, Taken};
use crate::store::{Op, Reads};
use actix::Actor;
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;

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
        self.writable()?;
        self.must_own("task", id)?;
        let state = TaskState::new(id, title, description, caller.as_str(), now);
        let task = state.task.clone();
        // A finished task may be on disk only (or leave memory right now): its id is
        // taken all the same. The read sees every task created before this call; a
        // racing create of the same id is caught by the entry below.
        let stored = self.inner.store.task_exists(id).await?;
        if stored {
            return Err(task_exists_error(id).into());
        }
        let dir = &self.inner.dir;
        let max = self.settings().max_open_tasks_per_agent;
        let too_many = || {
            DomainError::refused(
                ErrorCode::TooManyOpenTasks,
                format!(
                    "you have {max} open tasks (draft, awaiting approval or dispatched); \
                     complete or close some first (max_open_tasks_per_agent)"
                ),
            )
        };
        if !dir.try_reserve_open_task(caller.as_str(), max) {
            return Err(too_many().into());
        }
        // Spread placement: the caller's other open tasks may be at other nodes.
        let unit = match self.take_unit(Quota::Open, caller, id, id, max).await {
            Ok(Some(unit)) => unit,
            Ok(None) => {
                dir.release_open_task(caller.as_str());
                return Err(too_many().into());
            }
            Err(e) => {
                dir.release_open_task(caller.as_str());
                return Err(e);
            }
        };
        // A logged call's group opens before anything is written (and before the
        // entry is taken: its shard lock is released before any await).
        crate::store::group::before_write(&self.inner.store).await;
        // The entry (and its shard lock) is released before any await.
        let created = match self.inner.task_env.tasks.entry(id.to_string()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(v) => {
                // Enqueued before the actor exists, so it precedes all of its writes.
                let ticket = self.inner.store.enqueue(Op::TaskCreated(task.clone()));
                let actor = TaskActor::new(state, self.inner.task_env.clone()).counting_open();
                v.insert(TaskActor::start_in_arbiter(
                    &self.inner.arbiter,
                    move |_| actor,
                ));
                self.inner.task_count.fetch_add(1, Ordering::Relaxed);
                Some(ticket)
            }
        };
        let Some(ticket) = created else {
            dir.release_open_task(caller.as_str());
            self.give_unit_back(Quota::Open, (caller, id), unit).await;
            return Err(task_exists_error(id).into());
        };
        self.durable((task, ticket)).await
    }

    /// Spread placement: take one of `agent`'s units of `quota` for `item` (of
    /// task `task`) in the cluster-wide count. `Ok(None)`: the agent has `max`;
    /// `Ok(Some(true))`: a new unit, to give back if the item is not written;
    /// `Ok(Some(false))`: none needed (one hub counts everything in memory, or the
    /// item holds one already).
    async fn take_unit(
        &self,
        quota: Quota,
        agent: &AgentId,
        item: &str,
        task: &str,
        max: u32,
    ) -> Result<Option<bool>, HubError> {
        if !self.inner.dir.spread {
            return Ok(Some(false));
        }
        let shard = crate::domain::shard::shard_of(task);
        let taken = self
            .inner
            .store
            .take_quota(quota, (agent.as_str(), item), shard, max)
            .await?;
        Ok(match taken {
            Some(Taken::Full) => None,
            Some(Taken::New) => Some(true),
            Some(Taken::Held) | None => Some(false),
        })
    }

    /// Give back a unit [`Hub::take_unit`] took (`new`) for an item refused before
    /// anything was written. A failure leaves it to lapse (see `pg::quota`).
    async fn give_unit_back(&self, quota: Quota, (agent, item): (&AgentId, &str), new: bool) {
        if new {
            let unit = (agent.as_str(), item);
            if let Err(e) = self.inner.store.give_back_quota(quota, unit).await {
                tracing::warn!(error = %e, item, "a quota unit was not given back; it lapses");
            }
        }
    }

    /// `round_plan_submit` by `caller` on task `task_id`.
    pub(crate) async fn submit_plan(
        &self,
        caller: &AgentId,
        task_id: &str,
        plan: Plan,
    ) -> Result<Planned, HubError> {
        self.writable()?;
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
        self.writable()?;
        let task = self.task_of_round(round_id).await?;
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
        self.writable()?;
        let task = self.task_of_assignment(id).await?;
        self.must_own("task", &task)?;
        let max = self.settings().max_simultaneous_assignments;
        // Spread placement: the caller's other assignments may be at other nodes.
        let Some(unit) = self
            .take_unit(Quota::Active, caller, id, &task, max)
            .await?
        else {
            return Err(active_limit(max).into());
        };
        let cmd = Claim {
            caller: caller.clone(),
            assignment_id: id.to_string(),
        };
        let claimed = self.on_task(&task, cmd).await;
        // Refused: nothing was written. (Another failure may hide a stored claim:
        // its unit stays, or lapses.)
        if let Err(HubError::Domain(_)) = &claimed {
            self.give_unit_back(Quota::Active, (caller, id), unit).await;
        }
        claimed
    }

    /// `assignment_progress`: forward moves only; renews the lease.
    pub(crate) async fn progress(
        &self,
        caller: &AgentId,
        id: &str,
        status: ProgressStatus,
        note: String,
    ) -> Result<Assignment, HubError> {
        self.writable()?;
        let task = self.task_of_assignment(id).await?;
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
        self.writable()?;
        let task = self.task_of_assignment(id).await?;
        let cmd = Complete {
            caller: caller.clone(),
            assignment_id: id.to_string(),
            handoff,
        };
        self.on_task(&task, cmd).await
    }

    /// `handoff_get`: any agent may read any handoff.
    pub(crate) async fn handoff(&self, id: &str) -> Result<Handoff, HubError> {
        let task = self.task_of_handoff(id).await?;
        let cmd = GetHandoff {
            handoff_id: id.to_string(),
        };
        self.on_task(&task, cmd).await
    }

    /// The caller's assignments in one round, oldest first.
    pub(crate) async fn round_assignments_of(
        &self,
        caller: &AgentId,
        round_id: &str,
    ) -> Result<Vec<Assignment>, HubError> {
        let task = self.task_of_round(round_id).await?;
        let cmd = MyAssignments {
            caller: caller.clone(),
            round_id: Some(round_id.to_string()),
        };
        let mut out = self.on_task(&task, cmd).await?;
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// The caller's newest assignments across every task, at most
    /// [`MAX_LISTED_ASSIGNMENTS`], and whether there are more. Read from the store
    /// once every answered write is committed, so finished tasks need no actor.
    pub(crate) async fn assignments_of(
        &self,
        caller: &AgentId,
    ) -> Result<(Vec<Assignment>, bool), HubError> {
        let mut list = self
            .inner
            .store
            .assignments_of_agent(caller.as_str(), MAX_LISTED_ASSIGNMENTS + 1)
            .await?;
        let truncated = list.len() > MAX_LISTED_ASSIGNMENTS;
        list.truncate(MAX_LISTED_ASSIGNMENTS);
        Ok((list, truncated))
    }
}

fn task_exists_error(id: &str) -> DomainError {
    DomainError::refused(
        ErrorCode::TaskExists,
        format!("task {id} already exists; choose another task_id"),
    )
}

/// The most assignments `assignment_list` without a round returns.
pub(super) const MAX_LISTED_ASSIGNMENTS: usize = 200;
