//! Node-to-node calls (cluster mode, spread placement): what one node's hub asks
//! of the node serving another shard, proven with the cluster key
//! (`gateway::node_auth`); anything else gets 403.
//!
//! `POST /internal/follow`: read the agents table now (another node changed it:
//! `hubctl reload`, `hubctl agent …`), so that the change is in force on every
//! node when the command returns. 200 once read.
//!
//! `POST /internal/act` `{"action": "approve"|"reject"|"close"|"unlock"|"purge",
//! …}`: an operator's action from the dashboard (served by one node) on what
//! this node serves. 200 `{"ok": true, "n": …}`, a refusal 409 as for a count.
//!
//! `POST /internal/agents` `{"ids": [...]}`: the presence of those of the agents
//! served here (`hubctl agents` and the dashboard asked at another node).
//!
//! `POST /internal/prune` `{}`: prune the tasks served here by the `retention:`
//! policy (`hubctl prune` at the node serving the first shard). 200 `{"ok":
//! true, "pruned": …}`.
//!
//! `POST /internal/push` `{"agent", "item"}`: an event without a message (a lock
//! granted after a wait, a round approved, a review, a lease about to lapse) for
//! an agent served here, pushed to its streams. 200; the standby 503 if this node
//! does not serve it (the asking node finds its owner again).
//!
//! `POST /internal/hub` `{}`: this node's own state as `GET /operator/hub` shows
//! it (the node asked adds every node's up).
//!
//! `GET /internal/events?since_ms=N`: this node's own events published at N (ms)
//! or later, then live, as SSE (the proof binds `{}` as its body): what another
//! node relays to its watchers.
//!
//! `POST /internal/count` `{"task_id", "sender", "step"}`: a step of the count of
//! a message against the budget of a task served here (see
//! `actors::hub::remote`). 200 `{"ok": true}`; a refusal 409 with the tool
//! error's `error` and `message`; a task this node does not serve the standby
//! 503 (the asking node finds its owner again).

use super::error::ApiError;
use super::gateway::node_auth::Unproven;
use super::state::AppState;
use crate::actors::task::commands::CountStep;
use crate::actors::HubError;
use crate::domain::AgentId;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/internal/count", web::post().to(count))
        .route("/internal/follow", web::post().to(follow))
        .route("/internal/agents", web::post().to(agents))
        .route("/internal/act", web::post().to(act))
        .route("/internal/prune", web::post().to(prune))
        .route("/internal/events", web::get().to(events))
        .route("/internal/hub", web::post().to(hub_state))
        .route("/internal/push", web::post().to(push));
}

/// An operator's action from the dashboard (`POST /internal/act`), done at the
/// node serving what it acts on.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Act {
    Approve { round_id: String, note: String },
    Reject { round_id: String, note: String },
    Close { task_id: String },
    Unlock { key: String },
    Purge { agent: String, from: Option<String> },
}

impl Act {
    /// Done by `hub`; how many deliveries a purge removed (0 otherwise).
    pub(crate) async fn run(&self, hub: &crate::actors::Hub) -> Result<u64, HubError> {
        match self {
            Act::Approve { round_id, note } => hub.approve(round_id, note.clone()).await.map(|_| 0),
            Act::Reject { round_id, note } => hub.reject(round_id, note.clone()).await.map(|_| 0),
            Act::Close { task_id } => hub.close(task_id).await.map(|_| 0),
            Act::Unlock { key } => hub.lock_force_release(key).await.map(|_| 0),
            Act::Purge { agent, from } => {
                hub.purge_messages(&AgentId::new(agent), from.clone(), chrono::Utc::now())
                    .await
            }
        }
    }
}

/// The dashboard's action `act`, done here if this node serves what it acts on,
/// else at the node that does: how many deliveries a purge removed.
pub(crate) async fn act_anywhere(
    st: &AppState,
    hub: &crate::actors::Hub,
    act: &Act,
) -> Result<u64, ApiError> {
    match act.run(hub).await {
        Err(HubError::NotOwner(_)) => match super::gateway::act_at_owner(st, act).await {
            Ok(answer) => Ok(answer
                .get("n")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)),
            Err(e) => Err(ApiError::from_hub(hub, e).await),
        },
        other => super::error::settle(hub, other).await,
    }
}

async fn act(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (body, hub): (Act, _) = proven(&req, &st, &body).await?;
    let done = body.run(&hub).await;
    answer(&hub, done.map(|n| json!({"ok": true, "n": n}))).await
}

/// 200 with `done`'s value; a refusal 409 with the tool error as the asking
/// node's caller will see it (read back by [`refusal`]); a failure as the
/// operator API answers it.
async fn answer(
    hub: &crate::actors::Hub,
    done: Result<serde_json::Value, HubError>,
) -> Result<HttpResponse, ApiError> {
    match done {
        Ok(v) => Ok(HttpResponse::Ok().json(v)),
        Err(HubError::Domain(d)) => {
            let mut refused = d.details();
            refused.insert("ok".into(), false.into());
            refused.insert("error".into(), d.code().as_str().into());
            refused.insert("message".into(), d.to_string().into());
            Ok(HttpResponse::Conflict().json(refused))
        }
        Err(e) => Err(ApiError::from_hub(hub, e).await),
    }
}

/// The body of `POST /internal/agents`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct AgentsBody {
    pub ids: Vec<String>,
}

