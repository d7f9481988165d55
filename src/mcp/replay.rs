//! Calls answered once across a failover (cluster mode, shared/spec/cluster.md §2
//! "Exactly-once across failover"). A gateway forwarding a call that writes names
//! it with a request id ([`REQUEST_ID_HEADER`]); the serving node stores the
//! call's answer in `request_log` in the same transaction as the call's writes
//! (`store::group`). If the serving node dies before the gateway has the answer,
//! the gateway sends the call again, marked [`RETRY_HEADER`], to whichever node
//! serves then, which answers with the stored answer if the call was done, and
//! runs it if it was not. Without this, a claim retried after its first run was
//! committed would answer `ASSIGNMENT_NOT_PENDING` to the agent that won it.
//!
//! Covered: the tools whose writes are made in the call's own task, after the
//! reads they depend on ([`LOGGED_TOOLS`]). The other writing tools are repeated
//! without a log ([`REPEATABLE_TOOLS`]: a second run does what the first did).
//!
//! A logged call runs in a task of its own: once it has opened its group of ops,
//! nothing may drop it halfway (a client hanging up, a cancellation), or the group
//! would close before the command's writes are queued, and they would be committed
//! without the answer.

use super::jsonrpc::{Id, RpcError};
use super::protocol::Version;
use super::session::Sessions;
use super::tools::{self, CallCtx};
use crate::domain::AgentId;
use crate::metrics::CallOutcome;
use crate::store::group;
use crate::store::op::LoggedReply;
use dashmap::DashMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};

/// A forwarded call's request id: the gateway's, 32 hex digits, the same on every
/// try of one request.
pub(crate) const REQUEST_ID_HEADER: &str = "x-agent-hub-request-id";

/// On a gateway's second and later tries of a request: look for its answer first.
pub(crate) const RETRY_HEADER: &str = "x-agent-hub-retry";

/// The tools whose call is logged: their writes are made in the call's task once
/// the reads they depend on are done (a send reads the sender's stored rows
/// first), so its writes and its answer fit in one group.
pub(crate) const LOGGED_TOOLS: &[&str] = &[
    "task_draft_create",
    "round_plan_submit",
    "assignment_claim",
    "assignment_progress",
    "assignment_complete",
    "review_submit",
    "lock_release",
    "message_send",
];

/// Tools that are not logged but that a gateway may still send again when their
/// request was lost with its node: a second run leaves the state of one run, and
/// its answer says the same but for details. `agent_register` and `agent_heartbeat` set what they set;
/// `lock_acquire`'s second try by the agent that got the lock renews it (same
/// fencing token, `renewed: true`); `message_ack` sets each `read_at` once (ids the
/// lost try acked are not listed in `acked` again).
pub(crate) const REPEATABLE_TOOLS: &[&str] = &[
    "agent_register",
    "agent_heartbeat",
    "lock_acquire",
    "message_ack",
];

/// A request a gateway forwarded with a request id, as the serving node received it.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    pub request_id: String,
    /// Not the first try: the call may have been done.
    pub retry: bool,
}

tokio::task_local! {
    /// Set by the gateway middleware of the serving node around a forwarded request.
    pub(crate) static FORWARDED: Forwarded;
}

/// A request id a gateway may send: 32 lowercase hex digits.
pub(crate) fn valid_request_id(id: &str) -> bool {
    crate::domain::ids::is_lower_hex(id, 32)
}

/// Where a call of tool `name` (JSON-RPC id `id`, by `agent`) is logged, if it is:
/// in a forwarded request, a tool of [`LOGGED_TOOLS`].
pub(crate) fn key(agent: &AgentId, id: &Id, name: &str) -> Option<(String, bool)> {
    if !LOGGED_TOOLS.contains(&name) {
        return None;
    }
    FORWARDED
        .try_with(|f| {
            let key = format!("{agent}/{}/{}", f.request_id, id.key());
            (key, f.retry)
        })
        .ok()
}

/// Calls being logged now, by key: a retry that arrives while the first try still
/// runs (its gateway gave up on the connection, the node did not) waits for it.
static RUNNING: LazyLock<DashMap<String, Arc<tokio::sync::Mutex<()>>>> =
    LazyLock::new(DashMap::new);

