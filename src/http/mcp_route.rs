//! `/mcp`: the MCP Streamable HTTP endpoint (POST, GET, DELETE).
//! Processing order and status codes follow shared/spec/mcp-transport.md §2.1.
//! A client picks its revision by what it sends: `initialize` starts a handshake
//! session; a sessionless POST of the 2026-07-28 revision goes to `mcp_modern`.

use super::admission;
use super::error::ApiError;
use super::guards::{self, Reply};
use super::mcp_batch;
use super::mcp_modern;
use super::sse;
use super::state::AppState;
use crate::actors::Hub;
use crate::domain::AgentId;
use crate::log_limit::LogLimit;
use crate::mcp::jsonrpc::{self, Body, Id, Incoming, Response, RpcError};
use crate::mcp::protocol::{self, negotiate};
use crate::mcp::{dispatch, session::Session};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tracing::{field, Instrument};

/// A response (or batch of responses) as JSON or as a one-event SSE stream.
pub(super) fn answer<T: serde::Serialize + ?Sized>(
    reply: Reply,
    body: &T,
    session: Option<&str>,
) -> HttpResponse {
    let json = jsonrpc::to_json(body);
    match reply {
        Reply::Sse => sse::single(&json, session),
        Reply::Json => {
            let mut b = HttpResponse::Ok();
            b.content_type("application/json");
            if let Some(s) = session {
                b.insert_header(("mcp-session-id", s));
            }
            b.body(json)
        }
    }
}

/// One request on `session`, answered by the MCP layer. `notifications/cancelled`
/// naming it ends it at once with no answer (`None`): the spec's cancellation
/// utility says a cancelled request gets no response, and clients report one for an
/// id they already forgot as an error.
pub(super) async fn run(
    st: &AppState,
    hub: &Hub,
    agent: &AgentId,
    session: &Arc<Session>,
    id: Id,
    method: String,
    params: Option<Value>,
) -> Option<Response> {
    let inflight = session.track(&id);
    run_tracked(st, hub, agent, session, inflight, id, method, params).await
}

/// [`run`] for a request already registered as in flight (so that a cancel sent
/// before its first poll is not lost).
#[allow(clippy::too_many_arguments)] // the parts of one request, passed through
async fn run_tracked(
    st: &AppState,
    hub: &Hub,
    agent: &AgentId,
    session: &Arc<Session>,
    mut inflight: crate::mcp::session::InFlight,
    id: Id,
    method: String,
    params: Option<Value>,
) -> Option<Response> {
    let sessions = &st.sessions;
    let work = dispatch::request(hub, sessions, agent, session.version, &id, &method, params);
    // Dropping `work` withdraws a parked waiter (an inbox_pull leaves its messages
    // unread; a lock wait leaves the line).
    tokio::select! {
        resp = work => Some(resp),
        Ok(()) = &mut inflight.cancelled => None,
    }
}

/// A notification on `session`. Only `notifications/cancelled` does anything: a long
/// wait (inbox_pull, lock_acquire with wait_seconds) stops at once; writes already
/// committed stay. Malformed or unknown ids are ignored.
pub(super) fn notify(session: &Session, method: &str, params: Option<&RawValue>) {
    if method == "notifications/cancelled" {
        if let Some(id) = jsonrpc::cancelled_request_id(params) {
            session.cancel(&id);
        }
    }
}

/// 202 with no body: the answer to notifications and client responses.
pub(super) fn accepted() -> HttpResponse {
    HttpResponse::Accepted().finish()
}

