//! Streams relayed by a gateway follow the serving node: when the stream from
//! the node that served ends (it stopped, was killed, or lost its shards) or goes
//! silent, the gateway sends the request again to the next serving node (itself,
//! if it took the shards over) and goes on relaying, on the client's same
//! connection:
//! - a session's GET stream, for as long as the client keeps it. The session id
//!   checks itself on every node (cluster key), so the next node takes the
//!   session back; a session that was ended (404), an agent removed (401) or any
//!   other refusal ends the stream, as a direct one would end;
//! - a POST answered as a stream (a call that may wait: `inbox_pull` or
//!   `lock_acquire` with `wait_seconds`), until its answer has been passed on,
//!   where the call may be sent again (`gateway::repeat`: it only reads, does no
//!   harm twice, or its answer is logged): when its stream breaks or goes silent,
//!   or answers "store unavailable" (a node handing its shards over cut the
//!   wait). One its node ends without an answer was cancelled by the client, and
//!   ends here too;
//! - a 2026-07-28 `subscriptions/listen` stream, until its node ends it with
//!   another response than "store unavailable" (the subscription was closed: the
//!   agent's token removed or rotated), or the client closes it: when it breaks,
//!   goes silent, or ends with "store unavailable" (the node stopped serving),
//!   the listen request is sent again and the new stream's acknowledgement is
//!   left out (the client had it).
//!
//! Events are passed on whole: the relay holds the bytes of an event until its
//! blank line, so that a stream cut in the middle of an event never hands the
//! client half of one followed by another stream. What was pushed while no node
//! served is not replayed: notifications are hints, the inbox loses nothing.

use super::{forward_wait, relayed_headers, CLIENT, RETRY_PAUSE};
use crate::http::state::AppState;
use crate::store::pg::node::Node;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{LocalBoxStream, Stream, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A relayed stream's bytes as they come from a node.
pub(super) type Upstream = LocalBoxStream<'static, Result<Bytes, awc::error::PayloadError>>;

/// The most bytes of one event held while waiting for its end. Beyond, the
/// stream is not SSE as the hub writes it: it is relayed as it comes, and no
/// longer followed.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// A stream that lasted less than this waits out the rest before it is opened
/// again, so that a node ending a stream at once (a session evicted again and
/// again) costs one request a second at most.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// Whether an answer is an SSE stream.
pub(super) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// How long a stream is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// A session's GET stream: as long as the client keeps it.
    Closed,
    /// A POST's streamed answer: until an event carrying data (the answer) has
    /// been passed on.
    Answered,
    /// A `subscriptions/listen` stream: until a response other than "store
    /// unavailable" (the closing one) has been passed on.
    Listening,
}

/// Whether a POST body is one `subscriptions/listen` request.
pub(super) fn is_listen(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Request>(body)
        .is_ok_and(|r| r.method.as_deref() == Some("subscriptions/listen"))
}

/// What sending the request again needs: the client's request (method, path,
/// relayed headers with its token and session, body, the gateway's request
/// id), and how to find the next serving node.
pub(super) struct Reopen {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    request_id: Option<String>,
    node: Arc<Node>,
    st: web::Data<AppState>,
    until: Until,
    dest: super::Dest,
}

enum Opened {
    Stream(Upstream),
    /// Refused for good (the session ended, the token no longer valid, …).
    Over(StatusCode),
    /// No node could open it now: try again.
    Again,
}

impl Reopen {
    pub(super) fn new(
        req: &ServiceRequest,
        (body, request_id): (Bytes, Option<&str>),
        st: web::Data<AppState>,
        node: Arc<Node>,
        until: Until,
        dest: super::Dest,
    ) -> Reopen {
        Reopen {
            method: req.method().clone(),
            path: req
                .uri()
                .path_and_query()
                .map_or("/mcp".to_string(), |p| p.as_str().to_string()),
            headers: relayed_headers(req),
            body,
            request_id: request_id.map(str::to_string),
            node,
            st,
            until,
            dest,
        }
    }

