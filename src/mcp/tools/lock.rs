//! `lock_acquire` and `lock_release`: TTL locks with renewal, waiting and fencing
//! tokens, served by the LockManager actor.

use super::{fields, handler, CallCtx, Tool, ToolDef};
use crate::actors::HubError;
use crate::domain::lease::{validate, MAX_KEY_CHARS, RESOURCE_TYPES};
use crate::domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub(super) fn tools() -> Vec<Tool> {
    vec![
        Tool::new(acquire_def(), handler!(acquire)),
        Tool::new(release_def(), handler!(release)),
    ]
}

/// Output schema of a lock.
fn lock_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "lock_key": {"type": "string"},
            "holder_agent_id": {"type": "string"},
            "resource_type": {"type": "string"},
            "resource_id": {"type": "string"},
            "fencing_token": {"type": "integer", "description": "grows with every new holder of this key; pass it to the resource so it can refuse stale writers"},
            "expires_at": {"type": "string"},
            "created_at": {"type": "string"}
        }
    })
}

fn seconds(v: Option<&Value>, field: &str, default: f64) -> Result<f64, DomainError> {
    match v {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| DomainError::invalid(field, "must be a number of seconds")),
    }
}

fn acquire_def() -> ToolDef {
    ToolDef {
            name: "lock_acquire",
            title: "Acquire lock",
            description: "Take a lock on a shared resource (a branch, a group of files, an assignment) for \
                          ttl_seconds. Acquiring a lock you already hold renews it (same fencing token). If \
                          another agent holds it you get LOCK_CONFLICT with the holder and expiry, unless you \
                          pass wait_seconds: then you wait in line and get the lock as soon as it is released \
                          or expires. Release it with lock_release when done.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "lock_key": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS, "description": "Name of the lock, e.g. \"branch:main\"."},
                    "resource_type": {"type": "string", "enum": RESOURCE_TYPES, "default": "assignment"},
                    "resource_id": {"type": "string", "default": "", "description": "What the lock protects (free text)."},
                    "ttl_seconds": {"type": "number", "default": 600, "description": "Lease length; renew before it runs out by acquiring again. Bounds are set by the server (default 1 to 86400)."},
                    "wait_seconds": {"type": "number", "minimum": 0, "default": 0, "description": "If held by another agent, wait up to this long for it (capped by the server's lock_wait_max_seconds, default 25)."}
                },
                "required": ["lock_key"],
                "additionalProperties": false
            }),
            output_properties: json!({"lock": lock_schema(), "renewed": {"type": "boolean"}}),
            read_only: false,
            idempotent: false,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcquireArgs {
    lock_key: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// Numbers of seconds, checked here so that the refusal names the unit.
    ttl_seconds: Option<Value>,
    wait_seconds: Option<Value>,
}

async fn acquire(ctx: &CallCtx<'_>, a: AcquireArgs) -> Result<Map<String, Value>, HubError> {
    // Copied out: a settings guard is not to be held across the wait below.
    let (ttl_bounds, cap) = {
        let s = ctx.hub.settings();
        (
            (s.lock_ttl_min_seconds, s.lock_ttl_max_seconds),
            s.lock_wait_max_seconds,
        )
    };
    let req = validate(
        &a.lock_key,
        ctx.agent.as_str(),
        a.resource_type
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("assignment"),
        a.resource_id.as_deref().unwrap_or(""),
        seconds(a.ttl_seconds.as_ref(), "ttl_seconds", 600.0)?,
        ttl_bounds,
    )?;
    let wait = seconds(a.wait_seconds.as_ref(), "wait_seconds", 0.0)?;
    if !(0.0..=cap as f64).contains(&wait) {
        return Err(
            DomainError::invalid("wait_seconds", format!("must be from 0 to {cap}")).into(),
        );
    }
    let (lock, renewed) = ctx
        .hub
        .lock_acquire(req, Duration::from_secs_f64(wait))
        .await?;
    Ok(fields(json!({"lock": lock, "renewed": renewed})))
}

fn release_def() -> ToolDef {
    ToolDef {
        name: "lock_release",
        title: "Release lock",
        description: "Release a lock you hold; the next agent waiting for it gets it at once.",
        input_schema: json!({
            "type": "object",
            "properties": {"lock_key": {"type": "string", "minLength": 1}},
            "required": ["lock_key"],
            "additionalProperties": false
        }),
        output_properties: json!({"lock_key": {"type": "string"}, "fencing_token": {"type": "integer"}}),
        read_only: false,
        idempotent: false,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleaseArgs {
    lock_key: String,
}

async fn release(ctx: &CallCtx<'_>, a: ReleaseArgs) -> Result<Map<String, Value>, HubError> {
    let lock = ctx.hub.lock_release(ctx.agent, a.lock_key.trim()).await?;
    Ok(fields(
        json!({"lock_key": lock.lock_key, "fencing_token": lock.fencing_token}),
    ))
}
