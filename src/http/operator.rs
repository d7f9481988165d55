//! The operator API used by `hubctl` (JSON under `/operator/`). Only the operator
//! token is accepted; agent tokens get 403. hubctl never writes the database itself:
//! the actors own the state, and a write behind their back would be lost.

use super::error::{settle, ApiError};
use super::guards;
use super::operator_tasks::PageQuery;
use super::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/operator/agents").route(web::get().to(agents)))
        .route("/operator/prune", web::post().to(prune))
        .route("/operator/reload", web::post().to(reload))
        .route(
            "/operator/agents/{id}/capabilities",
            web::post().to(capabilities),
        )
        .route("/operator/agents/{id}/token", web::post().to(agent_token))
        .route("/operator/agents/{id}", web::delete().to(agent_remove))
        .route("/operator/vacuum", web::post().to(vacuum))
        .route("/operator/backup", web::post().to(backup))
        .route("/operator/hub", web::get().to(hub_state))
        .route("/operator/cluster", web::get().to(cluster))
        .route("/operator/cluster/move", web::post().to(cluster_move))
        .route("/operator/cluster/unpin", web::post().to(cluster_unpin))
        .route("/operator/events", web::get().to(events))
        .route("/operator/notify/test", web::post().to(notify_test))
        .configure(super::operator_tasks::configure);
}

/// `?dry_run=1`: count only.
#[derive(serde::Deserialize)]
struct PruneQuery {
    dry_run: Option<String>,
}

/// Apply the `retention:` policy now (`hubctl prune`).
async fn prune(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<PruneQuery>,
) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let dry_run = matches!(q.dry_run.as_deref(), Some("1" | "true" | "yes" | ""));
    let spread = !dry_run && hub.spread();
    if spread {
        // Spread placement: at the node serving the first shard (a gateway
        // sends it there), which prunes what spans shards.
        let here = hub.must_serve_shard(crate::domain::shard::ShardId(0));
        settle(&hub, here).await?;
    }
    let mut pruned = settle(&hub, hub.prune(dry_run, Utc::now()).await).await?;
    let mut answer = json!({"ok": true, "dry_run": dry_run});
    if spread {
        // Every other node prunes the tasks it serves.
        let (elsewhere, failed) = super::gateway::prune_others(&st).await;
        if let Some(t) = pruned.tasks.as_mut() {
            *t += elsewhere;
        }
        if !failed.is_empty() {
            answer["ok"] = false.into();
            answer["not_pruned_at"] = json!(failed);
        }
    }
    answer["pruned"] = json!(pruned);
    Ok(HttpResponse::Ok().json(answer))
}

/// The agents of agents.env with their registration and presence, a page at a time.
async fn agents(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let page = settle(&hub, hub.agent_page(q.request()?, Utc::now()).await).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"ok": true, "items": page.items, "next_cursor": page.next_cursor})))
}

/// The server's state (`hubctl hub`): version, uptime, address, database,
/// durability, sessions, streams, requests in flight, the writer's queue and health.
async fn hub_state(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let mut v = super::hub_state::whole(&st, &hub).await;
    v["ok"] = true.into();
    Ok(HttpResponse::Ok().json(v))
}

/// `shards` of a move or unpin body: `None` if absent; each must be a shard
/// number (0-1023), at least one, each once.
fn shards_named(
    body: &serde_json::Value,
) -> Result<Option<Vec<crate::domain::shard::ShardId>>, ApiError> {
    use crate::domain::shard::{ShardId, SHARD_COUNT};
    let Some(list) = body.get("shards") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid_argument(format!(
            "shards: a non-empty list of shard numbers from 0 to {}",
            SHARD_COUNT - 1
        ))
    };
    let list = list.as_array().filter(|l| !l.is_empty()).ok_or_else(bad)?;
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let n = v
            .as_u64()
            .filter(|n| *n < u64::from(SHARD_COUNT))
            .ok_or_else(bad)?;
        out.push(ShardId(n as u16));
    }
    out.sort();
    out.dedup();
    Ok(Some(out))
}

