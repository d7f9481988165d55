//! How actors tell the transport that something happened for an agent, without
//! knowing about HTTP: the serve command plugs in the MCP session store, which pushes
//! a notification on the agent's open GET streams and listen streams.

use crate::domain::channel::Event;
use crate::domain::message::Message;
use crate::domain::AgentId;

pub(crate) trait Notifier: Send + Sync + 'static {
    /// `message` was just delivered to `agent`'s inbox.
    fn inbox_updated(&self, agent: &AgentId, message: &Message);

    /// A Claude Code channel event for `agent`, already coalesced and rate-bounded.
    fn channel(&self, agent: &AgentId, event: &Event);
}
