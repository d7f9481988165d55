//! Operator API for the task workflow: approve/reject rounds, close tasks, and the
//! read views behind `hubctl status/list-tasks/list-rounds/show`; the message log,
//! one agent's deliveries and their purge (`hubctl messages`, `purge-messages`).

use super::error::{settle, ApiError};
use super::guards::{operator, operator_request as guard, with_body};
use super::state::AppState;
use crate::domain::workflow::TaskState;
use crate::domain::AgentId;
use crate::store::pages::{Cursor, PageRequest, TaskSummary, DEFAULT_LIMIT, MAX_LIMIT};
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
        .route("/operator/audit", web::get().to(list_audit))
        .route("/operator/messages", web::get().to(list_messages))
        .route("/operator/messages/purge", web::post().to(purge_messages))
        // The key is a query parameter: keys may contain `/`, which a path segment
        // would keep percent-encoded.
        .route("/operator/locks", web::delete().to(unlock));
}

/// A round with its assignments.
fn round_json(s: &TaskState, round_id: &str) -> Value {
    let assignments: Vec<_> = s.round_assignments(round_id).collect();
    json!({"round": s.round(round_id), "assignments": assignments})
}

type Answer = Result<HttpResponse, ApiError>;

fn task_summary(t: &TaskSummary) -> Value {
    let current = t
        .current_round
        .as_ref()
        .map(|(id, number, status)| json!({"id": id, "round_number": number, "status": status}));
    json!({"task": t.task, "rounds": t.rounds, "current_round": current})
}

/// `?all=1&limit=N&cursor=C`: the paging contract of every operator list.
#[derive(Deserialize)]
pub(crate) struct PageQuery {
    all: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// list-rounds only: the rounds of one task, in round order.
    task_id: Option<String>,
    /// audit only: the events of one entity (both or neither), or of a task
    /// (`task_id`); by one actor; of one kind; since a time (RFC 3339).
    entity_type: Option<String>,
    entity_id: Option<String>,
    actor: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    /// messages only: the deliveries to this agent, with its read state...
    agent: Option<String>,
    /// ...and of those only the unread ones.
    unread: Option<String>,
}

/// A yes/no query parameter: present and empty, `1`, `true` or `yes` mean yes.
fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "yes" | ""))
}

impl PageQuery {
    pub(crate) fn request(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        let cursor = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(Cursor::parse(c).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "cursor {c:?} is not one this hub gave out (use next_cursor of the previous page)"
                ))
            })?),
        };
        let all = flag(&self.all);
        Ok(PageRequest { all, limit, cursor })
    }
}

async fn list_tasks(req: HttpRequest, st: web::Data<AppState>, q: web::Query<PageQuery>) -> Answer {
    let hub = guard(&req, &st).await?;
    let page = settle(&hub, hub.task_page(q.request()?).await).await?;
    let items: Vec<Value> = page.items.iter().map(task_summary).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"ok": true, "items": items, "next_cursor": page.next_cursor})))
}

async fn list_audit(req: HttpRequest, st: web::Data<AppState>, q: web::Query<PageQuery>) -> Answer {
    let hub = guard(&req, &st).await?;
    let entity = match (&q.entity_type, &q.entity_id, &q.task_id) {
        (Some(t), Some(i), None) => Some((t.clone(), i.clone())),
        (None, None, Some(task)) => Some(("task".to_string(), task.clone())),
        (None, None, None) => None,
        (_, _, Some(_)) => {
            return Err(ApiError::invalid_argument(
                "task_id is entity_type=task&entity_id=ID: give one or the other".into(),
            ))
        }
        _ => {
            return Err(ApiError::invalid_argument(
                "entity_type and entity_id go together".into(),
            ))
        }
    };
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(
            crate::domain::time::parse_iso(t)
                .map(crate::domain::time::iso)
                .ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "since {t:?} is not an RFC 3339 time (e.g. 2026-11-29T12:00:00Z)"
                    ))
                })?,
        ),
    };
    let filter = crate::store::pages::AuditFilter {
        entity,
        actor: q.actor.clone().filter(|a| !a.is_empty()),
        event_type: q.event_type.clone().filter(|k| !k.is_empty()),
        since,
    };
    let page = settle(&hub, hub.audit_page(q.request()?, filter).await).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"ok": true, "items": page.items, "next_cursor": page.next_cursor})))
}

async fn list_messages(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Answer {
    let hub = guard(&req, &st).await?;
    let page_req = q.request()?;
    let unread = flag(&q.unread);
    let (items, next_cursor) = match &q.agent {
        None if unread => {
            return Err(ApiError::invalid_argument(
                "unread lists one agent's unread messages: give agent too".into(),
            ))
        }
        None => {
            let page = settle(&hub, hub.message_page(page_req).await).await?;
            (json!(page.items), page.next_cursor)
        }
        Some(a) => {
            let agent = AgentId::new(a);
            let page = hub.delivery_page(page_req, &agent, unread).await;
            let page = settle(&hub, page).await?;
            (json!(page.items), page.next_cursor)
        }
    };
    Ok(HttpResponse::Ok().json(json!({"ok": true, "items": items, "next_cursor": next_cursor})))
}

/// `{"agent": "A", "from": "B"}` (`from` optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    agent: String,
    from: Option<String>,
}

