//! The operator dashboard at `/ui`: server-rendered pages (maud) of agents, tasks,
//! rounds, assignments, messages, locks and the audit log, with the operator's
//! actions, kept live by `app.js` from `/ui/events` (the operator event stream).
//! A browser logs in once with the operator token and then holds a session cookie
//! (`sessions.rs`, `guard.rs`); every action also carries the session's CSRF token.
//! Handlers only decode, check and call the same [`crate::actors::Hub`] methods as
//! the `/operator` API behind `hubctl`.

mod actions;
mod agent_page;
mod assets;
mod audit_page;
mod cookies;
mod error;
mod format;
pub(super) mod guard;
mod layout;
mod live;
mod locks_page;
mod login;
mod overview;
mod sessions;
mod task_page;
mod tasks_page;
mod widgets;

use crate::actors::Hub;
use crate::auth::Digest;
use crate::config::settings::Dashboard;
use crate::domain::time::Timestamp;
use crate::http::state::AppState;
use actix_web::http::header;
use actix_web::{middleware::DefaultHeaders, web, HttpRequest, HttpResponse};
use error::UiError;
use guard::Operator;
use sessions::{FailedLogins, Limits, SessionTable};
use std::sync::Mutex;

/// Sent with every `/ui` response: scripts, styles and forms only from here, never
/// framed, nothing cached, no referrer (URLs hold ids).
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The dashboard's share of the server state.
pub(crate) struct UiState {
    /// Locked for microseconds per request; a `Mutex` is plenty for one operator.
    sessions: Mutex<SessionTable>,
    failures: Mutex<FailedLogins>,
    secure_cookie: bool,
    session_max_secs: u64,
}

impl UiState {
    pub(crate) fn new(d: &Dashboard) -> UiState {
        let secs = |s: u64| chrono::Duration::seconds(s.min(i64::MAX as u64) as i64);
        UiState {
            sessions: Mutex::new(SessionTable::new(Limits {
                idle: secs(d.session_idle_secs),
                max_age: secs(d.session_max_secs),
                max_sessions: d.max_sessions,
            })),
            failures: Mutex::new(FailedLogins::new(d.failed_logins_per_minute)),
            secure_cookie: d.secure_cookie(),
            session_max_secs: d.session_max_secs,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, SessionTable> {
        // A panic under the lock leaves the table whole (every change is one call).
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, FailedLogins> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The CSRF token of live session `id` (now used).
    fn check(&self, id: &str, operator: &Digest, now: Timestamp) -> Option<String> {
        self.sessions().check(id, operator, now)
    }
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ui")
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::CACHE_CONTROL, "no-store"))
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
            )
            .route("", web::get().to(overview::show))
            .route("/", web::get().to(overview::show))
            .route("/login", web::get().to(login::form))
            .route("/login", web::post().to(login::login))
            .route("/logout", web::post().to(login::logout))
            .route("/events", web::get().to(live::events))
            .route("/tasks", web::get().to(tasks_page::show))
            .route("/tasks/{id}", web::get().to(task_page::show))
            .route("/tasks/{id}/close", web::post().to(actions::close))
            .route("/rounds/{id}/approve", web::post().to(actions::approve))
            .route("/rounds/{id}/reject", web::post().to(actions::reject))
            .route("/agents/{id}", web::get().to(agent_page::show))
            .route("/agents/{id}/purge", web::post().to(actions::purge))
            .route("/locks", web::get().to(locks_page::show))
            .route("/locks/release", web::post().to(actions::release_lock))
            .route("/audit", web::get().to(audit_page::show))
            .route("/static/{file}", web::get().to(assets::get))
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, UiError> {
    Err(UiError::Api(crate::http::error::ApiError::Operator {
        status: actix_web::http::StatusCode::NOT_FOUND,
        code: crate::domain::ErrorCode::NotFound,
        message: "no such dashboard page".into(),
    }))
}

/// A page's session and the hub (once start-up has loaded it).
async fn page_request(req: &HttpRequest, st: &AppState) -> Result<(Operator, Hub), UiError> {
    let op = guard::page(req, st)?;
    let hub = st.hub.get().await?;
    Ok((op, hub))
}

/// The shell of a page rendered now.
fn shell<'a>(
    title: &'a str,
    nav: &'a str,
    op: &'a Operator,
    hub: &Hub,
    notice: Option<String>,
) -> layout::Shell<'a> {
    layout::Shell {
        title,
        nav,
        op,
        last_event: hub.events().last_id(),
        now: chrono::Utc::now(),
        notice,
    }
}

/// A rendered page.
fn html(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// The paging parameters of a dashboard list (`limit` as the operator API's).
fn page_request_of(
    cursor: Option<&str>,
    all: bool,
    limit: usize,
) -> Result<crate::store::pages::PageRequest, UiError> {
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            crate::store::pages::Cursor::parse(c)
                .ok_or_else(|| UiError::Bad(format!("{c:?} is not a page this hub gave out")))?,
        ),
    };
    Ok(crate::store::pages::PageRequest { all, limit, cursor })
}

/// The notice of an action that redirected here (`?done=approved&id=R`).
#[derive(serde::Deserialize, Default)]
struct Done {
    done: Option<String>,
    id: Option<String>,
    /// How many (a purge's count).
    n: Option<u64>,
}

impl Done {
    fn notice(&self) -> Option<String> {
        let id = self.id.as_deref().unwrap_or("");
        let what = match self.done.as_deref()? {
            "approved" => format!("Round {id} approved: its assignees may claim their work."),
            "rejected" => {
                format!("Round {id} rejected: the dispatcher was told to revise the plan.")
            }
            "closed" => format!("Task {id} closed."),
            "released" => format!("Lock {id} released."),
            "purged" => match self.n {
                Some(1) => format!("Purged 1 delivery to {id}."),
                Some(n) => format!("Purged {n} deliveries to {id}."),
                None => format!("Purged the deliveries to {id}."),
            },
            _ => return None,
        };
        Some(what)
    }
}

/// Most bytes of an action's form (a note is a few KiB at most).
const FORM_LIMIT: usize = 64 * 1024;

/// The `csrf` field every action's form carries.
#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// An action's form: its headers checked first (same site, a live session), so
/// that no one without a session makes the server read a body; then the body
/// (bounded, within `body_read_timeout_secs`) and its CSRF token. A refusal comes
/// back as the response to send.
async fn action_form<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    st: &AppState,
    mut payload: web::Payload,
) -> Result<(Operator, T), HttpResponse> {
    use actix_web::ResponseError;
    let checked = crate::http::body::check_length(req, FORM_LIMIT)
        .map_err(UiError::from)
        .and_then(|()| guard::action(req, st));
    let op = match checked {
        Ok(op) => op,
        Err(e) => return Err(crate::http::body::refuse(&e, payload)),
    };
    let body = crate::http::body::read(&mut payload, FORM_LIMIT, st.body_read_timeout)
        .await
        .map_err(|e| UiError::from(e).error_response())?;
    let sent: CsrfField =
        serde_urlencoded::from_bytes(&body).map_err(|e| bad_form(e).error_response())?;
    guard::csrf(&op, &sent.csrf).map_err(|e| e.error_response())?;
    let form = serde_urlencoded::from_bytes(&body).map_err(|e| bad_form(e).error_response())?;
    Ok((op, form))
}

fn bad_form(e: serde_urlencoded::de::Error) -> UiError {
    UiError::Bad(format!("the form could not be read: {e}"))
}

/// 303 to `location` (after an action, so that a reload does not repeat it).
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
