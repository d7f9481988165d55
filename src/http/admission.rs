//! How many POST requests run at once: in all (503 over `max_in_flight`) and per
//! agent (429 over `max_in_flight_per_agent`), both with `Retry-After`. Decided after
//! the token and before the body, so that a flood neither queues without bound nor
//! lets one agent take every slot. A permit lives as long as the answer: it is held
//! by the response body until actix has written it (or the client is gone), so a
//! client that does not read its answers holds its own slots, not the server's memory.

use super::error::ApiError;
use crate::domain::AgentId;
use crate::mcp::jsonrpc::RpcError;
use crate::metrics::{self, Refusal};
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use dashmap::DashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Answers up to this size always go (they are counted, not refused): an agent
/// with an unread big answer keeps its small calls (the bound on memory is then
/// the cap plus `max_in_flight_per_agent` small answers).
const SMALL_ANSWER: usize = 64 * 1024;

/// What a client refused here is told to wait before retrying.
pub(crate) const RETRY_AFTER_SECS: u64 = 1;

/// The caps, shared by every worker.
pub(crate) struct Admission {
    global: Arc<Semaphore>,
    /// `global`'s size, for [`Admission::in_flight`].
    global_cap: usize,
    per_agent: DashMap<AgentId, Arc<AgentSlots>>,
    agent_cap: usize,
    bytes_cap: usize,
    /// Requests in flight served here: admitted, less those that are not (see
    /// [`Admission::not_served`]). One counter, so that [`Admission::idle`]
    /// reads both at one instant.
    served: Arc<AtomicIsize>,
}

/// Counts one admitted request as not served here while alive (see
/// [`Admission::not_served`]).
pub(crate) struct NotServed(Arc<AtomicIsize>);

impl Drop for NotServed {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// One agent's requests and answer bytes in flight.
struct AgentSlots {
    requests: Arc<Semaphore>,
    /// Bytes of answers not yet written to the agent's connections.
    bytes: AtomicUsize,
}

/// The slots one request holds.
pub(crate) struct Permits {
    _global: OwnedSemaphorePermit,
    _agent: OwnedSemaphorePermit,
    slots: Arc<AgentSlots>,
    /// Answer bytes counted for this request (given back on drop).
    bytes: usize,
    bytes_cap: usize,
    served: Arc<AtomicIsize>,
}

impl Drop for Permits {
    fn drop(&mut self) {
        self.served.fetch_sub(1, Ordering::AcqRel);
        self.slots.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        metrics::get().answer_bytes(self.bytes, false);
    }
}

impl Admission {
    /// `global` and `per_agent` requests at once; `bytes` of answers in flight per agent.
    pub(crate) fn new(global: usize, per_agent: usize, bytes: usize) -> Admission {
        Admission {
            global: Arc::new(Semaphore::new(global)),
            global_cap: global,
            per_agent: DashMap::new(),
            agent_cap: per_agent,
            bytes_cap: bytes,
            served: Arc::default(),
        }
    }

    /// Requests admitted and not yet answered (for the metrics).
    pub(crate) fn in_flight(&self) -> usize {
        self.global_cap
            .saturating_sub(self.global.available_permits())
    }

    /// An admitted request (its [`Permits`] alive meanwhile, and dropped after
    /// this) that [`Admission::idle`] does not wait for: one this node's gateway
    /// relays to another node (it runs there), a listen stream (it never ends by
    /// itself), or a call that may park (agents long-poll all the time): a node
    /// that stops serving ends or cuts them after waiting.
    pub(crate) fn not_served(&self) -> NotServed {
        self.served.fetch_sub(1, Ordering::AcqRel);
        NotServed(self.served.clone())
    }

