//! The operator event stream as an SSE response: the events after `Last-Event-ID`
//! (or a `resync` when they are no longer kept), then live events and keep-alive
//! comments. Served as `/operator/events` (bearer token) and `/ui/events`
//! (dashboard session); one body for both.

use crate::events::{Event, EventBus};
use actix_web::HttpResponse;
use bytes::Bytes;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long a stream resuming after another node's event waits for it to be
/// relayed here.
const FOREIGN_WAIT: Duration = Duration::from_secs(2);

fn frame(e: &Event) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        e.id,
        e.event_type,
        serde_json::to_string(e).unwrap_or_default()
    ))
}

fn resync(why: &str) -> Bytes {
    Bytes::from(format!(
        "event: resync\ndata: {}\n\n",
        json!({"reason": why})
    ))
}

/// The stream for a subscriber that last saw `last_id`. `allowed` is asked before
/// each chunk is sent: once it says no (a dashboard session ended), the stream
/// ends. In spread placement it also holds the events of the other nodes
/// (`gateway::relay_events`).
pub(crate) async fn response(
    bus: &EventBus,
    last_id: Option<&str>,
    keepalive: Duration,
    allowed: impl Fn() -> bool + 'static,
) -> HttpResponse {
    // Another node's event not relayed here yet (a watcher reconnecting through
    // a balancer right after it): waited for a moment before it is a gap.
    if let Some(id) = last_id.filter(|id| bus.is_foreign(id)) {
        let until = tokio::time::Instant::now() + FOREIGN_WAIT;
        while !bus.holds(id) && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let sub = bus.subscribe(last_id);
    let mut first: Vec<Bytes> = Vec::new();
    if sub.gap {
        first.push(resync(
            "events after Last-Event-ID are no longer kept; re-read the state",
        ));
    }
    first.extend(sub.replay.iter().map(|e| frame(e.as_ref())));
    stream(first, sub.live, keepalive, move |_| allowed())
}

/// This node's own events published at `since_ms` or later, then live, for
/// another node's relay (`GET /internal/events`): never what was relayed here.
pub(crate) fn local_response(bus: &EventBus, since_ms: u64, keepalive: Duration) -> HttpResponse {
    let sub = bus.subscribe_local(since_ms);
    let first = sub.replay.iter().map(|e| frame(e.as_ref())).collect();
    stream(first, sub.live, keepalive, |e| e.is_none_or(|e| !e.relayed))
}

/// `first`, then the events of `live` that `pass` lets through (asked with
/// `None` before keep-alives and between chunks: `false` ends the stream), a
/// keep-alive comment every `keepalive`, as an SSE response.
fn stream(
    first: Vec<Bytes>,
    live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    keepalive: Duration,
    pass: impl Fn(Option<&Event>) -> bool + 'static,
) -> HttpResponse {
    let mut tick = tokio::time::interval(keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (first.into_iter(), live, tick, pass);
    let body = futures_util::stream::unfold(
        state,
        move |(mut first, mut live, mut tick, pass)| async move {
            if !pass(None) {
                return None;
            }
            if let Some(b) = first.next() {
                return Some((Ok::<_, Infallible>(b), (first, live, tick, pass)));
            }
            let chunk = loop {
                tokio::select! {
                    got = live.recv() => match got {
                        Ok(e) if pass(Some(&e)) => break frame(&e),
                        Ok(_) => continue,
                        Err(RecvError::Lagged(n)) => break resync(&format!("{n} events were missed (the stream was not read fast enough); re-read the state")),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = tick.tick() => break Bytes::from_static(b": ping\n\n"),
                }
            };
            // Asked again: the session may have ended while this chunk was awaited.
            if !pass(None) {
                return None;
            }
            Some((Ok(chunk), (first, live, tick, pass)))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}
