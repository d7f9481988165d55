//! Where a request is served (shared/spec/cluster.md §2, "Routing requests").
//! With standby placement, at the one node that serves. With spread placement, at
//! the owner of the request's home shard (`domain::route`): a tool call's (its
//! task, its lock key, or the caller), the caller's for every other MCP request
//! (its session, its streams, its inbox), and any serving node for the rest.
//!
//! A gateway finds a round's, an assignment's or a handoff's task in the stored
//! rows; ids never change task, so the answer is cached (bounded). Both the
//! gateway and the serving node decide with `domain::route::home`, and the
//! serving node refuses what it does not serve with the standby 503 (nothing
//! run), so a gateway routing by an old shard map only costs a retry.

use super::super::state::AppState;
use crate::domain::route::{home, Home};
use crate::domain::shard::{shard_of, ShardId};
use crate::store::pg::node::Node;
use crate::store::reads::Owned;
use actix_web::dev::ServiceRequest;
use dashmap::DashMap;
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// Where a request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// The node holding every shard (standby placement).
    Leader,
    /// The owner of a shard (spread placement).
    Shard(ShardId),
    /// Any node that serves (spread placement): operator and dashboard requests,
    /// and those refused the same wherever they run (no valid token).
    Any,
}

/// The destination of a request a spread node received, once its body is read.
pub(super) async fn dest_of(req: &ServiceRequest, st: &AppState, node: &Node, body: &[u8]) -> Dest {
    // The dashboard's login sessions live in one node's memory: it is served by
    // one node, the owner of the first shard (a task another node serves is read
    // from the store there).
    if req.path() == "/ui" || req.path().starts_with("/ui/") {
        return Dest::Shard(ShardId(0));
    }
    // A prune runs at the node serving the first shard, which prunes the
    // history spanning shards and asks the others for their tasks.
    if req.path() == "/operator/prune" {
        return Dest::Shard(ShardId(0));
    }
    if req.path() != "/mcp" {
        return match named_owner(req, body) {
            Some(Named::Owner(id)) => Dest::Shard(shard_of(&id)),
            Some(Named::Of(kind, id)) => match task_of(node, kind, &id).await {
                Some(task) => Dest::Shard(shard_of(&task)),
                None => Dest::Any,
            },
            None => Dest::Any,
        };
    }
    let Ok(agent) = crate::http::guards::agent(req.request(), st) else {
        return Dest::Any;
    };
    if req.method() == actix_web::http::Method::POST {
        if let Some(shard) = call_shard(node, body, agent.as_str()).await {
            return Dest::Shard(shard);
        }
    }
    Dest::Shard(shard_of(agent.as_str()))
}

/// What an operator or dashboard request acts on.
enum Named {
    /// A task, an agent or a lock key.
    Owner(String),
    /// The task of a round.
    Of(Owned, String),
}

/// The one task, round, agent or lock an operator or dashboard request names
/// (in its path, its query or its form), if any: it runs at that one's owner.
/// Lists and views of the whole hub name none.
fn named_owner(req: &ServiceRequest, body: &[u8]) -> Option<Named> {
    let path = req.path();
    let rest = path
        .strip_prefix("/operator/")
        .or_else(|| path.strip_prefix("/ui/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    // As actix decodes a path segment (no id may hold `+` or a space).
    let decoded = |s: &str| form_value(format!("v={s}").as_bytes(), "v");
    match parts.as_slice() {
        ["tasks", id, ..] => decoded(id).map(Named::Owner),
        ["rounds", id, ..] => decoded(id).map(|id| Named::Of(Owned::Round, id)),
        ["agents", id, ..] => decoded(id).map(Named::Owner),
        ["locks"] if req.method() == actix_web::http::Method::DELETE => {
            form_value(req.query_string().as_bytes(), "key").map(Named::Owner)
        }
        ["locks", "release"] => form_value(body, "key").map(Named::Owner),
        ["messages"] => form_value(req.query_string().as_bytes(), "agent").map(Named::Owner),
        ["messages", "purge"] => {
            let v: Value = serde_json::from_slice(body).ok()?;
            v.get("agent")
                .and_then(Value::as_str)
                .map(|a| Named::Owner(a.to_string()))
        }
        _ => None,
    }
}

/// A field of a URL-encoded query or form.
fn form_value(text: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(text)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// The home shard of a body holding one `tools/call` (a batch, another method, or
/// a body that does not parse: `None`, the caller's).
async fn call_shard(node: &Node, body: &[u8], agent: &str) -> Option<ShardId> {
    #[derive(serde::Deserialize)]
    struct Call {
        method: Option<String>,
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        name: Option<String>,
        arguments: Option<Map<String, Value>>,
    }
    let call: Call = serde_json::from_slice(body).ok()?;
    if call.method.as_deref() != Some("tools/call") {
        return None;
    }
    let params = call.params?;
    let name = params.name?;
    let args = params.arguments.unwrap_or_default();
    let owner = match home(&name, &args, agent) {
        Home::Agent(id) | Home::Task(id) | Home::Lock(id) => id.to_string(),
        Home::Round(id) => task_of(node, Owned::Round, id).await?,
        Home::Assignment(id) => task_of(node, Owned::Assignment, id).await?,
        Home::Handoff(id) => task_of(node, Owned::Handoff, id).await?,
    };
    Some(shard_of(&owner))
}

/// Resolved ids (kind letter and id → task id). Cleared when full: ids are many
/// over months, and a miss costs one indexed read.
static TASKS: LazyLock<DashMap<String, String>> = LazyLock::new(DashMap::new);
const MAX_CACHED: usize = 65_536;

/// The task of a round, assignment or handoff id, from the cache or the stored
/// rows; `None` for an id not stored (refused the same wherever it runs) or when
/// the database cannot say.
pub(super) async fn task_of(node: &Node, kind: Owned, id: &str) -> Option<String> {
    let key = format!(
        "{}{id}",
        match kind {
            Owned::Round => 'r',
            Owned::Assignment => 'a',
            Owned::Handoff => 'h',
        }
    );
    if let Some(task) = TASKS.get(&key) {
        return Some(task.clone());
    }
    let client = node.reads().get().await.ok()?;
    let task = crate::store::reads::postgres::activation::owner_of(&client, kind, id)
        .await
        .ok()??;
    if TASKS.len() >= MAX_CACHED {
        TASKS.clear();
    }
    TASKS.insert(key, task.clone());
    Some(task)
}