/// Why a move (or a pin) moved nothing, as the operator API answers it.
fn move_refused(e: crate::store::pg::node::MoveError) -> ApiError {
    use crate::store::pg::node::MoveError;
    match e {
        MoveError::NotServing(why) => ApiError::standby(&why),
        MoveError::NotLive { .. } => ApiError::Operator {
            status: actix_web::http::StatusCode::NOT_FOUND,
            code: crate::domain::ErrorCode::NotFound,
            message: e.to_string(),
        },
        // Busy: practically never (a node moving its shards forwards requests).
        MoveError::Busy
        | MoveError::Nothing
        | MoveError::Refused(_)
        | MoveError::Db(_)
        | MoveError::TimedOut => ApiError::unavailable(e.to_string()),
    }
}

/// Spread placement: give `shards` (every pinned shard if absent) back to
/// rendezvous hashing (`hubctl cluster unpin`); how many were pinned.
async fn cluster_unpin(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    guards::operator(&req, &st)?;
    let node = match st.cluster.get() {
        Some(n) if n.placement() == crate::store::pg::node::Placement::Spread => n,
        _ => {
            return Err(ApiError::invalid_argument(
                "shards are pinned with cluster_placement: spread only".into(),
            ))
        }
    };
    let shards = shards_named(&body)?;
    let n = node
        .unpin(shards.as_deref())
        .await
        .map_err(|e| ApiError::unavailable(format!("the cluster's tables: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "unpinned": n})))
}

/// Cluster mode's members and shard map (`hubctl cluster`), from the database:
/// answered by a standby too (which is where one asks who serves).
async fn cluster(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    guards::operator(&req, &st)?;
    let Some(node) = st.cluster.get() else {
        return Err(ApiError::invalid_argument(
            "this hub stores in SQLite: cluster mode needs --store postgres://… (docs/cluster.md)"
                .into(),
        ));
    };
    let view = node.describe().await.map_err(|e| {
        ApiError::unavailable(format!("the cluster's tables cannot be read now: {e}"))
    })?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "cluster": view})))
}

/// How long a move's answer waits for the new owner to serve (it loads the live
/// state first). The whole answer (up to 5 s of draining, the transfer's two
/// renewal periods, this wait) stays under a gateway's 40 s for its start.
const MOVED_SERVES_WITHIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Cluster mode: the serving node hands every shard to the live node `to`
/// (`hubctl cluster move --to NODE`, body `{"to": NODE}`), then answers once that
/// node serves (`serving: true`) or after 20 s (`serving: false`: it holds the
/// shards but has not loaded them yet). A standby forwards this to the serving
/// node. Moving to the node that serves already moves nothing.
async fn cluster_move(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    use crate::store::pg::node::HAND_OVER_WAIT;
    guards::check_origin(&req, &st.origins)?;
    guards::operator(&req, &st)?;
    let Some(node) = st.cluster.get() else {
        return Err(ApiError::invalid_argument(
            "this hub stores in SQLite: there is no shard to move (cluster mode needs --store postgres://…)"
                .into(),
        ));
    };
    let to = body
        .get("to")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid_argument("to: is required (a node id)".into()))?;
    let shards = shards_named(&body)?;
    if node.placement() == crate::store::pg::node::Placement::Spread {
        let Some(shards) = shards else {
            return Err(ApiError::invalid_argument(
                "with cluster_placement: spread name the shards to move (hubctl cluster move --shard N --to NODE); each goes back where rendezvous hashing puts it after hubctl cluster unpin".into(),
            ));
        };
        let started = std::time::Instant::now();
        let serving = node
            .pin_to(&shards, to, MOVED_SERVES_WITHIN)
            .await
            .map_err(move_refused)?;
        return Ok(HttpResponse::Ok().json(json!({
            "ok": true,
            "moved": true,
            "pinned": true,
            "to": to,
            "shards": shards.len(),
            "serving": serving,
            "took_ms": started.elapsed().as_millis() as u64,
        })));
    }
    if shards.is_some() {
        return Err(ApiError::invalid_argument(
            "with cluster_placement: standby every shard moves together: hubctl cluster move --to NODE without --shard".into(),
        ));
    }
    if to == node.id() && node.objection().is_none() {
        return Ok(HttpResponse::Ok().json(json!({
            "ok": true, "moved": false, "to": to, "shards": 0, "serving": true,
        })));
    }
    let started = std::time::Instant::now();
    // A task of its own: a client gone mid-move must not leave it halfway.
    let (moving, admission, target) = (node.clone(), st.admission.clone(), to.to_string());
    let moved = actix_rt::spawn(async move {
        moving
            .move_to(&target, admission.idle(HAND_OVER_WAIT))
            .await
    })
    .await
    .map_err(|_| ApiError::internal("the move's task ended early".into()))?;
    let (shards, owner) = moved.map_err(move_refused)?;
    let serving = super::gateway::ready_within(&owner.url, MOVED_SERVES_WITHIN).await;
    Ok(HttpResponse::Ok().json(json!({
        "ok": true,
        "moved": true,
        "from": node.id(),
        "to": owner.node_id,
        "shards": shards,
        "serving": serving,
        "took_ms": started.elapsed().as_millis() as u64,
    })))
}

