//! The dashboard's refusals and failures, each answered as an HTML page (or, for
//! pages asked without a session, a redirect to the login form).

use super::layout;
use crate::http::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum UiError {
    /// A page asked without a live session: off to the login form.
    #[error("log in first")]
    LoggedOut,
    /// An action or the event stream without a live session.
    #[error("your session has ended; log in again")]
    NoSession,
    /// A form without this session's token: made elsewhere, or before a new login.
    #[error("this form is not from your current session; reload the page and try again")]
    Csrf,
    /// A browser request from a page of another site.
    #[error("requests from {0} are not allowed; use the dashboard's own pages")]
    Origin(String),
    /// Too many failed logins this minute.
    #[error("too many failed logins; try again in {0} s")]
    Throttled(u64),
    /// Not the operator token (an agent's, an old one, or none).
    #[error("that is not the operator token (operator.token)")]
    BadToken,
    /// A malformed request.
    #[error("{0}")]
    Bad(String),
    /// What the hub or the operator API's checks answered.
    #[error("{0}")]
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(e)
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::LoggedOut => StatusCode::SEE_OTHER,
            UiError::NoSession | UiError::BadToken => StatusCode::UNAUTHORIZED,
            UiError::Csrf | UiError::Origin(_) => StatusCode::FORBIDDEN,
            UiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            UiError::Bad(_) => StatusCode::BAD_REQUEST,
            UiError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut b = HttpResponse::build(status);
        match self {
            UiError::LoggedOut => return b.insert_header((header::LOCATION, "/ui/login")).finish(),
            UiError::Throttled(secs) => {
                b.insert_header((header::RETRY_AFTER, *secs));
            }
            _ => {}
        }
        let message = match self {
            // The operator API's words without its status prefix.
            UiError::Api(ApiError::Operator { message, .. }) => message.clone(),
            other => other.to_string(),
        };
        b.content_type("text/html; charset=utf-8")
            .body(layout::error_page(status, &message).into_string())
    }
}
