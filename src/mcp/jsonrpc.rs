//! JSON-RPC 2.0 framing: classifying an incoming message and building responses.
//! Error codes have named constructors so every place that refuses says it the same way.

use serde::Serialize;
use serde_json::{json, Value};

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// Transport problems (missing session, not acceptable, unauthorized…), as the SDKs use it.
pub(crate) const SERVER_ERROR: i64 = -32000;
/// Unknown or expired session (HTTP 404), as the reference SDKs use it.
pub(crate) const SESSION_NOT_FOUND: i64 = -32001;
/// MCP's code for `resources/read` of an unknown URI.
pub(crate) const RESOURCE_NOT_FOUND: i64 = -32002;
/// The answer to a request the client cancelled (it ignores it).
pub(crate) const REQUEST_CANCELLED: i64 = -32800;

#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub(crate) fn cancelled() -> Self {
        Self::new(REQUEST_CANCELLED, "Request cancelled by the client")
    }
    pub(crate) fn session_not_found() -> Self {
        Self::new(
            SESSION_NOT_FOUND,
            "Session not found: it expired, was deleted, or belongs to another agent; send initialize without Mcp-Session-Id",
        )
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response from the client to a server request.
    Response,
}

/// Classify one JSON value as a JSON-RPC message. On failure returns the id to echo
/// (when it could be read) and the error.
pub(crate) fn classify(v: Value) -> Result<Incoming, (Value, RpcError)> {
    let Value::Object(mut m) = v else {
        return Err((
            Value::Null,
            RpcError::invalid_request("expected a JSON object"),
        ));
    };
    let id = m.remove("id");
    let echo = match &id {
        Some(i @ Value::String(_)) => i.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        _ => Value::Null,
    };
    let fail = |why: &str| Err((echo.clone(), RpcError::invalid_request(why)));
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return fail("`jsonrpc` must be \"2.0\"");
    }
    if let Some(method) = m.remove("method") {
        let Value::String(method) = method else {
            return fail("`method` must be a string");
        };
        let params = m.remove("params");
        if matches!(params, Some(ref p) if !p.is_object() && !p.is_array()) {
            return fail("`params` must be an object");
        }
        return match id {
            None => Ok(Incoming::Notification { method, params }),
            Some(Value::String(_)) => Ok(Incoming::Request {
                id: echo,
                method,
                params,
            }),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Incoming::Request {
                id: echo,
                method,
                params,
            }),
            Some(Value::Null) => fail("`id` must not be null"),
            Some(_) => fail("`id` must be a string or an integer"),
        };
    }
    if id.is_some() && (m.contains_key("result") || m.contains_key("error")) {
        return Ok(Incoming::Response);
    }
    fail("a message needs `method` (request or notification) or `result`/`error` (response)")
}

pub(crate) fn ok(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub(crate) fn err(id: &Value, e: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(v: Value) -> (Value, i64) {
        let (id, e) = classify(v).unwrap_err();
        (id, e.code)
    }

    #[test]
    fn requests_notifications_responses() {
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":1,"method":"ping"})).unwrap(),
            Incoming::Request {
                id: json!(1),
                method: "ping".into(),
                params: None
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":"a","method":"x","params":{}})).unwrap(),
            Incoming::Request {
                id: json!("a"),
                method: "x".into(),
                params: Some(json!({}))
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).unwrap(),
            Incoming::Notification {
                method: "notifications/initialized".into(),
                params: None
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":3,"result":{}})).unwrap(),
            Incoming::Response
        );
    }

    #[test]
    fn invalid_messages() {
        assert_eq!(code(json!([1])), (Value::Null, INVALID_REQUEST));
        assert_eq!(
            code(json!({"jsonrpc":"1.0","id":1,"method":"ping"})),
            (json!(1), INVALID_REQUEST)
        );
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":null,"method":"ping"})).1,
            INVALID_REQUEST
        );
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":1.5,"method":"ping"})),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":true,"method":"ping"})).1,
            INVALID_REQUEST
        );
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":2,"method":7})),
            (json!(2), INVALID_REQUEST)
        );
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":2,"method":"x","params":3})).1,
            INVALID_REQUEST
        );
        assert_eq!(code(json!({"jsonrpc":"2.0","id":2})).1, INVALID_REQUEST);
    }

    #[test]
    fn builds_responses() {
        assert_eq!(
            ok(&json!(1), json!({})),
            json!({"jsonrpc":"2.0","id":1,"result":{}})
        );
        let e = err(&Value::Null, &RpcError::method_not_found("x"));
        assert_eq!(e["error"]["code"], json!(METHOD_NOT_FOUND));
        assert!(e["error"].get("data").is_none());
    }
}