/// The presence of the agents of `ids` served here (`hubctl agents` asked at
/// another node); the others are left out.
async fn agents(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (body, hub): (AgentsBody, _) = proven(&req, &st, &body).await?;
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for id in body.ids.iter().take(1000) {
        match hub.agent_status(id, now).await {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(e) => return Err(ApiError::from_hub(&hub, e).await),
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `body` decoded, if the request is another node's: proven with the cluster
/// key for this path, stamped within `node_auth::SKEW`, binding `body`, and not
/// a copy of a call taken before (403 otherwise; 503 while too many were taken
/// to remember one more).
fn from_a_node<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    st: &AppState,
    body: &[u8],
) -> Result<T, ApiError> {
    use crate::mcp::jsonrpc::RpcError;
    let refused = |why: &str| {
        ApiError::rpc(
            StatusCode::FORBIDDEN,
            RpcError::server(format!(
                "Forbidden: /internal/ is for the nodes of the cluster (x-agent-hub-node-auth): {why}"
            )),
        )
    };
    let key = st
        .node_key
        .as_ref()
        .ok_or_else(|| refused("this server is not a cluster node"))?;
    let proven = key.check(req.head()).map_err(|why| {
        refused(match why {
            Unproven::Unmarked | Unproven::Forged => "no valid proof",
            Unproven::Stale => "stamped more than 60 s from this node's clock",
            Unproven::Elsewhere => "meant for another node",
        })
    })?;
    if !proven.binds(body) {
        return Err(refused("the proof does not bind this body"));
    }
    match key.first_use(&proven) {
        Some(true) => {}
        Some(false) => return Err(refused("a copy of a call already taken")),
        None => {
            return Err(ApiError::rpc(
                StatusCode::SERVICE_UNAVAILABLE,
                RpcError::server("Busy: too many node-to-node calls to remember; retry"),
            ))
        }
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::rpc(
            StatusCode::BAD_REQUEST,
            RpcError::server(format!("Bad request: {e}")),
        )
    })
}

/// [`from_a_node`], and this node's hub (the standby 503 if it serves nothing).
async fn proven<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    st: &AppState,
    body: &[u8],
) -> Result<(T, crate::actors::Hub), ApiError> {
    let body = from_a_node(req, st, body)?;
    Ok((body, st.hub.get().await?))
}

async fn follow(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let _: serde::de::IgnoredAny = from_a_node(&req, &st, &body)?;
    st.reloader.follow(false).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true})))
}

/// `hubctl prune` at the node serving the first shard: the tasks this node
/// serves, pruned now by the `retention:` policy.
async fn prune(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, hub): (serde::de::IgnoredAny, _) = proven(&req, &st, &body).await?;
    let pruned = super::error::settle(&hub, hub.prune(false, chrono::Utc::now()).await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "pruned": pruned})))
}

/// The body of `POST /internal/push`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PushBody {
    pub agent: String,
    pub item: crate::domain::channel::Item,
}

/// An event without a message for an agent served here, from the node where it
/// happened: pushed to its streams (200 whether or not it has any).
async fn push(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (body, hub): (PushBody, _) = proven(&req, &st, &body).await?;
    let pushed = hub.push_here(&AgentId::new(&body.agent), body.item);
    super::error::settle(&hub, pushed).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true})))
}

/// This node's own state (`hubctl hub` asked at another node adds it up).
async fn hub_state(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, hub): (serde::de::IgnoredAny, _) = proven(&req, &st, &body).await?;
    Ok(HttpResponse::Ok().json(super::hub_state::local(&st, &hub).await))
}

/// `?since_ms=`: where a relay starts.
#[derive(serde::Deserialize)]
struct EventsQuery {
    since_ms: Option<u64>,
}

/// This node's own events since `since_ms`, then live (spread placement: another
/// node relays them to its watchers, `gateway::relay_events`).
async fn events(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (_, hub): (serde::de::IgnoredAny, _) = proven(&req, &st, b"{}").await?;
    Ok(super::event_stream::local_response(
        hub.events(),
        q.since_ms.unwrap_or(0),
        st.sse_keepalive,
    ))
}

/// The body of `POST /internal/count`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CountBody {
    pub task_id: String,
    pub sender: String,
    pub step: CountStep,
}

async fn count(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (body, hub): (CountBody, _) = proven(&req, &st, &body).await?;
    let sender = AgentId::new(&body.sender);
    let done = hub.count_here(&body.task_id, &sender, body.step).await;
    answer(&hub, done.map(|()| json!({"ok": true}))).await
}

/// A refusal's answer as the asking node reads it back.
pub(crate) fn refusal(status: StatusCode, body: &serde_json::Value) -> Option<HubError> {
    if status != StatusCode::CONFLICT {
        return None;
    }
    let code = body.get("error").and_then(serde_json::Value::as_str)?;
    let code = crate::domain::ErrorCode::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == code)?;
    let message = body
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let limit = body
        .get("limit")
        .and_then(serde_json::Value::as_u64)
        .and_then(|l| u32::try_from(l).ok());
    let task_id = body.get("task_id").and_then(serde_json::Value::as_str);
    Some(
        match (code, task_id, limit) {
            (crate::domain::ErrorCode::MessageLimitReached, Some(task_id), Some(limit)) => {
                crate::domain::DomainError::MessageLimitReached {
                    task_id: task_id.to_string(),
                    limit,
                }
            }
            _ => crate::domain::DomainError::refused(code, message.to_string()),
        }
        .into(),
    )
}
