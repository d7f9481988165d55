//! Operator API for the task workflow: approve/reject rounds, close tasks, and the
//! read views behind `hubctl status/list-tasks/list-rounds/show`.

#![allow(clippy::result_large_err)] // The error IS the HTTP response, built once on the refusal path.

use super::guards;
use super::server::AppState;
use crate::actors::HubError;
use crate::domain::workflow::TaskState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/operator/tasks", web::get().to(list_tasks))
        .route("/operator/tasks/{id}", web::get().to(show_task))
        .route("/operator/tasks/{id}/close", web::post().to(close_task))
        .route("/operator/rounds", web::get().to(list_rounds))
        .route("/operator/rounds/{id}", web::get().to(round_status))
        .route("/operator/rounds/{id}/approve", web::post().to(approve))
        .route("/operator/rounds/{id}/reject", web::post().to(reject))
        .route("/operator/locks", web::get().to(list_locks))
        // The key is a query parameter: keys may contain `/`, which a path segment
        // would keep percent-encoded.
        .route("/operator/locks", web::delete().to(unlock));
}

/// A hub refusal as an HTTP answer: unknown ids 404, wrong state 409. Like every
/// refusal it is given once the state it describes is on disk.
pub async fn refusal(st: &AppState, e: HubError) -> HttpResponse {
    let e = match e {
        HubError::Domain(d) => match st.hub.settled().await {
            Ok(()) => HubError::Domain(d),
            Err(other) => other,
        },
        other => other,
    };
    match e {
        HubError::Domain(d) => {
            let code = d.code();
            let status = if code.is_not_found() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            HttpResponse::build(status)
                .json(json!({"ok": false, "error": code, "message": d.to_string()}))
        }
        other => {
            tracing::error!(error = %other, "operator request failed");
            HttpResponse::InternalServerError()
                .json(json!({"ok": false, "error": "INTERNAL", "message": "the hub could not complete the request; see its log"}))
        }
    }
}

fn guard(req: &HttpRequest, st: &AppState) -> Result<(), HttpResponse> {
    guards::check_origin(req, &st.origins)?;
    guards::operator(req, st)
}

/// A round with its assignments.
fn round_json(s: &TaskState, round_id: &str) -> Value {
    let assignments: Vec<_> = s.round_assignments(round_id).collect();
    json!({"round": s.round(round_id), "assignments": assignments})
}

fn task_summary(s: &TaskState) -> Value {
    let latest = s.rounds.iter().max_by_key(|r| r.round_number);
    json!({
        "task": s.task,
        "rounds": s.rounds.len(),
        "current_round": latest.map(|r| json!({"id": r.id, "round_number": r.round_number, "status": r.status})),
    })
}

async fn list_tasks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    try_resp!(guard(&req, &st));
    match st.hub.task_snapshots().await {
        Ok(list) => HttpResponse::Ok()
            .json(json!({"ok": true, "tasks": list.iter().map(task_summary).collect::<Vec<_>>()})),
        Err(e) => refusal(&st, e).await,
    }
}

async fn show_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    try_resp!(guard(&req, &st));
    match st.hub.task_snapshot(&id).await {
        Ok(s) => {
            let mut rounds: Vec<&crate::domain::task::Round> = s.rounds.iter().collect();
            rounds.sort_by_key(|r| r.round_number);
            let rounds: Vec<Value> = rounds
                .iter()
                .map(|r| {
                    let mut v = round_json(&s, &r.id);
                    v["handoffs"] = json!(s
                        .handoffs
                        .iter()
                        .filter(|h| h.round_id == r.id)
                        .collect::<Vec<_>>());
                    v
                })
                .collect();
            HttpResponse::Ok().json(json!({"ok": true, "task": s.task, "message_count": s.message_count, "rounds": rounds}))
        }
        Err(e) => refusal(&st, e).await,
    }
}

#[derive(Deserialize)]
struct RoundsQuery {
    task_id: Option<String>,
}

async fn list_rounds(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<RoundsQuery>,
) -> HttpResponse {
    try_resp!(guard(&req, &st));
    let states = match &q.task_id {
        Some(t) => st.hub.task_snapshot(t).await.map(|s| vec![s]),
        None => st.hub.task_snapshots().await,
    };
    match states {
        Ok(states) => {
            let rounds: Vec<Value> = states
                .iter()
                .flat_map(|s| {
                    let mut rs: Vec<_> = s.rounds.iter().collect();
                    rs.sort_by_key(|r| r.round_number);
                    rs.into_iter().map(|r| json!(r)).collect::<Vec<_>>()
                })
                .collect();
            HttpResponse::Ok().json(json!({"ok": true, "rounds": rounds}))
        }
        Err(e) => refusal(&st, e).await,
    }
}

async fn round_status(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    try_resp!(guard(&req, &st));
    let task = match st.hub.round_snapshot(&id).await {
        Ok(s) => s,
        Err(e) => return refusal(&st, e).await,
    };
    let mut v = round_json(&task, &id);
    v["ok"] = json!(true);
    v["task"] = json!(task.task);
    HttpResponse::Ok().json(v)
}

#[derive(Deserialize, Default)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

fn note_of(body: &web::Bytes) -> Result<String, HttpResponse> {
    if body.is_empty() {
        return Ok(String::new());
    }
    serde_json::from_slice::<NoteBody>(body).map(|b| b.note).map_err(|e| {
        HttpResponse::BadRequest().json(json!({"ok": false, "error": "INVALID_ARGUMENT", "message": format!("body must be {{\"note\": \"...\"}}: {e}")}))
    })
}

async fn decide(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: String,
    body: web::Bytes,
    approve: bool,
) -> HttpResponse {
    try_resp!(guard(&req, &st));
    let note = try_resp!(note_of(&body));
    let decided = if approve {
        st.hub.approve(&id, note).await
    } else {
        st.hub.reject(&id, note).await
    };
    match decided {
        Ok(r) => HttpResponse::Ok().json(json!({"ok": true, "round": r})),
        Err(e) => refusal(&st, e).await,
    }
}

async fn approve(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    decide(req, st, id.into_inner(), body, true).await
}

async fn reject(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    decide(req, st, id.into_inner(), body, false).await
}

async fn close_task(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    try_resp!(guard(&req, &st));
    match st.hub.close(&id).await {
        Ok(t) => HttpResponse::Ok().json(json!({"ok": true, "task": t})),
        Err(e) => refusal(&st, e).await,
    }
}

async fn list_locks(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    try_resp!(guard(&req, &st));
    let now = chrono::Utc::now();
    match st.hub.locks().await {
        Ok(locks) => {
            let list: Vec<Value> = locks
                .iter()
                .map(|l| {
                    let mut v = json!(l);
                    v["expires_in_seconds"] =
                        json!((l.expires_at - now).num_milliseconds() as f64 / 1000.0);
                    v
                })
                .collect();
            HttpResponse::Ok().json(json!({"ok": true, "locks": list}))
        }
        Err(e) => refusal(&st, e).await,
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn unlock(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<KeyQuery>,
) -> HttpResponse {
    try_resp!(guard(&req, &st));
    match st.hub.lock_force_release(&q.key).await {
        Ok(lock) => HttpResponse::Ok().json(json!({"ok": true, "lock": lock})),
        Err(e) => refusal(&st, e).await,
    }
}
