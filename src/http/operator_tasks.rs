//! Operator API for the task workflow: approve/reject rounds, close tasks, and the
//! read views behind `hubctl status/list-tasks/list-rounds/show`.

use super::error::{settle, ApiError};
use super::guards::operator_request as guard;
use super::state::AppState;
use crate::domain::workflow::TaskState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
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

type Answer = Result<HttpResponse, ApiError>;

async fn list_tasks(req: HttpRequest, st: web::Data<AppState>) -> Answer {
    guard(&req, &st)?;
    let list = settle(&st.hub, st.hub.task_snapshots().await).await?;
    let tasks: Vec<Value> = list.iter().map(task_summary).collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "tasks": tasks})))
}

async fn show_task(req: HttpRequest, st: web::Data<AppState>, id: web::Path<String>) -> Answer {
    guard(&req, &st)?;
    let s = settle(&st.hub, st.hub.task_snapshot(&id).await).await?;
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
    Ok(HttpResponse::Ok().json(
        json!({"ok": true, "task": s.task, "message_count": s.message_count, "rounds": rounds}),
    ))
}

#[derive(Deserialize)]
struct RoundsQuery {
    task_id: Option<String>,
}

async fn list_rounds(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<RoundsQuery>,
) -> Answer {
    guard(&req, &st)?;
    let states = match &q.task_id {
        Some(t) => st.hub.task_snapshot(t).await.map(|s| vec![s]),
        None => st.hub.task_snapshots().await,
    };
    let states = settle(&st.hub, states).await?;
    let rounds: Vec<Value> = states
        .iter()
        .flat_map(|s| {
            let mut rs: Vec<_> = s.rounds.iter().collect();
            rs.sort_by_key(|r| r.round_number);
            rs.into_iter().map(|r| json!(r)).collect::<Vec<_>>()
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "rounds": rounds})))
}

async fn round_status(req: HttpRequest, st: web::Data<AppState>, id: web::Path<String>) -> Answer {
    guard(&req, &st)?;
    let task = settle(&st.hub, st.hub.round_snapshot(&id).await).await?;
    let mut v = round_json(&task, &id);
    v["ok"] = json!(true);
    v["task"] = json!(task.task);
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize, Default)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

fn note_of(body: &[u8]) -> Result<String, ApiError> {
    if body.is_empty() {
        return Ok(String::new());
    }
    serde_json::from_slice::<NoteBody>(body)
        .map(|b| b.note)
        .map_err(|e| ApiError::invalid_argument(format!("body must be {{\"note\": \"...\"}}: {e}")))
}

/// The operator's decision on a round.
#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

/// Approve or reject round `id` with the body's note.
async fn decide(req: HttpRequest, st: &AppState, id: &str, body: &[u8], d: Decision) -> Answer {
    guard(&req, st)?;
    let note = note_of(body)?;
    let decided = match d {
        Decision::Approve => st.hub.approve(id, note).await,
        Decision::Reject => st.hub.reject(id, note).await,
    };
    let round = settle(&st.hub, decided).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "round": round})))
}

async fn approve(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    decide(req, &st, &id, &body, Decision::Approve).await
}

async fn reject(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    decide(req, &st, &id, &body, Decision::Reject).await
}

async fn close_task(req: HttpRequest, st: web::Data<AppState>, id: web::Path<String>) -> Answer {
    guard(&req, &st)?;
    let task = settle(&st.hub, st.hub.close(&id).await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "task": task})))
}

async fn list_locks(req: HttpRequest, st: web::Data<AppState>) -> Answer {
    guard(&req, &st)?;
    let now = chrono::Utc::now();
    let locks = settle(&st.hub, st.hub.locks().await).await?;
    let list: Vec<Value> = locks
        .iter()
        .map(|l| {
            let mut v = json!(l);
            v["expires_in_seconds"] =
                json!((l.expires_at - now).num_milliseconds() as f64 / 1000.0);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "locks": list})))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn unlock(req: HttpRequest, st: web::Data<AppState>, q: web::Query<KeyQuery>) -> Answer {
    guard(&req, &st)?;
    let lock = settle(&st.hub, st.hub.lock_force_release(&q.key).await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "lock": lock})))
}