/// The turn of one try of a logged call; the next try of the same key waits for it.
struct Turn {
    key: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turn {
    async fn take(key: &str) -> Turn {
        let lock = RUNNING.entry(key.to_string()).or_default().clone();
        Turn {
            key: key.to_string(),
            held: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.held.take();
        // Nobody else holds or waits for it: forget it (the map holds the last Arc).
        RUNNING.remove_if(&self.key, |_, lock| Arc::strong_count(lock) == 1);
    }
}

/// Run a logged call of tool `index`: its stored answer if a try of it was done,
/// else the call, its answer stored with its writes.
pub(crate) async fn call(
    ctx: &CallCtx<'_>,
    sessions: Arc<Sessions>,
    (key, retry): (String, bool),
    version: Version,
    (index, name): (Option<usize>, String),
    args: Map<String, Value>,
) -> Result<(Box<RawValue>, Option<CallOutcome>), RpcError> {
    let (hub, agent, now) = (ctx.hub.clone(), ctx.agent.clone(), ctx.now);
    let run = async move {
        let _turn = Turn::take(&key).await;
        if retry {
            match hub.logged_reply(&key).await {
                Ok(Some(answer)) => {
                    crate::metrics::get().replayed();
                    return RawValue::from_string(answer)
                        .map(|a| (a, None))
                        .map_err(|e| {
                            RpcError::internal(format!("a logged answer is not JSON: {e}"))
                        });
                }
                Ok(None) => {}
                Err(e) => return Err(RpcError::store_unavailable(e)),
            }
        }
        let ctx = CallCtx {
            hub: &hub,
            sessions: &sessions,
            agent: &agent,
            now,
        };
        // The answer is kept in the shard of the call's home (held here), not
        // in its caller's, which another node may serve (spread placement).
        let owner = match hub.home_owner(&name, &args, &agent).await {
            Ok(Some(owner)) => owner,
            _ => agent.to_string(),
        };
        let (outcome, ended) = group::run(tools::call(&ctx, index, &name, args)).await;
        // The group is closed whatever happened (a protocol error logs nothing).
        let answered = outcome.map(|o| {
            let how = match &o {
                Ok(_) => CallOutcome::Ok,
                Err(d) => CallOutcome::Tool(d.code()),
            };
            (tools::render(o, version), how)
        });
        let logged = answered.as_ref().ok().map(|(answer, _)| LoggedReply {
            key,
            agent: agent.to_string(),
            owner,
            reply: answer.get().to_string(),
            at: crate::domain::time::iso(now),
        });
        let ended = hub.end_logged(ended, logged).await;
        let (answer, how) = answered?;
        ended.map_err(tools::rpc_error)?;
        Ok((answer, Some(how)))
    };
    // Its own task: see the module's comment.
    actix_rt::spawn(run)
        .await
        .map_err(|_| RpcError::internal("the call stopped before its answer"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_tools_are_tools_that_write() {
        for name in LOGGED_TOOLS {
            let i = tools::find(name).unwrap_or_else(|| panic!("{name} is no tool"));
            assert!(!tools::is_read_only(i), "{name} only reads");
        }
    }

    #[test]
    fn repeatable_tools_write_and_are_not_logged() {
        for name in REPEATABLE_TOOLS {
            let i = tools::find(name).unwrap_or_else(|| panic!("{name} is no tool"));
            assert!(!tools::is_read_only(i), "{name} only reads");
            assert!(!LOGGED_TOOLS.contains(name), "{name} is logged");
        }
    }

    /// A gateway sends every tool call again after losing its node: each writing
    /// tool is logged or does no harm twice.
    #[test]
    fn every_writing_tool_is_logged_or_repeatable() {
        for name in tools::names() {
            let i = tools::find(name).unwrap_or_else(|| panic!("{name}"));
            if !tools::is_read_only(i) {
                assert!(
                    LOGGED_TOOLS.contains(&name) ^ REPEATABLE_TOOLS.contains(&name),
                    "{name}: logged or repeatable, not both"
                );
            }
        }
    }

    #[test]
    fn request_ids_are_32_hex_digits() {
        assert!(valid_request_id("00112233445566778899aabbccddeeff"));
        assert!(!valid_request_id("00112233445566778899AABBCCDDEEFF"));
        assert!(!valid_request_id("0011"));
        assert!(!valid_request_id("00112233445566778899aabbccddeeff/x"));
    }
}
