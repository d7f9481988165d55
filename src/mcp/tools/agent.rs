//! `agent_register` and `agent_heartbeat`: the calling agent's own metadata.

use super::{fields, handler, CallCtx, Tool, ToolDef};
use crate::actors::HubError;
use crate::domain::agent::{parse_capabilities, validate_name, MAX_CAPABILITIES, MAX_NAME_CHARS};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub(super) fn tools() -> Vec<Tool> {
    vec![
        Tool::new(register_def(), handler!(register)),
        Tool::new(heartbeat_def(), handler!(heartbeat)),
    ]
}

fn register_def() -> ToolDef {
    ToolDef {
            name: "agent_register",
            title: "Register agent",
            description: "Set your display name and capabilities. Your agent id comes from your bearer \
                          token, not from arguments. Call once after connecting; call again only to change \
                          the name or capabilities (the new values replace the old).",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
                             "description": "Human-readable name shown to the operator and other agents, e.g. \"Claude Code\"."},
                    "capabilities": {
                        "description": format!("What you can do, as a JSON array of strings (at most {MAX_CAPABILITIES}), e.g. [\"planning\", \"code-review\"]. A string holding such an array is accepted too. Default []."),
                        "anyOf": [
                            {"type": "array", "items": {"type": "string"}, "maxItems": MAX_CAPABILITIES},
                            {"type": "string"}
                        ]
                    }
                },
                "required": ["name"],
                "additionalProperties": false
            }),
            output_properties: json!({
                "agent_id": {"type": "string"},
                "name": {"type": "string"},
                "capabilities": {"type": "array", "items": {"type": "string"}},
                "registered_at": {"type": "string"}
            }),
            read_only: false,
            idempotent: true,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterArgs {
    name: String,
    /// An array of strings, or a string holding one (validated by the domain).
    capabilities: Option<Value>,
}

async fn register(ctx: &CallCtx<'_>, a: RegisterArgs) -> Result<Map<String, Value>, HubError> {
    let name = validate_name(&a.name)?;
    let capabilities = parse_capabilities(a.capabilities.as_ref())?;
    let view = ctx
        .hub
        .register(ctx.agent, name, capabilities, ctx.now)
        .await?;
    Ok(fields(json!({
        "agent_id": view.agent_id,
        "name": view.name,
        "capabilities": view.capabilities,
        "registered_at": view.registered_at,
    })))
}

fn heartbeat_def() -> ToolDef {
    ToolDef {
            name: "agent_heartbeat",
            title: "Heartbeat",
            description: "Tell the hub you are alive. The operator sees agents as online while they call \
                          any tool; call this during long work without other hub calls. No arguments.",
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            output_properties: json!({
                "agent_id": {"type": "string"},
                "last_heartbeat": {"type": "string", "description": "ISO-8601 UTC"}
            }),
            read_only: false,
            idempotent: true,
        }
}

/// `agent_heartbeat` takes no arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeartbeatArgs {}

async fn heartbeat(ctx: &CallCtx<'_>, _: HeartbeatArgs) -> Result<Map<String, Value>, HubError> {
    let at = ctx.hub.heartbeat(ctx.agent, ctx.now).await?;
    Ok(fields(json!({"agent_id": ctx.agent, "last_heartbeat": at})))
}
