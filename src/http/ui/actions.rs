//! The operator's actions from the dashboard: approve or reject a round, close a
//! task, force-release a lock, purge an agent's deliveries. Each is a form post checked by [`super::action_form`]
//! (session, same site, CSRF token), then the same [`crate::actors::Hub`] call as
//! the `/operator` route behind `hubctl` (with spread placement, at the node
//! serving what it acts on: `http::internal::Act`), then a 303 back to the page
//! it came from.

use super::error::UiError;
use super::format::{back_to, with_query};
use super::{action_form, see_other};
use crate::http::internal::{act_anywhere, Act};
use crate::http::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

/// An action's form: an optional note and the page to go back to.
#[derive(serde::Deserialize)]
struct ActionForm {
    #[serde(default)]
    note: String,
    back: Option<String>,
}

/// The page to return to, with the action's one-line result.
fn done(back: Option<&str>, what: &str, id: &str) -> HttpResponse {
    see_other(&with_query(&back_to(back), &[("done", what), ("id", id)]))
}

#[derive(serde::Deserialize)]
struct PurgeForm {
    #[serde(default)]
    from: String,
    back: Option<String>,
}

/// `hubctl purge-messages`: the deliveries to agent `id` (of `from`'s messages,
/// when named).
pub(super) async fn purge(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    let (_, form): (_, PurgeForm) = match action_form(&req, &st, payload).await {
        Ok(x) => x,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    let from = Some(form.from.trim().to_string()).filter(|f| !f.is_empty());
    let purge = Act::Purge {
        agent: id.to_string(),
        from,
    };
    let n = act_anywhere(&st, &hub, &purge).await?;
    let back = with_query(&back_to(form.back.as_deref()), &[("n", &n.to_string())]);
    Ok(done(Some(&back), "purged", &id))
}

/// `hubctl approve` / `hubctl reject`.
#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

async fn decide(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
    d: Decision,
) -> Result<HttpResponse, UiError> {
    let (_, form): (_, ActionForm) = match action_form(&req, &st, payload).await {
        Ok(x) => x,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    let (note, round_id) = (form.note.trim().to_string(), id.to_string());
    let (act, what) = match d {
        Decision::Approve => (Act::Approve { round_id, note }, "approved"),
        Decision::Reject => (Act::Reject { round_id, note }, "rejected"),
    };
    act_anywhere(&st, &hub, &act).await?;
    Ok(done(form.back.as_deref(), what, &id))
}

pub(super) async fn approve(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    decide(req, st, id, payload, Decision::Approve).await
}

pub(super) async fn reject(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    decide(req, st, id, payload, Decision::Reject).await
}

/// `hubctl close`.
pub(super) async fn close(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    let (_, form): (_, ActionForm) = match action_form(&req, &st, payload).await {
        Ok(x) => x,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    let close = Act::Close {
        task_id: id.to_string(),
    };
    act_anywhere(&st, &hub, &close).await?;
    Ok(done(form.back.as_deref(), "closed", &id))
}

#[derive(serde::Deserialize)]
struct LockForm {
    key: String,
    back: Option<String>,
}

/// `hubctl unlock`: the key is a form field (keys may hold `/`).
pub(super) async fn release_lock(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    let (_, form): (_, LockForm) = match action_form(&req, &st, payload).await {
        Ok(x) => x,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    let unlock = Act::Unlock {
        key: form.key.clone(),
    };
    act_anywhere(&st, &hub, &unlock).await?;
    Ok(done(form.back.as_deref(), "released", &form.key))
}
