//! `message_send`, `inbox_pull`, `message_ack`: messages between agents, delivered
//! through each recipient's AgentActor.

use super::{fields, handler, nullable, CallCtx, Tool, ToolDef};
use crate::actors::HubError;
use crate::domain::message::{
    validate_draft, Message, DEFAULT_PULL_LIMIT, MAX_ACK_IDS, MAX_BODY_BYTES, MAX_PULL_LIMIT,
    MAX_SUBJECT_CHARS, MSG_TYPES,
};
use crate::domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Output schema of one message, as `inbox_pull` and the inbox resource show it.
fn message_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "from_agent": {"type": "string"},
            "to_agent": nullable("string", "null for a broadcast"),
            "subject": {"type": "string"},
            "body": {"type": "string"},
            "msg_type": {"type": "string"},
            "round_id": nullable("string", ""),
            "reply_to": nullable("string", ""),
            "dedupe_key": nullable("string", ""),
            "context_json": {"type": "string"},
            "hop_count": {"type": "integer"},
            "is_read": {"type": "boolean"},
            "created_at": {"type": "string"}
        }
    })
}

pub(super) fn tools() -> Vec<Tool> {
    vec![
        Tool::new(send_def(), handler!(send)),
        Tool::new(pull_def(), handler!(pull)),
        Tool::new(ack_def(), handler!(ack)),
    ]
}

/// One message as the reference's `inbox_pull` row.
pub(crate) fn message_json(m: &Message) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    v["is_read"] = Value::Bool(false);
    v
}

pub(crate) fn messages_json(list: &[Arc<Message>]) -> Vec<Value> {
    list.iter().map(|m| message_json(m)).collect()
}

fn send_def() -> ToolDef {
    ToolDef {
            name: "message_send",
            title: "Send message",
            description: "Send a message to another agent, or to every other agent when to_agent is empty \
                          (broadcast). Use dedupe_key to make a retry safe: the same key from you is never \
                          delivered twice (you get DUPLICATE_MESSAGE with the original message_id). Messages \
                          carrying a round_id count against that task's max_messages_per_task.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "to_agent": {"type": "string", "description": "Recipient agent id; empty or omitted = broadcast to every other agent."},
                    "subject": {"type": "string", "maxLength": MAX_SUBJECT_CHARS, "description": "Short summary line."},
                    "body": {"type": "string", "description": format!("Message text, at most {MAX_BODY_BYTES} bytes.")},
                    "msg_type": {"type": "string", "enum": MSG_TYPES, "default": "info", "description": "Kind of message."},
                    "dedupe_key": {"type": "string", "description": "Optional idempotency key, unique per sender."},
                    "round_id": {"type": "string", "description": "Optional round this message is about."},
                    "reply_to": {"type": "string", "description": "Optional id of a message you sent or received that this answers."}
                },
                "required": ["subject", "body"],
                "additionalProperties": false
            }),
            output_properties: json!({
                "message_id": {"type": "string"},
                "recipients": {"type": "array", "items": {"type": "string"}},
                "broadcast": {"type": "boolean"},
                "skipped": {"type": "array", "items": {"type": "string"}, "description": "recipients of a broadcast left out because their inbox was full (max_inbox_messages, max_inbox_bytes)"}
            }),
            read_only: false,
            idempotent: false,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendArgs {
    to_agent: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    msg_type: Option<String>,
    dedupe_key: Option<String>,
    round_id: Option<String>,
    reply_to: Option<String>,
}

async fn send(ctx: &CallCtx<'_>, a: SendArgs) -> Result<Map<String, Value>, HubError> {
    let draft = validate_draft(
        a.to_agent.as_deref(),
        a.subject.as_deref().unwrap_or(""),
        a.body.as_deref().unwrap_or(""),
        a.msg_type.as_deref(),
        a.dedupe_key.as_deref(),
        a.round_id.as_deref(),
        a.reply_to.as_deref(),
    )?;
    let broadcast = draft.to_agent.is_none();
    let sent = ctx.hub.send_message(ctx.agent, draft, ctx.now).await?;
    Ok(fields(json!({
        "message_id": sent.message.id,
        "recipients": sent.recipients,
        "broadcast": broadcast,
        "skipped": sent.skipped,
    })))
}

