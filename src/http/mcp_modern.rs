//! `/mcp` for the 2026-07-28 revision: stateless POSTs, one message each. A POST
//! without `Mcp-Session-Id` that claims the revision (its `MCP-Protocol-Version`
//! header is no handshake revision, or its body is `server/discover` or carries the
//! revision's `_meta`) comes here from `mcp_route`; everything else keeps the
//! handshake rules. The envelope rules live in [`crate::mcp::modern`]; this file
//! reads the headers, answers as JSON or SSE, and gives each error code the HTTP
//! status the revision assigns it. Identity is the bearer token, state lives in the
//! actors: nothing here needs a session.

use super::admission;
use super::error::ApiError;
use super::guards::{self, Reply, VERSION_HEADER};
use super::mcp_route::{accepted, may_wait, store_unavailable};
use super::sse;
use super::state::AppState;
use crate::actors::Hub;
use crate::domain::AgentId;
use crate::log_limit::LogLimit;
use crate::mcp::dispatch;
use crate::mcp::jsonrpc::{self, Id, Incoming, RpcError};
use crate::mcp::listen;
use crate::mcp::modern::{self, Header, Mirrored};
use crate::mcp::protocol::Version;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use tracing::Instrument;

const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// Whether a POST without `Mcp-Session-Id` is one of this revision's: by its version
/// header (any value no handshake revision has, so an unknown one is told what we
/// serve) or, for a request, by its body.
pub(super) fn claims(req: &HttpRequest, msg: Option<&Incoming>) -> bool {
    if guards::session_id(req).is_some() {
        return false;
    }
    let by_header = req.headers().get(VERSION_HEADER).is_some_and(|v| {
        v.to_str()
            .map_or(true, |v| Version::parse_handshake(v).is_none())
    });
    by_header
        || matches!(msg, Some(Incoming::Request { method, params, .. })
            if method != "initialize" && modern::claimed_by_body(method, params.as_ref()))
}

/// One header as carried: absent, repeated, unreadable, or its text.
fn header<'a>(req: &'a HttpRequest, name: &str) -> Header<'a> {
    let mut all = req.headers().get_all(name);
    match (all.next(), all.next()) {
        (None, _) => Header::Absent,
        (Some(_), Some(_)) => Header::Repeated,
        (Some(v), None) => v.to_str().map_or(Header::Unreadable, Header::Value),
    }
}

