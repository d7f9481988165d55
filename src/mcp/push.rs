//! Server-to-client notifications pushed on open GET streams.
//!
//! A new inbox message becomes the standard `notifications/resources/updated` for the
//! agent's inbox resource ([`INBOX_URI`]), sent on every open GET stream of the
//! recipient and every 2026-07-28 listen stream subscribed to it (see `listen`). `_meta` names the message so a client can react without reading the
//! resource first.
//!
//! Channel events (already coalesced by the agent's actor) become
//! `notifications/claude/channel` with `content` and `meta`, which Claude Code puts
//! into the session as a `<channel>` block; other clients drop the unknown method.

use super::session::Sessions;
use crate::actors::notify::Notifier;
use crate::domain::channel::Event;
use crate::domain::message::Message;
use crate::domain::AgentId;
use serde_json::{json, Value};

pub(crate) const INBOX_URI: &str = "agent-hub://inbox";

/// What `_meta` says about a new message (`agent-hub/message`).
pub(crate) fn message_meta(message: &Message) -> Value {
    json!({
        "id": message.id,
        "from_agent": message.from_agent,
        "msg_type": message.msg_type,
        "subject": message.subject,
        "round_id": message.round_id,
    })
}

pub(crate) fn inbox_updated(message: &Message) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {
            "uri": INBOX_URI,
            "_meta": {"agent-hub/message": message_meta(message)}
        }
    })
    .to_string()
}

/// "The inbox was updated", naming no message: what a stream opened again after
/// a change of serving node gets first when the inbox holds messages (what came
/// meanwhile was pushed to no stream).
pub(crate) fn inbox_hint() -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": INBOX_URI}
    })
    .to_string()
}

pub(crate) const CHANNEL_METHOD: &str = "notifications/claude/channel";

/// `params` of a channel notification: `content` and `meta` (string → string).
pub(crate) fn channel_params(event: &Event) -> serde_json::Map<String, Value> {
    let meta: serde_json::Map<String, Value> = event
        .meta
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    let mut params = serde_json::Map::new();
    params.insert("content".into(), Value::String(event.content.clone()));
    params.insert("meta".into(), Value::Object(meta));
    params
}

pub(crate) fn channel(event: &Event) -> String {
    json!({"jsonrpc": "2.0", "method": CHANNEL_METHOD, "params": channel_params(event)}).to_string()
}

impl Notifier for Sessions {
    fn channel(&self, agent: &AgentId, event: &Event) {
        let n = self.push_to_agent(agent, || channel(event));
        let m = self.listeners.channel(agent, event);
        tracing::debug!(agent = %agent, streams = n, listen_streams = m, "pushed channel event");
    }

    fn inbox_updated(&self, agent: &AgentId, message: &Message) {
        let n = self.push_to_agent(agent, || inbox_updated(message));
        let m = self.listeners.inbox_updated(agent, message);
        if n + m > 0 {
            tracing::debug!(agent = %agent, streams = n, listen_streams = m, "pushed inbox notification");
        }
    }
}
