//! The operator's view of and action on one agent's deliveries through the façade:
//! its messages with read state, a page at a time (`hubctl messages --agent A`), and
//! the purge of its deliveries (`hubctl purge-messages`).

use super::Hub;
use crate::actors::agent::Purge;
use crate::actors::HubError;
use crate::domain::{AgentId, DomainError};
use crate::store::pages::{Delivery, Page, PageRequest};
use crate::store::{AuditRow, Op, Reads};
use chrono::{DateTime, Utc};
use serde_json::json;

impl Hub {
    /// How many messages `agent`'s inbox counts now (unread, and promised to sends
    /// under way); 0 for an agent this hub does not know.
    pub(crate) fn unread(&self, agent: &AgentId) -> usize {
        self.inner
            .dir
            .agents
            .get(agent)
            .map_or(0, |h| h.inbox.unread())
    }

    /// A page of the messages delivered to `agent`, newest first, with its read
    /// state; only unread ones with `unread`. Any agent ever stored may be listed
    /// (one removed from agents.env keeps its mail).
    pub(crate) async fn delivery_page(
        &self,
        req: PageRequest,
        agent: &AgentId,
        unread: bool,
    ) -> Result<Page<Delivery>, HubError> {
        if self.owns(agent.as_str()) {
            self.take_outbox_of(agent).await?;
        }
        let page = self
            .inner
            .store
            .delivery_page(agent.as_str(), req, unread)
            .await?;
        page.ok_or_else(|| DomainError::UnknownAgent(agent.to_string()).into())
    }

    /// `hubctl purge-messages`: remove every delivery to `agent` (of messages `from`
    /// sent, if given), read or unread, from its inbox and from storage; the message
    /// rows stay, and with them their senders' dedupe keys. Audited
    /// (`messages_purged`). Returns how many deliveries were removed.
    pub(crate) async fn purge_messages(
        &self,
        agent: &AgentId,
        from: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<u64, HubError> {
        self.writable()?;
        let addr = self.agent(agent)?;
        self.take_outbox_of(agent).await?;
        let (this, agent) = (self.clone(), agent.to_string());
        // The purge and its audit record must not be parted by the caller going
        // away: they run as a task of their own.
        actix_rt::spawn(async move {
            let (deleted, ticket) = addr.send(Purge { from: from.clone() }).await?;
            // Committed in either durability mode: the count is read from it.
            this.inner.store.wait_committed(ticket).await?;
            let count = deleted.get();
            let audit = this.inner.store.enqueue(Op::Audit(AuditRow::new(
                "messages_purged",
                ("agent", &agent),
                "operator",
                json!({"from": from, "count": count}).to_string(),
                now,
            )));
            this.durable((count, audit)).await
        })
        .await
        .map_err(|e| {
            if e.is_cancelled() {
                HubError::Mailbox(actix::MailboxError::Closed)
            } else {
                HubError::bug(format!("purge task panicked: {e}"))
            }
        })?
    }
}
