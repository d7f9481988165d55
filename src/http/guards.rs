//! Checks every request goes through, each answering the status code the MCP
//! transport rules give (shared/spec/mcp-transport.md §2.1, §5), with a JSON-RPC
//! error body so that clients and people can tell what to fix.

use super::body;
use super::error::ApiError;
use super::state::{AppState, Origins};
use crate::actors::Hub;
use crate::auth::{AuthError, Principal};
use crate::domain::AgentId;
use crate::mcp::jsonrpc::RpcError;
use crate::mcp::protocol::Version;
use crate::mcp::session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use std::sync::Arc;

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A browser page from another origin must not reach a local server (DNS rebinding).
/// No `Origin` header means a non-browser client: allowed.
pub(crate) fn check_origin(req: &HttpRequest, origins: &Origins) -> Result<(), ApiError> {
    match header_str(req, "origin") {
        None => Ok(()),
        Some(o) if origins.allows(o) => Ok(()),
        Some(o) => Err(ApiError::rpc(
            StatusCode::FORBIDDEN,
            RpcError::server(format!("Forbidden: origin {o} is not in allowed_origins")),
        )),
    }
}

fn unauthorized(e: AuthError) -> ApiError {
    let challenge = match e {
        AuthError::InvalidToken => {
            "Bearer realm=\"agent-hub\", error=\"invalid_token\", error_description=\"unknown bearer token\""
        }
        AuthError::Missing | AuthError::WrongScheme => "Bearer realm=\"agent-hub\"",
    };
    ApiError::auth(
        StatusCode::UNAUTHORIZED,
        challenge,
        format!("Unauthorized: {e}"),
    )
}

fn forbidden_scope(why: &str) -> ApiError {
    ApiError::auth(
        StatusCode::FORBIDDEN,
        "Bearer realm=\"agent-hub\", error=\"insufficient_scope\"",
        format!("Forbidden: {why}"),
    )
}

fn principal(req: &HttpRequest, st: &AppState) -> Result<Principal, ApiError> {
    st.tokens
        .current()
        .authenticate(header_str(req, "authorization"))
        .map_err(unauthorized)
}

/// The calling agent; the operator token is not an agent and gets 403 here.
pub(crate) fn agent(req: &HttpRequest, st: &AppState) -> Result<AgentId, ApiError> {
    match principal(req, st)? {
        Principal::Agent(a) => Ok(a),
        Principal::Operator => Err(forbidden_scope(
            "the operator token cannot be used as an agent; use an agent token from agents.env",
        )),
    }
}

/// Only the operator token passes; agent tokens get 403.
pub(crate) fn operator(req: &HttpRequest, st: &AppState) -> Result<(), ApiError> {
    match principal(req, st)? {
        Principal::Operator => Ok(()),
        Principal::Agent(_) => Err(forbidden_scope(
            "agent tokens cannot use the operator API; use operator.token",
        )),
    }
}

/// How a POST is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    Json,
    Sse,
}

fn accepts(req: &HttpRequest) -> (bool, bool) {
    let Some(accept) = header_str(req, "accept") else {
        // No Accept header means "anything" in HTTP.
        return (true, true);
    };
    let mut json = false;
    let mut sse = false;
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        let is = |name: &str| media.eq_ignore_ascii_case(name);
        if is("*/*") {
            (json, sse) = (true, true);
        } else if is("application/json") || is("application/*") {
            json = true;
        } else if is("text/event-stream") || is("text/*") {
            sse = true;
        }
    }
    (json, sse)
}

/// POST: JSON when the client accepts both JSON and SSE (as MCP clients must say);
/// an SSE stream when it accepts only `text/event-stream`; otherwise 406.
pub(crate) fn post_reply(req: &HttpRequest) -> Result<Reply, ApiError> {
    match accepts(req) {
        (true, true) => Ok(Reply::Json),
        (false, true) => Ok(Reply::Sse),
        _ => Err(ApiError::rpc(
            StatusCode::NOT_ACCEPTABLE,
            RpcError::server(
                "Not Acceptable: Accept must list application/json and text/event-stream",
            ),
        )),
    }
}

