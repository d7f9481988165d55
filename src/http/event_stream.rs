//! The operator event stream as an SSE response: the events after `Last-Event-ID`
//! (or a `resync` when they are no longer kept), then live events and keep-alive
//! comments. Served as `/operator/events` (bearer token) and `/ui/events`
//! (dashboard session); one body for both.

use crate::events::{Event, EventBus};
use actix_web::HttpResponse;
use bytes::Bytes;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

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
/// ends.
pub(crate) fn response(
    bus: &EventBus,
    last_id: Option<&str>,
    keepalive: Duration,
    allowed: impl Fn() -> bool + 'static,
) -> HttpResponse {
    let sub = bus.subscribe(last_id);
    let mut first: Vec<Bytes> = Vec::new();
    if sub.gap {
        first.push(resync(
            "events after Last-Event-ID are no longer kept; re-read the state",
        ));
    }
    first.extend(sub.replay.iter().map(|e| frame(e.as_ref())));
    let mut tick = tokio::time::interval(keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (first.into_iter(), sub.live, tick, allowed);
    let body = futures_util::stream::unfold(
        state,
        move |(mut first, mut live, mut tick, allowed)| async move {
            if !allowed() {
                return None;
            }
            if let Some(b) = first.next() {
                return Some((Ok::<_, Infallible>(b), (first, live, tick, allowed)));
            }
            let chunk = tokio::select! {
                got = live.recv() => match got {
                    Ok(e) => frame(&e),
                    Err(RecvError::Lagged(n)) => resync(&format!("{n} events were missed (the stream was not read fast enough); re-read the state")),
                    Err(RecvError::Closed) => return None,
                },
                _ = tick.tick() => Bytes::from_static(b": ping\n\n"),
            };
            // Asked again: the session may have ended while this chunk was awaited.
            if !allowed() {
                return None;
            }
            Some((Ok(chunk), (first, live, tick, allowed)))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}
