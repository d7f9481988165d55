//! Messaging through the façade: send (with the task budget), pull, ack.

use super::Hub;
use crate::actors::agent::{Ack, AgentActor, CheckDraft, Pull, PullReply, SendMessage};
use crate::actors::task::commands::CountMessage;
use crate::actors::HubError;
use crate::domain::ids::random_hex;
use crate::domain::message::{Draft, Message};
use crate::domain::AgentId;
use actix::Addr;
use chrono::{DateTime, Utc};
use std::sync::Arc;

impl Hub {
    /// `message_send` from `from`: resolve recipients (one agent, or every other agent
    /// for a broadcast), then let the sender's actor check, store and forward it.
    pub(crate) async fn send_message(
        &self,
        from: &AgentId,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<(Arc<Message>, Vec<AgentId>), HubError> {
        // Counting against the task's budget, sending and giving the count back on a
        // refusal must not stop halfway when the caller goes away (a disconnect,
        // notifications/cancelled): they run as a task of their own.
        let (this, from) = (self.clone(), from.clone());
        actix_rt::spawn(async move { this.send_steps(&from, draft, now).await })
            .await
            .map_err(|e| {
                if e.is_cancelled() {
                    // Shutdown: the runtime dropped the task.
                    HubError::Mailbox(actix::MailboxError::Closed)
                } else {
                    HubError::bug(format!("message_send task panicked: {e}"))
                }
            })?
    }

    fn recipients(
        &self,
        from: &AgentId,
        draft: &Draft,
    ) -> Result<Vec<(AgentId, Addr<AgentActor>)>, HubError> {
        if let Some(to) = &draft.to_agent {
            let id = AgentId::new(to);
            let addr = self.agent(&id)?;
            return Ok(vec![(id, addr)]);
        }
        let mut all: Vec<(AgentId, Addr<AgentActor>)> = self
            .inner
            .dir
            .agents
            .iter()
            .filter(|e| e.key() != from)
            .map(|e| (e.key().clone(), e.addr.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn send_steps(
        &self,
        from: &AgentId,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<(Arc<Message>, Vec<AgentId>), HubError> {
        let recipients = self.recipients(from, &draft)?;
        // A message about a round counts against its task's max_messages_per_task;
        // the count is given back if the send is then refused (e.g. a duplicate).
        let counted = match &draft.round_id {
            Some(round) => {
                let task = self.task_of_round(round).await?;
                self.agent(from)?.send(CheckDraft(draft.clone())).await??;
                self.on_task(&task, CountMessage { undo: false }).await?;
                Some(task)
            }
            None => None,
        };
        let ids: Vec<AgentId> = recipients.iter().map(|(id, _)| id.clone()).collect();
        let sent = match self.agent(from) {
            Ok(addr) => addr
                .send(SendMessage {
                    id: random_hex(8),
                    draft,
                    recipients,
                    at: now,
                })
                .await
                .map_err(HubError::from)
                .and_then(|r| r.map_err(HubError::from)),
            Err(e) => Err(e),
        };
        if let (Err(_), Some(task)) = (&sent, &counted) {
            let _ = self.on_task(task, CountMessage { undo: true }).await;
        }
        let message = self.durable(sent?).await?;
        Ok((message, ids))
    }

    /// `inbox_pull`: up to `limit` unread messages, waiting up to `wait` for one.
    pub(crate) async fn pull(
        &self,
        agent: &AgentId,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Arc<Message>>, HubError> {
        let list = match self.agent(agent)?.send(Pull { limit, wait }).await? {
            PullReply::Ready(v) => v,
            // The actor answers every waiter by its deadline; a dropped sender means
            // the actor stopped, which only happens at shutdown.
            PullReply::Wait(rx) => rx.await.unwrap_or_default(),
        };
        if !list.is_empty() {
            // Show only messages already on disk.
            self.settled().await?;
        }
        Ok(list)
    }

    /// `message_ack`: returns the ids that were unread until now.
    pub(crate) async fn ack(
        &self,
        agent: &AgentId,
        ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, HubError> {
        let reply = self.agent(agent)?.send(Ack { ids, at: now }).await??;
        self.durable(reply).await
    }
}