    /// The stream opened at the node serving now (this one, if it serves), waiting
    /// for one up to [`forward_wait`]; `None` if it cannot be.
    async fn open_next(&self) -> Option<Upstream> {
        let deadline = Instant::now() + forward_wait(&self.node);
        let mut finder = super::Finder::new(&self.node, self.dest);
        loop {
            let at = if finder.here(&self.st, &self.node) {
                Some((self.node.id().to_string(), self.node.url().to_string()))
            } else {
                finder.there(&self.node).map(|l| (l.node_id, l.url))
            };
            if let Some((to, url)) = at {
                match self.open(&to, &url).await {
                    Opened::Stream(s) => return Some(s),
                    Opened::Over(status) => {
                        tracing::debug!(%status, "a relayed GET stream was not opened again");
                        return None;
                    }
                    Opened::Again => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = tokio::time::timeout(left.min(RETRY_PAUSE), finder.changed()).await;
        }
    }

    async fn open(&self, to: &str, url: &str) -> Opened {
        let base = url.trim_end_matches("/mcp");
        let mut out = CLIENT
            .with(|c| c.request(self.method.clone(), format!("{base}{}", self.path)))
            // A POST's answer may start late (a 2025-03-26 batch runs its waits
            // before answering), as for a first try.
            .timeout(match self.until {
                Until::Closed | Until::Listening => Duration::from_secs(10),
                Until::Answered => self.st.forward_timeout(),
            });
        for (name, value) in &self.headers {
            out = out.append_header((name.clone(), value.clone()));
        }
        // A later try: a logged call done by an earlier one (same request id) is
        // answered from the log; a stream opened again hears of a non-empty inbox.
        let out = self.st.mark(
            out,
            (self.node.id(), to),
            self.request_id.as_deref(),
            true,
            None,
        );
        let sent = if self.method == Method::GET {
            out.send().await
        } else {
            out.send_body(self.body.clone()).await
        };
        match sent {
            // Unreachable, or lost before its answer: it does no harm twice.
            Err(_) => Opened::Again,
            Ok(resp) if resp.status() == StatusCode::OK && is_event_stream(resp.headers()) => {
                Opened::Stream(resp.boxed_local())
            }
            // Standing by, taking the shards over, the store unavailable.
            Ok(resp) if resp.status().is_server_error() => Opened::Again,
            Ok(resp) => Opened::Over(resp.status()),
        }
    }
}

struct Follow {
    up: Upstream,
    /// Bytes of an event not yet ended.
    held: BytesMut,
    /// When `up` was opened.
    since: Instant,
    reopen: Reopen,
    /// False once the stream is relayed as it comes: not SSE as the hub writes
    /// it ([`MAX_EVENT_BYTES`]), or a POST's answer was passed on.
    following: bool,
    /// A POST's answer: until when a "store unavailable" answer (a node handing
    /// its shards over cut the wait) is sent again rather than passed on.
    retry_until: Option<Instant>,
    /// The last such answer held back: passed on if no node takes the call.
    held_answer: Option<Bytes>,
    /// A listen stream opened again: its acknowledgement is not passed on.
    skip_ack: bool,
    /// A listen stream's acknowledgement was passed on (a stream opened again
    /// before then passes its own).
    acked: bool,
}

/// What whole events of a listen stream come to: what is passed on, and how the
/// stream ended if it did.
#[derive(Debug, PartialEq, Eq)]
struct Listened {
    pass: Bytes,
    end: Option<ListenEnd>,
}

#[derive(Debug, PartialEq, Eq)]
enum ListenEnd {
    /// The closing response (passed on): the subscription is over.
    Closed,
    /// "store unavailable" (held back): listen again at the next node.
    Unavailable(Bytes),
}

/// Sort the whole events `out` of a listen stream: notifications and comments
/// pass (but a reopened stream's acknowledgement, while `skip_ack`; `acked` once
/// one passed); the closing response passes and ends the stream, unless it is
/// "store unavailable".
fn listened(out: &[u8], skip_ack: &mut bool, acked: &mut bool) -> Listened {
    let mut pass = BytesMut::new();
    for event in events(out) {
        let Some(v) = event_json(event) else {
            pass.extend_from_slice(event);
            continue;
        };
        let ack = v["method"] == "notifications/subscriptions/acknowledged";
        if std::mem::take(skip_ack) && ack {
            continue;
        }
        *acked |= ack;
        if v.get("method").is_none() && v.get("id").is_some() {
            let end = if is_store_unavailable(&v) {
                ListenEnd::Unavailable(Bytes::copy_from_slice(event))
            } else {
                pass.extend_from_slice(event);
                ListenEnd::Closed
            };
            return Listened {
                pass: pass.freeze(),
                end: Some(end),
            };
        }
        pass.extend_from_slice(event);
    }
    Listened {
        pass: pass.freeze(),
        end: None,
    }
}

/// The whole events of `buf` (each with its blank line).
pub(super) fn events(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(rest.len(), |i| i + 2);
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

/// The JSON of an event's data lines, if it has any.
pub(super) fn event_json(event: &[u8]) -> Option<serde_json::Value> {
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data).ok()
}

/// Whether whole events `events` are one answer saying "store unavailable":
/// nothing was done, and the call may be sent again (the hub's own refusal
/// while it stops serving or its store is down).
fn store_unavailable(events: &[u8]) -> bool {
    event_json(events).is_some_and(|v| is_store_unavailable(&v))
}

/// Whether a JSON-RPC message is the answer "store unavailable".
fn is_store_unavailable(v: &serde_json::Value) -> bool {
    let e = &v["error"];
    e["code"] == crate::mcp::jsonrpc::SERVER_ERROR
        && e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Store unavailable: "))
}

/// The end of the last whole event in `buf` (after its blank line), if any.
pub(super) fn events_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).rposition(|w| w == b"\n\n").map(|i| i + 2)
}

