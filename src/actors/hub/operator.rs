//! The operator's commands and views through the façade: approve, reject and
//! close; whole tasks for `hubctl status/list-tasks/list-rounds/show`.

use super::Hub;
use crate::actors::task::commands::{Approve, Close, Reject, Snapshot};
use crate::actors::HubError;
use crate::domain::message::Message;
use crate::domain::task::{Round, Task};
use crate::domain::workflow::TaskState;
use crate::store::pages::{self, AuditEvent, Decision, Page, PageRequest, TaskSummary};
use crate::store::Reads;

impl Hub {
    /// Operator approves round `round_id`: its assignees are told to claim.
    pub(crate) async fn approve(&self, round_id: &str, note: String) -> Result<Round, HubError> {
        self.writable()?;
        let task = self.task_of_round(round_id).await?;
        let cmd = Approve {
            round_id: round_id.to_string(),
            note,
        };
        self.on_task(&task, cmd).await
    }

    /// Operator rejects round `round_id`: the dispatcher is told to revise the plan.
    pub(crate) async fn reject(&self, round_id: &str, note: String) -> Result<Round, HubError> {
        self.writable()?;
        let task = self.task_of_round(round_id).await?;
        let cmd = Reject {
            round_id: round_id.to_string(),
            note,
        };
        self.on_task(&task, cmd).await
    }

    /// Operator closes task `task_id`, cancelling its open work.
    pub(crate) async fn close(&self, task_id: &str) -> Result<Task, HubError> {
        self.writable()?;
        let cmd = Close {
            task_id: task_id.to_string(),
        };
        self.on_task(task_id, cmd).await
    }

    /// One task with everything under it. A task another node serves (spread
    /// placement) is read from the store, where everything answered is.
    pub(crate) async fn task_snapshot(&self, task_id: &str) -> Result<TaskState, HubError> {
        if !self.owns(task_id) {
            return self.stored_task(task_id).await;
        }
        self.on_task(task_id, Snapshot).await
    }

    /// The task owning round `round_id`, with everything under it.
    pub(crate) async fn round_snapshot(&self, round_id: &str) -> Result<TaskState, HubError> {
        let task = self.task_of_round(round_id).await?;
        self.task_snapshot(&task).await
    }

    /// A task as stored; TASK_NOT_FOUND if it is not.
    async fn stored_task(&self, task_id: &str) -> Result<TaskState, HubError> {
        self.inner
            .store
            .load_task(task_id)
            .await?
            .ok_or_else(|| super::task_not_found(task_id))
    }

    /// A page of tasks, newest first (`hubctl list-tasks`), read from the store
    /// once every answered write is committed.
    pub(crate) async fn task_page(&self, req: PageRequest) -> Result<Page<TaskSummary>, HubError> {
        Ok(self.inner.store.task_page(req).await?)
    }

    /// A page of audit events, newest first, of one entity when given (`hubctl audit`).
    pub(crate) async fn audit_page(
        &self,
        req: PageRequest,
        filter: pages::AuditFilter,
    ) -> Result<Page<AuditEvent>, HubError> {
        Ok(self.inner.store.audit_page(req, filter).await?)
    }

    /// A page of messages, newest first (`hubctl messages`).
    pub(crate) async fn message_page(&self, req: PageRequest) -> Result<Page<Message>, HubError> {
        Ok(self.inner.store.message_page(req).await?)
    }

    /// Every operator decision on `round_id`, oldest first (`hubctl status`).
    pub(crate) async fn decisions(&self, round_id: &str) -> Result<Vec<Decision>, HubError> {
        Ok(self.inner.store.decisions(round_id).await?)
    }

    /// A page of rounds, newest first (`hubctl list-rounds`).
    pub(crate) async fn round_page(&self, req: PageRequest) -> Result<Page<Round>, HubError> {
        Ok(self.inner.store.round_page(req).await?)
    }
}