/// `hubctl notify test`: one signed test delivery to every webhook, now; answers
/// each target's outcome (by scheme and host: a webhook URL may be a secret).
async fn notify_test(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    guards::operator_request(&req, &st).await?;
    let hooks = st.webhooks.clone();
    let outcomes = tokio::task::spawn_blocking(move || hooks.test_all())
        .await
        .map_err(|_| ApiError::internal("the webhook test did not finish".into()))?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "targets": outcomes})))
}

/// The operator event stream: SSE of committed audit events, resumable with
/// `Last-Event-ID`; a `resync` event when events were missed (see `events.rs`).
async fn events(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    Ok(super::event_stream::response(hub.events(), last, st.sse_keepalive, || true).await)
}

/// `{"path": "/abs/file.db"}`: where the backup goes (on the server's machine).
#[derive(serde::Deserialize)]
struct BackupBody {
    path: String,
}

/// A consistent copy of the database (`hubctl backup FILE`).
async fn backup(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<BackupBody>,
) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let path = std::path::PathBuf::from(&body.path);
    if !path.is_absolute() {
        return Err(ApiError::invalid_argument(format!(
            "path must be absolute, got {:?}",
            body.path
        )));
    }
    let bytes = settle(&hub, hub.backup(path).await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "path": body.path, "bytes": bytes})))
}

/// Give the file's free pages back to the file system (`hubctl vacuum`).
async fn vacuum(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let (before, after) = settle(&hub, hub.vacuum().await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "bytes_before": before, "bytes_after": after})))
}

/// Re-read agents.env and put it in force (`hubctl reload`, like SIGHUP): 400 with
/// `file:line: reason` for an invalid file, which changes nothing. On a standby,
/// `serving_node` is the serving node's own reload answer (null otherwise).
async fn reload(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    guards::operator(&req, &st)?;
    let r = st.reloader.reload().await?;
    // A cluster node standing by reloads the serving node too (from that node's
    // own files), so that `hubctl reload` against any node reaches it.
    let serving = super::gateway::reload_leader(&req, &st).await;
    // Spread placement: the other nodes reload at once.
    let others = super::gateway::reload_others(&req, &st).await;
    let mut answer = json!({"ok": true, "reloaded": r, "serving_node": serving});
    if !others.is_empty() {
        answer["other_nodes"] = json!(others);
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// Cluster mode: give an agent a new token by its hash (`hubctl agent rotate` of an
/// agent not in the local `agents.env`): `{"token_hash": "<32 hex>"}`.
async fn agent_token(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    guards::operator(&req, &st)?;
    let hash = body
        .get("token_hash")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ApiError::invalid_argument("token_hash: is required".into()))?;
    st.reloader
        .change_agent(id.as_str(), Some(hash.to_string()))
        .await?;
    super::gateway::follow_everywhere(&st).await;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "rotated": id.as_str()})))
}

/// Cluster mode: remove an agent from the agents table (`hubctl agent remove` of an
/// agent not in the local `agents.env`).
async fn agent_remove(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    guards::operator(&req, &st)?;
    st.reloader.change_agent(id.as_str(), None).await?;
    super::gateway::follow_everywhere(&st).await;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "removed": id.as_str()})))
}

/// Record an agent's capabilities (`hubctl agent add --capabilities`), as its own
/// `agent_register` would with its id as name.
async fn capabilities(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let hub = guards::operator_request(&req, &st).await?;
    let id = crate::domain::AgentId::new(id.as_str());
    // The same checks as agent_register's.
    let caps = crate::domain::agent::parse_capabilities(body.get("capabilities"))
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    let r = hub.register(&id, id.to_string(), caps, Utc::now()).await;
    let view = settle(&hub, r).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "agent": view})))
}
