//! The operator's commands and views through the façade: approve, reject and
//! close; whole tasks for `hubctl status/list-tasks/list-rounds/show`.

use super::Hub;
use crate::actors::task::commands::{Approve, Close, Reject, Snapshot};
use crate::actors::HubError;
use crate::domain::task::{Round, Task};
use crate::domain::workflow::TaskState;
use crate::store::load_tasks::{load_tasks, Scope};

impl Hub {
    /// Operator approves round `round_id`: its assignees are told to claim.
    pub(crate) async fn approve(&self, round_id: &str, note: String) -> Result<Round, HubError> {
        let task = self.task_of_round(round_id).await?;
        let cmd = Approve {
            round_id: round_id.to_string(),
            note,
        };
        self.on_task(&task, cmd).await
    }

    /// Operator rejects round `round_id`: the dispatcher is told to revise the plan.
    pub(crate) async fn reject(&self, round_id: &str, note: String) -> Result<Round, HubError> {
        let task = self.task_of_round(round_id).await?;
        let cmd = Reject {
            round_id: round_id.to_string(),
            note,
        };
        self.on_task(&task, cmd).await
    }

    /// Operator closes task `task_id`, cancelling its open work.
    pub(crate) async fn close(&self, task_id: &str) -> Result<Task, HubError> {
        let cmd = Close {
            task_id: task_id.to_string(),
        };
        self.on_task(task_id, cmd).await
    }

    /// One task with everything under it.
    pub(crate) async fn task_snapshot(&self, task_id: &str) -> Result<TaskState, HubError> {
        self.on_task(task_id, Snapshot).await
    }

    /// The task owning round `round_id`, with everything under it.
    pub(crate) async fn round_snapshot(&self, round_id: &str) -> Result<TaskState, HubError> {
        let task = self.task_of_round(round_id).await?;
        self.on_task(&task, Snapshot).await
    }

    /// Every task with everything under it, newest first (operator views), read
    /// from SQLite once every answered write is committed.
    pub(crate) async fn task_snapshots(&self) -> Result<Vec<TaskState>, HubError> {
        let mut out = self.inner.store.read(|c| load_tasks(c, Scope::All)).await?;
        out.sort_by(|a, b| {
            b.task
                .created_at
                .cmp(&a.task.created_at)
                .then_with(|| a.task.id.cmp(&b.task.id))
        });
        Ok(out)
    }
}
