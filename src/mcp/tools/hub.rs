//! `hub_status`: what this server is and how busy it is.

use super::{fields, handler, CallCtx, Tool, ToolDef};
use crate::actors::HubError;
use crate::mcp::protocol::Version;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub(super) fn tools() -> Vec<Tool> {
    vec![Tool::new(status_def(), handler!(status))]
}

fn status_def() -> ToolDef {
    ToolDef {
        name: "hub_status",
        title: "Hub status",
        description: "Report the hub's version, transport, supported MCP protocol versions, uptime, \
                      and how many agents and sessions it has. Use it to check that the hub is reachable \
                      and your token works. Takes no arguments and changes nothing.",
        input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        output_properties: json!({
            "version": {"type": "string"},
            "transport": {"type": "string", "const": "streamable-http"},
            "protocol_versions": {"type": "array", "items": {"type": "string"}},
            "uptime_seconds": {"type": "integer"},
            "agents": {"type": "integer", "description": "agents listed in agents.env"},
            "tasks": {"type": "integer", "description": "tasks of every state"},
            "sessions": {"type": "integer", "description": "open MCP sessions"},
            "durability": {"type": "string", "enum": ["durable", "fast"]},
            "agent_id": {"type": "string", "description": "who you are, from your token"}
        }),
        read_only: true,
        idempotent: true,
    }
}

/// `hub_status` takes no arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusArgs {}

async fn status(ctx: &CallCtx<'_>, _: StatusArgs) -> Result<Map<String, Value>, HubError> {
    let counts = ctx.hub.counts();
    let durability = ctx.hub.settings().durability.as_str();
    Ok(fields(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "transport": "streamable-http",
        "protocol_versions": Version::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
        "uptime_seconds": counts.uptime_seconds,
        "agents": counts.agents,
        "tasks": counts.tasks,
        "sessions": ctx.sessions.len(),
        "durability": durability,
        "agent_id": ctx.agent,
    })))
}