fn pull_def() -> ToolDef {
    ToolDef {
            name: "inbox_pull",
            title: "Pull inbox",
            description: "Return your unread messages, oldest first. They stay unread until you message_ack \
                          them, so nothing is lost if you stop mid-way. With wait_seconds, an empty inbox \
                          waits for the next message instead of returning at once: use it instead of \
                          polling in a loop.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PULL_LIMIT, "default": DEFAULT_PULL_LIMIT, "description": "Most messages to return."},
                    "wait_seconds": {"type": "number", "minimum": 0, "description": "If the inbox is empty, wait up to this long for a message (capped by the server's inbox_wait_max_seconds, default 25)."}
                },
                "additionalProperties": false
            }),
            output_properties: json!({
                "messages": {"type": "array", "items": message_schema()},
                "count": {"type": "integer"},
                "more": {"type": "boolean", "description": "more unread messages are waiting (limit or max_pull_bytes reached)"}
            }),
            read_only: true,
            idempotent: true,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PullArgs {
    /// Numbers, checked here so that the refusal states the range.
    limit: Option<Value>,
    wait_seconds: Option<Value>,
}

async fn pull(ctx: &CallCtx<'_>, a: PullArgs) -> Result<Map<String, Value>, HubError> {
    let limit = match &a.limit {
        None => DEFAULT_PULL_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_PULL_LIMIT).contains(&n) => n,
            _ => {
                return Err(DomainError::invalid(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PULL_LIMIT}"),
                )
                .into())
            }
        },
    };
    let cap = ctx.hub.settings().inbox_wait_max_seconds;
    let wait = match &a.wait_seconds {
        None => 0.0,
        Some(v) => match v.as_f64() {
            Some(s) if (0.0..=cap as f64).contains(&s) => s,
            _ => {
                return Err(DomainError::invalid(
                    "wait_seconds",
                    format!("must be a number from 0 to {cap}"),
                )
                .into())
            }
        },
    };
    let pulled = ctx
        .hub
        .pull(ctx.agent, limit as usize, Duration::from_secs_f64(wait))
        .await?;
    let list = &pulled.messages;
    Ok(fields(
        json!({"messages": messages_json(list), "count": list.len(), "more": pulled.more}),
    ))
}

fn ack_def() -> ToolDef {
    ToolDef {
            name: "message_ack",
            title: "Acknowledge messages",
            description: "Mark messages of your inbox as read, so inbox_pull stops returning them. Takes one id \
                          or a list; all or nothing. Acking only affects your own copy of a broadcast.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "message_id": {
                        "description": format!("A message id, or a list of up to {MAX_ACK_IDS} ids."),
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_ACK_IDS}
                        ]
                    }
                },
                "required": ["message_id"],
                "additionalProperties": false
            }),
            output_properties: json!({
                "acked": {"type": "array", "items": {"type": "string"}, "description": "ids that were unread until now"}
            }),
            read_only: false,
            idempotent: true,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckArgs {
    /// One id, or a list of ids.
    message_id: Option<Value>,
}

async fn ack(ctx: &CallCtx<'_>, a: AckArgs) -> Result<Map<String, Value>, HubError> {
    let bad = || {
        DomainError::invalid(
            "message_id",
            format!("must be a message id or a list of 1 to {MAX_ACK_IDS} ids"),
        )
    };
    let ids: Vec<String> = match a.message_id {
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_ACK_IDS => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?,
        None => return Err(DomainError::invalid("message_id", "is required").into()),
        Some(_) => return Err(bad().into()),
    };
    let acked = ctx.hub.ack(ctx.agent, ids, ctx.now).await?;
    Ok(fields(json!({"acked": acked})))
}