    /// Until no request is served here, or `within` has passed: what a cluster node
    /// handing its shards over waits for (answers wait for their commit, so the
    /// writes of every call answered are stored). Requests its gateway relays are
    /// not waited for: once the node stops serving, its gateway holds them until
    /// another node serves. A parked wait may last longer: it is cut when the hub
    /// stops.
    pub(crate) async fn idle(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.served.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// A slot for one request of `agent`, or the refusal to send.
    pub(crate) fn admit(&self, agent: &AgentId) -> Result<Permits, ApiError> {
        // A shared read on every request; the write lock of `entry` only the first
        // time an agent is seen.
        let known = self.per_agent.get(agent).map(|s| s.clone());
        let slots = match known {
            Some(s) => s,
            None => self
                .per_agent
                .entry(agent.clone())
                .or_insert_with(|| {
                    Arc::new(AgentSlots {
                        requests: Arc::new(Semaphore::new(self.agent_cap)),
                        bytes: AtomicUsize::new(0),
                    })
                })
                .clone(),
        };
        let agent_slot = slots.requests.clone().try_acquire_owned().map_err(|_| {
            metrics::get().refused(Refusal::AgentRequests);
            ApiError::busy(
                StatusCode::TOO_MANY_REQUESTS,
                RpcError::server(format!(
                    "Too Many Requests: {agent} already has {} requests in flight (max_in_flight_per_agent); retry after {RETRY_AFTER_SECS} s",
                    self.agent_cap
                )),
                RETRY_AFTER_SECS,
            )
        })?;
        let global_slot = self.global.clone().try_acquire_owned().map_err(|_| {
            metrics::get().refused(Refusal::GlobalRequests);
            ApiError::busy(
                StatusCode::SERVICE_UNAVAILABLE,
                RpcError::server(format!(
                    "Service Unavailable: the hub has too many requests in flight (max_in_flight); retry after {RETRY_AFTER_SECS} s"
                )),
                RETRY_AFTER_SECS,
            )
        })?;
        self.served.fetch_add(1, Ordering::AcqRel);
        Ok(Permits {
            _global: global_slot,
            _agent: agent_slot,
            slots,
            bytes: 0,
            bytes_cap: self.bytes_cap,
            served: self.served.clone(),
        })
    }
}

/// A request marked as one that may write (see [`mark_writes`]).
struct Writes;

/// Mark `req` as carrying a request that may write: its answer is never refused.
pub(crate) fn mark_writes(req: &actix_web::HttpRequest) {
    actix_web::HttpMessage::extensions_mut(req).insert(Writes);
}

/// Whether [`mark_writes`] was called for `req`.
pub(crate) fn marked_writes(req: &actix_web::HttpRequest) -> bool {
    actix_web::HttpMessage::extensions(req)
        .get::<Writes>()
        .is_some()
}

/// Whether a request only reads: anything but a tool call, or a tool that writes
/// nothing. Unknown tools count as reads (they are refused anyway).
pub(crate) fn read_only(method: &str, params: Option<&serde_json::Value>) -> bool {
    const WRITING_TOOLS: &[&str] = &[
        "agent_register",
        "agent_heartbeat",
        "message_send",
        "message_ack",
        "task_draft_create",
        "round_plan_submit",
        "assignment_claim",
        "assignment_progress",
        "assignment_complete",
        "review_submit",
        "lock_acquire",
        "lock_release",
    ];
    if method != "tools/call" {
        return true;
    }
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(serde_json::Value::as_str);
    !name.is_some_and(|n| WRITING_TOOLS.contains(&n))
}

impl Permits {
    /// Count an answer that must go whatever the cap (a write's).
    fn count_anyway(&mut self, size: usize) {
        self.slots.bytes.fetch_add(size, Ordering::Relaxed);
        metrics::get().answer_bytes(size, true);
        self.bytes = size;
    }

