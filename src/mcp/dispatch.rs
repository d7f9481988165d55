//! Serving one JSON-RPC request on an established session: `ping`, `tools/list`,
//! `tools/call`. (`initialize` creates the session and is handled by the transport.)

use super::jsonrpc::{self, RpcError};
use super::protocol::Version;
use super::session::Sessions;
use super::tools::{self, CallCtx};
use crate::actors::Hub;
use crate::domain::AgentId;
use chrono::Utc;
use serde_json::{json, Map, Value};

/// The answer to one request: a JSON-RPC response object.
pub async fn request(
    hub: &Hub,
    sessions: &Sessions,
    agent: &AgentId,
    version: Version,
    id: &Value,
    method: &str,
    params: Option<Value>,
) -> Value {
    match serve(hub, sessions, agent, version, method, params).await {
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

async fn serve(
    hub: &Hub,
    sessions: &Sessions,
    agent: &AgentId,
    version: Version,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    match method {
        "ping" => Ok(json!({})),
        "tools/list" => {
            let p = params_object(params)?;
            // We never hand out a cursor, so any cursor is one we did not issue.
            if p.get("cursor").is_some_and(|c| !c.is_null()) {
                return Err(RpcError::invalid_params("cursor: unknown cursor (tools/list has a single page)"));
            }
            Ok(tools::list(version).clone())
        }
        "tools/call" => {
            let mut p = params_object(params)?;
            let name = match p.remove("name") {
                Some(Value::String(n)) => n,
                Some(_) => return Err(RpcError::invalid_params("name: must be a string")),
                None => return Err(RpcError::invalid_params("name: is required")),
            };
            tracing::Span::current().record("tool", name.as_str());
            let args = match p.remove("arguments") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => return Err(RpcError::invalid_params("arguments: must be an object")),
            };
            let ctx = CallCtx {
                hub,
                sessions,
                agent,
                now: Utc::now(),
            };
            let outcome = tools::call(&ctx, &name, &args).await?;
            Ok(tools::render(outcome, version))
        }
        "initialize" => Err(RpcError::invalid_request(
            "this session is already initialized; send initialize without Mcp-Session-Id to start a new one",
        )),
        other => Err(RpcError::method_not_found(other)),
    }
}
