//! A session's GET stream relayed by a gateway follows the serving node: when
//! the stream from the node that served ends (it stopped, was killed, or lost its
//! shards), the gateway opens it again at the next serving node (itself, if it
//! took the shards over) and goes on relaying, on the client's same connection.
//! The session id checks itself on every node (cluster key), so the next node
//! takes the session back; a session that was ended (404), an agent removed
//! (401) or any other refusal ends the stream, as a direct one would end.
//!
//! Events are passed on whole: the relay holds the bytes of an event until its
//! blank line, so that a stream cut in the middle of an event never hands the
//! client half of one followed by another stream. What was pushed while no node
//! served is not replayed: notifications are hints, the inbox loses nothing.

use super::{relayed_headers, CLIENT, FORWARDED_HEADER, FORWARD_WAIT, RETRY_PAUSE};
use crate::http::state::{AppState, Fill};
use crate::store::pg::node::Node;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
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

/// Whether the answer to `req` is a stream a gateway follows: a session's GET
/// stream on the MCP endpoint.
pub(super) fn follows(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::GET && req.path() == "/mcp"
}

/// What opening the stream again needs: the client's request (path, relayed
/// headers with its token and session), and how to find the next serving node.
pub(super) struct Reopen {
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    node: Arc<Node>,
    st: web::Data<AppState>,
}

enum Opened {
    Stream(Upstream),
    /// Refused for good (the session ended, the token no longer valid, …).
    Over(StatusCode),
    /// No node could open it now: try again.
    Again,
}

impl Reopen {
    pub(super) fn new(req: &ServiceRequest, st: web::Data<AppState>, node: Arc<Node>) -> Reopen {
        Reopen {
            path: req
                .uri()
                .path_and_query()
                .map_or("/mcp".to_string(), |p| p.as_str().to_string()),
            headers: relayed_headers(req),
            node,
            st,
        }
    }

    /// The stream opened at the node serving now (this one, if it serves), waiting
    /// for one up to [`FORWARD_WAIT`]; `None` if it cannot be.
    async fn open_next(&self) -> Option<Upstream> {
        let deadline = Instant::now() + FORWARD_WAIT;
        let mut leaders = self.node.leader();
        loop {
            let url = if matches!(self.st.hub.peek(), Fill::Ready(_)) {
                Some(self.node.url().to_string())
            } else {
                leaders
                    .borrow_and_update()
                    .clone()
                    .filter(|l| l.node_id != self.node.id())
                    .map(|l| l.url)
            };
            if let Some(url) = url {
                match self.open(&url).await {
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
            let _ = tokio::time::timeout(left.min(RETRY_PAUSE), leaders.changed()).await;
        }
    }

    async fn open(&self, url: &str) -> Opened {
        let base = url.trim_end_matches("/mcp");
        let mut out = CLIENT
            .with(|c| c.get(format!("{base}{}", self.path)))
            .timeout(Duration::from_secs(10));
        for (name, value) in &self.headers {
            out = out.append_header((name.clone(), value.clone()));
        }
        out = out.insert_header((FORWARDED_HEADER, self.node.id()));
        match out.send().await {
            // Unreachable, or lost before its answer: a GET does no harm twice.
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
    /// False once the stream is relayed as it comes (see [`MAX_EVENT_BYTES`]).
    whole_events: bool,
}

/// The end of the last whole event in `buf` (after its blank line), if any.
fn events_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).rposition(|w| w == b"\n\n").map(|i| i + 2)
}

/// `first` relayed event by event, then, each time it ends, the stream opened
/// again at the next serving node.
pub(super) fn following(
    first: Upstream,
    reopen: Reopen,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = Follow {
        up: first,
        held: BytesMut::new(),
        since: Instant::now(),
        reopen,
        whole_events: true,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut f = state?;
        loop {
            match f.up.next().await {
                Some(Ok(chunk)) if !f.whole_events => return Some((Ok(chunk), Some(f))),
                Some(Ok(chunk)) => {
                    f.held.extend_from_slice(&chunk);
                    if let Some(end) = events_end(&f.held) {
                        let out = f.held.split_to(end).freeze();
                        return Some((Ok(out), Some(f)));
                    }
                    if f.held.len() > MAX_EVENT_BYTES {
                        f.whole_events = false;
                        let out = f.held.split().freeze();
                        return Some((Ok(out), Some(f)));
                    }
                }
                ended => {
                    if !f.whole_events {
                        return None;
                    }
                    if let Some(Err(e)) = ended {
                        tracing::debug!(error = %e, "a relayed GET stream broke");
                    }
                    // Half an event is never passed on.
                    f.held.clear();
                    let lived = f.since.elapsed();
                    if lived < MIN_LIFETIME {
                        tokio::time::sleep(MIN_LIFETIME - lived).await;
                    }
                    f.up = f.reopen.open_next().await?;
                    f.since = Instant::now();
                    crate::metrics::get().stream_followed();
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
    }
}