    /// Count an answer of `size` bytes against the agent's answers in flight; an
    /// error if they would exceed the cap (an agent whose earlier answers are all
    /// written always gets one).
    fn count_answer(&mut self, size: usize) -> Result<(), ApiError> {
        let before = self.slots.bytes.fetch_add(size, Ordering::Relaxed);
        if size > SMALL_ANSWER && before > 0 && before + size > self.bytes_cap {
            self.slots.bytes.fetch_sub(size, Ordering::Relaxed);
            return Err(ApiError::busy(
                StatusCode::TOO_MANY_REQUESTS,
                RpcError::server(format!(
                    "Too Many Requests: {before} bytes of earlier answers are not read yet (max_answer_bytes_in_flight_per_agent {}); read them, then retry",
                    self.bytes_cap
                )),
                RETRY_AFTER_SECS,
            ));
        }
        metrics::get().answer_bytes(size, true);
        self.bytes = size;
        Ok(())
    }
}

/// A response body that holds the request's permits until it is written or dropped.
pub(crate) struct Held<B> {
    body: B,
    _permits: Permits,
}

/// `resp` with `permits` held by its body, its size counted against the agent's
/// answers in flight: over the cap, a 429 instead, but only for a request that
/// wrote nothing (`writes` false): a read that is not delivered loses nothing (the
/// messages stay unread), while the answer of a write must reach its client.
pub(crate) fn hold(resp: HttpResponse, mut permits: Permits, writes: bool) -> HttpResponse {
    if let BodySize::Sized(n) = resp.body().size() {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if let Err(refused) = permits.count_answer(n) {
            if !writes {
                metrics::get().refused(Refusal::AnswerBytes);
                return actix_web::ResponseError::error_response(&refused);
            }
            permits.count_anyway(n);
        }
    }
    resp.map_body(|_, body| {
        Held {
            body,
            _permits: permits,
        }
        .boxed()
    })
}

impl<B: MessageBody + Unpin> MessageBody for Held<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_known_as_reading_or_writing() {
        let reads = ["assignment_list", "handoff_get", "hub_status", "inbox_pull"];
        for name in crate::mcp::tools::names() {
            let params = serde_json::json!({ "name": name });
            assert_eq!(
                read_only("tools/call", Some(&params)),
                reads.contains(&name),
                "{name}"
            );
        }
        assert!(read_only("resources/read", None));
    }

    /// A node handing its shards over waits for the calls it serves, not for
    /// those its gateway relays to another node.
    #[tokio::test]
    async fn idle_waits_for_served_calls_only() {
        let a = Admission::new(10, 10, 1000);
        let within = std::time::Duration::from_millis(300);
        let served = a.admit(&AgentId::new("x")).ok();
        let relayed = (a.admit(&AgentId::new("y")).ok(), a.not_served());
        let started = std::time::Instant::now();
        a.idle(within).await;
        assert!(started.elapsed() >= within, "waited for the served call");
        drop(served);
        let started = std::time::Instant::now();
        a.idle(within).await;
        assert!(started.elapsed() < within, "nothing served is in flight");
        drop(relayed);
        assert_eq!(a.in_flight(), 0);
    }

    #[test]
    fn caps_per_agent_then_in_all() {
        let a = Admission::new(3, 2, 1000);
        let (x, y) = (AgentId::new("x"), AgentId::new("y"));
        let p1 = a.admit(&x).ok();
        let p2 = a.admit(&x).ok();
        assert!(p1.is_some() && p2.is_some());
        let refused = a.admit(&x).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.starts_with("429")));
        let p3 = a.admit(&y).ok();
        assert!(p3.is_some());
        let refused = a.admit(&y).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.starts_with("503")), "global cap");
        drop(p1);
        assert!(a.admit(&y).is_ok(), "slots come back");
    }

    #[test]
    fn answer_bytes_in_flight_are_capped_but_one_always_goes() {
        let a = Admission::new(10, 10, SMALL_ANSWER);
        let x = AgentId::new("x");
        let mut big = a.admit(&x).unwrap();
        big.count_answer(5000).unwrap(); // the first, however big
        let mut next = a.admit(&x).unwrap();
        assert!(next.count_answer(SMALL_ANSWER + 1).is_err());
        next.count_answer(10).unwrap(); // small ones always go
        drop(next);
        drop(big); // written: its bytes come back
        let mut again = a.admit(&x).unwrap();
        again.count_answer(SMALL_ANSWER + 1).unwrap();
    }
}
