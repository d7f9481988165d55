//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, off by
//! default): the JSON-RPC message decoder and the tool-argument decoders, called the
//! way the server calls them. They return nothing: a fuzz target only looks for
//! panics (and, under sanitizers, memory errors).

use crate::domain::task::{parse_handoff, Plan};
use crate::mcp::jsonrpc::{self, Body, Incoming, RpcError};
use crate::mcp::modern::{self, Header, Mirrored};
use crate::mcp::tools;
use serde_json::{Map, Value};

/// Decode a POST body as `/mcp` does: split it into messages, classify each, read a
/// cancellation's request id, check a request's 2026-07-28 envelope, and render the
/// answer with the echoed id.
pub fn decode_message(bytes: &[u8]) {
    let items = match jsonrpc::parse_body(bytes) {
        Ok(Body::One(raw)) => vec![raw],
        Ok(Body::Batch(items)) => items,
        Err(_) => return,
    };
    for raw in items {
        match jsonrpc::classify(raw) {
            Ok(Incoming::Notification { params, .. }) => {
                if let Some(id) = jsonrpc::cancelled_request_id(params.as_deref()) {
                    let _ = id.key();
                }
            }
            Ok(Incoming::Request {
                id, method, params, ..
            }) => {
                // The 2026-07-28 envelope check, with headers that mirror the body.
                let headers = Mirrored {
                    version: Header::Value("2026-07-28"),
                    method: Header::Value(&method),
                    name: Header::Absent,
                };
                let _ = modern::check(&method, params.as_ref(), &headers);
                let _ = jsonrpc::to_json(&jsonrpc::err(&id, &RpcError::internal("x")));
            }
            Err((id, _)) => {
                let _ = jsonrpc::to_json(&jsonrpc::err(&id, &RpcError::internal("x")));
            }
            Ok(Incoming::Response) => {}
        }
    }
}

/// The tools' names, for a fuzz target to pick one from its input.
pub fn tool_names() -> Vec<&'static str> {
    tools::names().collect()
}

/// Decode `bytes`, when they are a JSON object, as the arguments of tool `tool`
/// (unknown tools are skipped), and its JSON-valued arguments (`plan_json`,
/// `handoff_json`) as the handlers do.
pub fn decode_tool_args(tool: &str, bytes: &[u8]) {
    let Ok(args) = serde_json::from_slice::<Map<String, Value>>(bytes) else {
        return;
    };
    let _ = Plan::parse(args.get("plan_json"));
    let _ = parse_handoff(args.get("handoff_json"));
    let _ = tools::decode_args(tool, args);
}
