//! Logging in and out. The login form posts the operator token once; a session
//! cookie (a fresh random id, never the token) is what the browser holds after.
//! The form carries a double-submit token (cookie and field) so that another site
//! cannot log a browser in; failed logins are capped per minute.

use super::cookies::{self, LOGIN, SESSION};
use super::error::UiError;
use super::{action_form, guard, layout, see_other, CsrfField};
use crate::auth::Principal;
use crate::domain::ids::random_hex;
use crate::http::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

/// How long a login form may sit before it is posted.
const LOGIN_FORM_SECS: u64 = 600;
/// Most bytes of the login form (a token is well under 200).
const LOGIN_LIMIT: usize = 4096;

/// The login form with a new double-submit token (cookie and field).
fn login_form(st: &AppState, status: StatusCode, error: Option<&str>) -> HttpResponse {
    let token = random_hex(16);
    HttpResponse::build(status)
        .insert_header((
            header::SET_COOKIE,
            cookies::set(
                LOGIN,
                &token,
                "/ui/login",
                LOGIN_FORM_SECS,
                st.ui.secure_cookie,
            ),
        ))
        .content_type("text/html; charset=utf-8")
        .body(layout::login_page(error, &token).into_string())
}

/// `GET /ui/login`: the form (or the overview, when already logged in).
pub(super) async fn form(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    if guard::page(&req, &st).is_ok() {
        return see_other("/ui");
    }
    login_form(&st, StatusCode::OK, None)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    login_csrf: String,
}

/// `POST /ui/login`: the operator token starts a session; anything else is
/// refused (and counted).
pub(super) async fn login(
    req: HttpRequest,
    st: web::Data<AppState>,
    mut payload: web::Payload,
) -> Result<HttpResponse, UiError> {
    use actix_web::ResponseError;
    let now = Utc::now();
    let checked = guard::same_site(&req, &st)
        .and_then(|()| st.ui.failures().allow(now).map_err(UiError::Throttled))
        .and_then(|()| crate::http::body::check_length(&req, LOGIN_LIMIT).map_err(UiError::from));
    if let Err(e) = checked {
        return Ok(crate::http::body::refuse(&e, payload));
    }
    let body = crate::http::body::read(&mut payload, LOGIN_LIMIT, st.body_read_timeout).await?;
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| UiError::Bad(format!("the form could not be read: {e}")))?;
    let cookie = cookies::read(
        req.headers().get("cookie").and_then(|v| v.to_str().ok()),
        LOGIN,
    );
    if !cookie.is_some_and(|c| super::sessions::same_secret(c, &form.login_csrf)) {
        // An old form, cookies refused, or a post made by another site.
        return Ok(login_form(
            &st,
            StatusCode::FORBIDDEN,
            Some("This login form expired or did not come from this dashboard; try again."),
        ));
    }
    let tokens = st.tokens.current();
    let bearer = format!("Bearer {}", form.token.trim());
    if tokens.authenticate(Some(&bearer)) != Ok(Principal::Operator) {
        st.ui.failures().failed(now);
        tracing::warn!("dashboard login refused: not the operator token");
        let e = UiError::BadToken;
        return Ok(login_form(&st, e.status_code(), Some(&e.to_string())));
    }
    let old = guard::session_cookie(&req);
    let issued = st
        .ui
        .sessions()
        .login(old, tokens.operator_digest(), now, &mut || random_hex(32));
    tracing::info!("dashboard login");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui"))
        .append_header((
            header::SET_COOKIE,
            cookies::set(
                SESSION,
                &issued.id,
                "/ui",
                st.ui.session_max_secs,
                st.ui.secure_cookie,
            ),
        ))
        .append_header((
            header::SET_COOKIE,
            cookies::clear(LOGIN, "/ui/login", st.ui.secure_cookie),
        ))
        .finish())
}

/// `POST /ui/logout`: the session ends here and in the browser.
pub(super) async fn logout(
    req: HttpRequest,
    st: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let (op, _): (_, CsrfField) = match action_form(&req, &st, payload).await {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    st.ui.sessions().end(&op.session);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .insert_header((
            header::SET_COOKIE,
            cookies::clear(SESSION, "/ui", st.ui.secure_cookie),
        ))
        .finish()
}
