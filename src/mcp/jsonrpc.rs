//! JSON-RPC 2.0 framing: classifying an incoming message and building responses.
//! Error codes have named constructors so every place that refuses says it the same way.

mod id;
mod message;

pub(crate) use id::Id;
pub(crate) use message::{cancelled_request_id, classify, parse_body, Body, Incoming};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// Transport problems (missing session, not acceptable, unauthorized…), as the SDKs use it.
pub(crate) const SERVER_ERROR: i64 = -32000;
/// What a "store unavailable" answer tells clients to wait before retrying.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;
/// Unknown or expired session (HTTP 404), as the reference SDKs use it.
pub(crate) const SESSION_NOT_FOUND: i64 = -32001;
/// MCP's code for `resources/read` of an unknown URI (handshake revisions; 2026-07-28
/// uses -32602).
pub(crate) const RESOURCE_NOT_FOUND: i64 = -32002;
/// 2026-07-28: the mirrored headers disagree with the body, or are missing or malformed.
pub(crate) const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: a request claims a protocol revision we do not serve statelessly.
pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub(crate) fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(
            PARSE_ERROR,
            format!("Parse error: body is not valid JSON ({detail})"),
        )
    }
    pub(crate) fn invalid_request(why: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, format!("Invalid Request: {}", why.into()))
    }
    pub(crate) fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
    }
    pub(crate) fn invalid_params(why: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, format!("Invalid params: {}", why.into()))
    }
    pub(crate) fn internal(why: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, format!("Internal error: {}", why.into()))
    }
    pub(crate) fn server(why: impl Into<String>) -> Self {
        Self::new(SERVER_ERROR, why)
    }
    /// The store cannot save writes now (a storage fault being healed): retry after
    /// [`RETRY_AFTER_SECS`]. Answered with HTTP 503 and `Retry-After`.
    pub(crate) fn store_unavailable(why: impl std::fmt::Display) -> Self {
        RpcError {
            code: SERVER_ERROR,
            message: format!("Store unavailable: {why}"),
            data: Some(serde_json::json!({"retry_after_seconds": RETRY_AFTER_SECS})),
        }
    }
    /// Whether this is [`RpcError::store_unavailable`] (or [`RpcError::not_owner`]).
    pub(crate) fn is_store_unavailable(&self) -> bool {
        self.code == SERVER_ERROR && self.message.starts_with("Store unavailable: ")
    }
    /// The call belongs at another node (spread placement) and nothing of it was
    /// done: a [`RpcError::store_unavailable`] (503) that a gateway in front
    /// sends on to the node that serves it.
    pub(crate) fn not_owner(why: impl std::fmt::Display) -> Self {
        RpcError {
            code: SERVER_ERROR,
            message: format!("Store unavailable: {why}; retry"),
            data: Some(serde_json::json!({
                "retry_after_seconds": RETRY_AFTER_SECS,
                "not_owner": true
            })),
        }
    }

    pub(crate) fn header_mismatch(why: impl std::fmt::Display) -> Self {
        Self::new(HEADER_MISMATCH, format!("Header mismatch: {why}"))
    }
    /// `supported` lists every revision we serve, as the revision's error asks.
    pub(crate) fn unsupported_version(requested: &str, supported: &[&str]) -> Self {
        RpcError {
            code: UNSUPPORTED_PROTOCOL_VERSION,
            message: "Unsupported protocol version".into(),
            data: Some(serde_json::json!({"supported": supported, "requested": requested})),
        }
    }
    pub(crate) fn session_not_found() -> Self {
        Self::new(
            SESSION_NOT_FOUND,
            "Session not found: it expired, was deleted, or belongs to another agent; send initialize without Mcp-Session-Id",
        )
    }
}

/// A JSON-RPC response, serialised with its id exactly as the request wrote it.
#[derive(Debug, Serialize)]
pub(crate) struct Response {
    jsonrpc: &'static str,
    id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
}

/// A result: a value, or JSON text written once already (a tool result, whose object
/// appears twice, as text and as `structuredContent`, is serialised only once).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Answer {
    Value(Value),
    Raw(Box<RawValue>),
}

impl Response {
    /// The error code, when this is an error response.
    pub(crate) fn error_code(&self) -> Option<i64> {
        self.error.as_ref().map(|e| e.code)
    }

    /// Whether this answers with [`RpcError::not_owner`]: nothing was done here,
    /// another node serves the call (spread placement).
    pub(crate) fn is_not_owner(&self) -> bool {
        self.error
            .as_ref()
            .and_then(|e| e.data.as_ref())
            .is_some_and(|d| d["not_owner"] == true)
    }

    /// Whether this answers with [`RpcError::store_unavailable`] (HTTP 503).
    pub(crate) fn is_store_unavailable(&self) -> bool {
        self.error
            .as_ref()
            .is_some_and(RpcError::is_store_unavailable)
    }
}

/// Request `id`'s response as another node gave it (`answer`, one JSON-RPC
/// response), or `None` if it is not one.
pub(crate) fn relayed(id: &Id, answer: &str) -> Option<Response> {
    #[derive(serde::Deserialize)]
    struct Relayed<'a> {
        #[serde(borrow)]
        result: Option<&'a RawValue>,
        error: Option<RpcError>,
    }
    let r: Relayed<'_> = serde_json::from_str(answer).ok()?;
    match (r.result, r.error) {
        (Some(result), None) => Some(self::answer(id, Answer::Raw(result.to_owned()))),
        (None, Some(e)) => Some(err(id, &e)),
        _ => None,
    }
}

pub(crate) fn ok(id: &Id, result: Value) -> Response {
    answer(id, Answer::Value(result))
}

pub(crate) fn answer(id: &Id, result: Answer) -> Response {
    Response {
        jsonrpc: "2.0",
        id: id.clone(),
        result: Some(result),
        error: None,
    }
}

pub(crate) fn err(id: &Id, e: &RpcError) -> Response {
    Response {
        jsonrpc: "2.0",
        id: id.clone(),
        result: None,
        error: Some(e.clone()),
    }
}

/// One response or a batch of them as JSON text (on one line, as SSE needs).
pub(crate) fn to_json<T: Serialize + ?Sized>(answer: &T) -> String {
    serde_json::to_string(answer).unwrap_or_else(|e| {
        // Only a bug can get here: ids are valid JSON, results are `Value`s or
        // JSON text serde_json wrote.
        tracing::error!(error = %e, "a JSON-RPC answer could not be serialised");
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{INTERNAL_ERROR},"message":"Internal error: the answer could not be serialised"}}}}"#
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    #[test]
    fn builds_responses_with_the_id_verbatim() {
        let big = Id::parse(RawValue::from_string("18446744073709551616".into()).unwrap());
        let big = big.unwrap();
        assert_eq!(
            to_json(&ok(&big, json!({}))),
            r#"{"jsonrpc":"2.0","id":18446744073709551616,"result":{}}"#
        );
        let e = to_json(&err(&Id::null(), &RpcError::method_not_found("x")));
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["error"]["code"], json!(METHOD_NOT_FOUND));
        assert_eq!(v["id"], Value::Null);
        assert!(v["error"].get("data").is_none() && v.get("result").is_none());
        let batch = to_json(&vec![
            ok(&big, json!(1)),
            err(&big, &RpcError::internal("x")),
        ]);
        assert!(batch.starts_with(r#"[{"jsonrpc":"2.0","id":18446744073709551616,"#));
    }
}
