//! Cluster mode's gateway: a node that does not serve (a standby, or one taking
//! the shards over) forwards every call to the node that does, so that clients
//! and load balancers may call any node (shared/spec/cluster.md §2, "Routing
//! requests"). A middleware in front of every route, so that the MCP endpoint,
//! the operator API and the dashboard all follow the leader. With spread
//! placement every node serves some shards, and each request goes to the owner
//! of its home shard (`route`), here or at another node.
//!
//! What is forwarded is the client's own HTTP request (its token included): the
//! leader authenticates it as if it had come directly, so a forwarded call gains
//! no privilege and needs no cluster key. The answer, streams included (SSE), is
//! relayed as it comes.
//!
//! A call is retried, at the same or a new leader, only where running it again
//! cannot do anything twice: the leader could not be reached (connection
//! refused), or it answered that it stands by (the [`STANDBY_HEADER`] on its
//! 503), or the call only reads, or its answer is logged with its writes (the
//! request carries a request id: see `mcp::replay`). Meanwhile the gateway waits
//! for a leader up to [`forward_wait`], which covers a failover (lease TTL plus
//! load). Another call that writes whose connection broke after it was sent is
//! not retried: its outcome is unknown, and the client is told so (502), as it
//! would be by a single node that died mid-call.

use super::error::ApiError;
use super::state::AppState;
use crate::mcp::jsonrpc::RpcError;
use crate::mcp::replay;
use crate::store::pg::node::{Leader, Node, Placement, ShardMap};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpRequest, HttpResponse, ResponseError};
use awc::error::ConnectError;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod follow;
pub(crate) mod node_auth;
pub(crate) mod relay_events;
pub(crate) mod route;

use route::Dest;

/// Sent with a forwarded request: the forwarding node's id. A node that does
/// not serve answers such a request with its own 503 instead of forwarding it
/// again (no loops between two standbys that each think the other leads).
pub(crate) const FORWARDED_HEADER: &str = "x-agent-hub-forwarded-by";

/// On a 503 of a node that stands by: nothing of the request was run, so a
/// gateway may send it elsewhere.
pub(crate) const STANDBY_HEADER: &str = "x-agent-hub-standby";

/// How long a gateway waits for a leader it can reach, in all: more than a
/// failover after a `kill -9` (the lease, then the load): the lease plus 10 s
/// (20 s with the default 10 s lease).
pub(crate) fn forward_wait(node: &Node) -> Duration {
    node.timing().lease_ttl + Duration::from_secs(10)
}

/// Between two tries at an unreachable or standing-by leader.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Paths that describe this node itself: answered here, never forwarded.
/// `/operator/reload` reloads this node's own files. Node-to-node calls
/// (`/internal/…`) are for the node asked, and only with another node's proof:
/// relayed, they would be signed by the relaying node.
fn answered_here(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/operator/cluster" | "/operator/reload"
    ) || path.starts_with("/internal/")
}

