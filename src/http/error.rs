//! The HTTP layer's one error type: every refusal a handler can give, turned into
//! its response by actix (`ResponseError`), so handlers and guards use `?`.

use crate::actors::{Hub, HubError};
use crate::domain::ErrorCode;
use crate::mcp::jsonrpc::{self, Id, RpcError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use std::fmt;

#[derive(Debug)]
pub(crate) enum ApiError {
    /// A transport refusal with a JSON-RPC error body (mcp-transport.md §2.1), and
    /// the `WWW-Authenticate` challenge of 401/403 answers.
    Rpc {
        status: StatusCode,
        id: Id,
        error: Box<RpcError>,
        challenge: Option<&'static str>,
        /// Close the connection after answering: the request body was not (all) read.
        close: bool,
    },
    /// 405 with the methods allowed (`Allow`).
    NotAllowed {
        allow: &'static str,
        error: Box<RpcError>,
    },
    /// Too busy now (a cap on requests in flight): a JSON-RPC error body and
    /// `Retry-After`.
    Busy {
        status: StatusCode,
        error: Box<RpcError>,
        retry_after: u64,
        /// A cluster node standing by: marked for gateways (see `gateway`).
        standby: bool,
    },
    /// An operator API refusal or failure: `{"ok": false, "error": CODE, "message"}`.
    Operator {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
}

impl ApiError {
    /// A transport refusal that is not about one request id.
    pub(crate) fn rpc(status: StatusCode, error: RpcError) -> ApiError {
        ApiError::Rpc {
            status,
            id: Id::null(),
            error: Box::new(error),
            challenge: None,
            close: false,
        }
    }

    /// A refusal of the request `id` with `status` (2026-07-28 gives each error code
    /// its own).
    pub(crate) fn rpc_with_id(status: StatusCode, id: &Id, error: RpcError) -> ApiError {
        ApiError::Rpc {
            status,
            id: id.clone(),
            error: Box::new(error),
            challenge: None,
            close: false,
        }
    }

    /// 405 with `Allow: allow`.
    pub(crate) fn not_allowed(allow: &'static str, error: RpcError) -> ApiError {
        ApiError::NotAllowed {
            allow,
            error: Box::new(error),
        }
    }

    /// 400 answering the request `id` (a malformed or misplaced message).
    pub(crate) fn bad_request(id: &Id, error: RpcError) -> ApiError {
        ApiError::Rpc {
            status: StatusCode::BAD_REQUEST,
            id: id.clone(),
            error: Box::new(error),
            challenge: None,
            close: false,
        }
    }

    /// 429 or 503 with `Retry-After`: a cap on requests in flight.
    pub(crate) fn busy(status: StatusCode, error: RpcError, retry_after: u64) -> ApiError {
        ApiError::Busy {
            status,
            error: Box::new(error),
            retry_after,
            standby: false,
        }
    }

    /// 401/403 with the Bearer challenge clients read.
    pub(crate) fn auth(status: StatusCode, challenge: &'static str, message: String) -> ApiError {
        ApiError::Rpc {
            status,
            id: Id::null(),
            error: Box::new(RpcError::server(message)),
            challenge: Some(challenge),
            close: false,
        }
    }

    /// The same refusal, answered with `Connection: close`: for refusals given while
    /// the body is being read (too large, too slow), whose rest is never read.
    pub(crate) fn close_connection(self) -> ApiError {
        match self {
            ApiError::Rpc {
                status,
                id,
                error,
                challenge,
                ..
            } => ApiError::Rpc {
                status,
                id,
                error,
                challenge,
                close: true,
            },
            other => other,
        }
    }

    /// 503 with `Retry-After`: a cluster node standing by (another node holds the
    /// shards, or this one is taking them over). Answered as "store unavailable",
    /// which clients already retry.
    pub(crate) fn standby(why: &str) -> ApiError {
        ApiError::Busy {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: Box::new(RpcError::store_unavailable(format!(
                "this node is standing by ({why}); retry, or call the node that serves"
            ))),
            retry_after: jsonrpc::RETRY_AFTER_SECS,
            standby: true,
        }
    }

    /// 503: start-up failed before the hub was loaded (the server is stopping).
    pub(crate) fn starting() -> ApiError {
        ApiError::rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            RpcError::server("Service Unavailable: the hub failed to start; see its log"),
        )
    }

    /// 400 on the operator API (a malformed body).
    pub(crate) fn invalid_argument(message: String) -> ApiError {
        ApiError::Operator {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::InvalidArgument,
            message,
        }
    }

    /// 503 with `Retry-After` on the operator API: the store cannot answer now.
    pub(crate) fn unavailable(message: String) -> ApiError {
        ApiError::Operator {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::StoreUnavailable,
            message,
        }
    }

    /// 500 on the operator API: the server failed (logged where it happened).
    pub(crate) fn internal(message: String) -> ApiError {
        ApiError::Operator {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::Internal,
            message,
        }
    }

    /// A hub failure on the operator API: unknown ids 404, wrong state 409, the
    /// hub's own failures 500 (logged). Like every refusal it is given once the
    /// state it describes is on disk.
    pub(crate) async fn from_hub(hub: &Hub, e: HubError) -> ApiError {
        let e = match e {
            HubError::Domain(d) => match hub.settled().await {
                Ok(()) => HubError::Domain(d),
                Err(other) => other,
            },
            other => other,
        };
        match e {
            HubError::Domain(d) => ApiError::Operator {
                status: if d.code().is_not_found() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::CONFLICT
                },
                code: d.code(),
                message: d.to_string(),
            },
            HubError::NotOwner(what) => {
                ApiError::standby(&format!("{what} belongs to a shard another node serves"))
            }
            e @ (HubError::Store(_) | HubError::Mailbox(_)) => {
                static UNAVAILABLE: crate::log_limit::LogLimit =
                    crate::log_limit::LogLimit::new(10_000);
                if let Some(n) = UNAVAILABLE.hit() {
                    tracing::warn!(error = %e, requests = n, "operator requests: store unavailable (one line per 10 s at most)");
                }
                ApiError::Operator {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: ErrorCode::StoreUnavailable,
                    message: format!("{e}; retry later"),
                }
            }
            other => {
                tracing::error!(error = %other, "operator request failed");
                ApiError::Operator {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: ErrorCode::Internal,
                    message: "the hub could not complete the request; see its log".into(),
                }
            }
        }
    }
}

