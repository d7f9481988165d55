//! Spread placement: a send about a round of a task another node serves counts
//! against that task's message budget at its owner (cluster.md §2, "Requests
//! that touch several shards", step a). The sender's node asks the owner
//! (`POST /internal/count`, proven with the cluster key) to count the message
//! before storing it, to undo the count if the send is refused, and to know that
//! it was stored. A count whose send then fails on the way is not given back: a
//! leaked slot tightens the task's budget, it never lets it be exceeded.

use super::Hub;
use crate::actors::task::commands::{CountMessage, CountStep};
use crate::actors::HubError;
use crate::domain::AgentId;
use futures_util::future::LocalBoxFuture;
use std::sync::{Arc, OnceLock};

/// How a hub asks the node serving task `task` to take a [`CountStep`] of a
/// message of `sender` (set by the HTTP layer, which knows the nodes).
pub(crate) type CountAt = Arc<
    dyn Fn(String, AgentId, CountStep) -> LocalBoxFuture<'static, Result<(), HubError>>
        + Send
        + Sync,
>;

static COUNT_AT: OnceLock<CountAt> = OnceLock::new();

/// How a hub asks the nodes serving agents `ids` for their presence (set by the
/// HTTP layer); agents no node answers for are left out.
pub(crate) type StatusesAt = Arc<
    dyn Fn(Vec<String>) -> LocalBoxFuture<'static, Result<Vec<super::AgentStatus>, HubError>>
        + Send
        + Sync,
>;

static STATUSES_AT: OnceLock<StatusesAt> = OnceLock::new();

/// How an event without a message reaches the streams of an agent another node
/// serves (set by the HTTP layer). Sent without waiting: an event is a hint.
pub(crate) type PushAt = Arc<
    dyn Fn(AgentId, crate::domain::channel::Item) -> LocalBoxFuture<'static, Result<(), HubError>>
        + Send
        + Sync,
>;

static PUSH_AT: OnceLock<PushAt> = OnceLock::new();

/// Set how events reach agents served elsewhere (once per process).
pub(crate) fn set_push_at(push_at: PushAt) {
    let _ = PUSH_AT.set(push_at);
}

/// Spread placement: push `item` to the streams of agent `to`, which another
/// node serves (a lock granted after a wait, a round approved, a review, a lease
/// about to lapse: events that come without a message). Not waited for.
pub(crate) fn push_elsewhere(to: AgentId, item: crate::domain::channel::Item) {
    if let Some(push_at) = PUSH_AT.get() {
        let pushed = push_at(to, item);
        actix_rt::spawn(async move {
            if let Err(e) = pushed.await {
                tracing::debug!(error = %e, "an event for an agent served elsewhere was not pushed");
            }
        });
    }
}

/// Set how agents' presence is asked of other nodes (once per process).
pub(crate) fn set_statuses_at(statuses_at: StatusesAt) {
    let _ = STATUSES_AT.set(statuses_at);
}

/// Set how counts reach other nodes (once per process: its one server).
pub(crate) fn set_count_at(count_at: CountAt) {
    let _ = COUNT_AT.set(count_at);
}

impl Hub {
    /// An event without a message from another node for agent `to`, served here:
    /// pushed to its streams. [`HubError::NotOwner`] if another node serves it.
    pub(crate) fn push_here(
        &self,
        to: &AgentId,
        item: crate::domain::channel::Item,
    ) -> Result<(), HubError> {
        self.must_own("agent", to.as_str())?;
        self.inner.dir.push_here(to, item);
        Ok(())
    }

    /// Spread placement: the presence of agents `ids`, which other nodes serve,
    /// from those nodes.
    pub(super) async fn statuses_elsewhere(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<super::AgentStatus>, HubError> {
        match STATUSES_AT.get() {
            Some(at) => at(ids).await,
            None => Ok(Vec::new()),
        }
    }

    /// A step of the count of `sender`'s message about a round of task `task`,
    /// which another node serves.
    pub(super) async fn count_elsewhere(
        &self,
        task: &str,
        sender: &AgentId,
        step: CountStep,
    ) -> Result<(), HubError> {
        match COUNT_AT.get() {
            Some(count_at) => count_at(task.to_string(), sender.clone(), step).await,
            None => Err(HubError::NotOwner(format!("task {task}"))),
        }
    }

    /// [`Hub::count_elsewhere`] without waiting for the answer (`Stored`, which
    /// only tells the task that the message is no longer in flight).
    pub(super) fn tell_elsewhere(&self, task: &str, sender: &AgentId, step: CountStep) {
        if let Some(count_at) = COUNT_AT.get() {
            let told = count_at(task.to_string(), sender.clone(), step);
            actix_rt::spawn(async move {
                if let Err(e) = told.await {
                    tracing::debug!(error = %e, "a stored message's count was not confirmed");
                }
            });
        }
    }

    /// The owner's side of [`Hub::count_elsewhere`]: the step, on task `task`
    /// served here, durable before it is answered (`Stored` only tells the task).
    pub(crate) async fn count_here(
        &self,
        task: &str,
        sender: &AgentId,
        step: CountStep,
    ) -> Result<(), HubError> {
        self.writable()?;
        self.must_own("task", task)?;
        let cmd = CountMessage {
            step,
            sender: sender.clone(),
        };
        if step == CountStep::Stored {
            if let Some(a) = self.inner.task_env.tasks.get(task) {
                a.do_send(cmd);
            }
            return Ok(());
        }
        self.on_task(task, cmd).await
    }
}
