//! `GET /ui/locks`: held locks a page at a time (holder, resource, expires in,
//! fencing token), each with a Release button (`hubctl unlock`).

use super::error::UiError;
use super::layout::{live_section, page, pager};
use super::{html, page_request, page_request_of, shell, widgets, Done};
use crate::http::error::settle;
use crate::http::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::html as markup;

#[derive(serde::Deserialize)]
pub(super) struct Query {
    cursor: Option<String>,
}

pub(super) async fn show(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<Query>,
    done: web::Query<Done>,
) -> Result<HttpResponse, UiError> {
    let (op, hub) = page_request(&req, &st).await?;
    let now = Utc::now();
    let locks = settle(
        &hub,
        hub.lock_page(page_request_of(q.cursor.as_deref(), false, 50)?, now)
            .await,
    )
    .await?;
    let content = markup! {
        h1 { "Locks" }
        (live_section("lock-list", "Held locks, newest grant first", markup! {
            (widgets::locks(&locks.items, &op, "/ui/locks", now))
            (pager("/ui/locks", "cursor", locks.next_cursor.as_deref(), q.cursor.is_some()))
        }))
    };
    let shell = shell("Locks", "locks", &op, &hub, done.notice());
    Ok(html(page(&shell, content)))
}
