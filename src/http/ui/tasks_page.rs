//! `GET /ui/tasks`: tasks a page at a time, newest first: open ones, or every one
//! with `?all=1` (the operator API's `list-tasks` read).

use super::error::UiError;
use super::format::{ago, words};
use super::layout::{agent_link, badge, live_section, page, pager, task_link};
use super::{html, page_request, page_request_of, shell};
use crate::http::error::settle;
use crate::http::state::AppState;
use crate::store::pages::TaskSummary;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::DateTime;
use chrono::Utc;
use maud::{html as markup, Markup};

#[derive(serde::Deserialize)]
pub(super) struct Query {
    all: Option<String>,
    cursor: Option<String>,
}

pub(super) async fn show(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<Query>,
) -> Result<HttpResponse, UiError> {
    let (op, hub) = page_request(&req, &st).await?;
    let now = Utc::now();
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "yes"));
    let tasks = settle(
        &hub,
        hub.task_page(page_request_of(q.cursor.as_deref(), all, 50)?)
            .await,
    )
    .await?;
    let here = if all { "/ui/tasks?all=1" } else { "/ui/tasks" };
    let content = markup! {
        h1 { @if all { "Every task" } @else { "Open tasks" } }
        p {
            @if all { a href="/ui/tasks" { "Only open tasks" } }
            @else { a href="/ui/tasks?all=1" { "Every task, finished ones too" } }
        }
        (live_section("task-list", "Tasks, newest first", markup! {
            @if tasks.items.is_empty() {
                p.empty { "No tasks." }
            } @else {
                (task_table(&tasks.items, now, true))
            }
            (pager(here, "cursor", tasks.next_cursor.as_deref(), q.cursor.is_some()))
        }))
    };
    let shell = shell("Tasks", "tasks", &op, &hub, None);
    Ok(html(page(&shell, content)))
}

/// A table of tasks (the overview's open tasks, this page's list), with their
/// round counts when `with_rounds`.
pub(super) fn task_table(items: &[TaskSummary], now: DateTime<Utc>, with_rounds: bool) -> Markup {
    markup! {
        table {
            thead {
                tr {
                    th scope="col" { "Task" }
                    th scope="col" { "Title" }
                    th scope="col" { "State" }
                    @if with_rounds {
                        th scope="col" .num { "Rounds" }
                    }
                    th scope="col" { "Current round" }
                    th scope="col" { "Dispatcher" }
                    th scope="col" { "Changed" }
                }
            }
            tbody {
                @for t in items {
                    tr {
                        td { (task_link(&t.task.id)) }
                        td { (t.task.title) }
                        td { (badge(t.task.status.as_str())) }
                        @if with_rounds {
                            td.num { (t.rounds) }
                        }
                        td {
                            @if let Some((_, n, status)) = &t.current_round {
                                (n) " · " (words(status))
                            }
                        }
                        td { (agent_link(&t.task.dispatcher_agent_id)) }
                        td { (ago(t.task.updated_at, now)) }
                    }
                }
            }
        }
    }
}
