//! `GET /ui`: what needs the operator now (rounds awaiting approval, at the top),
//! then the agents, the tasks by state, the locks held and the hub's health.
//! Each list is one page of the operator API's paged reads.

use super::error::UiError;
use super::layout::{badge, live_section, page, pager};
use super::{html, page_request, page_request_of, shell, widgets, Done};
use crate::actors::hub::Health;
use crate::http::error::settle;
use crate::http::state::AppState;
use crate::store::pages::{Page, TaskSummary};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html as markup, Markup};

/// Each section's page (`next_cursor` of the one before).
#[derive(serde::Deserialize)]
pub(super) struct Cursors {
    awaiting: Option<String>,
    agents: Option<String>,
    tasks: Option<String>,
}

pub(super) async fn show(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<Cursors>,
    done: web::Query<Done>,
) -> Result<HttpResponse, UiError> {
    let (op, hub) = page_request(&req, &st).await?;
    let now = Utc::now();
    let awaiting_req = page_request_of(q.awaiting.as_deref(), false, 20)?;
    let awaiting = settle(&hub, hub.awaiting_page(awaiting_req).await).await?;
    let agents_req = page_request_of(q.agents.as_deref(), false, 50)?;
    let agents = settle(&hub, hub.agent_page(agents_req, now).await).await?;
    let counts = settle(&hub, hub.task_counts().await).await?;
    let tasks_req = page_request_of(q.tasks.as_deref(), false, 25)?;
    let tasks = settle(&hub, hub.task_page(tasks_req).await).await?;
    let locks_req = page_request_of(None, false, 10)?;
    let locks = settle(&hub, hub.lock_page(locks_req, now).await).await?;
    let health = crate::http::hub_state::health(&st, &hub).await;

    let back = "/ui";
    let content = markup! {
        h1 { "Overview" }
        (live_section("approvals", &format!("Awaiting approval ({}{})", awaiting.items.len(),
            if awaiting.next_cursor.is_some() { "+" } else { "" }), markup! {
            @if awaiting.items.is_empty() {
                p.empty { "No round is waiting for approval." }
            }
            @for r in &awaiting.items {
                (widgets::awaiting_round(r, &op, back, now))
            }
            (pager("/ui", "awaiting", awaiting.next_cursor.as_deref(), q.awaiting.is_some()))
        }))
        div.grid {
            (live_section("agents", "Agents", markup! {
                (widgets::agents(&agents.items, now))
                (pager("/ui", "agents", agents.next_cursor.as_deref(), q.agents.is_some()))
            }))
            (live_section("health", "Hub health", health_facts(&health)))
        }
        (live_section("tasks", "Tasks", tasks_section(&counts, &tasks, q.tasks.is_some(), now)))
        (live_section("locks", "Locks held", markup! {
            (widgets::locks(&locks.items, &op, back, now))
            @if locks.next_cursor.is_some() {
                p { a href="/ui/locks" { "All held locks" } }
            }
        }))
    };
    let shell = shell("Overview", "overview", &op, &hub, done.notice());
    Ok(html(page(&shell, content)))
}

fn tasks_section(
    counts: &[(String, u64)],
    tasks: &Page<TaskSummary>,
    paged: bool,
    now: chrono::DateTime<Utc>,
) -> Markup {
    markup! {
        dl.facts {
            @for (state, n) in counts {
                dt { (badge(state)) }
                dd { (n) }
            }
        }
        h3 { "Open tasks" }
        @if tasks.items.is_empty() {
            p.empty { "No open task." }
        } @else {
            (super::tasks_page::task_table(&tasks.items, now, false))
        }
        (pager("/ui", "tasks", tasks.next_cursor.as_deref(), paged))
        p { a href="/ui/tasks?all=1" { "Every task, finished ones too" } }
    }
}

fn health_facts(h: &Health) -> Markup {
    markup! {
        dl.facts {
            dt { "Writes" }
            dd {
                @match &h.writes {
                    Ok(()) => (badge("saved")),
                    Err(e) => { (badge("refused")) " " (e) },
                }
            }
            dt { "Durability" } dd { (h.durability) }
            dt { "Writer queue" } dd { (h.writer_queue) " ops" }
            dt { "Storage faults" } dd { (h.store_faults) }
            dt { "Agents" } dd { (h.agents) }
            dt { "Tasks" } dd { (h.tasks) " (" (h.tasks_in_memory) " in memory)" }
            dt { "Locks held" } dd { @match h.locks_held { Some(n) => (n), None => "?" } }
            dt { "Unread messages" } dd { (h.inbox_unread) }
            dt { "Uptime" } dd { (uptime(h.uptime_seconds)) }
            dt { "Version" } dd { (env!("CARGO_PKG_VERSION")) }
        }
    }
}

fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {}s", secs % 60)
    }
}