/// The middleware: forward while this cluster node does not serve; and while the
/// server stops, ask every client to close its connection after the answer.
pub(crate) async fn front(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let stopping = req
        .app_data::<web::Data<AppState>>()
        .map(|st| st.stopping.clone());
    let mut resp = forward_when_standing_by(req, next).await?;
    if stopping.is_some_and(|s| s.load(std::sync::atomic::Ordering::Acquire)) {
        resp.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(resp)
}

async fn forward_when_standing_by(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if let Some(st) = req.app_data::<web::Data<AppState>>().cloned() {
        if let Some(refused) = unproven_marks(&req, &st) {
            return Ok(req.into_response(refused).map_into_right_body());
        }
        // A token this node does not know may be one just added at another
        // node: the agents table is read again before the token is judged (here
        // or by the handler).
        if st.cluster.get().is_some() && unknown_token(&req, &st) {
            st.reloader.follow_on_miss().await;
        }
    }
    let node = req
        .app_data::<web::Data<AppState>>()
        .and_then(|st| Some((st.clone(), st.cluster.get()?.clone())));
    // Standby placement: while another node serves. Spread: every request a
    // node (not a gateway) sent, as its home may be elsewhere.
    let forward = node.filter(|(st, node)| {
        !answered_here(req.path())
            && match node.placement() {
                Placement::Standby => !st.hub.serves(),
                Placement::Spread => !from_node(req.head(), st),
            }
    });
    let Some((st, node)) = forward else {
        // Served here. A call a gateway forwarded with a request id has its answer
        // logged with its writes (see `mcp::replay`).
        return Ok(match forwarded_call(&req) {
            Some(f) => replay::FORWARDED.scope(f, next.call(req)).await?,
            None => next.call(req).await?,
        }
        .map_into_left_body());
    };
    // Sent on by another node that took us for the leader: nothing runs here (not
    // even what needs no hub, as DELETE or a dashboard login), so that it retries
    // at the leader.
    if from_node(req.head(), &st) {
        let refused = ApiError::standby("it does not serve").error_response();
        return Ok(req.into_response(refused).map_into_right_body());
    }
    // In the leader's order (mcp-transport.md §2.1): an announced body too large;
    // the caller's Origin, judged here by this node's allowed origins (its own
    // port among them) and not sent on, as the leader would judge it by its own;
    // the caller's token (every node has the same agents.env and operator token)
    // and the agent's slots in flight: nobody unknown makes this node hold a body,
    // and one agent cannot hold more here than at the leader.
    let checked = match super::body::check_length(req.request(), st.max_body_bytes) {
        Err(e) => Err(e.error_response()),
        Ok(()) => match origin_refused(&req, &st) {
            Some(refused) => Err(refused),
            None => admit(&req, &st).map_err(|e| e.error_response()),
        },
    };
    let permits = match checked {
        Ok(permits) => permits,
        Err(refused) => {
            let refused = refuse_unread(&mut req, refused).await;
            return Ok(req.into_response(refused).map_into_right_body());
        }
    };
    // Admitted here but served elsewhere (its body too is read for another
    // node): a node handing its shards over does not wait for it.
    let relaying = permits.as_ref().map(|_| st.admission.not_served());
    let body = match read_body(&mut req, &st).await {
        Ok(body) => body,
        Err(refused) => return Ok(req.into_response(refused).map_into_right_body()),
    };
    let dest = match node.placement() {
        Placement::Standby => Dest::Leader,
        Placement::Spread => route::dest_of(&req, &st, &node, &body).await,
    };
    let relayed = relay(&req, &st, &node, body, dest).await;
    drop(relaying);
    match relayed {
        Forwarded::Answer(resp) => {
            drop(permits);
            Ok(req.into_response(resp).map_into_right_body())
        }
        // This node became the leader meanwhile: serve the call here (whose
        // handler takes the agent's slots itself).
        Forwarded::ServeHere(body, tried) => {
            drop(permits);
            req.set_payload(actix_web::dev::Payload::from(body));
            Ok(match tried {
                Some(f) => replay::FORWARDED.scope(f, next.call(req)).await?,
                None => next.call(req).await?,
            }
            .map_into_left_body())
        }
    }
}

/// The request id and try of a call forwarded by another node of this cluster.
fn forwarded_call(req: &ServiceRequest) -> Option<replay::Forwarded> {
    let st = req.app_data::<web::Data<AppState>>()?;
    st.cluster.get()?;
    let h = req.headers();
    if !from_node(req.head(), st) {
        return None;
    }
    let request_id = h.get(replay::REQUEST_ID_HEADER)?.to_str().ok()?;
    replay::valid_request_id(request_id).then(|| replay::Forwarded {
        request_id: request_id.to_string(),
        retry: h.contains_key(replay::RETRY_HEADER),
    })
}

/// The Origin check of the route the request is for (the dashboard's, or the
/// API's), as the leader would make it for a caller of its own port.
fn origin_refused(req: &ServiceRequest, st: &AppState) -> Option<HttpResponse> {
    if req.path() == "/ui" || req.path().starts_with("/ui/") {
        return super::ui::guard::same_site(req.request(), st)
            .err()
            .map(|e| e.error_response());
    }
    super::guards::check_origin(req.request(), &st.origins)
        .err()
        .map(|e| e.error_response())
}

/// The token check of the route the request is for: an agent's on `/mcp` (with
/// its admission slots, held until the answer starts), the operator's on
/// `/operator/…`; the dashboard's cookie is the leader's to check.
fn admit(
    req: &ServiceRequest,
    st: &AppState,
) -> Result<Option<super::admission::Permits>, ApiError> {
    let path = req.path();
    if path == "/mcp" {
        let agent = super::guards::agent(req.request(), st)?;
        return Ok(Some(st.admission.admit(&agent)?));
    }
    if path.starts_with("/operator/") {
        super::guards::operator(req.request(), st)?;
    }
    Ok(None)
}

/// The request's body, held so that it can be sent again: at most
/// `max_body_bytes`, within `body_read_timeout_secs` (as the handlers read it). A
/// refusal closes the connection without draining the rest (see `body::refuse`).
async fn read_body(req: &mut ServiceRequest, st: &AppState) -> Result<Bytes, HttpResponse> {
    let mut payload = req
        .extract::<web::Payload>()
        .await
        .map_err(|e| e.error_response())?;
    match super::body::read(&mut payload, st.max_body_bytes, st.body_read_timeout).await {
        Ok(body) => Ok(body),
        Err(e) => Err(super::body::refuse(&e, payload)),
    }
}

/// `refused`, given before the body was read: the connection closes after it,
/// the body unread (as the handlers refuse, see `body::refuse`).
async fn refuse_unread(req: &mut ServiceRequest, refused: HttpResponse) -> HttpResponse {
    match req.extract::<web::Payload>().await {
        Ok(payload) => super::body::refuse_with(refused, payload),
        Err(_) => refused,
    }
}

enum Forwarded {
    Answer(HttpResponse),
    /// With the request id it was sent with, if any (the try it may repeat).
    ServeHere(Bytes, Option<replay::Forwarded>),
}

/// What one try at the leader gave.
enum Try {
    Answer(HttpResponse),
    /// Nothing was run there: try again (after a pause, or at a new leader).
    Again(String),
    /// Sent, then lost: the outcome is unknown.
    Lost(String),
}

/// Where a request goes, as the shard map or the leader changes.
pub(super) struct Finder {
    dest: Dest,
    leaders: tokio::sync::watch::Receiver<Option<Leader>>,
    owners: tokio::sync::watch::Receiver<Arc<ShardMap>>,
}

impl Finder {
    pub(super) fn new(node: &Node, dest: Dest) -> Finder {
        Finder {
            dest,
            leaders: node.leader(),
            owners: node.shard_maps(),
        }
    }

    /// Whether this node serves the destination now.
    pub(super) fn here(&self, st: &AppState, node: &Node) -> bool {
        st.hub.serves()
            && match self.dest {
                Dest::Leader | Dest::Any => true,
                Dest::Shard(shard) => node.serves_shard(shard),
            }
    }

    /// The other node serving the destination, as last seen.
    pub(super) fn there(&mut self, node: &Node) -> Option<Leader> {
        let found = match self.dest {
            Dest::Leader => self.leaders.borrow_and_update().clone(),
            Dest::Shard(shard) => self.owners.borrow_and_update().owner(shard).cloned(),
            // Any other node serving (this one does not, or it would be here).
            Dest::Any => self
                .owners
                .borrow_and_update()
                .nodes()
                .iter()
                .find(|l| l.node_id != node.id())
                .cloned(),
        };
        found.filter(|l| l.node_id != node.id())
    }

    /// Until what [`Finder::there`] sees may have changed.
    pub(super) async fn changed(&mut self) {
        let _ = match self.dest {
            Dest::Leader => self.leaders.changed().await,
            Dest::Shard(_) | Dest::Any => self.owners.changed().await,
        };
    }

    /// Why nothing was found.
    fn missing(&self) -> String {
        match self.dest {
            Dest::Leader => "no node holds every shard".into(),
            Dest::Shard(shard) => format!("no node holds shard {}", shard.0),
            Dest::Any => "no node serves".into(),
        }
    }

    pub(super) fn dest(&self) -> Dest {
        self.dest
    }
}

async fn relay(
    req: &ServiceRequest,
    st: &AppState,
    node: &Arc<Node>,
    body: Bytes,
    dest: Dest,
) -> Forwarded {
    let deadline = Instant::now() + forward_wait(node);
    let mut finder = Finder::new(node, dest);
    let mut why = finder.missing();
    // Every MCP request is named, the same on every try: the serving node logs
    // the calls of the tools it logs (and only those), and a call done by an
    // earlier try is answered from the log. Whether a lost request may be sent
    // again is decided only once one is lost (it reads the body).
    let request_id =
        (req.method() == actix_web::http::Method::POST && req.path() == "/mcp").then(request_id);
    let mut tries = 0u32;
    loop {
        if finder.here(st, node) {
            // A try sent to the node serving before may have been done there
            // (none was sent: nothing to log, as for any call served here).
            let tried =
                request_id
                    .clone()
                    .filter(|_| tries > 0)
                    .map(|request_id| replay::Forwarded {
                        request_id,
                        retry: true,
                    });
            return Forwarded::ServeHere(body, tried);
        }
        if let Some(leader) = finder.there(node) {
            let started = Instant::now();
            let ids = request_id.as_deref().map(|id| (id, tries > 0));
            tries += 1;
            match send(req, st, node, &leader, body.clone(), ids, finder.dest()).await {
                Try::Answer(resp) => {
                    crate::metrics::get().forwarded(started.elapsed());
                    return Forwarded::Answer(resp);
                }
                Try::Again(w) => {
                    crate::metrics::get().forward_retried();
                    why = format!("node {} {w}", leader.node_id);
                }
                Try::Lost(w) if repeat(req, &body) != Repeat::Never => {
                    crate::metrics::get().forward_retried();
                    why = format!("node {} was lost ({w})", leader.node_id);
                }
                Try::Lost(w) => {
                    crate::metrics::get().forward_lost();
                    tracing::warn!(leader = %leader.node_id, error = %w, path = req.path(), "forwarded call lost; its outcome is unknown");
                    return Forwarded::Answer(lost(&leader, &w));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Forwarded::Answer(ApiError::standby(&why).error_response());
        }
        // A new leader, or a pause before trying the same one again.
        let _ = tokio::time::timeout(left.min(RETRY_PAUSE), finder.changed()).await;
    }
}

/// Spread placement: a step of the count of `sender`'s message against the budget
/// of task `task`, at the node serving it (`POST /internal/count`, see
/// `actors::hub::remote`). A refusal comes back as the tool error it is.
pub(crate) async fn count_at_owner(
    st: web::Data<AppState>,
    task: String,
    sender: crate::domain::AgentId,
    step: crate::actors::task::commands::CountStep,
) -> Result<(), crate::actors::HubError> {
    let body = super::internal::CountBody {
        task_id: task.clone(),
        sender: sender.to_string(),
        step,
    };
    let shard = crate::domain::shard::shard_of(&task);
    post_at_owner(&st, shard, "/internal/count", &body, "a message count")
        .await
        .map(|_| ())
}

/// Spread placement: POST `body` to `path` at the node serving `shard`, as this
/// node (its proof), waiting for one up to [`forward_wait`]; its JSON answer. A
/// refusal (409) comes back as the tool error it is; a node that does not serve
/// the shard (the standby 503) or cannot be reached is asked again once the map
/// changes. `what` names the call in errors.
pub(crate) async fn post_at_owner(
    st: &AppState,
    shard: crate::domain::shard::ShardId,
    path: &str,
    body: &impl serde::Serialize,
    what: &str,
) -> Result<serde_json::Value, crate::actors::HubError> {
    use crate::actors::HubError;
    use crate::store::StoreError;
    let Some(node) = st.cluster.get().cloned() else {
        return Err(HubError::NotOwner(format!("shard {}", shard.0)));
    };
    let bytes = Bytes::from(
        serde_json::to_vec(body)
            .map_err(|e| HubError::Store(StoreError::Refusing(format!("{what}: {e}"))))?,
    );
    let deadline = Instant::now() + forward_wait(&node);
    let mut finder = Finder::new(&node, Dest::Shard(shard));
    let mut why = finder.missing();
    loop {
        if let Some(owner) = finder.there(&node) {
            let url = format!("{}{path}", owner.url.trim_end_matches("/mcp"));
            let out = CLIENT
                .with(|c| c.post(url))
                .timeout(Duration::from_secs(30));
            let out = st.mark(out, (node.id(), &owner.node_id), None, false, Some(&bytes));
            match out
                .content_type("application/json")
                .send_body(bytes.clone())
                .await
            {
                Ok(mut resp) => {
                    let status = resp.status();
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        && resp.headers().contains_key(STANDBY_HEADER)
                    {
                        why = format!("node {} does not serve it", owner.node_id);
                    } else {
                        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
                        if status.is_success() {
                            return Ok(answer);
                        }
                        if let Some(refused) = super::internal::refusal(status, &answer) {
                            return Err(refused);
                        }
                        return Err(HubError::Store(StoreError::Refusing(format!(
                            "node {} answered {status} to {what}",
                            owner.node_id
                        ))));
                    }
                }
                // Not connected: nothing was sent.
                Err(awc::error::SendRequestError::Connect(e)) => {
                    why = format!("node {} could not be reached ({e})", owner.node_id);
                }
                // Sent, then lost: it may have been done (a leaked count tightens
                // the budget; it never lets it be exceeded).
                Err(e) => {
                    return Err(HubError::Store(StoreError::Refusing(format!(
                        "node {} was lost during {what} ({e})",
                        owner.node_id
                    ))))
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HubError::Store(StoreError::Refusing(why)));
        }
        let _ = tokio::time::timeout(left.min(RETRY_PAUSE), finder.changed()).await;
    }
}

/// Why a call sent to another node has no answer.
#[derive(Debug)]
pub(crate) enum Lost {
    /// Nothing was sent (no node serves it now, or none could be reached).
    Unsent(String),
    /// Sent, then lost: it may have been done.
    Unknown(String),
}

/// Spread placement: one JSON-RPC request `item` of a 2025-03-26 batch `req`
/// (served here), whose home is in `shard`, sent alone to the node serving it on
/// the client's session and token, with request id and retry mark `logged` when
/// the batch came with them (the owner logs its answer); its response (one
/// JSON-RPC message, from a JSON or an SSE answer).
pub(crate) async fn call_at_owner(
    st: &AppState,
    req: &HttpRequest,
    shard: crate::domain::shard::ShardId,
    item: &str,
    logged: Option<(String, bool)>,
) -> Result<String, Lost> {
    let Some(node) = st.cluster.get().cloned() else {
        return Err(Lost::Unsent("not a cluster node".into()));
    };
    let Some(owner) = Finder::new(&node, Dest::Shard(shard)).there(&node) else {
        return Err(Lost::Unsent(format!(
            "no node serves shard {} now",
            shard.0
        )));
    };
    let url = format!("{}/mcp", owner.url.trim_end_matches("/mcp"));
    let mut out = CLIENT
        .with(|c| c.post(url))
        .timeout(st.forward_timeout())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::ACCEPT, "application/json, text/event-stream"));
    for name in [
        header::AUTHORIZATION.as_str(),
        "mcp-session-id",
        "mcp-protocol-version",
    ] {
        if let Some(v) = req.headers().get(name) {
            out = out.insert_header((name, v.clone()));
        }
    }
    let (id, retry) = logged.map_or((None, false), |(id, r)| (Some(id), r));
    let out = st.mark(out, (node.id(), &owner.node_id), id.as_deref(), retry, None);
    let mut resp = match out.send_body(item.to_string()).await {
        Ok(r) => r,
        Err(awc::error::SendRequestError::Connect(e)) => {
            return Err(Lost::Unsent(format!(
                "node {} could not be reached ({e})",
                owner.node_id
            )))
        }
        Err(e) => return Err(Lost::Unknown(format!("node {}: {e}", owner.node_id))),
    };
    let sse = follow::is_event_stream(resp.headers());
    let body = resp
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| Lost::Unknown(format!("node {}: {e}", owner.node_id)))?;
    if !sse {
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    // The response is the stream's one event with data that is not a
    // notification.
    let answer = follow::events(&body)
        .filter_map(follow::event_json)
        .find(|v| v.get("method").is_none());
    answer.map(|v| v.to_string()).ok_or_else(|| {
        Lost::Unknown(format!(
            "node {}: a stream without its answer",
            owner.node_id
        ))
    })
}

/// Spread placement: an event without a message for agent `to`, pushed to its
/// streams at the node serving it (`POST /internal/push`).
pub(crate) async fn push_at_owner(
    st: web::Data<AppState>,
    to: crate::domain::AgentId,
    item: crate::domain::channel::Item,
) -> Result<(), crate::actors::HubError> {
    let shard = crate::domain::shard::shard_of(to.as_str());
    let body = super::internal::PushBody {
        agent: to.to_string(),
        item,
    };
    post_at_owner(&st, shard, "/internal/push", &body, "a push").await?;
    Ok(())
}

/// Spread placement: an operator's action from the dashboard on what another
/// node serves, done there (`POST /internal/act`); what it reports.
pub(crate) async fn act_at_owner(
    st: &AppState,
    act: &super::internal::Act,
) -> Result<serde_json::Value, crate::actors::HubError> {
    use super::internal::Act;
    use crate::domain::shard::shard_of;
    let Some(node) = st.cluster.get().cloned() else {
        return Err(crate::actors::HubError::NotOwner(
            "the action's shard".into(),
        ));
    };
    let shard = match act {
        Act::Approve { round_id, .. } | Act::Reject { round_id, .. } => {
            match route::task_of(&node, crate::store::reads::Owned::Round, round_id).await {
                Some(task) => shard_of(&task),
                None => shard_of(round_id),
            }
        }
        Act::Close { task_id } => shard_of(task_id),
        Act::Unlock { key } => shard_of(key),
        Act::Purge { agent, .. } => shard_of(agent),
    };
    post_at_owner(st, shard, "/internal/act", act, "an operator's action").await
}

/// Spread placement: the presence of agents `ids` from the nodes serving them
/// (`POST /internal/agents`), as the shard map has them; a node that does not
/// answer within 5 s leaves its agents out.
pub(crate) async fn statuses_at_owners(
    st: web::Data<AppState>,
    ids: Vec<String>,
) -> Result<Vec<crate::actors::hub::AgentStatus>, crate::actors::HubError> {
    let Some(node) = st.cluster.get().cloned() else {
        return Ok(Vec::new());
    };
    let map = node.shard_maps().borrow().clone();
    let mut by_node: std::collections::BTreeMap<String, (String, Vec<String>)> =
        std::collections::BTreeMap::new();
    for id in ids {
        if let Some(owner) = map.owner(crate::domain::shard::shard_of(&id)) {
            if owner.node_id != node.id() {
                by_node
                    .entry(owner.node_id.clone())
                    .or_insert_with(|| (owner.url.clone(), Vec::new()))
                    .1
                    .push(id);
            }
        }
    }
    let asks = by_node.into_iter().map(|(node_id, (url, ids))| {
        let url = format!("{}/internal/agents", url.trim_end_matches("/mcp"));
        let out = CLIENT.with(|c| c.post(url)).timeout(Duration::from_secs(5));
        let body = serde_json::to_vec(&super::internal::AgentsBody { ids }).unwrap_or_default();
        let out = st
            .mark(out, (node.id(), &node_id), None, false, Some(&body))
            .content_type("application/json");
        async move {
            let asked = out.send_body(body).await;
            match asked {
                Ok(mut r) if r.status().is_success() => r
                    .json::<Vec<crate::actors::hub::AgentStatus>>()
                    .limit(16 << 20)
                    .await
                    .unwrap_or_default(),
                _ => {
                    tracing::warn!(node = %node_id, "could not ask a node for its agents' presence");
                    Vec::new()
                }
            }
        }
    });
    Ok(futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// Spread placement: after this node changed the agents table, every other node
/// serving reads it at once (`POST /internal/follow`), as a standby reloads the
/// serving node: what a `hubctl` command changed is in force everywhere when it
/// returns. A node that does not answer within 5 s follows within a second
/// anyway (`follow_registry`). Returns the nodes that did.
pub(crate) async fn follow_everywhere(st: &AppState) -> Vec<String> {
    on_every_other_node(st, "/internal/follow", None).await
}

/// Spread placement: `hubctl reload` at one node reloads every other serving node
/// too (each from its own files, with the caller's token), as a standby reloads
/// the serving node, so that a rotated operator token or a changed agent is in
/// force everywhere when it returns. Not for a reload another node asked for.
/// Returns the nodes reloaded.
pub(crate) async fn reload_others(req: &HttpRequest, st: &AppState) -> Vec<String> {
    if from_node(req.head(), st) {
        return Vec::new();
    }
    let auth = req.headers().get(header::AUTHORIZATION).cloned();
    on_every_other_node(st, "/operator/reload", auth).await
}

/// POST `path` at every other live node (spread placement, as PostgreSQL has
/// them now: one that joined a moment ago too), marked as this node's; the
/// nodes that answered 2xx within 5 s (the others are logged as not having done
/// `what`).
async fn on_every_other_node(
    st: &AppState,
    path: &str,
    auth: Option<header::HeaderValue>,
) -> Vec<String> {
    ask_every_other_node(
        st,
        path,
        auth,
        Duration::from_secs(5),
        "followed a change of the agents",
    )
    .await
    .into_iter()
    .filter_map(|(id, answer)| answer.ok().map(|_| id))
    .collect()
}

/// Spread placement: every other live node prunes the tasks it serves (`hubctl
/// prune`, at the node serving the first shard): how many it pruned in all, and
/// the nodes that did not answer.
pub(crate) async fn prune_others(st: &AppState) -> (u64, Vec<String>) {
    let asked = ask_every_other_node(
        st,
        "/internal/prune",
        None,
        Duration::from_secs(300),
        "pruned its tasks",
    )
    .await;
    let mut pruned = 0;
    let mut failed = Vec::new();
    for (id, answer) in asked {
        match answer {
            Ok(v) => pruned += v["pruned"]["tasks"].as_u64().unwrap_or(0),
            Err(()) => failed.push(id),
        }
    }
    (pruned, failed)
}

/// POST `{}` to `path` at every other live node (spread placement), marked as
/// this node's: each node's JSON answer if it answered 2xx within `within`
/// (the others are logged as not having done `what`).
pub(crate) async fn ask_every_other_node(
    st: &AppState,
    path: &str,
    auth: Option<header::HeaderValue>,
    within: Duration,
    what: &'static str,
) -> Vec<(String, Result<serde_json::Value, ()>)> {
    let Some(node) = st.cluster.get() else {
        return Vec::new();
    };
    if node.placement() != Placement::Spread {
        return Vec::new();
    }
    let members = match node.members().await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the members: no other node {what}");
            return Vec::new();
        }
    };
    let asks = members
        .into_iter()
        .filter(|n| n.node_id != node.id())
        .map(|n| {
            let url = format!("{}{path}", n.url.trim_end_matches("/mcp"));
            let out = CLIENT.with(|c| c.post(url)).timeout(within);
            // An empty object, bound by the proof like every node-to-node body.
            let mut out = st
                .mark(out, (node.id(), &n.node_id), None, false, Some(b"{}"))
                .content_type("application/json");
            if let Some(a) = &auth {
                out = out.insert_header((header::AUTHORIZATION, a.clone()));
            }
            let id = n.node_id.clone();
            async move {
                let answer = match out.send_body("{}").await {
                    Ok(mut r) if r.status().is_success() => {
                        Ok(r.json().limit(1 << 20).await.unwrap_or_default())
                    }
                    Ok(r) => {
                        tracing::warn!(node = %id, status = %r.status(), "another node has not {what}");
                        Err(())
                    }
                    Err(e) => {
                        tracing::warn!(node = %id, error = %e, "another node has not {what}");
                        Err(())
                    }
                };
                (id, answer)
            }
        });
    futures_util::future::join_all(asks).await
}

/// On a cluster node that does not serve, and for a request no node forwarded:
/// `POST /operator/reload` at the serving node with the caller's token, its JSON
/// answer (or what went wrong); `None` elsewhere.
pub(crate) async fn reload_leader(req: &HttpRequest, st: &AppState) -> Option<serde_json::Value> {
    let node = st.cluster.get()?;
    if st.hub.serves() || from_node(req.head(), st) {
        return None;
    }
    let Some(leader) = node.forwards_to() else {
        return Some(serde_json::json!({"ok": false, "error": "no node serves now"}));
    };
    let url = format!("{}/operator/reload", leader.url.trim_end_matches("/mcp"));
    let out = CLIENT
        .with(|c| c.post(url))
        .timeout(Duration::from_secs(30));
    let mut out = st.mark(out, (node.id(), &leader.node_id), None, false, None);
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        out = out.insert_header((header::AUTHORIZATION, auth.clone()));
    }
    let answer = match out.send().await {
        Ok(mut resp) => resp
            .json::<serde_json::Value>()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    Some(answer.unwrap_or_else(|e| {
        serde_json::json!({"ok": false, "node": leader.node_id, "error": format!("not reloaded: {e}")})
    }))
}

/// Whether the node at `url` (its MCP URL) serves within `within`: its `/readyz`
/// answers 200 (asked every 100 ms). How a moved node's operator learns that the
/// move is done.
pub(crate) async fn ready_within(url: &str, within: Duration) -> bool {
    let ready = format!("{}/readyz", url.trim_end_matches("/mcp"));
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let asked = CLIENT.with(|c| c.get(&ready).timeout(Duration::from_secs(2)).send());
        if matches!(asked.await, Ok(r) if r.status().is_success()) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A bearer token the token index does not hold (not a missing header).
fn unknown_token(req: &ServiceRequest, st: &AppState) -> bool {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    matches!(
        st.tokens.current().authenticate(auth),
        Err(crate::auth::AuthError::InvalidToken)
    )
}

/// 403 for a request marked as another node's (`x-agent-hub-forwarded-by`)
/// whose proof does not check or is stale, in cluster mode: no client sends the
/// mark, so it is a node with another `cluster.key` or a clock off by more than
/// `node_auth::SKEW`, or a copy of an old call, whose calls would otherwise lose
/// their exactly-once answers and loop protection without a word.
fn unproven_marks(req: &ServiceRequest, st: &AppState) -> Option<HttpResponse> {
    use node_auth::Unproven;
    let why = match st.node_key.as_ref()?.check(req.head()) {
        Ok(_) | Err(Unproven::Unmarked) => return None,
        // Meant for another node: refused as a standby refuses, so that the
        // sender finds where to send it (nothing was done).
        Err(Unproven::Elsewhere) => {
            return Some(ApiError::standby("the call was meant for another node").error_response())
        }
        Err(why) => why,
    };
    static REFUSED: crate::log_limit::LogLimit = crate::log_limit::LogLimit::new(10_000);
    let from = req
        .headers()
        .get(FORWARDED_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    let (log, answer) = match why {
        Unproven::Stale => (
            "a call marked as forwarded by another node was stamped more than 60 s from this node's clock: are the nodes' clocks synchronized (NTP)? (one line per 10 s at most)",
            "Forbidden: x-agent-hub-node-stamp more than 60 s from this node's clock; the nodes of a cluster must keep their clocks synchronized",
        ),
        _ => (
            "a call marked as forwarded by another node failed its proof: is cluster.key the same on every node? (one line per 10 s at most)",
            "Forbidden: x-agent-hub-forwarded-by without a valid x-agent-hub-node-auth; the nodes of a cluster must share cluster.key",
        ),
    };
    if let Some(n) = REFUSED.hit() {
        tracing::error!(from, refused = n, "{log}");
    }
    Some(ApiError::rpc(StatusCode::FORBIDDEN, RpcError::server(answer)).error_response())
}

/// Whether `head` carries the marks of a node of this cluster, proven under the
/// cluster key for this call and stamped within `node_auth::SKEW` (see
/// [`node_auth`]); never on a single node.
pub(crate) fn from_node(head: &actix_web::dev::RequestHead, st: &AppState) -> bool {
    st.node_key.as_ref().is_some_and(|k| k.check(head).is_ok())
}

/// A new request id: a random prefix drawn once per process and a counter, so
/// that naming a request costs neither a system call nor a lock.
fn request_id() -> String {
    static PREFIX: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::domain::ids::random_hex(8));
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{n:016x}", *PREFIX)
}

/// Whether a request whose connection broke after it was sent may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// It may have written: its outcome is unknown (502).
    Never,
    /// Running it again does no harm: a GET, or MCP messages that only read (as
    /// admission counts them) or call tools whose second run repeats the first
    /// (`replay::REPEATABLE_TOOLS`).
    Harmless,
    /// MCP messages that read or call tools whose answers are logged
    /// (`mcp::replay`): sent again with its request id, a call already done is
    /// answered from the log.
    Logged,
}

fn repeat(req: &ServiceRequest, body: &[u8]) -> Repeat {
    use actix_web::http::Method;
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return Repeat::Harmless;
    }
    if req.method() != Method::POST || req.path() != "/mcp" {
        return Repeat::Never;
    }
    let one = |m: &serde_json::Value| {
        let method = m.get("method").and_then(serde_json::Value::as_str);
        let params = m.get("params");
        match method {
            Some(method) if super::admission::read_only(method, params) => Repeat::Harmless,
            Some("tools/call") => {
                let tool = params
                    .and_then(|p| p.get("name"))
                    .and_then(serde_json::Value::as_str);
                match tool {
                    Some(t) if replay::LOGGED_TOOLS.contains(&t) => Repeat::Logged,
                    Some(t) if replay::REPEATABLE_TOOLS.contains(&t) => Repeat::Harmless,
                    _ => Repeat::Never,
                }
            }
            _ => Repeat::Never,
        }
    };
    let all = |items: &[serde_json::Value]| {
        items
            .iter()
            .map(one)
            .try_fold(Repeat::Harmless, |acc, r| match (acc, r) {
                (_, Repeat::Never) => None,
                (Repeat::Logged, _) | (_, Repeat::Logged) => Some(Repeat::Logged),
                _ => Some(Repeat::Harmless),
            })
    };
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) if !items.is_empty() => {
            all(&items).unwrap_or(Repeat::Never)
        }
        Ok(serde_json::Value::Array(_)) | Err(_) => Repeat::Never,
        Ok(one) => all(std::slice::from_ref(&one)).unwrap_or(Repeat::Never),
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never relayed; those the client
/// library sets itself; `Expect` (this node answered `100 Continue` already); and
/// `Origin` (judged here, see [`origin_refused`]).
fn relayed(name: &header::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "expect"
            | "origin"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
        // Set by a node itself and proven (see `node_auth`), never taken from a
        // client.
        && !node_auth::is_mark(name.as_str())
}

thread_local! {
    /// One client (and connection pool) per HTTP worker thread: `awc::Client` is
    /// not `Send`. Its pool drops connections the leader closed before reusing one,
    /// and keeps idle ones less long than the leader does (actix's 5 s), so that
    /// none is reused just as the leader closes it. No limit on connections: each
    /// is a client's own connection here (at most `max_connections`), and a
    /// call waiting for a pooled connection would fail as if lost.
    static CLIENT: awc::Client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .limit(0)
                .conn_keep_alive(Duration::from_secs(3)),
        )
        .disable_redirects()
        .no_default_headers()
        .finish();
}

