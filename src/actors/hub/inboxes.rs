//! The operator's view of one agent's deliveries through the façade: its messages
//! with read state, a page at a time (`hubctl messages --agent A`).

use super::Hub;
use crate::actors::HubError;
use crate::domain::{AgentId, DomainError};
use crate::store::pages::{self, Delivery, Page, PageRequest};

impl Hub {
    /// A page of the messages delivered to `agent`, newest first, with its read
    /// state; only unread ones with `unread`. Any agent ever stored may be listed
    /// (one removed from agents.env keeps its mail).
    pub(crate) async fn delivery_page(
        &self,
        req: PageRequest,
        agent: &AgentId,
        unread: bool,
    ) -> Result<Page<Delivery>, HubError> {
        let id = agent.to_string();
        let page = self
            .inner
            .store
            .read(move |c| match pages::agent_known(c, &id)? {
                true => pages::deliveries(c, &req, &id, unread).map(Some),
                false => Ok(None),
            })
            .await?;
        page.ok_or_else(|| DomainError::UnknownAgent(agent.to_string()).into())
    }
}
