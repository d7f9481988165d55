//! Who may use the dashboard: a browser holding a live session cookie (see
//! `sessions.rs`), and for every action also this session's CSRF token and no
//! Origin of another site. Bearer tokens play no part here, and the session cookie
//! plays none on `/operator` (whose guard reads only `Authorization`).

use super::cookies;
use super::error::UiError;
use crate::http::state::AppState;
use actix_web::HttpRequest;
use chrono::Utc;

/// A request of a logged-in operator.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    /// The session's form token, for the forms of the page being rendered.
    pub csrf: String,
    /// The session id (from the cookie).
    pub session: String,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The session id the browser sent, if any.
pub(crate) fn session_cookie(req: &HttpRequest) -> Option<&str> {
    cookies::read(header(req, "cookie"), cookies::SESSION)
}

fn session(req: &HttpRequest, st: &AppState) -> Option<Operator> {
    let id = session_cookie(req)?;
    let operator = st.tokens.current().operator_digest();
    let csrf = st.ui.check(id, &operator, Utc::now())?;
    Some(Operator {
        csrf,
        session: id.to_string(),
    })
}

/// A page: without a session the browser is sent to the login form.
pub(crate) fn page(req: &HttpRequest, st: &AppState) -> Result<Operator, UiError> {
    session(req, st).ok_or(UiError::LoggedOut)
}

/// The event stream: 401 without a session.
pub(crate) fn stream(req: &HttpRequest, st: &AppState) -> Result<Operator, UiError> {
    session(req, st).ok_or(UiError::NoSession)
}

/// A browser posting from a page of another site is refused, whatever it holds:
/// `Sec-Fetch-Site` (when sent) must say `same-origin` (a sibling subdomain is
/// `same-site` and gets the SameSite=Strict cookie, so it is refused too), and
/// `Origin` must be one of ours. Chromium sends `Origin: null` for our own forms
/// (the pages say `Referrer-Policy: no-referrer`), which passes only with
/// `Sec-Fetch-Site: same-origin`. The CSRF token is the real check; this one
/// costs nothing.
pub(crate) fn same_site(req: &HttpRequest, st: &AppState) -> Result<(), UiError> {
    let fetch_site = header(req, "sec-fetch-site");
    if let Some(site) = fetch_site.filter(|s| !matches!(*s, "same-origin" | "none")) {
        return Err(UiError::Origin(format!("a {site} page")));
    }
    match header(req, "origin") {
        Some("null") if fetch_site == Some("same-origin") => Ok(()),
        Some(o) if !st.origins.allows(o) => Err(UiError::Origin(o.to_string())),
        _ => Ok(()),
    }
}

/// An action, checked from its headers before its body is read: same site, and a
/// live session. The form's token is checked with [`csrf`] once the body is read.
pub(crate) fn action(req: &HttpRequest, st: &AppState) -> Result<Operator, UiError> {
    same_site(req, st)?;
    session(req, st).ok_or(UiError::NoSession)
}

/// The form's `csrf` field must be the session's token.
pub(crate) fn csrf(op: &Operator, sent: &str) -> Result<(), UiError> {
    if super::sessions::same_secret(&op.csrf, sent) {
        Ok(())
    } else {
        Err(UiError::Csrf)
    }
}