/// The HTTP status of a 2026-07-28 error: 400 for a malformed request, a header
/// mismatch or an unsupported version, 404 for an unknown method (its body tells it
/// from a server without this endpoint), as the revision and the reference SDK do;
/// other errors are ordinary answers (200).
pub(super) fn status_of(code: i64) -> StatusCode {
    match code {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | jsonrpc::HEADER_MISMATCH
        | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// A refusal of request `id` (or of a message without one) with its status.
fn refuse(id: &Id, e: RpcError) -> ApiError {
    ApiError::rpc_with_id(status_of(e.code), id, e)
}

/// A batch claiming this revision: it carries one message per POST.
pub(super) fn batch() -> ApiError {
    refuse(
        &Id::null(),
        RpcError::invalid_request(
            "a 2026-07-28 POST carries one JSON-RPC request or notification, not a batch",
        ),
    )
}

/// GET or DELETE without a session from a client of this revision, which has no GET
/// stream and no session to end: 405, as the revision asks of its servers.
pub(super) fn not_post(verb: &str) -> ApiError {
    ApiError::not_allowed(
        "POST",
        RpcError::server(format!(
            "Method Not Allowed: 2026-07-28 has no {verb} on the MCP endpoint; send POST (subscriptions/listen for notifications)"
        )),
    )
}

/// Answer a message of this revision.
pub(super) async fn post(
    req: &HttpRequest,
    st: &web::Data<AppState>,
    hub: &Hub,
    agent: AgentId,
    reply: Reply,
    msg: Incoming,
) -> Result<HttpResponse, ApiError> {
    match msg {
        Incoming::Notification { method, .. } => notification(req, &method),
        // Clients of this revision send no responses: we send them no requests.
        Incoming::Response => Err(refuse(
            &Id::null(),
            RpcError::invalid_request("a 2026-07-28 client sends requests and notifications only"),
        )),
        Incoming::Request { id, method, params } => {
            request(req, st, hub, agent, reply, id, method, params).await
        }
    }
}

/// The revision defines no client notification over HTTP (closing a response stream
/// is the cancellation), so one is accepted and dropped, unless it names a version
/// we do not serve.
fn notification(req: &HttpRequest, method: &str) -> Result<HttpResponse, ApiError> {
    let requested = match header(req, VERSION_HEADER) {
        Header::Value(v) => v,
        _ => "",
    };
    if requested != Version::MODERN.as_str() {
        let supported: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
        return Err(refuse(
            &Id::null(),
            RpcError::unsupported_version(requested, &supported),
        ));
    }
    tracing::debug!(method, "2026-07-28 notification accepted and dropped");
    Ok(accepted())
}

#[allow(clippy::too_many_arguments)] // the parts of one request, passed through
async fn request(
    req: &HttpRequest,
    st: &web::Data<AppState>,
    hub: &Hub,
    agent: AgentId,
    reply: Reply,
    id: Id,
    method: String,
    params: Option<Value>,
) -> Result<HttpResponse, ApiError> {
    tracing::Span::current().record("method", method.as_str());
    // The revision's clients must accept both; errors and answers are JSON here.
    if reply != Reply::Json {
        return Err(ApiError::rpc(
            StatusCode::NOT_ACCEPTABLE,
            RpcError::server(
                "Not Acceptable: Accept must list application/json and text/event-stream",
            ),
        ));
    }
    let mirrored = Mirrored {
        version: header(req, VERSION_HEADER),
        method: header(req, METHOD_HEADER),
        name: header(req, NAME_HEADER),
    };
    let envelope =
        modern::check(&method, params.as_ref(), &mirrored).map_err(|e| refuse(&id, e))?;
    // Clients are many and stateless: at most one line a second.
    static SEEN: LogLimit = LogLimit::new(1000);
    if let Some(n) = SEEN.hit() {
        tracing::debug!(agent = %agent, client = envelope.client_name(), requests = n, "2026-07-28 request");
    }
    if !super::mcp_route::serves_home(hub, &agent, &method, params.as_ref()).await? {
        return Err(ApiError::standby(super::mcp_route::ELSEWHERE));
    }
    if method == "subscriptions/listen" {
        return listen(st, hub, agent, id, params.as_ref());
    }
    if !admission::read_only(&method, params.as_ref()) {
        admission::mark_writes(req);
    }
    if may_wait(&method, params.as_ref()) {
        let ping = super::mcp_route::ping_every(req, st);
        return Ok(waiting(st, hub, agent, (id, method, params), ping));
    }
    let resp = dispatch::request(
        hub,
        &st.sessions,
        &agent,
        Version::MODERN,
        &id,
        &method,
        params,
    )
    .await;
    let json = jsonrpc::to_json(&resp);
    let status = resp.error_code().map_or(StatusCode::OK, status_of);
    let http = HttpResponse::build(status)
        .content_type("application/json")
        .body(json);
    Ok(if resp.is_store_unavailable() {
        store_unavailable(http)
    } else {
        http
    })
}

/// A call that may wait, as an SSE stream with a comment every `ping` while it is
/// parked (see [`sse::waiting`] and `mcp_route::ping_every`). Closing the stream
/// is this revision's cancellation: the write of the next comment fails, the call
/// is dropped and its waiter withdrawn (a pull marks nothing read; a lock wait
/// leaves the line).
fn waiting(
    st: &web::Data<AppState>,
    hub: &Hub,
    agent: AgentId,
    (id, method, params): (Id, String, Option<Value>),
    ping: std::time::Duration,
) -> HttpResponse {
    let (st, hub) = (st.clone(), hub.clone());
    // A node handing its shards over does not wait for a parked call (see
    // `mcp_route::waiting`).
    let parked = st.admission.not_served();
    let work = async move {
        let _parked = parked;
        let _waiting = crate::metrics::get().waiting();
        let resp = dispatch::request(
            &hub,
            &st.sessions,
            &agent,
            Version::MODERN,
            &id,
            &method,
            params,
        )
        .await;
        Some(jsonrpc::to_json(&resp))
    }
    .instrument(tracing::Span::current());
    sse::waiting(work, ping, None)
}

/// `subscriptions/listen`: an SSE stream that stays open, acknowledged first, then
/// carrying `notifications/resources/updated` for the inbox if asked. It holds one
/// of the agent's requests in flight while open (admission), which bounds how many
/// an agent can keep. Listened to again through a gateway (the node relaying it
/// before stopped serving), it says at once that the inbox holds messages, if it
/// does: what arrived meanwhile was pushed to no stream.
fn listen(
    st: &web::Data<AppState>,
    hub: &Hub,
    agent: AgentId,
    id: Id,
    params: Option<&Value>,
) -> Result<HttpResponse, ApiError> {
    let filter = listen::filter(params).map_err(|e| refuse(&id, e))?;
    static OPENED: LogLimit = LogLimit::new(1000);
    if let Some(n) = OPENED.hit() {
        tracing::info!(agent = %agent, inbox = filter.inbox, streams = n, "listen stream opened");
    }
    let again = crate::mcp::replay::FORWARDED
        .try_with(|f| f.retry)
        .unwrap_or(false);
    let hint = again && filter.inbox && hub.unread(&agent) > 0;
    let (registration, rx, ending) = st.sessions.listeners.open(agent, id.clone(), filter, hint);
    // This node stopped serving as the stream opened, after its open streams were
    // ended: this one would hear nothing (the hub leaves the slot before the
    // streams are ended).
    if !st.hub.serves() {
        drop(registration);
        return Err(ApiError::standby("it stopped serving as the stream opened"));
    }
    // A node that stops serving waits for the calls it serves, not for streams
    // that never end by themselves (it ends them after).
    let waits_for_none = st.admission.not_served();
    Ok(sse::listen(
        listen::acknowledged(&id, filter),
        rx,
        ending,
        st.sse_keepalive,
        (registration, waits_for_none),
    ))
}