/// The client's headers a forwarded request carries: all but the hop-by-hop
/// ones (those [`relayed`] leaves out, and those the client named in
/// `Connection`).
fn relayed_headers(req: &ServiceRequest) -> Vec<(header::HeaderName, header::HeaderValue)> {
    let hop: Vec<String> = req
        .headers()
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    req.headers()
        .iter()
        .filter(|(n, _)| relayed(n) && !hop.iter().any(|h| h == n.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

async fn send(
    req: &ServiceRequest,
    st: &AppState,
    node: &Arc<Node>,
    leader: &Leader,
    body: Bytes,
    request_id: Option<(&str, bool)>,
    dest: Dest,
) -> Try {
    // A prune of months of history answers when it is done (hubctl waits an
    // hour), at the node serving shard 0 (spread placement).
    let answer_wait = match req.path() {
        "/operator/prune" => Duration::from_secs(3600),
        _ => st.forward_timeout(),
    };
    let base = leader.url.trim_end_matches("/mcp");
    let target = format!(
        "{base}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = CLIENT
        .with(|c| c.request(req.method().clone(), target))
        .timeout(answer_wait);
    for (name, value) in relayed_headers(req) {
        out = out.append_header((name, value));
    }
    let (id, retry) = request_id.map_or((None, false), |(id, r)| (Some(id), r));
    let out = st.mark(out, (node.id(), &leader.node_id), id, retry, None);
    let kept = body.clone();
    let resp = match out.send_body(body).await {
        Ok(resp) => resp,
        // Not connected: nothing was sent.
        Err(awc::error::SendRequestError::Connect(
            e @ (ConnectError::Io(_)
            | ConnectError::Timeout
            | ConnectError::Resolver(_)
            | ConnectError::NoRecords
            | ConnectError::Unresolved),
        )) => return Try::Again(format!("could not be reached ({e})")),
        // `Disconnected` included: awc reports so a connection closed after the
        // request was written, before any answer (the leader killed mid-call).
        Err(e) => return Try::Lost(e.to_string()),
    };
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && resp.headers().contains_key(STANDBY_HEADER)
    {
        return Try::Again("stands by".into());
    }
    let mut answer = HttpResponse::build(resp.status());
    for (name, value) in resp.headers().iter().filter(|(n, _)| relayed(n)) {
        answer.append_header((name.clone(), value.clone()));
    }
    // A known length is passed on (clients read it).
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // A session's GET stream, a listen stream, and a POST's streamed answer (a
    // call that waits) that may be sent again, go on at the next serving node
    // when this one's ends (see `follow`).
    let st = req.app_data::<web::Data<AppState>>().cloned();
    let until = if resp.status() != StatusCode::OK || !follow::is_event_stream(resp.headers()) {
        None
    } else if req.method() == actix_web::http::Method::GET && req.path() == "/mcp" {
        Some(follow::Until::Closed)
    } else if req.method() == actix_web::http::Method::POST
        && req.path() == "/mcp"
        && follow::is_listen(&kept)
    {
        Some(follow::Until::Listening)
    } else if req.method() == actix_web::http::Method::POST
        && req.path() == "/mcp"
        && repeat(req, &kept) != Repeat::Never
    {
        Some(follow::Until::Answered)
    } else {
        None
    };
    if let (Some(until), Some(st)) = (until, st) {
        // Three keep-alive periods without a byte: the node is gone.
        let silent_after = (st.sse_keepalive * 3).max(Duration::from_secs(5));
        let again = (kept, request_id.map(|(id, _)| id));
        let reopen = follow::Reopen::new(req, again, st, node.clone(), until, dest);
        let stream = follow::following(Box::pin(resp), reopen, silent_after);
        return Try::Answer(answer.streaming(stream));
    }
    // Streamed either way, never held here: a client that reads nothing stalls
    // the leader's side of the relay, where its answer bytes count against its
    // `max_answer_bytes_in_flight_per_agent`.
    Try::Answer(match length {
        // No body (202, 204, …): none, and no content type made up for it.
        Some(0) => answer.finish(),
        Some(n) => answer.no_chunking(n as u64).streaming(resp),
        None => answer.streaming(resp),
    })
}

/// 502: the leader was lost with the call (its outcome unknown).
fn lost(leader: &Leader, why: &str) -> HttpResponse {
    ApiError::rpc(
        StatusCode::BAD_GATEWAY,
        RpcError::server(format!(
            "Bad Gateway: node {} was lost while answering this call ({why}); it may or may not have been done",
            leader.node_id
        )),
    )
    .error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_does_no_harm_twice_is_sent_again_after_a_lost_connection() {
        use actix_web::test::TestRequest;
        let post = TestRequest::post().uri("/mcp").to_srv_request();
        let call = |tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
            )
        };
        let r = |req: &ServiceRequest, body: &[u8]| repeat(req, body);
        assert_eq!(r(&post, call("hub_status").as_bytes()), Repeat::Harmless);
        assert_eq!(r(&post, call("message_send").as_bytes()), Repeat::Logged);
        // Refused without a write, wherever it runs.
        assert_eq!(r(&post, call("no_such_tool").as_bytes()), Repeat::Harmless);
        assert_eq!(
            r(&post, call("assignment_claim").as_bytes()),
            Repeat::Logged
        );
        assert_eq!(
            r(&post, br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Repeat::Harmless
        );
        let batch = format!("[{},{}]", call("hub_status"), call("assignment_claim"));
        assert_eq!(r(&post, batch.as_bytes()), Repeat::Logged);
        let batch = format!("[{},{}]", call("assignment_claim"), call("no_such_tool"));
        assert_eq!(r(&post, batch.as_bytes()), Repeat::Logged);
        for tool in [
            "lock_acquire",
            "message_ack",
            "agent_heartbeat",
            "agent_register",
        ] {
            assert_eq!(r(&post, call(tool).as_bytes()), Repeat::Harmless, "{tool}");
        }
        let batch = format!("[{},{}]", call("lock_acquire"), call("assignment_claim"));
        assert_eq!(r(&post, batch.as_bytes()), Repeat::Logged);
        assert_eq!(r(&post, b"[]"), Repeat::Never);
        assert_eq!(r(&post, b"{not json"), Repeat::Never);
        let get = TestRequest::get().uri("/operator/tasks").to_srv_request();
        assert_eq!(r(&get, b""), Repeat::Harmless);
        let approve = TestRequest::post()
            .uri("/operator/rounds/r/approve")
            .to_srv_request();
        assert_eq!(r(&approve, b""), Repeat::Never);
        let delete = TestRequest::delete().uri("/mcp").to_srv_request();
        assert_eq!(r(&delete, b""), Repeat::Never);
    }

    #[test]
    fn request_ids_are_valid_and_distinct() {
        let (a, b) = (request_id(), request_id());
        assert!(replay::valid_request_id(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn node_paths_stay_and_hop_headers_go() {
        assert!(answered_here("/readyz"));
        assert!(answered_here("/operator/cluster"));
        // Moves are the serving node's to make.
        assert!(!answered_here("/operator/cluster/move"));
        assert!(!answered_here("/mcp"));
        assert!(!answered_here("/operator/tasks"));
        assert!(
            answered_here("/internal/count"),
            "never relayed, never signed by a relay"
        );
        assert!(!relayed(&header::CONNECTION));
        assert!(!relayed(&header::HOST));
        assert!(relayed(&header::AUTHORIZATION));
        assert!(relayed(&header::HeaderName::from_static("mcp-session-id")));
    }
}