/// A hub result on the operator API, refusals settled and mapped (see
/// [`ApiError::from_hub`]).
pub(crate) async fn settle<T>(hub: &Hub, r: Result<T, HubError>) -> Result<T, ApiError> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => Err(ApiError::from_hub(hub, e).await),
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Rpc { status, error, .. } | ApiError::Busy { status, error, .. } => {
                write!(f, "{status}: {}", error.message)
            }
            ApiError::NotAllowed { error, .. } => write!(f, "405: {}", error.message),
            ApiError::Operator {
                status,
                code,
                message,
            } => write!(f, "{status} {code}: {message}"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Rpc { status, .. }
            | ApiError::Busy { status, .. }
            | ApiError::Operator { status, .. } => *status,
            ApiError::NotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Rpc {
                status,
                id,
                error,
                challenge,
                close,
            } => {
                let mut b = HttpResponse::build(*status);
                if let Some(c) = challenge {
                    b.insert_header((header::WWW_AUTHENTICATE, *c));
                }
                if *close {
                    b.force_close();
                }
                b.content_type("application/json")
                    .body(jsonrpc::to_json(&jsonrpc::err(id, error)))
            }
            ApiError::NotAllowed { allow, error } => HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, *allow))
                .content_type("application/json")
                .body(jsonrpc::to_json(&jsonrpc::err(&Id::null(), error))),
            ApiError::Busy {
                status,
                error,
                retry_after,
                standby,
            } => {
                let mut b = HttpResponse::build(*status);
                if *standby {
                    b.insert_header((super::gateway::STANDBY_HEADER, "1"));
                }
                b.insert_header((header::RETRY_AFTER, *retry_after))
                    .content_type("application/json")
                    .body(jsonrpc::to_json(&jsonrpc::err(&Id::null(), error)))
            }
            ApiError::Operator {
                status,
                code,
                message,
            } => {
                let mut b = HttpResponse::build(*status);
                if *code == ErrorCode::StoreUnavailable {
                    b.insert_header((header::RETRY_AFTER, jsonrpc::RETRY_AFTER_SECS));
                }
                b.json(json!({"ok": false, "error": code, "message": message}))
            }
        }
    }
}