/// GET: the client must accept `text/event-stream`.
pub(crate) fn get_accepts_sse(req: &HttpRequest) -> Result<(), ApiError> {
    if accepts(req).1 {
        Ok(())
    } else {
        Err(ApiError::rpc(
            StatusCode::NOT_ACCEPTABLE,
            RpcError::server(
                "Not Acceptable: GET opens an SSE stream; Accept must list text/event-stream",
            ),
        ))
    }
}

pub(crate) fn content_type_json(req: &HttpRequest) -> Result<(), ApiError> {
    let ok = header_str(req, "content-type")
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ApiError::rpc(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RpcError::server("Unsupported Media Type: Content-Type must be application/json"),
        ))
    }
}

pub(crate) fn session_id(req: &HttpRequest) -> Option<&str> {
    header_str(req, SESSION_HEADER)
}

/// The session named by `Mcp-Session-Id`: 400 without the header, 404 when unknown,
/// expired, deleted or another agent's.
pub(crate) fn session(
    req: &HttpRequest,
    st: &AppState,
    agent: &AgentId,
) -> Result<Arc<Session>, ApiError> {
    let Some(id) = session_id(req) else {
        return Err(ApiError::rpc(
            StatusCode::BAD_REQUEST,
            RpcError::server(
                "Bad Request: Mcp-Session-Id header is required; send initialize first",
            ),
        ));
    };
    st.sessions
        .get(id, agent)
        .map_err(|_| ApiError::rpc(StatusCode::NOT_FOUND, RpcError::session_not_found()))
}

/// `MCP-Protocol-Version`, when sent, must be one we support and the session's own.
pub(crate) fn protocol_version(req: &HttpRequest, session: &Session) -> Result<(), ApiError> {
    let Some(v) = req.headers().get(VERSION_HEADER) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    let why = match Version::parse_handshake(v) {
        None => format!(
            "unsupported MCP-Protocol-Version {v:?} on a session; sessions are on 2025-11-25, 2025-06-18 or 2025-03-26"
        ),
        Some(x) if x != session.version => format!(
            "MCP-Protocol-Version {v} differs from this session's negotiated version {}",
            session.version.as_str()
        ),
        Some(_) => return Ok(()),
    };
    Err(ApiError::rpc(
        StatusCode::BAD_REQUEST,
        RpcError::server(format!("Bad Request: {why}")),
    ))
}

/// A POST's headers, then its body (§2.1 steps 1–3): the size `Content-Length`
/// announces, `Origin` and the token (`who`) are decided before any body byte is read,
/// so that no unauthenticated client makes the server hold or wait for a body; then
/// the body, under the cap and `body_read_timeout`. A refusal comes back as the
/// response to send, which closes the connection when the body is left unread.
pub(crate) async fn with_body<T>(
    req: &HttpRequest,
    st: &AppState,
    mut payload: web::Payload,
    who: impl FnOnce(&HttpRequest, &AppState) -> Result<T, ApiError>,
) -> Result<(T, Bytes), HttpResponse> {
    let checked = body::check_length(req, st.max_body_bytes)
        .and_then(|()| check_origin(req, &st.origins))
        .and_then(|()| who(req, st));
    let who = match checked {
        Ok(w) => w,
        Err(e) => return Err(body::refuse(&e, payload)),
    };
    match body::read(&mut payload, st.max_body_bytes, st.body_read_timeout).await {
        Ok(b) => Ok((who, b)),
        Err(e) => Err(body::refuse(&e, payload)),
    }
}

/// Every operator route: the Origin check, then the operator token; then the hub,
/// once start-up has loaded it.
pub(crate) async fn operator_request(req: &HttpRequest, st: &AppState) -> Result<Hub, ApiError> {
    check_origin(req, &st.origins)?;
    operator(req, st)?;
    st.hub.get().await
}
