//! JSON-RPC batches on `/mcp`, allowed on sessions negotiated at 2025-03-26: at
//! most `max_batch_items` messages, whose requests run concurrently (a batch of
//! long-polls costs the longest, not the sum); answers come in request order, none
//! for a request the client cancelled. With spread placement, a call whose home
//! another node serves is sent on to that node alone and answered in its place.

use super::admission;
use super::error::ApiError;
use super::guards::{self, Reply};
use super::mcp_route::{accepted, answer, notify, run};
use super::state::AppState;
use crate::actors::Hub;
use crate::domain::AgentId;
use crate::mcp::jsonrpc::{self, Id, Incoming, Response, RpcError};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::future::join_all;
use serde_json::value::RawValue;

/// Whether a request reads the inbox (`inbox_pull`, or `resources/read`).
fn is_inbox_read(method: &str, params: Option<&serde_json::Value>) -> bool {
    method == "resources/read"
        || (method == "tools/call"
            && params
                .and_then(|p| p.get("name"))
                .and_then(serde_json::Value::as_str)
                == Some("inbox_pull"))
}

/// Answer a batch: 400 -32600 for an empty one, one over `max_batch_items`, one
/// holding `initialize`, or on a session of a later protocol revision.
pub(super) async fn batch(
    req: &HttpRequest,
    st: &AppState,
    hub: &Hub,
    agent: AgentId,
    reply: Reply,
    items: Vec<&RawValue>,
) -> Result<HttpResponse, ApiError> {
    let refuse = |why: String| {
        Err(ApiError::bad_request(
            &Id::null(),
            RpcError::invalid_request(why),
        ))
    };
    if items.is_empty() {
        return refuse("empty batch".into());
    }
    // Decided on the count alone, before any item is decoded.
    if items.len() > st.max_batch_items {
        return refuse(format!(
            "a batch holds at most {} messages (max_batch_items); this one has {}",
            st.max_batch_items,
            items.len()
        ));
    }
    let raw = items.clone();
    let items: Vec<_> = items.into_iter().map(jsonrpc::classify).collect();
    let is_initialize = |m: &Result<Incoming, _>| match m {
        Ok(Incoming::Request { method, .. } | Incoming::Notification { method, .. }) => {
            method == "initialize"
        }
        _ => false,
    };
    if items.iter().any(is_initialize) {
        return refuse("initialize may not be part of a batch".into());
    }
    // Each inbox read builds up to max_pull_bytes of answer (the same oldest
    // messages each time): one per batch, or a batch could build gigabytes at once.
    let big_read = |m: &Result<Incoming, _>| match m {
        Ok(Incoming::Request { method, params, .. }) => is_inbox_read(method, params.as_ref()),
        _ => false,
    };
    if items.iter().filter(|m| big_read(m)).count() > 1 {
        return refuse(
            "a batch may hold at most one inbox_pull or inbox resources/read (each returns the same oldest messages)".into(),
        );
    }
    let writes = |m: &Result<Incoming, _>| match m {
        Ok(Incoming::Request { method, params, .. }) => {
            !admission::read_only(method, params.as_ref())
        }
        _ => false,
    };
    if items.iter().any(writes) {
        admission::mark_writes(req);
    }
    let session = guards::session(req, st, &agent)?;
    guards::protocol_version(req, &session)?;
    if !session.version.allows_batches() {
        return refuse(format!(
            "JSON-RPC batches are not allowed in protocol version {}",
            session.version.as_str()
        ));
    }
    let requests = items
        .iter()
        .filter(|m| !matches!(m, Ok(Incoming::Notification { .. } | Incoming::Response)))
        .count();
    let (agent, session, raw) = (&agent, &session, &raw);
    // join_all polls every item in this task and keeps the answers in request order.
    let answers = join_all(items.into_iter().enumerate().map(|(i, item)| async move {
        match item {
            Err((id, e)) => Some(jsonrpc::err(&id, &e)),
            // A cancelled request gets no entry (see `run`). A batch a gateway
            // sent with a request id logs each call under an id of its own,
            // derived from the batch's and its position (two calls may carry the
            // same JSON-RPC id), whether it runs here or at its node: a second
            // try finds it logged either way (`mcp::replay`).
            Ok(Incoming::Request { id, method, params }) => {
                use crate::mcp::replay::{Forwarded, FORWARDED};
                let logged = FORWARDED
                    .try_with(|f| Forwarded {
                        request_id: item_request_id(&f.request_id, i),
                        retry: f.retry,
                    })
                    .ok();
                let call = run(st, hub, agent, session, id, method, params);
                let answer = match logged.clone() {
                    Some(f) => FORWARDED.scope(f, call).await?,
                    None => call.await?,
                };
                if !answer.is_not_owner() {
                    return Some(answer);
                }
                // Refused before anything ran: done at its node, concurrently too.
                Some(elsewhere(req, st, hub, agent, (raw[i], logged), answer).await)
            }
            Ok(Incoming::Notification { method, params }) => {
                notify(session, &method, params.as_deref());
                None
            }
            Ok(Incoming::Response) => None,
        }
    }))
    .await;
    let out: Vec<Response> = answers.into_iter().flatten().collect();
    if out.is_empty() && requests > 0 {
        // Every request was cancelled: no responses, and JSON-RPC sends no empty array.
        Ok(super::sse::unanswered(Some(&session.id)))
    } else if out.is_empty() {
        Ok(accepted())
    } else {
        Ok(answer(reply, &out, Some(&session.id)))
    }
}