pub(crate) async fn post(
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let admitted = |req: &HttpRequest, st: &AppState| {
        let agent = guards::agent(req, st)?;
        let permits = st.admission.admit(&agent)?;
        Ok((agent, permits))
    };
    let ((agent, permits), body) = match guards::with_body(&req, &st, payload, admitted).await {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    hub.touch(&agent, Utc::now());
    let span =
        tracing::info_span!("mcp", agent = %agent, method = field::Empty, tool = field::Empty);
    async move {
        let started = Instant::now();
        let resp = handle_post(&req, &body, &st, &hub, agent).await;
        let status = match &resp {
            Ok(r) => r.status(),
            Err(e) => e.status_code(),
        };
        tracing::debug!(
            status = status.as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "POST /mcp"
        );
        // The slots stay taken until the answer is written (see admission.rs).
        let writes = admission::marked_writes(&req);
        resp.map(|r| admission::hold(r, permits, writes))
    }
    .instrument(span)
    .await
}

async fn handle_post(
    req: &HttpRequest,
    body: &[u8],
    st: &web::Data<AppState>,
    hub: &Hub,
    agent: AgentId,
) -> Result<HttpResponse, ApiError> {
    let reply = guards::post_reply(req)?;
    guards::content_type_json(req)?;
    let raw = match jsonrpc::parse_body(body) {
        Ok(Body::One(raw)) => raw,
        Ok(Body::Batch(_)) if mcp_modern::claims(req, None) => return Err(mcp_modern::batch()),
        Ok(Body::Batch(items)) => return mcp_batch::batch(req, st, hub, agent, reply, items).await,
        Err(e) => return Err(ApiError::bad_request(&Id::null(), e)),
    };
    let msg = match jsonrpc::classify(raw) {
        Ok(m) => m,
        Err((id, e)) => return Err(ApiError::bad_request(&id, e)),
    };
    if let Incoming::Request { id, method, params } = &msg {
        if method == "initialize" {
            tracing::Span::current().record("method", "initialize");
            return initialize(req, st, agent, reply, id, params.as_ref());
        }
    }
    if mcp_modern::claims(req, Some(&msg)) {
        return mcp_modern::post(req, st, hub, agent, reply, msg).await;
    }
    let session = guards::session(req, st, &agent)?;
    guards::protocol_version(req, &session)?;
    match msg {
        Incoming::Notification { method, params } => {
            notify(&session, &method, params.as_deref());
            Ok(accepted())
        }
        Incoming::Response => Ok(accepted()),
        Incoming::Request { id, method, params } => {
            tracing::Span::current().record("method", method.as_str());
            if !serves_home(hub, &agent, &method, params.as_ref()).await? {
                return Err(ApiError::standby(ELSEWHERE));
            }
            if !admission::read_only(&method, params.as_ref()) {
                admission::mark_writes(req);
            }
            if may_wait(&method, params.as_ref()) {
                let ping = ping_every(req, st);
                return Ok(waiting(st, hub, agent, session, (id, method, params), ping));
            }
            let Some(resp) = run(st, hub, &agent, &session, id, method, params).await else {
                return Ok(sse::unanswered(Some(&session.id)));
            };
            let http = answer(reply, &resp, Some(&session.id));
            Ok(if resp.is_store_unavailable() {
                store_unavailable(http)
            } else {
                http
            })
        }
    }
}

/// Why a request is refused with the standby mark by a node that does not serve
/// its home (spread placement): a gateway in front sends it on.
pub(super) const ELSEWHERE: &str = "the call belongs to a shard another node serves";

/// Whether this node serves the home of a request (see `domain::route`): a tool
/// call's, or the caller's for any other method. Always, but with spread
/// placement. Asked before anything runs, so that its refusal (the standby 503)
/// may be sent elsewhere.
pub(super) async fn serves_home(
    hub: &Hub,
    agent: &AgentId,
    method: &str,
    params: Option<&serde_json::Value>,
) -> Result<bool, ApiError> {
    if method != "tools/call" {
        return Ok(hub.owns(agent.as_str()));
    }
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(serde_json::Value::as_str);
    let args = params
        .and_then(|p| p.get("arguments"))
        .and_then(serde_json::Value::as_object);
    match (name, args) {
        (Some(name), Some(args)) => hub
            .serves_home(name, args, agent)
            .await
            .map_err(|e| ApiError::standby(&e.to_string())),
        (Some(name), None) => hub
            .serves_home(name, &serde_json::Map::new(), agent)
            .await
            .map_err(|e| ApiError::standby(&e.to_string())),
        // Refused the same wherever it runs.
        (None, _) => Ok(true),
    }
}

/// A storage fault: nothing was saved; the client retries later (503, `Retry-After`).
pub(super) fn store_unavailable(mut http: HttpResponse) -> HttpResponse {
    *http.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    http.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(jsonrpc::RETRY_AFTER_SECS),
    );
    http
}

/// Whether a request may wait long: a tool call that parks (`inbox_pull` or
/// `lock_acquire` with `wait_seconds` above 0). Answered by [`waiting`].
pub(super) fn may_wait(method: &str, params: Option<&Value>) -> bool {
    let Some(p) = params.filter(|_| method == "tools/call") else {
        return false;
    };
    matches!(
        p.get("name").and_then(Value::as_str),
        Some("inbox_pull" | "lock_acquire")
    ) && p
        .get("arguments")
        .and_then(|a| a.get("wait_seconds"))
        .and_then(Value::as_f64)
        .is_some_and(|w| w > 0.0)
}

/// How often a parked call's stream carries a comment: every second, or every
/// quarter second for a call another node sent on (cluster mode). A hang-up is
/// noticed at the second write after it, hop by hop: through a gateway (and a
/// balancer) the serving node would learn of it seconds late, and hand a lock to
/// a waiter that is gone.
pub(super) fn ping_every(req: &HttpRequest, st: &AppState) -> std::time::Duration {
    if super::gateway::from_node(req.head(), st) {
        std::time::Duration::from_millis(250)
    } else {
        std::time::Duration::from_secs(1)
    }
}