/// Remove the deliveries to an agent (from one sender), read or not: `{"ok": true,
/// "agent", "from", "purged": N}`. The body is read once the operator token is checked.
async fn purge_messages(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> Answer {
    let body = match with_body(&req, &st, payload, operator).await {
        Ok(((), body)) => body,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    let b: PurgeBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_argument(format!(
            "body must be {{\"agent\": \"A\", \"from\": \"B\"}} (from optional): {e}"
        ))
    })?;
    if b.from.as_deref() == Some("") {
        return Err(ApiError::invalid_argument(
            "from: empty; leave it out to purge every sender's messages".into(),
        ));
    }
    let agent = AgentId::new(&b.agent);
    let purged = hub
        .purge_messages(&agent, b.from.clone(), chrono::Utc::now())
        .await;
    let purged = settle(&hub, purged).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"ok": true, "agent": b.agent, "from": b.from, "purged": purged})))
}

async fn show_task(req: HttpRequest, st: web::Data<AppState>, id: web::Path<String>) -> Answer {
    let hub = guard(&req, &st).await?;
    let s = settle(&hub, hub.task_snapshot(&id).await).await?;
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

async fn list_rounds(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Answer {
    let hub = guard(&req, &st).await?;
    let page_req = q.request()?;
    let (items, next_cursor) = match &q.task_id {
        // One task's rounds, in round order: at most max_rounds of them.
        Some(t) => {
            let s = settle(&hub, hub.task_snapshot(t).await).await?;
            let mut rs: Vec<_> = s.rounds.iter().map(|r| json!(r)).collect();
            rs.sort_by_key(|r| r["round_number"].as_u64());
            (rs, None)
        }
        None => {
            let page = settle(&hub, hub.round_page(page_req).await).await?;
            let rs = page.items.iter().map(|r| json!(r)).collect();
            (rs, page.next_cursor)
        }
    };
    Ok(HttpResponse::Ok().json(json!({"ok": true, "items": items, "next_cursor": next_cursor})))
}

async fn round_status(req: HttpRequest, st: web::Data<AppState>, id: web::Path<String>) -> Answer {
    let hub = guard(&req, &st).await?;
    let task = settle(&hub, hub.round_snapshot(&id).await).await?;
    let decisions = settle(&hub, hub.decisions(&id).await).await?;
    let mut v = round_json(&task, &id);
    v["ok"] = json!(true);
    v["task"] = json!(task.task);
    // Every approve and reject with its note: operator_note keeps only the last.
    v["decisions"] = json!(decisions);
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

/// Approve or reject round `id` with the body's note (read once the operator token
/// is checked).
async fn decide(
    req: HttpRequest,
    st: &AppState,
    id: &str,
    payload: web::Payload,
    d: Decision,
) -> Answer {
    let body = match with_body(&req, st, payload, operator).await {
        Ok(((), body)) => body,
        Err(refused) => return Ok(refused),
    };
    let hub = st.hub.get().await?;
    let note = note_of(&body)?;
    let decided = match d {
        Decision::Approve => hub.approve(id, note).await,
        Decision::Reject => hub.reject(id, note).await,
    };
    let round = settle(&hub, decided).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "round": round})))
}

async fn approve(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    decide(req, &st, &id, payload, Decision::Approve).await
}

async fn reject(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    decide(req, &st, &id, payload, Decision::Reject).await
}

async fn close_task(req: HttpRequest, st: web::Data<AppState>, id: web::Path<String>) -> Answer {
    let hub = guard(&req, &st).await?;
    let task = settle(&hub, hub.close(&id).await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "task": task})))
}

async fn list_locks(req: HttpRequest, st: web::Data<AppState>, q: web::Query<PageQuery>) -> Answer {
    let hub = guard(&req, &st).await?;
    let now = chrono::Utc::now();
    let page = settle(&hub, hub.lock_page(q.request()?, now).await).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|l| {
            let mut v = json!(l);
            v["expires_in_seconds"] =
                json!((l.expires_at - now).num_milliseconds() as f64 / 1000.0);
            v
        })
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({"ok": true, "items": items, "next_cursor": page.next_cursor})))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn unlock(req: HttpRequest, st: web::Data<AppState>, q: web::Query<KeyQuery>) -> Answer {
    let hub = guard(&req, &st).await?;
    let lock = settle(&hub, hub.lock_force_release(&q.key).await).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "lock": lock})))
}
