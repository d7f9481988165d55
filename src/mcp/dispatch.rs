//! Serving one JSON-RPC request, on a session or (2026-07-28) on its own: `ping`,
//! `tools/list`, `tools/call`, the inbox resource, `server/discover`. (`initialize`
//! creates a session and `subscriptions/listen` opens a stream: the transport does
//! both.) Methods a revision removed answer -32601 there.

use super::jsonrpc::{self, Answer, Id, Response, RpcError, RESOURCE_NOT_FOUND};
use super::modern;
use super::protocol::Version;
use super::push::INBOX_URI;
use super::replay;
use super::session::Sessions;
use super::tools::message::messages_json;
use super::tools::{self, CallCtx};
use crate::access_log;
use crate::actors::Hub;
use crate::domain::message::MAX_PULL_LIMIT;
use crate::domain::AgentId;
use crate::metrics::{self, CallOutcome};
use chrono::Utc;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// The answer to one request: a JSON-RPC response.
pub(crate) async fn request(
    hub: &Hub,
    sessions: &Arc<Sessions>,
    agent: &AgentId,
    version: Version,
    id: &Id,
    method: &str,
    params: Option<Value>,
) -> Response {
    // A tool result is written whole by `tools::render`, in the revision's shape.
    if method == "tools/call" {
        let ctx = CallCtx {
            hub,
            sessions,
            agent,
            now: Utc::now(),
        };
        return match call_tool(&ctx, sessions, version, id, params).await {
            Ok(result) => jsonrpc::answer(id, Answer::Raw(result)),
            Err(e) => jsonrpc::err(id, &e),
        };
    }
    match serve(hub, agent, version, method, params).await {
        Ok(result) if version.is_modern() => jsonrpc::ok(id, modern::complete(method, result)),
        Ok(result) => jsonrpc::ok(id, result),
        Err(e) => jsonrpc::err(id, &e),
    }
}

fn params_object(params: Option<Value>) -> Result<Map<String, Value>, RpcError> {
    match params {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(RpcError::invalid_params("params must be an object")),
    }
}

/// The only resource is the caller's inbox; anything else is "resource not found"
/// (-32002, which 2026-07-28 retired for -32602).
fn inbox_uri(params: Option<Value>, version: Version) -> Result<(), RpcError> {
    let p = params_object(params)?;
    match p.get("uri").and_then(Value::as_str) {
        Some(INBOX_URI) => Ok(()),
        Some(other) if version.is_modern() => Err(RpcError::invalid_params(format!(
            "uri: resource not found: {other} (the only resource is {INBOX_URI})"
        ))),
        Some(other) => Err(RpcError::new(
            RESOURCE_NOT_FOUND,
            format!("Resource not found: {other}"),
        )),
        None => Err(RpcError::invalid_params("uri: is required")),
    }
}

/// The tool name and arguments of `tools/call` params; `named` sees the name as
/// soon as it is read, so a call with bad arguments is still logged under its tool.
pub(crate) fn call_parts(
    params: Option<Value>,
    named: impl FnOnce(&str),
) -> Result<(String, Map<String, Value>), RpcError> {
    let mut p = params_object(params)?;
    let name = match p.remove("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(RpcError::invalid_params("name: must be a string")),
        None => return Err(RpcError::invalid_params("name: is required")),
    };
    named(&name);
    let args = match p.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(RpcError::invalid_params("arguments: must be an object")),
    };
    Ok((name, args))
}

/// `tools/call`: name and arguments, then the tool table (a forwarded call of a
/// logged tool through `replay`).
async fn call_tool(
    ctx: &CallCtx<'_>,
    sessions: &Arc<Sessions>,
    version: Version,
    id: &Id,
    params: Option<Value>,
) -> Result<Box<RawValue>, RpcError> {
    let (name, args) = call_parts(params, |name| {
        tracing::Span::current().record("tool", name);
    })?;
    // Spread placement: a call whose home another node serves is sent on by the
    // gateway in front (nothing was done here).
    match ctx.hub.serves_home(&name, &args, ctx.agent).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(RpcError::not_owner(format!(
                "{name} belongs to a shard another node serves"
            )))
        }
        Err(e) => return Err(tools::rpc_error(e)),
    }
    let started = Instant::now();
    let index = tools::find(&name);
    let (answer, ended) = match replay::key(ctx.agent, id, &name) {
        Some(key) => {
            let r = replay::call(ctx, sessions.clone(), key, version, (index, name), args).await;
            match r {
                // A stored answer: counted when it was given.
                Ok((answer, None)) => return Ok(answer),
                Ok((answer, Some(how))) => (Ok(answer), how),
                Err(e) => (Err(e), CallOutcome::Protocol),
            }
        }
        None => {
            let outcome = tools::call(ctx, index, &name, args).await;
            let ended = match &outcome {
                Ok(Ok(_)) => CallOutcome::Ok,
                Ok(Err(d)) => CallOutcome::Tool(d.code()),
                Err(_) => CallOutcome::Protocol,
            };
            (outcome.map(|o| tools::render(o, version)), ended)
        }
    };
    let took = started.elapsed();
    metrics::get().tool_call(index, ended, took);
    access_log::record(ctx.now, ctx.agent, tools::name_at(index), ended, took);
    answer
}

/// `resources/list`: the caller's inbox, the one resource.
fn resources_list(params: Option<Value>) -> Result<Value, RpcError> {
    let p = params_object(params)?;
    if p.get("cursor").is_some_and(|c| !c.is_null()) {
        return Err(RpcError::invalid_params(
            "cursor: unknown cursor (resources/list has a single page)",
        ));
    }
    Ok(json!({"resources": [{
        "uri": INBOX_URI,
        "name": "inbox",
        "title": "Your inbox",
        "description": "Your unread messages, oldest first (at most 200). notifications/resources/updated arrive on your session's GET stream, or on a subscriptions/listen stream subscribed to this URI.",
        "mimeType": "application/json"
    }]}))
}

async fn serve(
    hub: &Hub,
    agent: &AgentId,
    version: Version,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let modern = version.is_modern();
    match method {
        "ping" if !modern => Ok(json!({})),
        "server/discover" if modern => Ok(modern::discover(agent.as_str())),
        "tools/list" => {
            let p = params_object(params)?;
            // We never hand out a cursor, so any cursor is one we did not issue.
            if p.get("cursor").is_some_and(|c| !c.is_null()) {
                return Err(RpcError::invalid_params("cursor: unknown cursor (tools/list has a single page)"));
            }
            Ok(tools::list(version).clone())
        }
        "resources/list" => resources_list(params),
        "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
        "resources/read" => {
            inbox_uri(params, version)?;
            let pulled = hub
                .pull(agent, MAX_PULL_LIMIT as usize, std::time::Duration::ZERO)
                .await
                .map_err(tools::rpc_error)?;
            let list = &pulled.messages;
            let text =
                json!({"messages": messages_json(list), "count": list.len(), "more": pulled.more})
                    .to_string();
            Ok(json!({"contents": [{"uri": INBOX_URI, "mimeType": "application/json", "text": text}]}))
        }
        // Every session already receives its own inbox's updates on its GET stream.
        "resources/subscribe" | "resources/unsubscribe" if !modern => {
            inbox_uri(params, version)?;
            Ok(json!({}))
        }
        "initialize" if !modern => Err(RpcError::invalid_request(
            "this session is already initialized; send initialize without Mcp-Session-Id to start a new one",
        )),
        other => Err(RpcError::method_not_found(other)),
    }
}