/// A call that may wait, answered as an SSE stream with a comment every `ping`
/// while it is parked: the only way to notice a client that hung up (see
/// [`sse::waiting`]). Clients accept SSE answers to any POST (the Accept check).
fn waiting(
    st: &web::Data<AppState>,
    hub: &Hub,
    agent: AgentId,
    session: Arc<Session>,
    (id, method, params): (Id, String, Option<Value>),
    ping: std::time::Duration,
) -> HttpResponse {
    let (st, hub, sid) = (st.clone(), hub.clone(), session.id.clone());
    // Registered now, not at the stream's first poll: a cancel may come first.
    let inflight = session.track(&id);
    // A node handing its shards over does not wait for a parked call (agents
    // long-poll all the time): it is cut, answered "store unavailable", and sent
    // again by a gateway or the client.
    let parked = st.admission.not_served();
    let work = async move {
        let _parked = parked;
        let _waiting = crate::metrics::get().waiting();
        let resp = run_tracked(&st, &hub, &agent, &session, inflight, id, method, params).await;
        resp.map(|r| jsonrpc::to_json(&r))
    }
    .instrument(tracing::Span::current());
    sse::waiting(work, ping, Some(&sid))
}

fn initialize(
    req: &HttpRequest,
    st: &AppState,
    agent: AgentId,
    reply: Reply,
    id: &Id,
    params: Option<&Value>,
) -> Result<HttpResponse, ApiError> {
    if guards::session_id(req).is_some() {
        return Err(ApiError::bad_request(
            id,
            RpcError::invalid_request(
                "initialize must be sent without Mcp-Session-Id (it starts a new session)",
            ),
        ));
    }
    let Some(requested) = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
    else {
        let e = RpcError::invalid_params("protocolVersion: is required and must be a string");
        return Ok(answer(reply, &jsonrpc::err(id, &e), None));
    };
    let version = negotiate(requested);
    let session = st.sessions.create(agent.clone(), version);
    // An agent can open sessions in a loop: at most one line a second.
    static OPENED: LogLimit = LogLimit::new(1000);
    if let Some(n) = OPENED.hit() {
        tracing::info!(agent = %agent, requested, negotiated = version.as_str(), sessions = n, "session opened");
    }
    let resp = jsonrpc::ok(id, protocol::initialize_result(version, agent.as_str()));
    Ok(answer(reply, &resp, Some(&session.id)))
}

pub(crate) async fn get(
    req: HttpRequest,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    let agent = guards::agent(&req, &st)?;
    if mcp_modern::claims(&req, None) {
        return Err(mcp_modern::not_post("GET"));
    }
    guards::get_accepts_sse(&req)?;
    let session = guards::session(&req, &st, &agent)?;
    guards::protocol_version(&req, &session)?;
    let hub = st.hub.get().await?;
    if !hub.owns(agent.as_str()) {
        return Err(ApiError::standby(ELSEWHERE));
    }
    hub.touch(&agent, Utc::now());
    match session.open_stream() {
        Some(rx) => {
            static STREAMS: LogLimit = LogLimit::new(1000);
            if let Some(n) = STREAMS.hit() {
                tracing::info!(agent = %agent, streams = n, "GET stream opened");
            }
            // This node stopped serving as the stream opened, after its open
            // streams were ended: this one would hear nothing (the hub leaves
            // the slot before the streams are ended).
            if !st.hub.serves() {
                session.close_stream();
                return Err(ApiError::standby("it stopped serving as the stream opened"));
            }
            // Opened again by a gateway (the node it came from stopped serving):
            // what reached the inbox meanwhile was pushed to no stream.
            let h = req.headers();
            let again = super::gateway::from_node(req.head(), &st)
                && h.contains_key(crate::mcp::replay::RETRY_HEADER);
            if again && hub.unread(&agent) > 0 {
                session.push(crate::mcp::push::inbox_hint());
            }
            Ok(sse::stream(rx, st.sse_keepalive, &session.id))
        }
        None => Err(ApiError::rpc(
            StatusCode::CONFLICT,
            RpcError::server("Conflict: this session already has an open GET stream"),
        )),
    }
}

pub(crate) async fn delete(
    req: HttpRequest,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    let agent = guards::agent(&req, &st)?;
    if mcp_modern::claims(&req, None) {
        return Err(mcp_modern::not_post("DELETE"));
    }
    let session = guards::session(&req, &st, &agent)?;
    guards::protocol_version(&req, &session)?;
    // Cluster mode: stored before it is answered, so that no node (the next
    // serving one after a failover) takes the ended id back. Not stored: not ended.
    // Beyond the bound of remembered ids, neither remembered nor stored.
    if let Some(r) = session
        .revocation()
        .filter(|_| st.sessions.remembers_more())
    {
        st.reloader.revoked().store(&r).await?;
    }
    // Cannot fail: `session` was just found for this agent; a concurrent DELETE
    // winning the race still leaves the session gone, which is what was asked.
    let _ = st.sessions.remove(&session.id, &agent);
    static DELETED: LogLimit = LogLimit::new(1000);
    if let Some(n) = DELETED.hit() {
        tracing::info!(agent = %agent, sessions = n, "session deleted");
    }
    Ok(HttpResponse::Ok().finish())
}

pub(crate) async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header(("allow", "GET, POST, DELETE"))
        .content_type("application/json")
        .body(jsonrpc::to_json(&jsonrpc::err(
            &Id::null(),
            &RpcError::server("Method Not Allowed: use POST, GET or DELETE on /mcp"),
        )))
}
