//! Server-Sent Events bodies: a one-shot stream carrying a POST's answer, and the
//! long-lived streams with keep-alive comments (a session's GET stream, a
//! 2026-07-28 `subscriptions/listen` stream).

use actix_web::HttpResponse;
use bytes::Bytes;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// One SSE event holding a JSON-RPC message (serialised on one line by serde_json).
pub(crate) fn event(json: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {json}\n\n"))
}

fn sse_response() -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        // Tell reverse proxies such as nginx not to buffer the stream.
        .insert_header(("x-accel-buffering", "no"));
    b
}

/// A POST answered as an SSE stream that ends after its one response.
pub(crate) fn single(json: &str, session: Option<&str>) -> HttpResponse {
    let mut b = sse_response();
    if let Some(s) = session {
        b.insert_header(("mcp-session-id", s));
    }
    b.body(event(json))
}

/// The answer to a request cancelled before it finished: an SSE stream that ends
/// without a response (a POST carrying a request must be answered with JSON or SSE,
/// and a cancelled request gets no JSON-RPC response).
pub(crate) fn unanswered(session: Option<&str>) -> HttpResponse {
    let mut b = sse_response();
    if let Some(s) = session {
        b.insert_header(("mcp-session-id", s));
    }
    b.finish()
}

/// A POST whose answer may take long (a long poll, a lock wait), as an SSE stream: a
/// comment every `every` while `work` runs, then its answer (none when `work` gives
/// `None`: the request was cancelled), then the end. actix-web
/// never learns that a client hung up while a handler is pending, but it drops a
/// streaming body whose write fails; `work` lives in this body, so it is dropped
/// then too, and with it the parked waiter (a lock granted to it meanwhile is taken
/// back and passed on).
pub(crate) fn waiting<F>(work: F, every: Duration, session: Option<&str>) -> HttpResponse
where
    F: std::future::Future<Output = Option<String>> + 'static,
{
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A client that reads slowly gets one comment per tick, not a burst of missed ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = futures_util::stream::unfold(
        (Some(Box::pin(work)), tick),
        |(work, mut tick)| async move {
            let mut work = work?;
            tokio::select! {
                json = &mut work => json.map(|j| (Ok::<_, Infallible>(event(&j)), (None, tick))),
                _ = tick.tick() => Some((Ok(Bytes::from_static(b": waiting\n\n")), (Some(work), tick))),
            }
        },
    );
    let mut b = sse_response();
    if let Some(s) = session {
        b.insert_header(("mcp-session-id", s));
    }
    b.streaming(body)
}

/// The GET stream: every message pushed into `rx` becomes an event; an SSE comment
/// goes out every `keepalive` so proxies and idle timers keep the connection. It ends
/// when the session drops its sender (DELETE, expiry) and is dropped when the client
/// disconnects, which closes `rx` and frees the session for a new GET.
pub(crate) fn stream(
    rx: mpsc::Receiver<String>,
    keepalive: Duration,
    session: &str,
) -> HttpResponse {
    let mut interval = tokio::time::interval(keepalive);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = futures_util::stream::unfold((rx, interval), |(mut rx, mut interval)| async move {
        let chunk = tokio::select! {
            msg = rx.recv() => event(&msg?),
            // The first tick fires at once, so the client sees the stream open.
            _ = interval.tick() => Bytes::from_static(b": ping\n\n"),
        };
        Some((Ok::<_, Infallible>(chunk), (rx, interval)))
    });
    sse_response()
        .insert_header(("mcp-session-id", session))
        .streaming(body)
}

/// A 2026-07-28 `subscriptions/listen` answer: `first` (the acknowledgement), then
/// every notification pushed into `rx`, with an SSE comment every `keepalive`.
/// When every sender is gone (we closed the subscription, or this node stopped
/// serving) the response `ending` says ends it.
/// `guard` lives as long as the body: dropping it (the client closed the stream,
/// which this revision calls cancellation) unregisters the stream.
pub(crate) fn listen<G: 'static>(
    first: String,
    rx: mpsc::Receiver<String>,
    last: crate::mcp::listen::Ending,
    keepalive: Duration,
    guard: G,
) -> HttpResponse {
    enum Next {
        Message(Option<String>),
        Tick,
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (Some(first), Some(rx), last, tick, guard);
    let body =
        futures_util::stream::unfold(state, |(first, rx, last, mut tick, guard)| async move {
            if let Some(f) = first {
                return Some((
                    Ok::<_, Infallible>(event(&f)),
                    (None, rx, last, tick, guard),
                ));
            }
            let mut rx = rx?;
            let next = tokio::select! {
                m = rx.recv() => Next::Message(m),
                _ = tick.tick() => Next::Tick,
            };
            let (chunk, rx) = match next {
                Next::Message(Some(m)) => (event(&m), Some(rx)),
                Next::Message(None) => (event(&last.last()), None),
                Next::Tick => (Bytes::from_static(b": ping\n\n"), Some(rx)),
            };
            Some((Ok(chunk), (None, rx, last, tick, guard)))
        });
    sse_response().streaming(body)
}