/// Spread placement: a call of a batch whose home another node serves (it was
/// refused here with `not_owner`, nothing done), sent on to that node alone, on
/// the same session: its answer. A call whose home cannot be found, or that
/// could not be sent, keeps its refusal (the client retries it).
async fn elsewhere(
    req: &HttpRequest,
    st: &AppState,
    hub: &Hub,
    agent: &AgentId,
    (item, logged): (&RawValue, Option<crate::mcp::replay::Forwarded>),
    refused: Response,
) -> Response {
    let Ok(Incoming::Request { id, params, .. }) = jsonrpc::classify(item) else {
        return refused;
    };
    let Some((name, args)) = params
        .as_ref()
        .and_then(|p| Some((p.get("name")?.as_str()?, p.get("arguments")?.as_object()?)))
    else {
        return refused;
    };
    let Ok(Some(home)) = hub.home_owner(name, args, agent).await else {
        return refused;
    };
    let shard = crate::domain::shard::shard_of(&home);
    // Sent with the call's own request id, if it has one: a second try is
    // answered from the owner's log instead of running again.
    let logged = logged.map(|f| (f.request_id, f.retry));
    let sent = super::gateway::call_at_owner(st, req, shard, item.get(), logged);
    match sent.await {
        Ok(text) => jsonrpc::relayed(&id, &text).unwrap_or(refused),
        Err(super::gateway::Lost::Unsent(why)) => {
            tracing::debug!(why, "a batch call for another node was not sent; its refusal stands");
            refused
        }
        Err(super::gateway::Lost::Unknown(why)) => jsonrpc::err(
            &id,
            &RpcError::server(format!(
                "the node serving {name} was lost during the call ({why}): it may have been done; check before calling again"
            )),
        ),
    }
}

/// The request id of the call at `index` of a batch sent with `request_id`: 128
/// bits of SHA-256 of both, in hex (a valid request id of its own).
fn item_request_id(request_id: &str, index: usize) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{request_id}/{index}").as_bytes());
    crate::domain::ids::hex(&digest[..16])
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_call_of_a_batch_gets_its_own_valid_request_id() {
        let id = "00112233445566778899aabbccddeeff";
        let (a, b) = (super::item_request_id(id, 0), super::item_request_id(id, 1));
        assert!(crate::mcp::replay::valid_request_id(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, super::item_request_id(id, 0), "the same on every try");
    }
}
