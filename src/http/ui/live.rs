//! `GET /ui/events`: the operator event stream for the dashboard's pages. The
//! browser's EventSource sends no `Authorization` header, so this one takes the
//! session cookie instead, and ends once that session does. The body is the one
//! `/operator/events` sends (see `http/event_stream.rs`); a page resumes after the
//! event it was rendered at (`?last_event_id=`), a reconnect after the last one it
//! got (`Last-Event-ID`, which wins).

use super::error::UiError;
use super::guard;
use crate::http::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

#[derive(serde::Deserialize)]
pub(super) struct Resume {
    last_event_id: Option<String>,
}

pub(super) async fn events(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<Resume>,
) -> Result<HttpResponse, UiError> {
    let op = guard::stream(&req, &st)?;
    let hub = st.hub.get().await?;
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.last_event_id.as_deref())
        .filter(|s| !s.is_empty());
    let operator = st.tokens.current().operator_digest();
    let state = st.clone();
    // Asked before each chunk (an event or a keep-alive): a logout, expiry or new
    // operator token ends the stream within `sse_keepalive_secs`.
    let allowed = move || {
        state
            .ui
            .sessions()
            .alive(&op.session, &operator, Utc::now())
    };
    let mut resp =
        crate::http::event_stream::response(hub.events(), last, st.sse_keepalive, allowed).await;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}