/// Whether whole events `events` carry data (an answer, a notification), not
/// only comments.
fn carries_data(events: &[u8]) -> bool {
    events.starts_with(b"data:") || events.windows(6).any(|w| w == b"\ndata:")
}

/// The error that aborts the client's connection (its answer was lost).
fn broken() -> actix_web::Error {
    actix_web::error::ErrorBadGateway("the node serving this stream was lost")
}

/// A few hundred milliseconds, different for each stream: the streams a stopped
/// node ended are not all sent again at the same instant.
fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos % 300))
}

/// `first` relayed event by event, then, each time it ends or goes silent for
/// `silent_after`, the request sent again at the next serving node.
pub(super) fn following(
    first: Upstream,
    reopen: Reopen,
    silent_after: Duration,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = Follow {
        up: first,
        held: BytesMut::new(),
        since: Instant::now(),
        reopen,
        following: true,
        retry_until: None,
        held_answer: None,
        skip_ack: false,
        acked: false,
    };
    futures_util::stream::unfold(Some(state), move |state| async move {
        let mut f = state?;
        loop {
            // A node pings every stream (GET streams every `sse_keepalive_secs`,
            // waits every second): silence this long is a node gone without a
            // word (a lost machine, a partition), which TCP alone may not tell.
            let next = tokio::time::timeout(silent_after, f.up.next()).await;
            match next {
                Ok(Some(Ok(chunk))) if !f.following => return Some((Ok(chunk), Some(f))),
                Ok(Some(Ok(chunk))) => {
                    f.held.extend_from_slice(&chunk);
                    if let Some(end) = events_end(&f.held) {
                        let out = f.held.split_to(end).freeze();
                        if f.reopen.until == Until::Listening {
                            let Listened { pass, end } =
                                listened(&out, &mut f.skip_ack, &mut f.acked);
                            match end {
                                Some(ListenEnd::Closed) => f.following = false,
                                Some(ListenEnd::Unavailable(answer)) => {
                                    // Listened to again at the next node (below).
                                    f.held_answer = Some(answer);
                                    f.up = futures_util::stream::iter([Err(
                                        awc::error::PayloadError::Incomplete(None),
                                    )])
                                    .boxed_local();
                                }
                                None => {}
                            }
                            if pass.is_empty() {
                                continue;
                            }
                            return Some((Ok(pass), Some(f)));
                        }
                        if f.reopen.until == Until::Answered && carries_data(&out) {
                            let until = *f.retry_until.get_or_insert_with(|| {
                                Instant::now() + forward_wait(&f.reopen.node)
                            });
                            if store_unavailable(&out) && Instant::now() < until {
                                // Sent again at the next node instead (below).
                                f.held_answer = Some(out);
                                f.up = futures_util::stream::iter([Err(
                                    awc::error::PayloadError::Incomplete(None),
                                )])
                                .boxed_local();
                                continue;
                            }
                            f.following = false;
                        }
                        return Some((Ok(out), Some(f)));
                    }
                    if f.held.len() > MAX_EVENT_BYTES {
                        f.following = false;
                        let out = f.held.split().freeze();
                        return Some((Ok(out), Some(f)));
                    }
                }
                ended => {
                    let lost = !matches!(ended, Ok(None));
                    // A POST's stream that its node ended without an answer was
                    // cancelled (`notifications/cancelled`): over, not lost.
                    let cancelled = f.reopen.until == Until::Answered && !lost;
                    if !f.following || cancelled {
                        // A break after following stopped still aborts the
                        // client's connection, as a direct one would break.
                        return lost.then(|| (Err(broken()), None));
                    }
                    match ended {
                        Err(_) => tracing::debug!("a relayed stream went silent"),
                        Ok(Some(Err(e))) => tracing::debug!(error = %e, "a relayed stream broke"),
                        _ => {}
                    }
                    // Half an event is never passed on; the old connection is let
                    // go first (a node only stalled would refuse a second stream).
                    f.held.clear();
                    f.up = futures_util::stream::empty().boxed_local();
                    let lived = f.since.elapsed();
                    let pause = MIN_LIFETIME.saturating_sub(lived).max(jitter());
                    tokio::time::sleep(pause).await;
                    match f.reopen.open_next().await {
                        Some(up) => {
                            f.up = up;
                            f.since = Instant::now();
                            f.skip_ack = f.reopen.until == Until::Listening && f.acked;
                            crate::metrics::get().stream_followed();
                        }
                        // No node took it: a POST's held "store unavailable"
                        // answer after all, else a broken connection (never a
                        // clean end that would read as cancelled); a GET stream
                        // ends, and its client opens a new one.
                        None => {
                            return match (f.reopen.until, f.held_answer.take()) {
                                (Until::Answered | Until::Listening, Some(answer)) => {
                                    Some((Ok(answer), None))
                                }
                                (Until::Answered | Until::Listening, None) => {
                                    Some((Err(broken()), None))
                                }
                                (Until::Closed, _) => None,
                            };
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_events_only() {
        assert_eq!(events_end(b"data: {}\n\n: ping\n\ndata: {"), Some(18));
        assert_eq!(events_end(b"data: {\"a\":1}"), None);
        assert_eq!(events_end(b": ping\n\n"), Some(8));
        assert_eq!(events_end(b""), None);
        assert!(carries_data(b"event: message\ndata: {}\n\n"));
        assert!(carries_data(b"data: {}\n\n"));
        assert!(!carries_data(b": waiting\n\n: waiting\n\n"));
        let refusal = br#"event: message
data: {"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"Store unavailable: the hub is rebuilding its live state or shutting down; retry","data":{"retry_after_seconds":5}}}

"#;
        assert!(store_unavailable(refusal));
        assert!(!store_unavailable(
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n"
        ));
        assert!(!store_unavailable(b": waiting\n\n"));
    }

    #[test]
    fn listen_streams_are_sorted_event_by_event() {
        assert!(is_listen(
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}"#
        ));
        assert!(!is_listen(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#
        ));
        assert!(!is_listen(br#"[{"method":"subscriptions/listen"}]"#));
        assert!(!is_listen(b"not json"));
        let ack = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{}}\n\n";
        let note = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{}}\n\n";
        let ping = ": ping\n\n";
        let closed = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"complete\"}}\n\n";
        let moved = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32000,\"message\":\"Store unavailable: moved\"}}\n\n";
        let sorted = |text: String, skip: bool| {
            let (mut skip_ack, mut acked) = (skip, false);
            let l = listened(text.as_bytes(), &mut skip_ack, &mut acked);
            (l, skip_ack, acked)
        };
        // A first stream passes its acknowledgement; a reopened one does not, but
        // only its first message is looked at.
        let (l, _, acked) = sorted(format!("{ack}{ping}{note}"), false);
        assert!(acked);
        assert_eq!(l.pass, format!("{ack}{ping}{note}").as_bytes());
        assert_eq!(l.end, None);
        let (l, skip, acked) = sorted(format!("{ack}{note}"), true);
        assert!(!acked, "a skipped acknowledgement was not passed");
        assert_eq!(l.pass, note.as_bytes());
        assert!(!skip);
        let (l, _, _) = sorted(format!("{note}{ack}"), true);
        assert_eq!(l.pass, format!("{note}{ack}").as_bytes());
        // The closing response passes and ends it; "store unavailable" is held.
        let (l, _, acked) = sorted(format!("{note}{closed}"), false);
        assert!(!acked);
        assert_eq!(l.pass, format!("{note}{closed}").as_bytes());
        assert_eq!(l.end, Some(ListenEnd::Closed));
        let (l, _, _) = sorted(format!("{note}{moved}"), false);
        assert_eq!(l.pass, note.as_bytes());
        assert_eq!(
            l.end,
            Some(ListenEnd::Unavailable(Bytes::copy_from_slice(
                moved.as_bytes()
            )))
        );
    }
}
